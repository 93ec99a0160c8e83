#!/bin/bash
# Issue 13, round 3 on ESC-10: its 5 folds, the student alone and the distilled student (round 2's
# per-fold teacher files), each fold with 3 seeds (crossval --seeds 0,1,2). Two lanes, --threads 1, nice.
#   bash results/kd/v3/run_esc10.sh    (from the repository root; runs go to $RUNS, default /work/kdruns)
cd "$(dirname "$0")/../../.."
RUNS=${RUNS:-/work/kdruns}
A=${ASCLAB:-.venv/bin/asclab}
export OMP_NUM_THREADS=1
D=../shared/data/esc10; R=$RUNS/esc10; V=$RUNS/v3; G="--folds 5 --seeds 0,1,2"
run() { echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) START $*"; /usr/bin/time -f "%e s wall %U s user" nice -n 10 $A --threads 1 "$@" --quiet; rc=$?; echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) END rc=$rc"; }
mkdir -p $V
run crossval esc10_cp_mobile --data $D $G --out $V/esc10_alone > $V/esc10_alone.log 2>&1 &
run crossval esc10_kd_cp_mobile --data $D $G --out $V/esc10_kd --set "data.teacher_logits=$R/teachers/fold{fold}/teachers.h5" > $V/esc10_kd.log 2>&1 &
wait
