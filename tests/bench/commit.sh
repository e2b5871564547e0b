#!/bin/sh
# Acknowledgements per second of the durable commit (a benchmark, not a
# test): mxgate (the optimised build) with its spool on this machine's
# normal disk, a downstream sink that accepts everything, and
# build/smtpload with 1, 10 and 50 concurrent senders for a fixed time
# each; next to it, the raw rate of the same file system for the sequence
# one message needs without sharing: write 4 KB, fsync, rename, fsync the
# directory.
#
# Usage: tests/bench/commit.sh [SECONDS] [SPOOL_PARENT]
#   SECONDS        per concurrency level (default 10)
#   SPOOL_PARENT   where the spool goes (default /var/tmp; a tmpfs only with
#                  ALLOW_TMPFS=1, to see the CPU ceiling without the disk;
#                  otherwise never a tmpfs:
#                  the point is the disk)
# MXGATE=path runs another binary (e.g. an older build, for a before/after).
# SINK=blackhole routes to a port that accepts connections and never
# answers: no delivery work (removals, envelope updates) competes with the
# intake during the run, so the figures are those of the commit path alone.
set -eu
cd "$(dirname "$0")/../.."
secs=${1:-10}
parent=${2:-/var/tmp}
bin=${MXGATE:-build/mxgate}
py=/usr/bin/python3
[ -x "$py" ] || py=python3
make -s build/mxgate build/smtpload
fstype=$(stat -f -c %T "$parent")
if [ -z "${ALLOW_TMPFS:-}" ] && { [ "$fstype" = tmpfs ] || [ "$fstype" = ramfs ]; }; then
	echo "commit.sh: $parent is a $fstype: pick a directory on a disk" >&2
	exit 2
fi
dir=$(mktemp -d "$parent/mxgate-bench-commit.XXXXXX")
chmod 755 "$dir"
sinkpid=
mxpid=
cleanup() {
	[ -n "$mxpid" ] && kill "$mxpid" 2>/dev/null && wait "$mxpid" 2>/dev/null
	[ -n "$sinkpid" ] && kill "$sinkpid" 2>/dev/null && wait "$sinkpid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

freeport() {
	$py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The raw file system: write 4 KB + fsync + rename + directory fsync, and
# plain write + fsync (tests/bench/fsyncrate.py).
rawfs() {
	$py tests/bench/fsyncrate.py "$dir" 3
}

sinkport=$(freeport)
if [ "${SINK:-smtpsink}" = blackhole ]; then
	$py -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1024)
time.sleep(3600)' "$sinkport" &
else
	$py tests/tools/smtpsink.py --listen 127.0.0.1 --port "$sinkport" \
	    >"$dir/sink.out" 2>"$dir/sink.err" &
fi
sinkpid=$!
mxport=$(freeport)
cat >"$dir/mxgate.ini" <<EOF
[server]
hostname = mx.bench.test
spool = $dir/spool
$( [ "$(id -u)" = 0 ] && echo "user = nobody" )
log = stderr
log_level = warning
[listener mx]
address = 127.0.0.1
port = $mxport
profile = inbound
[domains]
accept = example.test
[route example.test]
hosts = 127.0.0.1:$sinkport
[limits]
connections = 1000
connections_per_ip = 1000
[spf]
check_helo = no
check_mailfrom = no
[dkim]
verify = no
[dmarc]
verify = no
EOF
"$bin" serve -c "$dir/mxgate.ini" >"$dir/mxgate.log" 2>&1 &
mxpid=$!
i=0
until $py -c "import socket,sys; socket.create_connection(('127.0.0.1',$mxport),1)" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$mxpid" 2>/dev/null; then
		echo "commit.sh: mxgate did not start:" >&2
		cat "$dir/mxgate.log" >&2
		exit 1
	fi
	sleep 0.1
done

echo "machine: $(nproc) cores, $(date -u +%Y-%m-%d); spool on $fstype ($(df -P "$parent" | awk 'NR==2{print $1}')); binary $bin; sink ${SINK:-smtpsink}"
rawfs
for c in 1 10 50; do
	printf 'senders=%-3s ' "$c"
	build/smtpload -q -p "$mxport" -c "$c" -d "$secs" -s 2048 | tail -n 1
	sleep 1
done
if ! kill -0 "$mxpid" 2>/dev/null; then
	echo "commit.sh: mxgate died:" >&2
	tail -n 20 "$dir/mxgate.log" >&2
	exit 1
fi
