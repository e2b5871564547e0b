/*
 * auth/dkim.c: the DKIM verify engine (RFC 6376 6), rsa-sha256 and
 * ed25519-sha256 (RFC 8463); rsa-sha1 is refused (RFC 8301).
 *
 * Each DKIM-Signature field is checked (RFC 6376 3.5, 6.1.1) when the
 * parser hands it over and its key name queued at once; the body is
 * canonicalized and hashed per signature as it streams; at the end the
 * header hash is taken and each signature is settled once its key is in.
 */
#include "auth/dkim_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#define DKIM_DEFAULT_MAX_SIGS	8
#define DKIM_SKEW		300	/* RFC 6376 3.5 t=: clock skew */

enum dkim_alg { ALG_RSA_SHA256, ALG_ED25519_SHA256 };

struct dkim_query {
	char *name;
	int asked, answered;
	enum dkim_result err;	/* PASS when a key was found */
	const char *reason;
	EVP_PKEY *pkey;
	int ed25519;		/* k= */
	int sha256_ok;		/* h= (RFC 6376 3.6.1) */
	int strict;		/* t=s */
	int testing;		/* t=y */
};

struct dkim_sig {
	struct dkim_sig_result res;
	int settled;
	enum dkim_alg alg;
	int hrelaxed, brelaxed;
	long long l;		/* -1: none */
	unsigned char bh[DKIM_HASH_LEN];
	unsigned char *sig;
	size_t siglen;
	char **h;		/* h= names */
	size_t nh;
	char *sigraw;		/* the field with b= emptied, no CRLF */
	size_t siglen_raw;
	struct dkim_body *body;
	int body_done;
	unsigned char bodyhash[DKIM_HASH_LEN];
	unsigned long long body_total;
	int header_done;
	unsigned char hhash[DKIM_HASH_LEN];
	struct dkim_query *q;
	char *strs[5];		/* owned strings of res */
};

struct dkim_verify {
	long long now;
	size_t max_sigs;
	struct msg_parser *mp;
	struct dkim_sig *sigs;
	size_t nsigs, capsigs;
	struct dkim_query **qs;
	size_t nqs;
	int body_started, ended, failed;
};

static const char *
dup_or_empty(struct dkim_sig *s, int slot, const struct dkim_tag *t)
{
	char *p;

	if (t == NULL || (p = dkim_tag_strip(t)) == NULL)
		return "";
	free(s->strs[slot]);
	s->strs[slot] = p;
	return p;
}

static void
sig_settle(struct dkim_sig *s, enum dkim_result r, const char *reason)
{
	if (s->settled)
		return;
	s->settled = 1;
	s->res.result = r;
	s->res.reason = reason;
}

static long long
tag_num(const struct dkim_tag *t, int *ok)
{
	long long v = 0;
	size_t i;

	/* RFC 6376 3.5 t=, x=, l=: 1*12DIGIT / 1*76DIGIT; we take 18 */
	if (t->value_len == 0 || t->value_len > 18) {
		*ok = 0;
		return 0;
	}
	for (i = 0; i < t->value_len; i++) {
		if (t->value[i] < '0' || t->value[i] > '9') {
			*ok = 0;
			return 0;
		}
		v = v * 10 + (t->value[i] - '0');
	}
	return v;
}

/* A colon-separated list (h=, q=, key h= s= t= k=) into names, FWS
 * dropped. Returns the count, -1 on a syntax error or no memory. */
static int
tag_list(const struct dkim_tag *t, char ***out_r)
{
	char *s, *p, *e, **v;
	int n = 0;

	*out_r = NULL;
	if ((s = dkim_tag_strip(t)) == NULL)
		return -1;
	if ((v = calloc(strlen(s) / 2 + 2, sizeof(*v))) == NULL) {
		free(s);
		return -1;
	}
	for (p = s;; p = e + 1) {
		if ((e = strchr(p, ':')) != NULL)
			*e = '\0';
		if (*p == '\0' || (v[n] = strdup(p)) == NULL)
			goto fail;
		n++;
		if (e == NULL)
			break;
	}
	free(s);
	*out_r = v;
	return n;
fail:
	while (n > 0)
		free(v[--n]);
	free(v);
	free(s);
	return -1;
}

