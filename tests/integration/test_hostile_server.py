"""Hostile downstream servers: the SMTP client side (smtp/client.c,
smtp/reply.c) must end each abuse with a clear deferral, keep the message
queued (no bounce, no DSN), close the connection, and keep the daemon
serving other clients meanwhile (issue 9, "Hostile servers").

Each downstream here is a scripted server in this process (threads on
127.0.0.1), stopped and joined when its test ends. The daemon runs with
short [delivery] timeouts, so that every case ends within seconds.
"""

import re
import select
import socket
import threading
import time

import pytest

from conftest import make_message, queued_id, wait_until

CONNECT_TIMEOUT = 3
COMMAND_TIMEOUT = 2
DATA_TIMEOUT = 4
DELIVERY = {
    "connect_timeout": str(CONNECT_TIMEOUT),
    "command_timeout": str(COMMAND_TIMEOUT),
    "data_timeout": str(DATA_TIMEOUT),
    "retry_initial": "1s",
    "retry_max": "2s",
    "idle_timeout": "1",
}
HOLD_MAX = 30           # no scripted connection lives longer than this
LINE_MAX = 4096         # smtp/reply.h SMTP_REPLY_LINE_MAX
LINES_MAX = 1000        # smtp/reply.h SMTP_REPLY_LINES_MAX


class Gone(Exception):
    """The client closed the connection, or the server is stopping."""


class ServerConn:
    """One accepted connection, as seen by a script."""

    def __init__(self, server, sock):
        self.server = server
        self.sock = sock
        self.buf = b""
        self.accepted = time.monotonic()
        self.mark = None            # when the hostile part began
        self.closed_at = None       # when we saw the client close
        self.we_closed = False
        self.sent = 0               # octets the kernel took from us
        self.complete = None        # did the last send() finish?
        self.messages = []          # DATA content received

    def _gone(self):
        if self.closed_at is None:
            self.closed_at = time.monotonic()
        raise Gone()

    def _check_stop(self):
        if self.server.stopping.is_set():
            raise Gone()

    def send(self, data):
        """Send data, chunk by chunk; Gone when the client closed."""
        self.complete = False
        view = memoryview(data)
        while view:
            self._check_stop()
            _, w, _ = select.select([], [self.sock], [], 0.1)
            if not w:
                if self._peer_closed(0):
                    self._gone()
                continue
            try:
                n = self.sock.send(view[:65536])
            except OSError:
                self._gone()
            self.sent += n
            view = view[n:]
        self.complete = True

    def _peer_closed(self, wait):
        """True once the client has closed; what it sent is kept."""
        r, _, _ = select.select([self.sock], [], [], wait)
        if not r:
            return False
        try:
            d = self.sock.recv(65536)
        except OSError:
            return True
        if not d:
            return True
        self.buf += d
        return False

    def readline(self):
        deadline = time.monotonic() + HOLD_MAX
        while b"\n" not in self.buf:
            self._check_stop()
            if time.monotonic() > deadline:
                raise Gone()
            if self._peer_closed(0.1):
                self._gone()
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r")

    def read_data(self):
        deadline = time.monotonic() + HOLD_MAX
        while b"\r\n.\r\n" not in b"\r\n" + self.buf:
            self._check_stop()
            if time.monotonic() > deadline:
                raise Gone()
            if self._peer_closed(0.1):
                self._gone()
        data, _, self.buf = (b"\r\n" + self.buf).partition(b"\r\n.\r\n")
        return data[2:] + b"\r\n"

    def pause(self, secs):
        """Wait secs; Gone if the client closes meanwhile."""
        deadline = time.monotonic() + secs
        while True:
            self._check_stop()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._peer_closed(min(left, 0.1)):
                self._gone()

    def wait_closed(self):
        deadline = time.monotonic() + HOLD_MAX
        while time.monotonic() < deadline:
            self.pause(0.2)

    def close(self):
        """The server hangs up (a script's choice)."""
        self.we_closed = True
        self.release()

    def release(self):
        try:
            self.sock.close()
        except OSError:
            pass


