"""Envelope data never reaches a shell, a format string or a file name
unescaped (issue 9).

Hostile HELO names, MAIL FROM and RCPT TO local parts (printf conversions,
shell metacharacters, path traversal, quotes and backslashes, fake log
fields, the longest parts, UTF-8 with SMTPUTF8) and header fields
(Subject, From, Message-ID) go through the whole daemon: the spool, the
log, delivery downstream, a bounce (DSN) back to the sender, and the
queue commands. Checked:

  - the daemon keeps serving, and every address reaches the sink, the
    bounce and the queue exactly as sent (no format expansion, no cut);
  - the log has no raw control octet, and each value in the summary line
    decodes (log_safe's quoting: \\" \\\\ \\xNN inside "...") to what was
    sent, with no field added by the data: in text lines and, with
    log_format = json, as JSON members;
  - spool files are named by queue id only, and no file appears outside
    the spool;
  - `mxgate queue list --json` is valid JSON with the exact values, `list`
    keeps its columns (spaces and backslashes escaped as \\xNN), `show`
    escapes backslashes;
  - the DSN's To, Final-Recipient and delivery-status fields carry the
    addresses whole, and no field is injected;
  - CR and LF inside a command never become part of an address.
"""

import email
import email.policy
import json
import os
import re
import subprocess

import pytest

from conftest import (dot_stuff, mxgate_bin, queued_id, split_received,
                      wait_until)

# local parts as they appear on the wire (RFC 5321 4.1.2: Dot-string or
# Quoted-string; RFC 6531 for the UTF-8 one)
LOCALS = [
    "%n%s%x%99999999d%p",                    # printf conversions (atext)
    '"$(id)`id`;|&*?~{}"',                    # shell metacharacters
    '"../../etc/passwd"',                     # path traversal
    "/",                                      # a lone slash (atext)
    '"a\\"b\\\\c\'d"',                        # quote, backslash, apostrophe
    '"x status=sent id=0000000000000000"',    # a forged log field
    "b" * 64,                                 # the longest local part
    "ünï%s$x",                                # UTF-8 (SMTPUTF8)
]
HELOS = [
    "%n%s%x%99999999d", "$(id)`id`;|&><", "../../etc/passwd", "/",
    "a\"b\\c'd", "x status=sent", "h" * 255, "ünïcødé.example",
    "[127.0.0.1]",
]
HEADER_PAYLOAD = "%n%s%x%99999999d $(id) `id` ; | & > < ../../etc/passwd \\ \" '"
SENDER_DOMAIN = "sender.test"
# what the sink does with a recipient, by the word its local part starts with
SINK_RULES = ["^\"?bounce=550 5.1.1 no such user",
              "^\"?defer=451 4.3.0 try later"]
LOG_KEYS = {"session", "id", "client", "helo", "from", "to", "nrcpt", "size",
            "proto", "tls", "spf", "spf_helo", "dkim", "dmarc", "status"}
DSN_FIELDS = {"reporting-mta", "x-mxgate-queue-id", "original-envelope-id",
              "arrival-date", "final-recipient", "original-recipient",
              "action", "status", "remote-mta", "diagnostic-code",
              "last-attempt-date", "will-retry-until"}
# words no file name may hold
NAME_FRAGMENTS = ["passwd", "$(", "`", "%n", "%s", "|", ";", ">", "<", "ünï",
                  '"', "\\"]
LOG_SAFE_MAX = 256


def with_word(local, word):
    """local with word put in front (inside the quotes), at most 64 octets."""
    if local.startswith('"'):
        out = '"' + word + local[1:]
        if len(out.encode()) > 64:
            out = '"' + word + "x" * (64 - len(word) - 2) + '"'
        return out
    return (word + local).encode()[:64].decode("utf-8", "ignore")


def utf8(local):
    return any(ord(ch) > 127 for ch in local)


def hostile_message(i, sender):
    hdr = [
        'From: "%s" <%s>' % (HEADER_PAYLOAD.replace("\\", "\\\\")
                             .replace('"', '\\"'), sender),
        "To: <%s>" % with_word(LOCALS[i], "to"),
        "Subject: %d %s" % (i, HEADER_PAYLOAD),
        "Message-ID: <%d.%%n%%s$(id)`id`../../etc/passwd@%s>" % (i, SENDER_DOMAIN),
    ]
    if utf8(LOCALS[i]):
        hdr.append("X-Utf8: ünïcødé %s" % HEADER_PAYLOAD)
    return ("\r\n".join(hdr) + "\r\n\r\nbody %d\r\n" % i).encode()


