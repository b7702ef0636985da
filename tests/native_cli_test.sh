#!/usr/bin/env bash
# The native runtime from the command line, on integer exports of three zoo
# models: resnet20_fmnist at W4A8 (residual Adds), mobilenetv2_mini_fmnist
# at W3A8 with 8-bit depthwise layers, small_cnn_fmnist at W6A8 with a float
# classifier layer (MaxPool on codes, a float island). For each:
#   - `verify --runtime native` passes against the simulation on 500 test
#     images with 100% top-1 agreement,
#   - `pack` writes a .apn whose integer (non-depthwise) weights take at most
#     1.15x the layers' bits in memory over the model (packing pads K to 16
#     and N to 16: small layers pay more),
#   - `run --runtime native` gives the same array from the .onnx and the .apn,
#     and (when onnxruntime-node is installed) agrees with ONNX Runtime on the
#     export within the integer-form bounds of docs/deploy.md;
# the runner protocol served by `autoprec native-runner` (load, time with
# kernel times, run, a bad request answered and the session kept); the
# cpu-native target: `profile` measures every layer x pair on the native
# runtime, and `deploy --target cpu-native` writes model.apn, verifies on the
# native runtime and times it there;
# and what it cannot run is refused with one line, exit 2, nothing written:
# a ViT (Shape, LayerNormalization), a damaged .apn, a wrongly shaped input.
# Usage: native_cli_test.sh AUTOPREC_BINARY SOURCE_DIR NODE_MODULES
set -u
BIN=$1
SRC=$2
MODULES=${AUTOPREC_ORT_NODE_MODULES:-$3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
DIR=/usr/share/datasets/fashion-mnist
DATA=idx:$DIR
failed=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

# One-line refusal, exit 2, and no output file.
expect_refusal() {  # NAME PATTERN OUT_FILE -- command...
  local name=$1 pattern=$2 out=$3
  shift 4
  "$@" >"$WORK/out" 2>"$WORK/err"
  local rc=$?
  if [ $rc -ne 2 ]; then fail "$name: exit $rc, expected 2: $(tail -c 300 "$WORK/err")"; return; fi
  if [ "$(grep -c . "$WORK/err")" -ne 1 ]; then fail "$name: not one line: $(cat "$WORK/err")"; fi
  if ! grep -q -- "$pattern" "$WORK/err"; then fail "$name: message lacks '$pattern': $(cat "$WORK/err")"; fi
  if [ -n "$out" ] && ls "$out"* >/dev/null 2>&1; then fail "$name: wrote $out"; fi
  echo "  refused ($name): $(cat "$WORK/err")"
}

/usr/bin/python3 - "$DIR" "$WORK" <<'PY' || exit 1
import gzip, os, sys, numpy as np
d, out = sys.argv[1], sys.argv[2]
name = "t10k-images-idx3-ubyte"
path = os.path.join(d, name)
raw = open(path, "rb").read() if os.path.exists(path) else gzip.open(path + ".gz").read()
x = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28)[:200].astype(np.float32) / 255
np.save(os.path.join(out, "x.npy"), x)
np.save(os.path.join(out, "wrong.npy"), x[:, :, :27, :27])
PY

printf 'default: {weight_bits: 4, activation_bits: 8}\n' >"$WORK/resnet20.yaml"
cat >"$WORK/mobilenetv2_mini.yaml" <<'Y'
default: {weight_bits: 3, activation_bits: 8}
layers:
  "/features/features.3/block/block.3/Conv": {weight_bits: 8, activation_bits: 8}
  "/features/features.4/block/block.3/Conv": {weight_bits: 8, activation_bits: 8}
Y
cat >"$WORK/small_cnn.yaml" <<'Y'
default: {weight_bits: 6, activation_bits: 8}
layers:
  "/classifier/classifier.1/Gemm": {weight_bits: 32, activation_bits: 32}
Y

for name in resnet20 mobilenetv2_mini small_cnn; do
  model=$SRC/models/${name}_fmnist.onnx
  echo "== $name"
  if ! "$BIN" export "$model" --precision "$WORK/$name.yaml" --format int --data "$DATA" --calib 256 \
      --out "$WORK/$name.onnx" >/dev/null 2>"$WORK/err"; then
    fail "export $name: $(tail -c 300 "$WORK/err")"; continue
  fi
  if ! "$BIN" verify "$WORK/$name.onnx" --runtime native --data "$DATA" --limit 500 --json >"$WORK/v.json" 2>"$WORK/err"; then
    fail "verify $name: $(tail -c 300 "$WORK/err") $(cat "$WORK/v.json")"; continue
  fi
  /usr/bin/python3 - "$WORK/v.json" <<'PY' || fail "verify $name"
