#!/usr/bin/env bash
# Command-line tests of verify and deploy in ONNX Runtime: one clear error
# line (exit 2) on bad input, valid JSON with --json, and nothing half-
# written. Runs alone (ctest cli_deploy); its fixtures come from make_fixtures
# in test_lib.sh.
# Usage: cli_deploy_test.sh AUTOPREC_BINARY SOURCE_DIR
set -u
BIN=$1
SRC=$2
source "$(dirname "$0")/test_lib.sh"
make_fixtures

# verify and deploy run the export in ONNX Runtime
if [ -d "$SRC/tools/node_modules/onnxruntime-node" ]; then
  expect_ok "deploy" "$BIN" deploy "$MODEL" --data "$FMNIST" --precision "$WORK/w4a8.yaml" --calib 64 --limit 300 --repeats 5 --out "$WORK/bundle" --json
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); v=d["verification"]
assert v["passed"] and v["examples"] == 300 and v["gap_points"] <= 0.1 and v["top1_agreement"] > 0.95, v
assert d["size"]["onnx_bytes"] < d["size"]["fp32_onnx_bytes"] and d["latency"]["quantized_ms"] > 0 and d["latency"]["fp32_ms"] > 0, d' "$WORK/out" && ok || bad "deploy report"
  [ -s "$WORK/bundle/model.onnx" ] && [ -s "$WORK/bundle/precision.yaml" ] && [ -s "$WORK/bundle/deploy.json" ] && ok || bad "deploy bundle files"
  expect_ok "verify" "$BIN" verify "$WORK/bundle/model.onnx" --data "$FMNIST" --limit 200 --json
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["passed"] and d["examples"] == 200, d' "$WORK/out" && ok || bad "verify report"
  # Simulating another configuration than the file holds: the check fails, exit 1, the report still printed.
  expect_ok "quantize at 2 bits" "$BIN" quantize "$MODEL" --data "$FMNIST" --precision "$WORK/w2a8_plain.yaml" --calib 64 --limit 100 --out "$WORK/q2"
  expect_check_failed "verify exits 1 beyond the tolerance" "verification failed" -- "$BIN" verify "$WORK/bundle/model.onnx" --data "$FMNIST" --limit 200 --precision "$WORK/q2/precision.yaml" --json
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert not d["passed"] and d["gap_points"] > d["tolerance_points"] == 0.5, d' "$WORK/out" && ok || bad "verify --json report of a failed verification"
  expect_error "verify negative tolerance" "must be zero or more" -- "$BIN" verify "$WORK/bundle/model.onnx" --data "$FMNIST" --tolerance -1
else
  echo "skip: verify and deploy (tools/node_modules missing; run scripts/setup)"
fi

echo "cli_deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
