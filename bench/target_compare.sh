#!/usr/bin/env bash
# Measured per-layer latency on this CPU (ONNX Runtime, single-layer QDQ
# models, 1 thread, median of 30 runs after 5) vs what the analytic targets
# predict (bitfusion, bismo) and the hardware-independent proxy (BOPs).
# Usage: bench/target_compare.sh [MODEL [NAME=PRECISION.yaml ...]]
#   (default models/resnet20_fmnist.onnx; e.g. demo=runs/demo/best.yaml adds
#   a search result to the whole-model table)
# Prints Markdown tables: per layer at W8A8 and FP32, the rank correlation of
# each proxy with the measured latency, and whole-model totals per target:
# ONNX Runtime's measured latency of the QDQ export next to the per-layer sum.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/autoprec ] || bash scripts/build >/dev/null
MODEL=${1:-models/resnet20_fmnist.onnx}
shift || true
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
B=build/autoprec
# FORM=kernel measures layers in ORT's fused integer-kernel form instead of
# the exported form (targets/cpu-ort.yaml).
ORT=cpu-ort
if [ "${FORM:-export}" != export ]; then
  sed "s/^  form: export/  form: ${FORM}/" targets/cpu-ort.yaml >"$TMP/cpu-ort.yaml"
  ORT="$TMP/cpu-ort.yaml"
fi
echo "\$ autoprec profile $MODEL --target cpu-ort --out cpu-ort.csv   (form: ${FORM:-export})"
$B profile "$MODEL" --target "$ORT" --out "$TMP/cpu-ort.csv" --cache "$TMP/cache.csv" 2>&1 | tail -2
for bits in 32 8 4 2; do
  printf 'default: {weight_bits: %s, activation_bits: %s}\n' "$bits" "$bits" >"$TMP/w$bits.yaml"
  for t in generic bitfusion bismo; do
    [ "$t" = bismo ] && [ "$bits" = 32 ] && continue   # bismo profile: 2..8 bits
    $B cost "$MODEL" --precision "$TMP/w$bits.yaml" --target $t --json >"$TMP/$t-$bits.json"
  done
  # Per-layer medians from the profile's cache; the whole QDQ export is timed.
  $B cost "$MODEL" --precision "$TMP/w$bits.yaml" --target "$ORT" --cache "$TMP/cache.csv" --json >"$TMP/cpu-ort-$bits.json"
done
EXTRA=()
for spec in "$@"; do
  name=${spec%%=*} config=${spec#*=}
  [ -f "$config" ] || { echo "no precision config $config" >&2; exit 2; }
  for t in generic bitfusion bismo; do
    $B cost "$MODEL" --precision "$config" --target $t --json >"$TMP/$t-$name.json"
  done
  $B cost "$MODEL" --precision "$config" --target "$ORT" --cache "$TMP/cache.csv" --json >"$TMP/cpu-ort-$name.json"
  EXTRA+=("$name")
done
# The whole FP32 model in ORT (1 thread, kernels profiled), to check that per-layer times add up.
SHAPE=$(/usr/bin/python3 -c 'import onnx,sys; m=onnx.load(sys.argv[1]); d=m.graph.input[0].type.tensor_type.shape.dim; print([1]+[x.dim_value for x in d[1:]])' "$MODEL")
printf '%s\n' "{\"cmd\":\"load\",\"model\":\"$PWD/$MODEL\",\"threads\":1,\"profiling\":true}" \
  "{\"cmd\":\"time\",\"inputs\":{\"$(/usr/bin/python3 -c 'import onnx,sys; print(onnx.load(sys.argv[1]).graph.input[0].name)' "$MODEL")\":{\"shape\":$SHAPE,\"fill\":\"random\"}},\"warmup\":5,\"repeats\":30}" |
  node tools/ort_runner.js | tail -1 >"$TMP/whole.json"
/usr/bin/python3 - "$TMP" "${EXTRA[@]}" <<'PY'
import json, os, sys
sys.path.insert(0, "bench")
from rank_stats import pearson, spearman  # noqa: E402
tmp, extra = sys.argv[1], sys.argv[2:]
def load(t, b):
    p = f"{tmp}/{t}-{b}.json"
    return json.load(open(p)) if os.path.exists(p) else None

ort8, ort32 = load("cpu-ort", 8)["layers"], load("cpu-ort", 32)["layers"]
bf8, bs8, gen8 = load("bitfusion", 8)["layers"], load("bismo", 8)["layers"], load("generic", 8)["layers"]
print("\nPer layer at W8A8 (latency in microseconds; ORT FP32 for reference)\n")
print("| layer | MACs | ORT FP32 | ORT W8A8 | ORT FP32/W8A8 | BitFusion | BISMO |")
print("|---|---:|---:|---:|---:|---:|---:|")
for o8, o32, f, s in zip(ort8, ort32, bf8, bs8):
    print(f"| {o8['name']} | {o8['macs']} | {1e3*o32['latency_ms']:.1f} | {1e3*o8['latency_ms']:.1f} | "
          f"{o32['latency_ms']/o8['latency_ms']:.2f} | {1e3*f['latency_ms']:.2f} | {1e3*s['latency_ms']:.2f} |")
meas = [l["latency_ms"] for l in ort8]
print("\nHow well each proxy orders the layers by measured ORT W8A8 latency (over", len(meas), "layers)\n")
print("| proxy | Spearman | Pearson |")
print("|---|---:|---:|")
for name, vals in [("MACs / BOPs (generic)", [l["bops"] for l in gen8]),
                   ("bitfusion latency", [l["latency_ms"] for l in bf8]),
                   ("bismo latency", [l["latency_ms"] for l in bs8])]:
    print(f"| {name} | {spearman(meas, vals):.3f} | {pearson(meas, vals):.3f} |")
print("\nWhole model (ms; predictions and ORT 'sum' add the layers; ORT 'whole' times the QDQ export in one session)\n")
print("| precision | weights % FP32 | BOPs (G) | ORT whole, kernels | ORT whole, wall | ORT sum of layers | sum / whole | ORT FP32 whole, kernels | BitFusion | BISMO |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for b in [32, 8, 4, 2] + extra:
    o, f, s, g = load("cpu-ort", b), load("bitfusion", b), load("bismo", b), load("generic", b)
    cell = lambda d: f"{d['total']['latency_ms']:.4f}" if d else "n/a"
    w = o["whole_model"]
    label = f"W{b}A{b}" if isinstance(b, int) else b
    frac = 100 * g["total"]["weight_memory_fraction_of_fp32"]
    print(f"| {label} | {frac:.1f} | {g['total']['bops']/1e9:.3f} | {w['quantized']['latency_ms']:.4f} | {w['quantized']['wall_ms']:.4f} | "
          f"{cell(o)} | {o['total']['latency_ms']/w['quantized']['latency_ms']:.2f} | {w['fp32']['latency_ms']:.4f} | {cell(f)} | {cell(s)} |")
w = json.load(open(f"{tmp}/whole.json"))
ops = w["ops_ms"]
conv = ops.get("Conv", 0) + ops.get("FusedConv", 0) + ops.get("Gemm", 0)
print(f"\nWhole FP32 model in ORT, 1 thread: wall {w['median_ms']:.3f} ms per inference, kernels {w['kernel_ms']:.3f} ms, "
      f"of which Conv/FusedConv/Gemm {conv:.3f} ms; sum of the per-layer FP32 table {load('cpu-ort', 32)['total']['latency_ms']:.3f} ms")
print("per operator (ms): " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(ops.items(), key=lambda kv: -kv[1])))
PY
