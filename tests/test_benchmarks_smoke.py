"""The benchmark scripts still run (minimal sizes, in this process); no timing is asserted.

What is checked: each entry point accepts its documented options, runs the
package code it measures (training steps, cache reads, Predictor, ONNX
cache builds) and returns a markdown report with a
row per measured item; run_all writes its report atomically with the
run's description.
"""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_clips = pytest.mark.skipif(not (DATA / "tau-samples").is_dir(),
                                 reason=f"real TAU clips not found at {DATA / 'tau-samples'}")


@pytest.fixture()
def bench(monkeypatch):
    """Import a benchmark module; restore torch's global settings afterwards."""
    monkeypatch.syspath_prepend(str(BENCH))
    threads = torch.get_num_threads()
    yield lambda name: importlib.import_module(name)
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in r] for r in rows if r[0].strip() == first_cell]


def test_every_registered_model_has_a_benchmark_shape(bench):
    bl = bench("benchlib")
    assert bl.check_registry() == []
    for spec in bl.MODEL_SPECS:  # the paper shape is what the recipe's front end gives, up to a crop
        from asclab.features import feature_shape

        cfg = spec.feature_config()
        c, f, t = feature_shape(cfg, int(round(spec.duration() * cfg.sample_rate)))
        assert (c, f) == spec.shape[:2] and t >= spec.shape[2], spec.name


def test_interleaved_budget_stops_new_rounds(bench):
    bl = bench("benchlib")
    calls = []
    times = bl.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=4, warmup=1)
    assert calls == ["a", "b"] * 5 and all(len(v) == 4 for v in times.values())
    import time

    slow = bl.interleaved({"s": lambda: time.sleep(0.02)}, rounds=50, warmup=0, budget_s=0.05)
    assert 1 <= len(slow["s"]) < 10


@needs_clips
def test_bench_train_minimal(bench):
    text = bench("bench_train").main(["--models", "cp_mobile", "--threads", "1", "--steps", "1", "--warmup", "0",
                                      "--batch", "2", "--compile", "none", "--variants", "channels_last",
                                      "--flush-model", "cp_mobile", "--data", str(DATA)])
    (row,) = table_rows(text, "cp_mobile")[:1]
    assert row[1] == "1x256x65" and row[2] == "2"
    assert float(row[5]) > 0 and float(row[6]) > 0  # fp32 eager and channels_last samples/s
    assert len(table_rows(text, "cp_mobile")) == 3  # speed, data path, flush rows


@needs_clips
def test_bench_inference_minimal(bench):
    text = bench("bench_inference").main(["--models", "cp_mobile", "--threads", "1", "--repeats", "1", "--files", "2",
                                          "--batch", "2", "--backends", "torch", "--target-repeats", "3",
                                          "--data", str(DATA)])
    # (ONNX files left out: exporting takes 10-20 s; the exporter has its own tests)
    lat = table_rows(text, "cp_mobile")
    assert [r[1] for r in lat[:2]] == ["1 s", "10 s"]
    assert all(float(r[4]) > 0 and float(r[5]) > 0 for r in lat[:2])  # predict path and torch eager ms
    assert [r[6:10] for r in lat[:2]] == [["not run"] * 4] * 2  # compiled, ONNX fp32/int8, hybrid
    tp = lat[2]  # throughput row: clip length, files, decode, predict path and torch eager clips/s
    assert tp[1:3] == ["1 s", "2"] and float(tp[3]) > 0 and float(tp[4].split()[0]) > 0
    # the predict path against the targets: both clip lengths, exact against the torch model
    target = table_rows(text, "1 s")[0], table_rows(text, "10 s")[0]
    assert [t[1] for t in target] == ["(1, 256, 68)", "(1, 256, 678)"]
    assert all(float(t[9]) <= 1e-5 and t[10] == "yes" for t in target)
    assert len([line for line in text.splitlines() if line.startswith("Target: CP-Mobile")]) == 2


def test_bench_scaling_minimal(bench, tmp_path):
    text = bench("bench_scaling").main(["--sizes", "4,8", "--repeats", "1", "--workdir", str(tmp_path)])
    rows = [r for r in (table_rows(text, "4") + table_rows(text, "8"))]
    assert [r[0] for r in rows] == ["4", "8"]
    kib = [float(r[4]) for r in rows]
    assert all(k > 2 * 256 * 68 / 1024 for k in kib)  # at least the float16 payload per clip
    assert not list(tmp_path.iterdir())  # the temporary set and caches are removed


def test_run_all_writes_report_atomically(bench, tmp_path, monkeypatch):
    run_all = bench("run_all")

    def fake_run(b, quick):
        return run_all.Section(b, ["python", b.script, "--quick"], 0 if b.name != "scaling" else 3, 1.5,
                               f"### {b.name} table\n\n| a | b |\n| --- | ---: |\n| x | 1 |\n\n"
                               f"Target: {b.name} speed | 2.0x | >= 3x | NOT met",
                               "" if b.name != "scaling" else "Traceback: boom")

    monkeypatch.setattr(run_all, "run_one", fake_run)
    out = tmp_path / "results.md"
    code = run_all.main(["--quick", "--only", "train,scaling", "--out", str(out)])
    text = out.read_text()
    assert code == 1  # one benchmark failed
    assert "## train" in text and "## scaling" in text and "## inference" not in text
    assert "FAILED (exit code 3)" in text and "Traceback: boom" in text
    assert "run_all.py --quick --only train,scaling" in text
    summary = text.split("## Targets (issues 15 and 23)", 1)[1].split("## train", 1)[0]  # the targets, collected first
    assert table_rows(summary, "train speed") == [["train speed", "2.0x", ">= 3x", "NOT met"]]
    assert table_rows(summary, "scaling (benchmark failed)")[0][1:] == ["not measured", "-", "NOT met"]
    assert "flags:" in text  # the CPU flags on the machine line (issue 23)
    assert re.search(r"Load average \(1, 5, 15 min\) at start: [\d.]+, [\d.]+, [\d.]+", text)
    assert [p.name for p in tmp_path.iterdir()] == ["results.md"]  # no temporary file left
    with pytest.raises(SystemExit):
        run_all.parse_args(["--only", "nosuch"])


def test_bench_train_step_quick(bench):
    text = bench("bench_train_step").main(["--quick", "--threads", "1"])
    rows = table_rows(text, "fp32") + table_rows(text, "channels_last")
    assert len(rows) == 2 and all(float(r[1]) > 0 for r in rows)
    assert "Dense 3x3 conv rate measured: fp32" in text
    assert all(float(r[5]) >= 0 and float(r[6]) >= 0 for r in rows)  # user and sys seconds per step
    assert any(line.startswith("Target: CP-Mobile training step") for line in text.splitlines())


def test_bench_busy_options(bench):
    busy = bench("bench_busy")
    args = busy.parse_args(["--quick"])
    assert args.epochs == 1 and args.settle < 10 and args.burners == 2
