"""Outbound relay through the daemon: clients in [outbound] relay_clients
send to foreign domains, their mail is DKIM-signed for its From domain
([dkim sign DOMAIN], dual RSA + Ed25519) while it streams, delivered to the
MX the test's DNS server names for the recipient domain, and the
signatures verify in dkimpy and in OpenDKIM's opendkim-testmsg. Keys come
from `mxgate dkim keygen` and are served by the same DNS server."""

import re
import subprocess

import pytest

from conftest import dot_stuff, mxgate_bin, opendkim_testmsg, queued_id
from test_dkim_cli import DKIMPY_VERIFY, dkimpy_available, keys  # noqa: F401
from test_spf import DNSServer

MSG = (b"From: Alice <alice@signer.test>\r\n"
       b"To: Bob <bob@foreign.test>\r\n"
       b"Subject: outbound\r\n"
       b"Date: Sun, 29 Nov 2026 12:00:00 +0000\r\n"
       b"Message-ID: <out-1@signer.test>\r\n"
       b"\r\n"
       b"Hello Bob,\r\n"
       b"\r\n"
       b".a line starting with a dot\r\n"
       b"  spaced   words  \r\n")


def outbound_daemon(mx, keys, sink, relay="127.0.0.1", extra=None, start=True):  # noqa: F811
    # foreign.test's MX is the sink: 127.0.0.1, at the sink's port
    keys["dns"].stop()
    zone = dict(keys["zone"])
    zone["foreign.test"] = [{"type": "MX", "pref": 10, "value": "mx1.foreign.test"}]
    zone["mx1.foreign.test"] = [{"type": "A", "value": "127.0.0.1"}]
    keys["dns"] = DNSServer(mx.dir, zone)
    sections = {
        "dns": {"servers": keys["dns"].hostport, "timeout": "1s"},
        "spf": {"check_helo": "no", "check_mailfrom": "yes", "time_budget": "5s"},
        "dkim": {"verify": "yes"},
        "outbound": {"relay_clients": relay},
        "dkim sign signer.test": {"keys": "rsa1:%s, ed1:%s" % (keys["rsa"], keys["ed"])},
        "delivery": {"mx_port": str(sink.port)},
    }
    for sec, kv in (extra or {}).items():
        sections.setdefault(sec, {}).update(kv)
    return mx.daemon(sink, sections=sections, start=start)


def send(d, content, rcpts=("bob@foreign.test",), sender="alice@signer.test"):
    with d.connect() as c:
        c.greeting()
        c.ehlo("exchange.signer.test")
        c.expect(250, "MAIL FROM:<%s>" % sender)
        for r in rcpts:
            rr = c.cmd("RCPT TO:<%s>" % r)
            if rr.code != 250:
                return rr
        c.expect(354, "DATA")
        c.send(dot_stuff(content) + b".\r\n")
        return c.read_reply()


def dkimpy_verify(keys, eml):  # noqa: F811
    recs = ["%s=%s" % (n, v[0]["value"][0]) for n, v in keys["zone"].items()
            if "_domainkey" in n]
    py = subprocess.run(["/usr/bin/python3", "-c", DKIMPY_VERIFY] + recs,
                        input=eml, capture_output=True, timeout=60)
    assert py.returncode == 0, py.stderr
    return py.stdout.decode().split()


def test_relay_client_mail_is_dual_signed(mx, keys):  # noqa: F811
    sink = mx.sink()
    d = outbound_daemon(mx, keys, sink)
    r = send(d, MSG)
    assert r.code == 250, r
    qid = queued_id(r)
    eml = sink.wait_messages(1)[0]["eml"]
    sigs = re.findall(rb"(?m)^DKIM-Signature:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", eml)
    assert len(sigs) == 2, eml[:1500]
    assert b"a=rsa-sha256" in sigs[0] and b"s=rsa1" in sigs[0], sigs[0]
    assert b"a=ed25519-sha256" in sigs[1] and b"s=ed1" in sigs[1], sigs[1]
    for s in sigs:
        assert b"d=signer.test" in s and b"c=relaxed/relaxed" in s
        assert b" l=" not in s and b";l=" not in s
        # From, To, Subject, Date and Message-ID over-signed
        h = re.search(rb"h=([^;]*);", s).group(1).replace(b"\r\n\t", b"").replace(b" ", b"")
        assert h.split(b":").count(b"from") == 2, h
    # outbound mail carries no Authentication-Results or Received-SPF of ours
    assert b"Authentication-Results: mx.example.test" not in eml
    assert b"Received-SPF:" not in eml
    assert eml.endswith(MSG)
    if dkimpy_available():
        assert dkimpy_verify(keys, eml) == ["pass", "pass"]
    line = [ln for ln in d.log().splitlines() if "id=%s" % qid in ln and "status=" in ln]
    assert line and "direction=outbound" in line[0], line
    assert "dkim_sign=signer.test:rsa1:rsa-sha256,signer.test:ed1:ed25519-sha256" in line[0]
    # delivered by MX lookup
    assert re.search(r"id=%s to=<bob@foreign.test> relay=mx1\.foreign\.test\[127\.0\.0\.1\]"
                     % qid, d.log()), d.log()[-2000:]


