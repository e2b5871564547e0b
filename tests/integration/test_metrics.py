"""The Prometheus endpoint ([metrics] listen, gateway/metrics_http.c):
the real daemon with a scripted DNS server, a known mix of SMTP traffic,
and the counters read back over HTTP must say exactly what was sent. The
exposition text is parsed here, by hand, against the text format 0.0.4
grammar (no Prometheus library): every sample line well formed, every
family with a HELP text and a TYPE before its samples, no series twice,
histogram buckets cumulative and ending in +Inf = _count.
"""

import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import (PYTHON, dot_stuff, free_port, insecure_client_context,
                      ipv6_loopback_available, queued_id, spawn, stop_process,
                      wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
DNSSERVER = os.path.join(HERE, "..", "tools", "dnsserver.py")

SPF_FAIL = "v=spf1 ip4:192.0.2.1 -all"      # fails from 127.0.0.1
SPF_PASS = "v=spf1 ip4:127.0.0.0/8 -all"    # passes from 127.0.0.1


# ---------------------------------------------------------------- exposition

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r"NaN|[+-]Inf|[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
SAMPLE_RE = re.compile(r"^(%s)(?:\{(%s(?:,%s)*)?\})? (%s)$" % (NAME, LABEL, LABEL, VALUE))
HELP_RE = re.compile(r"^# HELP (%s) (\S.*)$" % NAME)
TYPE_RE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram)$" % NAME)
PAIR_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """A parsed scrape: samples by (name, labels), families' help and type."""

    def __init__(self, text):
        self.text = text
        self.samples = {}
        self.help = {}
        self.type = {}
        assert text.endswith("\n"), "exposition does not end with a line feed"
        family = None
        for line in text[:-1].split("\n"):
            m = HELP_RE.match(line)
            if m:
                assert m.group(1) not in self.help, "second HELP: %r" % line
                self.help[m.group(1)] = m.group(2)
                family = None
                continue
            m = TYPE_RE.match(line)
            if m:
                assert m.group(1) in self.help, "TYPE without HELP: %r" % line
                assert m.group(1) not in self.type, "second TYPE: %r" % line
                self.type[m.group(1)] = m.group(2)
                family = m.group(1)
                continue
            m = SAMPLE_RE.match(line)
            assert m, "not a text format 0.0.4 line: %r" % line
            name, labels, value = m.groups()
            assert family is not None, "sample before its TYPE: %r" % line
            if self.type[family] == "histogram":
                assert name in (family + "_bucket", family + "_sum",
                                family + "_count"), (family, line)
            else:
                assert name == family, (family, line)
            pairs = tuple(sorted(PAIR_RE.findall(labels or "")))
            assert len(set(k for k, _ in pairs)) == len(pairs), line
            key = (name, pairs)
            assert key not in self.samples, "series twice: %r" % line
            self.samples[key] = float(value.replace("Inf", "inf"))
        for fam, kind in self.type.items():
            if kind == "histogram":
                self._check_histogram(fam)

    def _check_histogram(self, fam):
        series = {}
        for (name, pairs), v in self.samples.items():
            if name == fam + "_bucket":
                rest = tuple(p for p in pairs if p[0] != "le")
                le = dict(pairs)["le"]
                series.setdefault(rest, []).append(
                    (float(le.replace("Inf", "inf")), v))
        for rest, buckets in series.items():
            buckets.sort()
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), "buckets not cumulative: %r" % buckets
            assert buckets[-1][0] == float("inf"), buckets
            assert buckets[-1][1] == self.samples[(fam + "_count", rest)]
            assert (fam + "_sum", rest) in self.samples

    def get(self, name, **labels):
        """A sample's value; 0 for a series not (yet) there."""
        return self.samples.get((name, tuple(sorted(labels.items()))), 0)

    def total(self, name, **labels):
        """The sum over every series of name whose labels include labels."""
        want = set(labels.items())
        return sum(v for (n, pairs), v in self.samples.items()
                   if n == name and want <= set(pairs))


