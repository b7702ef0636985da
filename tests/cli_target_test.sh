#!/usr/bin/env bash
# Command-line tests of targets, cost, profile, lut tables and measured
# targets: one clear error line (exit 2) on bad input, valid JSON with --json,
# and nothing half-written. Runs alone (ctest cli_target); its fixtures come
# from make_fixtures in test_lib.sh.
# Usage: cli_target_test.sh AUTOPREC_BINARY SOURCE_DIR
set -u
BIN=$1
SRC=$2
source "$(dirname "$0")/test_lib.sh"
make_fixtures

# targets, cost, profile
expect_ok "targets" "$BIN" targets
grep -q "bitfusion" "$WORK/out" && ok || bad "targets lists no bitfusion"
expect_ok "targets json" "$BIN" targets --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); n={t["name"] for t in d["targets"]}; assert {"generic","bitfusion","bismo","cpu-ort"} <= n, n' "$WORK/out" && ok || bad "targets --json"
expect_ok "cost bitfusion" "$BIN" cost "$MODEL" --precision "$WORK/w4a8.yaml" --target bitfusion
expect_check_failed "cost bitfusion json" "constraint 'bops<=1K' fails" -- "$BIN" cost "$MODEL" --precision "$WORK/w4a8.yaml" --target bitfusion --json \
  --constraint "weight_memory<=0.25*fp32" --constraint "latency<=1*int8" --constraint "bops<=1K"
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); t=d["total"]; l=d["layers"]
assert t["weight_bits"] > 0 and t["bops"] > 0 and t["latency_ms"] > 0 and t["energy_mj"] > 0, t
assert len(l) == 4 and abs(sum(x["latency_ms"] for x in l) - t["latency_ms"]) < 1e-9, l
c=d["constraints"]; assert [x["holds"] for x in c] == [True, True, False] and c[2]["slack"] < 0, c' "$WORK/out" && ok || bad "cost --json"
expect_ok "cost generic json" "$BIN" cost "$MODEL" --precision "$WORK/w4a8.yaml" --target generic --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); t=d["total"]; assert "latency_ms" not in t and "energy_mj" not in t and t["bops"] > 0, t' "$WORK/out" && ok || bad "cost generic has no latency"
expect_error "cost latency on generic" "no latency model" -- "$BIN" cost "$MODEL" --precision "$WORK/w4a8.yaml" --target generic --constraint "latency<=1ms"
expect_error "cost bad constraint unit" "unknown unit 'kg'" -- "$BIN" cost "$MODEL" --precision "$WORK/w4a8.yaml" --target bismo --constraint "latency<=1kg"
expect_error "cost unknown target" "built-in targets: bismo, bitfusion, cpu-native, cpu-ort, cpu-ort-int, generic" -- "$BIN" cost "$MODEL" --precision "$WORK/w4a8.yaml" --target tpu
printf 'name: mine\ncost_model:\n  type: bitfusion\n  bricks: zero\n' >"$WORK/bad_target.yaml"
expect_error "cost bad profile" "bad_target.yaml:4: cost_model.bricks must be an integer, got 'zero'" -- "$BIN" cost "$MODEL" --precision "$WORK/w4a8.yaml" --target "$WORK/bad_target.yaml"
expect_ok "profile bismo" "$BIN" profile "$MODEL" --target bismo --out "$WORK/bismo.csv" --weight-bits 2,4,8 --activation-bits 8
[ "$(wc -l <"$WORK/bismo.csv")" -eq 13 ] && ok || bad "profile bismo table has $(wc -l <"$WORK/bismo.csv") lines, expected 13"
# The table is a lut profile.
printf 'name: measured\ncost_model: {type: lut, table: bismo.csv}\n' >"$WORK/lut.yaml"
expect_ok "cost with a lut profile" "$BIN" cost "$MODEL" --precision "$WORK/w4a8.yaml" --target "$WORK/lut.yaml" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); t=d["total"]; assert t["latency_ms"] > 0 and t["energy_mj"] > 0, t' "$WORK/out" && ok || bad "lut cost"
expect_error "lut missing pair" "no entry for layer" -- "$BIN" cost "$MODEL" --precision "$WORK/w3a8.yaml" --target "$WORK/lut.yaml"
# Relative bounds on a table without FP32 rows: weight memory needs no table, latency names what is missing.
expect_ok "lut with a relative weight bound" "$BIN" cost "$MODEL" --precision "$WORK/w4a8.yaml" --target "$WORK/lut.yaml" --constraint "weight_memory<=0.5*fp32"
expect_error "lut latency relative to fp32" "at W32A32 in cost table .*bismo.csv; give the bound in ms instead" -- "$BIN" cost "$MODEL" --precision "$WORK/w4a8.yaml" --target "$WORK/lut.yaml" --constraint "latency<=0.5*fp32"
expect_error "profile generic" "no latency or energy model" -- "$BIN" profile "$MODEL" --target generic --out "$WORK/g.csv"
if [ -d "$SRC/tools/node_modules/onnxruntime-node" ]; then
  expect_ok "profile cpu-ort" "$BIN" profile "$MODEL" --target cpu-ort --out "$WORK/ort.csv" --weight-bits 8,32 --activation-bits 8,32 --json
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["rows"] == 16 and d["measured"] > 0, d' "$WORK/out" && ok || bad "profile cpu-ort json"
  # W8A8 comes from the cache; W3 and W4 share the INT4 form, measured once per layer.
  expect_ok "profile cpu-ort resumes" "$BIN" profile "$MODEL" --target cpu-ort --out "$WORK/ort.csv" --weight-bits 3,4,8 --activation-bits 8 --json
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["rows"] == 12 and d["measured"] == 4 and d["from_cache"] == 8, d' "$WORK/out" && ok || bad "profile cpu-ort cache"
  expect_ok "profile cpu-ort all cached" "$BIN" profile "$MODEL" --target cpu-ort --out "$WORK/ort.csv" --weight-bits 3,4,8 --activation-bits 8 --json
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["measured"] == 0 and d["from_cache"] == 12, d' "$WORK/out" && ok || bad "profile cpu-ort rerun measures nothing"
  expect_ok "cost cpu-ort table" "$BIN" cost "$MODEL" --precision "$WORK/w4a8.yaml" --target cpu-ort --table "$WORK/ort.csv" --json
  # Without a table: per-layer medians from the cache, and the whole QDQ export timed in ORT.
  expect_ok "cost cpu-ort whole model" "$BIN" cost "$MODEL" --precision "$WORK/w4a8.yaml" --target cpu-ort --cache "$WORK/ort.csv.cache.csv" --json
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); t=d["total"]; w=d["whole_model"]
assert t["latency_ms"] > 0 and t["model_latency_ms"] == w["quantized"]["latency_ms"] > 0, d
assert w["fp32"]["latency_ms"] > 0 and w["quantized"]["wall_ms"] > 0 and w["opset"] == 21 and w["timing"] == "kernels", w
assert w["activation_ranges"] == "synthetic input", w' "$WORK/out" && ok || bad "cost cpu-ort whole model json"
  expect_ok "cost cpu-ort whole model calibrated" "$BIN" cost "$MODEL" --precision "$WORK/w4a8.yaml" --target cpu-ort --cache "$WORK/ort.csv.cache.csv" --data "$FMNIST" --calib 32 --json
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["whole_model"]["activation_ranges"] == "calibrated on --data", d["whole_model"]' "$WORK/out" && ok || bad "cost cpu-ort calibrated export"
  expect_ok "cost cpu-ort layers only" "$BIN" cost "$MODEL" --precision "$WORK/w4a8.yaml" --target cpu-ort --cache "$WORK/ort.csv.cache.csv" --layers-only --json
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "whole_model" not in d and "model_latency_ms" not in d["total"], d' "$WORK/out" && ok || bad "cost --layers-only"
  expect_ok "cost cpu-ort text" "$BIN" cost "$MODEL" --precision "$WORK/w4a8.yaml" --target cpu-ort --cache "$WORK/ort.csv.cache.csv"
  grep -q "whole model measured on cpu-ort" "$WORK/out" && ok || bad "cost text names the whole-model latency"
  # A model export refuses (opset 11) still gets its per-layer costs, with a warning.
  printf 'default: {weight_bits: 4, activation_bits: 8}\n' >"$WORK/uniform_w4a8.yaml"
  expect_ok "cost cpu-ort unexportable model" "$BIN" cost "$WORK/opset11.onnx" --precision "$WORK/uniform_w4a8.yaml" --target cpu-ort --cache "$WORK/ort.csv.cache.csv" --json
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "whole_model" not in d and d["total"]["latency_ms"] > 0, d' "$WORK/out" && ok || bad "cost of an unexportable model"
  grep -q "not timed" "$WORK/err" && ok || bad "cost of an unexportable model does not say why the whole model is not timed"
  printf 'name: broken\ncost_model: {type: command, command: [/bin/sh, -c, "read x; echo not json"]}\n' >"$WORK/broken.yaml"
  expect_error "profile garbage runner" "printed something other than a JSON response" -- "$BIN" profile "$MODEL" --target "$WORK/broken.yaml" --out "$WORK/b.csv" --json
else
  echo "skip: cpu-ort profile (tools/node_modules missing; run scripts/setup)"
fi

echo "cli_target: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
