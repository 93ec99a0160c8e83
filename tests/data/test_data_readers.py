"""Metadata readers: the real TAU/DCASE metadata, ESC-10, and every malformed-input case."""
from __future__ import annotations

import string
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asclab.data.classmaps import TASK1B_3CLASS, TAU_SCENES
from asclab.data.dcase2024 import available_splits, read_dcase2024, resolve_split
from asclab.data.folders import read_class_folders
from asclab.data.index import detect_layout, open_dataset
from asclab.data.manifest import read_manifest
from asclab.data.names import parse_tau_name
from asclab.data.tables import write_table
from asclab.data.tau import read_fold_list, read_tau, read_tau_meta
from asclab.errors import AsclabError, ConfigError, DataError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
META = SHARED / "tau-meta"
ESC10 = SHARED / "esc10"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real test data not found at {SHARED}")

TAU_CITIES = {"barcelona", "helsinki", "lisbon", "london", "lyon", "milan", "paris", "prague", "stockholm", "vienna"}
TRAIN_DEVICES = {"a", "b", "c", "s1", "s2", "s3"}


def _check_name_consistency(records):
    """Device and city of every record agree with its TAU file name."""
    for r in records:
        name = parse_tau_name(r.path.name)
        assert name is not None and name.device == r.device and name.city == r.city and name.scene in TAU_SCENES


# ---- real metadata ----------------------------------------------------------------------------


@needs_shared
def test_tau2019_meta():
    recs = read_tau_meta(META / "tau2019-development" / "meta.csv")
    assert len(recs) == 14400
    assert {r.device for r in recs} == {"a"}
    assert {r.city for r in recs} == TAU_CITIES
    assert Counter(r.label for r in recs) == {s: 1440 for s in TAU_SCENES}
    assert all(r.split is None and r.identifier.startswith(r.city + "-") for r in recs)
    assert recs[0].path.name == "airport-lisbon-1000-40000-a.wav" and recs[0].extra["row"] == 2
    _check_name_consistency(recs)


@needs_shared
def test_tau2019_fold_and_dataset():
    root = META / "tau2019-development"
    evaluate = read_fold_list(root / "evaluation_setup" / "fold1_evaluate.csv", split="test")
    assert len(evaluate) == 4185
    ix = open_dataset(root, check_files=False)
    assert ix.layout == "tau" and len(ix.records) == 14400
    assert len(ix.test) == 4185 and ix.train == []  # this copy has no fold1_train.csv
    assert ix.summary()["splits"] == {"test": 4185, "unassigned": 14400 - 4185}
    by_path = {r.path: r for r in ix.records}
    # split comes from fold1_evaluate, label/device/city from meta.csv, and they agree
    for r in evaluate:
        assert by_path[r.path].split == "test" and by_path[r.path].label == r.label
    assert ix.classes == sorted(TAU_SCENES)


@needs_shared
def test_tau2019_three_class_map():
    ix = open_dataset(META / "tau2019-development", check_files=False, class_map=TASK1B_3CLASS)
    assert ix.classes == ["indoor", "outdoor", "transportation"]
    assert ix.summary()["classes"] == {"indoor": 3 * 1440, "outdoor": 4 * 1440, "transportation": 3 * 1440}
    named = open_dataset(META / "tau2019-development", check_files=False, class_map="task1b_3class")
    assert [r.label for r in named.records] == [r.label for r in ix.records]


@needs_shared
def test_tau2020_three_class_train_list():
    root = META / "tau2020-3class"
    recs = read_tau(root)
    assert len(recs) == 9185 and {r.split for r in recs} == {"train"}
    assert Counter(r.label for r in recs) == {"indoor": 2704, "outdoor": 3757, "transportation": 2724}
    assert {r.device for r in recs} == {"a"}
    assert {r.city for r in recs} == TAU_CITIES - {"milan"}
    # the 3-class labels agree with the 10-class scene in the file name under TASK1B_3CLASS
    assert all(TASK1B_3CLASS[parse_tau_name(r.path.name).scene] == r.label for r in recs)
    ix = open_dataset(root, check_files=False, class_map=TASK1B_3CLASS)  # targets map to themselves
    assert len(ix.train) == 9185 and ix.test == []