# ---------------------------------------------------------------- the log

def log_value(s, i):
    """One value of a log line at s[i:] (log_safe's quoting, undone as
    lib/log.c's jvalue does); returns (bytes, next index)."""
    out = bytearray()
    q = False
    hexd = b"0123456789abcdefABCDEF"
    while i < len(s) and (q or s[i:i + 1] != b" "):
        c = s[i:i + 1]
        if c == b"\\" and s[i + 1:i + 2] == b"x" and len(s) > i + 3 and \
                s[i + 2:i + 3] in hexd and s[i + 3:i + 4] in hexd:
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        elif c == b"\\" and s[i + 1:i + 2] in (b'"', b"\\"):
            out += s[i + 1:i + 2]
            i += 2
        elif c == b'"':
            q = not q
            i += 1
        else:
            out += c
            i += 1
    return bytes(out), i


def log_fields(line):
    """[(key, value)] of a text log line, in order, as log_json_fields
    reads them (a key: letters, digits, _ - . then '=')."""
    m = re.match(rb"^\S+ \S+\[\d+\] \w+: ", line)
    s = line[m.end():] if m else line
    out = []
    i = 0
    while i < len(s):
        while s[i:i + 1] == b" ":
            i += 1
        k = re.match(rb"[A-Za-z0-9_.-]+=", s[i:])
        if k:
            v, i = log_value(s, i + k.end())
            out.append((k.group(0)[:-1].decode(), v.decode("utf-8", "replace")))
        else:
            while i < len(s) and s[i:i + 1] != b" ":
                i += 1
    return out


def logged(value):
    """value as log_safe writes it: cut at 256 octets, marked by '...'."""
    b = value.encode()
    if len(b) > LOG_SAFE_MAX:
        return b[:LOG_SAFE_MAX].decode("utf-8", "replace") + "..."
    return value


def summary_lines(d, log_format):
    """{queue id: {key: value}} of the summary lines with a status."""
    raw = open(d.log_path, "rb").read()
    out = {}
    for line in raw.split(b"\n"):
        if log_format == "json":
            if not line.startswith(b"{"):
                continue
            obj = json.loads(line)          # every line is valid JSON
            if "status" in obj and "nrcpt" in obj:
                out[obj["id"]] = {k: v for k, v in obj.items()
                                  if k not in ("time", "level", "ident", "pid", "msg")}
            continue
        if b" nrcpt=" not in line or b" status=" not in line:
            continue
        fields = log_fields(line)
        keys = [k for k, _ in fields]
        assert sorted(keys) == sorted(set(keys)), \
            "a key twice in a summary line (forged field?): %r" % line
        out[dict(fields)["id"]] = dict(fields)
    return out


