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
