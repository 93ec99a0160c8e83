"""Grouping clips by recording device, the one place it is done (DCASE 2025 task 1, where the
device id is known at test time and each device may have a model of its own).

A device container (``asclab.models.device_container``) routes the clips of a batch with it,
and ``asclab.evaluate.inference.Predictor`` groups files by device with it (``asclab submit``,
the DCASE API). Needs no torch (the torch-free ONNX predictor imports ``asclab.data``).
"""
from __future__ import annotations

from typing import Collection, Hashable, Sequence


def group_by_device(device_ids: Sequence[Hashable | None],
                    own: Collection[str] | None = None) -> dict[Hashable | None, list[int]]:
    """Positions of ``device_ids`` by group, groups in order of first appearance, positions in order.

    Without ``own`` every distinct id is a group. With ``own`` (the ids that have a model of
    their own) an id is a group only if it is one of them (as ``str``); every other id, and
    None, falls into the general model's group, keyed None."""
    groups: dict[Hashable | None, list[int]] = {}
    for i, d in enumerate(device_ids):
        if own is not None:
            d = str(d) if d is not None and str(d) in own else None
        groups.setdefault(d, []).append(i)
    return groups
