"""The data set a recipe's ``data`` block names: split, folds, class map, classes, skip policy
and path checks, read from the typed block (``asclab.config.DataConfig``) the caller holds."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from asclab.data.index import declared_classes, open_dataset, single_clip_classes


def group_folds_mapping(g: Any) -> dict | None:
    """``data.group_folds`` (typed) as the mapping ``asclab.data.group_folds`` reads."""
    return None if g is None else {"folds": g.folds, "by": g.by, "seed": g.seed}


def open_data(data_dir: str | Path, d: Any):
    """The data set of a recipe's typed ``data`` block ``d`` (a ``DataConfig``); a manifest or
    class-folder set whose classes come from its labels says which classes rest on one clip."""
    index = open_dataset(data_dir, split=d.split, test_fold=d.test_fold, class_map=d.class_map,
                         on_error=d.on_error, group_folds=group_folds_mapping(d.group_folds),
                         allow_outside=d.allow_outside, classes=d.classes)
    if index.layout in ("manifest", "folders") and d.classes is None and declared_classes(index.root) is None:
        singles = single_clip_classes(index.records)  # classes from the labels: say which rest on one clip
        if singles:
            print(f"note: {len(singles)} class(es) with a single clip: {', '.join(singles[:10])}", file=sys.stderr)
    return index
