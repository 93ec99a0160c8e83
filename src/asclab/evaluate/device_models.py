"""Per-device accuracy of a device container (DCASE 2025 task 1): each clip through its
device's fine-tuned model ("specific") versus every clip through the general model
("general"), as the organisers' baseline README tabulates them (CPJKU
dcase2025_task1_baseline: general model, step 1, against device-specific models, step 2)."""
from __future__ import annotations

from asclab.evaluate.metrics import Metrics


def device_comparison(general: Metrics, specific: Metrics, own_devices: list[str]) -> dict:
    """``{"general": {...}, "specific": {...}, "per_device": {id: {...}}}`` from two evaluations
    of the same clips; ``own_model`` says whether the device has a model of its own (the
    others are routed to the general model, so both columns agree there)."""
    rows = {}
    for name, s in specific.per_device.items():
        g = general.per_device.get(name, {})
        rows[name] = {"n": s["n"], "own_model": name in own_devices,
                      "general_accuracy": g.get("accuracy"), "specific_accuracy": s["accuracy"],
                      "general_macro_accuracy": g.get("macro_accuracy"),
                      "specific_macro_accuracy": s["macro_accuracy"]}
    return {"general": {"accuracy": general.accuracy, "macro_accuracy": general.macro_accuracy},
            "specific": {"accuracy": specific.accuracy, "macro_accuracy": specific.macro_accuracy},
            "per_device": rows}


def format_comparison(cmp: dict) -> str:
    g, s = cmp["general"], cmp["specific"]
    lines = [f"device-specific models: macro accuracy {s['macro_accuracy']:.3f} "
             f"(general model alone {g['macro_accuracy']:.3f})",
             "per device      n   general  specific"]
    for name, r in cmp["per_device"].items():
        mark = "" if r["own_model"] else "  (general model)"
        gen = "-" if r["general_accuracy"] is None else f"{r['general_accuracy']:.3f}"
        lines.append(f"  {name:<8} {r['n']:>6}   {gen:>7}  {r['specific_accuracy']:>8.3f}{mark}")
    return "\n".join(lines)
