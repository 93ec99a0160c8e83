"""The torchaudio/torchvision stand-ins the predict-package benchmark runs the published
Karasin_JKU DCASE 2025 package with (benchmarks/published_package_shims.py): the package's
own predict, unedited, gives the reference JSON's decisions and logits within one fp16 step.
Skipped without the package mirror (the ``fetch`` tool) or ../shared."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
try:
    shims = importlib.import_module("published_package_shims")
finally:
    sys.path.remove(str(BENCH))
SAMPLES = shims.SHARED / "data" / "tau-samples"
FILES = ["tau2020-mobile-44k-mono/metro_station-paris.wav", "tut2018-48k-stereo/tram.wav",
         "unlabelled/acoustic_scene.wav"]  # 44.1 kHz mono, 48 kHz stereo, 44.1 kHz stereo 16-bit


@pytest.fixture()
def package(tmp_path, monkeypatch):
    """The package written from the mirror; sys.modules and sys.path restored afterwards."""
    why = shims.missing_reason()
    if why or not shims.REFERENCE.is_file() or not SAMPLES.is_dir():
        pytest.skip(why or f"../shared not available ({shims.REFERENCE}, {SAMPLES})")
    def ours(name: str) -> bool:
        return name in shims.SHIM_MODULES or name.startswith(shims.PACKAGE)

    saved = {name: mod for name, mod in sys.modules.items() if ours(name)}  # tests/export sets torchaudio = None
    for name in saved:
        del sys.modules[name]
    monkeypatch.syspath_prepend(str(tmp_path))
    root, _commit = shims.materialise(tmp_path)
    yield root
    for name in [m for m in sys.modules if ours(m)]:
        del sys.modules[name]
    sys.modules.update(saved)


def test_published_package_reproduces_its_reference(package):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        got = shims.check_against_reference(package, SAMPLES, only=FILES)
    finally:
        torch.set_num_threads(threads)
    assert got["pairs"] == len(FILES) * 7
    assert got["argmax_differences"] == 0
    assert got["max_abs_logit_diff"] <= 0.0079  # at most one fp16 step for |logit| < 16 (see the module)
    assert got["filterbank_vs_checkpoint"] == 0.0 and got["window_vs_checkpoint"] == 0.0


def test_standin_resample_is_asclabs_float32_sinc(package):
    from asclab.data.sinc_resample import sinc_resample

    shims.install_shims()
    x = torch.randn(2, 1, 44100, generator=torch.Generator().manual_seed(0))
    ours = shims.resample(x, 44100, 32000)
    assert ours.shape == (2, 1, 32000)
    assert float((ours - sinc_resample(x, 44100, 32000)).abs().max()) < 1e-6
    from torchvision.ops.misc import Conv2dNormActivation

    block = Conv2dNormActivation(8, 32, kernel_size=3, stride=2, inplace=False)
    assert [type(m).__name__ for m in block] == ["Conv2d", "BatchNorm2d", "ReLU"] and block[0].bias is None
    assert block[0].padding == (1, 1)
