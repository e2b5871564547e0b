#!/usr/bin/python3
"""corpus.py: a DKIM-signed message corpus and the DNS zone that goes with it
(benchmarks only; run with Debian's /usr/bin/python3: python3-dkim,
python3-nacl).

    corpus.py --out DIR [--count N] [--size small|large|mix]
              [--fail-fraction F] [--sign both|rsa|ed25519|none]
              [--rcpt-domain D] [--seed S] [--force]
    corpus.py --check DIR      verify the signatures offline against DIR/zone.json
    corpus.py --verify-zone ZONE.json FILE...   each file's DKIM signatures

Writes into DIR:
  NNNNN.eml      messages in wire form (CRLF, not dot-stuffed), a few KB
                 (small: multipart/alternative text + HTML, ~4.5 KB) or a
                 few tens of KB (large: text + a base64 PDF-like attachment,
                 ~40 KB); mix is 4 small to 1 large.
  manifest.tsv   "file TAB mail-from TAB rcpt TAB pass|fail" per message
                 (what tests/bench/smtpload -D reads for the envelope).
  zone.json      the records tests/tools/dnsserver.py serves: SPF, DKIM
                 (RSA-2048 and Ed25519 selectors), DMARC, MX/A, PTR.
  keys/          the signing keys (RSA PEM, Ed25519 seed), made once per DIR.
  corpus.json    the parameters and the expected pass/fail counts; when it
                 matches the arguments the corpus is reused, not rewritten.

The scenario: mail from sender.example (SPF ip4:127.0.0.0/8, DMARC
p=reject) signed by sender.example, with MAIL FROM in that domain: SPF,
DKIM and DMARC pass. A fraction (--fail-fraction, spread evenly) fails
DMARC the way mailing-list traffic does: From partner.example (DMARC
p=none, so it is still accepted and delivered), signed by partner.example
and then changed (a footer appended: the body hash no longer matches), and
MAIL FROM bounces.bulk.example (SPF passes but is not aligned).
--sign none makes unsigned mail (for outbound signing), --rcpt-domain
picks the recipients' domain.
"""
import argparse
import base64
import json
import os
import random
import subprocess
import sys
import time

import dkim
import nacl.signing

SENDER = "sender.example"
PARTNER = "partner.example"
BULK = "bulk.example"
RSA_SEL = "r2048"
ED_SEL = "e25519"
SPF = "v=spf1 ip4:127.0.0.0/8 ip4:192.0.2.0/24 -all"
SIGNED = [b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
          b"content-type", b"list-unsubscribe"]
VERSION = 1             # bump when the generated content changes

WORDS = ("account agenda approve archive attach balance before below board budget "
         "call change client close confirm contract copy cost customer data deadline "
         "delivery detail draft due estimate expense feedback file final follow forecast "
         "further hand include invoice issue item latest leave list meeting minutes month "
         "note number offer order payment plan please point price project proposal "
         "quarter question receipt record release remind report request review revised "
         "schedule send server service ship shipment sign status summary support team "
         "thanks ticket timeline today update version week welcome with would your the a "
         "of and to in is for on that this we you it be as at by from our will are can").split()


def sentence(rng, lo=6, hi=16):
    w = [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]
    return " ".join(w).capitalize() + rng.choice(".....?!")


def prose(rng, nbytes, width=72):
    """Wrapped paragraphs, about nbytes, as a list of lines."""
    lines, cur, total = [], "", 0
    while total < nbytes:
        for word in sentence(rng).split():
            if cur and len(cur) + 1 + len(word) > width:
                lines.append(cur)
                total += len(cur) + 2
                cur = word
            else:
                cur = cur + " " + word if cur else word
        if rng.random() < 0.2:
            lines += [cur, ""]
            total += len(cur) + 4
            cur = ""
    if cur:
        lines.append(cur)
    return lines


