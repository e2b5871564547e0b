"""SIGHUP: configuration reload without dropping connections."""

import re
import signal
import socket

from conftest import ini_text, make_message, queued_id


def rewrite(d, sections):
    d.sections = sections
    with open(d.cfg_path, "w") as f:
        f.write(ini_text(sections))


def reload(d, expect=r"configuration reloaded", count=None):
    n = len(re.findall(expect, d.log()))
    d.signal(signal.SIGHUP)
    d.wait_log(expect, timeout=10, count=(count or n + 1))


def test_reload_adds_domain(mx):
    s1 = mx.sink(name="one")
    s2 = mx.sink(name="two")
    d = mx.daemon(s1)
    with d.connect() as old:
        old.greeting()
        old.ehlo()
        old.expect(250, "MAIL FROM:<alice@sender.test>")
        old.expect(550, "RCPT TO:<user@other.test>")

        cfg = mx.config(route_to=s1.hostport, port=d.port)
        cfg["server"]["spool"] = d.spool
        cfg["domains"]["accept"] = "example.test other.test"
        cfg["route other.test"] = {"hosts": s2.hostport}
        rewrite(d, cfg)
        reload(d)

        # the open session sees the new domain from its next command on
        old.expect(250, "RCPT TO:<user@other.test>")
        old.expect(354, "DATA")
        old.send(make_message("reloaded") + b".\r\n")
        queued_id(old.read_reply())
    msgs = s2.wait_messages(1, daemon=d)
    d.wait_queue_empty()
    assert msgs[0]["rcpts"] == ["user@other.test"]
    assert s1.messages() == []


def test_reload_bad_config_keeps_running(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    with open(d.cfg_path, "a") as f:
        f.write("\n[limits]\nrecipients = lots\n")
    reload(d, expect=r"reload refused")
    assert re.search(r"reload: .*recipients", d.log()), d.log()
    assert d.running()
    with d.connect() as c:
        c.greeting()
        queued_id(c.send_message("alice@sender.test", ["user@example.test"],
                                 make_message("still-running")))
    sink.wait_messages(1, daemon=d)


def test_reload_listener_change_refused(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    cfg = dict(d.sections)
    cfg["listener extra"] = {"address": "127.0.0.1", "port": "1"}
    rewrite(d, cfg)
    reload(d, expect=r"reload refused: .*restart")
    assert d.running()
    with d.connect() as c:
        c.greeting()
        c.ehlo()


def test_reload_during_delivery_attempt(mx):
    """Reload twice while a delivery attempt is stuck on a silent server:
    the attempt finishes with its old route, then the new one delivers."""
    sink = mx.sink()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)            # accepts TCP, never greets
    try:
        spec = "127.0.0.1:%d" % silent.getsockname()[1]
        d = mx.daemon(route_to=spec, sections={"delivery": {"connect_timeout": "2"}})
        with d.connect() as c:
            c.greeting()
            qid = queued_id(c.send_message("alice@sender.test", ["user@example.test"],
                                           make_message("in-flight")))
        d.known_ids.add(qid)
        cfg = dict(d.sections)
        cfg["route example.test"] = {"hosts": sink.hostport}
        rewrite(d, cfg)
        reload(d)
        cfg["limits"] = dict(cfg["limits"], recipients="200")
        rewrite(d, cfg)
        reload(d)
        msgs = sink.wait_messages(1, daemon=d)
        d.wait_queue_empty()
        assert msgs[0]["rcpts"] == ["user@example.test"]
        log = d.log()
        # the first attempt was still waiting for a greeting at both reloads
        first_fail = re.search(r"id=%s .*status=deferred" % qid, log)
        reloads = [m.start() for m in re.finditer("configuration reloaded", log)]
        assert first_fail and len(reloads) == 2 and reloads[1] < first_fail.start(), log
        reload(d)           # frees the retired configurations
        with d.connect() as c:
            c.greeting()
            c.ehlo()
    finally:
        silent.close()


def test_reload_under_load(mx):
    """Reloads while sessions are open in every state and new ones keep
    coming: no session is dropped, every message sent is acknowledged and
    delivered once, and the changed setting (a new accepted domain) holds
    from the reload on. A broken configuration in between is refused and
    changes nothing."""
    import threading
    import time

    sink = mx.sink()
    d = mx.daemon(sink)
    stop = threading.Event()
    errors, sent = [], []
    lock = threading.Lock()

    def sender(n):
        k = 0
        while not stop.is_set():
            k += 1
            try:
                with d.connect() as c:
                    c.greeting()
                    c.ehlo()
                    c.expect(250, "MAIL FROM:<alice@sender.test>")
                    c.expect(250, "RCPT TO:<user@example.test>")
                    c.expect(354, "DATA")
                    tag = "load-%d-%d" % (n, k)
                    c.send(make_message(tag) + b".\r\n")
                    queued_id(c.read_reply())
                    with lock:
                        sent.append(tag)
            except Exception as e:     # noqa: BLE001 - reported below
                with lock:
                    errors.append("%s: %r" % (n, e))
                return

    # sessions held open in several states across the reloads
    held = []
    for state in ("greeted", "ehlo", "mail", "rcpt", "data"):
        c = d.connect()
        c.greeting()
        if state != "greeted":
            c.ehlo()
        if state in ("mail", "rcpt", "data"):
            c.expect(250, "MAIL FROM:<alice@sender.test>")
        if state in ("rcpt", "data"):
            c.expect(250, "RCPT TO:<user@example.test>")
        if state == "data":
            c.expect(354, "DATA")
            c.send(b"Subject: held across reloads\r\n\r\nfirst line\r\n")
        held.append((state, c))

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        cfg = mx.config(route_to=sink.hostport, port=d.port)
        cfg["server"]["spool"] = d.spool
        for i in range(4):
            time.sleep(0.3)
            if i == 2:          # a broken one in between: refused
                with open(d.cfg_path, "a") as f:
                    f.write("\n[limits]\nrecipients = lots\n")
                reload(d, expect=r"reload refused")
                continue
            cfg["domains"]["accept"] = "example.test other%d.test" % i
            cfg["route other%d.test" % i] = {"hosts": sink.hostport}
            rewrite(d, cfg)
            reload(d)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert len(sent) >= 4, sent

    # the held sessions finish their transactions normally
    for state, c in held:
        if state == "data":
            c.send(b"last line\r\n.\r\n")
            queued_id(c.read_reply())
            continue
        if state in ("greeted",):
            c.ehlo()
        if state in ("greeted", "ehlo"):
            c.expect(250, "MAIL FROM:<alice@sender.test>")
        if state != "rcpt":
            c.expect(250, "RCPT TO:<user@example.test>")
        # the last good configuration is in force
        c.expect(250, "RCPT TO:<user@other3.test>")
        c.expect(354, "DATA")
        c.send(make_message("held-" + state) + b".\r\n")
        queued_id(c.read_reply())
        c.close()
    # the four with a recipient in each domain: one delivery per route
    total = len(sent) + 1 + 2 * (len(held) - 1)
    msgs = sink.wait_messages(total, daemon=d)
    time.sleep(0.5)
    subjects = [re.search(rb"Subject: (\S+)", m["eml"]).group(1).decode()
                for m in sink.messages()]
    extra = sorted(set(subjects) - set(sent) - {"held", "held-greeted",
                   "held-ehlo", "held-mail", "held-rcpt"})
    assert len(subjects) == total, (len(subjects), total, extra)
    for tag in sent:
        assert subjects.count(tag) == 1, tag
    assert d.running()
    assert len(msgs) >= total
