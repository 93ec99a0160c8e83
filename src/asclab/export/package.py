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
tensor, ``log(mel + eps)`` or dB) are the real modules of
``asclab.export.dcase2025_package``, copied verbatim (only ``pyproject.toml`` is
written from a template, with the package name). Each file is one input of its
own length, as the organisers' package does; for a model trained on 1-s clips
and the 1-s evaluation clips this is the clip itself. The per-device complexity is checked against the DCASE 2025 limits (128 kB, 30
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

from asclab.compress.complexity import CHALLENGE_LIMITS
from asclab.compress.deployed import model_complexity, stored_bits
from asclab.errors import AsclabError, ComplexityError, ConfigError
from asclab.io import is_disk_full
from asclab.models.cp_mobile import CPMobile
from asclab.models.device_container import DeviceContainer
from asclab.evaluate.inference import Predictor
from asclab.train.checkpoint import resolve_checkpoint

LIMIT_KEY = "dcase2022_2025_1"
TEMPLATE = Path(__file__).with_name("dcase2025_package")
# template file -> its path in the package ("{name}", "{module}" filled in)
TEMPLATE_FILES = {"_frontend.py": "{name}/_frontend.py", "_net.py": "{name}/_net.py",
                  "_common.py": "{name}/_common.py", "submission_module.py": "{name}/{module}.py",
                  "evaluate_submission.py": "evaluate_submission.py"}
NAME_PATTERN = re.compile(r"[A-Z][A-Za-z]*_[A-Z][A-Za-z0-9]*_task1")


def _member_complexity(pred: Predictor) -> dict[str, dict]:
    """Each device model's verdict under the 2025 rule at the stored dtype's bits
    (``asclab.compress.deployed``); ComplexityError naming the first that fails."""
    report = model_complexity(pred.model, pred.fcfg, bits=stored_bits(pred.model, pred.meta.state_dict))
    out = {}
    for name, rep in (report.get("per_device") or {"all": report}).items():
        verdict = rep["challenges"][LIMIT_KEY]
        if not verdict["pass"]:
            limit = next(lim for lim in CHALLENGE_LIMITS if lim.key == LIMIT_KEY)
            raise ComplexityError(f"device model {name!r} breaks the {limit.title} limits: {verdict['param_bytes']:,}"
                                  f" of {verdict['max_param_bytes']:,} bytes, {verdict['macs']:,} of "
                                  f"{verdict['max_macs']:,} MACs; nothing written")
        out[name] = verdict
    return out


def _architecture(pred: Predictor) -> dict:
    """The CP-Mobile constructor values of the model (its defaults filled in)."""
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
    try:
        _write_tree(staging, name, module, payload, pred, complexity)
    except BaseException as exc:  # a half-written package is never left behind
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, Exception) and (is_disk_full(exc) or isinstance(exc, OSError)):
            kept = "the earlier package is intact" if out.exists() else "nothing was written"
            why = "no space left / file too large" if is_disk_full(exc) else (getattr(exc, "strerror", None) or exc)
            raise AsclabError(f"{out}: cannot write the package ({why}); {kept}") from None
        raise
    if out.is_dir() and not out.is_symlink():
        shutil.rmtree(out)
    elif out.exists() or out.is_symlink():  # --force over a file: replaced by the package folder
        out.unlink()
    staging.rename(out)
    return {"out": str(out), "module": f"{name}.{module}", "complexity": complexity,
            "devices": payload["devices"], "precision": pred.precision}


def _write_tree(staging: Path, name: str, module: str, payload: dict, pred: Predictor, complexity: dict) -> None:
    """The package's files under ``staging`` (renamed into place by the caller)."""
    pkg = staging / name
    for sub in ("ckpts", "resources"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    torch.save(payload, pkg / "ckpts" / f"{module}.pt")
    rng = np.random.default_rng(0)
    sf.write(pkg / "resources" / "dummy.wav", (0.01 * rng.standard_normal(44100)).astype(np.float32), 44100,
             subtype="PCM_16")
    (pkg / "__init__.py").write_text(f'"""{name}: DCASE 2025 task 1 inference package (written by asclab)."""\n')
    for src, dest in TEMPLATE_FILES.items():
        shutil.copyfile(TEMPLATE / src, staging / dest.format(name=name, module=module))
    (staging / "pyproject.toml").write_text((TEMPLATE / "pyproject.toml.in").read_text().replace("__PKG__", name))
    (staging / "README.md").write_text(_readme(name, module, pred, complexity))


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