def html(rng, nbytes):
    out = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\"></head>",
           "<body style=\"font-family: Arial, sans-serif; font-size: 14px\">"]
    para = []
    for line in prose(rng, nbytes):
        if line:
            para.append(line)
        elif para:
            out.append("<p>" + " ".join(para) + "</p>")
            para = []
    if para:
        out.append("<p>" + " ".join(para) + "</p>")
    out.append("</body></html>")
    # keep lines short (RFC 5322 2.1.1: 78 preferred)
    wrapped = []
    for line in out:
        while len(line) > 76:
            cut = line.rfind(" ", 0, 76)
            cut = cut if cut > 0 else 76
            wrapped.append(line[:cut])
            line = line[cut:].lstrip()
        wrapped.append(line)
    return wrapped


def build(i, size, fail, rcpt_domain, rng):
    """One message (bytes, CRLF) and its envelope."""
    dom = PARTNER if fail else SENDER
    user = "user%d" % (i % 97)
    rcpt = "rcpt%d@%s" % (i % 53, rcpt_domain)
    ts = 1767225600 + i * 41
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(ts))
    bnd = "----=_Part_%d_%08x" % (i, rng.getrandbits(32))
    h = [
        "Received: from app%d.internal.%s (app%d.internal.%s [10.1.%d.%d])" % (
            i % 7, dom, i % 7, dom, i % 4, i % 250 + 2),
        "\tby mail.%s with ESMTPS id %012x" % (dom, rng.getrandbits(48)),
        "\tfor <%s>; %s" % (rcpt, date),
        "From: \"User %d\" <%s@%s>" % (i % 97, user, dom),
        "To: <%s>" % rcpt,
        "Subject: %s" % sentence(rng, 3, 8)[:-1],
        "Date: %s" % date,
        "Message-ID: <%d.%016x@mail.%s>" % (ts, rng.getrandbits(64), dom),
        "MIME-Version: 1.0",
    ]
    if fail:
        h.append("List-Unsubscribe: <mailto:leave-%d@lists.%s>" % (i, dom))
        h.append("List-Id: <team.lists.%s>" % dom)
    b = ["This is a multi-part message in MIME format.", ""]
    if size == "small":
        h.append("Content-Type: multipart/alternative; boundary=\"%s\"" % bnd)
        b += ["--" + bnd, "Content-Type: text/plain; charset=utf-8",
              "Content-Transfer-Encoding: 7bit", ""] + prose(rng, 1300)
        b += ["", "--" + bnd, "Content-Type: text/html; charset=utf-8",
              "Content-Transfer-Encoding: 7bit", ""] + html(rng, 1500)
    else:
        h.append("Content-Type: multipart/mixed; boundary=\"%s\"" % bnd)
        b += ["--" + bnd, "Content-Type: text/plain; charset=utf-8",
              "Content-Transfer-Encoding: 7bit", ""] + prose(rng, 2600)
        blob = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + rng.randbytes(27000)
        enc = base64.b64encode(blob).decode()
        b += ["", "--" + bnd,
              "Content-Type: application/pdf; name=\"statement-%d.pdf\"" % i,
              "Content-Transfer-Encoding: base64",
              "Content-Disposition: attachment; filename=\"statement-%d.pdf\"" % i, ""]
        b += [enc[k:k + 76] for k in range(0, len(enc), 76)]
    b += ["", "--" + bnd + "--", ""]
    msg = ("\r\n".join(h) + "\r\n\r\n" + "\r\n".join(b)).encode()
    mail_from = "bounces+%d@%s" % (i, BULK) if fail else "%s@%s" % (user, dom)
    return msg, mail_from, rcpt, dom


