#!/bin/bash
# Issue 22 item 5: uniform soup of the three seeds' fine-tunes of each TUT 2017 fold (run3.sh tut2017 first),
# scored on that fold's test recordings (nothing chosen on them: the uniform soup has no choice to make).
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-/work/runs}; FT=$RUNS/tut2017_finetune3
for k in 1 2 3 4; do
  .venv/bin/asclab --threads 1 soup $FT/fold$k/seed0 $FT/fold$k/seed1 $FT/fold$k/seed2 --out $RUNS/soup_fold$k.ckpt --force
  .venv/bin/asclab --threads 1 evaluate $RUNS/soup_fold$k.ckpt --data ../shared/data/tut2017 --quiet | grep "^examples"
done
