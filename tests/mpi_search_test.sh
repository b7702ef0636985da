#!/usr/bin/env bash
# The distributed search: `mpirun -n N autoprec search` gives the journal and
# best.yaml of the single-process run for N = 2 and 3 (same batch K and
# threads per evaluation), prints one JSON object with --json, resumes with
# another N after rank 0 is killed, and refuses bad input with one error line
# and rank 0's exit code. Usage: mpi_search_test.sh AUTOPREC_BINARY SOURCE_DIR.
# Exit 77 (skipped) without mpirun.
set -u
BIN=$1
SRC=$2
PY=/usr/bin/python3
if ! command -v mpirun >/dev/null; then
  echo "skip: the distributed search test needs mpirun (scripts/setup installs openmpi-bin)"
  exit 77
fi
source "$(dirname "$0")/test_lib.sh"
# Open MPI refuses root unless told; CI runs as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --oversubscribe --bind-to none)
# A job that hangs fails its step instead of the whole test's time limit.
RECOVER=(timeout -k 10 300 "${MPIRUN[@]}" --enable-recovery)

cat >"$WORK/run.yaml" <<YAML
model: $SRC/models/small_cnn_fmnist.onnx
data: idx:/usr/share/datasets/fashion-mnist
target: bitfusion
constraints: ["weight_memory<=0.2*fp32"]
episodes: 6
validation: 200
calibration: 64
sensitivity_examples: 100
weight_bits: [2, 4, 8]
activation_bits: [4, 8]
staged: {examples: 100, margin: 0.02}
short_finetune: {steps: 3, batch_size: 32}
final_finetune: {epochs: 0}
ddpg: {warmup_episodes: 2, hidden: 16, batch_size: 4}
parallel: {batch: 3, threads: 1}
deploy: false
YAML

# same_run A B: equal journal rows (all but timings and timestamps), best.yaml
# and sensitivity table (measured on the workers when distributed).
same_run() {
  $PY - "$1" "$2" <<'PY'
import json, sqlite3, sys
def rows(d):
    c = sqlite3.connect(f"{d}/journal.sqlite")
    out = []
    for ep, key, prec, metrics, acc, feas in c.execute(
            "select episode, config_key, precision, metrics, accuracy, feasible from evaluations order by id"):
        out.append((ep, key, prec, json.loads(metrics), acc, feas))
    return out, sorted(c.execute("select kind, evaluation_id from front").fetchall())
a, b = rows(sys.argv[1]), rows(sys.argv[2])
assert a == b, f"journals differ:\n{a}\n{b}"
assert open(f"{sys.argv[1]}/best.yaml").read() == open(f"{sys.argv[2]}/best.yaml").read(), "best.yaml differs"
assert json.load(open(f"{sys.argv[1]}/sensitivity.json")) == json.load(open(f"{sys.argv[2]}/sensitivity.json")), "sensitivity.json differs"
assert len(a[0]) >= 3, a
PY
}

expect_ok "single-process search" "$BIN" search --config "$WORK/run.yaml" --out "$WORK/one" --json
for n in 2 3; do
  expect_ok "mpirun -n $n search" "${MPIRUN[@]}" -n $n "$BIN" search --config "$WORK/run.yaml" --out "$WORK/mpi$n" --json
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["agent"] == "ddpg", d' "$WORK/out" && ok || bad "mpirun -n $n: stdout is not one JSON object: $(head -c 300 "$WORK/out")"
  same_run "$WORK/one" "$WORK/mpi$n" && ok || bad "mpirun -n $n: journal or best.yaml differs from the single-process run"
done
expect_ok "mpirun -n 1 search" "${MPIRUN[@]}" -n 1 "$BIN" search --config "$WORK/run.yaml" --out "$WORK/mpi1" --json
same_run "$WORK/one" "$WORK/mpi1" && ok || bad "mpirun -n 1 differs from the plain run"

