"""`mxgate config check` and start-up refusals."""

import os
import re
import socket
import subprocess

import pytest

from conftest import IS_ROOT, REPO, ini_text, mxgate_bin


def run(*args, timeout=20):
    binary = mxgate_bin()
    if not binary.exists():
        pytest.fail("mxgate binary %s not found" % binary)
    r = subprocess.run([str(binary)] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def check_sanitizers(text):
    assert "runtime error:" not in text and "Sanitizer" not in text, text


def write(mx, name, text):
    path = os.path.join(mx.dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def test_example_config_passes():
    rc, out, err = run("config", "check", "-c", str(REPO / "etc" / "mxgate.ini"))
    check_sanitizers(err)
    assert rc == 0, err
    assert "ok" in out


def test_generated_test_config_passes(mx):
    cfg = mx.config()
    path = write(mx, "good.ini", ini_text(cfg))
    rc, out, err = run("config", "check", "-c", path)
    check_sanitizers(err)
    assert rc == 0, err


BAD = """\
[server]
hostname = mx.example.test
spool = {spool}
colour = blue
[listener mx]
address = 127.0.0.1
port = 99999
[domains]
accept = example.test
this line is garbage
[route example.test]
hosts = 127.0.0.1:2526
[limits]
recipients = ten
"""


def test_errors_name_file_line_section_key(mx):
    path = write(mx, "bad.ini", BAD.format(spool=os.path.join(mx.dir, "spool")))
    rc, out, err = run("config", "check", "-c", path)
    check_sanitizers(err)
    assert rc == 1, (rc, out, err)
    lines = [l for l in err.splitlines() if l.strip()]
    want = [
        (4, r"\[server\] colour: .*unknown key"),
        (7, r"\[listener mx\] port: .*99999"),
        (14, r"\[limits\] recipients: .*ten"),
        (10, r"syntax|garbage|expected"),
    ]
    for line, rx in want:
        prefix = "%s:%d: " % (path, line)
        hits = [l for l in lines if l.startswith(prefix)]
        assert hits, "no error for line %d in:\n%s" % (line, err)
        assert re.search(rx, hits[0]), hits[0]
    # nothing but error lines, each naming the file and a line
    for l in lines:
        assert re.match(re.escape(path) + r":\d+: ", l), l


def test_every_garbage_line_is_reported(mx):
    """gateway/config.h: "All errors of a file are collected, one per
    line." That includes the second and later syntax errors."""
    text = ("[server]\nhostname = mx.example.test\nfirst garbage line\n"
            "[domains]\naccept = example.test\nsecond garbage line\n")
    path = write(mx, "garbage.ini", text)
    rc, out, err = run("config", "check", "-c", path)
    assert rc == 1
    assert "%s:3: " % path in err, err
    assert "%s:6: " % path in err, "second garbage line not reported:\n" + err


@pytest.mark.parametrize("sections,rx", [
    ({"delivery": {"retry_initial": "2h", "retry_max": "1h"}},
     r"\[delivery\] retry_initial"),
    ({"tls": {"certificate": "/nonexistent/cert.pem", "key": "/nonexistent/key.pem"}},
     r"\[tls\] certificate: cannot read"),
    ({"tls": {"certificate": "/etc/hostname"}}, r"\[tls\].*(together|without)"),
    ({"route example.test": None}, r"\[domains\] accept: no \[route"),
    ({"listener mx": {"address": "localhost"}}, r"\[listener mx\] address"),
    ({"limits": {"recipients": "99"}}, r"\[limits\] recipients"),
    ({"limits": {"message_size": "10q"}}, r"\[limits\] message_size"),
    ({"route example.test": {"hosts": "127.0.0.1"}}, r"\[route example\.test\] hosts"),
    ({"route example.test": {"tls": "maybe"}}, r"\[route example\.test\] tls"),
    ({"server": {"log_level": "loud"}}, r"\[server\] log_level"),
    ({"bogus": {"key": "value"}}, r"\[bogus\].*unknown section"),
])
def test_bad_values(mx, sections, rx):
    cfg = mx.config(sections=sections)
    path = write(mx, "bad.ini", ini_text(cfg))
    rc, out, err = run("config", "check", "-c", path)
    check_sanitizers(err)
    assert rc == 1, (rc, out, err)
    assert re.search(re.escape(path) + r":\d+: " + rx, err), err


def test_duplicate_key(mx):
    text = ini_text(mx.config()) + "\n[limits]\nrecipients = 200\nrecipients = 300\n"
    path = write(mx, "dup.ini", text)
    rc, out, err = run("config", "check", "-c", path)
    assert rc == 1
    assert re.search(re.escape(path) + r":\d+: \[limits\] recipients: duplicate", err), err


def test_missing_file(mx):
    path = os.path.join(mx.dir, "does-not-exist.ini")
    rc, out, err = run("config", "check", "-c", path)
    check_sanitizers(err)
    assert rc == 1
    assert path in err and re.search(r"cannot open|No such file", err), err


def test_serve_refuses_bad_config(mx):
    path = write(mx, "bad.ini", BAD.format(spool=os.path.join(mx.dir, "spool")))
    rc, out, err = run("serve", "-c", path)
    check_sanitizers(err)
    assert rc == 1
    assert "%s:4: [server] colour" % path in err, err
    assert "mxgate ready" not in err


def test_serve_port_in_use(mx):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        cfg = mx.config(port=port)
        path = write(mx, "busy.ini", ini_text(cfg))
        rc, out, err = run("serve", "-c", path)
    check_sanitizers(err)
    assert rc != 0
    assert re.search(r"listener mx: cannot listen on 127\.0\.0\.1 port %d" % port, err), err


@pytest.mark.skipif(not IS_ROOT, reason="only meaningful when run as root")
def test_root_without_user_refuses(mx):
    cfg = mx.config(sections={"server": {"user": None}})
    path = write(mx, "root.ini", ini_text(cfg))
    rc, out, err = run("serve", "-c", path)
    check_sanitizers(err)
    assert rc == 1
    assert "refusing to run as root" in err, err
    assert "mxgate ready" not in err


def test_version_and_usage():
    rc, out, err = run("version")
    assert rc == 0 and re.match(r"mxgate \d+\.\d+", out)
    rc, out, err = run("frobnicate")
    assert rc == 2 and "usage" in err
