#!/usr/bin/env bash
# The integer export form checked in ONNX Runtime: small_cnn_fmnist exported
# with --format int at W7A8, at W4A8 (sub-8-bit weights in INT8 containers)
# and with a float classifier layer (a float island); for each file
#   - ORT's optimized graph (default optimizations, 1 thread) holds an integer
#     kernel for every integer layer (QLinearConv, QGemm) and no float Conv,
#   - ORT's logits match `autoprec run --format int` (the simulation) over
#     1000 test images within the bounds of docs/deploy.md,
#   - `autoprec verify` passes at its default 0.1-point tolerance;
# and a configuration the integer form cannot hold (4-bit activations) is
# refused with one line naming the layer, exit 2, no file written.
# Exit 77 (skipped) when node or onnxruntime-node is missing.
# Usage: ort_integer_export_test.sh AUTOPREC_BINARY SOURCE_DIR NODE_MODULES
set -u
BIN=$1
SRC=$2
MODULES=${AUTOPREC_ORT_NODE_MODULES:-$3}
if ! command -v node >/dev/null 2>&1; then echo "SKIP: node is not installed"; exit 77; fi
if [ ! -d "$MODULES/onnxruntime-node" ]; then echo "SKIP: $MODULES/onnxruntime-node is missing"; exit 77; fi
export AUTOPREC_ORT_NODE_MODULES=$MODULES
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
MODEL=$SRC/models/small_cnn_fmnist.onnx
DIR=/usr/share/datasets/fashion-mnist
DATA=idx:$DIR
# Bounds (docs/deploy.md, "Integer form"): largest logit difference seen
# 0.025 (W7A8) on this CPU; agreement 100%.
MAX_DIFF=${ORT_INT_MAX_DIFF:-0.25}
MIN_AGREEMENT=${ORT_INT_MIN_AGREEMENT:-0.996}
failed=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

node "$SRC/tests/ort_compare.js" make-input "$DIR" 1000 "$WORK/x.npy" "$WORK/labels.npy" || exit 1
printf 'default: {weight_bits: 7, activation_bits: 8}\n' >"$WORK/w7a8.yaml"
printf 'default: {weight_bits: 4, activation_bits: 8}\n' >"$WORK/w4a8.yaml"
cat >"$WORK/island.yaml" <<'Y'
default: {weight_bits: 6, activation_bits: 8}
layers:
  "/classifier/classifier.1/Gemm": {weight_bits: 32, activation_bits: 32}
Y
# name: integer layers expected (QLinearConv count, QGemm count)
declare -A CONVS=([w7a8]=2 [w4a8]=2 [island]=2)
declare -A GEMMS=([w7a8]=2 [w4a8]=2 [island]=1)

for name in w7a8 w4a8 island; do
  cfg=$WORK/$name.yaml
  if ! "$BIN" export "$MODEL" --precision "$cfg" --format int --data "$DATA" --out "$WORK/$name.onnx" --json >"$WORK/$name.json" 2>"$WORK/err"; then
    fail "export $name: $(tail -c 300 "$WORK/err")"; continue
  fi
  if ! "$BIN" run "$MODEL" --input "$WORK/x.npy" --output "$WORK/$name.sim.npy" --precision "$cfg" --format int --data "$DATA" 2>"$WORK/err"; then
    fail "run $name: $(tail -c 300 "$WORK/err")"; continue
  fi
  printf '{"cmd":"load","model":"%s","threads":1,"optimized_model":"%s"}\n{"cmd":"quit"}\n' \
    "$WORK/$name.onnx" "$WORK/$name.opt.onnx" | node "$SRC/tools/ort_runner.js" >"$WORK/runner.out" 2>&1
  if ! /usr/bin/python3 - "$WORK/$name.opt.onnx" "$WORK/$name.json" "${CONVS[$name]}" "${GEMMS[$name]}" <<'PY'
import collections, json, sys, onnx
ops = collections.Counter(n.op_type for n in onnx.load(sys.argv[1]).graph.node)
export = json.load(open(sys.argv[2]))
convs, gemms = int(sys.argv[3]), int(sys.argv[4])
print(f"  optimized graph: {dict(ops)}; float islands: {export['float_islands']}")
assert export["format"] == "int", export["format"]
assert ops["QLinearConv"] == convs, f"{ops['QLinearConv']} QLinearConv, expected {convs}"
assert ops["QGemm"] == gemms, f"{ops['QGemm']} QGemm, expected {gemms}"
assert ops["Conv"] + ops["FusedConv"] == 0, "a float Conv is left"
assert ops["DequantizeLinear"] <= 2 * (2 + 2 - convs - gemms), "DequantizeLinear left around integer layers"
PY
  then
    fail "$name: ORT did not fuse the integer layers"
  fi
  if node "$SRC/tests/ort_compare.js" compare "$WORK/$name.onnx" "$WORK/x.npy" "$WORK/$name.sim.npy" "$WORK/labels.npy" \
      --optimization all --max-diff "$MAX_DIFF" --min-agreement "$MIN_AGREEMENT"; then
    echo "ok: $name matches the simulation in ORT"
  else
    fail "$name: ORT differs from the simulation beyond max diff $MAX_DIFF / agreement $MIN_AGREEMENT"
  fi
  if "$BIN" verify "$WORK/$name.onnx" --data "$DATA" --limit 1000 --json >"$WORK/verify.json" 2>"$WORK/err"; then
    echo "ok: $name verify: $(grep -o '"gap_points":[^,]*' "$WORK/verify.json")"
  else
    fail "$name: verify: $(tail -c 300 "$WORK/err")"
  fi
