#!/usr/bin/env bash
# Command-line tests of models and data beyond labelled images: data without
# labels and the label-free metrics (agreement, kl, sqnr) in eval,
# sensitivity, finetune (pure distillation) and a search with a fidelity
# constraint, deployed and reported; the command metric (a user's scorer)
# and its failures; and a token model (the zoo's character
# language model, int64 inputs) searched, deployed and verified in ONNX
# Runtime with and without labels. The refusals (a metric that needs labels,
# an accuracy constraint on a label-free run) are one error line before any
# work. Runs alone (ctest cli_any_model).
# Usage: cli_any_model_test.sh AUTOPREC_BINARY SOURCE_DIR
set -u
BIN=$1
SRC=$2
source "$(dirname "$0")/test_lib.sh"

# 400 Fashion-MNIST training images without labels, and the same with them.
$PY - "${FMNIST#idx:}" "$WORK" <<'PYEOF'
import gzip, sys, numpy as np
src, work = sys.argv[1], sys.argv[2]
images = np.frombuffer(gzip.open(f"{src}/train-images-idx3-ubyte.gz").read()[16:], np.uint8).reshape(-1, 28, 28)
labels = np.frombuffer(gzip.open(f"{src}/train-labels-idx1-ubyte.gz").read()[8:], np.uint8).astype(np.int64)
np.save(f"{work}/x.npy", images[:400].copy())
np.save(f"{work}/y.npy", labels[:400].copy())
PYEOF
X="npy:$WORK/x.npy"
XY="npy:$WORK/x.npy,$WORK/y.npy"
printf 'default: {weight_bits: 8, activation_bits: 8}\n' >"$WORK/w8a8.yaml"
printf 'default: {weight_bits: 2, activation_bits: 8}\n' >"$WORK/w2a8.yaml"

# eval: every label-free metric; FP32 against itself is perfect, W8A8 close, W2A8 worse.
for m in agreement kl sqnr; do
  for cfg in w8a8 w2a8; do
    expect_ok "eval --metric $m $cfg" "$BIN" eval "$MODEL" --data "$X" --metric $m --precision "$WORK/$cfg.yaml" --calib 64 --json
    cp "$WORK/out" "$WORK/eval_${m}_$cfg.json"
  done
done
$PY - "$WORK" <<'PYEOF' && ok || bad "label-free scores"
import json, sys
w = sys.argv[1]
s = lambda m, c: json.load(open(f"{w}/eval_{m}_{c}.json"))
for m in ("agreement", "kl", "sqnr"):
    a = s(m, "w8a8")
    assert a["metric"] == m and "top1" not in a and a["examples"] == 400, a
assert s("agreement", "w8a8")["score"] > 0.97 > s("agreement", "w2a8")["score"], "agreement"
assert s("kl", "w8a8")["score"] < 0.01 < s("kl", "w2a8")["score"], "kl"
assert s("sqnr", "w8a8")["score"] > 25 > s("sqnr", "w2a8")["score"], "sqnr"
PYEOF
expect_ok "eval FP32 agreement (default metric without labels)" "$BIN" eval "$MODEL" --data "$X" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["metric"] == "agreement" and d["score"] == 1.0, d' "$WORK/out" && ok || bad "default metric"
grep -q "^metric: agreement" "$WORK/err" && ok || bad "no notice of the metric chosen: $(cat "$WORK/err")"
# With labels, top1 stays in the JSON beside the chosen metric.
expect_ok "eval kl with labels" "$BIN" eval "$MODEL" --data "$XY" --metric kl --precision "$WORK/w2a8.yaml" --calib 64 --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["metric"] == "kl" and 0 < d["top1"] <= 1 and d["score"] > 0, d' "$WORK/out" && ok || bad "kl with labels"
expect_error "top1 without labels" "metric top1 needs labels" -- "$BIN" eval "$MODEL" --data "$X" --metric top1
expect_error "unknown metric" "did you mean 'agreement'" -- "$BIN" eval "$MODEL" --data "$X" --metric agrement

# sensitivity by KL without labels: no accuracy columns, a score per row.
expect_ok "sensitivity --metric kl" "$BIN" sensitivity "$MODEL" --data "$X" --metric kl --bits 2,8 --validation 100 --calib 64 --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); r=d["rows"]
assert d["metric"] == "kl" and "fp32_top1" not in d and all("top1" not in x and x["score"] >= 0 for x in r), d
w2 = [x["score"] for x in r if x["bits"] == 2 and x["tensor"] == "weight"]; w8 = [x["score"] for x in r if x["bits"] == 8 and x["tensor"] == "weight"]
assert sum(w2) > sum(w8), (w2, w8)' "$WORK/out" && ok || bad "sensitivity without labels"

