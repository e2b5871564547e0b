"""Log lines: key=value text by default, one JSON object per line with
[server] log_format = json; the line per message tells its whole story
(client, HELO, envelope, SPF/DKIM/DMARC, verdict, queue id)."""

import json
import re

from conftest import make_message, queued_id


def send_one(d, subject):
    with d.connect() as c:
        c.greeting()
        return queued_id(c.send_message("alice@sender.test", ["user@example.test"],
                                        make_message(subject)))


def test_text_lines_are_key_value(mx):
    sink = mx.sink()
    d = mx.daemon(sink)
    qid = send_one(d, "text-log")
    sink.wait_messages(1, daemon=d)
    d.wait_log(r"id=%s .*status=sent" % qid)
    line = [l for l in d.log().splitlines()
            if "id=%s" % qid in l and "status=queued" in l][0]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z mxgate\[\d+\] info: ", line)
    for key in ("session", "id", "client", "helo", "from", "to", "spf",
                "dmarc", "status"):
        assert re.search(r"(^| )%s=" % key, line), (key, line)


def test_json_lines(mx):
    sink = mx.sink()
    d = mx.daemon(sink, sections={"server": {"log_format": "json"}})
    qid = send_one(d, "json-log")
    sink.wait_messages(1, daemon=d)
    d.wait_log(r'"status":"sent"')
    objs = []
    for line in d.log().splitlines():
        if not line.strip():
            continue
        o = json.loads(line)          # every line is one JSON object
        assert {"time", "level", "ident", "pid"} <= set(o), o
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", o["time"])
        objs.append(o)
    summary = [o for o in objs if o.get("id") == qid and o.get("status") == "queued"]
    assert len(summary) == 1, objs
    s = summary[0]
    assert s["client"] == "127.0.0.1" and s["from"] == "<alice@sender.test>"
    assert s["to"] == "<user@example.test>" and s["level"] == "info"
    assert "session" in s and "spf" in s and "dmarc" in s
    # the delivery line names the receiving session as well as the queue id
    sent = [o for o in objs if o.get("id") == qid and o.get("status") == "sent"]
    assert len(sent) == 1 and sent[0].get("session") == s["session"], sent
    ready = [o for o in objs if o.get("msg", "").startswith("mxgate ready")]
    assert ready and ready[0]["hostname"] == d.sections["server"]["hostname"]
    # a hostile HELO stays inside its string
    with d.connect() as c:
        c.greeting()
        c.expect(250, 'EHLO evil"name\\x')
        queued_id(c.send_message("alice@sender.test", ["user@example.test"],
                                 make_message("json-evil"), ehlo=False))
    d.wait_log(r"evil.*status.:.queued")
    hits = [json.loads(l) for l in d.log().splitlines() if "evil" in l]
    assert any(o.get("helo") == 'evil"name\\x' for o in hits), hits
