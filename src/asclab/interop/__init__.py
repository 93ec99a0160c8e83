"""Readers of other toolkits' files: published checkpoints become asclab model files."""
from asclab.interop.cpjku import import_checkpoint, import_cpjku

__all__ = ["import_checkpoint", "import_cpjku"]
