"""STARTTLS on the listener (RFC 3207)."""

import re
import time
import smtplib

import pytest

from conftest import (ConnectionClosed, insecure_client_context, make_message, queued_id,
                      split_received)


@pytest.fixture
def tls_daemon(mx, tls_files):
    cert, key = tls_files
    sink = mx.sink()
    d = mx.daemon(sink, sections={"tls": {"certificate": cert, "key": key}})
    return d, sink


def keywords(reply):
    return [l.split()[0].upper() for l in reply.lines[1:] if l.strip()]


def test_starttls_delivery(tls_daemon):
    d, sink = tls_daemon
    msg = make_message("tls")
    s = smtplib.SMTP("127.0.0.1", d.port, timeout=10)
    try:
        s.ehlo("client.test")
        assert s.has_extn("starttls")
        code, _ = s.starttls(context=insecure_client_context())
        assert code == 220
        s.ehlo("client.test")
        assert not s.has_extn("starttls")
        s.mail("alice@sender.test")
        s.rcpt("user@example.test")
        code, text = s.data(msg)
    finally:
        s.close()       # QUIT over TLS: see test_quit_after_starttls
    assert code == 250
    qid = re.fullmatch(r"2\.0\.0 Ok: queued as ([0-9A-F]{16})", text.decode()).group(1)
    msgs = sink.wait_messages(1)
    received, rest = split_received(msgs[0]["eml"])
    assert rest == msg
    assert re.search(r"with ESMTPS id %s" % qid, received), received
    assert "version=TLS" in received, received
    assert re.search(r"id=%s .*tls=TLSv1\.[23] " % qid, d.log()), d.log()


@pytest.mark.parametrize("command,code", [("QUIT", 221),
                                          ("GET / HTTP/1.0", 421)])
def test_last_reply_before_close_inside_tls(tls_daemon, command, code):
    """The reply the daemon sends just before it closes (221 to QUIT, 421)
    must reach a client inside TLS as it does in plaintext."""
    d, _ = tls_daemon
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(220, "STARTTLS")
        c.starttls()
        c.ehlo()
        c.send(command + "\r\n")
        try:
            r = c.read_reply()
        except ConnectionClosed as e:
            pytest.fail("no %d reply to %r inside TLS: %s" % (code, command, e))
        assert r.code == code, r


def test_starttls_pipelined_injection_rset(tls_daemon):
    """CVE-2011-0411: commands pipelined after STARTTLS in plaintext must
    never be answered inside TLS. RFC 2920 3.1: STARTTLS ends a group, so
    input behind it breaks synchronization: 554 5.5.0 and close, no TLS."""
    d, _ = tls_daemon
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.send(b"STARTTLS\r\nRSET\r\n")
        r = c.read_reply()
        assert r.code == 554 and r.lines[0].startswith("5.5.0"), r
        assert c.wait_closed()
    d.wait_log(r"protocol violation \(pipelining\): input pipelined after "
               r"STARTTLS", timeout=5)


def test_starttls_pipelined_injection_mail(tls_daemon):
    """An injected MAIL never starts a transaction: the session ends before
    TLS, nothing is queued, and the next client is served as usual."""
    d, sink = tls_daemon
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.send(b"STARTTLS\r\nMAIL FROM:<inject@evil.test>\r\n")
        assert c.read_reply().code == 554
        assert c.wait_closed()
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(220, "STARTTLS")
        c.starttls()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(make_message("after-inject") + b".\r\n")
        queued_id(c.read_reply())
    msgs = sink.wait_messages(1)
    assert [m["mail_from"] for m in msgs] == ["alice@sender.test"]


