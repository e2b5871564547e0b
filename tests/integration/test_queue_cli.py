"""`mxgate queue list|show|flush|delete|hold|release|stats` against a
running daemon.

The route's sink first answers 451 to every recipient, so messages stay
queued with a last error; retry_initial is an hour, so nothing is retried
on its own during a test: a delivery within seconds after `flush` is the
flush's doing. The sink is then restarted on the same port accepting
everything. As root the daemon runs as `nobody` and owns the spool; the
CLI must keep the files the daemon's.
"""

import json
import os
import re
import subprocess
import time

from conftest import (IS_ROOT, make_message, mxgate_bin, queued_id,
                      wait_until)

TEMPFAIL = "451 4.3.0 try later"
HOLD_REASON = "held by the administrator"


def queue(d, *args):
    r = subprocess.run([str(mxgate_bin()), "queue", "-c", d.cfg_path]
                       + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)
    r.out = r.stdout.decode("utf-8", "replace")
    r.err = r.stderr.decode("utf-8", "replace")
    return r


def ok(d, *args):
    r = queue(d, *args)
    assert r.returncode == 0, (args, r.out, r.err)
    return r


def send_one(d, subject, rcpts=("user@example.test",),
             sender="alice@sender.test"):
    msg = make_message(subject, sender=sender)
    with d.connect() as c:
        c.greeting()
        qid = queued_id(c.send_message(sender, list(rcpts), msg))
        c.expect(221, "QUIT")
    d.known_ids.add(qid)
    return qid


def start(mx, retry="1h"):
    """A daemon whose sink defers everything; retries an hour apart."""
    sink = mx.sink("--reject-rcpt", ".*=" + TEMPFAIL)
    d = mx.daemon(sink=sink, sections={"delivery": {
        "retry_initial": retry, "retry_max": "2h"}})
    return d, sink


def deferred(d, qid, count=1):
    d.wait_log(r"id=%s deferred" % qid, count=count)


def accept_all(sink):
    """The same sink (port, maildir), now accepting every recipient."""
    sink.stop()
    sink.args = []
    sink.start()


def delivered_subjects(sink):
    out = []
    for m in sink.messages():
        s = re.search(rb"^Subject: (.*)\r$", m["eml"], re.M)
        out.append(s.group(1).decode() if s else None)
    return out


def content(d, sub, qid):
    with open(os.path.join(d.spool, sub, qid + ".msg"), "rb") as f:
        return f.read()


def envelope_records(d, sub, qid):
    with open(os.path.join(d.spool, sub, qid + ".env")) as f:
        return [l for l in f.read().split("\n") if l]


def assert_owned(d):
    """Every file of the spool belongs to the spool's owner (the daemon's
    user), whoever ran the CLI."""
    owner = os.stat(d.spool).st_uid
    if IS_ROOT:
        assert owner != 0, "the daemon did not hand the spool to its user"
    for sub in ("queue", "hold", "pickup", "tmp", "corrupt"):
        for name in d.spool_files(sub):
            st = os.stat(os.path.join(d.spool, sub, name))
            assert st.st_uid == owner, "%s/%s owned by uid %d, spool by %d" % (
                sub, name, st.st_uid, owner)


def parse_list(text):
    """{id: {"area", "age", "size", "sender", "hold", "rcpts": [...]}}"""
    lines = text.splitlines()
    assert lines[0].split() == ["ID", "AREA", "AGE", "SIZE", "SENDER"], text
    out, cur = {}, None
    for line in lines[1:]:
        if not line.startswith("    "):
            f = line.split()
            assert len(f) == 5, line
            cur = out[f[0]] = {"area": f[1], "age": f[2], "size": int(f[3]),
                               "sender": f[4], "hold": None, "rcpts": []}
            # the columns line up with the header
            assert line.index("<") == lines[0].index("SENDER"), (lines[0], line)
        elif line.startswith("    hold: "):
            cur["hold"] = line[len("    hold: "):]
        else:
            m = re.fullmatch(r"    (pending|delivered|failed) <(\S*)> "
                             r"attempts=(\d+) next=(\S+) last=(.*)", line)
            assert m, line
            cur["rcpts"].append({"state": m.group(1), "addr": m.group(2),
                                 "attempts": int(m.group(3)),
                                 "next": m.group(4), "last": m.group(5)})
    return out


