#!/bin/bash
# ESC-10 5-fold: per-fold teacher ensemble, CP-Mobile distilled from it, CP-Mobile alone (same folds, epochs, seed)
cd /work/main
export OMP_NUM_THREADS=1
D=../shared/data/esc10
R=/tmp/kd_runs/esc10
A=".venv/bin/asclab --threads 1"
echo "start $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -f "teachers %e s" nice $A teachers esc10_shared_resnet esc10_teacher_shared_resnet_b --data $D --folds 2 --out $R/teachers --quiet
echo "teachers done $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -f "student_kd %e s" nice $A crossval esc10_kd_cp_mobile --data $D --folds 2 --out $R/student_kd --quiet --set "data.teacher_logits=$R/teachers/fold{fold}/teachers.h5"
echo "kd done $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -f "student_alone %e s" nice $A crossval esc10_cp_mobile --data $D --folds 2 --out $R/student_alone --quiet
echo "all done $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
