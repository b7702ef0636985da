#!/usr/bin/env bash
# Command-line tests of a tiny search per agent, resume after completion and
# after kill -9, errors before any training: one clear error line (exit 2) on
# bad input, valid JSON with --json, and nothing half-written. Runs alone
# (ctest cli_search); its fixtures come from make_fixtures in test_lib.sh.
# Usage: cli_search_test.sh AUTOPREC_BINARY SOURCE_DIR
set -u
BIN=$1
SRC=$2
source "$(dirname "$0")/test_lib.sh"
make_fixtures

# The lut profile of the search errors below: the bismo table of three weight bit-widths.
"$BIN" profile "$MODEL" --target bismo --out "$WORK/bismo.csv" --weight-bits 2,4,8 --activation-bits 8 >/dev/null 2>&1
printf 'name: measured\ncost_model: {type: lut, table: bismo.csv}\n' >"$WORK/lut.yaml"

# search: a tiny run per agent on the small model, resume after completion and
# after kill -9, and errors before any training.
cat >"$WORK/run.yaml" <<YAML
model: $MODEL
data: $FMNIST
target: bitfusion
constraints: ["weight_memory<=0.2*fp32"]
episodes: 3
validation: 200
calibration: 64
sensitivity_examples: 100
weight_bits: [2, 4, 8]
activation_bits: [4, 8]
staged: {examples: 100}
short_finetune: {steps: 3, batch_size: 32}
final_finetune: {epochs: 0}
ddpg: {warmup_episodes: 1, hidden: 16, batch_size: 4}
deploy: false
YAML
# The ddpg search ends with its deployment (the default) when ONNX Runtime is installed.
HAVE_ORT=0
[ -d "$SRC/tools/node_modules/onnxruntime-node" ] && HAVE_ORT=1
if [ $HAVE_ORT = 1 ]; then sed '/^deploy:/d' "$WORK/run.yaml" >"$WORK/run_deploy.yaml"; else cp "$WORK/run.yaml" "$WORK/run_deploy.yaml"; fi
expect_ok "search ddpg" "$BIN" search --config "$WORK/run_deploy.yaml" --out "$WORK/s_ddpg" --json
$PY - "$WORK/out" <<'PY' && ok || bad "search result.json"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["agent"] == "ddpg" and d["feasible"] and d["evaluations"] >= 1, d
assert all(c["holds"] for c in d["constraints"]), d["constraints"]
assert d["final"]["costs"]["weight_bits"] <= 0.2 * d["final"]["costs"]["fp32_weight_bits"], d["final"]["costs"]
assert 0 < d["final"]["test_top1"] <= 1 and 0 < d["fp32"]["test_top1"] <= 1, d
assert {l["weight_bits"] for l in d["final"]["layers"]} <= {2, 4, 8}, d["final"]["layers"]
PY
for f in best.yaml model.onnx result.json pareto.json journal.sqlite sensitivity.json; do
  [ -s "$WORK/s_ddpg/$f" ] && ok || bad "search output $f missing"
done
cp "$WORK/out" "$WORK/s_ddpg_result.json"
if [ $HAVE_ORT = 1 ]; then
  $PY - "$WORK/out" "$WORK/s_ddpg" <<'PY' && ok || bad "search deployment"
import json, os, sys
d, out = json.load(open(sys.argv[1])), sys.argv[2]
assert d["deploy"]["verified"] and d["deploy"]["bundle"] == out + "/bundle", d.get("deploy")
assert json.load(open(out + "/result.json"))["deploy"] == d["deploy"]
b = json.load(open(out + "/bundle/deploy.json"))
assert b["verification"]["passed"] and b["verification"]["examples"] == 10000, b["verification"]
assert abs(b["verification"]["simulated_top1"] - d["final"]["test_top1"]) < 1e-9, (b["verification"], d["final"])
for f in ("model.onnx", "precision.yaml"):
    assert os.path.getsize(out + "/bundle/" + f) > 0
