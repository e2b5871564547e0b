#!/usr/bin/env bash
# ceilings.sh - scenario 4 of issue 10 (a benchmark, never a test): the
# physical ceilings of this machine, to put the SMTP figures in scale.
#   1. openssl speed RSA-2048 sign/verify and Ed25519, one core and all
#      cores: the shared rig's limits.sh --skip-smtp (BENCH_OPENSSL_RUNS
#      single-core runs, default 1, 3 s each).
#   2. The spool file system's durable-write rate (tests/bench/fsyncrate.py
#      in BENCH_SPOOL_PARENT, where the scenarios put mxgate's spool).
#   3. Raw loopback SMTP: build/smtpload sending the inbound corpus straight
#      into smtp-sink (no checks, no disk), same size and sessions as the
#      inbound scenario, BENCH_RAW_MESSAGES messages (default 10 times
#      BENCH_MESSAGES, the corpus cycled). BENCH_RIG_RAW=1 adds the rig's own raw ceiling
#      (run-peer.sh --raw with smtp-source and its Python loader).
# Usage: tests/bench/ceilings.sh   (settings: see benchlib.sh)
. "$(dirname "$0")/benchlib.sh"
bl_init ceilings
bl_need_rig

log "openssl speed (rig limits.sh --skip-smtp)"
"$RIG/limits.sh" --skip-smtp --runs "${BENCH_OPENSSL_RUNS:-1}" 2>"$OUT/limits.err" | grep '^OPENSSL' > "$OUT/openssl.txt" ||
	log "limits.sh gave no OPENSSL lines: $(tail -3 "$OUT/limits.err")"

log "spool file system fsync rate in $SPOOL_PARENT"
$PY tests/bench/fsyncrate.py "$BL_TMP" "${BENCH_FSYNC_SECONDS:-3}" --json "$OUT/fsync.json" > "$OUT/fsync.txt"
sed -i "s|\"dir\": \"[^\"]*\"|\"dir\": \"$SPOOL_PARENT\"|" "$OUT/fsync.json"

CORPUS=$BL_ROOT/build/bench-corpus/inbound-$SIZE
bl_corpus "$CORPUS" --count "$MSGS" --size "$SIZE" --fail-fraction "$FAIL" --sign "$SIGN"
DUMPDIR_RUN=""
bl_start_sink ""
MSGS=${BENCH_RAW_MESSAGES:-$((MSGS * 10))}	# the corpus is cycled; a longer run
log "raw loopback SMTP: smtpload -> smtp-sink, $MSGS $SIZE messages, $SESSIONS sessions"
for r in $(seq "$RUNS"); do
	bl_run raw-sink "$SINK_PORT" "$CORPUS" "$OUT/raw/r$r" "" '"sink"'
done
bl_stop "$SINK_PID"

if [ "${BENCH_RIG_RAW:-0}" = 1 ]; then
	case $SIZE in small|large) ;; *) die "the rig has only small and large corpora" ;; esac
	"$RIG/run-peer.sh" --raw --loader both --size "$SIZE" --messages "$MSGS" --sessions "$SESSIONS" \
		--results "$OUT/rig-raw" > "$OUT/rig-raw.txt" 2>&1 || log "rig raw run failed: $(tail -2 "$OUT/rig-raw.txt")"
fi
$PY tests/bench/report.py ceilings "$OUT" | tee "$OUT/result.txt"
