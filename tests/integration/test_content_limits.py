"""Content limits ([limits] header_size, header_fields, mime_depth,
mime_parts; gateway/inbound.c, smtp/mime.c).

Each limit at exactly its value is accepted and delivered; one past it is
refused at end of data (552 5.3.4 for the header section, 554 5.6.0 for
the MIME structure) with nothing queued, one log line naming the session
and client, and a count in mxgate_messages_total{outcome="rejected",
reason="content"}. The daemon keeps serving the same and other clients
after each refusal.
"""

import re
import signal
import urllib.request

from conftest import free_port, ini_text, make_message, queued_id

SMALL = {"header_size": "4k", "header_fields": "50", "mime_depth": "3",
         "mime_parts": "10"}

SIZE_REPLY = "552 5.3.4 Message header section exceeds the limit of %d octets"
FIELDS_REPLY = "552 5.3.4 Too many header fields (limit %d)"
DEPTH_REPLY = "554 5.6.0 MIME nesting deeper than %d levels"
PARTS_REPLY = "554 5.6.0 More than %d MIME parts"


# ---------------------------------------------------------------- messages

BASE_FIELDS = [b"From: <alice@sender.test>", b"To: <user@example.test>",
               b"Subject: limits", b"Message-ID: <limits@sender.test>"]


def with_header(fields, body=b"Hello.\r\n"):
    return b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


def header_of_size(n):
    """A message whose header section (fields with their CRLFs, not the
    empty line after them) is exactly n octets, in few fields (lines
    under 998 octets)."""
    fields = list(BASE_FIELDS)
    size = sum(len(f) + 2 for f in fields)
    pad = []
    left = n - size
    assert left > 40
    while left > 0:
        # a field of at most 898 octets and its CRLF; the last one fits
        take = min(left, 900)
        if 0 < left - take < 12:        # leave room for a last field
            take = left - 12
        pad.append(b"X-Pad: " + b"x" * (take - 9))
        left -= take
    fields += pad
    msg = with_header(fields)
    assert msg.index(b"\r\n\r\n") + 2 == n, (msg.index(b"\r\n\r\n") + 2, n)
    return msg


def header_of_fields(n):
    fields = list(BASE_FIELDS)
    fields += [b"X-Field-%d: %d" % (i, i) for i in range(n - len(fields))]
    assert len(fields) == n
    return with_header(fields)


def nested(levels, boundary=b"lvl"):
    """levels multiparts one inside the other, each with its boundary."""
    out = b"".join(f + b"\r\n" for f in BASE_FIELDS) + b"MIME-Version: 1.0\r\n"
    for i in range(levels):
        out += (b'Content-Type: multipart/mixed; boundary="%s%d"\r\n\r\n'
                b"--%s%d\r\n" % (boundary, i, boundary, i))
    out += b"Content-Type: text/plain\r\n\r\ninnermost\r\n"
    for i in reversed(range(levels)):
        out += b"--%s%d--\r\n" % (boundary, i)
    return out


def flat(parts):
    """One multipart/mixed of `parts` text parts."""
    out = (b"".join(f + b"\r\n" for f in BASE_FIELDS) + b"MIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="=_p"\r\n\r\n'
           b"This is a multi-part message in MIME format.\r\n")
    for i in range(parts):
        out += b"--=_p\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i
    return out + b"--=_p--\r\n"


def attachment_mail():
    """What a mail client sends: text and HTML, a PDF, a forwarded mail."""
    b64 = b"JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\r\n" * 40
    return (b"".join(f + b"\r\n" for f in BASE_FIELDS) +
            b"MIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="------------mix"\r\n'
            b"\r\n"
            b"This is a multi-part message in MIME format.\r\n"
            b"--------------mix\r\n"
            b"Content-Type: multipart/alternative;\r\n"
            b' boundary="------------alt"\r\n'
            b"\r\n"
            b"--------------alt\r\n"
            b"Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
            b"\r\n"
            b"Please find the report attached.\r\n"
            b"--------------alt\r\n"
            b"Content-Type: text/html; charset=UTF-8\r\n"
            b"\r\n"
            b"<p>Please find the report attached.</p>\r\n"
            b"--------------alt--\r\n"
            b"\r\n"
            b"--------------mix\r\n"
            b'Content-Type: application/pdf; name="report.pdf"\r\n'
            b'Content-Disposition: attachment; filename="report.pdf"\r\n'
            b"Content-Transfer-Encoding: base64\r\n"
            b"\r\n" + b64 +
            b"--------------mix\r\n"
            b"Content-Type: message/rfc822\r\n"
            b"\r\n"
            b"From: <carol@sender.test>\r\n"
            b"Subject: earlier\r\n"
            b"\r\n"
            b"Earlier message.\r\n"
            b"--------------mix--\r\n")


# ---------------------------------------------------------------- helpers

def limits_daemon(mx, limits, metrics_port=None):
    sink = mx.sink()
    sections = {"limits": dict(limits)}
    if metrics_port:
        sections["metrics"] = {"listen": "127.0.0.1:%d" % metrics_port}
    return sink, mx.daemon(sink, sections=sections)


def content_rejections(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                timeout=10) as r:
        text = r.read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("mxgate_messages_total{") and \
                'outcome="rejected"' in line and 'reason="content"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def send(c, content, ehlo=True):
    if ehlo:
        c.ehlo()
    c.expect(250, "MAIL FROM:<alice@sender.test>")
    c.expect(250, "RCPT TO:<user@example.test>")
    c.expect(354, "DATA")
    c.send(content + b".\r\n")
    return c.read_reply()