static void
list_free(char **v, size_t n)
{
	if (v == NULL)
		return;
	while (n > 0)
		free(v[--n]);
	free(v);
}

static int
list_has(char **v, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(v[i], s) == 0)
			return 1;
	return 0;
}

static struct dkim_query *
query_get(struct dkim_verify *v, const char *s, const char *d)
{
	struct dkim_query **nq, *q;
	size_t i, n;
	char *name;

	n = strlen(s) + strlen(d) + sizeof("._domainkey.");
	if ((name = malloc(n)) == NULL)
		return NULL;
	snprintf(name, n, "%s._domainkey.%s", s, d);
	for (i = 0; i < v->nqs; i++)
		if (strcasecmp(v->qs[i]->name, name) == 0) {
			free(name);
			return v->qs[i];
		}
	if ((nq = reallocarray(v->qs, v->nqs + 1, sizeof(*nq))) == NULL ||
	    (v->qs = nq, q = calloc(1, sizeof(*q))) == NULL) {
		free(name);
		return NULL;
	}
	q->name = name;
	v->qs[v->nqs++] = q;
	return q;
}

/* RFC 6376 3.5 i=: [local-part] "@" domain, the domain d= or below. */
static int
identity_ok(const char *i, const char *d, int strict)
{
	const char *at = strrchr(i, '@');
	size_t il, dl = strlen(d);

	if (at == NULL)
		return 0;
	at++;
	il = strlen(at);
	if (!dkim_domain_ok(at, il))
		return 0;
	if (strcasecmp(at, d) == 0)
		return 1;
	/* RFC 6376 3.6.1 t=s: no subdomain of d= */
	if (strict)
		return 0;
	return il > dl && at[il - dl - 1] == '.' && strcasecmp(at + il - dl, d) == 0;
}

/*
 * RFC 6376 3.5 and 6.1.1: the signature's tags. Returns 0 when it can be
 * evaluated, or settles it and returns -1.
 */
