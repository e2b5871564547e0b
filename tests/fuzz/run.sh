#!/bin/sh
# Build the libFuzzer targets (make fuzz-build) and run each for a bounded
# time, FUZZ_JOBS of them at once.
# Usage: tests/fuzz/run.sh [target ...]     (default: every FUZZ_TARGETS)
# FUZZ_SECONDS (default 30) per target; FUZZ_JOBS (default: the number of
# cores) targets at once. Corpora grow in build-fuzz/corpus-NAME (not in
# git); the committed seeds in tests/fuzz/seeds/NAME are required (a target
# without any is a failure) and a dictionary tests/fuzz/NAME.dict is used
# when present. Crash inputs go to build-fuzz/artifacts-NAME/, logs to
# build-fuzz/logs/.
# Prints one line per target, in target order ("NAME: N runs in Ss, corpus
# N, ok" or "NAME: FAILED ..." with the log's summary); exits 1 if any
# target failed to build, had no seeds or crashed.
set -u
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/../.." || exit 1
seconds=${FUZZ_SECONDS:-30}
MAKE=${MAKE:-make}
results=build-fuzz/results

max_len() {
	case "$1" in
	fuzz_command) echo 1100 ;;	# a command line, 512 octets and more
	fuzz_path) echo 600 ;;		# past the 256-octet path limit
	fuzz_datastream) echo 4096 ;;	# several lines over 998 octets
	fuzz_envelope) echo 2048 ;;
	fuzz_report_import) echo 65536 ;;	# gzip, zip and MIME containers
	fuzz_http) echo 9000 ;;		# past the 8 KiB request head
	fuzz_config) echo 24576 ;;	# etc/mxgate.ini whole (20 KB)
	*) echo 4096 ;;
	esac
}

# One target (run by xargs, FUZZ_JOBS at once): its line(s) go to
# build-fuzz/results/NAME, written whole when the run is over.
if [ "${1:-}" = "--one" ]; then
	t=$2
	bin=build-fuzz/$t
	seeds=tests/fuzz/seeds/$t
	corpus=build-fuzz/corpus-$t
	artifacts=build-fuzz/artifacts-$t/
	log=build-fuzz/logs/$t.log
	out=$results/$t
	if [ -z "$(ls -A "$seeds" 2>/dev/null)" ]; then
		echo "$t: FAILED: no seeds (tests/fuzz/seeds/$t/ is missing or empty)" \
		    >"$out.tmp"
		mv "$out.tmp" "$out"
		exit 0
	fi
	mkdir -p "$corpus" "$artifacts"
	set -- -max_total_time="$seconds" -max_len="$(max_len "$t")" \
	    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix="$artifacts"
	if [ -f "tests/fuzz/$t.dict" ]; then
		set -- "$@" -dict="tests/fuzz/$t.dict"
	fi
	start=$(date +%s)
	"$bin" "$@" "$corpus" "$seeds" >"$log" 2>&1
	rc=$?
	took=$(($(date +%s) - start))
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	files=$(find "$corpus" -type f | wc -l)
	if [ "$rc" -eq 0 ]; then
		echo "$t: ${runs:-?} runs in ${took}s, corpus $files, ok" >"$out.tmp"
	else
		crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
		{
			echo "$t: FAILED (exit $rc) after ${runs:-?} runs; input ${crash:-none}, log $log"
			grep -E 'ERROR|SUMMARY|^ *#[0-9]+ ' "$log" | head -n 12 | sed 's/^/  /'
		} >"$out.tmp"
	fi
	mv "$out.tmp" "$out"
	exit 0
fi

# the targets the Makefile knows (make expands $(FUZZ_TARGETS))
# shellcheck disable=SC2016
known=$(printf 'print-fuzz-targets:\n\t@echo $(FUZZ_TARGETS)\n' |
    $MAKE -s --no-print-directory -f Makefile -f - print-fuzz-targets)
if [ $# -gt 0 ]; then
	targets="$*"
else
	targets=$known
fi
cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
jobs=${FUZZ_JOBS:-$cores}
case "$jobs" in
''|*[!0-9]*|0) jobs=1 ;;
esac

mkdir -p build-fuzz/logs
if ! $MAKE -j"$jobs" fuzz-build >build-fuzz/logs/build.log 2>&1; then
	echo "fuzz: build FAILED (make fuzz-build)"
	sed 's/^/  /' build-fuzz/logs/build.log | grep -v '^  make' | tail -n 20
	exit 1
fi

run=""
for t in $targets; do
	case " $known " in
	*" $t "*) run="$run $t" ;;
	*) echo "$t: skipped (not in the Makefile's FUZZ_TARGETS)" ;;
	esac
done
rm -rf "$results"
mkdir -p "$results"
# shellcheck disable=SC2086
printf '%s\n' $run | xargs -r -n 1 -P "$jobs" "$self" --one &
pid=$!

# the lines in target order, each as soon as its run is over
failed=0
for t in $run; do
	while [ ! -f "$results/$t" ]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			[ -f "$results/$t" ] && break
			echo "$t: FAILED: the run left no result" >"$results/$t"
			break
		fi
		sleep 1
	done
	cat "$results/$t"
	if grep -q '^[^ ].*: FAILED' "$results/$t"; then
		failed=$((failed + 1))
	fi
done
wait "$pid"
[ "$failed" -eq 0 ]
