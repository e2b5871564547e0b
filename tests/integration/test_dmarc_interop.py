"""DMARC interoperability: mxgate's verdicts cross-checked against an
independent implementation, Mail::DMARC::PurePerl (Debian
libmail-dmarc-perl; RFC 7489 with the Public Suffix List), on a few
hundred seeded random scenarios.

Both sides read the same DNS (tests/tools/dnsserver.py, one zone that
holds every scenario under its own names) and the same Public Suffix List
(../shared/conformance/publicsuffix-list/public_suffix_list.dat):

- mxgate: `mxgate check message --discovery psl --psl-file PSL`, which
  verifies SPF (real records in the zone, client 127.0.0.1) and DKIM
  (real dkimpy signatures, keys in the zone) itself, then DMARC; we read
  its Authentication-Results (dmarc=RESULT (p= sp= dis=) and the spf= and
  dkim= results);
- Mail::DMARC: tests/tools/maildmarc_eval.pl, one process for all the
  scenarios (JSON lines in and out), with a Net::DNS resolver pointed at
  the test server's port. It is fed the SPF and DKIM results by
  construction (what the zone and the signatures make them), and this
  test checks that mxgate computed the same ones, so both sides judge the
  same inputs.

Compared per scenario: the DMARC result (pass, fail, none) and the
disposition (none, quarantine, reject: the policy to apply after
testing mode, before local overrides). Mail::DMARC samples pct= at
random; maildmarc_eval.pl pins its rand() to 0, so 1 <= pct always
samples the message in and pct=0 always falls back one level, as RFC
9989's reading of pct (mxgate: pct=0 is t=y, other values t=n; RFC 9989
A.6) gives; pct=1..99 is where the two RFCs differ in intent (RFC 7489
6.6.4 samples), and the pinned rand() is the draw under which they agree.

Where RFC 9989 (mxgate) and RFC 7489 (Mail::DMARC) really differ, the
scenario carries a "twin": the same scenario under other names, with
RFC 7489 records that say what RFC 9989 reads in the original ones
(KNOWN_DIFFERENCES below says which, with the sections; two entries
there are Mail::DMARC bugs, not RFC differences, handled the same way).
Then mxgate on the original must equal Mail::DMARC on the twin; the
second test checks that each difference does change Mail::DMARC's
verdict in some scenario, so that none is dead weight. Anything else is
a disagreement, reported with the scenario's records, message and both
verdicts. Also compared: the p= and sp= of the record that applied, and
whether testing mode (t=y, pct=0) lowered the policy.

The RFC 9989 section numbers are those auth/dmarc cites.

Environment: DMARC_INTEROP_SEED (default 7489), DMARC_INTEROP_CASES
(default 200), DMARC_INTEROP_JOBS (parallel mxgate runs, default 4).
"""

import base64
import collections
import concurrent.futures
import json
import os
import random
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import PYTHON, REPO, mxgate_bin, spawn, stop_process

HERE = os.path.dirname(os.path.abspath(__file__))
DNSSERVER = os.path.join(HERE, "..", "tools", "dnsserver.py")
EVAL = REPO / "tests" / "tools" / "maildmarc_eval.pl"
PSL = (REPO / ".." / "shared" / "conformance" / "publicsuffix-list" /
       "public_suffix_list.dat").resolve()

SEED = int(os.environ.get("DMARC_INTEROP_SEED", "7489"))
CASES = int(os.environ.get("DMARC_INTEROP_CASES", "200"))
JOBS = int(os.environ.get("DMARC_INTEROP_JOBS", "4"))

CLIENT_IP = "127.0.0.1"
SPF_RECORDS = {
    "pass": "v=spf1 ip4:127.0.0.0/8 -all",
    "fail": "v=spf1 ip4:192.0.2.1 -all",
    "softfail": "v=spf1 ip4:192.0.2.1 ~all",
    "neutral": "v=spf1 ?all",
    "none": None,                       # no SPF record at all
    "permerror": "v=spf1 foo -all",     # an unknown mechanism
}

try:
    import dkim
except ImportError:
    dkim = None

# Where the scenarios' organizational domains sit, by the PSL's
# structure: a one-label suffix, a two-label one, a four-label one, a
# wildcard rule (*.ck: every <label>.ck is a public suffix) and a
# PRIVATE-section suffix. Exception rules (!www.ck) are left out:
# Mail::DMARC 1.20211209's is_public_suffix() does not implement them
# (nor the implicit "*" rule for unlisted TLDs, for which it returns the
# TLD itself as organizational domain), so they would only show its bugs.
SUFFIXES = ["com", "co.uk", "pvt.k12.ma.us", "WILD.ck", "github.io"]

