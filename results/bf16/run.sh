#!/bin/bash
# Issue 23: bf16 autocast (train.precision=bf16-mixed) against fp32 on the same 4 recording-wise TUT 2017 folds x 3 seeds
# as results/finetune (fine-tuned CP-Mobile, recipe finetune_cp_mobile), one thread, under nice.
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-/work/runs}; A=.venv/bin/asclab
[ -f $RUNS/sys4.ckpt ] || $A --threads 1 import ../shared/checkpoints/karasin_jku_2025_sys4.ckpt --out $RUNS/sys4.ckpt
nice -n 5 $A --threads 1 crossval finetune_cp_mobile --from $RUNS/sys4.ckpt --general --data ../shared/data/tut2017 \
  --folds 4 --group-by identifier --seeds 0,1,2 --set train.precision=bf16-mixed --out $RUNS/tut2017_finetune3_bf16 --quiet --force
