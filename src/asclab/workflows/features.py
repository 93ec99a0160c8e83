"""Build a recipe's feature caches ahead of training: the ``asclab features`` workflow."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from asclab.config import (
    load_config,
)
from asclab.data.open import open_data
from asclab.data.validation import (
    ValidationSpec,
    carve_validation,
)
from asclab.errors import AsclabError
from asclab.train.data import (
    feature_cache,
    needs_waveforms,
    readable_records,
    select_training_records,
)


def build_features(recipe_name: str | Path | dict, data_dir: str | Path, *, overrides: list[str] | None = None,
                   cache_dir: Path | None = None, workers: int = 1, shard_size: int | None = None,
                   verify: bool = False, progress: bool = True) -> list[dict]:
    """Compute the feature caches ``asclab train`` would use for this recipe and data
    (training and test split), in ``workers`` processes and shards of ``shard_size``
    clips; an interrupted build resumes. One row per cache."""
    recipe, cfg = load_config(recipe_name, overrides)
    if needs_waveforms(cfg):
        raise AsclabError(f"recipe {cfg.name!r} computes features on the fly (waveform augmentation "
                          "or train.cache_features: false); there is no cache to build")
    index = open_data(data_dir, cfg.data)
    seed = cfg.train.seed
    train, carved = list(index.train), []
    validation = ValidationSpec.from_config(cfg.data.validation)
    if validation is not None:  # the same split train_run carves
        train, carved = carve_validation(train, validation, seed)
    test = [r for r in index.test if r.label is not None]
    if cfg.data.on_error == "skip":  # as train does: unreadable audio counted, reported, left out
        duration, rate = cfg.data.duration, cfg.data.expect_rate
        (train, bad), (carved, bad_val), (test, bad_test) = (readable_records(x, duration, rate)
                                                             for x in (train, carved, test))
        for _, why in bad + bad_val + bad_test:
            print(f"skipped {why}", file=sys.stderr)
        if bad + bad_val + bad_test:
            print(f"skipped {len(bad + bad_val + bad_test)} unreadable file(s)", file=sys.stderr)
    splits = {"train": select_training_records(train, cfg, seed), "validation": carved, "test": test}
    rows = []
    for split, records in splits.items():
        if not records:
            continue
        t0 = time.time()
        cache = feature_cache(records, cfg, cache_dir, progress, workers=workers, shard_size=shard_size,
                              verify=verify)
        rep = cache.report
        rows.append({"split": split, "path": str(cache.path), "clips": len(records),
                     "shards_computed": len(rep.computed) if rep else 0,
                     "shards_reused": len(rep.reused) if rep else 0,
                     "shards_damaged": len(rep.damaged) if rep else 0,
                     "up_to_date": rep is None, "seconds": round(time.time() - t0, 1)})
    return rows
