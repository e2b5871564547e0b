"""Fault tests: what mxgate acknowledged ("250", RFC 5321 6.1) reaches the
downstream sink whatever happens on the way.

  - crash: numbered messages over several connections while the daemon is
    killed with SIGKILL at random moments and restarted; every message
    that got a 250 must reach the sink (duplicates are allowed, losses
    are not); the figures are printed (pytest -s, or the report);
  - downstream outage: the sink answers 4xx, then its port is closed, then
    it comes back: everything is delivered, nothing bounced;
  - full disk: a spool on a 2 MiB tmpfs in a private mount namespace
    (root only; skipped where mounts are not allowed): 452 4.3.1 at end of
    data and at MAIL, nothing acknowledged is lost, service resumes once
    space is freed;
  - corrupt spool files found at start: set aside in corrupt/ with a log
    line, the daemon keeps running and delivers the good messages
    (test_queue.py covers an envelope without its end record and an
    orphan content file; the kinds here are the others).

Each test is bounded (conftest's per-test alarm, bounded waits).
"""

import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import (IS_ROOT, REPLY_TIMEOUT, SMTPConn, SMTPError, free_port,
                      make_message, queued_id, wait_until)

MSGID_RE = re.compile(rb"^Message-ID: <([^>]+)>", re.M | re.I)


def msgid_counts(sink):
    """{Message-ID: times delivered} of what the sink holds."""
    out = {}
    for m in sink.messages():
        mm = MSGID_RE.search(m["eml"])
        if mm:
            k = mm.group(1).decode()
            out[k] = out.get(k, 0) + 1
    return out


def down_sink(mx, *args, name=None):
    s = mx.sink(*args, start=False, name=name)
    s.port = free_port()
    return s


def send_numbered(d, tag, n, size=0):
    """One connection, n messages; returns the Message-IDs acknowledged."""
    acked = []
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        for i in range(n):
            mid = "%s-%d" % (tag, i)
            body = "x" * size + "\r\n"
            msg = make_message(mid, body=body)
            r = c.send_message("alice@sender.test", ["user@example.test"],
                               msg, ehlo=False)
            d.known_ids.add(queued_id(r))
            acked.append(mid + "@sender.test")
        c.expect(221, "QUIT")
    return acked


# ---------------------------------------------------------------- crash

CRASH_N = 300
CRASH_CONNS = 4


class Sender(threading.Thread):
    """Sends its share of the numbered messages; a message is tried again
    (as a real client would) until it gets a 250, across kills."""

    def __init__(self, port, numbers, deadline):
        super().__init__(daemon=True)
        self.port = port
        self.numbers = list(numbers)
        self.deadline = deadline
        self.acked = set()
        self.tries = 0
        self.errors = 0

    def run(self):
        conn = None
        i = 0
        while i < len(self.numbers) and time.monotonic() < self.deadline:
            n = self.numbers[i]
            mid = "crash-%d" % n
            try:
                if conn is None:
                    conn = SMTPConn("127.0.0.1", self.port, timeout=5)
                    conn.greeting()
                    conn.ehlo()
                self.tries += 1
                r = conn.send_message("alice@sender.test",
                                      ["user@example.test"],
                                      make_message(mid), ehlo=False)
                if r.code == 250:
                    queued_id(r)
                    self.acked.add(mid + "@sender.test")
                    i += 1
                # a 4xx: try the same message again
            except (OSError, SMTPError, AssertionError):
                # killed under us: the fate of this message is unknown
                # unless it got its 250; send it again
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
        if conn is not None:
            try:
                conn.cmd("QUIT", timeout=2)
            except (OSError, SMTPError):
                pass
            conn.close()


