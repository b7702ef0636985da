#!/usr/bin/env bash
# Label-free metrics over the zoo (CNNs, the tiny ViT, the character LM):
#  1. PTQ at uniform W8A8 and W4A8 scored by top-1 (labels), agreement with
#     FP32 and KL to FP32 (no labels), on the test split;
#  2. a search at weight memory <= 1/8 of FP32 with KD, once with labels
#     (metric top1) and once on the same training inputs without labels
#     (metric agreement, pure distillation), both deployed and verified in
#     ONNX Runtime, each result's test top-1 measured with the labels;
#  3. over RANDOM_CONFIGS seeded random mixed-precision PTQ configurations,
#     Spearman's rank correlation of agreement and of -KL with top-1: is the
#     label-free score a stand-in for accuracy?
# Usage: [EPISODES=8] [RANDOM_CONFIGS=12] [SECTIONS="ptq search rank"] bench/any_model_table.sh [MODELS...]
# (default: small_cnn resnet20 mobilenetv2_mini vit_tiny char_mlp_lm). Prints Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/autoprec ] || bash scripts/build >/dev/null
BIN=${BIN:-build/autoprec}
PY=/usr/bin/python3
FMNIST=/usr/share/datasets/fashion-mnist
EPISODES=${EPISODES:-8}
RANDOM_CONFIGS=${RANDOM_CONFIGS:-12}
SECTIONS=${SECTIONS:-ptq search rank}
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(small_cnn resnet20 mobilenetv2_mini vit_tiny char_mlp_lm)
TMP=${TMP_DIR:-$(mktemp -d)}
mkdir -p "$TMP"

# Data: Fashion-MNIST training inputs as npy without labels; the LM's windows.
$PY - "$FMNIST" "$TMP" <<'PYEOF'
import gzip, sys, numpy as np
src, out = sys.argv[1], sys.argv[2]
x = np.frombuffer(gzip.open(f"{src}/train-images-idx3-ubyte.gz").read()[16:], np.uint8).reshape(-1, 28, 28)
np.save(f"{out}/fmnist_train_x.npy", x.copy())
PYEOF
$PY models/char_lm.py data "$TMP/lm" >/dev/null

model_file() { case $1 in char_mlp_lm) echo models/char_mlp_lm.onnx ;; *) echo "models/$1_fmnist.onnx" ;; esac; }
labelled() { case $1 in char_mlp_lm) echo "npy:$TMP/lm/train_x.npy,$TMP/lm/train_y.npy" ;; *) echo "idx:$FMNIST" ;; esac; }
unlabelled() { case $1 in char_mlp_lm) echo "npy:$TMP/lm/train_x.npy" ;; *) echo "npy:$TMP/fmnist_train_x.npy" ;; esac; }
testset() { case $1 in char_mlp_lm) echo "npy:$TMP/lm/test_x.npy,$TMP/lm/test_y.npy" ;; *) echo "idx:$FMNIST" ;; esac; }
# eval MODEL DATA METRIC [CONFIG] -> "top1 score" (top-1 in %, the metric's score)
score() {
  "$BIN" eval "$1" --data "$2" --metric "$3" ${4:+--precision "$4"} --calib 512 --json 2>/dev/null |
    $PY -c 'import json,sys; d=json.load(sys.stdin); print("%.2f %.6g" % (100 * d["top1"], d["score"]))'
}

if [[ " $SECTIONS " == *" ptq "* ]]; then
echo "### PTQ: top-1 with labels, agreement and KL without"
echo
echo "| model | FP32 top-1 | W8A8 top-1 | W8A8 agreement | W8A8 KL | W4A8 top-1 | W4A8 agreement | W4A8 KL |"
echo "|---|---|---|---|---|---|---|---|"
for m in "${MODELS[@]}"; do
  f=$(model_file "$m"); t=$(testset "$m")
  row="| $m | $(score "$f" "$t" top1 | cut -d' ' -f1) |"
  for wb in 8 4; do
    printf 'default: {weight_bits: %s, activation_bits: 8}\n' "$wb" >"$TMP/w${wb}a8.yaml"
    read -r top1 agreement < <(score "$f" "$t" agreement "$TMP/w${wb}a8.yaml")
    read -r _ kl < <(score "$f" "$t" kl "$TMP/w${wb}a8.yaml")
    row+=" $top1 | $($PY -c "print('%.2f' % (100 * $agreement))") | $kl |"
  done
  echo "$row"
done

fi

