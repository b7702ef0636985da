#!/usr/bin/env bash
# Post-training quantization accuracy (no fine-tuning) of every zoo model at
# uniform precisions, with three clipping choices (weights,activations):
# mse,minmax; mse,mse; minmax,minmax (the default), on the full
# Fashion-MNIST test split; 512 calibration images from the training split, seed 0.
# Usage: [OPTION_SETS="mse,minmax mse,mse minmax,minmax"] bench/ptq_table.sh [MODELS...]
#        (default: every zoo model; each option set is weight_clipping,activation_calibration)
# Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/autoprec ] || bash scripts/build >/dev/null
DATA=idx:/usr/share/datasets/fashion-mnist
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(small_cnn mobilenetv2_mini resnet20)
CONFIGS=("8 8" "6 8" "4 8" "4 4" "3 8" "2 8")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
top1() { build/autoprec eval "$1" --data "$DATA" --json ${2:+--precision "$2"} --calib 512 --seed 0 |
  /usr/bin/python3 -c 'import json,sys; print("%.2f" % (100 * json.load(sys.stdin)["top1"]))'; }
header="| model | clipping | FP32 |"
rule="|---|---|---|"
for c in "${CONFIGS[@]}"; do set -- $c; header+=" W$1A$2 |"; rule+="---|"; done
echo "$header"
echo "$rule"
for m in "${MODELS[@]}"; do
  model=models/${m}_fmnist.onnx
  fp32=$(top1 "$model" "")
  for options in ${OPTION_SETS:-mse,minmax mse,mse minmax,minmax}; do
    set -- ${options/,/ }
    wopt=$1
    aopt=$2
    row="| $m | weights $wopt, activations $aopt | $fp32 |"
    for c in "${CONFIGS[@]}"; do
      set -- $c
      cfg=$TMP/w$1a$2_${wopt}_$aopt.yaml
      printf 'default: {weight_bits: %s, activation_bits: %s}\noptions: {weight_clipping: %s, activation_calibration: %s}\n' \
        "$1" "$2" "$wopt" "$aopt" >"$cfg"
      row+=" $(top1 "$model" "$cfg") |"
    done
    echo "$row"
  done
done
