#!/bin/bash
# Issue 23: QAT accuracy on the torchao PT2E path. The float model: the fine-tuned CP-Mobile of
# results/finetune (TUT 2017 recording-wise fold 1 as test, seed 0); QAT: 5 epochs fake-quantised from it
# (lr 5e-4, no warm-up, the recipe's augmentation), converted to int8; then deploy-report on fold 1.
cd "$(dirname "$0")/../../.."
RUNS=${RUNS:-/work/runs}; A=".venv/bin/asclab --threads 1"
FLOAT=$RUNS/tut2017_finetune3/fold1/seed0
[ -f $FLOAT/model.ckpt ] || bash results/finetune/run3.sh tut2017
QAT='workflow.stages=[{name: qat, qat: {backend: x86}}]'
nice -n 5 $A train $FLOAT/recipe.yaml --data ../shared/data/tut2017 --out $RUNS/tut_f1_qat_pt2e --force --quiet \
  --set "$QAT" --set train.epochs=5 --set optim.lr=0.0005 --set schedule.warmup_epochs=0 \
  --set train.init_from=$FLOAT/model.ckpt
nice -n 5 $A deploy-report $FLOAT --data ../shared/data/tut2017 --qat $RUNS/tut_f1_qat_pt2e --out $RUNS/tut_f1_pt2e_report --repeats 20
