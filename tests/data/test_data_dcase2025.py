"""The DCASE 2025 development split: split25 for training, test.csv for testing, device ids required."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from asclab.data import open_dataset
from asclab.data.dcase2025 import read_dcase2025
from asclab.errors import DataError
from conftest import shared_data

TRAIN = ["audio/airport-lisbon-1000-40000-0-a.wav", "audio/bus-lyon-1001-40001-3-s2.wav"]
TEST = ["audio/park-paris-1002-40002-1-s5.wav", "audio/tram-vienna-1003-40003-0-b.wav"]


def make_root(tmp_path, train=TRAIN, test=TEST, meta_devices: dict[str, str] | None = None):
    root = tmp_path / "tau2022"
    (root / "audio").mkdir(parents=True)
    (root / "split_setup").mkdir()
    for name in train + test + ["audio/metro-paris-1004-40004-0-c.wav"]:
        sf.write(root / name, np.zeros(320, np.float32), 32000)
    for fname, files in (("split25.csv", train), ("split10.csv", train[:1]), ("test.csv", test)):
        rows = [f"{f}\t{f.split('/')[-1].split('-')[0]}" for f in files]
        (root / "split_setup" / fname).write_text("filename\tscene_label\n" + "\n".join(rows) + "\n")
    if meta_devices is not None:
        rows = [f"{f}\t{f.split('/')[-1].split('-')[0]}\tx-1\t{meta_devices.get(f, f.rsplit('-', 1)[1][:-4])}"
                for f in train + test]
        (root / "meta.csv").write_text("filename\tscene_label\tidentifier\tsource_label\n" + "\n".join(rows) + "\n")
    return root


def test_reads_split25_and_test_with_device_ids(tmp_path):
    index = open_dataset(make_root(tmp_path), split="dcase2025")
    assert index.layout == "dcase2025" and index.split == "split25"
    assert [(r.extra["filename"], r.device) for r in index.train] == [(TRAIN[0], "a"), (TRAIN[1], "s2")]
    assert [(r.extra["filename"], r.device) for r in index.test] == [(TEST[0], "s5"), (TEST[1], "b")]
    # the same folder read as DCASE 2024 chooses the largest split by default
    assert open_dataset(make_root(tmp_path / "other"), split="split10").layout == "dcase2024"


def test_meta_device_disagreeing_with_the_file_name_is_an_error(tmp_path):
    root = make_root(tmp_path, meta_devices={TRAIN[1]: "s3"})
    with pytest.raises(DataError, match=r"split25\.csv: row 3: .*meta.csv gives device 's3', the file name says 's2'"):
        open_dataset(root, split="dcase2025")
    kept = read_dcase2025(root, on_error="skip", skipped=(skipped := []))
    assert len(kept) == 3 and len(skipped) == 1


def test_a_clip_without_device_id_is_an_error(tmp_path):
    root = make_root(tmp_path, train=TRAIN + ["audio/odd_name.wav"])
    (root / "audio" / "odd_name.wav").write_bytes((root / TRAIN[0]).read_bytes())
    with pytest.raises(DataError, match=r"row 4: audio/odd_name.wav: no device id"):
        open_dataset(root, split="dcase2025")


def test_real_dcase2025_split_files():
    root = shared_data("tau-meta", "dcase2024-splits")
    recs = read_dcase2025(root)
    train = Counter(r.device for r in recs if r.split == "train")
    test = Counter(r.device for r in recs if r.split == "test")
    assert sorted(train) == ["a", "b", "c", "s1", "s2", "s3"]  # s4-s6 never in training
    assert sorted(test) == ["a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert sum(train.values()) == 34900 and sum(test.values()) == 29680
