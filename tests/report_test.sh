#!/usr/bin/env bash
# The HTML report end to end: a search on a model whose layer names hold
# markup and script writes outcomes.json and report.html; headless Chromium
# (tools/report_check.js) finds no request leaving the page, no console or
# script error, every plot drawn and every layer name shown as text; reports
# of an interrupted run, an infeasible run and two runs together render and
# say what they lack; a directory that is not a run is one error line.
# Usage: report_test.sh AUTOPREC_BINARY SOURCE_DIR. Exit 77 (skipped) without
# Chromium or tools/node_modules.
set -u
BIN=$1
SRC=$2
PY=/usr/bin/python3
FMNIST=idx:/usr/share/datasets/fashion-mnist
CHECK="node $SRC/tools/report_check.js"
if ! command -v node >/dev/null || [ ! -d "$SRC/tools/node_modules/playwright-core" ] ||
   ! { [ -x /usr/bin/chromium ] || [ -n "${CHROMIUM:-}" ]; }; then
  echo "skip: the report's browser test needs node, tools/node_modules (scripts/setup) and Debian's chromium"
  exit 77
fi
source "$(dirname "$0")/test_lib.sh"

# A model whose quantizable layers are named with markup, quotes and script,
# in a directory whose name holds markup too.
HOSTILE_DIR="$WORK/m<b>\"x\"&amp;"
mkdir -p "$HOSTILE_DIR"
MODEL="$HOSTILE_DIR/hostile.onnx"
$PY - "$SRC/models/small_cnn_fmnist.onnx" "$MODEL" "$WORK/names.json" <<'PY'
import json, sys, onnx
m = onnx.load(sys.argv[1])
hostile = ['<script>window.__autoprec_injected=true</script>',
           '"quoted" & \'single\' </svg><img src=x onerror="window.__autoprec_injected=true">',
           '</script><script>window.__autoprec_injected=true</script>',
           '<!-- ]]> {{x}} ${y}']
names = []
for n in m.graph.node:
    if n.op_type in ('Conv', 'Gemm'):
        n.name = hostile[len(names)]
        names.append(n.name)
onnx.save(m, sys.argv[2])
json.dump(names, open(sys.argv[3], 'w'))
PY
cat >"$WORK/run.yaml" <<YAML
model: '$MODEL'
data: $FMNIST
target: bitfusion
constraints: ["weight_memory<=0.3*fp32"]
episodes: 4
validation: 200
calibration: 64
sensitivity_examples: 100
weight_bits: [2, 4, 8]
activation_bits: [8]
staged: {examples: 100}
short_finetune: {steps: 2, batch_size: 32}
final_finetune: {epochs: 0}
ddpg: {warmup_episodes: 1, hidden: 16, batch_size: 4}
YAML
if [ ! -d "$SRC/tools/node_modules/onnxruntime-node" ]; then echo "deploy: false" >>"$WORK/run.yaml"; fi
RUN="$WORK/run<i>1&\"q\""
expect_ok "search on the hostile model" "$BIN" search --config "$WORK/run.yaml" --out "$RUN" --json
for f in report.html outcomes.json result.json; do
  [ -s "$RUN/$f" ] && ok || bad "the search did not write $f"
done
$PY - "$RUN/outcomes.json" "$RUN/result.json" <<'PY' && ok || bad "outcomes.json does not match result.json"
import json, sys
o, r = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
n = o["examples"]
assert len(o["fp32_top1_correct"]) == len(o["result_top1_correct"]) == n > 0, o.keys()
assert abs(o["fp32_top1_correct"].count("1") / n - r["fp32"]["test_top1"]) < 1e-9
assert abs(o["result_top1_correct"].count("1") / n - r["final"]["test_top1"]) < 1e-9
PY
grep -q "window.__autoprec_injected=true</script>" "$RUN/report.html" && bad "a layer name reached the page unescaped" || ok

expect_ok "report --json" "$BIN" report "$RUN" --out "$WORK/one.html" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["runs"] == 1 and d["plots"] >= 4 and 0 < d["bytes"] < 3 * 2**20, d' "$WORK/out" && ok || bad "report --json: $(cat "$WORK/out")"

# browser NAME FILE [EXPECTED_TEXTS_JSON]: report_check.js passes.
browser() {
  local name=$1 file=$2 expect=${3:-}
  local args=("$file")
  [ -n "$expect" ] && args+=(--expect-file "$expect")
  if $CHECK "${args[@]}" >"$WORK/check" 2>"$WORK/check_err"; then
    ok; echo "ok: $name in Chromium: $(cat "$WORK/check")"
  else
    bad "$name in Chromium: $(cat "$WORK/check") $(tail -c 300 "$WORK/check_err")"
  fi
}
browser "the search's report" "$RUN/report.html" "$WORK/names.json"
browser "report of the finished run" "$WORK/one.html" "$WORK/names.json"

# A run interrupted before its end: journal only.
PARTIAL="$WORK/partial"
mkdir -p "$PARTIAL"
cp "$RUN/journal.sqlite" "$PARTIAL/"
expect_ok "report of an interrupted run" "$BIN" report "$PARTIAL" --json
echo '["The search has not finished"]' >"$WORK/partial.json"
browser "report of an interrupted run" "$PARTIAL/report.html" "$WORK/partial.json"

# An infeasible search still ends with a report that says which constraint binds.
sed 's/constraints: .*/constraints: ["weight_memory<=0.3*fp32", "accuracy>=0.999"]/; /^deploy:/d' "$WORK/run.yaml" >"$WORK/infeasible.yaml"
echo "deploy: false" >>"$WORK/infeasible.yaml"
expect_check_failed "infeasible search" "no configuration met every constraint" -- "$BIN" search --config "$WORK/infeasible.yaml" --out "$WORK/infeasible" --json
echo '["Infeasible", "accuracy>=0.999", "not deployed"]' >"$WORK/infeasible.json"
browser "report of an infeasible run" "$WORK/infeasible/report.html" "$WORK/infeasible.json"

# Two runs on one front and one table.
expect_ok "report of two runs" "$BIN" report "$RUN" "$WORK/infeasible" --out "$WORK/both.html" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["runs"] == 2, d' "$WORK/out" && ok || bad "two-run report: $(cat "$WORK/out")"
echo '["run<i>1&\"q\"", "infeasible"]' >"$WORK/both.json"
browser "report of two runs" "$WORK/both.html" "$WORK/both.json"

# Not a run directory, a missing one, a damaged one: one error line, nothing written.
expect_error "report of a plain directory" "is not a search run directory" -- "$BIN" report "$HOSTILE_DIR"
[ ! -e "$HOSTILE_DIR/report.html" ] && ok || bad "a refused report wrote a file"
expect_error "report of a missing directory" "is not a directory" -- "$BIN" report "$WORK/nope"
cp -r "$PARTIAL" "$WORK/damaged"
echo '{"truncated' >"$WORK/damaged/result.json"
expect_error "report of a damaged result.json" "is not valid JSON" -- "$BIN" report "$WORK/damaged"
echo "not sqlite" >"$WORK/notjournal.sqlite"
mkdir -p "$WORK/fake" && cp "$WORK/notjournal.sqlite" "$WORK/fake/journal.sqlite"
expect_error "report of a file that is not a journal" "journal" -- "$BIN" report "$WORK/fake"

echo "report tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
