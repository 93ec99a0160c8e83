"""Read the CPJKU-family Lightning checkpoints into asclab model files.

Layouts read (the organisers' DCASE baselines and the submissions built on them):

* DCASE 2024 task 1 baseline (CPJKU dcase2024_task1_baseline): ``model.in_c.*``,
  ``model.stages.s<i>.b<j>.*``, ``model.feed_forward.*`` -> asclab ``cp_mobile``;
* DCASE 2025 task 1 baseline and its device container (CPJKU
  dcase2025_task1_baseline ``MultiDeviceModelContainer``):
  ``multi_device_model.base_model.*`` and ``multi_device_model.device_models.<id>.*``
  -> ``device_container`` of ``cp_mobile`` members.

Key mapping onto ``asclab.models.cp_mobile``: ``in_c.N`` -> ``stem.N``,
``stages.s<i>.b<j>`` -> ``stages.<j - 1>`` (blocks numbered through the
stages), ``feed_forward.0`` (1x1 conv) / ``.1`` (BN) -> ``classifier.0`` / ``.1``;
the width, expansion and blocks per stage are read from the shapes and every
shape is checked against the network asclab builds. Strides are not in the
weights; the baselines' (b3 (1, 2), b4 (2, 1)) are used.

The front end comes from the Lightning module's ``mel.*`` buffers where they
are present: the resampling kernel (``mel.0.kernel``; checked against the
Hann-windowed sinc of ``asclab.data.sinc_resample`` for 44.1 -> 32 kHz), the
STFT window (``mel.1.spectrogram.window``: its length) and the mel filterbank
(``mel.1.mel_scale.fb``: FFT size and mel bands, checked against torchaudio's
HTK construction). Without them the baselines' documented settings are used:
32 kHz, 4096-point FFT, 3072-sample window, hop 500, 256 HTK mel bands without
normalisation, ``center=True`` with reflect padding, power 2, ``log(mel + 1e-5)``.
The hop is never stored and is always the documented 500. Classes are the TAU
order the baselines use.
"""
from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path

import torch

from asclab.data.sinc_resample import sinc_kernel
from asclab.errors import CheckpointError
from asclab.features.torchaudio_fb import torchaudio_mel_filterbank
from asclab.models import create_model
from asclab.train.checkpoint import ModelFile, _refusal, save_model_file

TAU_CLASSES = ["airport", "bus", "metro", "metro_station", "park", "public_square", "shopping_mall",
               "street_pedestrian", "street_traffic", "tram"]

# CPJKU dcase2024/2025_task1_baseline front end (their README and config; torchaudio defaults elsewhere)
BASELINE_FEATURES = {
    "sample_rate": 32000, "n_fft": 4096, "win_length": 3072, "hop_length": 500, "n_mels": 256,
    "fmin": 0.0, "fmax": None, "htk": True, "mel_norm": None, "center": True, "pad_mode": "reflect",
    "power": 2.0, "scale": "log", "log_eps": 1e-5, "channels": "mono", "resampler": "sinc_hann",
    "mel_fb": "torchaudio",
}
BASELINE_RESAMPLE_FROM = 44100  # the TAU 2022 Mobile clips the baselines were trained on

_CONTAINER = "multi_device_model."
_SINGLE = "model."


