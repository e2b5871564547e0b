#include "smtp/path.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int
path_is_atext(unsigned char c, int utf8)
{
	/* RFC 5322 3.2.3 atext; RFC 6531 3.3 adds UTF-8 non-ASCII. */
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	if (c >= 0x80)
		return utf8;
	return strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL && c != '\0';
}

static int
path_is_letdig(unsigned char c, int utf8)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c >= 0x80 && utf8;
}

static int
path_check_literal(const char *d, size_t len)
{
	char tmp[SMTP_MAX_DOMAIN + 1];
	unsigned char addr[16];

	/* RFC 5321 4.1.3 address literals: [IPv4] or [IPv6:...] */
	if (len < 3 || d[len - 1] != ']' || len - 2 >= sizeof(tmp))
		return -1;
	memcpy(tmp, d + 1, len - 2);
	tmp[len - 2] = '\0';
	if (strncasecmp(tmp, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, tmp + 5, addr) == 1 ? 0 : -1;
	return inet_pton(AF_INET, tmp, addr) == 1 ? 0 : -1;
}

int
smtp_path_check_domain(const char *d, int allow_utf8)
{
	size_t len = strlen(d), i, label = 0;
	unsigned char prev = '.';

	if (len == 0 || len > SMTP_MAX_DOMAIN)
		return -1;
	if (d[0] == '[')
		return path_check_literal(d, len);
	/* RFC 5321 4.1.2: sub-domain = Let-dig [Ldh-str] */
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];

		if (c == '.') {
			if (prev == '.' || prev == '-')
				return -1;
			label = 0;
		} else if (c == '-') {
			if (prev == '.')
				return -1;
			label++;
		} else if (path_is_letdig(c, allow_utf8)) {
			label++;
		} else
			return -1;
		if (label > 63)
			return -1;
		prev = c;
	}
	return (prev == '.' || prev == '-') ? -1 : 0;
}

/* Length of a valid local part at s (Dot-string or Quoted-string), or 0. */
static size_t
path_localpart(const char *s, int utf8)
{
	size_t i = 0;

	if (s[0] == '"') {
		/* RFC 5321 4.1.2 Quoted-string */
		for (i = 1; s[i] != '\0' && s[i] != '"'; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c == '\\') {
				c = (unsigned char)s[++i];
				if (c < 32 || c > 126)
					return 0;
			} else if (c < 32 || c == 127 || (c >= 0x80 && !utf8))
				return 0;
		}
		return s[i] == '"' ? i + 1 : 0;
	}
	/* Dot-string = Atom *("." Atom) */
	for (;;) {
		size_t start = i;

		while (path_is_atext((unsigned char)s[i], utf8))
			i++;
		if (i == start)
			return 0;
		if (s[i] != '.')
			return i;
		i++;
	}
}

int
smtp_path_check_mailbox(const char *mbox, int allow_utf8, const char **err_r)
{
	size_t lp;

	if (strlen(mbox) > SMTP_MAX_PATH - 2) {
		*err_r = "path too long";
		return -1;
	}
	lp = path_localpart(mbox, allow_utf8);
	if (lp == 0 || mbox[lp] != '@') {
		*err_r = "bad local part";
		return -1;
	}
	if (lp > SMTP_MAX_LOCALPART) {
		*err_r = "local part longer than 64 octets";
		return -1;
	}
	if (smtp_path_check_domain(mbox + lp + 1, allow_utf8) == -1) {
		*err_r = "bad domain";
		return -1;
	}
	return 0;
}

static int
path_has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

static enum smtp_path_result
path_params(char *p, struct smtp_path_args *r, const char **err_r)
{
	/* RFC 5321 4.1.2: esmtp-param = esmtp-keyword ["=" esmtp-value] */
	while (*p) {
		char *kw, *v = NULL, *q;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		kw = p;
		while (*p && *p != ' ')
			p++;
		if (*p)
			*p++ = '\0';
		if ((q = strchr(kw, '=')) != NULL) {
			*q = '\0';
			v = q + 1;
			if (*v == '\0')
				goto bad;
			for (q = v; *q; q++)
				if ((unsigned char)*q < 33 || (unsigned char)*q > 126 ||
				    *q == '=')
					goto bad;
		}
		if (!((kw[0] >= 'a' && kw[0] <= 'z') || (kw[0] >= 'A' && kw[0] <= 'Z') ||
		    (kw[0] >= '0' && kw[0] <= '9')))
			goto bad;
		for (q = kw; *q; q++)
			if (!path_is_letdig((unsigned char)*q, 0) && *q != '-')
				goto bad;
		if (r->nparams == SMTP_MAX_PARAMS) {
			*err_r = "too many parameters";
			return SMTP_PATH_BADPARAM;
		}
		r->params[r->nparams].keyword = kw;
		r->params[r->nparams].value = v;
		r->nparams++;
	}
	return SMTP_PATH_OK;
bad:
	*err_r = "bad parameter syntax";
	return SMTP_PATH_BADPARAM;
}

