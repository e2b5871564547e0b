"""`mxgate dns records` and `mxgate dns check` (issue 11: helping the
administrator get DNS right).

records: the zone-file lines it prints are parsed back, served by the
test DNS server (tests/tools/dnsserver.py), and `check` must then find
nothing wrong, the DKIM keys included (the TXT records are the public
halves of the configured keys, the very text `dkim keygen` printed).

check: a good zone gives 0 errors and exit 0; each broken zone gives the
one finding it is about, asserted as the exact line, with the exit code
(1 with errors, 0 with warnings only, 2 for usage)."""

import re
import subprocess

import pytest

from conftest import mxgate_bin
from test_dkim_cli import keygen
from test_spf import DNSServer

HOST = "mx.example.test"
DOMAIN = "example.test"
SPF = "v=spf1 mx a:%s -all" % HOST
DMARC = "v=DMARC1; p=reject; rua=mailto:dmarc-reports@example.test"


def dnscmd(*args):
    return subprocess.run([str(mxgate_bin()), "dns"] + list(args),
                          capture_output=True, text=True, timeout=120)


def txt(*values):
    return [{"type": "TXT", "value": [v]} for v in values]


class Env:
    """Two keys for example.test in [dkim sign example.test], a
    configuration written (no daemon), DNS servers on demand."""

    def __init__(self, mx, report=None, sections=None):
        self.mx = mx
        self.rsa, self.rsa_txt = keygen(mx.dir, "rsa1", "rsa")
        self.ed, self.ed_txt = keygen(mx.dir, "ed1", "ed25519")
        secs = {
            "dns": {"timeout": "1s"},
            "dkim sign example.test": {
                "keys": "rsa1:%s, ed1:%s" % (self.rsa, self.ed)},
        }
        if report:
            secs["report"] = report
        secs.update(sections or {})
        self.d = mx.daemon(start=False, sections=secs)
        self.servers = []

    def zone(self, **change):
        """The good zone; change maps names to records (None: removed)."""
        z = {
            DOMAIN: [{"type": "MX", "pref": 10, "value": HOST}] + txt(SPF),
            HOST: [{"type": "A", "value": "192.0.2.25"}],
            "rsa1._domainkey." + DOMAIN: txt(self.rsa_txt),
            "ed1._domainkey." + DOMAIN: txt(self.ed_txt),
            "_dmarc." + DOMAIN: txt(DMARC),
        }
        for name, recs in change.items():
            name = name.replace("__", ".")
            if recs is None:
                z.pop(name, None)
            else:
                z[name] = recs
        return z

    def serve(self, zone):
        s = DNSServer(self.mx.dir, zone)
        self.servers.append(s)
        return s

    def check(self, zone, domain=DOMAIN):
        s = self.serve(zone)
        r = dnscmd("check", domain, "-c", self.d.cfg_path, "--dns", s.hostport)
        assert r.returncode in (0, 1), (r.returncode, r.stdout, r.stderr)
        lines = r.stdout.splitlines()
        assert re.fullmatch(r"\d+ errors?, \d+ warnings?", lines[-1]), r.stdout
        for line in lines[:-1]:
            assert re.match(r"(ok|warning|error): ", line), line
        return r, lines

    def records(self, domain=DOMAIN):
        r = dnscmd("records", domain, "-c", self.d.cfg_path)
        assert r.returncode == 0, r.stderr
        return r

    def stop(self):
        for s in self.servers:
            s.stop()


@pytest.fixture
def env(mx):
    made = []

    def make(**kw):
        e = Env(mx, **kw)
        made.append(e)
        return e
    yield make
    for e in made:
        e.stop()


def summary(lines):
    return lines[-1]


def ok_lines(e, dmarc_lines):
    return [
        "ok: MX: 10 mx.example.test",
        "ok: SPF: " + SPF,
        "ok: SPF: 2 DNS-querying terms (at most 10)",
        "ok: SPF: ends with -all",
        "ok: DKIM: rsa1._domainkey.example.test publishes the rsa key of %s" % e.rsa,
        "ok: DKIM: ed1._domainkey.example.test publishes the ed25519 key of %s" % e.ed,
    ] + dmarc_lines + ["0 errors, 0 warnings"]


