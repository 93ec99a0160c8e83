"""The bad-input catalogue (issue 11): every CLI command against generated bad inputs.

Each case runs ``asclab.cli.main`` in-process and asserts exit status 2, exactly
one line on stderr (``asclab: error: ...``, naming what it must name), no
traceback, and nothing half-written: the paths a case lists must not exist
afterwards. The classes: recipe, run folder, labels and classes, audio (the
skip policy's inputs), paths, outputs, model files.
"""
from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf
import torch

from asclab.cli import main
from asclab.data.classmaps import TAU_SCENES
from asclab.features.config import FeatureConfig
from asclab.models import create_model
from asclab.workflows.run_folder import RunLock
from asclab.train.checkpoint import ModelFile, save_model_file

RATE = 16000
FEATURES = FeatureConfig(sample_rate=RATE, n_fft=512, hop_length=256, n_mels=32)


@dataclass
class Env:
    """What the cases start from: a good TAU-layout set, a good model file, a scratch folder."""

    data: Path
    model: Path
    clip: Path
    tmp: Path


def _clip(path: Path, seconds: float = 1.0, *, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * rng.standard_normal(int(RATE * seconds))).astype(np.float32), RATE, subtype="FLOAT")
    return path


def _tau_set(root: Path, labels: list[str] | None = None) -> Path:
    """A TAU-layout set: two clips per scene for training, one for testing (1 s, 16 kHz)."""
    labels = labels or list(TAU_SCENES)
    rows, train, test = [], [], []
    for i, label in enumerate(labels):
        for k in range(3):
            name = f"audio/{label}-city-{i}-{k}-a.wav"
            _clip(root / name, seed=10 * i + k)
            rows.append(f"{name}\t{label}\t{label}-city-{i}\ta")
            (test if k == 2 else train).append(f"{name}\t{label}")
    (root / "evaluation_setup").mkdir(parents=True, exist_ok=True)
    (root / "meta.csv").write_text("filename\tscene_label\tidentifier\tsource_label\n" + "\n".join(rows) + "\n")
    (root / "evaluation_setup" / "fold1_train.csv").write_text("filename\tscene_label\n" + "\n".join(train) + "\n")
    (root / "evaluation_setup" / "fold1_evaluate.csv").write_text("filename\tscene_label\n" + "\n".join(test) + "\n")
    (root / "evaluation_setup" / "fold1_test.csv").write_text(
        "filename\n" + "\n".join(t.split("\t")[0] for t in test) + "\n")
    return root


def _model(path: Path, *, features: dict | None = None, duration: float = 1.0, recipe: dict | None = None) -> Path:
    torch.manual_seed(0)
    model = create_model("cp_mobile", num_classes=len(TAU_SCENES), in_chans=1, base_channels=8)
    mf = ModelFile(state_dict=model.state_dict(), classes=list(TAU_SCENES), features=features or FEATURES.to_dict(),
                   model={"name": "cp_mobile", "base_channels": 8}, recipe=recipe or {}, duration=duration)
    return save_model_file(mf, path)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Env:
    base = tmp_path_factory.mktemp("catalogue")
    data = _tau_set(base / "tau")
    return Env(data=data, model=_model(base / "model.ckpt"), clip=data / "audio" / "airport-city-0-0-a.wav",
               tmp=base)


def _copy_set(env: Env, tmp: Path) -> Path:
    return Path(shutil.copytree(env.data, tmp / "data"))