KNOWN_DIFFERENCES = {
    # RFC 9989 4.7 "t": t=y asks for the policy one level below the one
    # published (reject -> quarantine, quarantine -> none); RFC 7489 has
    # no t= (6.3: unknown tags are ignored). An explicit t= also wins
    # over pct= (mxgate reads pct=0 as t=y only when t= is absent, RFC
    # 9989 A.6). Twin: t=y becomes pct=0, t=n drops pct=.
    "t": "RFC 9989 4.7 t= (testing) is unknown to RFC 7489",
    # RFC 9989 4.7 "np" (from RFC 9091 4.1): the policy for a subdomain
    # of the policy domain that does not exist (RFC 9989 3.2.13 NXDOMAIN;
    # mxgate asks A, AAAA and MX). RFC 7489 applies sp= (else p=). Twin:
    # sp= becomes the np= value.
    "np": "RFC 9989 4.7 np= for a non-existent author domain",
    # RFC 9989 4.7 "p" is optional, a record without it is p=none; RFC
    # 7489 6.3 makes p= REQUIRED and 6.6.3 step 6 drops a record without
    # a valid p= unless rua= holds a valid URI. Twin: p=none added.
    "nop": "RFC 9989 4.7: a missing p= is p=none (RFC 7489 6.6.3: no DMARC)",
    # RFC 9989 4.10 steps 2-3 (the tree walk; mxgate's PSL mode keeps
    # this rule): several DMARC records at one name are no record there,
    # and discovery goes on to the organizational domain. RFC 7489 6.6.3
    # step 5: several records at the author domain end discovery, no
    # DMARC processing. Twin: the records at a name that has several
    # removed (several at the org domain: no DMARC either way).
    "dup": "RFC 9989 4.10: multiple records = none at that name, go on",
    # Not an RFC difference: RFC 7489 6.6.3 step 6 and RFC 9989 4.10.1
    # both say a record with an invalid p= but a valid rua= counts as
    # p=none. Mail::DMARC 1.20211209 croaks in Policy::is_valid() on the
    # bad p= before discover_policy() reaches that rule, and applies no
    # DMARC. Twin: the record as "v=DMARC1; p=none; rua=...".
    "pbad": "Mail::DMARC bug: invalid p= with valid rua= is not p=none",
    # Not an RFC difference either: policy values are ABNF literals, case
    # insensitive (RFC 7489 6.4 and RFC 9989 4.8 by RFC 5234 2.3), which
    # Mail::DMARC accepts, but its pct= fallback in validate() compares
    # `$effective_p eq 'reject'` as spelt, so p=Reject with pct=0 falls
    # back to none instead of quarantine. Twin: the values in lower case.
    "case": "Mail::DMARC bug: pct= fallback of p=Reject is none",
}


# ---------------------------------------------------------------- scenarios

class Record:
    """One DMARC record: tags in order, plus how it is spelt."""

    def __init__(self, tags, kind="plain"):
        self.tags = list(tags)          # [(name, value)], v first
        self.kind = kind                # plain, nop (no p=), pbad (bad p=)
        self.sep = "; "                 # between tags
        self.eq = "="                   # in tags after v=DMARC1
        self.upper = False              # tag names after v in upper case
        self.trailing = False           # a ";" at the end
        self.split = 0                  # TXT strings split there (0: one)

    def get(self, name):
        for n, v in self.tags:
            if n == name:
                return v
        return None

    def has(self, name):
        return self.get(name) is not None

    def without(self, *names):
        r = Record([(n, v) for n, v in self.tags if n not in names], self.kind)
        r.sep, r.eq, r.upper = self.sep, self.eq, self.upper
        r.trailing, r.split = self.trailing, self.split
        return r

    def with_tag(self, name, value):
        r = self.without(name)
        r.tags.append((name, value))
        return r

    def text(self):
        """v=DMARC1 exactly as spelt by RFC 7489 6.4 (Mail::DMARC only
        accepts a record whose first 8 octets are it, without spaces),
        then the tags with WSP and tag names varied (ABNF: *WSP around
        "=", literals in any case)."""
        s = self.sep.join(["v=DMARC1"] + [
            "%s%s%s" % (n.upper() if self.upper else n, self.eq, v)
            for n, v in self.tags if n != "v"])
        return s + (";" if self.trailing else "")

    def strings(self, rename=lambda t: t):
        """The TXT character-strings: one, or two split past v=DMARC1
        (RFC 9989 4.7 and RFC 7489 6.3 take a record of several strings
        as their concatenation). rename keeps lengths, so the split
        falls at the same place in a twin."""
        t = rename(self.text())
        if self.split and self.split < len(t):
            return [t[:self.split], t[self.split:]]
        return [t]


