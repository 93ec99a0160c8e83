"""Run folders that tell the truth (asclab.workflows.run_folder): an exclusive lock on ``--out``, nothing
written before the recipe and data validate, no half run after an early failure."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from asclab.errors import AsclabError
from asclab.workflows.run_folder import RunLock, claim_run_folder, lock_path, refuse_if_held


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from asclab.data.synth import make_synthetic_dataset

    root = tmp_path_factory.mktemp("runs") / "synth"
    make_synthetic_dataset(root, n_per_class_device=1, n_test_per_class_device=1, seconds=1.0, sample_rate=16000,
                           seed=5)
    return root


def test_lock_names_its_holder_and_goes_with_it(tmp_path):
    out = tmp_path / "run"
    with RunLock(out):
        with pytest.raises(AsclabError, match=rf"in use by asclab run pid {os.getpid()} on "):
            RunLock(out).acquire()
        with pytest.raises(AsclabError, match="in use by"):
            refuse_if_held(out)
        assert not out.exists()  # the lock lives beside the folder: nothing written into it
    assert not lock_path(out).exists()
    with RunLock(out):  # free again
        pass


def test_a_lock_file_left_by_a_killed_run_does_not_hold_the_folder(tmp_path):
    out = tmp_path / "run"
    lock_path(out).write_text('{"pid": 999999, "host": "gone"}\n')  # SIGKILL leaves the file, not the flock
    refuse_if_held(out)
    with RunLock(out):
        assert '"pid": %d' % os.getpid() in lock_path(out).read_text()


def test_failure_before_the_first_checkpoint_leaves_no_half_run(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError), claim_run_folder(out):
        (out / "logs").mkdir(parents=True)
        (out / "recipe.yaml").write_text("name: x\n")
        raise RuntimeError("data failed")
    assert not out.exists() and not lock_path(out).exists()
    with pytest.raises(RuntimeError), claim_run_folder(out):  # past a checkpoint the run is kept (resumable)
        (out / "checkpoints").mkdir(parents=True)
        (out / "checkpoints" / "last.ckpt").write_bytes(b"x")
        raise RuntimeError("killed later")
    assert (out / "checkpoints" / "last.ckpt").exists()


def test_an_empty_folder_given_as_out_is_left_empty_after_an_early_failure(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(RuntimeError), claim_run_folder(out):
        (out / "recipe.yaml").write_text("name: x\n")
        raise RuntimeError("data failed")
    assert out.is_dir() and not any(out.iterdir())


def test_an_existing_folder_is_never_removed(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run_info.json").write_text("{}")
    with pytest.raises(RuntimeError), claim_run_folder(out):
        raise RuntimeError("failed")
    assert (out / "run_info.json").exists()


@pytest.mark.slow
def test_second_training_on_one_out_is_refused_and_the_first_finishes(tiny_set, tmp_path):
    """Two trainings at once on one --out: the second exits 2 within seconds naming the
    holder; the first finishes with a consistent folder and releases the lock."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "asclab.cli", "--threads", "1", "train", "quickstart", "--data", str(tiny_set),
           "--out", str(run), "--quiet", "--set", "train.epochs_cap=2", "--set", "train.batch_size=8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lock = lock_path(run)
    deadline = time.time() + 180
    while not (lock.exists() and lock.read_text()) and first.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert first.poll() is None, first.communicate()
    t0 = time.time()
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 2, second.stderr
    assert f"in use by asclab run pid {first.pid}" in second.stderr and second.stderr.count("\n") == 1
    assert time.time() - t0 < 10  # refused at once, before torch is imported (measured: 1 s)
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    for name in ("model.ckpt", "summary.json", "metrics.json", "recipe.yaml", "run_info.json"):
        assert (run / name).is_file(), name
    assert not lock.exists()


