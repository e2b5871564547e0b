#!/usr/bin/python3
"""report.py: the result lines and the results table of the benchmark
scenarios (tests/bench/*.sh call it; benchmarks only, never pass/fail).

  report.py inbound DIR    mxgate vs peer: one line each, the CPU split, the ratio
  report.py outbound DIR   mxgate signing relay vs openssl speed for the key mix
  report.py idle DIR       idle connections: RSS per connection, refusals
  report.py ceilings DIR   openssl speed, fsync rate, raw loopback SMTP
  report.py table OUT [--update BENCHMARKS.md]
                           the Markdown results table from every scenario under
                           OUT; --update replaces the table between the
                           "<!-- results:begin -->" and "<!-- results:end -->"
                           markers of that file.

Each scenario command also writes DIR/summary.json, which the table reads.
Figures over several runs (BENCH_RUNS) are medians.
"""
import glob
import json
import os
import re
import statistics
import sys

ISSUE = {"inbound_ratio": 3.0, "inbound_aim": 6.0, "cpu_ms": 1.0, "p99_ms": 10.0,
         "sign_eff": 0.8, "idle_kb": 32.0}


def jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(l) for l in fh if l.strip()]


def load(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def med(vals):
    vals = [v for v in vals if isinstance(v, (int, float))]
    return round(statistics.median(vals), 3) if vals else None


def get(d, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return ("%%.%df" % nd) % v
    return str(v)


def system(recs, server_groups, splits):
    """Medians of one system's runs; CPU of server_groups only (no DNS, no sink)."""
    if not recs:
        return None
    n = recs[0]["count"]
    cpu = [sum(get(r, "cpu_s", g) or 0 for g in server_groups) for r in recs]
    out = {
        "runs": len(recs), "msgs": n, "sessions": recs[0]["sessions"], "size": recs[0]["size"],
        "accepted": med([r.get("accepted") for r in recs]),
        "delivered": med([r.get("delivered") for r in recs]),
        "accept_mps": med([r.get("accept_mps") for r in recs]),
        "deliver_mps": med([r.get("deliver_mps") for r in recs]),
        "eod_p50_ms": med([get(r, "eod_lat_ms", "p50") for r in recs]),
        "eod_p99_ms": med([get(r, "eod_lat_ms", "p99") for r in recs]),
        "txn_p50_ms": med([get(r, "smtp_lat_ms", "p50") for r in recs]),
        "cpu_ms_per_msg": med([1000.0 * c / n for c in cpu]),
        "dns_cpu_ms_per_msg": med([1000.0 * (get(r, "cpu_s", "dns") or 0) / n for r in recs]),
        "cores": med([c / r["e2e_s"] for c, r in zip(cpu, recs) if r.get("e2e_s")]),
        "loader_cpu_s": med([r.get("loader_cpu_s") for r in recs]),
        "other_cpu_s": med([r.get("unaccounted_cpu_s") for r in recs]),
        "ar": {k: med([get(r, "dump", k + "_pass") for r in recs]) for k in ("dkim", "spf", "dmarc")},
        "ar_files": med([get(r, "dump", "files") for r in recs]),
        "cpu_groups": {g: med([get(r, "cpu_s", g) for r in recs]) for g in server_groups},
    }
    shares = {}
    nsamp = 0
    for s in splits:
        for k, v in s["shares"].items():
            shares.setdefault(k, []).append(v)
        nsamp += s["samples"]
    if shares and out["cpu_ms_per_msg"] is not None:
        out["split_ms"] = {k: round(statistics.median(v) * out["cpu_ms_per_msg"], 3)
                           for k, v in shares.items()}
        out["split_samples"] = nsamp
    return out


def line(tag, label, s):
    return ("%s %-7s size=%s msgs=%s sessions=%s runs=%s accepted=%s delivered=%s accept_mps=%s "
            "deliver_mps=%s eod_p50/p99_ms=%s/%s cpu_ms/msg=%s (dns %s) cores=%s loader_cpu_s=%s "
            "other_cpu_s=%s A-R pass dkim/spf/dmarc=%s/%s/%s of %s") % (
        tag, label, s["size"], s["msgs"], s["sessions"], s["runs"], fmt(s["accepted"], 0),
        fmt(s["delivered"], 0), fmt(s["accept_mps"]), fmt(s["deliver_mps"]),
        fmt(s["eod_p50_ms"], 2), fmt(s["eod_p99_ms"], 2), fmt(s["cpu_ms_per_msg"], 3),
        fmt(s["dns_cpu_ms_per_msg"], 3), fmt(s["cores"], 2), fmt(s["loader_cpu_s"], 2),
        fmt(s["other_cpu_s"], 2), fmt(s["ar"]["dkim"], 0), fmt(s["ar"]["spf"], 0),
        fmt(s["ar"]["dmarc"], 0), fmt(s["ar_files"], 0))


def split_line(tag, label, s, how):
    if not s.get("split_ms"):
        return "%s %-7s cpu split: not measured (%s)" % (tag, label, how)
    return "%s %-7s cpu split ms/msg (%s, %d samples): %s" % (
        tag, label, how, s["split_samples"],
        " ".join("%s=%.3f" % kv for kv in s["split_ms"].items()))


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def cmd_inbound(d):
    mx = system(jsonl(os.path.join(d, "results.jsonl")), ["sut"],
                [x for x in (load(p) for p in sorted(glob.glob(os.path.join(d, "mxgate/r*/split.json")))) if x])
    ps = load(os.path.join(d, "peer-split.json"))
    peer = system(jsonl(os.path.join(d, "peer/results.jsonl")), ["postfix", "opendkim", "opendmarc"],
                  [ps] if ps and ps["samples"] else [])
    corpus = None
    out = []
    if mx:
        out.append(line("INBOUND", "mxgate", mx))
        out.append(split_line("INBOUND", "mxgate", mx, "perf, innermost mxgate function by source file"))
    if peer:
        out.append(line("INBOUND", "peer", peer))
        out.append(split_line("INBOUND", "peer", peer, "perf -a, by process"))
        for v in glob.glob(os.path.join(d, "peer.out")):
            with open(v) as fh:
                out += ["INBOUND peer    " + l.strip() for l in fh if l.startswith("VERIFY")]
    rat = None
    if mx and peer:
        rat = {"deliver": ratio(mx["deliver_mps"], peer["deliver_mps"]),
               "accept": ratio(mx["accept_mps"], peer["accept_mps"]),
               "cpu": ratio(peer["cpu_ms_per_msg"], mx["cpu_ms_per_msg"])}
        out.append("INBOUND ratio   mxgate/peer deliver_mps=%sx accept_mps=%sx; peer/mxgate cpu_ms/msg=%sx "
                   "(issue 10: >= %gx, aim %gx; mxgate < %g ms CPU/msg, p99 < %g ms at half of max)" % (
                       fmt(rat["deliver"], 2), fmt(rat["accept"], 2), fmt(rat["cpu"], 2),
                       ISSUE["inbound_ratio"], ISSUE["inbound_aim"], ISSUE["cpu_ms"], ISSUE["p99_ms"]))
    elif mx:
        out.append("INBOUND ratio   - (no peer run: BENCH_PEER=0 or it failed)")
    print("\n".join(out))
    save(d, {"scenario": "inbound", "mxgate": mx, "peer": peer, "ratio": rat, "corpus": corpus})


def openssl_figures(path):
    """{'1': {...}, 'multi': {...}} from limits.sh OPENSSL lines (medians)."""
    if not os.path.exists(path):
        return None
    rows = {}
    with open(path) as fh:
        for l in fh:
            if not l.startswith("OPENSSL"):
                continue
            kv = dict(x.split("=", 1) for x in l.split()[1:] if "=" in x)
            key = "multi" if kv.get("run") == "multi" else "1"
            rows.setdefault(key, []).append(kv)
    out = {}
    for key, rs in rows.items():
        out[key] = {"cores": int(rs[0].get("cores", 1))}
        for f in ("rsa2048_sign/s", "rsa2048_verify/s", "ed25519_sign/s", "ed25519_verify/s"):
            vals = []
            for r in rs:
                try:
                    vals.append(float(r[f]))
                except (KeyError, ValueError):
                    pass
            out[key][f] = med(vals)
    return out


def cmd_outbound(d):
    recs = jsonl(os.path.join(d, "results.jsonl"))
    splits = [x for x in (load(p) for p in sorted(glob.glob(os.path.join(d, "mxgate/r*/split.json")))) if x]
    mx = system(recs, ["sut"], splits)
    ossl = openssl_figures(os.path.join(d, "openssl.txt"))
    out, res = [], {"scenario": "outbound", "mxgate": mx, "openssl": ossl}
    if mx:
        out.append(line("OUTBOUND", "mxgate", mx))
        out.append(split_line("OUTBOUND", "mxgate", mx, "perf, innermost mxgate function by source file"))
    ver = os.path.join(d, "verify.txt")
    if os.path.exists(ver):
        with open(ver) as fh:
            out += ["OUTBOUND verify  " + l.strip() for l in fh if l.strip()]
    if ossl and "1" in ossl:
        one = ossl["1"]
        rs, es = one.get("rsa2048_sign/s"), one.get("ed25519_sign/s")
        if rs and es:
            per_msg_ms = 1000.0 / rs + 1000.0 / es       # one RSA-2048 + one Ed25519 signature
            multi = ossl.get("multi", {})
            mrs, mes = multi.get("rsa2048_sign/s"), multi.get("ed25519_sign/s")
            bound = 1.0 / (1.0 / mrs + 1.0 / mes) if mrs and mes else None
            res.update({"openssl_sign_ms_per_msg": round(per_msg_ms, 4), "openssl_bound_mps": bound and round(bound, 1)})
            out.append("OUTBOUND openssl rsa2048 sign/s=%s ed25519 sign/s=%s (1 core) -> %.3f ms CPU per dual-signed "
                       "message; all %s cores: rsa2048 %s/s ed25519 %s/s -> at most %s msg/s if signing were all" % (
                           fmt(rs, 0), fmt(es, 0), per_msg_ms, multi.get("cores", "?"), fmt(mrs, 0), fmt(mes, 0),
                           fmt(bound, 0)))
            if mx:
                # libcrypto samples whose call chain was lost are counted as
                # signing: outbound, nothing else does heavy crypto
                sm = mx.get("split_ms") or {}
                sign_ms = round(sm.get("signing", 0) + sm.get("libcrypto", 0), 3) if sm else None
                res["mxgate_sign_ms_per_msg"] = sign_ms
                res["sign_efficiency"] = round(per_msg_ms / sign_ms, 3) if sign_ms else None
                res["throughput_vs_bound"] = round(mx["deliver_mps"] / bound, 3) if bound and mx["deliver_mps"] else None
                out.append("OUTBOUND ratio  signing CPU/msg openssl/mxgate=%s (issue 10: >= %g; mxgate signing %s ms/msg "
                           "from perf: signing + libcrypto with lost call chains, body hashing included); whole relay deliver_mps / openssl bound=%s" % (
                               fmt(res["sign_efficiency"], 2), ISSUE["sign_eff"], fmt(sign_ms, 3),
                               fmt(res["throughput_vs_bound"], 3)))
    print("\n".join(out))
    save(d, res)


def cmd_idle(d):
    r = load(os.path.join(d, "idle.json"))
    if not r:
        print("IDLE    no result")
        return
    print("IDLE    mxgate connections=%s greeted=%s ehlo=%s refused=%s closed_early=%s connect_failed=%s "
          "timeouts=%s dropped_while_held=%s established_at_server=%s rss_base=%.1fMB rss_held=%.1fMB "
          "-> %.1f KB per connection (issue 10: <= %g KB, none refused) settle_s=%s" % (
              r["n"], r.get("greeted"), r.get("ehlo"), r.get("refused"), r.get("closed_early"),
              r.get("connect_failed"), r.get("timeouts"), r.get("dropped_while_held"), r.get("established"),
              r["rss_base_kb"] / 1024.0, r["rss_held_kb"] / 1024.0, r["per_conn_kb"], ISSUE["idle_kb"],
              r.get("settle_s")))
    r["scenario"] = "idle"
    save(d, r)


def cmd_ceilings(d):
    res = {"scenario": "ceilings", "openssl": openssl_figures(os.path.join(d, "openssl.txt"))}
    out = []
    for k, v in sorted((res["openssl"] or {}).items()):
        out.append("CEILING openssl cores=%s rsa2048 sign/s=%s verify/s=%s ed25519 sign/s=%s verify/s=%s" % (
            v["cores"] if k == "multi" else 1, fmt(v.get("rsa2048_sign/s"), 0), fmt(v.get("rsa2048_verify/s"), 0),
            fmt(v.get("ed25519_sign/s"), 0), fmt(v.get("ed25519_verify/s"), 0)))
    fs = load(os.path.join(d, "fsync.json"))
    if fs:
        res["fsync"] = fs
        out.append("CEILING fsync   %s: %s/s write 4 KB+fsync+rename+dir fsync (one unshared commit); "
                   "%s/s write+fsync; %s/s fdatasync of one 4 KB append" % (
                       fs.get("fstype"), fmt(fs.get("commit_per_s"), 0), fmt(fs.get("fsync_per_s"), 0),
                       fmt(fs.get("fdatasync_per_s"), 0)))
    raw = system(jsonl(os.path.join(d, "results.jsonl")), ["sink"], [])
    if raw:
        res["raw"] = raw
        out.append("CEILING raw     smtpload -> smtp-sink (no checks, no disk) size=%s msgs=%s sessions=%s "
                   "accept_mps=%s eod_p50/p99_ms=%s/%s sink_cpu_ms/msg=%s loader_cpu_s=%s" % (
                       raw["size"], raw["msgs"], raw["sessions"], fmt(raw["accept_mps"]),
                       fmt(raw["eod_p50_ms"], 2), fmt(raw["eod_p99_ms"], 2), fmt(raw["cpu_ms_per_msg"], 3),
                       fmt(raw["loader_cpu_s"], 2)))
    rig = os.path.join(d, "rig-raw.txt")
    if os.path.exists(rig):
        with open(rig) as fh:
            out += ["CEILING rig     " + l.strip() for l in fh if l.startswith(("RESULT", "AGG"))]
    print("\n".join(out))
    save(d, res)


def save(d, res):
    with open(os.path.join(d, "summary.json"), "w") as fh:
        json.dump(res, fh, indent=1)


# ------------------------------------------------------------------ table
def table(out_dir):
    S = {s: load(os.path.join(out_dir, s, "summary.json")) for s in ("inbound", "outbound", "idle", "ceilings")}
    mach = ""
    for s in S:
        p = os.path.join(out_dir, s, "machine.txt")
        if os.path.exists(p):
            with open(p) as fh:
                mach = fh.read().strip()
            if mach.startswith("machine: "):
                mach = mach[len("machine: "):]
            break
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            m = re.search(r"^model name\s*:\s*(.*)$", fh.read(), re.M)
            cpu_model = m.group(1) if m else ""
    except OSError:
        pass
    rows = []
    TBM = "(to be measured)"

    def row(scen, fig, mx=None, peer=None, note=""):
        rows.append("| %s | %s | %s | %s | %s |" % (scen, fig, TBM if mx is None else mx,
                                                  "n/a" if peer == "n/a" else (TBM if peer is None else peer), note))

    i = S["inbound"] or {}
    mx, pr, rt = i.get("mxgate") or {}, i.get("peer") or {}, i.get("ratio") or {}
    size = mx.get("size") or pr.get("size") or "small"
    cond = "%s msgs, %s sessions" % (mx.get("msgs", "N"), mx.get("sessions", "S"))
    f = lambda d, k, nd=1: None if d.get(k) is None else fmt(d.get(k), nd)
    row("inbound (%s, %s)" % (size, cond), "delivered msg/s", f(mx, "deliver_mps"), f(pr, "deliver_mps"),
        "ratio %s (target >= 3x, aim 6x)" % (fmt(rt.get("deliver"), 2) if rt else TBM))
    row("inbound", "accepted msg/s", f(mx, "accept_mps"), f(pr, "accept_mps"),
        "ratio %s" % (fmt(rt.get("accept"), 2) if rt else TBM))
    p = lambda d: None if d.get("eod_p50_ms") is None else "%s / %s" % (fmt(d["eod_p50_ms"], 2), fmt(d["eod_p99_ms"], 2))
    row("inbound", "end of data -> 250, p50 / p99 ms", p(mx), p(pr), "p99 < 10 ms at half of max throughput")
    row("inbound", "server CPU ms per message", f(mx, "cpu_ms_per_msg", 3), f(pr, "cpu_ms_per_msg", 3),
        "peer/mxgate %s; target < 1 ms" % (fmt(rt.get("cpu"), 2) if rt else TBM))
    sp = lambda d: None if not d.get("split_ms") else ", ".join("%s %s" % (k, fmt(v, 3)) for k, v in d["split_ms"].items())
    row("inbound", "CPU split, ms per message", sp(mx), sp(pr), "perf samples x /proc total")
    o = S["outbound"] or {}
    omx = o.get("mxgate") or {}
    row("outbound (RSA-2048 + Ed25519)", "delivered msg/s", f(omx, "deliver_mps"), "n/a",
        "openssl bound %s msg/s" % fmt(o.get("openssl_bound_mps"), 0) if o.get("openssl_bound_mps") else "")
    row("outbound", "signing CPU per message, ms", None if o.get("mxgate_sign_ms_per_msg") is None else
        fmt(o["mxgate_sign_ms_per_msg"], 3), "n/a",
        "openssl %s ms; efficiency %s (target >= 0.8)" % (fmt(o.get("openssl_sign_ms_per_msg"), 3),
                                                        fmt(o.get("sign_efficiency"), 2)) if o else "target >= 0.8 of openssl")
    d = S["idle"] or {}
    row("idle (%s connections)" % d.get("n", "10,000"), "RSS per connection, KB; refused",
        None if not d else "%s KB; %s refused" % (fmt(d.get("per_conn_kb")), (d.get("refused") or 0) +
                                                  (d.get("closed_early") or 0) + (d.get("connect_failed") or 0)),
        "n/a", "<= 32 KB, none refused")
    c = S["ceilings"] or {}
    ossl = c.get("openssl") or {}
    for k in ("1", "multi"):
        v = ossl.get(k)
        row("ceiling", "openssl RSA-2048 sign / verify per s (%s)" % ("1 core" if k == "1" else "all cores"),
            None if not v else "%s / %s" % (fmt(v.get("rsa2048_sign/s"), 0), fmt(v.get("rsa2048_verify/s"), 0)), "n/a", "")
        row("ceiling", "openssl Ed25519 sign / verify per s (%s)" % ("1 core" if k == "1" else "all cores"),
            None if not v else "%s / %s" % (fmt(v.get("ed25519_sign/s"), 0), fmt(v.get("ed25519_verify/s"), 0)), "n/a", "")
    fs = c.get("fsync") or {}
    row("ceiling", "spool fs: commits/s (write+fsync+rename+dir fsync)", f(fs, "commit_per_s", 0), "n/a",
        fs.get("fstype", ""))
    raw = c.get("raw") or {}
    row("ceiling", "raw loopback SMTP into smtp-sink, msg/s", f(raw, "accept_mps"), "n/a", "no checks, no disk")
    head = ["Machine: %s%s." % (mach or "%s cores, date %s" % (TBM, TBM), ("; CPU " + cpu_model) if cpu_model and mach else ""),
            "", "| scenario | figure | mxgate | peer (Postfix + OpenDKIM + OpenDMARC) | ratio / target |",
            "| --- | --- | --- | --- | --- |"]
    return "\n".join(head + rows) + "\n"


def cmd_table(args):
    out_dir = args[0]
    t = table(out_dir)
    print(t, end="")
    if len(args) == 3 and args[1] == "--update":
        path = args[2]
        with open(path) as fh:
            doc = fh.read()
        b, e = "<!-- results:begin -->", "<!-- results:end -->"
        if b not in doc or e not in doc:
            sys.exit("report.py: %s has no results markers" % path)
        head, rest = doc.split(b, 1)
        _, tail = rest.split(e, 1)
        with open(path + ".tmp", "w") as fh:
            fh.write(head + b + "\n" + t + e + tail)
        os.rename(path + ".tmp", path)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {"inbound": cmd_inbound, "outbound": cmd_outbound, "idle": cmd_idle, "ceilings": cmd_ceilings}.get(cmd)
    if cmd == "table":
        return cmd_table(args)
    if fn is None:
        sys.exit(__doc__)
    fn(args[0])


if __name__ == "__main__":
    sys.exit(main())
