#!/bin/bash
# Issue 13, round 3: the student alone and the distilled student (round 2's per-fold teacher files),
# each fold with 3 seeds (crossval --seeds 0,1,2); two lanes side by side, one torch thread each, under nice.
#   bash results/kd/v3/run.sh tut2017    TUT 2017, recording-wise 4 folds (measured 15:43-16:07 UTC)
#   bash results/kd/v3/run.sh esc10      ESC-10, its 5 folds (measured 16:44-17:26 UTC)
# (from the repository root; runs go to $RUNS, default /work/kdruns). ASCLAB may name another asclab
# command (the measurement ran a snapshot worktree of the commit). The measured runs used this script's
# two earlier forms, one per data set (git history), with the same commands.
cd "$(dirname "$0")/../../.."
RUNS=${RUNS:-/work/kdruns}
A=${ASCLAB:-.venv/bin/asclab}
export OMP_NUM_THREADS=1
case "$1" in
  tut2017) D=../shared/data/tut2017; G="--folds 4 --group-by identifier"; L=""; ALONE=tut2017_cp_mobile; KD=tut2017_kd_cp_mobile ;;
  esc10)   D=../shared/data/esc10;   G="--folds 5"; L="esc10_"; ALONE=esc10_cp_mobile; KD=esc10_kd_cp_mobile ;;
  *) echo "usage: $0 tut2017|esc10" >&2; exit 2 ;;
esac
R=$RUNS/$1; V=$RUNS/v3; G="$G --seeds 0,1,2"
run() { echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) START $*"; /usr/bin/time -f "%e s wall %U s user" nice -n 10 $A --threads 1 "$@" --quiet; rc=$?; echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) END rc=$rc"; }
mkdir -p $V
run crossval $ALONE --data $D $G --out $V/$1_alone > $V/${L}alone.log 2>&1 &
run crossval $KD --data $D $G --out $V/$1_kd --set "data.teacher_logits=$R/teachers/fold{fold}/teachers.h5" > $V/${L}kd.log 2>&1 &
wait
