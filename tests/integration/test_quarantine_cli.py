"""`mxgate quarantine list|show|release|delete`: the hold area of the spool
and a running daemon's pickup of released messages.

Held messages are made without the DMARC policy: queued messages are moved
from queue/ to hold/ by hand while the daemon is stopped (content first,
then the envelope, as spool_hold does), with a hold reason written into the
envelope. As root the daemon runs as `nobody` and owns the spool; the CLI
must then act as the spool's owner.
"""

import os
import re
import subprocess

from conftest import (IS_ROOT, free_port, make_message, mxgate_bin, queued_id,
                      split_received, wait_until)

REASON = "dmarc=fail (p=quarantine) header.from=sender.test"


def send_one(d, subject, sender="alice@sender.test", rcpts=("user@example.test",)):
    msg = make_message(subject, sender=sender)
    with d.connect() as c:
        c.greeting()
        qid = queued_id(c.send_message(sender, list(rcpts), msg))
        c.expect(221, "QUIT")
    d.known_ids.add(qid)
    return qid, msg


def quarantine(d, *args):
    r = subprocess.run([str(mxgate_bin()), "quarantine", "-c", d.cfg_path]
                       + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)
    r.out = r.stdout.decode("utf-8", "replace")
    r.err = r.stderr.decode("utf-8", "replace")
    return r


def env_escape(s):
    return "".join("%%%02X" % ord(c) if c == "%" or ord(c) < 0x20 or ord(c) == 0x7f
                   else c for c in s)


def env_unescape(s):
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), s)


def hold_by_hand(d, qid, reason=REASON, prepend=None):
    """Move a queued message to hold/ (daemon stopped), adding a Q record
    (and a P record when the envelope has none and prepend is given).
    Returns the prepend text the envelope ends up with ('' if none)."""
    assert not d.running()
    q = os.path.join(d.spool, "queue")
    h = os.path.join(d.spool, "hold")
    with open(os.path.join(q, qid + ".env")) as f:
        lines = f.read().split("\n")
    assert lines[-2:] == ["E", ""], lines
    extra = ["Q " + env_escape(reason)]
    have = [l[2:] for l in lines if l.startswith("P ")]
    if not have and prepend:
        extra.append("P " + env_escape(prepend))
        have = [env_escape(prepend)]
    text = "\n".join(lines[:-2] + extra + ["E", ""])
    path = os.path.join(q, qid + ".env")
    st = os.stat(path)
    with open(path, "w") as f:
        f.write(text)
    os.chown(path, st.st_uid, st.st_gid)
    # content first, then the envelope: the envelope says where it lives
    os.rename(os.path.join(q, qid + ".msg"), os.path.join(h, qid + ".msg"))
    os.rename(path, os.path.join(h, qid + ".env"))
    return env_unescape(have[0]) if have else ""


def held_message(mx, n=1, sink=None):
    """A daemon whose route's sink is down, with n messages held by hand;
    the daemon is stopped on return. Returns (daemon, sink, [(id, msg,
    prepend)])."""
    if sink is None:
        sink = mx.sink(start=False)
        sink.port = free_port()
    d = mx.daemon(route_to=sink.hostport)
    out = []
    for i in range(n):
        qid, msg = send_one(d, "held %d" % i,
                            rcpts=("user@example.test", "other%d@example.test" % i))
        out.append([qid, msg])
    for qid, _ in out:
        d.wait_log(r"id=%s deferred" % qid)
    assert d.stop() == 0
    for item in out:
        item.append(hold_by_hand(d, item[0], prepend="X-Test-Stamp: held\r\n"))
    return d, sink, [tuple(x) for x in out]


def stored_content(d, sub, qid):
    with open(os.path.join(d.spool, sub, qid + ".msg"), "rb") as f:
        return f.read()


