#!/usr/bin/env bash
# QDQ export checked in ONNX Runtime: small_cnn_fmnist exported at W8A8,
# W8A8 with UINT8 weights, W4A8, W4A4 (last layer float) and a mixed
# 2/3/5/6-bit configuration; each
# file runs in onnxruntime-node over 500 test images and is compared with
# `autoprec run --precision` (the simulation): top-1 agreement and the
# largest logit difference must stay within the bounds in docs/deploy.md.
# Exit 77 (skipped) when node or onnxruntime-node is missing.
# Usage: ort_export_test.sh AUTOPREC_BINARY SOURCE_DIR NODE_MODULES
set -u
BIN=$1
SRC=$2
MODULES=${AUTOPREC_ORT_NODE_MODULES:-$3}
if ! command -v node >/dev/null 2>&1; then
  echo "SKIP: node is not installed; the ORT check of the QDQ export needs Node.js"
  exit 77
fi
if [ ! -d "$MODULES/onnxruntime-node" ]; then
  echo "SKIP: $MODULES/onnxruntime-node is missing (npm install onnxruntime-node under tools/, or set AUTOPREC_ORT_NODE_MODULES)"
  exit 77
fi
export AUTOPREC_ORT_NODE_MODULES=$MODULES
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
MODEL=$SRC/models/small_cnn_fmnist.onnx
DIR=/usr/share/datasets/fashion-mnist
DATA=idx:$DIR
COMPARE="node $SRC/tests/ort_compare.js"
# Bounds, from the measurements in docs/deploy.md ("Tolerance"). Without
# graph optimizations ORT computes what the file says: equal to the
# simulation but for rare one-step flips of a rounding tie (largest seen:
# 0.147 at W4A4). With ORT's default optimizations it also quantizes float
# biases to int32 and fuses integer kernels, which the simulation does not
# model (largest seen: 0.69 logit, 98.4% top-1 agreement, mixed config).
EXACT_MAX_DIFF=${ORT_EXACT_MAX_DIFF:-0.25}
EXACT_MIN_AGREEMENT=${ORT_EXACT_MIN_AGREEMENT:-0.996}
MAX_DIFF=${ORT_MAX_DIFF:-1.0}
MIN_AGREEMENT=${ORT_MIN_AGREEMENT:-0.97}
failed=0

$COMPARE make-input "$DIR" 500 "$WORK/x.npy" "$WORK/labels.npy" || exit 1

cat >"$WORK/w8a8.yaml" <<'Y'
default: {weight_bits: 8, activation_bits: 8}
Y
cat >"$WORK/w4a8.yaml" <<'Y'
default: {weight_bits: 4, activation_bits: 8}
Y
cat >"$WORK/w4a4.yaml" <<'Y'
default: {weight_bits: 4, activation_bits: 4}
layers:
  "/classifier/classifier.3/Gemm": {weight_bits: 16, activation_bits: 16}
Y
cat >"$WORK/mixed.yaml" <<'Y'
default: {weight_bits: 8, activation_bits: 8}
layers:
  "/features/features.0/Conv": {weight_bits: 6, activation_bits: 8}
  "/features/features.4/Conv": {weight_bits: 3, activation_bits: 6}
  "/classifier/classifier.1/Gemm": {weight_bits: 2, activation_bits: 3}
  "/classifier/classifier.3/Gemm": {weight_bits: 6, activation_bits: 5}
Y

cp "$WORK/w8a8.yaml" "$WORK/w8a8_uint8.yaml"

for name in w8a8 w8a8_uint8 w4a8 w4a4 mixed; do
  cfg=$WORK/$name.yaml
  weight_type=int8
  [ "$name" = w8a8_uint8 ] && weight_type=uint8
  if ! "$BIN" export "$MODEL" --precision "$cfg" --data "$DATA" --weight-type "$weight_type" --out "$WORK/$name.onnx" --json >"$WORK/$name.json" 2>"$WORK/err"; then
    echo "FAIL: export $name: $(tail -c 300 "$WORK/err")"; failed=$((failed + 1)); continue
  fi
  if ! "$BIN" run "$MODEL" --input "$WORK/x.npy" --output "$WORK/$name.sim.npy" --precision "$cfg" --data "$DATA" 2>"$WORK/err"; then
    echo "FAIL: run $name: $(tail -c 300 "$WORK/err")"; failed=$((failed + 1)); continue
  fi
  # Every layer's true bit-widths are in the file's metadata (autoprec.precision).
  if ! /usr/bin/python3 - "$WORK/$name.onnx" "$name" <<'PY'
import json, sys, onnx
model = onnx.load(sys.argv[1], load_external_data=False)
meta = {p.key: p.value for p in model.metadata_props}
layers = json.loads(meta["autoprec.precision"])
layer_names = ["/features/features.0/Conv", "/features/features.4/Conv", "/classifier/classifier.1/Gemm",
               "/classifier/classifier.3/Gemm"]
uniform = {"w8a8": (8, 8), "w8a8_uint8": (8, 8), "w4a8": (4, 8), "w4a4": (4, 4)}
expected = {n: uniform.get(sys.argv[2], (8, 8)) for n in layer_names}
if sys.argv[2] == "w4a4":
    expected["/classifier/classifier.3/Gemm"] = (16, 16)
if sys.argv[2] == "mixed":
    expected.update({"/features/features.0/Conv": (6, 8), "/features/features.4/Conv": (3, 6),
                     "/classifier/classifier.1/Gemm": (2, 3), "/classifier/classifier.3/Gemm": (6, 5)})
got = {n: (v["weight_bits"], v["activation_bits"]) for n, v in layers.items()}
assert got == expected, f"metadata {got} != expected {expected}"
assert meta["autoprec.format"] == "qdq-1" and "autoprec.precision_config" in meta, meta.keys()
PY
  then
    echo "FAIL: $name: the metadata does not list every layer's bit-widths"; failed=$((failed + 1))
  fi
  echo "$name: opset $(grep -o '"opset": [0-9]*' "$WORK/$name.json" | grep -o '[0-9]*$'), $(stat -c %s "$WORK/$name.onnx") bytes (FP32 $(stat -c %s "$MODEL"))"
  if $COMPARE compare "$WORK/$name.onnx" "$WORK/x.npy" "$WORK/$name.sim.npy" "$WORK/labels.npy" \
      --optimization disabled --max-diff "$EXACT_MAX_DIFF" --min-agreement "$EXACT_MIN_AGREEMENT"; then
    echo "ok: $name (ORT without graph optimizations)"
  else
    echo "FAIL: $name: ORT without optimizations differs beyond max diff $EXACT_MAX_DIFF / agreement $EXACT_MIN_AGREEMENT"
    failed=$((failed + 1))
  fi
  if $COMPARE compare "$WORK/$name.onnx" "$WORK/x.npy" "$WORK/$name.sim.npy" "$WORK/labels.npy" \
      --optimization all --max-diff "$MAX_DIFF" --min-agreement "$MIN_AGREEMENT"; then
    echo "ok: $name (ORT default optimizations)"
  else
    echo "FAIL: $name: ORT differs beyond max diff $MAX_DIFF / agreement $MIN_AGREEMENT"
    failed=$((failed + 1))
  fi
done
[ "$failed" -eq 0 ] || { echo "$failed failure(s)"; exit 1; }
echo "all QDQ exports match the simulation in ONNX Runtime"
