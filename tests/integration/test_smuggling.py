"""SMTP smuggling (SEC Consult, Dec 2023): fake end-of-data sequences.

The sequences come from the shared conformance data
(../shared/conformance/smtp-smuggling/eod-sequences.json). mxgate must end
DATA only at CRLF.CRLF: either it refuses the message (bare CR/LF/NUL) and
nothing is delivered, or it delivers exactly one message with the smuggled
commands as body text. It never runs the embedded MAIL/RCPT/DATA.
"""

import json

import pytest

from conftest import REPO, make_message, split_received

SEQ_FILE = REPO.parent / "shared" / "conformance" / "smtp-smuggling" / "eod-sequences.json"

SMUGGLED = (b"mail FROM:<smuggled@evil.test>\r\n"
            b"rcpt TO:<victim@example.test>\r\n"
            b"data\r\n"
            b"From: <smuggled@evil.test>\r\n"
            b"Subject: smuggled\r\n"
            b"\r\n"
            b"smuggled body\r\n")


def _sequences():
    if not SEQ_FILE.exists():
        return [pytest.param(None, id="sequences-missing")]
    with open(SEQ_FILE) as f:
        data = json.load(f)
    out = []
    for listname in ("inbound_eod_sequences", "outbound_eod_sequences"):
        for i, seq in enumerate(data.get(listname, [])):
            out.append(pytest.param(seq.encode("latin-1"),
                                    id="%s-%d-%s" % (listname.split("_")[0], i,
                                                     seq.encode("unicode_escape").decode())))
    assert out, "no sequences in %s" % SEQ_FILE
    return out


def _need(seq):
    if seq is None:
        pytest.skip("SMTP smuggling sequences not found at %s "
                    "(shared conformance data absent)" % SEQ_FILE)


def _check_outcome(d, sink, c, first):
    """Common assertions after the reply to the (only) end of data."""
    # Replies come in order: anything the smuggled MAIL/RCPT/DATA (or a
    # second end of data) produced arrives before the reply to QUIT.
    c.send(b"QUIT\r\n")
    extra = []
    while True:
        r = c.read_reply()
        if r.code == 221:
            break
        extra.append(r)
    assert extra == [], "replies to smuggled commands: %r" % extra
    if first.code == 250:
        sink.wait_messages(1)
        d.wait_queue_empty()            # nothing else left to deliver
        msgs = sink.messages()
        assert len(msgs) == 1, "%d messages delivered" % len(msgs)
        assert b"smuggled body" in msgs[0]["eml"]
        assert b"mail FROM:<smuggled@evil.test>" in msgs[0]["eml"]
    else:
        assert 500 <= first.code < 600, \
            "expected 250 or a 5xx refusal, got %r" % first
        assert "status=queued" not in d.log(), "refused, yet queued"
        assert d.spool_files("queue") == [] and d.spool_files("tmp") == []
        assert sink.messages() == [], "refused message was delivered"
    for m in sink.messages():
        assert m["mail_from"] != "smuggled@evil.test", "smuggled message delivered"
        assert m["rcpts"] != ["victim@example.test"]
    assert "from=<smuggled@evil.test>" not in d.log()


@pytest.mark.parametrize("seq", _sequences())
def test_smuggling_data(mx, seq):
    _need(seq)
    sink = mx.sink()
    d = mx.daemon(sink)
    body = (b"Subject: smuggling test\r\n\r\nfirst line\r\n" + seq + b"\r\n"
            + SMUGGLED + b".\r\n")
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(body)
        first = c.read_reply()
        _check_outcome(d, sink, c, first)


@pytest.mark.parametrize("seq", _sequences())
def test_smuggling_bdat_relayed_with_data(mx, seq):
    """Outbound side: content taken in with BDAT (no end marker there) and
    relayed with DATA to a downstream without CHUNKING. A fake end of data
    inside must not reach the downstream in a form it could end on."""
    _need(seq)
    sink = mx.sink("--no-chunking")
    d = mx.daemon(sink)
    content = (b"Subject: smuggling test\r\n\r\nfirst line\r\n" + seq + b"\r\n"
               + SMUGGLED)
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.send(b"BDAT %d LAST\r\n" % len(content) + content)
        first = c.read_reply()
        _check_outcome(d, sink, c, first)
        if first.code == 250:
            eml = sink.messages()[0]["eml"]
            assert seq not in eml, "sequence relayed unchanged"


def test_real_dot_line_inside_bdat_relayed_with_data(mx):
    """A lone "." line is legal content in BDAT; relayed with DATA it must
    be dot-stuffed so that the downstream does not end the message there."""
    sink = mx.sink("--no-chunking")
    d = mx.daemon(sink)
    content = make_message("bdat-dot", body=b"first line\r\n.\r\n" + SMUGGLED)
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.send(b"BDAT %d LAST\r\n" % len(content) + content)
        r = c.read_reply()
        assert r.code == 250, r
        c.expect(221, "QUIT")
    msgs = sink.wait_messages(1)
    d.wait_queue_empty()
    msgs = sink.messages()
    assert len(msgs) == 1
    assert msgs[0]["mail_from"] == "alice@sender.test"
    assert split_received(msgs[0]["eml"])[1] == content