def test_an_interrupted_teachers_folder_is_a_run_and_its_trained_members_are_kept(tmp_path):
    """``asclab teachers --out``: member runs (``members/NAME``, per fold ``foldK/members/NAME``)
    make the folder an asclab run (a rerun reuses them); a bare ``members/`` does not."""
    from asclab.workflows.run_folder import check_out_folder, is_asclab_run

    plain, folds, bare = tmp_path / "plain", tmp_path / "folds", tmp_path / "bare"
    (plain / "members" / "t1").mkdir(parents=True)
    (plain / "members" / "t1" / "run_info.json").write_text("{}")
    (folds / "fold1" / "members" / "t1").mkdir(parents=True)
    (folds / "fold1" / "members" / "t1" / "recipe.yaml").write_text("name: t1\n")
    (bare / "members").mkdir(parents=True)
    assert is_asclab_run(plain) and is_asclab_run(folds) and not is_asclab_run(bare)
    check_out_folder(plain)
    with pytest.raises(AsclabError, match="not an asclab run"):
        check_out_folder(bare)
    out = tmp_path / "teach"  # a fresh folder whose first member finished: kept after a later failure
    with pytest.raises(RuntimeError), claim_run_folder(out):
        (out / "members" / "t1").mkdir(parents=True)
        (out / "members" / "t1" / "model.ckpt").write_bytes(b"x")
        raise RuntimeError("second teacher failed")
    assert (out / "members" / "t1" / "model.ckpt").exists()


def test_out_below_a_file_is_refused_before_anything_is_written(tmp_path):
    from asclab.workflows.run_folder import check_out_folder

    (tmp_path / "file").write_text("a file")
    with pytest.raises(AsclabError, match=r"cannot create this --out folder \(.*file is a file, not a folder\)"):
        check_out_folder(tmp_path / "file" / "sub" / "run")
    check_out_folder(tmp_path / "new" / "run")  # a new folder under a writable one is fine
    assert not (tmp_path / "new").exists()


def test_resume_parses_the_recorded_recipe_once_and_hands_on_the_typed_config(tmp_path, monkeypatch):
    import asclab.workflows.train as api
    import asclab.config.recipes as schema

    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text("name: quickstart\nbase: quickstart\ntrain: {epochs: 3}\n")
    (run / "run_info.json").write_text('{"data": "somewhere"}\n')
    parses: list[int] = []
    real = schema.validate_recipe
    monkeypatch.setattr(schema, "validate_recipe", lambda r: parses.append(1) or real(r))
    handed: list = []
    monkeypatch.setattr(api, "_train_run_claimed",
                        lambda recipe, cfg, data_dir, out_dir, **kw: handed.append((recipe, cfg, data_dir, kw)) or {})
    api.resume_run(run)
    assert len(parses) == 1
    (recipe, cfg, data_dir, kw), = handed
    assert isinstance(cfg, schema.RecipeConfig) and cfg.train.epochs == 3 and recipe["train"]["epochs"] == 3
    assert data_dir == "somewhere" and kw["resume"] is False  # no checkpoint yet: started again


def test_sigterm_removes_the_temporary_file_of_a_write_in_progress(tmp_path, monkeypatch, capsys):
    """SIGTERM becomes an exception in ``asclab``'s main: the atomic write in progress removes its
    temporary file, nothing is renamed into place, and the command exits 143 with one line."""
    import signal

    from asclab import cli
    from asclab.cli import run as cli_main
    from asclab.io import atomic_path

    target = tmp_path / "out.csv"
    seen = {}

    def slow_write(args):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            seen["tmp"] = tmp
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
        return 0

    real_command = cli_main.command
    monkeypatch.setattr(cli_main, "command", lambda name: slow_write if name == "recipes" else real_command(name))
    before = signal.getsignal(signal.SIGTERM)
    t0 = time.time()
    assert cli.main(["recipes"]) == 143
    assert time.time() - t0 < 4
    err = capsys.readouterr().err
    assert err.startswith("asclab: terminated") and err.count("\n") == 1
    assert not target.exists() and not seen["tmp"].exists()
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is before  # the caller's handler is back


@pytest.mark.slow
def test_a_terminated_training_leaves_no_temporary_file_and_no_lock(tiny_set, tmp_path):
    """``kill -TERM`` during a real training (Lightning composes its own SIGTERM handler with
    asclab's): exit 143 (or 0 if it had finished), no temporary files, the lock released."""
    import signal

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "asclab.cli", "--threads", "1", "train", "quickstart", "--data", str(tiny_set),
           "--out", str(run), "--quiet", "--set", "train.epochs_cap=50", "--set", "train.batch_size=8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 180
    while not (run / "logs").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # inside the training loop
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (143, 0), err
    if proc.returncode == 143:  # --quiet: asclab's one line, not Lightning's notice as well
        assert "asclab: terminated" in err and "Received SIGTERM" not in err, err
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith((".", "tmp")) and p.is_file()
                 and not p.name.startswith(".hydra")]
    assert leftovers == [], leftovers
    assert not lock_path(run).exists()
