#!/usr/bin/env bash
# Evidence for the integer export form (docs/deploy.md, "Integer form"): for
# each zoo model, the FP32 file, today's QDQ export (format qdq) and the
# integer export (format int) at uniform W7A8 (the cpu-ort-int rule on CPUs
# without VNNI; W8A8 for the qdq form), all in ONNX Runtime in one run on one
# machine: median latency at batch 1 and 32 with 1 and 2 intra-op threads
# (wall time per inference through tools/ort_runner.js, 20 warm-up runs,
# median of REPEATS), the speed-up against FP32, ORT top-1 against the
# simulation on the full test split, and the file size.
# Usage: bench/int_export_table.sh [MODEL_NAME ...]   (default: resnet20 mobilenetv2_mini small_cnn)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/autoprec ] || bash scripts/build >/dev/null
DATA=idx:/usr/share/datasets/fashion-mnist
REPEATS=${REPEATS:-200}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet20 mobilenetv2_mini small_cnn)
printf 'default: {weight_bits: 7, activation_bits: 8}\n' >"$TMP/w7a8.yaml"
printf 'default: {weight_bits: 8, activation_bits: 8}\n' >"$TMP/w8a8.yaml"

# median_ms FILE BATCH THREADS
median_ms() {
  printf '{"cmd":"load","model":"%s","threads":%d}\n{"cmd":"time","inputs":{"input":{"dtype":"float32","shape":[%d,1,28,28],"fill":"random","seed":1}},"warmup":20,"repeats":%d}\n{"cmd":"quit"}\n' \
    "$1" "$3" "$2" "$REPEATS" | node tools/ort_runner.js 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys
for line in sys.stdin:
    r = json.loads(line)
    if "median_ms" in r: print(f"{r[\"median_ms\"]:.3f}")'
}

echo "ORT: onnxruntime-node $(node -p 'require("./tools/node_modules/onnxruntime-node/package.json").version'); CPU: $(build/autoprec targets | sed -n 's/^this CPU: //p'); repeats $REPEATS"
echo
echo "| model | form | config | file KiB | ORT top-1 % | sim top-1 % | agreement % | max logit diff | b1 t1 ms | b1 t2 ms | b32 t1 ms | b32 t2 ms | speed-up b1 t1 | speed-up b32 t1 |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for name in "${models[@]}"; do
  fp32=models/${name}_fmnist.onnx
  declare -A t=()
  for b in 1 32; do for th in 1 2; do t[fp32_${b}_${th}]=$(median_ms "$fp32" $b $th); done; done
  printf '| %s | fp32 | - | %d | - | - | - | - | %s | %s | %s | %s | 1.00 | 1.00 |\n' "$name" $(( $(stat -c %s "$fp32") / 1024 )) \
    "${t[fp32_1_1]}" "${t[fp32_1_2]}" "${t[fp32_32_1]}" "${t[fp32_32_2]}"
  for form in qdq int; do
    cfg=$TMP/w7a8.yaml; label=W7A8
    [ $form = qdq ] && { cfg=$TMP/w8a8.yaml; label=W8A8; }
    out=$TMP/${name}_$form.onnx
    build/autoprec export "$fp32" --precision "$cfg" --format $form --data "$DATA" --out "$out" >/dev/null
    build/autoprec verify "$out" --data "$DATA" --json >"$TMP/v.json" 2>/dev/null || true
    for b in 1 32; do for th in 1 2; do t[${form}_${b}_${th}]=$(median_ms "$out" $b $th); done; done
    /usr/bin/python3 - "$TMP/v.json" "$name" "$form" "$label" $(( $(stat -c %s "$out") / 1024 )) \
      "${t[${form}_1_1]}" "${t[${form}_1_2]}" "${t[${form}_32_1]}" "${t[${form}_32_2]}" "${t[fp32_1_1]}" "${t[fp32_32_1]}" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
name, form, label, kib, b1t1, b1t2, b32t1, b32t2, f1, f32 = sys.argv[2:]
print(f"| {name} | {form} | {label} | {kib} | {100*v['ort_top1']:.2f} | {100*v['simulated_top1']:.2f} | "
      f"{100*v['top1_agreement']:.2f} | {v['max_logit_difference']:.3f} | {b1t1} | {b1t2} | {b32t1} | {b32t2} | "
      f"{float(f1)/float(b1t1):.2f} | {float(f32)/float(b32t1):.2f} |")
PY
  done
  unset t
done
