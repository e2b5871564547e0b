/*
 * Tests for policy/received.c (the original client behind trusted
 * relays) and lib/cidr.c (the trusted relay lists it matches against).
 * The Received fields are modelled on what Postfix, Exim, Exchange
 * 2016/2019/Online, sendmail and mxgate itself write.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/cidr.h"
#include "policy/received.h"

/* ---- lib/cidr ---- */

static void
test_cidr_parse(void **state)
{
	static const struct {
		const char *in;
		int family, bits;
		unsigned char addr[16];
	} good[] = {
		{ "192.0.2.0/24", AF_INET, 24, { 192, 0, 2, 0 } },
		{ "10.1.2.3/8", AF_INET, 8, { 10, 0, 0, 0 } },	/* host bits */
		{ "192.0.2.255/25", AF_INET, 25, { 192, 0, 2, 128 } },
		{ "192.0.2.1", AF_INET, 32, { 192, 0, 2, 1 } },
		{ " \t10.0.0.0/8 \r\n", AF_INET, 8, { 10 } },
		{ "0.0.0.0/0", AF_INET, 0, { 0 } },
		{ "1.2.3.4/0", AF_INET, 0, { 0 } },
		{ "2001:db8::/32", AF_INET6, 32, { 0x20, 0x01, 0x0d, 0xb8 } },
		{ "2001:db8:ffff::1/33", AF_INET6, 33, { 0x20, 0x01, 0x0d, 0xb8, 0x80 } },
		{ "::1", AF_INET6, 128, { [15] = 1 } },
		{ "::/0", AF_INET6, 0, { 0 } },
		{ "::ffff:10.0.0.0/104", AF_INET6, 104,
		  { [10] = 0xff, [11] = 0xff, [12] = 10 } },
		{ "192.0.2.1/032", AF_INET, 32, { 192, 0, 2, 1 } },
	};
	static const char *bad[] = {
		"10.0.0.0/33", "10.0.0.0/", "/8", "1.2.3", "::1/129",
		"10.0.0.0/8x", "", "   ", "10.0.0.0/-1", "10.0.0.0/+8",
		"10.0.0.0/0008", "10.0.0.0 /8", "10.0.0.0/ 8", "fe80::1%eth0",
		"10.0.0.0/8/8", "1.2.3.4.5", "garbage", "[::1]", "256.0.0.0",
		"2001:db8::/1280", "10.0.0.0/8 x", "0x0a.0.0.0/8",
		"2001:db8:::1",
	};
	struct cidr c;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		memset(&c, 0x55, sizeof(c));
		if (cidr_parse(good[i].in, &c) != 0)
			fail_msg("\"%s\" refused", good[i].in);
		assert_int_equal(c.family, good[i].family);
		assert_int_equal(c.bits, good[i].bits);
		assert_memory_equal(c.addr, good[i].addr,
		    good[i].family == AF_INET ? 4 : 16);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cidr_parse(bad[i], &c) != -1)
			fail_msg("\"%s\" accepted", bad[i]);
	assert_int_equal(cidr_parse(NULL, &c), -1);
}

