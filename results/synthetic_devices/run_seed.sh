#!/usr/bin/env bash
# Repeat the with/without-DIR pair of run.sh with another seed: run_seed.sh WORK_DIR SEED
set -euo pipefail
WORK=${1:?usage: run_seed.sh WORK_DIR SEED}
SEED=${2:?usage: run_seed.sh WORK_DIR SEED}
HERE=results/synthetic_devices
ASCLAB="nice env OMP_NUM_THREADS=1 .venv/bin/asclab --threads 1"
COMMON=(--data "$WORK/synth" --cache-dir "$WORK/cache" --force --quiet --epochs 12 --set train.val_every=1000
        --set train.seed=$SEED)
uptime | tee "$HERE/uptime_seed$SEED.txt"
$ASCLAB train quickstart --out "$WORK/runs/no_dir_seed$SEED" "${COMMON[@]}" --set train.cache_features=false
$ASCLAB train quickstart --out "$WORK/runs/dir_seed$SEED" "${COMMON[@]}" \
  --set 'augment.waveform=[{name: dir, folder: ../shared/data/micirp, p: 0.6}]'
uptime | tee -a "$HERE/uptime_seed$SEED.txt"
for run in no_dir dir; do
  cp "$WORK/runs/${run}_seed$SEED/metrics.json" "$HERE/$run.seed$SEED.metrics.json"
done
