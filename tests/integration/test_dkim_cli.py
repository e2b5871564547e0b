"""The DKIM command line: keygen, sign (single and dual), and check
message printing Authentication-Results, against keys served by a real
DNS server; cross-checked with dkimpy (Debian python3-dkim)."""

import os
import re
import subprocess

import pytest

from conftest import mxgate_bin, opendkim_testmsg
from test_spf import DNSServer

MSG = (b"From: Alice <alice@signer.test>\r\n"
       b"To: bob@example.test\r\n"
       b"Subject: DKIM from the command line\r\n"
       b"Date: Sun, 29 Nov 2026 12:00:00 +0000\r\n"
       b"Message-ID: <cli-1@signer.test>\r\n"
       b"\r\n"
       b"Hello Bob,\r\n"
       b"\r\n"
       b".a line starting with a dot\r\n"
       b"regards\r\n")


def run(*args, data=None):
    return subprocess.run([str(mxgate_bin())] + list(args), input=data,
                          capture_output=True, timeout=120)


def keygen(workdir, sel, typ):
    key = os.path.join(workdir, sel + ".pem")
    r = run("dkim", "keygen", "--domain", "signer.test", "--selector", sel,
            "--type", typ, "--out", key)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert out.startswith("%s._domainkey.signer.test. IN TXT (" % sel), out
    txt = "".join(re.findall(r'"([^"]*)"', out))
    assert txt.startswith("v=DKIM1; k=%s; p=" % typ), txt
    assert os.stat(key).st_mode & 0o777 == 0o600
    return key, txt


@pytest.fixture
def keys(mx):
    rsa_key, rsa_txt = keygen(mx.dir, "rsa1", "rsa")
    ed_key, ed_txt = keygen(mx.dir, "ed1", "ed25519")
    zone = {
        "rsa1._domainkey.signer.test": [{"type": "TXT", "value": [rsa_txt]}],
        "ed1._domainkey.signer.test": [{"type": "TXT", "value": [ed_txt]}],
        "signer.test": [{"type": "TXT", "value": ["v=spf1 ip4:192.0.2.0/24 -all"]}],
    }
    dns = DNSServer(mx.dir, zone)
    k = {"rsa": rsa_key, "ed": ed_key, "dns": dns, "zone": zone}
    yield k
    # a test may have replaced the server (test_outbound.py): stop both
    k["dns"].stop()
    dns.stop()


def check(keys, message, ip="192.0.2.5"):
    r = run("check", "message", "--ip", ip, "--sender", "alice@signer.test",
            "--helo", "mail.signer.test", "--dns", keys["dns"].hostport,
            "--authserv-id", "mx.example.test", data=message)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert out.startswith("Authentication-Results: mx.example.test;"), out
    return out


def test_dual_sign_and_verify(keys):
    r = run("dkim", "sign", "--domain", "signer.test",
            "--selector", "rsa1", "--key", keys["rsa"],
            "--selector", "ed1", "--key", keys["ed"], "--algorithm", "ed25519-sha256",
            data=MSG)
    assert r.returncode == 0, r.stderr
    signed = r.stdout
    assert signed.count(b"DKIM-Signature:") == 2
    assert signed.endswith(MSG)
    ar = check(keys, signed)
    assert "spf=pass" in ar
    assert len(re.findall(r"dkim=pass[^;]* header\.d=signer\.test", ar)) == 2, ar
    assert "header.a=rsa-sha256" in ar and "header.a=ed25519-sha256" in ar, ar

    # one changed body byte breaks both
    tampered = signed.replace(b"Hello Bob", b"Hello Rob")
    ar = check(keys, tampered, ip="198.51.100.1")
    assert "spf=fail" in ar
    assert len(re.findall(r"dkim=fail", ar)) == 2, ar


def test_unsigned_message(keys):
    ar = check(keys, MSG)
    assert "dkim=none" in ar, ar


def test_algorithm_mismatch_refused(keys):
    r = run("dkim", "sign", "--domain", "signer.test", "--selector", "rsa1",
            "--key", keys["rsa"], "--algorithm", "ed25519-sha256", data=MSG)
    assert r.returncode != 0
    assert b"not ed25519-sha256" in r.stderr


def dkimpy_available():
    return subprocess.run(["/usr/bin/python3", "-c", "import dkim"],
                          capture_output=True).returncode == 0