def test_list_show_release_delete(mx):
    d, sink, held = held_message(mx, 2)
    (id1, msg1, pre1), (id2, msg2, _) = held
    content1 = stored_content(d, "hold", id1)
    sink.start()
    d.start()
    assert "0 message(s) recovered" in d.log_since_start()

    # the daemon delivers what is queued, never what is held
    qid3, _ = send_one(d, "ordinary")
    sink.wait_messages(1, daemon=d)
    d.wait_queue_empty()
    assert [m["eml"].count(b"Subject: ordinary") for m in sink.messages()] == [1]

    r = quarantine(d, "list")
    assert r.returncode == 0, r.err
    lines = r.out.splitlines()
    assert len(lines) == 3, r.out
    assert lines[0].split() == ["ID", "AGE", "SIZE", "SENDER", "RECIPIENTS", "REASON"]
    rows = [l.split(" ") for l in lines[1:]]
    rows = [[x for x in row if x != ""] for row in rows]
    assert [row[0] for row in rows] == sorted([id1, id2])
    for row in rows:
        i = 0 if row[0] == id1 else 1
        assert re.fullmatch(r"\d+[smhd]", row[1]), row
        assert int(row[2]) == len(stored_content(d, "hold", row[0]))
        assert row[3] == "<alice@sender.test>"
        assert row[4] == "<user@example.test>,<other%d@example.test>" % i
        assert " ".join(row[5:]) == REASON
    # columns stay put: the fixed-width part lines up with the header
    assert all(l.index("<") == lines[1].index("<") for l in lines[1:])

    r = quarantine(d, "show", id1)
    assert r.returncode == 0, r.err
    head, sep, message = r.stdout.partition(b"*** message ***\n")
    assert sep, r.out
    head = head.decode()
    assert head.startswith("*** envelope ***\n")
    assert "id: %s\n" % id1 in head
    assert "reason: %s\n" % REASON in head
    assert "sender: <alice@sender.test>\n" in head
    assert "recipient: <user@example.test> pending\n" in head
    assert "recipient: <other0@example.test> pending\n" in head
    assert "size: %d\n" % len(content1) in head
    # as it would be delivered: the prepend text, then the stored content
    assert pre1
    assert message == pre1.encode() + content1
    assert split_received(content1)[1] == msg1

    r = quarantine(d, "release", id1)
    assert r.returncode == 0, r.err
    assert r.out == "released %s\n" % id1
    msgs = sink.wait_messages(2, daemon=d)
    d.wait_log(r"id=%s picked up" % id1)
    d.wait_queue_empty()
    got = [m for m in msgs if b"Subject: held 0" in m["eml"]]
    assert len(got) == 1
    assert sorted(got[0]["rcpts"]) == ["other0@example.test", "user@example.test"]
    assert got[0]["eml"].startswith(pre1.encode())
    assert got[0]["eml"][len(pre1):] == content1
    assert d.spool_files("pickup") == []

    r = quarantine(d, "list")
    assert r.returncode == 0 and len(r.out.splitlines()) == 2, r.out
    assert id2 in r.out and id1 not in r.out

    # released: no longer held
    r = quarantine(d, "release", id1)
    assert r.returncode == 1 and id1 in r.err, (r.out, r.err)

    r = quarantine(d, "delete", id2)
    assert r.returncode == 0, r.err
    assert r.out == "deleted %s\n" % id2
    assert d.spool_files("hold") == []
    r = quarantine(d, "list")
    assert r.returncode == 0 and r.out == "quarantine is empty\n", r.out
    r = quarantine(d, "show", id2)
    assert r.returncode == 1 and "no such held message" in r.err, r.err

    assert d.running()
    assert len(sink.messages()) == 2
    assert not any(b"Subject: held 1" in m["eml"] for m in sink.messages())
    assert d.spool_files("corrupt") == []


def test_release_while_stopped(mx):
    """Released with the daemon down: the message waits in queue/, the hint
    in pickup/ (both owned by the spool's owner, not root), and the next
    start delivers it once."""
    d, sink, held = held_message(mx, 1)
    qid, msg, pre = held[0]
    r = quarantine(d, "release", qid)
    assert r.returncode == 0, r.err
    assert r.out == "released %s\n" % qid
    assert d.spool_files("queue") == sorted([qid + ".env", qid + ".msg"])
    assert d.spool_files("hold") == []
    assert d.spool_files("pickup") == [qid]
    owner = os.stat(d.spool).st_uid
    if IS_ROOT:
        assert owner != 0, "the daemon did not hand the spool to its user"
    for sub, name in (("pickup", qid), ("queue", qid + ".env"),
                      ("queue", qid + ".msg")):
        st = os.stat(os.path.join(d.spool, sub, name))
        assert st.st_uid == owner, "%s/%s owned by uid %d, spool by %d" % (
            sub, name, st.st_uid, owner)

    sink.start()
    d.start()
    msgs = sink.wait_messages(1, daemon=d)
    d.wait_queue_empty()
    assert len(msgs) == 1
    assert msgs[0]["eml"][len(pre):].endswith(msg)
    assert "1 message(s) recovered" in d.log_since_start()
    assert d.spool_files("pickup") == []


def test_bad_ids_and_usage(mx):
    d, sink, held = held_message(mx, 1)
    qid = held[0][0]
    sink.start()
    d.start()
    queued, _ = send_one(d, "queued")
    sink.wait_messages(1, daemon=d)

    for bad in ("../x", "../../etc/passwd", "0" * 17, "0" * 15, "",
                qid.lower(), qid + "/", "../hold/" + qid, qid + "\n"):
        for cmd in ("show", "release", "delete"):
            r = quarantine(d, cmd, bad)
            assert r.returncode == 1, (cmd, bad, r.out, r.err)
            assert "invalid queue id" in r.err, (cmd, bad, r.err)
            assert r.out == ""
    for cmd in ("show", "release", "delete"):
        r = quarantine(d, cmd, "0000000010000ABC")
        assert r.returncode == 1, (cmd, r.out, r.err)
        assert "no such held message" in r.err, r.err
    # a queued (not held) message: said so, left alone
    d.wait_queue_empty()
    queued2, _ = send_one(d, "another")
    for cmd in ("release", "delete", "show"):
        r = quarantine(d, cmd, queued2)
        assert r.returncode == 1, (cmd, r.err)
    sink.wait_messages(2, daemon=d)

    for argv in ((), ("show",), ("release", qid, qid), ("list", "x"),
                 ("frob",), ("-x", "list")):
        r = quarantine(d, *argv)
        assert r.returncode == 2, (argv, r.out, r.err)
        assert "usage:" in r.err

    r = subprocess.run([str(mxgate_bin()), "quarantine", "-c",
                        os.path.join(mx.dir, "missing.ini"), "list"],
                       capture_output=True, timeout=60)
    assert r.returncode == 1 and r.stderr

    # nothing was touched: the held message is still there, whole
    assert d.spool_files("hold") == sorted([qid + ".env", qid + ".msg"])
    assert d.spool_files("corrupt") == []
    assert not os.path.exists(os.path.join(d.spool, "x"))
    r = quarantine(d, "list")
    assert r.returncode == 0 and qid in r.out
