/*
 * auth/spf.c: check_host() (RFC 7208 4) as a resumable engine.
 *
 * Evaluation is depth first over a fixed stack of frames (one per
 * record being evaluated: the top domain, then each include; redirect
 * replaces its frame). At most one DNS question is outstanding; the
 * answer handlers record what they learnt and the step loop goes on.
 * The p macro needs lookups of its own: they run as a separate stage
 * before the term (or explanation) that uses it is expanded.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/spf.h"
#include "lib/dns.h"
#include "auth/spf_int.h"

#define SPF_MAX_TERMS		10	/* RFC 7208 4.6.4 */
#define SPF_MAX_VOID		2	/* RFC 7208 4.6.4 */
#define SPF_MAX_NAMES		10	/* RFC 7208 4.6.4: MX and PTR names */
#define SPF_MAX_QUESTIONS	150	/* 1 + 10 * 11 + p + exp fit */
#define SPF_MAX_DEPTH		(SPF_MAX_TERMS + 2)
#define SPF_TRACE_MAX		16384
#define SPF_INPUT_MAX		1024	/* sender / HELO octets kept */
#define SPF_DEFAULT_EXP	"domain of %{o} does not designate %{c} as " \
				"permitted sender"

enum spf_qkind {
	Q_NONE, Q_RECORD, Q_A, Q_MX, Q_MX_ADDR, Q_PTR, Q_PTR_ADDR,
	Q_EXISTS, Q_EXP, Q_P_PTR, Q_P_ADDR,
};

enum spf_stage { ST_EVAL, ST_P, ST_EXP, ST_DONE };

struct spf_frame {
	char domain[SPF_NAME_MAX + 1];
	struct spf_record *rec;		/* NULL until its TXT answer */
	size_t ti;			/* term being evaluated */
	int redirected;
};

struct spf_names {
	char *name[SPF_MAX_NAMES];
	int ok[SPF_MAX_NAMES];
	size_t n, i;
};

struct spf {
	enum spf_identity identity;
	char *sender, *local, *sdomain, *helo, *receiver;
	char *orig_sender;		/* MAIL FROM as given */
	int family;			/* AF_INET or AF_INET6; 0 bad */
	unsigned char addr[16];
	char ip_i[80], ip_c[INET6_ADDRSTRLEN], rev[80];
	long long now;

	struct spf_frame fr[SPF_MAX_DEPTH];
	size_t depth;
	int nterms, nvoid, nq;
	int active;			/* the current term is under way */
	char target[SPF_NAME_MAX + 1];
	struct spf_names names;		/* MX exchanges / PTR names */

	int p_state;			/* 0 unknown, 1 looking, 2 known */
	enum spf_stage p_resume;
	struct spf_names pn;

	int exp_state;			/* 0 start, 1 asked, 2 have text */
	char *exp_text;

	enum spf_stage stage;
	enum spf_qkind qk;
	char qname[SPF_NAME_MAX + 1];
	enum dns_type qtype;
	int waiting;

	enum spf_result result;
	struct buf explanation, reason, trace;
};

static void names_clear(struct spf_names *);
static void finish(struct spf *, enum spf_result, const char *, ...)
	__attribute__((format(printf, 3, 4)));

/* Untrusted text into our own strings: printable ASCII only. */
static void
append_safe(struct buf *b, const char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i < max; i++) {
		unsigned char c = (unsigned char)s[i];

		buf_appendc(b, c >= 0x20 && c < 0x7f ? (char)c : '?');
	}
}

