"""DMARC in hybrid deployments ([hybrid]): mail that reaches mxgate
through trusted relays (an on-premises Exchange, another MX) is either
not enforced (mode = skip, or primary_mx = no) or evaluated against the
original client recovered from the relay's Received field (mode =
recover). The test client (127.0.0.1) plays the relay. Helpers are in
test_dmarc.py."""

import pytest

from test_dmarc import (a_rec, assert_rejected, dkim, dkim_key, gw,  # noqa: F401
                        message, txt, zone)

P_REJECT = "v=DMARC1; p=reject"


def received(ip, helo="mail.sender.test", by="relay.example.test"):
    """A Received field as Postfix writes it, folded."""
    return ("Received: from %s (%s [%s])\r\n\tby %s (Postfix) with ESMTP id ABC;"
            "\r\n\tTue, 1 Dec 2026 10:00:00 +0000" % (helo, helo, ip, by))


def hybrid(mode, relays="127.0.0.1", **more):
    return {"hybrid": dict({"trusted_relays": relays, "mode": mode}, **more)}


def test_skip_mode_delivers_failure_as_skip(mx, gw):
    g = gw(zone(P_REJECT), hybrid("skip"))
    _, dm = g.deliver(message(headers=[received("198.51.100.7")]))
    dm.check("fail", action="skip", p="reject")
    assert "action=skip" in g.summary(g.qid)


def test_skip_mode_relay_spf_does_not_align(mx, gw):
    """The relay's own address is in the sender domain's SPF record (a
    hybrid organisation lists its on-premises servers): that SPF pass
    says nothing about the sender and must not make dmarc=pass."""
    g = gw(zone(P_REJECT, {"sender.test": txt("v=spf1 ip4:127.0.0.0/8 -all") + a_rec()}),
           hybrid("skip"))
    eml, dm = g.deliver(message(headers=[received("198.51.100.7")]))
    dm.check("fail", action="skip", p="reject")
    # nor is it stamped as if it were the sender's
    assert b"Received-SPF:" not in eml, eml[:600]
    assert "spf=pass (client is a trusted relay, not the sender)" in dm.ar, dm.ar


def test_skip_mode_untrusted_client_enforced(mx, gw):
    g = gw(zone(P_REJECT), hybrid("skip", relays="10.0.0.0/8, 192.0.2.99"))
    assert_rejected(g.send(message()))
    g.assert_nothing_delivered()


@pytest.mark.skipif(dkim is None, reason="dkimpy missing")
def test_skip_mode_dkim_pass_still_passes(mx, gw):
    pem, rec = dkim_key()
    g = gw(zone(P_REJECT, {"k._domainkey.sender.test": txt(rec)}), hybrid("skip"))
    msg = message(subject="via relay")
    sig = dkim.sign(msg, b"k", b"sender.test", pem,
                    include_headers=[b"from", b"to", b"subject", b"date"])
    _, dm = g.deliver(sig + msg)
    dm.check("pass", action="none", p="reject")


def test_not_primary_mx_never_enforces(mx, gw):
    g = gw(zone(P_REJECT), {"hybrid": {"primary_mx": "no"}})
    _, dm = g.deliver(message())
    dm.check("fail", action="skip", p="reject")


@pytest.mark.parametrize("origin", ["192.0.2.1", "IPv6:2001:db8::25"], ids=["v4", "v6"])
def test_recover_authorised_origin_passes(mx, gw, origin):
    spf = txt("v=spf1 ip4:192.0.2.1 ip6:2001:db8::/32 -all") + a_rec()
    g = gw(zone(P_REJECT, {"sender.test": spf}), hybrid("recover"))
    _, dm = g.deliver(message(headers=[received(origin)]))
    ar = dm.ar
    assert "spf=pass" in ar, ar
    dm.check("pass", action="none", p="reject")


def test_recover_unauthorised_origin_rejected(mx, gw):
    g = gw(zone(P_REJECT), hybrid("recover"))
    assert_rejected(g.send(message(headers=[received("198.51.100.7")])))
    g.assert_nothing_delivered()


@pytest.mark.parametrize("origin,passes", [("192.0.2.1", True), ("198.51.100.7", False)])
def test_recover_through_two_trusted_hops(mx, gw, origin, passes):
    """relay1 (127.0.0.1, connects to us) got it from relay2 (10.0.0.5,
    trusted too), which got it from the origin."""
    hops = [received("10.0.0.5", helo="relay2.example.test", by="relay1.example.test"),
            received(origin, by="relay2.example.test")]
    g = gw(zone(P_REJECT), hybrid("recover", relays="127.0.0.1, 10.0.0.0/24"))
    if not passes:
        assert_rejected(g.send(message(headers=hops)))
        return
    _, dm = g.deliver(message(headers=hops))
    dm.check("pass", action="none")


FALLBACK = {
    "no-received": [],
    "no-from-clause": ["Received: by relay.example.test (Postfix, from userid 0)"
                       "\r\n\tid ABC; Tue, 1 Dec 2026 10:00:00 +0000"],
    "bad-address": ["Received: from mail.sender.test (mail.sender.test [999.1.2.3])"
                    "\r\n\tby relay.example.test; Tue, 1 Dec 2026 10:00:00 +0000"],
}


@pytest.mark.parametrize("case", sorted(FALLBACK))
def test_recover_unreadable_falls_back_to_skip(mx, gw, case):
    g = gw(zone(P_REJECT), hybrid("recover"))
    _, dm = g.deliver(message(headers=FALLBACK[case]))
    assert dm.result == "fail", dm.ar
    assert dm.action == "skip" or "skip" in dm.comment.lower(), \
        "the header should say recovery fell back to skip: %r" % dm.ar


def test_recover_untrusted_client_uses_connection(mx, gw):
    """A client that is not a trusted relay: its Received fields are not
    believed (a forged one naming an authorised IP must not help)."""
    g = gw(zone(P_REJECT), hybrid("recover", relays="10.0.0.0/8"))
    assert_rejected(g.send(message(headers=[received("192.0.2.1")])))
