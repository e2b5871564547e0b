"""Authenticated submission: AUTH PLAIN/LOGIN (RFC 4954) on the submission
(587, STARTTLS first) and submissions (465, implicit TLS, RFC 8314)
listener profiles, failure throttling, and `mxgate user`."""

import base64
import os
import pwd
import re
import socket
import ssl
import subprocess
import time

import pytest

from conftest import (REPLY_TIMEOUT, SMTPConn, dot_stuff, free_port,
                      insecure_client_context, make_message, mxgate_bin,
                      queued_id, wait_until)

PASSWORD = "s3cret horse battery"
WRONG = "Wr0ngPassw0rd-should-never-be-logged"


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def plain(user, password, authzid=""):
    return b64("%s\0%s\0%s" % (authzid, user, password))


def user_cmd(*args, stdin=""):
    return subprocess.run([str(mxgate_bin()), "user"] + list(args),
                          input=stdin.encode(), capture_output=True, timeout=60)


def add_user(path, name, domains, password=PASSWORD):
    r = user_cmd("add", name, "--domains", domains, "--file", path,
                 stdin=password + "\n")
    assert r.returncode == 0, r.stderr.decode()


@pytest.fixture
def sub(mx, tls_files):
    """A daemon with inbound, submission and submissions listeners, users
    alice (example.test, other.test) and bob (bob.test); all mail routed to
    one sink."""
    cert, key = tls_files
    users = os.path.join(mx.dir, "users")
    add_user(users, "alice", "example.test,other.test")
    add_user(users, "bob@bob.test", "bob.test")
    sink = mx.sink()
    sub_port, subs_port = free_port(), free_port()
    d = mx.daemon(sink, sections={
        "tls": {"certificate": cert, "key": key},
        "listener sub": {"address": "127.0.0.1", "port": str(sub_port),
                         "profile": "submission"},
        "listener subs": {"address": "127.0.0.1", "port": str(subs_port),
                          "profile": "submissions"},
        "submission": {"users": users, "max_failures": "3",
                       "failure_window": "10m"},
        "route *": {"hosts": sink.hostport},
    })
    d.sub_port, d.subs_port, d.users = sub_port, subs_port, users
    return d, sink


def keywords(reply):
    return [l.split()[0].upper() for l in reply.lines[1:] if l.strip()]


def starttls_conn(d):
    c = d.connect(port=d.sub_port)
    c.greeting()
    r = c.ehlo()
    assert "STARTTLS" in keywords(r)
    c.expect(220, "STARTTLS")
    c.starttls()
    return c


class TLSConn(SMTPConn):
    """Implicit TLS from the first octet (port 465)."""

    def __init__(self, host, port, timeout=REPLY_TIMEOUT):
        self.timeout = timeout
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = insecure_client_context().wrap_socket(
            raw, server_hostname="mx.example.test")
        self.buf = b""
        self.eof = False


def test_listeners_log_their_profile(sub):
    d, _ = sub
    log = d.log()
    assert re.search(r"listener sub: listening on 127\.0\.0\.1 port %d "
                     r"profile=submission" % d.sub_port, log), log
    assert re.search(r"listener subs: listening on .* profile=submissions", log)
    assert re.search(r"listener mx: listening on .* profile=inbound", log)


def test_no_auth_before_starttls(sub):
    d, _ = sub
    with d.connect(port=d.sub_port) as c:
        c.greeting()
        r = c.ehlo()
        assert "AUTH" not in keywords(r)
        assert "STARTTLS" in keywords(r)
        # RFC 4954 4 / RFC 3207: no credentials in clear text
        c.expect(538, "AUTH PLAIN " + plain("alice", PASSWORD),
                 startswith="538 5.7.11")
        c.expect(538, "AUTH LOGIN", startswith="538 5.7.11")
        c.expect(530, "MAIL FROM:<alice@example.test>", startswith="530 5.7.0")
    assert "auth mech=PLAIN user=alice result=ok" not in d.log()


