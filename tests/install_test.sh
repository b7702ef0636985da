#!/usr/bin/env bash
# The installed package: `cmake --install` into a fresh prefix puts the
# autoprec binary, the native runtime library, its headers, the CMake package
# (find_package(autoprec) -> autoprec::runtime) and the pkg-config file in
# place; examples/classify builds against it both ways (CMake and
# pkg-config + cc) and classifies Fashion-MNIST test images with a model
# packed by the installed binary, giving the class and scores that
# `autoprec run --runtime native` gives; a file that is not a packed model is
# refused with one line.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=$1
SRC=$2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PREFIX=$WORK/prefix
DATA=idx:/usr/share/datasets/fashion-mnist
failed=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

cmake --install "$BUILD" --prefix "$PREFIX" >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; exit 1; }
for f in bin/autoprec lib/libautoprec_native.a include/autoprec/native/c_api.h include/autoprec/native/model.h \
         lib/cmake/autoprec/autoprecConfig.cmake lib/pkgconfig/autoprec-runtime.pc; do
  [ -e "$PREFIX/$f" ] || fail "not installed: $f"
done
BIN=$PREFIX/bin/autoprec

cmake -S "$SRC/examples/classify" -B "$WORK/example" -G Ninja -DCMAKE_PREFIX_PATH="$PREFIX" >"$WORK/cmake.log" 2>&1 &&
  cmake --build "$WORK/example" >>"$WORK/cmake.log" 2>&1 || { fail "example with find_package: $(tail -c 600 "$WORK/cmake.log")"; }
# shellcheck disable=SC2046
cc -o "$WORK/classify_pc" "$SRC/examples/classify/classify.c" \
  $(PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig pkg-config --cflags --libs autoprec-runtime) 2>"$WORK/cc.log" ||
  fail "example with pkg-config: $(cat "$WORK/cc.log")"

printf 'default: {weight_bits: 4, activation_bits: 8}\n' >"$WORK/w4a8.yaml"
"$BIN" export "$SRC/models/small_cnn_fmnist.onnx" --precision "$WORK/w4a8.yaml" --format int --data "$DATA" --calib 128 \
  --out "$WORK/m.onnx" >/dev/null 2>"$WORK/err" || fail "export: $(cat "$WORK/err")"
"$BIN" pack "$WORK/m.onnx" --out "$WORK/m.apn" >/dev/null 2>"$WORK/err" || fail "pack: $(cat "$WORK/err")"
/usr/bin/python3 - "$WORK" <<'PY' || exit 1
import gzip, os, sys, numpy as np
out = sys.argv[1]
d = "/usr/share/datasets/fashion-mnist"
path = os.path.join(d, "t10k-images-idx3-ubyte")
raw = open(path, "rb").read() if os.path.exists(path) else gzip.open(path + ".gz").read()
img = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)[:5]
for i, im in enumerate(img):
    open(os.path.join(out, f"img{i}.pgm"), "wb").write(b"P5 28 28 255\n" + im.tobytes())
np.save(os.path.join(out, "x.npy"), img.reshape(-1, 1, 28, 28).astype(np.float32) / 255)
PY
"$BIN" run "$WORK/m.apn" --runtime native --input "$WORK/x.npy" --output "$WORK/y.npy" 2>"$WORK/err" || fail "run: $(cat "$WORK/err")"
for exe in "$WORK/example/classify" "$WORK/classify_pc"; do
  [ -x "$exe" ] || continue
  for i in 0 1 2 3 4; do
    "$exe" "$WORK/m.apn" "$WORK/img$i.pgm" >"$WORK/c$i.txt" 2>"$WORK/err" || fail "$exe img$i: $(cat "$WORK/err")"
  done
  /usr/bin/python3 - "$WORK" <<'PY' || fail "$exe: classes or scores differ from autoprec run --runtime native"
import sys, numpy as np
w = sys.argv[1]
y = np.load(f"{w}/y.npy")
for i in range(5):
    lines = open(f"{w}/c{i}.txt").read().split("\n")
    cls = int(lines[0].split()[1])
    scores = np.array([float(l.split()[1]) for l in lines[1:] if l])
    assert cls == y[i].argmax() and np.allclose(scores, y[i], atol=1e-5), (i, cls, scores, y[i])
print(f"  classify: 5 images, classes {[int(v) for v in y.argmax(1)]}, the same as run --runtime native")
PY
done
if "$WORK/example/classify" "$WORK/m.onnx" "$WORK/img0.pgm" >"$WORK/out" 2>"$WORK/err"; then
  fail "classify accepted an ONNX file"
elif [ "$(grep -c . "$WORK/err")" -ne 1 ] || ! grep -q "not a native model file" "$WORK/err"; then
  fail "classify's refusal: $(cat "$WORK/err")"
else
  echo "  refused: $(cat "$WORK/err")"
fi

if [ $failed -ne 0 ]; then echo "$failed check(s) failed"; exit 1; fi
echo "install checks passed"
