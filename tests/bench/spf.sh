#!/bin/sh
# SPF checks per second with a warm cache (a benchmark, not a test):
# serves a zone shaped like a large provider's (an include chain with
# ip4/ip6 ranges and an a/mx term) from tests/tools/dnsserver.py on a
# free loopback port and runs build/bench_spf against it.
# Usage: tests/bench/spf.sh [COUNT] [PARALLEL]
set -eu
cd "$(dirname "$0")/../.."
count=${1:-100000}
parallel=${2:-50}
make -s build/bench_spf
dir=$(mktemp -d /tmp/mxgate-bench-spf.XXXXXX)
trap 'kill $dns 2>/dev/null; rm -rf "$dir"' EXIT
cat >"$dir/zone.json" <<'ZONE'
{
 "onprem.test": [{"type": "TXT", "value": ["v=spf1 mx a:relay.onprem.test include:spf.protection.outlook.test -all"]}],
 "relay.onprem.test": [{"type": "A", "value": "198.51.100.10"}],
 "spf.protection.outlook.test": [{"type": "TXT", "value": ["v=spf1 include:a.outlook.test include:b.outlook.test -all"]}],
 "a.outlook.test": [{"type": "TXT", "value": ["v=spf1 ip4:40.92.0.0/15 ip4:40.107.0.0/16 ip4:52.100.0.0/14 ip6:2a01:111:f400::/48 -all"]}],
 "b.outlook.test": [{"type": "TXT", "value": ["v=spf1 ip4:104.47.0.0/17 ip4:192.0.2.0/24 ip6:2a01:111:f403::/48 -all"]}]
}
ZONE
/usr/bin/python3 tests/tools/dnsserver.py --port 0 --zone "$dir/zone.json" >"$dir/port" &
dns=$!
for _ in 1 2 3 4 5 6 7 8 9 10; do
	grep -q LISTENING "$dir/port" 2>/dev/null && break
	sleep 0.2
done
port=$(sed -n 's/LISTENING //p' "$dir/port")
echo "machine: $(nproc) cores, $(date -u +%Y-%m-%d)"
build/bench_spf "127.0.0.1:$port" bob@onprem.test 192.0.2.55 "$count" "$parallel"
build/bench_spf "127.0.0.1:$port" bob@onprem.test 203.0.113.9 "$count" "$parallel"
