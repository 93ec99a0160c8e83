"""``asclab soup``: average the weights of fine-tunes of one model (model soups, Wortsman et
al. 2022; the averaged checkpoints of the DCASE 2025 systems, e.g. Li_NTU 2025).

Fine-tunes that start from the same weights (``asclab finetune`` of one imported model, several
seeds or recipes) stay in one basin, so their weights can be averaged into one model of the same
size and cost. ``uniform``: every member's float tensors averaged (BatchNorm statistics too; the
integer step counters are the first member's). ``greedy`` (Wortsman et al. 2022, sec. 3): the
members ranked by accuracy on a *validation* data set, each added to the soup only if the soup's
accuracy there does not drop; the validation data must not be the data the soup is reported on.
The members must share architecture, classes and front end (refused in one line otherwise). The
soup's model file is the first member's with the averaged weights, and its ancestry records the
members (file and sha256).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

import torch

from asclab.data.teacher_file import file_sha256
from asclab.errors import ConfigError
from asclab.train.checkpoint import ModelFile, load_model_file, resolve_checkpoint, save_model_file
from asclab.workflows.evaluate import evaluate_run


def average_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of each floating tensor over ``states`` (computed in float32, stored in the first
    state's dtype); other tensors (step counters) from the first state."""
    first = states[0]
    out = {}
    for k, v in first.items():
        if v.is_floating_point():
            out[k] = (sum(s[k].float() for s in states) / len(states)).to(v.dtype)
        else:
            out[k] = v.clone()
    return out


def _members(paths: Sequence[str | Path]) -> list[tuple[Path, ModelFile]]:
    if len(paths) < 2:
        raise ConfigError("soup needs at least two model files")
    members = [(p, load_model_file(p)) for p in (resolve_checkpoint(x) for x in paths)]
    p0, m0 = members[0]
    for p, m in members[1:]:
        for what, a, b in (("architecture", m0.model, m.model), ("classes", m0.classes, m.classes),
                           ("front end", m0.features, m.features)):
            if a != b:
                raise ConfigError(f"{p}: its {what} differs from {p0}'s; a soup averages fine-tunes of one model")
        if set(m.state_dict) != set(m0.state_dict) or any(
                tuple(m.state_dict[k].shape) != tuple(v.shape) for k, v in m0.state_dict.items()):
            raise ConfigError(f"{p}: its tensors differ from {p0}'s in names or shapes")
    return members


def _write(members: list[tuple[Path, ModelFile]], out: Path, kind: str) -> Path:
    first = members[0][1]  # replaced fields only: the members' own states stay as read
    extra = {**(first.extra or {}), "ancestry": list((first.extra or {}).get("ancestry") or []) + [
        {"soup": kind, "members": [{"file": str(p), "sha256": file_sha256(p)} for p, _ in members]}]}
    return save_model_file(replace(first, state_dict=average_states([m.state_dict for _, m in members]),
                                   extra=extra), out)


def _accuracy(path: Path, data_dir: Path) -> float:
    return float(evaluate_run(path, data_dir, progress=False)["accuracy"])


def make_soup(models: Sequence[str | Path], out: str | Path, *, greedy_on: str | Path | None = None) -> dict:
    """Write the uniform soup of ``models`` to ``out``, or the greedy one chosen on the test split of
    validation data ``greedy_on``; what went in and, for greedy, each step's validation accuracy."""
    members, out = _members(models), Path(out)
    if greedy_on is None:
        _write(members, out, "uniform")
        return {"out": str(out), "kind": "uniform", "members": [str(p) for p, _ in members]}
    val = Path(greedy_on)
    scored = sorted(((_accuracy(p, val), p, m) for p, m in members), key=lambda t: -t[0])
    chosen, best, steps = [(scored[0][1], scored[0][2])], scored[0][0], []
    for acc, p, m in scored[1:]:
        _write(chosen + [(p, m)], out, "greedy")
        trial = _accuracy(out, val)
        steps.append({"member": str(p), "alone": acc, "soup_with_it": trial, "kept": trial >= best})
        if trial >= best:
            chosen.append((p, m))
            best = trial
    _write(chosen, out, "greedy")
    return {"out": str(out), "kind": "greedy", "members": [str(p) for p, _ in chosen],
            "validation": str(val), "validation_accuracy": best, "best_single": scored[0][0], "steps": steps}
