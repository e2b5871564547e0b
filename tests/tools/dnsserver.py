#!/usr/bin/python3
"""dnsserver: a scripted authoritative DNS server for tests.

Answers queries over UDP and TCP on the same port (RFC 1035 4.2), from a
zone in a JSON file. Python 3 standard library only; the wire format is
written by hand (no name compression).

Usage:
    dnsserver.py --zone ZONE.json [--host 127.0.0.1|::1] [--port 0]
                 [--log FILE] [--neg-ttl 60]

Prints "LISTENING <port>" on stdout (flushed) once both sockets accept
queries; --port 0 picks a free port. Exits on SIGTERM/SIGINT.

Zone file: a JSON object mapping names (case-insensitive, trailing dot
optional) to lists of records. Each record has "type" and "value"; "ttl"
defaults to 300.

    {
      "example.test": [
        {"type": "A", "value": "192.0.2.1", "ttl": 300},
        {"type": "AAAA", "value": "2001:db8::1"},
        {"type": "MX", "pref": 10, "value": "mx.example.test"},
        {"type": "TXT", "value": "v=spf1 -all"},
        {"type": "TXT", "value": ["part1", "part2"]},
        {"type": "SPF", "value": "v=spf1 -all"},
        {"type": "NS", "value": "ns.example.test"}
      ],
      "www.example.test": [{"type": "CNAME", "value": "example.test"}],
      "1.2.0.192.in-addr.arpa": [{"type": "PTR", "value": "example.test"}],
      "empty.example.test": []
    }

TXT/SPF values are one string or a list of character-strings (strings
longer than 255 octets are split). A record with "truncate": true makes
every UDP answer that contains it truncated (TC set, no records), so the
client must ask again over TCP; so does any UDP answer longer than 512
octets (or the client's EDNS0 payload size).

Answers:
- the name is in the zone with records of the type: NOERROR with them;
- the name has a CNAME (and the type asked is not CNAME): the CNAME, then
  the answer for its target when the target is in the zone (chains are
  followed, up to 16 links);
- the name is in the zone without records of the type (an empty list
  makes a name that exists with no records): NODATA, that is NOERROR with
  an empty answer and an SOA in the authority section whose TTL and
  minimum are --neg-ttl (RFC 2308 3);
- the name is not in the zone: NXDOMAIN, with the same SOA;
- special names, when not in the zone, by their first or last label:
  "timeout" is never answered, "servfail" gets SERVFAIL, "refused" gets
  REFUSED (e.g. "x.timeout", "servfail.example.test").

--log FILE appends one JSON line per query received, written and flushed
before the answer is sent, e.g.
    {"name":"example.test","rcode":"NOERROR","tc":false,"transport":"udp","type":"A"}
(name lowercased without the trailing dot; rcode "NONE" for an unanswered
query), so tests can count queries per (name, type, transport).
"""

import argparse
import ipaddress
import json
import signal
import socket
import struct
import sys
import threading

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15,
         "TXT": 16, "AAAA": 28, "SPF": 99, "OPT": 41, "ANY": 255}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3,
          "NOTIMP": 4, "REFUSED": 5}
CNAME_MAX = 16
UDP_MAX = 512           # RFC 1035 4.2.1, unless EDNS0 says more


def norm(name):
    return name.lower().rstrip(".")


def enc_name(name):
    out = b""
    for label in norm(name).split("."):
        if label == "":
            continue
        raw = label.encode()
        if len(raw) > 63:
            raise ValueError("label too long: %r" % label)
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def enc_strings(value):
    parts = value if isinstance(value, list) else [value]
    out = b""
    for p in parts:
        raw = p.encode() if isinstance(p, str) else bytes(p)
        if raw == b"":
            out += b"\0"
        while raw:
            out += bytes([len(raw[:255])]) + raw[:255]
            raw = raw[255:]
    return out


def enc_rdata(rec):
    t = rec["type"].upper()
    v = rec.get("value")
    if t == "A":
        return socket.inet_pton(socket.AF_INET, v)
    if t == "AAAA":
        return socket.inet_pton(socket.AF_INET6, v)
    if t == "MX":
        return struct.pack("!H", int(rec.get("pref", 0))) + enc_name(v)
    if t in ("TXT", "SPF"):
        return enc_strings(v)
    if t in ("CNAME", "PTR", "NS"):
        return enc_name(v)
    raise ValueError("unknown record type %r" % t)


def enc_rr(name, rtype, ttl, rdata):
    return enc_name(name) + struct.pack("!HHIH", rtype, 1, ttl,
                                        len(rdata)) + rdata


class Zone:
    def __init__(self, path, neg_ttl):
        with open(path) as f:
            raw = json.load(f)
        self.names = {}
        for name, recs in raw.items():
            lst = []
            for rec in recs:
                t = rec["type"].upper()
                if t not in TYPES:
                    raise ValueError("%s: unknown type %r" % (name, t))
                lst.append((TYPES[t], int(rec.get("ttl", 300)),
                            enc_rdata(rec), bool(rec.get("truncate"))))
            self.names[norm(name)] = lst
        self.neg_ttl = neg_ttl

    def special(self, qname):
        if qname in self.names:
            return None
        labels = qname.split(".")
        for word in ("timeout", "servfail", "refused"):
            if labels[0] == word or labels[-1] == word:
                return word
        return None

    def soa(self, qname):
        owner = qname.split(".")[-1]
        rdata = (enc_name("ns." + owner) + enc_name("hostmaster." + owner) +
                 struct.pack("!IIIII", 1, 3600, 600, 86400, self.neg_ttl))
        return enc_rr(owner, TYPES["SOA"], self.neg_ttl, rdata)

    def lookup(self, qname, qtype):
        """(rcode, [answer rr bytes], [authority rr bytes], truncate)"""
        answers = []
        trunc = False
        name = qname
        for _ in range(CNAME_MAX):
            recs = self.names.get(name)
            if recs is None:
                if answers:         # CNAME out of the zone: stop there
                    return 0, answers, [], trunc
                return 3, [], [self.soa(qname)], trunc
            match = [r for r in recs if r[0] == qtype]
            if match:
                for rtype, ttl, rdata, tr in match:
                    answers.append(enc_rr(name, rtype, ttl, rdata))
                    trunc = trunc or tr
                return 0, answers, [], trunc
            cname = [r for r in recs if r[0] == TYPES["CNAME"]]
            if not cname:
                return 0, answers, [self.soa(qname)], trunc
            rtype, ttl, rdata, tr = cname[0]
            answers.append(enc_rr(name, rtype, ttl, rdata))
            trunc = trunc or tr
            name = decode_name(rdata, 0)[0]
        return 2, [], [], False     # CNAME loop


