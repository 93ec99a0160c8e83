"""Write the DCASE task 1 submission CSV for a folder of audio files.

    python evaluate_submission.py --data FOLDER --out output.csv [--index 1] [--package NAME]

The package is the one folder beside this script that holds ``__init__.py`` and
``ckpts/`` (the package it was written with), unless ``--package`` names another;
its submission module NAME.NAME_<index> makes the predictions.

Device ids come from FOLDER/evaluation_setup/fold1_test.csv (columns filename,
device_id) when it exists, else from the TAU file name (its last "-" field,
e.g. ...-s1.wav), else "unknown" (the general model).
"""
import argparse
import csv
import importlib
from pathlib import Path

import torch

AUDIO = (".wav", ".flac", ".ogg")


def files_and_devices(root):
    listing = root / "evaluation_setup" / "fold1_test.csv"
    if listing.exists():
        with open(listing, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        return [(r["filename"], r.get("device_id") or "unknown") for r in rows]
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() in AUDIO)
    return [(n, Path(n).stem.rsplit("-", 1)[-1] if "-" in Path(n).stem else "unknown") for n in names]


def package_beside(here=None):
    """The name of the one package folder (``__init__.py`` and ``ckpts/``) beside this script."""
    here = Path(here or Path(__file__).resolve().parent)
    found = sorted(p.name for p in here.iterdir() if (p / "__init__.py").is_file() and (p / "ckpts").is_dir())
    if len(found) != 1:
        raise SystemExit(f"{here}: expected one package folder (with ckpts/) beside evaluate_submission.py, "
                         f"found {found or 'none'}; name it with --package")
    return found[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="output.csv")
    ap.add_argument("--index", type=int, default=1)
    ap.add_argument("--package", default=None, help="the package name (default: the package folder beside this)")
    args = ap.parse_args()
    pkg = args.package or package_beside()
    api = importlib.import_module(f"{pkg}.{pkg}_{args.index}")
    root = Path(args.data)
    items = files_and_devices(root)
    logits, classes = api.predict([str(root / n) for n, _ in items], [d for _, d in items],
                                  use_cuda=torch.cuda.is_available())
    probs = torch.softmax(torch.stack(logits), dim=1)
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["filename", "scene_label", *classes])
        for (name, _), p in zip(items, probs):
            w.writerow([name, classes[int(p.argmax())], *(f"{float(v):.6f}" for v in p)])
    print(f"wrote {args.out} ({len(items)} files)")


if __name__ == "__main__":
    main()