# finetune without labels: pure distillation lowers the KL to FP32.
expect_ok "finetune without labels" "$BIN" finetune "$MODEL" --data "$X" --metric kl --precision "$WORK/w2a8.yaml" --epochs 1 --batch-size 32 --calib 64 --out "$WORK/ft" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1]))
assert d["options"]["alpha"] == 1 and d["metric"] == "kl" and d["evaluated_on"] == "validation", d
assert d["after"]["test_score"] < d["before"]["test_score"], (d["before"], d["after"])
assert "train_top1" not in d["epochs"][0] and "test_top1" not in d["after"], d' "$WORK/out" && ok || bad "pure distillation"
grep -q "pure distillation" "$WORK/err" && ok || bad "no notice of pure distillation"

# search without labels: agreement, a fidelity bound, deployed and reported.
cat >"$WORK/run.yaml" <<YAML
model: $MODEL
data: $X
constraints: ["weight_memory<=0.2*fp32", "fidelity>=0.9"]
agent: ddpg
episodes: 3
weight_bits: [2, 4, 8]
activation_bits: [8]
short_finetune: {steps: 4, batch_size: 32}
final_finetune: {epochs: 1, examples: 200}
out: $WORK/search
YAML
expect_ok "search without labels" "$BIN" search --config "$WORK/run.yaml" --json
$PY - "$WORK/search" <<'PYEOF' && ok || bad "label-free search result"
import json, os, sys, sqlite3
d = sys.argv[1]
r = json.load(open(f"{d}/result.json"))
assert r["metric"] == "agreement" and r["evaluated_on"] == "validation", r
assert "test_top1" not in r["final"] and 0.9 <= r["final"]["test_score"] <= 1, r["final"]
assert r["feasible"] and any(c["metric"] == "fidelity" and c["holds"] for c in r["constraints"]), r["constraints"]
assert r["deploy"]["verified"] and r["deploy"]["ort_top1"] is None and r["deploy"]["ort_agreement"] > 0.95, r["deploy"]
assert not os.path.exists(f"{d}/outcomes.json")
config = json.loads(sqlite3.connect(f"{d}/journal.sqlite").execute("SELECT config FROM run").fetchone()[0])
assert config["metric"] == "agreement", config   # the resolved metric is journaled
html = open(f"{d}/report.html").read()
assert "agreement with FP32" in html and "validation top-1 (%)" not in html
PYEOF
expect_error "accuracy bound on a label-free run" "bounds top-1 accuracy" -- "$BIN" search --config "$WORK/run.yaml" --constraint "accuracy_drop<=1%" --out "$WORK/search_acc"
[ ! -e "$WORK/search_acc" ] && ok || bad "a refused search wrote its directory"
expect_error "fidelity bound on a top-1 run" "bounds a label-free metric" -- "$BIN" search --config "$WORK/run.yaml" --data "$XY" --constraint "fidelity>=0.9" --out "$WORK/search_fid"
expect_error "top1 search without labels" "metric top1 needs labels" -- "$BIN" search --config "$WORK/run.yaml" --metric top1 --out "$WORK/search_top1"

# The command metric: the user's scorer gets the model file as its last
# argument and prints one number (here minus the file's size in KiB).
printf '#!/bin/sh\necho "scoring $1" >&2\necho "$(( - $(stat -c %%s "$1") / 1024 ))"\n' >"$WORK/score.sh"
chmod +x "$WORK/score.sh"
expect_ok "eval --metric command" "$BIN" eval "$MODEL" --data "$X" --metric command --metric-command "$WORK/score.sh" --precision "$WORK/w2a8.yaml" --calib 64 --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["metric"] == "command" and -100 < d["score"] < 0, d' "$WORK/out" && ok || bad "command metric score"
expect_error "metric command fails" "exited with status 3 (its last stderr line: 'broken')" -- "$BIN" eval "$MODEL" --data "$X" --metric command --metric-command "echo broken >&2; exit 3; :"
expect_error "metric command prints no number" "must print one number" -- "$BIN" eval "$MODEL" --data "$X" --metric command --metric-command "echo fine; :"
expect_error "metric command hangs" "did not finish within 1 s" -- "$BIN" eval "$MODEL" --data "$X" --metric command --metric-command "sleep 30; :" --metric-timeout 1
expect_error "command metric elsewhere" "eval and search" -- "$BIN" sensitivity "$MODEL" --data "$X" --metric command --validation 50 --calib 50
expect_ok "search --metric command" "$BIN" search --model "$MODEL" --data "$X" --metric command --metric-command "$WORK/score.sh" --constraint "weight_memory<=0.2*fp32" --episodes 2 --out "$WORK/search_command" --json
$PY -c 'import json,sys; r=json.load(open(sys.argv[1]))
assert r["metric"] == "command" and r["fp32"]["test_score"] < r["final"]["test_score"] < 0 and r["feasible"], r' "$WORK/search_command/result.json" && ok || bad "search by the command metric"
expect_error "metric command without a command" "needs metric_command" -- "$BIN" search --model "$MODEL" --data "$X" --metric command --out "$WORK/search_nocmd"

