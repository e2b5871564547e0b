/*
 * `mxgate dns records DOMAIN [-c FILE]`: what DOMAIN should publish for
 * mxgate to be its MX and its outbound relay, as zone-file lines with a
 * comment above each: MX, SPF, the DKIM key records of [dkim sign DOMAIN]
 * (the public halves of the configured keys), DMARC, and, when [report]
 * email is in another organizational domain, the RFC 9990 4 record that
 * authorises it to receive DOMAIN's reports.
 *
 * `mxgate dns check DOMAIN [-c FILE] [--dns HOST:PORT]`: what DOMAIN
 * publishes, fetched on the command's own event loop through lib/dns
 * ([dns] servers, or --dns), judged one finding a line ("ok: ...",
 * "warning: ...", "error: ..."), MX, SPF, DKIM and DMARC in that order,
 * then "N errors, N warnings". A DNS failure (timeout, SERVFAIL, a broken
 * answer) is an error naming the query, never taken for an absent record.
 * Questions are asked one at a time: a person waits, not a queue. The
 * findings agree with what mxgate itself does: DMARC policy discovery by
 * auth/dmarc (a subdomain without a record is judged by the record that
 * applies to it), the RFC 9990 4 authorisation as report/send.c reads
 * it, DKIM keys read as the verifier reads them; SPF is in dnscmd_spf.c.
 *
 * Exit status: 0 no errors, 1 errors (or the command could not run),
 * 2 usage.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "auth/dkim.h"
#include "auth/dmarc.h"
#include "auth/orgdomain.h"
#include "gateway/dnscmd_int.h"
#include "gateway/gateway.h"
#include "lib/buf.h"
#include "lib/dns.h"
#include "report/send.h"

#define DNSCMD_CONFIG		"/etc/mxgate/mxgate.ini"

enum dnscmd_level { DNSCMD_OK, DNSCMD_WARNING, DNSCMD_ERROR };

static void
dnscmd_usage(FILE *f)
{
	fprintf(f, "usage: mxgate dns records DOMAIN [-c FILE]\n"
	    "       mxgate dns check DOMAIN [-c FILE] [--dns HOST:PORT]\n");
}

/* One finding. Published text reaches a terminal: no control octets. */
static void
dnscmd_vsay(struct dnscmd *d, enum dnscmd_level l, const char *fmt,
    va_list ap)
{
	static const char *names[] = { "ok", "warning", "error" };
	struct buf b = { 0 };
	size_t i;

	if (d->quiet)
		return;
	if (buf_vappendf(&b, fmt, ap) == -1)
		buf_free(&b);
	for (i = 0; i < b.len; i++)
		if ((unsigned char)b.data[i] < 0x20 || b.data[i] == 0x7f)
			b.data[i] = '?';
	printf("%s: %s\n", names[l], b.data ? b.data : "(out of memory)");
	buf_free(&b);
	if (l == DNSCMD_ERROR)
		d->errors++;
	else if (l == DNSCMD_WARNING)
		d->warnings++;
}

void
dnscmd_ok(struct dnscmd *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dnscmd_vsay(d, DNSCMD_OK, fmt, ap);
	va_end(ap);
}

void
dnscmd_warn(struct dnscmd *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dnscmd_vsay(d, DNSCMD_WARNING, fmt, ap);
	va_end(ap);
}

void
dnscmd_err(struct dnscmd *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dnscmd_vsay(d, DNSCMD_ERROR, fmt, ap);
	va_end(ap);
}

/* ---- DNS, one question at a time on the command's loop ---- */

struct dnscmd_wait {
	struct dns_answer *a;
	int done;
};

static void
dnscmd_answered(const struct dns_answer *a, void *arg)
{
	struct dnscmd_wait *w = arg;

	w->a = dns_answer_dup(a);
	w->done = 1;
}

/* The answer (dns_answer_free), or NULL when memory ran out. */
struct dns_answer *
dnscmd_ask(struct dnscmd *d, const char *name, enum dns_type type)
{
	struct dnscmd_wait w = { NULL, 0 };
	struct dns_query *q;

	if ((q = dns_query(d->res, name, type, dnscmd_answered, &w)) == NULL)
		return NULL;
	while (!w.done && event_base_loop(d->base, EVLOOP_ONCE) == 0)
		;
	if (!w.done)
		dns_cancel(q);
	return w.a;
}

/* A failure, not an answer: nothing can be said about what is published. */
int
dnscmd_failed(const struct dns_answer *a)
{
	return a == NULL || a->status == DNS_SERVFAIL ||
	    a->status == DNS_TIMEOUT || a->status == DNS_ERROR;
}

const char *
dnscmd_why(const struct dns_answer *a)
{
	return a == NULL ? "out of memory" : dns_status_name(a->status);
}

/* RFC 9990 4: no authorisation is needed inside one organizational
 * domain (PSL); without a list, only for the same name. */
static int
dnscmd_same_org(const struct dnscmd *d, const char *a, const char *b)
{
	char oa[256], ob[256];

	if (orgdomain_psl(d->psl, a, oa, sizeof(oa)) == 0 &&
	    orgdomain_psl(d->psl, b, ob, sizeof(ob)) == 0)
		return strcmp(oa, ob) == 0;
	return strcasecmp(a, b) == 0;
}

