"""The SMTP server side: commands, replies, pipelining, BDAT, limits."""

import re
import time

import pytest

from conftest import (ConnectionClosed, SMTPConn, free_port,
                      ipv6_loopback_available, make_message, queued_id,
                      split_received, wait_until)


def ehlo_keywords(reply):
    return [l.split()[0].upper() for l in reply.lines[1:] if l.strip()]


# ---------------------------------------------------------------- basics

def test_greeting_and_ehlo_keywords(mx):
    d = mx.daemon(sections={"limits": {"message_size": "10k"}})
    with d.connect() as c:
        g = c.greeting()
        assert g.lines[0].startswith("mx.example.test ")
        r = c.ehlo()
        assert r.lines[0].split()[0] == "mx.example.test"
        kw = ehlo_keywords(r)
        for k in ("PIPELINING", "SIZE", "8BITMIME", "CHUNKING",
                  "ENHANCEDSTATUSCODES", "SMTPUTF8"):
            assert k in kw, r
        assert "STARTTLS" not in kw, "STARTTLS offered without a certificate"
        assert "SIZE 10240" in r.lines, r
        c.expect(221, "QUIT")
        assert c.wait_closed()


def test_misc_commands(mx):
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(252, "VRFY user@example.test")
        c.expect(502, "EXPN staff@example.test")
        c.expect(214, "HELP")
        c.expect(250, "NOOP")
        c.expect(500, "FROBNICATE now", startswith="500 5.5")
        c.expect(500, "", startswith="500 5.5")
        c.expect(501, "EHLO")
        c.expect(250, "ehlo lower.case.test")
        c.expect(221, "QUIT")
        assert c.wait_closed()