static void
test_cidr_match(void **state)
{
	static const char *entries[] = {
		"10.0.0.0/8", "192.0.2.1", "192.0.2.128/25", "2001:db8::/32",
		"::ffff:198.51.100.0/120",
	};
	static const char *in[] = {
		"10.255.0.1", "10.0.0.0", "192.0.2.1", "192.0.2.200",
		"192.0.2.128", "::ffff:10.1.2.3", "::FFFF:192.0.2.1",
		"2001:db8:1::5", "2001:DB8::", " 192.0.2.1 ",
		"198.51.100.77", "::ffff:198.51.100.1",
	};
	static const char *out[] = {
		"192.0.2.2", "192.0.2.127", "11.0.0.1", "9.255.255.255",
		"2001:db9::1", "::ffff:192.0.2.2", "::10.0.0.1", "junk", "",
		"10.0.0.0/8", "10.0.0.1/32", "::1", "198.51.101.1",
		"fe80::1%lo", "10.0.0.1x",
	};
	struct cidr_list l = { 0 };
	size_t i;

	assert_int_equal(cidr_list_match(&l, "10.0.0.1"), 0);
	for (i = 0; i < sizeof(entries) / sizeof(entries[0]); i++)
		assert_int_equal(cidr_list_add(&l, entries[i]), 0);
	assert_int_equal(cidr_list_add(&l, "10.0.0.0/33"), -1);
	assert_int_equal(l.n, sizeof(entries) / sizeof(entries[0]));
	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		if (!cidr_list_match(&l, in[i]))
			fail_msg("%s should match", in[i]);
	for (i = 0; i < sizeof(out) / sizeof(out[0]); i++)
		if (cidr_list_match(&l, out[i]))
			fail_msg("%s should not match", out[i]);
	assert_int_equal(cidr_list_match(&l, NULL), 0);
	assert_int_equal(cidr_list_match(NULL, "10.0.0.1"), 0);
	cidr_list_free(&l);
	assert_null(l.v);
	assert_int_equal(l.n, 0);
	cidr_list_free(&l);

	/* /0 is everything of its family, and only of its family */
	assert_int_equal(cidr_list_add(&l, "0.0.0.0/0"), 0);
	assert_int_equal(cidr_list_match(&l, "203.0.113.9"), 1);
	assert_int_equal(cidr_list_match(&l, "::ffff:203.0.113.9"), 1);
	assert_int_equal(cidr_list_match(&l, "2001:db8::1"), 0);
	cidr_list_free(&l);
	assert_int_equal(cidr_list_add(&l, "::ffff:0:0/96"), 0);
	assert_int_equal(cidr_list_match(&l, "203.0.113.9"), 1);
	assert_int_equal(cidr_list_match(&l, "2001:db8::1"), 0);
	cidr_list_free(&l);
}

/* ---- received_parse_from ---- */

struct rcase {
	const char *name;
	const char *in;
	const char *ip;		/* NULL: -1 expected */
	const char *helo;
};

