#!/usr/bin/env bash
# Command-line tests: help on every command, one clear error line (exit 2)
# on bad input, valid JSON with --json, and nothing half-written.
# Usage: cli_test.sh AUTOPREC_BINARY SOURCE_DIR
set -u
BIN=$1
SRC=$2
PY=/usr/bin/python3
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
MODEL=$SRC/models/small_cnn_fmnist.onnx
FMNIST=idx:/usr/share/datasets/fashion-mnist
passed=0
failed=0

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

# expect_error NAME SUBSTRING -- COMMAND...: exit code 2, exactly one stderr
# line starting "autoprec: error:" and containing SUBSTRING, empty stdout.
expect_error() {
  local name=$1 want=$2
  shift 3
  "$@" >"$WORK/out" 2>"$WORK/err"
  local code=$?
  local lines
  lines=$(wc -l <"$WORK/err")
  if [ "$code" -ne 2 ]; then bad "$name: exit code $code, expected 2 ($(head -c 300 "$WORK/err"))"; return; fi
  if [ "$lines" -ne 1 ]; then bad "$name: $lines stderr lines, expected 1: $(head -c 500 "$WORK/err")"; return; fi
  if ! grep -q "^autoprec: error: .*$want" "$WORK/err"; then bad "$name: stderr lacks '$want': $(cat "$WORK/err")"; return; fi
  if [ -s "$WORK/out" ]; then bad "$name: wrote to stdout"; return; fi
  echo "ok: $name -> $(cat "$WORK/err")"
  ok
}

expect_ok() {
  local name=$1
  shift
  if "$@" >"$WORK/out" 2>"$WORK/err"; then ok; echo "ok: $name"; else bad "$name: exit $? $(tail -c 500 "$WORK/err")"; fi
}

# Fixtures made here, not committed.
$PY - "$WORK" "$MODEL" <<'PYEOF'
import sys, numpy as np, onnx
from onnx import helper, TensorProto
work, model = sys.argv[1], sys.argv[2]
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [x], [y])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]), f"{work}/opset18.onnx")
u = helper.make_tensor_value_info("u", TensorProto.FLOAT, [None])
g = helper.make_graph([helper.make_node("Unique", ["x"], ["u"], name="uniq1"),
                       helper.make_node("Det", ["x"], ["d"], name="det1")], "g", [x], [u])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), f"{work}/unsupported.onnx")
data = open(model, "rb").read()
open(f"{work}/truncated.onnx", "wb").write(data[: len(data) // 3])
open(f"{work}/text.onnx", "w").write("not a model\n")
np.save(f"{work}/good_x.npy", np.zeros((2, 1, 28, 28), np.float32))
np.save(f"{work}/wrong_shape.npy", np.zeros((2, 3, 28, 28), np.float32))
np.save(f"{work}/wrong_dtype.npy", np.zeros((2, 1, 28, 28), np.float64))
w = helper.make_tensor("w", TensorProto.FLOAT, [2, 1, 3, 3], [0.1] * 18)
cx = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
cy = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 2])
g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "g", [cx], [cy], [w])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)]), f"{work}/opset11.onnx")
np.save(f"{work}/images10.npy", np.zeros((10, 28, 28), np.uint8))
np.save(f"{work}/images32.npy", np.zeros((10, 32, 32), np.uint8))
np.save(f"{work}/labels9.npy", np.zeros((9,), np.int64))
np.save(f"{work}/labels10.npy", np.arange(10, dtype=np.int64) % 10)
PYEOF

for cmd in "" inspect run eval quantize sensitivity export; do
  expect_ok "help $cmd" "$BIN" $cmd --help
done
expect_ok "version" "$BIN" --version

# inspect
expect_ok "inspect table" "$BIN" inspect "$MODEL"
grep -q "Conv" "$WORK/out" && ok || bad "inspect table lists no Conv"
expect_ok "inspect json" "$BIN" inspect "$MODEL" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["total"]["macs"] > 0 and len(d["layers"]) == 4, d' "$WORK/out" && ok || bad "inspect --json is not the expected JSON"

