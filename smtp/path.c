#include "smtp/path.h"

#include <arpa/inet.h>
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
