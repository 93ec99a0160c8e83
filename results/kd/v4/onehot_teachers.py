"""The probe of issue 22 item 3: a teacher file whose logits are the true labels as confident
one-hot logits (SCALE x one-hot), for every labelled clip of a data folder.

    python results/kd/v4/onehot_teachers.py DATA RECIPE OUT.h5 [--scale 20] [--set k=v ...]

RECIPE (with its --set overrides) only chooses how DATA is read (its data block), so the keys are
those a student of that recipe looks up. Through the KD loss at T = 2 such a teacher is the label
itself (softmax(20 e_y / 2): 0.9994 on the true class for 15 classes).
"""
import argparse

import numpy as np

from asclab.config import load_config
from asclab.data.open import open_data
from asclab.data.teacher_file import TeacherFile, clip_key

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("recipe")
ap.add_argument("out")
ap.add_argument("--scale", type=float, default=20.0)
ap.add_argument("--set", action="append", default=[])
a = ap.parse_args()
_, cfg = load_config(a.recipe, a.set)
index = open_data(a.data, cfg.data)
records = [r for r in list(index.train) + list(index.test) if r.label is not None]
y = np.array([index.classes.index(r.label) for r in records])
logits = a.scale * np.eye(len(index.classes), dtype=np.float32)[y]
TeacherFile(keys=[clip_key(r.path, index.root) for r in records], classes=list(index.classes), logits=logits,
            splits=[r.split or "" for r in records],
            members=[{"run": f"one-hot labels x {a.scale:g}", "recipe_name": None, "recipe": ""}],
            data=str(a.data)).write(a.out)
print(f"wrote {a.out}: {len(records)} clips, {len(index.classes)} classes, logits {a.scale:g} x one-hot")
