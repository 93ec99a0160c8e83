"""Commands that classify audio with a model file: evaluate, predict, submit, logits."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from asclab.errors import AsclabError
from asclab.evaluate.longform import format_table, write_files_csv, write_timeline
from asclab.interop.cpjku_logits import import_cpjku
from asclab.workflows.evaluate import evaluate_run
from asclab.workflows.logits import compute_teacher_logits
from asclab.workflows.predict import classify_recordings
from asclab.workflows.submit import write_submission


def cmd_evaluate(args) -> int:
    m = evaluate_run(args.ckpt, args.data, out_dir=args.out, tta=args.tta, ensemble=args.ensemble,
                     progress=not args.quiet, on_error="skip" if args.skip_bad else "raise",
                     precision=args.precision)
    print(m["text"])
    if m["skipped"]:
        print(f"skipped {len(m['skipped'])} unreadable file(s); listed in metrics.json")
    where = Path(args.out) if args.out else Path(m["checkpoint"]).parent
    print(f"metrics: {where / 'metrics.json'}\nconfusion matrix: {where / 'confusion.png'}")
    return 0


def cmd_predict(args) -> int:
    results, skipped = classify_recordings(args.ckpt, args.files, hop=args.hop, batch_size=args.batch_size,
                                           progress=not args.quiet, on_error="skip" if args.skip_bad else "raise",
                                           device=args.device)
    if args.jsonl:
        for r in results:
            print(json.dumps({**r.to_dict(timeline=True), "top": r.top(args.top)}))
    else:
        print(format_table(results, top=args.top))
    for f, why in skipped:
        print(f"skipped: {why}", file=sys.stderr)
    if skipped:
        print(f"skipped {len(skipped)} unreadable file(s), classified {len(results)}", file=sys.stderr)
    if args.csv:
        write_files_csv(results, args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
    if args.timeline:
        write_timeline(results, args.timeline)
        print(f"wrote {args.timeline}", file=sys.stderr)
    return 0


def cmd_submit(args) -> int:
    s = write_submission(args.ckpt, args.data, args.out, year=args.year, hop=args.hop, progress=not args.quiet,
                         on_error="skip" if args.skip_bad else "raise")
    c = s["complexity"]
    if c is None:
        print(f"DCASE {args.year}: no complexity limits")
    else:
        macs = f", {c['macs'] / 1e6:.2f} of {c['max_macs'] / 1e6:.0f} MMAC" if c["max_macs"] else ""
        print(f"{c['title']}: ok ({c['param_bytes']:,} of {c['max_param_bytes']:,} bytes at {c['bits']} bits{macs})")
    for f in s["skipped"]:
        print(f"skipped {f['file']}: {f['reason']}", file=sys.stderr)
    if s["skipped"]:
        print(f"WARNING: {len(s['skipped'])} evaluation file(s) missing from the submission", file=sys.stderr)
    print(f"wrote {s['out']} ({s['n_files']} files, {len(s['classes'])} classes)")
    return 0


def cmd_logits(args) -> int:
    if args.import_cpjku:
        if not args.meta:
            raise AsclabError("--import-cpjku needs --meta CSV (the metadata file its rows follow)")
        classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
        s = import_cpjku(args.import_cpjku, args.meta, args.data, args.out, classes=classes)
        print(f"imported {s['clips']} clips x {len(s['classes'])} classes into {s['out']}")
        return 0
    s = compute_teacher_logits(args.runs, args.data, args.out, duration=args.duration, batch_size=args.batch_size,
                               hashes=not args.no_hash, progress=not args.quiet)
    acc = s.get("test_accuracy_mean_logits")
    print(f"wrote {s['out']}: {s['clips']} clips, {len(s['members'])} member(s), {s['duration']} s clips"
          + (f"; test accuracy of the mean logits {acc:.3f} on {s['n_test']} clips" if acc is not None else ""))
    if s.get("train_accuracy_mean_logits") is not None:
        top = s["train_top_probability"]
        print(f"on its {s['n_train']} training clips the teacher is right on {s['train_accuracy_mean_logits']:.3f}, "
              f"mean top probability {top['T1']:.2f} (T=1), {top['T2']:.2f} (T=2): what a student is taught")
    return 0