# run
expect_ok "run" "$BIN" run "$MODEL" --input "$WORK/good_x.npy" --output "$WORK/y.npy"
$PY -c 'import numpy as np,sys; y=np.load(sys.argv[1]); assert y.shape == (2, 10) and y.dtype == np.float32' "$WORK/y.npy" && ok || bad "run output shape"
expect_error "run wrong shape" "must have shape \[N, 1, 28, 28\]" -- "$BIN" run "$MODEL" --input "$WORK/wrong_shape.npy" --output "$WORK/z.npy"
expect_error "run wrong dtype" "must be FLOAT" -- "$BIN" run "$MODEL" --input "$WORK/wrong_dtype.npy" --output "$WORK/z.npy"
[ ! -e "$WORK/z.npy" ] && [ ! -e "$WORK/z.npy.tmp" ] && ok || bad "failed run left an output file"

# bad models
expect_error "missing model" "does not exist" -- "$BIN" inspect "$WORK/none.onnx"
expect_error "text file" "not an ONNX model" -- "$BIN" inspect "$WORK/text.onnx"
expect_error "truncated model" "truncated" -- "$BIN" inspect "$WORK/truncated.onnx"
expect_error "newer opset" "opset 18" -- "$BIN" inspect "$WORK/opset18.onnx"
expect_error "unsupported operators" "2 unsupported operators: Det (node det1); Unique (node uniq1)" -- "$BIN" inspect "$WORK/unsupported.onnx"

# eval and datasets
expect_ok "eval json" "$BIN" eval "$MODEL" --data "$FMNIST" --limit 500 --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert 0.7 < d["top1"] <= d["top5"] <= 1 and d["images_per_second"] > 0 and d["examples"] == 500, d' "$WORK/out" && ok || bad "eval --json fields"
expect_ok "eval npy" "$BIN" eval "$MODEL" --data "npy:$WORK/images10.npy,$WORK/labels10.npy"
expect_error "mismatched dataset" "9" -- "$BIN" eval "$MODEL" --data "npy:$WORK/images10.npy,$WORK/labels9.npy"
expect_error "missing dataset" "train-images" -- "$BIN" eval "$MODEL" --data "idx:$WORK" --split train
expect_error "unknown dataset scheme" "idx:DIR" -- "$BIN" eval "$MODEL" --data "csv:foo"

