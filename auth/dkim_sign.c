/*
 * auth/dkim_sign.c: DKIM signing (RFC 6376 5), relaxed/relaxed, never
 * l= (it lets anyone append to the body), t= always, x= on request.
 */
#include "auth/dkim_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SIGN_FOLD	72	/* column to fold h= and b= near */

/* RFC 6376 5.4.1: the fields worth signing, From first. */
static const char *const sign_default[] = {
	"from", "reply-to", "subject", "date", "to", "cc", "resent-date",
	"resent-from", "resent-to", "resent-cc", "in-reply-to", "references",
	"message-id", "mime-version", "content-type",
	"content-transfer-encoding", "list-id", "list-help",
	"list-unsubscribe", "list-subscribe", "list-post", "list-owner",
	"list-archive", NULL,
};

/* Over-signed with params.oversign: one more than present, so none can
 * be added (RFC 6376 8.15). */
static const char *const sign_over[] = {
	"from", "to", "subject", "date", "message-id", NULL,
};

struct sign_ctx {
	struct dkim_body *body;
	int failed;
};

static int
sign_on_body(const char *p, size_t n, void *arg)
{
	struct sign_ctx *c = arg;

	if (dkim_body_update(c->body, p, n) == -1) {
		c->failed = 1;
		return -1;
	}
	return 0;
}

static size_t
count_fields(const struct msg_field *const *f, size_t nf, const char *name)
{
	size_t i, n = 0, l = strlen(name);

	for (i = 0; i < nf; i++)
		if (f[i]->name_len == l && strncasecmp(f[i]->name, name, l) == 0)
			n++;
	return n;
}

static int
in_list(const char *const *l, const char *s)
{
	for (; *l != NULL; l++)
		if (strcasecmp(*l, s) == 0)
			return 1;
	return 0;
}

/* names[] for h=: each present instance once, plus over-signing. */
static int
sign_names(const struct dkim_sign_params *p, const struct msg_field *const *f,
    size_t nf, char ***names_r, size_t *n_r, char *err, size_t errlen)
{
	char **names = NULL, **nn, **hl = NULL, *list = NULL, *tok, *save;
	const char *const *src = sign_default;
	size_t n = 0, k, cnt;

	if (p->headers != NULL) {
		size_t m = 1;
		const char *c;

		for (c = p->headers; *c; c++)
			m += *c == ':';
		if ((list = strdup(p->headers)) == NULL)
			goto nomem;
		if ((hl = calloc(m + 1, sizeof(*hl))) == NULL)
			goto nomem;
		m = 0;
		/* each name once: every instance gets signed anyway */
		for (tok = strtok_r(list, ": \t", &save); tok != NULL;
		    tok = strtok_r(NULL, ": \t", &save))
			if (!in_list((const char *const *)hl, tok))
				hl[m++] = tok;
		src = (const char *const *)hl;
	}
	if (!in_list(src, "from")) {
		snprintf(err, errlen, "the header list must include From");
		goto fail;
	}
	for (; *src != NULL; src++) {
		cnt = count_fields(f, nf, *src);
		if (p->oversign && in_list(sign_over, *src))
			cnt++;
		for (k = 0; k < cnt; k++) {
			if ((nn = reallocarray(names, n + 1, sizeof(*nn))) == NULL)
				goto nomem;
			names = nn;
			if ((names[n] = strdup(*src)) == NULL)
				goto nomem;
			n++;
		}
	}
	free(hl);
	free(list);
	*names_r = names;
	*n_r = n;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	while (n > 0)
		free(names[--n]);
	free(names);
	free(hl);
	free(list);
	return -1;
}

/* Appends "h=a:b:c;" folded before a name that would pass the fold. */
static int
sign_append_h(struct buf *b, char *const *names, size_t n, size_t *col)
{
	size_t i, l;

	if (buf_appends(b, " h=") == -1)
		return -1;
	*col += 3;
	for (i = 0; i < n; i++) {
		l = strlen(names[i]) + 1;
		if (*col + l > SIGN_FOLD) {
			if (buf_appends(b, "\r\n\t") == -1)
				return -1;
			*col = 8;
		}
		if (buf_appends(b, names[i]) == -1 ||
		    buf_appendc(b, i + 1 < n ? ':' : ';') == -1)
			return -1;
		*col += l;
	}
	return 0;
}

static int
sign_params_ok(const struct dkim_sign_params *p, char *err, size_t errlen)
{
	if (p->key == NULL || p->domain == NULL || p->selector == NULL ||
	    !dkim_domain_ok(p->domain, strlen(p->domain)) ||
	    !dkim_domain_ok(p->selector, strlen(p->selector))) {
		snprintf(err, errlen, "bad domain, selector or key");
		return -1;
	}
	return 0;
}

/* One DKIM-Signature field for key p over the parsed header fields and
 * the body hash bh, appended to out. */
