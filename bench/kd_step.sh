#!/usr/bin/env bash
# Training throughput of one KD fine-tuning step, autoprec vs PyTorch eager,
# in one run: same model, precision, batch, threads. Prints both, the ratio
# (autoprec / PyTorch, higher is better) and autoprec's achieved GFLOP/s
# against a measured dense convolution and the CPU's theoretical peak.
# Usage: bench/kd_step.sh [MODEL=resnet20] [THREADS=2] [BATCH=128] [STEPS=20] [REPEATS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-resnet20}
THREADS=${2:-2}
BATCH=${3:-128}
STEPS=${4:-20}
REPEATS=${5:-3}
[ -x build/bench/kd_step_bench ] || bash scripts/build >/dev/null
DATA=idx:/usr/share/datasets/fashion-mnist
ours=()
theirs=()
for i in $(seq "$REPEATS"); do
  ours+=("$(build/bench/kd_step_bench "models/${MODEL}_fmnist.onnx" "$DATA" 4 8 "$BATCH" "$STEPS" "$THREADS")")
  theirs+=("$(/usr/bin/python3 bench/torch_kd_step.py --model "$MODEL" --threads "$THREADS" --batch "$BATCH" --steps "$STEPS")")
  echo "repeat $i: autoprec ${ours[-1]}"
  echo "repeat $i: pytorch  ${theirs[-1]}"
done
/usr/bin/python3 - "$(printf '%s\n' "${ours[@]}")" "$(printf '%s\n' "${theirs[@]}")" <<'PY'
import json, statistics, sys
ours = [json.loads(l) for l in sys.argv[1].splitlines()]
theirs = [json.loads(l) for l in sys.argv[2].splitlines()]
med = lambda rows, k: statistics.median(r[k] for r in rows)
o = ours[0]
print(f"{o['model']} {o['precision']}, batch {o['batch']}, {o['threads']} threads, median of {len(ours)}")
for key, label in (("cached", "teacher logits cached"), ("uncached", "teacher run every step")):
    a, p = med(ours, f"{key}_images_per_second"), med(theirs, f"{key}_images_per_second")
    print(f"  {label:24s} autoprec {a:7.1f} img/s   PyTorch eager {p:7.1f} img/s   ratio {a / p:.2f}")
g, conv, blas = med(ours, "cached_gflops"), med(ours, "conv_gflops"), med(ours, "matmul_gflops")
print(f"  autoprec forward+backward {g:.1f} GFLOP/s = {100 * g / conv:.0f}% of a dense 3x3 convolution's {conv:.1f} GFLOP/s"
      f" (system BLAS sgemm: {blas:.1f} GFLOP/s)")
try:
    mhz = max(float(l.split(":")[1]) for l in open("/proc/cpuinfo") if l.startswith("cpu MHz"))
    flags = open("/proc/cpuinfo").read()
    per_cycle = 64 if " avx512f" in flags else 32 if " fma" in flags else 16  # fp32 FLOP/cycle/core, 2 FMA ports
    peak = o["threads"] * mhz * 1e6 * per_cycle / 1e9
    print(f"  theoretical fp32 peak of {o['threads']} cores at {mhz:.0f} MHz x {per_cycle} FLOP/cycle: {peak:.0f} GFLOP/s ({100 * g / peak:.0f}%)")
except (OSError, ValueError):
    pass
PY