/* ---- MX ---- */

static int
dnscmd_is_root(const char *name)
{
	return *name == '\0' || strcmp(name, ".") == 0;
}

static int
dnscmd_same_host(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

static void
dnscmd_check_mx(struct dnscmd *d)
{
	struct dns_answer *a = dnscmd_ask(d, d->domain, DNS_T_MX);
	const char *host = d->cfg->hostname;
	struct buf list = { 0 };
	size_t i, nnull = 0;
	int us = 0;

	if (dnscmd_failed(a)) {
		dnscmd_err(d, "MX: MX query for %s failed: %s",
		    d->domain, dnscmd_why(a));
		goto out;
	}
	if (a->status == DNS_NXDOMAIN) {
		dnscmd_err(d, "MX: %s does not exist (NXDOMAIN)",
		    d->domain);
		goto out;
	}
	if (a->status == DNS_NODATA || a->n == 0) {
		dnscmd_err(d, "MX: no MX record for %s: publish "
		    "\"%s. IN MX 10 %s.\"", d->domain, d->domain, host);
		goto out;
	}
	for (i = 0; i < a->n; i++) {
		if (dnscmd_is_root(a->rr[i].text))
			nnull++;
		else if (dnscmd_same_host(a->rr[i].text, host))
			us = 1;
		buf_appendf(&list, "%s%u %s", i ? ", " : "", a->rr[i].pref,
		    dnscmd_is_root(a->rr[i].text) ? "." : a->rr[i].text);
	}
	if (nnull > 0 && a->n > 1) {
		/* RFC 7505 3: a null MX stands alone */
		dnscmd_err(d, "MX: a null MX among other MX records "
		    "(%s): RFC 7505 3 says a null MX stands alone", list.data);
	} else if (nnull > 0) {
		if (d->accepted)
			dnscmd_err(d, "MX: %s publishes a null MX (RFC "
			    "7505): it receives no mail, yet [domains] "
			    "accept lists it", d->domain);
		else
			dnscmd_ok(d, "MX: null MX (RFC 7505): %s "
			    "receives no mail", d->domain);
	} else if (us) {
		dnscmd_ok(d, "MX: %s", list.data);
	} else if (d->accepted) {
		dnscmd_warn(d, "MX: %s is not among the MX hosts (%s): "
		    "mxgate is not the MX; for hybrid set-ups see [hybrid]",
		    host, list.data);
	} else {
		dnscmd_ok(d, "MX: %s (not in [domains] accept: "
		    "mxgate is not its MX)", list.data);
	}
out:
	buf_free(&list);
	dns_answer_free(a);
}

/* ---- DKIM ---- */

/*
 * RFC 6376 3.2 tag-list: the value of tag name in txt, white space
 * around it trimmed (*v_r, *n_r). 1 found, 0 not.
 */
static int
dnscmd_tag(const char *txt, const char *name, const char **v_r, size_t *n_r)
{
	const char *p = txt, *semi, *eq, *k, *ke, *v, *ve;

	for (; *p != '\0'; p = *semi ? semi + 1 : semi) {
		semi = p + strcspn(p, ";");
		if ((eq = memchr(p, '=', (size_t)(semi - p))) == NULL)
			continue;
		for (k = p; k < eq && strchr(" \t\r\n", *k); k++)
			;
		for (ke = eq; ke > k && strchr(" \t\r\n", ke[-1]); ke--)
			;
		if ((size_t)(ke - k) != strlen(name) ||
		    strncmp(k, name, (size_t)(ke - k)) != 0)
			continue;
		for (v = eq + 1; v < semi && strchr(" \t\r\n", *v); v++)
			;
		for (ve = semi; ve > v && strchr(" \t\r\n", ve[-1]); ve--)
			;
		*v_r = v;
		*n_r = (size_t)(ve - v);
		return 1;
	}
	return 0;
}

static int
dnscmd_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* RFC 6376 3.6.1 p=: base64 with folding white space, decoded into a
 * new buffer of *n_r octets; NULL when it is no base64. */
static unsigned char *
dnscmd_b64(const char *s, size_t n, size_t *n_r)
{
	unsigned char *t, *out = NULL;
	size_t i, m = 0, pad = 0;
	int len;

	if (n > 65536 || (t = malloc(n + 1)) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (!dnscmd_fws(s[i]))
			t[m++] = (unsigned char)s[i];
	if (m == 0 || m % 4 != 0)
		goto out;
	while (pad < 2 && t[m - 1 - pad] == '=')
		pad++;
	if ((out = malloc(m / 4 * 3)) == NULL)
		goto out;
	if ((len = EVP_DecodeBlock(out, t, (int)m)) < 0 ||
	    (size_t)len < pad) {
		free(out);
		out = NULL;
		goto out;
	}
	*n_r = (size_t)len - pad;
out:
	free(t);
	return out;
}

/*
 * The public key p= stands for, read as verifiers read it (auth/dkim.c):
 * rsa, a SubjectPublicKeyInfo or else a bare PKCS#1 RSAPublicKey (both
 * are published); ed25519, the raw 32 octets (RFC 8463 4.2). NULL when
 * it is none of those.
 */
static EVP_PKEY *
dnscmd_pkey(const char *p, size_t n, int ed25519)
{
	const unsigned char *dp;
	unsigned char *der;
	EVP_PKEY *k = NULL;
	size_t len;

	if ((der = dnscmd_b64(p, n, &len)) == NULL)
		return NULL;
	if (ed25519) {
		if (len == 32)
			k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519,
			    NULL, der, len);
	} else {
		dp = der;
		k = d2i_PUBKEY(NULL, &dp, (long)len);
		if (k != NULL && (dp != der + len ||
		    EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA)) {
			EVP_PKEY_free(k);
			k = NULL;
		}
		if (k == NULL) {
			dp = der;
			k = d2i_PublicKey(EVP_PKEY_RSA, NULL, &dp, (long)len);
		}
	}
	ERR_clear_error();
	free(der);
	return k;
}

/* RFC 6376 3.6.1 h= and s=: a colon-separated list (white space around
 * the items); 1 when it holds want1 or want2 (any case). */
static int
dnscmd_list_has(const char *v, size_t n, const char *want1,
    const char *want2)
{
	const char *end = v + n, *p, *q, *e;

	for (p = v; p < end; p = e + 1) {
		if ((e = memchr(p, ':', (size_t)(end - p))) == NULL)
			e = end;
		for (q = e; q > p && dnscmd_fws(q[-1]); q--)
			;
		while (p < q && dnscmd_fws(*p))
			p++;
		if (((size_t)(q - p) == strlen(want1) &&
		    strncasecmp(p, want1, (size_t)(q - p)) == 0) ||
		    (want2 != NULL && (size_t)(q - p) == strlen(want2) &&
		    strncasecmp(p, want2, (size_t)(q - p)) == 0))
			return 1;
	}
	return 0;
}

/* RFC 6376 3.6.1: a key record has p=, and v=DKIM1 first if any v= */
static int
dnscmd_is_key(const char *txt)
{
	const char *v;
	size_t n;

	if (!dnscmd_tag(txt, "p", &v, &n))
		return 0;
	return !dnscmd_tag(txt, "v", &v, &n) ||
	    (n == 5 && strncmp(v, "DKIM1", 5) == 0);
}

static void
dnscmd_check_key(struct dnscmd *d, const struct config_sign_key *k)
{
	struct dns_answer *a = NULL;
	struct buf ours = { 0 };
	const char *txt = NULL, *pv, *kv, *op, *type;
	char name[600];
	size_t pn, kn, opn, i, nkeys = 0;
	EVP_PKEY *mine = NULL, *theirs = NULL;
	int ed, bad = 0;

	snprintf(name, sizeof(name), "%s._domainkey.%s", k->selector,
	    d->domain);
	if (k->key == NULL || dkim_key_record(k->key, &ours) == -1 ||
	    !dnscmd_tag(ours.data, "p", &op, &opn)) {
		dnscmd_err(d, "DKIM: %s: no public key for %s",
		    name, k->file);
		goto out;
	}
	type = strcmp(dkim_key_algorithm(k->key), "ed25519-sha256") == 0 ?
	    "ed25519" : "rsa";
	a = dnscmd_ask(d, name, DNS_T_TXT);
	if (dnscmd_failed(a)) {
		dnscmd_err(d, "DKIM: TXT query for %s failed: %s",
		    name, dnscmd_why(a));
		goto out;
	}
	for (i = 0; i < a->n; i++)
		if (dnscmd_is_key(a->rr[i].text) && nkeys++ == 0)
			txt = a->rr[i].text;
	if (txt == NULL) {
		dnscmd_err(d, "DKIM: no key record at %s (selector "
		    "%s of [dkim sign %s]): receivers cannot verify its "
		    "signatures", name, k->selector, d->domain);
		goto out;
	}
	if (nkeys > 1)
		dnscmd_warn(d, "DKIM: %zu key records at %s: "
		    "verifiers may take any one", nkeys, name);
	dnscmd_tag(txt, "p", &pv, &pn);
	if (pn == 0) {
		dnscmd_err(d, "DKIM: the key at %s is revoked "
		    "(empty p=): signatures with selector %s fail", name,
		    k->selector);
		goto out;
	}
	/* RFC 6376 3.6.1: k= defaults to rsa */
	if (!dnscmd_tag(txt, "k", &kv, &kn)) {
		kv = "rsa";
		kn = 3;
	}
	if (kn != strlen(type) || strncasecmp(kv, type, kn) != 0) {
		dnscmd_err(d, "DKIM: %s has k=%.*s but %s is an %s "
		    "key", name, (int)kn, kv, k->file, type);
		goto out;
	}
	/* RFC 6376 3.6.1: verifiers ignore a key whose h= leaves out the
	 * hash of its signatures, or whose s= is not for email */
	if (dnscmd_tag(txt, "h", &kv, &kn) &&
	    !dnscmd_list_has(kv, kn, "sha256", NULL)) {
		dnscmd_err(d, "DKIM: %s has h=%.*s, which leaves out sha256: "
		    "verifiers fail the signatures of %s (RFC 6376 3.6.1)",
		    name, kn > 60 ? 60 : (int)kn, kv, k->file);
		bad = 1;
	}
	if (dnscmd_tag(txt, "s", &kv, &kn) &&
	    !dnscmd_list_has(kv, kn, "*", "email")) {
		dnscmd_err(d, "DKIM: %s has s=%.*s, neither * nor email: the "
		    "key is not for mail, verifiers fail the signatures of %s "
		    "(RFC 6376 3.6.1)", name, kn > 60 ? 60 : (int)kn, kv,
		    k->file);
		bad = 1;
	}
	/* the key, not its text: the same RSA key may be published as a
	 * SubjectPublicKeyInfo or as an RSAPublicKey */
	ed = strcmp(type, "ed25519") == 0;
	if ((theirs = dnscmd_pkey(pv, pn, ed)) == NULL) {
		dnscmd_err(d, "DKIM: the p= at %s is no %s public key: "
		    "verifiers fail signatures with selector %s", name,
		    type, k->selector);
		goto out;
	}
	if ((mine = dnscmd_pkey(op, opn, ed)) == NULL) {
		dnscmd_err(d, "DKIM: %s: no public key for %s",
		    name, k->file);
		goto out;
	}
	if (EVP_PKEY_eq(mine, theirs) != 1) {
		dnscmd_err(d, "DKIM key mismatch at %s: the "
		    "published p= is not the public half of %s", name, k->file);
		goto out;
	}
	if (bad)
		goto out;
	dnscmd_ok(d, "DKIM: %s publishes the %s key of %s", name,
	    type, k->file);
	if (dnscmd_tag(txt, "t", &kv, &kn) && memchr(kv, 'y', kn) != NULL)
		dnscmd_warn(d, "DKIM: %s has t=y (testing): "
		    "verifiers may treat its signatures as absent", name);
out:
	EVP_PKEY_free(mine);
	EVP_PKEY_free(theirs);
	buf_free(&ours);
	dns_answer_free(a);
}

static void
dnscmd_check_dkim(struct dnscmd *d)
{
	size_t i;

	if (d->signer == NULL) {
		dnscmd_warn(d, "DKIM: no [dkim sign %s] section: "
		    "mail from %s leaves unsigned (mxgate dkim keygen makes a "
		    "key)", d->domain, d->domain);
		return;
	}
	for (i = 0; i < d->signer->nkeys; i++)
		dnscmd_check_key(d, &d->signer->keys[i]);
}

/* ---- DMARC ---- */

static int
dnscmd_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * RFC 9990 4 step 6, read as the report sender reads it (report/send.c):
 * a record starting "v=DMARC1" (the tag name in any case, as RFC 7489's
 * ABNF has it; the value as written), then ";" or the end. 1 with the
 * first rua= value in *rua_r, *n_r (NULL when none); 0 when it is none.
 */
static int
dnscmd_auth_record(const char *txt, const char **rua_r, size_t *n_r)
{
	const char *p = txt, *semi, *eq, *ke;

	*rua_r = NULL;
	*n_r = 0;
	p += strspn(p, " \t");
	if (*p != 'v' && *p != 'V')
		return 0;
	p += 1 + strspn(p + 1, " \t");
	if (*p != '=')
		return 0;
	p += 1 + strspn(p + 1, " \t");
	if (strncmp(p, "DMARC1", 6) != 0)
		return 0;
	p += 6 + strspn(p + 6, " \t");
	if (*p != ';' && *p != '\0')
		return 0;
	for (; *p != '\0'; p = semi) {
		p += *p == ';';
		p += strspn(p, " \t");
		semi = p + strcspn(p, ";");
		if ((eq = memchr(p, '=', (size_t)(semi - p))) == NULL)
			continue;
		for (ke = eq; ke > p && dnscmd_wsp(ke[-1]); ke--)
			;
		if (ke - p == 3 && strncasecmp(p, "rua", 3) == 0 &&
		    *rua_r == NULL) {
			*rua_r = eq + 1;
			*n_r = (size_t)(semi - eq - 1);
		}
	}
	return 1;
}

/*
 * RFC 9990 4: an address outside the organizational domain of dom (the
 * policy domain, whose record names it) receives its reports only if
 * its domain says so; judged as the report sender judges it.
 */
static void
dnscmd_check_rua(struct dnscmd *d, const char *dom, const char *uri,
    size_t len)
{
	struct report_rua r, over[REPORT_RUA_MAX];
	struct dns_answer *a = NULL;
	const char *rv;
	char one[512], name[600], to[320] = "", *copy = NULL;
	size_t i, j, n, rn, bad;
	int found = 0;

	while (len > 0 && dnscmd_wsp(*uri)) {
		uri++;
		len--;
	}
	while (len > 0 && dnscmd_wsp(uri[len - 1]))
		len--;
	if (len == 0)
		return;
	if (len >= sizeof(one)) {
		dnscmd_warn(d, "DMARC: rua URI %.60s... is too long",
		    uri);
		return;
	}
	memcpy(one, uri, len);
	one[len] = '\0';
	if (len < 7 || strncasecmp(one, "mailto:", 7) != 0) {
		dnscmd_warn(d, "DMARC: rua URI %s is not mailto: "
		    "(reports go by mail: RFC 9990 3)", one);
		return;
	}
	if (report_rua_parse(one, &r, 1, NULL) != 1) {
		dnscmd_warn(d, "DMARC: rua URI %s is malformed", one);
		return;
	}
	if (dnscmd_same_org(d, dom, r.host))
		return;
	if ((size_t)snprintf(name, sizeof(name), "%s._report._dmarc.%s",
	    dom, r.host) >= sizeof(name) || strlen(name) > 253) {
		dnscmd_err(d, "DMARC: rua %s: the authorising name "
		    "%s._report._dmarc.%s is too long for DNS (RFC 9990 4)",
		    r.addr, dom, r.host);
		return;
	}
	a = dnscmd_ask(d, name, DNS_T_TXT);
	if (dnscmd_failed(a)) {
		dnscmd_err(d, "DMARC: TXT query for %s failed: %s",
		    name, dnscmd_why(a));
		goto out;
	}
	/* the first record that authorises decides, as for the sender */
	for (i = 0; i < a->n && !found; i++) {
		if (!dnscmd_auth_record(a->rr[i].text, &rv, &rn))
			continue;
		found = 1;
		if (rv == NULL)
			continue;
		if ((copy = strndup(rv, rn)) == NULL) {
			dnscmd_err(d, "DMARC: out of memory");
			goto out;
		}
		/* a URI whose host cannot be checked: neither is used */
		n = report_rua_parse(copy, over, REPORT_RUA_MAX, &bad);
		if (bad > 0) {
			dnscmd_err(d, "DMARC: rua %s: the authorising record "
			    "at %s has a rua= URI that is not mailto: or is "
			    "malformed (rua=%.*s%s): neither is used (RFC 9990 "
			    "4)", r.addr, name, DNSCMD_CLIP(copy), copy,
			    DNSCMD_MORE(copy));
			goto out;
		}
		/* RFC 9990 4: an override must stay on that host */
		for (j = 0; j < n; j++)
			if (strcmp(over[j].host, r.host) != 0) {
				dnscmd_err(d, "DMARC: rua %s: the authorising "
				    "record at %s names another host (%s): "
				    "neither is used (RFC 9990 4)", r.addr,
				    name, over[j].host);
				goto out;
			}
		if (n > 0)
			snprintf(to, sizeof(to), "%s", over[0].addr);
	}
	if (!found)
		dnscmd_err(d, "DMARC: rua %s is outside %s and not "
		    "authorised: no v=DMARC1 record at %s (RFC 9990 4), so "
		    "receivers send it no reports", r.addr, dom, name);
	else if (*to != '\0' && strcasecmp(to, r.addr) != 0)
		dnscmd_ok(d, "DMARC: rua %s is outside %s and "
		    "authorised by %s, which has the reports sent to %s",
		    r.addr, dom, name, to);
	else
		dnscmd_ok(d, "DMARC: rua %s is outside %s and "
		    "authorised by %s", r.addr, dom, name);
out:
	free(copy);
	dns_answer_free(a);
}

/* The findings of the record r (text) that stands at _dmarc.dom. */
static void
dnscmd_dmarc_record(struct dnscmd *d, const char *dom, const char *text,
    const struct dmarc_record *r)
{
	const char *p, *comma;
	int none = r->p == DMARC_P_NONE || r->p == DMARC_P_UNSET;

	dnscmd_ok(d, "DMARC: %.*s%s", DNSCMD_CLIP(text), text,
	    DNSCMD_MORE(text));
	if (none && *r->rua == '\0')
		dnscmd_warn(d, "DMARC: p=none and no rua: you "
		    "learn nothing");
	else if (none)
		dnscmd_ok(d, "DMARC: p=none with reports: read them "
		    "(mxgate report summary), then move on to p=quarantine and "
		    "p=reject once they look clean");
	else if (*r->rua == '\0')
		dnscmd_warn(d, "DMARC: p=%s and no rua: you get no "
		    "aggregate reports", dmarc_policy_name(r->p));
	else
		dnscmd_ok(d, "DMARC: p=%s", dmarc_policy_name(r->p));
	/* RFC 7489 6.3 pct=; RFC 9989 4.7 t=y (pct=0 is the same) */
	if (r->pct >= 0 && r->pct < 100)
		dnscmd_warn(d, "DMARC: pct=%d: the policy applies "
		    "to part of the failing mail only", r->pct);
	else if (r->testing)
		dnscmd_warn(d, "DMARC: t=y (testing): receivers "
		    "apply one policy level less than p=");
	for (p = r->rua; *p != '\0'; p = *comma ? comma + 1 : comma) {
		comma = p + strcspn(p, ",");
		dnscmd_check_rua(d, dom, p, (size_t)(comma - p));
	}
}

/* "v", "=", "DMARC" in any case and spacing: meant as a DMARC record. */
static int
dnscmd_dmarc_like(const char *t)
{
	t += strspn(t, " \t");
	if (*t != 'v' && *t != 'V')
		return 0;
	t += 1 + strspn(t + 1, " \t");
	if (*t != '=')
		return 0;
	t += 1 + strspn(t + 1, " \t");
	return strncasecmp(t, "DMARC", 5) == 0;
}

/*
 * The records at _dmarc.dom (answer a), judged. Returns how many start
 * "v=DMARC1": a policy stands at that name only with exactly one (RFC
 * 9989 4.10 step 2), whose findings are then said.
 */
static size_t
dnscmd_dmarc_at(struct dnscmd *d, const char *dom, const struct dns_answer *a)
{
	struct dmarc_record r, one;
	char name[300], *sb = NULL, *keep = NULL;
	const char *text = NULL;
	size_t i, nvalid = 0;
	int rc, keep_rc = 0;

	memset(&r, 0, sizeof(r));
	snprintf(name, sizeof(name), "_dmarc.%s", dom);
	for (i = 0; i < a->n; i++) {
		free(sb);
		if ((sb = malloc(a->rr[i].len + 4)) == NULL)
			break;
		rc = dmarc_record_parse(a->rr[i].text, a->rr[i].len, &one, sb,
		    a->rr[i].len + 4);
		if (rc != -1) {
			/* the strings of the first one stay in keep */
			if (nvalid++ == 0) {
				r = one;
				keep = sb;
				sb = NULL;
				keep_rc = rc;
				text = a->rr[i].text;
			}
			continue;
		}
		/* meant as DMARC, yet receivers discard it */
		if (dnscmd_dmarc_like(a->rr[i].text))
			dnscmd_err(d, "DMARC: unparseable record at %s: "
			    "\"%.*s%s\" (receivers ignore it; it must start "
			    "with v=DMARC1;)", name, DNSCMD_CLIP(a->rr[i].text),
			    a->rr[i].text, DNSCMD_MORE(a->rr[i].text));
	}
	if (nvalid > 1)
		dnscmd_err(d, "DMARC: %zu records at %s: receivers "
		    "ignore them all (RFC 9989 4.10)", nvalid, name);
	else if (nvalid == 1 && keep_rc == -2)
		dnscmd_err(d, "DMARC: the record at %s has a bad p=, "
		    "sp= or np= and no valid rua=: receivers ignore it", name);
	else if (nvalid == 1)
		dnscmd_dmarc_record(d, dom, text, &r);
	free(sb);
	free(keep);
	return nvalid;
}

/* Which of the record's tags sets the policy for d->domain (below the
 * policy domain: RFC 9989 4.10.1), into out. */
static void
dnscmd_dmarc_how(const struct dnscmd *d, const struct dmarc_outcome *o,
    char *out, size_t n)
{
	const struct dmarc_record *r = o->record;
	enum dmarc_policy sub;
	int len;

	sub = r->sp != DMARC_P_UNSET ? r->sp : r->p != DMARC_P_UNSET ? r->p :
	    DMARC_P_NONE;
	/* np= counts when the domain does not exist (the engine asked) */
	if (r->np != DMARC_P_UNSET && r->np != sub && o->requested == r->np) {
		snprintf(out, n, "np=%s: %s does not exist",
		    dmarc_policy_name(r->np), d->domain);
		return;
	}
	if (r->sp != DMARC_P_UNSET)
		len = snprintf(out, n, "sp=%s", dmarc_policy_name(sub));
	else
		len = snprintf(out, n, "p=%s, as it has no sp=",
		    dmarc_policy_name(sub));
	if (len > 0 && (size_t)len < n && r->np != DMARC_P_UNSET &&
	    r->np != sub)
		snprintf(out + len, n - (size_t)len, "; np=%s if %s did "
		    "not exist", dmarc_policy_name(r->np), d->domain);
}

struct dnscmd_got {
	char name[256];
	struct dns_answer *a;
};

/*
 * No single record at _dmarc.DOMAIN (answer first, nvalid records of
 * its own): policy discovery as the daemon does it (auth/dmarc: the RFC
 * 9989 4.10 tree walk from the domain up, at most eight queries,
 * skipping to the last seven labels; with [dmarc] discovery = psl the
 * PSL organizational domain, RFC 7489 6.6.3), then the record found,
 * judged. The engine is fed an evaluation where nothing aligns, so it
 * also asks whether the domain exists when np= could matter.
 */
static void
dnscmd_dmarc_discover(struct dnscmd *d, const struct dns_answer *first,
    size_t nvalid)
{
	struct dnscmd_got got[DMARC_MAX_QUESTIONS];
	const struct dmarc_outcome *o;
	const struct dns_answer *pa = NULL;
	struct dmarc_params p;
	struct dns_answer *a;
	struct dmarc *m;
	enum dns_type type;
	const char *q;
	char qname[256], own[300], pname[300], how[300];
	size_t i, ngot = 0;
	int failed = 0;

	memset(&p, 0, sizeof(p));
	p.discovery = d->cfg->dmarc_psl_mode ? DMARC_DISCOVERY_PSL :
	    DMARC_DISCOVERY_TREEWALK;
	p.psl = d->psl;
	p.author_domain = d->domain;
	p.spf_result = SPF_NONE;
	if ((m = dmarc_new(&p)) == NULL) {
		dnscmd_err(d, "DMARC: out of memory");
		return;
	}
	snprintf(own, sizeof(own), "_dmarc.%s", d->domain);
	while (!dmarc_done(m) && !failed) {
		/* each question is answered before the next: the engine
		 * always has one to ask until it is done */
		if ((q = dmarc_next_query(m, &type)) == NULL) {
			dmarc_abort(m, "no question left");
			break;
		}
		snprintf(qname, sizeof(qname), "%s", q);
		if (type == DNS_T_TXT && strcasecmp(qname, own) == 0) {
			dmarc_answer(m, qname, type, first);
			continue;
		}
		a = dnscmd_ask(d, qname, type);
		if (dnscmd_failed(a)) {
			dnscmd_err(d, "DMARC: %s query for %s failed: %s",
			    dns_type_name(type), qname, dnscmd_why(a));
			failed = 1;
		} else {
			dmarc_answer(m, qname, type, a);
		}
		if (a != NULL && !failed && type == DNS_T_TXT &&
		    ngot < DMARC_MAX_QUESTIONS) {
			snprintf(got[ngot].name, sizeof(got[0].name), "%s",
			    qname);
			got[ngot++].a = a;
		} else {
			dns_answer_free(a);
		}
	}
	if (failed)
		goto out;
	o = dmarc_outcome(m);
	if (o->result == DMARC_TEMPERROR) {
		dnscmd_err(d, "DMARC: policy discovery for %s failed: %s",
		    d->domain, o->reason);
		goto out;
	}
	if (*o->policy_domain == '\0' ||
	    strcmp(o->policy_domain, d->domain) == 0) {
		if (nvalid == 0 && *o->org_domain != '\0' &&
		    strcmp(o->org_domain, d->domain) != 0)
			dnscmd_err(d, "DMARC: no record at %s nor at "
			    "_dmarc.%s (its organizational domain): receivers "
			    "apply no policy", own, o->org_domain);
		else if (nvalid == 0)
			dnscmd_err(d, "DMARC: no record at %s: receivers "
			    "apply no policy", own);
		goto out;
	}
	snprintf(pname, sizeof(pname), "_dmarc.%s", o->policy_domain);
	for (i = 0; i < ngot && pa == NULL; i++)
		if (strcasecmp(got[i].name, pname) == 0)
			pa = got[i].a;
	if (o->record != NULL) {
		dnscmd_dmarc_how(d, o, how, sizeof(how));
		dnscmd_ok(d, "DMARC: %s at %s; the policy of %s applies (%s)",
		    nvalid == 0 ? "no record" : "no single record", own,
		    o->policy_domain, how);
	} else {
		dnscmd_ok(d, "DMARC: %s at %s; discovery (RFC 9989 4.10) "
		    "finds the record of %s", nvalid == 0 ? "no record" :
		    "no single record", own, o->policy_domain);
	}
	if (pa != NULL)
		dnscmd_dmarc_at(d, o->policy_domain, pa);
out:
	for (i = 0; i < ngot; i++)
		dns_answer_free(got[i].a);
	dmarc_free(m);
}

static void
dnscmd_check_dmarc(struct dnscmd *d)
{
	struct dns_answer *a;
	char name[300];
	size_t n;

	snprintf(name, sizeof(name), "_dmarc.%s", d->domain);
	a = dnscmd_ask(d, name, DNS_T_TXT);
	if (dnscmd_failed(a)) {
		dnscmd_err(d, "DMARC: TXT query for %s failed: %s",
		    name, dnscmd_why(a));
		goto out;
	}
	/* RFC 9989 4.10: no single record here, the walk goes on up */
	if ((n = dnscmd_dmarc_at(d, d->domain, a)) != 1)
		dnscmd_dmarc_discover(d, a, n);
out:
	dns_answer_free(a);
}

/* ---- the two commands ---- */

static int
dnscmd_open(struct dnscmd *d, const char *domain, const char *path)
{
	struct buf errors = { 0 };
	char err[256];

	memset(d, 0, sizeof(*d));
	if (orgdomain_ascii(domain, d->domain, sizeof(d->domain)) == -1 ||
	    strchr(d->domain, '.') == NULL) {
		fprintf(stderr, "mxgate: '%s' is not a domain name\n", domain);
		return 2;
	}
	if ((d->cfg = config_load(path, &errors)) == NULL) {
		fputs(errors.data ? errors.data : "configuration failed\n",
		    stderr);
		buf_free(&errors);
		return 1;
	}
	buf_free(&errors);
	d->accepted = config_accepts_domain(d->cfg, d->domain);
	d->signer = config_signer_for(d->cfg, d->domain);
	if ((d->psl = orgdomain_psl_load(d->cfg->dmarc_psl_file, err,
	    sizeof(err))) == NULL)
		fprintf(stderr, "mxgate: warning: public suffix list: %s "
		    "(organizational domains taken as the names)\n", err);
	if (!d->accepted && d->signer == NULL)
		fprintf(stderr, "mxgate: warning: %s is not in [domains] "
		    "accept and has no [dkim sign %s] section in %s: mxgate "
		    "neither receives nor signs its mail\n", d->domain,
		    d->domain, path);
	return 0;
}

static void
dnscmd_close(struct dnscmd *d)
{
	if (d->res)
		dns_resolver_free(d->res);
	if (d->base)
		event_base_free(d->base);
	orgdomain_psl_free(d->psl);
	config_free(d->cfg);
}

/* The DKIM part of `records`. */
static int
dnscmd_records_dkim(struct dnscmd *d, const char *path)
{
	const struct config_sign_key *k;
	struct buf txt = { 0 };
	size_t i;

	if (d->signer == NULL) {
		printf("; DKIM (RFC 6376): %s has no [dkim sign %s] section, "
		    "so mxgate does not sign\n"
		    "; its mail. To sign it, make a key:\n"
		    ";   mxgate dkim keygen --domain %s --selector SELECTOR "
		    "--type ed25519 --out FILE\n"
		    "; add [dkim sign %s] with keys = SELECTOR:FILE (a "
		    "second rsa key for dual\n"
		    "; signing), and run this command again for its "
		    "record.\n\n", path, d->domain, d->domain, d->domain);
		return 0;
	}
	for (i = 0; i < d->signer->nkeys; i++) {
		k = &d->signer->keys[i];
		buf_reset(&txt);
		if (k->key == NULL || dkim_key_record(k->key, &txt) == -1) {
			fprintf(stderr, "mxgate: %s: no public key\n", k->file);
			buf_free(&txt);
			return -1;
		}
		printf("; DKIM (RFC 6376): the public half of %s (%s), "
		    "selector %s:\n"
		    "; receivers verify mxgate's signatures for %s with it.\n",
		    k->file, dkim_key_algorithm(k->key), k->selector,
		    d->domain);
		dkimcmd_zone_txt(stdout, k->selector, d->domain, txt.data,
		    txt.len);
		printf("\n");
	}
	buf_free(&txt);
	return 0;
}

static int
dnscmd_records(const char *domain, const char *path)
{
	struct dnscmd d;
	const char *host, *at, *rdom = NULL;
	int rc, ret = 1;

	if ((rc = dnscmd_open(&d, domain, path)) != 0)
		return rc;
	host = d.cfg->hostname;
	printf("; MX: mxgate (%s) receives the mail for %s.\n", host, d.domain);
	printf("%s. IN MX 10 %s.\n\n", d.domain, host);
	printf("; SPF (RFC 7208): mx covers mxgate as long as it is the MX, "
	    "a:%s covers it\n"
	    "; as the outbound relay. List your other senders (include:, "
	    "ip4:) before -all;\n"
	    "; use ~all while testing.\n", host);
	printf("%s. IN TXT \"v=spf1 mx a:%s -all\"\n\n", d.domain, host);
	if (dnscmd_records_dkim(&d, path) == -1)
		goto out;
	at = strrchr(d.cfg->report_email, '@');
	if (at != NULL)
		rdom = at + 1;
	printf("; DMARC (RFC 9989): start with p=none and read the reports "
	    "(mxgate report summary);\n"
	    "; once they show only your own senders, move to p=quarantine, "
	    "then p=reject.\n");
	if (rdom != NULL && dnscmd_same_org(&d, d.domain, rdom))
		printf("_dmarc.%s. IN TXT \"v=DMARC1; p=none; "
		    "rua=mailto:%s\"\n", d.domain, d.cfg->report_email);
	else
		printf("_dmarc.%s. IN TXT \"v=DMARC1; p=none; "
		    "rua=mailto:dmarc-reports@%s\"\n", d.domain, d.domain);
	if (rdom != NULL && !dnscmd_same_org(&d, d.domain, rdom)) {
		printf("\n; [report] email (%s) is in another domain. To have "
		    "%s's reports\n"
		    "; sent there too, add mailto:%s to rua= above and "
		    "publish this in\n"
		    "; %s's zone (RFC 9990 4: it agrees to receive them):\n",
		    d.cfg->report_email, d.domain, d.cfg->report_email, rdom);
		printf("%s._report._dmarc.%s. IN TXT \"v=DMARC1\"\n", d.domain,
		    rdom);
	}
	ret = 0;
out:
	dnscmd_close(&d);
	return ret;
}

static int
dnscmd_check(const char *domain, const char *path, const char *server)
{
	struct dnscmd d;
	struct dns_config dc;
	char err[256];
	int rc;

	if ((rc = dnscmd_open(&d, domain, path)) != 0)
		return rc;
	/* the resolver [dns] configures, or the one server asked for */
	memset(&dc, 0, sizeof(dc));
	dc.servers = (const char *const *)d.cfg->dns_servers;
	dc.nservers = d.cfg->ndns_servers;
	if (server != NULL) {
		dc.servers = &server;
		dc.nservers = 1;
	}
	dc.timeout_ms = d.cfg->dns_timeout_ms;
	dc.tries = 2;
	if ((d.base = event_base_new()) == NULL ||
	    (d.res = dns_resolver_new(d.base, &dc, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxgate: resolver: %s\n", d.base ? err :
		    "out of memory");
		dnscmd_close(&d);
		return 1;
	}
	dnscmd_check_mx(&d);
	dnscmd_check_spf(&d);
	dnscmd_check_dkim(&d);
	dnscmd_check_dmarc(&d);
	printf("%u error%s, %u warning%s\n", d.errors, d.errors == 1 ? "" : "s",
	    d.warnings, d.warnings == 1 ? "" : "s");
	rc = d.errors > 0 ? 1 : 0;
	dnscmd_close(&d);
	return rc;
}

int
dnscmd_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dns", required_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = DNSCMD_CONFIG, *server = NULL, *sub;
	int ch, check;

	if (argc < 2 || (strcmp(argv[1], "records") != 0 &&
	    strcmp(argv[1], "check") != 0)) {
		dnscmd_usage(stderr);
		return 2;
	}
	sub = argv[1];
	check = strcmp(sub, "check") == 0;
	argc--;
	argv++;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'D':
			if (!check)
				goto usage;
			server = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (optind + 1 != argc)
		goto usage;
	if (check)
		return dnscmd_check(argv[optind], path, server);
	return dnscmd_records(argv[optind], path);
usage:
	dnscmd_usage(stderr);
	return 2;
}
