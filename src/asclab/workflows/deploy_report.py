"""``asclab deploy-report MODEL --data DIR --out report/``: what each deployment choice costs.

For one float model file (and, with ``--qat``, its int8 QAT fine-tuned twin)
the report measures, on the labelled test clips of ``DIR`` (the split the
model's recipe tests on, e.g. its cross-validation fold):

- accuracy at fp32 (torch), fp16 (torch with fp16-rounded weights; ONNX and
  LiteRT fp16 files), int8 post-training (ONNX dynamic and static QDQ,
  LiteRT static int8, each calibrated on the recipe's training clips) and
  int8 QAT (torchao PT2E quantise/dequantise graph in torch eager, ``asclab.compress.qat``);
- latency of the network per backend for a 1-s and a 10-s clip at one
  thread (best and median of ``repeats`` runs after one warm-up; features
  computed beforehand, the front end timed on its own line);
- the size on disk of each file (torch rows: the weights saved alone with
  ``torch.save``, as a model file holds them);

and writes ``report.md``, ``report.json`` and ``accuracy_vs_size.png``.
Clips are cut or padded to the model's duration (as ``asclab evaluate``
does for a model with one); LiteRT files have a static input, so the
latency rows use files exported for 1 s and 10 s.
"""
from __future__ import annotations

import copy
import io
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from asclab.config import DataConfig, typed_block
from asclab.data.open import open_data
from asclab.errors import AsclabError
from asclab.evaluate.inference import Predictor
from asclab.export.clips import clip_features, model_seconds
from asclab.export.litert_export import (
    export_litert,
    litert_available,
    open_interpreter,
    run_interpreter,
)
from asclab.export.onnx_export import export_onnx
from asclab.io import atomic_path, write_json
from asclab.train.checkpoint import resolve_checkpoint

LATENCY_SECONDS = (1.0, 10.0)


@dataclass
class Backend:
    name: str  # e.g. "ONNX int8 static"
    precision: str  # fp32 | fp16 | int8 PTQ | int8 QAT
    file: str | None
    size_bytes: int
    run: Callable[[np.ndarray], np.ndarray]  # features [1, C, F, T] -> logits [1, K]
    latency_runs: dict = field(default_factory=dict)  # seconds -> callable for that clip length
    accuracy: float | None = None
    latency_ms: dict = field(default_factory=dict)  # best of the timed runs
    latency_median_ms: dict = field(default_factory=dict)

    def row(self) -> dict:
        return {"backend": self.name, "precision": self.precision, "file": self.file, "size_bytes": self.size_bytes,
                "accuracy": self.accuracy, "latency_ms": self.latency_ms, "latency_median_ms": self.latency_median_ms}


def _state_bytes(state: dict) -> int:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.tell()


def _torch_run(model: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    @torch.no_grad()
    def run(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x)).float().numpy()
    return run