# A token model: int64 inputs [N, 32], next-character logits. Its data are
# written from the licence text Debian ships; 6000 training windows keep it short.
LM="$SRC/models/char_mlp_lm.onnx"
$PY "$SRC/models/char_lm.py" data "$WORK/lm" >/dev/null && $PY - "$WORK/lm" <<'PYEOF' && ok || bad "char_lm data"
import sys, numpy as np
d = sys.argv[1]
np.save(f"{d}/small_x.npy", np.load(f"{d}/train_x.npy")[:6000])
np.save(f"{d}/small_y.npy", np.load(f"{d}/train_y.npy")[:6000])
PYEOF
LMTEST="npy:$WORK/lm/test_x.npy,$WORK/lm/test_y.npy"
expect_ok "eval the token model" "$BIN" eval "$LM" --data "$LMTEST" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); m=json.load(open(sys.argv[2]))["char_mlp_lm"]
assert abs(d["top1"] - m["fp32_test_top1"]) < 1e-4, (d["top1"], m["fp32_test_top1"])' "$WORK/out" "$SRC/models/manifest.json" && ok || bad "token model top-1 differs from the manifest's"
cat >"$WORK/lm.yaml" <<YAML
model: $LM
data: npy:$WORK/lm/small_x.npy,$WORK/lm/small_y.npy
validation_data: $LMTEST
validation: 1000
constraints: ["weight_memory<=0.15*fp32"]
episodes: 3
short_finetune: {steps: 10, batch_size: 64}
final_finetune: {epochs: 1, examples: 2000}
out: $WORK/lm_search
YAML
expect_ok "search the token model" "$BIN" search --config "$WORK/lm.yaml" --json
$PY -c 'import json,sys; r=json.load(open(sys.argv[1]))
assert r["metric"] == "top1" and r["feasible"] and r["deploy"]["verified"] and 0.2 < r["final"]["test_top1"] <= 1, r' "$WORK/lm_search/result.json" && ok || bad "token model search"
sed -e "s|small_y.npy|small_y.npy_unused|; s|data: npy:\(.*\)/small_x.npy,.*|data: npy:\1/small_x.npy|; s|validation_data: .*|metric: kl|; s|weight_memory<=0.15\*fp32|weight_memory<=0.15*fp32\", \"fidelity<=1.0|; s|lm_search|lm_search_kl|" "$WORK/lm.yaml" >"$WORK/lm_kl.yaml"
expect_ok "search the token model without labels (kl)" "$BIN" search --config "$WORK/lm_kl.yaml" --json
$PY -c 'import json,sys; r=json.load(open(sys.argv[1]))
assert r["metric"] == "kl" and "test_top1" not in r["final"] and 0 <= r["final"]["test_score"] <= 1.0 and r["deploy"]["verified"], r' "$WORK/lm_search_kl/result.json" && ok || bad "token model search by kl: $(cat "$WORK/lm_kl.yaml")"

# A model with two inputs (the zoo's two_view: top and bottom image halves),
# fed from an npz with one array per input: eval against the manifest,
# a search with labels and one without (agreement), deployed and verified
# in ONNX Runtime; inputs that do not match are one error line each.
TV="$SRC/models/two_view_fmnist.onnx"
$PY - "${FMNIST#idx:}" "$WORK" <<'PYEOF' && ok || bad "two_view data"
import gzip, sys, numpy as np
src, work = sys.argv[1], sys.argv[2]
for prefix, n, name in (("train", 1500, "tv_train"), ("t10k", 10000, "tv_test")):
    x = np.frombuffer(gzip.open(f"{src}/{prefix}-images-idx3-ubyte.gz").read()[16:], np.uint8).reshape(-1, 28, 28)[:n]
    y = np.frombuffer(gzip.open(f"{src}/{prefix}-labels-idx1-ubyte.gz").read()[8:], np.uint8).astype(np.int64)[:n]
    np.savez(f"{work}/{name}.npz", bottom=x[:, 14:].copy(), top=x[:, :14].copy(), labels=y.copy())
