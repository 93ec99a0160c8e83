"""Training with a broken audio file: a one-line error naming it, or (on_error=skip)
a counted, reported skip; never a silent loss."""
import json

import pytest

from asclab.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture()
def broken_set(tmp_path):
    from asclab.data.synth import make_synthetic_dataset

    root = tmp_path / "synth"
    index = make_synthetic_dataset(root, n_per_class_device=1, n_test_per_class_device=1, seconds=1.0,
                                   sample_rate=16000, seed=3)
    victim = index.train[0].path
    victim.write_bytes(victim.read_bytes()[:200])  # truncated WAV
    return root, victim


def test_broken_file_stops_training_with_its_name(broken_set, tmp_path, capsys):
    root, victim = broken_set
    rc = main(["train", "quickstart", "--data", str(root), "--out", str(tmp_path / "run"), "--quiet",
               "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and victim.name in err and err.count("\n") == 1


def test_broken_file_is_skipped_counted_and_reported(broken_set, tmp_path, capsys):
    root, victim = broken_set
    rc = main(["train", "quickstart", "--data", str(root), "--out", str(tmp_path / "run"), "--quiet",
               "--epochs", "1", "--set", "data.on_error=skip", "--set", "train.batch_size=8"])
    assert rc == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [s["file"] for s in summary["skipped"]] == [str(victim)]
    assert "skipped 1 unreadable file" in capsys.readouterr().err
