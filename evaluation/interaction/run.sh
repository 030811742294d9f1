#!/usr/bin/env bash
# Language vs clicks vs boxes in 3D on validation patients, each run starting from the text detector's answer.
# Every number in evaluation/interaction/RESULTS.md comes from this script.
# Usage: bash evaluation/interaction/run.sh RUNS_DIR EMBEDDING_CACHE_DIR HEADS_DIR [FOLD]
# HEADS_DIR holds the cross-validation heads of evaluation/grounding/crossval.sh (HEADS_DIR/foldK/calibrated.safetensors):
# fold K's patients are scored with the head that never saw them. With a warm embedding cache (crossval.sh fills it)
# both runs take ~15 min on 2 CPU cores (OMP_NUM_THREADS=1 each, run side by side).
set -euo pipefail
RUNS=${1:?runs folder}; CACHE=${2:?embedding cache folder}; HEADS=${3:?cross-validation heads folder}; FOLD=${4:-fold0}
D=evaluation/datasets
HEAD="$HEADS/$FOLD/calibrated.safetensors"
OMP_NUM_THREADS=1 limis eval interaction --dataset "$D/btcv_abdomen_ct.yaml" --split "$FOLD" --turns 10 \
  -s liver -s spleen -s kidney_left -s kidney_right -s stomach -s pancreas \
  --detector-weights "$HEAD" --cache-dir "$CACHE" --out "$RUNS/btcv_$FOLD" &
OMP_NUM_THREADS=1 limis eval interaction --dataset "$D/chaos_t2_mr.yaml" --split "$FOLD" --turns 10 \
  -s liver -s spleen -s kidney_left -s kidney_right \
  --detector-weights "$HEAD" --cache-dir "$CACHE" --out "$RUNS/chaos_$FOLD" &
wait
