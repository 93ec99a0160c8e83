"""``open_dataset``: detect a data set's layout, read it, map its labels, fix its train/test split."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

from asclab.data.classmaps import CLASS_MAPS, TASK1B_3CLASS, TAU_SCENES
from asclab.data.dcase2024 import available_splits, read_dcase2024, resolve_split
from asclab.data.dcase2025 import SPLIT_NAME as DCASE2025
from asclab.data.dcase2025 import TRAIN_SPLIT as DCASE2025_TRAIN
from asclab.data.dcase2025 import read_dcase2025
from asclab.data.folders import ESC_FOLD_PATTERN, read_class_folders
from asclab.data.group_folds import assign_group_folds, group_folds_from_config
from asclab.data.manifest import read_manifest
from asclab.data.records import Record
from asclab.data.tables import ErrorPolicy, Skipped, where
from asclab.data.tau import read_tau
from asclab.data.tut import is_tut_layout, read_tut
from asclab.errors import AsclabError, ConfigError, DataError

LAYOUTS = ("tau", "tut", "dcase2024", "dcase2025", "manifest", "folders")
SYNTHETIC_MARKER = "SYNTHETIC.json"
UNASSIGNED = "unassigned"
SPLIT_ORDER = ("train", "test", "evaluate", UNASSIGNED)


@dataclass
class DatasetIndex:
    """Every record of a data set plus the chosen split.

    ``classes`` fixes the label order (sorted unless given). ``train``/``test``
    come from the data set's own split or, for folds, from ``test_fold``;
    when neither exists they raise an AsclabError saying how to choose.
    """

    root: Path
    layout: str
    records: list[Record]
    classes: list[str]
    skipped: list[Skipped] = field(default_factory=list)
    split: str | None = None  # the DCASE 2024 split file chosen, e.g. "split25"
    test_fold: int | None = None
    synthetic: bool = False

    def _split(self, name: str) -> list[Record]:
        if not any(r.split in ("train", "test") for r in self.records):
            folds = sorted({r.fold for r in self.records if r.fold is not None})
            if folds:
                raise AsclabError(
                    f"{self.root}: the data set has folds {', '.join(map(str, folds))} but no test fold was "
                    "chosen; pass test_fold=K (command line: --test-fold K)"
                )
            raise AsclabError(
                f"{self.root}: no train/test split and no folds; give a manifest with a 'split' or "
                "'fold' column, or use a layout with evaluation_setup/ or split*.csv files"
            )
        return [r for r in self.records if r.split == name]

    @property
    def train(self) -> list[Record]:
        return self._split("train")

    @property
    def test(self) -> list[Record]:
        return self._split("test")

    @property
    def evaluate(self) -> list[Record]:
        """Unlabelled evaluation records (TAU ``fold1_test.csv``, asked for with split="evaluate")."""
        return [r for r in self.records if r.split == "evaluate"]

    def summary(self) -> dict:
        """Counts per class, device, city, split and fold, overall and per split; ``recordings``
        is the number of distinct identifiers (recordings, or TAU locations)."""

        def counts(records: Sequence[Record]) -> dict:
            return {
                "classes": _count(r.label if r.label is not None else "(unlabelled)" for r in records),
                "devices": _count(r.device if r.device is not None else "(unknown)" for r in records),
                "cities": _count(r.city if r.city is not None else "(unknown)" for r in records),
            }

        by_split: dict[str, list[Record]] = {name: [] for name in SPLIT_ORDER}
        for r in self.records:
            by_split.setdefault(r.split or UNASSIGNED, []).append(r)
        by_split = {k: v for k, v in by_split.items() if v}
        return {
            "root": str(self.root),
            "layout": self.layout,
            "synthetic": self.synthetic,
            "split_file": self.split,
            "test_fold": self.test_fold,
            "records": len(self.records),
            "recordings": len({r.identifier for r in self.records if r.identifier is not None}),
            "class_list": list(self.classes),
            **counts(self.records),
            "splits": {k: len(v) for k, v in by_split.items()},
            "folds": _count(r.fold for r in self.records if r.fold is not None),
            "by_split": {k: counts(v) for k, v in by_split.items()},
            "skipped": len(self.skipped),
        }


def _count(values) -> dict:
    return dict(sorted(Counter(values).items(), key=lambda kv: str(kv[0])))


def detect_layout(root: str | Path) -> str:
    """Which reader a path needs (see module doc of each reader)."""
    root = Path(root)
    if root.is_file():
        if root.suffix.lower() in (".csv", ".tsv", ".txt"):
            return "manifest"
        raise DataError(f"{root}: not a data set folder or a .csv manifest")
    if not root.is_dir():
        raise DataError(f"{root}: data set not found")
    if available_splits(root):
        return "dcase2024"
    if is_tut_layout(root):
        return "tut"
    if (root / "meta.csv").is_file() or (root / "evaluation_setup").is_dir():
        return "tau"
    if (root / "manifest.csv").is_file():
        return "manifest"
    return "folders"


def open_dataset(
    root: str | Path,
    *,
    split: str | None = None,
    test_fold: int | None = None,
    class_map: Mapping[str, str] | str | None = None,
    classes: Sequence[str] | None = None,
    on_error: str = "raise",
    check_files: bool = True,
    layout: str | None = None,
    strip_number_prefix: bool = False,
    fold_pattern: str | None = ESC_FOLD_PATTERN,
    group_folds: Mapping | None = None,
    allow_outside: bool = False,
) -> DatasetIndex:
    """Read a data set, auto-detecting its layout.

    Layouts: ``split*.csv`` (in the root or ``split_setup/``) -> "dcase2024"
    (``split="split25"`` etc., default the largest; ``split="dcase2025"``: the DCASE 2025
    split, split25 + test with a device id for every clip, layout "dcase2025"); ``meta.csv`` or
    ``evaluation_setup/`` -> "tau" (``split="evaluate"`` adds the unlabelled
    fold1_test records); a ``.csv`` file or a folder with ``manifest.csv`` ->
    "manifest"; otherwise class folders. ``class_map`` (a mapping or the name
    of one in CLASS_MAPS) renames labels; a label already equal to a target
    class is kept. A label outside ``class_map``/``classes`` is an error naming
    file and row. ``check_files`` requires listed audio to exist; with
    ``on_error="skip"`` bad rows and missing files are dropped and listed in
    ``DatasetIndex.skipped``. ``strip_number_prefix`` and ``fold_pattern``
    apply to class folders (see ``read_class_folders``). A path to a TAU
    ``meta.csv`` opens its folder. Each record's ``extra`` holds the
    metadata ``source`` file, its ``row`` and the listed ``filename``.
    A TUT 2016/2017 root (``meta.txt``, ``evaluation_setup/foldK_*.txt``) -> "tut".
    ``group_folds`` (``{folds: K, by: identifier, seed: 0}``, the recipe's
    ``data.group_folds``) replaces any folds with K recording-wise folds
    (``asclab.data.group_folds``) before ``test_fold`` is applied.
    """
    root = Path(root)
    if root.is_file() and root.name == "meta.csv" and layout is None:
        root = root.parent
    layout = layout or detect_layout(root)
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    policy = ErrorPolicy(on_error)
    skipped = policy.skipped
    split_name = None
    if layout == "dcase2024" and split == DCASE2025:  # the 2024 files read the 2025 way (asclab.data.dcase2025)
        layout = "dcase2025"
    if layout == "dcase2025":
        split_name = DCASE2025_TRAIN
        records = read_dcase2025(root, check_files=check_files, on_error=on_error, skipped=skipped)
    elif layout == "dcase2024":
        split_name, _ = resolve_split(root, split)
        records = read_dcase2024(root, split=split_name, check_files=check_files, on_error=on_error, skipped=skipped)
    elif layout == "tau":
        if split not in (None, "evaluate"):
            raise ConfigError(f"data.split {split!r}: a TAU layout takes no split or 'evaluate' (adds fold1_test)")
        records = read_tau(root, include_evaluate=split == "evaluate", check_files=check_files,
                           on_error=on_error, skipped=skipped)
    elif layout == "tut":
        if split is not None:
            raise ConfigError(f"data.split {split!r}: a TUT 2016/2017 layout has folds, not named splits "
                              "(use data.test_fold)")
        records = read_tut(root, check_files=check_files, on_error=on_error, skipped=skipped)
    else:
        if split is not None:
            raise ConfigError(f"data.split {split!r} applies to the DCASE 2024 (split5 ... split100) and TAU "
                              "('evaluate') layouts")
        if layout == "manifest":
            path = root if root.is_file() else root / "manifest.csv"
            records = read_manifest(path, check_files=check_files, on_error=on_error, skipped=skipped)
        else:
            records = read_class_folders(root, strip_number_prefix=strip_number_prefix, fold_pattern=fold_pattern,
                                         on_error=on_error, skipped=skipped)
    if not allow_outside:
        records = inside_root(records, root if root.is_dir() else root.parent, policy)
    if classes is None and layout == "manifest":
        classes = declared_classes(root if root.is_dir() else root.parent)
    if classes is None and class_map is None and layout in ("tau", "dcase2024"):
        records = tau_labels(records, policy)  # the data set's own class list: the ten scenes
    records = map_labels(records, class_map, classes, policy)
    if not records:
        first = f"; first problem: {where(*skipped[0][:2])}{skipped[0][2]}" if skipped else ""
        raise DataError(f"{root}: no usable records ({len(skipped)} skipped{first})")
    grouping = group_folds_from_config(group_folds)
    if grouping is not None:
        k, by, seed = grouping
        records = assign_group_folds([r for r in records if r.label is not None], k, by=by, seed=seed)
    if test_fold is not None:
        records = assign_test_fold(records, test_fold, root, policy)
    if classes is not None:
        class_list = list(classes)
    else:
        class_list = sorted({r.label for r in records if r.label is not None})
    base = root if root.is_dir() else root.parent
    return DatasetIndex(
        root=root, layout=layout, records=records, classes=class_list, skipped=skipped,
        split=split_name, test_fold=test_fold, synthetic=is_synthetic(base),
    )


def resolve_class_map(class_map: Mapping[str, str] | str | None) -> Mapping[str, str] | None:
    if isinstance(class_map, str):
        if class_map not in CLASS_MAPS:
            raise ConfigError(f"unknown class map {class_map!r}; known: {', '.join(CLASS_MAPS)}")
        return CLASS_MAPS[class_map]
    return class_map


def map_labels(
    records: list[Record],
    class_map: Mapping[str, str] | str | None,
    classes: Sequence[str] | None,
    policy: ErrorPolicy,
) -> list[Record]:
    """Rename labels through ``class_map`` and check them against ``classes``."""
    mapping = resolve_class_map(class_map)
    targets = set(mapping.values()) if mapping is not None else set()
    allowed = set(classes) if classes is not None else None
    out = []
    for rec in records:
        label = rec.label
        if label is not None and mapping is not None:
            if label in mapping:
                label = mapping[label]
            elif label not in targets:
                policy.report(rec.extra.get("source", rec.path), rec.extra.get("row"),
                              f"label {label!r} of {rec.extra.get('filename', rec.path)} is not in the class map")
                continue
        if label is not None and allowed is not None and label not in allowed:
            policy.report(rec.extra.get("source", rec.path), rec.extra.get("row"),
                          f"label {label!r} of {rec.extra.get('filename', rec.path)} is not one of the classes "
                          f"({', '.join(classes)})")
            continue
        out.append(rec if label == rec.label else replace(rec, label=label))
    return out


def assign_test_fold(records: list[Record], test_fold: int, root: Path, policy: ErrorPolicy) -> list[Record]:
    """Records of ``test_fold`` become "test", the other folds "train"."""
    folds = sorted({r.fold for r in records if r.fold is not None})
    if not folds:
        raise ConfigError(f"data.test_fold {test_fold}: {root} defines no folds")
    if test_fold not in folds:
        raise ConfigError(f"data.test_fold {test_fold} is not one of the folds of {root} ({', '.join(map(str, folds))})")
    out = []
    for rec in records:
        if rec.fold is None:
            policy.report(rec.extra.get("source", rec.path), rec.extra.get("row"),
                          f"{rec.extra.get('filename', rec.path)} has no fold")
            continue
        out.append(replace(rec, split="test" if rec.fold == test_fold else "train"))
    return out


def is_synthetic(folder: Path) -> bool:
    """True for a folder written by ``make_synthetic_dataset`` (it carries SYNTHETIC.json)."""
    marker = folder / SYNTHETIC_MARKER
    if not marker.is_file():
        return False
    try:
        return bool(json.loads(marker.read_text(encoding="utf-8")).get("synthetic"))
    except (ValueError, OSError, AttributeError):
        return False


def inside_root(records: list[Record], root: Path, policy: ErrorPolicy) -> list[Record]:
    """Refuse (report at its metadata row) a listed file that resolves outside the data
    folder: ``../``, an absolute path or a symlink leading out (``data.allow_outside: true``
    allows them)."""
    base = Path(root).resolve()
    out = []
    for rec in records:
        target = Path(rec.path).resolve()
        if target != base and base not in target.parents:
            policy.report(rec.extra.get("source", rec.path), rec.extra.get("row"),
                          f"{rec.extra.get('filename', rec.path)} resolves outside the data folder {base} "
                          "(refused; --set data.allow_outside=true allows it)")
            continue
        out.append(rec)
    return out


CLASSES_FILE = "classes.txt"
# The TAU data sets' own labels: the ten scenes, "unknown" (TAU 2019 open set, task 1c) and
# the three classes of TAU 2020 3Class (task 1b: indoor, outdoor, transportation).
TAU_LABELS = (*TAU_SCENES, "unknown", *sorted(set(TASK1B_3CLASS.values())))


def declared_classes(folder: Path) -> list[str] | None:
    """A manifest's own class list: ``classes.txt`` beside it, one name a line (None if absent)."""
    path = Path(folder) / CLASSES_FILE
    if not path.is_file():
        return None
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the class list ({exc})") from None
    if not names or len(set(names)) != len(names):
        raise DataError(f"{path}: the class list must name each class once, one a line")
    return names


def tau_labels(records: list[Record], policy: ErrorPolicy) -> list[Record]:
    """Refuse (report at its metadata row) a TAU/DCASE label outside the data sets' own (``TAU_LABELS``)."""
    out = []
    for rec in records:
        if rec.label is not None and rec.label not in TAU_LABELS:
            policy.report(rec.extra.get("source", rec.path), rec.extra.get("row"),
                          f"label {rec.label!r} of {rec.extra.get('filename', rec.path)} is not one of the TAU "
                          f"scenes ({', '.join(TAU_SCENES)}; or unknown, indoor, outdoor, transportation)")
            continue
        out.append(rec)
    return out


def single_clip_classes(records: Sequence[Record]) -> list[str]:
    """Classes with one labelled clip (reported when the classes come from the labels)."""
    counts: dict[str, int] = {}
    for r in records:
        if r.label is not None:
            counts[r.label] = counts.get(r.label, 0) + 1
    return sorted(c for c, n in counts.items() if n == 1)
