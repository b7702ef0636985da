#!/usr/bin/env bash
# Evidence for the distributed sensitivity table (docs/search.md): time from
# launch to the journal's run record (set-up, the FP32 score and the
# sensitivity table) of a search on resnet20_fmnist (examples/demo_search.yaml,
# one episode) for one process with 1 and 2 threads, and one and two MPI
# workers with 1 thread each; whether their sensitivity.json are identical.
# Usage: BIN=build/autoprec bench/mpi_sensitivity.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/autoprec}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
sed -e "s|^episodes: .*|episodes: 1|" -e "s|^final_finetune: .*|final_finetune: {epochs: 0}|" \
    examples/demo_search.yaml >"$TMP/run.yaml"
cp "$TMP/run.yaml" "$TMP/mpi.yaml"
printf 'deploy: false\nparallel: {batch: 1, threads: 0}\n' >>"$TMP/run.yaml"   # the process's --threads
printf 'deploy: false\nparallel: {batch: 1, threads: 1}\n' >>"$TMP/mpi.yaml"   # each worker: 1 thread
run() {  # run NAME CONFIG THREADS LAUNCHER...
  local name=$1 config=$2 threads=$3
  shift 3
  date +%s.%N >"$TMP/$name.start"
  "$@" "$BIN" --threads "$threads" search --config "$TMP/$config.yaml" --out "$TMP/$name" --json >"$TMP/$name.json"
}
run one_process_1thread run 1
run one_process_2threads run 2
run one_worker mpi 1 mpirun --oversubscribe --bind-to none -n 2
run two_workers mpi 1 mpirun --oversubscribe --bind-to none -n 3
/usr/bin/python3 - "$TMP" <<'PY'
import datetime, json, sqlite3, sys
tmp = sys.argv[1]
def to_run_record(name):
    start = float(open(f"{tmp}/{name}.start").read())
    c = sqlite3.connect(f"{tmp}/{name}/journal.sqlite")
    created = c.execute("select created from run").fetchone()[0]
    t = datetime.datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    return t - start
names = ["one_process_1thread", "one_process_2threads", "one_worker", "two_workers"]
base = to_run_record("one_process_1thread")
table = lambda n: json.load(open(f"{tmp}/{n}/sensitivity.json"))
print("resnet20_fmnist, examples/demo_search.yaml, launch to the run record (set-up + FP32 score + sensitivity table)")
print(f"sensitivity measurements: {len(table(names[0])['rows'])}")
print("| run | seconds | speed-up vs 1 thread | sensitivity.json = 1 thread's |")
print("|---|---|---|---|")
for n in names:
    s = to_run_record(n)
    print(f"| {n.replace('_', ' ')} | {s:.0f} | {base / s:.2f}x | {'yes' if table(n) == table(names[0]) else 'no'} |")
PY
