"""``asclab package``: the DCASE 2025 task 1 installable inference package of a model.

The form the organisers asked for (CPJKU ``dcase2025_task1_inference``, its
README "Inference API: Required Functions", and the team packages built on it):
an installable distribution ``NAME`` whose submission modules ``NAME.NAME_<i>``
expose

* ``load_model(model_file_path=None)`` -> the model (packaged weights by default),
* ``load_inputs(file_paths, device_ids, model)`` -> one input tensor per file,
* ``get_model_for_device(model, device_id)`` -> the network for a device (the
  general one for an unknown id),
* ``predict(file_paths, device_ids, model_file_path=None, use_cuda=True,
  batch_size=64)`` -> ``(logits, class_order)``: a list of ``[n_classes]``
  tensors, one per file in input order, and the class names;

with the weights inside the package (``NAME/ckpts``), a dummy WAV
(``NAME/resources/dummy.wav``) and, beside it, ``evaluate_submission.py``,
which writes the submission CSV for a folder of files.

The package depends on torch, numpy and soundfile only: the network
(CP-Mobile, alone or one per device) and the front end (mono mix, the
Hann-windowed sinc resampler, STFT, the model's own mel filterbank stored as a
tensor, ``log(mel + eps)`` or dB) are generated as small source files. Each file
is one input of its own length, as the organisers' package does; for a model
trained on 1-s clips and the 1-s evaluation clips this is the clip itself. The
per-device complexity is checked against the DCASE 2025 limits (128 kB, 30
MMAC for each device model) before anything is written.
"""
from __future__ import annotations

import inspect
import re
import shutil
import textwrap
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asclab.errors import ComplexityError, ConfigError
from asclab.evaluate.inference import Predictor
from asclab.train.checkpoint import resolve_checkpoint

LIMIT_KEY = "dcase2022_2025_1"
NAME_PATTERN = re.compile(r"[A-Z][A-Za-z]*_[A-Z][A-Za-z0-9]*_task1")


def _member_complexity(pred: Predictor) -> dict[str, dict]:
    """Each device model's verdict under the 2025 rule; ComplexityError naming the first that fails."""
    from asclab.compress.complexity import CHALLENGE_LIMITS, complexity_report, default_input_shape
    from asclab.models.device_container import DeviceContainer
    from asclab.submit import stored_bits

    bits = stored_bits(pred)
    members = pred.model.members() if isinstance(pred.model, DeviceContainer) else {"all": pred.model}
    out = {}
    for name, net in members.items():
        verdict = complexity_report(net, default_input_shape(pred.fcfg, 1.0), bits=bits)["challenges"][LIMIT_KEY]
        if not verdict["pass"]:
            limit = next(lim for lim in CHALLENGE_LIMITS if lim.key == LIMIT_KEY)
            raise ComplexityError(f"device model {name!r} breaks the {limit.title} limits: {verdict['param_bytes']:,}"
                                  f" of {verdict['max_param_bytes']:,} bytes, {verdict['macs']:,} of "
                                  f"{verdict['max_macs']:,} MACs; nothing written")
        out[name] = verdict
    return out


