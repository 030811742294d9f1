#!/usr/bin/env bash
# Cross-validation of the lite-grounding recipe on BTCV CT (24 patients) and CHAOS MR (15 patients), then the
# shipped head. Every number in evaluation/grounding/RESULTS.md comes from this script.
# Usage: bash evaluation/grounding/crossval.sh RUNS_DIR EMBEDDING_CACHE_DIR [TRAINING OPTIONS...]
# (default: the candidate recipe of RESULTS.md; another recipe, e.g. `--steps 1600`, is cross-validated the same way).
# Encoding every slice once (~2,400 LiteMedSAM encodes) is the slow part: ~30 min on 2 CPU cores with the
# onnxruntime encoder, cached in EMBEDDING_CACHE_DIR and reused by training and every evaluation below.
# On 2 cores run evaluations with OMP_NUM_THREADS=1 when several run at once (oversubscribed threads are 20x slower).
# Training is bf16 (the recipe): fast on CPUs with AVX512-BF16/AMX (0.48 s per step on one core of an AVX512-BF16 EPYC,
# ~40 min per 4800-step head, twice that for the two members of an ensemble; on an AMX Xeon, 2026-12-04: encoding 26 min, the four fold heads 75 min as two
# `--cv-folds` halves at once (one thread each), steps 2-4 ~35 min),
# ~35x slower on AVX2 (torch emulates bf16). A training process holds ~8 GB (the embeddings of every slice, filled in
# place since 2026-12-07; stacking them had peaked at ~13.6 GB): in 24 GB start a second one only after the first has
# loaded (two loading at once were OOM-killed).
set -euo pipefail
RUNS=${1:?runs folder}; CACHE=${2:?embedding cache folder}; shift 2
# The recipe of the shipped head: an ensemble of two member heads, one reading the slice alone and one also the slices
# above and below (each trained like a single head; probabilities averaged), so every fold and the final head train
# two heads. To ensemble heads that were trained already, see `limis train combine-heads` (RESULTS.md).
RECIPE=("$@"); [ ${#RECIPE[@]} -gt 0 ] || RECIPE=(--steps 4800 --balance 0.5 --context-slices 0 --context-slices 1)
D=evaluation/datasets
FOLDS=fold0,fold1,fold2,fold3
DATA=(--data "$D/btcv_abdomen_ct.yaml:$FOLDS" --data "$D/chaos_t2_mr.yaml:$FOLDS" --data "$D/grounding_train.yaml:train")
# Prompts for structures outside a volume: each must come out "not found" (asked only where the reference lacks it).
# The first four are known negatives in training (the manifests' absent_structures); thyroid and trachea never are;
# the gallbladder is a CT concept the head reports, absent in two BTCV patients.
ABSENT=(--absent brain --absent urinary_bladder --absent femur_left --absent humerus_right --absent thyroid_gland --absent trachea
        --absent gallbladder)

# 1. One head per fold, trained without that fold's CT and MR patients (fold k of both manifests), and its
#    presence thresholds and reported concepts per modality chosen on the other folds' held-out slices (never on
#    its own fold). evaluation/grounding/fold_heads/ keeps the calibrated heads of RESULTS.md: to cross-validate an
#    inference change, copy them to RUNS/heads/foldK/calibrated.safetensors and run steps 2-4.
limis train lite-grounding "${DATA[@]}" --cv-folds "$FOLDS" "${RECIPE[@]}" --out "$RUNS/heads" --cache-dir "$CACHE"
for fold in ${FOLDS//,/ }; do
  others=(); for f in ${FOLDS//,/ }; do [ "$f" != "$fold" ] && others+=(--scores "$RUNS/heads/$f/heldout_slice_scores.npz"); done
  limis train calibrate-presence "${others[@]}" --head "$RUNS/heads/$fold/lite_grounding.safetensors" \
    --out "$RUNS/heads/$fold/calibrated.safetensors"
done

# 2. The ground-truth-box bound of the same segmenter on every patient.
for set in btcv_abdomen_ct chaos_t2_mr; do
  limis eval accuracy --dataset "$D/$set.yaml" --split "$FOLDS" --mode oracle-box --out "$RUNS/${set}_box" --cache-dir "$CACHE"
done

# 3. Text mode on each fold's patients with the head that never saw them.
for fold in ${FOLDS//,/ }; do
  for set in btcv_abdomen_ct chaos_t2_mr; do
    limis eval accuracy --dataset "$D/$set.yaml" --split "$fold" --mode text --detector lite-grounding "${ABSENT[@]}" \
      --detector-weights "$RUNS/heads/$fold/calibrated.safetensors" --out "$RUNS/${set}_text_$fold" --cache-dir "$CACHE"
  done
done

# 4. Pooled out-of-patient tables (ratio text / ground-truth box per organ, paired bootstrap CI, absent prompts).
limis eval compare $(for f in ${FOLDS//,/ }; do echo --text "$RUNS/btcv_abdomen_ct_text_$f/text"; done) \
  --box "$RUNS/btcv_abdomen_ct_box/oracle-box" --out "$RUNS/btcv_crossval.md" \
  --target liver=0.90 --target spleen=0.90 --target kidney_left=0.90 --target kidney_right=0.90 --target stomach=0.90 \
  --target aorta=0.90 --target inferior_vena_cava=0.75 --target pancreas=0.75 --target gallbladder=0.75 \
  --target esophagus=0.75 --target portal_vein_and_splenic_vein=0.75
limis eval compare $(for f in ${FOLDS//,/ }; do echo --text "$RUNS/chaos_t2_mr_text_$f/text"; done) \
  --box "$RUNS/chaos_t2_mr_box/oracle-box" --out "$RUNS/chaos_crossval.md" \
  --target liver=0.85 --target spleen=0.85 --target kidney_left=0.85 --target kidney_right=0.85

# 5. The shipped head: the same recipe on every patient, thresholds from all folds' held-out slices.
limis train lite-grounding "${DATA[@]}" "${RECIPE[@]}" --out "$RUNS/final" --cache-dir "$CACHE"
limis train calibrate-presence $(for f in ${FOLDS//,/ }; do echo --scores "$RUNS/heads/$f/heldout_slice_scores.npz"; done) \
  --head "$RUNS/final/lite_grounding.safetensors" --out limis/detect/weights/lite_grounding.safetensors

# 6. The shipped head on the scan from another source that no head ever saw (TotalSegmentator's DICOM example).
#    Its reference labels 40+ structures; the structures are listed so that (as on BTCV) only abdominal organs
#    share the one labelmap (earlier structures keep overlapping voxels).
S=(-s liver -s spleen -s aorta -s stomach -s inferior_vena_cava -s pancreas -s gallbladder -s portal_vein_and_splenic_vein
   -s esophagus -s adrenal_gland_right)
limis eval accuracy --dataset "$D/grounding_train.yaml" --split test --mode text --detector lite-grounding "${S[@]}" \
  --absent kidney_left --absent kidney_right --absent brain --absent urinary_bladder --out "$RUNS/dicom_text" --cache-dir "$CACHE"
limis eval accuracy --dataset "$D/grounding_train.yaml" --split test --mode oracle-box "${S[@]}" --out "$RUNS/dicom_box" --cache-dir "$CACHE"

# 7. What cutting masks to the head's map (SegmentOptions.min_support) changes: fold 0, where it was chosen, and the
#    four structures the choice was about on fold 2, each without (0) and with the cut (0.1).
for cut in 0 0.1; do
  LIMIS_EMBEDDING_CACHE="$CACHE" python evaluation/grounding/error_split.py "$D/btcv_abdomen_ct.yaml" fold0 \
    "$RUNS/heads/fold0/calibrated.safetensors" "$RUNS/error_split_fold0_$cut.csv" --option min_support="$cut"
  LIMIS_EMBEDDING_CACHE="$CACHE" python evaluation/grounding/error_split.py "$D/btcv_abdomen_ct.yaml" fold2 \
    "$RUNS/heads/fold2/calibrated.safetensors" "$RUNS/error_split_fold2_$cut.csv" --option min_support="$cut" \
    -s stomach -s pancreas -s gallbladder -s esophagus
done
