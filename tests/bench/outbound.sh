#!/usr/bin/env bash
# outbound.sh - scenario 2 of issue 10 (a benchmark, never a test):
# trusted-relay submission (the client, 127.0.0.1, is in [outbound]
# relay_clients, as an Exchange send connector would be), dual DKIM signing
# (RSA-2048 + Ed25519 keys under [dkim sign sender.example], made with
# "mxgate dkim keygen") and relay to smtp-sink, for mxgate alone (the peer
# rig's OpenDKIM only verifies). Next to it, openssl speed for the key mix
# on the same cores: one RSA-2048 and one Ed25519 signature per message.
# The target: mxgate's signing throughput within 80% of what openssl
# allows, read as openssl's CPU per dual signature over mxgate's CPU in
# signing (perf split, "signing": auth/dkim_sign.c and gateway/outbound.c
# with what they call, body hashing included).
# A few delivered messages are checked: both signatures must verify.
# Usage: tests/bench/outbound.sh   (root; settings: see benchlib.sh)
. "$(dirname "$0")/benchlib.sh"
bl_init outbound
bl_need_rig

CORPUS=$BL_ROOT/build/bench-corpus/outbound-$SIZE
bl_corpus "$CORPUS" --count "$MSGS" --size "$SIZE" --fail-fraction 0 --sign none --rcpt-domain dest.example
bl_start_dns "$CORPUS/zone.json"
DUMPDIR_RUN=""
[ "$DUMP" = 1 ] && DUMPDIR_RUN=$BL_TMP/dump
bl_start_sink "$DUMPDIR_RUN"
PERF_ON=0
bl_perf_ok && PERF_ON=1

# signing keys, readable by the [server] user only
mkdir -p "$BL_TMP/keys"
"$MXGATE" dkim keygen --domain sender.example --selector out-r --type rsa --bits 2048 \
	--out "$BL_TMP/keys/rsa.pem" > "$OUT/keys.txt" 2>/dev/null
"$MXGATE" dkim keygen --domain sender.example --selector out-e --type ed25519 \
	--out "$BL_TMP/keys/ed25519.pem" >> "$OUT/keys.txt" 2>/dev/null
if [ "$(id -u)" = 0 ]; then
	chown nobody "$BL_TMP/keys" "$BL_TMP/keys"/*.pem
	chmod 0400 "$BL_TMP/keys"/*.pem
fi
# the same records as a zone, to check the delivered signatures offline
$PY - "$OUT/keys.txt" "$OUT/keys-zone.json" <<'EOF'
import json, re, sys
z = {}
for line in open(sys.argv[1]):
    m = re.match(r'^(\S+)\.\s+IN\s+TXT\s+\(\s*(.*)\)\s*$', line.strip())
    if m:
        z[m.group(1)] = [{"type": "TXT", "value": "".join(re.findall(r'"([^"]*)"', m.group(2)))}]
json.dump(z, open(sys.argv[2], "w"))
EOF

MXPORT=$(bl_free_port)
conns=$((SESSIONS * 2 > 1000 ? SESSIONS * 2 : 1000))
{
	bl_ini_common "$BL_TMP/spool" "$MXPORT"
	cat <<EOF

[domains]
accept = rcpt.example

[route rcpt.example]
hosts = 127.0.0.1:$SINK_PORT

[route dest.example]
hosts = 127.0.0.1:$SINK_PORT

[limits]
connections = $conns
connections_per_ip = $conns

[dns]
servers = 127.0.0.1:$DNS_PORT

[outbound]
relay_clients = 127.0.0.1

[dkim sign sender.example]
keys = out-r:$BL_TMP/keys/rsa.pem, out-e:$BL_TMP/keys/ed25519.pem
EOF
} > "$OUT/mxgate.ini"
bl_start_mxgate "$OUT/mxgate.ini" "$MXPORT"
bl_warmup "$MXPORT" "$CORPUS" $((MSGS < 20 ? MSGS : 20))

log "mxgate outbound: $RUNS run(s) of $MSGS $SIZE messages, $SESSIONS sessions"
bl_mxgate_runs "$CORPUS"
for r in $(seq "$RUNS"); do
	if [ -d "$OUT/mxgate/r$r/delivered" ]; then
		$PY tests/bench/corpus.py --verify-zone "$OUT/keys-zone.json" "$OUT/mxgate/r$r/delivered"/* \
			> "$OUT/verify.txt" 2>&1 || log "delivered signatures did not all verify: $(cat "$OUT/verify.txt")"
	fi
done
bl_stop "$MX_PID"

# openssl speed for the key mix: from the ceilings scenario of this run, or now
if [ -s "$BENCH_OUT/ceilings/openssl.txt" ]; then
	cp "$BENCH_OUT/ceilings/openssl.txt" "$OUT/openssl.txt"
else
	log "openssl speed (rig limits.sh --skip-smtp)"
	"$RIG/limits.sh" --skip-smtp --runs "${BENCH_OPENSSL_RUNS:-1}" 2>"$OUT/limits.err" | grep '^OPENSSL' > "$OUT/openssl.txt" ||
		log "limits.sh gave no OPENSSL lines: $(tail -3 "$OUT/limits.err")"
fi
$PY tests/bench/report.py outbound "$OUT" | tee "$OUT/result.txt"
