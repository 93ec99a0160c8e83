"""Model files are self-describing and loading one never runs code.

A model file is untrusted input: the loader uses ``torch.load(weights_only=True)``,
so a pickle carrying a ``__reduce__`` payload is refused before the payload runs
(checked with a marker file the payload would create), and a file that is not an
asclab model file (random bytes, a plain ``torch.save`` of a list, a Lightning
training checkpoint) gives a one-line CheckpointError naming the file.
"""
from __future__ import annotations

import os
import pathlib
import pickle

import pytest
import torch

from asclab.cli import main
from asclab.errors import CheckpointError
from asclab.train.checkpoint import FORMAT, VERSION, ModelFile, load_model_file, save_model_file


class _TouchMarker:
    """Unpickling this object creates ``self.marker`` (a stand-in for any code payload)."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _looks_like_asclab(payload_extra) -> dict:
    return {"format": FORMAT, "version": VERSION, "state_dict": {"w": torch.zeros(2)}, "classes": ["a", "b"],
            "features": {}, "model": {"name": "cp_mobile"}, "recipe": {}, "extra": payload_extra}


def _assert_one_line(exc: CheckpointError, path: pathlib.Path) -> None:
    msg = str(exc)
    assert "\n" not in msg and "\x1b" not in msg, msg
    assert str(path) in msg
    assert len(msg) < 400


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy"])
def test_tampered_checkpoint_is_refused_without_running_code(tmp_path, zipfile):
    marker = tmp_path / "payload-ran"
    payload = _looks_like_asclab(_TouchMarker(marker))
    path = tmp_path / "model.ckpt"
    torch.save(payload, path, _use_new_zipfile_serialization=zipfile)

    # the payload is live: an unsafe load would run it (so the check below can fail)
    live = tmp_path / "live.ckpt"
    torch.save(_looks_like_asclab(_TouchMarker(tmp_path / "live-marker")), live)
    torch.load(live, weights_only=False)
    assert (tmp_path / "live-marker").exists()

    with pytest.raises(CheckpointError) as info:
        load_model_file(path)
    assert not marker.exists()
    _assert_one_line(info.value, path)


def test_plain_pickle_with_payload_is_refused(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "model.ckpt"
    with path.open("wb") as f:
        pickle.dump({"format": FORMAT, "x": _TouchMarker(marker)}, f, protocol=2)
    with pytest.raises(CheckpointError) as info:
        load_model_file(path)
    assert not marker.exists()
    _assert_one_line(info.value, path)


def _lightning_like(path: pathlib.Path) -> None:
    # the top-level keys a Lightning ``Trainer.save_checkpoint`` file has
    torch.save({"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.4.0",
                "state_dict": {"model.fc.weight": torch.randn(2, 4)}, "loops": {}, "callbacks": {},
                "optimizer_states": [{"state": {}, "param_groups": []}], "lr_schedulers": []}, path)


@pytest.mark.parametrize("kind", ["random-bytes", "empty", "list", "lightning", "state-dict", "newer-version"])
def test_foreign_files_give_one_line_checkpoint_error(tmp_path, kind):
    path = tmp_path / f"{kind}.ckpt"
    if kind == "random-bytes":
        path.write_bytes(os.urandom(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "list":
        torch.save([1, 2, 3], path)
    elif kind == "lightning":
        _lightning_like(path)
    elif kind == "state-dict":
        torch.save({"fc.weight": torch.randn(2, 4)}, path)
    else:
        payload = _looks_like_asclab({})
        payload["version"] = VERSION + 1
        torch.save(payload, path)
    with pytest.raises(CheckpointError) as info:
        load_model_file(path)
    _assert_one_line(info.value, path)


def test_cli_reports_a_foreign_checkpoint_in_one_line(tmp_path, capsys):
    ckpt = tmp_path / "trainer.ckpt"
    _lightning_like(ckpt)
    wav = tmp_path / "x.wav"
    import numpy as np
    import soundfile as sf

    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    assert main(["predict", str(ckpt), str(wav)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(ckpt) in err and "asclab model file" in err


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model_file(tmp_path / "nope.ckpt")


def test_model_file_is_self_describing(tmp_path):
    """Everything prediction and reporting need travels in the file and loads back unchanged."""
    from asclab.evaluate.inference import Predictor
    from asclab.features.config import FeatureConfig
    from asclab.models import create_model

    fcfg = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40)
    model = create_model("cp_mobile", num_classes=3, in_chans=fcfg.in_chans)
    mf = ModelFile(state_dict=model.state_dict(), classes=["x", "y", "z"], features=fcfg.to_dict(),
                   model={"name": "cp_mobile"}, recipe={"name": "test", "train": {"epochs": 1}}, duration=1.0,
                   devices=["a", "b"], data_summary={"n_train": 7}, metrics={"accuracy": 0.5},
                   extra={"note": "hello"})
    path = save_model_file(mf, tmp_path / "run" / "model.ckpt")
    back = load_model_file(tmp_path / "run")  # a run folder means its model.ckpt
    for key in ("classes", "features", "model", "recipe", "duration", "devices", "data_summary", "metrics", "extra"):
        assert getattr(back, key) == getattr(mf, key), key
    assert back.state_dict.keys() == mf.state_dict.keys()
    assert all(torch.equal(back.state_dict[k], v) for k, v in mf.state_dict.items())
    pred = Predictor.load(path)
    assert pred.classes == ["x", "y", "z"] and pred.fcfg == fcfg and pred.duration == 1.0
    x = torch.randn(2, 1, 16000)
    with torch.no_grad():
        assert torch.allclose(pred.logits(x), model.eval()(pred.features(x)), atol=1e-5)
