#!/usr/bin/env bash
# Measurements of issue 12 items 2-3 on the SYNTHETIC set (see README.md here).
# usage: results/synthetic_devices/run.sh WORK_DIR   (from the repository root; WORK_DIR holds data, runs, cache)
set -euo pipefail
WORK=${1:?usage: run.sh WORK_DIR}
HERE=results/synthetic_devices
ASCLAB="nice env OMP_NUM_THREADS=1 .venv/bin/asclab --threads 1"
EPOCHS=12
COMMON=(--data "$WORK/synth" --cache-dir "$WORK/cache" --force --quiet --epochs $EPOCHS --set train.val_every=1000)
[ -f "$WORK/synth/meta.csv" ] || $ASCLAB data synth "$WORK/synth" --per-cell 20 --sample-rate 32000 --seed 0
uptime | tee "$HERE/uptime_start.txt"
# 1. s4-s6 without DIR: quickstart, features computed per batch (as the DIR run must)
$ASCLAB train quickstart --out "$WORK/runs/no_dir" "${COMMON[@]}" --set train.cache_features=false
# 2. the same with device impulse responses on device a clips (p 0.6, the 66 MicIRP responses)
$ASCLAB train quickstart --out "$WORK/runs/dir" "${COMMON[@]}" \
  --set 'augment.waveform=[{name: dir, folder: ../shared/data/micirp, p: 0.6}]'
# 3. general model, then one fine-tuned copy per training device (all layers, lr / 10, 6 epochs each)
$ASCLAB train quickstart --out "$WORK/runs/device_specific" "${COMMON[@]}" \
  --set 'workflow={stages: [{name: general}, {name: device, device_specific: {layers: all}, optim: {lr: 0.0005}, train: {epochs: 6}}]}'
uptime | tee "$HERE/uptime_end.txt"
for run in no_dir dir device_specific; do
  cp "$WORK/runs/$run/metrics.json" "$HERE/$run.metrics.json"
  cp "$WORK/runs/$run/summary.json" "$HERE/$run.summary.json"
done
.venv/bin/python - "$HERE" <<'PY'
import json, sys
from pathlib import Path
here = Path(sys.argv[1])
m = {k: json.loads((here / f"{k}.metrics.json").read_text()) for k in ("no_dir", "dir", "device_specific")}
unseen = ("s4", "s5", "s6")
out = {"synthetic": True,
       "dir": {k: {"macro_accuracy": m[k]["macro_accuracy"],
                   "unseen_s4_s6_accuracy": sum(m[k]["per_device"][d]["accuracy"] * m[k]["per_device"][d]["n"] for d in unseen)
                   / sum(m[k]["per_device"][d]["n"] for d in unseen),
                   "per_device": {d: v["accuracy"] for d, v in m[k]["per_device"].items()}} for k in ("no_dir", "dir")},
       "device_specific": m["device_specific"]["device_specific"]}
(here / "summary.json").write_text(json.dumps(out, indent=2) + "\n")
print(json.dumps(out, indent=2))
PY