def assert_refused(d, sink, r, reply, limit):
    assert r.first == reply, "expected %r, got %r" % (reply, r)
    lines = [l for l in d.log().splitlines() if "message refused: limit=%s" % limit in l]
    assert len(lines) == 1, "refusal log lines: %r" % lines
    assert re.search(r"session=\S+ .*client=127\.0\.0\.1", lines[0]), lines[0]
    assert reply.split(" ", 2)[2] in lines[0], lines[0]
    assert "status=queued" not in d.log(), "refused, yet queued"
    assert d.spool_files("queue") == [] and d.spool_files("tmp") == []


def check_limit(mx, good, bad, reply, limit):
    """good is accepted and delivered, bad refused; both on one session,
    with a second client served while the first is refused."""
    mport = free_port()
    sink, d = limits_daemon(mx, SMALL, metrics_port=mport)
    before = content_rejections(mport)
    with d.connect() as c, d.connect() as other:
        c.greeting()
        other.greeting()
        r = send(c, bad)
        assert_refused(d, sink, r, reply, limit)
        # the same session goes on
        qid = queued_id(send(c, good, ehlo=False))
        # and so does another client, connected all along
        qid2 = queued_id(send(other, make_message("other client")))
        c.expect(221, "QUIT")
    msgs = sink.wait_messages(2, daemon=d)
    d.wait_queue_empty()
    assert len(msgs) == 2
    assert any(m["eml"].endswith(good) for m in msgs), "good message altered"
    assert qid != qid2
    assert content_rejections(mport) == before + 1


# ---------------------------------------------------------------- tests

def test_header_size(mx):
    check_limit(mx, header_of_size(4096), header_of_size(4097),
                SIZE_REPLY % 4096, "header_size")


def test_header_fields(mx):
    check_limit(mx, header_of_fields(50), header_of_fields(51),
                FIELDS_REPLY % 50, "header_fields")


def test_mime_depth(mx):
    check_limit(mx, nested(3), nested(4), DEPTH_REPLY % 3, "mime_depth")


def forwarded(inner_levels):
    """mixed > message/rfc822 > inner_levels multiparts: 2 + inner_levels
    levels (an enclosed message is one)."""
    inner = b"Subject: forwarded\r\n"
    for i in range(inner_levels):
        inner += (b"Content-Type: multipart/alternative; boundary=a%d\r\n\r\n"
                  b"--a%d\r\n" % (i, i))
    inner += b"Content-Type: text/plain\r\n\r\nx\r\n"
    for i in reversed(range(inner_levels)):
        inner += b"--a%d--\r\n" % i
    return (b"".join(f + b"\r\n" for f in BASE_FIELDS) +
            b"Content-Type: multipart/mixed; boundary=m\r\n\r\n"
            b"--m\r\nContent-Type: message/rfc822\r\n\r\n" + inner +
            b"--m--\r\n")


def test_mime_depth_message_rfc822(mx):
    """An enclosed message is a level: mixed > message > alternative is 3,
    one more multipart inside is 4."""
    check_limit(mx, forwarded(1), forwarded(2), DEPTH_REPLY % 3, "mime_depth")


def test_mime_parts(mx):
    check_limit(mx, flat(10), flat(11), PARTS_REPLY % 10, "mime_parts")


def test_mime_parts_bdat(mx):
    """BDAT: the refusal answers the LAST chunk; earlier chunks get 250."""
    sink, d = limits_daemon(mx, SMALL)
    bad = flat(11)
    half = len(bad) // 2
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.send(b"BDAT %d\r\n" % half + bad[:half])
        assert c.read_reply().code == 250
        c.send(b"BDAT %d LAST\r\n" % (len(bad) - half) + bad[half:])
        r = c.read_reply()
        assert_refused(d, sink, r, PARTS_REPLY % 10, "mime_parts")
        qid = queued_id(send(c, flat(10), ehlo=False))
    sink.wait_messages(1, daemon=d)
    d.wait_queue_empty()
    assert len(sink.messages()) == 1 and qid


def test_limits_from_the_start_of_data(mx):
    """A reload during the content does not change the message's limits."""
    sink, d = limits_daemon(mx, SMALL)
    msg = header_of_fields(50)
    cut = msg.index(b"X-Field-20")
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(msg[:cut])
        sections = dict(d.sections)
        sections["limits"] = dict(sections["limits"], header_fields="10")
        d.sections = sections
        with open(d.cfg_path, "w") as f:
            f.write(ini_text(sections))
        n = d.log().count("configuration reloaded")
        d.signal(signal.SIGHUP)
        d.wait_log("configuration reloaded", timeout=10, count=n + 1)
        c.send(msg[cut:] + b".\r\n")
        queued_id(c.read_reply())
        # the next message has the new limit
        r = send(c, header_of_fields(11), ehlo=False)
        assert r.first == FIELDS_REPLY % 10, r
    sink.wait_messages(1, daemon=d)


def test_defaults(mx):
    """Without [limits] keys: 25 nested multiparts are refused (20 levels),
    a usual mail with attachments passes, and so do 20 levels."""
    sink = mx.sink()
    d = mx.daemon(sink)
    with d.connect() as c:
        c.greeting()
        r = send(c, nested(25))
        assert_refused(d, sink, r, DEPTH_REPLY % 20, "mime_depth")
        queued_id(send(c, attachment_mail(), ehlo=False))
        queued_id(send(c, nested(20), ehlo=False))
    msgs = sink.wait_messages(2, daemon=d)
    d.wait_queue_empty()
    assert len(msgs) == 2
    assert msgs[0]["eml"].endswith(attachment_mail())
