"""Shared machinery for the mxgate integration tests.

Every test that takes the `mx` fixture gets a fresh working directory
(/tmp/mxgate-it-XXXX, mode 0755 so that the daemon can still reach its
spool after it dropped privileges to `nobody`), and can start any number of
downstream sinks (tests/tools/smtpsink.py) and mxgate daemons in it. All
of them are stopped when the test ends, whatever its outcome: the daemon
with SIGTERM then SIGKILL, sinks likewise. The daemon's stderr goes to a
log file in the working directory; its tail is attached to the report of
a failing test, and a test fails if the log shows a sanitizer report
(ASan, LSan or UBSan "runtime error:").

Environment:
  MXGATE_BIN        daemon binary (default: build-san/mxgate in the repo)
  MXGATE_DEBUG=1    run the daemon with -d (debug logging)
  MXGATE_KEEP=1     keep the working directory of failed tests
"""

import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SINK_SCRIPT = REPO / "tests" / "tools" / "smtpsink.py"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
IS_ROOT = os.geteuid() == 0

HOSTNAME = "mx.example.test"
DOMAIN = "example.test"

# Bounded waits everywhere (seconds).
START_TIMEOUT = 20
STOP_TIMEOUT = 10
DELIVERY_TIMEOUT = 20
REPLY_TIMEOUT = 10
TEST_TIMEOUT = 120          # safety net per test (SIGALRM)

SANITIZER_PATTERNS = [
    re.compile(r"ERROR: AddressSanitizer"),
    re.compile(r"ERROR: LeakSanitizer"),
    re.compile(r"AddressSanitizer:DEADLYSIGNAL"),
    re.compile(r"LeakSanitizer has encountered a fatal error"),
    re.compile(r"runtime error:"),
]


def mxgate_bin():
    b = os.environ.get("MXGATE_BIN", "build-san/mxgate")
    p = Path(b)
    if not p.is_absolute():
        p = REPO / p
    return p


def wait_until(pred, timeout, interval=0.05, what="condition", fail_if=None):
    """Poll pred() until it returns a true value or timeout; returns it.
    fail_if() may return a message to give up at once (a state from which
    the condition can no longer come true)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if fail_if is not None:
            why = fail_if()
            if why:
                raise AssertionError("while waiting for %s: %s" % (what, why))
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


def free_port(host="127.0.0.1"):
    """A currently free TCP port on host (bind to port 0, read it back)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


_LIVE = []          # every process we started, for last-resort cleanup


def _die_with_parent():
    """preexec_fn: SIGKILL the child if pytest dies (Linux; the kernel
    clears it again when the daemon drops privileges)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def spawn(argv, **kw):
    p = subprocess.Popen(argv, preexec_fn=_die_with_parent, **kw)
    _LIVE.append(p)
    return p


@atexit.register
def _kill_leftovers():
    for p in _LIVE:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=5)
            except Exception:
                pass


def stop_process(proc, timeout=STOP_TIMEOUT, sig=signal.SIGTERM):
    """SIGTERM (or sig), then SIGKILL after timeout. Returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    return proc.returncode


# ---------------------------------------------------------------- SMTP client

class SMTPError(AssertionError):
    pass


class ConnectionClosed(SMTPError):
    pass


class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines          # text after "xyz-" / "xyz "

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def first(self):
        return "%d %s" % (self.code, self.lines[0] if self.lines else "")

    def __repr__(self):
        return "Reply(%d, %r)" % (self.code, self.lines)