if [[ " $SECTIONS " == *" search "* ]]; then
echo
echo "### Search at weight_memory <= 0.125*fp32 (ddpg, $EPISODES episodes, KD), with and without labels"
echo
echo "| model | FP32 test top-1 | with labels: metric | test top-1 | ORT verified | without labels: metric | test top-1 (labels used only here) | validation agreement | ORT verified | search s (labels / none) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for m in "${MODELS[@]}"; do
  f=$(model_file "$m"); t=$(testset "$m")
  for kind in labels none; do
    out="$TMP/search_${m}_$kind"
    rm -rf "$out"
    data=$([ $kind = labels ] && labelled "$m" || unlabelled "$m")
    cat >"$TMP/run_${m}_$kind.yaml" <<YAML
model: $f
data: $data
constraints: ["weight_memory<=0.125*fp32"]
episodes: $EPISODES
short_finetune: {steps: 20, batch_size: 64}
final_finetune: {epochs: 1, examples: 10000}
out: $out
YAML
    "$BIN" search --config "$TMP/run_${m}_$kind.yaml" --json >"$TMP/result_${m}_$kind.json" 2>"$TMP/search_${m}_$kind.log" ||
      echo "search $m $kind failed: $(tail -1 "$TMP/search_${m}_$kind.log")" >&2
  done
  fp32=$(score "$f" "$t" top1 | cut -d' ' -f1)
  lab_top1=$(score "$TMP/search_${m}_labels/model.onnx" "$t" top1 "$TMP/search_${m}_labels/best.yaml" | cut -d' ' -f1)
  none_top1=$(score "$TMP/search_${m}_none/model.onnx" "$t" top1 "$TMP/search_${m}_none/best.yaml" | cut -d' ' -f1)
  $PY - "$m" "$fp32" "$lab_top1" "$none_top1" "$TMP/search_${m}_labels/result.json" "$TMP/search_${m}_none/result.json" <<'PYEOF'
import json, sys
m, fp32, lab, none = sys.argv[1:5]
a, b = (json.load(open(p)) for p in sys.argv[5:7])
v = lambda r: "yes" if r.get("deploy", {}).get("verified") else "no"
print(f"| {m} | {fp32} | {a['metric']} | {lab} | {v(a)} | {b['metric']} | {none} | "
      f"{100 * b['final']['validation_score']:.2f} | {v(b)} | {a['search_seconds']:.0f} / {b['search_seconds']:.0f} |")
PYEOF
done

fi

if [[ " $SECTIONS " == *" rank "* ]]; then
echo
echo "### Is the label-free score a stand-in for top-1? $RANDOM_CONFIGS random mixed-precision PTQ configurations"
echo
echo "| model | top-1 range (%) | Spearman(agreement, top-1) | Spearman(-KL, top-1) |"
echo "|---|---|---|---|"
for m in "${MODELS[@]}"; do
  f=$(model_file "$m"); t=$(testset "$m")
  "$BIN" inspect "$f" --json >"$TMP/inspect_$m.json"
  $PY - "$TMP/inspect_$m.json" "$TMP/rand_$m" "$RANDOM_CONFIGS" <<'PYEOF'
import json, os, random, sys
layers = [l["name"] for l in json.load(open(sys.argv[1]))["layers"] if l.get("quantizable")]
out, n = sys.argv[2], int(sys.argv[3])
os.makedirs(out, exist_ok=True)
rng = random.Random(0)
for i in range(n):
    with open(f"{out}/{i}.yaml", "w") as f:
        f.write("default: {weight_bits: 8, activation_bits: 8}\nlayers:\n")
        for name in layers:
            f.write(f'  "{name}": {{weight_bits: {rng.choice([2, 3, 4, 8])}, activation_bits: {rng.choice([4, 8])}}}\n')
PYEOF
  : >"$TMP/rand_$m.txt"
  for i in $(seq 0 $((RANDOM_CONFIGS - 1))); do
    read -r top1 agreement < <(score "$f" "$t" agreement "$TMP/rand_$m/$i.yaml")
    read -r _ kl < <(score "$f" "$t" kl "$TMP/rand_$m/$i.yaml")
    echo "$top1 $agreement $kl" >>"$TMP/rand_$m.txt"
  done
  $PY - "$m" "$TMP/rand_$m.txt" <<'PYEOF'
import sys
sys.path.insert(0, "bench")
from rank_stats import spearman  # noqa: E402
rows = [tuple(map(float, l.split())) for l in open(sys.argv[2])]
top1 = [r[0] for r in rows]
print(f"| {sys.argv[1]} | {min(top1):.2f} to {max(top1):.2f} | {spearman([r[1] for r in rows], top1):+.3f} | "
      f"{spearman([-r[2] for r in rows], top1):+.3f} |")
PYEOF
done
fi
