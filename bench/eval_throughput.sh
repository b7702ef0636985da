#!/usr/bin/env bash
# Inference throughput of `autoprec eval` against PyTorch eager (Debian's
# python3-torch) on the same model, data, batch and thread count, in one run.
# Usage: bench/eval_throughput.sh [MODEL=resnet20] [THREADS=2] [BATCH=256] [LIMIT=10000] [REPEATS=3]
# Prints both JSON results per repeat and the median ratio autoprec / PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-resnet20}
THREADS=${2:-2}
BATCH=${3:-256}
LIMIT=${4:-10000}
REPEATS=${5:-3}
[ -x build/autoprec ] || bash scripts/build >/dev/null
ours=()
theirs=()
for i in $(seq "$REPEATS"); do
  a=$(build/autoprec --threads "$THREADS" eval "models/${MODEL}_fmnist.onnx" --data idx:/usr/share/datasets/fashion-mnist \
      --batch "$BATCH" --limit "$LIMIT" --json | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["images_per_second"], d["top1"])')
  b=$(/usr/bin/python3 bench/torch_eval.py --model "$MODEL" --threads "$THREADS" --batch "$BATCH" --limit "$LIMIT" \
      | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["images_per_second"], d["top1"])')
  echo "repeat $i: autoprec ${a% *} img/s (top-1 ${a#* }), pytorch-eager ${b% *} img/s (top-1 ${b#* })"
  ours+=("${a% *}")
  theirs+=("${b% *}")
done
/usr/bin/python3 - "${ours[*]}" "${theirs[*]}" "$MODEL" "$THREADS" "$BATCH" "$LIMIT" <<'PY'
import statistics, sys
ours = [float(x) for x in sys.argv[1].split()]
theirs = [float(x) for x in sys.argv[2].split()]
model, threads, batch, limit = sys.argv[3:]
o, t = statistics.median(ours), statistics.median(theirs)
print(f"{model}: threads={threads} batch={batch} images={limit}: autoprec {o:.0f} img/s, "
      f"pytorch-eager {t:.0f} img/s, ratio {o / t:.2f} (median of {len(ours)})")
PY
