#include "auth/authres.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int
authres_begin(struct authres *ar, const char *authserv_id)
{
	memset(ar, 0, sizeof(*ar));
	return buf_appendf(&ar->b, "Authentication-Results: %s", authserv_id);
}

/* RFC 8601 2.2: a pvalue is a token-like value, "local@domain", or a
 * quoted-string; anything else from outside is quoted with \ and "
 * escaped and control octets replaced. */
static int
authres_value(struct buf *b, const char *v)
{
	const char *p;
	int token = *v != '\0';

	for (p = v; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= 0x20 || c >= 0x7f || strchr("()<>,;:\\\"/[]?=", c) != NULL)
			token = 0;
	}
	if (token)
		return buf_appends(b, v);
	buf_appendc(b, '"');
	for (p = v; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '"' || c == '\\')
			buf_appendc(b, '\\');
		buf_appendc(b, (c < 0x20 || c == 0x7f) ? '?' : (char)c);
	}
	return buf_appendc(b, '"');
}

/* A comment: parentheses and backslashes escaped, controls replaced. */
static int
authres_comment(struct buf *b, const char *text)
{
	const char *p;

	if (text == NULL || *text == '\0')
		return 0;
	buf_appends(b, " (");
	for (p = text; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '(' || c == ')' || c == '\\')
			buf_appendc(b, '\\');
		buf_appendc(b, (c < 0x20 || c == 0x7f) ? '?' : (char)c);
	}
	return buf_appendc(b, ')');
}

static void
authres_sep(struct authres *ar)
{
	/* one result per folded line keeps the field readable */
	buf_appends(&ar->b, ";\r\n\t");
	ar->n++;
}

int
authres_spf(struct authres *ar, enum spf_result r, const char *reason,
    int helo_identity, const char *identity)
{
	authres_sep(ar);
	buf_appendf(&ar->b, "spf=%s", spf_result_name(r));
	authres_comment(&ar->b, reason);
	buf_appends(&ar->b, helo_identity ? " smtp.helo=" : " smtp.mailfrom=");
	return authres_value(&ar->b, identity ? identity : "");
}

int
authres_dkim(struct authres *ar, const struct dkim_sig_result *r)
{
	char b8[9];

	authres_sep(ar);
	buf_appendf(&ar->b, "dkim=%s", dkim_result_name(r->result));
	authres_comment(&ar->b, r->reason);
	if (r->body_partial)
		authres_comment(&ar->b, "body partly signed (l=)");
	if (r->domain && *r->domain) {
		buf_appends(&ar->b, " header.d=");
		authres_value(&ar->b, r->domain);
	}
	if (r->identity && *r->identity) {
		buf_appends(&ar->b, " header.i=");
		authres_value(&ar->b, r->identity);
	}
	if (r->selector && *r->selector) {
		buf_appends(&ar->b, " header.s=");
		authres_value(&ar->b, r->selector);
	}
	if (r->algorithm && *r->algorithm) {
		buf_appends(&ar->b, " header.a=");
		authres_value(&ar->b, r->algorithm);
	}
	if (r->b && *r->b) {
		/* RFC 6008: enough of b= to tell signatures apart */
		snprintf(b8, sizeof(b8), "%s", r->b);
		buf_appends(&ar->b, " header.b=");
		authres_value(&ar->b, b8);
	}
	return 0;
}

int
authres_dkim_none(struct authres *ar)
{
	authres_sep(ar);
	return buf_appends(&ar->b, "dkim=none (no signature)");
}

int
authres_dmarc(struct authres *ar, enum dmarc_result r, const char *comment,
    const char *action, const char *header_from)
{
	authres_sep(ar);
	buf_appendf(&ar->b, "dmarc=%s", dmarc_result_name(r));
	authres_comment(&ar->b, comment);
	if (action && *action)
		buf_appendf(&ar->b, " action=%s", action);
	if (header_from && *header_from) {
		buf_appends(&ar->b, " header.from=");
		authres_value(&ar->b, header_from);
	}
	return 0;
}

int
authres_end(struct authres *ar, struct buf *out)
{
	if (ar->n == 0)
		buf_appends(&ar->b, "; none");	/* RFC 8601 2.2: no-result */
	buf_appends(&ar->b, "\r\n");
	return buf_append(out, ar->b.data, ar->b.len);
}

void
authres_free(struct authres *ar)
{
	buf_free(&ar->b);
}

int
authres_is_ours(const char *field, size_t len, const char *authserv_id)
{
	static const char name[] = "authentication-results:";
	size_t i = sizeof(name) - 1, idl = strlen(authserv_id);

	if (len < i || strncasecmp(field, name, i) != 0)
		return 0;
	/* skip folding white space and comments before the authserv-id */
	for (;;) {
		while (i < len && (field[i] == ' ' || field[i] == '\t' ||
		    field[i] == '\r' || field[i] == '\n'))
			i++;
		if (i < len && field[i] == '(') {
			int depth = 0;

			for (; i < len; i++) {
				if (field[i] == '\\') {
					i++;
					continue;
				}
				if (field[i] == '(')
					depth++;
				else if (field[i] == ')' && --depth == 0) {
					i++;
					break;
				}
			}
			continue;
		}
		break;
	}
	if (len - i < idl || strncasecmp(field + i, authserv_id, idl) != 0)
		return 0;
	i += idl;
	/* the id must end here: ";", space, comment, CRLF or end */
	return i == len || field[i] == ';' || field[i] == ' ' ||
	    field[i] == '\t' || field[i] == '(' || field[i] == '\r' ||
	    field[i] == '\n';
}