static int
sig_parse(struct dkim_verify *v, struct dkim_sig *s, const struct msg_field *f)
{
	const struct dkim_tag *tv, *ta, *tb, *tbh, *tc, *td, *th, *ti, *tl,
	    *tq, *ts, *tt, *tx;
	struct dkim_taglist tl_;
	unsigned char *bh = NULL;
	const char *err, *c;
	char **ql = NULL;
	size_t bhlen, voff;
	long long t = -1, x = -1;
	int ok = 1, nq;

	if (dkim_tags_parse(f->value, f->value_len, &tl_, &err) == -1) {
		sig_settle(s, DKIM_PERMERROR, err);
		return -1;
	}
	tv = dkim_tags_find(&tl_, "v");
	ta = dkim_tags_find(&tl_, "a");
	tb = dkim_tags_find(&tl_, "b");
	tbh = dkim_tags_find(&tl_, "bh");
	tc = dkim_tags_find(&tl_, "c");
	td = dkim_tags_find(&tl_, "d");
	th = dkim_tags_find(&tl_, "h");
	ti = dkim_tags_find(&tl_, "i");
	tl = dkim_tags_find(&tl_, "l");
	tq = dkim_tags_find(&tl_, "q");
	ts = dkim_tags_find(&tl_, "s");
	tt = dkim_tags_find(&tl_, "t");
	tx = dkim_tags_find(&tl_, "x");
	s->res.domain = dup_or_empty(s, 0, td);
	s->res.selector = dup_or_empty(s, 1, ts);
	s->res.algorithm = dup_or_empty(s, 2, ta);
	s->res.b = dup_or_empty(s, 3, tb);
	s->res.identity = dup_or_empty(s, 4, ti);
	if (tv == NULL || ta == NULL || tb == NULL || tbh == NULL ||
	    td == NULL || th == NULL || ts == NULL) {
		/* RFC 6376 6.1.1: required tag missing */
		sig_settle(s, DKIM_PERMERROR, "required tag missing");
		return -1;
	}
	if (!dkim_tag_is(tv, "1")) {
		sig_settle(s, DKIM_PERMERROR, "unsupported version");
		return -1;
	}
	if (!dkim_domain_ok(s->res.domain, strlen(s->res.domain)) ||
	    !dkim_domain_ok(s->res.selector, strlen(s->res.selector))) {
		sig_settle(s, DKIM_PERMERROR, "bad d= or s=");
		return -1;
	}
	if (ti == NULL) {
		/* RFC 6376 3.5 i=: default "@" d= */
		size_t n = strlen(s->res.domain) + 2;

		if ((s->strs[4] = malloc(n)) == NULL)
			goto nomem;
		snprintf(s->strs[4], n, "@%s", s->res.domain);
		s->res.identity = s->strs[4];
	} else if (!identity_ok(s->res.identity, s->res.domain, 0)) {
		sig_settle(s, DKIM_PERMERROR, "i= not within d=");
		return -1;
	}
	if (dkim_tag_is(ta, "rsa-sha256"))
		s->alg = ALG_RSA_SHA256;
	else if (dkim_tag_is(ta, "ed25519-sha256"))
		s->alg = ALG_ED25519_SHA256;
	else if (dkim_tag_is(ta, "rsa-sha1")) {
		/* RFC 8301 3.1: verifiers must not consider it valid */
		sig_settle(s, DKIM_NEUTRAL, "rsa-sha1 not accepted (RFC 8301)");
		return -1;
	} else {
		sig_settle(s, DKIM_PERMERROR, "unknown algorithm");
		return -1;
	}
	/* RFC 6376 3.5 c=: header[/body], default simple/simple */
	if (tc != NULL) {
		c = tc->value;
		if (tc->value_len >= 7 && strncmp(c, "relaxed", 7) == 0)
			s->hrelaxed = 1, c += 7;
		else if (tc->value_len >= 6 && strncmp(c, "simple", 6) == 0)
			c += 6;
		else
			goto badc;
		if (c == tc->value + tc->value_len)
			;
		else if (*c != '/')
			goto badc;
		else if ((size_t)(tc->value + tc->value_len - c) == 8 &&
		    strncmp(c, "/relaxed", 8) == 0)
			s->brelaxed = 1;
		else if ((size_t)(tc->value + tc->value_len - c) != 7 ||
		    strncmp(c, "/simple", 7) != 0)
			goto badc;
	}
	if (tq != NULL) {
		/* RFC 6376 3.5 q=: dns/txt is the only method */
		if ((nq = tag_list(tq, &ql)) < 0 ||
		    !list_has(ql, nq, "dns/txt")) {
			list_free(ql, nq < 0 ? 0 : nq);
			sig_settle(s, DKIM_PERMERROR, "unsupported q=");
			return -1;
		}
		list_free(ql, nq);
	}
	if ((nq = tag_list(th, &s->h)) < 0) {
		sig_settle(s, DKIM_PERMERROR, "bad h=");
		return -1;
	}
	s->nh = nq;
	s->l = -1;
	if (tl != NULL)
		s->l = tag_num(tl, &ok);
	if (tt != NULL)
		t = tag_num(tt, &ok);
	if (tx != NULL)
		x = tag_num(tx, &ok);
	if (!ok) {
		sig_settle(s, DKIM_PERMERROR, "bad number in l=, t= or x=");
		return -1;
	}
	if (dkim_b64_decode(tbh->value, tbh->value_len, &bh, &bhlen) == -1 ||
	    bhlen != DKIM_HASH_LEN) {
		free(bh);
		sig_settle(s, DKIM_PERMERROR, "bad bh=");
		return -1;
	}
	memcpy(s->bh, bh, DKIM_HASH_LEN);
	free(bh);
	if (dkim_b64_decode(tb->value, tb->value_len, &s->sig, &s->siglen) == -1 ||
	    s->siglen == 0) {
		sig_settle(s, DKIM_PERMERROR, "bad b=");
		return -1;
	}
	/* RFC 6376 6.1.1: From must be signed (the header says: policy) */
	if (!list_has(s->h, s->nh, "from")) {
		sig_settle(s, DKIM_POLICY, "From not signed");
		return -1;
	}
	if (t >= 0 && x >= 0 && x < t) {
		/* RFC 6376 3.5 x=: must be greater than t= */
		sig_settle(s, DKIM_PERMERROR, "x= before t=");
		return -1;
	}
	if (x >= 0 && x < v->now) {
		sig_settle(s, DKIM_PERMERROR, "signature expired");
		return -1;
	}
	if (t >= 0 && t > v->now + DKIM_SKEW) {
		sig_settle(s, DKIM_PERMERROR, "t= in the future");
		return -1;
	}
	/* RFC 6376 3.7: the field with the b= value emptied */
	voff = f->value - f->raw;
	if ((s->sigraw = malloc(f->raw_len + 1)) == NULL)
		goto nomem;
	memcpy(s->sigraw, f->raw, voff + tb->val_off);
	memcpy(s->sigraw + voff + tb->val_off, f->value + tb->end_off,
	    f->raw_len - voff - tb->end_off);
	s->siglen_raw = f->raw_len - (tb->end_off - tb->val_off);
	while (s->siglen_raw > 0 && (s->sigraw[s->siglen_raw - 1] == '\n' ||
	    s->sigraw[s->siglen_raw - 1] == '\r'))
		s->siglen_raw--;
	if ((s->q = query_get(v, s->res.selector, s->res.domain)) == NULL)
		goto nomem;
	return 0;
badc:
	sig_settle(s, DKIM_PERMERROR, "bad c=");
	return -1;
nomem:
	sig_settle(s, DKIM_TEMPERROR, "out of memory");
	return -1;
}