static const struct rcase rcases[] = {
	/* Postfix */
	{ "postfix", "from mail.example.org (mail.example.org [192.0.2.1])\r\n"
	  "\tby mx.example.com (Postfix) with ESMTP id 4ABCD1234\r\n"
	  "\tfor <user@example.com>; Mon,  1 Jan 2024 10:00:00 +0000 (UTC)",
	  "192.0.2.1", "mail.example.org" },
	{ "postfix unknown", " from helo.example (unknown [198.51.100.7])\r\n"
	  "\tby mx.example.com (Postfix) with SMTP id 4T0abc5xyz;"
	  " Mon,  1 Jan 2024 10:00:00 +0000 (UTC)",
	  "198.51.100.7", "helo.example" },
	{ "postfix tls", "from mail.example.org (mail.example.org [192.0.2.1])\r\n"
	  "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\r\n"
	  "\t key-exchange X25519 server-signature RSA-PSS (2048 bits)"
	  " server-digest SHA256)\r\n"
	  "\t(No client certificate requested)\r\n"
	  "\tby mx.example.com (Postfix) with ESMTPS id 4T0abc5xyz\r\n"
	  "\tfor <user@example.com>; Tue,  2 Jan 2024 08:15:02 +0100 (CET)",
	  "192.0.2.1", "mail.example.org" },
	{ "postfix ipv6", "from mail.example.org (mail.example.org"
	  " [IPv6:2001:DB8:0::25])\r\n\tby mx.example.com (Postfix) with ESMTPS"
	  " id 4T0abc5xyz; Tue,  2 Jan 2024 08:15:02 +0100 (CET)",
	  "2001:db8::25", "mail.example.org" },
	{ "postfix submission", "from [192.168.1.20] (unknown [203.0.113.50])\r\n"
	  "\t(Authenticated sender: user@example.com)\r\n"
	  "\tby smtp.example.com (Postfix) with ESMTPSA id 1A2B3C\r\n"
	  "\tfor <a@example.net>; Tue,  2 Jan 2024 08:15:02 +0100 (CET)",
	  "203.0.113.50", "[192.168.1.20]" },
	/* Exim: the word is the verified name or [ip]; HELO in helo= */
	{ "exim", "from mail.example.org ([192.0.2.1] helo=smtp.example.org)\r\n"
	  "\tby mx.example.com with esmtps  (TLS1.3) tls TLS_AES_256_GCM_SHA384\r\n"
	  "\t(Exim 4.96)\r\n\t(envelope-from <a@example.org>)\r\n"
	  "\tid 1rKxyz-0001ab-2c\r\n\tfor user@example.com;"
	  " Mon, 01 Jan 2024 10:00:00 +0000",
	  "192.0.2.1", "smtp.example.org" },
	{ "exim no rdns", "from [192.0.2.1] (helo=smtp.example.org)\r\n"
	  "\tby mx.example.com with esmtp (Exim 4.94.2)\r\n"
	  "\t(envelope-from <a@example.org>)\r\n\tid 1rK5a0-0001AB-Cd\r\n"
	  "\tfor user@example.com; Mon, 01 Jan 2024 10:00:00 +0000",
	  "192.0.2.1", "smtp.example.org" },
	{ "exim port", "from [192.0.2.1] (port=54321 helo=smtp.example.org)"
	  " by mx.example.com with esmtp (Exim 4.96) id 1r-0001-AB;"
	  " Mon, 01 Jan 2024 10:00:00 +0000",
	  "192.0.2.1", "smtp.example.org" },
	{ "exim rdns port", "from mail.example.org ([192.0.2.1]:54321"
	  " helo=smtp.example.org ident=joe) by mx.example.com with esmtp"
	  " (Exim 4.96) id 1r-0001-AB; Mon, 01 Jan 2024 10:00:00 +0000",
	  "192.0.2.1", "smtp.example.org" },
	{ "exim same helo", "from mail.example.org ([192.0.2.1])\r\n"
	  "\tby mx.example.com with esmtp (Exim 4.96) id 1r-0001-AB;"
	  " Mon, 01 Jan 2024 10:00:00 +0000",
	  "192.0.2.1", "mail.example.org" },
	{ "exim ipv6", "from mail.example.org ([2001:db8::25]:40000"
	  " helo=mail.example.org) by mx.example.com with esmtps"
	  " (TLS1.2) tls TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 (Exim 4.96)"
	  " id 1r-0001-AB; Mon, 01 Jan 2024 10:00:00 +0000",
	  "2001:db8::25", "mail.example.org" },
	{ "exim helo literal", "from [192.0.2.1] (helo=[198.51.100.1])"
	  " by mx.example.com with esmtp (Exim 4.96) id 1r-0001-AB;"
	  " Mon, 01 Jan 2024 10:00:00 +0000",
	  "192.0.2.1", "[198.51.100.1]" },
	/* Exchange 2016, 2019, Online: bare addresses in the comments */
	{ "exchange 2016", "from mail.example.org (192.0.2.1) by"
	  " EXCH01.corp.example.local (10.0.0.5) with Microsoft SMTP Server\r\n"
	  " (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id\r\n"
	  " 15.1.2507.6; Mon, 1 Jan 2024 10:00:00 +0100",
	  "192.0.2.1", "mail.example.org" },
	{ "exchange 2019", "from EXCH01.corp.example.local (10.0.0.5) by\r\n"
	  " EXCH02.corp.example.local (10.0.0.6) with Microsoft SMTP Server\r\n"
	  " (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id\r\n"
	  " 15.2.1118.7; Mon, 1 Jan 2024 10:00:01 +0100",
	  "10.0.0.5", "EXCH01.corp.example.local" },
	{ "exchange frontend", "from EXCH01.corp.example.local (10.0.0.5) by"
	  " EXCH01.corp.example.local (10.0.0.5) with Microsoft SMTP Server id"
	  " 15.2.1118.7 via Frontend Transport; Mon, 1 Jan 2024 10:00:00 +0100",
	  "10.0.0.5", "EXCH01.corp.example.local" },
	{ "exchange ipv6", "from mail.example.org (2001:db8::25) by"
	  " EXCH01.corp.example.local (2001:db8:1::5) with Microsoft SMTP"
	  " Server (version=TLS1_2,\r\n"
	  " cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.2.1118.7; Mon, 1"
	  " Jan 2024 10:00:00 +0100",
	  "2001:db8::25", "mail.example.org" },
	{ "exchange online", "from BN8PR12CA0001.namprd12.prod.outlook.com"
	  " (2603:10b6:408:60::14) by DM6PR12MB4339.namprd12.prod.outlook.com\r\n"
	  " (2603:10b6:5:1a0::21) with Microsoft SMTP Server (version=TLS1_2,\r\n"
	  " cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.7292.36; Mon, 26"
	  " Feb 2024 14:16:35 +0000",
	  "2603:10b6:408:60::14", "BN8PR12CA0001.namprd12.prod.outlook.com" },
	/* sendmail */
	{ "sendmail", "from mail.example.org (mail.example.org [192.0.2.1])\r\n"
	  "\tby host.example.com (8.15.2/8.15.2) with ESMTPS id 401A0B1C012345\r\n"
	  "\t(version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256 verify=NOT)\r\n"
	  "\tfor <user@example.com>; Mon, 1 Jan 2024 10:00:00 +0100",
	  "192.0.2.1", "mail.example.org" },
	{ "sendmail forged", "from helo.example (rdns.example [192.0.2.1]"
	  " (may be forged))\r\n\tby host.example.com (8.15.2/8.15.2) with ESMTP"
	  " id 401A0B1C012345; Mon, 1 Jan 2024 10:00:00 +0100",
	  "192.0.2.1", "helo.example" },
	{ "sendmail ident", "from helo.example (root@rdns.example [192.0.2.1])"
	  " by host.example.com (8.15.2/8.15.2) with SMTP id 401A0B1C012345;"
	  " Mon, 1 Jan 2024 10:00:00 +0100",
	  "192.0.2.1", "helo.example" },
	{ "sendmail auth", "from client.example.com (client.example.com"
	  " [192.0.2.1])\r\n\t(authenticated bits=0)\r\n\tby mail.example.com"
	  " (8.14.7/8.14.7) with ESMTP id 401A0B1C012345; Mon, 1 Jan 2024"
	  " 10:00:00 +0100",
	  "192.0.2.1", "client.example.com" },
	{ "sendmail ipv6", "from helo.example (rdns.example [IPv6:2001:db8::25])"
	  " by host.example.com (8.15.2/8.15.2) with ESMTP id 401A0B1C012345;"
	  " Mon, 1 Jan 2024 10:00:00 +0100",
	  "2001:db8::25", "helo.example" },
	/* mxgate (gateway/inbound.c) */
	{ "mxgate", "from mail.example.org ([192.0.2.1])\r\n"
	  "\tby mx.example.com (mxgate) with ESMTPS id 01HABCDEF\r\n"
	  "\t(version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384)\r\n"
	  "\tfor <user@example.com>; Mon, 01 Jan 2024 10:00:00 +0000",
	  "192.0.2.1", "mail.example.org" },
	{ "mxgate ipv6", "from mail.example.org ([IPv6:2001:db8::25])\r\n"
	  "\tby mx.example.com (mxgate) with ESMTP id 01HABCDEF;"
	  " Mon, 01 Jan 2024 10:00:00 +0000",
	  "2001:db8::25", "mail.example.org" },
	/* mxgate writes a HELO with spaces and "(" as "_": one word */
	{ "mxgate odd helo", "from x_[198.51.100.1]_y ([192.0.2.1])\r\n"
	  "\tby mx.example.com (mxgate) with SMTP id 01HABCDEF;"
	  " Mon, 01 Jan 2024 10:00:00 +0000",
	  "192.0.2.1", "x_[198.51.100.1]_y" },
	{ "mapped", "from h ([IPv6:::ffff:192.0.2.1]) by mx (mxgate) with SMTP"
	  " id X; Mon, 01 Jan 2024 10:00:00 +0000", "192.0.2.1", "h" },
	{ "no helo", "from (rdns.example [192.0.2.1]) by mx; Mon, 01 Jan 2024",
	  "192.0.2.1", "" },
	{ "upper case", "FROM h (R [192.0.2.1]) BY mx; Mon, 01 Jan 2024",
	  "192.0.2.1", "h" },
	{ "quoted pair", "from h (r\\)x [192.0.2.1]) by mx; Mon, 01 Jan 2024",
	  "192.0.2.1", "h" },

	/* no from clause */
	{ "empty", "", NULL, NULL },
	{ "garbage", "hello world", NULL, NULL },
	{ "no from", "by mx.example.com (Postfix) id 4ABC;"
	  " Mon, 1 Jan 2024 10:00:00 +0000", NULL, NULL },
	{ "pickup", "by mail.example.com (Postfix, from userid 1000)\r\n"
	  "\tid 4ABC; Mon, 1 Jan 2024 10:00:00 +0000", NULL, NULL },
	{ "qmail", "(qmail 1234 invoked from network); 1 Jan 2024 10:00:00 -0000",
	  NULL, NULL },
	{ "fromx", "fromx h (r [192.0.2.1]) by mx; d", NULL, NULL },
	/* no address, or one that does not parse */
	{ "no address", "from mail.example.org by mx.example.com; d", NULL, NULL },
	{ "no address 2", "from mail.example.org (mail.example.org)"
	  " by mx.example.com; d", NULL, NULL },
	{ "bad v4", "from x (rdns [192.0.2.300]) by mx; d", NULL, NULL },
	{ "bad v6", "from x (rdns [IPv6:192.0.2.1]) by mx; d", NULL, NULL },
	{ "bad literal", "from x (rdns [192.0.2.1) by mx; d", NULL, NULL },
	{ "bad port", "from x (rdns [192.0.2.1]:port) by mx; d", NULL, NULL },
	{ "bad word", "from [999.1.1.1] (helo=x) by mx; d", NULL, NULL },
	{ "bare not alone", "from x (rdns 192.0.2.1) by mx; d", NULL, NULL },
	/* structure */
	{ "unbalanced", "from x (rdns [192.0.2.1] by mx; d", NULL, NULL },
	{ "stray paren", "from x) (rdns [192.0.2.1]) by mx; d", NULL, NULL },
	{ "no semicolon", "from x (rdns [192.0.2.1]) by mx", NULL, NULL },
	{ "two semicolons", "from x (rdns [192.0.2.1]) by mx; a; d", NULL, NULL },
	{ "no by", "from x (rdns [192.0.2.1]); d", NULL, NULL },
	{ "two by", "from x (rdns [192.0.2.1]) by mx by my; d", NULL, NULL },
	{ "two from", "from x (rdns [192.0.2.1]) by mx from y; d", NULL, NULL },
	{ "junk before by", "from x y (rdns [192.0.2.1]) by mx; d", NULL, NULL },
	{ "two addresses", "from x (a [192.0.2.1] [192.0.2.2]) by mx; d",
	  NULL, NULL },
	{ "two helo", "from [192.0.2.1] (helo=a helo=b) by mx; d", NULL, NULL },
	{ "literal in by", "from x (r [192.0.2.1]) by mx ([10.0.0.1]); d",
	  NULL, NULL },
	{ "nul", "from x (r [192.0.2.1]) by mx\0; d", NULL, NULL },
	{ "bare cr", "from x (r [192.0.2.1])\r by mx; d", NULL, NULL },
	{ "bare lf", "from x (r [192.0.2.1])\n by mx; d", NULL, NULL },
	{ "crlf no wsp", "from x (r [192.0.2.1])\r\nby mx; d", NULL, NULL },
	{ "cr in helo", "from x\ry (r [192.0.2.1]) by mx; d", NULL, NULL },
	/* a HELO that cannot be one is left out; the address stands */
	{ "ctl in helo", "from x\x01y (r [192.0.2.1]) by mx; d", "192.0.2.1", "" },
	{ "quoted helo", "from [192.0.2.1] (helo=a\\)b) by mx; d", "192.0.2.1",
	  "" },
	{ "utf8 helo", "from b\xc3\xbc.example ([192.0.2.1]) by mx; d",
	  "192.0.2.1", "b\xc3\xbc.example" },
	/*
	 * A HELO with spaces, written verbatim by the relay (Postfix joins
	 * "HELO a b" into "a b"), tries to plant an address in front of the
	 * one the relay saw (203.0.113.9). Every variant must fail.
	 */
	{ "inject comment", "from x (fake [198.51.100.7]) (rdns [203.0.113.9])"
	  " by relay (Postfix) with ESMTP id X; d", NULL, NULL },
	{ "inject bare", "from x (198.51.100.7) (rdns [203.0.113.9])"
	  " by relay (Postfix) with ESMTP id X; d", NULL, NULL },
	{ "inject by", "from x (fake [198.51.100.7]) by r (rdns [203.0.113.9])"
	  " by relay (Postfix) with ESMTP id X; d", NULL, NULL },
	{ "inject semicolon", "from x (fake [198.51.100.7]) by r; (rdns"
	  " [203.0.113.9]) by relay (Postfix) with ESMTP id X; d", NULL, NULL },
	{ "inject open paren", "from x (fake [198.51.100.7]) by r ( (rdns"
	  " [203.0.113.9]) by relay (Postfix) with ESMTP id X; d", NULL, NULL },
	{ "inject closed by rcpt", "from x (fake [198.51.100.7]) by r ( (rdns"
	  " [203.0.113.9]) by relay (Postfix) with ESMTP id X\r\n"
	  "\tfor <\")\"@victim.example>; d", NULL, NULL },
	{ "inject swallow", "from x (fake [198.51.100.7] (rdns [203.0.113.9])"
	  " by relay (Postfix) with ESMTP id X for <\")\"@victim.example>; d",
	  NULL, NULL },
};