def http(url, method="GET"):
    """(status, headers, body) of one request."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def scrape(port):
    status, headers, body = http("http://127.0.0.1:%d/metrics" % port)
    assert status == 200, (status, body)
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), \
        headers["Content-Type"]
    return Metrics(body.decode("utf-8"))


# ---------------------------------------------------------------- set-up

class DNS:
    """tests/tools/dnsserver.py with a query log: one line per question."""

    def __init__(self, workdir, zone):
        self.zone_path = os.path.join(workdir, "zone.json")
        self.log_path = os.path.join(workdir, "dns-queries.log")
        with open(self.zone_path, "w") as f:
            json.dump(zone, f)
        self.proc = spawn([PYTHON, DNSSERVER, "--port", "0", "--zone",
                           self.zone_path, "--log", self.log_path],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
        m = re.match(r"LISTENING (\d+)", self.proc.stdout.readline() or "")
        if not m:
            self.stop()
            pytest.fail("dnsserver did not start: %s" % self.proc.stderr.read())
        self.hostport = "127.0.0.1:%s" % m.group(1)

    def queries(self):
        try:
            with open(self.log_path) as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def stop(self):
        stop_process(self.proc, timeout=5)
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


def txt(v):
    return {"type": "TXT", "value": [v]}


ZONE = {
    "good.test": [txt(SPF_PASS)],
    "sender.test": [txt(SPF_FAIL)],
    "_dmarc.sender.test": [txt("v=DMARC1; p=reject")],
    "held.test": [txt(SPF_FAIL)],
    "_dmarc.held.test": [txt("v=DMARC1; p=quarantine")],
}


@pytest.fixture
def dns(mx):
    servers = []

    def start(zone):
        s = DNS(mx.dir, zone)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.stop()


def metrics_section(port):
    return {"metrics": {"listen": "127.0.0.1:%d" % port}}


def message(frm, subject):
    return ("From: <%s>\r\nTo: <user@example.test>\r\nSubject: %s\r\n"
            "Message-ID: <%s@metrics.test>\r\n\r\nHello.\r\n"
            % (frm, subject, subject.replace(" ", "-"))).encode()


def send(d, frm, subject, tls=False):
    """One message on its own connection; the reply to its end of data."""
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        if tls:
            c.expect(220, "STARTTLS")
            c.starttls(insecure_client_context())
            c.ehlo()
        c.expect(250, "MAIL FROM:<%s>" % frm)
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        c.send(dot_stuff(message(frm, subject)) + b".\r\n")
        r = c.read_reply(timeout=15)
        c.expect(221, "QUIT")
        return r, (c.sock.version() if tls else None)


def settled(port, delivered=0):
    """Scrape until no connection is open, the queue has nothing queued
    or being attempted and `delivered` recipients were delivered: the
    counters have stopped moving."""
    def ready():
        m = scrape(port)
        if m.get("mxgate_connections") == 0 and \
                m.get("mxgate_queue_messages", state="queued") == 0 and \
                m.get("mxgate_queue_messages", state="active") == 0 and \
                m.get("mxgate_delivery_attempts_total",
                      outcome="delivered") >= delivered:
            return m
        return None
    return wait_until(ready, 20, what="settled metrics")


# ---------------------------------------------------------------- tests

def test_counters_match_the_traffic(mx, dns, tls_files):
    cert, key = tls_files
    z = dns(ZONE)
    sink = mx.sink("--tls-cert", cert, "--tls-key", key)
    mport = free_port()
    sections = {
        "dns": {"servers": z.hostport, "timeout": "2s"},
        "spf": {"check_helo": "no", "check_mailfrom": "yes", "time_budget": "5s"},
        "dkim": {"verify": "yes"},
        "dmarc": {"verify": "yes", "time_budget": "5s"},
        "quarantine": {"action": "hold"},
        "tls": {"certificate": cert, "key": key},
        "limits": {"message_size": "1m"},
        "route example.test": {"tls": "required"},
    }
    sections.update(metrics_section(mport))
    d = mx.daemon(sink, sections=sections)

    # before any traffic: every family there, the known series at zero
    m0 = scrape(mport)
    assert m0.get("mxgate_connections_total") == 0
    assert m0.get("mxgate_messages_total", outcome="accepted", reason="ok") == 0
    assert ("mxgate_messages_total", (("outcome", "accepted"), ("reason", "ok"))) \
        in m0.samples
    assert m0.get("mxgate_metrics_dropped_total") == 0
    for fam in ("mxgate_spf_results_total", "mxgate_check_duration_seconds",
                "mxgate_dns_queries_total", "mxgate_tls_handshakes_total"):
        assert fam in m0.type and m0.help[fam], fam

    # 1, 2: accepted (SPF pass, no DMARC record), one of them over TLS
    r, _ = send(d, "alice@good.test", "plain")
    d.known_ids.add(queued_id(r))
    r, tls_version = send(d, "alice@good.test", "over tls", tls=True)
    d.known_ids.add(queued_id(r))
    # 3: a relay attempt, refused at RCPT
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<bob@good.test>")
        c.expect(550, "RCPT TO:<someone@elsewhere.test>", startswith="550 5.7.1")
        c.expect(221, "QUIT")
    # 4: DMARC p=reject, SPF fails, nothing aligns: 550 at end of data
    r, _ = send(d, "carol@sender.test", "rejected")
    assert r.code == 550 and r.first.startswith("550 5.7.1"), r
    # 5: DMARC p=quarantine with [quarantine] action = hold: 250, held
    r, _ = send(d, "dave@held.test", "held")
    queued_id(r)
    # 6: SIZE over [limits] message_size: 552 at MAIL
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(552, "MAIL FROM:<erin@good.test> SIZE=5000000",
                 startswith="552 5.3.4")
        c.expect(221, "QUIT")

    msgs = sink.wait_messages(2, daemon=d)
    m = settled(mport, delivered=2)

    assert m.get("mxgate_connections") == 0
    assert m.get("mxgate_connections_total") == 6
    assert m.total("mxgate_connections_refused_total") == 0
    msg = {(dict(p)["outcome"], dict(p)["reason"]): v
           for (n, p), v in m.samples.items() if n == "mxgate_messages_total" and v}
    assert msg == {("accepted", "ok"): 2, ("accepted", "held"): 1,
                   ("rejected", "relay"): 1, ("rejected", "dmarc"): 1,
                   ("rejected", "size"): 1}, msg

    # SPF for every MAIL FROM that reached the hook (not the 552 one)
    assert m.get("mxgate_spf_results_total", identity="mailfrom", result="pass") == 3
    assert m.get("mxgate_spf_results_total", identity="mailfrom", result="fail") == 2
    assert m.total("mxgate_spf_results_total") == 5
    # DKIM and DMARC for every message that reached its end of data
    assert m.get("mxgate_dkim_results_total", result="none") == 4
    assert m.total("mxgate_dkim_results_total") == 4
    assert m.get("mxgate_dmarc_results_total", result="none") == 2
    assert m.get("mxgate_dmarc_results_total", result="fail") == 2
    assert m.total("mxgate_dmarc_results_total") == 4
    disp = {tuple(sorted(dict(p).items())): v for (n, p), v in m.samples.items()
            if n == "mxgate_dmarc_dispositions_total"}
    assert disp == {(("action", "none"), ("disposition", "none")): 2,
                    (("action", "reject"), ("disposition", "reject")): 1,
                    (("action", "quarantine"), ("disposition", "quarantine")): 1}, disp
    assert m.total("mxgate_dmarc_overrides_total") == 0
    # one duration per check
    for check, n in (("spf", 5), ("dkim", 4), ("dmarc", 4)):
        assert m.get("mxgate_check_duration_seconds_count", check=check) == n, check
        assert m.get("mxgate_check_duration_seconds_bucket", check=check,
                     le="+Inf") == n
        assert 0 < m.get("mxgate_check_duration_seconds_sum", check=check) < 30
    # every question the DNS server was asked, and no more
    asked = z.queries()
    assert asked, "the DNS server saw no query"
    assert m.total("mxgate_dns_queries_total") == len(asked), (asked, m.text)
    assert m.total("mxgate_dns_queries_total", type="TXT") == \
        len([q for q in asked if q["type"] == "TXT"])
    assert m.total("mxgate_dns_queries_total", outcome="nxdomain") == \
        len([q for q in asked if q["rcode"] == "NXDOMAIN"])
    # good.test's SPF record was asked once, then came from the cache
    assert len([q for q in asked if q["name"] == "good.test"]) == 1, asked
    assert m.get("mxgate_dns_cache_hits_total", type="TXT") >= 2
    # TLS: the client's session in, every delivery connection out
    assert tls_version in ("TLSv1.2", "TLSv1.3")
    assert m.get("mxgate_tls_handshakes_total", direction="in",
                 version=tls_version) == 1
    assert m.total("mxgate_tls_handshakes_total", direction="in") == 1
    out_conns = {x["conn"] for x in msgs if x["tls"]}
    assert len(out_conns) >= 1 and all(x["tls"] for x in msgs)
    assert m.total("mxgate_tls_handshakes_total", direction="out") == len(out_conns)
    # the queue
    assert m.get("mxgate_delivery_attempts_total", outcome="delivered") == 2
    assert m.get("mxgate_delivery_attempts_total", outcome="deferred") == 0
    assert m.get("mxgate_delivery_attempts_total", outcome="failed") == 0
    assert m.get("mxgate_queue_messages", state="held") == 1
    assert m.get("mxgate_metrics_dropped_total") == 0


def test_second_scrape_moves_by_the_traffic(mx):
    """Between two scrapes, every counter moves by exactly what was sent
    in between, and nothing else moves."""
    sink = mx.sink()
    mport = free_port()
    d = mx.daemon(sink, sections=metrics_section(mport))
    send(d, "alice@sender.test", "warm up")
    sink.wait_messages(1, daemon=d)
    before = settled(mport, delivered=1)

    for i in range(3):
        r, _ = send(d, "alice@sender.test", "message %d" % i)
        d.known_ids.add(queued_id(r))
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(550, "RCPT TO:<x@elsewhere.test>")
        c.expect(550, "RCPT TO:<y@elsewhere.test>")
        c.expect(221, "QUIT")
    sink.wait_messages(4, daemon=d)
    after = settled(mport, delivered=4)

    want = {
        ("mxgate_connections_total", ()): 4,
        ("mxgate_messages_total", (("outcome", "accepted"), ("reason", "ok"))): 3,
        ("mxgate_messages_total", (("outcome", "rejected"), ("reason", "relay"))): 2,
        ("mxgate_delivery_attempts_total", (("outcome", "delivered"),)): 3,
    }
    for key in set(before.samples) | set(after.samples):
        if before.type.get(key[0]) == "gauge":
            continue
        delta = after.samples.get(key, 0) - before.samples.get(key, 0)
        assert delta == want.get(key, 0), (key, delta)
    for key, n in want.items():
        assert key in after.samples, key


def test_http_paths_and_methods(mx):
    mport = free_port()
    mx.daemon(mx.sink(), sections=metrics_section(mport))
    base = "http://127.0.0.1:%d" % mport
    status, headers, body = http(base + "/metrics")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    Metrics(body.decode())
    # a query string is no other resource
    assert http(base + "/metrics?name=x")[0] == 200
    for path in ("/", "/metric", "/metrics/", "/metricsx", "/other", "//metrics"):
        status, _, body = http(base + path)
        assert status == 404, (path, status, body)
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
        status, headers, _ = http(base + "/metrics", method=method)
        assert status == 405, (method, status)
        assert headers["Allow"] == "GET, HEAD", headers
    status, headers, body = http(base + "/metrics", method="HEAD")
    assert status == 200 and body == b""
    # the endpoint needs no SMTP: nothing was counted as a connection
    assert scrape(mport).get("mxgate_connections_total") == 0


def test_ipv6_address(mx):
    if not ipv6_loopback_available():
        pytest.skip("no IPv6 loopback")
    mport = free_port("::1")
    mx.daemon(mx.sink(), sections={"metrics": {"listen": "[::1]:%d" % mport}})
    status, _, body = http("http://[::1]:%d/metrics" % mport)
    assert status == 200
    assert Metrics(body.decode()).get("mxgate_connections") == 0


def test_refused_connections_counted(mx):
    mport = free_port()
    sections = {"limits": {"connections_per_ip": "2"}}
    sections.update(metrics_section(mport))
    d = mx.daemon(mx.sink(), sections=sections)
    a, b = d.connect(), d.connect()
    try:
        a.greeting()
        b.greeting()
        with d.connect() as c:
            c.expect(421)
        m = wait_until(lambda: (lambda m: m.get(
            "mxgate_connections_refused_total", reason="limit_per_ip") == 1
            and m)(scrape(mport)), 10, what="a refused connection counted")
        assert m.get("mxgate_connections") == 2
        assert m.get("mxgate_connections_total") == 2
        assert m.get("mxgate_connections_refused_total", reason="limit_total") == 0
    finally:
        a.close()
        b.close()
    m = settled(mport)
    assert m.get("mxgate_connections") == 0


def test_reload_refuses_a_new_address(mx):
    mport = free_port()
    d = mx.daemon(mx.sink(), sections=metrics_section(mport))
    with open(d.cfg_path) as f:
        text = f.read()
    other = free_port()
    with open(d.cfg_path, "w") as f:
        f.write(text.replace("127.0.0.1:%d" % mport, "127.0.0.1:%d" % other))
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload refused: \[metrics\] listen changed, which needs a "
               r"restart", timeout=10)
    assert d.running()
    assert scrape(mport).get("mxgate_metrics_dropped_total") == 0
    # back to the running address: the reload goes through
    with open(d.cfg_path, "w") as f:
        f.write(text)
    d.signal(signal.SIGHUP)
    d.wait_log(r"configuration reloaded", timeout=10)


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "127.0.0.1:99999",
                                    "localhost:9125", "::1:9125",
                                    "[::1:9125", "127.0.0.1:80x",
                                    "300.1.1.1:9125"])
def test_bad_address_stops_start(mx, listen):
    d = mx.daemon(mx.sink(), sections={"metrics": {"listen": listen}},
                  start=False)
    d.start(wait=False)
    assert d.proc.wait(timeout=20) != 0
    assert re.search(r"\[metrics\] listen = .*expected IP:port", d.log()), d.tail()


def test_address_in_use_stops_start(mx):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        d = mx.daemon(mx.sink(), sections=metrics_section(port), start=False)
        d.start(wait=False)
        assert d.proc.wait(timeout=20) != 0
    assert re.search(r"\[metrics\] listen = 127\.0\.0\.1:%d: cannot listen: "
                     r"Address already in use" % port, d.log()), d.tail()