def parse_zone(text):
    """Zone-file lines of `dns records` back into a dnsserver zone."""
    zone = {}
    records = 0
    prev = None
    for line in text.splitlines():
        if line.startswith(";") or not line.strip():
            prev = line
            continue
        m = re.match(r"(\S+)\. IN (MX|TXT) (.*)$", line)
        assert m, "not a zone-file line: %r" % line
        # a comment right above every record
        assert prev is not None and prev.startswith(";"), line
        name, typ, rest = m.groups()
        if typ == "MX":
            pref, host = rest.split()
            assert host.endswith(".")
            rec = {"type": "MX", "pref": int(pref), "value": host[:-1]}
        else:
            rec = {"type": "TXT", "value": re.findall(r'"([^"]*)"', rest)}
            assert all(len(s) <= 255 for s in rec["value"])
        zone.setdefault(name, []).append(rec)
        records += 1
        prev = line
    return zone, records


# ---------------------------------------------------------------- records

def test_records(env):
    e = env()
    r = e.records()
    out = r.stdout
    assert r.stderr == ""
    zone, n = parse_zone(out)
    assert n == 5, out
    assert "example.test. IN MX 10 mx.example.test.\n" in out
    assert 'example.test. IN TXT "v=spf1 mx a:mx.example.test -all"\n' in out
    assert ('_dmarc.example.test. IN TXT "v=DMARC1; p=none; '
            'rua=mailto:dmarc-reports@example.test"\n') in out
    # the public halves of the configured keys: what keygen printed
    assert "".join(zone["rsa1._domainkey.example.test"][0]["value"]) == e.rsa_txt
    assert "".join(zone["ed1._domainkey.example.test"][0]["value"]) == e.ed_txt
    assert "mxgate report summary" in out and "~all" in out
    assert "_report._dmarc" not in out


def test_records_served_then_checked(env):
    e = env()
    zone, _ = parse_zone(e.records().stdout)
    zone[HOST] = [{"type": "A", "value": "192.0.2.25"}]
    r, lines = e.check(zone)
    assert r.returncode == 0, r.stdout
    assert lines == ok_lines(e, [
        "ok: DMARC: v=DMARC1; p=none; rua=mailto:dmarc-reports@example.test",
        "ok: DMARC: p=none with reports: read them (mxgate report summary), "
        "then move on to p=quarantine and p=reject once they look clean",
    ]), r.stdout


def test_records_report_address(env):
    # [report] email in the domain: the rua; no authorising record
    e = env(report={"email": "dmarc@example.test"})
    out = e.records().stdout
    assert ('_dmarc.example.test. IN TXT "v=DMARC1; p=none; '
            'rua=mailto:dmarc@example.test"\n') in out
    assert "_report._dmarc" not in out


def test_records_report_address_elsewhere(env):
    # in another domain: the default rua, and RFC 9990 4's record
    e = env(report={"email": "dmarc@reports.test"})
    out = e.records().stdout
    zone, n = parse_zone(out)
    assert n == 6
    assert ('_dmarc.example.test. IN TXT "v=DMARC1; p=none; '
            'rua=mailto:dmarc-reports@example.test"\n') in out
    assert 'example.test._report._dmarc.reports.test. IN TXT "v=DMARC1"\n' in out


def test_records_unknown_domain(env):
    e = env()
    r = e.records("other.test")
    assert r.stderr.splitlines() == [
        "mxgate: warning: other.test is not in [domains] accept and has no "
        "[dkim sign other.test] section in %s: mxgate neither receives nor "
        "signs its mail" % e.d.cfg_path]
    zone, n = parse_zone(r.stdout)
    assert n == 3 and sorted(zone) == ["_dmarc.other.test", "other.test"]
    assert "has no [dkim sign other.test] section" in r.stdout
    assert "mxgate dkim keygen --domain other.test" in r.stdout


def test_usage(env):
    e = env()
    for args in ([], ["records"], ["check"], ["nothing", DOMAIN],
                 ["records", DOMAIN, "extra"],
                 ["records", "--dns", "127.0.0.1:53", DOMAIN]):
        r = dnscmd(*args)
        assert r.returncode == 2, args
        assert r.stderr.startswith("usage: mxgate dns records"), r.stderr
    r = dnscmd("records", "bad..name", "-c", e.d.cfg_path)
    assert r.returncode == 2
    assert r.stderr == "mxgate: 'bad..name' is not a domain name\n"
    r = dnscmd("check", DOMAIN, "-c", e.d.cfg_path + ".missing")
    assert r.returncode == 1 and r.stdout == ""