def test_inbound_listener_offers_no_auth(sub):
    d, _ = sub
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(220, "STARTTLS")
        c.starttls()
        r = c.ehlo()
        assert "AUTH" not in keywords(r)
        c.expect(503, "AUTH PLAIN " + plain("alice", PASSWORD))


def test_plain_auth_then_relay(sub):
    d, sink = sub
    c = starttls_conn(d)
    with c:
        r = c.ehlo()
        assert "AUTH" in keywords(r)
        assert any(l.upper() == "AUTH PLAIN LOGIN" for l in r.lines), r
        assert "STARTTLS" not in keywords(r)
        c.expect(530, "MAIL FROM:<alice@example.test>", startswith="530 5.7.0")
        c.expect(235, "AUTH PLAIN " + plain("alice", PASSWORD),
                 startswith="235 2.7.0")
        # RFC 4954 4: once per session
        c.expect(503, "AUTH PLAIN " + plain("alice", PASSWORD),
                 startswith="503 5.5.1")
        msg = make_message("submitted", sender="alice@example.test",
                           to="someone@foreign.test")
        qid = queued_id(c.send_message("alice@example.test",
                                       ["someone@foreign.test"], msg,
                                       ehlo=False))
        d.known_ids.add(qid)
    msgs = sink.wait_messages(1, daemon=d)
    assert msgs[0]["rcpts"] == ["someone@foreign.test"] or \
        "someone@foreign.test" in str(msgs[0]), msgs[0]
    assert b"Subject: submitted" in msgs[0]["eml"]
    assert re.search(r"auth mech=PLAIN user=alice result=ok", d.log())


def test_plain_initial_response_in_second_step(sub):
    d, _ = sub
    with starttls_conn(d) as c:
        c.ehlo()
        c.expect(334, "AUTH PLAIN")
        c.expect(235, plain("bob@bob.test", PASSWORD))


def test_login_flow(sub):
    d, _ = sub
    with starttls_conn(d) as c:
        c.ehlo()
        r = c.expect(334, "AUTH LOGIN")
        assert r.lines == ["VXNlcm5hbWU6"]
        r = c.expect(334, b64("alice"))
        assert r.lines == ["UGFzc3dvcmQ6"]
        c.expect(235, b64(PASSWORD))
        c.expect(250, "MAIL FROM:<alice@other.test>")
    assert re.search(r"auth mech=LOGIN user=alice result=ok", d.log())


def test_exchange_errors(sub):
    d, _ = sub
    with starttls_conn(d) as c:
        c.expect(503, "AUTH PLAIN " + plain("alice", PASSWORD))   # no EHLO
        c.ehlo()
        c.expect(504, "AUTH CRAM-MD5")
        c.expect(501, "AUTH")
        c.expect(334, "AUTH LOGIN")
        c.expect(501, "*", startswith="501 5.0.0")                # cancelled
        c.expect(501, "AUTH PLAIN not*base64", startswith="501 5.5.2")
        c.expect(334, "AUTH PLAIN")
        c.expect(501, "@@@@", startswith="501 5.5.2")
        # NUL inside the password, a missing NUL
        c.expect(501, "AUTH PLAIN " + b64("\0alice\0pa\0ss"))
        c.expect(501, "AUTH PLAIN " + b64("alice\0" + PASSWORD))
        # authzid other than the user
        c.expect(535, "AUTH PLAIN " + plain("alice", PASSWORD, "bob@bob.test"))
        # a user name over 255 octets
        c.expect(501, "AUTH PLAIN " + plain("a" * 256, PASSWORD))
        # an exchange line over 12288 octets
        c.expect(334, "AUTH PLAIN")
        c.send("A" * 13000 + "\r\n")
        r = c.read_reply()
        assert r.code == 500 and r.first.startswith("500 5.5.6"), r
        # the session is still usable, and AUTH works
        c.expect(235, "AUTH PLAIN " + plain("alice", PASSWORD))
        c.expect(250, "MAIL FROM:<alice@example.test>")
        c.expect(503, "AUTH PLAIN " + plain("alice", PASSWORD))