static int
verify_on_field(const struct msg_field *f, void *arg)
{
	struct dkim_verify *v = arg;
	struct dkim_sig *s, *ns;
	size_t n;

	if (f->name_len != 14 || strncasecmp(f->name, "DKIM-Signature", 14) != 0)
		return 0;
	if (v->nsigs == v->capsigs) {
		n = v->capsigs ? v->capsigs * 2 : 4;
		if ((ns = reallocarray(v->sigs, n, sizeof(*ns))) == NULL) {
			v->failed = 1;
			return -1;
		}
		v->sigs = ns;
		v->capsigs = n;
	}
	s = &v->sigs[v->nsigs++];
	memset(s, 0, sizeof(*s));
	s->res.reason = s->res.domain = s->res.selector = s->res.identity =
	    s->res.algorithm = s->res.b = "";
	if (v->nsigs > v->max_sigs) {
		sig_settle(s, DKIM_NONE, "not evaluated: too many signatures");
		return 0;
	}
	sig_parse(v, s, f);
	return 0;
}

static int
body_start(struct dkim_verify *v)
{
	size_t i;

	v->body_started = 1;
	for (i = 0; i < v->nsigs; i++) {
		struct dkim_sig *s = &v->sigs[i];

		if (s->settled)
			continue;
		if ((s->body = dkim_body_new(s->brelaxed, s->l)) == NULL)
			sig_settle(s, DKIM_TEMPERROR, "out of memory");
	}
	return 0;
}

static int
verify_on_body(const char *p, size_t n, void *arg)
{
	struct dkim_verify *v = arg;
	size_t i;

	if (!v->body_started)
		body_start(v);
	for (i = 0; i < v->nsigs; i++) {
		struct dkim_sig *s = &v->sigs[i];

		if (!s->settled && s->body != NULL &&
		    dkim_body_update(s->body, p, n) == -1)
			sig_settle(s, DKIM_TEMPERROR, "out of memory");
	}
	return 0;
}

