/*
 * auth/spf_header: the Received-SPF header field (RFC 7208 9.1) of a
 * finished check. Client-supplied text is quoted or escaped so it can
 * neither break the field nor inject CR/LF.
 */
#include <stdio.h>
#include <string.h>

#include "auth/spf.h"
#include "auth/spf_int.h"
#include "lib/buf.h"

/* RFC 5322 atext, for the dot-atom form of a key=value value. */
static int
is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~",
	    c) != NULL);
}

static int
is_dot_atom(const char *v)
{
	size_t i, len = strlen(v);

	if (len == 0 || v[0] == '.' || v[len - 1] == '.')
		return 0;
	for (i = 0; i < len; i++) {
		if (v[i] == '.' ? v[i + 1] == '.' : !is_atext((unsigned char)v[i]))
			return 0;
	}
	return 1;
}

/* Client text into a comment or quoted-string: printable, escaped. */
static void
append_escaped(struct buf *b, const char *v, const char *special)
{
	for (; *v != '\0'; v++) {
		unsigned char c = (unsigned char)*v;

		if (c < 0x20 || c >= 0x7f)
			c = '?';
		else if (strchr(special, c) != NULL)
			buf_appendc(b, '\\');
		buf_appendc(b, (char)c);
	}
}

static void
append_kv(struct buf *b, const char *key, const char *v)
{
	buf_appendf(b, " %s=", key);
	if (is_dot_atom(v)) {
		buf_appends(b, v);
	} else {
		buf_appendc(b, '"');
		append_escaped(b, v, "\"\\");
		buf_appendc(b, '"');
	}
	buf_appendc(b, ';');
}

int
spf_received_header(const struct spf *s, const char *receiver, char *out,
    size_t n)
{
	struct buf b = { 0 }, c = { 0 };
	struct spf_facts f;
	const char *rcv, *ip;
	int rc = -1;

	spf_facts(s, &f);
	rcv = receiver != NULL && receiver[0] != '\0' ? receiver : f.receiver;
	ip = f.ip;

	/* RFC 7208 9.1: result (comment) key=value; ... */
	buf_appendf(&c, "%s: ", rcv);
	switch (f.result) {
	case SPF_PASS:
		buf_appendf(&c, "domain of %s designates %s as permitted sender",
		    f.sender, ip);
		break;
	case SPF_FAIL:
		buf_appendf(&c, "domain of %s does not designate %s as "
		    "permitted sender", f.sender, ip);
		break;
	case SPF_SOFTFAIL:
		buf_appendf(&c, "domain of transitioning %s does not "
		    "designate %s as permitted sender", f.sender, ip);
		break;
	case SPF_NEUTRAL:
		buf_appendf(&c, "%s is neither permitted nor denied by domain "
		    "of %s", ip, f.sender);
		break;
	case SPF_NONE:
		buf_appendf(&c, "domain of %s does not publish an SPF record",
		    f.sender);
		break;
	case SPF_TEMPERROR:
		buf_appendf(&c, "temporary error checking %s: %s", f.sender,
		    spf_reason(s));
		break;
	case SPF_PERMERROR:
		buf_appendf(&c, "permanent error in the SPF record of %s: %s",
		    f.sender, spf_reason(s));
		break;
	}
	buf_appendf(&b, "Received-SPF: %s (", spf_result_name(f.result));
	if (c.data != NULL)
		append_escaped(&b, c.data, "()\\");
	buf_appendc(&b, ')');
	append_kv(&b, "client-ip", ip);
	append_kv(&b, "envelope-from", f.identity == SPF_ID_MAILFROM ?
	    f.orig_sender : "");
	append_kv(&b, "helo", f.helo);
	append_kv(&b, "receiver", rcv);
	append_kv(&b, "identity", f.identity == SPF_ID_HELO ? "helo" :
	    "mailfrom");
	if (b.data != NULL && b.len < n) {
		memcpy(out, b.data, b.len + 1);
		rc = 0;
	} else if (n > 0) {
		out[0] = '\0';
	}
	buf_free(&b);
	buf_free(&c);
	return rc;
}
