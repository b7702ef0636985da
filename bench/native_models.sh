#!/usr/bin/env bash
# Evidence for the native runtime (docs/native.md, "Whole models"): zoo
# models exported in the integer form at W8A8, W4A8, W2A8 and a mixed
# configuration, packed (autoprec pack) and timed at batch 1, one thread, on
# the native runtime (build/bench/native_models), next to the same integer
# export and the FP32 model in ONNX Runtime (tools/ort_runner.js), in one run,
# with 1 and 2 threads (THREADS) for all three.
# Each time is the median of REPEATS runs after 20 warm-up runs; the three
# runtimes are timed in turn ROUNDS times and the table gives the median over
# rounds. Peak RSS: the whole process (native_models; node with ONNX Runtime).
# Weight bytes: the native layers' packed weights in memory, against the
# layers' bits (autoprec inspect).
# Usage: BIN=build/autoprec [THREADS="1 2"] bench/native_models.sh [MODEL_NAME ...]   (default: resnet20 mobilenetv2_mini)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/autoprec}
NATIVE=${NATIVE:-build/bench/native_models}
DATA=idx:/usr/share/datasets/fashion-mnist
REPEATS=${REPEATS:-200}
ROUNDS=${ROUNDS:-3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet20 mobilenetv2_mini)
for b in 8 4 2; do printf 'default: {weight_bits: %d, activation_bits: 8}\n' $b >"$TMP/W${b}A8.yaml"; done

THREADS=${THREADS:-1 2}
ort() {  # FILE THREADS -> "median_ms peak_rss_kib"
  printf '{"cmd":"load","model":"%s","threads":%d}\n{"cmd":"time","inputs":{"input":{"dtype":"float32","shape":[1,1,28,28],"fill":"random","seed":1}},"warmup":20,"repeats":%d}\n{"cmd":"quit"}\n' \
    "$1" "$2" "$REPEATS" | /usr/bin/time -f '%M' -o "$TMP/rss" node tools/ort_runner.js 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys
for line in sys.stdin:
    r = json.loads(line)
    if "median_ms" in r: print("%.4f" % r["median_ms"], end=" ")'
  cat "$TMP/rss"
}
native() {  # FILE THREADS -> "median_ms peak_rss_kib weight_bytes"
  "$NATIVE" "$1" "$REPEATS" 20 - "$2" | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.4f %d %d" % (r["median_ms"], r["peak_rss_kib"], r["weight_bytes"]))'
}
median() { /usr/bin/python3 -c 'import sys,statistics; print("%.3f" % statistics.median(float(v) for v in sys.argv[1:]))' "$@"; }

echo "ORT: onnxruntime-node $(node -p 'require("./tools/node_modules/onnxruntime-node/package.json").version'); CPU: $("$BIN" targets | sed -n 's/^this CPU: //p'); batch 1; repeats $REPEATS, rounds $ROUNDS"
echo
echo "| model | config | threads | native ms | ORT int ms | ORT FP32 ms | native vs FP32 | native vs ORT int | weight bytes (native) | vs layers' bits | peak RSS native / ORT int / ORT FP32 (MiB) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for name in "${models[@]}"; do
  model=models/${name}_fmnist.onnx
  configs=(W8A8 W4A8 W2A8)
  if [ "$name" = resnet20 ] && [ -f runs/cpu_int/best.yaml ]; then cp runs/cpu_int/best.yaml "$TMP/searched.yaml"; configs+=(searched); fi
  for cfg in "${configs[@]}"; do
    f=$TMP/$name.$cfg
    "$BIN" export "$model" --precision "$TMP/$cfg.yaml" --format int --data "$DATA" --calib 256 --out "$f.onnx" >/dev/null 2>&1
    "$BIN" pack "$f.onnx" --out "$f.apn" >/dev/null
    ideal=$("$BIN" inspect "$model" --precision "$TMP/$cfg.yaml" --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys,math
print(sum(math.prod(l["weight_shape"]) * min(l["weight_bits"], 32) / 8 for l in json.load(sys.stdin)["layers"] if l.get("quantizable")))')
    for t in $THREADS; do
      nat=(); oi=(); of=()
      for _ in $(seq "$ROUNDS"); do
        read -r n_ms n_rss n_bytes < <(native "$f.apn" "$t"); nat+=("$n_ms")
        read -r i_ms i_rss < <(ort "$f.onnx" "$t"); oi+=("$i_ms")
        read -r f_ms f_rss < <(ort "$model" "$t"); of+=("$f_ms")
      done
      n=$(median "${nat[@]}"); i=$(median "${oi[@]}"); fp=$(median "${of[@]}")
      /usr/bin/python3 - "$name" "$cfg" "$t" "$n" "$i" "$fp" "$n_bytes" "$ideal" "$n_rss" "$i_rss" "$f_rss" <<'PY'
import sys
name, cfg, t, n, i, f, nb, ideal, nr, ir, fr = sys.argv[1:]
n, i, f, nb, ideal = float(n), float(i), float(f), int(nb), float(ideal)
print(f"| {name} | {cfg} | {t} | {n:.3f} | {i:.3f} | {f:.3f} | {f / n:.2f}x | {i / n:.2f}x | {nb} | {nb / ideal:.2f}x | "
      f"{int(nr) / 1024:.1f} / {int(ir) / 1024:.1f} / {int(fr) / 1024:.1f} |")
PY
    done
  done
done
