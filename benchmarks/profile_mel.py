"""Where a 10-s log-mel clip's time goes at 1 thread, and the variants tried (issue 23).

The parts of ``MelSpectrogram``'s CPU path (44.1 kHz, n_fft 2048, hop 1024, 128 HTK mels:
the settings of ``bench_features.py``), each timed alone on one clip's frames, best of
``--rounds``: the window gather, the float32 rfft, the squares, the banded mel products and
the dB step; then the whole mel power in batches of 32, and three alternatives to the
interleaved banded product (the power first with non-interleaved bands, a dense product,
``abs()`` first, an rfft into a preallocated output). Prints ms per clip. Not part of ``run_all.py``: it explains the front-end
ratio of ``bench_features.py``, it does not measure a target.

    python benchmarks/profile_mel.py [--rounds 7]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from asclab.features.mel import MelSpectrogram, _band_groups, _call_cost, power_to_db  # noqa: E402

BATCH, N, FRAMES = 32, 441_000, 431


def best_ms_per_clip(fn, rounds: int) -> float:
    """Best of ``rounds`` calls of ``fn`` (which handles ``BATCH`` clips), in ms per clip."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000 / BATCH


def per_clip(step):
    """``step`` once per clip of a batch."""
    return lambda: [step() for _ in range(BATCH)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    mel = MelSpectrogram(44100, 2048, 1024, 128)
    x = torch.randn(BATCH, N, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x[0], (1024, 1024))
    frames = torch.empty(FRAMES, 2048)
    torch.mul(padded.unfold(-1, 2048, 1024), mel.window, out=frames)
    pairs = torch.view_as_real(torch.fft.rfft(frames)).reshape(FRAMES, -1)
    bands, dst = mel._bands_for(FRAMES), torch.empty(128, FRAMES)
    fb = mel.filterbank.numpy()
    plain_bands = [((m0, m1, k0, k1), torch.from_numpy(np.ascontiguousarray(fb[m0:m1, k0:k1])))
                   for m0, m1, k0, k1 in _band_groups(fb, _call_cost(FRAMES) // 2)]
    power = torch.empty(FRAMES, 1025)

    def banded(src, groups):
        for (m0, m1, k0, k1), band in groups:
            if k1 > k0:
                torch.mm(band, src[:, k0:k1].t(), out=dst[m0:m1])

    def current():
        banded(torch.view_as_real(torch.fft.rfft(frames)).reshape(FRAMES, -1).square_(), bands)

    def power_first():
        c = torch.view_as_real(torch.fft.rfft(frames))
        torch.mul(c[..., 0], c[..., 0], out=power).addcmul_(c[..., 1], c[..., 1])
        banded(power, plain_bands)

    def dense():
        c = torch.view_as_real(torch.fft.rfft(frames))
        torch.mul(c[..., 0], c[..., 0], out=power).addcmul_(c[..., 1], c[..., 1])
        torch.mm(mel.filterbank, power.t(), out=dst)

    spectrum = torch.empty(FRAMES, 1025, dtype=torch.complex64)

    def preallocated():
        torch.fft.rfft(frames, out=spectrum)
        banded(torch.view_as_real(spectrum).reshape(FRAMES, -1).square_(), bands)

    def abs_first():
        torch.abs(torch.fft.rfft(frames), out=power).square_()
        banded(power, plain_bands)

    mel_power = mel(x)
    parts = {
        "window gather": per_clip(lambda: torch.mul(padded.unfold(-1, 2048, 1024), mel.window, out=frames)),
        "rfft (float32)": per_clip(lambda: torch.fft.rfft(frames)),
        "squares": per_clip(lambda: pairs.square_()),
        "banded mel products": per_clip(lambda: banded(pairs, bands)),
        "dB (power_to_db)": lambda: power_to_db(mel_power.clone(), inplace=True),
    }
    print(f"ms per 10-s clip at 1 thread, best of {args.rounds} (batches of {BATCH})")
    total = 0.0
    for name, fn in parts.items():
        ms = best_ms_per_clip(fn, args.rounds)
        total += ms
        print(f"  {name:28s} {ms:6.3f}")
    print(f"  {'sum of the parts':28s} {total:6.3f}")
    print(f"  {'whole mel power, batched':28s} {best_ms_per_clip(lambda: mel(x), args.rounds):6.3f}")
    print("rfft + squares + products, per variant:")
    for name, step in (("interleaved bands (asclab)", current), ("power first, plain bands", power_first),
                       ("dense product", dense), ("abs() first", abs_first),
                       ("rfft into a preallocated out", preallocated)):
        print(f"  {name:28s} {best_ms_per_clip(per_clip(step), args.rounds):6.3f}")


if __name__ == "__main__":
    main()