def make_keys(kdir):
    os.makedirs(kdir, exist_ok=True)
    rsa = os.path.join(kdir, "rsa.pem")
    ed = os.path.join(kdir, "ed25519.seed")
    if not os.path.exists(rsa):
        subprocess.run(["openssl", "genrsa", "-traditional", "-out", rsa + ".tmp", "2048"],
                       check=True, stderr=subprocess.DEVNULL)
        os.rename(rsa + ".tmp", rsa)
    if not os.path.exists(ed):
        with open(ed + ".tmp", "w") as fh:
            fh.write(base64.b64encode(bytes(nacl.signing.SigningKey.generate())).decode() + "\n")
        os.rename(ed + ".tmp", ed)
    with open(rsa, "rb") as fh:
        rsa_pem = fh.read()
    with open(ed, "rb") as fh:
        ed_seed = fh.read().strip()
    der = subprocess.run(["openssl", "rsa", "-in", rsa, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    rsa_pub = base64.b64encode(der).decode()
    ed_pub = base64.b64encode(bytes(nacl.signing.SigningKey(base64.b64decode(ed_seed)).verify_key)).decode()
    return rsa_pem, ed_seed, rsa_pub, ed_pub


def zone(rsa_pub, ed_pub, rcpt_domain):
    txt = lambda v: {"type": "TXT", "value": v}
    z = {
        SENDER: [txt(SPF), {"type": "MX", "pref": 10, "value": "mail." + SENDER}],
        "mail." + SENDER: [{"type": "A", "value": "127.0.0.1"}, txt("v=spf1 a -all")],
        "_dmarc." + SENDER: [txt("v=DMARC1; p=reject")],
        PARTNER: [txt(SPF), {"type": "MX", "pref": 10, "value": "mail." + PARTNER}],
        "mail." + PARTNER: [{"type": "A", "value": "127.0.0.1"}],
        "_dmarc." + PARTNER: [txt("v=DMARC1; p=none")],
        BULK: [txt("v=spf1 ip4:127.0.0.0/8 -all")],
        rcpt_domain: [{"type": "MX", "pref": 10, "value": "mx." + rcpt_domain}],
        "mx." + rcpt_domain: [{"type": "A", "value": "127.0.0.1"}],
        "1.0.0.127.in-addr.arpa": [{"type": "PTR", "value": "mail." + SENDER}],
    }
    for d in (SENDER, PARTNER):
        z["%s._domainkey.%s" % (RSA_SEL, d)] = [txt("v=DKIM1; k=rsa; p=" + rsa_pub)]
        z["%s._domainkey.%s" % (ED_SEL, d)] = [txt("v=DKIM1; k=ed25519; p=" + ed_pub)]
    return z


def sign(msg, dom, how, rsa_pem, ed_seed):
    sigs = b""
    if how in ("both", "ed25519"):
        sigs += dkim.sign(msg, ED_SEL.encode(), dom.encode(), ed_seed,
                          canonicalize=(b"relaxed", b"relaxed"), include_headers=SIGNED,
                          signature_algorithm=b"ed25519-sha256")
    if how in ("both", "rsa"):
        sigs += dkim.sign(msg, RSA_SEL.encode(), dom.encode(), rsa_pem,
                          canonicalize=(b"relaxed", b"relaxed"), include_headers=SIGNED)
    return sigs + msg


def dnsfunc_for(z):
    def f(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        for r in z.get(n.rstrip(".").lower(), []):
            if r["type"] == "TXT":
                return r["value"].encode()
        return None
    return f


def verify_files(zone_path, files):
    """Each DKIM signature of each file against zone_path; 0 when all pass."""
    with open(zone_path) as fh:
        f = dnsfunc_for(json.load(fh))
    bad = 0
    for name in files:
        with open(name, "rb") as fh:
            data = fh.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        sigs = dkim.DKIM(data)
        n = len([h for h in sigs.headers if h[0].lower() == b"dkim-signature"])
        res = []
        for k in range(n):
            try:
                ok = sigs.verify(idx=k, dnsfunc=f)
            except dkim.DKIMException:
                ok = False
            res.append("%s:%s" % (sigs.signature_fields.get(b"a", b"?").decode(), "pass" if ok else "FAIL"))
            bad += 0 if ok else 1
        bad += 0 if n else 1
        print("%s: %d DKIM signature(s) %s" % (os.path.basename(name), n, " ".join(res)))
    return 1 if bad else 0


def check(d):
    with open(os.path.join(d, "zone.json")) as fh:
        f = dnsfunc_for(json.load(fh))
    bad = 0
    seen = {}
    with open(os.path.join(d, "manifest.tsv")) as fh:
        for line in fh:
            name, _, _, kind = line.rstrip("\n").split("\t")
            if kind in seen:
                continue
            seen[kind] = name
            with open(os.path.join(d, name), "rb") as mf:
                data = mf.read()
            nsig = data.count(b"\r\nDKIM-Signature:") + data.startswith(b"DKIM-Signature:")
            results = []
            for k in range(nsig):
                try:
                    results.append(dkim.DKIM(data).verify(idx=k, dnsfunc=f))
                except dkim.DKIMException:
                    results.append(False)
            want = kind == "pass"
            ok = all(r == want for r in results)
            print("%s: %s, %d signature(s): %s -> %s" % (
                name, kind, nsig, results, "ok" if ok else "UNEXPECTED"))
            bad += 0 if ok else 1
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out")
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--size", choices=["small", "large", "mix"], default="small")
    ap.add_argument("--fail-fraction", type=float, default=0.1)
    ap.add_argument("--sign", choices=["both", "rsa", "ed25519", "none"], default="both")
    ap.add_argument("--rcpt-domain", default="rcpt.example")
    ap.add_argument("--seed", type=int, default=20260101)
    ap.add_argument("--force", action="store_true", help="rewrite even if corpus.json matches")
    ap.add_argument("--check", metavar="DIR")
    ap.add_argument("--verify-zone", metavar="ZONE", help="verify the signatures of FILE... against ZONE")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    if a.check:
        return check(a.check)
    if a.verify_zone:
        return verify_files(a.verify_zone, a.files)
    if not a.out or a.count < 1 or not 0 <= a.fail_fraction <= 1:
        ap.error("--out DIR and --count >= 1 are needed; --fail-fraction is 0..1")
    params = {"version": VERSION, "count": a.count, "size": a.size, "fail_fraction": a.fail_fraction,
              "sign": a.sign, "rcpt_domain": a.rcpt_domain, "seed": a.seed}
    meta_path = os.path.join(a.out, "corpus.json")
    if not a.force and os.path.exists(meta_path):
        with open(meta_path) as fh:
            old = json.load(fh)
        if old.get("params") == params:
            print("corpus %s: reused (%d messages, %d pass, %d fail, mean %d bytes)" % (
                a.out, old["count"], old["pass"], old["fail"], old["mean_bytes"]))
            return 0
    os.makedirs(a.out, exist_ok=True)
    for f in os.listdir(a.out):
        if f.endswith(".eml") or f in ("manifest.tsv", "corpus.json"):
            os.unlink(os.path.join(a.out, f))
    rsa_pem, ed_seed, rsa_pub, ed_pub = make_keys(os.path.join(a.out, "keys"))
    z = zone(rsa_pub, ed_pub, a.rcpt_domain)
    with open(os.path.join(a.out, "zone.json"), "w") as fh:
        json.dump(z, fh, indent=1)
    rng = random.Random(a.seed)
    total = nfail = 0
    with open(os.path.join(a.out, "manifest.tsv.tmp"), "w") as man:
        for i in range(a.count):
            fail = int((i + 1) * a.fail_fraction) > int(i * a.fail_fraction)
            size = a.size
            if size == "mix":
                size = "large" if i % 5 == 4 else "small"
            msg, mail_from, rcpt, dom = build(i, size, fail, a.rcpt_domain, rng)
            if a.sign != "none":
                msg = sign(msg, dom, a.sign, rsa_pem, ed_seed)
                if fail:    # a list footer after signing: body hash mismatch
                    msg += b"--\r\nYou are subscribed to team@lists.%s.\r\n" % dom.encode()
            name = "%05d.eml" % i
            with open(os.path.join(a.out, name), "wb") as fh:
                fh.write(msg)
            man.write("%s\t%s\t%s\t%s\n" % (name, mail_from, rcpt, "fail" if fail else "pass"))
            total += len(msg)
            nfail += fail
    os.rename(os.path.join(a.out, "manifest.tsv.tmp"), os.path.join(a.out, "manifest.tsv"))
    meta = {"params": params, "count": a.count, "pass": a.count - nfail, "fail": nfail,
            "mean_bytes": total // a.count, "sender_domain": SENDER, "fail_domain": PARTNER,
            "selectors": {"rsa": RSA_SEL, "ed25519": ED_SEL}}
    with open(meta_path, "w") as fh:
        json.dump(meta, fh, indent=1)
    print("corpus %s: wrote %d messages (%d pass, %d fail DMARC), mean %d bytes" % (
        a.out, a.count, a.count - nfail, nfail, total // a.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
