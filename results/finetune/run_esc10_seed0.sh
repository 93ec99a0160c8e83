#!/bin/bash
# Issue 22: fine-tuned CP-Mobile (finetune_cp_mobile as chosen in sweep.md) on ESC-10's 5 folds, seed 0, one thread.
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-/work/runs}; A=.venv/bin/asclab
[ -f $RUNS/sys4.ckpt ] || $A --threads 1 import ../shared/checkpoints/karasin_jku_2025_sys4.ckpt --out $RUNS/sys4.ckpt
nice -n 5 $A --threads 1 crossval finetune_cp_mobile --from $RUNS/sys4.ckpt --general --data ../shared/data/esc10 \
  --seeds ${SEED:-0} --out $RUNS/esc10_finetune_v2${SEED:+_seed$SEED} --quiet --force \
  --set train.precision=32-true  # measured in fp32, before bf16 became the default on native-bf16 CPUs (issue 23)