static void
check_rcase(const struct rcase *c, size_t len)
{
	struct received_from r;
	int rc;

	memset(&r, 0x55, sizeof(r));
	rc = received_parse_from(c->in, len, &r);
	if (c->ip == NULL) {
		if (rc != -1)
			fail_msg("%s: accepted (ip %s)", c->name, r.ip);
		assert_string_equal(r.ip, "");
		assert_string_equal(r.helo, "");
		return;
	}
	if (rc != 0)
		fail_msg("%s: refused", c->name);
	assert_string_equal(r.ip, c->ip);
	assert_string_equal(r.helo, c->helo);
}

static void
test_parse_from(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(rcases) / sizeof(rcases[0]); i++) {
		const char *in = rcases[i].in;
		/* "nul" has a NUL inside: its length goes to the end "d" */
		size_t len = strlen(in);

		if (strcmp(rcases[i].name, "nul") == 0)
			len += 1 + strlen(in + len + 1);
		check_rcase(&rcases[i], len);
	}
	/* len bounds the value: the ";" past it is not seen */
	{
		struct received_from r;
		const char *v = "from h (r [192.0.2.1]) by mx; d";

		assert_int_equal(received_parse_from(v, strlen(v), &r), 0);
		assert_int_equal(received_parse_from(v, 26, &r), -1);
		assert_int_equal(received_parse_from(NULL, 0, &r), -1);
	}
}

