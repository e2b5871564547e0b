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
import resource
import select
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import (PYTHON, dot_stuff, free_port, insecure_client_context,
                      ipv6_loopback_available, make_message, mxgate_bin,
                      queued_id, spawn, stop_process, wait_until)

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


def raw_http(port, data, half_close=False, timeout=10):
    """Every octet the server sends for data, until it closes."""
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    return out


def parse_response(raw):
    """(status, {lower-case field: value}, what follows the head)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, "no complete response head: %r" % raw[:300]
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0])
    assert m, lines[0]
    fields = {}
    for line in lines[1:]:
        k, colon, v = line.partition(":")
        assert colon and k.strip() == k and k.lower() not in fields, line
        fields[k.lower()] = v.strip()
    return int(m.group(1)), fields, rest


def closed_by_peer(sock):
    """Has the server closed sock (non-blocking) without a word?"""
    try:
        data = sock.recv(1)
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    assert data == b"", "the server sent %r on an idle connection" % data
    return True


def cpu_seconds(pid):
    """User + system CPU time of pid so far (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lower_nofile(pid, n):
    """Set pid's RLIMIT_NOFILE to n (soft and hard). A daemon that dropped
    to another user is reached as that user (prlimit(2) wants the same
    ids, or CAP_SYS_RESOURCE, which a container may lack)."""
    try:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (n, n))
        return
    except PermissionError:
        if os.geteuid() != 0:
            raise
    ids = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid"):
                ids[k] = int(v.split()[0])
    r = subprocess.run(
        [PYTHON, "-c", "import resource, sys; resource.prlimit(int(sys.argv[1]),"
         " resource.RLIMIT_NOFILE, (int(sys.argv[2]),) * 2)", str(pid), str(n)],
        user=ids["Uid"], group=ids["Gid"], extra_groups=[],
        capture_output=True, timeout=30)
    if r.returncode != 0:
        raise PermissionError(r.stderr.decode(errors="replace").strip())


def break_spool_tmp(d):
    """Make the spool's tmp/ unusable (a file where the directory was):
    nothing new can be stored. Returns the function that undoes it."""
    tmp = os.path.join(d.spool, "tmp")
    os.rename(tmp, tmp + ".off")
    open(tmp, "w").close()

    def restore():
        os.unlink(tmp)
        os.rename(tmp + ".off", tmp)
    return restore


def message_counts(m):
    return {(dict(p)["outcome"], dict(p)["reason"]): v
            for (n, p), v in m.samples.items()
            if n == "mxgate_messages_total" and v}


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
    t0 = time.monotonic()
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
    t1 = time.monotonic()

    assert m.get("mxgate_connections") == 0
    assert m.get("mxgate_connections_total") == 6
    assert m.total("mxgate_connections_refused_total") == 0
    msg = message_counts(m)
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
    assert m.get("mxgate_metrics_dropped_total") == 0
    # hold/ is read at most once every 30 s (counted at m0, when empty):
    # the held message shows once that time has passed, not before
    if t1 - t0 < 29:
        assert m.get("mxgate_queue_messages", state="held") == 0, \
            "hold/ counted again %.1fs after the last count" % (t1 - t0)
    wait_until(lambda: scrape(mport).get("mxgate_queue_messages",
                                         state="held") == 1,
               40, interval=1, what="the held message counted")
    assert time.monotonic() - t0 >= 29


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
    d = mx.daemon(mx.sink(), sections=metrics_section(mport))
    assert "not a loopback address" not in d.log()
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
    assert status == 200    # its content: test_head_sends_no_content
    # the endpoint needs no SMTP: nothing was counted as a connection
    assert scrape(mport).get("mxgate_connections_total") == 0


def test_ipv6_address(mx):
    if not ipv6_loopback_available():
        pytest.skip("no IPv6 loopback")
    mport = free_port("::1")
    d = mx.daemon(mx.sink(), sections={"metrics": {"listen": "[::1]:%d" % mport}})
    assert "not a loopback address" not in d.log()
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


def test_non_loopback_address_is_warned(mx):
    """Not refused (a management network may be meant), but said."""
    mport = free_port("0.0.0.0")
    d = mx.daemon(mx.sink(), sections={"metrics": {"listen": "0.0.0.0:%d" % mport}})
    assert re.search(r"warning: \[metrics\] listen = 0\.0\.0\.0:%d is not a "
                     r"loopback address" % mport, d.log()), d.tail()
    assert scrape(mport).get("mxgate_connections") == 0


