#!/usr/bin/python3
"""cpusplit.py: where the CPU of a benchmark run went, from perf samples
(benchmarks only; the exact CPU totals come from /proc, this gives shares).

  cpusplit.py mxgate --data perf.data --binary build/mxgate --meta RUN/meta.json
                     [--json OUT] [--top FILE]
      perf record -k CLOCK_MONOTONIC --call-graph dwarf -p <mxgate>.  Each
      sample goes to the component of the innermost mxgate function on its
      call chain, by that function's source file (nm -l): smtp-in (session,
      command parser, data stream), checks (auth/, policy/, message and
      MIME parsing, DNS), spool (queue/spool, commit, envelope), smtp-out
      (delivery, scheduler, SMTP client), logging (lib/log.c), glue (the
      rest of gateway/); signing when DKIM signing (auth/dkim_sign.c,
      gateway/outbound.c) is anywhere on the chain. Helpers used by several
      (lib/buf.c, fsutil, id, cidr, metrics, DKIM key and canonicalisation
      code) are skipped so their caller decides. Samples with no mxgate
      frame: "io" when libevent is on the chain (socket reads and writes
      done by bufferevents: SMTP in and out cannot be told apart there),
      "libcrypto" when the unwinding stopped inside libcrypto (its
      assembly, e.g. RSA's bignum code, has no unwind tables: signing in
      the outbound scenario, verification and hashing inbound), "kernel"
      with no user stack, "unattributed" when the unwinding stopped short
      elsewhere.
  cpusplit.py peer --data perf.data --rundirs DIR... [--json OUT]
      perf record -a -k CLOCK_MONOTONIC during run-peer.sh: samples of the
      peer's processes by name, within each run's window (t0 .. the last
      message at the sink): smtp-in (smtpd, which also talks to the
      milters), spool (cleanup), smtp-out (qmgr, smtp, trivial-rewrite),
      checks (opendkim, opendmarc), postfix-other (master, anvil, postlogd,
      ...). The DNS server is left out, as from the /proc totals it is
      applied to.

Prints one line; --json writes {"samples", "shares", "top"}.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time

HEAD_RE = re.compile(r"^(\S.*?)\s+(\d+)\s+(\d+\.\d+):\s*(.*)$")
FRAME_RE = re.compile(r"^\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)$")

SIGNING = ("auth/dkim_sign.c", "gateway/outbound.c")   # anywhere on the chain
MX_RULES = [  # (path prefix or file, component); first match wins
    ("lib/log.c", "logging"),
    ("auth/dkim_key.c", None), ("auth/dkim_canon.c", None),
    ("lib/buf.c", None), ("lib/fsutil.c", None), ("lib/id.c", None),
    ("lib/cidr.c", None), ("lib/metrics.c", None),
    ("lib/dns", "checks"), ("auth/", "checks"), ("policy/", "checks"),
    ("smtp/message.c", "checks"), ("smtp/mime.c", "checks"), ("smtp/address.c", "checks"),
    ("report/", "checks"),
    ("queue/spool", "spool"), ("queue/commit.c", "spool"), ("queue/envelope.c", "spool"),
    ("queue/", "smtp-out"), ("smtp/client.c", "smtp-out"), ("smtp/reply.c", "smtp-out"),
    ("smtp/", "smtp-in"), ("gateway/listener.c", "smtp-in"),
    ("gateway/", "glue"),
]
MX_ORDER = ["smtp-in", "checks", "spool", "smtp-out", "signing", "logging", "glue", "io",
            "libcrypto", "kernel", "unattributed"]

PEER_COMM = {
    "smtpd": "smtp-in", "cleanup": "spool", "qmgr": "smtp-out", "smtp": "smtp-out",
    "trivial-rewrite": "smtp-out", "bounce": "smtp-out", "opendkim": "checks:opendkim",
    "opendmarc": "checks:opendmarc", "master": "postfix-other", "anvil": "postfix-other",
    "postlogd": "postfix-other", "proxymap": "postfix-other", "scache": "postfix-other",
    "pickup": "postfix-other", "showq": "postfix-other",
}
PEER_ORDER = ["smtp-in", "checks:opendkim", "checks:opendmarc", "spool", "smtp-out",
              "postfix-other"]


def mono_offset():
    """epoch - CLOCK_MONOTONIC, to put the runs' epoch stamps on perf's clock."""
    return time.time() - time.monotonic()


def window(meta_path):
    with open(meta_path) as fh:
        meta = json.load(fh)
    t0 = float(meta["t0"])
    t1 = float(meta["t_loader_end"])
    sink = meta.get("sink_json") or os.path.join(os.path.dirname(meta_path), "sinkwait.json")
    try:
        with open(sink) as fh:
            s = json.loads(fh.read().strip().splitlines()[-1])
        if s.get("t_done"):
            t1 = max(t1, float(s["t_done"]))
    except (OSError, ValueError, IndexError):
        pass
    off = mono_offset()
    return t0 - off, t1 - off


def perf_samples(data, fields, callchain):
    """Yields (comm, time, frames) from perf script; frames leaf first as
    (sym, dso)."""
    cmd = ["perf", "script", "-i", data, "-F", fields]
    if callchain:
        cmd.append("--no-inline")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, errors="replace")
    cur = None
    for line in p.stdout:
        line = line.rstrip("\n")
        m = None if line.startswith("\t") else HEAD_RE.match(line.lstrip(" "))
        if m:
            if cur:
                yield cur
            cur = (m.group(1), float(m.group(3)), [])
            continue
        f = FRAME_RE.match(line)
        if f and cur:
            cur[2].append((f.group(2), f.group(3)))
    if cur:
        yield cur
    p.wait()


def symbol_files(binary, root):
    out = subprocess.run(["nm", "-l", "--defined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    files = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 2:
            continue
        sym = parts[0].split()[-1]
        path = parts[1].rsplit(":", 1)[0]
        if path.startswith(root + "/"):
            path = path[len(root) + 1:]
        files.setdefault(sym, path)
    return files


def component(path):
    for prefix, comp in MX_RULES:
        if path.startswith(prefix):
            return comp
    return "glue"


def cmd_mxgate(a):
    binary = os.path.realpath(a.binary)
    root = os.path.dirname(os.path.dirname(binary))
    files = symbol_files(binary, root)
    lo, hi = window(a.meta) if a.meta else (0, float("inf"))
    counts = collections.Counter()
    leaf = collections.Counter()
    n = 0
    for comm, t, frames in perf_samples(a.data, "comm,tid,time,ip,sym,dso", True):
        if not lo <= t <= hi:
            continue
        n += 1
        if frames:
            s, d = frames[0]
            leaf["%s (%s)" % (s, os.path.basename(d))] += 1
        comp = None
        paths = []
        for sym, dso in frames:
            if os.path.realpath(dso) != binary and os.path.basename(dso) != os.path.basename(binary):
                continue
            path = files.get(sym.split("+", 1)[0])
            if path is not None:
                paths.append(path)
        if any(p in SIGNING for p in paths):
            comp = "signing"
        for path in paths:
            if comp is None:
                comp = component(path)
        if comp is None:
            user = [d for _, d in frames if d not in ("[kernel.kallsyms]", "[unknown]")]
            if any("libevent" in d for d in user):
                comp = "io"
            elif user and all("libcrypto" in d for d in user):
                comp = "libcrypto"
            elif frames and not user:
                comp = "kernel"
            else:
                comp = "unattributed"
        counts[comp] += 1
    return finish(a, "mxgate", n, counts, MX_ORDER, leaf)


def cmd_peer(a):
    wins = []
    for d in a.rundirs:
        mp = os.path.join(d, "meta.json")
        if os.path.exists(mp):
            wins.append(window(mp))
    counts = collections.Counter()
    leaf = collections.Counter()
    n = 0
    for comm, t, _ in perf_samples(a.data, "comm,pid,time", False):
        if wins and not any(lo <= t <= hi for lo, hi in wins):
            continue
        g = PEER_COMM.get(comm)
        if g is None:
            continue
        n += 1
        counts[g] += 1
        leaf[comm] += 1
    return finish(a, "peer", n, counts, PEER_ORDER, leaf)


def finish(a, label, n, counts, order, leaf):
    shares = {k: round(counts[k] / n, 4) for k in order if n and counts[k]}
    for k in counts:
        if k not in shares and n:
            shares[k] = round(counts[k] / n, 4)
    top = [[k, v, round(v / n, 4)] for k, v in leaf.most_common(25)] if n else []
    res = {"label": label, "samples": n, "shares": shares, "top": top}
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1)
    if getattr(a, "top", None):
        with open(a.top, "w") as fh:
            fh.write("%d samples; innermost function (self), share of the samples:\n" % n)
            for k, v, s in top:
                fh.write("%6.1f%%  %5d  %s\n" % (100 * s, v, k))
    print("SPLIT %s samples=%d %s" % (label, n, " ".join(
        "%s=%.0f%%" % (k, 100 * v) for k, v in shares.items())))
    return 0 if n else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mxgate")
    m.add_argument("--data", required=True)
    m.add_argument("--binary", required=True)
    m.add_argument("--meta")
    m.add_argument("--json")
    m.add_argument("--top")
    p = sub.add_parser("peer")
    p.add_argument("--data", required=True)
    p.add_argument("--rundirs", nargs="*", default=[])
    p.add_argument("--json")
    a = ap.parse_args()
    return cmd_mxgate(a) if a.cmd == "mxgate" else cmd_peer(a)


if __name__ == "__main__":
    sys.exit(main())
