#!/usr/bin/env bash
# Command-line tests: help on every command, one clear error line (exit 2)
# on bad input, valid JSON with --json, and nothing half-written.
# Usage: cli_test.sh AUTOPREC_BINARY SOURCE_DIR
set -u
BIN=$1
SRC=$2
PY=/usr/bin/python3
MODEL=$SRC/models/small_cnn_fmnist.onnx
FMNIST=idx:/usr/share/datasets/fashion-mnist
# $WORK, ok, bad, expect_error, expect_check_failed, expect_ok.
source "$(dirname "$0")/test_lib.sh"

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
# A held-out validation set: the first 150 Fashion-MNIST test images, as npy.
$PY - "${FMNIST#idx:}" "$WORK" <<'PYEOF'
import gzip, sys, numpy as np
src, work = sys.argv[1], sys.argv[2]
images = np.frombuffer(gzip.open(f"{src}/t10k-images-idx3-ubyte.gz").read()[16:], np.uint8).reshape(-1, 28, 28)
labels = np.frombuffer(gzip.open(f"{src}/t10k-labels-idx1-ubyte.gz").read()[8:], np.uint8).astype(np.int64)
np.save(f"{work}/val_x.npy", images[:150].copy())
np.save(f"{work}/val_y.npy", labels[:150].copy())
PYEOF

for cmd in "" inspect run eval quantize sensitivity finetune targets cost profile search export verify deploy report; do
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

# finetune: short run with the teacher cache; the written model and config
# reproduce the reported accuracy through `eval`.
printf 'default: {weight_bits: 3, activation_bits: 8}\n' >"$WORK/w3a8.yaml"
expect_ok "finetune steps" "$BIN" finetune "$MODEL" --data "$FMNIST" --precision "$WORK/w3a8.yaml" --steps 30 --batch-size 64 --validation 200 --calib 64 --limit 300 --out "$WORK/ft" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["mode"] == "steps" and d["training"]["steps"] == 30 and d["options"]["teacher_cache"] and d["seed"] == 0, d
assert d["after"]["test_top1"] > 0.5 and len(d["epochs"]) == 1, d' "$WORK/out" && ok || bad "finetune --json report"
[ -s "$WORK/ft/model.onnx" ] && [ -s "$WORK/ft/precision.yaml" ] && [ -s "$WORK/ft/finetune.json" ] && ok || bad "finetune outputs missing"
cp "$WORK/out" "$WORK/ft_report.json"
expect_ok "eval the fine-tuned model" "$BIN" eval "$WORK/ft/model.onnx" --precision "$WORK/ft/precision.yaml" --data "$FMNIST" --limit 300 --json
$PY -c 'import json,sys; e=json.load(open(sys.argv[1])); r=json.load(open(sys.argv[2])); assert abs(e["top1"] - r["after"]["test_top1"]) < 1e-9, (e["top1"], r["after"])' "$WORK/out" "$WORK/ft_report.json" && ok || bad "fine-tuned model does not reproduce its accuracy"
expect_ok "finetune held-out validation" "$BIN" finetune "$MODEL" --data "$FMNIST" --precision "$WORK/w3a8.yaml" --steps 5 --batch-size 32 --validation 100 --validation-data "npy:$WORK/val_x.npy,$WORK/val_y.npy" --calib 64 --limit 100 --out "$WORK/ft_val" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); x=d["examples"]
assert x["validation"] == 100 and x["train"] == 160 and "val_x.npy" in d["validation_source"], d' "$WORK/out" && ok || bad "finetune --validation-data"
expect_error "finetune validation data of another shape" "validation data" -- "$BIN" finetune "$MODEL" --data "$FMNIST" --precision "$WORK/w3a8.yaml" --steps 5 --validation-data "npy:$WORK/images32.npy,$WORK/labels10.npy" --calib 64 --out "$WORK/ft_val_bad" --json
expect_ok "finetune epochs" "$BIN" finetune "$MODEL" --data "$FMNIST" --precision "$WORK/w3a8.yaml" --epochs 2 --subset 256 --batch-size 64 --validation 200 --calib 64 --limit 200 --out "$WORK/ft_epochs" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert [e["epoch"] for e in d["epochs"]] == [1, 2] and all(0 < e["validation_top1"] <= 1 for e in d["epochs"]) and d["after"]["best_epoch"] in (1, 2), d' "$WORK/out" && ok || bad "finetune epochs report"
expect_error "finetune diverges" "diverged at step" -- "$BIN" finetune "$MODEL" --data "$FMNIST" --precision "$WORK/w3a8.yaml" --steps 20 --lr 1e30 --schedule constant --weight-scales refresh --validation 100 --calib 64 --limit 100 --out "$WORK/ft_nan" --json
[ -s "$WORK/ft_nan/model.onnx" ] && ok || bad "diverged finetune kept no checkpoint"
expect_error "finetune needs steps or epochs" "exactly one of --steps" -- "$BIN" finetune "$MODEL" --data "$FMNIST" --precision "$WORK/w3a8.yaml" --out "$WORK/ft_none"
expect_error "finetune unwritable output" "output directory" -- "$BIN" finetune "$MODEL" --data "$FMNIST" --precision "$WORK/w3a8.yaml" --steps 5 --out /proc/autoprec_out
expect_error "finetune unknown optimizer" "unknown optimizer" -- "$BIN" finetune "$MODEL" --data "$FMNIST" --precision "$WORK/w3a8.yaml" --steps 5 --optimizer adam --out "$WORK/ft_opt"
[ ! -e "$WORK/ft_opt" ] && ok || bad "finetune with a bad option created its output directory"
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
expect_error "cost unknown target" "built-in targets: bismo, bitfusion, cpu-ort, cpu-ort-int, generic" -- "$BIN" cost "$MODEL" --precision "$WORK/w4a8.yaml" --target tpu
printf 'name: mine\ncost_model:\n  type: bitfusion\n  bricks: zero\n' >"$WORK/bad_target.yaml"
expect_error "cost bad profile" "bad_target.yaml:4: cost_model.bricks must be a positive integer" -- "$BIN" cost "$MODEL" --precision "$WORK/w4a8.yaml" --target "$WORK/bad_target.yaml"
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

