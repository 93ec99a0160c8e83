"""Training losses and loss-bearing heads: focal, class-balanced focal, ArcFace, device adversary."""
from asclab.losses.arcface import ArcFaceHead
from asclab.losses.build import LOSSES, build_loss, loss_needs
from asclab.losses.ce import CrossEntropy
from asclab.losses.domain import DeviceHead, GradientReversal, grad_reverse
from asclab.losses.focal import ClassBalancedFocalLoss, FocalLoss, class_balanced_weights
from asclab.losses.kd import KDLoss

__all__ = [
    "LOSSES", "ArcFaceHead", "ClassBalancedFocalLoss", "CrossEntropy", "DeviceHead", "FocalLoss",
    "GradientReversal", "KDLoss", "build_loss", "class_balanced_weights", "grad_reverse", "loss_needs",
]
