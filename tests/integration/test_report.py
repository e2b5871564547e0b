"""DMARC aggregate reports (RFC 9990) end to end, both ways.

Sending: messages with different DMARC results pass through the real
daemon; `mxgate report send --now` (what the daemon runs once per period)
builds the report for the policy domain, which reaches the sink acting as
the rua mailbox. The report mail is checked as a stranger would: the
attachment's file name and the Subject follow the RFC's ABNF, the XML
validates against etc/dmarc-aggregate-2.0.xsd with xmllint (Debian's
libxml2-utils), its counts match what was sent, and its DKIM signature
verifies with dkimpy (Debian's python3-dkim) against the test DNS.
External destinations need their authorising record, size limits in rua=
are honoured, a report is never reported on, evaluations survive kill -9,
and the daemon sends overdue reports by itself.

Reading: `mxgate report import` takes the real-world samples in
../shared/conformance/ and mxgate's own report; `report summary` counts
them."""

import base64
import email
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import dot_stuff, mxgate_bin, queued_id, wait_until
from test_dkim_cli import keygen, run
from test_spf import DNSServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
XSD = os.path.join(ROOT, "etc", "dmarc-aggregate-2.0.xsd")
CONFORMANCE = os.path.abspath(os.path.join(ROOT, "..", "shared", "conformance"))
NS = "{urn:ietf:params:xml:ns:dmarc-2.0}"

try:
    import dkim
except ImportError:
    dkim = None

SPF_FAIL = "v=spf1 ip4:192.0.2.0/24 -all"     # fails from 127.0.0.1


def report_key(workdir):
    """A key for the reporting domain example.test (the From: of reports)."""
    key = os.path.join(workdir, "rep.pem")
    r = run("dkim", "keygen", "--domain", "example.test", "--selector", "rep",
            "--type", "rsa", "--out", key)
    assert r.returncode == 0, r.stderr
    txt = "".join(re.findall(r'"([^"]*)"', r.stdout.decode()))
    return key, txt


