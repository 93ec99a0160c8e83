"""``asclab crossval`` on a tiny SYNTHETIC set given 2 folds through a CSV manifest."""
import csv
import json

import pytest

from asclab.cli import main

pytestmark = pytest.mark.slow


def _two_fold_manifest(tmp_path):
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
    return manifest, rows


def test_crossval_two_folds(tmp_path):
    manifest, rows = _two_fold_manifest(tmp_path)
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


def test_crossval_with_seeds_trains_every_fold_per_seed_and_reports_the_spread(tmp_path, capsys):
    import yaml

    manifest, rows = _two_fold_manifest(tmp_path)
    out = tmp_path / "cv"
    rc = main(["crossval", "quickstart", "--data", str(manifest), "--out", str(out), "--folds", "2",
               "--seeds", "0,3", "--quiet", "--set", "train.epochs=1", "--set", "train.batch_size=8"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "each the mean of 2 seeds" in printed and "seeds " in printed
    summary = json.loads((out / "crossval.json").read_text())
    assert summary["seeds"] == [0, 3] and len(summary["per_run"]) == 4
    for fold in (1, 2):
        runs = [r for r in summary["per_run"] if r["fold"] == fold]
        assert sorted(r["seed"] for r in runs) == [0, 3]
        row = next(f for f in summary["per_fold"] if f["fold"] == fold)
        assert row["accuracy"] == pytest.approx(sum(r["accuracy"] for r in runs) / 2)
        assert row["per_seed_accuracy"] == [r["accuracy"] for r in runs]
        for seed in (0, 3):
            recipe = yaml.safe_load((out / f"fold{fold}" / f"seed{seed}" / "recipe.yaml").read_text())
            assert recipe["train"]["seed"] == seed and recipe["data"]["test_fold"] == fold
    assert summary["accuracy"]["mean"] == pytest.approx(sum(f["accuracy"] for f in summary["per_fold"]) / 2)
    assert sum(map(sum, summary["confusion"])) == 2 * len(rows)  # every clip tested once per seed


@pytest.mark.parametrize("seeds", ["0,x", "1,1", "-1", ","])
def test_crossval_bad_seeds_are_one_line_errors(tmp_path, capsys, seeds):
    manifest, _ = _two_fold_manifest(tmp_path)
    rc = main(["crossval", "quickstart", "--data", str(manifest), "--out", str(tmp_path / "cv"), f"--seeds={seeds}"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("asclab: error: --seeds") and err.count("\n") == 1
    assert not (tmp_path / "cv").exists()
