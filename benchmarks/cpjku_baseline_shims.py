"""Run the CPJKU DCASE 2024 task 1 baseline's own training code here, unedited.

The baseline (github ``CPJKU/dcase2024_task1_baseline``, read from the bare mirror the
``fetch`` tool makes) trains with ``run_training.py``'s ``PLModule``. Its imports do not all
work on this machine: ``torchaudio`` and ``torchvision`` do not import with torch 2.13 CPU,
``wandb`` is not installed, and ``dataset/dcase24.py`` needs pandas and the TAU 2022/2024
layout. ``install_shims`` puts stand-ins for what the baseline uses into ``sys.modules``
(the first three re-implement library code in torch, as /work/shared/checkpoints/README.md
describes; the rest is ours):

* ``torchaudio.load``, ``torchaudio.transforms.MelSpectrogram`` and
  ``torchvision.ops.misc.Conv2dNormActivation``: those of ``published_package_shims``
  (imported from it, not repeated here);
* ``torchaudio.transforms.Resample``: torchaudio's module, its sinc kernel computed once at
  construction (``published_package_shims._get_sinc_resample_kernel`` with ``dtype=None``:
  float64 arithmetic, stored as a float32 non-persistent buffer ``kernel``, as torchaudio
  does) and applied per call by the same strided ``conv1d``
  (``_apply_sinc_resample_kernel``). It equals the shim's functional ``resample`` (whose
  kernel is computed in the waveform's float32) up to that arithmetic: measured 9e-7 at most
  on a real TUT 2017 clip, 1.5e-5 on uniform noise in [-1, 1];
* ``torchaudio.transforms.FrequencyMasking`` / ``TimeMasking`` with ``iid_masks=True``:
  torchaudio's ``mask_along_axis_iid`` semantics, our code: for every example (and channel)
  a width ``v = rand * param`` and a start ``v0 = rand * (size - v)``, both drawn with
  ``torch.rand`` in that order, then ``[int(v0), int(v0) + int(v))`` filled with 0 along the
  mel (frequency) or frame (time) axis; ``param`` 0 leaves the input as it is (the
  baseline's ``--timem 0``). ``iid_masks=False`` is not needed and raises;
* ``wandb``: an empty module (``run_training.py`` imports it; only ``train()``, which the
  benchmark does not call, uses it);
* ``dataset`` / ``dataset.dcase24``: ``get_training_set``, ``get_test_set``,
  ``get_eval_set`` over the clips given to ``install_shims`` (TUT 2017 here, read through
  asclab's own reader so both pipelines get the same files and labels). An item is what
  ``BasicDCASE24Dataset`` yields: the waveform ``[1, samples]`` float32 read per
  ``__getitem__`` with the ``torchaudio.load`` stand-in (soundfile), mixed to mono by the mean
  over channels when a file is stereo (the TAU files the baseline reads are mono; the TUT
  2017 copy here is mono too), the listed file name, the label index (classes sorted, as
  sklearn's ``LabelEncoder`` orders them), the device index and the city index (TUT 2017
  has neither device nor city: the device index is 0, the city index encodes the
  recording). The split argument is ignored (every given clip is in the training set) and
  the test set is the same clips unrolled. With ``roll``, the training set is wrapped in the
  baseline's own ``RollDataset``: its class source is read from the mirror's
  ``dataset/dcase24.py`` with ``ast`` and executed unedited (it needs only ``np`` and
  ``TorchDataset``; its ``np.random.random_integers`` draws the shift in ``[-roll, roll]``).

The installed libraries the baseline imports (pytorch_lightning, transformers, torchinfo,
sklearn) are imported before the stand-ins go in (``preload_dependencies``): their
availability checks call ``importlib.util.find_spec``, which raises on a stand-in module.

``baseline_config`` builds the training configuration from ``run_training.py``'s own
argparse defaults (the ``parser.add_argument(..., default=...)`` calls read with ``ast``),
overriding only what the caller names. ``import_run_training`` imports the unedited
``run_training`` module from the folder ``materialise`` wrote.

Not part of asclab: the benchmark ``bench_train_baseline.py`` and its test import it.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import math
import sys
import types
from collections.abc import Sequence
from pathlib import Path

import published_package_shims as shims  # this folder is on sys.path: the scripts' own

MIRROR = Path("/work/.mirror/CPJKU+dcase2024_task1_baseline/repo")
TUT2017 = shims.SHARED / "data" / "tut2017"
FETCH_HINT = "fetch github:CPJKU/dcase2024_task1_baseline (the fetch tool)"
STANDIN_MODULES = (*shims.SHIM_MODULES, "wandb", "dataset", "dataset.dcase24")
BASELINE_PACKAGES = ("run_training", "models", "helpers", "dataset")  # top-level names the baseline imports


def missing_reason(mirror: Path = MIRROR) -> str | None:
    """Why the baseline's code cannot be read here (one line), or None."""
    if not (Path(mirror) / "HEAD").is_file():
        return f"CPJKU DCASE 2024 baseline mirror absent ({mirror}); get it with {FETCH_HINT}"
    return None