done

printf 'default: {weight_bits: 8, activation_bits: 8}\nlayers:\n  "/features/features.4/Conv": {activation_bits: 4}\n' >"$WORK/a4.yaml"
"$BIN" export "$MODEL" --precision "$WORK/a4.yaml" --format int --data "$DATA" --out "$WORK/a4.onnx" >"$WORK/out" 2>"$WORK/err"
code=$?
if [ "$code" -ne 2 ] || [ "$(wc -l <"$WORK/err")" -ne 1 ] || ! grep -q "'/features/features.4/Conv' asks for 4-bit activations" "$WORK/err" || [ -e "$WORK/a4.onnx" ]; then
  fail "4-bit activations in the integer form: exit $code, stderr: $(cat "$WORK/err")"
else
  echo "ok: refused: $(cat "$WORK/err")"
fi
# eval --target cpu-ort-int simulates the integer form: its top-1 is the
# one verify found in ONNX Runtime on the same images.
"$BIN" verify "$WORK/w7a8.onnx" --data "$DATA" --limit 1000 --json >"$WORK/verify.json" 2>/dev/null
"$BIN" eval "$MODEL" --precision "$WORK/w7a8.yaml" --target cpu-ort-int --data "$DATA" --limit 1000 --json >"$WORK/eval.json" 2>"$WORK/err"
if /usr/bin/python3 - "$WORK/verify.json" "$WORK/eval.json" <<'PY'
import json, sys
v, e = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(f"  eval --target cpu-ort-int top-1 {e['top1']:.4f}; ORT {v['ort_top1']:.4f}, verify's simulation {v['simulated_top1']:.4f}")
assert abs(e["top1"] - v["simulated_top1"]) < 1e-9 and abs(e["top1"] - v["ort_top1"]) <= 0.002
PY
then
  echo "ok: eval --target cpu-ort-int simulates what ORT runs"
else
  fail "eval --target cpu-ort-int does not match ORT: $(tail -c 300 "$WORK/err")"
fi

# On the cpu-ort-int target the refusal names what the target runs, before
# the bundle directory exists.
"$BIN" deploy "$MODEL" --precision "$WORK/w7a8.yaml" --target cpu-ort-int --data "$DATA" --out "$WORK/bundle_ok" --limit 200 --json >"$WORK/deploy.json" 2>"$WORK/err"
if [ $? -ne 0 ] || ! grep -q '"format": "int"' "$WORK/deploy.json"; then
  fail "deploy --target cpu-ort-int: $(tail -c 300 "$WORK/err")"
else
  echo "ok: deploy --target cpu-ort-int writes the integer form"
fi
printf 'default: {weight_bits: 7, activation_bits: 8}\nlayers:\n  "/features/features.4/Conv": {activation_bits: 4}\n' >"$WORK/a4w7.yaml"
"$BIN" deploy "$MODEL" --precision "$WORK/a4w7.yaml" --target cpu-ort-int --data "$DATA" --out "$WORK/bundle" >"$WORK/out" 2>"$WORK/err"
code=$?
if [ "$code" -ne 2 ] || [ "$(wc -l <"$WORK/err")" -ne 1 ] || [ -e "$WORK/bundle" ] ||
   ! grep -q "layer '/features/features.4/Conv': cpu-ort-int runs Conv activations at 8, 32 bits, not 4" "$WORK/err"; then
  fail "deploy --target cpu-ort-int with 4-bit activations: exit $code, stderr: $(cat "$WORK/err")"
else
  echo "ok: refused: $(cat "$WORK/err")"
fi

# Weight-only MatMul/Gemm layers at 2, 4 and 8 bits run as MatMulNBits (in
# the integer form; cpu-ort-int offers 4 bits, the width ORT runs fast): the
# ViT's MatMuls at 4 bits and its head at 8, the token model's Gemms at 4 and
# 2 bits (its first has K = 512: two blocks of 256). ORT keeps the kernel,
# matches the simulation, and verify passes.
VIT=$SRC/models/vit_tiny_fmnist.onnx
cat >"$WORK/vit_nbits.yaml" <<'Y'
default: {weight_bits: 4, activation_bits: 32}
layers:
  "/patch/Conv": {weight_bits: 32}
  "/head/Gemm": {weight_bits: 8}