def _architecture(pred: Predictor) -> dict:
    """The CP-Mobile constructor values of the model (its defaults filled in)."""
    from asclab.models.cp_mobile import CPMobile

    cfg = pred.meta.model
    base = cfg.get("base") if cfg.get("name") == "device_container" else cfg
    if not base or base.get("name") != "cp_mobile":
        raise ConfigError(f"asclab package writes CP-Mobile networks (the DCASE 2024/2025 baselines and their "
                          f"device containers); this model is {(base or cfg).get('name')!r}")
    defaults = {k: p.default for k, p in inspect.signature(CPMobile.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    arch = {**defaults, **{k: v for k, v in base.items() if k != "name"}}
    strides = arch.get("strides") or {3: (1, 2), 4: (2, 1)}
    arch["strides"] = [[int(k), int(v[0]), int(v[1])] for k, v in dict(strides).items()]
    arch["blocks_per_stage"] = [int(b) for b in arch["blocks_per_stage"]]
    arch["num_classes"], arch["in_chans"] = len(pred.classes), pred.fcfg.in_chans
    return arch


def _front_end(pred: Predictor) -> dict:
    f = pred.fcfg
    if f.deltas or f.hpss or f.channels != "mono" or f.scale not in ("log", "db"):
        raise ConfigError("asclab package writes a log-mel front end (mono, scale log or db, no deltas/HPSS); "
                          f"this model has channels={f.channels}, scale={f.scale}, deltas={f.deltas}, hpss={f.hpss}")
    return {"sample_rate": f.sample_rate, "n_fft": f.n_fft, "hop_length": f.hop_length, "center": f.center,
            "pad_mode": f.pad_mode, "power": f.power, "scale": f.scale, "log_eps": f.log_eps, "amin": f.amin,
            "top_db": f.top_db, "resampler": f.resampler}


def _weights(pred: Predictor) -> dict:
    from asclab.models.device_container import DeviceContainer

    members = pred.model.members() if isinstance(pred.model, DeviceContainer) else {"base": pred.model}
    dtype = torch.float16 if pred.precision == "fp16" else torch.float32
    state = {}
    for name, net in members.items():
        state[name] = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).clone()
                       for k, v in net.state_dict().items()}
    mel = pred.features.mel
    return {"format": "asclab-dcase2025-package", "classes": list(pred.classes), "precision": pred.precision,
            "devices": [d for d in members if d != "base"], "models": state,
            "window": mel.window.detach().clone().float(), "filterbank": mel.filterbank.detach().clone().float(),
            "arch": _architecture(pred), "front_end": _front_end(pred)}