def materialise(dest: Path, mirror: Path = MIRROR) -> tuple[Path, str]:
    """The baseline's whole tree, unedited, under ``dest``; returns (dest, commit)."""
    return shims.materialise(dest, mirror, under=None)


def is_baseline_module(name: str) -> bool:
    """A ``sys.modules`` entry the baseline or its stand-ins own (to save and restore)."""
    return name in STANDIN_MODULES or any(name == p or name.startswith(p + ".") for p in BASELINE_PACKAGES)


# ---- configuration from run_training.py's argparse defaults ------------------------------------

def argparse_defaults(source: str) -> dict:
    """``{dest: default}`` of every ``parser.add_argument('--name', ..., default=...)`` call in
    ``source`` (``action='store_true'`` without a default: False; no default: None)."""
    out: dict = {}
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument" and node.args):
            continue
        flag = ast.literal_eval(node.args[0])
        kw = {k.arg: k.value for k in node.keywords}
        if "default" in kw:
            value = ast.literal_eval(kw["default"])
        else:
            action = ast.literal_eval(kw["action"]) if "action" in kw else None
            value = False if action == "store_true" else None
        out[flag.lstrip("-").replace("-", "_")] = value
    return out


def baseline_config(root: Path, **overrides) -> argparse.Namespace:
    """``run_training.py``'s argparse defaults with ``overrides`` (each must name a default)."""
    values = argparse_defaults((Path(root) / "run_training.py").read_text(encoding="utf-8"))
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise KeyError(f"not run_training.py arguments: {', '.join(unknown)}")
    return argparse.Namespace(**{**values, **overrides})


# ---- the baseline's RollDataset, read from its file -------------------------------------------

def roll_dataset_class(root: Path) -> type:
    """``RollDataset`` from ``dataset/dcase24.py``, its class source executed unedited."""
    import numpy as np
    from torch.utils.data import Dataset

    path = Path(root) / "dataset" / "dcase24.py"
    source = path.read_text(encoding="utf-8")
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "RollDataset")
    namespace = {"np": np, "TorchDataset": Dataset, "__name__": "dataset.dcase24"}
    exec(compile(ast.get_source_segment(source, node), str(path), "exec"), namespace)  # noqa: S102 - their code
    return namespace["RollDataset"]


# ---- the stand-ins ----------------------------------------------------------------------------

def mask_along_axis_iid(specgrams, mask_param: int, mask_value: float, axis: int, p: float = 1.0):
    """torchaudio.functional.mask_along_axis_iid's semantics: one mask per example (and channel)."""
    import torch

    dim = specgrams.dim()
    if dim < 3 or axis not in (dim - 2, dim - 1):
        raise ValueError("stand-in: masks along one of the last two axes of a (..., freq, time) tensor only")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1] ({p} given)")
    max_width = mask_param if p == 1.0 else min(mask_param, int(specgrams.shape[axis] * p))
    if max_width < 1:
        return specgrams
    shape, kw = specgrams.shape[:dim - 2], {"device": specgrams.device, "dtype": specgrams.dtype}
    width = torch.rand(shape, **kw) * max_width
    start = torch.rand(shape, **kw) * (specgrams.size(axis) - width)
    lo = start.long()[..., None, None]
    hi = (start.long() + width.long())[..., None, None]
    pos = torch.arange(0, specgrams.size(axis), **kw)
    out = specgrams.transpose(axis, -1)
    out = out.masked_fill((pos >= lo) & (pos < hi), mask_value)
    return out.transpose(axis, -1)