class SMTPConn:
    """A raw SMTP client: exact bytes out, exact replies in."""

    def __init__(self, host, port, timeout=REPLY_TIMEOUT):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            raise SMTPError("no reply within %.1fs (buffered: %r)"
                            % (timeout, self.buf))
        except (ConnectionResetError, ssl.SSLError) as e:
            d = b""
            self.reset_error = e
        if not d:
            self.eof = True
            raise ConnectionClosed("connection closed by mxgate (buffered: %r)"
                                   % self.buf)
        self.buf += d

    def read_line(self, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SMTPError("no complete line within %.1fs (buffered: %r)"
                                % (timeout, self.buf))
            self._fill(left)
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def read_reply(self, timeout=None):
        lines = []
        code = None
        while True:
            line = self.read_line(timeout)
            m = re.match(r"^([2-5][0-9][0-9])([ -]|$)(.*)$", line)
            if not m:
                raise SMTPError("malformed reply line %r" % line)
            if code is None:
                code = int(m.group(1))
            elif int(m.group(1)) != code:
                raise SMTPError("reply code changed inside a reply: %r" % line)
            lines.append(m.group(3))
            if m.group(2) != "-":
                return Reply(code, lines)

    def cmd(self, line, timeout=None):
        self.send(line + "\r\n")
        return self.read_reply(timeout)

    def expect(self, code, line=None, timeout=None, startswith=None):
        """Send line (if given) and assert the reply code (and text start)."""
        r = self.cmd(line, timeout) if line is not None else self.read_reply(timeout)
        assert r.code == code, "%r: expected %d, got %r" % (line, code, r)
        if startswith is not None:
            assert r.first.startswith(startswith), \
                "%r: expected %r, got %r" % (line, startswith, r)
        return r

    def greeting(self):
        return self.expect(220)

    def ehlo(self, name="client.test"):
        return self.expect(250, "EHLO " + name)

    def unread(self, wait=0.3):
        """Whatever arrives within `wait` seconds beyond what was read."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not d:
                self.eof = True
                break
            self.buf += d
        return self.buf

    def wait_closed(self, timeout=None):
        """True once the server closed the connection (data is dropped)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return False
            except OSError:
                self.eof = True
                break
            if not d:
                self.eof = True
                break
            self.buf += d
        return True

    def starttls(self, context=None):
        """Wrap the socket after a 220 to STARTTLS."""
        assert self.buf == b"", "plaintext after the STARTTLS reply: %r" % self.buf
        if context is None:
            context = insecure_client_context()
        self.sock.settimeout(self.timeout)
        self.sock = context.wrap_socket(self.sock, server_hostname=HOSTNAME)
        return self.sock

    def send_message(self, sender, rcpts, content, ehlo=True):
        """EHLO (optional), MAIL, RCPTs, DATA; returns the final reply."""
        if ehlo:
            self.ehlo()
        self.expect(250, "MAIL FROM:<%s>" % sender)
        for r in rcpts:
            self.expect(250, "RCPT TO:<%s>" % r)
        self.expect(354, "DATA")
        self.send(dot_stuff(content) + b".\r\n")
        return self.read_reply()


def insecure_client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def dot_stuff(content):
    """RFC 5321 4.5.2 transparency; content must end in CRLF."""
    assert content.endswith(b"\r\n")
    lines = content.split(b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines)


def make_message(subject="test", body="Hello.\r\n", sender="alice@sender.test",
                 to="user@example.test", extra_headers=()):
    hdr = ["From: <%s>" % sender, "To: <%s>" % to, "Subject: %s" % subject,
           "Message-ID: <%s@sender.test>" % subject.replace(" ", "-")]
    hdr.extend(extra_headers)
    if isinstance(body, str):
        body = body.encode()
    return ("\r\n".join(hdr) + "\r\n\r\n").encode() + body


QUEUED_RE = re.compile(r"^2\.0\.0 Ok: queued as ([0-9A-F]{16})$")


def queued_id(reply):
    assert reply.code == 250, "message not accepted: %r" % reply
    m = QUEUED_RE.match(reply.lines[-1])
    assert m, "250 reply does not name the queue id: %r" % reply
    return m.group(1)


def split_received(eml):
    """(first header field unfolded, rest of the message) of stored content."""
    lines = eml.split(b"\r\n")
    assert lines and lines[0].startswith(b"Received:"), \
        "message does not start with a Received header: %r" % eml[:200]
    i = 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    raw = b"\r\n".join(lines[:i]) + b"\r\n"
    end = len(raw)
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", raw[:-2]).decode("utf-8", "replace")
    return unfolded, eml[end:]


# ---------------------------------------------------------------- processes

class Sink:
    """A tests/tools/smtpsink.py process with its own maildir."""

    def __init__(self, env, name, args=(), port=0, host="127.0.0.1"):
        self.env = env
        self.name = name
        self.args = list(args)
        self.host = host
        self.port = port
        self.maildir = os.path.join(env.dir, name + ".mail")
        self.out_path = os.path.join(env.dir, name + ".out")
        self.err_path = os.path.join(env.dir, name + ".err")
        self.proc = None

    def start(self):
        assert self.proc is None or self.proc.poll() is not None
        os.makedirs(self.maildir, exist_ok=True)
        out = open(self.out_path, "w")
        err = open(self.err_path, "a")
        try:
            self.proc = spawn(
                [PYTHON, str(SINK_SCRIPT), "--listen", self.host,
                 "--port", str(self.port), "--maildir", self.maildir]
                + self.args,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        finally:
            out.close()
            err.close()

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError("sink %s exited with %s: %s" % (
                    self.name, self.proc.returncode, self._read(self.err_path)))
            m = re.search(r"LISTENING (\d+)", self._read(self.out_path))
            return m and int(m.group(1))
        port = wait_until(listening, START_TIMEOUT, what="sink %s" % self.name)
        if self.port:
            assert port == self.port
        self.port = port
        return self

    @staticmethod
    def _read(path):
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    @property
    def hostport(self):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "%s:%d" % (h, self.port)

    def stop(self):
        rc = stop_process(self.proc, timeout=5)
        return rc

    def messages(self):
        """Complete messages so far, in order: the .json dict + 'eml' bytes."""
        out = []
        if not os.path.isdir(self.maildir):
            return out
        for name in os.listdir(self.maildir):
            if not name.endswith(".json"):
                continue
            with open(os.path.join(self.maildir, name)) as f:
                meta = json.load(f)
            with open(os.path.join(self.maildir, "%d.eml" % meta["n"]), "rb") as f:
                meta["eml"] = f.read()
            out.append(meta)
        out.sort(key=lambda m: m["n"])
        return out

    def wait_messages(self, n, timeout=DELIVERY_TIMEOUT, daemon=None):
        """Wait for n messages. With daemon, give up early if it died or
        moved a message to corrupt/ (it will never be delivered then)."""
        fail_if = None
        if daemon is not None:
            def fail_if():
                if not daemon.running():
                    return "mxgate exited with status %s" % daemon.proc.returncode
                for m in re.finditer(r"id=([0-9A-F]{16}) moved to corrupt/: (.*)",
                                     daemon.log()):
                    if m.group(1) in daemon.known_ids:
                        return "message %s was moved to corrupt/ (%s)" % m.groups()
                return None
        wait_until(lambda: len(self.messages()) >= n, timeout,
                   what="%d message(s) at sink %s" % (n, self.name),
                   fail_if=fail_if)
        return self.messages()


def ini_text(sections):
    out = []
    for sec, keys in sections.items():
        out.append("[%s]" % sec)
        for k, v in keys.items():
            if v is None:
                continue
            out.append("%s = %s" % (k, v))
        out.append("")
    return "\n".join(out)


class Daemon:
    """One mxgate process (restartable on the same config and spool)."""

    def __init__(self, env, sections, name="mxgate", debug=None):
        self.env = env
        self.name = name
        self.sections = sections
        self.cfg_path = os.path.join(env.dir, name + ".ini")
        self.log_path = os.path.join(env.dir, name + ".log")
        self.debug = (os.environ.get("MXGATE_DEBUG") == "1") if debug is None else debug
        self.proc = None
        self.starts = 0
        self.known_ids = set()      # queue ids the test got a 250 for
        with open(self.cfg_path, "w") as f:
            f.write(ini_text(sections))

    @property
    def spool(self):
        return self.sections["server"]["spool"]

    @property
    def port(self):
        return int(self.sections["listener mx"]["port"])

    def start(self, wait=True):
        assert self.proc is None or self.proc.poll() is not None
        binary = mxgate_bin()
        if not binary.exists():
            pytest.fail("mxgate binary %s not found: build it (make SAN=1) or "
                        "set MXGATE_BIN" % binary)
        self.ready_before = self.log().count("mxgate ready")
        self.mark = len(self.log())
        log = open(self.log_path, "a")
        argv = [str(binary), "serve", "-c", self.cfg_path]
        if self.debug:
            argv.append("-d")
        try:
            self.proc = spawn(argv, stdin=subprocess.DEVNULL,
                              stdout=log, stderr=log)
        finally:
            log.close()
        self.starts += 1
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self):
        def ready():
            if self.log().count("mxgate ready") > self.ready_before:
                return True
            if self.proc.poll() is not None:
                raise AssertionError(
                    "mxgate exited with status %s before 'mxgate ready'; log:\n%s"
                    % (self.proc.returncode, self.tail()))
            return False
        wait_until(ready, START_TIMEOUT, what="'mxgate ready' in %s" % self.log_path)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT):
        return stop_process(self.proc, timeout)

    def kill9(self):
        self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_since_start(self):
        return self.log()[self.mark:]

    def tail(self, n=60):
        return "\n".join(self.log().splitlines()[-n:])

    def wait_log(self, pattern, timeout=DELIVERY_TIMEOUT, count=1):
        rx = re.compile(pattern, re.M)

        def found():
            ms = rx.findall(self.log())
            return len(ms) >= count and ms
        return wait_until(found, timeout, what="log line /%s/ x%d in %s"
                          % (pattern, count, self.log_path))

    def connect(self, port=None, host="127.0.0.1", timeout=REPLY_TIMEOUT):
        return SMTPConn(host, port or self.port, timeout)

    # spool
    def spool_files(self, sub):
        d = os.path.join(self.spool, sub)
        try:
            return sorted(os.listdir(d))
        except FileNotFoundError:
            return []

    def wait_queue_empty(self, timeout=DELIVERY_TIMEOUT):
        wait_until(lambda: self.spool_files("queue") == [], timeout,
                   what="empty spool queue/ (has %r)" % self.spool_files("queue"))

    def sanitizer_lines(self):
        return [l for l in self.log().splitlines()
                if any(p.search(l) for p in SANITIZER_PATTERNS)]