static int
sign_one(const struct dkim_sign_params *p, const struct msg_field *const *fields,
    size_t nf, const unsigned char bh[DKIM_HASH_LEN], struct buf *out,
    char *err, size_t errlen)
{
	struct buf h = { 0 }, b64 = { 0 };
	unsigned char dig[DKIM_HASH_LEN], *sig = NULL;
	char **names = NULL;
	size_t nnames = 0, i, k, siglen, col;
	long long t;
	int ret = -1;

	if (sign_names(p, fields, nf, &names, &nnames, err, errlen) == -1)
		return -1;
	t = p->t ? p->t : (long long)time(NULL);
	if (buf_appendf(&h, "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed;"
	    " d=%s; s=%s;\r\n\tt=%lld;", dkim_key_algorithm(p->key), p->domain,
	    p->selector, t) == -1)
		goto nomem;
	if (p->x && buf_appendf(&h, " x=%lld;", p->x) == -1)
		goto nomem;
	col = 8 + 14 + (p->x ? 14 : 0);
	if (sign_append_h(&h, names, nnames, &col) == -1 ||
	    buf_appends(&h, "\r\n\tbh=") == -1 ||
	    dkim_b64_encode(bh, DKIM_HASH_LEN, &h) == -1 ||
	    buf_appends(&h, ";\r\n\tb=") == -1)
		goto nomem;
	/* RFC 6376 3.7: the new field with an empty b=, no final CRLF */
	if (dkim_header_hash(fields, nf, names, nnames, 1, h.data, h.len,
	    dig) == -1)
		goto nomem;
	if (dkim_pkey_sign(dkim_key_pkey(p->key), dig, &sig, &siglen) == -1) {
		snprintf(err, errlen, "signing failed");
		goto fail;
	}
	if (dkim_b64_encode(sig, siglen, &b64) == -1)
		goto nomem;
	/* folded: FWS inside b= is not signed (RFC 6376 3.5) */
	for (i = 0, col = 10; i < b64.len; i += k, col = 8) {
		k = b64.len - i;
		if (k > SIGN_FOLD - col)
			k = SIGN_FOLD - col;
		if (i > 0 && buf_appends(&h, "\r\n\t") == -1)
			goto nomem;
		if (buf_append(&h, b64.data + i, k) == -1)
			goto nomem;
	}
	if (buf_appends(&h, "\r\n") == -1 || buf_append(out, h.data, h.len) == -1)
		goto nomem;
	ret = 0;
	goto done;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
done:
	while (nnames > 0)
		free(names[--nnames]);
	free(names);
	free(sig);
	buf_free(&h);
	buf_free(&b64);
	return ret;
}

struct dkim_signer {
	struct sign_ctx c;		/* one body hash serves every key:
					 * all are relaxed, none has l= */
	struct msg_parser *mp;
};

struct dkim_signer *
dkim_signer_new(void)
{
	struct dkim_signer *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	if ((s->c.body = dkim_body_new(1, -1)) == NULL ||
	    (s->mp = msg_parser_new(DKIM_HDR_MAX_BYTES, DKIM_HDR_MAX_FIELDS,
	    NULL, sign_on_body, &s->c)) == NULL) {
		dkim_signer_free(s);
		return NULL;
	}
	return s;
}

int
dkim_signer_feed(struct dkim_signer *s, const char *data, size_t n)
{
	return msg_parser_feed(s->mp, data, n);
}

int
dkim_signer_end(struct dkim_signer *s, const struct dkim_sign_params *p,
    size_t np, struct buf *out, char *err, size_t errlen)
{
	const struct msg_field **fields = NULL;
	unsigned char bh[DKIM_HASH_LEN];
	unsigned long long total;
	size_t nf, i;
	int ret = -1;

	if (np == 0) {
		snprintf(err, errlen, "no key");
		return -1;
	}
	for (i = 0; i < np; i++)
		if (sign_params_ok(&p[i], err, errlen) == -1)
			return -1;
	if (msg_parser_error(s->mp) != MSG_OK &&
	    msg_parser_error(s->mp) != MSG_ERR_SYNTAX) {
		snprintf(err, errlen, s->c.failed ||
		    msg_parser_error(s->mp) == MSG_ERR_NOMEM ?
		    "out of memory" : "header section too large");
		return -1;
	}
	if (msg_parser_end(s->mp) == -1 &&
	    msg_parser_error(s->mp) != MSG_ERR_SYNTAX) {
		snprintf(err, errlen, "header section too large");
		return -1;
	}
	if (dkim_body_final(s->c.body, bh, &total) == -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	nf = msg_parser_count(s->mp);
	if ((fields = calloc(nf + 1, sizeof(*fields))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < nf; i++)
		fields[i] = msg_parser_field(s->mp, i);
	if (count_fields(fields, nf, "from") == 0) {
		/* RFC 6376 5.4: From is required */
		snprintf(err, errlen, "message has no From field");
		goto done;
	}
	for (i = 0; i < np; i++)
		if (sign_one(&p[i], fields, nf, bh, out, err, errlen) == -1)
			goto done;
	ret = 0;
done:
	free(fields);
	return ret;
}

void
dkim_signer_free(struct dkim_signer *s)
{
	if (s == NULL)
		return;
	msg_parser_free(s->mp);
	dkim_body_free(s->c.body);
	free(s);
}

int
dkim_sign(const struct dkim_sign_params *p, const char *msg, size_t len,
    struct buf *out, char *err, size_t errlen)
{
	struct dkim_signer *s;
	int ret;

	if (sign_params_ok(p, err, errlen) == -1)
		return -1;
	if ((s = dkim_signer_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (dkim_signer_feed(s, msg, len) == -1 &&
	    msg_parser_error(s->mp) != MSG_ERR_SYNTAX) {
		snprintf(err, errlen, s->c.failed ? "out of memory" :
		    "header section too large");
		dkim_signer_free(s);
		return -1;
	}
	ret = dkim_signer_end(s, p, 1, out, err, errlen);
	dkim_signer_free(s);
	return ret;
}
