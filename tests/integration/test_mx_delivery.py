"""Delivery by MX lookup (RFC 5321 5.1, RFC 7505) and the TLS policy of a
route (opportunistic, required, verify), against a real DNS server
(tests/tools/dnsserver.py) whose zone names sinks on 127.0.0.x, all on one
port that the daemon uses as [delivery] mx_port.

Accepted domains are routed with `[route DOMAIN] hosts = mx`; bounces go to
the sender's domain, which has no route at all: that is the route-less path
(delivery by MX for any domain without a [route])."""

import json
import os
import random
import re
import shutil
import socket
import subprocess

import pytest

from conftest import DOMAIN, HOSTNAME, make_message, queued_id, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
DNSSERVER = os.path.join(HERE, "..", "tools", "dnsserver.py")

MX1, MX2, MX3 = "127.0.0.2", "127.0.0.3", "127.0.0.4"


# the DNS server and its fixture are test_spf.py's
from test_spf import DNSServer, dns  # noqa: E402,F401


def common_port():
    """A port free on all the sink addresses at once."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((MX1, 0))
            port = s.getsockname()[1]
        ok = True
        for host in (MX2, MX3):
            with socket.socket() as s:
                try:
                    s.bind((host, port))
                except OSError:
                    ok = False
        if ok:
            return port
    pytest.fail("no port free on %s, %s and %s" % (MX1, MX2, MX3))


def a(ip):
    return {"type": "A", "value": ip}


def mxrr(pref, host):
    return {"type": "MX", "pref": pref, "value": host}


def mx_daemon(mx, dnsserver, port, route=None, domains=(DOMAIN,), sections=None):
    """A daemon whose accepted domains go by MX (route: extra keys of
    their [route]), with mx_port = port."""
    secs = {
        "dns": {"servers": dnsserver.hostport, "timeout": "1s"},
        "domains": {"accept": ", ".join(domains)},
        "delivery": {"mx_port": str(port)},
    }
    for d in domains:
        secs["route " + d] = dict({"hosts": "mx"}, **(route or {}))
    for k, v in (sections or {}).items():
        secs.setdefault(k, {}).update(v)
    return mx.daemon(sections=secs)


def send(d, rcpt, sender="alice@sender.test", subject="mx"):
    with d.connect() as c:
        c.greeting()
        qid = queued_id(c.send_message(sender, [rcpt], make_message(
            subject, sender=sender, to=rcpt)))
        c.expect(221, "QUIT")
    d.known_ids.add(qid)
    return qid


def status_lines(d, qid, status):
    return [l for l in d.log().splitlines()
            if "id=%s to=" % qid in l and " status=%s " % status in l]


# ---------------------------------------------------------------- routing

def test_lowest_preference_gets_the_mail(mx, dns):
    port = common_port()
    z = dns({DOMAIN: [mxrr(20, "mx2." + DOMAIN), mxrr(10, "mx1." + DOMAIN)],
             "mx1." + DOMAIN: [a(MX1)], "mx2." + DOMAIN: [a(MX2)],
             "other.test": [mxrr(10, "mx2." + DOMAIN), mxrr(20, "mx1." + DOMAIN)]})
    s1 = mx.sink(host=MX1, port=port)
    s2 = mx.sink(host=MX2, port=port)
    d = mx_daemon(mx, z, port, domains=(DOMAIN, "other.test"))
    q1 = send(d, "user@" + DOMAIN)
    s1.wait_messages(1, daemon=d)
    q2 = send(d, "user@other.test")
    s2.wait_messages(1, daemon=d)
    d.wait_queue_empty()
    assert [m["rcpts"] for m in s1.messages()] == [["user@" + DOMAIN]]
    assert [m["rcpts"] for m in s2.messages()] == [["user@other.test"]]
    assert status_lines(d, q1, "sent")[0].find(
        "relay=mx1.%s[%s]:%d " % (DOMAIN, MX1, port)) > 0, d.log()
    assert status_lines(d, q2, "sent")[0].find(
        "relay=mx2.%s[%s]:%d " % (DOMAIN, MX2, port)) > 0, d.log()


def test_next_mx_when_the_first_refuses(mx, dns):
    port = common_port()
    z = dns({DOMAIN: [mxrr(10, "mx1." + DOMAIN), mxrr(20, "mx2." + DOMAIN)],
             "mx1." + DOMAIN: [a(MX1)], "mx2." + DOMAIN: [a(MX2)]})
    s2 = mx.sink(host=MX2, port=port)        # nothing listens on MX1
    d = mx_daemon(mx, z, port)
    qid = send(d, "user@" + DOMAIN)
    s2.wait_messages(1, daemon=d)
    d.wait_queue_empty()
    log = d.log()
    assert re.search(r"id=%s route=%s host=mx1\.%s\[%s\]:%d connection failed: "
                     r"\"connect: Connection refused\"" % (qid, re.escape(DOMAIN),
                                                      re.escape(DOMAIN), MX1, port),
                     log), log
    assert "relay=mx2.%s[%s]:%d status=sent" % (DOMAIN, MX2, port) in log


def test_next_mx_after_a_4xx_greeting(mx, dns):
    port = common_port()
    z = dns({DOMAIN: [mxrr(10, "mx1." + DOMAIN), mxrr(20, "mx2." + DOMAIN)],
             "mx1." + DOMAIN: [a(MX1)], "mx2." + DOMAIN: [a(MX2)]})
    s1 = mx.sink("--greeting", "421 4.3.2 not now", host=MX1, port=port)
    s2 = mx.sink(host=MX2, port=port)
    d = mx_daemon(mx, z, port)
    send(d, "user@" + DOMAIN)
    s2.wait_messages(1, daemon=d)
    assert s1.messages() == []
    assert "greeting: 421 4.3.2 not now" in d.log()


def test_no_mx_falls_back_to_the_address(mx, dns):
    port = common_port()
    z = dns({DOMAIN: [a(MX2)]})
    s2 = mx.sink(host=MX2, port=port)
    d = mx_daemon(mx, z, port)
    qid = send(d, "user@" + DOMAIN)
    s2.wait_messages(1, daemon=d)
    assert "relay=%s[%s]:%d status=sent" % (DOMAIN, MX2, port) in \
        status_lines(d, qid, "sent")[0]


def test_mx_without_address_is_skipped(mx, dns):
    port = common_port()
    z = dns({DOMAIN: [mxrr(5, "gone." + DOMAIN), mxrr(7, "192.0.2.1"),
                      mxrr(10, "mx2." + DOMAIN)],
             "mx2." + DOMAIN: [a(MX2)]})
    s2 = mx.sink(host=MX2, port=port)
    d = mx_daemon(mx, z, port)
    send(d, "user@" + DOMAIN)
    s2.wait_messages(1, daemon=d)


# ---------------------------------------------------------------- failures

def bounce_zone(extra):
    """The sender's domain has an MX (a sink on MX3): bounces arrive there."""
    z = {"sender.test": [mxrr(10, "mx.sender.test")], "mx.sender.test": [a(MX3)]}
    z.update(extra)
    return z


