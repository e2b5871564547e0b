#!/bin/sh
# The README's quick start: a demo downstream sink on 127.0.0.1:2526 that
# prints each message it receives, and mxgate in the foreground on the
# example configuration (127.0.0.1:2525 and [::1]:2525). Ctrl-C stops both.
# Usage: tests/tools/demo.sh MXGATE_BINARY CONFIG
set -u
bin=${1:-build/mxgate}
cfg=${2:-etc/mxgate.ini}
here=$(dirname "$0")
py=/usr/bin/python3
[ -x "$py" ] || py=python3

"$bin" config check -c "$cfg" || exit 1
"$py" "$here/smtpsink.py" --listen 127.0.0.1 --port 2526 --print &
sink=$!
trap 'kill $sink 2>/dev/null; wait $sink 2>/dev/null' EXIT
trap 'exit 0' INT TERM
cat <<MSG

  Demo downstream sink: 127.0.0.1:2526 (prints what it receives)
  mxgate: 127.0.0.1:2525 and [::1]:2525, accepting mail for example.test
  Try, from another terminal:
    swaks --server 127.0.0.1:2525 --to user@example.test --from you@sender.test
  or: printf 'EHLO me\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\nDATA\r\nSubject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n' | nc 127.0.0.1 2525
  Ctrl-C stops both.

MSG
"$bin" serve -c "$cfg"