DKIMPY_VERIFY = r"""
import sys, dkim
txt = {}
for line in sys.argv[1:]:
    name, rec = line.split("=", 1)
    txt[name.encode()] = rec.encode()
def dnsfunc(name, timeout=5):
    return txt.get(name.rstrip(b"."), None)
msg = sys.stdin.buffer.read()
d = dkim.DKIM(msg)
ok = []
for i in range(msg.count(b"DKIM-Signature:")):
    ok.append(bool(d.verify(idx=i, dnsfunc=dnsfunc)))
print(" ".join("pass" if x else "fail" for x in ok))
"""


def test_dkimpy_verifies_mxgate_signatures(keys):
    if not dkimpy_available():
        pytest.skip("python3-dkim (dkimpy) not installed")
    r = run("dkim", "sign", "--domain", "signer.test",
            "--selector", "rsa1", "--key", keys["rsa"],
            "--selector", "ed1", "--key", keys["ed"], data=MSG)
    assert r.returncode == 0, r.stderr
    recs = ["%s=%s" % (n, v[0]["value"][0]) for n, v in keys["zone"].items()
            if "_domainkey" in n]
    py = subprocess.run(["/usr/bin/python3", "-c", DKIMPY_VERIFY] + recs,
                        input=r.stdout, capture_output=True, timeout=60)
    assert py.returncode == 0, py.stderr
    assert py.stdout.decode().split() == ["pass", "pass"], py.stdout


DKIMPY_SIGN = r"""
import sys, dkim
key = open(sys.argv[1], "rb").read()      # RSA PEM, or base64 Ed25519 seed
sel, canon, alg = sys.argv[2].encode(), sys.argv[3], sys.argv[4].encode()
c = tuple(x.encode() for x in canon.split("/"))
msg = sys.stdin.buffer.read()
sig = dkim.sign(msg, sel, b"signer.test", key, canonicalize=c,
                signature_algorithm=alg, include_headers=[b"from", b"to", b"subject"])
sys.stdout.buffer.write(sig + msg)
"""


@pytest.mark.parametrize("canon", ["simple/simple", "simple/relaxed",
                                   "relaxed/simple", "relaxed/relaxed"])
@pytest.mark.parametrize("which", ["rsa", "ed"])
def test_mxgate_verifies_dkimpy_signatures(keys, canon, which):
    if not dkimpy_available():
        pytest.skip("python3-dkim (dkimpy) not installed")
    sel, alg = ("rsa1", "rsa-sha256") if which == "rsa" else ("ed1", "ed25519-sha256")
    keyfile = keys[which]
    if which == "ed":
        # dkimpy (PyNaCl) takes the raw 32-octet seed in base64: the last
        # 32 octets of the PKCS#8 DER form of our PEM key
        der = subprocess.run(["openssl", "pkey", "-in", keyfile, "-outform", "DER"],
                             capture_output=True, check=True).stdout
        keyfile = keyfile + ".seed"
        import base64
        with open(keyfile, "wb") as f:
            f.write(base64.b64encode(der[-32:]))
    py = subprocess.run(["/usr/bin/python3", "-c", DKIMPY_SIGN, keyfile, sel,
                         canon, alg], input=MSG, capture_output=True, timeout=60)
    assert py.returncode == 0, py.stderr
    ar = check(keys, py.stdout)
    assert re.search(r"dkim=pass[^;]* header\.d=signer\.test", ar), ar


# ---- in the daemon: verified while the message streams in, stamped

def sign(keys, message, domain="signer.test"):
    r = run("dkim", "sign", "--domain", domain, "--selector", "rsa1",
            "--key", keys["rsa"], "--selector", "ed1", "--key", keys["ed"],
            data=message)
    assert r.returncode == 0, r.stderr
    return r.stdout


def dkim_daemon(mx, keys, sink):
    return mx.daemon(sink, sections={
        "dns": {"servers": keys["dns"].hostport, "timeout": "1s"},
        "spf": {"check_helo": "yes", "check_mailfrom": "yes", "time_budget": "5s"},
        "dkim": {"verify": "yes"},
    })


def deliver(d, content, sender="alice@signer.test"):
    from conftest import dot_stuff, queued_id
    with d.connect() as c:
        c.greeting()
        c.ehlo("mail.signer.test")
        c.expect(250, "MAIL FROM:<%s>" % sender)
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(dot_stuff(content) + b".\r\n")
        return queued_id(c.read_reply())


