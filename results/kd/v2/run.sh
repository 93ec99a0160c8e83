#!/bin/bash
# Issue 13 measurement, second round: cross-entropy teachers (3 on ESC-10, 2 on TUT 2017),
# then the distilled student and the student alone on the same folds, epochs and seed.
# ESC-10 and TUT 2017 run side by side, one torch thread each, under nice.
#   bash results/kd/v2/run.sh            (from the repository root; runs go to $RUNS, default /work/kdruns)
# ASCLAB may name another asclab executable (the measurement ran a snapshot of the commit via PYTHONPATH).
cd "$(dirname "$0")/../../.."
RUNS=${RUNS:-/work/kdruns}
A=${ASCLAB:-.venv/bin/asclab}
export OMP_NUM_THREADS=1
run() { echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) START $*"; /usr/bin/time -f "%e s wall %U s user %S s sys" nice -n 10 $A --threads 1 "$@" --quiet; echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) END rc=$? $1 $2"; }
esc() {
  D=../shared/data/esc10; R=$RUNS/esc10
  # Fold 1 also trained esc10_teacher_shared_resnet_ce_b (a second seed of the first member); it was dropped
  # for time after fold 1 (26 min a fold with three members under load), and fold 1's teacher file rebuilt from the two.
  run teachers esc10_teacher_shared_resnet_ce esc10_teacher_cp_mobile_wide --data $D --folds 5 --out $R/teachers
  run crossval esc10_kd_cp_mobile --data $D --folds 5 --out $R/student_kd --set "data.teacher_logits=$R/teachers/fold{fold}/teachers.h5"
  run crossval esc10_cp_mobile --data $D --folds 5 --out $R/student_alone
}
tut() {
  D=../shared/data/tut2017; R=$RUNS/tut2017; G="--folds 4 --group-by identifier"
  run teachers tut2017_teacher_shared_resnet_ce tut2017_teacher_cp_mobile_wide --data $D $G --out $R/teachers
  run crossval tut2017_kd_cp_mobile --data $D $G --out $R/student_kd --set "data.teacher_logits=$R/teachers/fold{fold}/teachers.h5"
  run crossval tut2017_cp_mobile --data $D $G --out $R/student_alone
}
esc > $RUNS/esc10.log 2>&1 &
tut > $RUNS/tut2017.log 2>&1 &
wait
echo "all done $(date -u +%FT%TZ)"
# (In the measured run, ESC-10's student-alone cross-validation was started by hand beside its teachers'
#  last fold, to use the second core: the same command, the same output folder.)
