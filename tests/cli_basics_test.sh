#!/usr/bin/env bash
# Command-line tests of help on every command, usage errors, inspect, run, bad
# models, eval and datasets: one clear error line (exit 2) on bad input, valid
# JSON with --json, and nothing half-written. Runs alone (ctest cli_basics);
# its fixtures come from make_fixtures in test_lib.sh.
# Usage: cli_basics_test.sh AUTOPREC_BINARY SOURCE_DIR
set -u
BIN=$1
SRC=$2
source "$(dirname "$0")/test_lib.sh"
make_fixtures

for cmd in "" inspect run eval quantize sensitivity finetune targets cost profile search export verify deploy report schema; do
  expect_ok "help $cmd" "$BIN" $cmd --help
done
expect_ok "version" "$BIN" --version
expect_error "unknown flag" "not expected: --jsn (see autoprec inspect --help)" -- "$BIN" inspect "$MODEL" --jsn
expect_error "unknown command" "unknown command 'frobnicate'; commands: inspect" -- "$BIN" frobnicate
expect_error "non-positive batch" "--batch: must be positive, got 0" -- "$BIN" eval "$MODEL" --data "$FMNIST" --batch 0
expect_ok "help command" "$BIN" help eval
grep -q "Usage: autoprec eval" "$WORK/out" && ok || bad "autoprec help eval prints the eval usage"
expect_ok "global flags after the command" "$BIN" eval "$MODEL" --data "$FMNIST" --limit 20 --threads 1 -v

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

# usage errors come from the parser: non-zero exit, no crash
"$BIN" eval "$MODEL" >/dev/null 2>&1; code=$?
[ "$code" -ne 0 ] && [ "$code" -lt 128 ] && ok || bad "missing --data exit code $code"

echo "cli_basics: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
