#!/usr/bin/env bash
# Evidence for weight-only MatMul/Gemm layers as MatMulNBits (docs/deploy.md,
# "MatMulNBits"): ONNX Runtime latency of the FP32 file against exports at
# W8/W4/W2 weight-only (MatMulNBits, --target cpu-ort-int) and, on the
# feed-forward stack, the integer form W7A8 (QGemm), at batch 1 and 16 with
# one thread; file size, and the largest output difference between ORT and
# autoprec's simulation of the same file (autoprec run).
# Models: a transformer-style feed-forward stack (bench/make_ffn.py: 4 x
# Linear(512, 2048) -> GELU -> Linear(2048, 512), 8.4M weights) and the zoo's
# vit_tiny_fmnist and char_mlp_lm.
# Latency: wall time per inference through tools/ort_runner.js (20 warm-up
# runs, median of REPEATS); the files of one model are timed in turn, ROUNDS
# times, and the table gives the median over rounds.
# Usage: bench/matmul_nbits_table.sh   (BIN=path/to/autoprec, REPEATS, ROUNDS)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/autoprec}
REPEATS=${REPEATS:-100}
ROUNDS=${ROUNDS:-5}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
/usr/bin/python3 bench/make_ffn.py "$TMP/ffn" >/dev/null 2>&1
/usr/bin/python3 models/char_lm.py data "$TMP/lm" >/dev/null
for b in 8 4 2; do printf 'default: {weight_bits: %d, activation_bits: 32}\n' $b >"$TMP/w$b.yaml"; done
printf 'default: {weight_bits: 7, activation_bits: 8}\n' >"$TMP/w7a8.yaml"
printf 'default: {weight_bits: 4, activation_bits: 32}\nlayers:\n  "/patch/Conv": {weight_bits: 32}\n' >"$TMP/vit_w4.yaml"

# median_ms FILE INPUT_NAME DTYPE SHAPE_AFTER_BATCH BATCH
median_ms() {
  local fill=random
  [ "$3" = int64 ] && fill=zeros
  printf '{"cmd":"load","model":"%s","threads":1}\n{"cmd":"time","inputs":{"%s":{"dtype":"%s","shape":[%d%s],"fill":"%s","seed":1}},"warmup":20,"repeats":%d}\n{"cmd":"quit"}\n' \
    "$1" "$2" "$3" "$5" "$4" "$fill" "$REPEATS" | node tools/ort_runner.js 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys
for line in sys.stdin:
    r = json.loads(line)
    if "median_ms" in r: print("%.4f" % r["median_ms"])'
}

