#!/usr/bin/env bash
# Cost of the quantization simulation: eval images/s of a model at W4A8
# against FP32, same run, same threads and batch. Goal: at most 1.3x slower.
# Usage: bench/quant_overhead.sh [MODEL=resnet20] [THREADS=2] [REPEATS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-resnet20}
THREADS=${2:-2}
REPEATS=${3:-3}
[ -x build/autoprec ] || bash scripts/build >/dev/null
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
printf 'default: {weight_bits: 4, activation_bits: 8}\n' >"$TMP/w4a8.yaml"
DATA=idx:/usr/share/datasets/fashion-mnist
# Calibrate once so that every timed run measures inference only.
build/autoprec quantize "models/${MODEL}_fmnist.onnx" --data "$DATA" --precision "$TMP/w4a8.yaml" --out "$TMP/q" --limit 256 >/dev/null
rate() { build/autoprec --threads "$THREADS" eval "models/${MODEL}_fmnist.onnx" --data "$DATA" --json "$@" |
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_second"])'; }
fp=()
q=()
for i in $(seq "$REPEATS"); do
  fp+=("$(rate)")
  q+=("$(rate --precision "$TMP/q/precision.yaml")")
  echo "repeat $i: FP32 ${fp[-1]} img/s, W4A8 ${q[-1]} img/s"
done
/usr/bin/python3 - "${fp[*]}" "${q[*]}" "$MODEL" <<'PY'
import statistics, sys
fp = statistics.median(float(x) for x in sys.argv[1].split())
q = statistics.median(float(x) for x in sys.argv[2].split())
print(f"{sys.argv[3]}: FP32 {fp:.0f} img/s, W4A8 simulation {q:.0f} img/s, cost ratio FP32/W4A8 time = {fp / q:.2f}x")
PY