def read_lightning_checkpoint(path: str | Path) -> dict:
    """The ``state_dict`` of a Lightning checkpoint (or a bare state dict), loaded with weights_only."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{p}: {_refusal(str(exc))}") from None
    except Exception as exc:
        raise CheckpointError(f"{p}: not a readable checkpoint ({type(exc).__name__})") from None
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{p}: no state_dict of tensors in this file")
    check_state(state, str(p))
    return state


# Bounds of the CPJKU layouts (the largest baseline tensor has about 37,000 elements, the mel
# filterbank 2049 x 256): a file that declares more is refused before anything is computed from it.
MAX_TENSOR_ELEMENTS = 1 << 22
MAX_TENSOR_DIMS = 4


def check_state(state: dict, where: str) -> None:
    """Key types, tensor ranks and sizes (from the declared shapes, before any arithmetic), and
    finite values; CheckpointError naming the file and the first offending entry."""
    for k, v in state.items():
        if not isinstance(k, str):
            raise CheckpointError(f"{where}: state_dict key {k!r} is not a parameter name (a string)")
        if v.dim() > MAX_TENSOR_DIMS or v.numel() > MAX_TENSOR_ELEMENTS:
            raise CheckpointError(f"{where}: {k} declares shape {tuple(v.shape)}, beyond the CPJKU layouts "
                                  f"(at most {MAX_TENSOR_DIMS} dimensions and {MAX_TENSOR_ELEMENTS:,} values)")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"{where}: {k} holds NaN or infinite values; refused (a model trained or "
                                  "saved wrongly gives no usable predictions)")


def _map_key(key: str) -> str | None:
    """CPJKU network key -> asclab cp_mobile key (None: not a network key)."""
    m = re.fullmatch(r"in_c\.(\d+)\.(.+)", key)
    if m:
        return f"stem.{m.group(1)}.{m.group(2)}"
    m = re.fullmatch(r"stages\.s\d+\.b(\d+)\.(.+)", key)
    if m:
        return f"stages.{int(m.group(1)) - 1}.{m.group(2)}"
    m = re.fullmatch(r"feed_forward\.([01])\.(.+)", key)
    if m:
        return f"classifier.{m.group(1)}.{m.group(2)}"
    return None


def _blocks_per_stage(keys: list[str]) -> tuple[int, ...]:
    stages: dict[int, set[int]] = {}
    for k in keys:
        m = re.match(r"stages\.s(\d+)\.b(\d+)\.", k)
        if m:
            stages.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    return tuple(len(stages[s]) for s in sorted(stages))


def _convert_network(state: dict[str, torch.Tensor], where: str) -> tuple[dict, dict]:
    """(asclab cp_mobile state dict, model config) for one CPJKU network's keys (prefix removed)."""
    unknown = [k for k in state if _map_key(k) is None]
    if unknown:
        raise CheckpointError(f"{where}: keys that match no CP-Mobile layer: {', '.join(unknown[:4])}"
                              + (f" (+{len(unknown) - 4} more)" if len(unknown) > 4 else ""))
    mapped = {_map_key(k): v for k, v in state.items()}
    try:
        n_classes = int(mapped["classifier.0.weight"].shape[0])
        in_chans = int(mapped["stem.0.0.weight"].shape[1])
        base = int(mapped["stem.1.0.weight"].shape[0])
    except KeyError as exc:
        raise CheckpointError(f"{where}: no {exc.args[0]} (in_c / feed_forward layers missing)") from None
    cfg = {"name": "cp_mobile", "base_channels": base, "blocks_per_stage": list(_blocks_per_stage(list(state)))}
    ref = create_model("cp_mobile", num_classes=n_classes, in_chans=in_chans,
                       **{k: v for k, v in cfg.items() if k != "name"}).state_dict()
    missing = sorted(set(ref) - set(mapped))
    extra = sorted(set(mapped) - set(ref))
    wrong = [k for k in ref if k in mapped and tuple(ref[k].shape) != tuple(mapped[k].shape)]
    if missing or extra or wrong:
        parts = ([f"missing {', '.join(missing[:3])}"] if missing else []) + \
                ([f"unexpected {', '.join(extra[:3])}"] if extra else []) + \
                ([f"shape of {wrong[0]} {tuple(mapped[wrong[0]].shape)} != {tuple(ref[wrong[0]].shape)}"]
                 if wrong else [])
        raise CheckpointError(f"{where}: not the CP-Mobile baseline network ({'; '.join(parts)})")
    return {k: mapped[k] for k in ref}, {**cfg, "_classes": n_classes, "_in_chans": in_chans}