def write_package(ckpt: str | Path, out: str | Path, *, name: str, index: int = 1, force: bool = False) -> dict:
    """Write the package folder ``out`` for the model ``ckpt``; a summary (module, per-device complexity)."""
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"--name {name!r}: the DCASE form is Lastname_INST_task1 (e.g. Schmid_CPJKU_task1)")
    if index < 1:
        raise ConfigError(f"--index must be 1 or more, got {index}")
    pred = Predictor.load(resolve_checkpoint(ckpt))
    complexity = _member_complexity(pred)  # before anything is written
    payload = _weights(pred)
    out = Path(out)
    if out.exists() and not force:
        raise ConfigError(f"{out}: exists; choose another --out or pass --force")
    module = f"{name}_{index}"
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    pkg = staging / name
    for sub in ("ckpts", "resources"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    torch.save(payload, pkg / "ckpts" / f"{module}.pt")
    rng = np.random.default_rng(0)
    sf.write(pkg / "resources" / "dummy.wav", (0.01 * rng.standard_normal(44100)).astype(np.float32), 44100,
             subtype="PCM_16")
    (pkg / "__init__.py").write_text(f'"""{name}: DCASE 2025 task 1 inference package (written by asclab)."""\n')
    (pkg / "_frontend.py").write_text(FRONTEND_SRC)
    (pkg / "_net.py").write_text(NET_SRC)
    (pkg / "_common.py").write_text(COMMON_SRC.replace("__PKG__", name))
    (pkg / f"{module}.py").write_text(MODULE_SRC.replace("__PKG__", name).replace("__MODULE__", module))
    (staging / "evaluate_submission.py").write_text(EVALUATE_SRC.replace("__PKG__", name))
    (staging / "pyproject.toml").write_text(PYPROJECT_SRC.replace("__PKG__", name))
    (staging / "README.md").write_text(_readme(name, module, pred, complexity))
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return {"out": str(out), "module": f"{name}.{module}", "complexity": complexity,
            "devices": payload["devices"], "precision": pred.precision}


def _readme(name: str, module: str, pred: Predictor, complexity: dict) -> str:
    rows = "\n".join(f"| {k} | {v['param_bytes']:,} | {v['macs']:,} |" for k, v in complexity.items())
    return textwrap.dedent(f"""\
        # {name}: DCASE 2025 task 1 inference package

        Written by `asclab package` from `{pred.meta.recipe.get('name', 'a model')}`. Depends on torch, numpy
        and soundfile only.

            pip install .
            python -c "import {name}.{module} as m; print(m.predict(['dummy.wav'], ['a']))"
            python evaluate_submission.py --data FOLDER --out output.csv

        API (`{name}.{module}`): `load_model`, `load_inputs`, `get_model_for_device`, `predict`
        (returns a list of per-file logits tensors and the class order). Weights are in `{name}/ckpts`
        ({pred.precision}). Device models: {', '.join(pred.meta.devices) or 'one model for every device'}.

        | model | parameter bytes | MACs (1 s) |
        | --- | ---: | ---: |
        """) + rows + "\n"


PYPROJECT_SRC = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "__PKG__"
version = "0.1.0"
description = "DCASE 2025 task 1 inference package (written by asclab)"
requires-python = ">=3.9"
dependencies = ["torch", "numpy", "soundfile"]

[tool.setuptools]
packages = ["__PKG__", "__PKG__.ckpts", "__PKG__.resources"]

[tool.setuptools.package-data]
"__PKG__.ckpts" = ["*.pt"]
"__PKG__.resources" = ["*.wav"]
"""

FRONTEND_SRC = '''\
"""Audio -> log-mel input: soundfile, mono mix, Hann-windowed sinc resampling, STFT, stored filterbank."""
import math

import numpy as np
import soundfile as sf
import torch


def read_mono(path):
    """(float32 tensor [samples], sample rate): the mean of the channels."""
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(x.mean(axis=1, dtype=np.float32))), int(sr)


def _sinc_kernel(orig, new, width_zc=6, rolloff=0.99):
    base = min(orig, new) * rolloff
    width = math.ceil(width_zc * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float32)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=torch.float32)[:, None, None] / new + idx
    t = (t * base).clamp(-width_zc, width_zc)
    window = torch.cos(t * math.pi / width_zc / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.tensor(1.0), t.sin() / t)
    return kernel * (window * (base / orig)), width


def resample(wave, orig_freq, new_freq):
    """Band-limited resampling of a 1-D float32 signal (windowed sinc, 6 zero crossings, rolloff 0.99)."""
    if orig_freq == new_freq:
        return wave
    g = math.gcd(orig_freq, new_freq)
    orig, new = orig_freq // g, new_freq // g
    kernel, width = _sinc_kernel(orig, new)
    padded = torch.nn.functional.pad(wave[None], (width, width + orig))
    y = torch.nn.functional.conv1d(padded[:, None], kernel, stride=orig)
    return y.transpose(1, 2).reshape(-1)[: math.ceil(new * wave.shape[-1] / orig)]


class LogMel(torch.nn.Module):
    """wave [B, N] at the model rate -> [B, 1, n_mels, frames] (float32)."""

    def __init__(self, cfg, window, filterbank):
        super().__init__()
        self.cfg = dict(cfg)
        self.register_buffer("window", window.float())
        self.register_buffer("filterbank", filterbank.float())

    def forward(self, wave):
        c = self.cfg
        x = wave.float()
        if c["center"]:
            half = c["n_fft"] // 2
            x = torch.nn.functional.pad(x[:, None], (half, half), mode=c["pad_mode"])[:, 0]
        frames = x.unfold(-1, c["n_fft"], c["hop_length"]) * self.window
        spec = torch.view_as_real(torch.fft.rfft(frames))
        power = spec[..., 0].square() + spec[..., 1].square()
        if c["power"] != 2.0:
            power = power.pow(c["power"] / 2.0)
        mel = self.filterbank @ power.transpose(-1, -2)
        if c["scale"] == "log":
            out = torch.log(mel + c["log_eps"])
        else:
            out = 10.0 * torch.log10(mel.clamp_min(c["amin"]))
            if c["top_db"] is not None:
                out = torch.maximum(out, out.amax(dim=(-2, -1), keepdim=True) - c["top_db"])
        return out[:, None]
'''

NET_SRC = '''\
"""CP-Mobile (the DCASE 2024/2025 task 1 baseline network) and a per-device container."""
import torch
import torch.nn as nn


def make_divisible(value, divisor=8):
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_bn(cin, cout, k, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Block(nn.Module):
    def __init__(self, cin, cout, expansion, stride):
        super().__init__()
        hidden = make_divisible(cin * expansion, 8)
        self.block = nn.Sequential(conv_bn(cin, hidden, 1), conv_bn(hidden, hidden, 3, stride, hidden),
                                   conv_bn(hidden, cout, 1, act=False))
        self.use_shortcut = cin == cout
        strided = tuple(stride) != (1, 1)
        self.shortcut = nn.AvgPool2d(3, stride=stride, padding=1) if self.use_shortcut and strided else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x):
        y = self.block(x)
        if self.use_shortcut:
            y = y + self.shortcut(x)
        return self.act(y)


class CPMobile(nn.Module):
    def __init__(self, arch):
        super().__init__()
        strides = {int(i): (int(f), int(t)) for i, f, t in arch["strides"]}
        base = make_divisible(arch["base_channels"], 8)
        widths = [make_divisible(base * arch["channels_multiplier"] ** s, 8)
                  for s in range(len(arch["blocks_per_stage"]))]
        self.stem = nn.Sequential(conv_bn(arch["in_chans"], base // 4, 3, 2), conv_bn(base // 4, base, 3, 2))
        blocks, chans, index = [], base, 0
        for width, n in zip(widths, arch["blocks_per_stage"]):
            for _ in range(n):
                index += 1
                blocks.append(Block(chans, width, arch["expansion"], strides.get(index, (1, 1))))
                chans = width
        self.stages = nn.Sequential(*blocks)
        self.classifier = conv_bn(chans, arch["num_classes"], 1, act=False)

    def forward(self, x):
        return self.classifier(self.stages(self.stem(x))).mean(dim=(2, 3))


class DeviceModels(nn.Module):
    """The general model and one model per training device."""

    def __init__(self, arch, devices):
        super().__init__()
        self.base = CPMobile(arch)
        self.device_models = nn.ModuleDict({d: CPMobile(arch) for d in devices})

    def get_model_for_device(self, device_id):
        return self.device_models[device_id] if device_id in self.device_models else self.base
'''

COMMON_SRC = '''\
"""The DCASE 2025 task 1 API over a packaged weights file (torch, numpy, soundfile only)."""
from collections import defaultdict

import torch

from __PKG__ import _frontend, _net


class Submission(torch.nn.Module):
    """Front end + device models; ``class_order`` names the logit columns."""

    def __init__(self, payload):
        super().__init__()
        self.precision = payload["precision"]
        self.class_order = list(payload["classes"])
        self.front_end = _frontend.LogMel(payload["front_end"], payload["window"], payload["filterbank"])
        self.sample_rate = int(payload["front_end"]["sample_rate"])
        self.model = _net.DeviceModels(payload["arch"], payload["devices"])
        models = payload["models"]
        self.model.base.load_state_dict(models["base"], strict=True)
        for d in payload["devices"]:
            self.model.device_models[d].load_state_dict(models[d], strict=True)
        self.model.eval()
        if self.precision == "fp16":
            self.model.half()

    def preprocess(self, wave):
        x = self.front_end(wave)
        return x.half() if self.precision == "fp16" else x


def load_model(model_file_path):
    payload = torch.load(model_file_path, map_location="cpu", weights_only=True)
    return Submission(payload)


def load_inputs(file_paths, device_ids, model):
    """One input [1, 1, n_mels, frames] per file, each file at its own length."""
    assert len(file_paths) == len(device_ids), "one device id per file"
    dev = next(model.front_end.buffers()).device
    inputs = []
    with torch.no_grad():
        for path in file_paths:
            wave, sr = _frontend.read_mono(path)
            wave = _frontend.resample(wave, sr, model.sample_rate)
            inputs.append(model.preprocess(wave[None].to(dev)).cpu())
    return inputs


def get_model_for_device(model, device_id):
    return model.model.get_model_for_device(device_id)


def predict(file_paths, device_ids, model, use_cuda=True, batch_size=64):
    """(list of [n_classes] logits tensors in input order, class order); files grouped by device."""
    assert len(file_paths) == len(device_ids), "one device id per file"
    device = torch.device("cuda" if use_cuda and torch.cuda.is_available() else "cpu")
    model.to(device)
    inputs = load_inputs(file_paths, device_ids, model)
    groups = defaultdict(list)
    for i, d in enumerate(device_ids):
        groups[d].append(i)
    outputs = [None] * len(inputs)
    with torch.no_grad():
        for d, rows in groups.items():
            net = get_model_for_device(model, d)
            for i in rows:  # one file per forward pass: no padding to other files' lengths
                outputs[i] = net(inputs[i].to(device)).float().cpu()[0]
    return outputs, list(model.class_order)
'''

MODULE_SRC = '''\
"""Submission module __MODULE__: the DCASE 2025 task 1 inference API."""
import importlib.resources as resources

from __PKG__ import _common

DEFAULT_WEIGHTS = "__MODULE__.pt"


def _default_path():
    return str(resources.files("__PKG__.ckpts").joinpath(DEFAULT_WEIGHTS))


def load_model(model_file_path=None):
    """The model; ``model_file_path=None`` loads the packaged weights."""
    return _common.load_model(model_file_path or _default_path())


def load_inputs(file_paths, device_ids, model):
    """Model inputs, one per file, in the order of ``file_paths``."""
    return _common.load_inputs(file_paths, device_ids, model)


def get_model_for_device(model, device_id):
    """The network for ``device_id`` (the general model for a device without its own)."""
    return _common.get_model_for_device(model, device_id)


def predict(file_paths, device_ids, model_file_path=None, use_cuda=True, batch_size=64):
    """``(logits, class_order)``: a list of [n_classes] tensors, one per file, and the class names."""
    model = load_model(model_file_path)
    return _common.predict(file_paths, device_ids, model, use_cuda=use_cuda, batch_size=batch_size)
'''

EVALUATE_SRC = '''\
"""Write the DCASE task 1 submission CSV for a folder of audio files.

    python evaluate_submission.py --data FOLDER --out output.csv [--index 1]

Device ids come from FOLDER/evaluation_setup/fold1_test.csv (columns filename,
device_id) when it exists, else from the TAU file name (its last "-" field,
e.g. ...-s1.wav), else "unknown" (the general model).
"""
import argparse
import csv
import importlib
from pathlib import Path

import torch

AUDIO = (".wav", ".flac", ".ogg")


def files_and_devices(root):
    listing = root / "evaluation_setup" / "fold1_test.csv"
    if listing.exists():
        with open(listing, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\\t"))
        return [(r["filename"], r.get("device_id") or "unknown") for r in rows]
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() in AUDIO)
    return [(n, Path(n).stem.rsplit("-", 1)[-1] if "-" in Path(n).stem else "unknown") for n in names]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="output.csv")
    ap.add_argument("--index", type=int, default=1)
    args = ap.parse_args()
    api = importlib.import_module(f"__PKG__.__PKG___{args.index}")
    root = Path(args.data)
    items = files_and_devices(root)
    logits, classes = api.predict([str(root / n) for n, _ in items], [d for _, d in items],
                                  use_cuda=torch.cuda.is_available())
    probs = torch.softmax(torch.stack(logits), dim=1)
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f, delimiter="\\t", lineterminator="\\n")
        w.writerow(["filename", "scene_label", *classes])
        for (name, _), p in zip(items, probs):
            w.writerow([name, classes[int(p.argmax())], *(f"{float(v):.6f}" for v in p)])
    print(f"wrote {args.out} ({len(items)} files)")


if __name__ == "__main__":
    main()
'''
