# benchlib.sh - shared pieces of the mxgate benchmark scenarios (sourced by
# inbound.sh, outbound.sh, idle.sh, ceilings.sh; bash). Not a test: every
# figure is a timing on this machine.
#
# Reuses the shared peer rig by calling it, never by copying it: its
# benchutil.py takes the /proc CPU snapshots, polls the sink counter and
# turns one run into the same RESULT line for mxgate as for the peer;
# run-peer.sh runs the peer; limits.sh runs openssl speed. Our own pieces:
# corpus.py (corpus + zone), build/smtpload (the C load generator),
# tests/tools/dnsserver.py (mxgate's DNS), cpusplit.py (perf grouping).
#
# Settings (environment; defaults are a small run):
#   BENCH_SIZE small|large|mix      corpus size class (default small)
#   BENCH_MESSAGES N                messages per run (500)
#   BENCH_SESSIONS N                concurrent SMTP sessions (20)
#   BENCH_PER_CONN N                messages per connection (1, like the peer's loader)
#   BENCH_RUNS N                    runs per system, median reported (1)
#   BENCH_FAIL_FRACTION F           share of the corpus failing DMARC (0.1)
#   BENCH_SIGN both|rsa|ed25519     inbound corpus signatures (both: dual-signed)
#   BENCH_DUMP 1|0                  sink writes messages (A-R check; costs sink CPU)
#   BENCH_PERF auto|1|0             perf record for the CPU split (auto: if perf works)
#   BENCH_PERF_FREQ N               perf sampling frequency, Hz (499)
#   BENCH_SPOOL_PARENT DIR          where mxgate's spool goes (/var/tmp; never tmpfs
#                                   unless ALLOW_TMPFS=1)
#   BENCH_OUT DIR                   results directory (build/bench-results/<time>)
#   BENCH_RIG DIR                   the shared rig (../shared/bench)
#   MXGATE PATH                     binary under test (build/mxgate, plain -O2)