class MxEnv:
    """Per-test working directory, sinks and daemons."""

    def __init__(self, request):
        self.request = request
        self.dir = tempfile.mkdtemp(prefix="mxgate-it-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.sinks = []
        self.daemons = []

    # sinks
    def sink(self, *args, port=0, host="127.0.0.1", start=True, name=None):
        s = Sink(self, name or "sink%d" % (len(self.sinks) + 1), args, port, host)
        self.sinks.append(s)
        if start:
            s.start()
        return s

    # daemon configuration
    def config(self, route_to=None, sections=None, port=None):
        """Default test configuration; sections overrides/adds keys
        (value None removes a key; a section set to None is removed)."""
        cfg = {
            "server": {
                "hostname": HOSTNAME,
                "spool": os.path.join(self.dir, "spool"),
                "user": "nobody" if IS_ROOT else None,
                "log": "stderr",
                "log_level": "info",
            },
            "listener mx": {
                "address": "127.0.0.1",
                "port": str(port or free_port()),
                "profile": "inbound",
            },
            "domains": {"accept": DOMAIN},
            "route " + DOMAIN: {
                "hosts": route_to or "127.0.0.1:%d" % free_port(),
            },
            "limits": {
                "command_timeout": "15",
                "data_timeout": "15",
            },
            "delivery": {
                "retry_initial": "1s",
                "retry_max": "2s",
                "connect_timeout": "5",
                "command_timeout": "10",
                "data_timeout": "10",
            },
            # SMTP tests need no DNS: SPF is off unless a test turns it on
            # (with its own DNS server, see test_spf.py)
            "spf": {
                "check_helo": "no",
                "check_mailfrom": "no",
            },
            "dkim": {"verify": "no"},
            "dmarc": {"verify": "no"},
        }
        for sec, keys in (sections or {}).items():
            if keys is None:
                cfg.pop(sec, None)
                continue
            cfg.setdefault(sec, {}).update(keys)
        return cfg

    def daemon(self, sink=None, sections=None, start=True, name=None,
               route_to=None, debug=None):
        if sink is not None and route_to is None:
            route_to = sink.hostport
        d = Daemon(self, self.config(route_to=route_to, sections=sections),
                   name=name or ("mxgate%d" % (len(self.daemons) + 1)
                                 if self.daemons else "mxgate"),
                   debug=debug)
        self.daemons.append(d)
        if start:
            d.start()
        return d

    def stop_all(self):
        for d in self.daemons:
            try:
                d.stop()
            except Exception:
                pass
        for s in self.sinks:
            try:
                s.stop()
            except Exception:
                pass

    def sanitizer_report(self):
        out = []
        for d in self.daemons:
            lines = d.sanitizer_lines()
            if lines:
                out.append("%s (%s):\n  %s" % (d.name, d.log_path,
                                               "\n  ".join(lines[:20])))
        return "\n".join(out)

    def log_tails(self, n=60):
        out = ["working directory: %s" % self.dir]
        for d in self.daemons:
            out.append("--- %s (last %d lines of %s) ---\n%s"
                       % (d.name, n, d.log_path, d.tail(n)))
        for s in self.sinks:
            err = Sink._read(s.err_path).strip()
            if err:
                out.append("--- %s stderr ---\n%s" % (s.name, err[-3000:]))
        return "\n".join(out)

    def cleanup(self, failed):
        self.stop_all()
        if failed and os.environ.get("MXGATE_KEEP") == "1":
            return
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- fixtures

@pytest.fixture
def mx(request):
    env = MxEnv(request)
    request.node._mxenv = env
    yield env
    rep = getattr(request.node, "_mx_failed", False)
    env.cleanup(failed=rep)


@pytest.fixture(scope="session")
def tls_files():
    """(certificate, key) PEM files for mx.example.test, made once."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    d = tempfile.mkdtemp(prefix="mxgate-it-tls-", dir="/tmp")
    os.chmod(d, 0o755)
    cert = os.path.join(d, "cert.pem")
    key = os.path.join(d, "key.pem")
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-subj", "/CN=" + HOSTNAME, "-days", "1",
         "-keyout", key, "-out", cert],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert r.returncode == 0, "openssl failed: %s" % r.stderr.decode(errors="replace")
    os.chmod(key, 0o644)
    os.chmod(cert, 0o644)
    yield cert, key
    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- hooks

def _alarm(signum, frame):
    raise TimeoutError("test exceeded %ds (safety timeout)" % TEST_TIMEOUT)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    env = getattr(item, "_mxenv", None)
    if env is None:
        return
    if rep.when == "call":
        # Stop everything now so that sanitizer reports printed at exit
        # are in the logs before we look.
        env.stop_all()
        san = env.sanitizer_report()
        if san:
            if rep.passed:
                rep.outcome = "failed"
                rep.longrepr = "sanitizer report in the mxgate log:\n" + san
            else:
                rep.sections.append(("sanitizer report", san))
    if rep.failed:
        item._mx_failed = True
        rep.sections.append(("mxgate logs", env.log_tails()))


def pytest_sessionfinish(session, exitstatus):
    _kill_leftovers()


def opendkim_testmsg(workdir, zone_path, messages):
    """Run OpenDKIM's opendkim-testmsg on each of messages ({name: bytes})
    in a private mount+network namespace whose /etc/resolv.conf points at
    tests/tools/dnsserver.py serving zone_path on that namespace's own
    127.0.0.1:53 (opendkim-testmsg only uses the system resolver). Returns
    the CompletedProcess; stdout has "NAME=EXIT" per message. Skips when
    the tool, root or namespaces are not available."""
    import shutil
    testmsg = shutil.which("opendkim-testmsg") or "/usr/sbin/opendkim-testmsg"
    if not os.path.exists(testmsg):
        pytest.skip("opendkim-testmsg missing: apt-get install -y opendkim-tools")
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a private network namespace")
    with open(os.path.join(workdir, "resolv.conf"), "w") as f:
        f.write("nameserver 127.0.0.1\n")
    runs = []
    for name, content in messages.items():
        with open(os.path.join(workdir, name + ".eml"), "wb") as f:
            f.write(content.replace(b"\r\n", b"\n"))
        runs.append("{t} < {w}/%s.eml; echo %s=$?; " % (name, name))
    script = (
        "ip link set lo up && mount --bind {w}/resolv.conf /etc/resolv.conf && "
        "(%s {dns} --port 53 --zone {z} > {w}/dns53.out 2>&1 &) && "
        "for i in 1 2 3 4 5 6 7 8 9 10; do grep -q LISTENING {w}/dns53.out && break; "
        "sleep 0.2; done; " % PYTHON + "".join(runs) +
        "pkill -f 'dnsserver.py --port 53 --zone {z}'; true"
    ).format(w=workdir, dns=str(REPO / "tests" / "tools" / "dnsserver.py"),
             z=zone_path, t=testmsg)
    r = subprocess.run(["unshare", "--mount", "--net", "sh", "-c", script],
                       capture_output=True, text=True, timeout=60)
    first = next(iter(messages))
    if first + "=" not in r.stdout:
        pytest.skip("cannot make a private namespace here: %s" % r.stderr[-300:])
    return r
