#!/usr/bin/env bash
# The report at scale (issue: under 5 s and 3 MB for a 600-evaluation
# journal, responsive with every point drawn). Takes a finished run
# directory, grows a copy of its journal to N evaluations (random per-layer
# bits, costs and accuracies perturbed from the run's own rows), writes the
# report and opens it in headless Chromium.
# Usage: bench/report_scale.sh RUN_DIR [N=600]
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:?usage: bench/report_scale.sh RUN_DIR [N]}
N=${2:-600}
[ -x build/autoprec ] || bash scripts/build >/dev/null
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cp -r "$RUN" "$TMP/run"
rm -f "$TMP/run/report.html"
/usr/bin/python3 - "$TMP/run/journal.sqlite" "$N" <<'PY'
import json, random, sqlite3, sys
db = sqlite3.connect(sys.argv[1]); n = int(sys.argv[2]); rng = random.Random(0)
rows = db.execute("select episode, config_key, precision, metrics, accuracy, feasible, seconds from evaluations").fetchall()
layers = len(rows[0][1].split(","))
choices = sorted({t for r in rows for t in r[1].split(",")})
have = {r[1] for r in rows}
episode = max(r[0] for r in rows)
while len(have) < n:
    key = ",".join(rng.choice(choices) for _ in range(layers))
    if key in have: continue
    have.add(key); episode += 1
    base = rng.choice(rows)
    m = json.loads(base[3])
    for k in m.get("costs", {}):
        if isinstance(m["costs"][k], (int, float)) and k != "fp32_weight_bits": m["costs"][k] *= rng.uniform(0.8, 1.2)
    acc = max(0.0, min(1.0, base[4] + rng.gauss(0, 0.02)))
    m["validation_top1"] = acc
    db.execute("insert into evaluations(episode, config_key, precision, metrics, accuracy, feasible, seconds, created) "
               "values (?, ?, ?, ?, ?, ?, ?, '2026-01-01T00:00:00.000Z')",
               (episode, key, base[2], json.dumps(m), acc, base[5], base[6]))
db.commit()
print(f"journal: {db.execute('select count(*) from evaluations').fetchone()[0]} evaluations")
PY
start=$(date +%s.%N)
build/autoprec report "$TMP/run" --json >"$TMP/summary.json"
end=$(date +%s.%N)
/usr/bin/python3 - "$TMP/summary.json" "$start" "$end" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"autoprec report: {float(sys.argv[3]) - float(sys.argv[2]):.2f} s wall, {d['bytes'] / 2**20:.2f} MiB, "
      f"{d['evaluations']} evaluations, {d['plots']} plots")
PY
if node tools/report_check.js "$TMP/run/report.html" >"$TMP/check.json"; then
  /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("Chromium: every plot drawn %d ms after navigation started; no request left the page; no console error" % d["render_ms"])' "$TMP/check.json"
else
  echo "Chromium check failed: $(cat "$TMP/check.json")"
fi
