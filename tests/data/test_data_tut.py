"""The TUT 2016/2017 reader (meta.txt, evaluation_setup/foldK_*.txt) and recording-wise folds."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asclab.data.describe import describe
from asclab.data.group_folds import assign_group_folds
from asclab.data.index import detect_layout, open_dataset
from asclab.data.records import Record
from asclab.data.tut import read_tut, recording_of
from asclab.errors import ConfigError, DataError

from conftest import shared_data

CLASSES = ("beach", "cafe/restaurant", "home")


def write_tut(root: Path, *, recordings_per_class: int = 4, clips_per_recording: int = 2,
              sample_rate: int = 16000, seconds: float = 0.25, audio: bool = True) -> list[str]:
    """A tiny TUT-layout folder; returns the meta.txt lines."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    n = 0
    for c, label in enumerate(CLASSES):
        for r in range(recordings_per_class):
            n += 1
            rec = f"{'abc'[c]}{n:03d}"
            for k in range(clips_per_recording):
                name = f"audio/{rec}_{10 * k}_{10 * k + 10}.wav"
                if audio:
                    y = 0.1 * rng.standard_normal(int(sample_rate * seconds)).astype(np.float32)
                    sf.write(root / name, y, sample_rate)
                lines.append(f"{name}\t{label}\t{rec}")
    (root / "meta.txt").write_text("\n".join(lines) + "\n")
    return lines


def test_tiny_tut_layout_is_read(tmp_path):
    lines = write_tut(tmp_path)
    assert detect_layout(tmp_path) == "tut"
    index = open_dataset(tmp_path)
    assert index.layout == "tut" and len(index.records) == len(lines) == 24
    assert index.classes == sorted(CLASSES)
    rec = index.records[0]
    assert rec.identifier == "a001" and rec.label == "beach" and rec.fold is None
    assert rec.path == (tmp_path / "audio" / "a001_0_10.wav").absolute()
    assert index.summary()["recordings"] == 12
    text = describe(index)
    assert "24 in 3 classes from 12 recordings" in text and "cafe/restaurant" in text


def test_recording_column_may_be_absent(tmp_path):
    (tmp_path / "meta.txt").write_text("audio/b020_90_100.wav\tbeach\naudio/b020_0_10.wav\tbeach\n")
    recs = read_tut(tmp_path)
    assert [r.identifier for r in recs] == ["b020", "b020"]
    assert recording_of("audio/a001_10_20.flac") == "a001"


@pytest.mark.parametrize("line, why", [
    ("audio/x.wav beach a001", "expected 2-3 TAB-separated fields"),
    ("audio/x.wav\tbeach\ta001\textra", "got 4"),
    ("audio/x.wav\t\ta001", "empty field"),
])
def test_bad_meta_line_names_file_and_row(tmp_path, line, why):
    (tmp_path / "meta.txt").write_text(f"audio/ok.wav\tbeach\ta000\n\n{line}\n")
    with pytest.raises(DataError) as e:
        read_tut(tmp_path)
    msg = str(e.value)
    assert "meta.txt: row 3: " in msg and why in msg and "\n" not in msg
    skipped = []
    assert len(read_tut(tmp_path, on_error="skip", skipped=skipped)) == 1 and skipped[0][1] == 3


def test_duplicate_and_missing_audio(tmp_path):
    lines = write_tut(tmp_path, recordings_per_class=1, clips_per_recording=1)
    (tmp_path / "meta.txt").write_text("\n".join(lines + lines[:1]) + "\n")
    with pytest.raises(DataError, match=r"row 4: duplicate entry for audio/a001_0_10.wav \(first at row 1\)"):
        read_tut(tmp_path)
    (tmp_path / "meta.txt").write_text("\n".join(lines) + "\naudio/gone.wav\thome\tz9\n")
    with pytest.raises(DataError, match="row 4: listed audio file audio/gone.wav not found"):
        open_dataset(tmp_path)