import json, sys
v = json.load(open(sys.argv[1]))
print(f"  verify: native top-1 {v['runtime_top1']:.4f}, simulated {v['simulated_top1']:.4f}, agreement {v['top1_agreement']:.4f}, "
      f"max logit diff {v['max_logit_difference']:.4f}, {v['native_weight_bytes']} weight bytes")
assert v["runtime"] == "native" and v["passed"] and v["top1_agreement"] == 1, v
assert "ort_top1" not in v
PY
  if ! "$BIN" pack "$WORK/$name.onnx" --out "$WORK/$name.apn" --json >"$WORK/p.json" 2>"$WORK/err"; then
    fail "pack $name: $(tail -c 300 "$WORK/err")"; continue
  fi
  "$BIN" inspect "$model" --precision "$WORK/$name.yaml" --json >"$WORK/i.json" 2>/dev/null
  /usr/bin/python3 - "$WORK/p.json" "$WORK/i.json" <<'PY' || fail "pack $name: weight bytes"
import json, math, sys
p, i = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
bits = {l["name"]: l for l in i["layers"] if l.get("quantizable")}
ideal = packed = 0
for layer in p["layers"]:
    ref = bits[layer["name"]]
    assert layer["weight_bits"] == (ref["weight_bits"] if ref["weight_bits"] <= 8 else 32), (layer, ref)
    if layer["kernel"] not in ("depthwise", "float"):
        ideal += math.prod(ref["weight_shape"]) * layer["weight_bits"] / 8
        packed += layer["weight_bytes"]
print(f"  pack: {len(p['layers'])} layers, {p['weight_bytes']} weight bytes in memory, file {p['file_bytes']} bytes; "
      f"integer layers {packed} bytes = {packed / ideal:.3f}x their bits")
assert packed <= 1.15 * ideal + 1024, (packed, ideal)  # 1 KiB: the paddings of a few tiny layers
PY
  "$BIN" run "$WORK/$name.onnx" --runtime native --input "$WORK/x.npy" --output "$WORK/$name.onnx.npy" 2>"$WORK/err" ||
    fail "run $name.onnx: $(tail -c 300 "$WORK/err")"
  "$BIN" run "$WORK/$name.apn" --runtime native --input "$WORK/x.npy" --output "$WORK/$name.apn.npy" 2>"$WORK/err" ||
    fail "run $name.apn: $(tail -c 300 "$WORK/err")"
  cmp -s "$WORK/$name.onnx.npy" "$WORK/$name.apn.npy" || fail "$name: the .apn and the .onnx give different outputs"
  if command -v node >/dev/null 2>&1 && [ -d "$MODULES/onnxruntime-node" ]; then
    AUTOPREC_ORT_NODE_MODULES=$MODULES node "$SRC/tests/ort_compare.js" compare "$WORK/$name.onnx" "$WORK/x.npy" \
      "$WORK/$name.apn.npy" --max-diff 0.25 --min-agreement 0.995 >"$WORK/c.json" 2>"$WORK/err" ||
      fail "$name: native vs ONNX Runtime: $(cat "$WORK/c.json") $(tail -c 300 "$WORK/err")"
    echo "  vs ONNX Runtime: $(cat "$WORK/c.json")"
  fi
done

echo "== native-runner, cpu-native"
printf '%s\n' '{"cmd":"load","model":"'"$WORK/resnet20.apn"'","profiling":true}' \
  '{"cmd":"time","inputs":{"input":{"dtype":"float32","shape":[1,1,28,28],"fill":"random","seed":1}},"warmup":2,"repeats":5}' \
  '{"cmd":"bogus"}' \
  '{"cmd":"run","inputs":{"input":{"file":"'"$WORK/x.npy"'"}},"outputs_dir":"'"$WORK/runner_out"'"}' \
  '{"cmd":"quit"}' | "$BIN" native-runner >"$WORK/runner.jsonl" 2>"$WORK/err" || fail "native-runner exited non-zero: $(cat "$WORK/err")"