@needs_shared
@pytest.mark.parametrize("split,n_train", [("split5", 6980), ("split10", 13960), (None, 34900)])
def test_dcase2024_splits(split, n_train):
    root = META / "dcase2024-splits"
    ix = open_dataset(root, split=split, check_files=False)
    assert ix.layout == "dcase2024" and ix.split == (split or "split25")  # default: the largest present
    assert len(ix.train) == n_train and len(ix.test) == 29680
    assert {r.device for r in ix.train} == TRAIN_DEVICES
    assert {r.device for r in ix.test} == TRAIN_DEVICES | {"s4", "s5", "s6"}
    assert {r.city for r in ix.train} == TAU_CITIES and {r.city for r in ix.test} == TAU_CITIES
    assert set(ix.classes) == set(TAU_SCENES)
    assert not any("\r" in (r.label or "") for r in ix.records)  # test.csv has CRLF line ends
    assert all(r.extra["segment"].count("-") == 1 for r in ix.records)  # TAU 2022 1 s pieces
    assert not {r.path for r in ix.train} & {r.path for r in ix.test}
    _check_name_consistency(ix.records)


@needs_shared
def test_dcase2024_split_names():
    root = META / "dcase2024-splits"
    assert list(available_splits(root)) == ["split5", "split10", "split25"]
    assert resolve_split(root, "25")[0] == resolve_split(root, 25)[0] == resolve_split(root, "25%")[0] == "split25"
    with pytest.raises(ConfigError, match="split50"):
        open_dataset(root, split="split50", check_files=False)


@needs_shared
def test_esc10_tree():
    ix = open_dataset(ESC10, test_fold=1)
    assert ix.layout == "folders" and len(ix.records) == 400
    assert Counter(r.fold for r in ix.records) == {k: 80 for k in range(1, 6)}
    assert Counter(r.label for r in ix.records) == {c: 40 for c in ix.classes}
    assert len(ix.classes) == 10 and ix.classes[0] == "001 - Dog bark"
    assert len(ix.test) == 80 and len(ix.train) == 320
    assert all(r.fold == 1 for r in ix.test) and all(r.fold != 1 for r in ix.train)
    for r in ix.records:
        assert r.path.parent.name == r.label and int(r.path.name.split("-")[0]) == r.fold


@needs_shared
def test_esc10_needs_test_fold_and_strips_prefix():
    ix = open_dataset(ESC10)
    with pytest.raises(AsclabError, match="test_fold"):
        ix.train
    with pytest.raises(ConfigError, match="not one of the folds"):
        open_dataset(ESC10, test_fold=9)
    stripped = read_class_folders(ESC10, strip_number_prefix=True)
    assert sorted({r.label for r in stripped})[:2] == ["Baby cry", "Chainsaw"]


# ---- synthetic trees in tmp_path --------------------------------------------------------------


def _tau_root(tmp_path: Path, rows, *, delimiter="\t", audio=True, folds=None) -> Path:
    """A TAU-layout root: meta.csv rows (filename, scene, identifier, device) and optional fold lists."""
    root = tmp_path / "tau"
    write_table(root / "meta.csv", ("filename", "scene_label", "identifier", "source_label"), rows, delimiter)
    for name, frows in (folds or {}).items():
        write_table(root / "evaluation_setup" / name, ("filename", "scene_label"), frows)
    if audio:
        for r in rows:
            (root / r[0]).parent.mkdir(parents=True, exist_ok=True)
            (root / r[0]).write_bytes(b"")
    return root


ROWS = [
    ("audio/bus-lyon-1-10-a.wav", "bus", "lyon-1", "a"),
    ("audio/park-paris-2-11-b.wav", "park", "paris-2", "b"),
    ("audio/tram-lyon-3-12-s4.wav", "tram", "lyon-3", "s4"),
]