Y
LM=$SRC/models/char_mlp_lm.onnx
/usr/bin/python3 "$SRC/models/char_lm.py" data "$WORK/lm" >/dev/null || fail "char_lm data"
printf 'default: {weight_bits: 4, activation_bits: 32}\nlayers:\n  "/fc2/Gemm": {weight_bits: 2}\n' >"$WORK/lm_nbits.yaml"
for case in "vit_nbits $VIT $DATA 9" "lm_nbits $LM npy:$WORK/lm/test_x.npy,$WORK/lm/test_y.npy 2"; do
  set -- $case
  name=$1 model=$2 data=$3 kernels=$4
  if ! "$BIN" export "$model" --precision "$WORK/$name.yaml" --format int --data "$data" --out "$WORK/$name.onnx" --json >"$WORK/$name.json" 2>"$WORK/err"; then
    fail "export $name: $(tail -c 300 "$WORK/err")"; continue
  fi
  printf '{"cmd":"load","model":"%s","threads":1,"optimized_model":"%s"}\n{"cmd":"quit"}\n' \
    "$WORK/$name.onnx" "$WORK/$name.opt.onnx" | node "$SRC/tools/ort_runner.js" >"$WORK/runner.out" 2>&1
  if /usr/bin/python3 - "$WORK/$name.opt.onnx" "$kernels" <<'PY'
import collections, sys, onnx
ops = collections.Counter(n.op_type for n in onnx.load(sys.argv[1]).graph.node)
print(f"  optimized graph: {dict(ops)}")
assert ops["MatMulNBits"] == int(sys.argv[2]), f"{ops['MatMulNBits']} MatMulNBits, expected {sys.argv[2]}"
assert ops["DequantizeLinear"] == 0, "a weight is dequantized outside the kernel"
PY
  then
    echo "ok: $name runs as MatMulNBits in ORT"
  else
    fail "$name: ORT's optimized graph does not hold the MatMulNBits kernels"
  fi
  if "$BIN" verify "$WORK/$name.onnx" --data "$data" --limit 1000 --json >"$WORK/verify.json" 2>"$WORK/err" &&
     /usr/bin/python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print("  verify:", {k: v[k] for k in ("ort_top1", "simulated_top1", "gap_points")}); assert abs(v["gap_points"]) <= 0.1' "$WORK/verify.json"; then
    echo "ok: $name verify"
  else
    fail "$name: verify: $(tail -c 300 "$WORK/err")"
  fi
done
if [ -e "$WORK/vit_nbits.onnx" ]; then
  "$BIN" run "$VIT" --input "$WORK/x.npy" --output "$WORK/vit_nbits.sim.npy" --precision "$WORK/vit_nbits.yaml" --format int --data "$DATA" 2>"$WORK/err" &&
  node "$SRC/tests/ort_compare.js" compare "$WORK/vit_nbits.onnx" "$WORK/x.npy" "$WORK/vit_nbits.sim.npy" "$WORK/labels.npy" \
      --optimization all --max-diff 0.001 --min-agreement 0.999 &&
    echo "ok: the ViT's MatMulNBits logits match the simulation" ||
    fail "vit_nbits: ORT's logits differ from the simulation: $(tail -c 300 "$WORK/err")"
fi
# On the target: W4A32 Gemms are MatMulNBits; 2 bits on float activations
# (slow in ORT here) is refused before any file is written.
printf 'default: {weight_bits: 4, activation_bits: 32}\n' >"$WORK/lm_w4.yaml"
if "$BIN" export "$LM" --precision "$WORK/lm_w4.yaml" --target cpu-ort-int --out "$WORK/lm_w4.onnx" --json >"$WORK/lm_w4.json" 2>"$WORK/err" &&
   [ "$(/usr/bin/python3 -c 'import collections,sys,onnx; print(collections.Counter(n.op_type for n in onnx.load(sys.argv[1]).graph.node)["MatMulNBits"])' "$WORK/lm_w4.onnx")" = 2 ]; then
  echo "ok: export --target cpu-ort-int writes W4A32 Gemms as MatMulNBits"
else
  fail "W4A32 Gemm on cpu-ort-int: $(tail -c 300 "$WORK/err")"
fi
"$BIN" export "$LM" --precision "$WORK/lm_nbits.yaml" --target cpu-ort-int --out "$WORK/lm_w2.onnx" >"$WORK/out" 2>"$WORK/err"
code=$?
if [ "$code" -ne 2 ] || [ "$(wc -l <"$WORK/err")" -ne 1 ] || [ -e "$WORK/lm_w2.onnx" ] ||
   ! grep -q "cpu-ort-int runs Gemm weights on float activations at 4 bits, not 2" "$WORK/err"; then
  fail "W2A32 Gemm on cpu-ort-int: exit $code, stderr: $(cat "$WORK/err")"
else
  echo "ok: refused: $(cat "$WORK/err")"
fi
[ "$failed" -eq 0 ] || { echo "$failed failure(s)"; exit 1; }
echo "integer exports run on ORT's integer kernels and match the simulation"
