#!/usr/bin/env bash
# run.sh - `make bench`: the benchmark suite of issue 10 in one command
# (timings, never pass/fail). Runs the scenarios in this order:
#   ceilings  openssl speed, the spool file system's fsync rate, raw SMTP
#   inbound   mxgate vs Postfix + OpenDKIM + OpenDMARC (the shared rig)
#   outbound  relay with dual DKIM signing vs openssl speed
#   idle      10,000 idle connections, RSS per connection
# each into BENCH_OUT/<scenario>/ (its log in BENCH_OUT/<scenario>.log),
# then writes BENCH_OUT/results.txt (every result line) and
# BENCH_OUT/results.md (the table of BENCHMARKS.md, filled in).
#
# Defaults are a small run (a few minutes); bigger runs through the
# environment, e.g.
#   BENCH_MESSAGES=5000 BENCH_SESSIONS=20 BENCH_RUNS=3 BENCH_SIZE=large make bench
# BENCH_SCENARIOS="inbound idle" picks scenarios; BENCH_UPDATE_DOC=1 writes
# the table into BENCHMARKS.md; BENCH_MICRO=1 also runs the older
# micro-benchmarks (spf.sh, dkim.sh, commit.sh). All settings: benchlib.sh.
# Root is needed for the peer (the rig runs Postfix, the milters and DNS on
# port 53); without it the peer is skipped (BENCH_PEER=0).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
export BENCH_OUT=${BENCH_OUT:-$root/build/bench-results/$(date +%Y%m%d-%H%M%S)}
case $BENCH_OUT in /*) ;; *) BENCH_OUT=$root/$BENCH_OUT ;; esac
mkdir -p "$BENCH_OUT"
if [ "$(id -u)" != 0 ] && [ "${BENCH_PEER:-1}" = 1 ]; then
	echo "run.sh: not root: the peer (Postfix + milters) is skipped" >&2
	export BENCH_PEER=0
fi
make -s SAN=0 build/mxgate build/smtpload || exit 1
failed=""
{
	echo "mxgate benchmarks (issue 10), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+changes')"
	echo "settings: size=${BENCH_SIZE:-small} messages=${BENCH_MESSAGES:-500} sessions=${BENCH_SESSIONS:-20} runs=${BENCH_RUNS:-1} per_conn=${BENCH_PER_CONN:-1} fail_fraction=${BENCH_FAIL_FRACTION:-0.1} sign=${BENCH_SIGN:-both} dump=${BENCH_DUMP:-1} perf=${BENCH_PERF:-auto} idle=${BENCH_IDLE_CONNS:-10000}"
} > "$BENCH_OUT/results.txt"
cat "$BENCH_OUT/results.txt"
for s in ${BENCH_SCENARIOS:-ceilings inbound outbound idle}; do
	[ -x "tests/bench/$s.sh" ] || { echo "run.sh: no scenario $s" >&2; failed="$failed $s"; continue; }
	echo "== $s (log: $BENCH_OUT/$s.log)"
	if tests/bench/"$s".sh > "$BENCH_OUT/$s.log" 2>&1; then
		cat "$BENCH_OUT/$s/result.txt" | tee -a "$BENCH_OUT/results.txt"
	else
		echo "run.sh: scenario $s failed:" >&2
		tail -5 "$BENCH_OUT/$s.log" >&2
		failed="$failed $s"
	fi
done
if [ "${BENCH_MICRO:-0}" = 1 ]; then
	echo "== micro-benchmarks (log: $BENCH_OUT/micro.log)"
	{ tests/bench/spf.sh; tests/bench/dkim.sh; tests/bench/commit.sh; } > "$BENCH_OUT/micro.log" 2>&1 || failed="$failed micro"
	sed 's/^/MICRO   /' "$BENCH_OUT/micro.log" | tee -a "$BENCH_OUT/results.txt"
fi
/usr/bin/python3 tests/bench/report.py table "$BENCH_OUT" > "$BENCH_OUT/results.md"
[ "${BENCH_UPDATE_DOC:-0}" = 1 ] && /usr/bin/python3 tests/bench/report.py table "$BENCH_OUT" --update BENCHMARKS.md > /dev/null
echo "results: $BENCH_OUT/results.txt, table: $BENCH_OUT/results.md"
[ -z "$failed" ] || { echo "run.sh: failed:$failed" >&2; exit 1; }