# ---------------------------------------------------------------- HTTP

def test_head_sends_no_content(mx):
    """RFC 9110 9.3.2: the answer to HEAD ends with its head, whatever
    the status; Content-Length, if there, is what GET would send."""
    mport = free_port()
    mx.daemon(mx.sink(), sections=metrics_section(mport))
    status, fields, body = parse_response(
        raw_http(mport, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status == 200 and body and int(fields["content-length"]) == len(body)
    Metrics(body.decode())
    status, fields, rest = parse_response(
        raw_http(mport, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status == 200
    assert rest == b"", "content after a HEAD answer: %r" % rest[:200]
    assert fields["content-type"].startswith("text/plain; version=0.0.4")
    if "content-length" in fields:
        assert int(fields["content-length"]) == len(body)
    for path, code in (("/other", 404), ("/metrics/", 404)):
        status, fields, rest = parse_response(
            raw_http(mport, b"HEAD %s HTTP/1.1\r\n\r\n" % path.encode()))
        assert status == code and rest == b"", (path, status, rest)


def test_malformed_requests(mx):
    """Each bad request gets its error and the connection closes; the
    endpoint goes on serving."""
    mport = free_port()
    d = mx.daemon(mx.sink(), sections=metrics_section(mport))
    long_field = b"X-Long: " + b"a" * 9000
    cases = [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /metrics\r\n\r\n", 400),
        (b"GET  /metrics HTTP/1.1\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1 x\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.10\r\n\r\n", 400),
        (b"G\x00ET /metrics HTTP/1.1\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: a\x00b\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
        (b"GET /metrics HTTP/2.0\r\n\r\n", 505),
        (b"GET /metrics HTTP/1.1\r\n" + long_field + b"\r\n\r\n", 431),
        (b"GET /metrics HTTP/1.1\r\n" + long_field, 431),   # no end of line
        (b"GET /" + b"m" * 9000 + b" HTTP/1.1\r\n\r\n", 431),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 405),
        # well formed after all: empty lines first (RFC 9112 2.2), bare LF,
        # HTTP/1.0, absolute form
        (b"\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n", 200),
        (b"GET /metrics HTTP/1.0\n\n", 200),
        (b"GET http://127.0.0.1/metrics?x=1 HTTP/1.1\r\n\r\n", 200),
    ]
    for req, code in cases:
        raw = raw_http(mport, req)
        status, fields, rest = parse_response(raw)
        assert status == code, (req[:60], raw[:200])
        assert fields["connection"] == "close"
        assert int(fields["content-length"]) == len(rest), (req[:60], raw[:200])
    # one request per connection: a second one pipelined is not answered
    raw = raw_http(mport, b"GET /metrics HTTP/1.1\r\n\r\nGET /other HTTP/1.1\r\n\r\n")
    assert raw.count(b"HTTP/1.1 ") == 1 and raw.startswith(b"HTTP/1.1 200 ")
    # a client that half-closes after its request still gets the answer
    status, fields, body = parse_response(
        raw_http(mport, b"GET /metrics HTTP/1.0\r\n\r\n", half_close=True))
    assert status == 200 and int(fields["content-length"]) == len(body) > 0
    assert d.running()
    assert scrape(mport).get("mxgate_metrics_dropped_total") == 0


def test_idle_connections_are_capped(mx):
    """40 idle connections: past the cap (16) the oldest are closed at
    once, and a scrape from a new connection and an SMTP session are
    both served promptly."""
    mport = free_port()
    d = mx.daemon(mx.sink(), sections=metrics_section(mport))
    idle = []
    try:
        for _ in range(40):
            idle.append(socket.create_connection(("127.0.0.1", mport), timeout=5))
            idle[-1].setblocking(False)
        t0 = time.monotonic()
        closed = set()

        def count_closed():
            for i, s in enumerate(idle):
                if i not in closed and closed_by_peer(s):
                    closed.add(i)
            return len(closed)
        wait_until(lambda: count_closed() >= 24, 3,
                   what="the connections past the cap closed")
        assert time.monotonic() - t0 < 3
        # the oldest went: the 16 newest are open
        assert closed == set(range(24)), sorted(closed)

        t = time.monotonic()
        m = scrape(mport)
        assert time.monotonic() - t < 2, "a scrape took %.1fs" % (time.monotonic() - t)
        assert m.get("mxgate_connections") == 0
        # room for the scrape was made by closing the oldest idle one
        wait_until(lambda: count_closed() == 25, 3, what="one more closed")
        t = time.monotonic()
        with d.connect(timeout=5) as c:
            c.greeting()
            c.ehlo()
            c.expect(250, "NOOP")
            c.expect(221, "QUIT")
        assert time.monotonic() - t < 2
    finally:
        for s in idle:
            s.close()


def test_trickling_client_is_cut_at_the_deadline(mx):
    """A request trickling one octet a second is closed 10 s after accept:
    what arrives does not extend the time."""
    mport = free_port()
    d = mx.daemon(mx.sink(), sections=metrics_section(mport))
    data = b"GET /metrics HTTP/1.1\r\nX-Trickle: " + b"a" * 100
    closed_at = None
    s = socket.create_connection(("127.0.0.1", mport), timeout=5)
    t0 = time.monotonic()
    try:
        for octet in data:
            if time.monotonic() - t0 > 16:
                break
            try:
                s.send(bytes([octet]))
            except OSError:
                closed_at = time.monotonic() - t0
                break
            readable, _, _ = select.select([s], [], [], 1.0)
            if readable:
                try:
                    chunk = s.recv(4096)
                except ConnectionResetError:
                    chunk = b""
                assert chunk == b"", "an answer to an unfinished request: %r" % chunk
                closed_at = time.monotonic() - t0
                break
    finally:
        s.close()
    assert closed_at is not None, "still open after 16s of trickling"
    assert 9 <= closed_at <= 13, "closed after %.1fs" % closed_at
    assert d.running()
    assert scrape(mport).get("mxgate_metrics_dropped_total") == 0


def test_descriptor_exhaustion(mx):
    """The daemon's descriptor limit lowered to a few over what it has
    open, then more metrics connections than it can accept: accept()
    pauses (no spin, a line a second at most) and an open SMTP session
    is still answered; once the clients go, everything is served again."""
    mport = free_port()
    d = mx.daemon(mx.sink(), sections=metrics_section(mport))
    pid = d.proc.pid
    scrape(mport)
    c = d.connect(timeout=5)
    socks = []
    try:
        c.greeting()
        c.ehlo()
        nfd = len(os.listdir("/proc/%d/fd" % pid))
        try:
            lower_nofile(pid, nfd + 3)
        except OSError as e:
            pytest.skip("cannot lower the daemon's descriptor limit: %s" % e)
        lines0 = len(d.log().splitlines())
        cpu0 = cpu_seconds(pid)
        t0 = time.monotonic()
        for _ in range(30):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", mport))
            socks.append(s)
        time.sleep(3)
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(pid) - cpu0
        new_lines = d.log().splitlines()[lines0:]
        assert cpu < 0.5 * elapsed, "%.2fs CPU in %.2fs" % (cpu, elapsed)
        assert len(new_lines) <= 3 * elapsed + 4, "%d lines:\n%s" % (
            len(new_lines), "\n".join(new_lines[:20]))
        # the limit was reached, and said
        assert any(re.search(r"metrics: accept failed: Too many open files; "
                             r"pausing", l) for l in new_lines), new_lines
        t = time.monotonic()
        c.expect(250, "NOOP", timeout=5)
        assert time.monotonic() - t < 2
    finally:
        for s in socks:
            s.close()
    # the clients gone, their connections end (EOF) and descriptors free up
    c.expect(250, "NOOP", timeout=5)
    c.close()

    def served():
        try:
            with d.connect(timeout=5) as c2:
                c2.greeting()
                c2.expect(221, "QUIT")
            return scrape(mport)
        except (OSError, AssertionError):
            return None
    wait_until(served, 15, interval=0.5, what="SMTP and the endpoint served again")


# ---------------------------------------------------------------- counting

def test_failed_recipient_counted_once_while_its_bounce_waits(mx):
    """A recipient failed (5xx) whose bounce cannot be queued goes back to
    pending and fails again next attempt: counted deferred until the
    attempt that queues the bounce counts it failed, once."""
    bounce_sink = mx.sink(name="bounces")
    port, mport = free_port(), free_port()
    sections = {"route *": {"hosts": bounce_sink.hostport}}
    sections.update(metrics_section(mport))
    d = mx.daemon(route_to="127.0.0.1:%d" % port, sections=sections)
    with d.connect() as c:
        c.greeting()
        qid = queued_id(c.send_message("sender@remote.test", ["user@example.test"],
                                       make_message("bounced later")))
    d.wait_log(r"id=%s deferred" % qid, timeout=20)   # nobody listening yet
    restore = break_spool_tmp(d)
    try:
        mx.sink("--data-reply", "554 5.7.1 go away", port=port, name="rejecting")
        d.wait_log(r"id=%s bounce could not be queued" % qid, timeout=30, count=2)
        m = scrape(mport)
        assert m.get("mxgate_delivery_attempts_total", outcome="failed") == 0
        assert m.get("mxgate_delivery_attempts_total", outcome="deferred") >= 3
    finally:
        restore()
    b = bounce_sink.wait_messages(1, daemon=d)
    assert b[0]["rcpts"] == ["sender@remote.test"]
    d.wait_queue_empty()
    m = settled(mport, delivered=1)
    assert m.get("mxgate_delivery_attempts_total", outcome="failed") == 1
    assert m.get("mxgate_delivery_attempts_total", outcome="delivered") == 1


def test_bdat_refused_at_start_and_oversize_counted_once(mx):
    """BDAT: a message refused at its start (storage) that then exceeds
    the size limit keeps the refusal, counted once."""
    mport = free_port()
    sections = {"limits": {"message_size": "1k"}}
    sections.update(metrics_section(mport))
    d = mx.daemon(mx.sink(), sections=sections)
    restore = break_spool_tmp(d)
    try:
        with d.connect() as c:
            c.greeting()
            c.ehlo()
            c.expect(250, "MAIL FROM:<alice@sender.test>")
            c.expect(250, "RCPT TO:<user@example.test>")
            c.send(b"BDAT 1000\r\n" + b"x" * 998 + b"\r\n")
            c.expect(451)
            c.send(b"BDAT 1000 LAST\r\n" + b"y" * 998 + b"\r\n")
            c.expect(451)
            c.expect(221, "QUIT")
    finally:
        restore()
    m = settled(mport)
    assert message_counts(m) == {("deferred", "storage"): 1}, message_counts(m)


def test_refused_mail_and_rcpt_counted(mx, tls_files):
    """Refusals the SMTP layer makes itself, before the hooks: each MAIL
    or RCPT refused counts once (syntax, limit, auth)."""
    cert, key = tls_files
    users = os.path.join(mx.dir, "users")
    r = subprocess.run([str(mxgate_bin()), "user", "add", "alice", "--domains",
                        "example.test", "--file", users], input=b"pw-pw-pw-pw\n",
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    sub_port, mport = free_port(), free_port()
    sections = {
        "tls": {"certificate": cert, "key": key},
        "listener sub": {"address": "127.0.0.1", "port": str(sub_port),
                         "profile": "submission"},
        "submission": {"users": users},
    }
    sections.update(metrics_section(mport))
    d = mx.daemon(mx.sink(), sections=sections)
    with d.connect() as c:
        c.greeting()
        c.expect(503, "MAIL FROM:<a@sender.test>")             # before EHLO
        c.ehlo()
        c.expect(503, "RCPT TO:<user@example.test>")           # before MAIL
        c.expect(501, "MAIL FROM:alice")
        c.expect(555, "MAIL FROM:<a@sender.test> FOO=BAR")
        c.expect(250, "MAIL FROM:<a@sender.test>")
        c.expect(503, "MAIL FROM:<a@sender.test>")             # nested
        c.expect(501, "RCPT TO:nobody")
        for i in range(100):
            c.expect(250, "RCPT TO:<u%d@example.test>" % i)
        c.expect(452, "RCPT TO:<u100@example.test>")           # RFC 5321 limit
        c.expect(250, "RSET")
        # 1023 octets and CRLF: over the limit for MAIL (RFC 5321
        # 4.5.3.1.4 with parameters: 1024), read whole in any segmentation
        long_mail = "MAIL FROM:<%s@sender.test>" % ("a" * 999)
        assert len(long_mail) == 1023
        c.expect(500, long_mail)
        c.expect(221, "QUIT")
    with d.connect(port=sub_port) as c:
        c.greeting()
        c.ehlo()
        c.expect(530, "MAIL FROM:<alice@example.test>")
        c.expect(221, "QUIT")
    m = settled(mport)
    assert message_counts(m) == {("rejected", "syntax"): 7,
                                 ("deferred", "limit"): 1,
                                 ("rejected", "auth"): 1}, message_counts(m)
