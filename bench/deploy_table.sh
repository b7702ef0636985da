#!/usr/bin/env bash
# Evidence for deployment (docs/deploy.md): resnet20_fmnist exported at
# uniform W8A8, uniform W4A8 and (when given) a search result, each run in
# ONNX Runtime over the full test split and compared with the simulation;
# file size vs the FP32 file; batch-1 latency vs FP32 in the same runtime.
# Usage: bench/deploy_table.sh [SEARCH_DIR]   (SEARCH_DIR holds model.onnx + best.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/autoprec ] || bash scripts/build >/dev/null
DATA=idx:/usr/share/datasets/fashion-mnist
MODEL=models/resnet20_fmnist.onnx
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
row() {  # row LABEL MODEL CONFIG
  local slug
  slug=$(printf '%s' "$1" | tr -c 'A-Za-z0-9' '_')
  build/autoprec deploy "$2" --data "$DATA" --precision "$3" --out "$TMP/$slug" --json >"$TMP/$slug.json"
  /usr/bin/python3 - "$TMP/$slug.json" "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); v = d["verification"]; s = d["size"]; l = d["latency"]
print(f"| {sys.argv[2]} | {100*v['ort_top1']:.2f} | {100*v['simulated_top1']:.2f} | {100*v['top1_agreement']:.2f} | "
      f"{v['max_logit_difference']:.3f} | {s['onnx_bytes']/1024:.0f} KiB ({100*s['onnx_bytes']/s['fp32_onnx_bytes']:.0f}%) | "
      f"{s['theoretical_weight_bytes']/1024:.0f} KiB | {l['quantized_ms']:.3f} | {l['fp32_ms']:.3f} |")
PY
}
echo "| configuration | ORT top-1 % | simulated top-1 % | agreement % | max logit diff | ONNX file (vs FP32 file) | theoretical weights | ORT ms (batch 1, 1 thread) | FP32 ORT ms |"
echo "|---|---|---|---|---|---|---|---|---|"
printf 'default: {weight_bits: 8, activation_bits: 8}\n' >"$TMP/w8a8.yaml"
printf 'default: {weight_bits: 4, activation_bits: 8}\n' >"$TMP/w4a8.yaml"
row W8A8 "$MODEL" "$TMP/w8a8.yaml"
row W4A8 "$MODEL" "$TMP/w4a8.yaml"
if [ -n "${1:-}" ]; then row "search result ($1)" "$1/model.onnx" "$1/best.yaml"; fi
