#!/usr/bin/env bash
# Command-line tests of precision configs, quantize, export, sensitivity: one
# clear error line (exit 2) on bad input, valid JSON with --json, and nothing
# half-written. Runs alone (ctest cli_quant); its fixtures come from
# make_fixtures in test_lib.sh.
# Usage: cli_quant_test.sh AUTOPREC_BINARY SOURCE_DIR
set -u
BIN=$1
SRC=$2
source "$(dirname "$0")/test_lib.sh"
make_fixtures

# precision configs
printf 'default: {weight_bits: 4, activation_bits: 8}\nlayers:\n  "*classifier.3*": {weight_bits: 8}\n' >"$WORK/w4a8.yaml"
printf 'default: {weight_bits: 4, activation_bits: [8\n' >"$WORK/malformed.yaml"
printf 'default: {weight_bits: 9}\n' >"$WORK/bits9.yaml"
printf 'default: {weight_bits: 2, activation_bits: 8}\n' >"$WORK/w2a8_plain.yaml"
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
expect_error "export of an export" "QDQ file autoprec exported .*use the float model it came from" -- "$BIN" export "$WORK/q/model.qdq.onnx" --precision "$WORK/q/precision.yaml" --out "$WORK/e.onnx"
expect_error "export with an unknown weight type" "--weight-type must be int8 or uint8" -- "$BIN" export "$MODEL" --precision "$WORK/q/precision.yaml" --weight-type int4 --out "$WORK/e.onnx"
expect_error "export of 9-bit weights" "2, 3, 4, 5, 6, 7, 8, 16, 32" -- "$BIN" export "$MODEL" --precision "$WORK/bits9.yaml" --data "$FMNIST" --out "$WORK/e.onnx"
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

echo "cli_quant: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