# precision configs
printf 'default: {weight_bits: 4, activation_bits: 8}\nlayers:\n  "*classifier.3*": {weight_bits: 8}\n' >"$WORK/w4a8.yaml"
printf 'default: {weight_bits: 4, activation_bits: [8\n' >"$WORK/malformed.yaml"
printf 'default: {weight_bits: 9}\n' >"$WORK/bits9.yaml"
printf 'default: {weight_bits: four}\n' >"$WORK/wrongtype.yaml"
printf 'layers:\n  "no_such_layer": {weight_bits: 4}\n' >"$WORK/unknown_layer.yaml"
printf 'layers:\n  "*nothing*": {weight_bits: 4}\n' >"$WORK/unmatched.yaml"
expect_ok "inspect --precision" "$BIN" inspect "$MODEL" --precision "$WORK/w4a8.yaml" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); t=d["total"]; l=d["layers"]
assert [x["weight_bits"] for x in l] == [4, 4, 4, 8], l
assert 0 < t["weight_memory_bits"] < t["fp32_weight_memory_bits"] / 4 and t["bops"] > 0, t' "$WORK/out" && ok || bad "inspect --precision JSON"
expect_ok "eval --precision" "$BIN" eval "$MODEL" --data "$FMNIST" --limit 300 --precision "$WORK/w4a8.yaml" --calib 64 --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["top1"] > 0.7 and d["precision"].endswith("w4a8.yaml") and 0 < d["costs"]["total"]["weight_memory_bits"] < d["costs"]["total"]["fp32_weight_memory_bits"], d' "$WORK/out" && ok || bad "eval --precision JSON"
expect_ok "quantize" "$BIN" quantize "$MODEL" --data "$FMNIST" --precision "$WORK/w4a8.yaml" --calib 64 --limit 200 --out "$WORK/q"
[ -s "$WORK/q/precision.yaml" ] && [ -s "$WORK/q/quantize.json" ] && ok || bad "quantize outputs missing"
# The calibrated config reproduces the same network without data.
expect_ok "run with calibrated config" "$BIN" run "$MODEL" --input "$WORK/good_x.npy" --output "$WORK/yq.npy" --precision "$WORK/q/precision.yaml"
expect_error "run needs calibration" "no calibrated ranges" -- "$BIN" run "$MODEL" --input "$WORK/good_x.npy" --output "$WORK/yq2.npy" --precision "$WORK/w4a8.yaml"
# export: the QDQ file of a calibrated config (4-bit weights: INT4, opset 21)
expect_ok "export" "$BIN" export "$MODEL" --precision "$WORK/q/precision.yaml" --out "$WORK/q/model.qdq.onnx" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); l=d["layers"]
assert d["opset"] == 21 and [x["weight_bits"] for x in l] == [4, 4, 4, 8] and [x["weight_type"] for x in l] == ["INT4"] * 3 + ["INT8"], d
assert 0 < d["bytes"] < d["source_bytes"] / 4, d' "$WORK/out" && ok || bad "export --json"
expect_error "export needs calibration" "no calibrated ranges" -- "$BIN" export "$MODEL" --precision "$WORK/w4a8.yaml" --out "$WORK/e.onnx"
expect_error "export into a missing directory" "does not exist" -- "$BIN" export "$MODEL" --precision "$WORK/q/precision.yaml" --out "$WORK/nodir/e.onnx"
expect_error "export of an old opset" "opset 13 or later" -- "$BIN" export "$WORK/opset11.onnx" --precision "$WORK/w4a8.yaml" --out "$WORK/e.onnx"
[ ! -e "$WORK/e.onnx" ] && ok || bad "failed export left a file"
expect_error "malformed yaml" "malformed.yaml:2" -- "$BIN" eval "$MODEL" --data "$FMNIST" --precision "$WORK/malformed.yaml"
expect_error "bits out of range" "2, 3, 4, 5, 6, 7, 8, 16, 32" -- "$BIN" eval "$MODEL" --data "$FMNIST" --precision "$WORK/bits9.yaml"
expect_error "wrong type" "must be an integer" -- "$BIN" inspect "$MODEL" --precision "$WORK/wrongtype.yaml"
expect_error "unknown layer" "unknown layer 'no_such_layer'" -- "$BIN" inspect "$MODEL" --precision "$WORK/unknown_layer.yaml"
expect_error "pattern matches nothing" "*nothing*" -- "$BIN" inspect "$MODEL" --precision "$WORK/unmatched.yaml"
expect_error "quantize bad config leaves no output" "malformed" -- "$BIN" quantize "$MODEL" --data "$FMNIST" --precision "$WORK/malformed.yaml" --out "$WORK/q_bad"
[ ! -e "$WORK/q_bad" ] && ok || bad "failed quantize created its output directory"
expect_error "calibration data of the wrong shape" "shape" -- "$BIN" quantize "$MODEL" --data "npy:$WORK/images32.npy,$WORK/labels10.npy" --precision "$WORK/w4a8.yaml" --out "$WORK/q_shape"
[ ! -e "$WORK/q_shape" ] && ok || bad "failed quantize created its output directory"
expect_ok "sensitivity" "$BIN" sensitivity "$MODEL" --data "$FMNIST" --bits 2,8 --validation 200 --calib 64 --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["rows"]) == 4 * 2 * 2 and 0.7 < d["fp32_top1"] <= 1, d.keys()' "$WORK/out" && ok || bad "sensitivity JSON"
expect_error "sensitivity bad bits" "2 to 8" -- "$BIN" sensitivity "$MODEL" --data "$FMNIST" --bits 1,8

# usage errors come from the parser: non-zero exit, no crash
"$BIN" eval "$MODEL" >/dev/null 2>&1; code=$?
[ "$code" -ne 0 ] && [ "$code" -lt 128 ] && ok || bad "missing --data exit code $code"

echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
