"""Delivery status notifications: RFC 3464 reports for bounces, delay
warnings and NOTIFY=SUCCESS, and the RFC 3461 DSN extension (RET, ENVID,
NOTIFY, ORCPT) taken from clients and passed on downstream.

The sender's domain (remote.test) routes to a second sink through
[route *], so the reports can be read there; they are parsed with Python's
email package, not searched as text.
"""

import email
import email.policy
import re
import time

from conftest import dot_stuff, free_port, make_message, queued_id, wait_until

SENDER = "sender@remote.test"


def daemon_with_bounces(mx, sink, delivery=None, route_to=None):
    bounces = mx.sink(name="bounces")
    sections = {"route *": {"hosts": bounces.hostport}}
    if delivery:
        sections["delivery"] = delivery
    d = mx.daemon(sink, sections=sections, route_to=route_to)
    return d, bounces


def send(d, rcpts, subject="dsn", mail_params="", sender=SENDER, body="Hello.\r\n"):
    """rcpts: list of (address, "RCPT parameters")."""
    msg = make_message(subject, sender=sender or "x@remote.test", body=body)
    with d.connect() as c:
        c.greeting()
        r = c.ehlo()
        assert "DSN" in [l.split()[0] for l in r.lines[1:]], r
        c.expect(250, ("MAIL FROM:<%s> %s" % (sender, mail_params)).rstrip())
        for addr, params in rcpts:
            c.expect(250, ("RCPT TO:<%s> %s" % (addr, params)).rstrip())
        c.expect(354, "DATA")
        c.send(dot_stuff(msg) + b".\r\n")
        qid = queued_id(c.read_reply())
        c.expect(221, "QUIT")
    d.known_ids.add(qid)
    return qid, msg