def gen_record(rng, org, allow_edge=True, np_rate=0.15):
    """A random DMARC record for a scenario whose org domain is org."""
    pol = ["none", "quarantine", "reject"]
    tags = [("v", "DMARC1")]
    kind = "plain"
    r = rng.random()
    if allow_edge and r < 0.06:
        kind = "nop"
    elif allow_edge and r < 0.09:
        kind = "pbad"
    if kind == "plain":
        p = rng.choice(pol)
        if rng.random() < 0.06:
            p = p.capitalize()          # ABNF literals: any case
        tags.append(("p", p))
    elif kind == "pbad":
        tags.append(("p", rng.choice(["bogus", "rejected", "nothing"])))
    # no sp=, np=, adkim=, aspf= with a bad p=: whether "act as if a
    # record containing p=none was retrieved" (RFC 7489 6.6.3, RFC 9989
    # 4.10.1) keeps them is open to reading
    if kind != "pbad":
        if rng.random() < 0.5:
            tags.append(("sp", rng.choice(pol)))
        if rng.random() < np_rate:
            tags.append(("np", rng.choice(pol)))
        if rng.random() < 0.35:
            tags.append(("adkim", rng.choice("rs")))
        if rng.random() < 0.35:
            tags.append(("aspf", rng.choice("rs")))
    # pct=0 the more often with p=Reject (see KNOWN_DIFFERENCES "case")
    if rng.random() < (0.6 if ("p", "Reject") in tags else 0.25):
        tags.append(("pct", str(rng.choice([0, 0, 100, 50, 1, 99]))))
    if rng.random() < 0.15:
        tags.append(("t", rng.choice("yn")))
    if kind == "pbad" or rng.random() < (0.4 if kind == "nop" else 0.15):
        tags.append(("rua", "mailto:dmarc@" + org))
    if rng.random() < 0.1:
        tags.append(("fo", rng.choice(["1", "0:d", "s"])))
    if rng.random() < 0.08:
        tags.append(("ri", "3600"))
    if rng.random() < 0.05:
        tags.append(("rf", "afrf"))
    if rng.random() < 0.05:
        tags.append(("future", "yes"))     # unknown tags are ignored
    head, rest = tags[:1], tags[1:]
    rng.shuffle(rest)
    rec = Record(head + rest, kind)
    rec.sep = rng.choice(["; ", ";", " ; ", ";  ", "\t;\t"])
    rec.eq = rng.choice(["="] * 6 + [" = ", "= "])
    rec.upper = rng.random() < 0.08
    rec.trailing = rng.random() < 0.3
    if rng.random() < 0.2 and len(rec.text()) > 10:
        rec.split = rng.randint(9, len(rec.text()) - 1)
    return rec