def _rewrite(path: Path, filename: str, column: int, value: str) -> None:
    """Set one cell of the row listing ``filename`` in a TAB-separated metadata file."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        cells = line.split("\t")
        if cells[0] == filename:
            cells[column] = value
            lines[i] = "\t".join(cells)
    path.write_text("\n".join(lines) + "\n")


# A case: (argv, paths that must not exist afterwards, text the one line must contain).
CaseFn = Callable[[Env, Path], tuple[list[str], list[Path], str]]
CATALOGUE: dict[str, tuple[str, CaseFn]] = {}


def case(cls: str):
    def register(fn: CaseFn) -> CaseFn:
        CATALOGUE[fn.__name__] = (cls, fn)
        return fn
    return register


def _train(env: Env, out: Path, *extra: str, data: Path | None = None) -> list[str]:
    return ["train", "quickstart", "--data", str(data or env.data), "--out", str(out), "--quiet",
            "--set", "train.epochs_cap=1",
            *extra]


# ------------------------------------------------------------------ recipe
@case("recipe")
def unknown_key(env, tmp):
    return _train(env, tmp / "run", "--set", "train.epoch=1"), [tmp / "run"], "train.epoch"


@case("recipe")
def wrong_type(env, tmp):
    return _train(env, tmp / "run", "--set", "train.epochs=abc"), [tmp / "run"], "train.epochs"


@case("recipe")
def negative_batch_size(env, tmp):
    return _train(env, tmp / "run", "--batch-size", "-4"), [tmp / "run"], "train.batch_size"


@case("recipe")
def zero_epochs(env, tmp):
    return _train(env, tmp / "run", "--epochs", "0"), [tmp / "run"], "train.epochs"


@case("recipe")
def unknown_enum_value(env, tmp):
    return _train(env, tmp / "run", "--set", "train.keep=foo"), [tmp / "run"], "train.keep"


@case("recipe")
def zero_sample_rate(env, tmp):
    return _train(env, tmp / "run", "--set", "features.sample_rate=0"), [tmp / "run"], "features.sample_rate"


@case("recipe")
def zero_mel_bins(env, tmp):
    return _train(env, tmp / "run", "--set", "features.n_mels=0"), [tmp / "run"], "features.n_mels"


@case("recipe")
def negative_duration(env, tmp):
    return _train(env, tmp / "run", "--set", "data.duration=-1"), [tmp / "run"], "data.duration"


@case("recipe")
def unknown_model_key(env, tmp):
    return _train(env, tmp / "run", "--set", "model.widht=3"), [tmp / "run"], "model.widht"


@case("recipe")
def unknown_loss_name(env, tmp):
    return _train(env, tmp / "run", "--set", "loss.name=focall"), [tmp / "run"], "loss.name"


@case("recipe")
def crop_longer_than_clip(env, tmp):
    return (_train(env, tmp / "run", "--set", "augment.spec=[{name: time_crop, frames: 5000}]"), [tmp / "run"],
            "augment.spec[0].frames")


@case("recipe")
def mixup_crop_larger_than_input(env, tmp):
    return (_train(env, tmp / "run", "--set", "augment.mix={name: mixup, alpha: 0.2, crop_frames: 5000}"),
            [tmp / "run"], "augment.mix.crop_frames")


@case("recipe")
def duplicate_yaml_key(env, tmp):
    recipe = tmp / "dup.yaml"
    recipe.write_text("name: dup\ntrain:\n  epochs: 1\n  epochs: 2\n")
    argv = ["train", str(recipe), "--data", str(env.data), "--out", str(tmp / "run"), "--quiet"]
    return argv, [tmp / "run"], "'epochs' is given twice"


@case("recipe")
def features_unknown_key(env, tmp):
    return (["features", str(env.data), "--recipe", "quickstart", "--set", "features.n_mel=3", "--quiet"], [],
            "features.n_mel")


@case("recipe")
def crossval_bad_override(env, tmp):
    return (["crossval", "quickstart", "--data", str(env.data), "--out", str(tmp / "cv"), "--set", "train.batchsize=4"],
            [tmp / "cv"], "train.batchsize")


# -------------------------------------------------------------- run folder
@case("run folder")
def out_is_a_file(env, tmp):
    (tmp / "run").write_text("not a folder")
    return _train(env, tmp / "run"), [], "is a file"


@case("run folder")
def out_is_a_foreign_folder(env, tmp):
    (tmp / "run").mkdir()
    (tmp / "run" / "thesis.tex").write_text("precious")
    return _train(env, tmp / "run"), [tmp / "run" / "recipe.yaml"], "not an asclab run"


@case("run folder")
def out_held_by_another_run(env, tmp):
    lock = RunLock(tmp / "run").acquire()  # released by the test after the command
    _HELD.append(lock)
    return _train(env, tmp / "run"), [tmp / "run"], "in use by asclab run pid"


@case("run folder")
def resume_tampered_checkpoint(env, tmp):
    run = tmp / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "recipe.yaml").write_text("name: quickstart\nbase: quickstart\n")
    (run / "run_info.json").write_text(f'{{"data": "{env.data}"}}\n')
    (run / "checkpoints" / "last.ckpt").write_bytes(_evil_pickle())
    return ["train", "--resume", str(run), "--quiet"], [run / "model.ckpt"], "refused as untrusted"


# ------------------------------------------------------- labels and classes
@case("labels")
def train_label_outside_tau_scenes(env, tmp):
    data = _copy_set(env, tmp)
    for table in ("meta.csv", "evaluation_setup/fold1_train.csv"):
        _rewrite(data / table, "audio/bus-city-1-0-a.wav", 1, "volcano")
    return _train(env, tmp / "run", data=data), [tmp / "run"], \
        _at_row(data, "bus-city-1-0-a.wav") + "label 'volcano' of audio/bus-city-1-0-a.wav"


@case("labels")
def evaluate_label_outside_tau_scenes(env, tmp):
    data = _copy_set(env, tmp)
    for table in ("meta.csv", "evaluation_setup/fold1_evaluate.csv"):
        _rewrite(data / table, "audio/bus-city-1-2-a.wav", 1, "volcano")
    return ["evaluate", str(env.model), "--data", str(data), "--out", str(tmp / "ev"), "--quiet"], \
        [tmp / "ev" / "metrics.json"], _at_row(data, "bus-city-1-2-a.wav") + "label 'volcano'"


@case("labels")
def manifest_label_outside_declared_classes(env, tmp):
    root = tmp / "man"
    for i in range(4):
        _clip(root / f"c{i}.wav", seed=i)
    (root / "classes.txt").write_text("airport\nbus\n")
    (root / "manifest.csv").write_text("path,label,split\nc0.wav,airport,train\nc1.wav,bus,train\nc2.wav,buss,train\n"
                                       "c3.wav,airport,test\n")
    return _train(env, tmp / "run", data=root), [tmp / "run"], "manifest.csv: row 4: label 'buss' of c2.wav"


@case("labels")
def evaluate_label_unknown_to_model(env, tmp):
    root = tmp / "man"
    for i in range(3):
        _clip(root / f"c{i}.wav", seed=i)
    (root / "manifest.csv").write_text("path,label,split\nc0.wav,airport,train\nc1.wav,bus,test\nc2.wav,dog,test\n")
    return ["evaluate", str(env.model), "--data", str(root), "--out", str(tmp / "ev"), "--quiet"], \
        [tmp / "ev" / "metrics.json"], "row 4: label 'dog' of c2.wav"


@case("labels")
def describe_malformed_metadata(env, tmp):
    data = _copy_set(env, tmp)
    text = (data / "meta.csv").read_text().splitlines()
    (data / "meta.csv").write_text("\n".join([text[0], text[1], "only-one-column", *text[3:]]) + "\n")
    return ["data", "describe", str(data)], [], "meta.csv: row 3"


# ------------------------------------------------------------------ audio
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


def _nan(path: Path) -> None:
    y = np.zeros(RATE, np.float32)
    y[100] = np.nan
    sf.write(path, y, RATE, subtype="FLOAT")


def _one_sample(path: Path) -> None:
    sf.write(path, np.array([0.5], np.float32), RATE, subtype="FLOAT")


def _at_row(data: Path, name: str, table: str = "meta.csv") -> str:
    """``TABLE: row N: `` of the row listing ``audio/NAME`` (rows counted from the header, 1)."""
    lines = (data / table).read_text().splitlines()
    n = next(i for i, line in enumerate(lines, 1) if line.split("\t")[0] == f"audio/{name}")
    return f"{data / table}: row {n}: "


def _three_channels(path: Path) -> None:
    sf.write(path, np.zeros((RATE, 3), np.float32), RATE, subtype="FLOAT")


@case("audio")
def train_truncated_audio(env, tmp):
    data = _copy_set(env, tmp)
    _truncate(data / "audio" / "bus-city-1-0-a.wav")
    return _train(env, tmp / "run", data=data), [tmp / "run"], \
        _at_row(data, "bus-city-1-0-a.wav") + str(data / "audio" / "bus-city-1-0-a.wav")


@case("audio")
def train_unreadable_audio(env, tmp):
    data = _copy_set(env, tmp)
    (data / "audio" / "bus-city-1-0-a.wav").write_bytes(b"not audio at all" * 20)
    return _train(env, tmp / "run", data=data), [tmp / "run"], \
        _at_row(data, "bus-city-1-0-a.wav") + str(data / "audio" / "bus-city-1-0-a.wav") + ": unreadable audio"


@case("audio")
def train_empty_audio(env, tmp):
    data = _copy_set(env, tmp)
    (data / "audio" / "park-city-4-0-a.wav").write_bytes(b"")
    return _train(env, tmp / "run", data=data), [tmp / "run"], \
        _at_row(data, "park-city-4-0-a.wav") + str(data / "audio" / "park-city-4-0-a.wav") + ": empty file"


@case("audio")
def train_near_empty_audio(env, tmp):
    data = _copy_set(env, tmp)
    _one_sample(data / "audio" / "park-city-4-1-a.wav")
    return _train(env, tmp / "run", data=data), [tmp / "run"], \
        _at_row(data, "park-city-4-1-a.wav") + str(data / "audio" / "park-city-4-1-a.wav") + ": near-empty audio"


@case("audio")
def train_wrong_rate(env, tmp):
    data = _copy_set(env, tmp)  # the set is at 16 kHz; the recipe says every file must be at 44.1 kHz
    return _train(env, tmp / "run", "--set", "data.expect_rate=44100", data=data), [tmp / "run"], \
        "sample rate 16000 Hz, expected 44100 Hz"


@case("audio")
def train_wrong_channel_count(env, tmp):
    data = _copy_set(env, tmp)
    _three_channels(data / "audio" / "tram-city-9-0-a.wav")
    return _train(env, tmp / "run", "--set", "features.channels=stereo", data=data), [tmp / "run"], \
        _at_row(data, "tram-city-9-0-a.wav") + str(data / "audio" / "tram-city-9-0-a.wav") + ": has 3 channels"


@case("audio")
def features_nan_audio(env, tmp):
    data = _copy_set(env, tmp)
    _nan(data / "audio" / "bus-city-1-0-a.wav")
    return ["features", str(data), "--recipe", "quickstart", "--quiet", "--cache-dir", str(tmp / "cache")], [], \
        _at_row(data, "bus-city-1-0-a.wav") + str(data / "audio" / "bus-city-1-0-a.wav") + ": NaN"


@case("audio")
def evaluate_missing_file(env, tmp):
    data = _copy_set(env, tmp)
    (data / "audio" / "bus-city-1-2-a.wav").unlink()
    return ["evaluate", str(env.model), "--data", str(data), "--out", str(tmp / "ev"), "--quiet"], \
        [tmp / "ev" / "metrics.json"], _at_row(data, "bus-city-1-2-a.wav") + "listed audio file audio/bus-city-1-2-a.wav"


@case("audio")
def evaluate_nan_audio(env, tmp):
    data = _copy_set(env, tmp)
    _nan(data / "audio" / "bus-city-1-2-a.wav")
    return ["evaluate", str(env.model), "--data", str(data), "--out", str(tmp / "ev"), "--quiet"], \
        [tmp / "ev" / "metrics.json"], _at_row(data, "bus-city-1-2-a.wav") + str(data / "audio" / "bus-city-1-2-a.wav")


@case("audio")
def predict_truncated_audio(env, tmp):
    bad = tmp / "bad clip.wav"
    shutil.copy(env.clip, bad)
    _truncate(bad)
    return ["predict", str(env.model), str(bad), "--quiet", "--csv", str(tmp / "p.csv")], [tmp / "p.csv"], \
        "bad clip.wav"


@case("audio")
def predict_nan_audio(env, tmp):
    bad = _clip(tmp / "nan.wav")
    _nan(bad)
    return ["predict", str(env.model), str(bad), "--quiet"], [], "nan.wav"


@case("audio")
def predict_near_empty_audio(env, tmp):
    bad = _clip(tmp / "tiny.wav")
    _one_sample(bad)
    return ["predict", str(env.model), str(bad), "--quiet"], [], "tiny.wav"


@case("audio")
def predict_missing_file(env, tmp):
    return ["predict", str(env.model), str(tmp / "nowhere.wav"), "--quiet"], [], "nowhere.wav"


@case("audio")
def submit_near_empty_audio(env, tmp):
    data = _copy_set(env, tmp)
    _one_sample(data / "audio" / "bus-city-1-2-a.wav")
    return ["submit", str(env.model), "--data", str(data), "--out", str(tmp / "out.csv"), "--quiet"], \
        [tmp / "out.csv"], _at_row(data, "bus-city-1-2-a.wav", "evaluation_setup/fold1_test.csv") + \
        str(data / "audio" / "bus-city-1-2-a.wav")


@case("audio")
def evaluate_empty_test_list(env, tmp):
    data = _copy_set(env, tmp)
    (data / "evaluation_setup" / "fold1_evaluate.csv").write_text("filename\tscene_label\n")
    (data / "evaluation_setup" / "fold1_test.csv").write_text("filename\n")
    return ["evaluate", str(env.model), "--data", str(data), "--out", str(tmp / "ev"), "--quiet"], \
        [tmp / "ev" / "metrics.json"], "the test split holds no labelled records"


# ------------------------------------------------------------------ paths
def _manifest_set(tmp: Path, entry: str) -> Path:
    root = tmp / "man"
    for i in range(4):
        _clip(root / f"c{i}.wav", seed=i)
    (root / "manifest.csv").write_text(f"path,label,split\nc0.wav,airport,train\nc1.wav,bus,train\n{entry},bus,train\n"
                                       "c3.wav,airport,test\n")
    return root


@case("paths")
def manifest_entry_with_dotdot(env, tmp):
    _clip(tmp / "outside.wav")
    return _train(env, tmp / "run", data=_manifest_set(tmp, "../outside.wav")), [tmp / "run"], "outside.wav"


@case("paths")
def manifest_entry_absolute(env, tmp):
    outside = _clip(tmp / "elsewhere" / "x.wav")
    return _train(env, tmp / "run", data=_manifest_set(tmp, str(outside))), [tmp / "run"], "x.wav"


@case("paths")
def manifest_entry_symlink_out(env, tmp):
    outside = _clip(tmp / "elsewhere" / "y.wav")
    root = _manifest_set(tmp, "link.wav")
    (root / "link.wav").symlink_to(outside)
    return _train(env, tmp / "run", data=root), [tmp / "run"], "link.wav"


@case("paths")
def tau_entry_with_dotdot(env, tmp):
    data = _copy_set(env, tmp)
    _clip(tmp / "outside.wav")
    for table in ("meta.csv", "evaluation_setup/fold1_train.csv"):
        _rewrite(data / table, "audio/airport-city-0-1-a.wav", 0, "../outside.wav")
    return _train(env, tmp / "run", data=data), [tmp / "run"], "outside.wav"


@case("paths")
def predict_bad_file_with_newline_in_name(env, tmp):
    bad = tmp / "two\nlines é.wav"
    shutil.copy(env.clip, bad)
    _truncate(bad)
    return ["predict", str(env.model), str(bad), "--quiet"], [], "two\\nlines é.wav"


# ---------------------------------------------------------------- outputs
@case("outputs")
def predict_csv_is_a_folder(env, tmp):
    (tmp / "out").mkdir()
    return ["predict", str(env.model), str(env.clip), "--quiet", "--csv", str(tmp / "out")], [], str(tmp / "out")


@case("outputs")
def predict_timeline_unwritable(env, tmp):
    target = tmp / "file" / "t.csv"
    (tmp / "file").write_text("a file, not a folder")
    return ["predict", str(env.model), str(env.clip), "--quiet", "--timeline", str(target)], [], "t.csv"


@case("outputs")
def submit_out_is_a_folder(env, tmp):
    (tmp / "out.csv").mkdir()
    return ["submit", str(env.model), "--data", str(env.data), "--out", str(tmp / "out.csv"), "--quiet"], [], \
        "out.csv"


@case("outputs")
def evaluate_out_is_a_file(env, tmp):
    (tmp / "ev").write_text("a file")
    return ["evaluate", str(env.model), "--data", str(env.data), "--out", str(tmp / "ev"), "--quiet"], [], "ev"


@case("outputs")
def export_out_unwritable(env, tmp):
    (tmp / "file").write_text("a file, not a folder")
    return ["export", str(env.model), "--out", str(tmp / "file" / "m.onnx")], [], "m.onnx"


@case("outputs")
def synth_out_is_a_file(env, tmp):
    (tmp / "synth").write_text("a file")
    return ["data", "synth", str(tmp / "synth"), "--per-cell", "1"], [], "synth"


@case("outputs")
def features_cache_dir_is_a_file(env, tmp):
    (tmp / "cache").write_text("a file")
    return ["features", str(env.data), "--recipe", "quickstart", "--quiet", "--cache-dir", str(tmp / "cache")], [], \
        "cache"


@case("outputs")
def crossval_out_is_a_file(env, tmp):
    (tmp / "cv").write_text("a file")
    return (["crossval", "quickstart", "--data", str(env.data), "--out", str(tmp / "cv"), "--quiet", "--epochs", "1"],
            [], "cv")


@case("outputs")
def demo_out_is_a_file(env, tmp):
    (tmp / "demo").write_text("a file")
    return ["demo", "--out", str(tmp / "demo"), "--quiet", "--epochs", "1"], [], "demo"


def _existing(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("an earlier result, kept\n")
    return path


@case("outputs")
def predict_csv_exists(env, tmp):
    out = _existing(tmp / "p.csv")
    return ["predict", str(env.model), str(env.clip), "--quiet", "--csv", str(out)], [], \
        f"{out}: already exists; choose another --csv or pass --force"


@case("outputs")
def predict_timeline_exists(env, tmp):
    out = _existing(tmp / "t.csv")
    return ["predict", str(env.model), str(env.clip), "--quiet", "--timeline", str(out)], [], \
        f"{out}: already exists; choose another --timeline"


@case("outputs")
def submit_out_exists(env, tmp):
    out = _existing(tmp / "output.csv")
    return ["submit", str(env.model), "--data", str(env.data), "--out", str(out), "--quiet"], [], \
        f"{out}: already exists"


@case("outputs")
def export_out_exists(env, tmp):
    out = _existing(tmp / "m.onnx")
    return ["export", str(env.model), "--out", str(out)], [tmp / "m.onnx.json"], f"{out}: already exists"


@case("outputs")
def import_out_exists(env, tmp):
    out = _existing(tmp / "imported.ckpt")
    return ["import", str(env.model), "--out", str(out)], [], f"{out}: already exists"


@case("outputs")
def logits_out_exists(env, tmp):
    out = _existing(tmp / "teachers.h5")
    return ["logits", str(env.model), "--data", str(env.data), "--out", str(out), "--quiet"], [], \
        f"{out}: already exists"


@case("outputs")
def logits_out_unwritable(env, tmp):
    (tmp / "file").write_text("a file, not a folder")
    return ["logits", str(env.model), "--data", str(env.data), "--out", str(tmp / "file" / "t.h5"), "--quiet",
            "--no-hash"], [], "t.h5"


@case("outputs")
def evaluate_out_holds_results(env, tmp):
    _existing(tmp / "ev" / "metrics.json")
    return ["evaluate", str(env.model), "--data", str(env.data), "--out", str(tmp / "ev"), "--quiet"], \
        [tmp / "ev" / "confusion.png"], f"{tmp / 'ev' / 'metrics.json'}: already exists"


@case("outputs")
def package_out_exists(env, tmp):
    _existing(tmp / "pkg" / "setup.py")
    return ["package", str(env.model), "--name", "Doe_INST_task1", "--out", str(tmp / "pkg")], \
        [tmp / "pkg" / "pyproject.toml"], "pkg"


@case("outputs")
def package_out_unwritable(env, tmp):
    (tmp / "file").write_text("a file, not a folder")
    return ["package", str(env.model), "--name", "Doe_INST_task1", "--out", str(tmp / "file" / "pkg")], [], "pkg"


@case("run folder")
def crossval_out_held_by_another_run(env, tmp):
    lock = RunLock(tmp / "cv").acquire()  # released by the test after the command
    _HELD.append(lock)
    return (["crossval", "quickstart", "--data", str(env.data), "--out", str(tmp / "cv"), "--quiet", "--epochs", "1"],
            [tmp / "cv"], "in use by asclab run pid")


@case("run folder")
def crossval_out_is_a_foreign_folder(env, tmp):
    _existing(tmp / "cv" / "thesis.tex")
    return (["crossval", "quickstart", "--data", str(env.data), "--out", str(tmp / "cv"), "--quiet", "--epochs", "1"],
            [tmp / "cv" / "crossval.json"], "not an asclab run")


def _teachers(env: Env, out: Path, *extra: str, data: Path | None = None) -> list[str]:
    return ["teachers", "quickstart", "--data", str(data or env.data), "--out", str(out), "--quiet",
            "--set", "train.epochs_cap=1", *extra]


@case("run folder")
def teachers_out_is_a_file(env, tmp):
    (tmp / "teach").write_text("a file")
    return _teachers(env, tmp / "teach"), [], "is a file"


@case("run folder")
def teachers_out_is_a_foreign_folder(env, tmp):
    _existing(tmp / "teach" / "thesis.tex")
    return _teachers(env, tmp / "teach"), [tmp / "teach" / "members", tmp / "teach" / "teachers.json"], \
        "not an asclab run"


@case("run folder")
def teachers_out_held_by_another_run(env, tmp):
    lock = RunLock(tmp / "teach").acquire()  # released by the test after the command
    _HELD.append(lock)
    return _teachers(env, tmp / "teach"), [tmp / "teach"], "in use by asclab run pid"


@case("run folder")
def teachers_out_below_a_file(env, tmp):
    (tmp / "file").write_text("a file, not a folder")
    return _teachers(env, tmp / "file" / "teach"), [], "teach: cannot create this --out folder"


@case("run folder")
def teachers_missing_data_leaves_no_half_folder(env, tmp):
    return _teachers(env, tmp / "teach", data=tmp / "nowhere"), [tmp / "teach"], "nowhere"


@case("recipe")
def teachers_bad_override(env, tmp):
    return _teachers(env, tmp / "teach", "--set", "train.epoch=1"), [tmp / "teach"], "train.epoch"


@case("recipe")
def teachers_second_recipe_unknown(env, tmp):
    argv = _teachers(env, tmp / "teach")
    argv.insert(2, "no_such_teacher")
    return argv, [tmp / "teach"], "no_such_teacher"


@case("outputs")
def hop_below_one_frame(env, tmp):
    return ["predict", str(env.model), str(env.clip), "--quiet", "--hop", "0.00001"], [], "--hop"


@case("outputs")
def hop_negative(env, tmp):
    return ["submit", str(env.model), "--data", str(env.data), "--out", str(tmp / "o.csv"), "--hop", "-1",
            "--quiet"], [tmp / "o.csv"], "--hop"


# ------------------------------------------------------------- model files
class _Evil:
    """Unpickling this would call print: a stand-in for a model file carrying code."""

    def __reduce__(self):
        return (print, ("this must never run",))


def _evil_pickle() -> bytes:
    buf = io.BytesIO()
    torch.save({"format": "asclab-model", "payload": _Evil()}, buf)
    return buf.getvalue()


@case("model file")
def predict_tampered_model(env, tmp):
    bad = tmp / "evil.ckpt"
    bad.write_bytes(_evil_pickle())
    return ["predict", str(bad), str(env.clip), "--quiet"], [], "refused as untrusted"


@case("model file")
def evaluate_garbage_model(env, tmp):
    bad = tmp / "garbage.ckpt"
    bad.write_bytes(b"\x00not a model" * 10)
    return ["evaluate", str(bad), "--data", str(env.data), "--quiet"], [tmp / "metrics.json"], "garbage.ckpt"


@case("model file")
def tampered_feature_config(env, tmp):
    bad = _model(tmp / "feat.ckpt", features={**FEATURES.to_dict(), "n_mels": -3})
    return ["predict", str(bad), str(env.clip), "--quiet"], [], "n_mels"


@case("model file")
def unknown_feature_key_in_model(env, tmp):
    bad = _model(tmp / "feat.ckpt", features={**FEATURES.to_dict(), "secret": 1})
    return ["submit", str(bad), "--data", str(env.data), "--out", str(tmp / "o.csv"), "--quiet"], \
        [tmp / "o.csv"], "secret"


@case("model file")
def complexity_of_missing_model(env, tmp):
    return ["complexity", str(tmp / "none.ckpt")], [], "none.ckpt"


@case("model file")
def tampered_inference_settings(env, tmp):
    bad = _model(tmp / "inf.ckpt", recipe={"inference": {"tta": "abc"}})
    return ["evaluate", str(bad), "--data", str(env.data), "--quiet"], [tmp / "metrics.json"], \
        "inf.ckpt: refused: its inference settings are not valid (recipe key inference.tta"


@case("model file")
def tampered_tta_augment(env, tmp):
    bad = _model(tmp / "inf.ckpt", recipe={"inference": {"tta": 2, "tta_augment": {"spec": [{"name": "no_such_aug"}]}}})
    return ["evaluate", str(bad), "--data", str(env.data), "--quiet"], [tmp / "metrics.json"], "no_such_aug"


_HELD: list[RunLock] = []


@pytest.mark.parametrize("name", list(CATALOGUE), ids=[f"{c}:{n}" for n, (c, _) in CATALOGUE.items()])
def test_bad_input_gives_one_line_and_exit_2(name, env, tmp_path, capsys, one_torch_thread):
    cls, make = CATALOGUE[name]
    argv, absent, needle = make(env, tmp_path)
    capsys.readouterr()
    try:
        rc = main(argv)
    finally:
        while _HELD:
            _HELD.pop().release()
    out, err = capsys.readouterr()
    assert_one_line_error(rc, out, err, needle, absent)
    assert "weights_only=False" not in err and "check_files" not in err
    assert "this must never run" not in out


def assert_one_line_error(rc: int, out: str, err: str, needle: str, absent: list[Path]) -> None:
    """What every bad-input case must show: exit 2, one stderr line naming ``needle``, no
    traceback, and none of the ``absent`` paths written."""
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.splitlines()
    assert rc == 2, f"exit {rc}; stderr: {err!r}"
    assert len(lines) == 1 and lines[0].startswith("asclab: error: "), err
    assert needle in lines[0], lines[0]
    for p in absent:
        assert not p.exists(), f"{p} was left behind"


def test_catalogue_covers_every_class():
    assert {c for c, _ in CATALOGUE.values()} == {"recipe", "run folder", "labels", "audio", "paths", "outputs",
                                                  "model file"}


def test_odd_file_names_print_and_write_correctly(env, tmp_path, capsys):
    """Spaces, unicode and a newline in a file name: the CSV gives the name back exactly."""
    names = ["with space.wav", "ünïcødé 音.wav", "new\nline.wav"]
    paths = [Path(shutil.copy(env.clip, tmp_path / n)) for n in names]
    out = tmp_path / "p.csv"
    assert main(["predict", str(env.model), *map(str, paths), "--quiet", "--csv", str(out)]) == 0
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == [str(p) for p in paths]
    printed = capsys.readouterr().out
    assert "with space.wav" in printed and "ünïcødé 音.wav" in printed


def test_skip_policy_counts_lists_and_reports_in_every_command(env, tmp_path, capsys):
    """With skipping asked for, the same bad files are skipped by train, features, evaluate,
    predict and submit: counted, listed (the run's summary.json and metrics.json) and reported."""
    import json

    data = _copy_set(env, tmp_path)
    bad_train = [data / "audio" / f"{n}-a.wav" for n in ("bus-city-1-0", "park-city-4-1", "street_traffic-city-8-0")]
    bad_test = data / "audio" / "tram-city-9-2-a.wav"
    _truncate(bad_train[0])
    _one_sample(bad_train[1])
    _nan(bad_train[2])
    _one_sample(bad_test)
    for table in ("meta.csv", "evaluation_setup/fold1_train.csv"):  # a metadata row: label outside the scenes
        _rewrite(data / table, "audio/metro-city-2-0-a.wav", 1, "volcano")
    skip = ["--set", "data.on_error=skip"]

    assert main(_train(env, tmp_path / "run", *skip, "--set", "train.batch_size=8", data=data)) == 0
    err = capsys.readouterr().err
    listed = json.loads((tmp_path / "run" / "metrics.json").read_text())["skipped"]
    assert {s["file"] for s in listed if "row" not in s} == {str(p) for p in (*bad_train, bad_test)}
    for s in listed:  # each skipped clip's reason names the metadata file and row that list it
        if "row" not in s:
            assert s["reason"].startswith(_at_row(data, Path(s["file"]).name) + s["file"] + ": "), s
    assert any(s["file"] == str(data / "meta.csv") and "volcano" in s["reason"] for s in listed)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert {s["file"] for s in summary["skipped"]} == {s["file"] for s in listed}
    assert f"skipped {len(listed)} unreadable file(s) or metadata row(s)" in err

    assert main(["features", str(data), "--recipe", "quickstart", *skip, "--quiet",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "skipped 4 unreadable file(s)" in capsys.readouterr().err  # (the metadata row: see open_dataset)

    model = tmp_path / "run" / "model.ckpt"
    assert main(["evaluate", str(model), "--data", str(data), "--out", str(tmp_path / "ev"), "--skip-bad",
                 "--quiet"]) == 0
    assert [s["file"] for s in json.loads((tmp_path / "ev" / "metrics.json").read_text())["skipped"]] == \
        [str(bad_test)]
    assert "skipped 1 unreadable file(s)" in capsys.readouterr().out

    assert main(["predict", str(model), str(bad_test), str(env.clip), "--skip-bad", "--quiet"]) == 0
    assert "skipped 1 unreadable file(s), classified 1" in capsys.readouterr().err

    assert main(["submit", str(model), "--data", str(data), "--out", str(tmp_path / "o.csv"), "--skip-bad",
                 "--year", "2019", "--quiet"]) == 0  # 2019: no complexity limits for the fp32 quickstart
    err = capsys.readouterr().err
    assert str(bad_test) in err and "1 evaluation file(s) missing from the submission" in err


def test_classes_come_from_classes_txt_or_the_labels_with_single_clips_reported(tmp_path, capsys):
    from asclab.data.open import open_data
    from asclab.config import load_config, load_recipe

    root = tmp_path / "man"
    for i in range(3):
        _clip(root / f"c{i}.wav", seed=i)
    (root / "manifest.csv").write_text("path,label,split\nc0.wav,bus,train\nc1.wav,bus,test\nc2.wav,airport,train\n")
    recipe = load_recipe("quickstart")
    assert open_data(root, load_config(recipe)[1].data).classes == ["airport", "bus"]
    assert "note: 1 class(es) with a single clip: airport" in capsys.readouterr().err
    (root / "classes.txt").write_text("tram\nbus\nairport\n")  # declared: its order, classes without clips kept
    assert open_data(root, load_config(recipe)[1].data).classes == ["tram", "bus", "airport"]
    assert "single clip" not in capsys.readouterr().err


def test_existing_output_is_kept_without_force_and_replaced_with_it(env, tmp_path, capsys):
    """The one rule for named outputs: an existing file is refused (and left as it was) unless --force."""
    out = _existing(tmp_path / "p.csv")
    argv = ["predict", str(env.model), str(env.clip), "--quiet", "--csv", str(out)]
    assert main(argv) == 2
    assert out.read_text() == "an earlier result, kept\n"
    assert main([*argv, "--force"]) == 0
    with open(out, newline="", encoding="utf-8") as f:
        assert [r["file"] for r in csv.DictReader(f)] == [str(env.clip)]


def test_evaluate_takes_tta_from_the_model_files_typed_inference_block(env, tmp_path, capsys):
    """A good inference block in a model file is used as the recipe gave it: its TTA copies and
    augmentations (a strong time mask changes the probabilities); ``--tta 0`` turns them off."""
    import json

    recipe = {"inference": {"tta": 2, "tta_augment": {"spec": [{"name": "time_mask", "max_width": 40, "p": 1.0}]}}}
    model = _model(tmp_path / "tta.ckpt", recipe=recipe)
    runs = {}
    for name, extra in (("recipe", []), ("off", ["--tta", "0"])):
        assert main(["evaluate", str(model), "--data", str(env.data), "--out", str(tmp_path / name), "--quiet",
                     *extra]) == 0
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    capsys.readouterr()
    assert runs["recipe"]["tta"] == 2 and runs["off"]["tta"] == 0
    assert runs["recipe"]["log_loss"] != runs["off"]["log_loss"]