def test_refused_auth_leaves_no_credentials_in_the_debug_log(mx, tls_files):
    """AUTH refused before its exchange (538 without TLS, 503 before EHLO)
    while the client goes on with its base64 lines: they arrive as
    commands, and even the debug log must not show them."""
    cert, key = tls_files
    users = os.path.join(mx.dir, "users")
    add_user(users, "alice", "example.test")
    sink = mx.sink()
    port = free_port()
    d = mx.daemon(sink, debug=True, sections={
        "tls": {"certificate": cert, "key": key},
        "listener sub": {"address": "127.0.0.1", "port": str(port),
                         "profile": "submission"},
        "submission": {"users": users},
    })
    with d.connect(port=port) as c:
        c.greeting()
        c.ehlo()
        c.expect(538, "AUTH LOGIN")
        c.expect(500, b64("alice"))
        c.expect(500, b64(WRONG))
        c.expect(538, "AUTH PLAIN")
        c.expect(500, plain("alice", WRONG))
        c.expect(250, "NOOP")
    d.wait_log(r"command=NOOP")
    log = d.log()
    assert "command=(unrecognized" in log, log
    assert b64(WRONG) not in log and plain("alice", WRONG) not in log, log
    assert WRONG not in log


def test_bad_password_delay_and_throttle(sub):
    d, _ = sub
    with starttls_conn(d) as c:
        c.ehlo()
        t0 = time.monotonic()
        c.expect(535, "AUTH PLAIN " + plain("alice", WRONG),
                 startswith="535 5.7.8", timeout=30)
        first = time.monotonic() - t0
        assert first >= 0.9, "535 came after %.2fs, no delay" % first
        t0 = time.monotonic()
        c.expect(334, "AUTH LOGIN")
        c.expect(334, b64("nosuchuser"))
        c.expect(535, b64(WRONG), startswith="535 5.7.8", timeout=30)
        second = time.monotonic() - t0
        assert second >= 1.8, "second 535 after %.2fs (want ~2s)" % second
        c.expect(535, "AUTH PLAIN " + plain("bob@bob.test", WRONG), timeout=30)
        # max_failures = 3: now refused without a check, even the right one
        c.expect(454, "AUTH PLAIN " + plain("alice", PASSWORD),
                 startswith="454 4.7.0")
        c.expect(530, "MAIL FROM:<alice@example.test>")
    # another connection from the same IP is throttled too
    with starttls_conn(d) as c:
        c.ehlo()
        c.expect(454, "AUTH PLAIN " + plain("alice", PASSWORD))
    log = d.log()
    assert re.search(r"auth mech=PLAIN user=alice result=fail failures=1 "
                     r"delay=1s", log), log
    assert re.search(r"auth mech=LOGIN user=nosuchuser result=fail", log)
    assert "result=throttled" in log
    assert "reached 3 failed authentication attempts" in log
    # never the password, in clear or base64
    assert WRONG not in log and PASSWORD not in log
    assert plain("alice", WRONG) not in log and b64(WRONG) not in log


def test_close_during_delay(sub):
    """A client that leaves while its 535 is delayed: nothing breaks."""
    d, _ = sub
    c = starttls_conn(d)
    c.ehlo()
    c.send("AUTH PLAIN " + plain("alice", WRONG) + "\r\n")
    time.sleep(0.3)
    c.close()
    d.wait_log(r"result=fail failures=1")
    time.sleep(1.5)
    assert d.running()
    with starttls_conn(d) as c:
        c.ehlo()
        c.expect(235, "AUTH PLAIN " + plain("alice", PASSWORD), timeout=30)


