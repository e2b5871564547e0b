"""Hostile clients against the real daemon (issue 9): error and junk
limits that slow a client down and then end its session, header lines and
HTTP sent as commands, talking before the greeting, pipelining where
RFC 2920 forbids it, clients that trickle a command, message content or a
TLS handshake. Each case gets its stated reply, is logged as a protocol
violation, and another client is served normally meanwhile."""

import os
import socket
import threading
import time

import pytest

from conftest import free_port, make_message, queued_id


def served(d):
    """A well-behaved client gets its message queued (the daemon is not
    stuck behind the hostile one)."""
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(make_message("bystander") + b".\r\n")
        return queued_id(c.read_reply())


def timed_reply(c, line):
    t0 = time.monotonic()
    r = c.cmd(line)
    return r, time.monotonic() - t0


# ------------------------------------------------------- error and junk limits

def test_errors_slow_the_client_then_end_the_session(mx):
    """Past soft_error_limit each error costs error_delay; at
    hard_error_limit: 421 and close (Postfix's smtpd_soft/hard_error_limit)."""
    d = mx.daemon(sections={"limits": {"soft_error_limit": "3",
                                       "hard_error_limit": "6",
                                       "error_delay": "1s"}})
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        times = []
        for i in range(5):
            r, dt = timed_reply(c, "BOGUS%d" % i)
            assert r.code == 500, r
            times.append(dt)
        # errors 1-4 answered at once; the 4th is past the soft limit, so
        # the command after it waits error_delay before it is read
        assert max(times[:4]) < 0.5, times
        assert times[4] >= 0.9, times
        # meanwhile the daemon serves others at full speed
        t0 = time.monotonic()
        served(d)
        assert time.monotonic() - t0 < 3
        c.send(b"BOGUS5\r\n")
        r = c.read_reply(timeout=5)
        assert r.code == 500, r
        r = c.read_reply(timeout=5)
        assert r.code == 421 and r.lines[0].startswith("4.7.0"), r
        assert c.wait_closed()
    d.wait_log(r"protocol violation \(errors\): 6 errors; closing", timeout=5)


def test_recipients_past_the_limit_are_not_errors(mx):
    """452 for recipients past [limits] recipients is flow control (RFC 5321
    4.5.3.1.10): a client sending 150 recipients with a low error limit
    still gets its message through to the first 100."""
    sink = mx.sink()
    d = mx.daemon(sink, sections={"limits": {"hard_error_limit": "5",
                                             "soft_error_limit": "2"}})
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        codes = [c.cmd("RCPT TO:<u%d@example.test>" % i).code for i in range(150)]
        assert codes == [250] * 100 + [452] * 50, codes
        c.expect(354, "DATA")
        c.send(make_message("many") + b".\r\n")
        queued_id(c.read_reply())
    assert len(sink.wait_messages(1)[0]["rcpts"]) == 100


def test_an_accepted_message_resets_the_error_count(mx):
    """A client that delivers mail is a sender, not a prober: errors before
    an accepted message do not count against the next one."""
    d = mx.daemon(sections={"limits": {"hard_error_limit": "3",
                                       "soft_error_limit": "3"}})
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        for _ in range(3):
            c.expect(250, "MAIL FROM:<alice@sender.test>")
            c.expect(500, "BOGUS")
            c.expect(500, "BOGUS")
            c.expect(250, "RCPT TO:<user@example.test>")
            c.expect(354, "DATA")
            c.send(make_message("reset") + b".\r\n")
            queued_id(c.read_reply())
        c.expect(221, "QUIT")


def test_junk_commands_end_the_session(mx):
    d = mx.daemon(sections={"limits": {"junk_commands": "5"}})
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        for cmd in ("NOOP", "RSET", "VRFY x", "HELP"):     # and EHLO: 5
            assert c.cmd(cmd).code < 400
        r = c.cmd("NOOP")
        assert r.code == 421 and r.lines[0].startswith("4.7.0"), r
        assert c.wait_closed()
    d.wait_log(r"protocol violation \(junk\)", timeout=5)
    served(d)


# ------------------------------------------------- things that are not SMTP

@pytest.mark.parametrize("line", [
    b"Subject: hello",
    b"From: <alice@sender.test>",
    b"Received: from evil.test by mx",
    b"X-Mailer:x",
    b"DKIM-Signature: v=1; a=rsa-sha256",
])
@pytest.mark.parametrize("after_ehlo", [False, True])
def test_header_line_as_command_closes(mx, line, after_ehlo):
    """Message content read as commands (a smuggling attempt, or a client
    that lost track of DATA): disconnect at once."""
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        if after_ehlo:
            c.ehlo()
            c.expect(250, "MAIL FROM:<alice@sender.test>")
        r = c.cmd(line.decode())
        assert r.code == 421 and r.lines[0].startswith("4.7.0"), r
        assert c.wait_closed()
    d.wait_log(r"protocol violation \(header_command\)", timeout=5)
    assert not d.spool_files("queue")