def test_sequence_errors(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    with d.connect() as c:
        c.greeting()
        # before EHLO/HELO
        c.expect(503, "MAIL FROM:<alice@sender.test>", startswith="503 5.5.1")
        c.ehlo()
        c.expect(503, "RCPT TO:<user@example.test>", startswith="503 5.5.1")
        c.expect(503, "DATA", startswith="503 5.5.1")
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(503, "MAIL FROM:<bob@sender.test>", startswith="503 5.5.1")
        r = c.cmd("DATA")                           # MAIL but no RCPT
        assert r.code in (503, 554), r
        c.expect(250, "RCPT TO:<user@example.test>")
        # RSET clears the transaction: no DATA, and MAIL is allowed again
        c.expect(250, "RSET")
        r = c.cmd("DATA")
        assert r.code in (503, 554), r
        c.expect(503, "RCPT TO:<user@example.test>")
        c.expect(250, "MAIL FROM:<carol@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(make_message("after-rset") + b".\r\n")
        queued_id(c.read_reply())
    msgs = sink.wait_messages(1)
    assert msgs[0]["mail_from"] == "carol@sender.test"


def test_ehlo_resets_transaction(mx):
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.ehlo("again.test")
        r = c.cmd("DATA")
        assert r.code in (503, 554), r


def test_http_request_is_refused(mx):
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        c.send("GET / HTTP/1.0\r\nHost: mx.example.test\r\n\r\n")
        r = c.read_reply()
        assert r.code == 421, r
        assert c.wait_closed(), "connection left open after HTTP request"
    assert "HTTP command" in d.log()


def test_nul_and_control_chars_in_command(mx):
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        c.send(b"NO\x00OP\r\n")
        r = c.read_reply()
        assert r.code == 500, r
        c.send(b"EHLO client\x00.test\r\n")
        r = c.read_reply()
        assert r.code == 500, r
        c.send(b"NOOP\rRSET\r\n")                # bare CR inside a command
        r = c.read_reply()
        assert r.code == 500, r
        c.expect(250, "NOOP")
        assert c.unread() == b"", "extra replies"


def test_command_timeout(mx):
    d = mx.daemon(sections={"limits": {"command_timeout": "1"}})
    with d.connect() as c:
        c.greeting()
        t0 = time.monotonic()
        r = c.read_reply(timeout=10)
        assert r.code == 421 and r.lines[0].startswith("4.4.2"), r
        assert time.monotonic() - t0 < 8
        assert c.wait_closed()


# ---------------------------------------------------------------- pipelining

def test_pipelined_transaction(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    with d.connect() as c:
        c.greeting()
        r = c.ehlo()
        assert "PIPELINING" in ehlo_keywords(r)
        c.send("MAIL FROM:<alice@sender.test>\r\n"
               "RCPT TO:<one@example.test>\r\n"
               "RCPT TO:<other@elsewhere.test>\r\n"
               "RCPT TO:<two@example.test>\r\n"
               "DATA\r\n")
        replies = [c.read_reply() for _ in range(5)]
        assert [r.code for r in replies] == [250, 250, 550, 250, 354], replies
        assert replies[0].lines[0].startswith("2.1.0")
        assert replies[1].lines[0].startswith("2.1.5")
        assert replies[2].lines[0].startswith("5.7.1")
        msg = make_message("pipelined")
        c.send(msg + b".\r\nNOOP\r\nQUIT\r\n")
        qid = queued_id(c.read_reply())
        c.expect(250)
        c.expect(221)
        assert c.wait_closed()
    msgs = sink.wait_messages(1)
    assert msgs[0]["rcpts"] == ["one@example.test", "two@example.test"]
    received, rest = split_received(msgs[0]["eml"])
    assert rest == msg and qid in received


def test_pipelined_two_transactions(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    m1 = make_message("p1")
    m2 = make_message("p2")
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<u1@example.test>\r\nDATA\r\n")
        assert [c.read_reply().code for _ in range(3)] == [250, 250, 354]
        c.send(m1 + b".\r\nMAIL FROM:<b@sender.test>\r\nRCPT TO:<u2@example.test>\r\nDATA\r\n")
        queued_id(c.read_reply())
        assert [c.read_reply().code for _ in range(3)] == [250, 250, 354]
        c.send(m2 + b".\r\n")
        queued_id(c.read_reply())
    msgs = sink.wait_messages(2)
    by_from = {m["mail_from"]: m for m in msgs}
    assert by_from["a@sender.test"]["rcpts"] == ["u1@example.test"]
    assert by_from["b@sender.test"]["rcpts"] == ["u2@example.test"]
    assert split_received(by_from["a@sender.test"]["eml"])[1] == m1
    assert split_received(by_from["b@sender.test"]["eml"])[1] == m2


# ---------------------------------------------------------------- BDAT

def bdat_session(d):
    c = d.connect()
    c.greeting()
    r = c.ehlo()
    assert "CHUNKING" in ehlo_keywords(r)
    return c


def test_bdat_two_chunks(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    part1 = make_message("bdat", body=b"first part of the body, ")
    part2 = b"second part.\r\n.\r\nnot the end\r\n"
    with bdat_session(d) as c:
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.send(b"BDAT %d\r\n" % len(part1) + part1)
        r = c.read_reply()
        assert r.code == 250, r
        c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
        qid = queued_id(c.read_reply())
        c.expect(250, "NOOP")
    msgs = sink.wait_messages(1)
    received, rest = split_received(msgs[0]["eml"])
    assert rest == part1 + part2
    assert qid in received
    assert re.search(r"id=%s .*proto=BDAT" % qid, d.log())


def test_bdat_zero_last(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    msg = make_message("bdat-zero")
    with bdat_session(d) as c:
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.send(b"BDAT %d\r\n" % len(msg) + msg)
        c.expect(250)
        c.send(b"BDAT 0 LAST\r\n")
        queued_id(c.read_reply())
    msgs = sink.wait_messages(1)
    assert split_received(msgs[0]["eml"])[1] == msg


def test_bdat_pipelined_whole_transaction(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    msg = make_message("bdat-pipe")
    with bdat_session(d) as c:
        c.send(b"MAIL FROM:<alice@sender.test>\r\nRCPT TO:<user@example.test>\r\n"
               b"BDAT %d LAST\r\n" % len(msg) + msg + b"QUIT\r\n")
        assert c.read_reply().code == 250
        assert c.read_reply().code == 250
        queued_id(c.read_reply())
        c.expect(221)
    msgs = sink.wait_messages(1)
    assert split_received(msgs[0]["eml"])[1] == msg


def test_bdat_without_rcpt_keeps_sync(mx):
    """RFC 3030 2: a refused BDAT's chunk is still read; octets that look
    like commands inside it are never executed."""
    d = mx.daemon()
    chunk = b"QUIT\r\nRSET\r\nNOOP\r\n"
    with bdat_session(d) as c:
        # no transaction at all
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        r = c.read_reply()
        assert r.code in (503, 554), r
        c.expect(250, "NOOP")
        assert c.unread() == b"", "chunk content was executed"
        # MAIL but no RCPT
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        r = c.read_reply()
        assert r.code in (503, 554), r
        c.expect(250, "NOOP")
        assert c.unread() == b"", "chunk content was executed"


def test_bdat_zero_without_rcpt_is_answered(mx):
    """BDAT 0 LAST out of turn has no chunk to discard: it must be answered
    at once, not when the client happens to send more."""
    d = mx.daemon()
    with bdat_session(d) as c:
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.send(b"BDAT 0 LAST\r\n")
        r = c.read_reply(timeout=5)
        assert r.code in (503, 554), r
        c.expect(250, "NOOP")


def test_bdat_then_data_refused(mx):
    d = mx.daemon()
    with bdat_session(d) as c:
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.send(b"BDAT 5\r\nhello")
        c.expect(250)
        c.expect(503, "DATA")
        c.expect(503, "MAIL FROM:<x@sender.test>")
        c.expect(250, "RSET")
        c.expect(250, "NOOP")


def test_bdat_bad_size_closes(mx):
    """An unparsable BDAT size leaves the stream unsyncable: refuse, close."""
    d = mx.daemon()
    with bdat_session(d) as c:
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.send(b"BDAT 12x LAST\r\nhello world!")
        r = c.read_reply()
        assert r.code == 501, r
        assert c.wait_closed()


# ---------------------------------------------------------------- relay, syntax

def test_relay_refused_nothing_queued(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        for rcpt in ("x@elsewhere.test", "user@sub.example.test",
                     "user@[127.0.0.1]", "user@example.test.elsewhere.test",
                     "@example.test:user@elsewhere.test",
                     "postmaster@elsewhere.test"):
            r = c.cmd("RCPT TO:<%s>" % rcpt)
            assert r.code == 550 and r.lines[0].startswith("5.7.1"), (rcpt, r)
        r = c.cmd("DATA")
        assert r.code in (503, 554), r
        c.expect(250, "RSET")
    assert "relay refused" in d.log()
    assert "status=queued" not in d.log()
    assert d.spool_files("queue") == [] and d.spool_files("tmp") == []
    assert sink.messages() == []


@pytest.mark.parametrize("line,codes", [
    ("MAIL FROM:alice@sender.test", (501,)),
    ("MAIL FROM:<alice@sender.test", (501,)),
    ("MAIL TO:<alice@sender.test>", (501,)),
    ("MAIL FROM:<alice@@sender.test>", (553, 501)),
    ("MAIL FROM:<alice@sender..test>", (553, 501)),
    ("MAIL FROM:<alice@-sender.test>", (553, 501)),
    ("MAIL FROM:<al ice@sender.test>", (553, 501)),
    ("MAIL FROM:<%s@sender.test>" % ("a" * 65), (553, 501)),
    ("MAIL FROM:<alice@sender.test> FOO=bar", (555, 501)),
    ("MAIL FROM:<alice@sender.test> SIZE=abc", (501,)),
])
def test_mail_syntax_errors(mx, line, codes):
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        r = c.cmd(line)
        assert r.code in codes, (line, r)
        # the session goes on, no transaction was started
        c.expect(250, "MAIL FROM:<alice@sender.test>")


@pytest.mark.parametrize("line,codes", [
    ("RCPT TO:user@example.test", (501,)),
    ("RCPT TO:<user@example.test", (501,)),
    ("RCPT FROM:<user@example.test>", (501,)),
    ("RCPT TO:<>", (553, 501)),
    ("RCPT TO:<user@example.test.>", (553, 501)),
    ("RCPT TO:<user@@example.test>", (553, 501)),
    ("RCPT TO:<user@exa mple.test>", (553, 501)),
    ("RCPT TO:<us\"er@example.test>", (553, 501)),
    ("RCPT TO:<user@example.test> FOO=bar", (555, 501)),
    # RFC 3461 4.1: NEVER stands alone (DSN is offered: syntax is 501)
    ("RCPT TO:<user@example.test> NOTIFY=NEVER,SUCCESS", (501,)),
])
def test_rcpt_syntax_errors(mx, line, codes):
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        r = c.cmd(line)
        assert r.code in codes, (line, r)
        r = c.cmd("DATA")
        assert r.code in (503, 554), "recipient was accepted after %r" % r


# ---------------------------------------------------------------- size

def test_size_limits(mx):
    sink = mx.sink()
    d = mx.daemon(sink, sections={"limits": {"message_size": "10k"}})
    big = make_message("big", body=(b"x" * 76 + b"\r\n") * 263)     # ~20 KiB
    assert len(big) > 20000
    small = make_message("small")
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(552, "MAIL FROM:<alice@sender.test> SIZE=20000",
                 startswith="552 5.3.4")
        # declared size within the limit, actual content over it
        c.expect(250, "MAIL FROM:<alice@sender.test> SIZE=5000")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(big + b".\r\n")
        r = c.read_reply()
        assert r.code == 552 and r.lines[0].startswith("5.3.4"), r
        # the session goes on
        c.expect(250, "NOOP")
        c.expect(250, "RSET")
        # no SIZE at all
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(big + b".\r\n")
        c.expect(552, startswith="552 5.3.4")
        # and a small message is still accepted on the same session
        queued_id(c.send_message("alice@sender.test", ["user@example.test"],
                                 small, ehlo=False))
    sink.wait_messages(1)
    d.wait_queue_empty()                # nothing else left to deliver
    msgs = sink.messages()
    assert len(msgs) == 1
    assert split_received(msgs[0]["eml"])[1] == small
    assert len(re.findall(r"status=queued", d.log())) == 1
    assert d.spool_files("tmp") == []


def test_size_limit_bdat(mx):
    sink = mx.sink()
    d = mx.daemon(sink, sections={"limits": {"message_size": "10k"}})
    big = b"y" * 5000 + b"\r\n"
    with bdat_session(d) as c:
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        for _ in range(3):
            c.send(b"BDAT %d\r\n" % len(big) + big)
            r = c.read_reply()
            assert r.code in (250, 552), r
        c.send(b"BDAT 2 LAST\r\n\r\n")
        r = c.read_reply()
        assert r.code == 552 and r.lines[0].startswith("5.3.4"), r
        c.expect(250, "NOOP")
    assert "status=queued" not in d.log()
    assert sink.messages() == []
    assert d.spool_files("queue") == [] and d.spool_files("tmp") == []


def test_message_exactly_at_limit_accepted(mx):
    sink = mx.sink()
    d = mx.daemon(sink, sections={"limits": {"message_size": "10k"}})
    head = make_message("exact", body=b"")
    body_len = 10240 - len(head)
    line = b"z" * 98 + b"\r\n"
    body = line * (body_len // len(line))
    body += b"z" * (body_len - len(body) - 2) + b"\r\n"
    msg = head + body
    assert len(msg) == 10240
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test> SIZE=10240")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(msg + b".\r\n")
        queued_id(c.read_reply())
    msgs = sink.wait_messages(1)
    assert split_received(msgs[0]["eml"])[1] == msg


# ---------------------------------------------------------------- long lines

@pytest.mark.parametrize("offset", [510, 512])
def test_long_command_line_tail_not_executed(mx, offset):
    """A 600-octet command line is refused as a whole; its tail (which here
    looks like QUIT at the point where a 512-octet reader would cut it) is
    never run as a command."""
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        line = b"NOOP " + b"x" * (offset - 5) + b"QUIT "
        line += b"y" * (598 - len(line))
        assert len(line) == 598 and line[offset:offset + 4] == b"QUIT"
        c.send(line + b"\r\n")
        r = c.read_reply()
        assert r.code == 500 and r.lines[0].startswith("5.5.2"), r
        c.expect(250, "NOOP")
        assert c.unread() == b"" and not c.eof


def test_long_command_line_tail_rset_not_executed(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        line = b"NOOP " + b"x" * 505 + b"RSET"
        line += b" " * (598 - len(line))
        c.send(line + b"\r\n")
        r = c.read_reply()
        assert r.code == 500, r
        # the transaction is still there: RSET did not run
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(make_message("after-long") + b".\r\n")
        queued_id(c.read_reply())
    sink.wait_messages(1)


def test_very_long_command_line_in_pieces(mx):
    """A 4000-octet line arriving in two writes: the second write starts
    with QUIT, which must not be taken for a new command."""
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.send(b"NOOP " + b"a" * 1995)
        time.sleep(0.3)
        c.send(b"QUIT " + b"b" * 1993 + b"\r\n")
        r = c.read_reply()
        assert r.code == 500 and r.lines[0].startswith("5.5.2"), r
        c.expect(250, "NOOP")
        assert c.unread() == b"" and not c.eof


def test_long_text_line_refused(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    msg = make_message("longline", body=b"a" * 1200 + b"\r\nshort\r\n")
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(msg + b".\r\n")
        r = c.read_reply()
        assert r.code == 554 and r.lines[0].startswith("5.6.0"), r
        c.expect(250, "NOOP")
    assert "status=queued" not in d.log()
    assert sink.messages() == []
    assert d.spool_files("queue") == [] and d.spool_files("tmp") == []


def test_text_line_of_998_octets_accepted(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    msg = make_message("998", body=b"a" * 998 + b"\r\n")
    with d.connect() as c:
        c.greeting()
        queued_id(c.send_message("alice@sender.test", ["user@example.test"], msg))
    msgs = sink.wait_messages(1)
    assert split_received(msgs[0]["eml"])[1] == msg


def test_nul_in_message_refused(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    msg = make_message("nul", body=b"a\x00b\r\n")
    with d.connect() as c:
        c.greeting()
        r = c.send_message("alice@sender.test", ["user@example.test"], msg)
        assert r.code == 554, r
        c.expect(250, "NOOP")
    assert "status=queued" not in d.log()
    assert sink.messages() == []
    assert d.spool_files("queue") == [] and d.spool_files("tmp") == []


# ---------------------------------------------------------------- limits

def test_connections_per_ip(mx):
    d = mx.daemon(sections={"limits": {"connections_per_ip": "2"}})
    c1 = d.connect()
    c2 = d.connect()
    try:
        c1.greeting()
        c2.greeting()
        with d.connect() as c3:
            r = c3.read_reply()
            assert r.code == 421 and r.lines[0].startswith("4.7.0"), r
            assert c3.wait_closed()
        # the first two still work
        c1.ehlo()
        c2.ehlo()
        c1.expect(221, "QUIT")
        assert c1.wait_closed()
    finally:
        c1.close()
        c2.close()

    # a slot is free again once a connection ended
    def can_connect():
        with d.connect() as c4:
            try:
                return c4.read_reply().code == 220
            except ConnectionClosed:
                return False
    wait_until(can_connect, 10, interval=0.2, what="a free connection slot")
    assert "connections_per_ip" in d.log()


def test_recipient_limit(mx):
    sink = mx.sink()
    d = mx.daemon(sink, sections={"limits": {"recipients": "100"}})
    rcpts = ["user%03d@example.test" % i for i in range(101)]
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.send("MAIL FROM:<alice@sender.test>\r\n" +
               "".join("RCPT TO:<%s>\r\n" % r for r in rcpts))
        c.expect(250)
        replies = [c.read_reply() for _ in rcpts]
        assert all(r.code == 250 for r in replies[:100]), \
            [r for r in replies[:100] if r.code != 250][:3]
        assert replies[100].code == 452 and replies[100].lines[0].startswith("4.5.3"), \
            replies[100]
        c.expect(354, "DATA")
        c.send(make_message("hundred") + b".\r\n")
        queued_id(c.read_reply())
    msgs = sink.wait_messages(1)
    d.wait_queue_empty()
    assert len(sink.messages()) == 1
    assert sorted(msgs[0]["rcpts"]) == rcpts[:100]


# ---------------------------------------------------------------- IPv6

def test_ipv6_listener(mx):
    if not ipv6_loopback_available():
        pytest.skip("IPv6 loopback ::1 not available")
    sink = mx.sink()
    p6 = free_port("::1")
    d = mx.daemon(sink, sections={"listener mx6": {"address": "::1",
                                                   "port": str(p6)}})
    with SMTPConn("::1", p6) as c:
        c.greeting()
        qid = queued_id(c.send_message("alice@sender.test", ["user@example.test"],
                                       make_message("v6")))
    msgs = sink.wait_messages(1)
    received, _ = split_received(msgs[0]["eml"])
    assert "([IPv6:::1])" in received, received
    assert re.search(r"id=%s client=::1 " % qid, d.log())
    # and IPv4 still works on the other listener
    with d.connect() as c:
        c.greeting()
        c.ehlo()


# ---------------------------------------------------------------- robustness

def test_data_timeout_discards_message(mx):
    """[limits] data_timeout (1s here) applies between reads during DATA,
    not command_timeout (15s)."""
    sink = mx.sink()
    d = mx.daemon(sink, sections={"limits": {"data_timeout": "1",
                                             "command_timeout": "15"}})
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(b"Subject: slow\r\n\r\npart\r\n")
        t0 = time.monotonic()
        r = c.read_reply(timeout=6)
        assert r.code == 421 and r.lines[0].startswith("4.4.2"), r
        assert time.monotonic() - t0 < 5
        assert c.wait_closed()
    wait_until(lambda: d.spool_files("tmp") == [], 5, what="tmp/ cleaned")
    assert d.spool_files("queue") == []
    assert sink.messages() == []


@pytest.mark.parametrize("mode", ["DATA", "BDAT"])
def test_data_timeout_not_command_timeout_during_content(mx, mode):
    """With command_timeout = 1s and data_timeout = 10s, a client that
    pauses 2s inside the message content must not be cut off."""
    sink = mx.sink()
    d = mx.daemon(sink, sections={"limits": {"data_timeout": "10",
                                             "command_timeout": "1"}})
    msg = make_message("slow-content")
    half = len(msg) // 2
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        if mode == "DATA":
            c.expect(354, "DATA")
            c.send(msg[:half])
            time.sleep(2)
            c.send(msg[half:] + b".\r\n")
        else:
            c.send(b"BDAT %d LAST\r\n" % len(msg) + msg[:half])
            time.sleep(2)
            c.send(msg[half:])
        r = c.read_reply()
        assert r.code == 250, "slow content was cut off: %r" % r
    sink.wait_messages(1)


def test_client_disconnect_mid_data(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    c = d.connect()
    c.greeting()
    c.ehlo()
    c.expect(250, "MAIL FROM:<alice@sender.test>")
    c.expect(250, "RCPT TO:<user@example.test>")
    c.expect(354, "DATA")
    c.send(b"Subject: gone\r\n\r\nhalf a message\r\n")
    wait_until(lambda: d.spool_files("tmp"), 5, what="content file in tmp/")
    c.close()
    d.wait_log(r"lost connection in state data", timeout=10)
    wait_until(lambda: d.spool_files("tmp") == [], 5, what="tmp/ cleaned")
    assert d.spool_files("queue") == []
    assert "status=queued" not in d.log()
    # and the daemon still serves
    with d.connect() as c2:
        c2.greeting()
        c2.ehlo()


def test_total_connection_limit(mx):
    d = mx.daemon(sections={"limits": {"connections": "2"}})
    with d.connect() as c1, d.connect() as c2:
        c1.greeting()
        c2.greeting()
        with d.connect() as c3:
            r = c3.read_reply()
            assert r.code == 421 and r.lines[0].startswith("4.7.0"), r
            assert c3.wait_closed()
        c1.expect(250, "NOOP")


def test_helo_is_sanitised_in_received(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    with d.connect() as c:
        c.greeting()
        c.send(b"EHLO a(b)c;d\"e\\f\xc3\xa9g\r\n")
        r = c.read_reply()
        assert r.code == 250, r
        queued_id(c.send_message("alice@sender.test", ["user@example.test"],
                                 make_message("helo-chars"), ehlo=False))
    msgs = sink.wait_messages(1)
    raw = msgs[0]["eml"]
    first = raw.split(b"\r\n", 1)[0]
    assert all(b < 0x80 for b in first), first
    received, _ = split_received(raw)
    m = re.match(r"Received: from (\S+) \(", received)
    assert m, received
    assert not set(m.group(1)) & set('()";\\'), received


def test_many_pipelined_commands(mx):
    """A large pipelined burst is answered completely and in order."""
    d = mx.daemon(sections={"limits": {"junk_commands": "0"}})
    n = 2000
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.send(b"NOOP\r\n" * n + b"VRFY x\r\n")
        for i in range(n):
            r = c.read_reply()
            assert r.code == 250, (i, r)
        c.expect(252)


def test_pipelining_without_reading_replies(mx):
    """A client that pipelines a flood of commands and reads nothing makes
    the daemon stop reading (replies and input are bounded), never stall:
    once the client reads, every reply arrives in order and the session
    goes on."""
    import threading
    d = mx.daemon(sections={"limits": {"junk_commands": "0"}})
    n = 1000000                     # 14 MB of replies: more than socket buffers hold
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        payload = b"NOOP\r\n" * n
        sent = 0
        c.sock.settimeout(0.5)
        while sent < len(payload):
            try:
                sent += c.sock.send(payload[sent:sent + 65536])
            except (BlockingIOError, TimeoutError, OSError):
                break
        assert sent < len(payload), \
            "the daemon read everything while its replies piled up"
        c.sock.settimeout(30)
        rest = threading.Thread(target=c.sock.sendall,
                                args=(payload[sent:] + b"QUIT\r\n",),
                                daemon=True)
        rest.start()
        data = b""
        want = b"250 2.0.0 Ok\r\n" * n + b"221 2.0.0 Bye\r\n"
        deadline = time.monotonic() + 60
        while len(data) < len(want) and time.monotonic() < deadline:
            chunk = c.sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        rest.join(5)
        assert len(data) == len(want), (len(data), len(want), data[-60:])
        assert data == want


@pytest.mark.parametrize("line", [
    b"BDAT 22 LAST" + b" " * 600,          # over the 512-octet limit
    b"BDAT 22\x01 LAST",                   # control character
    b"BDAT 22 LAST" + b"x" * 1500,         # over the limit with no CRLF in sight
])
def test_unreadable_bdat_closes(mx, line):
    """An unreadable BDAT line leaves the chunk's octets unaccounted for:
    they must never be executed as commands (RFC 3030 2); 501 and close."""
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<a@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.send(line + b"\r\nNOOP\r\nRSET\r\n")
        r = c.read_reply()
        assert r.code == 501, r
        assert c.wait_closed()


def test_esmtp_parameters_need_ehlo(mx):
    """After plain HELO no service extension is in force (RFC 5321
    4.1.1.1): MAIL parameters get 555 and BDAT is refused after its chunk
    is read, keeping the session in step."""
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        c.expect(250, "HELO client.test")
        c.expect(555, "MAIL FROM:<a@sender.test> SIZE=100")
        c.expect(250, "MAIL FROM:<a@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.send(b"BDAT 5 LAST\r\nhello")
        r = c.read_reply()
        assert r.code == 503, r
        c.expect(250, "NOOP")
        c.expect(354, "DATA")
        c.send(make_message("helo-data") + b".\r\n")
        queued_id(c.read_reply())
