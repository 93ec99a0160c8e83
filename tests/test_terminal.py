"""The CLI's process policy (asclab.terminal): threads on busy machines, --quiet,
and the optional TensorBoard log (asclab.train.loggers)."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from asclab.errors import ConfigError
from asclab.terminal import apply_quiet, apply_threads, default_threads, physical_cores, usable_cores
from asclab.train import loggers as train_loggers

RANK_ZERO = "lightning.pytorch.utilities.rank_zero"


@pytest.mark.parametrize("load,cores,physical,want", [
    (0.0, 2, 2, 2),    # idle: every physical core
    (0.3, 2, 2, 2),
    (0.8, 2, 2, 1),    # about one core taken
    (1.6, 4, 4, 2),    # 2.4 free -> 2
    (0.0, 8, 4, 4),    # hyper-threads are not cores
    (2.0, 2, 2, 1),    # load at the core count: one thread
    (7.5, 2, 2, 1),    # overloaded
])
def test_default_threads_follows_free_physical_cores(load, cores, physical, want):
    assert default_threads(load=load, cores=cores, physical=physical) == want


def test_core_counts_are_consistent():
    assert 1 <= physical_cores() <= usable_cores() <= (os.cpu_count() or 1)
    assert 1 <= default_threads() <= physical_cores()


def test_apply_threads_sets_torch_and_respects_the_user(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert apply_threads(1) == 1 and torch.get_num_threads() == 1
        assert apply_threads(0) is None and torch.get_num_threads() == 1  # 0: left as it is
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert apply_threads(None) is None  # the user's OMP_NUM_THREADS wins over the policy
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(os, "getloadavg", lambda: (99.0, 99.0, 99.0))
        assert apply_threads(None) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.fixture()
def restore_logging(monkeypatch):
    """apply_quiet changes process-wide state: loggers, warning filters, two variables."""
    from asclab import terminal

    names = (*terminal._RANK_ZERO_LOGGERS, *terminal._NOISY_LOGGERS)
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).filters)) for n in names}
    for var in ("PYTHONWARNINGS", "TF_CPP_MIN_LOG_LEVEL"):
        monkeypatch.setenv(var, os.environ.get(var, "")) if var in os.environ else monkeypatch.delenv(var, raising=False)
    with warnings.catch_warnings():
        yield logging.getLogger(RANK_ZERO)
    for n, (level, filters) in saved.items():
        logging.getLogger(n).setLevel(level)
        logging.getLogger(n).filters[:] = filters


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_tips_are_dropped_and_quiet_drops_info_and_foreign_warnings(restore_logging):
    log = restore_logging
    seen_logs = _Records()
    log.addHandler(seen_logs)
    try:
        log.setLevel(logging.INFO)
        apply_quiet(False)
        log.info("💡 Tip: For seamless cloud logging, try installing litlogger")
        log.info("GPU available: False, used: False")
        assert seen_logs.messages == ["GPU available: False, used: False"]
        apply_quiet(True)
        log.info("GPU available: False, used: False")
        log.error("a real error")
        assert seen_logs.messages == ["GPU available: False, used: False", "a real error"]
    finally:
        log.removeHandler(seen_logs)
    with warnings.catch_warnings(record=True) as seen:
        warnings.warn_explicit("old API", DeprecationWarning, "lightning/x.py", 1, module="lightning.pytorch.x")
        warnings.warn_explicit("asclab's own", UserWarning, "asclab/x.py", 1, module="asclab.x")
    assert [str(w.message) for w in seen] == ["asclab's own"]


def test_tensorboard_logger_missing_package_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(train_loggers, "tensorboard_available", lambda: False)
    with pytest.raises(ConfigError, match="pip install tensorboard"):
        train_loggers.stage_loggers(tmp_path, "tensorboard")
    with pytest.raises(ConfigError, match="train.logger"):
        train_loggers.check_logger("wandb")
    assert [type(x).__name__ for x in train_loggers.stage_loggers(tmp_path, None)] == ["CSVLogger"]


def test_tensorboard_logger_beside_the_csv_log(tmp_path):
    if not train_loggers.tensorboard_available():
        pytest.skip("tensorboard is not installed (optional: pip install tensorboard)")
    names = [type(x).__name__ for x in train_loggers.stage_loggers(tmp_path, "tensorboard")]
    assert names == ["CSVLogger", "TensorBoardLogger"]


def test_cli_logger_flag_becomes_the_recipe_key():
    from asclab.cli.parser import _overrides, build_parser

    args = build_parser().parse_args(["train", "quickstart", "--data", "d", "--out", "o", "--logger", "tensorboard"])
    assert "train.logger=tensorboard" in _overrides(args)
    from asclab.config import load_recipe

    assert load_recipe("quickstart", _overrides(args))["train"]["logger"] == "tensorboard"


@pytest.mark.slow
def test_quiet_training_prints_nothing_on_stderr(tmp_path):
    """End to end: a one-epoch quiet training writes no Lightning line, tip or warning."""
    from asclab.data.synth import make_synthetic_dataset

    data = tmp_path / "synth"
    make_synthetic_dataset(data, n_per_class_device=1, n_test_per_class_device=1, seconds=1.0, sample_rate=16000,
                           seed=5)
    cmd = [sys.executable, "-m", "asclab.cli", "--threads", "1", "train", "quickstart", "--data", str(data),
           "--out", str(tmp_path / "run"), "--quiet", "--set", "train.epochs_cap=1", "--set", "train.batch_size=8"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert Path(tmp_path / "run" / "model.ckpt").exists()
