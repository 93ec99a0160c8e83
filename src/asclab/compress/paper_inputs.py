"""The input each model family is measured at: its own paper's, not one generic front end.

``asclab complexity MODEL`` counts MACs for one clip as the paper that
defines the model feeds it (``(channels, mel bins, frames)``, batch 1). Each
entry names its source; where a recipe reproduces the paper's front end,
``recipe`` names it and ``tests/compress/test_complexity.py`` checks that the recipe's
features and clip length give the same shape.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperInput:
    shape: tuple[int, int, int]  # (channels, mel bins, frames) of one clip
    source: str
    recipe: str | None = None  # the recipe whose front end and clip length give ``shape``
    num_classes: int = 10
    fp16: bool = False  # storage precision when no recipe is named (else the recipe's compress.fp16)


PAPER_INPUTS: dict[str, PaperInput] = {
    "cp_mobile": PaperInput(
        (1, 256, 65),
        "DCASE 2024 task 1 baseline (CPJKU dcase2024_task1_baseline): 1 s at 32 kHz, hop 500, 256 mels; "
        "the organisers' NeSsi count is 29,419,156 MACs; parameters stored at 16 bits",
        None, fp16=True),
    "two_path_resnet": PaperInput(
        (6, 128, 461),
        "McDonnell & Gao 2019 sec. 3.1, task 1a: 10 s stereo at 48 kHz, hop 1024, log-mel + deltas + "
        "delta-deltas per channel without padding: 6 x 128 x 461",
        "mcdonnell2019_task1a"),
    "two_path_resnet_2020": PaperInput(
        (3, 128, 423),
        "Gao & McDonnell 2020 sec. 2.1: 10 s at 44.1 kHz, 128 bins, 423 frames, 3 channels",
        "gao2020_sub1_baseline"),
    "shared_resnet_ssn": PaperInput(
        (2, 256, 469),
        "QTI 2020 sec. 6.1: 10 s stereo at 48 kHz, 256 log-mel bands per channel, 3 classes (task 1b); "
        "frames not stated: 469 with the recipe's hop of 1024",
        "qti2020_task1b", num_classes=3),
    "mobilenetv2_small": PaperInput(
        (3, 128, 431),
        "Horvath et al. 2021 Table 1: 128 x 431 x 3 (log-mel, harmonic, percussive), 10 s at 44.1 kHz",
        "horvath2021_mnv2_focal"),
    "cp_resnet": PaperInput(
        (3, 128, 431),
        "Horvath et al. 2021 sec. 5.2: CP-ResNet on the Table 1 front end, 128 x 431 x 3",
        "horvath2021_cpresnet_focal"),
}
