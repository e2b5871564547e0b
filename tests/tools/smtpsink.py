#!/usr/bin/python3
"""smtpsink: a downstream SMTP server for tests and the demo.

Accepts mail (RFC 5321: EHLO/HELO, MAIL, RCPT, DATA, BDAT, RSET, NOOP,
QUIT, STARTTLS) and stores each accepted message in --maildir as <n>.eml
(the exact content, dots unstuffed, BDAT chunks joined) and <n>.json (the
envelope). The .json file is renamed into place after the .eml is
complete, so a test that polls for *.json sees whole messages.

Prints "LISTENING <port>" on stdout once it accepts connections. Python 3
standard library only. Exits on SIGTERM/SIGINT.
"""

import argparse
import asyncio
import json
import os
import re
import signal
import ssl
import sys

CMD_MAX = 2048          # RFC 5321 4.5.3.1.4 says 512; be lenient
READ_SIZE = 65536
IDLE_TIMEOUT = 300      # RFC 5321 4.5.3.2.7
MAX_RCPTS = 1000


class Eof(Exception):
    pass


class Sink:
    """Settings and the counters shared by all connections."""

    def __init__(self, args):
        self.args = args
        self.conns = 0
        self.reject = []
        for spec in args.reject_rcpt:
            m = re.match(r"^(.*)=([2-5][0-9][0-9]( .*)?)$", spec, re.S)
            if not m:
                sys.exit("smtpsink: --reject-rcpt wants REGEX=REPLY: %r" % spec)
            self.reject.append((re.compile(m.group(1), re.I), m.group(2)))
        self.tls = None
        if args.tls_cert or args.tls_key:
            if not (args.tls_cert and args.tls_key):
                sys.exit("smtpsink: --tls-cert and --tls-key go together")
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.load_cert_chain(args.tls_cert, args.tls_key)
        self.msgs = 0
        if args.maildir:
            os.makedirs(args.maildir, exist_ok=True)
            for name in os.listdir(args.maildir):
                stem = name.split(".", 1)[0]
                if stem.isdigit():
                    self.msgs = max(self.msgs, int(stem))

    def extensions(self, tls_active):
        a = self.args
        ext = []
        if not a.no_pipelining:
            ext.append("PIPELINING")
        ext.append("SIZE %d" % a.size if a.size > 0 else "SIZE")
        if not a.no_8bitmime:
            ext.append("8BITMIME")
        if not a.no_smtputf8:
            ext.append("SMTPUTF8")
        if not a.no_chunking:
            ext.append("CHUNKING")
        if a.dsn:
            ext.append("DSN")
        if self.tls is not None and not tls_active:
            ext.append("STARTTLS")
        return ext

    def store(self, sess, content):
        """Keep an accepted message; returns its number."""
        self.msgs += 1
        n = self.msgs
        t = sess.txn
        meta = {
            "n": n,
            "mail_from": t["mail_from"],
            "rcpts": t["rcpts"],
            "mail_params": t["mail_params"],
            "rcpt_params": t["rcpt_params"],
            "ehlo": sess.ehlo,
            "tls": sess.tls_active,
            "bdat": t["bdat"],
            "conn": sess.conn,
            "txn": sess.ntxn,
            "size": len(content),
        }
        d = self.args.maildir
        if d:
            with open(os.path.join(d, "%d.eml" % n), "wb") as f:
                f.write(content)
            tmp = os.path.join(d, "%d.json.tmp" % n)
            with open(tmp, "w") as f:
                json.dump(meta, f)
                f.write("\n")
            os.rename(tmp, os.path.join(d, "%d.json" % n))
        if self.args.print:
            print("MSG %d conn=%d txn=%d from=<%s> rcpts=%s size=%d tls=%s "
                  "bdat=%s" % (n, sess.conn, sess.ntxn, t["mail_from"],
                               ",".join("<%s>" % r for r in t["rcpts"]),
                               len(content), "yes" if sess.tls_active else "no",
                               "yes" if t["bdat"] else "no"), flush=True)
        return n


def new_txn():
    return {"mail_from": None, "rcpts": [], "mail_params": {}, "rcpt_params": [],
            "bdat": False, "chunks": bytearray(), "bdat_failed": False}