struct dkim_verify *
dkim_verify_new(const struct dkim_verify_params *p)
{
	struct dkim_verify *v;

	if ((v = calloc(1, sizeof(*v))) == NULL)
		return NULL;
	v->now = p != NULL && p->now ? p->now : (long long)time(NULL);
	v->max_sigs = p != NULL && p->max_signatures ? p->max_signatures :
	    DKIM_DEFAULT_MAX_SIGS;
	v->mp = msg_parser_new(DKIM_HDR_MAX_BYTES, DKIM_HDR_MAX_FIELDS,
	    verify_on_field, verify_on_body, v);
	if (v->mp == NULL) {
		free(v);
		return NULL;
	}
	return v;
}

void
dkim_verify_free(struct dkim_verify *v)
{
	size_t i, j;

	if (v == NULL)
		return;
	for (i = 0; i < v->nsigs; i++) {
		struct dkim_sig *s = &v->sigs[i];

		for (j = 0; j < 5; j++)
			free(s->strs[j]);
		free(s->sig);
		list_free(s->h, s->nh);
		free(s->sigraw);
		dkim_body_free(s->body);
	}
	free(v->sigs);
	for (i = 0; i < v->nqs; i++) {
		free(v->qs[i]->name);
		EVP_PKEY_free(v->qs[i]->pkey);
		free(v->qs[i]);
	}
	free(v->qs);
	msg_parser_free(v->mp);
	free(v);
}

int
dkim_verify_feed(struct dkim_verify *v, const char *data, size_t n)
{
	if (v->ended || v->failed)
		return -1;
	if (msg_parser_feed(v->mp, data, n) == -1) {
		v->failed = 1;
		return -1;
	}
	return 0;
}

/* Once content and key are both in: the verdict (RFC 6376 6.1.3). */
static void
sig_finish(struct dkim_verify *v, struct dkim_sig *s)
{
	struct dkim_query *q = s->q;

	if (s->settled || !v->ended || !q->answered)
		return;
	if (q->err != DKIM_PASS) {
		sig_settle(s, q->err, q->reason);
		return;
	}
	if (q->ed25519 != (s->alg == ALG_ED25519_SHA256)) {
		sig_settle(s, DKIM_PERMERROR, "key type does not match a=");
		return;
	}
	if (!q->sha256_ok) {
		sig_settle(s, DKIM_PERMERROR, "key h= excludes sha256");
		return;
	}
	if (q->strict && !identity_ok(s->res.identity, s->res.domain, 1)) {
		sig_settle(s, DKIM_PERMERROR, "key t=s: i= subdomain of d=");
		return;
	}
	if (!q->ed25519 && EVP_PKEY_get_bits(q->pkey) < DKIM_MIN_RSA_BITS) {
		/* RFC 8301 3.2 */
		sig_settle(s, DKIM_POLICY, "RSA key shorter than 1024 bits");
		return;
	}
	if (s->l >= 0 && (unsigned long long)s->l > s->body_total) {
		sig_settle(s, DKIM_FAIL, "l= longer than the body");
		return;
	}
	if (CRYPTO_memcmp(s->bodyhash, s->bh, DKIM_HASH_LEN) != 0) {
		sig_settle(s, DKIM_FAIL, "body hash mismatch");
		return;
	}
	if (!dkim_pkey_verify(q->pkey, s->hhash, s->sig, s->siglen)) {
		sig_settle(s, DKIM_FAIL, "signature did not verify");
		return;
	}
	s->res.body_partial = s->l >= 0 && (unsigned long long)s->l < s->body_total;
	sig_settle(s, DKIM_PASS, q->testing ? "key in testing mode (t=y)" : "");
}

