#!/bin/sh
# The whole test suite: unit tests (cmocka), integration tests against the
# real daemon on loopback (pytest), and a short libFuzzer run when clang is
# present. Expects `make SAN=1 all unit-tests` to have run (make check does).
# Usage: tests/run-all.sh [all|unit|integration|fuzz]
# Ends with a line "N passed, N failed, N skipped"; exits 1 on any failure.
set -u
cd "$(dirname "$0")/.."
BUILD=${MXGATE_BUILD:-build-san}
what=${1:-all}
passed=0
failed=0
skipped=0
log=$(mktemp -d /tmp/mxgate-check.XXXXXX)
trap 'rm -rf "$log"' EXIT

count() {	# count FILE EREGEX → the number in the last match, or 0
	n=$(grep -oE "$2" "$1" | tail -n 1 | grep -oE '[0-9]+' | head -n 1)
	echo "${n:-0}"
}

run_unit() {
	echo "== unit tests ($BUILD/tests)"
	for t in "$BUILD"/tests/test_*; do
		[ -x "$t" ] || continue
		out="$log/$(basename "$t").out"
		"$t" >"$out" 2>&1
		rc=$?
		p=$(count "$out" '\[  PASSED  \] [0-9]+ test')
		f=$(count "$out" '\[  FAILED  \] [0-9]+ test')
		s=$(count "$out" '\[  SKIPPED \] [0-9]+ test')
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			f=1	# crashed or sanitizer abort
		fi
		passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
		echo "   $(basename "$t"): $p passed, $f failed, $s skipped"
		if [ "$f" -ne 0 ]; then
			cat "$out"
		fi
		grep -i 'skip' "$out" | grep -v '^\[' | sed 's/^/   /' || true
		grep -E '^[a-z0-9]+: [0-9]+ ran' "$out" | sed 's/^/      /' || true
	done
}

run_integration() {
	echo "== integration tests (tests/integration, daemon $BUILD/mxgate)"
	out="$log/pytest.out"
	MXGATE_BIN="$PWD/$BUILD/mxgate" /usr/bin/python3 -m pytest -q -rs \
	    -p no:cacheprovider tests/integration 2>&1 | tee "$out"
	p=$(count "$out" '[0-9]+ passed')
	f=$(count "$out" '[0-9]+ failed')
	e=$(count "$out" '[0-9]+ errors?')
	s=$(count "$out" '[0-9]+ skipped')
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$e" -eq 0 ]; then
		f=1	# pytest did not run at all
	fi
	passed=$((passed + p)); failed=$((failed + f + e)); skipped=$((skipped + s))
}

run_fuzz() {
	secs=${FUZZ_SECONDS:-30}
	jobs=${FUZZ_JOBS:-2}
	echo "== fuzzing (each target ${secs}s, $jobs at once)"
	if ! command -v clang >/dev/null 2>&1; then
		echo "   skipped: clang not installed (libFuzzer needs it)"
		skipped=$((skipped + 1))
		return
	fi
	out="$log/fuzz.out"
	start=$(date +%s)
	{
		FUZZ_SECONDS=$secs FUZZ_JOBS=$jobs tests/fuzz/run.sh 2>&1
		echo $? >"$log/fuzz.rc"
	} | tee "$out" | grep -E '^(fuzz|  )' || true
	echo "   fuzzing took $(($(date +%s) - start))s (build included)"
	p=$(grep -c ' ok$' "$out")
	f=$(grep -c ' FAILED' "$out")
	if [ "$(cat "$log/fuzz.rc")" != 0 ] && [ "$f" -eq 0 ]; then
		tail -n 30 "$out"
		f=1
	fi
	passed=$((passed + p)); failed=$((failed + f))
}

case "$what" in
all) run_unit; run_integration; run_fuzz ;;
unit) run_unit ;;
integration) run_integration ;;
fuzz) run_fuzz ;;
*) echo "usage: $0 [all|unit|integration|fuzz]" >&2; exit 2 ;;
esac

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