class Scenario:
    """Names are built from a tag unique to the scenario ("x17y"), so all
    scenarios share one zone; the twin is the same scenario under the tag
    "x17t" with RFC 7489 records standing for RFC 9989's reading."""

    def __init__(self, idx, rng):
        self.idx = idx
        self.tag = "x%dy" % idx
        self.twin = None
        self.diffs = []                 # KNOWN_DIFFERENCES keys in play
        suffix = rng.choice(SUFFIXES).replace("WILD", "w%s" % self.tag)
        self.org = "o%s.%s" % (self.tag, suffix)
        depth = rng.choices([0, 1, 2, 3], [25, 40, 25, 10])[0]
        if suffix.endswith(".ck") and rng.random() < 0.3:
            # the author domain is a public suffix (by the *.ck rule):
            # its own organizational domain under both RFCs, and every
            # name below it is an organizational domain of its own
            self.org, depth = suffix, 0
        labels = rng.sample(["mail", "news", "eu", "dept", "a", "b2"], depth)
        self.author = ".".join(labels + [self.org])
        self.chain = [".".join(labels[i:] + [self.org]) for i in range(depth)]
        # chain: the author and its parents below the org domain
        self.author_exists = depth == 0 or rng.random() > 0.12
        self.foreign = "f%s.%s" % (self.tag, suffix)
        self.suffix = suffix

        roles = {
            "author": self.author,
            "org": self.org,
            "parent": self.chain[1] if depth >= 2 else self.org,
            "child": "bounce." + self.author,
            "sibling": "zz." + self.org,
            "deep": "p.q." + self.org,
            "foreign": self.foreign,
            "foreign_sub": "mail." + self.foreign,
            # a public suffix (*.ck): its own organizational domain
            "suffix": suffix,
        }
        weights = {"author": 22, "org": 12, "parent": 7, "child": 8,
                   "sibling": 10, "deep": 5, "foreign": 22, "foreign_sub": 14,
                   "suffix": 6 if suffix.endswith(".ck") and
                   self.org != suffix else 0}
        if not self.author_exists:
            # nothing may be published at or below a name that does not
            # exist (it would be an empty non-terminal, which the test
            # server answers NXDOMAIN)
            weights["author"] = weights["child"] = 0

        def pick():
            names = list(weights)
            return roles[rng.choices(names, [weights[n] for n in names])[0]]

        # SPF: the MAIL FROM domain, or the HELO name with a null sender
        self.null_sender = rng.random() < 0.08
        self.spf_domain = pick()
        self.spf_result = rng.choices(list(SPF_RECORDS),
                                      [30, 30, 12, 8, 12, 8])[0]
        self.helo = self.spf_domain if self.null_sender else "client.example.net"
        self.sender = "" if self.null_sender else "bounce@" + \
            self.spelt(rng, self.spf_domain)

        # DKIM: 0, 1 or 2 signatures; "bad" ones are signed with a key
        # that is not the one published (dkim=fail)
        self.sigs = []
        for _ in range(rng.choices([0, 1, 2], [25, 55, 20])[0]):
            self.sigs.append({
                "domain": pick(),
                "upper": rng.random() < 0.1,
                "key": rng.choice(["rsa", "ed"]),
                "good": rng.random() < 0.8,
                "canon": (rng.choice([b"simple", b"relaxed"]),
                          rng.choice([b"simple", b"relaxed"])),
            })

        # DMARC records: at the org domain, the author domain, an
        # intermediate name (which RFC 7489 6.6.3 never reads), or none
        self.records = {}               # domain -> [Record]
        self.junk = {}                  # domain -> non-DMARC TXT at _dmarc
        where = set()
        r = rng.random()
        if r < 0.45:
            where = {self.org}
        elif r < 0.60:
            where = {self.author}
        elif r < 0.80:
            where = {self.org, self.author}
        elif r < 0.88 and depth >= 2:
            where = {self.org, self.chain[1]}
        elif r < 0.93:
            where = set()
        else:
            where = {self.org}
        if not self.author_exists:
            where.discard(self.author)
            where.add(self.org)
        for dom in sorted(where):
            # np= is what matters for a non-existent author domain
            np_rate = 0.7 if dom == self.org and not self.author_exists else 0.15
            self.records[dom] = [gen_record(rng, self.org, np_rate=np_rate)]
            # several records at a name; most telling at the author
            # domain when the org domain has one (RFC 9989 4.10 vs RFC
            # 7489 6.6.3 step 5)
            dup_rate = 0.2 if dom == self.author != self.org and \
                self.org in where else 0.03
            if rng.random() < dup_rate:
                # a second record at the same name
                self.records[dom].append(gen_record(rng, self.org, False))
            if rng.random() < 0.05:
                self.junk[dom] = rng.choice(["v=spf1 -all", "hello world",
                                             "v=DMARC2; p=reject"])

        # how the message's From names the author
        self.from_domain = self.spelt(rng, self.author)
        self.display = rng.choice(["", "Alice ", '"Alice, Smith" '])
        self._make_twin()

    @staticmethod
    def spelt(rng, name):
        """name, and in one case out of ten in mixed case (domain names
        compare without regard to case, RFC 4343)."""
        if rng.random() >= 0.1:
            return name
        return "".join(c.upper() if rng.random() < 0.5 else c for c in name)

    # -- RFC 9989's reading as RFC 7489 records

    def _make_twin(self):
        """Each record rewritten into the RFC 7489 record that says what
        RFC 9989 reads in it (KNOWN_DIFFERENCES); self.twin stays None
        when that changes nothing."""
        twin, diffs = {}, set()
        for dom, recs in self.records.items():
            if len(recs) > 1:
                diffs.add("dup")
                continue
            rec = recs[0]
            for tag in ("p", "sp", "np"):
                v = rec.get(tag)
                if v is not None and v != v.lower() and rec.kind != "pbad":
                    diffs.add("case")
                    rec = rec.with_tag(tag, v.lower())
            if rec.kind == "nop" and not rec.has("rua"):
                diffs.add("nop")
                rec = rec.with_tag("p", "none")
            if rec.kind == "pbad":
                diffs.add("pbad")
                rec = rec.with_tag("p", "none")
            if rec.has("t"):
                diffs.add("t")
                t = rec.get("t")
                rec = rec.without("t", "pct")
                if t == "y":
                    rec = rec.with_tag("pct", "0")
            if rec.has("np"):
                if not self.author_exists and dom != self.author:
                    diffs.add("np")
                    rec = rec.with_tag("sp", rec.get("np"))
                rec = rec.without("np")
            twin[dom] = [rec]
        self.diffs = sorted(diffs)
        if self.diffs:
            self.twin = twin

    # -- names, under a tag

    def rename(self, name, tag):
        return name.replace(self.tag, tag)

    def twin_tag(self):
        return "x%dt" % self.idx

    def zone(self, keys, twin=False):
        """The zone records of this scenario (or of its twin)."""
        tag = self.twin_tag() if twin else self.tag
        z = collections.defaultdict(list)

        def exists(name):
            # the name and its parents down to its org domain get an A
            # record, so that each is a name that exists
            while True:
                n = self.rename(name, tag)
                if not any(r["type"] == "A" for r in z[n]):
                    z[n].append({"type": "A", "value": "192.0.2.10"})
                if name in (self.org, self.foreign, self.suffix):
                    return
                name = name.split(".", 1)[1]

        exists(self.foreign)
        exists(self.chain[1] if len(self.chain) > 1 else self.org)
        if self.author_exists:
            exists(self.author)
        for dom in {self.spf_domain} | {s["domain"] for s in self.sigs}:
            exists(dom)
        spf = SPF_RECORDS[self.spf_result]
        if spf is not None:
            z[self.rename(self.spf_domain, tag)].append(
                {"type": "TXT", "value": [spf]})
        for s in self.sigs:
            d = self.rename(s["domain"], tag)
            z["%s._domainkey.%s" % (s["key"], d)] = [
                {"type": "TXT", "value": [keys.record(s["key"])]}]
            z["bad%s._domainkey.%s" % (s["key"], d)] = [
                {"type": "TXT", "value": [keys.record(s["key"], other=True)]}]
        records = self.twin if twin else self.records
        for dom, recs in records.items():
            name = "_dmarc." + self.rename(dom, tag)
            for r in recs:
                z[name].append({"type": "TXT", "value": [
                    x for x in r.strings(lambda t: self.rename(t, tag))]})
            if dom in self.junk:
                z[name].append({"type": "TXT", "value": [self.junk[dom]]})
        return z

    # -- the message

    def message(self, keys):
        frm = "From: %s<alice@%s>" % (self.display, self.from_domain)
        msg = ("%s\r\nTo: <user@example.net>\r\nSubject: scenario %d\r\n"
               "Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
               "Message-ID: <s%d@%s>\r\n\r\nHello %d.\r\n"
               % (frm, self.idx, self.idx, self.org, self.idx)).encode()
        sigs = b""
        for s in self.sigs:
            sel = (s["key"] if s["good"] else "bad" + s["key"]).encode()
            alg = b"rsa-sha256" if s["key"] == "rsa" else b"ed25519-sha256"
            d = s["domain"].upper() if s["upper"] else s["domain"]
            sigs = dkim.sign(msg, sel, d.encode(), keys.private(s["key"]),
                             canonicalize=s["canon"], signature_algorithm=alg,
                             include_headers=[b"from", b"to", b"subject",
                                              b"date", b"message-id"]) + sigs
        return sigs + msg

    def expected_dkim(self):
        return [("pass" if s["good"] else "fail", s["domain"],
                 s["key"] if s["good"] else "bad" + s["key"]) for s in self.sigs]

    def eval_input(self, twin=False):
        """What Mail::DMARC is fed: header From domain, SPF and DKIM."""
        tag = self.twin_tag() if twin else self.tag
        spf = [{"domain": self.rename(self.spf_domain, tag),
                "scope": "helo" if self.null_sender else "mfrom",
                "result": self.spf_result}]
        dk = [{"domain": self.rename(d, tag), "selector": sel, "result": res}
              for res, d, sel in self.expected_dkim()]
        inp = {"id": "%s%s" % (self.idx, "t" if twin else ""),
               "header_from": self.rename(self.author, tag),
               "source_ip": CLIENT_IP, "spf": spf, "dkim": dk}
        if not self.null_sender:
            inp["envelope_from"] = self.rename(self.spf_domain, tag)
        return inp

    def describe(self):
        lines = ["scenario %d: author %s (exists: %s), org %s"
                 % (self.idx, self.author, self.author_exists, self.org),
                 "  From: %s<alice@%s>" % (self.display, self.from_domain),
                 "  SPF %s for %s" % (self.spf_result,
                                       "HELO " + self.helo if self.null_sender
                                       else "MAIL FROM " + self.sender)]
        for s in self.sigs:
            lines.append("  DKIM %s d=%s (%s, c=%s)" % (
                "good" if s["good"] else "bad",
                s["domain"].upper() if s["upper"] else s["domain"], s["key"],
                b"/".join(s["canon"]).decode()))
        for dom, recs in sorted(self.records.items()):
            for r in recs:
                lines.append("  _dmarc.%s: %s" % (dom, r.text()))
            if dom in self.junk:
                lines.append("  _dmarc.%s: %s" % (dom, self.junk[dom]))
        if self.twin:
            for dom, recs in sorted(self.twin.items()):
                for r in recs:
                    lines.append("  twin _dmarc.%s: %s" % (dom, r.text()))
        if self.diffs:
            lines.append("  known differences: " + ", ".join(self.diffs))
        return "\n".join(lines)


