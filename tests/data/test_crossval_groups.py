"""``asclab crossval --folds K --group-by identifier`` on a tiny TUT-layout folder (class ``cafe/restaurant``)."""
import csv
import json

import pytest
import yaml

from asclab.cli import main

from test_data_tut import write_tut

pytestmark = pytest.mark.slow


def test_crossval_by_recording_on_tut_layout(tmp_path, capsys):
    data = tmp_path / "tut"
    lines = write_tut(data, recordings_per_class=2, clips_per_recording=2, sample_rate=32000, seconds=1.0)
    out = tmp_path / "cv"
    rc = main(["crossval", "quickstart", "--data", str(data), "--out", str(out), "--folds", "2",
               "--group-by", "identifier", "--quiet", "--set", "train.epochs=1", "--set", "train.batch_size=8"])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((out / "crossval.json").read_text())
    assert summary["folds"] == [1, 2] and summary["group_folds"] == {"folds": 2, "by": "identifier", "seed": 0}  # the typed block, seed included
    assert "cafe/restaurant" in summary["classes"]
    assert sum(f["n_test"] for f in summary["per_fold"]) == len(lines)  # every clip tested exactly once
    assert sum(f["test_recordings"] for f in summary["per_fold"]) == 6
    with (out / "folds.tsv").open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert len(rows) == len(lines)
    fold_of: dict[str, set] = {}
    for r in rows:
        fold_of.setdefault(r["identifier"], set()).add(r["fold"])
    assert all(len(f) == 1 for f in fold_of.values())  # no recording on both sides of any fold
    recipe = yaml.safe_load((out / "fold2" / "recipe.yaml").read_text())
    assert recipe["data"]["group_folds"] == {"folds": 2, "by": "identifier"} and recipe["data"]["test_fold"] == 2
    metrics = json.loads((out / "fold1" / "metrics.json").read_text())
    assert "cafe/restaurant" in metrics["per_class_accuracy"]
    # predictions name the class, slash included, in a CSV cell (never as a path)
    rc = main(["predict", str(out / "fold1" / "model.ckpt"), str(data / "audio"), "--csv", str(tmp_path / "p.csv")])
    assert rc == 0
    with (tmp_path / "p.csv").open() as fh:
        header = next(csv.reader(fh))
    assert any("cafe/restaurant" in h for h in header)


def test_group_by_needs_the_number_of_folds(tmp_path, capsys):
    data = tmp_path / "tut"
    write_tut(data, audio=False)
    rc = main(["crossval", "quickstart", "--data", str(data), "--out", str(tmp_path / "cv"), "--group-by", "identifier"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--folds K" in err and err.count("\n") == 1