@pytest.mark.parametrize("req", [
    b"GET / HTTP/1.1\r\nHost: mx\r\n\r\n",
    b"POST /cgi-bin/x HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
    b"CONNECT 10.0.0.1:25 HTTP/1.1\r\n\r\n",
])
def test_http_requests_close_at_once(mx, req):
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        c.send(req)
        r = c.read_reply()
        assert r.code == 421, r
        assert c.wait_closed()
    d.wait_log(r"protocol violation \(http\)", timeout=5)


# ------------------------------------------------------------------ pregreet

def test_talking_before_the_greeting_is_refused(mx):
    d = mx.daemon(sections={"limits": {"pregreet_wait": "1s"}})
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    try:
        s.sendall(b"EHLO spambot.test\r\nMAIL FROM:<x@spam.test>\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    assert data.startswith(b"554 mx.example.test "), data
    assert b"250" not in data and b"220" not in data, data
    d.wait_log(r"protocol violation \(pregreet\): \d+ octets before the greeting",
               timeout=5)


def test_patient_client_is_greeted_after_the_wait(mx):
    d = mx.daemon(sections={"limits": {"pregreet_wait": "1s"}})
    t0 = time.monotonic()
    with d.connect() as c:
        c.greeting()
        assert time.monotonic() - t0 >= 0.9
        c.ehlo()
    served(d)


# ---------------------------------------------------------------- pipelining

@pytest.mark.parametrize("first,after", [
    (b"HELO client.test", b"MAIL FROM:<a@sender.test>"),     # never offered
    (b"EHLO client.test", b"MAIL FROM:<a@sender.test>"),     # not yet offered
    (b"RSET", b"HELO client.test"),                          # before any HELO
])
def test_pipelining_before_it_is_offered_is_refused(mx, first, after):
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        c.send(first + b"\r\n" + after + b"\r\n")
        r = c.read_reply()
        assert r.code == 554 and r.lines[0].startswith("5.5.0"), r
        assert c.wait_closed()
    d.wait_log(r"protocol violation \(pipelining\): input pipelined after "
               r"\w+ before PIPELINING was offered", timeout=5)


def test_content_sent_with_data_is_refused(mx):
    """RFC 2920 3.1: DATA ends a group; content sent before the 354 was
    read breaks synchronization. Nothing is queued."""
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<user@example.test>\r\n"
               b"DATA\r\n" + make_message("eager") + b".\r\n")
        assert c.read_reply().code == 250
        assert c.read_reply().code == 250
        r = c.read_reply()
        assert r.code == 554 and r.lines[0].startswith("5.5.0"), r
        assert c.wait_closed()
    d.wait_log(r"protocol violation \(pipelining\): input pipelined after DATA",
               timeout=5)
    assert not d.spool_files("queue")


def test_allowed_pipelining_still_works(mx):
    """MAIL, RCPT and DATA in one group, QUIT after the final dot, and
    several BDAT chunks with the next message's MAIL behind them."""
    sink = mx.sink()
    d = mx.daemon(sink)
    msg = make_message("group")
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<user@example.test>\r\n"
               b"DATA\r\n")
        assert [c.read_reply().code for _ in range(3)] == [250, 250, 354]
        c.send(msg + b".\r\nMAIL FROM:<b@sender.test>\r\n"
               b"RCPT TO:<user@example.test>\r\n"
               b"BDAT %d\r\n" % (len(msg) - 10) + msg[:-10] +
               b"BDAT 10 LAST\r\n" + msg[-10:] + b"QUIT\r\n")
        queued_id(c.read_reply())
        assert [c.read_reply().code for _ in range(4)] == [250, 250, 250, 250]
        assert c.read_reply().code == 221
    assert len(sink.wait_messages(2)) == 2


# -------------------------------------------------------------- slow clients

def trickle(sock, data, interval, stop):
    for b in data:
        if stop.is_set():
            return
        try:
            sock.sendall(bytes([b]))
        except OSError:
            return
        stop.wait(interval)


def read_until_closed(sock, timeout):
    sock.settimeout(timeout)
    data = b""
    t0 = time.monotonic()
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data, time.monotonic() - t0


