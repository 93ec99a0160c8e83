#!/bin/bash
# Choosing the distillation settings without the test folds: TUT 2017 test fold 1, a quarter of the
# training recordings carved out as validation (data.validation, by recording); the student trains on the
# rest with the fold-1 teacher file and is scored on the carved split (val_acc at the last epoch,
# logs/metrics.csv). The test fold is never scored. Same seed, epochs and recipe otherwise.
cd "$(dirname "$0")/../../.."
RUNS=${RUNS:-/work/kdruns}
A=${ASCLAB:-.venv/bin/asclab}
export OMP_NUM_THREADS=1
D=../shared/data/tut2017; R=$RUNS/tut2017; S=$RUNS/sweep
V="--set data.group_folds.folds=4 --set data.group_folds.by=identifier --set data.validation.fraction=0.25 --set data.validation.by=identifier --set data.test_fold=1 --set train.keep=last"
T="--set data.teacher_logits=$R/teachers/fold1/teachers.h5"
run() { out=$1; shift; echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) START $out $*";
        nice -n 10 $A --threads 1 train "$@" --data $D --out $S/$out $V --quiet; echo "$(date -u +%FT%TZ) END $out"; }
run kd_T2_lw0.02 tut2017_kd_cp_mobile $T
run kd_T1_lw0.02 tut2017_kd_cp_mobile $T --set loss.temperature=1.0
run kd_T2_lw0.5  tut2017_kd_cp_mobile $T --set loss.label_weight=0.5
run alone        tut2017_cp_mobile
