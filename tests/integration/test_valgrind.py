"""The plain daemon (build/mxgate, `make all`) under valgrind's memcheck
through several hundred sessions of every kind (issue 9).

The sessions: plain and STARTTLS deliveries, recipients refused (relay)
and bounced downstream (a DSN goes back through [route *]), syntax errors
and an HTTP request, BDAT, RSET, pipelining, clients gone in the middle
of DATA and of a TLS handshake, command, data and TLS handshake timeouts
(short ones), connections over the per-address limit, and the metrics
endpoint. Every accepted message must reach its sink; then SIGTERM, and
valgrind's summary must show no definite leak and no error (invalid read
or write, uninitialised value, bad free): the daemon runs under
--leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 and
must exit 0. No suppressions are used.

Valgrind slows the daemon down some 20 to 50 times: the sessions run a
few at a time, and the whole test takes a minute or two. It skips when
valgrind or build/mxgate is missing.
"""

import concurrent.futures
import os
import re
import shutil
import socket
import threading
import time
import urllib.request

import pytest

from conftest import (REPO, ConnectionClosed, dot_stuff, free_port,
                      insecure_client_context, make_message, stop_process,
                      wait_until)

PLAIN = REPO / "build" / "mxgate"
SENDER = "alice@sender.test"
BOUNCE_RCPT = "bounce"          # local parts starting so: 550 at the sink
PER_IP = 20
WORKERS = 6

# (kind, how many); the counts add up to several hundred sessions
PLAN = [
    ("plain", 120), ("starttls", 40), ("refused_rcpt", 40), ("syntax", 40),
    ("http", 10), ("bdat", 40), ("rset", 30), ("pipelined", 30),
    ("bounce", 15), ("abort_data", 30), ("abort_tls", 10), ("metrics", 20),
]
TIMEOUT_PLAN = [("idle_timeout", 8), ("data_timeout", 6), ("tls_timeout", 4)]


@pytest.fixture
def valgrind_bin(mx, monkeypatch):
    vg = shutil.which("valgrind")
    if vg is None:
        pytest.skip("valgrind not installed (apt-get install valgrind)")
    if not PLAIN.exists():
        pytest.skip("plain build %s not found: run `make all`" % PLAIN)
    log = os.path.join(mx.dir, "valgrind.log")
    wrapper = os.path.join(mx.dir, "mxgate-valgrind")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec %s --leak-check=full "
                "--errors-for-leak-kinds=definite --error-exitcode=99 "
                "--num-callers=30 --vgdb=no --log-file=%s %s \"$@\"\n"
                % (vg, log, PLAIN))
    os.chmod(wrapper, 0o755)
    monkeypatch.setenv("MXGATE_BIN", wrapper)
    return log


# ---------------------------------------------------------------- sessions