enum smtp_path_result
smtp_path_parse(char *arg, const char *keyword, struct smtp_path_args *r,
    const char **err_r)
{
	size_t kl = strlen(keyword);
	char *p, *end, *mbox;
	int is_rcpt = strcasecmp(keyword, "TO") == 0;

	memset(r, 0, sizeof(*r));
	*err_r = "syntax error";
	if (strncasecmp(arg, keyword, kl) != 0 || arg[kl] != ':')
		return SMTP_PATH_SYNTAX;
	p = arg + kl + 1;
	while (*p == ' ')	/* tolerated: "MAIL FROM: <a@b>" */
		p++;
	if (*p != '<')
		return SMTP_PATH_SYNTAX;
	/* The path ends at the first '>' outside a quoted local part. */
	{
		int quoted = 0;

		for (end = p + 1; *end; end++) {
			if (quoted && *end == '\\' && end[1] != '\0') {
				end++;
				continue;
			}
			if (*end == '"')
				quoted = !quoted;
			else if (*end == '>' && !quoted)
				break;
		}
	}
	if (*end != '>')
		return SMTP_PATH_SYNTAX;
	if ((size_t)(end - p + 1) > SMTP_MAX_PATH) {
		*err_r = "path longer than 256 octets";
		return SMTP_PATH_TOOLONG;
	}
	*end = '\0';
	mbox = p + 1;
	if (end[1] != '\0' && end[1] != ' ')
		return SMTP_PATH_SYNTAX;

	/* RFC 5321 4.1.2 A-d-l: "@one,@two:user@host"; ignored (4.1.1.3). */
	if (mbox[0] == '@') {
		/* A-d-l = At-domain *( "," At-domain ), At-domain = "@" Domain */
		char *colon = strchr(mbox, ':'), *hop = mbox;

		if (colon == NULL) {
			*err_r = "bad source route";
			return SMTP_PATH_BADADDR;
		}
		*colon = '\0';
		while (hop) {
			char *comma = strchr(hop, ',');

			if (comma)
				*comma = '\0';
			if (hop[0] != '@' || smtp_path_check_domain(hop + 1, 0) == -1) {
				*err_r = "bad source route";
				return SMTP_PATH_BADADDR;
			}
			hop = comma ? comma + 1 : NULL;
		}
		mbox = colon + 1;
	}
	r->path = mbox;
	r->utf8 = path_has_8bit(mbox);
	if (*mbox == '\0') {
		if (is_rcpt) {
			*err_r = "null recipient";
			return SMTP_PATH_BADADDR;
		}
	} else if (is_rcpt && strcasecmp(mbox, "postmaster") == 0) {
		/* RFC 5321 4.1.1.3: <Postmaster> without a domain */
	} else {
		char *at;

		if (smtp_path_check_mailbox(mbox, 1, err_r) == -1)
			return strstr(*err_r, "long") ? SMTP_PATH_TOOLONG :
			    SMTP_PATH_BADADDR;
		at = strrchr(mbox, '@');
		r->domain = at + 1;
	}
	if (end[1] == ' ')
		return path_params(end + 2, r, err_r);
	return SMTP_PATH_OK;
}

const struct smtp_param *
smtp_path_param(const struct smtp_path_args *r, const char *keyword)
{
	size_t i;

	for (i = 0; i < r->nparams; i++)
		if (strcasecmp(r->params[i].keyword, keyword) == 0)
			return &r->params[i];
	return NULL;
}

/* ---- RFC 3461 DSN parameters ---- */

static int
path_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
smtp_xtext_decode(const char *s, char *out, size_t outlen)
{
	size_t n = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		/* RFC 3461 4: xchar = "!".."~" except "+" and "=" */
		if (c == '+') {
			int hi = path_hexval((unsigned char)s[1]), lo;

			lo = hi < 0 ? -1 : path_hexval((unsigned char)s[2]);
			if (lo < 0 || (hi == 0 && lo == 0))
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			s += 2;
		} else if (c < 33 || c > 126 || c == '=')
			return -1;
		if (out != NULL) {
			if (n + 1 >= outlen)
				return -1;
			out[n] = (char)c;
		}
		n++;
	}
	if (out != NULL) {
		if (outlen == 0)
			return -1;
		out[n] = '\0';
	}
	return (int)n;
}

int
smtp_xtext_check(const char *s)
{
	return smtp_xtext_decode(s, NULL, 0) < 0 ? -1 : 0;
}