# ---------------------------------------------------------------- keys, DNS

class Keys:
    def __init__(self):
        from cryptography.hazmat.primitives import serialization as ser
        from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
        self._priv, self._pub = {}, {}
        for kind in ("rsa", "ed"):
            for n in (0, 1):
                if kind == "rsa":
                    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                    priv = k.private_bytes(ser.Encoding.PEM,
                                           ser.PrivateFormat.TraditionalOpenSSL,
                                           ser.NoEncryption())
                    pub = "v=DKIM1; k=rsa; p=" + base64.b64encode(
                        k.public_key().public_bytes(
                            ser.Encoding.DER,
                            ser.PublicFormat.SubjectPublicKeyInfo)).decode()
                else:
                    k = ed25519.Ed25519PrivateKey.generate()
                    priv = base64.b64encode(k.private_bytes(
                        ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption()))
                    pub = "v=DKIM1; k=ed25519; p=" + base64.b64encode(
                        k.public_key().public_bytes(
                            ser.Encoding.Raw, ser.PublicFormat.Raw)).decode()
                self._priv[kind, n] = priv
                self._pub[kind, n] = pub

    def private(self, kind):
        return self._priv[kind, 0]

    def record(self, kind, other=False):
        return self._pub[kind, 1 if other else 0]


def merge_zones(zones):
    """One zone of all; the scenarios' names are disjoint."""
    out = {}
    for z in zones:
        for name, rrs in z.items():
            assert name not in out, "name in two scenarios: " + name
            out[name] = rrs
    return out