/usr/bin/python3 - "$WORK/runner.jsonl" "$WORK/runner_out/logits.npy" "$WORK/resnet20.apn.npy" <<'PY' || fail "native-runner protocol"
import json, sys, numpy as np
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 5, lines
load, time, bogus, run, quit = lines
assert load["ok"] and load["inputs"][0] == {"name": "input", "type": "float32", "shape": [-1, 1, 28, 28]}, load
assert time["ok"] and len(time["times_ms"]) == 5 and 0 < time["kernel_ms"] <= max(time["times_ms"]), time
assert set(time["ops_ms"]) >= {"Conv", "Add", "Quantize"}, time["ops_ms"]
assert not bogus["ok"] and "unknown cmd" in bogus["error"], bogus
assert run["ok"] and quit["ok"], (run, quit)
assert np.array_equal(np.load(sys.argv[2]), np.load(sys.argv[3])), "runner output differs from run --runtime native"
print(f"  native-runner: kernel_ms {time['kernel_ms']:.3f}, ops {sorted(time['ops_ms'])}")
PY
SC=$SRC/models/small_cnn_fmnist.onnx
if AUTOPREC_CACHE_DIR=$WORK/cache "$BIN" profile "$SC" --target cpu-native --out "$WORK/native.csv" >/dev/null 2>"$WORK/err"; then
  /usr/bin/python3 - "$WORK/native.csv" <<'PY' || fail "profile cpu-native table"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
layers = {r["layer"] for r in rows}
pairs = {(int(r["weight_bits"]), int(r["activation_bits"])) for r in rows}
assert len(layers) == 4 and pairs == {(b, 8) for b in range(2, 9)} | {(32, 32)}, (layers, pairs)
assert all(float(r["latency_ms"]) > 0 for r in rows), rows
print(f"  profile cpu-native: {len(rows)} rows over {len(layers)} layers")
PY
else
  fail "profile cpu-native: $(tail -c 300 "$WORK/err")"
fi
if "$BIN" deploy "$SC" --target cpu-native --precision "$WORK/small_cnn.yaml" --data "$DATA" --limit 200 --repeats 10 \
    --out "$WORK/bundle" --json >"$WORK/deploy.json" 2>"$WORK/err"; then
  /usr/bin/python3 - "$WORK/deploy.json" "$WORK/bundle" <<'PY' || fail "deploy --target cpu-native"
import json, os, sys
d, out = json.load(open(sys.argv[1])), sys.argv[2]
assert d["verification"]["runtime"] == "native" and d["verification"]["passed"], d["verification"]
assert d["latency"]["runtime"] == "native" and d["latency"]["quantized_ms"] > 0 and d["latency"]["fp32_runtime"] == "onnxruntime-node", d["latency"]
assert d["format"] == "int" and os.path.getsize(os.path.join(out, "model.apn")) == d["native"]["file_bytes"], d
print(f"  deploy cpu-native: {d['latency']['quantized_ms']:.3f} ms native vs FP32 {d['latency']['fp32_ms']:.3f} ms in ORT, "
      f"{d['native']['weight_bytes']} weight bytes")
PY
else
  fail "deploy --target cpu-native: $(tail -c 300 "$WORK/err")"
fi
expect_refusal "native deploy of the qdq form" "integer form" "$WORK/bundle_qdq" -- "$BIN" deploy "$SC" --runtime native \
  --format qdq --precision "$WORK/small_cnn.yaml" --data "$DATA" --out "$WORK/bundle_qdq"

"$BIN" export "$SRC/models/vit_tiny_fmnist.onnx" --precision "$WORK/resnet20.yaml" --format int --data "$DATA" --calib 32 \
  --out "$WORK/vit.onnx" >/dev/null 2>&1 || fail "export vit"
expect_refusal "ViT" "cannot run node" "$WORK/vit.apn" -- "$BIN" pack "$WORK/vit.onnx" --out "$WORK/vit.apn"
expect_refusal "ViT verify" "cannot run node" "" -- "$BIN" verify "$WORK/vit.onnx" --runtime native --data "$DATA" --limit 10
head -c 3000 "$WORK/resnet20.apn" >"$WORK/cut.apn"
expect_refusal "truncated .apn" "truncated" "$WORK/cut.out.npy" -- "$BIN" run "$WORK/cut.apn" --runtime native --input "$WORK/x.npy" --output "$WORK/cut.out.npy"
expect_refusal "wrong input" "takes \[N, 1, 28, 28\]" "$WORK/wrong.out.npy" -- "$BIN" run "$WORK/resnet20.apn" --runtime native --input "$WORK/wrong.npy" --output "$WORK/wrong.out.npy"
expect_refusal "unknown runtime" "onnxruntime or native" "" -- "$BIN" verify "$WORK/resnet20.onnx" --runtime tvm --data "$DATA"

if [ $failed -ne 0 ]; then echo "$failed check(s) failed"; exit 1; fi
echo "native runtime CLI checks passed"
