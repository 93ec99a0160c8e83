"""Deployment: ONNX export (``asclab.export.onnx_export``, needs torch), the torch-free
``OnnxPredictor`` and the DCASE 2025-style inference API (``asclab.export.dcase_api``).

Importing this package does not import torch: only the torch-free predictor is
imported here.
"""
from asclab.export.onnx_predictor import OnnxPredictor

__all__ = ["OnnxPredictor"]