static char *
make_field(const char *head, char fill, size_t n, const char *tail)
{
	size_t hl = strlen(head), tl = strlen(tail);
	char *p = malloc(hl + n + tl + 1);

	assert_non_null(p);
	memcpy(p, head, hl);
	memset(p + hl, fill, n);
	memcpy(p + hl + n, tail, tl + 1);
	return p;
}

static void
test_parse_oversize(void **state)
{
	struct received_from r;
	char *p;

	/* a HELO of 255 octets fits, 256 does not (and is left out) */
	p = make_field("from ", 'h', 255, " (r [192.0.2.1]) by mx; d");
	assert_int_equal(received_parse_from(p, strlen(p), &r), 0);
	assert_int_equal(strlen(r.helo), 255);
	free(p);
	p = make_field("from ", 'h', 256, " (r [192.0.2.1]) by mx; d");
	assert_int_equal(received_parse_from(p, strlen(p), &r), 0);
	assert_string_equal(r.ip, "192.0.2.1");
	assert_string_equal(r.helo, "");
	free(p);
	/* 100 KB: a huge HELO, a huge second comment, deep nesting */
	p = make_field("from ", 'h', 100 * 1024, " (r [192.0.2.1]) by mx; d");
	assert_int_equal(received_parse_from(p, strlen(p), &r), 0);
	assert_string_equal(r.helo, "");
	free(p);
	p = make_field("from h (r [192.0.2.1]) (", 'c', 100 * 1024,
	    ") by mx; d");
	assert_int_equal(received_parse_from(p, strlen(p), &r), 0);
	assert_string_equal(r.ip, "192.0.2.1");
	free(p);
	p = make_field("from h (r [192.0.2.1] ", '(', 100 * 1024, "");
	assert_int_equal(received_parse_from(p, strlen(p), &r), -1);
	free(p);
	p = make_field("from h (r [192.0.2.1]) by mx; ", ';', 100 * 1024, "");
	assert_int_equal(received_parse_from(p, strlen(p), &r), -1);
	free(p);
	p = make_field("from h (r [", '1', 100 * 1024, "]) by mx; d");
	assert_int_equal(received_parse_from(p, strlen(p), &r), -1);
	free(p);
}

