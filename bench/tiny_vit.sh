#!/usr/bin/env bash
# A transformer through autoprec: KD fine-tuning and a search on the tiny ViT
# of bench/make_tiny_vit.py (random weights and data: the accuracies mean
# nothing; that each command completes does). Usage: bench/tiny_vit.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/autoprec}
DIR=${1:-$(mktemp -d)}
mkdir -p "$DIR"
/usr/bin/python3 bench/make_tiny_vit.py "$DIR"
printf 'default: {weight_bits: 8, activation_bits: 8}\n' >"$DIR/w8a8.yaml"
cat >"$DIR/run.yaml" <<YAML
model: $DIR/vit.onnx
data: npy:$DIR/x.npy,$DIR/y.npy
out: $DIR/search
agent: uniform
weight_bits: [4, 8]
activation_bits: [8]
constraints: ["weight_memory<=0.2*fp32"]
short_finetune: {steps: 2, batch_size: 16}
final_finetune: {epochs: 0}
deploy: false
YAML
rm -rf "$DIR/ft" "$DIR/search"
start=$(date +%s.%N)
"$BIN" finetune "$DIR/vit.onnx" --data "npy:$DIR/x.npy,$DIR/y.npy" --precision "$DIR/w8a8.yaml" --steps 5 --out "$DIR/ft"
echo "finetune: $(echo "$(date +%s.%N) - $start" | bc) s"
start=$(date +%s.%N)
"$BIN" search --config "$DIR/run.yaml"
echo "search: $(echo "$(date +%s.%N) - $start" | bc) s"
