#!/bin/sh
# Install what mxgate needs on Debian 12 (bookworm), only what is missing.
# Usage: scripts/deps.sh [build|test]   (default: build)
# Runs apt-get as root; uses sudo when not root and sudo exists.
set -eu
mode=${1:-build}

build_pkgs="build-essential pkg-config libevent-dev libssl-dev libc-ares-dev libpsl-dev publicsuffix libinih-dev libcrypt-dev libsqlite3-dev libxml2-dev zlib1g-dev libzip-dev openssl python3"
test_pkgs="libcmocka-dev libyaml-dev clang libclang-rt-14-dev python3-pytest python3-spf python3-dnspython python3-dkim python3-nacl python3-cryptography opendkim-tools libmail-dmarc-perl swaks procps iproute2 libxml2-utils sqlite3 groff-base man-db systemd valgrind"

case "$mode" in
build) want="$build_pkgs" ;;
test)  want="$build_pkgs $test_pkgs" ;;
*) echo "usage: $0 [build|test]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "deps: need root to install:$missing" >&2
	exit 1
fi
echo "deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