/* ---- received_recover ---- */

/* The fields of a message, top (newest) first. */
#define F_EXCH_INT	"from EXCH01.corp.example.local (10.0.0.5) by\r\n" \
	" EXCH02.corp.example.local (10.0.0.6) with Microsoft SMTP Server\r\n" \
	" (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id\r\n" \
	" 15.2.1118.7; Mon, 1 Jan 2024 10:00:01 +0100"
#define F_EXCH_EDGE	"from mx1.example.com (192.0.2.10) by\r\n" \
	" EXCH01.corp.example.local (10.0.0.5) with Microsoft SMTP Server\r\n" \
	" (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id\r\n" \
	" 15.2.1118.7; Mon, 1 Jan 2024 10:00:00 +0100"
#define F_MX_POSTFIX	"from mail.sender.example (mail.sender.example" \
	" [198.51.100.20])\r\n\tby mx1.example.com (Postfix) with ESMTPS id" \
	" 4T0abc5xyz\r\n\tfor <user@example.com>; Mon,  1 Jan 2024 09:59:59" \
	" +0100 (CET)"
#define F_V6_RELAY	"from relay6.example.com ([IPv6:2001:db8:ffff::7])\r\n" \
	"\tby EXCH02.corp.example.local (mxgate) with ESMTP id 01HX;" \
	" Mon, 1 Jan 2024 10:00:02 +0100"