def _transforms():
    """The stand-in ``Resample``, ``FrequencyMasking`` and ``TimeMasking`` module classes."""
    from torch import nn

    class Resample(nn.Module):
        """torchaudio.transforms.Resample: the sinc kernel built once, float32 buffer."""

        def __init__(self, orig_freq=16000, new_freq=16000, resampling_method="sinc_interp_hann",
                     lowpass_filter_width=6, rolloff=0.99, beta=None, *, dtype=None):
            super().__init__()
            self.orig_freq, self.new_freq = orig_freq, new_freq
            self.gcd = math.gcd(int(orig_freq), int(new_freq))
            self.resampling_method, self.lowpass_filter_width, self.rolloff = (resampling_method,
                                                                                lowpass_filter_width, rolloff)
            self.beta = beta
            if self.orig_freq != self.new_freq:
                kernel, self.width = shims._get_sinc_resample_kernel(
                    orig_freq, new_freq, self.gcd, lowpass_filter_width, rolloff, resampling_method, beta,
                    dtype=dtype)
                self.register_buffer("kernel", kernel, persistent=False)

        def forward(self, waveform):
            if self.orig_freq == self.new_freq:
                return waveform
            return shims._apply_sinc_resample_kernel(waveform, self.orig_freq, self.new_freq, self.gcd,
                                                     self.kernel, self.width)

    class _AxisMasking(nn.Module):
        """torchaudio.transforms._AxisMasking, ``iid_masks=True`` only."""

        def __init__(self, mask_param: int, axis: int, iid_masks: bool, p: float = 1.0):
            super().__init__()
            if not iid_masks:
                raise NotImplementedError("stand-in: iid_masks=True only (what the baseline uses)")
            self.mask_param, self.axis, self.iid_masks, self.p = mask_param, axis, iid_masks, p

        def forward(self, specgram, mask_value: float = 0.0):
            return mask_along_axis_iid(specgram, self.mask_param, mask_value, self.axis + specgram.dim() - 3, self.p)

    class FrequencyMasking(_AxisMasking):
        """torchaudio.transforms.FrequencyMasking (axis: the mel bins)."""

        def __init__(self, freq_mask_param: int, iid_masks: bool = False):
            super().__init__(freq_mask_param, 1, iid_masks)

    class TimeMasking(_AxisMasking):
        """torchaudio.transforms.TimeMasking (axis: the frames)."""

        def __init__(self, time_mask_param: int, iid_masks: bool = False, p: float = 1.0):
            super().__init__(time_mask_param, 2, iid_masks, p)

    return Resample, FrequencyMasking, TimeMasking


def _encode(values: Sequence[str]):
    """sklearn LabelEncoder's codes (sorted classes) as a numpy int64 array."""
    import numpy as np

    order = {v: i for i, v in enumerate(sorted(set(values)))}
    return np.array([order[v] for v in values], dtype=np.int64)


def _datasets(records, classes: Sequence[str]):
    """The stand-in ``BasicDCASE24Dataset`` and ``BasicDCASE24EvalDataset`` over asclab Records."""
    import numpy as np
    import torch
    from torch.utils.data import Dataset

    def waveform(path):
        import torchaudio  # the stand-in (installed before any item is read)

        sig, _sr = torchaudio.load(path)
        return sig.mean(dim=0, keepdim=True) if sig.shape[0] > 1 else sig

    class Clips(Dataset):
        """(waveform [1, samples], file, label, device, city) per clip, the file read per item."""

        def __init__(self):
            self.paths = [str(r.path) for r in records]
            self.files = [r.extra.get("filename", Path(r.path).name) for r in records]
            index = {c: i for i, c in enumerate(classes)}
            self.labels = torch.from_numpy(np.array([index[r.label] for r in records], dtype=np.int64))
            self.devices = _encode([r.device or "a" for r in records])
            self.cities = _encode([r.city or r.identifier or "" for r in records])

        def __getitem__(self, i):
            return waveform(self.paths[i]), self.files[i], self.labels[i], self.devices[i], self.cities[i]

        def __len__(self):
            return len(self.paths)

    class EvalClips(Clips):
        """(waveform, file) per clip, as ``BasicDCASE24EvalDataset``."""

        def __getitem__(self, i):
            return waveform(self.paths[i]), self.files[i]

    return Clips, EvalClips


