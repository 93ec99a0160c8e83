"""Workflows: one module per command (train, evaluate, predict, crossval, teachers, logits,
features, complexity, submit, deploy, demo); the CLI calls these only."""