# ---------------------------------------------------------------- mxgate

def split_resinfo(value):
    """The ;-separated parts of an Authentication-Results value, with
    comments kept and semicolons inside comments or quotes ignored."""
    parts, cur, depth, quote, esc = [], [], 0, False, False
    for c in value:
        if esc:
            esc = False
        elif c == "\\":
            esc = True
        elif quote:
            quote = c != '"'
        elif c == '"':
            quote = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth = max(0, depth - 1)
        elif c == ";" and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(c)
    parts.append("".join(cur).strip())
    return parts


def parse_mxgate(stdout, stderr):
    ar = re.sub(r"\r?\n[ \t]+", " ", stdout).strip()
    assert ar.startswith("Authentication-Results:"), stdout
    out = {"spf": None, "dkim": [], "dmarc": None, "ar": ar,
           "verdict": stderr.strip()}
    for part in split_resinfo(ar.split(":", 1)[1])[1:]:
        m = re.match(r"(\w+)=(\w+)\s*(?:\((.*?)\))?(.*)$", part)
        if not m:
            continue
        method, result, comment, props = m.groups()
        comment = comment or ""
        if method == "spf":
            out["spf"] = result
        elif method == "dkim":
            d = re.search(r"header\.d=(\S+)", props)
            s = re.search(r"header\.s=(\S+)", props)
            if result != "none":
                out["dkim"].append((result, d.group(1) if d else "",
                                    s.group(1) if s else ""))
        elif method == "dmarc":
            pm = re.match(r"p=(\w+) sp=(\w+) dis=(\w+)( testing)?", comment)
            out["dmarc"] = {
                "result": result,
                "p": pm.group(1) if pm else None,
                "sp": pm.group(2) if pm else None,
                "dis": pm.group(3) if pm else "none",
                "testing": bool(pm and pm.group(4)),
                "comment": comment,
                "header_from": (re.search(r"header\.from=(\S+)", props) or
                                [None, None])[1],
            }
    return out


