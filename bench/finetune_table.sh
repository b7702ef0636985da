#!/usr/bin/env bash
# Evidence for KD fine-tuning on a zoo model (docs/finetune.md):
#  1. uniform W4A8, W3A8, W2A8: PTQ, after one epoch of KD, after one epoch of
#     cross-entropy only (alpha 0), full test split;
#  2. short fine-tunes (teacher cached) at W3A8: test top-1 vs steps;
#  3. temperature and alpha of the distillation loss on short W3A8 runs.
# Every run uses seed 0, 5000 validation images carved from the training split
# and 512 calibration images. Usage: bench/finetune_table.sh [MODEL=resnet20] [PARTS=123]
# Environment: PRECISIONS (weight bits of part 1, default "4 3 2"), SUBSET
# (train part 1 on the first N training images instead of a whole epoch),
# TEMPERATURES and ALPHAS (part 3, default "1 4 8" and "0.5 0.9 1.0"), LSQ=0
# skips the LSQ row, CLIPPING=mse starts part 1 from MSE-clipped weights.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-resnet20}
PARTS=${2:-123}
[ -x build/autoprec ] || bash scripts/build >/dev/null
DATA=idx:/usr/share/datasets/fashion-mnist
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ft() {  # ft NAME ARGS... -> prints the JSON report
  build/autoprec finetune "models/${MODEL}_fmnist.onnx" --data "$DATA" --out "$TMP/$1" --json "${@:2}"
}
field() { /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); v=eval(sys.argv[1]); print(f"{v:.2f}" if isinstance(v, float) else v)' "$1"; }

if [[ $PARTS == *1* ]]; then
  SUBSET_ARGS=()
  [ -n "${SUBSET:-}" ] && SUBSET_ARGS=(--subset "$SUBSET")
  echo "## ${MODEL}: one epoch${SUBSET:+ over the first $SUBSET training images} of fine-tuning (test top-1, %)"
  echo "| precision | FP32 | PTQ | KD (T=1, alpha=0.9) | cross-entropy only | KD minutes |"
  echo "|---|---|---|---|---|---|"
  for wb in ${PRECISIONS:-4 3 2}; do
    printf 'default: {weight_bits: %s, activation_bits: 8}\noptions: {weight_clipping: %s}\n' "$wb" "${CLIPPING:-minmax}" >"$TMP/w${wb}a8.yaml"
    kd=$(ft kd$wb --precision "$TMP/w${wb}a8.yaml" --epochs 1 "${SUBSET_ARGS[@]}")
    ce=$(ft ce$wb --precision "$TMP/w${wb}a8.yaml" --epochs 1 --alpha 0 "${SUBSET_ARGS[@]}")
    echo "| W${wb}A8 | $(echo "$kd" | field '100*d["fp32"]["test_top1"]') | $(echo "$kd" | field '100*d["before"]["test_top1"]') |" \
      "$(echo "$kd" | field '100*d["after"]["test_top1"]') | $(echo "$ce" | field '100*d["after"]["test_top1"]') |" \
      "$(echo "$kd" | field 'round(d["training"]["seconds"]/60, 1)') |"
  done
  if [ "${LSQ:-1}" = 1 ]; then
  printf 'default: {weight_bits: 2, activation_bits: 8}\noptions: {weight_clipping: %s}\n' "${CLIPPING:-minmax}" >"$TMP/w2a8.yaml"
  kd=$(ft lsq2 --precision "$TMP/w2a8.yaml" --epochs 1 --lsq "${SUBSET_ARGS[@]}")
  echo "| W2A8, LSQ step sizes | | $(echo "$kd" | field '100*d["before"]["test_top1"]') | $(echo "$kd" | field '100*d["after"]["test_top1"]') | | $(echo "$kd" | field 'round(d["training"]["seconds"]/60, 1)') |"
  fi
fi

printf 'default: {weight_bits: 3, activation_bits: 8}\n' >"$TMP/w3a8.yaml"
if [[ $PARTS == *2* ]]; then
  echo
  echo "## ${MODEL} W3A8: short fine-tune, batch 128, teacher logits cached"
  echo "| steps | test top-1 % | seconds (training) |"
  echo "|---|---|---|"
  for steps in 25 50 100 200 400; do
    r=$(ft s$steps --precision "$TMP/w3a8.yaml" --steps "$steps" --validation 0)
    [ "$steps" = 25 ] && echo "| 0 (PTQ) | $(echo "$r" | field '100*d["before"]["test_top1"]') | 0 |"
    echo "| $steps | $(echo "$r" | field '100*d["after"]["test_top1"]') | $(echo "$r" | field 'round(d["training"]["seconds"], 1)') |"
  done
fi

if [[ $PARTS == *3* ]]; then
  echo
  echo "## ${MODEL} W3A8: distillation temperature and alpha, 100 steps"
  echo "| T | alpha | test top-1 % |"
  echo "|---|---|---|"
  for T in ${TEMPERATURES:-1 4 8}; do
    for alpha in ${ALPHAS:-0.5 0.9 1.0}; do
      r=$(ft t${T}a$alpha --precision "$TMP/w3a8.yaml" --steps 100 --validation 0 --temperature "$T" --alpha "$alpha")
      echo "| $T | $alpha | $(echo "$r" | field '100*d["after"]["test_top1"]') |"
    done
  done
  r=$(ft ce --precision "$TMP/w3a8.yaml" --steps 100 --validation 0 --alpha 0)
  echo "| - | 0 (cross-entropy) | $(echo "$r" | field '100*d["after"]["test_top1"]') |"
fi