# ---------------------------------------------------------------- check

def test_check_good_zone(env):
    e = env()
    r, lines = e.check(e.zone())
    assert r.returncode == 0
    assert lines == ok_lines(e, ["ok: DMARC: " + DMARC, "ok: DMARC: p=reject"])


def test_check_no_spf(env):
    e = env()
    r, lines = e.check(e.zone(example__test=[
        {"type": "MX", "pref": 10, "value": HOST}] + txt("some other text")))
    assert r.returncode == 1
    assert "error: SPF: no record at example.test" in lines
    assert summary(lines) == "1 error, 0 warnings"


def test_check_two_spf_records(env):
    e = env()
    r, lines = e.check(e.zone(example__test=[
        {"type": "MX", "pref": 10, "value": HOST}] + txt(SPF, "v=spf1 -all")))
    assert r.returncode == 1
    assert ("error: SPF: 2 records at example.test (permerror: RFC 7208 4.5 "
            "allows one)") in lines
    assert summary(lines) == "1 error, 0 warnings"


def nested_includes(last):
    return {
        "example__test": [{"type": "MX", "pref": 10, "value": HOST}] +
        txt("v=spf1 mx a:mx.example.test include:i1.example.test -all"),
        "i1__example__test": txt("v=spf1 a mx include:i2.example.test -all"),
        "i2__example__test": txt("v=spf1 a mx include:i3.example.test -all"),
        "i3__example__test": txt(last),
    }


def test_check_spf_eleven_lookups(env):
    e = env()
    # 3 + 3 + 3 + 2: one over RFC 7208 4.6.4's ten
    zone = e.zone(**nested_includes("v=spf1 a mx -all"))
    r, lines = e.check(zone)
    assert r.returncode == 1
    assert ("error: SPF: 11 DNS-querying terms counted through include: and "
            "redirect=, more than the 10 RFC 7208 4.6.4 allows (permerror)"
            ) in lines
    assert summary(lines) == "1 error, 0 warnings"
    # the evaluator agrees: permerror
    s = e.servers[-1]
    c = subprocess.run([str(mxgate_bin()), "check", "spf", "--ip", "192.0.2.99",
                        "--sender", "a@example.test", "--helo", "h.test",
                        "--dns", s.hostport], capture_output=True, text=True,
                       timeout=60)
    assert c.stdout.startswith("spf=permerror\n"), c.stdout
    # one term fewer is within the limit
    r, lines = e.check(e.zone(**nested_includes("v=spf1 a -all")))
    assert r.returncode == 0
    assert "ok: SPF: 10 DNS-querying terms (at most 10)" in lines


def test_check_spf_plus_all(env):
    e = env()
    r, lines = e.check(e.zone(example__test=[
        {"type": "MX", "pref": 10, "value": HOST}] + txt("v=spf1 mx +all")))
    assert r.returncode == 1
    assert ("error: SPF: +all: every host on the Internet may send as "
            "example.test") in lines
    assert summary(lines) == "1 error, 0 warnings"


def test_check_spf_syntax_error(env):
    e = env()
    r, lines = e.check(e.zone(example__test=[
        {"type": "MX", "pref": 10, "value": HOST}] +
        txt("v=spf1 mx ip4:192.0.2.300 -all")))
    assert r.returncode == 1
    assert ("error: SPF: syntax error in the record at example.test: "
            "'ip4:192.0.2.300': bad IP address (permerror)") in lines


def test_check_dkim_key_mismatch(env, mx):
    e = env()
    _, other_txt = keygen(mx.dir, "other", "rsa")
    r, lines = e.check(e.zone(**{
        "rsa1._domainkey.example.test": txt(other_txt)}))
    assert r.returncode == 1
    assert ("error: DKIM key mismatch at rsa1._domainkey.example.test: the "
            "published p= is not the public half of %s" % e.rsa) in lines
    assert ("ok: DKIM: ed1._domainkey.example.test publishes the ed25519 key "
            "of %s" % e.ed) in lines
    assert summary(lines) == "1 error, 0 warnings"


