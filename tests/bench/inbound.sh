#!/usr/bin/env bash
# inbound.sh - scenario 1 of issue 10 (a benchmark, never a test): inbound
# mail with SPF (HELO and MAIL FROM), DKIM verification, DMARC,
# Authentication-Results, the durable spool (fsync before 250) and relay to
# a downstream smtp-sink, for mxgate and then for the peer (Postfix +
# OpenDKIM + OpenDMARC, run by the shared rig's run-peer.sh) with the same
# size class, message count and concurrency. Prints one line per system and
# the ratio; everything it starts it stops; loopback only.
#
# mxgate: build/mxgate (plain -O2) with a generated ini, the corpus of
# tests/bench/corpus.py (dual RSA-2048 + Ed25519 signatures,
# BENCH_FAIL_FRACTION failing DMARC under p=none), tests/tools/dnsserver.py
# on a free port, build/smtpload as the client (one message per
# connection by default, like the peer's loader), a short warm-up first.
# Peer: run-peer.sh --loader corpus (the rig's own corpus of the same size
# class, RSA-signed, and its Python loader), unless BENCH_PEER=0.
# CPU split: perf record (dwarf call graphs) on mxgate, grouped by source
# file (tests/bench/cpusplit.py); perf record -a on the peer, grouped by
# process (smtpd, cleanup, qmgr+smtp, opendkim, opendmarc).
#
# Usage: tests/bench/inbound.sh   (root; settings: see benchlib.sh, plus
#        BENCH_PEER=0 to skip the peer, BENCH_PEER_VERIFY=0 to skip the
#        rig's swaks pass/fail check)
. "$(dirname "$0")/benchlib.sh"
bl_init inbound
bl_need_rig
[ "$(id -u)" = 0 ] || [ "${BENCH_PEER:-1}" = 0 ] || die "the peer rig needs root (or BENCH_PEER=0)"

CORPUS=$BL_ROOT/build/bench-corpus/inbound-$SIZE
bl_corpus "$CORPUS" --count "$MSGS" --size "$SIZE" --fail-fraction "$FAIL" --sign "$SIGN"
bl_start_dns "$CORPUS/zone.json"
DUMPDIR_RUN=""
[ "$DUMP" = 1 ] && DUMPDIR_RUN=$BL_TMP/dump
bl_start_sink "$DUMPDIR_RUN"
PERF_ON=0
bl_perf_ok && PERF_ON=1

MXPORT=$(bl_free_port)
conns=$((SESSIONS * 2 > 1000 ? SESSIONS * 2 : 1000))
{
	bl_ini_common "$BL_TMP/spool" "$MXPORT"
	cat <<EOF

[domains]
accept = rcpt.example

[route rcpt.example]
hosts = 127.0.0.1:$SINK_PORT

[limits]
connections = $conns
connections_per_ip = $conns

[dns]
servers = 127.0.0.1:$DNS_PORT

[spf]
check_helo = yes
check_mailfrom = yes

[dkim]
verify = yes

[dmarc]
verify = yes
EOF
} > "$OUT/mxgate.ini"
bl_start_mxgate "$OUT/mxgate.ini" "$MXPORT"
bl_warmup "$MXPORT" "$CORPUS" $((MSGS < 20 ? MSGS : 20))

log "mxgate: $RUNS run(s) of $MSGS $SIZE messages, $SESSIONS sessions, $PER_CONN per connection"
bl_mxgate_runs "$CORPUS"
grep -cE ' (error|warning) ' "$OUT/mxgate.log" > "$OUT/mxgate-log-problems.txt" || true
bl_stop "$MX_PID"

# ------------------------------------------------------------ the peer
if [ "${BENCH_PEER:-1}" = 1 ]; then
	case $SIZE in small|large) ;; *) die "the peer rig has only small and large corpora (BENCH_SIZE=$SIZE)" ;; esac
	[ -d /tmp/peerbench/corpus/$SIZE ] || [ -d "${BENCH_DIR:-/tmp/peerbench}/corpus/$SIZE" ] ||
		die "the peer rig is not set up: run $RIG/setup.sh once"
	[ "$PER_CONN" = 1 ] || log "WARNING: the peer's loader sends one message per connection; BENCH_PER_CONN=$PER_CONN differs"
	peeropts=(--loader corpus --size "$SIZE" --messages "$MSGS" --sessions "$SESSIONS" --runs "$RUNS"
		--label peer --results "$OUT/peer")
	[ "$DUMP" = 1 ] || peeropts+=(--no-dump)
	[ "${BENCH_PEER_VERIFY:-1}" = 1 ] || peeropts+=(--no-verify)
	ppid=""
	if [ $PERF_ON = 1 ]; then
		perf record -q -a -k CLOCK_MONOTONIC -F "$PERF_FREQ" -o "$OUT/peer-perf.data" > "$OUT/peer-perf.log" 2>&1 &
		ppid=$!
		bl_track $ppid
		sleep 0.5
	fi
	log "peer: run-peer.sh ${peeropts[*]}"
	"$RIG/run-peer.sh" "${peeropts[@]}" > "$OUT/peer.out" 2>&1 || log "run-peer.sh exit $?: $(tail -3 "$OUT/peer.out")"
	[ -n "$ppid" ] && bl_stop "$ppid" INT
	grep -E '^(RESULT|AGG|VERIFY)' "$OUT/peer.out" | tee -a "$OUT/summary.txt" || true
	if [ $PERF_ON = 1 ] && [ -s "$OUT/peer/results.jsonl" ]; then
		$PY tests/bench/cpusplit.py peer --data "$OUT/peer-perf.data" --rundirs "$OUT"/peer/corpus-"$SIZE"-r* \
			--json "$OUT/peer-split.json" >&2 || log "cpusplit (peer) failed"
	fi
fi

$PY tests/bench/report.py inbound "$OUT" | tee "$OUT/result.txt"
