#!/usr/bin/env bash
# Command-line tests of KD fine-tuning: steps, epochs, held-out validation,
# divergence, bad options: one clear error line (exit 2) on bad input, valid
# JSON with --json, and nothing half-written. Runs alone (ctest cli_finetune);
# its fixtures come from make_fixtures in test_lib.sh.
# Usage: cli_finetune_test.sh AUTOPREC_BINARY SOURCE_DIR
set -u
BIN=$1
SRC=$2
source "$(dirname "$0")/test_lib.sh"
make_fixtures

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

# A small labelled dataset with one split: the counts adapt (printed once), and
# what the summary reports is a validation score, never called "test".
expect_ok "finetune a small npy dataset with default counts" "$BIN" finetune "$MODEL" --data "npy:$WORK/val_x.npy,$WORK/val_y.npy" --precision "$WORK/w3a8.yaml" --steps 3 --batch-size 16 --out "$WORK/ft_small"
grep -q "validation: 30 of 150 training examples (20%)" "$WORK/err" && ok || bad "finetune does not print the adapted validation count: $(grep validation "$WORK/err")"
grep -q "^validation top-1: FP32" "$WORK/out" && ! grep -q "test top-1" "$WORK/out" && ok || bad "finetune on one split calls its score a test score: $(cat "$WORK/out")"
expect_error "finetune explicit validation too large" "validation 5000 needs fewer than the 150 training examples, some of which must stay for training" -- "$BIN" finetune "$MODEL" --data "npy:$WORK/val_x.npy,$WORK/val_y.npy" --precision "$WORK/w3a8.yaml" --steps 3 --validation 5000 --out "$WORK/ft_small_bad"
[ ! -e "$WORK/ft_small_bad" ] && ok || bad "finetune with too many validation examples created its output directory"

echo "cli_finetune: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
