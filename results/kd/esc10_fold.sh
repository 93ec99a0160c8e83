#!/bin/bash
# ESC-10 fold K (bash esc10_fold.sh K), the same steps as 'asclab teachers --folds' and 'asclab crossval' take for one fold
cd "$(dirname "$0")/../.."
K=${1:?usage: bash esc10_fold.sh FOLD}
export OMP_NUM_THREADS=1
D=../shared/data/esc10
R=/tmp/kd_runs/esc10
A=".venv/bin/asclab --threads 1"
F="--set train.keep=last --set data.test_fold=$K"
echo "start $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
nice $A train esc10_shared_resnet --data $D --out $R/teachers/fold$K/members/esc10_shared_resnet --quiet $F
nice $A train esc10_teacher_shared_resnet_b --data $D --out $R/teachers/fold$K/members/esc10_teacher_shared_resnet_b --quiet $F
nice $A logits $R/teachers/fold$K/members/esc10_shared_resnet $R/teachers/fold$K/members/esc10_teacher_shared_resnet_b --data $D --out $R/teachers/fold$K/teachers.h5 --quiet
echo "teachers done $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
nice $A train esc10_kd_cp_mobile --data $D --out $R/student_kd/fold$K --quiet $F --set "data.teacher_logits=$R/teachers/fold$K/teachers.h5"
echo "kd done $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
nice $A train esc10_cp_mobile --data $D --out $R/student_alone/fold$K --quiet $F
echo "all done $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