def test_starttls_resets_session(tls_daemon):
    d, _ = tls_daemon
    with d.connect() as c:
        c.greeting()
        r = c.ehlo()
        assert "STARTTLS" in keywords(r)
        c.expect(501, "STARTTLS now")
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(503, "STARTTLS")                  # inside a transaction
        c.expect(250, "RSET")
        c.expect(220, "STARTTLS")
        c.starttls()
        # RFC 3207 4.2: the HELO is forgotten
        c.expect(503, "MAIL FROM:<alice@sender.test>")
        r = c.ehlo()
        assert "STARTTLS" not in keywords(r), r
        c.expect(503, "STARTTLS")                  # TLS already active
        c.expect(250, "MAIL FROM:<alice@sender.test>")


def test_starttls_not_configured(mx):
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(502, "STARTTLS")
        c.expect(250, "NOOP")


def test_starttls_garbage_handshake(tls_daemon):
    """A client that sends junk instead of a TLS ClientHello is dropped;
    the daemon carries on."""
    d, sink = tls_daemon
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(220, "STARTTLS")
        c.send(b"this is not a TLS handshake\r\n" * 20)
        assert c.wait_closed(timeout=10), "connection kept after a failed handshake"
    with d.connect() as c:
        c.greeting()
        qid = queued_id(c.send_message("alice@sender.test", ["user@example.test"],
                                       make_message("after-junk")))
    sink.wait_messages(1)
    assert qid


def test_tls_client_that_does_not_read_is_held_back(mx, tls_files):
    """Over TLS too, a client that floods commands and reads nothing is
    held back: the daemon stops reading (its replies and memory stay
    bounded) and, once the client reads, every reply arrives in order.
    TLS runs over memory BIOs so one thread can send and receive freely."""
    import select
    import socket
    import ssl as ssl_mod

    cert, key = tls_files
    d = mx.daemon(mx.sink(), sections={
        "tls": {"certificate": cert, "key": key},
        "limits": {"junk_commands": "0"}})    # a NOOP flood on purpose
    raw = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    f = raw.makefile("rb")
    assert f.readline().startswith(b"220")
    raw.sendall(b"EHLO flood.test\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    raw.sendall(b"STARTTLS\r\n")
    assert f.readline().startswith(b"220")
    ctx = insecure_client_context()
    inc, out = ssl_mod.MemoryBIO(), ssl_mod.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="mx.example.test")
    while True:
        try:
            tls.do_handshake()
            break
        except ssl_mod.SSLWantReadError:
            raw.sendall(out.read())
            data = raw.recv(65536)
            assert data, "closed during handshake"
            inc.write(data)
    raw.sendall(out.read())

    n = 1000000                      # 14 MB of replies: more than socket buffers hold
    tls.write(b"NOOP\r\n" * n + b"QUIT\r\n")
    cipher = out.read()
    raw.setblocking(False)
    sent = 0
    stall_deadline = time.monotonic() + 10
    while sent < len(cipher) and time.monotonic() < stall_deadline:
        _, w, _ = select.select([], [raw], [], 1.0)
        if not w:
            break                    # the daemon stopped reading: held back
        try:
            sent += raw.send(cipher[sent:sent + 65536])
        except BlockingIOError:
            pass
    assert sent < len(cipher), "the daemon read everything while its replies piled up"

    want = b"250 2.0.0 Ok\r\n" * n + b"221 2.0.0 Bye\r\n"
    got = bytearray()
    deadline = time.monotonic() + 60
    closed = False
    while len(got) < len(want) and time.monotonic() < deadline and not closed:
        r, w, _ = select.select([raw], [raw] if sent < len(cipher) else [], [], 1.0)
        if w:
            try:
                sent += raw.send(cipher[sent:sent + 65536])
            except BlockingIOError:
                pass
        if r:
            data = raw.recv(1 << 20)
            if not data:
                closed = True
            inc.write(data)
            while True:
                try:
                    chunk = tls.read(1 << 20)
                except (ssl_mod.SSLWantReadError, ssl_mod.SSLZeroReturnError):
                    break
                if not chunk:
                    break
                got += chunk
    raw.close()
    assert len(got) == len(want), (len(got), len(want))
    assert bytes(got) == want
