"""`mxgate dns records` and `mxgate dns check` (issue 11: helping the
administrator get DNS right).

records: the zone-file lines it prints are parsed back, served by the
test DNS server (tests/tools/dnsserver.py), and `check` must then find
nothing wrong, the DKIM keys included (the TXT records are the public
halves of the configured keys, the very text `dkim keygen` printed).

check: a good zone gives 0 errors and exit 0; each broken zone gives the
one finding it is about, asserted as the exact line, with the exit code
(1 with errors, 0 with warnings only, 2 for usage)."""

import base64
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
    # every bare a and mx finds records: no void lookup (RFC 7208 4.6.4)
    host = [{"type": "A", "value": "192.0.2.1"},
            {"type": "MX", "pref": 10, "value": HOST}]
    return {
        "example__test": [{"type": "MX", "pref": 10, "value": HOST}] +
        txt("v=spf1 mx a:mx.example.test include:i1.example.test -all"),
        "i1__example__test": host + txt(
            "v=spf1 a mx include:i2.example.test -all"),
        "i2__example__test": host + txt(
            "v=spf1 a mx include:i3.example.test -all"),
        "i3__example__test": host + txt(last),
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


# ------------------------------------------- review: DMARC discovery

SUB = "sub.example.test"


def sub_zone(e, dmarc, **change):
    """The good zone with SUB publishing MX and SPF but no DMARC record;
    the organizational domain's record is dmarc."""
    z = e.zone(**{"_dmarc.example.test": txt(dmarc)})
    z[SUB] = [{"type": "MX", "pref": 10, "value": HOST}] + txt(SPF)
    for name, recs in change.items():
        if recs is None:
            z.pop(name, None)
        else:
            z[name] = recs
    return z


def dmarc_lines(lines):
    return [l for l in lines if re.match(r"(ok|warning|error): DMARC", l)]


def test_check_subdomain_uses_org_policy(env):
    """RFC 9989 4.10: no record at _dmarc.SUB is no error when the walk
    up finds the organizational domain's, which is then checked (its
    rua= authorised for the policy domain, example.test, as reports are
    sent per policy domain)."""
    e = env()
    dmarc = "v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@reports.test"
    r, lines = e.check(sub_zone(e, dmarc, **{
        "example.test._report._dmarc.reports.test": txt("v=DMARC1")}),
        domain=SUB)
    assert dmarc_lines(lines) == [
        "ok: DMARC: no record at _dmarc.sub.example.test; the policy of "
        "example.test applies (sp=quarantine)",
        "ok: DMARC: " + dmarc,
        "ok: DMARC: p=reject",
        "ok: DMARC: rua d@reports.test is outside example.test and "
        "authorised by example.test._report._dmarc.reports.test",
    ], r.stdout
    # nothing anywhere up the tree: still the error
    r, lines = e.check(sub_zone(e, "x", **{"_dmarc.example.test": None}),
                       domain=SUB)
    assert dmarc_lines(lines) == [
        "error: DMARC: no record at _dmarc.sub.example.test: receivers "
        "apply no policy"], r.stdout


@pytest.mark.parametrize("dmarc,exists,how", [
    ("v=DMARC1; p=reject", True, "p=reject, as it has no sp="),
    ("v=DMARC1; p=reject; sp=none; np=quarantine", True,
     "sp=none; np=quarantine if sub.example.test did not exist"),
    # np= (RFC 9989 4.7) for a name with no A, AAAA or MX
    ("v=DMARC1; p=reject; sp=none; np=quarantine", False,
     "np=quarantine: sub.example.test does not exist"),
])
def test_check_subdomain_sp_np(env, dmarc, exists, how):
    e = env()
    z = sub_zone(e, dmarc)
    if not exists:
        del z[SUB]
    r, lines = e.check(z, domain=SUB)
    assert dmarc_lines(lines)[0] == (
        "ok: DMARC: no record at _dmarc.sub.example.test; the policy of "
        "example.test applies (%s)" % how), r.stdout
    assert not [l for l in dmarc_lines(lines) if l.startswith("error")]


def test_check_subdomain_deep_walk(env):
    """RFC 9989 4.10 step 4: from nine labels the walk skips to seven, so
    the psd=n record at the eight-label name is never seen (it would make
    that name the organizational domain, with p=none)."""
    e = env()
    deep = "a.b.c.d.e.f.g.example.test"
    z = sub_zone(e, "v=DMARC1; p=reject; sp=reject", **{
        deep: [{"type": "MX", "pref": 10, "value": HOST}] + txt(SPF),
        "_dmarc.b.c.d.e.f.g.example.test": txt("v=DMARC1; p=none; psd=n")})
    r, lines = e.check(z, domain=deep)
    assert dmarc_lines(lines)[:2] == [
        "ok: DMARC: no record at _dmarc.%s; the policy of example.test "
        "applies (sp=reject)" % deep,
        "ok: DMARC: v=DMARC1; p=reject; sp=reject"], r.stdout
    # the seven-label name is walked: a psd=n record there is the
    # organizational domain (RFC 9989 4.10.2), whose p= applies
    z["_dmarc.c.d.e.f.g.example.test"] = txt("v=DMARC1; p=none; psd=n")
    r, lines = e.check(z, domain=deep)
    assert dmarc_lines(lines)[0] == (
        "ok: DMARC: no record at _dmarc.%s; the policy of "
        "c.d.e.f.g.example.test applies (p=none, as it has no sp=)" % deep
        ), r.stdout


@pytest.mark.parametrize("discovery", ["treewalk", "psl"])
def test_check_subdomain_discovery_mode(env, discovery):
    """Only b.example.test publishes; a.b.example.test is checked. The
    tree walk finds b.example.test's record (the one with the fewest
    labels, RFC 9989 4.10.2); [dmarc] discovery = psl looks at the PSL
    organizational domain only, example.test, which has none."""
    e = env(sections={"dmarc": {"discovery": discovery}})
    dom = "a.b.example.test"
    z = sub_zone(e, "x", **{
        "_dmarc.example.test": None,
        "_dmarc.b.example.test": txt("v=DMARC1; p=reject"),
        dom: [{"type": "MX", "pref": 10, "value": HOST}] + txt(SPF)})
    r, lines = e.check(z, domain=dom)
    if discovery == "treewalk":
        assert dmarc_lines(lines)[0] == (
            "ok: DMARC: no record at _dmarc.a.b.example.test; the policy "
            "of b.example.test applies (p=reject, as it has no sp=)"), r.stdout
    else:
        assert dmarc_lines(lines) == [
            "error: DMARC: no record at _dmarc.a.b.example.test nor at "
            "_dmarc.example.test (its organizational domain): receivers "
            "apply no policy"], r.stdout


# ---------------------------------- review: rua authorisation (RFC 9990 4)

EXT_DMARC = "v=DMARC1; p=reject; rua=mailto:dmarc@reports.test"
AUTH = "example.test._report._dmarc.reports.test"


@pytest.mark.parametrize("record,finding", [
    # as report/send.c: a URI that is not mailto: or cannot be parsed
    # leaves a host that cannot be checked: neither is used
    ("v=DMARC1; rua=https://reports.test/dmarc",
     "error: DMARC: rua dmarc@reports.test: the authorising record at %s "
     "has a rua= URI that is not mailto: or is malformed "
     "(rua=https://reports.test/dmarc): neither is used (RFC 9990 4)" % AUTH),
    ("v=DMARC1; rua=mailto:x@reports.test,mailto:",
     "error: DMARC: rua dmarc@reports.test: the authorising record at %s "
     "has a rua= URI that is not mailto: or is malformed "
     "(rua=mailto:x@reports.test,mailto:): neither is used (RFC 9990 4)"
     % AUTH),
    ("v=DMARC1; rua=mailto:x@other.test",
     "error: DMARC: rua dmarc@reports.test: the authorising record at %s "
     "names another host (other.test): neither is used (RFC 9990 4)" % AUTH),
    # the tag name in any case (RFC 7489 ABNF), the value as written
    ("V=DMARC1", "ok: DMARC: rua dmarc@reports.test is outside example.test "
     "and authorised by %s" % AUTH),
    ("v=dmarc1", "error: DMARC: rua dmarc@reports.test is outside "
     "example.test and not authorised: no v=DMARC1 record at %s (RFC 9990 "
     "4), so receivers send it no reports" % AUTH),
    ("v=DMARC1; rua=mailto:box@reports.test",
     "ok: DMARC: rua dmarc@reports.test is outside example.test and "
     "authorised by %s, which has the reports sent to box@reports.test"
     % AUTH),
])
def test_check_rua_authorising_record(env, record, finding):
    e = env()
    r, lines = e.check(e.zone(**{"_dmarc.example.test": txt(EXT_DMARC),
                                 AUTH: txt(record)}))
    assert finding in lines, r.stdout
    assert r.returncode == (1 if finding.startswith("error") else 0)


# ------------------------------------------- review: SPF counting

def evaluate_spf(e, ip):
    """What the evaluator (mxgate check spf) makes of example.test."""
    c = subprocess.run([str(mxgate_bin()), "check", "spf", "--ip", ip,
                        "--sender", "a@example.test", "--helo", "h.test",
                        "--dns", e.servers[-1].hostport],
                       capture_output=True, text=True, timeout=60)
    return c.stdout.split("\n", 1)[0]


def mx_records(n):
    return [{"type": "MX", "pref": i, "value": HOST} for i in range(n)]


@pytest.mark.parametrize("spf", ["v=spf1 mx -all",
                                 "v=spf1 mx:big.example.test -all"])
def test_check_spf_too_many_mx(env, spf):
    """RFC 7208 4.6.4: an mx whose target has more than ten MX records
    is a permerror, for a bare mx (the current domain) too."""
    e = env()
    term = spf.split()[1]
    for n, bad in ((11, True), (10, False)):
        z = e.zone(example__test=mx_records(n) + txt(spf),
                   big__example__test=mx_records(n))
        r, lines = e.check(z)
        finding = ("error: SPF: %s: %s has 11 MX records, more than the 10 "
                   "RFC 7208 4.6.4 allows (permerror)" %
                   (term, "example.test" if term == "mx" else
                    "big.example.test"))
        if bad:
            assert finding in lines, r.stdout
            assert r.returncode == 1
            # the evaluator agrees, even for the MX host's address
            assert evaluate_spf(e, "192.0.2.25") == "spf=permerror"
        else:
            assert not [l for l in lines if "MX records" in l], r.stdout
            assert r.returncode == 0, r.stdout
            assert evaluate_spf(e, "192.0.2.25") == "spf=pass"


def test_check_spf_void_exists_and_bare(env):
    """RFC 7208 4.6.4: exists: targets and bare a / mx (the current
    domain) are void lookups too: here exists:, then a and mx at an
    include target that has no records, three in all."""
    e = env()
    z = e.zone(example__test=[{"type": "MX", "pref": 10, "value": HOST}] +
               txt("v=spf1 mx a:mx.example.test exists:nx.example.test "
                   "include:i.example.test -all"),
               i__example__test=txt("v=spf1 a mx -all"))
    r, lines = e.check(z)
    assert ("warning: SPF: 3 void lookups (NXDOMAIN or no records): "
            "receivers may return permerror after 2 (RFC 7208 4.6.4)"
            ) in lines, r.stdout
    assert ("warning: SPF: exists:nx.example.test names nx.example.test, "
            "which has no A record") in lines
    assert ("warning: SPF: a names i.example.test, which has no address"
            ) in lines
    assert ("warning: SPF: mx names i.example.test, which has no MX record"
            ) in lines
    assert evaluate_spf(e, "192.0.2.99") == "spf=permerror"
    # with one void fewer the evaluator gets to -all, and no count warning
    z["i.example.test"] = [{"type": "A", "value": "192.0.2.7"}] + txt(
        "v=spf1 a mx -all")
    r, lines = e.check(z)
    assert not [l for l in lines if "void lookups" in l], r.stdout
    assert evaluate_spf(e, "192.0.2.99") == "spf=fail"


def test_check_spf_void_ipv6_only_host(env):
    """The a mechanism asks A for an IPv4 client: a host with only AAAA
    is a void lookup for it (counted), though it has an address (not
    said as a host without one)."""
    e = env()
    z = e.zone(example__test=[{"type": "MX", "pref": 10, "value": HOST}] +
               txt("v=spf1 a:v6.example.test a:nx1.example.test "
                   "a:nx2.example.test -all"),
               v6__example__test=[{"type": "AAAA", "value": "2001:db8::1"}])
    r, lines = e.check(z)
    assert ("warning: SPF: 3 void lookups (NXDOMAIN or no records): "
            "receivers may return permerror after 2 (RFC 7208 4.6.4)"
            ) in lines, r.stdout
    assert not [l for l in lines if "v6.example.test, which" in l]
    assert ("warning: SPF: a:nx1.example.test names nx1.example.test, which "
            "has no address") in lines
    assert evaluate_spf(e, "192.0.2.99") == "spf=permerror"


@pytest.mark.parametrize("qual,what,result", [
    ("-", "fails every sender (the include matches everyone, its "
     "qualifier - applies)", "spf=fail"),
    ("~", "softfails every sender (the include matches everyone, its "
     "qualifier ~ applies)", "spf=softfail"),
    ("?", "gives every sender neutral (the include matches everyone, its "
     "qualifier ? applies)", "spf=neutral"),
    ("", "passes every sender", "spf=pass"),
])
def test_check_spf_include_of_plus_all(env, qual, what, result):
    """RFC 7208 5.2: an include whose target ends in +all matches every
    sender, so its qualifier is everyone's result."""
    e = env()
    z = e.zone(example__test=[{"type": "MX", "pref": 10, "value": HOST}] +
               txt("v=spf1 %sinclude:open.example.test mx -all" % qual),
               open__example__test=txt("v=spf1 +all"))
    r, lines = e.check(z)
    assert r.returncode == 1
    assert ("error: SPF: %sinclude:open.example.test at example.test %s: "
            "its record ends in +all" % (qual, what)) in lines, r.stdout
    # the evaluator: even the MX host, listed after, gets that result
    assert evaluate_spf(e, "192.0.2.25") == result


# ------------------------------------------- review: DKIM keys

def pkcs1(txt_value):
    """The record with its SubjectPublicKeyInfo p= turned into the bare
    PKCS#1 RSAPublicKey of the same key (openssl rsa)."""
    head, b64 = txt_value.split("p=")
    r = subprocess.run(["openssl", "rsa", "-pubin", "-inform", "DER",
                        "-RSAPublicKey_out", "-outform", "DER"],
                       input=base64.b64decode(b64), capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout != base64.b64decode(b64)
    return head + "p=" + base64.b64encode(r.stdout).decode()


def test_check_dkim_pkcs1_key(env, mx):
    """The same RSA key published as an RSAPublicKey is a match (the
    verifier takes both forms); another key in that form is not."""
    e = env()
    r, lines = e.check(e.zone(**{
        "rsa1._domainkey.example.test": txt(pkcs1(e.rsa_txt))}))
    assert r.returncode == 0, r.stdout
    assert ("ok: DKIM: rsa1._domainkey.example.test publishes the rsa key "
            "of %s" % e.rsa) in lines
    _, other_txt = keygen(mx.dir, "other", "rsa")
    r, lines = e.check(e.zone(**{
        "rsa1._domainkey.example.test": txt(pkcs1(other_txt))}))
    assert ("error: DKIM key mismatch at rsa1._domainkey.example.test: the "
            "published p= is not the public half of %s" % e.rsa) in lines
    # folding white space inside p= is no difference (RFC 6376 3.6.1)
    spaced = e.ed_txt[:-10] + " \t" + e.ed_txt[-10:]
    r, lines = e.check(e.zone(**{
        "ed1._domainkey.example.test": txt(spaced)}))
    assert r.returncode == 0, r.stdout


@pytest.mark.parametrize("p", ["AAAA", "!!!!", "QUJD", "QUJDRA="])
def test_check_dkim_bad_key_data(env, p):
    e = env()
    head = e.rsa_txt.split("p=")[0]
    r, lines = e.check(e.zone(**{
        "rsa1._domainkey.example.test": txt(head + "p=" + p)}))
    assert r.returncode == 1
    assert ("error: DKIM: the p= at rsa1._domainkey.example.test is no rsa "
            "public key: verifiers fail signatures with selector rsa1"
            ) in lines, r.stdout


@pytest.mark.parametrize("tag,finding", [
    ("h=sha1", "error: DKIM: ed1._domainkey.example.test has h=sha1, which "
     "leaves out sha256: verifiers fail the signatures of {ed} (RFC 6376 "
     "3.6.1)"),
    ("s=tlsrpt", "error: DKIM: ed1._domainkey.example.test has s=tlsrpt, "
     "neither * nor email: the key is not for mail, verifiers fail the "
     "signatures of {ed} (RFC 6376 3.6.1)"),
    ("h=sha1 : SHA256", None),
    ("s=tlsrpt:Email", None),
    ("s=*", None),
])
def test_check_dkim_h_and_s(env, tag, finding):
    e = env()
    rec = e.ed_txt.replace("k=ed25519;", "k=ed25519; %s;" % tag)
    assert tag in rec
    r, lines = e.check(e.zone(**{"ed1._domainkey.example.test": txt(rec)}))
    if finding is None:
        assert r.returncode == 0, r.stdout
        assert ("ok: DKIM: ed1._domainkey.example.test publishes the ed25519 "
                "key of %s" % e.ed) in lines
    else:
        assert r.returncode == 1
        assert finding.format(ed=e.ed) in lines, r.stdout
        assert summary(lines) == "1 error, 0 warnings"


def test_check_hostile_new_paths(env):
    """Oversized and control-octet text in the authorising record, the
    key record's h= / s= / p=, and a deep DMARC walk: findings stay
    short and clean."""
    e = env()
    junk = "\x1b[2J" + "x" * 5000
    dom = ".".join("l%d" % i for i in range(30)) + ".example.test"
    z = e.zone(**{
        "_dmarc.example.test": txt(EXT_DMARC),
        AUTH: txt("v=DMARC1; rua=" + junk),
        "rsa1._domainkey.example.test": txt(
            "v=DKIM1; k=rsa; h=" + junk + "; s=" + junk + "; p=" + "A" * 20000),
        "ed1._domainkey.example.test": txt("v=DKIM1; k=ed25519; p=" +
                                           "A" * 43 + "="),
        dom: [{"type": "MX", "pref": 10, "value": HOST}] + txt(SPF),
    })
    for d in (DOMAIN, dom):
        r, lines = e.check(z, domain=d)
        assert r.returncode == 1
        assert "\x1b" not in r.stdout
        assert max(len(l) for l in lines) < 600, r.stdout
    r, lines = e.check(z)
    assert [l for l in lines if l.startswith("error: DMARC: rua "
            "dmarc@reports.test: the authorising record at %s has a rua= "
            "URI that is not mailto: or is malformed (rua=?[2Jxxx" % AUTH)], \
        r.stdout
    assert [l for l in lines if l.startswith(
        "error: DKIM: rsa1._domainkey.example.test has h=?[2Jxxx")]
    assert [l for l in lines if l.startswith(
        "error: DKIM: rsa1._domainkey.example.test has s=?[2Jxxx")]
    assert ("error: DKIM: the p= at rsa1._domainkey.example.test is no rsa "
            "public key: verifiers fail signatures with selector rsa1") in lines
    # 32 zero octets: an ed25519 key, but not this one
    assert ("error: DKIM key mismatch at ed1._domainkey.example.test: the "
            "published p= is not the public half of %s" % e.ed) in lines
    # the deep name walks up to example.test's record (8 questions at most)
    r, lines = e.check(z, domain=dom)
    assert dmarc_lines(lines)[0] == (
        "ok: DMARC: no record at _dmarc.%s; the policy of example.test "
        "applies (p=reject, as it has no sp=)" % dom), r.stdout