def test_tau_reader_splits_and_evaluate(tmp_path):
    root = _tau_root(tmp_path, ROWS, folds={"fold1_train.csv": [r[:2] for r in ROWS[:2]],
                                            "fold1_evaluate.csv": [ROWS[2][:2]]})
    write_table(root / "evaluation_setup" / "fold1_test.csv", ("filename",), [(ROWS[2][0],)])
    ix = open_dataset(root, split="evaluate")
    assert [r.path.name for r in ix.train] == ["bus-lyon-1-10-a.wav", "park-paris-2-11-b.wav"]
    assert [(r.label, r.device, r.city) for r in ix.test] == [("tram", "s4", "lyon")]
    assert [(r.label, r.split, r.device) for r in ix.evaluate] == [(None, "evaluate", "s4")]
    assert ix.classes == ["bus", "park", "tram"]
    assert open_dataset(root).evaluate == []


def test_comma_delimited_meta(tmp_path):
    root = _tau_root(tmp_path, ROWS, delimiter=",")
    with pytest.raises(DataError, match=r"meta\.csv: row 1: .*comma") as e:
        open_dataset(root)
    assert "\n" not in str(e.value)


def test_missing_column(tmp_path):
    root = tmp_path / "tau"
    write_table(root / "meta.csv", ("filename", "identifier"), [("audio/x-y-1-2-a.wav", "y-1")])
    with pytest.raises(DataError, match=r"meta\.csv: row 1: missing column\(s\) scene_label"):
        read_tau(root)


def test_empty_meta(tmp_path):
    (tmp_path / "meta.csv").write_text("")
    with pytest.raises(DataError, match=r"meta\.csv: empty file"):
        read_tau(tmp_path)