#define F_MAPPED	"from h ([IPv6:::ffff:10.0.0.9]) by mx (mxgate) with" \
	" SMTP id X; Mon, 1 Jan 2024 10:00:02 +0100"
#define F_FORGED	"from forged.example ([10.0.0.1]) by EXCH01 (10.0.0.5)" \
	" with Microsoft SMTP Server id 15.2.1118.7; Mon, 1 Jan 2024 09:00:00" \
	" +0100"
#define F_GARBAGE	"from somewhere over the rainbow"
#define F_SUBMIT	"from [192.168.1.20] (unknown [2001:db8:1::99])\r\n" \
	"\t(Authenticated sender: user@example.com)\r\n" \
	"\tby smtp.example.com (Postfix) with ESMTPSA id 1A2B3C;" \
	" Tue,  2 Jan 2024 08:15:02 +0100 (CET)"

struct chain {
	const char *name;
	const char *fields[16];
	const char *ip;		/* NULL: -1 expected, with why */
	const char *helo_or_why;
};

static const struct chain chains[] = {
	/* one trusted relay (the MX before us) saw the original client */
	{ "1 hop", { F_MX_POSTFIX }, "198.51.100.20", "mail.sender.example" },
	/* stop at the first untrusted client: what is below it is the
	 * sender's own text and may be forged */
	{ "stop at client", { F_MX_POSTFIX, F_FORGED, F_GARBAGE },
	  "198.51.100.20", "mail.sender.example" },
	/* Exchange edge written by EXCH01 about our trusted MX 192.0.2.10 */
	{ "2 hops", { F_EXCH_EDGE, F_MX_POSTFIX }, "198.51.100.20",
	  "mail.sender.example" },
	{ "3 hops", { F_EXCH_INT, F_EXCH_EDGE, F_MX_POSTFIX }, "198.51.100.20",
	  "mail.sender.example" },
	{ "4 hops ipv6", { F_V6_RELAY, F_EXCH_INT, F_EXCH_EDGE, F_MX_POSTFIX },
	  "198.51.100.20", "mail.sender.example" },
	/* an IPv4-mapped trusted relay matches its IPv4 entry */
	{ "mapped", { F_MAPPED, F_EXCH_EDGE, F_MX_POSTFIX }, "198.51.100.20",
	  "mail.sender.example" },
	/* an internal client submitting over IPv6 */
	{ "ipv6 client", { F_SUBMIT }, "2001:db8:1::99", NULL },
	/* failures */
	{ "zero fields", { NULL }, NULL, "no Received field from a trusted relay" },
	{ "all trusted", { F_EXCH_INT, F_EXCH_EDGE }, NULL,
	  "every hop is a trusted relay" },
	{ "garbage first", { F_GARBAGE, F_MX_POSTFIX }, NULL,
	  "unparseable Received field 1" },
	{ "garbage second", { F_EXCH_INT, F_GARBAGE, F_MX_POSTFIX }, NULL,
	  "unparseable Received field 2" },
	{ "twelfth", { F_EXCH_INT, F_EXCH_INT, F_EXCH_INT, F_EXCH_INT,
	  F_EXCH_INT, F_EXCH_INT, F_EXCH_INT, F_EXCH_INT, F_EXCH_INT,
	  F_EXCH_INT, F_EXCH_INT, F_GARBAGE }, NULL,
	  "unparseable Received field after the 10th" },
};