def raw_ehlo(d):
    """A plain socket (a trickling client needs one) past the greeting and
    EHLO: the socket and a file reading its replies."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220")
    s.sendall(b"EHLO slow.test\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    return s, f


def test_trickled_command_hits_the_command_deadline(mx):
    """A command line trickled one octet at a time keeps the read timeout
    from ever firing; the per-command deadline ends it after
    command_timeout."""
    d = mx.daemon(sections={"limits": {"command_timeout": "2"}})
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    stop = threading.Event()
    try:
        assert s.recv(4096).startswith(b"220")
        t = threading.Thread(target=trickle, args=(
            s, b"NOOP" + b" " * 100 + b"\r\n", 0.25, stop), daemon=True)
        t.start()
        data, took = read_until_closed(s, 15)
        stop.set()
        t.join(5)
    finally:
        stop.set()
        s.close()
    assert data.startswith(b"421 4.4.2"), data
    assert took < 5, took
    d.wait_log(r"protocol violation \(slow_command\): no whole command within 2s",
               timeout=5)


@pytest.mark.parametrize("mode", ["DATA", "BDAT"])
def test_trickled_content_hits_the_data_rate(mx, mode):
    """Content owes min_data_rate octets/s after data_timeout's grace; a
    client trickling under it is cut off (421 4.4.2) although it never
    idles long enough for the read timeout, and nothing is queued."""
    d = mx.daemon(sections={"limits": {"data_timeout": "2",
                                       "min_data_rate": "1000"}})
    s, f = raw_ehlo(d)
    stop = threading.Event()
    try:
        for line in (b"MAIL FROM:<a@sender.test>", b"RCPT TO:<user@example.test>"):
            s.sendall(line + b"\r\n")
            assert f.readline().startswith(b"250")
        if mode == "DATA":
            s.sendall(b"DATA\r\n")
            assert f.readline().startswith(b"354")
        else:
            s.sendall(b"BDAT 100000 LAST\r\n")
        t = threading.Thread(target=trickle, args=(
            s, make_message("slow", body="x" * 5000 + "\r\n"), 0.2, stop),
            daemon=True)
        t0 = time.monotonic()
        t.start()
        bystander = served(d)           # others are served meanwhile
        data = f.read1(4096) if hasattr(f, "read1") else s.recv(4096)
        took = time.monotonic() - t0
        stop.set()
        t.join(5)
    finally:
        stop.set()
        s.close()
    assert data.startswith(b"421 4.4.2"), data
    assert 1.5 < took < 6, took
    d.wait_log(r"protocol violation \(slow_data\): content slower than 1000 "
               r"octets/s", timeout=5)
    assert [f for f in d.spool_files("queue") if bystander not in f] == []


def test_discarded_chunk_owes_the_data_rate(mx):
    """RFC 3030 2: a BDAT chunk that follows refused recipients in a
    pipelined group is read and discarded, then refused. It is content: it
    owes min_data_rate after data_timeout, not a whole command line within
    command_timeout."""
    d = mx.daemon(sections={"limits": {"command_timeout": "2",
                                       "data_timeout": "10"}})
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.send(b"MAIL FROM:<alice@sender.test>\r\n"
               b"RCPT TO:<user@elsewhere.test>\r\nBDAT 4000 LAST\r\n")
        assert c.read_reply().code == 250
        r = c.read_reply()
        assert r.code >= 500, r
        try:
            for _ in range(20):         # 4 s, 1000 octets/s
                c.send(b"x" * 200)
                time.sleep(0.2)
        except OSError:
            pass
        r = c.read_reply(timeout=10)
        assert r.code == 554 and r.lines[0].startswith("5.5.1"), r
        c.expect(250, "NOOP")
    assert not d.log_since_start().count("protocol violation")


def test_fast_content_is_not_cut_off(mx):
    """The data rate is a floor on average speed, not a cap on size: 2 MB
    sent at full speed with a 1 s grace passes."""
    sink = mx.sink()
    d = mx.daemon(sink, sections={"limits": {"data_timeout": "1",
                                             "min_data_rate": "100000"}})
    body = ("y" * 998 + "\r\n") * 2000
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<a@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(make_message("big", body=body) + b".\r\n")
        queued_id(c.read_reply(timeout=30))
    sink.wait_messages(1)


def test_stalled_tls_handshake_is_dropped(mx, tls_files):
    """STARTTLS, then a handshake trickled an octet at a time: dropped
    after tls_timeout although the command timeout is far away."""
    cert, key = tls_files
    d = mx.daemon(sections={"tls": {"certificate": cert, "key": key},
                            "limits": {"tls_timeout": "2",
                                       "command_timeout": "60"}})
    s, f = raw_ehlo(d)
    stop = threading.Event()
    try:
        s.sendall(b"STARTTLS\r\n")
        assert f.readline().startswith(b"220")
        # the start of a TLS record (a ClientHello header), then dribble
        t = threading.Thread(target=trickle, args=(
            s, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 60,
            0.25, stop), daemon=True)
        t.start()
        data, took = read_until_closed(s, 15)
        stop.set()
        t.join(5)
    finally:
        stop.set()
        s.close()
    assert took < 6, took
    d.wait_log(r"TLS handshake not done within 2s", timeout=5)


def test_silent_implicit_tls_client_is_dropped(mx, tls_files):
    """Port 465: a client that connects and never starts its handshake."""
    cert, key = tls_files
    port = free_port()
    users = os.path.join(mx.dir, "users")
    open(users, "w").close()
    d = mx.daemon(sections={
        "tls": {"certificate": cert, "key": key},
        "submission": {"users": users},
        "limits": {"tls_timeout": "1", "command_timeout": "60"},
        "listener subs": {"address": "127.0.0.1", "port": str(port),
                          "profile": "submissions"}})
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        data, took = read_until_closed(s, 15)
    finally:
        s.close()
    assert data == b"" and took < 5, (data, took)
    d.wait_log(r"TLS handshake not done within 1s", timeout=5)


def test_violations_are_counted(mx):
    """mxgate_protocol_violations_total{kind} on the metrics endpoint."""
    from test_metrics import scrape
    mport = free_port()
    d = mx.daemon(sections={"metrics": {"listen": "127.0.0.1:%d" % mport}})
    key = "mxgate_protocol_violations_total"
    before = scrape(mport)
    assert before.samples.get((key, (("kind", "pipelining"),))) == 0, \
        before.text
    assert key in before.help
    for data in (b"HELO a\r\nMAIL FROM:<a@b.test>\r\n", b"Subject: x\r\n",
                 b"EHLO a\r\nQUIT\r\n"):
        with d.connect() as c:
            c.greeting()
            c.send(data)
            c.read_reply()
            assert c.wait_closed()
    m = scrape(mport)
    assert m.samples.get((key, (("kind", "pipelining"),))) == 2, m.text
    assert m.samples.get((key, (("kind", "header_command"),))) == 1, m.text


def test_bdat_message_trickled_in_chunks_hits_the_data_rate(mx):
    """One clock for a whole BDAT message, the time between its chunks
    included: a client cannot send a message an octet per chunk, each
    chunk well within its own deadline."""
    d = mx.daemon(sections={"limits": {"data_timeout": "2",
                                       "min_data_rate": "1000",
                                       "command_timeout": "60"}})
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<a@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        t0 = time.monotonic()
        r = None
        for i in range(40):
            c.send(b"BDAT 1\r\nx")
            r = c.read_reply(timeout=10)
            if r.code != 250:
                break
            time.sleep(0.2)
        took = time.monotonic() - t0
        assert r.code == 421 and r.lines[0].startswith("4.4.2"), r
        assert 1.5 < took < 6, took
    d.wait_log(r"protocol violation \(slow_data\)", timeout=5)


def test_helo_name_longer_than_255_octets(mx):
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        r = c.cmd("EHLO " + "a" * 251 + ".test")      # 256 octets
        assert r.code == 501, r
        c.ehlo()


def test_repeated_greetings_are_junk(mx):
    """HELO/EHLO over and over moves no mail: it counts as junk."""
    d = mx.daemon(sections={"limits": {"junk_commands": "3"}})
    with d.connect() as c:
        c.greeting()
        for _ in range(3):
            assert c.cmd("HELO client.test").code == 250
        r = c.cmd("HELO client.test")
        assert r.code == 421, r
        assert c.wait_closed()


def test_input_sent_while_ehlo_is_decided_is_refused(mx):
    """RFC 2920 3.1 for input that arrives while the EHLO is still being
    decided (its HELO SPF check waits on a DNS server that never answers):
    it was sent before the reply could have been read. Checked when the
    reply is about to go out; 554 5.5.0 instead of the EHLO reply."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        d = mx.daemon(sections={
            "dns": {"servers": "127.0.0.1:%d" % silent.getsockname()[1],
                    "timeout": "1s"},
            "spf": {"check_helo": "yes"}})
        with d.connect() as c:
            c.greeting()
            c.send(b"EHLO client.test\r\n")
            time.sleep(0.3)                 # read alone, then decided later
            c.send(b"MAIL FROM:<a@sender.test>\r\n")
            r = c.read_reply(timeout=15)
            assert r.code == 554 and r.lines[0].startswith("5.5.0"), r
            assert c.wait_closed()
        d.wait_log(r"protocol violation \(pipelining\): input sent after EHLO "
                   r"before its reply", timeout=5)
        with d.connect() as c:              # a patient client is fine
            c.greeting()
            assert c.cmd("EHLO client.test", timeout=15).code == 250
            c.expect(250, "MAIL FROM:<a@sender.test>")
    finally:
        silent.close()