def test_crash_kill9_loses_nothing(mx):
    seed = int(os.environ.get("MXGATE_CRASH_SEED", random.randrange(1 << 30)))
    rnd = random.Random(seed)
    sink = mx.sink(name="sink")
    d = mx.daemon(sink)
    deadline = time.monotonic() + 75
    share = [range(k, CRASH_N, CRASH_CONNS) for k in range(CRASH_CONNS)]
    senders = [Sender(d.port, s, deadline) for s in share]
    nkills = rnd.randint(3, 5)
    # kill when these many messages have been acknowledged, plus a jitter
    points = sorted(rnd.sample(range(CRASH_N // 10, CRASH_N * 9 // 10), nkills))
    for s in senders:
        s.start()
    kills = 0

    def acked():
        return sum(len(s.acked) for s in senders)
    for p in points:
        wait_until(lambda: acked() >= p or not any(s.is_alive() for s in senders),
                   60, interval=0.005, what="%d acknowledgements" % p)
        if not any(s.is_alive() for s in senders):
            break
        time.sleep(rnd.uniform(0, 0.03))
        d.kill9()
        kills += 1
        time.sleep(rnd.uniform(0, 0.2))
        d.start()
    for s in senders:
        s.join(timeout=max(1, deadline - time.monotonic() + 5))
    acked_ids = set().union(*(s.acked for s in senders))
    assert len(acked_ids) == CRASH_N, \
        "senders stopped with %d of %d acknowledged" % (len(acked_ids), CRASH_N)

    def all_delivered():
        return acked_ids <= set(msgid_counts(sink))
    try:
        wait_until(all_delivered, 60, interval=0.2,
                   what="every acknowledged message at the sink",
                   fail_if=lambda: None if d.running() else "mxgate exited")
    except AssertionError:
        pass        # counted below
    d.wait_queue_empty(timeout=20)
    counts = msgid_counts(sink)
    delivered = acked_ids & set(counts)
    lost = sorted(acked_ids - set(counts))
    dups = sum(v - 1 for v in counts.values() if v > 1)
    report = ("crash test: seed=%d N=%d connections=%d kills=%d "
              "acknowledged=%d delivered=%d lost=%d duplicates=%d "
              "attempts=%d broken_connections=%d"
              % (seed, CRASH_N, CRASH_CONNS, kills, len(acked_ids),
                 len(delivered), len(lost), dups,
                 sum(s.tries for s in senders),
                 sum(s.errors for s in senders)))
    print("\n" + report)
    assert kills >= 3, report
    assert not lost, "%s; lost: %s" % (report, lost[:20])
    # A kill between the two renames of a commit (not acknowledged yet) or
    # between the two unlinks of a removal (delivered already) leaves a
    # content file without envelope: set aside, by design. Nothing else.
    why = re.findall(r"moved to corrupt/: (.*)", d.log())
    assert set(why) <= {"content without envelope"}, (report, why)


# ---------------------------------------------------------------- outage

def test_downstream_4xx_then_down_then_back(mx):
    port = free_port()
    busy = mx.sink("--data-reply", "451 4.3.0 try later", port=port,
                   name="busy")
    d = mx.daemon(route_to="127.0.0.1:%d" % port)
    nmsg = int(os.environ.get("MXGATE_OUTAGE_N", "10"))
    acked = send_numbered(d, "outage", nmsg)
    d.wait_log(r"status=deferred .*451 4\.3\.0 try later", count=nmsg)
    busy.stop()         # now the port is closed
    d.wait_log(r"relay=none status=deferred|status=deferred .*(refused|connect)",
               timeout=20)
    n_before = len(re.findall(r"status=deferred", d.log()))
    d.wait_log(r"status=deferred", count=n_before + 3, timeout=20)
    good = mx.sink(port=port, name="good")
    wait_until(lambda: set(acked) <= set(msgid_counts(good)), 30,
               what="all 10 messages at the recovered sink")
    d.wait_queue_empty()
    counts = msgid_counts(good)
    assert set(counts) == set(acked), counts
    assert busy.messages() == []
    log = d.log()
    assert not re.search(r"status=(bounced|expired)", log), log[-3000:]
    # no delivery status notification went anywhere
    assert all(m["mail_from"] == "alice@sender.test" for m in good.messages())


# ---------------------------------------------------------------- full disk

def _mounts_allowed(workdir):
    if not IS_ROOT:
        return "needs root (a tmpfs in a private mount namespace)"
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return "%s is not installed" % tool
    probe = os.path.join(workdir, "probe")
    os.makedirs(probe, exist_ok=True)
    r = subprocess.run(["unshare", "--mount", "sh", "-c",
                        "mount -t tmpfs -o size=1m tmpfs %s && echo mounted"
                        % probe], capture_output=True, text=True, timeout=20)
    if "mounted" not in r.stdout:
        return "mounts are not allowed here: %s" % r.stderr.strip()[-200:]
    return None


def test_full_disk(mx):
    why = _mounts_allowed(mx.dir)
    if why:
        pytest.skip("full-disk test skipped: " + why)
    fs = os.path.join(mx.dir, "smallfs")
    os.makedirs(fs)
    sink = down_sink(mx, name="sink")
    d = mx.daemon(route_to=sink.hostport, start=False, sections={
        "server": {"spool": os.path.join(fs, "spool")},
        "limits": {"min_free_space": "0"},
    })
    # The daemon in its own mount namespace, on a 2 MiB tmpfs.
    wrapper = os.path.join(mx.dir, "mxgate-smallfs.sh")
    real = str(__import__("conftest").mxgate_bin())
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec unshare --mount sh -c 'mount -t tmpfs -o "
                "size=2m,mode=0755 mxgate-test %s && exec %s \"$@\"' sh \"$@\"\n"
                % (fs, real))
    os.chmod(wrapper, 0o755)
    old = os.environ.get("MXGATE_BIN")
    os.environ["MXGATE_BIN"] = wrapper
    try:
        d.start()
    finally:
        if old is None:
            del os.environ["MXGATE_BIN"]
        else:
            os.environ["MXGATE_BIN"] = old
    pid = d.proc.pid

    def ns(cmd, check=True):
        return subprocess.run(["nsenter", "-t", str(pid), "-m", "sh", "-c", cmd],
                              capture_output=True, text=True, timeout=30,
                              check=check)

    assert "mxgate-test" in ns("grep %s /proc/mounts" % fs).stdout
    # acknowledged before the disk fills: kept through all of it
    acked = send_numbered(d, "before", 3)
    ns("dd if=/dev/zero of=%s/filler bs=16k 2>/dev/null; true" % fs)
    df = ns("df -k %s | tail -n 1" % fs).stdout
    # end of data on a full disk: not acknowledged, 452 4.3.1
    with d.connect() as c:
        c.greeting()
        c.ehlo()
        r = c.send_message("alice@sender.test", ["user@example.test"],
                           make_message("full", body=("y" * 78 + "\r\n") * 1300),
                           ehlo=False)
        assert r.code == 452 and r.first.startswith("452 4.3.1"), (r, df)
        c.expect(250, "RSET")
    d.wait_log(r"No space left on device")
    # with a floor configured, MAIL is refused up front (after a reload)
    d.sections["limits"]["min_free_space"] = "512k"
    with open(d.cfg_path, "w") as f:
        f.write(__import__("conftest").ini_text(d.sections))
    d.signal(signal.SIGHUP)
    d.wait_log(r"configuration reloaded")

    def mail_reply():
        with d.connect() as c:
            c.greeting()
            c.ehlo()
            return c.cmd("MAIL FROM:<alice@sender.test>")
    r = wait_until(lambda: (lambda x: x if x.code != 250 else None)(mail_reply()),
                   5, interval=0.3, what="MAIL refused on a full disk")
    assert r.first.startswith("452 4.3.1"), r
    assert d.running()
    # space returns: normal service within a second or so
    ns("rm -f %s/filler" % fs)
    r = wait_until(lambda: (lambda x: x if x.code == 250 else None)(mail_reply()),
                   5, interval=0.3, what="MAIL accepted again")
    acked += send_numbered(d, "after", 2)
    queue = ns("ls %s/spool/queue" % fs).stdout.split()
    assert len([q for q in queue if q.endswith(".env")]) == 5, queue
    assert ns("ls %s/spool/tmp" % fs).stdout.split() == []
    sink.start()
    wait_until(lambda: set(acked) <= set(msgid_counts(sink)), 30,
               what="every acknowledged message delivered")
    assert "full@sender.test" not in msgid_counts(sink)


# ---------------------------------------------------------------- corrupt

def test_corrupt_spool_files_set_aside(mx):
    sink = down_sink(mx, name="sink")
    d = mx.daemon(route_to=sink.hostport)
    acked = send_numbered(d, "good", 4)
    d.stop()
    q = os.path.join(d.spool, "queue")
    h = os.path.join(d.spool, "hold")
    envs = sorted(n for n in os.listdir(q) if n.endswith(".env"))
    assert len(envs) == 4
    with open(os.path.join(q, envs[0]), "rb") as f:
        real_env = f.read()
    bad = {}
    # a copy of a real envelope, cut in the middle of a record
    bad["0000000020000A01"] = real_env[:len(real_env) // 2].replace(
        envs[0][:16].encode(), b"0000000020000A01")
    # garbage
    rnd = random.Random(7)
    bad["0000000020000A02"] = bytes(rnd.randrange(256) for _ in range(300))
    # an empty envelope
    bad["0000000020000A03"] = b""
    # NUL bytes and bare CRs
    bad["0000000020000A04"] = b"V 1\x00\rI 0000000020000A04\r\rE\n"
    for qid, content in bad.items():
        with open(os.path.join(q, qid + ".env"), "wb") as f:
            f.write(content)
        with open(os.path.join(q, qid + ".msg"), "wb") as f:
            f.write(b"Subject: corrupt %s\r\n\r\nbody\r\n" % qid.encode())
    # an envelope whose content is gone
    with open(os.path.join(q, "0000000020000A05.env"), "wb") as f:
        f.write(real_env.replace(envs[0][:16].encode(), b"0000000020000A05"))
    # a stray file name, and garbage in hold/ too
    with open(os.path.join(q, "not-a-queue-file"), "wb") as f:
        f.write(b"?")
    with open(os.path.join(h, "0000000020000A06.env"), "wb") as f:
        f.write(b"\xff\xfe garbage")
    with open(os.path.join(h, "0000000020000A06.msg"), "wb") as f:
        f.write(b"Subject: held garbage\r\n\r\n")
    sink.start()
    d.start()
    wait_until(lambda: set(acked) <= set(msgid_counts(sink)), 30,
               what="the good messages delivered",
               fail_if=lambda: None if d.running() else "mxgate exited")
    d.wait_queue_empty()
    assert d.running()
    corrupt = set(d.spool_files("corrupt"))
    for qid in list(bad) + ["0000000020000A05", "0000000020000A06"]:
        assert qid + ".env" in corrupt, (qid, sorted(corrupt))
    for qid in bad:
        assert qid + ".msg" in corrupt, (qid, sorted(corrupt))
    assert "not-a-queue-file" in corrupt
    log = d.log_since_start()
    for qid in list(bad) + ["0000000020000A05", "0000000020000A06"]:
        assert re.search(r"id=%s moved to corrupt/" % qid, log), (qid, log[-3000:])
    assert "4 message(s) recovered" in log, log[-2000:]
    assert set(msgid_counts(sink)) == set(acked)
    # and it still takes mail
    acked += send_numbered(d, "later", 1)
    wait_until(lambda: set(acked) <= set(msgid_counts(sink)), 20,
               what="a new message after the recovery")


# ---------------------------------------------------------------- hang-up

def test_client_gone_during_commit(mx):
    """Clients that hang up right after the final dot, then a SIGTERM
    while commits are in flight: each commit completes (the message is
    durable, so it is queued and delivered, acknowledged or not), and
    nothing touches a closed session (the sanitizer build would report
    it). A hang-up alone is seen only after the reply (the session reads
    nothing while a decision is pending); the shutdown closes sessions
    whose commit is still running."""
    sink = mx.sink(name="sink")
    d = mx.daemon(sink)
    conns = []
    for i in range(20):
        c = d.connect()
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        conns.append(c)
    for i, c in enumerate(conns):
        c.send(make_message("gone-%d" % i) + b".\r\n")
        c.close()
    want = set("gone-%d@sender.test" % i for i in range(20))
    # every message whose end of data mxgate read was committed: all of
    # them here, since each connection sent it before closing
    wait_until(lambda: want <= set(msgid_counts(sink)), 30,
               what="the 20 messages of the closed sessions",
               fail_if=lambda: None if d.running() else "mxgate exited")
    d.wait_queue_empty()
    assert len(re.findall(r"status=queued", d.log())) == 20
    assert d.running()
    # SIGTERM with 30 commits in flight
    conns = []
    for i in range(30):
        c = d.connect()
        c.greeting()
        c.ehlo()
        c.expect(250, "MAIL FROM:<alice@sender.test>")
        c.expect(250, "RCPT TO:<user@example.test>")
        c.expect(354, "DATA")
        conns.append(c)
    for i, c in enumerate(conns):
        c.send(make_message("term-%d" % i) + b".\r\n")
    d.signal(signal.SIGTERM)
    acked = set()
    for i, c in enumerate(conns):
        try:
            r = c.read_reply(timeout=5)
            if r.code == 250:
                acked.add("term-%d@sender.test" % i)
        except SMTPError:
            pass
        c.close()
    assert d.proc.wait(timeout=15) == 0
    d.start()
    wait_until(lambda: acked <= set(msgid_counts(sink)), 30,
               what="the acknowledged messages after the restart")
    d.wait_queue_empty()
    print("\nhang-up test: SIGTERM with 30 commits in flight: %d acknowledged, "
          "%d completed after their session ended, %d delivered"
          % (len(acked), len(re.findall(r"committed after its session ended",
                                          d.log())),
             len([k for k in msgid_counts(sink) if k.startswith("term-")])))