static void
trace(struct spf *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
trace(struct spf *s, const char *fmt, ...)
{
	struct buf line = { 0 };
	va_list ap;

	if (s->trace.len >= SPF_TRACE_MAX)
		return;
	va_start(ap, fmt);
	buf_vappendf(&line, fmt, ap);
	va_end(ap);
	if (line.data != NULL) {
		append_safe(&s->trace, line.data, SPF_TRACE_MAX);
		buf_appendc(&s->trace, '\n');
	}
	buf_free(&line);
}

static void
finish(struct spf *s, enum spf_result r, const char *fmt, ...)
{
	struct buf line = { 0 };
	va_list ap;

	s->result = r;
	s->stage = ST_DONE;
	s->waiting = 0;
	s->qk = Q_NONE;
	buf_reset(&s->reason);
	va_start(ap, fmt);
	buf_vappendf(&line, fmt, ap);
	va_end(ap);
	if (line.data != NULL)
		append_safe(&s->reason, line.data, 1024);
	buf_free(&line);
}

static char *
dup_cap(const char *p)
{
	return strndup(p != NULL ? p : "", SPF_INPUT_MAX);
}

static void
set_ip(struct spf *s, const char *ip)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char a6[16];
	char *p;
	int i;

	if (ip != NULL && inet_pton(AF_INET, ip, s->addr) == 1) {
		s->family = AF_INET;
	} else if (ip != NULL && inet_pton(AF_INET6, ip, a6) == 1) {
		/* RFC 7208 5: an IPv4-mapped IPv6 client is IPv4 */
		if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a6)) {
			s->family = AF_INET;
			memcpy(s->addr, a6 + 12, 4);
		} else {
			s->family = AF_INET6;
			memcpy(s->addr, a6, 16);
		}
	} else {
		return;
	}
	inet_ntop(s->family, s->addr, s->ip_c, sizeof(s->ip_c));
	dns_reverse_name(s->ip_c, s->rev, sizeof(s->rev));
	if (s->family == AF_INET) {
		memcpy(s->ip_i, s->ip_c, sizeof(s->ip_c));
		return;
	}
	/* RFC 7208 7.3: i is dotted nibbles for IPv6 */
	for (p = s->ip_i, i = 0; i < 16; i++) {
		*p++ = hex[s->addr[i] >> 4];
		*p++ = '.';
		*p++ = hex[s->addr[i] & 15];
		*p++ = i == 15 ? '\0' : '.';
	}
}

/*
 * A name we may put in a DNS question: RFC 7208 4.3 and 7.3. The
 * initial domain must also have two labels and no brackets.
 */
static int
name_ok(const char *d, int initial)
{
	size_t len = strlen(d), lab = 0, nlab = 1, i;

	if (len > 0 && d[len - 1] == '.')
		len--;
	if (len == 0 || len > SPF_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];

		if (c < 0x20 || c > 0x7e || (initial && (c == ' ' ||
		    c == '[' || c == ']')))
			return 0;
		if (c == '.') {
			if (lab == 0)
				return 0;
			lab = 0;
			nlab++;
		} else if (++lab > SPF_LABEL_MAX) {
			return 0;
		}
	}
	return lab > 0 && (!initial || nlab >= 2);
}

static int
name_eq_or_sub(const char *name, const char *dom)
{
	size_t nl = strlen(name), dl = strlen(dom);

	if (nl > 0 && name[nl - 1] == '.')
		nl--;
	if (dl > 0 && dom[dl - 1] == '.')
		dl--;
	if (nl < dl || strncasecmp(name + nl - dl, dom, dl) != 0)
		return 0;
	return nl == dl || name[nl - dl - 1] == '.';
}

/* RFC 7208 7.3: p prefers <domain>, then a subdomain, then any. */
static const char *
p_value(const struct spf *s, const char *dom)
{
	size_t i;

	for (i = 0; i < s->pn.n; i++)
		if (s->pn.ok[i] && strcasecmp(s->pn.name[i], dom) == 0)
			return s->pn.name[i];
	for (i = 0; i < s->pn.n; i++)
		if (s->pn.ok[i] && name_eq_or_sub(s->pn.name[i], dom))
			return s->pn.name[i];
	for (i = 0; i < s->pn.n; i++)
		if (s->pn.ok[i])
			return s->pn.name[i];
	return "unknown";
}

static void
macro_ctx(const struct spf *s, const char *dom, struct spf_macro_ctx *c)
{
	c->sender = s->sender;
	c->local = s->local;
	c->sdomain = s->sdomain;
	c->domain = dom;
	c->ip_i = s->ip_i;
	c->ip_c = s->ip_c;
	c->ptr = p_value(s, dom);
	c->v = s->family == AF_INET6 ? "ip6" : "in-addr";
	c->helo = s->helo;
	c->receiver = s->receiver;
	c->now = s->now;
}