@pytest.mark.parametrize("record,finding", [
    (None, "error: DKIM: no key record at ed1._domainkey.example.test "
     "(selector ed1 of [dkim sign example.test]): receivers cannot verify "
     "its signatures"),
    ("v=DKIM1; k=ed25519; p=", "error: DKIM: the key at "
     "ed1._domainkey.example.test is revoked (empty p=): signatures with "
     "selector ed1 fail"),
    ("KTYPE", "error: DKIM: ed1._domainkey.example.test has k=rsa but {ed} "
     "is an ed25519 key"),
])
def test_check_dkim_broken(env, record, finding):
    e = env()
    recs = None
    if record == "KTYPE":
        recs = txt(e.ed_txt.replace("k=ed25519", "k=rsa"))
    elif record is not None:
        recs = txt(record)
    z = e.zone()
    z["ed1._domainkey.example.test"] = recs or []
    r, lines = e.check(z)
    assert r.returncode == 1
    assert finding.format(ed=e.ed) in lines, r.stdout
    assert summary(lines) == "1 error, 0 warnings"


def test_check_no_dkim_section(env):
    e = env(sections={"dkim sign example.test": None})
    r, lines = e.check(e.zone())
    assert r.returncode == 0
    assert ("warning: DKIM: no [dkim sign example.test] section: mail from "
            "example.test leaves unsigned (mxgate dkim keygen makes a key)"
            ) in lines
    assert summary(lines) == "0 errors, 1 warning"


def test_check_no_dmarc(env):
    e = env()
    r, lines = e.check(e.zone(**{"_dmarc.example.test": None}))
    assert r.returncode == 1
    assert ("error: DMARC: no record at _dmarc.example.test: receivers apply "
            "no policy") in lines
    assert summary(lines) == "1 error, 0 warnings"


def test_check_two_dmarc_records(env):
    e = env()
    r, lines = e.check(e.zone(**{"_dmarc.example.test": txt(
        DMARC, "v=DMARC1; p=none")}))
    assert r.returncode == 1
    assert ("error: DMARC: 2 records at _dmarc.example.test: receivers ignore "
            "them all (RFC 9989 4.10)") in lines


def test_check_dmarc_none_without_rua(env):
    e = env()
    r, lines = e.check(e.zone(**{"_dmarc.example.test": txt(
        "v=DMARC1; p=none")}))
    assert r.returncode == 0
    assert "warning: DMARC: p=none and no rua: you learn nothing" in lines
    assert summary(lines) == "0 errors, 1 warning"


def test_check_dmarc_testing(env):
    e = env()
    r, lines = e.check(e.zone(**{"_dmarc.example.test": txt(
        DMARC + "; pct=50")}))
    assert r.returncode == 0
    assert ("warning: DMARC: pct=50: the policy applies to part of the "
            "failing mail only") in lines


def test_check_external_rua(env):
    e = env()
    dmarc = "v=DMARC1; p=reject; rua=mailto:dmarc@reports.test"
    r, lines = e.check(e.zone(**{"_dmarc.example.test": txt(dmarc)}))
    assert r.returncode == 1
    assert ("error: DMARC: rua dmarc@reports.test is outside example.test and "
            "not authorised: no v=DMARC1 record at "
            "example.test._report._dmarc.reports.test (RFC 9990 4), so "
            "receivers send it no reports") in lines
    assert summary(lines) == "1 error, 0 warnings"
    # and with the authorising record
    r, lines = e.check(e.zone(**{
        "_dmarc.example.test": txt(dmarc),
        "example.test._report._dmarc.reports.test": txt("v=DMARC1")}))
    assert r.returncode == 0
    assert ("ok: DMARC: rua dmarc@reports.test is outside example.test and "
            "authorised by example.test._report._dmarc.reports.test") in lines
    assert summary(lines) == "0 errors, 0 warnings"


def test_check_rua_not_mailto(env):
    e = env()
    r, lines = e.check(e.zone(**{"_dmarc.example.test": txt(
        "v=DMARC1; p=reject; rua=https://example.test/dmarc")}))
    assert ("warning: DMARC: rua URI https://example.test/dmarc is not mailto: "
            "(reports go by mail: RFC 9990 3)") in lines


