"""Training losses and loss-bearing heads: focal, class-balanced focal, ArcFace, device adversary."""
from asclab.losses.arcface import ArcFaceHead
from asclab.losses.build import LOSSES, CrossEntropy, build_loss
from asclab.losses.domain import DeviceHead, GradientReversal, grad_reverse
from asclab.losses.focal import ClassBalancedFocalLoss, FocalLoss, class_balanced_weights
from asclab.losses.kd import KDLoss

__all__ = [
    "LOSSES", "ArcFaceHead", "ClassBalancedFocalLoss", "CrossEntropy", "DeviceHead", "FocalLoss",
    "GradientReversal", "KDLoss", "build_loss", "class_balanced_weights", "grad_reverse",
]