class HostileServer:
    """A scripted downstream on 127.0.0.1: script(conn) runs in a thread
    for each connection."""

    def __init__(self, script, port=0):
        self.script = script
        self.stopping = threading.Event()
        self.holding = threading.Event()    # a hostile part has begun
        self.lock = threading.Lock()
        self.conns = []
        self.threads = []
        self.errors = []
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.acceptor = threading.Thread(target=self._accept,
                                         name="hostile-accept", daemon=True)
        self.acceptor.start()

    def _accept(self):
        while not self.stopping.is_set():
            r, _, _ = select.select([self.lsock], [], [], 0.1)
            if not r:
                continue
            try:
                s, _ = self.lsock.accept()
            except OSError:
                continue
            c = ServerConn(self, s)
            t = threading.Thread(target=self._run, args=(c,),
                                 name="hostile-conn", daemon=True)
            with self.lock:
                self.conns.append(c)
                self.threads.append(t)
            t.start()

    def _run(self, c):
        try:
            self.script(c)
        except Gone:
            pass
        except Exception as e:      # a bug in the script: fail the test
            self.errors.append(repr(e))
        finally:
            c.release()

    def close(self):
        """Stop accepting, end every connection, join every thread."""
        self.stopping.set()
        self.acceptor.join(5)
        self.lsock.close()
        with self.lock:
            threads = list(self.threads)
        for t in threads:
            t.join(5)
        alive = [t for t in [self.acceptor] + threads if t.is_alive()]
        assert not alive, "hostile server threads still running: %r" % alive
        assert not self.errors, "hostile server script failed: %r" % self.errors

    @property
    def hostport(self):
        return "127.0.0.1:%d" % self.port


@pytest.fixture
def hostile(request):
    """hostile(script) starts a server; all are closed at the end."""
    servers = []

    def start(script, port=0):
        s = HostileServer(script, port)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.close()


# ---------------------------------------------------------------- scripts

def dialogue(c, hostile_at=None, hostile_part=None, eol=b"\r\n"):
    """A plain SMTP server (8BITMIME only: DATA, no CHUNKING, no TLS)
    until step hostile_at ("greeting", "EHLO", "MAIL", "DATA", "dot"),
    where hostile_part(c) answers instead; then it holds the connection
    until the client closes it."""

    def step(name, normal):
        if name != hostile_at:
            c.send(normal)
            return
        c.mark = time.monotonic()
        c.server.holding.set()
        hostile_part(c)
        if not c.we_closed:
            c.wait_closed()
        raise Gone()

    step("greeting", b"220 hostile.test ESMTP" + eol)
    while True:
        line = c.readline()
        verb = line[:4].upper()
        if verb == b"EHLO":
            step("EHLO", b"250-hostile.test" + eol + b"250 8BITMIME" + eol)
        elif verb == b"HELO":
            c.send(b"250 hostile.test" + eol)
        elif verb == b"MAIL":
            step("MAIL", b"250 2.1.0 Ok" + eol)
        elif verb == b"RCPT":
            c.send(b"250 2.1.5 Ok" + eol)
        elif verb == b"DATA":
            c.send(b"354 End data with <CR><LF>.<CR><LF>" + eol)
            c.messages.append(c.read_data())
            step("dot", b"250 2.0.0 Ok: queued" + eol)
        elif verb == b"QUIT":
            c.send(b"221 2.0.0 Bye" + eol)
            return
        elif verb in (b"RSET", b"NOOP"):
            c.send(b"250 2.0.0 Ok" + eol)
        else:
            c.send(b"502 5.5.2 Error: command not recognized" + eol)


def many_lines(code, n=100000):
    def part(c):
        c.send(b"".join(b"%d-line %d of a reply that goes on\r\n" % (code, i)
                        for i in range(n)) + b"%d end\r\n" % code)
    return part


def long_line(code, size=10 * 1024 * 1024):
    def part(c):
        c.send(b"%d " % code + b"x" * size + b"\r\n")
    return part


def trickle_lines(code, interval=1.0):
    """A continuation line every interval, never the last one."""
    def part(c):
        i = 0
        while True:
            c.send(b"%d-still going %d\r\n" % (code, i))
            i += 1
            c.pause(interval)
    return part