@pytest.mark.parametrize("zone,reply", [
    ({DOMAIN: [mxrr(0, ".")]}, "556 5.1.10 Recipient address has null MX"),
    ({}, "550 5.1.2 Recipient domain %s does not exist" % DOMAIN),
    ({DOMAIN: []}, "550 5.4.4 Recipient domain %s has no MX and no address" % DOMAIN),
], ids=["null-mx", "nxdomain", "no-mx-no-address"])
def test_permanent_dns_failure_bounces_at_once(mx, dns, zone, reply):
    port = common_port()
    z = dns(bounce_zone(zone))
    s3 = mx.sink(host=MX3, port=port)
    d = mx_daemon(mx, z, port)
    qid = send(d, "user@" + DOMAIN)
    # the bounce goes to the sender's domain, which has no [route]: by MX
    msgs = s3.wait_messages(1, daemon=d)
    assert msgs[0]["mail_from"] == ""
    assert msgs[0]["rcpts"] == ["alice@sender.test"]
    assert reply.encode() in msgs[0]["eml"], msgs[0]["eml"][:2000]
    lines = status_lines(d, qid, "bounced")
    assert len(lines) == 1 and "attempt=1 " in lines[0], d.log()
    assert reply in lines[0]
    d.wait_queue_empty()
    assert status_lines(d, qid, "deferred") == []


def test_servfail_defers(mx, dns):
    port = common_port()
    dom = "servfail.example"          # dnsserver.py answers SERVFAIL
    z = dns(bounce_zone({}))
    s3 = mx.sink(host=MX3, port=port)
    d = mx_daemon(mx, z, port, domains=(DOMAIN, dom))
    qid = send(d, "user@" + dom)
    d.wait_log(r"id=%s to=<user@servfail\.example> relay=none status=deferred "
               r".*MX lookup for servfail\.example failed: servfail" % qid)
    d.wait_log(r"id=%s to=<user@servfail\.example> .*status=deferred .*attempt=2 "
               % qid)
    assert status_lines(d, qid, "bounced") == []
    assert d.spool_files("queue") != []
    assert s3.messages() == []