def dataset_module(records, classes: Sequence[str], roll_cls: type) -> types.ModuleType:
    """The stand-in ``dataset.dcase24``: the baseline's three data set functions over ``records``."""
    clips, eval_clips = _datasets(records, classes)
    mod = types.ModuleType("dataset.dcase24")
    mod.__doc__ = "stand-in (benchmarks/cpjku_baseline_shims.py): the given clips, not the TAU 2024 layout"

    def get_training_set(split=100, roll=False):
        ds = clips()
        return roll_cls(ds, shift_range=roll) if roll else ds

    mod.get_training_set = get_training_set
    mod.get_test_set = clips
    mod.get_eval_set = eval_clips
    mod.RollDataset = roll_cls
    return mod


def preload_dependencies() -> None:
    """Import the baseline's installed dependencies before any stand-in is in ``sys.modules``:
    pytorch_lightning (through torchmetrics), transformers and lightning_utilities ask
    ``importlib.util.find_spec("torchvision")`` whether a library is there, which raises on a
    stand-in module (it has no ``__spec__``); imported first, they find none and leave it."""
    for name in ("pytorch_lightning", "transformers", "transformers.optimization", "torchinfo", "sklearn"):
        importlib.import_module(name)


def install_shims(root: Path, records, classes: Sequence[str]) -> None:
    """Every stand-in (``STANDIN_MODULES``) in ``sys.modules``; the data set over ``records``."""
    preload_dependencies()
    shims.install_shims()
    resample_cls, freq_cls, time_cls = _transforms()
    transforms = sys.modules["torchaudio.transforms"]
    transforms.Resample, transforms.FrequencyMasking, transforms.TimeMasking = resample_cls, freq_cls, time_cls
    wandb = types.ModuleType("wandb")
    wandb.__doc__ = "stand-in (benchmarks/cpjku_baseline_shims.py): empty"
    package = types.ModuleType("dataset")
    package.__path__ = []  # a package: ``dataset.dcase24`` resolves from sys.modules
    package.dcase24 = dataset_module(records, classes, roll_dataset_class(root))
    sys.modules.update({"wandb": wandb, "dataset": package, "dataset.dcase24": package.dcase24})


def import_run_training(root: Path, records, classes: Sequence[str]):
    """The baseline's ``run_training`` module imported, unedited, from ``root`` (stand-ins first)."""
    install_shims(root, records, classes)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module("run_training")


# ---- the clips --------------------------------------------------------------------------------

def worker_init_fn_numpy2(wid: int) -> None:
    """The baseline's ``helpers/init.py`` ``worker_init_fn`` (torch, numpy and python seeds from
    ``SeedSequence([torch.initial_seed(), wid])``, three children), with the entropy words cast to
    Python ints: the original raises ``OverflowError`` under numpy >= 2 (``2 ** 32 * np.uint32``),
    so its DataLoader cannot run with ``num_workers > 0`` here. Our code, same seeds as under numpy 1."""
    import random

    import numpy as np
    import torch

    seq = np.random.SeedSequence([torch.initial_seed(), wid])

    def child_state():
        return seq.spawn(1)[0].generate_state(2, dtype=np.uint32)

    torch.random.manual_seed(sum(int(w) << (32 * k) for k, w in enumerate(child_state())))
    np.random.seed(child_state())
    random.seed(sum(int(w) << (32 * k) for k, w in enumerate(child_state())))


def tut_clips(data: Path = TUT2017):
    """``(records, classes)`` of TUT 2017 by asclab's reader (``asclab.data.open_dataset``)."""
    from asclab.data import open_dataset

    index = open_dataset(data)
    return list(index.records), list(index.classes)


def spread_clips(records, classes: Sequence[str], clips: int | None) -> list:
    """``clips`` of ``records`` (None or too many: all), taken in turn from each class (meta.txt
    order within a class), so that every class appears once there are at least as many clips as
    classes; returned in meta.txt order."""
    if clips is None or clips >= len(records):
        return list(records)
    by_class = {c: [i for i, r in enumerate(records) if r.label == c] for c in classes}
    chosen: list[int] = []
    depth = 0
    while len(chosen) < clips:
        for c in classes:
            if depth < len(by_class[c]) and len(chosen) < clips:
                chosen.append(by_class[c][depth])
        depth += 1
    return [records[i] for i in sorted(chosen)]
