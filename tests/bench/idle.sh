#!/usr/bin/env bash
# idle.sh - scenario 3 of issue 10 (a benchmark, never a test): many
# concurrent idle connections held open against mxgate (greeted, EHLO
# answered, with the HELO SPF check of the inbound configuration), and
# mxgate's resident memory per connection: (RSS while all are held - RSS
# before) / connections, RSS summed over mxgate's process tree from /proc
# (threads share it). Kernel socket buffers are not in RSS. Also reports
# how many were refused or dropped (the target: none).
#
# Settings (besides benchlib.sh): BENCH_IDLE_CONNS (10000), BENCH_IDLE_HOLD
# seconds held (10), BENCH_IDLE_PENDING connects in flight at once (200).
# The descriptor limit is raised for the load generator (ulimit -n; root
# may raise the hard limit); mxgate raises its own from [limits]
# connections.
# Usage: tests/bench/idle.sh
. "$(dirname "$0")/benchlib.sh"
bl_init idle
N=${BENCH_IDLE_CONNS:-10000}
HOLD=${BENCH_IDLE_HOLD:-10}
PENDING=${BENCH_IDLE_PENDING:-200}
need=$((N + 1024))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $need ]; then
	ulimit -n $need 2>/dev/null || die "cannot raise the descriptor limit to $need (ulimit -n; run as root or lower BENCH_IDLE_CONNS)"
fi

cat > "$OUT/zone.json" <<'EOF'
{"mail.sender.example": [{"type": "A", "value": "127.0.0.1"}, {"type": "TXT", "value": "v=spf1 a -all"}],
 "1.0.0.127.in-addr.arpa": [{"type": "PTR", "value": "mail.sender.example"}]}
EOF
bl_start_dns "$OUT/zone.json"
MXPORT=$(bl_free_port)
{
	bl_ini_common "$BL_TMP/spool" "$MXPORT"
	cat <<EOF

[domains]
accept = rcpt.example

[route rcpt.example]
hosts = 127.0.0.1:$(bl_free_port)

[limits]
connections = $((N + 100))
connections_per_ip = $((N + 100))

[dns]
servers = 127.0.0.1:$DNS_PORT
EOF
} > "$OUT/mxgate.ini"
bl_start_mxgate "$OUT/mxgate.ini" "$MXPORT"
sleep 1
rss_base=$(bl_rss_kb "$MX_PID")

log "idle: $N connections (at most $PENDING connecting at once), held $HOLD s"
"$SMTPLOAD" -I -q -p "$MXPORT" -c "$N" -d "$HOLD" -P "$PENDING" -e "$HELO" > "$OUT/idle.out" 2> "$OUT/idle.err" &
LPID=$!
bl_track $LPID
for _ in $(seq 3300); do	# the loader gives up settling after 300 s
	grep -q '^smtpload: idle:' "$OUT/idle.out" 2>/dev/null && break
	kill -0 $LPID 2>/dev/null || break
	sleep 0.1
done
rss_held=0 established=0
if kill -0 $LPID 2>/dev/null; then
	for _ in 1 2 3; do	# the largest of three samples while held
		sleep 1
		r=$(bl_rss_kb "$MX_PID")
		[ "$r" -gt "$rss_held" ] && rss_held=$r
		e=$(ss -Htn state established "( sport = :$MXPORT )" 2>/dev/null | wc -l)
		[ "$e" -gt "$established" ] && established=$e
	done
fi
wait $LPID || log "idle load generator: not every connection was greeted and held (see $OUT/idle.out)"
sleep 1
rss_after=$(bl_rss_kb "$MX_PID")
kill -0 "$MX_PID" 2>/dev/null || die "mxgate died: $(tail -5 "$OUT/mxgate.log")"
grep -ciE 'refus|too many|limit' "$OUT/mxgate.log" > "$OUT/mxgate-refusals.txt" || true
bl_stop "$MX_PID"

$PY - "$OUT" "$N" "$rss_base" "$rss_held" "$rss_after" "$established" <<'EOF'
import json, re, sys
out, n, base, held, after, est = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:7])
first = ""
for l in open(out + "/idle.out"):
    if l.startswith("smtpload: idle:"):
        first = first or l
        last = l
res = {"n": n, "rss_base_kb": base, "rss_held_kb": held, "rss_after_kb": after, "established": est,
       "per_conn_kb": round((held - base) / n, 2) if held else None}
for k, v in re.findall(r"(\w+)=([\d.]+)", first):
    res.setdefault(k, float(v) if "." in v else int(v))
for k, v in re.findall(r"(\w+)=([\d.]+)", last if first else ""):
    if k in ("dropped_while_held", "held"):
        res[k] = float(v) if "." in v else int(v)
json.dump(res, open(out + "/idle.json", "w"))
EOF
$PY tests/bench/report.py idle "$OUT" | tee "$OUT/result.txt"