# search: a tiny run per agent on the small model, resume after completion and
# after kill -9, and errors before any training.
cat >"$WORK/run.yaml" <<YAML
model: $MODEL
data: $FMNIST
target: bitfusion
constraints: ["weight_memory<=0.2*fp32"]
episodes: 3
validation: 200
calibration: 64
sensitivity_examples: 100
weight_bits: [2, 4, 8]
activation_bits: [4, 8]
staged: {examples: 100}
short_finetune: {steps: 3, batch_size: 32}
final_finetune: {epochs: 0}
ddpg: {warmup_episodes: 1, hidden: 16, batch_size: 4}
deploy: false
YAML
# The ddpg search ends with its deployment (the default) when ONNX Runtime is installed.
HAVE_ORT=0
[ -d "$SRC/tools/node_modules/onnxruntime-node" ] && HAVE_ORT=1
if [ $HAVE_ORT = 1 ]; then sed '/^deploy:/d' "$WORK/run.yaml" >"$WORK/run_deploy.yaml"; else cp "$WORK/run.yaml" "$WORK/run_deploy.yaml"; fi
expect_ok "search ddpg" "$BIN" search --config "$WORK/run_deploy.yaml" --out "$WORK/s_ddpg" --json
$PY - "$WORK/out" <<'PY' && ok || bad "search result.json"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["agent"] == "ddpg" and d["feasible"] and d["evaluations"] >= 1, d
assert all(c["holds"] for c in d["constraints"]), d["constraints"]
assert d["final"]["costs"]["weight_bits"] <= 0.2 * d["final"]["costs"]["fp32_weight_bits"], d["final"]["costs"]
assert 0 < d["final"]["test_top1"] <= 1 and 0 < d["fp32"]["test_top1"] <= 1, d
assert {l["weight_bits"] for l in d["final"]["layers"]} <= {2, 4, 8}, d["final"]["layers"]
PY
for f in best.yaml model.onnx result.json pareto.json journal.sqlite sensitivity.json; do
  [ -s "$WORK/s_ddpg/$f" ] && ok || bad "search output $f missing"
