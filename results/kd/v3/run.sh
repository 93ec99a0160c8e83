#!/bin/bash
# Issue 13, round 3: TUT 2017 recording-wise 4 folds, the student alone and the distilled student
# (round 2's per-fold teacher files), each fold with 3 seeds (crossval --seeds 0,1,2).
# Two lanes side by side, one torch thread each, under nice.
#   bash results/kd/v3/run.sh        (from the repository root; runs go to $RUNS, default /work/kdruns)
# ASCLAB may name another asclab command (the measurement ran a snapshot worktree of the commit).
cd "$(dirname "$0")/../../.."
RUNS=${RUNS:-/work/kdruns}
A=${ASCLAB:-.venv/bin/asclab}
export OMP_NUM_THREADS=1
D=../shared/data/tut2017; R=$RUNS/tut2017; V=$RUNS/v3; G="--folds 4 --group-by identifier --seeds 0,1,2"
run() { echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) START $*"; /usr/bin/time -f "%e s wall %U s user" nice -n 10 $A --threads 1 "$@" --quiet; rc=$?; echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) END rc=$rc"; }
mkdir -p $V
run crossval tut2017_cp_mobile --data $D $G --out $V/tut2017_alone > $V/alone.log 2>&1 &
run crossval tut2017_kd_cp_mobile --data $D $G --out $V/tut2017_kd --set "data.teacher_logits=$R/teachers/fold{fold}/teachers.h5" > $V/kd.log 2>&1 &
wait
