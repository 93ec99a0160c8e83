"""Finite inputs or a refusal (issue 21): a training whose loss turns NaN stops within one step
with one line naming the step, and keeps the last good checkpoint; ``train.init_from`` of a model
with NaN weights is refused before the first step."""
from __future__ import annotations

import torch

from asclab.cli import main
from asclab.data.synth import make_synthetic_dataset
from asclab.train.module import ASCModule


def _synth(tmp_path):
    data = tmp_path / "synth"
    make_synthetic_dataset(data, n_per_class_device=1, n_test_per_class_device=1, seconds=1.0, sample_rate=16000,
                           seed=3)
    return data


def test_a_loss_that_turns_nan_stops_within_one_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys,
                                                                                  one_torch_thread):
    data = _synth(tmp_path)
    real = ASCModule.class_loss
    steps: list[int] = []

    def poisoned(self, logits, y, *extra):
        steps.append(self.global_step)
        loss = real(self, logits, y, *extra)
        return loss * float("nan") if self.global_step >= 3 else loss  # the 4th step diverges

    monkeypatch.setattr(ASCModule, "class_loss", poisoned)
    run = tmp_path / "run"
    rc = main(["--threads", "1", "train", "quickstart", "--data", str(data), "--out", str(run), "--quiet",
               "--batch-size", "8", "--set", "train.epochs=3", "--set", "train.checkpoint_every_n_steps=2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "training loss is nan at step 4" in err[0] and "last good checkpoint" in err[0]
    assert steps[-1] == 3 and len(steps) == 4  # no step ran after the NaN one
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 2
    assert all(bool(torch.isfinite(v).all()) for v in last["state_dict"].values() if v.is_floating_point())
    assert not (run / "model.ckpt").exists()


def test_init_from_a_model_with_nan_weights_is_refused_before_training(tmp_path, capsys, one_torch_thread):
    from asclab.train.checkpoint import load_model_file, save_model_file

    data = _synth(tmp_path)
    assert main(["--threads", "1", "train", "quickstart", "--data", str(data), "--out", str(tmp_path / "a"),
                 "--quiet", "--batch-size", "8", "--set", "train.epochs_cap=1"]) == 0
    mf = load_model_file(tmp_path / "a" / "model.ckpt")
    key = next(k for k, v in mf.state_dict.items() if v.is_floating_point())
    mf.state_dict[key] = mf.state_dict[key].clone().fill_(float("nan"))
    save_model_file(mf, tmp_path / "nan.ckpt")
    capsys.readouterr()
    rc = main(["--threads", "1", "train", "quickstart", "--data", str(data), "--out", str(tmp_path / "b"), "--quiet",
               "--set", f"train.init_from={tmp_path / 'nan.ckpt'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "NaN or infinite" in err[0] and key in err[0], err
    assert not (tmp_path / "b").exists()