def test_check_mx_not_us(env):
    e = env()
    r, lines = e.check(e.zone(example__test=[
        {"type": "MX", "pref": 10, "value": "mail.elsewhere.test"}] + txt(SPF)))
    assert r.returncode == 0
    assert ("warning: MX: mx.example.test is not among the MX hosts "
            "(10 mail.elsewhere.test): mxgate is not the MX; for hybrid "
            "set-ups see [hybrid]") in lines
    assert summary(lines) == "0 errors, 1 warning"


def test_check_no_mx_and_null_mx(env):
    e = env()
    r, lines = e.check(e.zone(example__test=txt(SPF)))
    assert r.returncode == 1
    assert ('error: MX: no MX record for example.test: publish '
            '"example.test. IN MX 10 mx.example.test."') in lines
    r, lines = e.check(e.zone(example__test=[
        {"type": "MX", "pref": 0, "value": "."}] + txt(SPF)))
    assert r.returncode == 1
    assert ("error: MX: example.test publishes a null MX (RFC 7505): it "
            "receives no mail, yet [domains] accept lists it") in lines


def test_check_dns_timeout(env):
    e = env()
    # a failed query is an error naming it, never a missing record
    r, lines = e.check(e.zone(example__test=[
        {"type": "MX", "pref": 10, "value": HOST}] +
        txt("v=spf1 mx include:spf.timeout -all")))
    assert r.returncode == 1
    assert ("error: SPF: TXT query for spf.timeout (include:spf.timeout) "
            "failed: timeout") in lines
    assert not [l for l in lines if "no record" in l], lines
    assert summary(lines) == "1 error, 0 warnings"
    # the domain's own questions; SERVFAIL likewise
    r, lines = e.check({}, domain="mail.timeout")
    assert r.returncode == 1
    assert lines[:2] == [
        "error: MX: MX query for mail.timeout failed: timeout",
        "error: SPF: TXT query for mail.timeout failed: timeout"]
    assert "error: DMARC: TXT query for _dmarc.mail.timeout failed: timeout" in lines
    r, lines = e.check(e.zone(**{"_dmarc.example.test": None}),
                       domain="example.servfail")
    assert "error: MX: MX query for example.servfail failed: servfail" in lines


def test_check_hostile_zone(env):
    e = env()
    r, lines = e.check(e.zone(**{
        # include loop, a record naming itself, a broken include
        "example.test": [{"type": "MX", "pref": 10, "value": HOST}] + txt(
            "v=spf1 include:l1.example.test include:bad.example.test "
            "redirect=example.test"),
        "l1.example.test": txt("v=spf1 include:l2.example.test -all"),
        "l2.example.test": txt("v=spf1 include:l1.example.test -all"),
        "bad.example.test": txt("v=spf1 a:\x1b[31mx.test -all"),
        # control octets, a NUL, an oversized record
        "_dmarc.example.test": txt("v=DMARC1; p=none; rua=mailto:a\x1b[2J@x.test",
                                   "v=DMARC1\x00; p=reject",
                                   "v=DMARC1; p=" + "q" * 5000),
    }))
    assert r.returncode == 1
    out = r.stdout
    assert "\x1b" not in out and "\x00" not in out
    assert max(len(l) for l in lines) < 500
    assert lines.count("error: SPF: include:l1.example.test at l2.example.test "
                       "loops back to l1.example.test (permerror)") == 1
    assert ("error: SPF: redirect=example.test at example.test loops back to "
            "example.test (permerror)") in lines
    assert ("error: SPF: syntax error in the record at bad.example.test "
            "(include:bad.example.test): 'a:?[31mx.test': invalid character "
            "in record (permerror)") in lines
    assert not [l for l in lines if "DNS-querying terms" in l]
    assert ('error: DMARC: unparseable record at _dmarc.example.test: '
            '"v=DMARC1" (receivers ignore it; it must start with v=DMARC1;)'
            ) in lines
    assert ('error: DMARC: unparseable record at _dmarc.example.test: '
            '"v=DMARC1; p=' + 'q' * 288 + '..." (receivers ignore it; it '
            'must start with v=DMARC1;)') in lines
    # what receivers see: one record, without a usable rua
    assert "warning: DMARC: p=none and no rua: you learn nothing" in lines
    for bad in ("x" * 300 + ".test", "a\x01b.test", "", "localhost"):
        r = dnscmd("check", bad, "-c", e.d.cfg_path, "--dns", "127.0.0.1:9")
        assert r.returncode == 2, bad
        assert r.stdout == "" and "is not a domain name" in r.stderr