def decode_name(buf, off):
    labels = []
    while True:
        n = buf[off]
        off += 1
        if n == 0:
            return ".".join(labels).lower(), off
        if n & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(buf[off:off + n].decode("latin-1"))
        off += n


def parse_query(msg):
    """(id, flags, qname, qtype, question bytes, udp size) or None"""
    if len(msg) < 12:
        return None
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", msg[:12])
    if flags & 0x8000 or qd != 1:
        return None
    qname, off = decode_name(msg, 12)
    qtype, qclass = struct.unpack("!HH", msg[off:off + 4])
    question = msg[12:off + 4]
    off += 4
    size = UDP_MAX
    try:
        for _ in range(an + ns + ar):
            _, off = decode_name(msg, off)
            rtype, rclass, _, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
            off += 10 + rdlen
            if rtype == TYPES["OPT"]:
                size = max(UDP_MAX, rclass)
    except (ValueError, IndexError, struct.error):
        pass
    return qid, flags, qname, qtype, question, size


class Server:
    def __init__(self, args):
        self.zone = Zone(args.zone, args.neg_ttl)
        self.log = open(args.log, "a") if args.log else None
        self.lock = threading.Lock()

    def record(self, qname, qtype, transport, rcode, tc):
        if self.log is None:
            return
        line = json.dumps({"name": qname,
                           "type": TYPE_NAMES.get(qtype, str(qtype)),
                           "transport": transport, "rcode": rcode,
                           "tc": tc}, sort_keys=True, separators=(",", ":"))
        with self.lock:
            self.log.write(line + "\n")
            self.log.flush()

    def answer(self, msg, transport):
        """The reply bytes, or None to stay silent."""
        try:
            q = parse_query(msg)
        except (ValueError, IndexError, struct.error):
            q = None
        if q is None:
            return None
        qid, qflags, qname, qtype, question, size = q
        special = self.zone.special(qname)
        if special == "timeout":
            self.record(qname, qtype, transport, "NONE", False)
            return None
        if special == "servfail":
            rcode, an, ns, trunc = 2, [], [], False
        elif special == "refused":
            rcode, an, ns, trunc = 5, [], [], False
        else:
            rcode, an, ns, trunc = self.zone.lookup(qname, qtype)
        # QR, opcode copied, AA, RD copied
        flags = 0x8000 | (qflags & 0x7800) | 0x0400 | (qflags & 0x0100) | rcode
        body = b"".join(an) + b"".join(ns)
        reply = struct.pack("!HHHHHH", qid, flags, 1, len(an), len(ns), 0) + \
            question + body
        tc = False
        if transport == "udp" and (trunc or len(reply) > size):
            # RFC 2181 9: TC set, nothing partial
            tc = True
            reply = struct.pack("!HHHHHH", qid, flags | 0x0200, 1, 0, 0, 0) + \
                question
        name = [k for k, v in RCODES.items() if v == rcode][0]
        self.record(qname, qtype, transport, name, tc)
        return reply

    def serve_udp(self, sock):
        while True:
            msg, peer = sock.recvfrom(65535)
            reply = self.answer(msg, "udp")
            if reply is not None:
                sock.sendto(reply, peer)

    def serve_tcp(self, lsock):
        while True:
            conn, _ = lsock.accept()
            threading.Thread(target=self.serve_conn, args=(conn,),
                             daemon=True).start()

    def serve_conn(self, conn):
        buf = b""
        try:
            while True:
                data = conn.recv(65535)
                if not data:
                    return
                buf += data
                while len(buf) >= 2:
                    n = struct.unpack("!H", buf[:2])[0]
                    if len(buf) < 2 + n:
                        break
                    msg, buf = buf[2:2 + n], buf[2 + n:]
                    reply = self.answer(msg, "tcp")
                    if reply is not None:
                        conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            pass
        finally:
            conn.close()


def bind(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        u = socket.socket(fam, socket.SOCK_DGRAM)
        u.bind((host, port))
        p = u.getsockname()[1]
        t = socket.socket(fam, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            t.bind((host, p))
        except OSError:
            u.close()
            t.close()
            if port:
                raise
            continue
        t.listen(64)
        return u, t, p
    raise OSError("no free port for both UDP and TCP")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zone", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log")
    ap.add_argument("--neg-ttl", type=int, default=60)
    args = ap.parse_args()
    ipaddress.ip_address(args.host)
    server = Server(args)
    u, t, port = bind(args.host, args.port)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    threading.Thread(target=server.serve_udp, args=(u,), daemon=True).start()
    threading.Thread(target=server.serve_tcp, args=(t,), daemon=True).start()
    print("LISTENING %d" % port, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
