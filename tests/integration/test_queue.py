"""The spool and the delivery queue: retries, crashes, bounces, shutdown."""

import os
import re
import signal
import time

from conftest import (ConnectionClosed, free_port, make_message, queued_id,
                      split_received, wait_until)


def send_one(d, subject, sender="alice@sender.test", rcpts=("user@example.test",)):
    msg = make_message(subject, sender=sender)
    with d.connect() as c:
        c.greeting()
        qid = queued_id(c.send_message(sender, list(rcpts), msg))
        c.expect(221, "QUIT")
    d.known_ids.add(qid)
    return qid, msg


def down_sink(mx, *args):
    """A sink that is not running yet, on a port chosen now."""
    s = mx.sink(*args, start=False)
    s.port = free_port()
    return s


# ---------------------------------------------------------------- retries

def test_downstream_down_then_up(mx):
    sink = down_sink(mx)
    d = mx.daemon(route_to=sink.hostport)
    qid, msg = send_one(d, "deferred")
    files = d.spool_files("queue")
    assert "%s.env" % qid in files and "%s.msg" % qid in files, files
    d.wait_log(r"id=%s to=<user@example\.test> relay=\S+ status=deferred" % qid)
    d.wait_log(r"id=%s deferred pending=1" % qid)
    assert "%s.env" % qid in d.spool_files("queue")

    sink.start()
    msgs = sink.wait_messages(1)
    d.wait_queue_empty()
    assert len(sink.messages()) == 1
    received, rest = split_received(msgs[0]["eml"])
    assert rest == msg and qid in received
    assert re.search(r"id=%s to=<user@example\.test> relay=\S+ status=sent" % qid, d.log())


def test_tempfail_at_data_then_success(mx):
    busy = mx.sink("--data-reply", "451 4.3.0 busy", name="busy")
    d = mx.daemon(busy)
    qid, msg = send_one(d, "busy")
    d.wait_log(r"id=%s to=<user@example\.test> relay=\S+ status=deferred .*451 4\.3\.0 busy" % qid)
    assert "%s.env" % qid in d.spool_files("queue")
    busy.stop()
    good = mx.sink(port=busy.port, name="good")
    msgs = good.wait_messages(1)
    d.wait_queue_empty()
    assert busy.messages() == []
    assert len(good.messages()) == 1
    assert split_received(msgs[0]["eml"])[1] == msg


def test_tempfail_one_recipient_no_duplicate(mx):
    """A recipient deferred at RCPT is retried alone: the recipient that
    was delivered in the first attempt does not get the message again."""
    first = mx.sink("--reject-rcpt", "later@.*=450 4.2.0 try later", name="first")
    d = mx.daemon(first)
    qid, _ = send_one(d, "partial", rcpts=("now@example.test", "later@example.test"))
    msgs = first.wait_messages(1)
    assert msgs[0]["rcpts"] == ["now@example.test"]
    d.wait_log(r"id=%s deferred pending=1" % qid)
    first.stop()
    second = mx.sink(port=first.port, name="second")
    msgs = second.wait_messages(1)
    d.wait_queue_empty()
    assert msgs[0]["rcpts"] == ["later@example.test"]
    assert len(first.messages()) == 1 and len(second.messages()) == 1


# ---------------------------------------------------------------- bounces

def test_permanent_failure_bounces(mx):
    sink = mx.sink("--reject-rcpt", "bad@.*=550 5.1.1 no such user")
    d = mx.daemon(sink, sections={"route *": {"hosts": sink.hostport}})
    qid, _ = send_one(d, "bounce-me", sender="sender@remote.test",
                      rcpts=("good@example.test", "bad@example.test"))
    msgs = sink.wait_messages(2)
    d.wait_queue_empty()
    msgs = sink.messages()
    assert len(msgs) == 2, [(m["mail_from"], m["rcpts"]) for m in msgs]
    orig = [m for m in msgs if m["mail_from"] == "sender@remote.test"]
    bounce = [m for m in msgs if m["mail_from"] == ""]
    assert len(orig) == 1 and orig[0]["rcpts"] == ["good@example.test"]
    assert len(bounce) == 1, "no bounce from the null sender"
    assert bounce[0]["rcpts"] == ["sender@remote.test"]
    text = bounce[0]["eml"].decode("utf-8", "replace")
    assert "bad@example.test" in text
    assert "5.1.1" in text
    assert "good@example.test>:" not in text, "delivered recipient reported as failed"
    assert qid in text
    log = d.log()
    assert re.search(r"id=%s to=<bad@example\.test> relay=\S+ status=bounced" % qid, log)
    assert re.search(r"id=%s bounce queued as id=[0-9A-F]{16}" % qid, log)
    assert re.search(r"id=%s removed from queue" % qid, log)