class Env:
    """DNS + rua sink + daemon; signer.test publishes DMARC with rua."""

    def __init__(self, mx, dmarc, extra_zone=None, report=None, start=True,
                 rua_args=()):
        self.mx = mx
        self.rsa, rsa_txt = keygen(mx.dir, "rsa1", "rsa")
        self.rep, rep_txt = report_key(mx.dir)
        self.zone = {
            "signer.test": [{"type": "TXT", "value": [SPF_FAIL]},
                            {"type": "A", "value": "192.0.2.10"}],
            "rsa1._domainkey.signer.test": [{"type": "TXT", "value": [rsa_txt]}],
            "rep._domainkey.example.test": [{"type": "TXT", "value": [rep_txt]}],
            "_dmarc.signer.test": [{"type": "TXT", "value": [dmarc]}],
            # a PTR for the summary's reverse DNS
            "1.0.0.127.in-addr.arpa": [{"type": "PTR", "value": "localhost.test"}],
        }
        self.zone.update(extra_zone or {})
        if os.geteuid() == 0:
            # the daemon's `report send` child runs as the daemon's user
            # and reads the signing key, as a reload does
            import pwd
            nobody = pwd.getpwnam("nobody")
            os.chown(self.rep, nobody.pw_uid, nobody.pw_gid)
        self.dns = DNSServer(mx.dir, self.zone)
        self.sink = mx.sink(name="inbox")
        self.rua = mx.sink(*rua_args, name="rua")
        sections = {
            "dns": {"servers": self.dns.hostport, "timeout": "1s"},
            "spf": {"check_helo": "yes", "check_mailfrom": "yes",
                    "time_budget": "3s"},
            "dkim": {"verify": "yes"},
            "dmarc": {"verify": "yes", "time_budget": "3s"},
            "quarantine": {"action": "tag"},
            "route signer.test": {"hosts": self.rua.hostport},
            "route reports.test": {"hosts": self.rua.hostport},
            "dkim sign example.test": {"keys": "rep:%s" % self.rep},
            "report": {"send": "yes", "email": "dmarc-reports@example.test",
                       "org_name": "Example Org", "rate": "0"},
        }
        for sec, kv in (report or {}).items():
            sections.setdefault(sec, {}).update(kv)
        self.d = mx.daemon(self.sink, sections=sections, start=start)

    def stop(self):
        self.dns.stop()

    def send(self, msg, mailfrom="alice@signer.test", helo="client.test"):
        with self.d.connect() as c:
            c.greeting()
            c.expect(250, "EHLO " + helo)
            c.expect(250, "MAIL FROM:<%s>" % mailfrom)
            c.expect(250, "RCPT TO:<user@example.test>")
            c.expect(354, "DATA")
            c.send(dot_stuff(msg) + b".\r\n")
            r = c.read_reply(timeout=15)
        qid = queued_id(r)
        self.d.known_ids.add(qid)
        return qid

    def report_cmd(self, *args, check=True):
        r = subprocess.run([str(mxgate_bin()), "report", "-c", self.d.cfg_path]
                           + list(args), capture_output=True, text=True,
                           timeout=120)
        if check:
            assert r.returncode == 0, "report %s: %s %s" % (args, r.stdout,
                                                            r.stderr)
        return r

    def backdate(self, seconds=172800):
        """Stop the daemon, move every recorded evaluation back (two days:
        into a finished period), restart it."""
        time.sleep(0.3)
        self.d.stop()
        store = os.path.join(self.d.spool, "reports.db")
        r = subprocess.run(["sqlite3", store, "UPDATE evaluations SET time = "
                            "time - %d;" % seconds],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        st = os.stat(self.d.spool)     # sqlite3 ran as us: the daemon's again
        for f in os.listdir(self.d.spool):
            if f.startswith("reports.db"):
                os.chown(os.path.join(self.d.spool, f), st.st_uid, st.st_gid)
        self.d.start()

    def dnsfunc(self, name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        for rec in self.zone.get(name.rstrip(".").lower(), []):
            if rec["type"] == "TXT":
                return "".join(rec["value"]).encode()
        return None


_n = [0]


def message(frm="alice@signer.test", subject="report test"):
    _n[0] += 1
    return ("From: Alice <%s>\r\nTo: <user@example.test>\r\nSubject: %s\r\n"
            "Date: Sun, 29 Nov 2026 12:00:00 +0000\r\n"
            "Message-ID: <rep-%d-%d@signer.test>\r\n\r\nHello.\r\n"
            % (frm, subject, os.getpid(), _n[0])).encode()


def signed(env, msg):
    assert dkim is not None
    with open(env.rsa, "rb") as f:
        key = f.read()
    sig = dkim.sign(msg, b"rsa1", b"signer.test", key,
                    include_headers=[b"from", b"to", b"subject", b"date"])
    return sig + msg


def attachment(eml):
    """(filename, xml bytes) of the report mail."""
    m = email.message_from_bytes(eml)
    for part in m.walk():
        fn = part.get_filename()
        if fn and part.get_content_type() == "application/gzip":
            return fn, gzip.decompress(part.get_payload(decode=True))
    raise AssertionError("no application/gzip attachment: %r" % eml[:2000])


def xsd_valid(xml, workdir):
    path = os.path.join(workdir, "report-%d.xml" % time.monotonic_ns())
    with open(path, "wb") as f:
        f.write(xml)
    r = subprocess.run(["xmllint", "--noout", "--schema", XSD, path],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "xmllint: %s%s" % (r.stdout, r.stderr)
    return path


def records(xml):
    root = ET.fromstring(xml)
    out = []
    for rec in root.findall(NS + "record"):
        row = rec.find(NS + "row")
        pe = row.find(NS + "policy_evaluated")
        ids = rec.find(NS + "identifiers")
        ar = rec.find(NS + "auth_results")
        out.append({
            "ip": row.findtext(NS + "source_ip"),
            "count": int(row.findtext(NS + "count")),
            "disposition": pe.findtext(NS + "disposition"),
            "dkim": pe.findtext(NS + "dkim"),
            "spf": pe.findtext(NS + "spf"),
            "reasons": [r.findtext(NS + "type") for r in pe.findall(NS + "reason")],
            "header_from": ids.findtext(NS + "header_from"),
            "envelope_from": ids.findtext(NS + "envelope_from"),
            "envelope_to": ids.findtext(NS + "envelope_to"),
            "dkim_results": [(d.findtext(NS + "domain"), d.findtext(NS + "selector"),
                              d.findtext(NS + "result"))
                             for d in ar.findall(NS + "dkim")],
            "spf_result": [(s.findtext(NS + "domain"), s.findtext(NS + "result"))
                           for s in ar.findall(NS + "spf")],
        })
    return root, out


needs_tools = pytest.mark.skipif(
    shutil.which("xmllint") is None or dkim is None,
    reason="needs xmllint (libxml2-utils) and dkimpy (python3-dkim): "
           "scripts/deps.sh test installs them")


@pytest.fixture
def env(mx):
    made = []

    def make(*a, **kw):
        e = Env(mx, *a, **kw)
        made.append(e)
        return e
    yield make
    for e in made:
        e.stop()


@needs_tools
def test_report_end_to_end(env, mx):
    e = env("v=DMARC1; p=quarantine; rua=mailto:dmarc@signer.test,"
            "mailto:agg@reports.test!10m",
            extra_zone={"signer.test._report._dmarc.reports.test":
                        [{"type": "TXT", "value": ["v=DMARC1"]}]})
    for _ in range(2):                      # DKIM aligned: pass
        e.send(signed(e, message()))
    for _ in range(3):                      # SPF and DKIM fail: quarantine
        e.send(message())
    e.send(message(), mailfrom="")          # null sender: helo scope
    # a report itself is never reported on (it passes DMARC) ...
    e.send(signed(e, message(subject="Report Domain: signer.test Submitter: "
                                     "x.test Report-ID: <1@x.test>")))
    # ... but a spoofer cannot hide behind the Subject
    e.send(message(subject="Report Domain: signer.test Submitter: x.test "
                           "Report-ID: <2@x.test>"))
    e.sink.wait_messages(8, daemon=e.d)

    r = e.report_cmd("send", "--now")
    assert r.stdout.strip() == "queued 1, skipped 0, deferred 0, failed 0", r.stdout
    # one message to both destinations (two routes: two deliveries)
    msgs = e.rua.wait_messages(2, daemon=e.d)
    time.sleep(0.5)
    msgs = e.rua.messages()
    assert len(msgs) == 2
    assert sorted(r for m in msgs for r in m["rcpts"]) == [
        "agg@reports.test", "dmarc@signer.test"]
    assert msgs[0]["eml"] == msgs[1]["eml"]
    m = msgs[0]
    assert m["mail_from"] == "", m["mail_from"]   # null reverse-path
    eml = m["eml"]
    hdr = email.message_from_bytes(eml)
    subject = re.sub(r"\s+", " ", hdr["Subject"])
    sm = re.fullmatch(r"Report Domain: signer\.test Submitter: (\S+) "
                      r"Report-ID: <([^<>]+)>", subject)
    assert sm, subject
    assert hdr["From"].strip().endswith("dmarc-reports@example.test")
    assert hdr["Message-ID"].strip() == "<%s>" % sm.group(2)

    fn, xml = attachment(eml)
    fm = re.fullmatch(r"([a-z0-9.-]+)!signer\.test!(\d+)!(\d+)!([A-Za-z0-9]+)\.xml\.gz", fn)
    assert fm, fn
    xsd_valid(xml, mx.dir)
    root, recs = records(xml)
    meta = root.find(NS + "report_metadata")
    assert meta.findtext(NS + "org_name") == "Example Org"
    assert meta.findtext(NS + "email") == "dmarc-reports@example.test"
    assert meta.findtext(NS + "report_id") == sm.group(2)
    begin = int(meta.find(NS + "date_range").findtext(NS + "begin"))
    end = int(meta.find(NS + "date_range").findtext(NS + "end"))
    assert (begin, end) == (int(fm.group(2)), int(fm.group(3)))
    assert begin <= time.time() and end >= time.time() - 120
    pp = root.find(NS + "policy_published")
    assert pp.findtext(NS + "domain") == "signer.test"
    assert pp.findtext(NS + "p") == "quarantine"

    assert sum(r["count"] for r in recs) == 7, recs   # the report excluded
    passed = [r for r in recs if r["dkim"] == "pass"]
    assert sum(r["count"] for r in passed) == 2, recs
    for r in passed:
        assert r["disposition"] == "pass"
        assert ("signer.test", "rsa1", "pass") in r["dkim_results"]
    failed = [r for r in recs if r["dkim"] == "fail"]
    assert sum(r["count"] for r in failed) == 5
    for r in failed:
        assert r["disposition"] == "quarantine", r
        assert r["spf"] == "fail"
        assert r["ip"] == "127.0.0.1"
        assert r["header_from"] == "signer.test"
        assert r["envelope_to"] == "example.test"
    null = [r for r in failed if r["envelope_from"] == ""]
    assert sum(r["count"] for r in null) == 1, failed
    # RFC 7208 2.4: the null sender's MAIL FROM identity is the HELO name
    assert null[0]["spf_result"] == [("client.test", "none")], null

    # DKIM: the report passes DMARC by its signature (RFC 9990 3.1.1)
    assert dkim.verify(eml, dnsfunc=e.dnsfunc), "report signature does not verify"
    sig = dkim.DKIM(eml)
    assert re.search(rb"\bd=example\.test\b", eml.split(b"\r\n\r\n")[0])

    # bookkeeping: listed once, nothing new to send
    lst = json.loads(e.report_cmd("list", "--json").stdout)
    assert [x["state"] for x in lst] == ["queued"], lst
    assert lst[0]["id"] == sm.group(2)
    r = e.report_cmd("send", "--now")
    assert r.stdout.startswith("queued 0,"), r.stdout
    del sig


@needs_tools
def test_external_destination_needs_authorisation(env):
    """RFC 9990 4: reports.test publishes no record for signer.test."""
    e = env("v=DMARC1; p=none; rua=mailto:agg@reports.test")
    e.send(message())
    e.sink.wait_messages(1, daemon=e.d)
    r = e.report_cmd("send", "--now")
    assert r.stdout.startswith("queued 0, skipped 1"), r.stdout
    lst = json.loads(e.report_cmd("list", "--json").stdout)
    assert lst[0]["state"] == "skipped"
    assert "not authorised" in lst[0]["why"], lst
    time.sleep(1.5)
    assert e.rua.messages() == []
    assert "refused" in e.d.log() or "not authorised" in r.stderr + e.d.log()


@needs_tools
def test_external_override_to_another_host_refused(env):
    """RFC 9990 4 step 9: an override on another host: neither is used."""
    e = env("v=DMARC1; p=none; rua=mailto:agg@reports.test",
            extra_zone={"signer.test._report._dmarc.reports.test": [
                {"type": "TXT", "value": ["v=DMARC1; rua=mailto:x@elsewhere.test"]}]})
    e.send(message())
    e.sink.wait_messages(1, daemon=e.d)
    r = e.report_cmd("send", "--now")
    assert r.stdout.startswith("queued 0, skipped 1"), r.stdout
    lst = json.loads(e.report_cmd("list", "--json").stdout)
    assert "another host" in lst[0]["why"], lst


@needs_tools
def test_size_limit_skips_destination(env):
    """RFC 9990 3: a report larger than the rua= limit is not sent there."""
    e = env("v=DMARC1; p=none; rua=mailto:small@signer.test!1k,"
            "mailto:big@signer.test!1m")
    e.send(message())
    e.sink.wait_messages(1, daemon=e.d)
    e.report_cmd("send", "--now")
    m = e.rua.wait_messages(1, daemon=e.d)[0]
    assert m["rcpts"] == ["big@signer.test"], m["rcpts"]
    assert len(m["eml"]) > 1024


@needs_tools
def test_failing_destination_suppressed(env):
    """A destination whose report delivery fails is noted; after
    max_failures in a row it gets no reports for a while."""
    e = env("v=DMARC1; p=none; rua=mailto:gone@signer.test,"
            "mailto:dmarc@signer.test",
            rua_args=("--reject-rcpt", "^gone@=550 5.1.1 no such user"),
            report={"report": {"max_failures": "1", "suppress": "1d"}})
    e.send(message())
    e.sink.wait_messages(1, daemon=e.d)
    e.report_cmd("send", "--now")
    m = e.rua.wait_messages(1, daemon=e.d)[0]
    assert m["rcpts"] == ["dmarc@signer.test"]
    e.d.wait_log(r"report to <gone@signer.test> failed")
    time.sleep(1.1)                     # the next report: a later second
    e.send(message())
    e.sink.wait_messages(2, daemon=e.d)
    time.sleep(1.1)
    r = e.report_cmd("send", "--now")
    assert r.stdout.startswith("queued 1"), r.stdout
    m = e.rua.wait_messages(2, daemon=e.d)[1]
    assert m["rcpts"] == ["dmarc@signer.test"]
    lst = json.loads(e.report_cmd("list", "--json").stdout)
    assert "gone@signer.test suppressed" in lst[0]["why"], lst
    # no DSN went anywhere about the failed report (null sender)
    assert "failed recipients not bounced: null sender" in e.d.log()
    assert "bounce queued" not in e.d.log()


@needs_tools
def test_one_send_at_a_time(env):
    """Two runs at once would send a pending report twice: the second
    is refused while the first holds the store's lock."""
    import fcntl
    e = env("v=DMARC1; p=none; rua=mailto:dmarc@signer.test")
    e.send(message())
    e.sink.wait_messages(1, daemon=e.d)
    lock = os.path.join(e.d.spool, "reports.db.lock")
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        r = e.report_cmd("send", "--now", check=False)
        assert r.returncode == 1
        assert "another `mxgate report send` is running" in r.stderr
    r = e.report_cmd("send", "--now")
    assert r.stdout.startswith("queued 1"), r.stdout


@needs_tools
def test_report_child_holds_no_client_socket(env):
    """The daemon's `report send` child must not inherit client sockets:
    a QUIT is answered and the connection closes at once even while a
    child is running (here: pausing 60 s between two reports)."""
    e = env("v=DMARC1; p=none; rua=mailto:dmarc@signer.test",
            extra_zone={"_dmarc.other.test": [{"type": "TXT", "value": [
                "v=DMARC1; p=none; rua=mailto:dmarc@signer.test"]}],
                "other.test": [{"type": "TXT", "value": [SPF_FAIL]}],
                "other.test._report._dmarc.signer.test": [
                    {"type": "TXT", "value": ["v=DMARC1"]}]},
            report={"report": {"rate": "1"},
                    "limits": {"command_timeout": "60"}})
    e.send(message())
    e.send(message(frm="bob@other.test"), mailfrom="bob@other.test")
    e.sink.wait_messages(2, daemon=e.d)
    e.backdate()
    c = e.d.connect()
    c.greeting()
    e.d.wait_log(r"report send started", timeout=30)
    e.rua.wait_messages(1, timeout=30, daemon=e.d)   # the child now pauses
    c.expect(221, "QUIT")
    t = time.monotonic()
    assert c.wait_closed(timeout=10)
    assert time.monotonic() - t < 3, "closed after %.1fs" % (time.monotonic() - t)
    # one report of two: the child is still in its pause
    assert len(e.rua.messages()) == 1, "the child ended: the test proves nothing"
    c.close()


@needs_tools
def test_records_survive_kill9(env):
    e = env("v=DMARC1; p=none; rua=mailto:dmarc@signer.test")
    for _ in range(4):
        e.send(message())
    e.sink.wait_messages(4, daemon=e.d)
    time.sleep(0.3)
    e.d.kill9()
    r = e.report_cmd("send", "--now")      # daemon down: queued in the spool
    assert r.stdout.startswith("queued 1"), r.stdout
    e.d.start()                             # recovers and delivers it
    m = e.rua.wait_messages(1, daemon=e.d)[0]
    _, xml = attachment(m["eml"])
    _, recs = records(xml)
    assert sum(r["count"] for r in recs) == 4, recs


@needs_tools
def test_daemon_sends_overdue_report(env, mx):
    """The daemon runs `report send` by itself shortly after start: a
    finished UTC day is reported with its whole date range."""
    e = env("v=DMARC1; p=reject; rua=mailto:dmarc@signer.test")
    e.send(signed(e, message()))
    e.sink.wait_messages(1, daemon=e.d)
    e.backdate()
    m = e.rua.wait_messages(1, timeout=60, daemon=e.d)[0]
    fn, xml = attachment(m["eml"])
    root, recs = records(xml)
    dr = root.find(NS + "report_metadata").find(NS + "date_range")
    begin, end = int(dr.findtext(NS + "begin")), int(dr.findtext(NS + "end"))
    assert begin % 86400 == 0 and end - begin == 86399, (begin, end)
    assert [r["count"] for r in recs] == [1]
    assert recs[0]["disposition"] == "pass"
    assert "report send started" in e.d.log()


# ---------------------------------------------------------------- import

def samples():
    agg = os.path.join(CONFORMANCE, "parsedmarc-samples", "aggregate")
    if not os.path.isdir(agg):
        pytest.skip("../shared/conformance/parsedmarc-samples is absent")
    return sorted(os.path.join(agg, f) for f in os.listdir(agg))


def report_run(*args, check=True):
    r = subprocess.run([str(mxgate_bin()), "report"] + list(args),
                       capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, "%s: %s %s" % (args, r.stdout, r.stderr)
    return r


def test_import_real_world_samples(mx):
    store = os.path.join(mx.dir, "owner.db")
    files = samples()
    r = report_run("--store", store, "import", *files, check=False)
    lines = r.stdout.splitlines()
    errors = [l for l in lines if ": error: " in l]
    new = [l for l in lines if ": new " in l]
    # the malformed ones are refused with a reason; every other is stored
    assert all(("invalid" in l or "empty" in l) for l in errors), errors
    assert len(new) >= len(files) - 2, r.stdout
    assert r.returncode == (1 if errors else 0)
    # importing again: all duplicates
    r2 = report_run("--store", store, "import", *files, check=False)
    assert ": new " not in r2.stdout, r2.stdout
    dup = [l for l in lines if ": duplicate " in l]   # one report, two files
    assert r2.stdout.count(": duplicate ") == len(new) + len(dup)

    # the summary counts what the reports say (JSON: --no-dns)
    s = json.loads(report_run("--store", store, "summary", "--json",
                              "--no-dns").stdout)
    total = 0
    for l in new:
        total += int(re.search(r"messages=(\d+)", l).group(1))
    assert s["messages"] == total, (s["messages"], total)
    assert sum(x["messages"] for x in s["sources"]) == total
    one = [x for x in s["sources"] if x["reporter"] and x["messages"] > 0]
    assert one


def test_import_outlook_sample_exact(mx):
    samples()
    path = os.path.join(CONFORMANCE, "parsedmarc-samples", "aggregate",
                        "protection.outlook.com!example.com!1711756800!1711843200.xml")
    xml = ET.parse(path).getroot()
    want = sum(int(r.findtext("row/count")) for r in xml.findall("record"))
    store = os.path.join(mx.dir, "o.db")
    r = report_run("--store", store, "import", path)
    assert "messages=%d" % want in r.stdout, r.stdout
    s = json.loads(report_run("--store", store, "summary", "--json", "--no-dns",
                              "--domain", "example.com").stdout)
    assert s["messages"] == want
    passes = 0
    for rec in xml.findall("record"):
        pe = rec.find("row/policy_evaluated")
        if pe.findtext("dkim") == "pass" or pe.findtext("spf") == "pass":
            passes += int(rec.findtext("row/count"))
    assert s["dmarc_pass"] == passes
    # --since after the report's range: nothing
    s = json.loads(report_run("--store", store, "summary", "--json", "--no-dns",
                              "--since", "2030-01-01").stdout)
    assert s["messages"] == 0


@needs_tools
def test_import_own_report_and_summary_rdns(env, mx):
    """mxgate's own report, as a domain owner would receive it, imports
    with the counts that were sent; the summary names the source by its
    reverse DNS."""
    e = env("v=DMARC1; p=none; rua=mailto:dmarc@signer.test")
    for _ in range(3):
        e.send(message())
    e.send(signed(e, message()))
    e.sink.wait_messages(4, daemon=e.d)
    e.report_cmd("send", "--now")
    m = e.rua.wait_messages(1, daemon=e.d)[0]
    path = os.path.join(mx.dir, "own.eml")
    with open(path, "wb") as f:
        f.write(m["eml"])
    store = os.path.join(mx.dir, "own.db")
    r = report_run("-c", e.d.cfg_path, "--store", store, "import", path)
    assert re.search(r": new Example\\x20Org \S+ signer\.test .* messages=4 "
                     r"format=rfc9990", r.stdout), r.stdout
    r = report_run("-c", e.d.cfg_path, "--store", store, "summary")
    assert "localhost.test" in r.stdout, r.stdout
    s = json.loads(report_run("-c", e.d.cfg_path, "--store", store, "summary",
                              "--json").stdout)
    assert s["messages"] == 4 and s["dmarc_pass"] == 1, s
    src = s["sources"][0]
    assert src["source_ip"] == "127.0.0.1"
    assert src["reverse_dns"] == "localhost.test"
    assert src["reporter"] == "Example Org"


def test_import_hostile(mx):
    store = os.path.join(mx.dir, "h.db")
    bomb = os.path.join(mx.dir, "bomb.xml.gz")
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        chunk = b"\0" * (1 << 20)
        for _ in range(200):
            f.write(chunk)
    laughs = os.path.join(mx.dir, "laughs.xml")
    with open(laughs, "w") as f:
        f.write('<?xml version="1.0"?>\n<!DOCTYPE feedback [\n'
                '<!ENTITY a "aaaaaaaaaa">\n'
                + "".join('<!ENTITY %s "%s">\n' % (chr(98 + i), ("&%s;" % chr(97 + i)) * 10)
                          for i in range(8))
                + ']>\n<feedback><report_metadata><org_name>&i;</org_name>'
                  '</report_metadata></feedback>\n')
    junk = os.path.join(mx.dir, "junk.bin")
    with open(junk, "wb") as f:
        f.write(os.urandom(4096))
    for path in (bomb, laughs, junk):
        t = time.monotonic()
        r = report_run("--store", store, "import", path, check=False)
        assert r.returncode == 1, r.stdout
        assert ": error: " in r.stdout, r.stdout
        assert time.monotonic() - t < 60
    s = json.loads(report_run("--store", store, "summary", "--json",
                              "--no-dns").stdout)
    assert s["messages"] == 0


def test_report_cli_errors(mx):
    d = mx.daemon(start=False)
    r = report_run("-c", d.cfg_path, "send", check=False)
    assert r.returncode == 1
    assert "send = no" in r.stderr
    r = report_run("-c", d.cfg_path, "bogus", check=False)
    assert r.returncode == 2
    r = report_run("--store", os.path.join(mx.dir, "x.db"), "import",
                   os.path.join(mx.dir, "missing.xml"), check=False)
    assert r.returncode == 1 and "No such file" in r.stdout


def test_config_send_needs_signing_key(mx):
    d = mx.daemon(start=False, sections={
        "report": {"send": "yes", "email": "dmarc@nokey.test"}})
    r = subprocess.run([str(mxgate_bin()), "config", "check", "-c", d.cfg_path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "[dkim sign nokey.test]" in r.stdout + r.stderr
    d = mx.daemon(start=False, sections={"report": {"send": "yes"}})
    r = subprocess.run([str(mxgate_bin()), "config", "check", "-c", d.cfg_path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "email" in r.stdout + r.stderr
    d = mx.daemon(start=False, sections={"report": {"interval": "5h"}})
    r = subprocess.run([str(mxgate_bin()), "config", "check", "-c", d.cfg_path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "divides a day" in r.stdout + r.stderr
