# Helpers of the command-line test scripts: a scratch directory $WORK
# (removed on exit), the pass/fail counters, and the expect_* checks. The
# caller sources this after its skip checks and ends with its own summary.
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

# expect_error NAME SUBSTRING -- COMMAND...: exit code 2, exactly one stderr
# line starting "autoprec: error:" and containing SUBSTRING, empty stdout.
expect_error() {
  local name=$1 want=$2
  shift 3
  "$@" >"$WORK/out" 2>"$WORK/err"
  local code=$?
  local lines
  lines=$(wc -l <"$WORK/err")
  if [ "$code" -ne 2 ]; then bad "$name: exit code $code, expected 2 ($(head -c 300 "$WORK/err"))"; return; fi
  if [ "$lines" -ne 1 ]; then bad "$name: $lines stderr lines, expected 1: $(head -c 500 "$WORK/err")"; return; fi
  if ! grep -q "^autoprec: error: .*$want" "$WORK/err"; then bad "$name: stderr lacks '$want': $(cat "$WORK/err")"; return; fi
  if [ -s "$WORK/out" ]; then bad "$name: wrote to stdout"; return; fi
  echo "ok: $name -> $(cat "$WORK/err")"
  ok
}

# A check that ran and failed: exit 1, one "autoprec: error:" line; stdout
# (the report, JSON with --json) is kept in $WORK/out.
expect_check_failed() {
  local name=$1 want=$2
  shift 3
  "$@" >"$WORK/out" 2>"$WORK/err"
  local code=$?
  if [ "$code" -ne 1 ]; then bad "$name: exit code $code, expected 1 ($(head -c 300 "$WORK/err"))"; return; fi
  if [ "$(grep -c '^autoprec: error:' "$WORK/err")" -ne 1 ] || ! grep -q "^autoprec: error: .*$want" "$WORK/err"; then
    bad "$name: stderr lacks one error line with '$want': $(tail -c 500 "$WORK/err")"; return
  fi
  echo "ok: $name -> $(grep '^autoprec: error:' "$WORK/err")"
  ok
}

expect_ok() {
  local name=$1
  shift
  if "$@" >"$WORK/out" 2>"$WORK/err"; then ok; echo "ok: $name"; else bad "$name: exit $? $(tail -c 500 "$WORK/err")"; fi
}
