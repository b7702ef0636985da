# Helpers of the command-line test scripts (the caller sets SRC first): a scratch directory $WORK
# (removed on exit), the pass/fail counters, and the expect_* checks. The
# caller sources this after its skip checks and ends with its own summary.
PY=${PY:-/usr/bin/python3}
MODEL=${MODEL:-$SRC/models/small_cnn_fmnist.onnx}
FMNIST=${FMNIST:-idx:/usr/share/datasets/fashion-mnist}
WORK=$(mktemp -d)
[ -n "${KEEP_WORK:-}" ] && echo "work: $WORK" || trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

# expect_error NAME SUBSTRING -- COMMAND...: exit code 2, exactly one stderr
# line starting "autoprec: error:" and containing SUBSTRING, as the last
# line; before it at most the notices of decisions made for the user
# ("validation: 30 of 150 training examples (20%)", "metric: agreement with
# FP32 (…)"), no warning; empty stdout.
expect_error() {
  local name=$1 want=$2
  shift 3
  "$@" >"$WORK/out" 2>"$WORK/err"
  local code=$?
  local errors others
  errors=$(grep -c '^autoprec: error:' "$WORK/err")
  others=$(grep -v '^autoprec: error:' "$WORK/err" |
    grep -cvE '^([a-z][a-z ]*: [0-9]+ of [0-9]+ .*\([0-9]+%\)|metric: .*|no labels: .*)$')
  if [ "$code" -ne 2 ]; then bad "$name: exit code $code, expected 2 ($(head -c 300 "$WORK/err"))"; return; fi
  if [ "$errors" -ne 1 ] || [ "$others" -ne 0 ] || ! tail -n 1 "$WORK/err" | grep -q '^autoprec: error:'; then
    bad "$name: expected one error line (after notices only): $(head -c 500 "$WORK/err")"; return
  fi
  if ! grep -q "^autoprec: error: .*$want" "$WORK/err"; then bad "$name: stderr lacks '$want': $(cat "$WORK/err")"; return; fi
  if [ -s "$WORK/out" ]; then bad "$name: wrote to stdout"; return; fi
  echo "ok: $name -> $(cat "$WORK/err")"
  ok
}

# A check that ran and failed: exit 1, one "autoprec: error:" line; stdout
# (the report, JSON with --json) is kept in $WORK/out.
expect_check_failed() {
  local name=$1 want=$2
  shift 3
  "$@" >"$WORK/out" 2>"$WORK/err"
  local code=$?
  if [ "$code" -ne 1 ]; then bad "$name: exit code $code, expected 1 ($(head -c 300 "$WORK/err"))"; return; fi
  if [ "$(grep -c '^autoprec: error:' "$WORK/err")" -ne 1 ] || ! grep -q "^autoprec: error: .*$want" "$WORK/err"; then
    bad "$name: stderr lacks one error line with '$want': $(tail -c 500 "$WORK/err")"; return
  fi
  echo "ok: $name -> $(grep '^autoprec: error:' "$WORK/err")"
  ok
}

expect_ok() {
  local name=$1
  shift
  if "$@" >"$WORK/out" 2>"$WORK/err"; then ok; echo "ok: $name"; else bad "$name: exit $? $(tail -c 500 "$WORK/err")"; fi
}

# The fixtures of the CLI tests, made in $WORK (not committed): broken and
# unusual models, npy arrays and datasets, a held-out validation set (the first
# 150 Fashion-MNIST test images) and precision configs.
make_fixtures() {
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
  printf 'default: {weight_bits: 4, activation_bits: 8}\nlayers:\n  "*classifier.3*": {weight_bits: 8}\n' >"$WORK/w4a8.yaml"
  printf 'default: {weight_bits: 3, activation_bits: 8}\n' >"$WORK/w3a8.yaml"
  printf 'default: {weight_bits: 2, activation_bits: 8}\n' >"$WORK/w2a8_plain.yaml"
}
