#!/bin/bash
# Seed spread on TUT 2017 recording-wise fold 1: student alone vs distilled (T=2, label weight 0.02), seeds 0-3.
# (measured 2026-12-01 15:30-15:41 UTC from the working tree of commit 578cc3c, whose uncommitted crossval change
#  train does not use; two lanes, --threads 1)
#   bash results/kd/v3/fold1_seeds.sh
cd "$(dirname "$0")/../../.."
A=${ASCLAB:-.venv/bin/asclab}; D=../shared/data/tut2017; RUNS=${RUNS:-/work/kdruns}; S=$RUNS/seeds
F="--set data.group_folds.folds=4 --set data.group_folds.by=identifier --set data.test_fold=1"
T="--set data.teacher_logits=$RUNS/tut2017/teachers/fold1/teachers.h5"
export OMP_NUM_THREADS=1
one() { nice -n 5 $A --threads 1 train "$@" --quiet > /dev/null 2>&1; }
lane() { for s in "$@"; do
  one tut2017_cp_mobile --data $D $F --set train.seed=$s --out $S/alone_s$s
  one tut2017_kd_cp_mobile --data $D $F $T --set train.seed=$s --out $S/kd_s$s
done; }
lane 0 1 &
lane 2 3 &
wait
echo done
