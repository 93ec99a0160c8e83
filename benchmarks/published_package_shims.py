"""Run the published Karasin_JKU DCASE 2025 task 1 inference package here, unedited.

The package (github ``turquenite/dcase2025_task1_inference``, the DCASE 2025 task 1
winner) imports ``torchaudio`` and ``torchvision``, which do not import with torch 2.13
CPU on this machine. ``install_shims`` puts stand-in modules for the four things it uses
into ``sys.modules``, each a torch re-implementation of the library code, as
/work/shared/checkpoints/README.md describes:

* ``torchaudio.load``: soundfile, float32, ``[channels, samples]``;
* ``torchaudio.functional.resample``: torchaudio's ``sinc_interp_hann`` kernel code
  (float32 kernel, the same order of operations) and its strided ``conv1d``;
* ``torchaudio.transforms.MelSpectrogram``: ``torch.stft`` power spectrogram (periodic
  Hann window, ``center=True``, reflect padding) times torchaudio's HTK filterbank
  (``melscale_fbanks``, no normalisation), as ``torch.matmul(spec.mT, fb).mT``;
* ``torchvision.ops.misc.Conv2dNormActivation``: conv (bias only without a norm), norm,
  activation, as an ``nn.Sequential`` (so the checkpoint's keys ``...N.0/1.*`` load).

``materialise`` writes the package's blobs from the bare mirror the ``fetch`` tool
makes, unedited, to a folder to import from (blobs the snapshot lists but does not hold,
the checkpoints other than ``sys4.ckpt``, are left out). ``check_against_reference``
runs the package's own ``_common.predict`` one file per call on the 12 TAU sample clips
and compares its logits with ``karasin_jku_2025_sys4.reference.json``.

Not part of asclab: the benchmark ``bench_predict_package.py`` and its test import it.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path("/work/.mirror/turquenite+dcase2025_task1_inference/repo")
SHARED = REPO.parent / "shared"
CHECKPOINT = SHARED / "checkpoints" / "karasin_jku_2025_sys4.ckpt"
REFERENCE = SHARED / "checkpoints" / "karasin_jku_2025_sys4.reference.json"
PACKAGE = "Karasin_JKU_task1"
MODULE = "Karasin_JKU_task1.Karasin_JKU_task1_4"


def missing_reason(mirror: Path = MIRROR) -> str | None:
    """Why the published package cannot run here (one line), or None."""
    if not (Path(mirror) / "HEAD").is_file():
        return (f"published package mirror absent ({mirror}); get it with the fetch tool: "
                "fetch github:turquenite/dcase2025_task1_inference")
    if not CHECKPOINT.is_file():
        return f"checkpoint absent ({CHECKPOINT})"
    return None


def materialise(dest: Path, mirror: Path = MIRROR, under: str | None = PACKAGE) -> tuple[Path, str]:
    """Write the package's blobs, unedited, under ``dest``; returns (dest, commit).
    ``under``: the mirror's folder to write (None: the whole tree, as for the CPJKU baseline)."""
    git = ["git", f"--git-dir={mirror}"]
    commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    tree = subprocess.run(git + ["ls-tree", "-r", "HEAD", *(["--", under] if under else [])], capture_output=True,
                          text=True, check=True).stdout
    for line in tree.splitlines():
        meta, path = line.split("\t", 1)
        _mode, kind, sha = meta.split()
        if kind != "blob":
            continue
        blob = subprocess.run(git + ["cat-file", "blob", sha], capture_output=True, check=False)
        if blob.returncode != 0:  # listed in the snapshot, content not held (the other checkpoints)
            continue
        out = Path(dest) / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(blob.stdout)
    return Path(dest), commit


# ---- the stand-ins ------------------------------------------------------------------------

def _load(path, *args, **kwargs):
    import numpy as np
    import soundfile as sf
    import torch

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(x.T)), int(sr)