def _front_end(state: dict[str, torch.Tensor], where: str) -> tuple[dict, dict]:
    """(features dict, provenance notes): derived from ``mel.*`` buffers where present."""
    feats = dict(BASELINE_FEATURES)
    notes: dict = {"hop_length": "documented baseline setting (not stored in the checkpoint)"}
    window = state.get("mel.1.spectrogram.window")
    fb = state.get("mel.1.mel_scale.fb")
    kernel = state.get("mel.0.kernel")
    if window is not None:
        if window.dim() != 1 or not 16 <= window.numel() <= 1 << 16:
            raise CheckpointError(f"{where}: mel.1.spectrogram.window has shape {tuple(window.shape)}; a 1-D STFT "
                                  "window of 16 to 65,536 samples was expected")
        n = int(window.numel())
        if not torch.allclose(window.float(), torch.hann_window(n), atol=1e-7):
            raise CheckpointError(f"{where}: mel.1.spectrogram.window is not a periodic Hann window")
        feats["win_length"] = n
        notes["win_length"] = "mel.1.spectrogram.window"
    if fb is not None:
        if fb.dim() != 2 or not (2 <= fb.shape[0] <= (1 << 15) + 1 and 1 <= fb.shape[1] <= 1024):
            raise CheckpointError(f"{where}: mel.1.mel_scale.fb has shape {tuple(fb.shape)}; a 2-D filterbank "
                                  "[FFT bins, mel bands] (at most 32,769 x 1,024) was expected")
        n_freqs, n_mels = (int(s) for s in fb.shape)
        feats["n_fft"], feats["n_mels"] = 2 * (n_freqs - 1), n_mels
        want = torch.from_numpy(torchaudio_mel_filterbank(feats["sample_rate"], feats["n_fft"], n_mels)).T
        diff = float((fb.float() - want).abs().max())
        if diff > 1e-6:
            raise CheckpointError(f"{where}: mel.1.mel_scale.fb is not the HTK filterbank (0 Hz to Nyquist at "
                                  f"{feats['sample_rate']} Hz) asclab can rebuild (max difference {diff:.2e})")
        notes["n_fft, n_mels, mel_fb"] = f"mel.1.mel_scale.fb (equal to torchaudio's HTK construction, {diff:.1e})"
    if kernel is not None:
        if kernel.dim() > 3:
            raise CheckpointError(f"{where}: mel.0.kernel has shape {tuple(kernel.shape)}; a resampling kernel "
                                  "of at most 3 dimensions was expected")
        want64, _ = sinc_kernel(BASELINE_RESAMPLE_FROM, feats["sample_rate"], kernel_dtype=None)
        if tuple(kernel.shape) != tuple(want64.shape):
            raise CheckpointError(f"{where}: mel.0.kernel {tuple(kernel.shape)} is not the 44.1 -> 32 kHz "
                                  f"windowed-sinc kernel {tuple(want64.shape)}")
        diff = float((kernel.float() - want64).abs().max())
        if diff > 1e-5:
            raise CheckpointError(f"{where}: mel.0.kernel is not a Hann-windowed sinc (width 6, rolloff 0.99) "
                                  f"kernel (max difference {diff:.2e})")
        notes["resampler"] = (f"mel.0.kernel (Hann-windowed sinc, width 6, rolloff 0.99; {diff:.1e} from asclab's "
                              "float64-built kernel); applied with the float32 kernel the inference packages use")
    if window is None and fb is None and kernel is None:
        notes["all"] = "no mel.* buffers: the documented CPJKU baseline front end"
    return feats, notes