/*
 * Expands a domain-spec into s->target, for a DNS question: trailing dot
 * dropped, cut from the left to 253 octets (RFC 7208 7.3). 0, -1 syntax,
 * -2 too long, 1 expanded but not a usable name (RFC 7208 4.3, 5: no
 * match).
 */
static int
expand_target(struct spf *s, const char *spec, size_t len, const char *dom)
{
	struct spf_macro_ctx c;
	struct buf b = { 0 };
	const char *p;
	size_t n;
	int rc;

	macro_ctx(s, dom, &c);
	if ((rc = spf_macro_expand(&c, spec, len, 0, &b)) != 0)
		goto out;
	p = b.data != NULL ? b.data : "";
	n = b.len;
	if (n > 0 && p[n - 1] == '.')
		n--;
	while (n > SPF_NAME_MAX) {
		const char *dot = memchr(p, '.', n);

		if (dot == NULL)
			break;
		n -= (size_t)(dot + 1 - p);
		p = dot + 1;
	}
	if (n > SPF_NAME_MAX) {
		rc = 1;
		goto out;
	}
	memcpy(s->target, p, n);
	s->target[n] = '\0';
	rc = name_ok(s->target, 0) ? 0 : 1;
out:
	buf_free(&b);
	return rc;
}

static int
ask(struct spf *s, enum spf_qkind k, const char *name, enum dns_type t)
{
	/* a bound on the whole check, beyond the RFC's per-term limits */
	if (s->nq >= SPF_MAX_QUESTIONS) {
		finish(s, SPF_PERMERROR, "too many DNS questions");
		return -1;
	}
	s->nq++;
	s->qk = k;
	snprintf(s->qname, sizeof(s->qname), "%s", name);
	s->qtype = t;
	s->waiting = 1;
	return 0;
}

static enum dns_type
addr_type(const struct spf *s)
{
	return s->family == AF_INET6 ? DNS_T_AAAA : DNS_T_A;
}