def run_mxgate(sc, keys, dns_port, workdir, discovery):
    path = os.path.join(workdir, "s%d.eml" % sc.idx)
    with open(path, "wb") as f:
        f.write(sc.message(keys))
    r = subprocess.run(
        [str(mxgate_bin()), "check", "message", "--ip", CLIENT_IP,
         "--sender", sc.sender, "--helo", sc.helo,
         "--dns", "127.0.0.1:%d" % dns_port, "--authserv-id", "mx.test",
         "--psl-file", str(PSL)] + list(discovery) + [path],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "mxgate check message failed (%d): %s" % (
        r.returncode, r.stderr)
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return parse_mxgate(r.stdout, r.stderr)


# ---------------------------------------------------------------- Mail::DMARC

def run_maildmarc(inputs, dns_port):
    data = "".join(json.dumps(i) + "\n" for i in inputs)
    r = subprocess.run(["perl", str(EVAL), "--dns", "127.0.0.1:%d" % dns_port,
                        "--psl", str(PSL)],
                       input=data, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "maildmarc_eval.pl failed: %s" % r.stderr
    out = {}
    for line in r.stdout.splitlines():
        o = json.loads(line)
        assert "error" not in o, "Mail::DMARC died on %s: %s" % (o["id"], o["error"])
        out[o["id"]] = o
    assert len(out) == len(inputs), r.stderr
    return out


def normalize_maildmarc(o):
    """Mail::DMARC's verdict as (result, disposition).
    When discovery ends without a usable record (several records, a bad
    one), validate() leaves its initial result "fail" with no published
    policy: RFC 7489 6.6.3 says no DMARC processing then, which is
    "none" (RFC 8601 2.7.1, RFC 7489 11.2)."""
    result = o["result"]
    if o["published"] is None:
        result = "none"
    return result, o["disposition"].lower()


# ---------------------------------------------------------------- the test

def prerequisites():
    if shutil.which("perl") is None:
        pytest.skip("perl missing")
    r = subprocess.run(["perl", "-MMail::DMARC::PurePerl", "-e", "1"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("Mail::DMARC missing: apt-get install -y libmail-dmarc-perl")
    if dkim is None:
        pytest.skip("dkimpy missing: apt-get install -y python3-dkim")
    if not PSL.exists():
        pytest.skip("%s absent (third-party conformance data)" % PSL)
    if not mxgate_bin().exists():
        pytest.skip("%s missing: run make SAN=1 all" % mxgate_bin())


def build_world(seed=SEED, cases=CASES, discovery=("--discovery", "psl")):
    """The scenarios, and the verdicts on them of mxgate (run with the
    discovery arguments given) and of Mail::DMARC (originals and twins),
    with one DNS server serving all of them while they run."""
    rng = random.Random(seed)
    scenarios = [Scenario(i, rng) for i in range(cases)]
    keys = Keys()
    zones = []
    for sc in scenarios:
        zones.append(sc.zone(keys))
        if sc.twin is not None:
            zones.append(sc.zone(keys, twin=True))
    tmp = tempfile.mkdtemp(prefix="mxgate-dmarc-interop-")
    zone_path = os.path.join(tmp, "zone.json")
    with open(zone_path, "w") as f:
        json.dump(merge_zones(zones), f)
    proc = spawn([PYTHON, DNSSERVER, "--port", "0", "--zone", zone_path],
                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True)
    try:
        m = re.match(r"LISTENING (\d+)", proc.stdout.readline() or "")
        assert m, "dnsserver did not start: %s" % proc.stderr.read()
        port = int(m.group(1))
        inputs = [sc.eval_input() for sc in scenarios]
        inputs += [sc.eval_input(twin=True) for sc in scenarios
                   if sc.twin is not None]
        md = run_maildmarc(inputs, port)
        with concurrent.futures.ThreadPoolExecutor(JOBS) as ex:
            mx = list(ex.map(lambda sc: run_mxgate(sc, keys, port, tmp,
                                                   discovery), scenarios))
        return scenarios, mx, md
    finally:
        stop_process(proc, timeout=5)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def world():
    prerequisites()
    return build_world()


def compare(sc, mx, md):
    """(problems, manifested): problems is [] when mxgate and Mail::DMARC
    agree on sc once the known differences are accounted for, else what
    differs; manifested tells whether a known difference changed the
    verdict (Mail::DMARC on the original and on the twin differ)."""
    problems = []
    # the inputs both sides judged: mxgate's own SPF and DKIM results
    # must be the ones Mail::DMARC was fed
    if mx["spf"] != sc.spf_result:
        problems.append("mxgate spf=%s, scenario makes it %s"
                        % (mx["spf"], sc.spf_result))
    got_dkim = sorted((r, d.lower(), s) for r, d, s in mx["dkim"])
    if got_dkim != sorted(sc.expected_dkim()):
        problems.append("mxgate dkim %s, scenario makes it %s"
                        % (got_dkim, sorted(sc.expected_dkim())))
    dm = mx["dmarc"]
    if dm is None:
        return problems + ["no dmarc= in mxgate's header: " + mx["ar"]], False
    if dm["header_from"] != sc.author:
        problems.append("mxgate header.from=%s, author domain %s"
                        % (dm["header_from"], sc.author))
    mx_v = (dm["result"], dm["dis"])
    orig_o = md[str(sc.idx)]
    orig = normalize_maildmarc(orig_o)
    ref_o, ref = orig_o, orig
    if sc.twin is not None:
        # a known difference: mxgate reads the records as Mail::DMARC
        # reads the twin's
        ref_o = md["%dt" % sc.idx]
        ref = normalize_maildmarc(ref_o)
    if mx_v != ref:
        problems.append("dmarc: mxgate %s/dis=%s, Mail::DMARC %s%s/dis=%s%s"
                        % (mx_v + ("on the RFC 9989 twin " if sc.twin is not None
                                   else "",) + ref +
                           (" (on the original: %s/dis=%s)" % orig
                            if sc.twin is not None else "",)))
    # the record that applied: its p= and sp= (sp= defaults to p=); np=
    # twins move np= into sp=, so only p= compares there
    pub = ref_o["published"]
    if dm["p"] is not None and pub is not None and ref[0] != "none":
        want = (pub["p"].lower(), pub.get("sp", pub["p"]).lower())
        got = (dm["p"], dm["sp"])
        if "np" in sc.diffs:
            want, got = want[:1], got[:1]
        if got != want:
            problems.append("policy record: mxgate p=/sp= %s, Mail::DMARC's "
                            "published %s (at %s)" % (got, want, pub["domain"]))
    elif (dm["p"] is None) != (ref[0] == "none"):
        problems.append("policy record: mxgate %s one, Mail::DMARC %s"
                        % ("found" if dm["p"] else "did not find",
                           "did not" if ref[0] == "none" else "did"))
    # the policy requested before testing mode: the same when both
    # lowered it (t=y, pct=0) or neither did; Mail::DMARC says
    # "sampled_out" when it lowered a policy other than none
    sampled = any(r.startswith("sampled_out") for r in ref_o["reason"])
    if ref[0] == "fail" and (ref[1] != "none" or sampled) and \
            sampled != dm["testing"]:
        problems.append("testing mode: mxgate %s, Mail::DMARC %s"
                        % ("on" if dm["testing"] else "off",
                           "sampled out" if sampled else "sampled in"))
    return problems, sc.twin is not None and orig != ref


def judge(world):
    """(disagreements as text, tally of what was seen)."""
    scenarios, mx, md = world
    bad = []
    tally = collections.Counter()
    for sc, m in zip(scenarios, mx):
        p, manifested = compare(sc, m, md)
        tally["agree" if not p else "disagree"] += 1
        if m["dmarc"]:
            tally["mxgate dmarc=%s dis=%s" % (m["dmarc"]["result"],
                                              m["dmarc"]["dis"])] += 1
        for d in sc.diffs:
            tally["known difference %s: in records" % d] += 1
        if manifested:
            tally["known difference %s: changed the verdict"
                  % "+".join(sc.diffs)] += 1
        if p:
            bad.append("%s\n  mxgate: %s\n  %s\n  Mail::DMARC: %s\n  => %s"
                       % (sc.describe(), m["ar"], m["verdict"],
                          json.dumps(md[str(sc.idx)], sort_keys=True),
                          "\n  => ".join(p)))
    return bad, tally


def test_maildmarc_agrees(world):
    """mxgate and Mail::DMARC agree on every scenario, once the known
    RFC 9989 / RFC 7489 differences are accounted for."""
    bad, tally = judge(world)
    summary = "\n".join("  %s: %d" % kv for kv in sorted(tally.items()))
    print("\nDMARC interop, seed %d, %d scenarios\n%s"
          % (SEED, len(world[0]), summary))
    assert not bad, "%d of %d scenarios disagree:\n\n%s\n\n%s" % (
        len(bad), len(world[0]), "\n\n".join(bad), summary)


def test_scenarios_cover_the_cases(world):
    """The default seed's scenarios reach every result and disposition,
    and every known difference, alone in its scenario, changes a verdict
    at least once (else the comparison above would prove less than it
    claims)."""
    if (SEED, CASES) != (7489, 200):
        pytest.skip("coverage is checked for the default seed and count")
    _, tally = judge(world)
    for what, least in (("dmarc=pass dis=none", 30), ("dmarc=none dis=none", 10),
                        ("dmarc=fail dis=none", 10),
                        ("dmarc=fail dis=quarantine", 10),
                        ("dmarc=fail dis=reject", 10)):
        assert tally["mxgate " + what] >= least, (what, tally)
    for d in KNOWN_DIFFERENCES:
        # alone in its scenario
        assert tally["known difference %s: changed the verdict" % d] >= 1, (d, tally)
