"""The open-set decision (McDonnell & Gao 2019 sec. 3.7, DCASE 2019 task 1c), in one place.

The network has one output for the 'unknown' class; its softmax probability is
multiplied by ``weight`` (5 in the paper, "chosen on validation data") before
the argmax. Every place asclab turns probabilities into a label (``evaluate``,
``predict`` per file and per window, ``submit``, the ONNX predictor, the DCASE
API) calls :func:`decide` with the rule stored in the model file, so they agree.
Probabilities themselves are reported unweighted.

Recipe form (``inference.openset``)::

    openset: {unknown_label: unknown, weight: 5.0, tune: false}

``tune: true`` replaces ``weight`` by the value of ``TUNE_WEIGHTS`` that
maximises the task 1c score on the validation split carved from the training
data (``data.validation``); the chosen weight is what the model file stores.
Needs numpy only (the ONNX predictor uses it without torch).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from asclab.errors import ConfigError

TUNE_WEIGHTS = (1, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20)  # the grid is not stated in the paper


@dataclass(frozen=True)
class OpenSetRule:
    """Weight the ``unknown_label`` probability by ``weight`` before the argmax.
    ``tuned_on`` says where the weight was chosen (None: as the recipe gave it)."""

    unknown_label: str
    weight: float = 5.0
    tune: bool = False
    tuned_on: str | None = None

    def to_dict(self) -> dict:
        return {"unknown_label": self.unknown_label, "weight": float(self.weight), "tune": bool(self.tune),
                "tuned_on": self.tuned_on}

    @classmethod
    def from_config(cls, cfg: dict | None, key: str = "inference.openset") -> "OpenSetRule | None":
        """A rule from ``inference.openset`` (or a model file's stored rule); None when absent."""
        if not cfg:
            return None
        if not isinstance(cfg, dict):
            raise ConfigError(f"{key} must be a mapping like {{unknown_label: unknown, weight: 5.0}}, got {cfg!r}")
        unknown = sorted(set(cfg) - {"unknown_label", "weight", "tune", "tuned_on"})
        if unknown:
            raise ConfigError(f"{key}: unknown key(s) {', '.join(unknown)}; known: unknown_label, weight, tune")
        if not cfg.get("unknown_label"):
            raise ConfigError(f"{key}.unknown_label is required (the class name of the unknown scenes)")
        try:
            weight = float(cfg.get("weight", 5.0))
        except (TypeError, ValueError):
            raise ConfigError(f"{key}.weight must be a number, got {cfg.get('weight')!r}") from None
        if not weight > 0:
            raise ConfigError(f"{key}.weight must be positive, got {weight}")
        return cls(str(cfg["unknown_label"]), weight, bool(cfg.get("tune", False)), cfg.get("tuned_on"))

    def index(self, classes: Sequence[str]) -> int | None:
        """Position of the unknown class in ``classes`` (None: the model has no such class)."""
        classes = list(classes)
        return classes.index(self.unknown_label) if self.unknown_label in classes else None


def stored_rule(openset: dict | None, recipe: dict | None) -> OpenSetRule | None:
    """The rule a model file carries: its ``openset`` field, else (older files) its recipe's
    ``inference.openset``."""
    if openset:
        return OpenSetRule.from_config(openset, key="model file openset")
    return OpenSetRule.from_config(((recipe or {}).get("inference") or {}).get("openset"))


def decide(probs: np.ndarray, classes: Sequence[str], rule: OpenSetRule | None) -> np.ndarray:
    """Class indices for probabilities ``[N, K]`` (or one row ``[K]``): the argmax, after
    weighting the unknown class when ``rule`` applies to these classes."""
    p = np.asarray(probs, dtype=np.float64)
    k = rule.index(classes) if rule is not None else None
    if k is not None:
        p = p.copy()
        p[..., k] *= rule.weight
    return p.argmax(axis=-1)


def decide_labels(probs: np.ndarray, classes: Sequence[str], rule: OpenSetRule | None) -> list[str]:
    classes = list(classes)
    return [classes[int(i)] for i in np.atleast_1d(decide(probs, classes, rule))]


def decision_logits(probs: np.ndarray, classes: Sequence[str], rule: OpenSetRule | None) -> np.ndarray:
    """``log`` of the probabilities with ``log(weight)`` added to the unknown class, so that the
    argmax of these logits is :func:`decide` (the DCASE API returns logits, not labels)."""
    out = np.log(np.maximum(np.asarray(probs, dtype=np.float64), 1e-45))
    k = rule.index(classes) if rule is not None else None
    if k is not None:
        out[..., k] += np.log(rule.weight)
    return out


def task1c_score(pred: np.ndarray, y_true: np.ndarray, unknown_index: int) -> float:
    """DCASE 2019 task 1c: mean of the known-class macro accuracy and the unknown-class accuracy."""
    pred, y_true = np.asarray(pred), np.asarray(y_true)
    known = [c for c in np.unique(y_true) if c != unknown_index]
    known_acc = float(np.mean([(pred[y_true == c] == c).mean() for c in known])) if known else 0.0
    unk = y_true == unknown_index
    unk_acc = float((pred[unk] == unknown_index).mean()) if unk.any() else 0.0
    return 0.5 * (known_acc + unk_acc)


def tune_weight(probs: np.ndarray, y_true: np.ndarray, classes: Sequence[str], rule: OpenSetRule,
                weights: Iterable[float] = TUNE_WEIGHTS) -> tuple[float, float]:
    """``(weight, score)`` maximising :func:`task1c_score` over ``weights`` (ties: the first)."""
    k = rule.index(classes)
    if k is None:
        raise ConfigError(f"inference.openset.unknown_label {rule.unknown_label!r} is not one of the classes")
    best = (float(rule.weight), -1.0)
    for w in weights:
        score = task1c_score(decide(probs, classes, OpenSetRule(rule.unknown_label, float(w))), y_true, k)
        if score > best[1]:
            best = (float(w), score)
    return best


def open_set_decision(probs: np.ndarray, unknown_index: int, weight: float = 5.0) -> np.ndarray:
    """Task 1c decision by class index (see :func:`decide`, which every command uses): the
    'unknown' softmax output weighted by ``weight`` before the argmax."""
    classes = [str(i) for i in range(np.shape(probs)[-1])]
    return decide(probs, classes, OpenSetRule(classes[unknown_index], float(weight)))


def tune_open_set_weight(probs: np.ndarray, y_true: np.ndarray, unknown_index: int,
                         weights: Iterable[float] = TUNE_WEIGHTS) -> tuple[float, float]:
    """Pick the weight maximising the 2019 task 1c score: mean of the known-class
    macro accuracy and the unknown-class accuracy. Returns (weight, score)."""
    classes = [str(i) for i in range(np.shape(probs)[-1])]
    return tune_weight(probs, y_true, classes, OpenSetRule(classes[unknown_index], 1.0), weights)