def test_list_show_stats(mx):
    d, sink = start(mx)
    a = send_one(d, "first", rcpts=("user@example.test", "other@example.test"))
    b = send_one(d, "second")
    deferred(d, a)
    deferred(d, b)

    r = ok(d, "list")
    got = parse_list(r.out)
    assert sorted(got) == sorted([a, b])
    for qid, n in ((a, 2), (b, 1)):
        m = got[qid]
        assert m["area"] == "queue" and m["hold"] is None
        assert re.fullmatch(r"\d+[smhd]", m["age"]), m
        assert m["size"] == len(content(d, "queue", qid))
        assert m["sender"] == "<alice@sender.test>"
        assert len(m["rcpts"]) == n
        for rc in m["rcpts"]:
            assert rc["state"] == "pending"
            assert rc["attempts"] == 1
            # about an hour away
            assert re.fullmatch(r"(5\d|60)m", rc["next"]), rc
            assert TEMPFAIL in rc["last"], rc
    assert [x["addr"] for x in got[a]["rcpts"]] == ["user@example.test",
                                                    "other@example.test"]

    # --json: the same data
    r = ok(d, "list", "--json")
    js = json.loads(r.out)
    assert [m["id"] for m in js] == sorted([a, b])
    now = time.time()
    for m in js:
        qid = m["id"]
        assert m["area"] == "queue" and m["held"] is False
        assert m["size"] == got[qid]["size"]
        assert m["sender"] == "alice@sender.test"
        assert m["attempts"] == 1
        assert now + 3400 < m["next_attempt"] < now + 3700
        assert abs(now - m["arrival"] - m["age"]) < 5
        assert m["hold_reason"] is None
        assert [x["address"] for x in m["recipients"]] == \
            [x["addr"] for x in got[qid]["rcpts"]]
        for x in m["recipients"]:
            assert x["state"] == "pending" and x["attempts"] == 1
            assert x["next_attempt"] == m["next_attempt"]
            assert TEMPFAIL in x["last"]

    # show: envelope and headers, not the body (unless --body)
    r = ok(d, "show", a)
    head, sep, hdr = r.stdout.partition(b"*** headers ***\n")
    assert sep, r.out
    head = head.decode()
    assert head.startswith("*** envelope ***\nid: %s\narea: queue\n" % a)
    assert "attempts: 1\n" in head
    assert re.search(r"^next attempt: \d{4}-\d\d-\d\d .* UTC \((5\d|60)m\)$",
                     head, re.M), head
    assert "sender: <alice@sender.test>\n" in head
    assert re.search(r"^recipient: <user@example.test> pending; last: .*%s"
                     % TEMPFAIL, head, re.M), head
    assert re.search(r"^recipient: <other@example.test> pending; last: .*%s"
                     % TEMPFAIL, head, re.M), head
    stored = content(d, "queue", a)
    header_part = stored[:stored.index(b"\r\n\r\n") + 4]
    assert hdr.endswith(header_part), (hdr, header_part)
    assert b"Subject: first" in hdr and b"Hello." not in hdr
    r = ok(d, "show", "--body", a)
    assert r.stdout.partition(b"*** message ***\n")[2].endswith(stored)

    # stats
    r = ok(d, "stats")
    st = dict(l.split(": ", 1) for l in r.out.splitlines())
    assert st["queued"] == "2" and st["held"] == "0" and st["corrupt"] == "0"
    assert st["recipients pending"] == "3"
    assert st["recipients delivered"] == "0"
    assert st["recipients failed"] == "0"
    # both arrived within a second or so: either may be the oldest
    oldest = st["oldest"].split(" ")
    assert re.fullmatch(r"\d+s", oldest[0]) and oldest[1] in (a, b), st
    total = len(content(d, "queue", a)) + len(content(d, "queue", b))
    assert st["size"] == str(total)
    js = json.loads(ok(d, "stats", "--json").out)
    assert js == {"queued": 2, "held": 0, "corrupt": 0,
                  "recipients": {"pending": 3, "delivered": 0, "failed": 0},
                  "oldest_age": js["oldest_age"], "oldest_id": oldest[1],
                  "size": total}
    assert 0 <= js["oldest_age"] < 60

    # nothing was changed by reading
    assert sink.messages() == []
    assert d.spool_files("corrupt") == [] and d.spool_files("pickup") == []
    assert_owned(d)