def _get_sinc_resample_kernel(orig_freq, new_freq, gcd, lowpass_filter_width=6, rolloff=0.99,
                              resampling_method="sinc_interp_hann", beta=None, device=None, dtype=None):
    """torchaudio.functional.functional._get_sinc_resample_kernel (Hann window only)."""
    import torch

    if resampling_method != "sinc_interp_hann":
        raise NotImplementedError("stand-in: sinc_interp_hann only")
    orig_freq, new_freq = int(orig_freq) // gcd, int(new_freq) // gcd
    base_freq = min(orig_freq, new_freq)
    base_freq *= rolloff
    width = math.ceil(lowpass_filter_width * orig_freq / base_freq)
    idx_dtype = dtype if dtype is not None else torch.float64
    idx = torch.arange(-width, width + orig_freq, dtype=idx_dtype, device=device)[None, None] / orig_freq
    t = torch.arange(0, -new_freq, -1, dtype=dtype, device=device)[:, None, None] / new_freq + idx
    t *= base_freq
    t = t.clamp_(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t *= math.pi
    scale = base_freq / orig_freq
    kernels = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernels *= window * scale
    if dtype is None:
        kernels = kernels.to(dtype=torch.float32)
    return kernels, width


def _apply_sinc_resample_kernel(waveform, orig_freq, new_freq, gcd, kernel, width):
    import torch

    orig_freq, new_freq = int(orig_freq) // gcd, int(new_freq) // gcd
    shape = waveform.size()
    waveform = waveform.view(-1, shape[-1])
    num_wavs, length = waveform.shape
    waveform = torch.nn.functional.pad(waveform, (width, width + orig_freq))
    resampled = torch.nn.functional.conv1d(waveform[:, None], kernel, stride=orig_freq)
    resampled = resampled.transpose(1, 2).reshape(num_wavs, -1)
    target_length = torch.ceil(torch.as_tensor(new_freq * length / orig_freq)).long()
    resampled = resampled[..., :target_length]
    return resampled.view(shape[:-1] + resampled.shape[-1:])


def resample(waveform, orig_freq, new_freq, lowpass_filter_width=6, rolloff=0.99,
             resampling_method="sinc_interp_hann", beta=None):
    """torchaudio.functional.resample: kernel built in the waveform's dtype (float32)."""
    if orig_freq == new_freq:
        return waveform
    gcd = math.gcd(int(orig_freq), int(new_freq))
    kernel, width = _get_sinc_resample_kernel(orig_freq, new_freq, gcd, lowpass_filter_width, rolloff,
                                              resampling_method, beta, waveform.device, waveform.dtype)
    return _apply_sinc_resample_kernel(waveform, orig_freq, new_freq, gcd, kernel, width)


def melscale_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate, norm=None, mel_scale="htk"):
    """torchaudio.functional.melscale_fbanks, HTK scale, no normalisation."""
    import torch

    if mel_scale != "htk" or norm is not None:
        raise NotImplementedError("stand-in: mel_scale='htk', norm=None only")
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    m_min = 2595.0 * math.log10(1.0 + (f_min / 700.0))
    m_max = 2595.0 * math.log10(1.0 + (f_max / 700.0))
    m_pts = torch.linspace(m_min, m_max, n_mels + 2)
    f_pts = 700.0 * (10.0 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)
    zero = torch.zeros(1)
    down_slopes = (-1.0 * slopes[:, :-2]) / f_diff[:-1]
    up_slopes = slopes[:, 2:] / f_diff[1:]
    return torch.max(zero, torch.min(down_slopes, up_slopes))


def _modules():
    import torch
    from torch import nn

    class MelSpectrogram(nn.Module):
        """torchaudio.transforms.MelSpectrogram with the defaults the package leaves."""

        def __init__(self, sample_rate=16000, n_fft=400, win_length=None, hop_length=None, f_min=0.0,
                     f_max=None, pad=0, n_mels=128, window_fn=torch.hann_window, power=2.0,
                     normalized=False, wkwargs=None, center=True, pad_mode="reflect", onesided=None,
                     norm=None, mel_scale="htk"):
            super().__init__()
            if pad or normalized or power != 2.0:
                raise NotImplementedError("stand-in: pad=0, normalized=False, power=2 only")
            self.n_fft, self.center, self.pad_mode = n_fft, center, pad_mode
            self.win_length = win_length if win_length is not None else n_fft
            self.hop_length = hop_length if hop_length is not None else self.win_length // 2
            window = window_fn(self.win_length) if wkwargs is None else window_fn(self.win_length, **wkwargs)
            self.register_buffer("window", window)
            f_max = f_max if f_max is not None else float(sample_rate // 2)
            self.register_buffer("fb", melscale_fbanks(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate,
                                                       norm, mel_scale))

        def forward(self, waveform):
            shape = waveform.size()
            x = waveform.reshape(-1, shape[-1])
            spec = torch.stft(x, self.n_fft, self.hop_length, self.win_length, self.window, center=self.center,
                              pad_mode=self.pad_mode, normalized=False, onesided=True, return_complex=True)
            spec = spec.reshape(shape[:-1] + spec.shape[-2:]).abs().pow(2.0)
            return torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)

    class Conv2dNormActivation(nn.Sequential):
        """torchvision.ops.misc.Conv2dNormActivation (int kernel size and dilation)."""

        def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None, groups=1,
                     norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU, dilation=1, inplace=True, bias=None):
            if padding is None:
                padding = (kernel_size - 1) // 2 * dilation
            if bias is None:
                bias = norm_layer is None
            layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation,
                                groups=groups, bias=bias)]
            if norm_layer is not None:
                layers.append(norm_layer(out_channels))
            if activation_layer is not None:
                layers.append(activation_layer(**({} if inplace is None else {"inplace": inplace})))
            super().__init__(*layers)
            self.out_channels = out_channels

    return MelSpectrogram, Conv2dNormActivation


