"""The README's first command: synthesise data, train the quickstart recipe, evaluate, predict."""
from __future__ import annotations

import time
from pathlib import Path

from asclab.config import (
    load_config,
)
from asclab.data.open import open_data
from asclab.data.records import Record
from asclab.data.synth import make_synthetic_dataset
from asclab.workflows.predict import predict_files
from asclab.workflows.train import train_run


def run_demo(out_dir: str | Path = "demo_out", *, epochs: int | None = None, per_cell: int = 20,
             progress: bool = True) -> dict:
    """The README's first command: synthesise the SYNTHETIC scene set, train the
    quickstart recipe (CP-Mobile) for a few CPU minutes, evaluate, predict."""
    out = Path(out_dir)
    data = out / "synthetic_data"
    t0 = time.time()
    if not (data / "meta.csv").exists():
        print(f"[1/4] writing the SYNTHETIC scene set to {data}")
        kwargs = {"n_per_class_device": per_cell} if per_cell else {}
        make_synthetic_dataset(data, seconds=1.0, sample_rate=32000, seed=0, **kwargs)
    else:
        print(f"[1/4] reusing the SYNTHETIC scene set in {data}")
    print("[2/4] training recipe 'quickstart' (CP-Mobile, 1 s clips; the last epoch's weights are kept)")
    overrides = [f"train.epochs={epochs}"] if epochs else []
    summary = train_run("quickstart", data, out / "run", overrides=overrides, cache_dir=out / "cache",
                        progress=progress, force=True)
    print("[3/4] evaluation on the synthetic test split (unseen devices s4-s6 included)")
    print(summary["metrics"]["text"])
    print(f"weights: {summary['weights']} (no epoch is chosen on the test split)")
    print("[4/4] predicting one test clip per class")
    index = open_data(data, load_config("quickstart")[1].data)
    clips = demo_clips(index.test, index.classes)
    rows = predict_files(out / "run" / "model.ckpt", [r.path for r in clips], progress=False)
    for row, rec in zip(rows, clips):
        mark = "ok" if row["label"] == rec.label else "--"
        print(f"  {mark} {Path(row['file']).name:<42} device {rec.device or '-':<3} true {rec.label:<18} "
              f"predicted {row['label']}")
    right = sum(row["label"] == rec.label for row, rec in zip(rows, clips))
    print(f"  {right} of {len(clips)} right here; macro accuracy over all {summary['metrics']['n']} test clips "
          f"{summary['metrics']['macro_accuracy']:.3f}")
    total = time.time() - t0
    run = out / "run"
    print(f"\ndone in {total:.0f} s. Macro accuracy on the synthetic test split: "
          f"{summary['metrics']['macro_accuracy']:.3f} (chance 0.100), weights: {summary['weights']}")
    print(f"  model:            {run / 'model.ckpt'}")
    print(f"  metrics:          {run / 'metrics.json'}")
    print(f"  confusion matrix: {run / 'confusion.png'}")
    print(f"  per-device plot:  {run / 'per_device.png'}")
    print(f"  training log:     {run / 'logs' / 'metrics.csv'} and {run / 'training_curves.png'}")
    print(f"next: asclab predict {run / 'model.ckpt'} YOUR_RECORDING.wav")
    return {**summary, "demo_seconds": round(total, 1)}


def demo_clips(test: list[Record], classes: list[str]) -> list[Record]:
    """One test clip per class, the devices taken in turn (seen and unseen), the first such clip
    in the data set's order; a class without a clip on its turn's device takes its first clip."""
    devices = sorted({r.device for r in test if r.device is not None})
    picks = []
    for k, label in enumerate(classes):
        of_class = [r for r in test if r.label == label]
        if not of_class:
            continue
        turn = devices[k % len(devices)] if devices else None
        picks.append(next((r for r in of_class if r.device == turn), of_class[0]))
    return picks