np.savez_compressed(f"{work}/tv_nolabels.npz", top=x[:1500, :14].copy(), bottom=x[:1500, 14:].copy())
np.savez(f"{work}/tv_one.npz", top=x[:100, :14].copy())
np.savez(f"{work}/tv_misnamed.npz", top=x[:100, :14].copy(), lower=x[:100, 14:].copy())
PYEOF
expect_ok "eval the two-input model" "$BIN" eval "$TV" --data "npz:$WORK/tv_test.npz" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); m=json.load(open(sys.argv[2]))["two_view"]
assert abs(d["top1"] - m["fp32_test_top1"]) < 1e-4, (d["top1"], m["fp32_test_top1"])' "$WORK/out" "$SRC/models/manifest.json" && ok || bad "two-input model top-1 differs from the manifest's"
cat >"$WORK/tv.yaml" <<YAML
model: $TV
data: npz:$WORK/tv_train.npz
validation: 300
constraints: ["weight_memory<=0.2*fp32"]
episodes: 3
weight_bits: [2, 4, 8]
short_finetune: {steps: 5, batch_size: 32}
final_finetune: {epochs: 1, examples: 800}
out: $WORK/tv_search
YAML
expect_ok "search the two-input model" "$BIN" search --config "$WORK/tv.yaml" --json
$PY -c 'import json,sys; r=json.load(open(sys.argv[1]))
assert r["metric"] == "top1" and r["feasible"] and r["deploy"]["verified"] and 0.6 < r["final"]["test_top1"] <= 1, r' "$WORK/tv_search/result.json" && ok || bad "two-input model search"
expect_ok "verify the two-input bundle on held-out data" "$BIN" verify "$WORK/tv_search/bundle/model.onnx" --data "npz:$WORK/tv_test.npz" --limit 1000 --json
$PY -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["passed"] and v["examples"] == 1000, v' "$WORK/out" && ok || bad "two-input verification"
sed -e "s|tv_train.npz|tv_nolabels.npz|; s|weight_memory<=0.2\*fp32|weight_memory<=0.2*fp32\", \"fidelity>=0.8|; s|tv_search|tv_search_nl|" "$WORK/tv.yaml" >"$WORK/tv_nl.yaml"
expect_ok "search the two-input model without labels" "$BIN" search --config "$WORK/tv_nl.yaml" --json
$PY -c 'import json,sys; r=json.load(open(sys.argv[1]))
assert r["metric"] == "agreement" and r["feasible"] and r["deploy"]["verified"], r' "$WORK/tv_search_nl/result.json" && ok || bad "two-input label-free search"
# run: one array per input by name (here in the other order), the model's logits as PyTorch computes them.
$PY - "$WORK" <<'PYEOF' && ok || bad "two_view run input"
import sys, numpy as np
d = np.load(f"{sys.argv[1]}/tv_test.npz")
np.savez(f"{sys.argv[1]}/tv_run.npz", bottom=(d["bottom"][:8] / 255).astype(np.float32)[:, None],
         top=(d["top"][:8] / 255).astype(np.float32)[:, None])
PYEOF
expect_ok "run the two-input model on an npz" "$BIN" run "$TV" --input "$WORK/tv_run.npz" --output "$WORK/tv_y.npy"
$PY - "$WORK" "$SRC/models" <<'PYEOF' && ok || bad "run on an npz differs from PyTorch"
import sys, numpy as np, torch
sys.path.insert(0, sys.argv[2])
import zoo
m = zoo.build("two_view")
m.load_state_dict(torch.load(f"{sys.argv[2]}/two_view_fmnist.pt"))
m.eval()
d = np.load(f"{sys.argv[1]}/tv_run.npz")
with torch.no_grad():
    ref = m(torch.from_numpy(d["top"]), torch.from_numpy(d["bottom"])).numpy()
y = np.load(f"{sys.argv[1]}/tv_y.npy")
assert np.abs(y - ref).max() < 1e-4, np.abs(y - ref).max()
PYEOF
expect_error "npz without an input's array" "has no array for the model's input 'bottom'" -- "$BIN" eval "$TV" --data "npz:$WORK/tv_one.npz"
expect_error "npz with a misnamed array" "has no array for the model's input 'bottom'" -- "$BIN" search --model "$TV" --data "npz:$WORK/tv_misnamed.npz" --episodes 1 --out "$WORK/tv_bad"
[ ! -e "$WORK/tv_bad" ] && ok || bad "a refused search wrote $WORK/tv_bad"
expect_error "one input for a two-input model" "the model takes 2 input(s)" -- "$BIN" eval "$TV" --data "$X"
expect_error "native runtime with two inputs" "one input" -- "$BIN" verify "$WORK/tv_search/bundle/model.onnx" --data "npz:$WORK/tv_test.npz" --runtime native

echo "cli_any_model: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