SHIM_MODULES = ("torchaudio", "torchaudio.functional", "torchaudio.transforms", "torchvision", "torchvision.ops",
                "torchvision.ops.misc")


def install_shims() -> None:
    """Stand-in ``torchaudio`` and ``torchvision`` modules (``SHIM_MODULES``) in ``sys.modules``."""
    mel_cls, conv_cls = _modules()
    ta = types.ModuleType("torchaudio")
    ta.__doc__ = "stand-in (benchmarks/published_package_shims.py)"
    ta.load = _load
    ta.functional = types.ModuleType("torchaudio.functional")
    ta.functional.resample = resample
    ta.functional.melscale_fbanks = melscale_fbanks
    ta.transforms = types.ModuleType("torchaudio.transforms")
    ta.transforms.MelSpectrogram = mel_cls
    tv = types.ModuleType("torchvision")
    tv.ops = types.ModuleType("torchvision.ops")
    tv.ops.misc = types.ModuleType("torchvision.ops.misc")
    tv.ops.misc.Conv2dNormActivation = conv_cls
    sys.modules.update({"torchaudio": ta, "torchaudio.functional": ta.functional,
                        "torchaudio.transforms": ta.transforms, "torchvision": tv, "torchvision.ops": tv.ops,
                        "torchvision.ops.misc": tv.ops.misc})


def import_package(root: Path):
    """The package's system-4 module, imported from ``root`` (after ``install_shims``)."""
    import importlib

    install_shims()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(MODULE), importlib.import_module(f"{PACKAGE}._common")


def check_against_reference(root: Path, data: Path = SHARED / "data" / "tau-samples",
                            reference: Path = REFERENCE, only: list[str] | None = None) -> dict:
    """The package's ``whole_file`` logits (one file per ``_common.predict`` call, as the
    reference was made) against the reference JSON, every file (``only``: those keys) and
    device id; plus the stand-in filterbank and window against the checkpoint's stored
    ``mel.*`` buffers.

    Measured here (torch 2.13 CPU, AVX-512 + AMX machine): largest difference 0.0078 (one fp16
    step for |logit| in [8, 16)), no argmax differs. The stand-ins are not the cause: the
    reference's bits depend on the machine's MKL and oneDNN code paths (with ``MKL_CBWR=COMPATIBLE
    ONEDNN_MAX_CPU_ISA=AVX512_CORE``, 794 of the 840 logits are bit-equal and the largest
    difference is 0.0020), and an fp16 network turns any float32 rounding difference of its input
    into fp16 steps of its logits."""
    import contextlib
    import io

    import torch

    sys4, common = import_package(root)
    ref = json.loads(Path(reference).read_text())
    model = sys4.load_model(model_file_path=str(CHECKPOINT))
    classes = list(model.class_order)
    worst, argmax_diff, pairs = 0.0, 0, 0
    for rel, entry in ref["files"].items():
        if only is not None and rel not in only:
            continue
        for dev, out in entry["by_device"].items():
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                logits, _ = common.predict([str(Path(data) / rel)], [dev], model_or_path=model, use_cuda=False)
            got = logits[0].float()
            want = torch.tensor(out["whole_file"]["logits"], dtype=torch.float32)
            worst = max(worst, float((got - want).abs().max()))
            argmax_diff += classes[int(got.argmax())] != out["whole_file"]["argmax"]
            pairs += 1
    state = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)["state_dict"]
    fb_diff = float((model.mel.fb - state["mel.1.mel_scale.fb"]).abs().max())
    win_diff = float((model.mel.window - state["mel.1.spectrogram.window"]).abs().max())
    return {"pairs": pairs, "max_abs_logit_diff": worst, "argmax_differences": argmax_diff,
            "filterbank_vs_checkpoint": fb_diff, "window_vs_checkpoint": win_diff}


if __name__ == "__main__":  # python benchmarks/published_package_shims.py: the stand-in check alone
    import tempfile

    why = missing_reason()
    if why:
        print(f"skipped: {why}")
        sys.exit(0)
    with tempfile.TemporaryDirectory(prefix="karasin_pkg_") as tmp:
        root, commit = materialise(Path(tmp))
        print(json.dumps({"commit": commit, **check_against_reference(root)}, indent=1))