def import_cpjku(path: str | Path, *, precision: str | None = None):
    """A ``ModelFile`` from a CPJKU-family Lightning checkpoint (see the module docstring).

    ``precision``: "fp16" or "fp32" for the stored weights and inference; default:
    the checkpoint's own (fp16 weights -> fp16 inference, as the DCASE 2025 packages run).
    """
    p = Path(path)
    state = read_lightning_checkpoint(p)
    where = str(p)
    if any(k.startswith(_CONTAINER) for k in state):
        nets: dict[str, dict] = {"base": {}}
        for k, v in state.items():
            if not k.startswith(_CONTAINER):
                continue
            rest = k[len(_CONTAINER):]
            if rest.startswith("base_model."):
                nets["base"][rest[len("base_model."):]] = v
            elif m := re.match(r"device_models\.([^.]+)\.(.+)", rest):
                nets.setdefault(m.group(1), {})[m.group(2)] = v
            else:
                raise CheckpointError(f"{where}: {k} matches neither base_model nor device_models.<id>")
        if not nets["base"]:
            raise CheckpointError(f"{where}: no multi_device_model.base_model.* keys")
        converted = {d: _convert_network(s, f"{where} [{d}]") for d, s in nets.items()}
        devices = [d for d in nets if d != "base"]
        state_dict = {f"base.{k}": v for k, v in converted["base"][0].items()}
        for d in devices:
            if converted[d][1] != converted["base"][1]:
                raise CheckpointError(f"{where}: device model {d!r} differs in architecture from the base model")
            state_dict.update({f"device_models.{d}.{k}": v for k, v in converted[d][0].items()})
        cfg = converted["base"][1]
        layout = "dcase2025 device container"
    elif any(k.startswith(_SINGLE) for k in state):
        net = {k[len(_SINGLE):]: v for k, v in state.items() if k.startswith(_SINGLE)}
        converted_one, cfg = _convert_network(net, where)
        state_dict, devices, layout = converted_one, [], "dcase2024 baseline"
    else:
        sample = ", ".join(sorted({k.split(".")[0] for k in state})[:5])
        raise CheckpointError(f"{where}: unknown layout: no key starts with 'model.' (DCASE 2024 baseline) or "
                              f"'multi_device_model.' (DCASE 2025); top-level names: {sample}")
    other = [k for k in state if not k.startswith((_CONTAINER, _SINGLE, "mel."))]
    if other:
        raise CheckpointError(f"{where}: keys of no known part: {', '.join(other[:4])}")
    n_classes, in_chans = cfg.pop("_classes"), cfg.pop("_in_chans")
    if in_chans != 1:
        raise CheckpointError(f"{where}: the network takes {in_chans} input channels; the baselines take 1")
    if n_classes != len(TAU_CLASSES):
        raise CheckpointError(f"{where}: {n_classes} outputs; the CPJKU baselines classify the 10 TAU scenes")
    features, notes = _front_end(state, where)
    stored_fp16 = any(v.dtype == torch.float16 for v in state_dict.values())
    precision = precision or ("fp16" if stored_fp16 else "fp32")
    if precision not in ("fp16", "fp32"):
        raise CheckpointError(f"precision must be fp16 or fp32, got {precision!r}")
    dtype = torch.float16 if precision == "fp16" else torch.float32
    state_dict = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
    model_cfg = ({"name": "device_container", "base": cfg, "devices": devices} if devices or layout.startswith(
        "dcase2025") else cfg)
    recipe = {
        "name": f"imported:{p.name}",
        "description": f"{layout} imported from {p.name} (asclab.interop.cpjku)",
        "data": {"duration": 1.0},
        "features": features,
        "model": model_cfg,
        "compress": {"fp16": precision == "fp16"},
        "inference": {"whole_file": True, "precision": precision},
    }
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    return ModelFile(state_dict=state_dict, classes=list(TAU_CLASSES), features=features, model=model_cfg,
                     recipe=recipe, duration=1.0, devices=devices,
                     data_summary={"imported_from": str(p), "sha256": digest, "layout": layout},
                     extra={"front_end_from": notes, "stored_precision": "fp16" if stored_fp16 else "fp32"})


def import_checkpoint(path: str | Path, out: str | Path, *, precision: str | None = None) -> dict:
    """``asclab import``: write the asclab model file for a CPJKU checkpoint; a summary."""
    mf = import_cpjku(path, precision=precision)
    save_model_file(mf, out)
    return {"out": str(out), "layout": mf.data_summary["layout"], "devices": mf.devices,
            "precision": mf.recipe["inference"]["precision"], "front_end_from": mf.extra["front_end_from"]}