static int
cidr_match(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;
	unsigned char mask;

	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

/* Does an A/AAAA answer hold the client (within the CIDR)? */
static int
answer_matches(const struct spf *s, const struct dns_answer *a,
    unsigned c4, unsigned c6)
{
	size_t i;

	for (i = 0; i < a->n; i++) {
		const struct dns_rr *rr = &a->rr[i];

		if (rr->family != s->family)
			continue;
		if (cidr_match(rr->addr, s->addr,
		    s->family == AF_INET ? c4 : c6))
			return 1;
	}
	return 0;
}

static int
dns_failed(const struct dns_answer *a)
{
	return a->status == DNS_SERVFAIL || a->status == DNS_TIMEOUT ||
	    a->status == DNS_ERROR;
}

static int
dns_void(const struct dns_answer *a)
{
	return a->status == DNS_NXDOMAIN || a->status == DNS_NODATA ||
	    (a->status == DNS_OK && a->n == 0);
}

static struct spf_frame *
top(struct spf *s)
{
	return &s->fr[s->depth - 1];
}

static struct spf_term *
cur_term(struct spf *s)
{
	struct spf_frame *f = top(s);

	return &f->rec->terms[f->ti];
}

static enum spf_result
qual_result(char q)
{
	switch (q) {
	case '-': return SPF_FAIL;
	case '~': return SPF_SOFTFAIL;
	case '?': return SPF_NEUTRAL;
	}
	return SPF_PASS;
}

static void
push(struct spf *s, const char *domain)
{
	struct spf_frame *f;

	if (s->depth == SPF_MAX_DEPTH) {
		finish(s, SPF_PERMERROR, "too many DNS lookups");
		return;
	}
	f = &s->fr[s->depth++];
	memset(f, 0, sizeof(*f));
	snprintf(f->domain, sizeof(f->domain), "%s", domain);
}

/*
 * The top frame has a result. RFC 7208 5.2: an include's pass is a
 * match, fail/softfail/neutral no match, temperror and permerror go up,
 * none is a permerror. A loop, not recursion, walks up the frames.
 */
static void
frame_done(struct spf *s, enum spf_result r)
{
	struct spf_term *t;

	while (s->depth > 1) {
		spf_record_free(top(s)->rec);
		s->depth--;
		s->active = 0;
		t = cur_term(s);
		switch (r) {
		case SPF_PASS:
			r = qual_result(t->qual);
			trace(s, "%s: %s -> match", top(s)->domain, t->text);
			buf_reset(&s->reason);
			buf_appends(&s->reason, "matched ");
			append_safe(&s->reason, t->text, 512);
			continue;
		case SPF_FAIL:
		case SPF_SOFTFAIL:
		case SPF_NEUTRAL:
			trace(s, "%s: %s -> no match", top(s)->domain,
			    t->text);
			top(s)->ti++;
			return;
		case SPF_TEMPERROR:
			finish(s, r, "temperror in %s", t->text);
			return;
		default:
			finish(s, SPF_PERMERROR, "permerror in %s", t->text);
			return;
		}
	}
	s->result = r;
	if (r == SPF_FAIL) {
		s->stage = ST_EXP;
		s->exp_state = 0;
	} else {
		s->stage = ST_DONE;
	}
}

static void
matched(struct spf *s)
{
	struct spf_term *t = cur_term(s);

	s->active = 0;
	names_clear(&s->names);
	trace(s, "%s: %s -> match", top(s)->domain, t->text);
	buf_reset(&s->reason);
	buf_appends(&s->reason, "matched ");
	append_safe(&s->reason, t->text, 512);
	frame_done(s, qual_result(t->qual));
}

static void
no_match(struct spf *s, const char *why)
{
	struct spf_term *t = cur_term(s);

	s->active = 0;
	names_clear(&s->names);
	trace(s, "%s: %s -> no match%s%s", top(s)->domain, t->text,
	    why ? ", " : "", why ? why : "");
	top(s)->ti++;
}

/* RFC 7208 4.6.4: void lookups beyond two are a permerror. */
static int
count_void(struct spf *s)
{
	if (++s->nvoid > SPF_MAX_VOID) {
		finish(s, SPF_PERMERROR, "void lookup limit");
		return -1;
	}
	return 0;
}

static void
p_start(struct spf *s, enum spf_stage resume)
{
	s->p_resume = resume;
	/* keep room so the p lookups never hit the question bound */
	if (s->nq + 1 + SPF_MAX_NAMES >= SPF_MAX_QUESTIONS) {
		s->p_state = 2;
		return;
	}
	s->p_state = 1;
	s->stage = ST_P;
	ask(s, Q_P_PTR, s->rev, DNS_T_PTR);
}

static void
p_advance(struct spf *s)
{
	if (s->pn.i < s->pn.n) {
		ask(s, Q_P_ADDR, s->pn.name[s->pn.i], addr_type(s));
		return;
	}
	s->p_state = 2;
	s->stage = s->p_resume;
}

static int
need_p(struct spf *s, const char *spec, size_t len, enum spf_stage resume)
{
	if (s->p_state == 2 || spec == NULL || !spf_macro_uses_p(spec, len))
		return 0;
	p_start(s, resume);
	return s->p_state == 1;
}

static void
start_term(struct spf *s)
{
	struct spf_frame *f = top(s);
	struct spf_term *t = cur_term(s);
	const char *spec = t->spec;
	size_t len = t->speclen;
	int rc;

	switch (t->mech) {
	case SPF_M_ALL:
		matched(s);
		return;
	case SPF_M_IP4:
	case SPF_M_IP6:
		if (s->family == (t->mech == SPF_M_IP4 ? AF_INET : AF_INET6) &&
		    cidr_match(t->addr, s->addr,
		    t->mech == SPF_M_IP4 ? t->cidr4 : t->cidr6))
			matched(s);
		else
			no_match(s, NULL);
		return;
	default:
		break;
	}
	if (need_p(s, spec, len, ST_EVAL))
		return;
	/* RFC 7208 4.6.4: at most 10 DNS-querying terms */
	if (++s->nterms > SPF_MAX_TERMS) {
		finish(s, SPF_PERMERROR, "too many DNS lookups");
		return;
	}
	if (spec == NULL) {
		/* the default target is <domain> itself, not a macro-string */
		snprintf(s->target, sizeof(s->target), "%s", f->domain);
		rc = name_ok(s->target, 0) ? 0 : 1;
	} else {
		rc = expand_target(s, spec, len, f->domain);
	}
	if (rc < 0) {
		finish(s, SPF_PERMERROR, "macro expansion failed in %s",
		    t->text);
		return;
	}
	if (rc == 1) {
		/* RFC 7208 4.3, 5.2: an unusable name has no record */
		if (t->mech == SPF_M_INCLUDE)
			finish(s, SPF_PERMERROR, "bad include target in %s",
			    t->text);
		else
			no_match(s, "invalid target name");
		return;
	}
	s->active = t->mech != SPF_M_INCLUDE;
	switch (t->mech) {
	case SPF_M_A:
		ask(s, Q_A, s->target, addr_type(s));
		break;
	case SPF_M_MX:
		ask(s, Q_MX, s->target, DNS_T_MX);
		break;
	case SPF_M_PTR:
		ask(s, Q_PTR, s->rev, DNS_T_PTR);
		break;
	case SPF_M_EXISTS:
		ask(s, Q_EXISTS, s->target, DNS_T_A);
		break;
	case SPF_M_INCLUDE:
		trace(s, "%s: %s -> checking %s", f->domain, t->text,
		    s->target);
		push(s, s->target);
		break;
	default:
		break;
	}
}

/* RFC 7208 6.1: redirect only when no mechanism matched. */
static void
start_redirect(struct spf *s)
{
	struct spf_frame *f = top(s);
	const char *spec = f->rec->redirect;
	int rc;

	if (need_p(s, spec, strlen(spec), ST_EVAL))
		return;
	if (++s->nterms > SPF_MAX_TERMS) {
		finish(s, SPF_PERMERROR, "too many DNS lookups");
		return;
	}
	rc = expand_target(s, spec, strlen(spec), f->domain);
	if (rc != 0) {
		finish(s, SPF_PERMERROR, "bad redirect target");
		return;
	}
	trace(s, "%s: redirect=%s -> checking %s", f->domain, spec,
	    s->target);
	spf_record_free(f->rec);
	f->rec = NULL;
	f->ti = 0;
	f->redirected = 1;
	snprintf(f->domain, sizeof(f->domain), "%s", s->target);
}

static void
mech_continue(struct spf *s)
{
	struct spf_term *t = cur_term(s);

	while (s->names.i < s->names.n && s->names.name[s->names.i][0] == '\0')
		s->names.i++;
	if (s->names.i < s->names.n) {
		ask(s, t->mech == SPF_M_MX ? Q_MX_ADDR : Q_PTR_ADDR,
		    s->names.name[s->names.i], addr_type(s));
		return;
	}
	no_match(s, NULL);
}

static void
eval_advance(struct spf *s)
{
	struct spf_frame *f = top(s);

	if (f->rec == NULL) {
		ask(s, Q_RECORD, f->domain, DNS_T_TXT);
		return;
	}
	if (s->active) {
		mech_continue(s);
		return;
	}
	if (f->ti < f->rec->nterms) {
		start_term(s);
		return;
	}
	if (f->rec->redirect != NULL) {
		start_redirect(s);
		return;
	}
	/* RFC 7208 4.7: no match and no redirect is neutral */
	trace(s, "%s: no match, default neutral", f->domain);
	if (s->depth == 1) {
		buf_reset(&s->reason);
		buf_appends(&s->reason, "no match, default neutral");
	}
	frame_done(s, SPF_NEUTRAL);
}

static void
set_explanation(struct spf *s, const char *text)
{
	buf_reset(&s->explanation);
	append_safe(&s->explanation, text, SPF_EXPAND_MAX);
	if (s->explanation.data == NULL)
		buf_appends(&s->explanation, "");
	s->stage = ST_DONE;
}

static void
exp_default(struct spf *s)
{
	struct spf_macro_ctx c;
	struct buf b = { 0 };

	macro_ctx(s, top(s)->domain, &c);
	if (spf_macro_expand(&c, SPF_DEFAULT_EXP, strlen(SPF_DEFAULT_EXP), 1,
	    &b) == 0 && b.data != NULL)
		set_explanation(s, b.data);
	else
		set_explanation(s, "not a permitted sender");
	buf_free(&b);
}

/*
 * RFC 7208 6.2: the explanation, looked up after the result; any
 * problem means the default. It does not count against the limits.
 */
static void
exp_start(struct spf *s)
{
	struct spf_frame *f = &s->fr[0];
	struct spf_macro_ctx c;
	struct buf b = { 0 };
	const char *spec = f->rec != NULL ? f->rec->exp : NULL;

	if (s->exp_state == 2) {
		if (need_p(s, s->exp_text, strlen(s->exp_text), ST_EXP))
			return;
		macro_ctx(s, f->domain, &c);
		if (spf_macro_expand(&c, s->exp_text, strlen(s->exp_text), 1,
		    &b) == 0)
			set_explanation(s, b.data != NULL ? b.data : "");
		else
			exp_default(s);
		buf_free(&b);
		return;
	}
	if (spec == NULL || s->nq >= SPF_MAX_QUESTIONS) {
		exp_default(s);
		return;
	}
	if (need_p(s, spec, strlen(spec), ST_EXP))
		return;
	if (expand_target(s, spec, strlen(spec), f->domain) != 0) {
		exp_default(s);
		return;
	}
	s->exp_state = 1;
	ask(s, Q_EXP, s->target, DNS_T_TXT);
}

static void
answer_record(struct spf *s, const struct dns_answer *a)
{
	struct spf_frame *f = top(s);
	const struct dns_rr *found = NULL;
	const char *err;
	size_t i, n = 0;

	if (dns_failed(a)) {
		finish(s, SPF_TEMPERROR, "DNS error looking up SPF record of "
		    "%s", f->domain);
		return;
	}
	for (i = 0; a->status == DNS_OK && i < a->n; i++) {
		if (a->rr[i].text != NULL &&
		    spf_record_is_spf(a->rr[i].text, a->rr[i].len)) {
			found = &a->rr[i];
			n++;
		}
	}
	if (n > 1) {
		/* RFC 7208 4.5 */
		finish(s, SPF_PERMERROR, "multiple SPF records at %s",
		    f->domain);
		return;
	}
	if (n == 0) {
		if (s->depth == 1 && !f->redirected)
			finish(s, SPF_NONE, "no SPF record at %s", f->domain);
		else
			/* RFC 7208 5.2, 6.1: none below is a permerror */
			finish(s, SPF_PERMERROR, "no SPF record at %s",
			    f->domain);
		return;
	}
	if (spf_record_parse(found->text, found->len, &f->rec, &err) == -1) {
		finish(s, SPF_PERMERROR, "%s at %s", err, f->domain);
		return;
	}
	trace(s, "%s: record found", f->domain);
}

static void
names_clear(struct spf_names *nm)
{
	size_t i;

	for (i = 0; i < nm->n; i++)
		free(nm->name[i]);
	memset(nm, 0, sizeof(*nm));
}

/* Keep the first names of an MX or PTR answer. */
static void
names_take(struct spf_names *nm, const struct dns_answer *a, int mx,
    const char *filter)
{
	size_t i;

	names_clear(nm);
	for (i = 0; i < a->n && nm->n < SPF_MAX_NAMES; i++) {
		const char *t = a->rr[i].text != NULL ? a->rr[i].text : "";

		if (filter != NULL && !name_eq_or_sub(t, filter))
			continue;
		if (!mx && !name_ok(t, 0))
			continue;
		if ((nm->name[nm->n] = strndup(t, SPF_NAME_MAX + 1)) == NULL)
			return;
		if (mx && !name_ok(t, 0))
			nm->name[nm->n][0] = '\0';	/* skipped */
		nm->n++;
	}
}

static void
answer_mech(struct spf *s, enum spf_qkind k, const struct dns_answer *a)
{
	struct spf_term *t = cur_term(s);

	switch (k) {
	case Q_A:
	case Q_EXISTS:
	case Q_MX:
		/* RFC 7208 5: DNS errors are temperror */
		if (dns_failed(a)) {
			finish(s, SPF_TEMPERROR, "DNS error in %s", t->text);
			return;
		}
		if (dns_void(a)) {
			if (count_void(s) == 0)
				no_match(s, "void lookup");
			return;
		}
		if (k == Q_A) {
			if (answer_matches(s, a, t->cidr4, t->cidr6))
				matched(s);
			else
				no_match(s, NULL);
		} else if (k == Q_EXISTS) {
			/* RFC 7208 5.7: any A record matches */
			matched(s);
		} else if (a->n > SPF_MAX_NAMES) {
			/* RFC 7208 4.6.4 */
			finish(s, SPF_PERMERROR, "too many MX names in %s",
			    t->text);
		} else {
			names_take(&s->names, a, 1, NULL);
		}
		return;
	case Q_MX_ADDR:
		if (dns_failed(a)) {
			finish(s, SPF_TEMPERROR, "DNS error in %s", t->text);
			return;
		}
		if (a->status == DNS_OK && answer_matches(s, a, t->cidr4,
		    t->cidr6))
			matched(s);
		else
			s->names.i++;
		return;
	case Q_PTR:
		/* RFC 7208 5.5: a failed PTR lookup does not match */
		if (dns_void(a) && count_void(s) == -1)
			return;
		if (a->status != DNS_OK) {
			no_match(s, NULL);
			return;
		}
		/* the first 10 names; only those in the target matter */
		{
			struct dns_answer first = *a;

			if (first.n > SPF_MAX_NAMES)
				first.n = SPF_MAX_NAMES;
			names_take(&s->names, &first, 0, s->target);
		}
		return;
	case Q_PTR_ADDR:
		/* RFC 7208 5.5: errors skip the name */
		if (a->status == DNS_OK && answer_matches(s, a, 32, 128))
			matched(s);
		else
			s->names.i++;
		return;
	default:
		return;
	}
}

static void
answer_exp(struct spf *s, const struct dns_answer *a)
{
	const struct dns_rr *rr;

	/* RFC 7208 6.2: exactly one TXT record, or the default */
	if (a->status != DNS_OK || a->n != 1 || a->rr[0].text == NULL ||
	    memchr(a->rr[0].text, '\0', a->rr[0].len) != NULL ||
	    a->rr[0].len > SPF_RECORD_MAX) {
		exp_default(s);
		return;
	}
	rr = &a->rr[0];
	free(s->exp_text);
	if ((s->exp_text = strndup(rr->text, rr->len)) == NULL) {
		exp_default(s);
		return;
	}
	s->exp_state = 2;
}

void
spf_answer(struct spf *s, const struct dns_answer *a)
{
	enum spf_qkind k;

	if (s == NULL || !s->waiting || a == NULL)
		return;
	k = s->qk;
	s->waiting = 0;
	s->qk = Q_NONE;
	switch (k) {
	case Q_RECORD:
		answer_record(s, a);
		break;
	case Q_A:
	case Q_MX:
	case Q_MX_ADDR:
	case Q_PTR:
	case Q_PTR_ADDR:
	case Q_EXISTS:
		answer_mech(s, k, a);
		break;
	case Q_EXP:
		answer_exp(s, a);
		break;
	case Q_P_PTR:
		if (a->status == DNS_OK) {
			struct dns_answer first = *a;

			if (first.n > SPF_MAX_NAMES)
				first.n = SPF_MAX_NAMES;
			names_take(&s->pn, &first, 0, NULL);
		}
		break;
	case Q_P_ADDR:
		if (a->status == DNS_OK && answer_matches(s, a, 32, 128))
			s->pn.ok[s->pn.i] = 1;
		s->pn.i++;
		break;
	default:
		break;
	}
}

enum spf_step
spf_step(struct spf *s, const char **name_r, enum dns_type *type_r)
{
	for (;;) {
		if (s->waiting) {
			*name_r = s->qname;
			*type_r = s->qtype;
			return SPF_NEED_DNS;
		}
		switch (s->stage) {
		case ST_EVAL:
			eval_advance(s);
			break;
		case ST_P:
			p_advance(s);
			break;
		case ST_EXP:
			exp_start(s);
			break;
		case ST_DONE:
			return SPF_DONE;
		}
	}
}

struct spf *
spf_new(const struct spf_params *p)
{
	struct spf *s;
	const char *at, *from;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->identity = p->identity;
	s->now = p->now != 0 ? p->now : (long long)time(NULL);
	set_ip(s, p->ip);
	s->helo = dup_cap(p->helo);
	s->receiver = dup_cap(p->receiver != NULL && p->receiver[0] != '\0' ?
	    p->receiver : "unknown");
	from = p->identity == SPF_ID_MAILFROM && p->sender != NULL ?
	    p->sender : "";
	if ((s->orig_sender = dup_cap(p->sender)) == NULL)
		goto fail;
	/* RFC 7208 2.3, 2.4: HELO, or a null sender, is postmaster@helo */
	if (from[0] == '\0') {
		s->local = strdup("postmaster");
		s->sdomain = dup_cap(p->helo);
	} else if ((at = strrchr(from, '@')) == NULL) {
		s->local = strdup("postmaster");
		s->sdomain = dup_cap(from);
	} else {
		/* RFC 7208 4.3: no local-part means postmaster */
		s->local = at == from ? strdup("postmaster") :
		    strndup(from, (size_t)(at - from) < SPF_INPUT_MAX ?
		    (size_t)(at - from) : SPF_INPUT_MAX);
		s->sdomain = dup_cap(at + 1);
	}
	if (s->helo == NULL || s->receiver == NULL || s->local == NULL ||
	    s->sdomain == NULL)
		goto fail;
	if (asprintf(&s->sender, "%s@%s", s->local, s->sdomain) == -1) {
		s->sender = NULL;
		goto fail;
	}
	s->depth = 1;
	snprintf(s->fr[0].domain, sizeof(s->fr[0].domain), "%s", s->sdomain);
	s->stage = ST_EVAL;
	if (s->family == 0) {
		finish(s, SPF_PERMERROR, "invalid client address");
	} else if (!name_ok(s->sdomain, 1)) {
		/* RFC 7208 4.3: a malformed domain is none */
		finish(s, SPF_NONE, "invalid domain");
	}
	return s;
fail:
	spf_free(s);
	return NULL;
}

void
spf_free(struct spf *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->depth; i++)
		spf_record_free(s->fr[i].rec);
	names_clear(&s->names);
	names_clear(&s->pn);
	free(s->exp_text);
	free(s->sender);
	free(s->orig_sender);
	free(s->local);
	free(s->sdomain);
	free(s->helo);
	free(s->receiver);
	buf_free(&s->explanation);
	buf_free(&s->reason);
	buf_free(&s->trace);
	free(s);
}

