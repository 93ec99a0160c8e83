#!/bin/bash
# Issue 22 items 3-4: students distilled from fine-tuned teachers. For each TUT 2017 recording-wise fold k, the
# teachers are the three seeds of the fine-tuned 2025 model trained on fold k's training folds
# (results/finetune/run3.sh: crossval fold k, seeds 0-2; they never heard fold k's test clips); their mean logits
# on fold k's training clips teach a from-scratch CP-Mobile student (tut2017_kd_cp_mobile, seed 0), with the KL
# reduction of CPJKU's code (mean: over batch and classes, the new default) and asclab's old one (batchmean).
# usage: students.sh FOLD...
cd "$(dirname "$0")/../../.."
RUNS=${RUNS:-/work/runs}; D=../shared/data/tut2017; A=.venv/bin/asclab; FT=$RUNS/tut2017_finetune3; S=$RUNS/kd_students
mkdir -p $S
for k in "$@"; do
  F="--set data.group_folds.folds=4 --set data.group_folds.by=identifier --set data.test_fold=$k"
  T=$S/teachers_fold$k.h5
  [ -f $T ] || nice -n 5 $A --threads 1 logits $FT/fold$k/seed0 $FT/fold$k/seed1 $FT/fold$k/seed2 --data $D --out $T --quiet
  for red in mean batchmean; do
    echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) START fold $k reduction $red"
    nice -n 5 $A --threads 1 train tut2017_kd_cp_mobile --data $D --out $S/fold${k}_$red $F --seed 0 --quiet --force \
      --set data.teacher_logits=$T --set loss.reduction=$red > $S/fold${k}_$red.log 2>&1
    python3 -c "import json,sys; print(sys.argv[1], 'test accuracy', json.load(open(sys.argv[1] + '/metrics.json'))['accuracy'])" $S/fold${k}_$red
  done
done
