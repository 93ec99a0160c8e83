"""The bad-input catalogue, continued (issue 21): the doors added last.

Published checkpoints (``asclab import``), CPJKU-form teacher logits (``asclab logits
--import-cpjku``), teacher files with NaN logits, integers past their libraries' bounds and a
full disk. Every case asserts what the first catalogue asserts (``test_bad_input_catalogue``):
exit 2, exactly one stderr line naming the file and the problem, no traceback, nothing
half-written; the full-disk cases also check that the earlier file is intact and that no
temporary file is left.
"""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asclab.cli import main
from asclab.data.teacher_file import FORMAT as TEACHER_FORMAT
from asclab.data.teacher_file import clip_key
from asclab.errors import CheckpointError, DataError
from asclab.interop.cpjku import check_state
from asclab.interop.cpjku_logits import read_npy
from conftest import SHARED_DATA
from test_bad_input_catalogue import Env, _model, _tau_set, assert_one_line_error

CPJKU_CKPT = SHARED_DATA.parent / "checkpoints" / "karasin_jku_2025_sys4.ckpt"
CASES: dict[str, tuple[str, object]] = {}


def case(cls: str):
    def register(fn):
        CASES[fn.__name__] = (cls, fn)
        return fn
    return register


@pytest.fixture(scope="module")
def doors(tmp_path_factory) -> Env:
    base = tmp_path_factory.mktemp("doors")
    data = _tau_set(base / "tau")
    return Env(data=data, model=_model(base / "model.ckpt"), clip=data / "audio" / "airport-city-0-0-a.wav",
               tmp=base)


def _published_state() -> dict:
    if not CPJKU_CKPT.exists():
        pytest.skip(f"published checkpoint not available: {CPJKU_CKPT} is absent")
    payload = torch.load(CPJKU_CKPT, map_location="cpu", weights_only=True)
    return dict(payload.get("state_dict", payload))


def _import(tmp: Path, state: dict) -> list[str]:
    src = tmp / "published.ckpt"
    torch.save({"state_dict": state}, src)
    return ["import", str(src), "--out", str(tmp / "imported.ckpt")]


# ------------------------------------------------------------ published checkpoints
@case("published checkpoint")
def import_non_string_key(env, tmp):
    return _import(tmp, {**_published_state(), 3: torch.zeros(1)}), [tmp / "imported.ckpt"], "key 3 is not"


@case("published checkpoint")
def import_1d_filterbank(env, tmp):
    return _import(tmp, {**_published_state(), "mel.1.mel_scale.fb": torch.zeros(10)}), [tmp / "imported.ckpt"], \
        "mel.1.mel_scale.fb has shape (10,)"


@case("published checkpoint")
def import_window_declaring_a_huge_size(env, tmp):
    huge = torch.zeros(1).expand(1 << 40)  # 4 TB if anything were computed from it
    return _import(tmp, {**_published_state(), "mel.1.spectrogram.window": huge}), [tmp / "imported.ckpt"], \
        "declares shape (1099511627776,)"


@case("published checkpoint")
def import_nan_batchnorm_statistics(env, tmp):
    state = _published_state()
    key = next(k for k in state if k.endswith("running_var"))
    state[key] = state[key].clone()
    state[key][0] = float("nan")
    return _import(tmp, state), [tmp / "imported.ckpt"], "NaN or infinite"


@case("published checkpoint")
def import_truncated_file(env, tmp):
    src = tmp / "cut.ckpt"
    src.write_bytes(CPJKU_CKPT.read_bytes()[:5000] if CPJKU_CKPT.exists() else b"PK\x03\x04" + b"\0" * 100)
    return ["import", str(src), "--out", str(tmp / "imported.ckpt")], [tmp / "imported.ckpt"], "cut.ckpt"


