"""What a model file says about running it, whatever runs its network: the classes, how audio
becomes its input (rate, channel policy, resampler, clip length, whole-file inference), the
front end's hop (the shortest window hop that makes sense) and the open-set rule.

An asclab model file (``asclab.evaluate.torch_backend``) and an ONNX export's metadata
(``asclab.evaluate.onnx_backend``) both give one; ``asclab.evaluate.inference.Predictor``
builds its windowing and its decisions from it. Needs no torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from asclab.evaluate.openset import OpenSetRule, stored_rule


@dataclass(frozen=True)
class InferenceSettings:
    """A model's inference settings. The open-set rule is read when first asked for (as it was
    before there was one Predictor: a file whose stored rule is malformed still loads for the
    commands that never decide, e.g. ``asclab complexity``)."""

    classes: list[str]
    sample_rate: int
    channels: str = "mono"
    duration: float | None = None  # the training clip length, seconds (None: not stored)
    resampler: str = "soxr"  # or "sinc_hann" (asclab.data.sinc_resample; DCASE 2025 packages)
    whole_file: bool = False  # recipe inference.whole_file: a recording is one input of its own length
    feature_hop: int | None = None  # the front end's STFT hop, samples
    expect_rate: int | None = None  # recipe data.expect_rate: clips at another rate are refused
    source: Path | None = None  # the file the settings come from
    openset_spec: dict | None = field(default=None, repr=False)  # the stored rule, as stored
    openset_key: str = "model file openset"  # how a malformed stored rule is named in its error
    recipe: dict | None = field(default=None, repr=False)  # older model files keep the rule in their recipe

    @cached_property
    def openset(self) -> OpenSetRule | None:
        """The open-set rule (``asclab.evaluate.openset``) or None: the stored one, else the
        recipe's ``inference.openset``."""
        if self.openset_spec:
            return OpenSetRule.from_config(self.openset_spec, key=self.openset_key)
        return stored_rule(None, self.recipe)
