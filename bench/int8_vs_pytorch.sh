#!/usr/bin/env bash
# Uniform W8A8 post-training quantization: autoprec against PyTorch's own int8
# PTQ (torch.ao.quantization FX mode, default qconfig of the onednn engine),
# same model, 512 calibration images from the training split (seed 0), full
# test split, in one run.
# Usage: bench/int8_vs_pytorch.sh [MODEL=resnet20]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-resnet20}
[ -x build/autoprec ] || bash scripts/build >/dev/null
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
printf 'default: {weight_bits: 8, activation_bits: 8}\n' >"$TMP/w8a8.yaml"
theirs=$(/usr/bin/python3 bench/torch_int8_ptq.py --model "$MODEL" --calib 512 --seed 0 --engine onednn 2>/dev/null)
echo "pytorch: $theirs"
ours=$(build/autoprec eval "models/${MODEL}_fmnist.onnx" --data idx:/usr/share/datasets/fashion-mnist \
  --precision "$TMP/w8a8.yaml" --calib 512 --seed 0 --json)
fp32=$(build/autoprec eval "models/${MODEL}_fmnist.onnx" --data idx:/usr/share/datasets/fashion-mnist --json)
/usr/bin/python3 - "$theirs" "$ours" "$fp32" "$MODEL" <<'PY'
import json, sys
theirs, ours, fp32 = (json.loads(a) for a in sys.argv[1:4])
model = sys.argv[4]
print(f"{model}: FP32 {100 * fp32['top1']:.2f}% | PyTorch FX int8 ({theirs['engine']}) {100 * theirs['int8_top1']:.2f}% "
      f"| autoprec W8A8 {100 * ours['top1']:.2f}% | autoprec - PyTorch = {100 * (ours['top1'] - theirs['int8_top1']):+.2f} points")
PY