# ------------------------------------------------------------ CPJKU-form teacher logits
def _npy_header(shape: tuple, descr: str = "<f4") -> bytes:
    hdr = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    hdr += " " * (63 - (10 + len(hdr)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode()


def _meta(env: Env) -> Path:
    return env.data / "meta.csv"


def _logits(env: Env, tmp: Path, npy: Path) -> list[str]:
    return ["logits", "--import-cpjku", str(npy), "--meta", str(_meta(env)), "--data", str(env.data),
            "--out", str(tmp / "t.h5")]


@case("teacher logits")
def cpjku_object_array(env, tmp):
    np.save(tmp / "obj.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    return _logits(env, tmp, tmp / "obj.npy"), [tmp / "t.h5"], "obj.npy: holds object values"


@case("teacher logits")
def cpjku_string_array(env, tmp):
    np.save(tmp / "str.npy", np.array([["a", "b"]]))
    return _logits(env, tmp, tmp / "str.npy"), [tmp / "t.h5"], "str.npy: holds <U1 values"


@case("teacher logits")
def cpjku_truncated_npy(env, tmp):
    np.save(tmp / "ok.npy", np.zeros((30, 10), np.float32))
    (tmp / "cut.npy").write_bytes((tmp / "ok.npy").read_bytes()[:-40])
    return _logits(env, tmp, tmp / "cut.npy"), [tmp / "t.h5"], "cut.npy: truncated"


@case("teacher logits")
def cpjku_header_declaring_1e12_values(env, tmp):
    (tmp / "huge.npy").write_bytes(_npy_header((10**12, 3)) + b"\0" * 12)
    return _logits(env, tmp, tmp / "huge.npy"), [tmp / "t.h5"], "huge.npy: declares 1,000,000,000,000 x 3"


@case("teacher logits")
def cpjku_nan_logits(env, tmp):
    a = np.zeros((30, 10), np.float32)
    a[4, 2] = np.nan
    np.save(tmp / "nan.npy", a)
    return _logits(env, tmp, tmp / "nan.npy"), [tmp / "t.h5"], "nan.npy: row 5 holds NaN"


@case("teacher logits")
def cpjku_empty_meta(env, tmp):
    np.save(tmp / "ok.npy", np.zeros((30, 10), np.float32))
    (tmp / "empty.csv").write_text("")
    return ["logits", "--import-cpjku", str(tmp / "ok.npy"), "--meta", str(tmp / "empty.csv"), "--data",
            str(env.data), "--out", str(tmp / "t.h5")], [tmp / "t.h5"], "empty.csv: the metadata CSV is empty"


def _teacher_h5(env: Env, path: Path, fill=0.0, nan_at: int | None = None) -> Path:
    """A teacher file in asclab's format for every clip of the set, written by hand (asclab's own
    writer refuses NaN logits)."""
    keys = [clip_key(p, env.data) for p in sorted((env.data / "audio").glob("*.wav"))]
    logits = np.full((1, len(keys), 10), fill, np.float32)
    if nan_at is not None:
        logits[0, nan_at, 0] = np.nan
    text = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as f:
        f.attrs["format"] = TEACHER_FORMAT
        f.attrs["classes"] = json.dumps(sorted({k.split("/")[1].split("-")[0] for k in keys}))
        f.attrs["members"] = json.dumps([{"run": "hand"}])
        f.attrs["duration"] = json.dumps(1.0)
        f.attrs["data"] = str(env.data)
        for name in ("keys", "sha256", "split"):
            f.create_dataset(name, data=np.array(keys if name == "keys" else [""] * len(keys), dtype=object),
                             dtype=text)
        f.create_dataset("logits", data=logits)
        f.create_dataset("mean", data=logits.mean(0))
    return path


@case("teacher logits")
def kd_training_on_nan_teacher_file(env, tmp):
    teachers = _teacher_h5(env, tmp / "nan_teachers.h5", nan_at=3)
    argv = ["train", "quickstart", "--data", str(env.data), "--out", str(tmp / "run"), "--quiet",
            "--set", "train.epochs_cap=1", "--set", "loss={name: kd, temperature: 2.0, label_weight: 0.5}",
            "--set", f"data.teacher_logits={teachers}"]
    return argv, [tmp / "run"], "nan_teachers.h5: clip"


@case("teacher logits")
def teacher_file_with_text_logits(env, tmp):
    path = _teacher_h5(env, tmp / "t.h5")
    with h5py.File(path, "r+") as f:
        del f["logits"]
        f.create_dataset("logits", data=np.array(["x"] * 4, dtype=object), dtype=h5py.string_dtype())
    argv = ["train", "quickstart", "--data", str(env.data), "--out", str(tmp / "run"), "--quiet",
            "--set", "loss={name: kd}", "--set", f"data.teacher_logits={path}"]
    return argv, [tmp / "run"], "t.h5: its logits are"


# ------------------------------------------------------------ integers past their bounds
@case("integers")
def seed_past_32_bits(env, tmp):
    return ["train", "quickstart", "--data", str(env.data), "--out", str(tmp / "run"), "--seed", "4294967296"], \
        [tmp / "run"], "train.seed: 4294967296 is out of range"


@case("integers")
def feature_workers_past_bound(env, tmp):
    return ["features", str(env.data), "--recipe", "quickstart", "--workers", str(10**12)], [], "--workers"


@case("integers")
def crossval_folds_past_bound(env, tmp):
    return ["crossval", "quickstart", "--data", str(env.data), "--out", str(tmp / "cv"), "--folds", str(10**9)], \
        [tmp / "cv"], "--folds"


@case("integers")
def predict_batch_size_zero(env, tmp):
    return ["predict", str(env.model), str(env.clip), "--batch-size", "0"], [], "--batch-size 0"


@pytest.mark.parametrize("name", list(CASES), ids=[f"{c}:{n}" for n, (c, _) in CASES.items()])
def test_new_door_gives_one_line_and_exit_2(name, doors, tmp_path, capsys, one_torch_thread):
    _, make = CASES[name]
    argv, absent, needle = make(doors, tmp_path)
    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    assert_one_line_error(rc, out, err, needle, absent)


# ------------------------------------------------------------ a full disk
# Everything is imported before the limit is set: the limit is for the command's output, not for
# Python's bytecode or matplotlib's font cache.
FULL_DISK = textwrap.dedent("""
    import resource, sys
    import matplotlib.font_manager
    import asclab.cli.deployment, asclab.cli.inference
    from asclab.cli import main
    sys.dont_write_bytecode = True
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    sys.exit(main({argv!r}))
""")


def _full_disk_argv(kind: str, env: Env, tmp: Path) -> tuple[list[str], Path]:
    if kind == "import":
        if not CPJKU_CKPT.exists():
            pytest.skip(f"published checkpoint not available: {CPJKU_CKPT} is absent")
        out = tmp / "imported.ckpt"
        return ["import", str(CPJKU_CKPT), "--out", str(out), "--force"], out
    if kind == "predict":
        out = tmp / "timeline.csv"
        return ["--threads", "1", "predict", str(env.model), str(env.data / "audio"), "--timeline", str(out),
                "--force", "--quiet"], out
    out = tmp / "teachers.h5"
    return ["--threads", "1", "logits", str(env.model), "--data", str(env.data), "--out", str(out), "--force",
            "--quiet", "--no-hash"], out


@pytest.mark.parametrize("kind", ["import", "predict", "logits"])
def test_a_full_disk_is_one_line_and_the_earlier_file_is_intact(kind, doors, tmp_path):
    argv, out = _full_disk_argv(kind, doors, tmp_path)
    out.write_bytes(b"the earlier file")
    limit = 2048  # bytes: every output here is larger
    proc = subprocess.run([sys.executable, "-c", FULL_DISK.format(limit=limit, argv=argv)], capture_output=True,
                          text=True, timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path.parent)})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"{out}: no space left / file too large" in lines[0] and "the earlier file is intact" in lines[0]
    assert out.read_bytes() == b"the earlier file"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary file left


# ------------------------------------------------------------ generated malformed inputs
tensors = st.one_of(
    st.builds(lambda n: torch.zeros(n), st.integers(0, 8)),
    st.builds(lambda n, d: torch.zeros(1).expand(n) if d else torch.zeros(1, 1, 1, 1, 1),
              st.integers(1 << 23, 1 << 45), st.booleans()),
    st.builds(lambda v: torch.tensor([v]), st.sampled_from([float("nan"), float("inf"), -float("inf")])),
)
keys = st.one_of(st.text(min_size=1, max_size=12), st.integers(), st.none(), st.tuples(st.integers()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, tensors, min_size=1, max_size=5))
def test_check_state_refuses_or_accepts_generated_state_dicts_without_allocating(state):
    """Any mapping of keys to tensors is accepted or refused with CheckpointError; nothing the
    file declares is allocated (the expanded tensors would need terabytes)."""
    bad = any(not isinstance(k, str) for k in state) or any(
        v.dim() > 4 or v.numel() > 1 << 22 or (v.is_floating_point() and v.numel() <= 1 << 22
                                              and not bool(torch.isfinite(v).all())) for v in state.values())
    if bad:
        with pytest.raises(CheckpointError):
            check_state(state, "generated.ckpt")
    else:
        check_state(state, "generated.ckpt")


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(0, 10**13), min_size=0, max_size=4),
       descr=st.sampled_from(["<f4", "<f8", "<i4", "|O", "<U3", "|b1", "<c8"]),
       body=st.integers(0, 256))