def test_submissions_implicit_tls(sub):
    d, sink = sub
    with TLSConn("127.0.0.1", d.subs_port) as c:
        c.greeting()
        r = c.ehlo()
        assert "STARTTLS" not in keywords(r)
        assert "AUTH" in keywords(r)
        c.expect(503, "STARTTLS")
        c.expect(530, "MAIL FROM:<bob@bob.test>", startswith="530 5.7.0")
        c.expect(235, "AUTH PLAIN " + plain("bob@bob.test", PASSWORD))
        msg = make_message("implicit", sender="bob@bob.test",
                           to="x@elsewhere.test")
        qid = queued_id(c.send_message("bob@bob.test", ["x@elsewhere.test"],
                                       msg, ehlo=False))
        d.known_ids.add(qid)
    msgs = sink.wait_messages(1, daemon=d)
    assert b"Subject: implicit" in msgs[0]["eml"]
    # a plain-text client on 465 gets no greeting and is dropped
    with d.connect(port=d.subs_port, timeout=5) as c:
        c.send("EHLO plain.test\r\n")
        assert c.wait_closed(timeout=20)
        assert not c.buf.startswith(b"220"), c.buf


def test_from_domain_must_be_the_users(sub):
    d, sink = sub
    with starttls_conn(d) as c:
        c.ehlo()
        c.expect(235, "AUTH PLAIN " + plain("alice", PASSWORD))
        msg = make_message("forged", sender="alice@notmine.test",
                           to="x@foreign.test")
        r = c.send_message("alice@example.test", ["x@foreign.test"], msg,
                           ehlo=False)
        assert r.code == 550 and r.first.startswith("550 5.7.1"), r
        msg = make_message("allowed", sender="alice@other.test",
                           to="x@foreign.test")
        qid = queued_id(c.send_message("alice@example.test",
                                       ["x@foreign.test"], msg, ehlo=False))
        d.known_ids.add(qid)
    msgs = sink.wait_messages(1, daemon=d)
    assert len(msgs) == 1 and b"Subject: allowed" in msgs[0]["eml"]


def test_envelope_sender_must_be_the_users(sub):
    d, sink = sub
    with starttls_conn(d) as c:
        c.ehlo()
        c.expect(235, "AUTH PLAIN " + plain("alice", PASSWORD))
        r = c.cmd("MAIL FROM:<alice@notmine.test>")
        assert r.code == 553 and r.first.startswith("553 5.7.1"), r
        c.expect(250, "MAIL FROM:<alice@Other.Test>")
        c.expect(250, "RSET")
        c.expect(250, "MAIL FROM:<>")       # bounces of the user's own
    assert "not one of the user's domains" in d.log()


def test_user_command_roundtrip(mx):
    path = os.path.join(mx.dir, "users")
    r = user_cmd("add", "carol", "--domains", "Carol.Test,x.test", "--file",
                 path, stdin="pw one\n")
    assert r.returncode == 0, r.stderr
    assert os.stat(path).st_mode & 0o777 == 0o640
    text = open(path).read()
    assert re.fullmatch(r"carol:\$(y|6)\$[^:]+:carol\.test,x\.test\n", text), text
    assert "pw one" not in text
    add_user(path, "dave", "dave.test")
    # replacing a user keeps one line for it
    r = user_cmd("add", "carol", "--domains", "carol.test", "--file", path,
                 stdin="pw two\n")
    assert r.returncode == 0 and b"updated" in r.stdout, r
    r = user_cmd("list", "--file", path)
    assert r.returncode == 0
    assert r.stdout.decode().splitlines() == ["carol carol.test",
                                              "dave dave.test"]
    assert b"$" not in r.stdout         # never the hashes
    r = user_cmd("delete", "carol", "--file", path)
    assert r.returncode == 0, r.stderr
    r = user_cmd("list", "--file", path)
    assert r.stdout.decode().splitlines() == ["dave dave.test"]
    r = user_cmd("delete", "carol", "--file", path)
    assert r.returncode != 0
    # bad input is refused, the file untouched
    before = open(path).read()
    for args, stdin in [(["add", "bad name", "--domains", "a.test"], "x\n"),
                        (["add", "eve", "--domains", "not a domain"], "x\n"),
                        (["add", "eve"], "x\n"),
                        (["add", "eve", "--domains", "e.test"], ""),
                        (["add", "eve", "--domains", "e.test"], "\n")]:
        r = user_cmd(*(args + ["--file", path]), stdin=stdin)
        assert r.returncode != 0, (args, r)
    assert open(path).read() == before