done
cp "$WORK/out" "$WORK/s_ddpg_result.json"
if [ $HAVE_ORT = 1 ]; then
  $PY - "$WORK/out" "$WORK/s_ddpg" <<'PY' && ok || bad "search deployment"
import json, os, sys
d, out = json.load(open(sys.argv[1])), sys.argv[2]
assert d["deploy"]["verified"] and d["deploy"]["bundle"] == out + "/bundle", d.get("deploy")
assert json.load(open(out + "/result.json"))["deploy"] == d["deploy"]
b = json.load(open(out + "/bundle/deploy.json"))
assert b["verification"]["passed"] and b["verification"]["examples"] == 10000, b["verification"]
assert abs(b["verification"]["simulated_top1"] - d["final"]["test_top1"]) < 1e-9, (b["verification"], d["final"])
for f in ("model.onnx", "precision.yaml"):
    assert os.path.getsize(out + "/bundle/" + f) > 0
PY
  # On a measured target the deployed file is timed whole and checked against the latency bound.
  sed -e 's|^target: .*|target: cpu-ort|' -e 's|^constraints: .*|constraints: ["weight_memory<=0.3*fp32", "latency<=100*int8"]|' \
    "$WORK/run_deploy.yaml" >"$WORK/run_ort.yaml"
  AUTOPREC_CACHE_DIR="$WORK/cache" expect_ok "search on cpu-ort" "$BIN" search --config "$WORK/run_ort.yaml" --agent uniform --out "$WORK/s_ort" --json
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); t=d["deploy"]["target_latency"]
assert d["target"] == "cpu-ort" and t["target"] == "cpu-ort" and t["measured_ms"] > 0 and t["timing"] == "kernels", t
c=t["constraints"]; assert len(c) == 1 and c[0]["holds"] and c[0]["bound_ms"] > c[0]["per_layer_sum_ms"] > 0, c' "$WORK/out" && ok || bad "search on cpu-ort checks the deployed latency"
else
  echo "skip: search deployment (tools/node_modules missing; run scripts/setup)"