PY
  # On a measured target the deployed file is timed whole and checked against the latency bound.
  sed -e 's|^target: .*|target: cpu-ort|' -e 's|^constraints: .*|constraints: ["weight_memory<=0.3*fp32", "latency<=100*int8"]|' \
    "$WORK/run_deploy.yaml" >"$WORK/run_ort.yaml"
  AUTOPREC_CACHE_DIR="$WORK/cache" expect_ok "search on cpu-ort" "$BIN" search --config "$WORK/run_ort.yaml" --agent uniform --out "$WORK/s_ort" --json
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); t=d["deploy"]["target_latency"]
assert d["target"] == "cpu-ort" and t["target"] == "cpu-ort" and t["measured_ms"] > 0 and t["timing"] == "kernels", t
c=t["constraints"]; assert len(c) == 1 and c[0]["holds"] and c[0]["bound_ms"] > c[0]["per_layer_sum_ms"] > 0, c' "$WORK/out" && ok || bad "search on cpu-ort checks the deployed latency"
else
  echo "skip: search deployment (tools/node_modules missing; run scripts/setup)"
fi
expect_ok "eval the search result" "$BIN" eval "$WORK/s_ddpg/model.onnx" --precision "$WORK/s_ddpg/best.yaml" --data "$FMNIST" --json
$PY -c 'import json,sys; e=json.load(open(sys.argv[1])); r=json.load(open(sys.argv[2])); assert abs(e["top1"] - r["final"]["test_top1"]) < 1e-9, (e["top1"], r["final"])' "$WORK/out" "$WORK/s_ddpg_result.json" && ok || bad "best.yaml + model.onnx do not reproduce the final accuracy"
expect_ok "search resume of a finished run" "$BIN" search --resume "$WORK/s_ddpg" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["evaluations_this_run"] == 0, d' "$WORK/out" && ok || bad "resume re-evaluated configurations"
for agent in ilp greedy uniform random; do
  expect_ok "search $agent" "$BIN" search --config "$WORK/run.yaml" --agent "$agent" --episodes 2 --out "$WORK/s_$agent" --json
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["agent"] == sys.argv[2] and d["feasible"], d' "$WORK/out" "$agent" && ok || bad "search $agent result"
done
# A held-out validation set: every candidate is scored on it, the training split stays whole.
# Its size is left to adapt (all 150 examples); an explicit count above its size is refused.
{ grep -v '^validation:' "$WORK/run.yaml"; echo "validation_data: npy:$WORK/val_x.npy,$WORK/val_y.npy"; } >"$WORK/run_val.yaml"
expect_ok "search with validation_data" "$BIN" search --config "$WORK/run_val.yaml" --agent uniform --out "$WORK/s_val" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); v=d["validation"]
assert v["held_out"] and v["examples"] == 150 and "val_x.npy" in v["source"], v' "$WORK/out" && ok || bad "search validation_data"
{ cat "$WORK/run_val.yaml"; echo "validation: 200"; } >"$WORK/run_val_200.yaml"
expect_error "search validation above the held-out set" "validation 200 needs more than the 150 examples of npy:" -- "$BIN" search --config "$WORK/run_val_200.yaml" --agent uniform --out "$WORK/s_val_200"
[ ! -e "$WORK/s_val_200" ] && ok || bad "a refused search left an output directory"
# ddpg's warm start: its first evaluations are the ILP and greedy solutions
$PY - "$WORK/s_ddpg/journal.sqlite" "$WORK/s_ilp/journal.sqlite" "$WORK/s_greedy/journal.sqlite" <<'PY' && ok || bad "ddpg warm start"
import sqlite3, sys
first = lambda path, n: [r[0] for r in sqlite3.connect(path).execute("select config_key from evaluations order by id limit ?", (n,))]
ddpg, ilp, greedy = first(sys.argv[1], 2), first(sys.argv[2], 1)[0], first(sys.argv[3], 1)[0]
assert ddpg[0] == ilp, (ddpg, ilp)
assert greedy == ilp or ddpg[1] == greedy, (ddpg, greedy)
PY
# kill -9 in the middle, then --resume finishes without repeating an evaluation
"$BIN" search --config "$WORK/run.yaml" --episodes 6 --out "$WORK/s_kill" --json >/dev/null 2>&1 &
pid=$!
for _ in $(seq 600); do
  n=$($PY -c 'import os,sqlite3,sys
try: print(sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True).execute("select count(*) from evaluations").fetchone()[0] if os.path.exists(sys.argv[1]) else 0)
except Exception: print(0)' "$WORK/s_kill/journal.sqlite" 2>/dev/null)
  [ "${n:-0}" -ge 2 ] && break
  sleep 0.2
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
expect_ok "search resume after kill -9" "$BIN" search --resume "$WORK/s_kill" --json
$PY - "$WORK/out" "$WORK/s_kill/journal.sqlite" <<'PY' && ok || bad "resume after kill"
import json, sqlite3, sys
d = json.load(open(sys.argv[1]))
db = sqlite3.connect(sys.argv[2])
keys = [r[0] for r in db.execute("select config_key from evaluations")]
assert len(keys) == len(set(keys)) and d["evaluations"] == len(keys), (d["evaluations"], keys)
assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
PY
expect_error "search budget below the smallest configuration" "infeasible: the smallest possible weight_memory" -- "$BIN" search --config "$WORK/run.yaml" --constraint "weight_memory<=1KiB" --out "$WORK/s_tiny" --json
[ ! -e "$WORK/s_tiny/journal.sqlite" ] && ok || bad "infeasible search started a journal"
expect_error "search unknown agent" "unknown agent 'ppo'" -- "$BIN" search --config "$WORK/run.yaml" --agent ppo --out "$WORK/s_bad"
printf 'model: m.onnx\nepisodez: 3\n' >"$WORK/bad_run.yaml"
expect_error "search unknown key" "bad_run.yaml:2: unknown key 'episodez'" -- "$BIN" search --config "$WORK/bad_run.yaml"
printf 'model: m.onnx\nvalidation_split: dev\n' >"$WORK/bad_split.yaml"
expect_error "search bad validation split" "bad_split.yaml:2: validation_split must be one of train, test, got 'dev'" -- "$BIN" search --config "$WORK/bad_split.yaml"
expect_error "search latency on generic" "latency" -- "$BIN" search --config "$WORK/run.yaml" --target generic --constraint "latency<=1ms" --out "$WORK/s_lat"
expect_error "search bounded twice" "weight_memory is bounded twice" -- "$BIN" search --config "$WORK/run.yaml" --constraint "weight_memory<=0.3*fp32" --constraint "weight_memory<=0.2*fp32" --out "$WORK/s_twice"
cat >"$WORK/conv_only.yaml" <<YAML
name: conv-only
precisions:
  default: {weight_bits: [4, 8], activation_bits: [8]}
  Gemm: {weight_bits: [16], activation_bits: [16]}
cost_model: {type: generic}
YAML
expect_error "search target without the model's Gemm" "supports no (weight, activation) bit pair for layer" -- "$BIN" search --config "$WORK/run.yaml" --target "$WORK/conv_only.yaml" --out "$WORK/s_conv_only"
[ ! -e "$WORK/s_twice" ] && [ ! -e "$WORK/s_conv_only" ] && ok || bad "a refused search left an output directory"
expect_error "search on a table lacking a choice" "restrict the search to the bit-widths the table has" -- "$BIN" search --config "$WORK/run.yaml" --target "$WORK/lut.yaml" --constraint "weight_memory<=40KiB" --out "$WORK/s_lut"
expect_error "search existing run" "already holds a search" -- "$BIN" search --config "$WORK/run.yaml" --out "$WORK/s_ddpg" --json

echo "cli_search: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