def trickle_bytes(code, interval=0.2):
    """One octet at a time of a line that never ends."""
    def part(c):
        c.send(b"%d" % code)
        c.send(b" ")
        while True:
            c.pause(interval)
            c.send(b"z")
    return part


def silent(c):
    pass


def close_mid_reply(data):
    def part(c):
        c.send(data)
        c.close()
    return part


# ---------------------------------------------------------------- helpers

def submit(d, subject):
    with d.connect() as c:
        c.greeting()
        return queued_id(c.send_message("alice@sender.test",
                                        ["user@example.test"],
                                        make_message(subject)))


def assert_serving(d):
    """The daemon still greets and answers EHLO on a new connection."""
    with d.connect(timeout=3) as c:
        c.greeting()
        c.ehlo()
        c.expect(221, "QUIT")


def assert_deferred(d, qid, reason):
    """A deferral with reason in the log, no bounce, the message queued."""
    d.wait_log(r"id=%s to=<user@example\.test> relay=\S+ status=deferred "
               r".*%s" % (qid, reason))
    d.wait_log(r"id=%s deferred pending=1" % qid)
    log = d.log()
    assert not re.search(r"id=%s .*status=(bounced|sent)" % qid, log), log
    queued = [f for f in d.spool_files("queue") if f.endswith(".env")]
    # still there, and no DSN (a bounce would be a second envelope)
    assert queued == ["%s.env" % qid], queued


def assert_client_closed(srv, lo=0.0, hi=None):
    """The first connection's hostile part was ended by the client, after
    between lo and hi seconds."""
    c = srv.conns[0]
    wait_until(lambda: c.closed_at is not None or c.we_closed,
               (hi or 5) + 5, what="the client to close the connection")
    if c.we_closed:
        return 0
    took = c.closed_at - c.mark
    assert took >= lo, "closed after %.2fs, before %.2fs" % (took, lo)
    if hi is not None:
        assert took <= hi, "closed after %.2fs, later than %.2fs" % (took, hi)
    return took


def replace_and_deliver(mx, d, srv, qid):
    """Swap the hostile server for a normal sink on its port: the message
    then goes out."""
    port = srv.port
    srv.close()
    sink = mx.sink(port=port)
    msgs = sink.wait_messages(1, daemon=d)
    d.wait_queue_empty()
    assert re.search(r"id=%s to=<user@example\.test> relay=\S+ status=sent"
                     % qid, d.log())
    assert len(msgs) == 1 and msgs[0]["rcpts"] == ["user@example.test"]


def run_case(mx, hostile, at, part, reason, subject):
    srv = hostile(lambda c: dialogue(c, at, part))
    d = mx.daemon(route_to=srv.hostport, sections={"delivery": DELIVERY})
    qid = submit(d, subject)
    assert srv.holding.wait(10), "the delivery never reached the server"
    assert_serving(d)
    assert_deferred(d, qid, reason)
    return srv, d, qid


# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("at,where", [
    ("greeting", "waiting for greeting"),
    ("EHLO", "after EHLO"),
    ("dot", "after end of data"),
])
def test_reply_of_100k_lines(mx, hostile, at, where):
    code = 220 if at == "greeting" else 250
    srv, d, qid = run_case(
        mx, hostile, at, many_lines(code),
        r"protocol error %s: reply of more than %d lines" % (where, LINES_MAX),
        "lines-" + at)
    assert_client_closed(srv, hi=COMMAND_TIMEOUT)
    # the client gave up long before the end of the reply
    assert srv.conns[0].complete is False
    replace_and_deliver(mx, d, srv, qid)


@pytest.mark.parametrize("at,where", [
    ("greeting", "waiting for greeting"),
    ("dot", "after end of data"),
])
def test_reply_line_of_10mb(mx, hostile, at, where):
    code = 220 if at == "greeting" else 250
    srv, d, qid = run_case(
        mx, hostile, at, long_line(code),
        r"protocol error %s: reply line longer than %d octets"
        % (where, LINE_MAX), "long-" + at)
    assert_client_closed(srv, hi=COMMAND_TIMEOUT)
    # refused once past the limit: the client closed before it had read
    # the 10 MB (only kernel buffers took any of it)
    c = srv.conns[0]
    assert c.complete is False, "the client read the whole 10 MB line"
    assert c.sent < 10 * 1024 * 1024
    replace_and_deliver(mx, d, srv, qid)


