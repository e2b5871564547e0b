#!/bin/sh
# Build the libFuzzer targets (make fuzz) and run each for a bounded time.
# Usage: tests/fuzz/run.sh [target ...]     (default: every FUZZ_TARGETS)
# FUZZ_SECONDS (default 20) per target. Corpora grow in
# build-fuzz/corpus-NAME (not in git); committed seeds in tests/fuzz/seeds/NAME
# and a dictionary tests/fuzz/NAME.dict are used when present. Crash inputs
# go to build-fuzz/artifacts-NAME/, logs to build-fuzz/logs/.
# Prints one line per target ("NAME: ... ok" or "NAME: FAILED ..."); exits 1
# if any target failed to build or crashed.
set -u
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-20}
MAKE=${MAKE:-make}

# the targets the Makefile knows
known=$(printf 'print-fuzz-targets:\n\t@echo $(FUZZ_TARGETS)\n' |
    $MAKE -s --no-print-directory -f Makefile -f - print-fuzz-targets)
if [ $# -gt 0 ]; then
	targets="$*"
else
	targets=$known
fi

max_len() {
	case "$1" in
	fuzz_command) echo 1100 ;;	# a command line, 512 octets and more
	fuzz_path) echo 600 ;;		# past the 256-octet path limit
	fuzz_datastream) echo 4096 ;;	# several lines over 998 octets
	fuzz_envelope) echo 2048 ;;
	fuzz_report_import) echo 65536 ;;	# gzip, zip and MIME containers
	*) echo 4096 ;;
	esac
}

mkdir -p build-fuzz/logs
if ! $MAKE fuzz >build-fuzz/logs/build.log 2>&1; then
	echo "fuzz: build FAILED (make fuzz)"
	sed 's/^/  /' build-fuzz/logs/build.log | tail -n 20
	exit 1
fi

failed=0
for t in $targets; do
	case " $known " in
	*" $t "*) ;;
	*)
		echo "$t: skipped (not in the Makefile's FUZZ_TARGETS)"
		continue ;;
	esac
	bin=build-fuzz/$t
	corpus=build-fuzz/corpus-$t
	artifacts=build-fuzz/artifacts-$t/
	log=build-fuzz/logs/$t.log
	mkdir -p "$corpus" "$artifacts"
	set -- -max_total_time="$seconds" -max_len="$(max_len "$t")" \
	    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix="$artifacts"
	if [ -f "tests/fuzz/$t.dict" ]; then
		set -- "$@" -dict="tests/fuzz/$t.dict"
	fi
	set -- "$@" "$corpus"
	if [ -d "tests/fuzz/seeds/$t" ]; then
		set -- "$@" "tests/fuzz/seeds/$t"
	fi
	"$bin" "$@" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	files=$(find "$corpus" -type f | wc -l)
	if [ "$rc" -eq 0 ]; then
		echo "$t: ${runs:-?} runs in ${seconds}s, corpus $files, ok"
	else
		failed=$((failed + 1))
		crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
		echo "$t: FAILED (exit $rc) after ${runs:-?} runs; input ${crash:-none}, log $log"
		grep -E 'ERROR|SUMMARY|^ *#[0-9]+ ' "$log" | head -n 12 | sed 's/^/  /'
	fi
done
[ "$failed" -eq 0 ]
