#!/usr/bin/env bash
# Cross-validation of the lite-grounding head on BTCV CT (24 patients) and CHAOS MR (15 patients), then the
# shipped head. Every number in evaluation/grounding/RESULTS.md comes from this script.
# Usage: bash evaluation/grounding/crossval.sh RUNS_DIR EMBEDDING_CACHE_DIR [STEPS]
# Encoding every slice once (~2,300 LiteMedSAM encodes) is the slow part: ~30 min on 2 CPU cores with the
# OpenVINO runtime, cached in EMBEDDING_CACHE_DIR and reused by training and every evaluation below.
set -euo pipefail
RUNS=${1:?runs folder}; CACHE=${2:?embedding cache folder}; STEPS=${3:-1500}
D=evaluation/datasets
FOLDS=fold0,fold1,fold2,fold3
# Prompts for structures outside every abdominal volume here: each must come out "not found".
ABSENT=(--absent brain --absent urinary_bladder --absent femur_left --absent humerus_right --absent skull)
DATA=(--data "$D/btcv_abdomen_ct.yaml:$FOLDS" --data "$D/chaos_t2_mr.yaml:$FOLDS" --data "$D/grounding_train.yaml:train")

# 1. One head per fold, trained without that fold's CT and MR patients (fold k of both manifests).
limis train lite-grounding "${DATA[@]}" --cv-folds "$FOLDS" --steps "$STEPS" --out "$RUNS/heads" --cache-dir "$CACHE"

# 2. The ground-truth-box bound of the same segmenter on every patient.
for set in btcv_abdomen_ct chaos_t2_mr; do
  limis eval accuracy --dataset "$D/$set.yaml" --split "$FOLDS" --mode oracle-box --out "$RUNS/${set}_box" --cache-dir "$CACHE"
done

# 3. Text mode on each fold's patients with the head that never saw them.
for fold in ${FOLDS//,/ }; do
  for set in btcv_abdomen_ct chaos_t2_mr; do
    limis eval accuracy --dataset "$D/$set.yaml" --split "$fold" --mode text --detector lite-grounding "${ABSENT[@]}" \
      --detector-weights "$RUNS/heads/$fold/lite_grounding.safetensors" --out "$RUNS/${set}_text_$fold" --cache-dir "$CACHE"
  done
done

# 4. Pooled out-of-patient tables (ratio text / ground-truth box per organ, paired bootstrap CI).
limis eval compare $(for f in ${FOLDS//,/ }; do echo --text "$RUNS/btcv_abdomen_ct_text_$f/text"; done) \
  --box "$RUNS/btcv_abdomen_ct_box/oracle-box" --out "$RUNS/btcv_crossval.md" \
  --target liver=0.90 --target spleen=0.90 --target kidney_left=0.90 --target kidney_right=0.90 --target stomach=0.90 \
  --target aorta=0.90 --target inferior_vena_cava=0.75 --target pancreas=0.75 --target gallbladder=0.75 \
  --target esophagus=0.75 --target portal_vein_and_splenic_vein=0.75
limis eval compare $(for f in ${FOLDS//,/ }; do echo --text "$RUNS/chaos_t2_mr_text_$f/text"; done) \
  --box "$RUNS/chaos_t2_mr_box/oracle-box" --out "$RUNS/chaos_crossval.md" \
  --target liver=0.85 --target spleen=0.85 --target kidney_left=0.85 --target kidney_right=0.85