def test_bare_lf_replies_deliver(mx, hostile):
    """Every reply ends in a bare LF (multi-line EHLO included): lenient,
    like Postfix, the delivery succeeds."""
    srv = hostile(lambda c: dialogue(c, eol=b"\n"))
    d = mx.daemon(route_to=srv.hostport, sections={"delivery": DELIVERY})
    msg = make_message("bare-lf")
    with d.connect() as c:
        c.greeting()
        qid = queued_id(c.send_message("alice@sender.test",
                                       ["user@example.test"], msg))
    d.wait_log(r"id=%s to=<user@example\.test> relay=\S+ status=sent" % qid)
    d.wait_queue_empty()
    got = [m for c in srv.conns for m in c.messages]
    assert len(got) == 1
    assert got[0].endswith(msg), got[0][-200:]


@pytest.mark.parametrize("at,part,timeout,reason", [
    # one continuation line a second, for ever
    ("MAIL", trickle_lines(250), COMMAND_TIMEOUT,
     "timeout waiting for reply to MAIL"),
    ("dot", trickle_lines(250), DATA_TIMEOUT,
     "timeout waiting for reply to end of data"),
    # one octet at a time of a line without end
    ("EHLO", trickle_bytes(250), COMMAND_TIMEOUT,
     "timeout waiting for reply to EHLO"),
    ("greeting", trickle_lines(220, 0.5), CONNECT_TIMEOUT,
     "timeout waiting for greeting"),
], ids=["lines-mail", "lines-dot", "bytes-ehlo", "lines-greeting"])
def test_reply_that_never_ends(mx, hostile, at, part, timeout, reason):
    """The deadline runs from the command; partial input never moves it."""
    srv, d, qid = run_case(mx, hostile, at, part, reason, "trickle-" + at)
    assert_client_closed(srv, lo=timeout - 0.5, hi=timeout + 2)
    replace_and_deliver(mx, d, srv, qid)


def test_no_reply_to_end_of_data(mx, hostile):
    """Silence after the final dot: deferred at the data timeout (longer
    than the command timeout), not before."""
    srv, d, qid = run_case(mx, hostile, "dot", silent,
                           "timeout waiting for reply to end of data",
                           "silent-dot")
    assert_client_closed(srv, lo=DATA_TIMEOUT - 0.5, hi=DATA_TIMEOUT + 2)
    assert len(srv.conns[0].messages) == 1
    replace_and_deliver(mx, d, srv, qid)


@pytest.mark.parametrize("at,data,reason", [
    ("greeting", b"220-hostile.test\r\n220-more", "lost connection waiting "
     "for greeting"),
    ("dot", b"250-2.0.0 half\r\n250-2.0.0 of a rep",
     "lost connection after end of data"),
], ids=["greeting", "dot"])
def test_close_mid_reply(mx, hostile, at, data, reason):
    srv, d, qid = run_case(mx, hostile, at, close_mid_reply(data), reason,
                           "close-" + at)
    replace_and_deliver(mx, d, srv, qid)


def test_serving_while_held(mx, hostile):
    """While a trickling server holds a delivery, several new clients are
    served in turn, each within the usual time."""
    srv = hostile(lambda c: dialogue(c, "dot", trickle_lines(250, 0.3)))
    d = mx.daemon(route_to=srv.hostport, sections={"delivery": DELIVERY})
    qid = submit(d, "held")
    assert srv.holding.wait(10)
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < DATA_TIMEOUT - 1.5:
        start = time.monotonic()
        assert_serving(d)
        assert time.monotonic() - start < 1.5
        n += 1
    assert n >= 3
    if time.monotonic() - srv.conns[0].mark < DATA_TIMEOUT - 0.5:
        assert srv.conns[0].closed_at is None, "the delivery ended early"
    assert_deferred(d, qid, "timeout waiting for reply to end of data")