# Rank 0 killed mid-search; --resume with another worker count ends where the uninterrupted run does.
"${MPIRUN[@]}" -n 3 "$BIN" search --config "$WORK/run.yaml" --out "$WORK/killed" --json >/dev/null 2>&1 &
launcher=$!
for _ in $(seq 1 600); do
  n=$($PY -c 'import sqlite3,sys
try: print(sqlite3.connect(sys.argv[1]).execute("select count(*) from evaluations").fetchone()[0])
except Exception: print(0)' "$WORK/killed/journal.sqlite" 2>/dev/null)
  [ "${n:-0}" -ge 1 ] && break
  sleep 0.2
done
pkill -9 -f -- "--out $WORK/killed" ; wait $launcher 2>/dev/null
[ -f "$WORK/killed/result.json" ] && echo "note: the run finished before it was killed"
expect_ok "resume with mpirun -n 2 after kill -9" "${MPIRUN[@]}" -n 2 "$BIN" search --resume "$WORK/killed" --json
same_run "$WORK/one" "$WORK/killed" && ok || bad "the resumed distributed run differs from the uninterrupted one"

# Under mpirun --enable-recovery a worker killed mid-search is replaced: its
# task goes to another worker once its lease (parallel.worker_timeout) runs
# out, and the run ends as the uninterrupted one did. Worker rank 1 kills
# itself with SIGKILL when it is given its first candidate
# (AUTOPREC_FAULT_CRASH_AT=candidate:1), so that it dies holding a task.
sed 's/^parallel: .*/parallel: {batch: 3, threads: 1, worker_timeout: 8}/' "$WORK/run.yaml" >"$WORK/recover.yaml"
AUTOPREC_FAULT_CRASH_AT=candidate:1 "${RECOVER[@]}" -x AUTOPREC_FAULT_CRASH_AT -n 3 "$BIN" search \
  --config "$WORK/recover.yaml" --out "$WORK/recover" --json >"$WORK/recover.out" 2>"$WORK/recover.err"
code=$?
[ $code -eq 0 ] && [ -f "$WORK/recover/result.json" ] && ok ||
  bad "--enable-recovery with a worker killed: exit $code, $(tail -c 400 "$WORK/recover.err")"
grep -q "worker rank 1 did not answer within 8 s (parallel.worker_timeout): taken as lost" "$WORK/recover.err" && ok ||
  bad "--enable-recovery: rank 0 did not say the killed worker was lost: $(tail -c 400 "$WORK/recover.err")"
same_run "$WORK/one" "$WORK/recover" && ok || bad "the run that lost a worker differs from the uninterrupted one"

# A configuration that kills every worker that takes it is journaled as
# failed after parallel.max_attempts workers, and the search goes on with the
# workers left (AUTOPREC_FAULT_CRASH_AT=key:K makes a worker SIGKILL itself on
# configuration K; K is the single-process run's first candidate).
crash_key=$($PY -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select config_key from evaluations order by id limit 1").fetchone()[0])' "$WORK/one/journal.sqlite")
sed 's/^parallel: .*/parallel: {batch: 3, threads: 1, worker_timeout: 8, max_attempts: 2}/' "$WORK/run.yaml" >"$WORK/crash.yaml"
AUTOPREC_FAULT_CRASH_AT=key:$crash_key "${RECOVER[@]}" -x AUTOPREC_FAULT_CRASH_AT -n 4 "$BIN" search \
  --config "$WORK/crash.yaml" --out "$WORK/crash" --json >"$WORK/crash.out" 2>"$WORK/crash.err"
code=$?
[ $code -eq 0 ] && [ -f "$WORK/crash/result.json" ] && ok ||
  bad "--enable-recovery with a configuration that kills its workers: exit $code, $(tail -c 400 "$WORK/crash.err")"
$PY - "$WORK/crash/journal.sqlite" "$crash_key" <<'PY' && ok || bad "the configuration that killed its workers is not journaled as failed: $(tail -c 400 "$WORK/crash.err")"
import json, sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute("select config_key, metrics, feasible from evaluations").fetchall()
failed = [(k, json.loads(m), f) for k, m, f in rows if "failed" in json.loads(m)]
assert [k for k, _, _ in failed] == [sys.argv[2]], failed
assert "2 time(s)" in failed[0][1]["failed"] and failed[0][2] == 0, failed
assert len(rows) >= 3, rows
PY
[ "$(grep -c 'did not answer within 8 s' "$WORK/crash.err")" -eq 2 ] && grep -q 'journaled as failed' "$WORK/crash.err" && ok ||
  bad "--enable-recovery: rank 0 did not say both workers were lost and the configuration failed: $(tail -c 600 "$WORK/crash.err")"

# A worker dead before its hello is waited for one lease and taken as lost;
# the job then ends without MPI_Finalize (which can hang on the dead rank)
# and with rank 0's exit code.
AUTOPREC_FAULT_CRASH_AT=setup:1 "${RECOVER[@]}" -x AUTOPREC_FAULT_CRASH_AT -n 3 "$BIN" search \
  --config "$WORK/recover.yaml" --out "$WORK/nohello" --json >"$WORK/nohello.out" 2>"$WORK/nohello.err"
code=$?
[ $code -eq 0 ] && [ -f "$WORK/nohello/result.json" ] && grep -q "worker rank 1 did not say hello within 8 s" "$WORK/nohello.err" && ok ||
  bad "--enable-recovery with a worker dead before its hello: exit $code, $(tail -c 400 "$WORK/nohello.err")"
same_run "$WORK/one" "$WORK/nohello" && ok || bad "the run that lost a worker before its hello differs from the uninterrupted one"

# Bad input: rank 0's exit code, one autoprec error line.
sed 's/^episodes: .*/episodes: 0/' "$WORK/run.yaml" >"$WORK/bad.yaml"
"${MPIRUN[@]}" -n 3 "$BIN" search --config "$WORK/bad.yaml" --out "$WORK/bad" >"$WORK/out" 2>"$WORK/err"
code=$?
[ $code -eq 2 ] && [ "$(grep -c '^autoprec: error:' "$WORK/err")" -eq 1 ] && [ ! -e "$WORK/bad" ] && ok ||
  bad "mpirun with a bad configuration: exit $code, $(cat "$WORK/err")"
sed 's/^ddpg: .*/ddpg: {tau: 0}/' "$WORK/run.yaml" >"$WORK/tau.yaml"
"${MPIRUN[@]}" -n 2 "$BIN" search --config "$WORK/tau.yaml" --out "$WORK/tau" >"$WORK/out" 2>"$WORK/err"
code=$?
[ $code -eq 2 ] && grep -q '^autoprec: error: .*tau' "$WORK/err" && [ ! -e "$WORK/tau" ] && ok ||
  bad "mpirun with ddpg tau 0: exit $code, $(cat "$WORK/err")"

echo "mpi search tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