static void
trusted_list(struct cidr_list *l)
{
	memset(l, 0, sizeof(*l));
	/* internal Exchange, the MX in front of it, an IPv6 relay net */
	assert_int_equal(cidr_list_add(l, "10.0.0.0/8"), 0);
	assert_int_equal(cidr_list_add(l, "192.0.2.10"), 0);
	assert_int_equal(cidr_list_add(l, "2001:db8:ffff::/120"), 0);
}

static void
test_recover(void **state)
{
	struct cidr_list l;
	struct received_from r;
	const char *why;
	size_t i, n, lens[16];
	int rc;

	trusted_list(&l);
	for (i = 0; i < sizeof(chains) / sizeof(chains[0]); i++) {
		const struct chain *c = &chains[i];

		for (n = 0; n < 16 && c->fields[n] != NULL; n++)
			lens[n] = strlen(c->fields[n]);
		why = "unset";
		rc = received_recover(c->fields, lens, n, &l, &r, &why);
		if (c->ip != NULL) {
			if (rc != 0)
				fail_msg("%s: failed: %s", c->name, why);
			assert_string_equal(r.ip, c->ip);
			if (c->helo_or_why != NULL)
				assert_string_equal(r.helo, c->helo_or_why);
		} else {
			if (rc != -1)
				fail_msg("%s: recovered %s", c->name, r.ip);
			assert_string_equal(why, c->helo_or_why);
			assert_string_equal(r.ip, "");
		}
	}
	cidr_list_free(&l);
}

static void
test_recover_trusted_sets(void **state)
{
	static const char *f[] = { F_EXCH_INT, F_EXCH_EDGE, F_MX_POSTFIX };
	size_t lens[3] = { strlen(f[0]), strlen(f[1]), strlen(f[2]) };
	struct cidr_list l = { 0 };
	struct received_from r;
	const char *why;

	/* nothing trusted: the top field's client (an Exchange server) */
	assert_int_equal(received_recover(f, lens, 3, &l, &r, &why), 0);
	assert_string_equal(r.ip, "10.0.0.5");
	assert_int_equal(received_recover(f, lens, 3, NULL, &r, &why), 0);
	assert_string_equal(r.ip, "10.0.0.5");
	/* only the internal net: the edge's client, our MX */
	assert_int_equal(cidr_list_add(&l, "10.0.0.0/8"), 0);
	assert_int_equal(received_recover(f, lens, 3, &l, &r, &why), 0);
	assert_string_equal(r.ip, "192.0.2.10");
	assert_string_equal(r.helo, "mx1.example.com");
	/* trusting the sender too runs off the end */
	assert_int_equal(cidr_list_add(&l, "192.0.2.0/24"), 0);
	assert_int_equal(cidr_list_add(&l, "198.51.100.0/24"), 0);
	assert_int_equal(received_recover(f, lens, 3, &l, &r, &why), -1);
	assert_string_equal(why, "every hop is a trusted relay");
	cidr_list_free(&l);

	/* a NUL inside a field (lens counts it) */
	{
		static const char v[] = "from h (r [198.51.100.1]) by mx\0; d";
		const char *vv[] = { v };
		size_t vl[] = { sizeof(v) - 1 };

		assert_int_equal(received_recover(vv, vl, 1, NULL, &r, &why), -1);
		assert_string_equal(why, "unparseable Received field 1");
		vl[0] = 28;	/* up to "by m": no ";" */
		assert_int_equal(received_recover(vv, vl, 1, NULL, &r, &why), -1);
	}
	/* why_r may be NULL; zero fields with NULL arrays */
	assert_int_equal(received_recover(NULL, NULL, 0, NULL, &r, NULL), -1);
	assert_int_equal(received_recover(f, lens, 1, NULL, &r, NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_cidr_match),
		cmocka_unit_test(test_parse_from),
		cmocka_unit_test(test_parse_oversize),
		cmocka_unit_test(test_recover),
		cmocka_unit_test(test_recover_trusted_sets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
