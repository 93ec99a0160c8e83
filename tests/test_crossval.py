"""``asclab crossval`` on a tiny SYNTHETIC set given 2 folds through a CSV manifest."""
import csv
import json

import pytest

from asclab.cli import main

pytestmark = pytest.mark.slow


def test_crossval_two_folds(tmp_path):
    from asclab.data.synth import make_synthetic_dataset

    index = make_synthetic_dataset(tmp_path / "synth", n_per_class_device=1, n_test_per_class_device=1,
                                   seconds=1.0, sample_rate=32000, seed=2)
    rows = [r for r in index.records if r.device in ("a", "b", "c")]
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "device", "fold"])
        for i, r in enumerate(sorted(rows, key=lambda r: str(r.path))):
            w.writerow([r.path.relative_to(manifest.parent), r.label, r.device, 1 + i % 2])
    out = tmp_path / "cv"
    rc = main(["crossval", "quickstart", "--data", str(manifest), "--out", str(out), "--folds", "2",
               "--quiet", "--set", "train.epochs=1", "--set", "train.batch_size=8"])
    assert rc == 0
    summary = json.loads((out / "crossval.json").read_text())
    assert summary["folds"] == [1, 2] and len(summary["per_fold"]) == 2
    accs = [f["accuracy"] for f in summary["per_fold"]]
    assert summary["accuracy"]["mean"] == pytest.approx(sum(accs) / 2)
    n_total = sum(f["n_test"] for f in summary["per_fold"])
    assert n_total == len(rows)  # every clip is tested exactly once
    assert sum(map(sum, summary["confusion"])) == len(rows)
    assert (out / "confusion_sum.png").stat().st_size > 1000
    assert (out / "fold1" / "metrics.json").exists() and (out / "fold2" / "model.ckpt").exists()
    # the held-out fold never picks the epoch: the last epoch's weights are kept
    import yaml
    assert yaml.safe_load((out / "fold1" / "recipe.yaml").read_text())["train"]["keep"] == "last"


def test_crossval_without_folds_is_a_clear_error(tmp_path, capsys):
    from asclab.data.synth import make_synthetic_dataset

    make_synthetic_dataset(tmp_path / "synth", n_per_class_device=1, n_test_per_class_device=1,
                           seconds=1.0, sample_rate=32000, seed=2)
    rc = main(["crossval", "quickstart", "--data", str(tmp_path / "synth"), "--out", str(tmp_path / "cv")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "defines no folds" in err and "\n" == err[-1] and err.count("\n") == 1
