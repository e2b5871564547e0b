#!/bin/sh
# DKIM verifications per second next to OpenSSL's own figures for the same
# primitives on this machine (a benchmark, not a test).
# Usage: tests/bench/dkim.sh [SECONDS]
set -eu
cd "$(dirname "$0")/../.."
secs=${1:-3}
make -s build/bench_dkim
dir=$(mktemp -d /tmp/mxgate-bench-dkim.XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "machine: $(nproc) cores, $(date -u +%Y-%m-%d)"
build/bench_dkim "$dir" "$secs"
echo "openssl speed, one core, for comparison:"
openssl speed -seconds "$secs" rsa2048 ed25519 2>/dev/null | grep -E 'rsa 2048|Ed25519|sign/s' || true
openssl speed -seconds "$secs" -evp sha256 2>/dev/null | tail -n 1