class Session:
    """One SMTP connection."""

    def __init__(self, sink, reader, writer):
        self.sink = sink
        self.args = sink.args
        self.reader = reader
        self.writer = writer
        sink.conns += 1
        self.conn = sink.conns
        self.buf = bytearray()
        self.ehlo = None
        self.esmtp = False
        self.tls_active = False
        self.ntxn = 0
        self.txn = new_txn()

    def log(self, direction, text):
        if self.args.verbose:
            print("smtpsink conn=%d %s %s" % (self.conn, direction, text),
                  file=sys.stderr, flush=True)

    async def fill(self):
        data = await asyncio.wait_for(self.reader.read(READ_SIZE),
                                      IDLE_TIMEOUT)
        if not data:
            raise Eof()
        self.buf += data

    async def read_command(self):
        """A command line without CRLF, or None when it was too long."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 1]
                if len(line) > CMD_MAX:
                    return None
                return line[:-1] if line.endswith(b"\r") else line
            if len(self.buf) > CMD_MAX:
                # Drop the overlong line up to its end.
                while True:
                    self.buf.clear()
                    await self.fill()
                    j = self.buf.find(b"\n")
                    if j >= 0:
                        del self.buf[:j + 1]
                        return None
            await self.fill()

    async def reply(self, *lines):
        out = []
        for i, line in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            out.append(line[:3] + sep + line[4:] if len(line) > 3 else line)
        for line in out:
            self.log("<<<", line)
        self.writer.write("".join(l + "\r\n" for l in out).encode())
        await self.writer.drain()

    def reset(self):
        self.txn = new_txn()

    async def run(self):
        greeting = self.args.greeting
        await self.reply(greeting)
        if greeting[:1] in ("4", "5"):
            return
        while True:
            line = await self.read_command()
            if line is None:
                await self.reply("500 5.5.2 line too long")
                continue
            text = line.decode("utf-8", "surrogateescape")
            self.log(">>>", text)
            verb, _, arg = text.partition(" ")
            handler = None
            if verb.isascii() and verb.isalpha():
                handler = getattr(self, "cmd_" + verb.upper(), None)
            if handler is None:
                await self.reply("500 5.5.1 command not recognized")
                continue
            if await handler(arg.strip()) == "close":
                return

    async def cmd_EHLO(self, arg):
        if not arg:
            return await self.reply("501 5.5.4 EHLO needs a domain")
        self.reset()
        self.ehlo = arg
        self.esmtp = True
        await self.reply("250 sink greets " + arg,
                         *["250 " + e for e in
                           self.sink.extensions(self.tls_active)])

    async def cmd_HELO(self, arg):
        if not arg:
            return await self.reply("501 5.5.4 HELO needs a domain")
        self.reset()
        self.ehlo = arg
        self.esmtp = False
        await self.reply("250 sink")

    def parse_params(self, s):
        """ESMTP parameters (RFC 5321 4.1.2) as {KEY: value or True}."""
        params = {}
        for p in s.split():
            k, eq, v = p.partition("=")
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", k):
                return None
            params[k.upper()] = v if eq else True
        return params

    async def cmd_MAIL(self, arg):
        if self.ehlo is None:
            return await self.reply("503 5.5.1 EHLO or HELO first")
        if self.txn["mail_from"] is not None:
            return await self.reply("503 5.5.1 nested MAIL command")
        m = re.fullmatch(r"FROM: ?<([^<>]*)>(.*)", arg, re.I | re.S)
        if not m:
            return await self.reply("501 5.5.4 syntax: MAIL FROM:<address>")
        params = self.parse_params(m.group(2))
        if params is None or (params and not self.esmtp):
            return await self.reply("555 5.5.4 bad parameters")
        a = self.args
        for k, v in params.items():
            if k == "SIZE":
                if v is True or not v.isdigit():
                    return await self.reply("501 5.5.4 bad SIZE")
                if a.size > 0 and int(v) > a.size:
                    return await self.reply("552 5.3.4 message too big")
            elif k == "BODY" and not a.no_8bitmime and \
                    str(v).upper() in ("7BIT", "8BITMIME"):
                pass
            elif k == "SMTPUTF8" and v is True and not a.no_smtputf8:
                pass
            elif k in ("RET", "ENVID") and a.dsn and v is not True:
                pass    # RFC 3461 4.3, 4.4
            else:
                return await self.reply("555 5.5.4 unsupported parameter "
                                        + k)
        self.txn["mail_from"] = m.group(1)
        self.txn["mail_params"] = params
        self.ntxn += 1
        await self.reply("250 2.1.0 sender ok")

    async def cmd_RCPT(self, arg):
        if self.txn["mail_from"] is None:
            return await self.reply("503 5.5.1 MAIL first")
        m = re.fullmatch(r"TO: ?<([^<>]+)>(.*)", arg, re.I | re.S)
        if not m:
            return await self.reply("501 5.5.4 syntax: RCPT TO:<address>")
        params = self.parse_params(m.group(2))
        if params is None or (params and not self.esmtp):
            return await self.reply("555 5.5.4 bad parameters")
        for k, v in params.items():
            if not (self.args.dsn and k in ("NOTIFY", "ORCPT") and v is not True):
                return await self.reply("555 5.5.4 unsupported parameter " + k)
        addr = m.group(1)
        for rx, rep in self.sink.reject:
            if rx.search(addr):
                return await self.reply(rep)
        if len(self.txn["rcpts"]) >= MAX_RCPTS:
            return await self.reply("452 4.5.3 too many recipients")
        self.txn["rcpts"].append(addr)
        self.txn["rcpt_params"].append(params)
        await self.reply("250 2.1.5 recipient ok")

    async def read_data(self):
        """Content up to CRLF.CRLF (RFC 5321 4.1.1.4), dots unstuffed."""
        raw = bytearray(b"\r\n")  # the first line follows a CRLF too
        start = 0
        while True:
            raw += self.buf
            self.buf.clear()
            i = raw.find(b"\r\n.\r\n", start)
            if i >= 0:
                break
            start = max(0, len(raw) - 4)
            await self.fill()
        self.buf += raw[i + 5:]     # pipelined commands after the dot
        body = bytes(raw[2:i + 2])
        # RFC 5321 4.5.2: drop the first dot of each line that has one.
        lines = body.split(b"\r\n")
        return b"\r\n".join(l[1:] if l.startswith(b".") else l
                            for l in lines)

    async def end_of_data(self, content):
        a = self.args
        if a.size > 0 and len(content) > a.size:
            rep = "552 5.3.4 message too big"
        elif a.data_reply:
            rep = a.data_reply
        else:
            rep = None
        if rep is None or rep.startswith("2"):
            n = self.sink.store(self, content)
            if rep is None:
                rep = "250 2.0.0 ok %d" % n
        self.reset()
        await self.reply(rep)

    async def cmd_DATA(self, arg):
        if self.txn["mail_from"] is None:
            return await self.reply("503 5.5.1 MAIL first")
        if not self.txn["rcpts"]:
            return await self.reply("554 5.5.1 no valid recipients")
        if self.txn["bdat"]:
            return await self.reply("503 5.5.1 DATA after BDAT")
        await self.reply("354 end data with <CR><LF>.<CR><LF>")
        content = await self.read_data()
        self.log(">>>", "(%d octets of content)" % len(content))
        await self.end_of_data(content)

    async def read_exactly(self, n):
        while len(self.buf) < n:
            await self.fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def cmd_BDAT(self, arg):
        m = re.fullmatch(r"([0-9]{1,15})( +LAST)? *", arg, re.I)
        if not m:
            # The chunk length is unknown: nothing after this is safe.
            await self.reply("501 5.5.4 syntax: BDAT size [LAST]")
            return "close"
        data = await self.read_exactly(int(m.group(1)))
        last = m.group(2) is not None
        self.log(">>>", "(%d octets of chunk)" % len(data))
        t = self.txn
        # RFC 3030 2: the chunk is read whatever the reply will be.
        if self.args.no_chunking:
            return await self.reply("502 5.5.1 CHUNKING not offered")
        if t["mail_from"] is None:
            return await self.reply("503 5.5.1 MAIL first")
        if not t["rcpts"]:
            return await self.reply("554 5.5.1 no valid recipients")
        if t["bdat_failed"]:
            return await self.reply("503 5.5.1 earlier BDAT failed, RSET")
        t["bdat"] = True
        t["chunks"] += data
        if self.args.size > 0 and len(t["chunks"]) > self.args.size:
            t["bdat_failed"] = True
            t["chunks"] = bytearray()
            return await self.reply("552 5.3.4 message too big")
        if not last:
            return await self.reply("250 2.0.0 %d octets received"
                                    % len(data))
        await self.end_of_data(bytes(t["chunks"]))

    async def cmd_RSET(self, arg):
        self.reset()
        await self.reply("250 2.0.0 ok")

    async def cmd_NOOP(self, arg):
        await self.reply("250 2.0.0 ok")

    async def cmd_VRFY(self, arg):
        await self.reply("252 2.5.2 cannot verify")

    async def cmd_HELP(self, arg):
        await self.reply("214 2.0.0 smtpsink")

    async def cmd_QUIT(self, arg):
        await self.reply("221 2.0.0 bye")
        return "close"

    async def cmd_STARTTLS(self, arg):
        if self.sink.tls is None:
            return await self.reply("502 5.5.1 STARTTLS not offered")
        if self.tls_active:
            return await self.reply("503 5.5.1 TLS already active")
        if arg:
            return await self.reply("501 5.5.4 no parameters allowed")
        await self.reply("220 2.0.0 ready to start TLS")
        # RFC 3207 5 / CVE-2011-0411: what came before the handshake
        # must not be read as if it came inside TLS.
        self.buf.clear()
        # Bytes that arrived since are in the reader's own buffer.
        getattr(self.reader, "_buffer", bytearray()).clear()
        await self.writer.start_tls(self.sink.tls)
        self.tls_active = True
        # RFC 3207 4.2: forget everything learned before TLS.
        self.ehlo = None
        self.esmtp = False
        self.reset()


async def serve(sink):
    tasks = set()

    async def handle(reader, writer):
        task = asyncio.current_task()
        tasks.add(task)
        sess = Session(sink, reader, writer)
        try:
            await sess.run()
        except (Eof, ConnectionError, ssl.SSLError, asyncio.TimeoutError,
                OSError, asyncio.IncompleteReadError) as e:
            sess.log("---", "closed: %r" % e)
        except asyncio.CancelledError:
            pass
        finally:
            tasks.discard(task)
            try:
                writer.close()
            except Exception:
                pass

    args = sink.args
    server = await asyncio.start_server(handle, args.listen, args.port,
                                        reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    print("LISTENING %d" % port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    for t in list(tasks):
        t.cancel()
    if tasks:
        await asyncio.wait(list(tasks), timeout=2)


def main():
    p = argparse.ArgumentParser(description="Downstream SMTP sink for tests.")
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--maildir", help="store <n>.eml and <n>.json here")
    p.add_argument("--tls-cert", help="PEM certificate: offer STARTTLS")
    p.add_argument("--tls-key", help="PEM private key")
    p.add_argument("--no-pipelining", action="store_true")
    p.add_argument("--no-chunking", action="store_true")
    p.add_argument("--no-8bitmime", action="store_true")
    p.add_argument("--no-smtputf8", action="store_true")
    p.add_argument("--dsn", action="store_true",
                   help="offer DSN (RFC 3461): accept RET, ENVID, NOTIFY, "
                        "ORCPT (recorded in mail_params, rcpt_params)")
    p.add_argument("--size", type=int, default=0,
                   help="advertise and enforce SIZE N (0: plain SIZE)")
    p.add_argument("--reject-rcpt", action="append", default=[],
                   metavar="REGEX=REPLY",
                   help="reply REPLY to RCPT whose address matches REGEX "
                        "(re.search, case-insensitive; repeatable)")
    p.add_argument("--data-reply", metavar="REPLY",
                   help="reply to end of data (default: 250 2.0.0 ok <n>); "
                        "messages are stored only on a 2xx reply")
    p.add_argument("--greeting", default="220 sink ESMTP",
                   help="4xx/5xx: send it and close")
    p.add_argument("--print", action="store_true",
                   help="one line per accepted message on stdout")
    p.add_argument("--verbose", action="store_true",
                   help="log the dialogue on stderr")
    args = p.parse_args()
    sink = Sink(args)
    try:
        asyncio.run(serve(sink))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
