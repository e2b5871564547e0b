"""DKIM interoperability: messages signed by dkimpy (Debian python3-dkim)
verified by mxgate's engine, and messages signed by mxgate verified by
dkimpy and by OpenDKIM's opendkim-testmsg when installed. Keys are served
by tests/tools/dnsserver.py; mxgate's side is tests/tools/dkimtool.c,
built here against the sanitizer library:

    cc -I. -D_GNU_SOURCE -fsanitize=address,undefined -o build-san/dkimtool \\
        tests/tools/dkimtool.c build-san/libmxgate.a \\
        $(pkg-config --cflags --libs libevent openssl libcares libpsl inih) \\
        -lpthread
"""

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import PYTHON, REPO, spawn

HERE = os.path.dirname(os.path.abspath(__file__))
DNSSERVER = os.path.join(HERE, "..", "tools", "dnsserver.py")
BUILD = REPO / os.environ.get("MXGATE_BUILD", "build-san")
TESTDATA = REPO / ".." / "shared" / "conformance" / "dkimpy-testdata"
TOOL = BUILD / "dkimtool"

MESSAGE = (b"From: Joe SixPack <joe@football.example.com>\r\n"
           b"To: Suzie Q <suzie@shopping.example.net>\r\n"
           b"Subject: Is dinner ready?\r\n"
           b"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
           b"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
           b"\r\n"
           b"Hi.\r\n"
           b"\r\n"
           b"We  lost the game.\t Are you hungry yet?  \r\n"
           b"\r\n"
           b"Joe.\r\n"
           b"\r\n")

try:
    import dkim  # noqa: E402
except ImportError:
    dkim = None

needs_dkimpy = pytest.mark.skipif(
    dkim is None, reason="dkimpy missing: apt-get install -y python3-dkim")


@pytest.fixture(scope="module")
def tool():
    lib = BUILD / "libmxgate.a"
    if not lib.exists():
        pytest.skip("%s missing: run make SAN=1 first" % lib)
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "libevent", "openssl", "libcares",
         "libpsl", "inih"], capture_output=True, text=True, check=True).stdout.split()
    san = ["-fsanitize=address,undefined"] if "san" in BUILD.name else []
    cmd = (["cc", "-I.", "-D_GNU_SOURCE", "-g"] + san +
           ["-o", str(TOOL), "tests/tools/dkimtool.c", str(lib)] + flags + ["-lpthread"])
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("building dkimtool failed: %s" % r.stderr)
    return TOOL