def test_read_npy_checks_generated_headers_before_reading(tmp_path_factory, shape, descr, body):
    path = tmp_path_factory.mktemp("npy") / "x.npy"
    path.write_bytes(_npy_header(tuple(shape), descr) + b"\0" * body)
    n = int(np.prod(shape, dtype=object)) if shape else 1
    fits = descr in ("<f4", "<f8", "<i4") and len(shape) == 2 and n <= 1 << 28 and \
        n * int(descr[-1]) <= body
    if fits:
        assert read_npy(path).shape == tuple(shape)
    else:
        with pytest.raises(DataError):
            read_npy(path)


def test_catalogue_of_new_doors_covers_each_class():
    assert {c for c, _ in CASES.values()} == {"published checkpoint", "teacher logits", "integers"}


def test_package_force_over_an_existing_file_replaces_it_with_the_package(doors, tmp_path, capsys):
    out = tmp_path / "pkg"
    out.write_text("an earlier file")
    assert main(["package", str(doors.model), "--name", "Doe_INST_task1", "--out", str(out)]) == 2
    assert out.read_text() == "an earlier file"  # without --force it stays
    capsys.readouterr()
    assert main(["package", str(doors.model), "--name", "Doe_INST_task1", "--out", str(out), "--force"]) == 0
    assert (out / "Doe_INST_task1" / "Doe_INST_task1_1.py").is_file() and (out / "pyproject.toml").is_file()
    assert not (tmp_path / "pkg.partial").exists()