def test_short_row_raises_and_skips(tmp_path):
    root = _tau_root(tmp_path, ROWS)
    text = (root / "meta.csv").read_text().splitlines()
    text[2] = "audio/park-paris-2-11-b.wav\tpark"
    (root / "meta.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"meta\.csv: row 3: expected 4 TAB-separated fields, got 2"):
        open_dataset(root)
    ix = open_dataset(root, on_error="skip")
    assert len(ix.records) == 2 and len(ix.skipped) == 1
    file, row, reason = ix.skipped[0]
    assert file.endswith("meta.csv") and row == 3 and "got 2" in reason
    assert ix.summary()["skipped"] == 1


def test_missing_audio_file(tmp_path):
    root = _tau_root(tmp_path, ROWS)
    (root / ROWS[1][0]).unlink()
    with pytest.raises(DataError, match=r"meta\.csv: row 3: listed audio file audio/park-paris-2-11-b\.wav not found"):
        open_dataset(root)
    assert len(open_dataset(root, check_files=False).records) == 3  # metadata alone needs no audio
    ix = open_dataset(root, on_error="skip")
    assert [r.label for r in ix.records] == ["bus", "tram"]
    assert [(Path(f).name, row) for f, row, _ in ix.skipped] == [("meta.csv", 3)]


def test_unknown_label(tmp_path):
    root = _tau_root(tmp_path, ROWS + [("audio/moon-lyon-4-13-a.wav", "moon", "lyon-4", "a")])
    with pytest.raises(DataError, match=r"meta\.csv: row 5: label 'moon' .* not in the class map"):
        open_dataset(root, class_map=TASK1B_3CLASS)
    with pytest.raises(DataError, match=r"row 5: label 'moon' .* not one of the classes"):
        open_dataset(root, classes=list(TAU_SCENES))
    ix = open_dataset(root, class_map=TASK1B_3CLASS, on_error="skip")
    assert [r.label for r in ix.records] == ["transportation", "outdoor", "transportation"]
    assert len(ix.skipped) == 1 and ix.skipped[0][1] == 5
    ix = open_dataset(root, classes=["tram", "park", "bus", "moon"])
    assert ix.classes == ["tram", "park", "bus", "moon"]  # a given class order is kept


def test_label_conflict_and_duplicates(tmp_path):
    root = _tau_root(tmp_path, ROWS + [ROWS[0]], folds={"fold1_train.csv": [(ROWS[1][0], "bus")]})
    with pytest.raises(DataError, match=r"meta\.csv: row 5: duplicate entry .* \(first at row 2\)"):
        read_tau(root)
    ix = open_dataset(root, on_error="skip")
    reasons = [reason for _, _, reason in ix.skipped]
    assert len(reasons) == 2 and "duplicate" in reasons[0] and "disagrees" in reasons[1]
    assert [r.path.name for r in ix.records] == ["bus-lyon-1-10-a.wav", "tram-lyon-3-12-s4.wav"]


def test_file_in_two_fold_lists(tmp_path):
    root = _tau_root(tmp_path, ROWS, folds={"fold1_train.csv": [ROWS[0][:2]], "fold1_evaluate.csv": [ROWS[0][:2]]})
    with pytest.raises(DataError, match=r"fold1_evaluate\.csv: row 2: .* also listed in fold1_train\.csv row 2"):
        read_tau(root)


def test_device_and_city_from_file_name_without_meta(tmp_path):
    root = tmp_path / "d24"
    write_table(root / "split5.csv", ("filename", "scene_label"), [("audio/bus-lyon-1-10-0-s2.wav", "bus")])
    write_table(root / "split10.csv", ("filename", "scene_label"), [("audio/bus-lyon-1-10-0-s2.wav", "bus"),
                                                                   ("audio/park-wien-2-11-3-c.wav", "park")])
    write_table(root / "test.csv", ("filename", "scene_label"), [("audio/tram-rome-5-11-3-s6.wav", "tram")])
    assert detect_layout(root) == "dcase2024"
    recs = read_dcase2024(root)  # default: largest split present
    assert [(r.device, r.city, r.identifier, r.split) for r in recs] == [
        ("s2", "lyon", "lyon-1", "train"), ("c", "wien", "wien-2", "train"), ("s6", "rome", "rome-5", "test")]
    with pytest.raises(DataError, match="listed audio file"):
        open_dataset(root)
    # a meta.csv in the root supplies device and identifier (here deliberately different from the name)
    write_table(root / "meta.csv", ("filename", "scene_label", "identifier", "source_label"),
                [("audio/bus-lyon-1-10-0-s2.wav", "bus", "oslo-9", "zz")])
    rec = read_dcase2024(root, split="split5")[0]
    assert (rec.device, rec.city, rec.identifier) == ("zz", "oslo", "oslo-9")


# ---- manifests and folders -----------------------------------------------------------------


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_manifest_folds(tmp_path, delimiter):
    rows = [(f"clips/{i}.wav", "dog" if i % 2 else "cat", "d1", 1 + i % 3) for i in range(9)]
    for r in rows:
        _touch(tmp_path / r[0])
    write_table(tmp_path / "manifest.csv", ("path", "label", "device", "fold"), rows, delimiter)
    assert detect_layout(tmp_path) == "manifest" and detect_layout(tmp_path / "manifest.csv") == "manifest"
    ix = open_dataset(tmp_path, test_fold=2)
    assert len(ix.test) == 3 and len(ix.train) == 6 and ix.classes == ["cat", "dog"]
    assert ix.records[0].path == (tmp_path / "clips" / "0.wav").absolute()
    with pytest.raises(AsclabError, match="test_fold"):
        open_dataset(tmp_path).test


def test_manifest_split_column_and_errors(tmp_path):
    m = tmp_path / "list.csv"
    write_table(m, ("path", "label", "split", "note"), [("a.wav", "x", "train", "n1"), ("b.wav", "", "test", "")])
    ix = open_dataset(m, check_files=False)
    assert [r.label for r in ix.train] == ["x"] and [r.label for r in ix.test] == [None]
    assert ix.records[0].extra["note"] == "n1"
    write_table(m, ("path", "label", "split"), [("a.wav", "x", "validation")])
    with pytest.raises(DataError, match=r"list\.csv: row 2: split 'validation'"):
        read_manifest(m)
    write_table(m, ("path", "label", "fold"), [("a.wav", "x", "one")])
    with pytest.raises(DataError, match=r"list\.csv: row 2: fold 'one' is not an integer"):
        read_manifest(m)
    m.write_text("a.wav,x\nb.wav,y\n")
    with pytest.raises(DataError, match=r"list\.csv: row 1: missing column\(s\) path, label"):
        read_manifest(m)


def test_folders_without_folds_or_split(tmp_path):
    for name in ("dog/a.wav", "dog/b.flac", "cat/c.ogg", "cat/notes.txt", ".hidden/d.wav"):
        _touch(tmp_path / name)
    ix = open_dataset(tmp_path)
    assert ix.layout == "folders" and ix.summary()["classes"] == {"cat": 1, "dog": 2}
    with pytest.raises(AsclabError, match="no train/test split and no folds"):
        ix.train
    with pytest.raises(ConfigError, match="defines no folds"):
        open_dataset(tmp_path, test_fold=1)


def test_folders_mixed_fold_names(tmp_path):
    for name in ("dog/1-100-A.ogg", "dog/2-101-A.ogg", "dog/oddname.ogg"):
        _touch(tmp_path / name)
    with pytest.raises(DataError, match=r"oddname\.ogg: file name does not match the fold pattern"):
        open_dataset(tmp_path)
    ix = open_dataset(tmp_path, on_error="skip", test_fold=2)
    assert len(ix.records) == 2 and len(ix.skipped) == 1 and [r.fold for r in ix.test] == [2]


def test_bad_on_error(tmp_path):
    with pytest.raises(ConfigError, match="on_error"):
        open_dataset(tmp_path, on_error="ignore")


# ---- round trips ------------------------------------------------------------------------------

_word = st.text(string.ascii_lowercase + string.digits + "_", min_size=1, max_size=12)
_label = st.text(string.ascii_letters + string.digits + "_ .", min_size=1, max_size=20).map(str.strip).filter(bool)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_word, _label, st.one_of(st.none(), _word), st.one_of(st.none(), st.integers(0, 99)),
                               st.sampled_from([None, "train", "test", "evaluate"])),
                     min_size=1, max_size=15, unique_by=lambda r: r[0]),
       delimiter=st.sampled_from([",", "\t"]))
