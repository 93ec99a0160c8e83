#!/bin/bash
# Issue 23: data loading on the issue's training setting (CP-Mobile, recipe dcase2024_baseline, the 324 TUT 2017
# 10-s clips, batch 64, 2 threads, 4 epochs): the default (waveforms decoded once and kept, no loader process),
# one loader process (train.num_workers=1), and no waveform cache (train.waveform_cache_mb=0). Run on a quiet machine.
cd "$(dirname "$0")/../.."
SETS=(--set data.duration=10 --set data.split=null --set "data.group_folds={folds: 2, by: identifier}" --set data.test_fold=1)
for variant in "default:" "num_workers=1:--set train.num_workers=1" "no_waveform_cache:--set train.waveform_cache_mb=0"; do
  name=${variant%%:*}; extra=${variant#*:}
  start=$(date +%s.%N)
  .venv/bin/asclab --threads 2 train dcase2024_baseline --data ../shared/data/tut2017 --all-data --epochs 4 --batch-size 64 \
    --out /tmp/asclab_dl_$name --cache-dir /tmp/asclab_dl_cache_$name --force --quiet "${SETS[@]}" $extra | tail -1
  echo "$name: wall $(echo "$(date +%s.%N) - $start" | bc) s"
done