def test_hold_release(mx):
    d, sink = start(mx)
    a = send_one(d, "to hold")
    b = send_one(d, "to deliver")
    deferred(d, a)
    deferred(d, b)

    r = ok(d, "hold", a)
    assert r.out == "held %s\n" % a
    assert d.spool_files("hold") == sorted([a + ".env", a + ".msg"])
    assert "Q " + HOLD_REASON in envelope_records(d, "hold", a)
    got = parse_list(ok(d, "list").out)
    assert got[a]["area"] == "held" and got[a]["hold"] == HOLD_REASON
    assert got[a]["rcpts"][0]["next"] == "-"
    assert got[b]["area"] == "queue"
    js = {m["id"]: m for m in json.loads(ok(d, "list", "--json").out)}
    assert js[a]["held"] is True and js[a]["hold_reason"] == HOLD_REASON
    assert js[a]["recipients"][0]["next_attempt"] is None
    st = json.loads(ok(d, "stats", "--json").out)
    assert (st["queued"], st["held"]) == (1, 1)
    r = queue(d, "hold", a)
    assert r.returncode == 1 and "it is held" in r.err, r.err
    assert_owned(d)

    # the daemon attempts everything now: the held one is not delivered
    # (and forgotten quietly), the other is
    accept_all(sink)
    r = ok(d, "flush")
    assert "the running daemon attempts them now" in r.out, r.out
    sink.wait_messages(1, daemon=d)
    d.wait_log(r"id=%s removed from the queue by the administrator" % a)
    time.sleep(1.5)
    assert delivered_subjects(sink) == ["to deliver"]
    assert d.spool_files("hold") == sorted([a + ".env", a + ".msg"])

    # release: back to queue/ and delivered at once (pickup)
    r = ok(d, "release", a)
    assert r.out == "released %s\n" % a
    sink.wait_messages(2, timeout=5, daemon=d)
    d.wait_queue_empty()
    assert delivered_subjects(sink) == ["to deliver", "to hold"]
    r = queue(d, "release", a)
    assert r.returncode == 1 and "no such held message" in r.err, r.err
    assert d.spool_files("corrupt") == []
    assert "moved to corrupt" not in d.log()
    assert_owned(d)


def test_flush(mx):
    d, sink = start(mx)
    a = send_one(d, "flush one")
    deferred(d, a)
    accept_all(sink)
    # the backoff is an hour: nothing happens on its own
    time.sleep(2.5)
    assert sink.messages() == []

    t0 = time.monotonic()
    r = ok(d, "flush", a)
    assert r.out == "flushed %s: the running daemon attempts it now\n" % a, r.out
    sink.wait_messages(1, timeout=5, daemon=d)
    assert time.monotonic() - t0 < 4.5
    d.wait_log(r"id=%s flushed: due now" % a)
    d.wait_queue_empty()
    assert delivered_subjects(sink) == ["flush one"]

    # flush all
    sink.stop()
    sink.args = ["--reject-rcpt", ".*=" + TEMPFAIL]
    sink.start()
    b = send_one(d, "flush b")
    c = send_one(d, "flush c")
    deferred(d, b)
    deferred(d, c)
    accept_all(sink)
    time.sleep(1.5)
    assert len(sink.messages()) == 1
    t0 = time.monotonic()
    r = ok(d, "flush")
    assert r.out.startswith("flushed 2 message(s) (0 being attempted already): "
                            "the running daemon attempts them now"), r.out
    sink.wait_messages(3, timeout=5, daemon=d)
    assert time.monotonic() - t0 < 4.5
    d.wait_queue_empty()
    assert sorted(delivered_subjects(sink)) == ["flush b", "flush c", "flush one"]
    assert d.spool_files("pickup") == []

    r = queue(d, "flush", "0000000010000ABC")
    assert r.returncode == 1 and "no such queued message" in r.err, r.err
    assert_owned(d)