def test_official_folds_from_evaluation_setup(tmp_path):
    lines = write_tut(tmp_path, audio=False)
    setup = tmp_path / "evaluation_setup"
    setup.mkdir()
    files = [ln.split("\t") for ln in lines]
    by_fold: dict[int, list[list[str]]] = {1: [], 2: []}
    for f in files:
        by_fold[1 + int(f[2][1:]) % 2].append(f)
    for k, held in by_fold.items():
        (setup / f"fold{k}_evaluate.txt").write_text("".join(f"{f[0]}\t{f[1]}\n" for f in held))
        (setup / f"fold{k}_test.txt").write_text("".join(f"{f[0]}\n" for f in held))
        train = by_fold[3 - k]
        (setup / f"fold{k}_train.txt").write_text("".join(f"{f[0]}\t{f[1]}\n" for f in train))
    index = open_dataset(tmp_path, check_files=False, test_fold=2)
    assert Counter(r.fold for r in index.records) == {1: 12, 2: 12}
    assert {r.identifier for r in index.train}.isdisjoint({r.identifier for r in index.test})
    # a clip held out by fold 1 that is also in fold 1's training list is refused
    with (setup / "fold1_train.txt").open("a") as fh:
        fh.write(f"{by_fold[1][0][0]}\t{by_fold[1][0][1]}\n")
    with pytest.raises(DataError, match="fold1_evaluate.txt: row 1: .* is also in fold1_train.txt"):
        read_tut(tmp_path)


def test_evaluate_label_must_agree_with_meta(tmp_path):
    write_tut(tmp_path, recordings_per_class=1, clips_per_recording=1, audio=False)
    (tmp_path / "evaluation_setup").mkdir()
    (tmp_path / "evaluation_setup" / "fold1_evaluate.txt").write_text("audio/a001_0_10.wav\thome\n")
    with pytest.raises(DataError, match="label 'home' of audio/a001_0_10.wav disagrees with 'beach'"):
        read_tut(tmp_path)


def _records(groups: dict[str, tuple[str, int]]) -> list[Record]:
    return [Record(path=Path(f"/x/{g}_{i}.wav"), label=label, identifier=g)
            for g, (label, n) in groups.items() for i in range(n)]


def test_group_folds_keep_recordings_whole_and_stratify():
    rng = np.random.default_rng(1)
    groups = {f"r{i:03d}": (f"class{i % 5}", int(rng.integers(1, 6))) for i in range(60)}
    records = _records(groups)
    out = assign_group_folds(records, 4)
    assert [r.path for r in out] == [r.path for r in records]  # order and other fields kept
    fold_of: dict[str, set] = {}
    for r in out:
        fold_of.setdefault(r.identifier, set()).add(r.fold)
    assert all(len(f) == 1 for f in fold_of.values())  # no recording in two folds
    assert {r.fold for r in out} == {1, 2, 3, 4}
    for c in range(5):  # per class, the folds differ by at most one recording's worth of clips
        per = Counter(r.fold for r in out if r.label == f"class{c}")
        assert max(per.values()) - min(per.values()) <= 5
    assert [r.fold for r in assign_group_folds(records, 4)] == [r.fold for r in out]  # deterministic
    assert [r.fold for r in assign_group_folds(list(reversed(records)), 4)] == [r.fold for r in reversed(out)]
    assert [r.fold for r in assign_group_folds(records, 4, seed=1)] != [r.fold for r in out]


def test_group_folds_errors():
    records = _records({"a": ("x", 2), "b": ("y", 2)})
    with pytest.raises(DataError, match="3 folds by identifier need at least 3 groups; the data set has 2"):
        assign_group_folds(records, 3)
    with pytest.raises(ConfigError, match="integer >= 2"):
        assign_group_folds(records, 1)
    with pytest.raises(ConfigError, match="choose one of"):
        assign_group_folds(records, 2, by="label")
    with pytest.raises(DataError, match="has no city; cannot group folds by city"):
        assign_group_folds(records, 2, by="city")


def test_real_tut2017_reads_and_folds_by_recording():
    root = shared_data("tut2017")
    index = open_dataset(root)
    assert index.layout == "tut" and len(index.records) == 324 and len(index.classes) == 15
    assert "cafe/restaurant" in index.classes and index.summary()["recordings"] == 120
    assert "324 in 15 classes from 120 recordings" in describe(index)
    folded = open_dataset(root, group_folds={"folds": 4, "by": "identifier"}, test_fold=3)
    assert {r.identifier for r in folded.train}.isdisjoint({r.identifier for r in folded.test})
    sizes = Counter(r.fold for r in folded.records)
    assert sorted(sizes) == [1, 2, 3, 4] and sum(sizes.values()) == 324 and max(sizes.values()) - min(sizes.values()) <= 6
    for label in folded.classes:  # 8 recordings a class: every fold tests every class
        assert {r.fold for r in folded.records if r.label == label} == {1, 2, 3, 4}
