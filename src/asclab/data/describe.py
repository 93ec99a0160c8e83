"""``describe(index)``: the text ``asclab data describe DIR`` prints (counts per class, device, city, split)."""
from __future__ import annotations

from asclab.data.index import DatasetIndex


def describe(index: DatasetIndex, max_skipped: int = 10) -> str:
    """Tables of record counts by class, device and city, one column per split."""
    s = index.summary()
    lines = []
    if s["synthetic"]:
        lines.append("*** SYNTHETIC data set (generated, not real recordings) ***")
    lines.append(f"data set: {s['root']}")
    layout = s["layout"] + (f" ({s['split_file']})" if s["split_file"] else "")
    layout += f", test fold {s['test_fold']}" if s["test_fold"] is not None else ""
    lines.append(f"layout:   {layout}")
    recordings = f" from {s['recordings']} recordings" if s.get("recordings") else ""
    lines.append(f"records:  {s['records']} in {len(s['class_list'])} classes{recordings}; skipped: {s['skipped']}")
    splits = list(s["by_split"])
    for key, title in (("classes", "class"), ("devices", "device"), ("cities", "city")):
        lines.append("")
        lines.append(_table(title, s[key], {sp: s["by_split"][sp][key] for sp in splits}))
    if s["folds"]:
        lines.append("")
        lines.append(_table("fold", {str(k): v for k, v in s["folds"].items()}, {}))
    if index.skipped:
        lines.append("")
        lines.append(f"skipped ({len(index.skipped)}):")
        for file, row, reason in index.skipped[:max_skipped]:
            lines.append(f"  {file}" + (f" row {row}" if row is not None else "") + f": {reason}")
        if len(index.skipped) > max_skipped:
            lines.append(f"  ... and {len(index.skipped) - max_skipped} more")
    return "\n".join(lines)


def _table(title: str, total: dict, columns: dict[str, dict]) -> str:
    names = [str(k) for k in total]
    header = [title] + list(columns) + ["total"]
    body = [[name] + [str(col.get(key, 0)) for col in columns.values()] + [str(total[key])]
            for name, key in zip(names, total)]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in body])