int
dkim_verify_end(struct dkim_verify *v)
{
	const struct msg_field **fields = NULL;
	size_t i, nf;
	int ret = 0;

	if (v->ended)
		return 0;
	if (!v->failed && msg_parser_end(v->mp) == -1)
		v->failed = 1;
	v->ended = 1;
	if (!v->body_started)
		body_start(v);
	nf = msg_parser_count(v->mp);
	if ((fields = calloc(nf + 1, sizeof(*fields))) == NULL)
		v->failed = 1;
	for (i = 0; fields != NULL && i < nf; i++)
		fields[i] = msg_parser_field(v->mp, i);
	for (i = 0; i < v->nsigs; i++) {
		struct dkim_sig *s = &v->sigs[i];

		if (s->settled)
			continue;
		if (v->failed) {
			sig_settle(s, DKIM_PERMERROR,
			    msg_parser_error(v->mp) == MSG_ERR_NOMEM ?
			    "out of memory" : "header section too large");
			continue;
		}
		if (dkim_body_final(s->body, s->bodyhash, &s->body_total) == -1 ||
		    dkim_header_hash(fields, nf, s->h, s->nh, s->hrelaxed,
		    s->sigraw, s->siglen_raw, s->hhash) == -1) {
			sig_settle(s, DKIM_TEMPERROR, "out of memory");
			continue;
		}
		sig_finish(v, s);
	}
	free(fields);
	return ret;
}

const char *
dkim_verify_next_query(struct dkim_verify *v)
{
	size_t i, j;

	for (i = 0; i < v->nqs; i++) {
		if (v->qs[i]->asked)
			continue;
		/* only for a signature still waiting for it */
		for (j = 0; j < v->nsigs; j++)
			if (v->sigs[j].q == v->qs[i] && !v->sigs[j].settled)
				break;
		if (j == v->nsigs)
			continue;
		v->qs[i]->asked = 1;
		return v->qs[i]->name;
	}
	return NULL;
}

/* RFC 6376 3.6.1: one key record. PASS, or the error for it. */
static enum dkim_result
key_parse(struct dkim_query *q, const char *txt, size_t len)
{
	struct dkim_taglist tl;
	const struct dkim_tag *tv, *tk, *th, *tp, *ts, *tt;
	unsigned char *der = NULL;
	const unsigned char *dp;
	char **l = NULL;
	const char *err;
	size_t dlen;
	int n;

	q->reason = "bad key record";
	q->testing = q->strict = 0;
	if (dkim_tags_parse(txt, len, &tl, &err) == -1)
		return DKIM_PERMERROR;
	tv = dkim_tags_find(&tl, "v");
	tk = dkim_tags_find(&tl, "k");
	th = dkim_tags_find(&tl, "h");
	tp = dkim_tags_find(&tl, "p");
	ts = dkim_tags_find(&tl, "s");
	tt = dkim_tags_find(&tl, "t");
	/* RFC 6376 3.6.1 v=: if present, first and "DKIM1" */
	if (tv != NULL && (tv != &tl.tag[0] || !dkim_tag_is(tv, "DKIM1"))) {
		q->reason = "bad key record version";
		return DKIM_PERMERROR;
	}
	if (tp == NULL) {
		q->reason = "key record without p=";
		return DKIM_PERMERROR;
	}
	q->ed25519 = 0;
	if (tk != NULL) {
		if (dkim_tag_is(tk, "ed25519"))
			q->ed25519 = 1;
		else if (!dkim_tag_is(tk, "rsa")) {
			q->reason = "unknown key type";
			return DKIM_PERMERROR;
		}
	}
	q->sha256_ok = 1;
	if (th != NULL) {
		if ((n = tag_list(th, &l)) < 0)
			return DKIM_PERMERROR;
		q->sha256_ok = list_has(l, n, "sha256");
		list_free(l, n);
	}
	if (ts != NULL) {
		/* RFC 6376 3.6.1 s=: "*" or "email" */
		if ((n = tag_list(ts, &l)) < 0)
			return DKIM_PERMERROR;
		if (!list_has(l, n, "*") && !list_has(l, n, "email")) {
			list_free(l, n);
			q->reason = "key not for email (s=)";
			return DKIM_PERMERROR;
		}
		list_free(l, n);
	}
	if (tt != NULL) {
		/* RFC 6376 3.6.1 t=: unknown flags ignored */
		if ((n = tag_list(tt, &l)) < 0)
			return DKIM_PERMERROR;
		q->testing = list_has(l, n, "y");
		q->strict = list_has(l, n, "s");
		list_free(l, n);
	}
	if (tp->value_len == 0) {
		/* RFC 6376 3.6.1 p=: empty means revoked */
		q->reason = "key revoked";
		return DKIM_PERMERROR;
	}
	if (dkim_b64_decode(tp->value, tp->value_len, &der, &dlen) == -1) {
		q->reason = "bad key data (p=)";
		return DKIM_PERMERROR;
	}
	q->reason = "bad key data (p=)";
	if ((q->pkey = dkim_keycache_get(q->ed25519, der, dlen)) != NULL) {
		free(der);
		q->reason = "";
		return DKIM_PASS;
	}
	if (q->ed25519) {
		/* RFC 8463 4.2: the raw 32-octet public key */
		if (dlen == 32)
			q->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519,
			    NULL, der, dlen);
	} else {
		/* SubjectPublicKeyInfo, or a bare RSAPublicKey */
		dp = der;
		q->pkey = d2i_PUBKEY(NULL, &dp, (long)dlen);
		if (q->pkey != NULL && (dp != der + dlen ||
		    EVP_PKEY_get_base_id(q->pkey) != EVP_PKEY_RSA)) {
			EVP_PKEY_free(q->pkey);
			q->pkey = NULL;
		}
		if (q->pkey == NULL) {
			dp = der;
			q->pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &dp,
			    (long)dlen);
		}
	}
	ERR_clear_error();
	if (q->pkey != NULL)
		dkim_keycache_put(q->ed25519, der, dlen, q->pkey);
	free(der);
	if (q->pkey == NULL)
		return DKIM_PERMERROR;
	q->reason = "";
	return DKIM_PASS;
}