def _onnx_run(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort  # optional heavy dependency: loaded only when an ONNX session runs

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def _litert_run(path: str) -> Callable[[np.ndarray], np.ndarray]:

    it = open_interpreter(Path(path), threads=1)
    return lambda x: run_interpreter(it, x)


def _torch_backends(pred: Predictor, qat: Predictor | None, qat_path: Path | None) -> list[Backend]:
    fp32 = pred.model
    half = copy.deepcopy(fp32).half().float().eval()  # fp16 storage, fp32 compute
    out = [Backend("torch eager", "fp32", None, _state_bytes({k: v.float() if v.is_floating_point() else v
                                                              for k, v in fp32.state_dict().items()}),
                   _torch_run(fp32)),
           Backend("torch eager (fp16 weights)", "fp16", None,
                   _state_bytes({k: v.half() if v.is_floating_point() else v for k, v in fp32.state_dict().items()}),
                   _torch_run(half))]
    if qat is not None:
        out.append(Backend("torch int8 (QAT, PT2E Q/DQ)", "int8 QAT", str(qat_path),
                           _state_bytes(qat.meta.state_dict), _torch_run(qat.model)))
    for b in out:
        b.latency_runs = {s: b.run for s in LATENCY_SECONDS}
    return out


def _onnx_backends(ckpt: Path, files_dir: Path, data: str | Path) -> list[Backend]:

    r = export_onnx(ckpt, files_dir / "model.onnx", input_kind="features", fp16=True, int8=True,
                    int8_static=True, calib_data=data)
    names = {"fp32": ("ONNX fp32", "fp32"), "fp16": ("ONNX fp16 weights", "fp16"),
             "int8": ("ONNX int8 dynamic", "int8 PTQ"), "int8_static": ("ONNX int8 static (QDQ)", "int8 PTQ")}
    out = []
    for f in r["files"]:
        name, precision = names[f["precision"]]
        run = _onnx_run(Path(f["path"]))
        out.append(Backend(name, precision, f["path"], f["size_bytes"], run, {s: run for s in LATENCY_SECONDS}))
    return out


def _litert_backends(ckpt: Path, files_dir: Path, data: str | Path, seconds: float) -> list[Backend]:

    made = {}
    for secs in sorted({seconds, *LATENCY_SECONDS}):
        sub = files_dir if secs == seconds else files_dir / f"litert_{secs:g}s"
        sub.mkdir(parents=True, exist_ok=True)
        made[secs] = {f["precision"]: f for f in export_litert(ckpt, sub / "model.tflite", fp16=True, int8=True,
                                                               calib_data=data, seconds=secs)["files"]}
    out = []
    for precision, label in (("fp32", "fp32"), ("fp16", "fp16"), ("int8", "int8 PTQ")):
        f = made[seconds][precision]
        out.append(Backend(f"LiteRT {precision}" + (" (static)" if precision == "int8" else ""), label, f["path"],
                           f["size_bytes"], _litert_run(f["path"]),
                           {s: _litert_run(made[s][precision]["path"]) for s in LATENCY_SECONDS}))
    return out


def _latency_ms(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, repeats: int) -> tuple[float, float]:
    """(best, median) milliseconds of ``repeats`` runs after one warm-up; the best is the steadier figure
    on a shared machine (other jobs only ever add time)."""
    run(x)  # warm-up
    times = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    return 1000 * min(times), 1000 * statistics.median(times)


def deploy_report(model: str | Path, data: str | Path, out: str | Path, *, qat: str | Path | None = None,
                  repeats: int = 10, max_clips: int | None = None, litert: bool = True) -> dict:
    """Measure every backend (see the module docstring) and write the report into ``out``."""
    torch.set_num_threads(1)
    ckpt = resolve_checkpoint(model)
    pred = Predictor.load(ckpt)
    if pred.precision == "int8":
        raise AsclabError(f"{ckpt}: pass the float model as MODEL and the QAT model with --qat")
    qpred = qpath = None
    if qat is not None:
        qpath = resolve_checkpoint(qat)
        qpred = Predictor.load(qpath)
        if qpred.precision != "int8":
            raise AsclabError(f"{qpath}: --qat needs an int8 model (trained with a workflow stage qat)")
        if qpred.classes != pred.classes:
            raise AsclabError(f"{qpath}: its classes differ from {ckpt}'s")
    out = Path(out)
    files_dir = out / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    seconds = model_seconds(pred)
    index = open_data(data, typed_block(DataConfig, pred.meta.recipe, "data"))
    records = [r for r in index.test if r.label in pred.classes]
    if max_clips is not None:
        records = records[:max_clips]
    if not records:
        raise AsclabError(f"{data}: no labelled test clips with the model's classes")
    feats = clip_features(pred, [r.path for r in records], seconds)
    truth = np.array([pred.classes.index(r.label) for r in records])

    backends = _torch_backends(pred, qpred, qpath) + _onnx_backends(ckpt, files_dir, data)
    skipped = None
    if litert:
        skipped = litert_available()
        if skipped is None:
            backends += _litert_backends(ckpt, files_dir, data, seconds)
    for b in backends:
        logits = np.concatenate([b.run(x[None]) for x in feats])
        b.accuracy = float(np.mean(logits.argmax(1) == truth))
    rng = np.random.default_rng(0)
    chans = 2 if pred.fcfg.channels == "stereo" else 1
    front = {}
    for secs in LATENCY_SECONDS:
        wave = (0.1 * rng.standard_normal((1, chans, int(secs * pred.fcfg.sample_rate)))).astype(np.float32)
        with torch.no_grad():
            x = pred.features(torch.from_numpy(wave)).numpy()
        front[secs] = _latency_ms(lambda w: pred.features(torch.from_numpy(w)), wave, repeats)[0]
        for b in backends:
            b.latency_ms[f"{secs:g}s"], b.latency_median_ms[f"{secs:g}s"] = _latency_ms(b.latency_runs[secs], x,
                                                                                       repeats)
    report = {"model": str(ckpt), "qat_model": str(qat) if qat else None, "data": str(data),
              "n_clips": len(records), "clip_seconds": seconds, "threads": 1, "repeats": repeats,
              "frontend_ms": {f"{s:g}s": v for s, v in front.items()},
              "litert": "measured" if litert and skipped is None else (skipped or "not requested"),
              "rows": [b.row() for b in backends]}
    write_json(out / "report.json", report)
    plot_rows(report["rows"], out / "accuracy_vs_size.png")
    with atomic_path(out / "report.md", suffix=".md") as tmp:
        tmp.write_text(format_markdown(report))
    return report


def format_markdown(report: dict) -> str:
    rows = report["rows"]
    ref = next((r for r in rows if r["backend"] == "torch eager"), rows[0])
    lines = [f"# Deployment report: {Path(report['model']).parent.name or report['model']}", "",
             f"- model: `{report['model']}`" + (f"; QAT model: `{report['qat_model']}`" if report["qat_model"] else ""),
             f"- accuracy on {report['n_clips']} test clips of `{report['data']}` ({report['clip_seconds']:g} s each)",
             f"- latency: network only, best of {report['repeats']} runs (medians in report.json), "
             f"{report['threads']} thread; "
             f"asclab front end {report['frontend_ms']['1s']:.2f} ms (1 s) / {report['frontend_ms']['10s']:.2f} ms (10 s)",
             f"- LiteRT: {report['litert']}", "",
             "| backend | precision | size (KiB) | size vs its fp32 file | accuracy | vs torch fp32 | "
             "1-s clip (ms) | 10-s clip (ms) | latency vs its fp32 (10 s) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    family = {r["backend"].split()[0]: r for r in reversed(rows) if r["precision"] == "fp32"}
    for r in rows:
        own = family.get(r["backend"].split()[0], ref)
        lines.append(f"| {r['backend']} | {r['precision']} | {r['size_bytes'] / 1024:,.1f} | "
                     f"{100 * r['size_bytes'] / own['size_bytes']:.0f} % | {r['accuracy']:.4f} | "
                     f"{100 * (r['accuracy'] - ref['accuracy']):+.1f} pt | {r['latency_ms']['1s']:.2f} | "
                     f"{r['latency_ms']['10s']:.2f} | {r['latency_ms']['10s'] / own['latency_ms']['10s']:.2f}x |")
    lines += ["", "Sizes: files on disk; torch rows: the weights saved alone (`torch.save` of the state), "
              "not a whole model file. Each row is compared with the fp32 row of its own runtime.", ""]
    return "\n".join(lines)


def plot_rows(rows: list[dict], path: Path) -> None:
    """Accuracy against file size, one point per backend: colour = precision, marker = runtime."""
    import matplotlib  # heavy: loaded only when the report plots

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: loaded only when the report plots

    fig, ax = plt.subplots(figsize=(8, 5))
    colours = {"fp32": "tab:blue", "fp16": "tab:green", "int8 PTQ": "tab:orange", "int8 QAT": "tab:red"}
    markers = {"torch": "o", "ONNX": "s", "LiteRT": "^"}
    for k, r in enumerate(rows):
        runtime = r["backend"].split()[0]
        x, y = r["size_bytes"] / 1024, 100 * r["accuracy"]
        ax.scatter(x, y, color=colours.get(r["precision"], "grey"), marker=markers.get(runtime, "x"), s=40,
                   label=r["precision"])
        ax.annotate(r["backend"], (x, y), fontsize=6, rotation=35, xytext=(3, 4 + 9 * (k % 3)),
                    textcoords="offset points")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=8, title="o torch, s ONNX, ^ LiteRT", title_fontsize=7,
              loc="lower right")
    ax.set_xlabel("file size (KiB)")
    ax.set_ylabel("accuracy (%)")
    lo, hi = min(100 * r["accuracy"] for r in rows), max(100 * r["accuracy"] for r in rows)
    ax.set_ylim(lo - 1.0, hi + 2.5)
    ax.set_title("accuracy against size per backend")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


__all__ = ["deploy_report", "format_markdown", "plot_rows"]