def test_daemon_stamps_authentication_results(mx, keys):
    sink = mx.sink()
    d = dkim_daemon(mx, keys, sink)
    signed = sign(keys, MSG)
    qid = deliver(d, signed)
    deliver(d, signed.replace(b"Hello Bob", b"Hello Rob"))
    deliver(d, MSG)
    msgs = sink.wait_messages(3)

    def pick(pred):
        found = [m for m in msgs if pred(m["eml"])]
        assert len(found) == 1
        return found[0]
    # delivery order is not arrival order: tell them apart by content
    msgs = [pick(lambda e: b"Hello Bob" in e and b"DKIM-Signature" in e),
            pick(lambda e: b"Hello Rob" in e),
            pick(lambda e: b"DKIM-Signature" not in e)]
    first = [m["eml"].decode(errors="replace") for m in msgs]
    for eml in first:
        assert eml.startswith("Authentication-Results: mx.example.test;"), eml[:400]
    ar = [e.split("\r\nReceived-SPF:", 1)[0] for e in first]
    # 127.0.0.1 is not in signer.test's SPF record: spf=fail, DKIM decides
    assert "spf=fail" in ar[0] and "smtp.mailfrom=alice@signer.test" in ar[0], ar[0]
    assert len(re.findall(r"dkim=pass[^;]* header\.d=signer\.test", ar[0])) == 2, ar[0]
    assert len(re.findall(r"dkim=fail", ar[1])) == 2, ar[1]
    assert "dkim=none" in ar[2], ar[2]
    # the content below our headers is what the client sent
    assert msgs[0]["eml"].endswith(signed)
    assert re.search(r"id=%s .* dkim=pass:signer\.test,pass:signer\.test " % qid,
                     d.log()), d.log()


def test_daemon_dkim_key_timeout_is_temperror(mx, keys):
    sink = mx.sink()
    d = dkim_daemon(mx, keys, sink)
    signed = sign(keys, MSG, domain="signer.timeout")
    deliver(d, signed)
    eml = sink.wait_messages(1)[0]["eml"].decode(errors="replace")
    ar = eml.split("\r\nReceived-SPF:", 1)[0]
    assert len(re.findall(r"dkim=temperror", ar)) == 2, ar


def test_forged_authentication_results_removed(mx, keys):
    """RFC 8601 5: an Authentication-Results field that claims our
    authserv-id arrived from outside: it is removed; others stay."""
    sink = mx.sink()
    d = dkim_daemon(mx, keys, sink)
    forged = (b"Authentication-Results: mx.example.test; dkim=pass header.d=bank.test\r\n"
              b"Authentication-Results: other.test;\r\n\tspf=pass smtp.mailfrom=x@other.test\r\n"
              b"authentication-results:  (comment) MX.EXAMPLE.TEST; spf=pass\r\n")
    deliver(d, forged + MSG)
    eml = sink.wait_messages(1)[0]["eml"]
    text = eml.decode(errors="replace")
    # only ours is left, on top
    assert len(re.findall(r"(?i)^authentication-results:[^;]*mx\.example\.test",
                          text, re.M)) == 1, text[:800]
    assert text.startswith("Authentication-Results: mx.example.test;")
    assert "header.d=bank.test" not in text
    assert "Authentication-Results: other.test;\r\n\tspf=pass smtp.mailfrom=x@other.test\r\n" in text
    assert eml.endswith(MSG)        # the rest of the header and the body as sent
    assert "removed a forged Authentication-Results" in d.log()


def test_header_only_message_and_no_blank_line(mx, keys):
    sink = mx.sink()
    d = dkim_daemon(mx, keys, sink)
    content = b"From: a@signer.test\r\nSubject: header only\r\n"
    deliver(d, content)
    eml = sink.wait_messages(1)[0]["eml"]
    assert eml.endswith(content), eml


OD_MSG = (b"From: Joe <joe@signer.test>\r\nTo: bob@example.test\r\n"
          b"Subject: to OpenDKIM\r\nDate: Fri, 11 Jul 2003 21:00:37 -0700\r\n"
          b"Message-ID: <od-1@signer.test>\r\n\r\nHi.\r\n\r\nWe  lost the game.\r\n")


def test_opendkim_verifies_mxgate_signatures(mx, keys):
    """OpenDKIM's opendkim-testmsg only uses the system resolver: run it in
    a private mount+network namespace where /etc/resolv.conf points at the
    test's DNS server on 127.0.0.1:53 of that namespace's own loopback."""
    signed = sign(keys, OD_MSG)
    r = opendkim_testmsg(mx.dir, keys["dns"].zone_path,
                         {"good": signed, "bad": signed.replace(b"Hi.", b"Ho.")})
    assert "good=0" in r.stdout, (r.stdout, r.stderr)
    assert "bad=0" not in r.stdout and "Bad signature" in r.stderr, (r.stdout, r.stderr)
