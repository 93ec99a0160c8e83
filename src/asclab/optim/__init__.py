"""Optimisers and learning-rate schedules, each registered by name (``asclab.registry``)."""
