"""Accepting mail and relaying it downstream: the happy paths."""

import re
import smtplib

import pytest

from conftest import (HOSTNAME, free_port, make_message, queued_id,
                      split_received, wait_until)


def test_plain_delivery(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    msg = make_message(subject="plain", body="Hello, world.\r\nSecond line.\r\n")

    s = smtplib.SMTP("127.0.0.1", d.port, timeout=10)
    try:
        code, _ = s.ehlo("client.test")
        assert code == 250
        code, _ = s.mail("alice@sender.test")
        assert code == 250
        code, _ = s.rcpt("user@example.test")
        assert code == 250
        code, text = s.data(msg)
    finally:
        s.quit()
    text = text.decode()
    assert code == 250
    m = re.fullmatch(r"2\.0\.0 Ok: queued as ([0-9A-F]{16})", text)
    assert m, "reply to end of data: %r" % text
    qid = m.group(1)

    msgs = sink.wait_messages(1)
    d.wait_queue_empty()
    assert len(sink.messages()) == 1
    got = msgs[0]
    assert got["mail_from"] == "alice@sender.test"
    assert got["rcpts"] == ["user@example.test"]

    received, rest = split_received(got["eml"])
    assert rest == msg, "content changed in transit"
    assert re.match(r"Received: from client\.test \(\[127\.0\.0\.1\]\) "
                    r"by %s \(mxgate\) with ESMTP id %s " % (
                        re.escape(HOSTNAME), qid), received), received
    assert "for <user@example.test>;" in received
    # exactly one Received header: ours
    assert got["eml"].count(b"\r\nReceived:") == 0

    log = d.log()
    summary = [l for l in log.splitlines() if "id=%s" % qid in l
               and "session=" in l and "status=queued" in l]
    assert len(summary) == 1, log
    line = summary[0]
    for field in ("session=", "id=%s" % qid, "client=127.0.0.1",
                  "helo=client.test", "from=<alice@sender.test>",
                  "to=<user@example.test>", "size="):
        assert field in line, "%r missing from summary line %r" % (field, line)
    size = int(re.search(r"size=(\d+)", line).group(1))
    assert size == len(got["eml"])
    assert re.search(r"id=%s to=<user@example\.test> relay=\S+ status=sent" % qid,
                     log), log
    assert d.spool_files("queue") == []
    assert d.spool_files("tmp") == []


def test_several_recipients_one_message(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    rcpts = ["a@example.test", "b@example.test", "C@Example.TEST"]
    with d.connect() as c:
        c.greeting()
        qid = queued_id(c.send_message("alice@sender.test", rcpts,
                                       make_message("three")))
        c.expect(221, "QUIT")
    msgs = sink.wait_messages(1)
    d.wait_queue_empty()
    assert len(sink.messages()) == 1
    assert sorted(msgs[0]["rcpts"]) == sorted(rcpts)
    received, _ = split_received(msgs[0]["eml"])
    assert "id %s" % qid in received
    # several recipients: no "for <...>" clause that would disclose one
    assert " for <" not in received
    log = d.log()
    assert len(re.findall(r"id=%s to=<[^>]+> relay=\S+ status=sent" % qid, log)) == 3


def test_null_sender_and_postmaster(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<>")
        c.expect(250, "RCPT TO:<postmaster>")
        c.expect(250, "RCPT TO:<Postmaster@example.test>")
        c.expect(354, "DATA")
        c.send(make_message("pm") + b".\r\n")
        queued_id(c.read_reply())
    msgs = sink.wait_messages(1)
    d.wait_queue_empty()
    assert msgs[0]["mail_from"] == ""
    assert sorted(msgs[0]["rcpts"], key=str.lower) == \
        ["postmaster", "Postmaster@example.test"]


def test_helo_gives_smtp_in_received(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    with d.connect() as c:
        c.greeting()
        c.expect(250, "HELO old.client.test")
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(make_message("helo") + b".\r\n")
        qid = queued_id(c.read_reply())
    msgs = sink.wait_messages(1)
    received, _ = split_received(msgs[0]["eml"])
    assert re.search(r"from old\.client\.test .* with SMTP id %s" % qid, received), received


def _dotted_body():
    return (b"Lines that start with dots:\r\n"
            b".\r\n"
            b"..\r\n"
            b".leading dot\r\n"
            b"MAIL FROM:<smuggled@evil.test>\r\n"
            b".\r\n"
            b"end\r\n")


def test_dot_lines_survive_relay_via_data(mx):
    """Content relayed with DATA (downstream without CHUNKING) must be
    dot-stuffed again: the downstream sees exactly what we received."""
    sink = mx.sink("--no-chunking")
    d = mx.daemon(sink)
    msg = make_message("dots", body=_dotted_body())
    with d.connect() as c:
        c.greeting()
        queued_id(c.send_message("alice@sender.test", ["user@example.test"], msg))
    msgs = sink.wait_messages(1)
    d.wait_queue_empty()
    assert len(sink.messages()) == 1
    assert msgs[0]["bdat"] is False
    _, rest = split_received(msgs[0]["eml"])
    assert rest == msg


def test_dot_lines_survive_relay_via_bdat(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    msg = make_message("dots-bdat", body=_dotted_body())
    with d.connect() as c:
        c.greeting()
        queued_id(c.send_message("alice@sender.test", ["user@example.test"], msg))
    msgs = sink.wait_messages(1)
    assert msgs[0]["bdat"] is True
    _, rest = split_received(msgs[0]["eml"])
    assert rest == msg


def test_connection_reuse_quick_succession(mx):
    """The second message goes over the connection kept from the first."""
    sink = mx.sink()
    d = mx.daemon(sink, sections={"delivery": {"idle_timeout": "10"}})
    for i in range(2):
        with d.connect() as c:
            c.greeting()
            queued_id(c.send_message("alice@sender.test", ["user@example.test"],
                                     make_message("reuse-%d" % i)))
        sink.wait_messages(i + 1)
        d.wait_queue_empty()
    msgs = sink.messages()
    assert len(msgs) == 2
    assert msgs[0]["conn"] == msgs[1]["conn"], \
        "second message used a new connection: %r" % [(m["conn"], m["txn"]) for m in msgs]
    assert [m["txn"] for m in msgs] == [1, 2]


def test_connection_reuse_after_queueing(mx):
    """Two messages queued while downstream is down go over one connection
    once it is up (one delivery at a time, so the second finds the
    connection the first left idle)."""
    sink = mx.sink(start=False)
    sink.port = free_port()
    d = mx.daemon(route_to=sink.hostport,
                  sections={"delivery": {"concurrency": "1", "idle_timeout": "10"}})
    ids = []
    for i in range(2):
        with d.connect() as c:
            c.greeting()
            ids.append(queued_id(c.send_message(
                "alice@sender.test", ["user@example.test"],
                make_message("queued-%d" % i))))
    for qid in ids:
        d.wait_log(r"id=%s deferred" % qid)
    sink.start()
    msgs = sink.wait_messages(2)
    d.wait_queue_empty()
    assert len(msgs) == 2
    assert msgs[0]["conn"] == msgs[1]["conn"], \
        [(m["conn"], m["txn"]) for m in msgs]
    assert [m["txn"] for m in msgs] == [1, 2]


def test_downstream_starttls_opportunistic(mx, tls_files):
    cert, key = tls_files
    sink = mx.sink("--tls-cert", cert, "--tls-key", key)
    d = mx.daemon(sink)
    with d.connect() as c:
        c.greeting()
        queued_id(c.send_message("alice@sender.test", ["user@example.test"],
                                 make_message("down-tls")))
    msgs = sink.wait_messages(1)
    assert msgs[0]["tls"] is True


def test_downstream_tls_required_not_offered(mx):
    sink = mx.sink()
    d = mx.daemon(sink, sections={"route example.test": {"tls": "required"}})
    with d.connect() as c:
        c.greeting()
        qid = queued_id(c.send_message("alice@sender.test", ["user@example.test"],
                                       make_message("need-tls")))
    d.wait_log(r"id=%s deferred" % qid)
    assert re.search(r"STARTTLS required", d.log())
    assert sink.messages() == []
    assert "%s.env" % qid in d.spool_files("queue")


def test_8bitmime_declared_is_passed_on(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    body = "Gr\u00fc\u00dfe aus K\u00f6ln\r\n".encode("utf-8")
    msg = make_message("8bit", body=body,
                       extra_headers=["Content-Type: text/plain; charset=utf-8",
                                      "Content-Transfer-Encoding: 8bit"])
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test> BODY=8BITMIME")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(msg + b".\r\n")
        queued_id(c.read_reply())
    msgs = sink.wait_messages(1)
    assert msgs[0]["mail_params"].get("BODY") == "8BITMIME"
    _, rest = split_received(msgs[0]["eml"])
    assert rest == msg


def test_smtputf8_address(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    rcpt = "j\u00f6rg@example.test"
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        # without SMTPUTF8 a non-ASCII address is refused (RFC 6531 3.5)
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        assert r.code == 553, r
        c.expect(250, "RSET")
        c.expect(250, "MAIL FROM:<alice@sender.test> SMTPUTF8")
        c.expect(250, "RCPT TO:<%s>" % rcpt)
        c.expect(354, "DATA")
        c.send(make_message("utf8") + b".\r\n")
        queued_id(c.read_reply())
    msgs = sink.wait_messages(1)
    assert msgs[0]["rcpts"] == [rcpt]
    assert msgs[0]["mail_params"].get("SMTPUTF8") is True


# ---------------------------------------------------------------- content edges

def _send_bdat(d, content):
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.send(b"BDAT %d LAST\r\n" % len(content) + content)
        return queued_id(c.read_reply())


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
def test_bdat_content_without_final_crlf(mx, chunking):
    sink = mx.sink() if chunking else mx.sink("--no-chunking")
    d = mx.daemon(sink)
    content = b"Subject: no-crlf\r\n\r\nlast line without end\r\n."
    _send_bdat(d, content)
    msgs = sink.wait_messages(1)
    d.wait_queue_empty()
    assert len(sink.messages()) == 1
    assert split_received(msgs[0]["eml"])[1] == content + b"\r\n"


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
def test_big_message_with_dot_lines(mx, chunking):
    """2 MiB of "." lines: crosses the client's 64 KiB read boundaries at
    every possible line offset; dot-stuffing must carry across them."""
    sink = mx.sink() if chunking else mx.sink("--no-chunking")
    d = mx.daemon(sink)
    body = b"".join(b"." + b"d" * (i % 3) + b"\r\n" for i in range(2 * 1024 * 1024 // 4))
    msg = make_message("big-dots", body=body)
    with d.connect(timeout=30) as c:
        c.greeting()
        qid = queued_id(c.send_message("alice@sender.test", ["user@example.test"], msg))
    msgs = sink.wait_messages(1, daemon=d)
    d.wait_queue_empty()
    got = split_received(msgs[0]["eml"])[1]
    assert len(got) == len(msg)
    assert got == msg
    assert msgs[0]["bdat"] is chunking
    assert qid


# ---------------------------------------------------------------- routing

def test_failover_to_next_host(mx):
    dead = free_port()
    sink = mx.sink()
    d = mx.daemon(route_to="127.0.0.1:%d@10, %s@20" % (dead, sink.hostport))
    with d.connect() as c:
        c.greeting()
        qid = queued_id(c.send_message("alice@sender.test", ["user@example.test"],
                                       make_message("failover")))
    sink.wait_messages(1)
    d.wait_queue_empty()
    assert re.search(r"id=%s route=example\.test host=127\.0\.0\.1:%d(@10)? "
                     r"connection failed" % (qid, dead), d.log())


def test_lower_preference_first(mx):
    low = mx.sink(name="low")
    high = mx.sink(name="high")
    d = mx.daemon(route_to="%s@20 %s@5" % (high.hostport, low.hostport))
    with d.connect() as c:
        c.greeting()
        queued_id(c.send_message("alice@sender.test", ["user@example.test"],
                                 make_message("pref")))
    low.wait_messages(1)
    d.wait_queue_empty()
    assert high.messages() == []


def test_greeting_refusal_tries_next_host(mx):
    grumpy = mx.sink("--greeting", "554 5.3.2 go away", name="grumpy")
    good = mx.sink(name="good")
    d = mx.daemon(route_to="%s@1 %s@2" % (grumpy.hostport, good.hostport))
    with d.connect() as c:
        c.greeting()
        queued_id(c.send_message("alice@sender.test", ["user@example.test"],
                                 make_message("greeting")))
    good.wait_messages(1)
    d.wait_queue_empty()


def test_recipients_split_by_route(mx):
    s1 = mx.sink(name="one")
    s2 = mx.sink(name="two")
    d = mx.daemon(s1, sections={"domains": {"accept": "example.test other.test"},
                                "route other.test": {"hosts": s2.hostport}})
    with d.connect() as c:
        c.greeting()
        queued_id(c.send_message("alice@sender.test",
                                 ["a@example.test", "b@other.test", "c@example.test"],
                                 make_message("split")))
    m1 = s1.wait_messages(1)
    m2 = s2.wait_messages(1)
    d.wait_queue_empty()
    assert sorted(m1[0]["rcpts"]) == ["a@example.test", "c@example.test"]
    assert m2[0]["rcpts"] == ["b@other.test"]


# ---------------------------------------------------------------- downstream refusals

def _bounces(sink):
    return [m for m in sink.messages() if m["mail_from"] == ""]


def test_downstream_size_limit_bounces(mx):
    # the limit leaves room for the bounce (an RFC 3464 report with the
    # message's headers), not for the message
    sink = mx.sink("--size", "4000")
    d = mx.daemon(sink, sections={"route *": {"hosts": sink.hostport}})
    big = make_message("too-big", sender="sender@remote.test",
                       body=b"x" * 70 + b"\r\n" * 1 + (b"y" * 70 + b"\r\n") * 80)
    with d.connect() as c:
        c.greeting()
        qid = queued_id(c.send_message("sender@remote.test", ["user@example.test"], big))
    wait_until(lambda: _bounces(sink), 20, what="bounce at the sink")
    d.wait_queue_empty()
    b = _bounces(sink)
    assert len(b) == 1 and b[0]["rcpts"] == ["sender@remote.test"]
    assert b"user@example.test" in b[0]["eml"] and b"5.3.4" in b[0]["eml"]
    assert [m for m in sink.messages() if m["mail_from"]] == []
    assert qid


def test_downstream_rejects_content_bounces(mx):
    sink = mx.sink("--data-reply", "554 5.7.1 spam")
    bounce_sink = mx.sink(name="bounces")
    d = mx.daemon(sink, sections={"route *": {"hosts": bounce_sink.hostport}})
    with d.connect() as c:
        c.greeting()
        qid = queued_id(c.send_message("sender@remote.test", ["user@example.test"],
                                       make_message("spammy")))
    b = bounce_sink.wait_messages(1)
    d.wait_queue_empty()
    assert b[0]["mail_from"] == "" and b[0]["rcpts"] == ["sender@remote.test"]
    assert b"5.7.1 spam" in b[0]["eml"]
    assert re.search(r"id=%s to=<user@example\.test> relay=\S+ status=bounced" % qid, d.log())


def test_expired_message_bounces(mx):
    bounce_sink = mx.sink(name="bounces")
    d = mx.daemon(route_to="127.0.0.1:%d" % free_port(),
                  sections={"delivery": {"max_lifetime": "2s"},
                            "route *": {"hosts": bounce_sink.hostport}})
    with d.connect() as c:
        c.greeting()
        qid = queued_id(c.send_message("sender@remote.test", ["user@example.test"],
                                       make_message("expire")))
    b = bounce_sink.wait_messages(1)
    d.wait_queue_empty()
    assert b[0]["rcpts"] == ["sender@remote.test"]
    text = b[0]["eml"].decode(errors="replace")
    assert "user@example.test" in text and "expired" in text
    assert re.search(r"id=%s to=<user@example\.test> status=expired" % qid, d.log())


# ---------------------------------------------------------------- load, misc

def test_concurrent_clients(mx):
    """Several clients at once, several messages each: every message is
    delivered once, with its own queue id."""
    import threading
    sink = mx.sink()
    d = mx.daemon(sink)
    nclients, nmsgs = 8, 4
    ids, errors = [], []
    lock = threading.Lock()

    def client(k):
        try:
            with d.connect(timeout=20) as c:
                c.greeting()
                c.ehlo("c%d.test" % k)
                for i in range(nmsgs):
                    r = c.send_message("c%d@sender.test" % k,
                                       ["u%d-%d@example.test" % (k, i)],
                                       make_message("c%d-m%d" % (k, i)), ehlo=False)
                    with lock:
                        ids.append(queued_id(r))
        except Exception as e:      # reported below
            with lock:
                errors.append("client %d: %r" % (k, e))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(nclients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "client threads hung"
    assert errors == []
    total = nclients * nmsgs
    assert len(set(ids)) == total
    sink.wait_messages(total, timeout=30, daemon=d)
    d.wait_queue_empty(timeout=30)
    msgs = sink.messages()
    assert len(msgs) == total
    assert sorted(r for m in msgs for r in m["rcpts"]) == \
        sorted("u%d-%d@example.test" % (k, i) for k in range(nclients) for i in range(nmsgs))


def test_ipv6_downstream(mx):
    from conftest import ipv6_loopback_available
    if not ipv6_loopback_available():
        pytest.skip("IPv6 loopback ::1 not available")
    sink = mx.sink(host="::1")
    d = mx.daemon(sink)
    assert d.sections["route example.test"]["hosts"].startswith("[::1]:")
    with d.connect() as c:
        c.greeting()
        queued_id(c.send_message("alice@sender.test", ["user@example.test"],
                                 make_message("to-v6")))
    sink.wait_messages(1, daemon=d)


def test_spool_parent_directories_created(mx):
    import os
    sink = mx.sink()
    spool = os.path.join(mx.dir, "var", "spool", "mxgate")
    d = mx.daemon(sink, sections={"server": {"spool": spool}})
    with d.connect() as c:
        c.greeting()
        queued_id(c.send_message("alice@sender.test", ["user@example.test"],
                                 make_message("deep-spool")))
    sink.wait_messages(1, daemon=d)
    d.wait_queue_empty()