# ---------------------------------------------------------------- TLS

def run_openssl(*args):
    r = subprocess.run(["openssl"] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, "openssl %s: %s" % (args[0], r.stderr.decode(errors="replace"))


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory):
    """make(name, san) → (cert, key) signed by a test CA; ca is its PEM."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    d = str(tmp_path_factory.mktemp("mxca"))
    os.chmod(d, 0o755)
    ca, cakey = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    run_openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=mxgate test CA", "-keyout", cakey, "-out", ca,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    made = {}

    def make(name, san):
        if name in made:
            return made[name]
        key = os.path.join(d, name + ".key")
        csr = os.path.join(d, name + ".csr")
        cert = os.path.join(d, name + ".pem")
        ext = os.path.join(d, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n" % san)
        run_openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name,
                    "-keyout", key, "-out", csr)
        run_openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey,
                    "-CAcreateserial", "-days", "1", "-out", cert, "-extfile", ext)
        for p in (ca, cert, key):
            os.chmod(p, 0o644)
        made[name] = (cert, key)
        return cert, key
    make.ca = ca
    return make


def tls_zone():
    return {DOMAIN: [mxrr(10, "mx1." + DOMAIN)], "mx1." + DOMAIN: [a(MX1)]}


def test_required_tls_not_offered_defers(mx, dns):
    port = common_port()
    z = dns(tls_zone())
    s1 = mx.sink(host=MX1, port=port)              # no STARTTLS
    d = mx_daemon(mx, z, port, route={"tls": "required"})
    qid = send(d, "user@" + DOMAIN)
    d.wait_log(r"id=%s to=<user@example\.test> relay=none status=deferred .*"
               r"STARTTLS required but not offered" % qid)
    d.wait_log(r"id=%s .*status=deferred .*attempt=2 " % qid)
    assert s1.messages() == [], "sent in clear despite tls = required"


def test_verify_delivers_with_a_trusted_certificate(mx, dns, test_ca):
    port = common_port()
    cert, key = test_ca("mx1." + DOMAIN, "DNS:mx1." + DOMAIN)
    z = dns(tls_zone())
    s1 = mx.sink("--tls-cert", cert, "--tls-key", key, host=MX1, port=port)
    d = mx_daemon(mx, z, port, route={"tls": "verify"},
                  sections={"delivery": {"ca_file": test_ca.ca}})
    qid = send(d, "user@" + DOMAIN)
    msgs = s1.wait_messages(1, daemon=d)
    assert msgs[0]["tls"] is True
    line = status_lines(d, qid, "sent")[0]
    assert re.search(r" tls=TLSv1\.[23] verified=yes ", line), line


def test_verify_refuses_a_certificate_for_another_name(mx, dns, test_ca):
    port = common_port()
    cert, key = test_ca("other." + DOMAIN, "DNS:other." + DOMAIN)
    z = dns(tls_zone())
    s1 = mx.sink("--tls-cert", cert, "--tls-key", key, host=MX1, port=port)
    d = mx_daemon(mx, z, port, route={"tls": "verify"},
                  sections={"delivery": {"ca_file": test_ca.ca}})
    qid = send(d, "user@" + DOMAIN)
    d.wait_log(r"id=%s to=<user@example\.test> relay=none status=deferred .*"
               r"certificate for mx1\.example\.test: hostname mismatch" % qid)
    assert s1.messages() == []


def test_verify_refuses_an_untrusted_certificate(mx, dns, tls_files):
    port = common_port()
    cert, key = tls_files                 # self-signed
    z = dns(tls_zone())
    s1 = mx.sink("--tls-cert", cert, "--tls-key", key, host=MX1, port=port)
    d = mx_daemon(mx, z, port, route={"tls": "verify"})
    qid = send(d, "user@" + DOMAIN)
    d.wait_log(r"id=%s .*status=deferred .*certificate for mx1\.example\.test: "
               % qid)
    assert s1.messages() == []


def test_opportunistic_logs_unverified_tls(mx, dns, tls_files):
    port = common_port()
    cert, key = tls_files                 # self-signed, another name
    z = dns(tls_zone())
    s1 = mx.sink("--tls-cert", cert, "--tls-key", key, host=MX1, port=port)
    d = mx_daemon(mx, z, port)
    qid = send(d, "user@" + DOMAIN)
    msgs = s1.wait_messages(1, daemon=d)
    assert msgs[0]["tls"] is True
    line = status_lines(d, qid, "sent")[0]
    assert re.search(r" tls=TLSv1\.[23] verified=no ", line), line


def test_plain_delivery_logs_tls_none(mx, dns):
    port = common_port()
    z = dns(tls_zone())
    s1 = mx.sink(host=MX1, port=port)
    d = mx_daemon(mx, z, port)
    qid = send(d, "user@" + DOMAIN)
    s1.wait_messages(1, daemon=d)
    line = status_lines(d, qid, "sent")[0]
    assert " tls=none verified=no " in line, line


def test_static_route_verifies_the_host_given(mx, test_ca):
    """tls = verify on a [route] with an IP literal: the certificate must
    name that address (iPAddress SAN)."""
    port = common_port()
    cert, key = test_ca("ip-" + MX2, "IP:" + MX2)
    s2 = mx.sink("--tls-cert", cert, "--tls-key", key, host=MX2, port=port)
    d = mx.daemon(sections={
        "route " + DOMAIN: {"hosts": "%s:%d" % (MX2, port), "tls": "verify"},
        "delivery": {"ca_file": test_ca.ca}})
    qid = send(d, "user@" + DOMAIN)
    s2.wait_messages(1, daemon=d)
    line = status_lines(d, qid, "sent")[0]
    assert " verified=yes " in line, line


# ---------------------------------------------------------------- relay

def test_relayed_foreign_domain_goes_by_mx(mx, dns):
    """A relay client's mail for a domain we do not accept (no [route]):
    by MX lookup."""
    port = common_port()
    z = dns({"foreign.test": [mxrr(10, "mx.foreign.test")],
             "mx.foreign.test": [a(MX2)]})
    s2 = mx.sink(host=MX2, port=port)
    d = mx_daemon(mx, z, port, sections={"outbound": {"relay_clients": "127.0.0.1"}})
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@%s>" % DOMAIN)
        r = c.cmd("RCPT TO:<bob@foreign.test>")
        if r.code != 250:
            pytest.skip("relay for [outbound] relay_clients not in this build: %r" % r)
        c.expect(354, "DATA")
        c.send(make_message("relay", sender="alice@" + DOMAIN,
                            to="bob@foreign.test") + b".\r\n")
        queued_id(c.read_reply())
    msgs = s2.wait_messages(1, daemon=d)
    assert msgs[0]["rcpts"] == ["bob@foreign.test"]


def test_utf8_domain_looked_up_as_a_label(mx, dns):
    """SMTPUTF8 mail for an IDN domain (RFC 6531): the MX lookup asks for
    the A-label form (RFC 5890), xn--bcher-kva.test for bücher.test."""
    port = common_port()
    z = dns({"xn--bcher-kva.test": [mxrr(10, "mx.xn--bcher-kva.test")],
             "mx.xn--bcher-kva.test": [a(MX2)]})
    s2 = mx.sink(host=MX2, port=port)
    d = mx_daemon(mx, z, port, sections={"outbound": {"relay_clients": "127.0.0.1"}})
    rcpt = "bob@b\u00fccher.test"
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@%s> SMTPUTF8" % DOMAIN)
        c.expect(250, "RCPT TO:<%s>" % rcpt)
        c.expect(354, "DATA")
        c.send(make_message("idn", sender="alice@" + DOMAIN, to="bob@x.test")
               + b".\r\n")
        queued_id(c.read_reply())
    msgs = s2.wait_messages(1, daemon=d)
    assert msgs[0]["rcpts"] == [rcpt], msgs[0]["rcpts"]


# ---------------------------------------------------------------- concurrency

class SlowMX:
    """A minimal SMTP server that takes `delay` seconds to answer the end
    of data and counts the connections open at once."""

    def __init__(self, host, port, delay):
        import threading
        self.delay = delay
        self.lock = threading.Lock()
        self.active = self.max_active = self.delivered = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        import threading
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        import time
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            conn.settimeout(30)
            f = conn.makefile("rb")
            conn.sendall(b"220 slow ESMTP\r\n")
            for line in f:
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    conn.sendall(b"250 slow\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go\r\n")
                    for body in f:
                        if body == b".\r\n":
                            break
                    time.sleep(self.delay)
                    with self.lock:
                        self.delivered += 1
                    conn.sendall(b"250 2.0.0 ok\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    break
                else:
                    conn.sendall(b"250 ok\r\n")
        except OSError:
            pass
        finally:
            with self.lock:
                self.active -= 1
            conn.close()

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("limit", [1, 3])
def test_connections_per_destination_are_limited(mx, dns, limit):
    port = common_port()
    z = dns(tls_zone())
    slow = SlowMX(MX1, port, delay=1.0)
    try:
        d = mx_daemon(mx, z, port, route={"tls": "none"}, sections={
            "delivery": {"destination_concurrency": str(limit)}})
        for i in range(3):
            send(d, "user%d@%s" % (i, DOMAIN), subject="c%d" % i)
        wait_until(lambda: slow.delivered >= 3, 30, what="3 deliveries")
        d.wait_queue_empty()
    finally:
        slow.close()
    if limit == 1:
        assert slow.max_active == 1, "%d connections at once" % slow.max_active
    else:
        # without the limit biting, the three deliveries overlap: the
        # limit-1 case above is not passing by accident
        assert slow.max_active >= 2, "deliveries did not overlap"
        assert slow.max_active <= limit


# ---------------------------------------------------------------- configuration

def config_check(mx, sections):
    from conftest import ini_text, mxgate_bin
    path = os.path.join(mx.dir, "check-%d.ini" % random.randrange(1 << 30))
    with open(path, "w") as f:
        f.write(ini_text(mx.config(sections=sections)))
    r = subprocess.run([str(mxgate_bin()), "config", "check", "-c", path],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    err = r.stderr.decode(errors="replace")
    assert "runtime error:" not in err and "Sanitizer" not in err, err
    return r.returncode, err


def test_config_mx_keys(mx):
    rc, err = config_check(mx, {"route " + DOMAIN: {"hosts": "mx", "tls": "verify"},
                                "delivery": {"mx_port": "2525",
                                             "destination_concurrency": "2"}})
    assert rc == 0, err
    rc, err = config_check(mx, {"route " + DOMAIN: {"hosts": "mx, 127.0.0.1:25"}})
    assert rc != 0 and "[route example.test] hosts: " in err and "'mx'" in err, err
    rc, err = config_check(mx, {"delivery": {"mx_port": "0"}})
    assert rc != 0 and "[delivery] mx_port: " in err, err
    rc, err = config_check(mx, {"delivery": {"destination_concurrency": "none"}})
    assert rc != 0 and "[delivery] destination_concurrency: " in err, err
    missing = os.path.join(mx.dir, "no-such-ca.pem")
    rc, err = config_check(mx, {"delivery": {"ca_file": missing}})
    assert rc != 0 and "[delivery] ca_file: cannot read %s" % missing in err, err


# ---------------------------------------------------------------- loops

def test_we_are_the_best_mx_defers_as_a_loop(mx, dns):
    """RFC 5321 5.1: an exchange named as our [server] hostname is us;
    hosts no more preferred than we are must not get the mail (they
    would hand it back), and with none left the mail loops: deferred
    with a clear error, never sent to ourselves or to the backup MX."""
    port = common_port()
    dom = "looped.test"
    z = dns({dom: [mxrr(10, HOSTNAME), mxrr(20, "mx2." + dom)],
             HOSTNAME: [a(MX1)], "mx2." + dom: [a(MX2)]})
    s1 = mx.sink(host=MX1, port=port)
    s2 = mx.sink(host=MX2, port=port)
    d = mx_daemon(mx, z, port, domains=(DOMAIN, dom))
    qid = send(d, "user@" + dom)
    d.wait_log(r"id=%s to=<user@looped\.test> relay=none status=deferred .*"
               r"mail for looped\.test loops back to myself" % qid)
    assert s1.messages() == [] and s2.messages() == []
    assert status_lines(d, qid, "bounced") == []


def test_only_more_preferred_mx_hosts_than_us_are_tried(mx, dns):
    """We are MX 10 (named in another case, with a final dot): MX 5 is
    tried, and when it is down the mail waits; MX 10 (us) and MX 20 are
    never tried."""
    port = common_port()
    z = dns({DOMAIN: [mxrr(10, HOSTNAME.upper() + "."), mxrr(5, "mx2." + DOMAIN),
                      mxrr(20, "mx3." + DOMAIN)],
             HOSTNAME: [a(MX1)], "mx2." + DOMAIN: [a(MX2)], "mx3." + DOMAIN: [a(MX3)]})
    s1 = mx.sink(host=MX1, port=port)
    s3 = mx.sink(host=MX3, port=port)       # nothing listens on MX2
    d = mx_daemon(mx, z, port)
    qid = send(d, "user@" + DOMAIN)
    d.wait_log(r"id=%s to=<user@%s> relay=none status=deferred .*Connection refused"
               % (qid, re.escape(DOMAIN)))
    assert s1.messages() == [] and s3.messages() == []
    assert not re.search(r"host=mx3\.|\[%s\]:%d" % (MX1, port), d.log())