fi
expect_ok "eval the search result" "$BIN" eval "$WORK/s_ddpg/model.onnx" --precision "$WORK/s_ddpg/best.yaml" --data "$FMNIST" --json
$PY -c 'import json,sys; e=json.load(open(sys.argv[1])); r=json.load(open(sys.argv[2])); assert abs(e["top1"] - r["final"]["test_top1"]) < 1e-9, (e["top1"], r["final"])' "$WORK/out" "$WORK/s_ddpg_result.json" && ok || bad "best.yaml + model.onnx do not reproduce the final accuracy"
expect_ok "search resume of a finished run" "$BIN" search --resume "$WORK/s_ddpg" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["evaluations_this_run"] == 0, d' "$WORK/out" && ok || bad "resume re-evaluated configurations"
for agent in ilp greedy uniform random; do
  expect_ok "search $agent" "$BIN" search --config "$WORK/run.yaml" --agent "$agent" --episodes 2 --out "$WORK/s_$agent" --json
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["agent"] == sys.argv[2] and d["feasible"], d' "$WORK/out" "$agent" && ok || bad "search $agent result"
done
# A held-out validation set: every candidate is scored on it, the training split stays whole.
{ cat "$WORK/run.yaml"; echo "validation_data: npy:$WORK/val_x.npy,$WORK/val_y.npy"; } >"$WORK/run_val.yaml"
expect_ok "search with validation_data" "$BIN" search --config "$WORK/run_val.yaml" --agent uniform --out "$WORK/s_val" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); v=d["validation"]
assert v["held_out"] and v["examples"] == 150 and "val_x.npy" in v["source"], v' "$WORK/out" && ok || bad "search validation_data"
# ddpg's warm start: its first evaluations are the ILP and greedy solutions
$PY - "$WORK/s_ddpg/journal.sqlite" "$WORK/s_ilp/journal.sqlite" "$WORK/s_greedy/journal.sqlite" <<'PY' && ok || bad "ddpg warm start"
import sqlite3, sys
first = lambda path, n: [r[0] for r in sqlite3.connect(path).execute("select config_key from evaluations order by id limit ?", (n,))]
ddpg, ilp, greedy = first(sys.argv[1], 2), first(sys.argv[2], 1)[0], first(sys.argv[3], 1)[0]
assert ddpg[0] == ilp, (ddpg, ilp)
assert greedy == ilp or ddpg[1] == greedy, (ddpg, greedy)
PY
# kill -9 in the middle, then --resume finishes without repeating an evaluation
"$BIN" search --config "$WORK/run.yaml" --episodes 6 --out "$WORK/s_kill" --json >/dev/null 2>&1 &
pid=$!
for _ in $(seq 600); do
  n=$($PY -c 'import os,sqlite3,sys
try: print(sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True).execute("select count(*) from evaluations").fetchone()[0] if os.path.exists(sys.argv[1]) else 0)
except Exception: print(0)' "$WORK/s_kill/journal.sqlite" 2>/dev/null)
  [ "${n:-0}" -ge 2 ] && break
  sleep 0.2
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
expect_ok "search resume after kill -9" "$BIN" search --resume "$WORK/s_kill" --json
$PY - "$WORK/out" "$WORK/s_kill/journal.sqlite" <<'PY' && ok || bad "resume after kill"
import json, sqlite3, sys
d = json.load(open(sys.argv[1]))
db = sqlite3.connect(sys.argv[2])
keys = [r[0] for r in db.execute("select config_key from evaluations")]
assert len(keys) == len(set(keys)) and d["evaluations"] == len(keys), (d["evaluations"], keys)
assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
PY
expect_error "search budget below the smallest configuration" "infeasible: the smallest possible weight_memory" -- "$BIN" search --config "$WORK/run.yaml" --constraint "weight_memory<=1KiB" --out "$WORK/s_tiny" --json
[ ! -e "$WORK/s_tiny/journal.sqlite" ] && ok || bad "infeasible search started a journal"
expect_error "search unknown agent" "unknown agent 'ppo'" -- "$BIN" search --config "$WORK/run.yaml" --agent ppo --out "$WORK/s_bad"
printf 'model: m.onnx\nepisodez: 3\n' >"$WORK/bad_run.yaml"
expect_error "search unknown key" "bad_run.yaml:2: unknown key 'episodez'" -- "$BIN" search --config "$WORK/bad_run.yaml"
printf 'model: m.onnx\nvalidation_split: dev\n' >"$WORK/bad_split.yaml"
expect_error "search bad validation split" "bad_split.yaml:2: validation_split must be train or test" -- "$BIN" search --config "$WORK/bad_split.yaml"
expect_error "search latency on generic" "latency" -- "$BIN" search --config "$WORK/run.yaml" --target generic --constraint "latency<=1ms" --out "$WORK/s_lat"
expect_error "search bounded twice" "weight_memory is bounded twice" -- "$BIN" search --config "$WORK/run.yaml" --constraint "weight_memory<=0.3*fp32" --constraint "weight_memory<=0.2*fp32" --out "$WORK/s_twice"
cat >"$WORK/conv_only.yaml" <<YAML
name: conv-only
precisions:
  default: {weight_bits: [4, 8], activation_bits: [8]}
  Gemm: {weight_bits: [16], activation_bits: [16]}
cost_model: {type: generic}
YAML
expect_error "search target without the model's Gemm" "supports no (weight, activation) bit pair for layer" -- "$BIN" search --config "$WORK/run.yaml" --target "$WORK/conv_only.yaml" --out "$WORK/s_conv_only"
[ ! -e "$WORK/s_twice" ] && [ ! -e "$WORK/s_conv_only" ] && ok || bad "a refused search left an output directory"
expect_error "search on a table lacking a choice" "restrict the search to the bit-widths the table has" -- "$BIN" search --config "$WORK/run.yaml" --target "$WORK/lut.yaml" --constraint "weight_memory<=40KiB" --out "$WORK/s_lut"
expect_error "search existing run" "already holds a search" -- "$BIN" search --config "$WORK/run.yaml" --out "$WORK/s_ddpg" --json

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

# usage errors come from the parser: non-zero exit, no crash
"$BIN" eval "$MODEL" >/dev/null 2>&1; code=$?
[ "$code" -ne 0 ] && [ "$code" -lt 128 ] && ok || bad "missing --data exit code $code"

echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