def test_opendkim_verifies_relayed_signatures(mx, keys):  # noqa: F811
    sink = mx.sink()
    d = outbound_daemon(mx, keys, sink)
    assert send(d, MSG).code == 250
    eml = sink.wait_messages(1)[0]["eml"]
    # one signature per run: opendkim-testmsg checks the first one only
    first, second = [m.start() for m in re.finditer(rb"(?m)^DKIM-Signature:", eml)]
    only_rsa = eml[:second] + eml[eml.index(b"\r\nFrom:") + 2:]
    only_ed = eml[second:]
    r = opendkim_testmsg(mx.dir, keys["dns"].zone_path, {
        "rsa": only_rsa, "ed": only_ed,
        "bad": only_rsa.replace(b"Hello Bob", b"Hello Eve")})
    assert "rsa=0" in r.stdout, (r.stdout, r.stderr)
    assert "bad=0" not in r.stdout, (r.stdout, r.stderr)
    # an OpenDKIM without Ed25519 support says so; ours is 2.11 (has it)
    assert "ed=0" in r.stdout or "ed25519" in r.stderr.lower(), (r.stdout, r.stderr)


def test_no_key_relays_unsigned(mx, keys):  # noqa: F811
    sink = mx.sink()
    d = outbound_daemon(mx, keys, sink)
    other = MSG.replace(b"alice@signer.test", b"carol@nokey.test")
    r = send(d, other, sender="carol@nokey.test")
    assert r.code == 250, r
    eml = sink.wait_messages(1)[0]["eml"]
    assert b"DKIM-Signature:" not in eml
    assert "dkim_sign=none:no-key-for-nokey.test" in d.log()


def test_untrusted_client_cannot_relay(mx, keys):  # noqa: F811
    sink = mx.sink()
    d = outbound_daemon(mx, keys, sink, relay="192.0.2.1")
    r = send(d, MSG)
    assert r.code == 550 and "5.7.1" in r.text, r
    sink_msgs = sink.messages()
    assert sink_msgs == [], sink_msgs
    assert "relay refused" in d.log()


def test_relay_client_mail_for_local_domain_is_inbound(mx, keys):  # noqa: F811
    """Hybrid: the same host forwards inbound mail; mail only for
    accepted domains is treated as inbound (verified, stamped), not
    signed."""
    sink = mx.sink()
    d = outbound_daemon(mx, keys, sink)
    r = send(d, MSG, rcpts=("user@example.test",))
    assert r.code == 250, r
    eml = sink.wait_messages(1)[0]["eml"]
    assert b"DKIM-Signature:" not in eml
    assert b"Authentication-Results: mx.example.test" in eml


def test_missing_key_file_is_a_configuration_error(mx, keys):  # noqa: F811
    sink = mx.sink()
    d = outbound_daemon(mx, keys, sink, start=False, extra={
        "dkim sign other.test": {"keys": "s1:/nonexistent/key.pem"}})
    r = subprocess.run([str(mxgate_bin()), "config", "check", "-c", d.cfg_path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "[dkim sign other.test] keys" in r.stderr + r.stdout, r.stderr


def test_mail_loop_refused(mx, keys):  # noqa: F811
    """RFC 5321 6.3: more than 50 Received fields is a loop, refused for
    good; 50 is still accepted."""
    sink = mx.sink()
    d = outbound_daemon(mx, keys, sink)
    hop = b"Received: from a.test ([192.0.2.1]) by b.test; Sun, 29 Nov 2026 12:00:00 +0000\r\n"
    r = send(d, hop * 51 + MSG)
    assert r.code == 554 and "5.4.6" in r.text, r
    r = send(d, hop * 50 + MSG)
    assert r.code == 250, r
    assert len(sink.wait_messages(1)) == 1
    assert "mail loop: 51 hops" in d.log()


@pytest.mark.parametrize("eol", [b"\n", b"\r"])
def test_bare_line_ends_from_relay_clients_become_crlf(mx, keys, eol):  # noqa: F811
    """RFC 5321 2.3.8: a trusted submitter's stray LF or CR is written as
    CRLF before the message is signed and stored, so the next hop sees CRLF
    only and both signatures verify there. (From the Internet the same
    content is refused: test_smuggling.py.)"""
    sink = mx.sink()
    d = outbound_daemon(mx, keys, sink)
    body = b"line one" + eol + b"line two" + eol + b".dot line\r\nlast\r\n"
    with d.connect() as c:
        c.greeting()
        c.ehlo("exchange.signer.test")
        c.expect(250, "MAIL FROM:<alice@signer.test>")
        c.expect(250, "RCPT TO:<bob@foreign.test>")
        c.expect(354, "DATA")
        c.send(dot_stuff(MSG) + body + b".\r\n")   # no unstuffing after
        # a bare line end: ".dot line" stays as sent
        queued_id(c.read_reply())
    eml = sink.wait_messages(1)[0]["eml"]
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", eml) is None, eml[-200:]
    assert eml.endswith(MSG + b"line one\r\nline two\r\n.dot line\r\nlast\r\n"), \
        eml[-200:]
    if dkimpy_available():
        assert dkimpy_verify(keys, eml) == ["pass", "pass"]
    d.wait_log(r"bare CR or LF in the content written as CRLF", timeout=5)