void
spf_abort(struct spf *s, const char *why)
{
	if (s->stage == ST_DONE)
		return;
	/* the result is known; only its explanation was pending */
	if (s->stage == ST_EXP || (s->stage == ST_P &&
	    s->p_resume == ST_EXP)) {
		s->waiting = 0;
		s->qk = Q_NONE;
		exp_default(s);
		return;
	}
	finish(s, SPF_TEMPERROR, "%s", why != NULL ? why : "aborted");
}

enum spf_result
spf_result(const struct spf *s)
{
	return s->result;
}

const char *
spf_result_name(enum spf_result r)
{
	static const char *names[] = { "none", "neutral", "pass", "fail",
	    "softfail", "temperror", "permerror" };

	if ((unsigned)r >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[r];
}

const char *
spf_explanation(const struct spf *s)
{
	if (s->stage != ST_DONE || s->result != SPF_FAIL)
		return "";
	return s->explanation.data != NULL ? s->explanation.data : "";
}

const char *
spf_reason(const struct spf *s)
{
	return s->reason.data != NULL ? s->reason.data : "";
}

const char *
spf_domain(const struct spf *s)
{
	return s->sdomain;
}

const char *
spf_trace(const struct spf *s)
{
	return s->trace.data != NULL ? s->trace.data : "";
}

int
spf_expand(struct spf *s, const char *src, int exp, char *out, size_t n)
{
	struct spf_macro_ctx c;
	struct buf b = { 0 };
	int rc;

	macro_ctx(s, top(s)->domain, &c);
	rc = spf_macro_expand(&c, src, strlen(src), exp, &b);
	if (rc == 0 && (b.len >= n))
		rc = -1;
	if (rc == 0)
		memcpy(out, b.data != NULL ? b.data : "", b.len + 1);
	else if (n > 0)
		out[0] = '\0';
	buf_free(&b);
	return rc == 0 ? 0 : -1;
}

void
spf_facts(const struct spf *s, struct spf_facts *f)
{
	f->result = s->result;
	f->identity = s->identity;
	f->receiver = s->receiver;
	f->ip = s->family != 0 ? s->ip_c : "unknown";
	f->sender = s->sender;
	f->orig_sender = s->orig_sender;
	f->helo = s->helo;
}
