"""DMARC end to end (RFC 9989; RFC 7489 records): the real daemon, a real
DNS server (tests/tools/dnsserver.py) serving SPF, DKIM and DMARC
records, messages over SMTP from 127.0.0.1, and what reaches the sink:
the Authentication-Results field (dmarc=RESULT (p= sp= dis= override=)
action= header.from=), rejections (550 5.7.1), deferrals (451 4.7.0),
the quarantine (tag and hold + the `mxgate quarantine` CLI), local
overrides ([allow], reject_override) and policy discovery (tree walk,
PSL, psd=, sp=, np=, t=/pct=). Hybrid deployments ([hybrid]) are in
test_dmarc_hybrid.py.

Every domain's SPF lets only 192.0.2.1 send (v=spf1 ip4:192.0.2.1 -all)
unless said otherwise, so mail from 127.0.0.1 fails SPF: the seed
scenario of a domain that only allows its cloud provider.
"""

import base64
import os
import re
import subprocess
import time

import pytest

from conftest import (PYTHON, dot_stuff, mxgate_bin, queued_id, spawn,
                      stop_process, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
DNSSERVER = os.path.join(HERE, "..", "tools", "dnsserver.py")
AUTHSERV = "mx.example.test"

SPF_FAIL = "v=spf1 ip4:192.0.2.1 -all"      # fails from 127.0.0.1
SPF_PASS = "v=spf1 ip4:127.0.0.0/8 -all"    # passes from 127.0.0.1

try:
    import dkim
except ImportError:
    dkim = None


# ---------------------------------------------------------------- DNS

def txt(*values):
    return [{"type": "TXT", "value": [v]} for v in values]


def a_rec(ip="192.0.2.10"):
    return [{"type": "A", "value": ip}]


def zone(dmarc=None, extra=None):
    """The base zone: sender.test fails SPF from loopback (with the
    DMARC record `dmarc` when given), good.test and esp.test pass."""
    z = {
        "sender.test": txt(SPF_FAIL) + a_rec(),
        "good.test": txt(SPF_PASS) + a_rec(),
        "esp.test": txt(SPF_PASS) + a_rec(),
    }
    if dmarc is not None:
        z["_dmarc.sender.test"] = txt(dmarc)
    z.update(extra or {})
    return z


class DNS:
    def __init__(self, workdir, z, n):
        import json
        self.zone_path = os.path.join(workdir, "zone%d.json" % n)
        with open(self.zone_path, "w") as f:
            json.dump(z, f)
        self.proc = spawn([PYTHON, DNSSERVER, "--port", "0", "--zone", self.zone_path],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
        m = re.match(r"LISTENING (\d+)", self.proc.stdout.readline() or "")
        if not m:
            self.stop()
            pytest.fail("dnsserver did not start: %s" % self.proc.stderr.read())
        self.hostport = "127.0.0.1:%s" % m.group(1)

    def stop(self):
        stop_process(self.proc, timeout=5)


# ---------------------------------------------------------------- messages

_n = [0]


def message(frm="alice@sender.test", subject="dmarc test", headers=(),
            from_fields=None, body="Hello.\r\n"):
    """A message; `headers` go on top (e.g. a relay's Received field),
    from_fields replaces the single From field (a list, maybe empty)."""
    _n[0] += 1
    if from_fields is None:
        from_fields = ["From: Alice <%s>" % frm]
    hdr = list(headers) + list(from_fields) + [
        "To: <user@example.test>",
        "Subject: " + subject,
        "Date: Tue, 01 Dec 2026 10:00:00 +0000",
        "Message-ID: <dmarc-%d-%d@sender.test>" % (os.getpid(), _n[0]),
    ]
    return ("\r\n".join(hdr) + "\r\n\r\n" + body).encode()


def fields(eml):
    """[(name, unfolded value)] of the header section."""
    head = eml.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    out = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and out:
            out[-1][1] += " " + line.strip()
        else:
            name, _, val = line.partition(":")
            out.append([name.strip(), val.strip()])
    return [tuple(f) for f in out]


def header(eml, name):
    return [v for n, v in fields(eml) if n.lower() == name.lower()]


def authres(eml):
    """Our Authentication-Results field (unfolded): the first field, the
    only one with our authserv-id."""
    fs = fields(eml)
    assert fs and fs[0][0].lower() == "authentication-results", \
        "Authentication-Results is not the first field: %r" % fs[:3]
    ours = [v for n, v in fs if n.lower() == "authentication-results"
            and re.match(r"\s*%s\s*;" % re.escape(AUTHSERV), v)]
    assert len(ours) == 1, "expected one Authentication-Results of ours: %r" % ours
    return ours[0]


class Dmarc:
    """The dmarc= resinfo of an Authentication-Results value."""

    def __init__(self, ar):
        self.ar = ar
        m = re.search(r"(?:^|;)\s*dmarc\s*=\s*([A-Za-z]+)", ar)
        assert m, "no dmarc= in %r" % ar
        self.result = m.group(1).lower()
        comment, rest, depth, i = [], [], 0, m.end()
        while i < len(ar):
            ch = ar[i]
            if ch == "\\" and depth:
                comment.append(ar[i:i + 2])
                i += 2
                continue
            if ch == "(":
                depth += 1
                if depth > 1:
                    comment.append(ch)
            elif ch == ")" and depth:
                depth -= 1
                if depth:
                    comment.append(ch)
                else:
                    comment.append(" ")
            elif depth:
                comment.append(ch)
            elif ch == ";":
                break
            else:
                rest.append(ch)
            i += 1
        self.comment = re.sub(r"\s+", " ", "".join(comment)).strip()
        rest = "".join(rest)
        self.props = {k.lower(): v for k, v in re.findall(r"([\w.-]+)=(\S+)", rest)}
        self.action = self.props.get("action")
        self.header_from = self.props.get("header.from")
        self.tags = {}      # the first of each (a reason may follow)
        for k, v in re.findall(r"(?<![\w.-])([A-Za-z]+)=([\w.-]+)", self.comment):
            self.tags.setdefault(k.lower(), v.lower())

    def check(self, result, action=None, hfrom="sender.test", **tags):
        assert self.result == result, "dmarc=%s, expected %s: %r" % (
            self.result, result, self.ar)
        if action is not None:
            assert self.action == action, "action=%s, expected %s: %r" % (
                self.action, action, self.ar)
        if hfrom is not None:
            assert (self.header_from or "").lower() == hfrom, \
                "header.from=%s, expected %s: %r" % (self.header_from, hfrom, self.ar)
        for k, v in tags.items():
            assert self.tags.get(k) == v, "comment %s=%s, expected %s: %r" % (
                k, self.tags.get(k), v, self.ar)
        return self


def resinfo(ar, method):
    m = re.search(r"(?:^|;)\s*%s\s*=\s*([A-Za-z]+)" % method, ar)
    return m and m.group(1).lower()


# ---------------------------------------------------------------- gateway

class Gateway:
    """DNS server + sink + mxgate with SPF, DKIM and DMARC on."""

    def __init__(self, mx, z, cfg, n):
        self.mx = mx
        self.dns = DNS(mx.dir, z, n)
        self.sink = mx.sink()
        sections = {
            "dns": {"servers": self.dns.hostport, "timeout": "1s"},
            "spf": {"check_helo": "no", "check_mailfrom": "yes",
                    "time_budget": "3s"},
            "dkim": {"verify": "yes"},
            "dmarc": {"verify": "yes", "time_budget": "2s"},
        }
        for sec, keys in (cfg or {}).items():
            sections.setdefault(sec, {}).update(keys)
        self.d = mx.daemon(self.sink, sections=sections)

    def send(self, msg, mailfrom="alice@sender.test", helo="client.test"):
        with self.d.connect() as c:
            c.greeting()
            c.expect(250, "EHLO " + helo)
            r = c.cmd("MAIL FROM:<%s>" % mailfrom)
            if r.code != 250:
                return r
            c.expect(250, "RCPT TO:<user@example.test>")
            c.expect(354, "DATA")
            c.send(dot_stuff(msg) + b".\r\n")
            return c.read_reply(timeout=15)

    def deliver(self, msg, mailfrom="alice@sender.test", **kw):
        """Send; expect 250 and the message at the sink: (eml, Dmarc)."""
        n = len(self.sink.messages())
        r = self.send(msg, mailfrom, **kw)
        qid = queued_id(r)
        self.d.known_ids.add(qid)
        eml = self.sink.wait_messages(n + 1, daemon=self.d)[-1]["eml"]
        self.qid = qid
        return eml, Dmarc(authres(eml))

    def summary(self, qid=None):
        """The summary log line (status=), of qid or the last one."""
        lines = [l for l in self.d.log().splitlines()
                 if "session=" in l and "status=" in l and " relay=" not in l
                 and (qid is None or qid in l)]
        assert lines, "no summary line%s in the log" % (" for " + qid if qid else "")
        return lines[-1]

    def assert_nothing_delivered(self):
        time.sleep(0.3)
        assert self.sink.messages() == [], "a message reached the sink"
        assert self.d.spool_files("queue") == [], self.d.spool_files("queue")


@pytest.fixture
def gw(mx):
    made = []

    def make(z, cfg=None):
        g = Gateway(mx, z, cfg, len(made))
        made.append(g)
        return g
    yield make
    for g in made:
        g.dns.stop()


def assert_rejected(r, domain="sender.test"):
    assert r.code == 550 and r.first.startswith("550 5.7.1"), r
    assert "dmarc" in r.text.lower() and domain in r.text.lower(), \
        "the 550 text should mention DMARC and %s: %r" % (domain, r)


def assert_deferred(r):
    assert r.code == 451 and r.first.startswith("451 4.7.0"), r


# ---------------------------------------------------------------- seed scenario

def test_no_record_is_none_delivered(mx, gw):
    g = gw(zone())
    eml, dm = g.deliver(message())
    ar = authres(eml)
    assert resinfo(ar, "spf") == "fail", ar
    assert resinfo(ar, "dkim") == "none", ar
    dm.check("none", action="none")
    assert "p" not in dm.tags, dm.ar


def test_p_none_fail_delivered_stamped_and_logged(mx, gw):
    g = gw(zone("v=DMARC1; p=none; rua=mailto:d@sender.test"))
    forged = "Authentication-Results: %s; dmarc=pass header.from=sender.test" % AUTHSERV
    eml, dm = g.deliver(message(headers=[forged]))
    ar = authres(eml)
    assert resinfo(ar, "spf") == "fail", ar
    dm.check("fail", action="none", p="none", sp="none", dis="none")
    assert "override" not in dm.tags, ar
    assert header(eml, "X-Mxgate-Verdict") == [], "p=none must not be tagged"
    line = g.summary(g.qid)
    assert re.search(r"\bdmarc=fail\b", line) and re.search(r"\baction=none\b", line), line


def test_p_reject_fail_rejected(mx, gw):
    g = gw(zone("v=DMARC1; p=reject; rua=mailto:d@sender.test"))
    assert_rejected(g.send(message()))
    g.assert_nothing_delivered()
    # the same daemon still takes a passing message (SPF aligned)
    _, dm = g.deliver(message(frm="bob@good.test"), mailfrom="bob@good.test")
    dm.check("none", action="none", hfrom="good.test")


def test_reject_summary_logged(mx, gw):
    g = gw(zone("v=DMARC1; p=reject"))
    assert_rejected(g.send(message()))
    line = wait_until(lambda: [l for l in g.d.log().splitlines()
                               if "session=" in l and "status=" in l],
                      5, what="a summary line for the rejected message")[-1]
    assert re.search(r"\bdmarc=fail\b", line) and "action=" in line, line


def test_summary_line_is_well_formed(mx, gw):
    """The summary line is key=value pairs, a value quoted once when it
    has spaces (lib/log log_safe): no doubled quotes around the DMARC
    verdict and reason."""
    g = gw(zone("v=DMARC1; p=quarantine"))
    g.deliver(message())
    line = g.summary(g.qid)
    rest = line.split(" info: ", 1)[1]
    pairs = re.findall(r'([\w.-]+)=("(?:[^"\\]|\\.)*"|[^\s"]+)(?=\s|$)', rest)
    rebuilt = " ".join("%s=%s" % kv for kv in pairs)
    assert rebuilt == rest, "summary line is not clean key=value pairs:\n%s" % rest
    kv = dict(pairs)
    assert kv.get("dmarc") == "fail" and kv.get("action") == "quarantine", kv


def test_spf_aligned_pass_delivered(mx, gw):
    g = gw(zone(extra={"_dmarc.good.test": txt("v=DMARC1; p=reject")}))
    eml, dm = g.deliver(message(frm="bob@good.test"), mailfrom="bob@good.test")
    assert resinfo(authres(eml), "spf") == "pass"
    dm.check("pass", action="none", hfrom="good.test", p="reject")
    assert header(eml, "X-Mxgate-Verdict") == []


def test_null_sender_aligns_with_helo_spf(mx, gw):
    """RFC 9989 4.4.2 / RFC 7208 2.4: for the null sender the SPF identity
    is the HELO name; the MAIL FROM check made it even with check_helo =
    no (the gateway's setting here)."""
    g = gw(zone(extra={"_dmarc.good.test": txt("v=DMARC1; p=reject")}))
    _, dm = g.deliver(message(frm="bob@good.test"), mailfrom="", helo="good.test")
    dm.check("pass", action="none", hfrom="good.test")


def test_spf_pass_relaxed_subdomain_aligns(mx, gw):
    """MAIL FROM at a subdomain of the From domain aligns in relaxed mode
    (the default), not with aspf=s."""
    z = zone(extra={"bounce.good.test": txt(SPF_PASS) + a_rec(),
                    "_dmarc.good.test": txt("v=DMARC1; p=reject")})
    g = gw(z)
    _, dm = g.deliver(message(frm="bob@good.test"), mailfrom="b@bounce.good.test")
    dm.check("pass", action="none", hfrom="good.test")


def test_spf_strict_alignment_rejects_subdomain(mx, gw):
    z = zone(extra={"bounce.good.test": txt(SPF_PASS) + a_rec(),
                    "_dmarc.good.test": txt("v=DMARC1; p=reject; aspf=s")})
    g = gw(z)
    assert_rejected(g.send(message(frm="bob@good.test"), mailfrom="b@bounce.good.test"),
                    "good.test")


def test_enforce_no_only_stamps(mx, gw):
    g = gw(zone("v=DMARC1; p=reject"), {"dmarc": {"enforce": "no"}})
    _, dm = g.deliver(message())
    dm.check("fail", p="reject")


RECORDS = [
    # two records at one name: no policy (RFC 9989 4.10 step 2)
    (txt("v=DMARC1; p=reject", "v=DMARC1; p=none"), "none", None),
    # a bad p= with a valid rua= is p=none (RFC 7489 6.6.3)
    (txt("v=DMARC1; p=bogus; rua=mailto:d@sender.test"), "fail", "none"),
    # a bad p= without rua=: not a usable record
    (txt("v=DMARC1; p=bogus"), "none", None),
    # not a DMARC record at all
    (txt("v=spf1 -all"), "none", None),
]


@pytest.mark.parametrize("rrs,result,p", RECORDS,
                         ids=["two-records", "bad-p-rua", "bad-p", "not-dmarc"])
def test_unusable_records(mx, gw, rrs, result, p):
    z = zone(extra={"_dmarc.sender.test": rrs})
    g = gw(z)
    _, dm = g.deliver(message())
    dm.check(result, action="none")
    if p:
        assert dm.tags.get("p") == p, dm.ar


FROM_FORMS = {
    "quoted-comma": ['From: "Doe, Alice" <alice@sender.test>'],
    "comment": ["From: alice@sender.test (Alice, at work)"],
    "folded": ["From: Alice\r\n\t<alice@SENDER.test>"],
    "encoded-word": ["From: =?utf-8?q?Al=C3=AFce?= <alice@sender.test>"],
}


@pytest.mark.parametrize("case", sorted(FROM_FORMS))
def test_single_author_forms(mx, gw, case):
    """One author address however the From field dresses it: evaluated
    for sender.test (p=none: delivered), never a bad From."""
    g = gw(zone("v=DMARC1; p=none"), {"dmarc": {"bad_from": "accept"}})
    _, dm = g.deliver(message(from_fields=FROM_FORMS[case]))
    dm.check("fail", action="none", p="none")


def test_state_does_not_leak_between_transactions(mx, gw):
    """Quarantined, rejected and clean messages on one connection: each
    judged on its own."""
    z = zone("v=DMARC1; p=quarantine",
             {"_dmarc.good.test": txt("v=DMARC1; p=reject"),
              "evil.test": txt(SPF_FAIL) + a_rec(),
              "_dmarc.evil.test": txt("v=DMARC1; p=reject")})
    g = gw(z)
    with g.d.connect() as c:
        c.greeting()
        c.ehlo()
        for frm, code in (("alice@sender.test", 250), ("bob@good.test", 250),
                          ("eve@evil.test", 550), ("bob@good.test", 250)):
            c.expect(250, "MAIL FROM:<%s>" % frm)
            c.expect(250, "RCPT TO:<user@example.test>")
            c.expect(354, "DATA")
            c.send(dot_stuff(message(frm=frm, subject=frm)) + b".\r\n")
            r = c.read_reply(timeout=15)
            assert r.code == code, (frm, r)
        c.expect(221, "QUIT")
    msgs = g.sink.wait_messages(3, daemon=g.d)
    verdicts = {}
    for m in msgs:
        eml = m["eml"]
        dm = Dmarc(authres(eml))
        verdicts.setdefault(dm.header_from, []).append(
            (dm.result, dm.action, len(header(eml, "X-Mxgate-Verdict"))))
    assert verdicts == {"sender.test": [("fail", "quarantine", 1)],
                        "good.test": [("pass", "none", 0), ("pass", "none", 0)]}, verdicts


def test_bdat_reject_and_accept(mx, gw):
    """RFC 3030: the verdict comes at BDAT LAST as it does at the dot."""
    g = gw(zone("v=DMARC1; p=reject",
                {"_dmarc.good.test": txt("v=DMARC1; p=reject")}))
    with g.d.connect() as c:
        c.greeting()
        c.ehlo()
        for frm, code in (("alice@sender.test", 550), ("bob@good.test", 250)):
            msg = message(frm=frm)
            c.expect(250, "MAIL FROM:<%s>" % frm)
            c.expect(250, "RCPT TO:<user@example.test>")
            half = len(msg) // 2
            c.send(b"BDAT %d\r\n" % half + msg[:half])
            c.expect(250)
            c.send(b"BDAT %d LAST\r\n" % (len(msg) - half) + msg[half:])
            r = c.read_reply(timeout=15)
            assert r.code == code, (frm, r)
            if code == 550:
                assert_rejected(r)
    eml = g.sink.wait_messages(1, daemon=g.d)[0]["eml"]
    Dmarc(authres(eml)).check("pass", action="none", hfrom="good.test")
    assert len(g.sink.messages()) == 1


# ---------------------------------------------------------------- quarantine

QCFG = {"subject_prefix": "[SPAM]", "exchange_scl": "6"}
FORGED = ["X-Mxgate-Verdict: clean", "X-MS-Exchange-Organization-SCL: -1"]


@pytest.mark.parametrize("scl", ["6", "0"])
def test_quarantine_tag_stamps_and_replaces_forgeries(mx, gw, scl):
    g = gw(zone("v=DMARC1; p=quarantine"),
           {"quarantine": dict(QCFG, exchange_scl=scl)})
    eml, dm = g.deliver(message(subject="hello there", headers=FORGED))
    dm.check("fail", action="quarantine", p="quarantine", sp="quarantine",
             dis="quarantine")
    v = header(eml, "X-Mxgate-Verdict")
    assert len(v) == 1 and v[0].startswith("quarantine") and "sender.test" in v[0], v
    assert header(eml, "X-MS-Exchange-Organization-SCL") == [scl], eml[:1500]
    assert header(eml, "Subject") == ["[SPAM] hello there"], header(eml, "Subject")
    assert re.search(r"\baction=quarantine\b", g.summary(g.qid))


def test_forged_stamps_removed_from_passing_mail(mx, gw):
    g = gw(zone(extra={"_dmarc.good.test": txt("v=DMARC1; p=quarantine")}),
           {"quarantine": QCFG})
    eml, dm = g.deliver(message(frm="bob@good.test", subject="fine", headers=FORGED),
                        mailfrom="bob@good.test")
    dm.check("pass", action="none", hfrom="good.test")
    assert header(eml, "X-Mxgate-Verdict") == [], eml[:1500]
    assert header(eml, "X-MS-Exchange-Organization-SCL") == [], eml[:1500]
    assert header(eml, "Subject") == ["fine"]


def test_exchange_fields_removed_without_scl(mx, gw):
    """An outside sender's X-MS-Exchange-Organization-* fields go even when
    mxgate stamps no SCL itself (exchange_scl = -1, the default): an
    Exchange that trusts mxgate's connector would believe them."""
    g = gw(zone(extra={"_dmarc.good.test": txt("v=DMARC1; p=none")}))
    eml, dm = g.deliver(message(frm="bob@good.test", subject="fine", headers=[
        "X-MS-Exchange-Organization-SCL: -1",
        "X-MS-Exchange-Organization-AuthAs: Internal"]), mailfrom="bob@good.test")
    dm.check("pass", hfrom="good.test")
    assert b"X-MS-Exchange-Organization" not in eml.split(b"\r\n\r\n", 1)[0]


# Our stamps spelt as a lenient reader still takes them: white space
# before the colon, or the name folded away from its colon.
FORGED_SPELLINGS = [
    "X-Mxgate-Verdict : clean",
    "X-Mxgate-Verdict\r\n : clean",
    "X-MS-Exchange-Organization-SCL\r\n : -1",
    "X-MS-Exchange-Organization-SCL\t: -1",
    "Authentication-Results : %s; dmarc=pass header.from=good.test" % AUTHSERV,
    "Authentication-Results\r\n : %s; dkim=pass" % AUTHSERV,
]


@pytest.mark.parametrize("forged", FORGED_SPELLINGS)
def test_forged_stamps_removed_however_spelt(mx, gw, forged):
    g = gw(zone(extra={"_dmarc.good.test": txt("v=DMARC1; p=quarantine")}),
           {"quarantine": QCFG})
    eml, dm = g.deliver(message(frm="bob@good.test", subject="fine", headers=[forged]),
                        mailfrom="bob@good.test")
    dm.check("pass", action="none", hfrom="good.test")
    head = eml.split(b"\r\n\r\n", 1)[0]
    assert forged.encode() not in head, head.decode("utf-8", "replace")
    assert b"clean" not in head and b": -1" not in head, head.decode("utf-8", "replace")


def test_subject_prefix_with_space_before_colon(mx, gw):
    g = gw(zone("v=DMARC1; p=quarantine"), {"quarantine": QCFG})
    msg = message(subject="hello there").replace(b"Subject: hello", b"Subject : hello")
    eml, dm = g.deliver(msg)
    dm.check("fail", action="quarantine")
    assert header(eml, "Subject") == ["[SPAM] hello there"], header(eml, "Subject")


@pytest.mark.parametrize("name", [None, "X-Gateway-Verdict"])
def test_quarantine_tag_defaults_and_header_name(mx, gw, name):
    cfg = {"quarantine": {"verdict_header": name}} if name else None
    g = gw(zone("v=DMARC1; p=quarantine"), cfg)
    forged = ["%s: clean" % (name or "X-Mxgate-Verdict")]
    eml, dm = g.deliver(message(subject="plain", headers=forged))
    dm.check("fail", action="quarantine", dis="quarantine")
    v = header(eml, name or "X-Mxgate-Verdict")
    assert len(v) == 1 and re.match(r"quarantine\b", v[0]) and "sender.test" in v[0], v
    if name:
        assert header(eml, "X-Mxgate-Verdict") == []
    assert header(eml, "Subject") == ["plain"], "no prefix by default"
    assert header(eml, "X-MS-Exchange-Organization-SCL") == [], "exchange_scl=-1 by default"


def quarantine_cli(g, *args):
    r = subprocess.run([str(mxgate_bin()), "quarantine"] + list(args) +
                       ["-c", g.d.cfg_path], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r


def hold_one(g):
    """Send a p=quarantine failure to a hold gateway: 250, not delivered,
    listed by the CLI. Returns its id."""
    r = g.send(message(subject="held"))
    assert r.code == 250, r
    m = re.search(r"\b([0-9A-F]{16})\b", r.text)
    g.assert_nothing_delivered()
    lst = quarantine_cli(g, "list")
    assert lst.returncode == 0, lst.stderr
    ids = re.findall(r"\b[0-9A-F]{16}\b", lst.stdout)
    assert len(ids) == 1, "expected one held message: %r" % lst.stdout
    if m:
        assert ids[0] == m.group(1), (r, lst.stdout)
    g.d.known_ids.add(ids[0])
    return ids[0]


def test_quarantine_hold_then_release_delivers(mx, gw):
    g = gw(zone("v=DMARC1; p=quarantine; rua=mailto:d@sender.test"),
           {"quarantine": {"action": "hold"}})
    qid = hold_one(g)
    assert re.search(r"\baction=quarantine\b", g.summary()), g.summary()
    r = quarantine_cli(g, "release", qid)
    assert r.returncode == 0, r.stderr
    eml = g.sink.wait_messages(1, daemon=g.d)[0]["eml"]
    Dmarc(authres(eml)).check("fail", action="quarantine", p="quarantine")
    assert header(eml, "Subject") == ["held"]
    lst = quarantine_cli(g, "list")
    assert qid not in lst.stdout, lst.stdout


def test_quarantine_hold_show_and_delete(mx, gw):
    g = gw(zone("v=DMARC1; p=quarantine"), {"quarantine": {"action": "hold"}})
    qid = hold_one(g)
    r = quarantine_cli(g, "show", qid)
    assert r.returncode == 0, r.stderr
    assert "sender.test" in r.stdout, r.stdout
    r = quarantine_cli(g, "delete", qid)
    assert r.returncode == 0, r.stderr
    assert qid not in quarantine_cli(g, "list").stdout
    assert quarantine_cli(g, "release", qid).returncode != 0, "released a deleted message"
    g.assert_nothing_delivered()
    r = quarantine_cli(g, "show", "0123456789ABCDEF")
    assert r.returncode != 0


# ---------------------------------------------------------------- bad From

BAD_FROM = {
    "two-fields": ["From: <alice@sender.test>", "From: <bob@other.test>"],
    "two-addresses": ["From: alice@sender.test, bob@other.test"],
    "no-from": [],
    # a second From hidden from a strict parser: white space before the
    # colon (RFC 5322 obs-optional) or a name folded away from its colon
    "space-before-colon": ["From : <admin@bank.test>", "From: <alice@sender.test>"],
    "folded-name": ["From\r\n : <admin@bank.test>", "From: <alice@sender.test>"],
}


@pytest.mark.parametrize("case", sorted(BAD_FROM))
def test_bad_from_rejected_by_default(mx, gw, case):
    g = gw(zone("v=DMARC1; p=none"))
    r = g.send(message(from_fields=BAD_FROM[case]))
    assert r.code == 550 and r.first.startswith("550 5.7.1"), r
    g.assert_nothing_delivered()


@pytest.mark.parametrize("case", sorted(BAD_FROM))
def test_bad_from_accepted_as_permerror(mx, gw, case):
    g = gw(zone("v=DMARC1; p=reject"), {"dmarc": {"bad_from": "accept"}})
    _, dm = g.deliver(message(from_fields=BAD_FROM[case]))
    dm.check("permerror", hfrom=None)


def headers_only(*lines):
    """A message that is all header section: no blank line, no body (RFC
    5322 3.5 allows it), so its last field ends with the content."""
    return ("\r\n".join(["To: <user@example.test>", "Subject: no body",
                         "Date: Tue, 01 Dec 2026 10:00:00 +0000"] + list(lines))
            + "\r\n").encode()


def test_hidden_last_from_without_body_rejected(mx, gw):
    """A second From as the last line of a message without a body is
    complete only at the end of the content: DMARC must count it (a
    passing good.test From and, last, an unauthenticated bank one)."""
    g = gw(zone(extra={"_dmarc.good.test": txt("v=DMARC1; p=reject"),
                       "_dmarc.bank.test": txt("v=DMARC1; p=reject")}))
    r = g.send(headers_only("From: <bob@good.test>", "From: <ceo@bank.test>"),
               mailfrom="bob@good.test")
    assert r.code == 550 and r.first.startswith("550 5.7.1"), r
    assert "multiple From" in r.text, r
    g.assert_nothing_delivered()


def test_last_from_without_body_evaluated(mx, gw):
    """The only From, last in a message without a body, is the author."""
    g = gw(zone(extra={"_dmarc.good.test": txt("v=DMARC1; p=reject")}))
    _, dm = g.deliver(headers_only("From: <bob@good.test>"), mailfrom="bob@good.test")
    dm.check("pass", action="none", hfrom="good.test")


# ---------------------------------------------------------------- overrides

def test_reject_override_delivers_as_oreject(mx, gw):
    g = gw(zone("v=DMARC1; p=reject"), {"dmarc": {"reject_override": "yes"}})
    eml, dm = g.deliver(message())
    dm.check("fail", action="oreject", p="reject")
    assert re.search(r"\baction=oreject\b", g.summary(g.qid))


ALLOW = [
    ({"allow": {"senders": "alice@sender.test"}}, "local_policy"),
    ({"allow": {"senders": "sender.test"}}, "local_policy"),
    ({"allow": {"ips": "127.0.0.1"}}, "local_policy"),
    ({"allow": {"ips": "127.0.0.0/8"}}, "local_policy"),
    ({"allow": {"trusted_forwarders": "127.0.0.1"}}, "trusted_forwarder"),
    ({"allow": {"mailing_lists": "127.0.0.0/24"}}, "mailing_list"),
]


@pytest.mark.parametrize("cfg,reason", ALLOW,
                         ids=["sender", "domain", "ip", "cidr", "forwarder", "list"])
def test_allow_overrides_reject(mx, gw, cfg, reason):
    g = gw(zone("v=DMARC1; p=reject"), cfg)
    _, dm = g.deliver(message())
    dm.check("fail", action="none", p="reject", dis="none", override=reason)


@pytest.mark.parametrize("cfg", [{"senders": "bob@sender.test, other.test"},
                                 {"ips": "192.0.2.0/24"}], ids=["sender", "ip"])
def test_allow_not_matching_still_rejects(mx, gw, cfg):
    g = gw(zone("v=DMARC1; p=reject"), {"allow": cfg})
    assert_rejected(g.send(message()))


# ---------------------------------------------------------------- DKIM

def dkim_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = k.private_bytes(serialization.Encoding.PEM,
                          serialization.PrivateFormat.TraditionalOpenSSL,
                          serialization.NoEncryption())
    pub = base64.b64encode(k.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    return pem, "v=DKIM1; k=rsa; p=" + pub


@pytest.mark.skipif(dkim is None, reason="dkimpy missing: apt-get install python3-dkim")
@pytest.mark.parametrize("adkim", ["", "; adkim=s"], ids=["relaxed", "strict"])
def test_dkim_only_alignment(mx, gw, adkim):
    pem, rec = dkim_key()
    z = zone("v=DMARC1; p=reject" + adkim,
             {"sel._domainkey.mail.sender.test": txt(rec)})
    g = gw(z)
    msg = message(subject="signed")
    sig = dkim.sign(msg, b"sel", b"mail.sender.test", pem,
                    canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    # SPF passes for esp.test, which does not align with sender.test
    if adkim:
        assert_rejected(g.send(sig + msg, mailfrom="bounce@esp.test"))
        g.assert_nothing_delivered()
        return
    eml, dm = g.deliver(sig + msg, mailfrom="bounce@esp.test")
    ar = authres(eml)
    assert resinfo(ar, "dkim") == "pass" and resinfo(ar, "spf") == "pass", ar
    dm.check("pass", action="none", p="reject")


@pytest.mark.skipif(dkim is None, reason="dkimpy missing: apt-get install python3-dkim")
@pytest.mark.parametrize("partial", ["no", "yes"])
def test_dkim_partial_body_alignment(mx, gw, partial):
    """A signature with l= and text appended after it passes DKIM, but
    aligns only with [dmarc] dkim_partial_body = yes."""
    pem, rec = dkim_key()
    g = gw(zone("v=DMARC1; p=reject", {"sel._domainkey.sender.test": txt(rec)}),
           {"dmarc": {"dkim_partial_body": partial}})
    msg = message(subject="partial")
    sig = dkim.sign(msg, b"sel", b"sender.test", pem, length=True,
                    canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=[b"from", b"to", b"subject", b"date"])
    signed = sig + msg + b"Appended by a list.\r\n"
    if partial == "no":
        assert_rejected(g.send(signed, mailfrom="bounce@esp.test"))
        return
    eml, dm = g.deliver(signed, mailfrom="bounce@esp.test")
    assert resinfo(authres(eml), "dkim") == "pass", authres(eml)
    dm.check("pass", action="none")


# ---------------------------------------------------------------- testing mode

TESTING = [
    ("v=DMARC1; p=reject; t=y", "quarantine"),
    ("v=DMARC1; p=reject; pct=0", "quarantine"),
    ("v=DMARC1; p=quarantine; t=y", "none"),
    ("v=DMARC1; p=reject; pct=50", "reject"),
    ("v=DMARC1; p=reject; t=n", "reject"),
]


@pytest.mark.parametrize("record,dis", TESTING, ids=[r for r, _ in TESTING])
def test_testing_mode_one_level_less_strict(mx, gw, record, dis):
    g = gw(zone(record))
    if dis == "reject":
        assert_rejected(g.send(message()))
        return
    eml, dm = g.deliver(message())
    p = re.search(r"\bp=(\w+)", record).group(1)
    dm.check("fail", action=dis, p=p, dis=dis)
    assert len(header(eml, "X-Mxgate-Verdict")) == (1 if dis == "quarantine" else 0)


# ---------------------------------------------------------------- sp= and np=

def test_sp_applies_to_existing_subdomain(mx, gw):
    z = zone("v=DMARC1; p=none; sp=reject",
             {"sub.sender.test": a_rec() + txt(SPF_FAIL)})
    g = gw(z)
    assert_rejected(g.send(message(frm="a@sub.sender.test"), mailfrom="a@sub.sender.test"),
                    "sub.sender.test")
    # the organizational domain itself is under p=none
    _, dm = g.deliver(message())
    dm.check("fail", action="none", p="none", sp="reject", dis="none")


@pytest.mark.parametrize("sub,rejected", [("nx", True), ("sub", False)],
                         ids=["nonexistent", "existing"])
def test_np_applies_to_nonexistent_subdomain(mx, gw, sub, rejected):
    z = zone("v=DMARC1; p=none; sp=none; np=reject",
             {"sub.sender.test": a_rec()})
    g = gw(z)
    frm = "a@%s.sender.test" % sub
    if rejected:
        assert_rejected(g.send(message(frm=frm), mailfrom=frm), "%s.sender.test" % sub)
        return
    _, dm = g.deliver(message(frm=frm), mailfrom=frm)
    dm.check("fail", action="none", hfrom="sub.sender.test", dis="none")


# ---------------------------------------------------------------- DNS failures

# slow.timeout exists, but every _dmarc query under it is never answered
# (dnsserver.py: names ending in the label "timeout" time out).
SLOW = {"slow.timeout": txt(SPF_FAIL) + a_rec()}


def test_record_timeout_defers(mx, gw):
    g = gw(zone(extra=SLOW))
    t0 = time.monotonic()
    r = g.send(message(frm="a@slow.timeout"), mailfrom="a@slow.timeout")
    assert_deferred(r)
    assert time.monotonic() - t0 < 10, "the DMARC lookups outlived time_budget"
    g.assert_nothing_delivered()


def test_record_timeout_accepted_as_temperror(mx, gw):
    g = gw(zone(extra=SLOW), {"dmarc": {"temperror": "accept"}})
    _, dm = g.deliver(message(frm="a@slow.timeout"), mailfrom="a@slow.timeout")
    dm.check("temperror", hfrom="slow.timeout")
    assert re.search(r"\bdmarc=temperror\b", g.summary(g.qid))


@pytest.mark.parametrize("policy,deferred", [("reject", True), ("none", False)])
def test_spf_temperror_on_alignable_identifier(mx, gw, policy, deferred):
    """MAIL FROM servfail.sender.test gets SERVFAIL: SPF temperror on an
    identifier that aligns with sender.test in relaxed mode. Under
    p=reject that could have been a pass: defer; under p=none it changes
    nothing: deliver."""
    g = gw(zone("v=DMARC1; p=%s" % policy))
    r = g.send(message(), mailfrom="a@servfail.sender.test")
    if deferred:
        assert_deferred(r)
        g.assert_nothing_delivered()
    else:
        queued_id(r)
        g.sink.wait_messages(1, daemon=g.d)


@pytest.mark.skipif(dkim is None, reason="dkimpy missing: apt-get install python3-dkim")
def test_dkim_temperror_on_aligned_signature_defers(mx, gw):
    """The key of an aligned signature (d=sender.test, s=timeout) never
    comes: it could have passed, so p=reject defers instead of rejecting."""
    pem, _ = dkim_key()
    g = gw(zone("v=DMARC1; p=reject"))
    msg = message(subject="key lost")
    sig = dkim.sign(msg, b"timeout", b"sender.test", pem,
                    include_headers=[b"from", b"to", b"subject", b"date"])
    t0 = time.monotonic()
    assert_deferred(g.send(sig + msg))
    assert time.monotonic() - t0 < 30
    g.assert_nothing_delivered()


# ---------------------------------------------------------------- discovery

def test_psl_discovery_finds_org_policy(mx, gw):
    g = gw(zone("v=DMARC1; p=none; sp=reject"), {"dmarc": {"discovery": "psl"}})
    frm = "a@deep.sub.sender.test"
    assert_rejected(g.send(message(frm=frm), mailfrom=frm), "deep.sub.sender.test")


@pytest.mark.parametrize("discovery", ["treewalk", "psl"])
def test_discovery_treewalk_vs_psl(mx, gw, discovery):
    """Only b.sender.test publishes (p=reject); the From domain is
    a.b.sender.test. The tree walk makes b.sender.test (the record with
    the fewest labels, RFC 9989 4.10.2) the Organizational Domain, whose
    policy applies (4.10.1): reject. The PSL says sender.test, which has
    no record (RFC 7489 6.6.3): no policy, dmarc=none."""
    z = zone(None, {"_dmarc.b.sender.test": txt("v=DMARC1; p=reject"),
                    "a.b.sender.test": a_rec(), "b.sender.test": a_rec()})
    g = gw(z, {"dmarc": {"discovery": discovery}})
    frm = "x@a.b.sender.test"
    if discovery == "treewalk":
        assert_rejected(g.send(message(frm=frm), mailfrom=frm), "a.b.sender.test")
    else:
        _, dm = g.deliver(message(frm=frm), mailfrom=frm)
        dm.check("none", action="none", hfrom="a.b.sender.test")


def test_intermediate_record_is_not_policy(mx, gw):
    """RFC 9989 4.10.1: the policy is the record at the From domain, else
    at its Organizational Domain, else at the PSD; a record in between
    (b.sender.test, p=reject) is not used: sender.test's p=none is."""
    z = zone("v=DMARC1; p=none; sp=none",
             {"_dmarc.b.sender.test": txt("v=DMARC1; p=reject"),
              "a.b.sender.test": a_rec(), "b.sender.test": a_rec()})
    g = gw(z)
    frm = "x@a.b.sender.test"
    _, dm = g.deliver(message(frm=frm), mailfrom=frm)
    dm.check("fail", action="none", hfrom="a.b.sender.test", p="none", dis="none")


def test_treewalk_deep_author_domain(mx, gw):
    """RFC 9989 4.10: at most 8 queries; a From with 11 labels skips to 7
    labels, then walks up, and still reaches _dmarc.sender.test."""
    deep = "a.b.c.d.e.f.g.h.i.sender.test"
    g = gw(zone("v=DMARC1; p=none; sp=reject; np=reject", {deep: a_rec()}))
    assert_rejected(g.send(message(frm="x@" + deep), mailfrom="x@" + deep), deep)


@pytest.mark.parametrize("psd", ["; psd=y", ""], ids=["psd", "no-psd"])
def test_psd_record_sets_org_domain(mx, gw, psd):
    """Only _dmarc.psd.test publishes (p=reject). MAIL FROM other.psd.test
    passes SPF. With psd=y, the org domains are one label below psd.test
    (sender.psd.test vs other.psd.test): no alignment, the PSD policy
    rejects. Without psd=, psd.test is the org domain of both: pass."""
    z = zone(extra={"_dmarc.psd.test": txt("v=DMARC1; p=reject" + psd),
                    "sender.psd.test": a_rec(),
                    "other.psd.test": txt(SPF_PASS) + a_rec()})
    g = gw(z)
    frm = "a@sender.psd.test"
    if psd:
        assert_rejected(g.send(message(frm=frm), mailfrom="b@other.psd.test"),
                        "sender.psd.test")
        return
    _, dm = g.deliver(message(frm=frm), mailfrom="b@other.psd.test")
    dm.check("pass", action="none", hfrom="sender.psd.test")


# ---------------------------------------------------------------- check message

@pytest.mark.parametrize("ip,result,dis", [("192.0.2.1", "pass", None),
                                           ("198.51.100.7", "fail", "reject")])
def test_check_message_cli(mx, ip, result, dis):
    dns = DNS(mx.dir, zone("v=DMARC1; p=reject"), 0)
    try:
        path = os.path.join(mx.dir, "msg.eml")
        with open(path, "wb") as f:
            f.write(message())
        r = subprocess.run([str(mxgate_bin()), "check", "message", "--ip", ip,
                            "--sender", "alice@sender.test", "--helo", "mail.sender.test",
                            "--dns", dns.hostport, path],
                           capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
    finally:
        dns.stop()
    assert r.returncode == 0, r.stderr
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    out = re.sub(r"\r?\n[ \t]+", " ", r.stdout)
    m = re.search(r"^Authentication-Results:(.*)$", out, re.M)
    assert m, r.stdout
    dm = Dmarc(m.group(1))
    dm.check(result, p="reject")
    assert "dis" in dm.tags, "no dis= in %r" % dm.ar
    if dis:
        assert dm.tags["dis"] == dis, dm.ar