echo "ORT: onnxruntime-node $(node -p 'require("./tools/node_modules/onnxruntime-node/package.json").version'); CPU: $("$BIN" targets | sed -n 's/^this CPU: //p'); 1 thread, repeats $REPEATS, rounds $ROUNDS"
echo
echo "| model | config | kernel | file KiB | max output diff ORT vs simulation | b1 ms | b16 ms | speed-up b1 | speed-up b16 |"
echo "|---|---|---|---|---|---|---|---|---|"
# model_rows NAME MODEL DATA INPUT_NAME DTYPE SHAPE SAMPLE_NPY CONFIG...
model_rows() {
  local name=$1 model=$2 data=$3 input=$4 dtype=$5 shape=$6 sample=$7
  shift 7
  cp "$model" "$TMP/$name.fp32.onnx"
  local forms=(fp32)
  for cfg in "$@"; do
    "$BIN" export "$model" --precision "$TMP/$cfg.yaml" --target cpu-ort-int --data "$data" --out "$TMP/$name.$cfg.onnx" >/dev/null 2>"$TMP/err" ||
      { echo "export $name $cfg failed: $(cat "$TMP/err")" >&2; exit 1; }
    "$BIN" run "$model" --input "$sample" --output "$TMP/$name.$cfg.sim.npy" --precision "$TMP/$cfg.yaml" --target cpu-ort-int --data "$data" 2>/dev/null
    printf '{"cmd":"load","model":"%s","threads":1}\n{"cmd":"run","inputs":{"%s":{"file":"%s"}},"outputs_dir":"%s"}\n{"cmd":"quit"}\n' \
      "$TMP/$name.$cfg.onnx" "$input" "$sample" "$TMP/$name.$cfg.ort" | { mkdir -p "$TMP/$name.$cfg.ort"; node tools/ort_runner.js 2>/dev/null; } >"$TMP/$name.$cfg.run.json"
    forms+=("$cfg")
  done
  : >"$TMP/times"
  for b in 1 16; do for r in $(seq "$ROUNDS"); do for form in "${forms[@]}"; do
    echo "$form $b $(median_ms "$TMP/$name.$form.onnx" "$input" "$dtype" "$shape" $b)" >>"$TMP/times"
  done; done; done
  /usr/bin/python3 - "$TMP" "$name" "${forms[@]}" <<'PY'
import collections, glob, json, os, statistics, sys
import numpy as np, onnx
tmp, name, forms = sys.argv[1], sys.argv[2], sys.argv[3:]
times = collections.defaultdict(list)
for line in open(os.path.join(tmp, "times")):
    form, b, ms = line.split()
    times[(form, b)].append(float(ms))
med = {k: statistics.median(v) for k, v in times.items()}
labels = {"fp32": "FP32", "w8": "W8A32", "w4": "W4A32", "w2": "W2A32", "w7a8": "W7A8 (integer form)", "vit_w4": "W4A32, patch Conv float"}
for form in forms:
    path = os.path.join(tmp, f"{name}.{form}.onnx")
    ops = collections.Counter(n.op_type for n in onnx.load(path, load_external_data=False).graph.node)
    kernel = "Gemm/MatMul" if form == "fp32" else ", ".join(f"{n} {k}" for k, n in ops.most_common() if k in ("MatMulNBits", "Gemm", "MatMul", "QuantizeLinear"))
    diff = "-"
    if form != "fp32":
        replies = [json.loads(l) for l in open(os.path.join(tmp, f"{name}.{form}.run.json"))]
        run = [r for r in replies if isinstance(r.get("outputs"), dict)][0]
        ort = np.load(list(run["outputs"].values())[0])
        sim = np.load(os.path.join(tmp, f"{name}.{form}.sim.npy"))
        diff = "%.2g (of max %.3g)" % (np.abs(ort - sim).max(), np.abs(sim).max())
    row = [name, labels.get(form, form), kernel, str(os.path.getsize(path) // 1024), diff]
    for b in ("1", "16"):
        row.append("%.3f" % med[(form, b)])
    for b in ("1", "16"):
        row.append("%.2fx" % (med[("fp32", b)] / med[(form, b)]))
    print("| " + " | ".join(row) + " |")
PY
}
model_rows ffn "$TMP/ffn.onnx" "npy:$TMP/ffn.npy" input float32 ",512" "$TMP/ffn.npy" w8 w4 w2 w7a8
/usr/bin/python3 -c 'import numpy as np,sys; np.save(sys.argv[2], np.load(sys.argv[1])[:512])' "$TMP/lm/test_x.npy" "$TMP/lm/sample.npy"
model_rows char_mlp_lm models/char_mlp_lm.onnx "npy:$TMP/lm/test_x.npy,$TMP/lm/test_y.npy" tokens int64 ",32" "$TMP/lm/sample.npy" w8 w4 w2
node tests/ort_compare.js make-input /usr/share/datasets/fashion-mnist 512 "$TMP/fm_x.npy" "$TMP/fm_y.npy"
model_rows vit_tiny_fmnist models/vit_tiny_fmnist.onnx idx:/usr/share/datasets/fashion-mnist input float32 ",1,28,28" "$TMP/fm_x.npy" vit_w4