def test_no_bounce_for_null_sender(mx):
    sink = mx.sink("--reject-rcpt", "bad@.*=550 5.1.1 no such user")
    d = mx.daemon(sink, sections={"route *": {"hosts": sink.hostport}})
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<>")
        c.expect(250, "RCPT TO:<bad@example.test>")
        c.expect(354, "DATA")
        c.send(make_message("dsn") + b".\r\n")
        qid = queued_id(c.read_reply())
    d.wait_log(r"id=%s removed from queue" % qid)
    d.wait_queue_empty()
    assert "not bounced: null sender" in d.log()
    assert sink.messages() == []


# ---------------------------------------------------------------- crashes

FAKE_ID = "0000000010000ABC"
ORPHAN_ID = "0000000010000ABD"


def test_crash_after_250_delivers_exactly_once(mx):
    sink = down_sink(mx)
    d = mx.daemon(route_to=sink.hostport)
    msg = make_message("crash")
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(msg + b".\r\n")
        qid = queued_id(c.read_reply())
        d.kill9()                       # at once after the 250
    d.known_ids.add(qid)
    files = d.spool_files("queue")
    assert "%s.env" % qid in files and "%s.msg" % qid in files, files

    spool = d.spool
    # leftovers of an interrupted reception
    for name in ("junk", "0000000010000AAA.msg", "0000000010000AAA.env"):
        with open(os.path.join(spool, "tmp", name), "wb") as f:
            f.write(b"partial")
    # an envelope cut short (no "E" record) with its content
    with open(os.path.join(spool, "queue", FAKE_ID + ".env"), "wb") as f:
        f.write(b"V 1\nI %s\nT 1700000000\nS x@sender.test\nR P user@example.test\n"
                % FAKE_ID.encode())
    with open(os.path.join(spool, "queue", FAKE_ID + ".msg"), "wb") as f:
        f.write(b"Subject: truncated\r\n\r\nbody\r\n")
    # content whose envelope never made it
    with open(os.path.join(spool, "queue", ORPHAN_ID + ".msg"), "wb") as f:
        f.write(b"Subject: orphan\r\n\r\nbody\r\n")

    sink.start()
    d.start()
    msgs = sink.wait_messages(1, daemon=d)
    d.wait_queue_empty()
    assert d.running(), "daemon died after recovery"
    msgs = sink.messages()
    assert len(msgs) == 1, "delivered %d times" % len(msgs)
    received, rest = split_received(msgs[0]["eml"])
    assert rest == msg and qid in received
    assert d.spool_files("tmp") == []
    corrupt = d.spool_files("corrupt")
    for name in (FAKE_ID + ".env", FAKE_ID + ".msg", ORPHAN_ID + ".msg"):
        assert name in corrupt, "%s not kept in corrupt/ (%r)" % (name, corrupt)
    log = d.log_since_start()
    assert "1 message(s) recovered" in log, log
    assert "moved to corrupt/" in log

    # and it still takes mail
    send_one(d, "after-recovery")
    sink.wait_messages(2)


def test_sigterm_keeps_queue(mx):
    sink = down_sink(mx)
    d = mx.daemon(route_to=sink.hostport)
    qid, msg = send_one(d, "kept")
    d.wait_log(r"id=%s deferred" % qid)
    assert d.stop() == 0
    assert "%s.env" % qid in d.spool_files("queue")
    sink.start()
    d.start()
    msgs = sink.wait_messages(1, daemon=d)
    d.wait_queue_empty()
    assert len(sink.messages()) == 1
    assert split_received(msgs[0]["eml"])[1] == msg


# ---------------------------------------------------------------- shutdown

def test_sigterm_mid_data(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(b"Subject: half\r\n\r\nthe first half of the message\r\n")
        wait_until(lambda: d.spool_files("tmp"), 5, what="content file in tmp/")
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        try:
            r = c.read_reply()
            assert r.code == 421, r
        except ConnectionClosed:
            pass
        try:
            rc = d.proc.wait(timeout=10)
        except Exception:
            raise AssertionError("mxgate still running 10s after SIGTERM")
        elapsed = time.monotonic() - t0
        # the rest of the message after the shutdown goes nowhere
        try:
            c.send(b"more\r\n.\r\n")
        except OSError:
            pass
    assert rc == 0, "exit status %s" % rc
    assert elapsed < 6, "took %.1fs to exit" % elapsed
    assert d.spool_files("tmp") == []
    assert d.spool_files("queue") == []
    assert sink.messages() == []
    assert "status=queued" not in d.log()


def test_sigterm_idle_session_gets_421(mx):
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        d.signal(signal.SIGTERM)
        r = c.read_reply()
        assert r.code == 421 and r.lines[0].startswith("4.3.2"), r
        assert c.wait_closed()
    assert d.proc.wait(timeout=10) == 0