class Session:
    def __init__(self, port, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        """(code, last line) of one reply."""
        while True:
            while b"\r\n" not in self.buf:
                d = self.sock.recv(65536)
                if not d:
                    raise ConnectionClosed("closed (buffered %r)" % self.buf)
                self.buf += d
            line, _, self.buf = self.buf.partition(b"\r\n")
            if line[3:4] != b"-":
                return int(line[:3]), line.decode("utf-8", "replace")

    def expect(self, code, line=None):
        if line is not None:
            self.send(line + "\r\n")
        got, text = self.reply()
        assert got == code, "%r: expected %d, got %r" % (line, code, text)
        return text

    def starttls(self):
        self.expect(220, "STARTTLS")
        self.sock = insecure_client_context().wrap_socket(
            self.sock, server_hostname="mx.example.test")

    def deliver(self, subject, rcpts=("user@example.test",)):
        self.expect(250, "MAIL FROM:<%s>" % SENDER)
        for r in rcpts:
            self.expect(250, "RCPT TO:<%s>" % r)
        self.expect(354, "DATA")
        self.send(dot_stuff(make_message(subject)) + b".\r\n")
        return self.expect(250)


def run_session(kind, i, port, mport):
    """One session of the given kind; returns the subjects it got queued."""
    subject = "%s-%d" % (kind, i)
    if kind == "metrics":
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                    timeout=30) as r:
            assert r.status == 200 and b"mxgate_connections" in r.read()
        return []
    s = Session(port)
    try:
        s.expect(220)
        if kind == "http":
            s.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.reply()[0] == 421
            return []
        s.expect(250, "EHLO client%d.test" % i)
        queued = []
        if kind == "plain":
            s.deliver(subject)
            queued.append(subject)
        elif kind == "starttls":
            s.starttls()
            s.expect(250, "EHLO client%d.test" % i)
            s.deliver(subject)
            queued.append(subject)
        elif kind == "refused_rcpt":
            s.expect(250, "MAIL FROM:<%s>" % SENDER)
            s.expect(550, "RCPT TO:<x%d@elsewhere.test>" % i)
            s.expect(250, "RCPT TO:<user@example.test>")
            s.expect(550, "RCPT TO:<user@[127.0.0.1]>")
            s.expect(354, "DATA")
            s.send(dot_stuff(make_message(subject)) + b".\r\n")
            s.expect(250)
            queued.append(subject)
        elif kind == "syntax":
            s.expect(500, "FROB %d" % i)
            s.expect(501, "MAIL FROM:alice@sender.test")
            s.expect(503, "RCPT TO:<user@example.test>")
            s.expect(501, "MAIL FROM:<alice@sender.test")
            s.send("MAIL FROM:<%s@sender.test>\r\n" % ("a" * 300))
            assert s.reply()[0] in (501, 553)
            s.expect(250, "RSET")
        elif kind == "bdat":
            msg = make_message(subject)
            s.expect(250, "MAIL FROM:<%s>" % SENDER)
            s.expect(250, "RCPT TO:<user@example.test>")
            s.send(b"BDAT %d\r\n" % (len(msg) // 2) + msg[:len(msg) // 2])
            s.expect(250)
            rest = msg[len(msg) // 2:]
            s.send(b"BDAT %d LAST\r\n" % len(rest) + rest)
            s.expect(250)
            queued.append(subject)
        elif kind == "rset":
            s.expect(250, "MAIL FROM:<%s>" % SENDER)
            s.expect(250, "RCPT TO:<user@example.test>")
            s.expect(250, "RSET")
            s.expect(250, "MAIL FROM:<%s>" % SENDER)
            s.expect(250, "RCPT TO:<user@example.test>")
            s.expect(354, "DATA")
            s.send(b"Subject: dropped\r\n\r\nhalf\r\n")
            s.send(b".\r\n")
            s.expect(250)       # that one is queued too
            queued.append("dropped")
            s.expect(250, "RSET")
            s.deliver(subject)
            queued.append(subject)
        elif kind == "pipelined":
            msg = make_message(subject)
            s.send(b"MAIL FROM:<%s>\r\nRCPT TO:<user@example.test>\r\n"
                   b"RCPT TO:<nobody@elsewhere.test>\r\nDATA\r\n"
                   % SENDER.encode())
            assert [s.reply()[0] for _ in range(4)] == [250, 250, 550, 354]
            s.send(dot_stuff(msg) + b".\r\nNOOP\r\n")
            s.expect(250)
            s.expect(250)
            queued.append(subject)
        elif kind == "bounce":
            s.deliver(subject, ("%s%d@example.test" % (BOUNCE_RCPT, i),))
        elif kind == "abort_data":
            s.expect(250, "MAIL FROM:<%s>" % SENDER)
            s.expect(250, "RCPT TO:<user@example.test>")
            s.expect(354, "DATA")
            s.send(b"Subject: gone\r\n\r\n" + b"x" * (i * 97 % 5000) + b"\r\n")
            return []           # closed without the dot
        elif kind == "abort_tls":
            s.expect(220, "STARTTLS")
            s.send(b"\x16\x03\x01\x00\x05hello")   # a broken ClientHello
            return []
        else:
            raise AssertionError(kind)
        s.expect(221, "QUIT")
        return queued
    finally:
        s.close()


def timeout_session(kind, port):
    """A client that stops talking; the daemon must close it (421)."""
    s = Session(port, timeout=60)
    try:
        s.expect(220)
        if kind != "idle_timeout":
            s.expect(250, "EHLO slow.test")
        if kind == "data_timeout":
            s.expect(250, "MAIL FROM:<%s>" % SENDER)
            s.expect(250, "RCPT TO:<user@example.test>")
            s.expect(354, "DATA")
            s.send(b"Subject: slow\r\n\r\nand then nothing\r\n")
        elif kind == "tls_timeout":
            s.expect(220, "STARTTLS")
            s.send(b"\x16\x03\x01")     # a handshake that never completes
        try:
            code, _ = s.reply()
        except ConnectionClosed:
            code = None             # a TLS handshake has no reply to give
        assert code in (421, None), (kind, code)
        s.sock.settimeout(30)
        assert s.sock.recv(100) == b""
    finally:
        s.close()


def connection_burst(port, n):
    """n connections at once: PER_IP get 220, the rest 421."""
    socks = []
    codes = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=30))
        for s in socks:
            data = b""
            while b"\r\n" not in data:
                d = s.recv(512)
                if not d:
                    break
                data += d
            codes.append(data[:3])
    finally:
        for s in socks:
            s.close()
    return codes


# ---------------------------------------------------------------- test

def test_daemon_under_valgrind(mx, tls_files, valgrind_bin):
    cert, key = tls_files
    t0 = time.monotonic()
    sink = mx.sink("--tls-cert", cert, "--tls-key", key,
                   "--reject-rcpt", "^%s.*=550 5.1.1 no such user" % BOUNCE_RCPT)
    bounces = mx.sink(name="bounces")
    mport = free_port()
    d = mx.daemon(sink, sections={
        "tls": {"certificate": cert, "key": key},
        "metrics": {"listen": "127.0.0.1:%d" % mport},
        "route *": {"hosts": bounces.hostport},
        "limits": {"command_timeout": "3", "data_timeout": "3",
                   "tls_timeout": "3", "connections_per_ip": str(PER_IP)},
    })
    started = time.monotonic() - t0

    jobs = [(k, i) for k, n in PLAN for i in range(n)]
    # interleave the kinds
    jobs.sort(key=lambda j: (j[1], j[0]))
    queued = []
    lock = threading.Lock()
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        slow = [pool.submit(timeout_session, k, d.port)
                for k, n in TIMEOUT_PLAN for _ in range(n)]
        futs = [pool.submit(run_session, k, i, d.port, mport) for k, i in jobs]
        for f in concurrent.futures.as_completed(futs + slow, timeout=200):
            r = f.result()
            if r:
                with lock:
                    queued.extend(r)
    assert d.running(), d.tail()

    # the per-address limit, with nothing else open
    wait_until(lambda: "session=" in d.log() and
               d.log().count(" connect client=") ==
               d.log().count(" disconnect client="), 30,
               what="every session closed")
    codes = connection_burst(d.port, PER_IP + 5)
    assert codes.count(b"220") == PER_IP and codes.count(b"421") == 5, codes

    nbounce = dict(PLAN)["bounce"]
    sink.wait_messages(len(queued), timeout=120, daemon=d)
    bounces.wait_messages(nbounce, timeout=120, daemon=d)
    got = sorted(re.search(rb"^Subject: (.*)\r$", m["eml"], re.M).group(1).decode()
                 for m in sink.messages())
    assert got == sorted(queued)
    d.wait_queue_empty(timeout=60)
    log = d.log()
    # every kind happened as planned, as the daemon saw it
    for what, n in (("(timeout in state|no whole command within 3s in "
                     "state) greeted", 8),
                    ("timeout in state data", 6),
                    ("TLS handshake not done within 3s", 4),
                    ("protocol violation \\(http\\)", 10),
                    ("bounce queued as", 15),
                    ("lost connection in state data", 30),
                    ("reason=connections_per_ip", 5),
                    ("relay refused", 40 + 40 + 30),
                    ("tls=TLSv1", 1)):
        assert len(re.findall(what, log)) >= n, (what, n)
    sessions = (sum(n for _, n in PLAN) + sum(n for _, n in TIMEOUT_PLAN)
                + PER_IP + 5)
    run = time.monotonic() - t0

    rc = stop_process(d.proc, timeout=90)
    total = time.monotonic() - t0
    with open(valgrind_bin, errors="replace") as f:
        vg = f.read()
    summary = "\n".join(l for l in vg.splitlines()
                        if re.search(r"lost:|reachable:|suppressed:|ERROR SUMMARY|"
                                     r"All heap blocks", l))
    print("[valgrind] %d sessions (%d messages delivered, %d bounces), "
          "start %.1fs, sessions %.1fs, total with shutdown %.1fs, exit %s\n%s"
          % (sessions, len(queued), nbounce, started, run, total, rc, summary))
    assert "Invalid read" not in vg and "Invalid write" not in vg \
        and "Invalid free" not in vg and "uninitialised" not in vg, vg[-6000:]
    assert re.search(r"definitely lost: 0 bytes in 0 blocks", vg) or \
        "All heap blocks were freed" in vg, vg[-6000:]
    assert re.search(r"ERROR SUMMARY: 0 errors from 0 contexts", vg), vg[-6000:]
    assert rc == 0, "mxgate under valgrind exited %s (99: valgrind errors)\n%s" \
        % (rc, vg[-6000:])