def parse_dsn(m):
    """(message, text part, per-message fields, [per-recipient fields],
    original part) of a report stored by the sink."""
    assert m["mail_from"] == "", "a report comes from the null sender"
    assert m["rcpts"] == [SENDER]
    # the sink stores what mxgate sent: our Received header first
    msg = email.message_from_bytes(m["eml"], policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["From"] == '"Mail Delivery System" <MAILER-DAEMON@mx.example.test>'
    assert msg["To"] == "<%s>" % SENDER
    assert msg["Message-ID"] and msg["Date"] and msg["MIME-Version"] == "1.0"
    parts = msg.get_payload()
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    blocks = parts[1].get_payload()
    per_msg, per_rcpt = blocks[0], blocks[1:]
    assert per_msg["Reporting-MTA"] == "dns; mx.example.test"
    assert per_msg["Arrival-Date"]
    orig = parts[2] if len(parts) > 2 else None
    return msg, parts[0].get_payload(), per_msg, per_rcpt, orig


def settle(d, qid):
    """The message is gone from the queue and nothing more is on its way."""
    d.wait_log(r"id=%s removed from queue" % qid)
    d.wait_queue_empty()
    time.sleep(1.5)


# ---------------------------------------------------------------- bounces

def test_mixed_results_one_report_for_the_failed_recipient(mx):
    """One recipient of three gets 550: exactly one report, about that
    one; the other two are delivered once, in one transaction."""
    sink = mx.sink("--reject-rcpt", "bad@.*=550 5.1.1 <bad@example.test>: no such user")
    d, bounces = daemon_with_bounces(mx, sink)
    qid, _ = send(d, [("a@example.test", ""), ("bad@example.test", ""),
                      ("c@example.test", "")], subject="mixed")
    b = bounces.wait_messages(1, daemon=d)
    settle(d, qid)
    msgs = sink.messages()
    assert len(msgs) == 1 and sorted(msgs[0]["rcpts"]) == ["a@example.test", "c@example.test"]
    assert len(bounces.messages()) == 1
    msg, text, per_msg, per_rcpt, orig = parse_dsn(b[0])
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert per_msg["X-Mxgate-Queue-ID"] == qid
    assert per_msg["Original-Envelope-Id"] is None
    assert len(per_rcpt) == 1
    r = per_rcpt[0]
    assert r["Final-Recipient"] == "rfc822; bad@example.test"
    assert r["Action"] == "failed"
    assert re.fullmatch(r"5\.\d{1,3}\.\d{1,3}", r["Status"]) and r["Status"] == "5.1.1"
    assert r["Remote-MTA"] == "dns; 127.0.0.1"
    assert r["Diagnostic-Code"] == "smtp; 550 5.1.1 <bad@example.test>: no such user"
    assert r["Last-Attempt-Date"] and r["Original-Recipient"] is None
    assert "<bad@example.test>:" in text and "a@example.test" not in text
    # headers only (no RET): the original's header section, no body
    assert orig.get_content_type() == "text/rfc822-headers"
    hdrs = orig.get_payload()
    assert "Subject: mixed" in hdrs and "Hello." not in hdrs
    assert re.search(r"id=%s bounce queued as id=\S+ to=<%s> recipients=1"
                     % (qid, re.escape(SENDER)), d.log())


def test_notify_never_and_notify_without_failure_get_no_report(mx):
    sink = mx.sink("--reject-rcpt", "bad.*@.*=550 5.1.1 no such user")
    d, bounces = daemon_with_bounces(mx, sink)
    qid, _ = send(d, [("good@example.test", ""),
                      ("bad1@example.test", "NOTIFY=NEVER"),
                      ("bad2@example.test", "NOTIFY=SUCCESS,DELAY")])
    sink.wait_messages(1, daemon=d)
    settle(d, qid)
    assert bounces.messages() == []
    log = d.log()
    for r in ("bad1", "bad2"):
        assert re.search(r"id=%s to=<%s@example\.test> relay=\S+ status=bounced" % (qid, r), log)
        assert re.search(r"id=%s to=<%s@example\.test> failure not reported: NOTIFY" % (qid, r), log)


def test_ret_full_envid_orcpt_echoed(mx):
    sink = mx.sink("--reject-rcpt", "bad@.*=550 5.1.1 no such user")
    d, bounces = daemon_with_bounces(mx, sink)
    qid, sent = send(d, [("bad@example.test",
                          "NOTIFY=FAILURE ORCPT=rfc822;Bad+2BTag@example.test")],
                     mail_params="RET=FULL ENVID=QQ+2B314159",
                     body="The whole body comes back.\r\n")
    b = bounces.wait_messages(1, daemon=d)
    settle(d, qid)
    msg, text, per_msg, per_rcpt, orig = parse_dsn(b[0])
    assert per_msg["Original-Envelope-Id"] == "QQ+314159"
    assert per_rcpt[0]["Original-Recipient"] == "rfc822;Bad+Tag@example.test"
    assert per_rcpt[0]["Final-Recipient"] == "rfc822; bad@example.test"
    assert orig.get_content_type() == "message/rfc822"
    inner = orig.get_payload()[0]
    assert inner["Subject"] == "dsn"
    assert inner.get_payload() == "The whole body comes back.\r\n"
    # what was returned is what we queued: our Received, then the message
    assert orig.as_bytes().replace(b"\n", b"\r\n").find(b"The whole body") > 0


def test_null_sender_failure_gets_no_report(mx):
    sink = mx.sink("--reject-rcpt", "bad@.*=550 5.1.1 no such user")
    d, bounces = daemon_with_bounces(mx, sink)
    qid, _ = send(d, [("bad@example.test", "NOTIFY=FAILURE")], sender="")
    settle(d, qid)
    assert bounces.messages() == [] and sink.messages() == []
    assert "id=%s failed recipients not bounced: null sender" % qid in d.log()


def test_expired_recipient_is_reported_with_5_4_7(mx):
    sink = mx.sink(start=False)
    sink.port = free_port()          # nothing listens: every attempt defers
    d, bounces = daemon_with_bounces(mx, None, route_to=sink.hostport,
                                     delivery={"max_lifetime": "2s",
                                               "delay_warning": "0"})
    qid, _ = send(d, [("user@example.test", "")])
    b = bounces.wait_messages(1, daemon=d)
    settle(d, qid)
    _, text, _, per_rcpt, _ = parse_dsn(b[0])
    assert len(bounces.messages()) == 1, "no delay warning with delay_warning = 0"
    assert per_rcpt[0]["Action"] == "failed" and per_rcpt[0]["Status"] == "5.4.7"
    assert per_rcpt[0]["Diagnostic-Code"].startswith("X-mxgate; expired after")
    assert "expired" in text


# ---------------------------------------------------------------- delays

def test_delay_warning_once_then_delivery(mx):
    """delay_warning = 2s and a downstream answering 451: one "delayed"
    report (for the recipient whose NOTIFY allows it) however many
    attempts follow, then the delivery, and nothing more."""
    busy = mx.sink("--data-reply", "451 4.3.0 busy", name="busy")
    d, bounces = daemon_with_bounces(mx, busy, delivery={"delay_warning": "2s"})
    qid, _ = send(d, [("slow@example.test", ""),
                      ("quiet@example.test", "NOTIFY=FAILURE")])
    b = bounces.wait_messages(1, daemon=d)
    msg, text, per_msg, per_rcpt, orig = parse_dsn(b[0])
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    assert [r["Final-Recipient"] for r in per_rcpt] == ["rfc822; slow@example.test"]
    r = per_rcpt[0]
    assert r["Action"] == "delayed" and r["Status"] == "4.3.0"
    assert r["Diagnostic-Code"] == "smtp; 451 4.3.0 busy"
    assert r["Will-Retry-Until"] and r["Last-Attempt-Date"]
    assert orig.get_content_type() == "text/rfc822-headers"
    # more attempts, no second warning
    d.wait_log(r"id=%s deferred pending=2 attempts=[4-9]" % qid)
    assert len(bounces.messages()) == 1
    busy.stop()
    good = mx.sink(port=busy.port, name="good")
    msgs = good.wait_messages(1, daemon=d)
    settle(d, qid)
    assert sorted(msgs[0]["rcpts"]) == ["quiet@example.test", "slow@example.test"]
    assert len(good.messages()) == 1 and len(bounces.messages()) == 1
    assert re.search(r"id=%s delay warning queued as id=\S+ to=<%s> recipients=1"
                     % (qid, re.escape(SENDER)), d.log())


# ---------------------------------------------------------------- success

def test_notify_success_without_downstream_dsn_is_relayed(mx):
    """RFC 3461 5.2.2: the next hop does not offer DSN, so we report
    "relayed" ourselves, only for the recipient that asked."""
    sink = mx.sink()
    d, bounces = daemon_with_bounces(mx, sink)
    qid, _ = send(d, [("want@example.test", "NOTIFY=SUCCESS,FAILURE"),
                      ("plain@example.test", "")])
    b = bounces.wait_messages(1, daemon=d)
    settle(d, qid)
    assert len(sink.messages()) == 1 and len(bounces.messages()) == 1
    msg, _, _, per_rcpt, _ = parse_dsn(b[0])
    assert msg["Subject"] == "Successful Mail Delivery Report"
    assert len(per_rcpt) == 1
    assert per_rcpt[0]["Final-Recipient"] == "rfc822; want@example.test"
    assert per_rcpt[0]["Action"] == "relayed" and per_rcpt[0]["Status"] == "2.0.0"
    # the sink does not take NOTIFY: none was sent
    assert sink.messages()[0]["rcpt_params"] == [{}, {}]


def test_dsn_parameters_passed_downstream(mx):
    """A next hop that offers DSN gets RET, ENVID, NOTIFY and ORCPT as
    received, and reports success itself: no report from us."""
    sink = mx.sink("--dsn")
    d, bounces = daemon_with_bounces(mx, sink)
    qid, _ = send(d, [("a@example.test", "NOTIFY=SUCCESS,DELAY ORCPT=rfc822;A+2Bx@example.test"),
                      ("b@example.test", "")],
                  mail_params="RET=HDRS ENVID=env+3D1")
    m = sink.wait_messages(1, daemon=d)[0]
    settle(d, qid)
    assert m["mail_params"]["RET"] == "HDRS"
    assert m["mail_params"]["ENVID"] == "env+3D1"
    params = dict(zip(m["rcpts"], m["rcpt_params"]))
    assert params["a@example.test"] == {"NOTIFY": "SUCCESS,DELAY",
                                        "ORCPT": "rfc822;A+2Bx@example.test"}
    assert params["b@example.test"] == {}
    assert bounces.messages() == []


# ---------------------------------------------------------------- syntax

def test_dsn_parameter_syntax(mx):
    d = mx.daemon()
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        for bad in ("RET=PARTIAL", "RET", "RET=FULL RET=HDRS", "ENVID=a+2",
                    "ENVID=" + "e" * 101, "ENVID=a+00"):
            r = c.cmd("MAIL FROM:<%s> %s" % (SENDER, bad))
            assert r.code == 501 and r.lines[0].startswith("5.5.4"), (bad, r)
        c.expect(250, "MAIL FROM:<%s> RET=full ENVID=%s" % (SENDER, "e" * 100))
        for bad in ("NOTIFY=NEVER,SUCCESS", "NOTIFY=SUCCES", "NOTIFY=SUCCESS,",
                    "ORCPT=rfc822", "ORCPT=;a@b", "ORCPT=rfc822;a+4",
                    "NOTIFY=NEVER NOTIFY=NEVER"):
            r = c.cmd("RCPT TO:<user@example.test> %s" % bad)
            assert r.code == 501 and r.lines[0].startswith("5.5.4"), (bad, r)
        r = c.cmd("RCPT TO:<user@example.test> FOO=1")
        assert r.code == 555, r
        c.expect(250, "RCPT TO:<user@example.test> notify=never orcpt=rfc822;user@example.test")
        c.expect(250, "RSET")
        c.expect(221, "QUIT")