class Keys:
    """RSA and Ed25519 keys in PEM, their TXT records, a DNS server."""

    def __init__(self, tmp):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
        self.tmp = tmp
        rk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ek = ed25519.Ed25519PrivateKey.generate()
        self.rsa_pem = rk.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption())
        self.ed_pem = ek.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        # dkimpy signs ed25519 with the raw seed, base64
        self.ed_seed = base64.b64encode(ek.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
            serialization.NoEncryption()))
        rsa_pub = base64.b64encode(rk.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
        ed_pub = base64.b64encode(ek.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
        self.records = {
            "rsa._domainkey.example.com": "v=DKIM1; k=rsa; p=" + rsa_pub,
            "ed._domainkey.example.com": "v=DKIM1; k=ed25519; p=" + ed_pub,
            "revoked._domainkey.example.com": "v=DKIM1; k=rsa; p=",
        }
        for name, pem in (("rsa.pem", self.rsa_pem), ("ed.pem", self.ed_pem)):
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(pem)
        zone = {n: [{"type": "TXT", "value": v}] for n, v in self.records.items()}
        self.zone_path = os.path.join(tmp, "zone.json")
        with open(self.zone_path, "w") as f:
            json.dump(zone, f)
        # spawn: killed with pytest whatever happens (conftest)
        self.proc = spawn(
            [PYTHON, DNSSERVER, "--port", "0", "--zone", self.zone_path],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        m = re.match(r"LISTENING (\d+)", self.proc.stdout.readline() or "")
        if not m:
            self.stop()
            pytest.fail("dnsserver did not start")
        self.port = int(m.group(1))

    def dnsfunc(self, name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        v = self.records.get(n.rstrip("."))
        return v.encode() if v is not None else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


@pytest.fixture(scope="module")
def keys():
    tmp = tempfile.mkdtemp(prefix="mxgate-dkim-")
    k = Keys(tmp)
    yield k
    k.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def mx_verify(tool, keys, msg):
    path = os.path.join(keys.tmp, "msg.eml")
    with open(path, "wb") as f:
        f.write(msg)
    r = subprocess.run([str(tool), "verify", "--dns", "127.0.0.1:%d" % keys.port, path],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r.stdout.splitlines()


def mx_sign(tool, keys, kind, msg, extra=()):
    path = os.path.join(keys.tmp, "in.eml")
    with open(path, "wb") as f:
        f.write(msg)
    r = subprocess.run([str(tool), "sign", "--key", os.path.join(keys.tmp, kind + ".pem"),
                        "-d", "example.com", "-s", kind] + list(extra) + [path],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


CANONS = [(h, b) for h in (b"simple", b"relaxed") for b in (b"simple", b"relaxed")]


@needs_dkimpy
@pytest.mark.parametrize("alg", ["rsa", "ed"])
@pytest.mark.parametrize("canon", CANONS, ids=lambda c: b"/".join(c).decode())
@pytest.mark.parametrize("length", [False, True], ids=["nol", "l"])
def test_dkimpy_signs_mxgate_verifies(tool, keys, alg, canon, length):
    key = keys.rsa_pem if alg == "rsa" else keys.ed_seed
    sig = dkim.sign(MESSAGE, alg.encode(), b"example.com", key,
                    canonicalize=canon, length=length,
                    signature_algorithm=b"rsa-sha256" if alg == "rsa" else b"ed25519-sha256",
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    signed = sig + MESSAGE
    assert dkim.verify(signed, dnsfunc=keys.dnsfunc)
    lines = mx_verify(tool, keys, signed)
    assert len(lines) == 1 and lines[0].startswith("pass "), lines
    assert "partial=0" in lines[0]
    # a changed body byte breaks it
    bad = signed.replace(b"We  lost", b"We  won")
    assert mx_verify(tool, keys, bad)[0].startswith("fail "), bad
    if length:
        # text past l= is tolerated but reported
        more = signed + b"P.S. unsigned\r\n"
        line = mx_verify(tool, keys, more)[0]
        assert line.startswith("pass ") and "partial=1" in line, line
    if canon[0] == b"relaxed":
        ws = signed.replace(b"Subject: Is dinner", b"Subject:  Is   dinner")
        assert mx_verify(tool, keys, ws)[0].startswith("pass ")
    else:
        ws = signed.replace(b"Subject: Is dinner", b"Subject:  Is dinner")
        assert mx_verify(tool, keys, ws)[0].startswith("fail ")


@needs_dkimpy
def test_dkimpy_two_signatures_and_revoked(tool, keys):
    s1 = dkim.sign(MESSAGE, b"rsa", b"example.com", keys.rsa_pem,
                   canonicalize=(b"relaxed", b"relaxed"))
    s2 = dkim.sign(MESSAGE, b"revoked", b"example.com", keys.rsa_pem,
                   canonicalize=(b"relaxed", b"relaxed"))
    lines = mx_verify(tool, keys, s2 + s1 + MESSAGE)
    assert lines[0].startswith("permerror ") and "revoked" in lines[0], lines
    assert lines[1].startswith("pass "), lines


@needs_dkimpy
@pytest.mark.parametrize("alg", ["rsa", "ed"])
@pytest.mark.parametrize("oversign", [False, True])
def test_mxgate_signs_dkimpy_verifies(tool, keys, alg, oversign):
    signed = mx_sign(tool, keys, alg, MESSAGE, ["--oversign"] if oversign else [])
    assert signed.startswith(b"DKIM-Signature: ")
    assert b"l=" not in signed.split(b"\r\n\r\n")[0].split(b"From:")[0]
    assert dkim.verify(signed, dnsfunc=keys.dnsfunc)
    assert mx_verify(tool, keys, signed)[0].startswith("pass ")
    if oversign:
        # an added Subject breaks an over-signed signature
        extra = signed.replace(b"\r\n\r\n", b"\r\nSubject: another\r\n\r\n", 1)
        assert not dkim.verify(extra, dnsfunc=keys.dnsfunc)
        assert mx_verify(tool, keys, extra)[0].startswith("fail ")


@needs_dkimpy
def test_mxgate_signs_dkimpy_testdata(tool, keys):
    path = TESTDATA / "message.mbox"
    if not path.exists():
        pytest.skip("%s absent" % path)
    msg = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    signed = mx_sign(tool, keys, "rsa", msg)
    assert dkim.verify(signed, dnsfunc=keys.dnsfunc)


def test_opendkim_signs_mxgate_verifies(tool, keys):
    """OpenDKIM's opendkim-testmsg verifies only through the system
    resolver (no way to point it at the test DNS server), so the OpenDKIM
    direction checked here is: OpenDKIM signs, mxgate verifies. Its test
    signer always uses rsa-sha1 for RSA keys: RFC 8301 says that must
    not pass, and mxgate answers neutral."""
    testmsg = shutil.which("opendkim-testmsg") or (
        "/usr/sbin/opendkim-testmsg" if os.path.exists("/usr/sbin/opendkim-testmsg") else None)
    if testmsg is None:
        pytest.skip("opendkim-testmsg missing: apt-get install -y opendkim-tools")
    for alg in ("rsa", "ed"):
        r = subprocess.run([testmsg, "-d", "example.com", "-s", alg,
                            "-k", os.path.join(keys.tmp, alg + ".pem")],
                           input=MESSAGE.replace(b"\r\n", b"\n"),
                           capture_output=True, timeout=30)
        if r.returncode != 0 and alg == "ed":
            continue  # an OpenDKIM built without ed25519
        assert r.returncode == 0, r.stderr
        signed = r.stdout.replace(b"\r\n", b"\n")
        assert signed.startswith(b"DKIM-Signature:"), signed[:200]
        lines = mx_verify(tool, keys, signed)
        if b"a=rsa-sha1" in signed:
            assert lines[0].startswith("neutral ") and "rsa-sha1" in lines[0], lines
            continue
        assert lines[0].startswith("pass "), (alg, lines, signed[:600])
        bad = signed.replace(b"Hi.", b"Ho.")
        assert mx_verify(tool, keys, bad)[0].startswith("fail ")