set -euo pipefail
BL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$BL_ROOT"
PY=/usr/bin/python3
MXGATE=${MXGATE:-build/mxgate}
SMTPLOAD=${SMTPLOAD:-build/smtpload}
RIG=${BENCH_RIG:-$BL_ROOT/../shared/bench}
RIG=$(cd "$RIG" 2>/dev/null && pwd || echo "$RIG")
SIZE=${BENCH_SIZE:-small}
MSGS=${BENCH_MESSAGES:-500}
SESSIONS=${BENCH_SESSIONS:-20}
PER_CONN=${BENCH_PER_CONN:-1}
RUNS=${BENCH_RUNS:-1}
FAIL=${BENCH_FAIL_FRACTION:-0.1}
SIGN=${BENCH_SIGN:-both}
DUMP=${BENCH_DUMP:-1}
PERF=${BENCH_PERF:-auto}
PERF_FREQ=${BENCH_PERF_FREQ:-499}
SPOOL_PARENT=${BENCH_SPOOL_PARENT:-/var/tmp}
BENCH_OUT=${BENCH_OUT:-$BL_ROOT/build/bench-results/$(date +%Y%m%d-%H%M%S)}
HELO=mail.sender.example
AUTHSERV=mx.rcpt.example

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------ cleanup
# Every process started is recorded by PID and stopped by that PID, in
# reverse order, at exit; the temporary directory goes too.
BL_PIDS=()
BL_TMP=""
bl_track() { BL_PIDS+=("$1"); }
bl_stop() {  # bl_stop PID [SIGNAL]: stop one of our children, bounded wait
	local pid=$1 sig=${2:-TERM} i
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
	kill -"$sig" "$pid" 2>/dev/null || true
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
bl_cleanup() {
	local rc=$? i
	trap - EXIT INT TERM
	for ((i = ${#BL_PIDS[@]} - 1; i >= 0; i--)); do
		bl_stop "${BL_PIDS[$i]}"
	done
	[ -n "$BL_TMP" ] && rm -rf "$BL_TMP"
	exit $rc
}
trap bl_cleanup EXIT
trap 'exit 130' INT TERM

bl_init() {  # bl_init SCENARIO: results dir, temp dir, tools built
	SCEN=$1
	OUT=$BENCH_OUT/$SCEN
	mkdir -p "$OUT"
	case $SPOOL_PARENT in /*) ;; *) SPOOL_PARENT=$BL_ROOT/$SPOOL_PARENT ;; esac
	local fstype
	fstype=$(stat -f -c %T "$SPOOL_PARENT")
	if [ -z "${ALLOW_TMPFS:-}" ] && { [ "$fstype" = tmpfs ] || [ "$fstype" = ramfs ]; }; then
		die "$SPOOL_PARENT is a $fstype: the spool must be on a disk (or ALLOW_TMPFS=1)"
	fi
	BL_TMP=$(mktemp -d "$SPOOL_PARENT/mxgate-bench-$SCEN.XXXXXX")
	chmod 755 "$BL_TMP"
	[ -x "$PY" ] || die "$PY missing (Debian python3 with python3-dkim, python3-nacl)"
	if [ "$MXGATE" = build/mxgate ]; then make -s SAN=0 build/mxgate >&2; fi
	if [ "$SMTPLOAD" = build/smtpload ]; then make -s SAN=0 build/smtpload >&2; fi
	[ -x "$MXGATE" ] || die "no mxgate binary at $MXGATE"
	fstype=$(findmnt -no FSTYPE -T "$SPOOL_PARENT" 2>/dev/null || echo "$fstype")
	echo "machine: $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg); spool on $fstype ($SPOOL_PARENT)" > "$OUT/machine.txt"
}

bl_free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bl_wait_port() {  # bl_wait_port PORT PID SECONDS
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		$PY -c "import socket; socket.create_connection(('127.0.0.1', $1), 1).close()" 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

bl_need_rig() {
	[ -r "$RIG/benchutil.py" ] || die "the shared rig is not at $RIG (BENCH_RIG=...)"
	[ -x /usr/sbin/smtp-sink ] || die "smtp-sink missing: run $RIG/setup.sh once (as root)"
}

# ------------------------------------------------------------ corpus, DNS, sink
bl_corpus() {  # bl_corpus DIR ARGS...: generate (or reuse) a corpus
	local dir=$1
	shift
	$PY tests/bench/corpus.py --out "$dir" "$@" >&2
}

bl_start_dns() {  # bl_start_dns ZONE.json -> DNS_PID DNS_PORT
	$PY tests/tools/dnsserver.py --port 0 --zone "$1" > "$OUT/dns.out" 2> "$OUT/dns.err" &
	DNS_PID=$!
	bl_track $DNS_PID
	local i
	for i in $(seq 50); do
		grep -q LISTENING "$OUT/dns.out" 2>/dev/null && break
		sleep 0.1
	done
	DNS_PORT=$(sed -n 's/^LISTENING //p' "$OUT/dns.out")
	[ -n "$DNS_PORT" ] || die "dnsserver.py did not start: $(cat "$OUT/dns.err")"
}

bl_start_sink() {  # bl_start_sink DUMPDIR|"" -> SINK_PID SINK_PORT SINK_OUT
	local dumpopt=()
	SINK_PORT=$(bl_free_port)
	SINK_OUT=$OUT/sink.out
	if [ -n "$1" ]; then
		mkdir -p "$1"
		chown nobody "$1" 2>/dev/null || true
		dumpopt=(-d "$1/%H%M%S.")
	fi
	local user=()
	[ "$(id -u)" = 0 ] && user=(-u nobody)
	/usr/sbin/smtp-sink "${user[@]}" -c "${dumpopt[@]}" "127.0.0.1:$SINK_PORT" 1024 > "$SINK_OUT" 2> "$SINK_OUT.err" &
	SINK_PID=$!
	bl_track $SINK_PID
	bl_wait_port "$SINK_PORT" "$SINK_PID" 10 || die "smtp-sink did not start: $(cat "$SINK_OUT.err")"
}

bl_sink_count() {  # messages the sink has counted so far
	$PY -c 'import re,sys; m=re.findall(rb"mesg=(\d+)", open(sys.argv[1],"rb").read()[-300:]); print(m[-1].decode() if m else 0)' "$SINK_OUT"
}

# ------------------------------------------------------------ mxgate
bl_ini_common() {  # bl_ini_common SPOOL PORT: [server] and [listener mx]
	cat <<EOF
; generated by tests/bench for one benchmark run
[server]
hostname = $AUTHSERV
spool = $1
$( [ "$(id -u)" = 0 ] && echo "user = nobody" )
log = stderr
log_level = ${BENCH_LOG_LEVEL:-info}

[listener mx]
address = 127.0.0.1
port = $2
profile = inbound
EOF
}

bl_start_mxgate() {  # bl_start_mxgate INI PORT -> MX_PID
	"$MXGATE" config check -c "$1" > "$OUT/config-check.txt" 2>&1 ||
		die "configuration refused: $(cat "$OUT/config-check.txt")"
	"$MXGATE" serve -c "$1" > "$OUT/mxgate.log" 2>&1 &
	MX_PID=$!
	bl_track $MX_PID
	bl_wait_port "$2" "$MX_PID" 20 || die "mxgate did not start: $(tail -20 "$OUT/mxgate.log")"
	log "mxgate up on 127.0.0.1:$2 (pid $MX_PID, $MXGATE)"
}

bl_rss_kb() {  # resident set of a process tree (threads share it), kB
	$PY - "$1" <<'EOF'
import os, sys
root = int(sys.argv[1])
kids = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            with open("/proc/%s/stat" % d) as fh:
                s = fh.read()
            kids.setdefault(int(s[s.rindex(")") + 2:].split()[1]), []).append(int(d))
        except OSError:
            pass
total, stack = 0, [root]
while stack:
    p = stack.pop()
    try:
        with open("/proc/%d/status" % p) as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    except OSError:
        pass
    stack.extend(kids.get(p, []))
print(total)
EOF
}

# ------------------------------------------------------------ perf
bl_perf_ok() {
	case $PERF in 0|no) return 1 ;; esac
	command -v perf >/dev/null 2>&1 || { [ "$PERF" = auto ] && return 1; die "BENCH_PERF=1 but no perf"; }
	if perf record -q -o "$BL_TMP/perf.probe" -F 99 -- true >/dev/null 2>&1; then
		rm -f "$BL_TMP/perf.probe"
		return 0
	fi
	[ "$PERF" = auto ] && return 1
	die "BENCH_PERF=1 but perf record does not work here"
}

# ------------------------------------------------------------ one measured run
# bl_run LABEL PORT CORPUS RUNDIR "GROUP=PID ..." SUTNAMES [PERFPID]
# Sends MSGS messages of CORPUS to 127.0.0.1:PORT with SESSIONS sessions,
# waits until the sink has counted them all, and analyses the run with the
# rig's benchutil.py (appends to $OUT/results.jsonl, prints its RESULT
# line). SUTNAMES: the groups counted as the server under test, e.g.
# '"sut"'. With PERFPID, perf records that process during the run
# (perf.data in RUNDIR, monotonic clock).
bl_run() {
	local label=$1 port=$2 corpus=$3 rd=$4 groups=$5 sutnames=$6 perfpid=${7:-}
	local base want t0 t1 lrc=0 wpid ppid=""
	mkdir -p "$rd"
	[ -n "${DUMPDIR_RUN:-}" ] && find "$DUMPDIR_RUN" -type f -delete
	base=$(bl_sink_count)
	want=$((base + MSGS))
	$PY "$RIG/benchutil.py" waitsink --file "$SINK_OUT" --count "$want" --timeout "${BENCH_TIMEOUT:-300}" > "$rd/sinkwait.raw.json" &
	wpid=$!
	bl_track $wpid
	sleep 0.2
	if [ -n "$perfpid" ]; then
		perf record -q -k CLOCK_MONOTONIC -F "$PERF_FREQ" --call-graph dwarf,8192 -p "$perfpid" \
			-o "$rd/perf.data" > "$rd/perf.log" 2>&1 &
		ppid=$!
		bl_track $ppid
		sleep 0.5	# attached before the clock starts
	fi
	$PY "$RIG/benchutil.py" snap $groups sink=$SINK_PID > "$rd/cpu0.json"
	t0=$(date +%s.%N)
	"$SMTPLOAD" -q -p "$port" -c "$SESSIONS" -n "$MSGS" -m "$PER_CONN" -S -e "$HELO" \
		-D "$corpus" -j "$rd/loader.json" > "$rd/loader.out" 2>&1 || lrc=$?
	t1=$(date +%s.%N)
	if [ $lrc != 0 ]; then
		log "$label: load generator exit $lrc: $(tail -2 "$rd/loader.out" | tr '\n' ' ')"
		# whatever was accepted gets 15 s to arrive
		local i
		for i in $(seq 150); do kill -0 $wpid 2>/dev/null || break; sleep 0.1; done
		kill $wpid 2>/dev/null || true
	fi
	wait $wpid || log "$label: not all $MSGS messages reached the sink"
	$PY "$RIG/benchutil.py" snap $groups sink=$SINK_PID > "$rd/cpu1.json"
	[ -n "$ppid" ] && bl_stop "$ppid" INT
	# the sink counts since it started: make the counts this run's own
	$PY - "$rd/sinkwait.raw.json" "$base" > "$rd/sinkwait.json" <<'EOF'
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
b = int(sys.argv[2])
d["count"] -= b
d["samples"] = [[t, n - b] for t, n in d.get("samples", [])]
print(json.dumps(d))
EOF
	cat > "$rd/meta.json" <<EOF
{"label": "$label", "target": "127.0.0.1:$port", "loader": "smtpload", "size": "$SIZE", "count": $MSGS,
 "sessions": $SESSIONS, "run": $(basename "$rd" | tr -dc 0-9 | sed 's/^$/1/'), "t0": $t0, "t_loader_end": $t1,
 "accepted": $([ $lrc = 0 ] && echo $MSGS || echo 0),
 "loader_json": "$rd/loader.json", "sink_json": "$rd/sinkwait.json", "cpu0": "$rd/cpu0.json", "cpu1": "$rd/cpu1.json",
 "sut_groups": [$sutnames], "dump_dir": "${DUMPDIR_RUN:-}", "authserv": "$AUTHSERV", "maillog": "", "maillog_offset": 0}
EOF
	$PY "$RIG/benchutil.py" analyze --meta "$rd/meta.json" --out "$OUT/results.jsonl" | tee -a "$OUT/summary.txt"
	if [ -n "${DUMPDIR_RUN:-}" ]; then	# keep 3 delivered messages to look at
		mkdir -p "$rd/delivered"
		find "$DUMPDIR_RUN" -type f | sed -n 1,3p | xargs -r cp -t "$rd/delivered" || true
	fi
}

# Warm-up before the measured runs (DNS answers cached, connections to the
# sink open): n messages, one session, not measured.
bl_warmup() {  # bl_warmup PORT CORPUS N
	local base
	base=$(bl_sink_count)
	"$SMTPLOAD" -q -p "$1" -c 2 -n "$3" -m "$PER_CONN" -e "$HELO" -D "$2" > "$OUT/warmup.out" 2>&1 ||
		die "warm-up failed: $(cat "$OUT/warmup.out"; tail -5 "$OUT/mxgate.log")"
	$PY "$RIG/benchutil.py" waitsink --file "$SINK_OUT" --count $((base + $3)) --timeout 60 > /dev/null ||
		die "warm-up messages did not reach the sink: $(tail -5 "$OUT/mxgate.log")"
}

# bl_mxgate_runs CORPUS: $RUNS measured runs against the mxgate started by
# bl_start_mxgate (into $OUT/mxgate/rN), each with its CPU split when perf
# works ($PERF_ON).
bl_mxgate_runs() {
	local r
	for r in $(seq "$RUNS"); do
		bl_run mxgate "$MXPORT" "$1" "$OUT/mxgate/r$r" "sut=$MX_PID dns=$DNS_PID" '"sut"' \
			"$([ "$PERF_ON" = 1 ] && echo "$MX_PID")"
		if [ "$PERF_ON" = 1 ]; then
			$PY tests/bench/cpusplit.py mxgate --data "$OUT/mxgate/r$r/perf.data" --binary "$MXGATE" \
				--meta "$OUT/mxgate/r$r/meta.json" --json "$OUT/mxgate/r$r/split.json" \
				--top "$OUT/mxgate/r$r/top-symbols.txt" >&2 || log "cpusplit failed"
		fi
	done
}
