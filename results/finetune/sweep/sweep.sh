#!/bin/bash
# Choosing the fine-tuning recipe without the test folds: for each TUT 2017 recording-wise test fold k,
# a quarter of the *training* recordings is carved out (data.validation, by recording); the fine-tune
# trains on the rest and is scored on the carved split only (val_acc at the last epoch). Test folds never scored.
# usage: sweep.sh NAME RECIPE [folds...]
cd /work/main
name=$1; recipe=$2; shift 2; folds=${*:-1 2 3 4}
for k in $folds; do
  out=/work/runs/sweep/$name/fold$k
  echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) START $name fold $k"
  nice -n 5 .venv/bin/asclab --threads 1 finetune /work/runs/sys4.ckpt --general --recipe $recipe \
    --data ../shared/data/tut2017 --out $out --quiet --force \
    --set data.group_folds.folds=4 --set data.group_folds.by=identifier --set data.test_fold=$k \
    --set data.validation.fraction=0.25 --set data.validation.by=identifier --set train.keep=last "${EXTRA[@]}" > $out.log 2>&1
  python3 - "$out" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1] + "/logs/metrics.csv")) if r.get("val_acc")]
print(sys.argv[1], "epochs", [r["epoch"] for r in rows], "val_acc", [round(float(r["val_acc"]), 4) for r in rows])
PY
done
