"""Commands that write deployable files: export (ONNX, LiteRT), deploy-report, import, package."""
from __future__ import annotations

import json
from pathlib import Path

from asclab.export.backend import ExportRequest, export_backend
from asclab.export.package import write_package
from asclab.interop import import_checkpoint
from asclab.workflows.deploy_report import deploy_report


def cmd_import(args) -> int:
    s = import_checkpoint(args.src, args.out, precision=args.precision)
    devices = f", device models {', '.join(s['devices'])}" if s["devices"] else ""
    print(f"{s['layout']}{devices}; {s['precision']} inference")
    for what, source in s["front_end_from"].items():
        print(f"  front end {what}: {source}")
    print(f"wrote {s['out']}")
    return 0


def cmd_package(args) -> int:
    s = write_package(args.ckpt, args.out, name=args.name, index=args.index, force=args.force)
    for member, c in s["complexity"].items():
        print(f"  {member:<6} {c['param_bytes']:>9,} bytes  {c['macs'] / 1e6:6.2f} MMAC  ok")
    print(f"wrote {s['out']} (module {s['module']}); install with: pip install {s['out']}")
    return 0


def cmd_export_litert(args) -> int:
    r = export_backend("litert")(export_request(args))
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    for f in r["files"]:
        print(f"{f['path']}: {f['precision']}, {f['size_bytes'] / 1024:,.1f} KiB on disk "
              f"({'within' if f['within_limit'] else 'OVER'} {f['limit']}: {f['limit_bytes']:,} bytes), "
              f"max |LiteRT - torch| {f['max_abs_diff']:.2e}, top-1 agreement {f['top1_agreement']:.3f}")
    print(f"input: features {'x'.join(map(str, r['input']['shape']))} ({r['input']['seconds']:g} s); "
          f"checked on {r['check']}\nsidecar: {r['sidecar']}")
    return 0


def cmd_deploy_report(args) -> int:
    r = deploy_report(args.ckpt, args.data, args.out, qat=args.qat, repeats=args.repeats, max_clips=args.max_clips,
                      litert=not args.no_litert)
    for row in r["rows"]:
        print(f"{row['backend']:<30} {row['precision']:<8} {row['size_bytes'] / 1024:8.1f} KiB  "
              f"acc {row['accuracy']:.4f}  {row['latency_ms']['1s']:7.2f} ms (1 s)  {row['latency_ms']['10s']:7.2f} ms (10 s)")
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0


def export_request(args) -> ExportRequest:
    return ExportRequest(args.ckpt, args.out, input_kind=args.input_kind, fp16=args.fp16, int8=args.int8,
                         int8_static=args.int8_static, calib_data=args.calib_data, check_clips=args.check_clips,
                         val_data=args.val_data, device=args.device)


def cmd_export(args) -> int:
    """Any registered export backend (``asclab.export.backend``); ONNX and LiteRT print their own summary."""
    if args.format == "litert":
        return cmd_export_litert(args)
    r = export_backend(args.format)(export_request(args))
    if args.format != "onnx":
        print(json.dumps(r, indent=2))
        return 0
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    for f in r["files"]:
        line = f"{f['path']}: {f['precision']}, {f['size_bytes'] / 1024:,.1f} KiB, "
        line += (f"max |ONNX - torch| {f['max_abs_diff']:.2e} (verified)" if f["precision"] == "fp32" else
                 f"max |diff| from fp32 {f['max_abs_diff']:.2e}, top-1 agreement {f['top1_agreement']:.3f}")
        if f["accuracy"] is not None:
            line += f", accuracy {f['accuracy']:.4f}"
        if f.get("real_clips"):
            rc = f["real_clips"]
            line += (f"; on {rc['n_clips']} real clips: max |diff| from torch {rc['max_abs_diff']:.2e}, "
                     f"top-1 agreement {rc['top1_agreement']:.3f}")
        print(line)
    v = r["validation"]
    if v:
        changes = ", ".join(f"{k[:-7]} {v[k]:+.4f}" for k in v if k.endswith("_change"))
        print(f"validation on {v['n_files']} files of {v['data']}" + (f": accuracy change {changes}" if changes else ""))
    print(f"sidecar: {r['files'][0]['sidecar']}")
    return 0
