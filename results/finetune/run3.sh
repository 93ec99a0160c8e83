#!/bin/bash
# Issue 22: fine-tuned CP-Mobile, 3 seeds x the recording-wise folds (TUT 2017) / the 5 folds (ESC-10), one thread.
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-/work/runs}; A=.venv/bin/asclab
[ -f $RUNS/sys4.ckpt ] || $A --threads 1 import ../shared/checkpoints/karasin_jku_2025_sys4.ckpt --out $RUNS/sys4.ckpt
case "$1" in
tut2017) nice -n 5 $A --threads 1 crossval finetune_cp_mobile --from $RUNS/sys4.ckpt --general --data ../shared/data/tut2017 \
           --folds 4 --group-by identifier --seeds 0,1,2 --out $RUNS/tut2017_finetune3 --quiet --force --set train.precision=32-true ;;
esc10)   nice -n 5 $A --threads 1 crossval finetune_cp_mobile --from $RUNS/sys4.ckpt --general --data ../shared/data/esc10 \
           --seeds 0,1,2 --out $RUNS/esc10_finetune3 --quiet --force --set train.precision=32-true ;;
esac