void
dkim_verify_answer(struct dkim_verify *v, const char *name,
    const struct dns_answer *a)
{
	struct dkim_query *q = NULL;
	enum dkim_result r;
	size_t i;

	for (i = 0; i < v->nqs; i++)
		if (strcasecmp(v->qs[i]->name, name) == 0)
			q = v->qs[i];
	if (q == NULL || q->answered)
		return;
	q->answered = 1;
	switch (a->status) {
	case DNS_OK:
		/*
		 * RFC 6376 6.1.2: with several records the verifier may
		 * choose; like dkimpy, take the first one that is a usable
		 * key, else report the error of the first.
		 */
		q->err = DKIM_PERMERROR;
		q->reason = "no key";
		for (i = 0; i < a->n; i++) {
			const char *reason = q->reason;

			r = key_parse(q, a->rr[i].text, a->rr[i].len);
			if (i > 0 && r != DKIM_PASS)
				q->reason = reason;
			if (r == DKIM_PASS) {
				q->err = DKIM_PASS;
				break;
			}
		}
		break;
	case DNS_NODATA:
	case DNS_NXDOMAIN:
		q->err = DKIM_PERMERROR;
		q->reason = "no key";
		break;
	default:
		q->err = DKIM_TEMPERROR;
		q->reason = "key lookup failed";
		break;
	}
	for (i = 0; i < v->nsigs; i++)
		if (v->sigs[i].q == q)
			sig_finish(v, &v->sigs[i]);
}

int
dkim_verify_done(const struct dkim_verify *v)
{
	size_t i;

	if (!v->ended)
		return 0;
	for (i = 0; i < v->nsigs; i++)
		if (!v->sigs[i].settled)
			return 0;
	return 1;
}

size_t
dkim_verify_count(const struct dkim_verify *v)
{
	return v->nsigs;
}

const struct dkim_sig_result *
dkim_verify_result(const struct dkim_verify *v, size_t i)
{
	return i < v->nsigs ? &v->sigs[i].res : NULL;
}

const char *
dkim_result_name(enum dkim_result r)
{
	static const char *names[] = {
		"none", "pass", "fail", "neutral", "policy", "temperror",
		"permerror",
	};

	return (size_t)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}