def test_flush_without_daemon(mx):
    """No daemon: the flush says so, and the next start attempts the message
    at once although its retry is an hour away."""
    d, sink = start(mx)
    a = send_one(d, "later")
    deferred(d, a)
    assert d.stop() == 0
    r = ok(d, "flush", a)
    assert "no running daemon took the request" in r.out, r.out
    assert "the next start attempts it at once" in r.out
    assert_owned(d)
    accept_all(sink)
    d.start()
    sink.wait_messages(1, timeout=5, daemon=d)
    d.wait_queue_empty()
    assert delivered_subjects(sink) == ["later"]


def test_delete(mx):
    d, sink = start(mx)
    a = send_one(d, "deleted")
    b = send_one(d, "kept")
    h = send_one(d, "held then deleted")
    for q in (a, b, h):
        deferred(d, q)
    r = ok(d, "delete", a)
    assert r.out == "deleted %s\n" % a
    assert not any(n.startswith(a) for n in d.spool_files("queue"))
    ok(d, "hold", h)
    r = ok(d, "delete", h)
    assert r.out == "deleted %s\n" % h
    assert d.spool_files("hold") == []
    r = queue(d, "delete", a)
    assert r.returncode == 1 and "no such queued or held message" in r.err, r.err
    r = queue(d, "show", a)
    assert r.returncode == 1 and "no such message" in r.err, r.err

    accept_all(sink)
    ok(d, "flush")
    sink.wait_messages(1, daemon=d)
    d.wait_log(r"id=%s removed from the queue by the administrator" % a)
    d.wait_log(r"id=%s removed from the queue by the administrator" % h)
    d.wait_queue_empty()
    time.sleep(1)
    assert delivered_subjects(sink) == ["kept"]
    assert d.spool_files("corrupt") == []
    assert "moved to corrupt" not in d.log()
    assert "cannot remove" not in d.log()
    st = json.loads(ok(d, "stats", "--json").out)
    assert (st["queued"], st["held"], st["size"]) == (0, 0, 0)
    assert ok(d, "list").out == "queue is empty\n"
    assert json.loads(ok(d, "list", "--json").out) == []


def test_bad_ids_and_usage(mx):
    d, sink = start(mx)
    qid = send_one(d, "stays")
    deferred(d, qid)
    before = (d.spool_files("queue"), d.spool_files("hold"))

    for bad in ("../x", "../../etc/passwd", "0" * 17, "0" * 15, "",
                qid.lower(), qid + "/", "../hold/" + qid, qid + "\n",
                "FLUSH-ALL"):
        for cmd in ("show", "flush", "delete", "hold", "release"):
            r = queue(d, cmd, bad)
            assert r.returncode == 1, (cmd, bad, r.out, r.err)
            assert "invalid queue id" in r.err, (cmd, bad, r.err)
            assert r.out == ""
    for cmd, msg in (("show", "no such message"),
                     ("flush", "no such queued message"),
                     ("delete", "no such queued or held message"),
                     ("hold", "no such queued message"),
                     ("release", "no such held message")):
        r = queue(d, cmd, "0000000010000ABC")
        assert r.returncode == 1, (cmd, r.out, r.err)
        assert msg in r.err, (cmd, r.err)
    r = queue(d, "release", qid)
    assert r.returncode == 1 and "(it is queued)" in r.err, r.err

    for argv in ((), ("show",), ("delete",), ("hold", qid, qid),
                 ("list", "x"), ("list", "--body"), ("stats", qid),
                 ("show", qid, "--json"), ("frob",), ("-x", "list"),
                 ("flush", qid, qid)):
        r = queue(d, *argv)
        assert r.returncode == 2, (argv, r.out, r.err)
        assert "usage:" in r.err

    r = subprocess.run([str(mxgate_bin()), "queue", "-c",
                        os.path.join(mx.dir, "missing.ini"), "list"],
                       capture_output=True, timeout=60)
    assert r.returncode == 1 and r.stderr

    # nothing was touched
    assert (d.spool_files("queue"), d.spool_files("hold")) == before
    assert d.spool_files("corrupt") == []
    assert not os.path.exists(os.path.join(d.spool, "x"))
    assert qid in ok(d, "list").out
    assert_owned(d)
