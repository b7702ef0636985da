#!/usr/bin/env bash
# Evidence for the distributed search (docs/search.md): wall time of the
# search on resnet20_fmnist (examples/demo_search.yaml, EPISODES episodes in
# batches of K) for one MPI worker x 1 thread (mpirun -n 2), two workers x 1
# thread (mpirun -n 3), and one process with 2 threads, and whether their
# best.yaml and journals are identical. The sensitivity table is computed once
# and given to every run, so the times are the episodes phase plus set-up.
# Usage: EPISODES=48 K=8 [BIN=build/autoprec] bench/mpi_speedup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/autoprec}
[ -x "$BIN" ] || bash scripts/build >/dev/null
EPISODES=${EPISODES:-48}
K=${K:-8}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
config() {  # config THREADS
  sed -e "s|^episodes: .*|episodes: $EPISODES|" -e "s|^final_finetune: .*|final_finetune: {epochs: 0}|" \
      examples/demo_search.yaml >"$TMP/run$1.yaml"
  printf 'deploy: false\nparallel: {batch: %s, threads: %s}\n' "$K" "$1" >>"$TMP/run$1.yaml"
}
config 1
config 2
# The shared sensitivity table: a 1-episode run of the same configuration.
sed -e "s|^episodes: .*|episodes: 1|" "$TMP/run1.yaml" >"$TMP/sens.yaml"
"$BIN" search --config "$TMP/sens.yaml" --out "$TMP/sens" --json >/dev/null
run() {  # run NAME THREADS LAUNCHER...
  local name=$1 threads=$2
  shift 2
  mkdir -p "$TMP/$name"
  cp "$TMP/sens/sensitivity.json" "$TMP/$name/"
  local start end
  start=$(date +%s.%N)
  "$@" "$BIN" --threads "$threads" search --config "$TMP/run$threads.yaml" --out "$TMP/$name" --json >"$TMP/$name.json"
  end=$(date +%s.%N)
  echo "$name $start $end" >>"$TMP/times"
}
run one_worker 1 mpirun --oversubscribe --bind-to none -n 2
run two_workers 1 mpirun --oversubscribe --bind-to none -n 3
run one_process_2threads 2
/usr/bin/python3 - "$TMP" "$EPISODES" "$K" <<'PY'
import json, sqlite3, sys
tmp, episodes, k = sys.argv[1], sys.argv[2], sys.argv[3]
times = {n: float(e) - float(s) for n, s, e in (l.split() for l in open(f"{tmp}/times"))}
def journal(name):
    c = sqlite3.connect(f"{tmp}/{name}/journal.sqlite")
    return [(e, key, m) for e, key, m in c.execute("select episode, config_key, accuracy from evaluations order by id")]
base = "one_worker"
print(f"resnet20_fmnist, examples/demo_search.yaml, {episodes} episodes, batch K = {k}, shared sensitivity table")
import datetime
def episodes_phase(name):
    # From the run's start in the journal to its last evaluation: the episodes, without set-up and the final test.
    c = sqlite3.connect(f"{tmp}/{name}/journal.sqlite")
    t = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    start = t(c.execute("select created from run").fetchone()[0])
    last = t(c.execute("select max(created) from evaluations").fetchone()[0])
    return (last - start).total_seconds()
print("| run | episodes phase s | speed-up (episodes) | wall s | speed-up (wall) | evaluations | best validation % | best.yaml = one worker's | journal = one worker's |")
print("|---|---|---|---|---|---|---|---|---|")
for name in ["one_worker", "two_workers", "one_process_2threads"]:
    r = json.load(open(f"{tmp}/{name}.json"))
    same_best = open(f"{tmp}/{name}/best.yaml").read() == open(f"{tmp}/{base}/best.yaml").read()
    same_journal = journal(name) == journal(base)
    t = float(times[name])
    e = episodes_phase(name)
    print(f"| {name.replace('_', ' ')} | {e:.0f} | {episodes_phase(base) / e:.2f}x | {t:.0f} | {float(times[base]) / t:.2f}x | {r['evaluations']} | "
          f"{100 * r['search']['best_validation_top1']:.2f} | {'yes' if same_best else 'no'} | {'yes' if same_journal else 'no'} |")
PY