def check_raw_log(d):
    """Every line valid UTF-8 without control characters: C0, DEL, and
    C1 (U+0080 to U+009F; as raw octets 0x80 to 0x9f an 8-bit terminal
    reads them as controls too, 0x9b as CSI)."""
    raw = open(d.log_path, "rb").read()
    for n, line in enumerate(raw.split(b"\n"), 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise AssertionError("invalid UTF-8 (%s) in log line %d: %r"
                                 % (e.reason, n, line))
        bad = [ch for ch in text if ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f]
        assert not bad, "raw control character(s) %r in log line %d: %r" % (
            bad, n, line)
    return raw


# ---------------------------------------------------------------- the CLI

def queue_cmd(d, *args):
    r = subprocess.run([str(mxgate_bin()), "queue", "-c", d.cfg_path]
                       + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def unescape_cli(s):
    """spoolcli_put's \\xNN escapes undone."""
    return re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                  s)


# ---------------------------------------------------------------- the DSN

def unfold(v):
    """RFC 5322 2.2.3: a CRLF followed by WSP is removed, the WSP kept."""
    return re.sub(r"\r?\n(?=[ \t])", "", v)


def dsn_blocks(raw, msg):
    """The field blocks of the delivery-status part, read from the raw
    octets (RFC 3464 2.1: blocks of fields apart by blank lines):
    [[(name, unfolded value)]]."""
    bnd = msg.get_param("boundary").encode()
    for chunk in raw.split(b"\r\n--" + bnd):
        head, _, body = chunk.partition(b"\r\n\r\n")
        if not re.search(rb"(?im)^Content-Type: message/(global-)?"
                         rb"delivery-status", head):
            continue
        blocks = []
        for b in re.split(rb"\r\n\r\n", body.strip(b"\r\n")):
            fields = email.message_from_string(b.decode("utf-8") + "\r\n\r\n")
            assert not fields.get_payload().strip(), \
                "a delivery-status block with a body: %r" % b
            blocks.append([(n, unfold(v)) for n, v in fields.items()])
        return blocks
    raise AssertionError("no delivery-status part in %r" % raw)


# ---------------------------------------------------------------- files

def files_under(top):
    out = []
    for root, dirs, files in os.walk(top):
        for n in dirs + files:
            out.append(os.path.relpath(os.path.join(root, n), top))
    return out


def suspicious(names):
    return [n for n in names if any(f in n for f in NAME_FRAGMENTS)]


# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("log_format", ["text", "json"])
def test_hostile_envelope_and_headers(mx, log_format):
    before_tmp = set(os.listdir("/tmp"))
    passwd = os.stat("/etc/passwd")
    sink = mx.sink(*[a for r in SINK_RULES for a in ("--reject-rcpt", r)])
    bounces = mx.sink(name="bounces")
    d = mx.daemon(sink, sections={
        "server": {"log_format": log_format},
        "route *": {"hosts": bounces.hostport},
        "delivery": {"retry_initial": "1h", "retry_max": "2h"},
    })
    cwd = os.readlink("/proc/%d/cwd" % d.proc.pid)
    before_cwd = set(files_under(cwd)) if cwd != "/" else set()

    sent = {}           # queue id -> (helo, sender, rcpts, content)
    for i, local in enumerate(LOCALS):
        helo = HELOS[i % len(HELOS)]
        sender = "%s@%s" % (local, SENDER_DOMAIN)
        rcpts = ["%s@example.test" % local,
                 "%s@example.test" % with_word(local, "bounce"),
                 "%s@example.test" % with_word(local, "defer")]
        content = hostile_message(i, sender)
        with d.connect() as c:
            c.greeting()
            c.expect(250, "EHLO " + helo)
            c.expect(250, "MAIL FROM:<%s>%s" % (sender, " SMTPUTF8" if utf8(local) else ""))
            for r in rcpts:
                c.expect(250, "RCPT TO:<%s>" % r)
            c.expect(354, "DATA")
            c.send(dot_stuff(content) + b".\r\n")
            qid = queued_id(c.read_reply())
            c.expect(221, "QUIT")
        d.known_ids.add(qid)
        sent[qid] = (helo, sender, rcpts, content)

    # delivered downstream exactly as sent
    msgs = sink.wait_messages(len(sent), daemon=d)
    by_from = {m["mail_from"]: m for m in msgs}
    for qid, (helo, sender, rcpts, content) in sent.items():
        m = by_from.get(sender)
        assert m is not None, "nothing from %r at the sink: %r" % (
            sender, list(by_from))
        assert m["rcpts"] == [rcpts[0]], (m["rcpts"], rcpts)
        received, rest = split_received(m["eml"])
        assert rest == content
        assert qid in received
        # the HELO name, a comment's worth of it, cannot close the comment
        h = re.match(r"Received: from (\S+) \(\[127\.0\.0\.1\]\)", received)
        assert h and not set(h.group(1)) & set('()";\\'), received

    # bounced back to each sender: the addresses whole, no field injected
    dsns = bounces.wait_messages(len(sent), daemon=d)
    by_rcpt = {m["rcpts"][0]: m for m in dsns}
    for qid, (helo, sender, rcpts, content) in sent.items():
        m = by_rcpt.get(sender)
        assert m is not None, "no bounce to %r: %r" % (sender, list(by_rcpt))
        assert m["mail_from"] == "" and m["rcpts"] == [sender]
        msg = email.message_from_bytes(m["eml"], policy=email.policy.compat32)
        assert msg.get_content_type() == "multipart/report"
        to = m["eml"].split(b"\r\nTo: ", 1)[1].split(b"\r\n", 1)[0]
        assert to.decode() == "<%s>" % sender, to
        blocks = dsn_blocks(m["eml"], msg)
        names = {n.lower() for b in blocks for n, _ in b}
        assert names <= DSN_FIELDS, "unexpected fields %r" % (names - DSN_FIELDS)
        finals = [v.split(";", 1)
                  for b in blocks for n, v in b if n.lower() == "final-recipient"]
        assert len(finals) == 1, finals
        kind, addr = finals[0]
        assert kind.strip().lower() == ("utf-8" if utf8(sender) else "rfc822")
        assert addr.strip() == rcpts[1], (addr, rcpts[1])

    # the log: no raw control octet; every value decodes to what was sent
    wait_until(lambda: len(summary_lines(d, log_format)) >= len(sent), 10,
               what="summary lines")
    check_raw_log(d)
    lines = summary_lines(d, log_format)
    for qid, (helo, sender, rcpts, content) in sent.items():
        f = lines[qid]
        assert set(f) <= LOG_KEYS | {"dmarc"}, set(f) - LOG_KEYS
        assert f["status"] == "queued", f
        # the HELO name is its first word (smtp/session_cmd.c)
        word = re.split(r"[ \t]", helo)[0]
        assert f["helo"] == logged(word), (f["helo"], helo)
        assert f["from"] == "<%s>" % logged(sender), (f["from"], sender)
        assert f["to"] == logged(",".join("<%s>" % r for r in rcpts)), \
            (f["to"], rcpts)
        assert f["nrcpt"] == "3", f

    # the queue commands: the deferred recipient keeps each message queued
    d.wait_log(r"defer", count=len(sent))
    listing = json.loads(queue_cmd(d, "list", "--json"))
    by_id = {e["id"]: e for e in listing}
    for qid, (helo, sender, rcpts, content) in sent.items():
        e = by_id[qid]
        assert e["sender"] == sender
        assert [r["address"] for r in e["recipients"]] == rcpts
    text = queue_cmd(d, "list")
    seen = [0, 0]
    for line in text.split(b"\n"):
        if re.match(rb"^[0-9A-F]{16} ", line):
            seen[0] += 1
            cols = line.split(b" ")
            cols = [c for c in cols if c]
            assert len(cols) == 5, line
            sender = unescape_cli(cols[4][1:-1]).decode()
            assert sender in [s for _, s, _, _ in sent.values()], line
        elif line.startswith(b"    ") and not line.startswith(b"    hold:"):
            seen[1] += 1
            cols = line.split(b" ", 8)
            state, addr = cols[4], cols[5]
            assert state in (b"pending", b"delivered", b"failed"), line
            assert addr.startswith(b"<") and addr.endswith(b">"), line
            assert unescape_cli(addr[1:-1]).decode() in \
                [r for _, _, rs, _ in sent.values() for r in rs], line
    assert seen == [len(sent), 3 * len(sent)], (seen, text)
    for qid, (helo, sender, rcpts, content) in sent.items():
        show = queue_cmd(d, "show", qid)
        esc = sender.replace("\\", "\\x5c").encode()
        assert b"\nsender: <" + esc + b">\n" in show, (esc, show)
        for r in rcpts:
            assert b"\nrecipient: <" + r.replace("\\", "\\x5c").encode() + \
                b"> " in show, (r, show)

    # held: hold/ holds queue ids only too
    qid0 = sorted(sent)[0]
    queue_cmd(d, "hold", qid0)
    held = json.loads(queue_cmd(d, "list", "--json"))
    assert [e["held"] for e in held if e["id"] == qid0] == [True]

    # file names: queue ids only in the spool, nothing elsewhere
    names = set(files_under(d.spool))
    idre = r"[0-9A-F]{16}"
    for name in names:
        assert name in ("corrupt", "hold", "pickup", "queue", "tmp") or \
            re.fullmatch(r"(queue|hold|tmp|corrupt)/\.?%s\.(env|msg)(\.tmp|\.\d+)?"
                         % idre, name) or \
            re.fullmatch(r"pickup/(%s|FLUSH-ALL)" % idre, name), \
            "unexpected name in the spool: %r" % name
    assert {n for n in names if n.startswith("queue/")} == \
        {"queue/%s.%s" % (q, x) for q in sent if q != qid0 for x in ("env", "msg")}
    assert {n for n in names if n.startswith("hold/")} == \
        {"hold/%s.%s" % (qid0, x) for x in ("env", "msg")}
    assert not suspicious(files_under(mx.dir)), suspicious(files_under(mx.dir))
    new_tmp = set(os.listdir("/tmp")) - before_tmp
    assert not suspicious(new_tmp), suspicious(new_tmp)
    if cwd != "/":
        new_cwd = set(files_under(cwd)) - before_cwd
        assert not suspicious(new_cwd), suspicious(new_cwd)
    assert os.stat("/etc/passwd").st_mtime == passwd.st_mtime

    # and it still serves
    assert d.running()
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(221, "QUIT")


@pytest.mark.parametrize("raw,first", [
    # a CR inside a command is refused; what follows it is no command
    (b"MAIL FROM:<a@sender.test>\rRCPT TO:<root@example.test>\r\n", 500),
    (b"MAIL FROM:<a\rb@sender.test>\r\n", 500),
    (b"MAIL FROM:<\"a\rb\"@sender.test>\r\n", 500),
    # a LF ends the line: the rest is a second (broken) command, never
    # part of the address
    (b"MAIL FROM:<\"a\nb\"@sender.test>\r\n", 501),
    (b"MAIL FROM:<a@sender.test>\nRCPT TO:<\"x\ny\"@example.test>\r\n", 250),
    # other control octets
    (b"MAIL FROM:<a\x00b@sender.test>\r\n", 500),
    (b"MAIL FROM:<a\x1b[2Jb@sender.test>\r\n", 500),
    (b"HELO a\x08b\r\n", 500),
])
def test_cr_lf_injection(mx, raw, first):
    sink = mx.sink()
    d = mx.daemon(sink)
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.send(raw)
        r = c.read_reply()
        assert r.code == first, (raw, r)
        c.unread(0.5)       # the replies to the rest of the line, if any
        c.buf = b""
        # whatever state the session is in, no recipient came from the
        # injected text: DATA finds none
        try:
            c.send(b"RSET\r\n")
            c.read_reply()
            c.expect(250, "MAIL FROM:<ok@sender.test>")
            r = c.cmd("DATA")
            assert r.code in (503, 554), r
        except AssertionError:
            if not c.wait_closed(2):
                raise
    check_raw_log(d)
    assert d.spool_files("queue") == []
    assert d.running()
    with d.connect() as c:
        c.greeting()
        c.ehlo()


def test_angle_brackets_in_quoted_local_part(mx):
    """An address accepted at RCPT is one the daemon can send on (or it is
    refused at once): '>' inside a quoted local part, which would also
    forge the log's recipient list were it not quoted."""
    sink = mx.sink()
    d = mx.daemon(sink)
    rcpt = '"a>,<root@example.test"@example.test'
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        if r.code != 250:
            assert r.code in (501, 553), r      # refused at the door: fine
            return
        c.expect(354, "DATA")
        c.send(dot_stuff(hostile_message(0, "alice@sender.test")) + b".\r\n")
        qid = queued_id(c.read_reply())
    d.wait_log(r"id=%s .*status=(sent|bounced|deferred)" % qid)
    check_raw_log(d)
    assert "553 5.1.3 invalid recipient address" not in d.log(), \
        "accepted, then refused by our own SMTP client"


@pytest.mark.parametrize("helo", [b"a\x9b2Jb", b"a\xc2\x9b2Jb", b"a\xff\xfeb"])
def test_c1_controls_and_invalid_utf8_in_log(mx, helo):
    sink = mx.sink()
    d = mx.daemon(sink)
    with d.connect() as c:
        c.greeting()
        c.send(b"EHLO " + helo + b"\r\n")
        r = c.read_reply()
        if r.code == 250:           # refused at the door would be fine too
            c.expect(250, "MAIL FROM:<alice@sender.test>")
            c.expect(250, "RCPT TO:<user@example.test>")
            c.expect(354, "DATA")
            c.send(dot_stuff(hostile_message(0, "alice@sender.test")) + b".\r\n")
            queued_id(c.read_reply())
    sink.wait_messages(1 if r.code == 250 else 0, daemon=d)
    d.wait_log(r"status=queued" if r.code == 250 else r"disconnect")
    check_raw_log(d)