def test_user_add_via_config_then_reload(sub):
    """`mxgate user add -c` finds the users file in the configuration; a
    SIGHUP makes the daemon see the new user."""
    import signal
    d, _ = sub
    if os.geteuid() == 0:
        # the daemon reloads as [server] user: the file must be readable
        # by its group (a file `mxgate user add -c` creates gets it; the
        # fixture's file was made with --file)
        os.chown(d.users, 0, pwd.getpwnam("nobody").pw_gid)
    r = user_cmd("add", "erin", "--domains", "erin.test", "-c", d.cfg_path,
                 stdin="erin pw\n")
    assert r.returncode == 0, r.stderr
    d.signal(signal.SIGHUP)
    d.wait_log(r"configuration reloaded")
    with starttls_conn(d) as c:
        c.ehlo()
        c.expect(235, "AUTH PLAIN " + plain("erin", "erin pw"), timeout=30)


def test_bad_users_file_fails_config(mx, tls_files):
    cert, key = tls_files
    users = os.path.join(mx.dir, "users")
    with open(users, "w") as f:
        f.write("# ok\nalice:plaintext:example.test\n")
    d = mx.daemon(sections={
        "tls": {"certificate": cert, "key": key},
        "listener sub": {"address": "127.0.0.1", "port": str(free_port()),
                         "profile": "submission"},
        "submission": {"users": users},
    }, start=False)
    r = subprocess.run([str(mxgate_bin()), "config", "check", "-c", d.cfg_path],
                       capture_output=True, timeout=60)
    assert r.returncode != 0
    assert re.search(r"users:2: not a crypt\(3\) hash", r.stderr.decode()), r.stderr
    os.unlink(users)
    r = subprocess.run([str(mxgate_bin()), "config", "check", "-c", d.cfg_path],
                       capture_output=True, timeout=60)
    assert r.returncode != 0 and b"cannot open" in r.stderr, r.stderr


def test_submission_needs_tls_certificate(mx):
    users = os.path.join(mx.dir, "users")
    add_user(users, "alice", "example.test")
    d = mx.daemon(sections={
        "listener sub": {"address": "127.0.0.1", "port": str(free_port()),
                         "profile": "submission"},
        "submission": {"users": users},
    }, start=False)
    r = subprocess.run([str(mxgate_bin()), "config", "check", "-c", d.cfg_path],
                       capture_output=True, timeout=60)
    assert r.returncode != 0
    assert b"needs a [tls] certificate" in r.stderr, r.stderr


def test_implicit_tls_handshake_timeout(mx, tls_files):
    """A client that connects to 465 and says nothing is dropped after
    [limits] tls_timeout, without a greeting."""
    cert, key = tls_files
    users = os.path.join(mx.dir, "users")
    add_user(users, "alice", "example.test")
    port = free_port()
    d = mx.daemon(sections={
        "tls": {"certificate": cert, "key": key},
        "listener subs": {"address": "127.0.0.1", "port": str(port),
                          "profile": "submissions"},
        "submission": {"users": users},
        "limits": {"tls_timeout": "2", "command_timeout": "60"},
    })
    with d.connect(port=port, timeout=10) as c:
        t0 = time.monotonic()
        assert c.wait_closed(timeout=10)
        assert c.buf == b"", c.buf
        assert time.monotonic() - t0 >= 1.5
    d.wait_log(r"TLS handshake not done within 2s")
