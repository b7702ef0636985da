#!/usr/bin/env bash
# Evidence for the search (docs/search.md): for each model, budget and agent,
# the final test top-1 after the same final fine-tune, the number of evaluated
# candidates and the wall time. Settings come from examples/demo_search.yaml
# with these overrides (environment):
#   MODELS="resnet20 mobilenetv2_mini"  BUDGETS="weight_memory<=0.125*fp32 weight_memory<=0.1*fp32 latency<=0.6*int8"
#   AGENTS="uniform greedy ilp random ddpg-plain ddpg"  EPISODES=12  FINAL_EPOCHS=1  FINAL_EXAMPLES=0 (all)  TARGET=bitfusion
# "ddpg-plain" is the ddpg agent as in HAQ: no ILP warm start, no staged
# evaluation (every candidate fine-tuned); "ddpg-no-warm-start" and
# "ddpg-no-staged" leave out one of the two.
# Usage: bench/search_table.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/autoprec ] || bash scripts/build >/dev/null
# KEEP_DIR=DIR keeps every run (journal, result.json) under DIR and writes DIR/report.html, all runs on one page.
if [ -n "${KEEP_DIR:-}" ]; then
  TMP=$KEEP_DIR
  mkdir -p "$TMP"
else
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
fi
MODELS=${MODELS:-resnet20 mobilenetv2_mini}
BUDGETS=${BUDGETS:-weight_memory<=0.125*fp32 weight_memory<=0.1*fp32 latency<=0.6*int8}
AGENTS=${AGENTS:-uniform greedy ilp random ddpg-plain ddpg}
EPISODES=${EPISODES:-12}
FINAL_EPOCHS=${FINAL_EPOCHS:-1}
echo "settings: examples/demo_search.yaml, episodes $EPISODES, final fine-tune $FINAL_EPOCHS epoch(s), target ${TARGET:-bitfusion}"
echo "| model | budget | agent | FP32 test % | final test % | best validation % (search) | best at evaluation | evaluations (fine-tuned) | search s | wall s | weight memory % of FP32 | ${TARGET:-bitfusion} latency ms |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for m in $MODELS; do
  for b in $BUDGETS; do
    for a in $AGENTS; do
      sed -e "s|^model: .*|model: models/${m}_fmnist.onnx|" -e "s|^episodes: .*|episodes: $EPISODES|" \
          -e "s|^final_finetune: .*|final_finetune: {epochs: $FINAL_EPOCHS, batch_size: 128, examples: ${FINAL_EXAMPLES:-0}}|" \
          -e "s|^target: .*|target: ${TARGET:-bitfusion}|" examples/demo_search.yaml >"$TMP/run.yaml"
      agent=$a
      case $a in
        ddpg-plain | ddpg-no-warm-start) sed -i -e "s|^warm_start: .*|warm_start: false|" "$TMP/run.yaml" ;;&
        ddpg-plain | ddpg-no-staged) sed -i -e "s|^staged: .*|staged: {enabled: false}|" "$TMP/run.yaml" ;;&
        ddpg-*) agent=ddpg ;;
      esac
      echo "deploy: false" >>"$TMP/run.yaml"
      start=$(date +%s.%N)
      if ! build/autoprec search --config "$TMP/run.yaml" --constraint "$b" --agent "$agent" \
          --out "$TMP/$m-$a-$(echo "$b" | tr -c 'a-z0-9' _)" --json >"$TMP/r.json" 2>"$TMP/err"; then
        echo "| $m | \`$b\` | $a | $(tail -n 1 "$TMP/err" | sed 's/^autoprec: error: //') ||||||||"
        continue
      fi
      end=$(date +%s.%N)
      /usr/bin/python3 - "$TMP/r.json" "$m" "$b" "$a" "$start" "$end" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); c = d["final"]["costs"]
wall = float(sys.argv[6]) - float(sys.argv[5])
lat = f"{c['latency_ms']:.4f}" if "latency_ms" in c else "-"
print(f"| {sys.argv[2]} | `{sys.argv[3]}` | {sys.argv[4]} | {100*d['fp32']['test_top1']:.2f} | {100*d['final']['test_top1']:.2f} | "
      f"{100*d['search']['best_validation_top1']:.2f} | {d['search']['best_id']} | {d['evaluations']} ({d['short_finetunes_this_run']}) | {d['search_seconds']:.0f} | {wall:.0f} | "
      f"{100*c['weight_bits']/c['fp32_weight_bits']:.1f} | {lat} |")
PY
    done
  done
done
# With KEEP_DIR, the table's runs as one page: every run on one front.
if [ -n "${KEEP_DIR:-}" ]; then
  runs=()
  for d in "$TMP"/*/; do [ -f "$d/journal.sqlite" ] && runs+=("$d"); done
  ((${#runs[@]})) && build/autoprec report "${runs[@]}" --out "$TMP/report.html"
fi
