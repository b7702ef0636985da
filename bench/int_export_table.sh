#!/usr/bin/env bash
# Evidence for the integer export form (docs/deploy.md, "Integer form"): for
# each zoo model, the FP32 file, the QDQ export (format qdq, W8A8) and the
# integer export (format int, W7A8: the cpu-ort-int rule on CPUs without
# VNNI), all in ONNX Runtime in one run on one machine: latency at batch 1 and
# 32 with 1 and 2 intra-op threads, the speed-up against FP32, ORT top-1
# against the simulation on the full test split, and the file size.
# Latency: wall time per inference through tools/ort_runner.js (20 warm-up
# runs, median of REPEATS); the three files are timed in turn, ROUNDS times,
# and the table gives the median over rounds (rounds interleave the files so
# that a slow spell of the machine hits all of them).
# Usage: bench/int_export_table.sh [MODEL_NAME ...]   (default: resnet20 mobilenetv2_mini small_cnn)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/autoprec ] || bash scripts/build >/dev/null
DATA=idx:/usr/share/datasets/fashion-mnist
REPEATS=${REPEATS:-200}
ROUNDS=${ROUNDS:-5}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet20 mobilenetv2_mini small_cnn)
printf 'default: {weight_bits: 7, activation_bits: 8}\n' >"$TMP/int.yaml"
printf 'default: {weight_bits: 8, activation_bits: 8}\n' >"$TMP/qdq.yaml"

# median_ms FILE BATCH THREADS
median_ms() {
  printf '{"cmd":"load","model":"%s","threads":%d}\n{"cmd":"time","inputs":{"input":{"dtype":"float32","shape":[%d,1,28,28],"fill":"random","seed":1}},"warmup":20,"repeats":%d}\n{"cmd":"quit"}\n' \
    "$1" "$3" "$2" "$REPEATS" | node tools/ort_runner.js 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys
for line in sys.stdin:
    r = json.loads(line)
    if "median_ms" in r: print("%.4f" % r["median_ms"])'
}

echo "ORT: onnxruntime-node $(node -p 'require("./tools/node_modules/onnxruntime-node/package.json").version'); CPU: $(build/autoprec targets | sed -n 's/^this CPU: //p'); repeats $REPEATS, rounds $ROUNDS"
echo
echo "| model | form | config | file KiB | ORT top-1 % | sim top-1 % | agreement % | max logit diff | b1 t1 ms | b1 t2 ms | b32 t1 ms | b32 t2 ms | speed-up b1 t1 | speed-up b32 t1 |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for name in "${models[@]}"; do
  cp "models/${name}_fmnist.onnx" "$TMP/fp32.onnx"
  for form in qdq int; do
    build/autoprec export "models/${name}_fmnist.onnx" --precision "$TMP/$form.yaml" --format $form --data "$DATA" --out "$TMP/$form.onnx" >/dev/null
    build/autoprec verify "$TMP/$form.onnx" --source "models/${name}_fmnist.onnx" --data "$DATA" --json >"$TMP/$form.verify.json" 2>/dev/null || true
  done
  : >"$TMP/times"
  for b in 1 32; do for th in 1 2; do for r in $(seq "$ROUNDS"); do for form in fp32 qdq int; do
    echo "$form $b $th $(median_ms "$TMP/$form.onnx" $b $th)" >>"$TMP/times"
  done; done; done; done
  /usr/bin/python3 - "$TMP" "$name" <<'PY'
import json, os, statistics, sys
tmp, name = sys.argv[1:]
times = {}
for line in open(os.path.join(tmp, "times")):
    form, b, th, ms = line.split()
    times.setdefault((form, b, th), []).append(float(ms))
med = {k: statistics.median(v) for k, v in times.items()}
for form, label in (("fp32", "-"), ("qdq", "W8A8"), ("int", "W7A8")):
    kib = os.path.getsize(os.path.join(tmp, form + ".onnx")) // 1024
    if form == "fp32":
        acc = "- | - | - | -"
    else:
        v = json.load(open(os.path.join(tmp, form + ".verify.json")))
        acc = (f"{100*v['ort_top1']:.2f} | {100*v['simulated_top1']:.2f} | {100*v['top1_agreement']:.2f} | "
               f"{v['max_logit_difference']:.3f}")
    cells = " | ".join(f"{med[(form, b, th)]:.3f}" for b in ("1", "32") for th in ("1", "2"))
    s1 = med[("fp32", "1", "1")] / med[(form, "1", "1")]
    s32 = med[("fp32", "32", "1")] / med[(form, "32", "1")]
    print(f"| {name} | {form} | {label} | {kib} | {acc} | {cells} | {s1:.2f} | {s32:.2f} |")
PY
done
