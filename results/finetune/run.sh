#!/bin/bash
# Fine-tuned CP-Mobile on TUT 2017, 4 recording-wise folds, seed 0 (issue 22, first measurement)
cd /work/main
.venv/bin/asclab --threads 1 import ../shared/checkpoints/karasin_jku_2025_sys4.ckpt --out /work/runs/sys4.ckpt --force
.venv/bin/asclab --threads 1 crossval finetune_cp_mobile --from /work/runs/sys4.ckpt --general --data ../shared/data/tut2017 --folds 4 --group-by identifier --out /work/runs/tut2017_finetune --quiet --force
# ESC-10, its own 5 folds, seed 0 (2 threads)
.venv/bin/asclab --threads 2 crossval finetune_cp_mobile --from /work/runs/sys4.ckpt --general --data ../shared/data/esc10 --out /work/runs/esc10_finetune --quiet --force