int
smtp_dsn_notify_parse(const char *v, int *mask_r)
{
	static const struct {
		const char *word;
		int flag;
	} words[] = {
		{ "SUCCESS", SMTP_NOTIFY_SUCCESS },
		{ "FAILURE", SMTP_NOTIFY_FAILURE },
		{ "DELAY", SMTP_NOTIFY_DELAY },
		{ "NEVER", SMTP_NOTIFY_NEVER },
	};
	int mask = 0, n = 0;

	/* RFC 3461 4.1: "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ) */
	for (;;) {
		size_t len = strcspn(v, ","), i;

		for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (strlen(words[i].word) == len &&
			    strncasecmp(v, words[i].word, len) == 0)
				break;
		if (i == sizeof(words) / sizeof(words[0]))
			return -1;	/* unknown or empty element */
		mask |= words[i].flag;
		n++;
		if (v[len] == '\0')
			break;
		v += len + 1;
	}
	if ((mask & SMTP_NOTIFY_NEVER) && n > 1)
		return -1;	/* NEVER stands alone */
	*mask_r = mask;
	return 0;
}

const char *
smtp_dsn_notify_str(int mask, char *out, size_t outlen)
{
	static const struct {
		const char *word;
		int flag;
	} words[] = {
		{ "SUCCESS", SMTP_NOTIFY_SUCCESS },
		{ "FAILURE", SMTP_NOTIFY_FAILURE },
		{ "DELAY", SMTP_NOTIFY_DELAY },
	};
	size_t i, n = 0;

	if (outlen == 0)
		return "";
	out[0] = '\0';
	if (mask & SMTP_NOTIFY_NEVER) {
		snprintf(out, outlen, "NEVER");
		return out;
	}
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if ((mask & words[i].flag) && n < outlen)
			n += (size_t)snprintf(out + n, outlen - n, "%s%s",
			    n ? "," : "", words[i].word);
	return out;
}

int
smtp_dsn_orcpt_check(const char *v)
{
	const char *semi = strchr(v, ';'), *p;

	/* RFC 3461 4.2: addr-type ";" xtext; addr-type is an atom. The
	 * address need not follow the syntax of its type (4.2), so only the
	 * xtext is checked, as OpenSMTPD does. */
	if (strlen(v) > SMTP_DSN_ORCPT_MAX || semi == NULL || semi == v ||
	    semi[1] == '\0')
		return -1;
	for (p = v; p < semi; p++)
		if (!path_is_atext((unsigned char)*p, 0) || *p == '=')
			return -1;	/* no "=" in an esmtp-value (RFC 5321 4.1.2) */
	return smtp_xtext_check(semi + 1);
}

/* The value of a DSN parameter that may appear once and needs a value. */
static int
path_dsn_once(const struct smtp_path_args *a, const char *kw,
    const char **v_r, const char **err_r)
{
	size_t i;

	*v_r = NULL;
	for (i = 0; i < a->nparams; i++) {
		if (strcasecmp(a->params[i].keyword, kw) != 0)
			continue;
		if (*v_r != NULL) {
			*err_r = "parameter given twice";
			return -1;
		}
		if (a->params[i].value == NULL) {
			*err_r = "parameter needs a value";
			return -1;
		}
		*v_r = a->params[i].value;
	}
	return 0;
}

int
smtp_path_dsn_mail(const struct smtp_path_args *a, struct smtp_dsn_mail *r,
    const char **err_r)
{
	const char *v;

	memset(r, 0, sizeof(*r));
	if (path_dsn_once(a, "RET", &v, err_r) == -1)
		return -1;
	if (v != NULL) {
		/* RFC 3461 4.3 */
		if (strcasecmp(v, "FULL") == 0)
			r->ret = SMTP_RET_FULL;
		else if (strcasecmp(v, "HDRS") == 0)
			r->ret = SMTP_RET_HDRS;
		else {
			*err_r = "RET must be FULL or HDRS";
			return -1;
		}
	}
	if (path_dsn_once(a, "ENVID", &v, err_r) == -1)
		return -1;
	if (v != NULL) {
		/* RFC 3461 4.4: xtext, at most 100 characters */
		if (strlen(v) > SMTP_DSN_ENVID_MAX || smtp_xtext_check(v) == -1) {
			*err_r = "bad ENVID (xtext of at most 100 characters)";
			return -1;
		}
		r->envid = v;
	}
	return 0;
}

int
smtp_path_dsn_rcpt(const struct smtp_path_args *a, struct smtp_dsn_rcpt *r,
    const char **err_r)
{
	const char *v;

	memset(r, 0, sizeof(*r));
	if (path_dsn_once(a, "NOTIFY", &v, err_r) == -1)
		return -1;
	if (v != NULL && smtp_dsn_notify_parse(v, &r->notify) == -1) {
		*err_r = "NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY";
		return -1;
	}
	if (path_dsn_once(a, "ORCPT", &v, err_r) == -1)
		return -1;
	if (v != NULL) {
		if (smtp_dsn_orcpt_check(v) == -1) {
			*err_r = "bad ORCPT (addr-type;xtext, at most 500 characters)";
			return -1;
		}
		r->orcpt = v;
	}
	return 0;
}