def test_manifest_round_trip(tmp_path, rows, delimiter):
    path = tmp_path / "m.csv"
    write_table(path, ("path", "label", "device", "fold", "split"),
                [(f"{p}.wav", lab, dev, fold, split) for p, lab, dev, fold, split in rows], delimiter)
    recs = read_manifest(path)
    got = [(r.path.name, r.label, r.device, r.fold, r.split) for r in recs]
    assert got == [(f"{p}.wav", lab, dev, fold, split) for p, lab, dev, fold, split in rows]
    assert all(r.path.parent == tmp_path.absolute() for r in recs)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.sampled_from(TAU_SCENES), _word.filter(lambda c: "-" not in c),
                               st.integers(0, 9999), st.integers(0, 99999), st.one_of(st.none(), st.integers(0, 9)),
                               st.sampled_from(["a", "b", "s1", "s6"])),
                     min_size=1, max_size=15, unique_by=lambda r: r[2:5]))
def test_tau_meta_round_trip(tmp_path, rows):
    def fname(scene, city, loc, seg, piece, dev):
        return f"audio/{scene}-{city}-{loc}-{seg}" + (f"-{piece}" if piece is not None else "") + f"-{dev}.wav"

    written = [(fname(*r), r[0], f"{r[1]}-{r[2]}", r[5]) for r in rows]
    write_table(tmp_path / "meta.csv", ("filename", "scene_label", "identifier", "source_label"), written)
    recs = read_tau_meta(tmp_path / "meta.csv")
    assert [(r.extra["filename"], r.label, r.identifier, r.device) for r in recs] == written
    assert [r.city for r in recs] == [r[1] for r in rows]


def test_header_only_meta_has_no_records(tmp_path):
    write_table(tmp_path / "meta.csv", ("filename", "scene_label", "identifier", "source_label"), [])
    assert read_tau(tmp_path) == []
    with pytest.raises(DataError, match="no usable records"):
        open_dataset(tmp_path)
