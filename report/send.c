/*
 * report/send: one run of the aggregate report sender (report/send.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "auth/orgdomain.h"
#include "lib/buf.h"
#include "lib/dns.h"
#include "lib/log.h"
#include "queue/spool.h"
#include "report/aggregate.h"
#include "report/send.h"
#include "report/store.h"

#define DAY		86400
#define REPORT_MEMO	64	/* destinations verified per run, kept */
#define REPORT_GIVEUP	DAY	/* a pending report goes out after this */
#define REPORT_RUN_MAX	900	/* seconds one run may start reports */
#define REPORT_MARGIN	60	/* a period is due this long after its end */

/* ---- rua= and periods ---- */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* One "mailto:addr[!size]" URI (RFC 9989 4.7, RFC 6068), trimmed. */
static int
rua_one(const char *s, size_t n, struct report_rua *r)
{
	const char *bang, *q, *at;
	size_t alen, i, o;
	unsigned long long num = 0, mul = 1;

	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n == 0 || n >= sizeof(r->uri))
		return -1;
	memset(r, 0, sizeof(*r));
	memcpy(r->uri, s, n);
	if (n < 7 || strncasecmp(s, "mailto:", 7) != 0)
		return -1;
	s += 7;
	n -= 7;
	/* RFC 9990 3: "!" size limit, digits and an optional unit */
	bang = memchr(s, '!', n);
	alen = bang ? (size_t)(bang - s) : n;
	if (bang) {
		q = bang + 1;
		if (q >= s + n || !isdigit((unsigned char)*q))
			return -1;
		while (q < s + n && isdigit((unsigned char)*q)) {
			if (num > 1000000000000ULL)
				return -1;
			num = num * 10 + (unsigned)(*q++ - '0');
		}
		if (q < s + n) {
			switch (tolower((unsigned char)*q++)) {
			case 'k': mul = 1ULL << 10; break;
			case 'm': mul = 1ULL << 20; break;
			case 'g': mul = 1ULL << 30; break;
			case 't': mul = 1ULL << 40; break;
			default: return -1;
			}
		}
		if (q != s + n || num == 0)
			return -1;
		/* a limit past what fits is no limit we could exceed */
		r->max_size = num > ~0ULL / mul ? ~0ULL : num * mul;
	}
	/* a query part (?subject=...) is not ours to send */
	if ((q = memchr(s, '?', alen)) != NULL)
		alen = (size_t)(q - s);
	for (i = 0, o = 0; i < alen; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			int h, l;

			if (i + 2 >= alen + 0 || (h = hexval(s[i + 1])) < 0 ||
			    (l = hexval(s[i + 2])) < 0)
				return -1;
			c = h * 16 + l;
			i += 2;
		}
		/* ASCII only: a report goes without SMTPUTF8 */
		if (c <= ' ' || c >= 0x7f || c == ',' || c == '<' || c == '>' ||
		    o + 1 >= sizeof(r->addr))
			return -1;
		r->addr[o++] = (char)c;
	}
	r->addr[o] = '\0';
	if ((at = strrchr(r->addr, '@')) == NULL || at == r->addr ||
	    at[1] == '\0' || strchr(r->addr, '@') != at)
		return -1;
	if (orgdomain_ascii(at + 1, r->host, sizeof(r->host)) == -1)
		return -1;
	/* "a@x.test." is a@x.test: no trailing dot in RCPT */
	if (o > 0 && r->addr[o - 1] == '.')
		r->addr[o - 1] = '\0';
	return 0;
}

size_t
report_rua_parse(const char *rua, struct report_rua *out, size_t max,
    size_t *bad_r)
{
	const char *p = rua, *comma;
	size_t n = 0, bad = 0, len;

	while (p && *p) {
		comma = strchr(p, ',');
		len = comma ? (size_t)(comma - p) : strlen(p);
		if (n < max && rua_one(p, len, &out[n]) == 0)
			n++;
		else if (n < max) {
			const char *s = p;
			size_t l = len;

			while (l > 0 && isspace((unsigned char)*s)) {
				s++;
				l--;
			}
			if (l > 0)
				bad++;
		}
		p = comma ? comma + 1 : NULL;
	}
	if (bad_r)
		*bad_r = bad;
	return n;
}

int
report_period(int ri, int interval, int min_interval)
{
	static const int hours[] = { 12, 8, 6, 4, 3, 2, 1 };
	size_t i;
	int p = interval;

	if (ri > 0 && ri < interval) {
		/* the longest whole-hour divisor of a day not over ri */
		p = 3600;
		for (i = 0; i < sizeof(hours) / sizeof(hours[0]); i++)
			if (hours[i] * 3600 <= ri) {
				p = hours[i] * 3600;
				break;
			}
		if (p < min_interval)
			p = min_interval;
		if (p > interval)
			p = interval;
	}
	return p;
}

/* ---- DNS, synchronously over the caller's loop ---- */

struct txt_wait {
	struct event_base *base;
	struct dns_query *q;
	enum dns_status status;
	char **txt;
	size_t ntxt;
	int done;
};

static void
txt_cb(const struct dns_answer *a, void *arg)
{
	struct txt_wait *w = arg;
	size_t i;

	w->status = a->status;
	w->done = 1;
	if (a->status == DNS_OK && a->n > 0 &&
	    (w->txt = calloc(a->n, sizeof(char *))) != NULL)
		for (i = 0; i < a->n; i++)
			if (a->rr[i].text && strlen(a->rr[i].text) == a->rr[i].len &&
			    (w->txt[w->ntxt] = strdup(a->rr[i].text)) != NULL)
				w->ntxt++;
	event_base_loopbreak(w->base);
}

static void
txt_free(struct txt_wait *w)
{
	size_t i;

	for (i = 0; i < w->ntxt; i++)
		free(w->txt[i]);
	free(w->txt);
}

static int
txt_lookup(struct event_base *base, struct dns_resolver *res,
    const char *name, struct txt_wait *w)
{
	memset(w, 0, sizeof(*w));
	w->base = base;
	if ((w->q = dns_query(res, name, DNS_T_TXT, txt_cb, w)) == NULL)
		return -1;
	while (!w->done)
		if (event_base_loop(base, EVLOOP_ONCE) == -1) {
			dns_cancel(w->q);	/* w is about to go */
			txt_free(w);
			return -1;
		}
	return 0;
}

/* "v=DMARC1" as the first tag (RFC 9990 4 step 6): 1, else 0; *rua_r
 * points at a copy of the rua= value when present. */
static int
verify_record(const char *txt, char **rua_r)
{
	const char *p = txt, *semi, *eq;

	*rua_r = NULL;
	if (strlen(txt) > 4096)		/* DMARC_RECORD_MAX: not a record */
		return 0;
	while (*p == ' ' || *p == '\t')
		p++;
	/* RFC 7489 6.4 ABNF: the tag name "v" in any case, "DMARC1" exact */
	if (*p != 'v' && *p != 'V')
		return 0;
	p++;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p++ != '=')
		return 0;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncmp(p, "DMARC1", 6) != 0)
		return 0;
	p += 6;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != ';' && *p != '\0')
		return 0;
	while (*p) {
		if (*p == ';')
			p++;
		while (*p == ' ' || *p == '\t')
			p++;
		semi = strchr(p, ';');
		eq = strchr(p, '=');
		if (eq && (!semi || eq < semi)) {
			const char *k = p, *ke = eq;

			while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t'))
				ke--;
			if (ke - k == 3 && strncasecmp(k, "rua", 3) == 0 &&
			    *rua_r == NULL) {
				const char *v = eq + 1;
				size_t vl = semi ? (size_t)(semi - v) : strlen(v);

				*rua_r = strndup(v, vl);
			}
		}
		p = semi ? semi : p + strlen(p);
	}
	return 1;
}

enum dest_check { DEST_OK, DEST_REFUSED, DEST_TEMP };

/*
 * RFC 9990 4: a destination outside the policy domain's organizational
 * domain needs "<policy-domain>._report._dmarc.<host>". On DEST_OK the
 * URI may have been replaced by the authorising record's rua= for the
 * same host (the first such URI).
 */
static enum dest_check
dest_verify(const struct report_send_config *c, struct event_base *base,
    struct dns_resolver *res, const char *policy_domain, struct report_rua *r,
    char *why, size_t whylen)
{
	char org_p[256], org_d[256], pd[256], name[600];
	struct txt_wait w;
	struct report_rua over[REPORT_RUA_MAX];
	size_t i, j, n, bad;
	int found = 0, replaced = 0;
	char *rua;

	if (orgdomain_ascii(policy_domain, pd, sizeof(pd)) == -1) {
		snprintf(why, whylen, "policy domain is no domain name");
		return DEST_REFUSED;
	}
	if (orgdomain_psl(c->psl, pd, org_p, sizeof(org_p)) == 0 &&
	    orgdomain_psl(c->psl, r->host, org_d, sizeof(org_d)) == 0 &&
	    strcmp(org_p, org_d) == 0)
		return DEST_OK;
	/* step 4: a name over the DNS limits authorises nothing */
	if ((size_t)snprintf(name, sizeof(name), "%s._report._dmarc.%s", pd,
	    r->host) >= sizeof(name) || strlen(name) > 253) {
		snprintf(why, whylen, "%.300s: verification name too long", r->addr);
		return DEST_REFUSED;
	}
	if (txt_lookup(base, res, name, &w) == -1) {
		snprintf(why, whylen, "%.300s: DNS lookup failed to start", name);
		return DEST_TEMP;
	}
	if (w.status == DNS_SERVFAIL || w.status == DNS_TIMEOUT ||
	    w.status == DNS_ERROR) {
		snprintf(why, whylen, "%.300s TXT: %s", name, dns_status_name(w.status));
		txt_free(&w);
		return DEST_TEMP;
	}
	for (i = 0; i < w.ntxt && !found; i++) {
		if (!verify_record(w.txt[i], &rua))
			continue;
		found = 1;
		if (rua == NULL)
			continue;
		/* step 9: an override must stay on the destination host */
		n = report_rua_parse(rua, over, REPORT_RUA_MAX, &bad);
		free(rua);
		if (bad > 0) {	/* a host we cannot check: neither is used */
			snprintf(why, whylen, "%.200s: authorising record at %.300s "
			    "names a URI that is not mailto: or malformed: neither "
			    "is used", r->addr, name);
			txt_free(&w);
			return DEST_REFUSED;
		}
		for (j = 0; j < n; j++) {
			if (strcmp(over[j].host, r->host) != 0) {
				snprintf(why, whylen, "%.200s: authorising record at "
				    "%.300s names another host (%.200s): neither is "
				    "used", r->addr, name, over[j].host);
				txt_free(&w);
				return DEST_REFUSED;
			}
		}
		if (n > 0) {
			*r = over[0];
			replaced = 1;
		}
	}
	txt_free(&w);
	if (!found) {
		snprintf(why, whylen, "%.200s: not authorised (no v=DMARC1 record "
		    "at %.300s: %s)", r->addr, name, dns_status_name(w.status));
		return DEST_REFUSED;
	}
	if (replaced)
		log_info("report: %s authorised by %s, destination %s", r->uri,
		    name, r->addr);
	return DEST_OK;
}

/* ---- one report ---- */

struct collect {
	struct report_policy policy;
	char *pstr[11];
	struct report_row *rows;
	size_t nrows, cap;
	struct buf strings;	/* not used for pointers: see row_copy */
	int oom;
};

static char *
sdup(struct collect *k, const char *s)
{
	char *d = strdup(s ? s : "");

	if (d == NULL)
		k->oom = 1;
	return d;
}

static void
policy_cb(const struct report_policy *p, void *arg)
{
	struct collect *k = arg;
	size_t i;

	for (i = 0; i < 11; i++)
		free(k->pstr[i]);
	k->policy.domain = k->pstr[0] = sdup(k, p->domain);
	k->policy.discovery_method = k->pstr[1] = sdup(k, p->discovery_method);
	k->policy.p = k->pstr[2] = sdup(k, p->p);
	k->policy.sp = k->pstr[3] = sdup(k, p->sp);
	k->policy.np = k->pstr[4] = sdup(k, p->np);
	k->policy.fo = k->pstr[5] = sdup(k, p->fo);
	k->policy.adkim = k->pstr[6] = sdup(k, p->adkim);
	k->policy.aspf = k->pstr[7] = sdup(k, p->aspf);
	k->policy.testing = k->pstr[8] = sdup(k, p->testing);
	k->policy.rua = k->pstr[9] = sdup(k, p->rua);
	k->pstr[10] = NULL;
	k->policy.ri = p->ri;
}

static void
row_free(struct report_row *r)
{
	size_t i;

	free((char *)r->source_ip);
	free((char *)r->disposition);
	free((char *)r->header_from);
	free((char *)r->envelope_from);
	free((char *)r->envelope_to);
	free((char *)r->spf_domain);
	free((char *)r->spf_scope);
	free((char *)r->spf_result);
	for (i = 0; i < r->nreasons; i++) {
		free((char *)r->reasons[i].type);
		free((char *)r->reasons[i].comment);
	}
	for (i = 0; i < r->ndkim; i++) {
		free((char *)r->dkim[i].domain);
		free((char *)r->dkim[i].selector);
		free((char *)r->dkim[i].result);
		free((char *)r->dkim[i].human_result);
	}
}

static int
row_cb(const struct report_row *r, void *arg)
{
	struct collect *k = arg;
	struct report_row *d;
	size_t i;

	if (k->nrows == k->cap) {
		size_t nc = k->cap ? k->cap * 2 : 64;
		struct report_row *v = realloc(k->rows, nc * sizeof(*v));

		if (v == NULL) {
			k->oom = 1;
			return 1;
		}
		k->rows = v;
		k->cap = nc;
	}
	d = &k->rows[k->nrows++];
	memset(d, 0, sizeof(*d));
	d->count = r->count;
	d->dkim_aligned = r->dkim_aligned;
	d->spf_aligned = r->spf_aligned;
	d->source_ip = sdup(k, r->source_ip);
	d->disposition = sdup(k, r->disposition);
	d->header_from = sdup(k, r->header_from);
	d->envelope_from = sdup(k, r->envelope_from);
	d->envelope_to = sdup(k, r->envelope_to);
	d->spf_domain = sdup(k, r->spf_domain);
	d->spf_scope = sdup(k, r->spf_scope);
	d->spf_result = sdup(k, r->spf_result);
	for (i = 0; i < r->nreasons && i < REPORT_MAX_REASONS; i++) {
		d->reasons[i].type = sdup(k, r->reasons[i].type);
		d->reasons[i].comment = sdup(k, r->reasons[i].comment);
		d->nreasons++;
	}
	for (i = 0; i < r->ndkim && i < REPORT_MAX_DKIM; i++) {
		d->dkim[i].domain = sdup(k, r->dkim[i].domain);
		d->dkim[i].selector = sdup(k, r->dkim[i].selector);
		d->dkim[i].result = sdup(k, r->dkim[i].result);
		d->dkim[i].human_result = sdup(k, r->dkim[i].human_result);
		d->ndkim++;
	}
	return k->oom;
}

static void
collect_free(struct collect *k)
{
	size_t i;

	for (i = 0; i < k->nrows; i++)
		row_free(&k->rows[i]);
	free(k->rows);
	for (i = 0; i < 11; i++)
		free(k->pstr[i]);
}

struct run {
	const struct report_send_config *c;
	struct report_store *st;
	struct spool *sp;
	struct event_base *base;
	struct dns_resolver *res;
	long long now;
	int flush_now;
	struct report_send_stats *stats;
	char *err;
	size_t errlen;
	int queued_before;	/* for the rate pause */
	long long deadline;	/* no new report is started after it */
	struct dest_memo {
		char domain[256];
		char uri[512];
		enum dest_check dc;
		struct report_rua out;
		char why[512];
	} memo[REPORT_MEMO];
	size_t nmemo;
};

static void
unique_hex(char *out, size_t n)
{
	unsigned char r[8];
	size_t i;

	if (RAND_bytes(r, sizeof(r)) != 1)
		memset(r, 0, sizeof(r));
	for (i = 0; i < sizeof(r) && 2 * i + 2 < n; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* The unique-id of the file name: the Report-ID's leading hex. */
static void
id_unique(const char *id, char *out, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n && isalnum((unsigned char)id[i]); i++)
		out[i] = id[i];
	out[i] = '\0';
}

static void
rate_pause(struct run *r)
{
	struct timespec ts;

	if (r->c->rate <= 0 || !r->queued_before)
		return;
	ts.tv_sec = 60 / r->c->rate;
	ts.tv_nsec = (long)((60000000000LL / r->c->rate) % 1000000000LL);
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* The message for the destinations use[0..nuse): mail, then its
 * signatures before it in sig. 0, or -1 with e. */
static int
build_mail(struct run *r, const struct report_meta *m,
    const struct report_policy *p, struct report_rua *const *use, size_t nuse,
    const char *fname, const struct buf *gz, struct buf *msg, struct buf *sig,
    char *e, size_t elen)
{
	const struct report_send_config *c = r->c;
	const char *to[REPORT_RUA_MAX];
	struct report_mail mail;
	size_t i;

	buf_reset(msg);
	buf_reset(sig);
	for (i = 0; i < nuse; i++)
		to[i] = use[i]->addr;
	memset(&mail, 0, sizeof(mail));
	mail.from = c->email;
	mail.to = to;
	mail.nto = nuse;
	mail.submitter = c->hostname;
	mail.filename = fname;
	mail.date = r->now;
	if (report_message(&mail, m, p, gz->data, gz->len, msg, e, elen) == -1)
		return -1;
	/* RFC 9990 3.1.1: the report passes DMARC by this signature */
	for (i = 0; i < c->nkeys; i++)
		if (dkim_sign(&c->keys[i], msg->data, msg->len, sig, e,
		    elen) == -1)
			return -1;
	return 0;
}

static void
finish(struct run *r, const char *id, const char *state, const char *why)
{
	char e[512];

	if (report_store_finish_report(r->st, id, state, why ? why : "", e,
	    sizeof(e)) == -1)
		log_error("report id=%s: cannot record its state %s (it may be "
		    "sent again, with the same Report-ID): %s", id, state, e);
}

/* The verification of one URI for one policy domain, once per run. */
static enum dest_check
dest_cached(struct run *r, const char *domain, struct report_rua *u,
    char *why, size_t whylen)
{
	struct dest_memo *dm;
	size_t i;

	for (i = 0; i < r->nmemo; i++) {
		dm = &r->memo[i];
		if (strcmp(dm->domain, domain) == 0 &&
		    strcmp(dm->uri, u->uri) == 0) {
			snprintf(why, whylen, "%.511s", dm->why);
			if (dm->dc == DEST_OK)
				*u = dm->out;
			return dm->dc;
		}
	}
	dm = r->nmemo < REPORT_MEMO ? &r->memo[r->nmemo++] : NULL;
	if (dm) {
		snprintf(dm->domain, sizeof(dm->domain), "%.255s", domain);
		snprintf(dm->uri, sizeof(dm->uri), "%.511s", u->uri);
	}
	why[0] = '\0';
	i = dest_verify(r->c, r->base, r->res, domain, u, why, whylen);
	if (dm) {
		dm->dc = (enum dest_check)i;
		dm->out = *u;
		snprintf(dm->why, sizeof(dm->why), "%.511s", why);
	}
	return (enum dest_check)i;
}

/* Build, sign and queue one report. 0 done (queued or skipped: finished
 * in the store), 1 left pending (temporary), -1 fatal (r->err). giveup:
 * a report pending too long goes to what can be used now. */
static int
send_one(struct run *r, const char *domain, long long begin, long long end,
    const char *id, int giveup)
{
	const struct report_send_config *c = r->c;
	struct collect k;
	struct report_meta m;
	struct report_rua rua[REPORT_RUA_MAX], *use[REPORT_RUA_MAX];
	struct buf xml = { 0 }, gz = { 0 }, fname = { 0 }, msg = { 0 },
	    sig = { 0 }, why = { 0 };
	char e[1024], uniq[64], qid[ID_LEN + 1];
	size_t nrua, nuse = 0, i, j, bad = 0, kept, total;
	int temp = 0, ret = 0;
	struct spool_msg *sm = NULL;
	struct envelope env;

	memset(&k, 0, sizeof(k));
	memset(&env, 0, sizeof(env));
	if (report_store_rows(r->st, domain, begin, end, policy_cb, row_cb, &k,
	    r->err, r->errlen) == -1) {
		collect_free(&k);
		return -1;
	}
	if (k.oom) {
		snprintf(r->err, r->errlen, "report %s: out of memory", id);
		collect_free(&k);
		return -1;
	}
	if (k.nrows == 0 || k.policy.domain == NULL) {
		finish(r, id, "skipped", "no evaluations");
		r->stats->skipped++;
		collect_free(&k);
		return 0;
	}
	nrua = report_rua_parse(k.policy.rua, rua, REPORT_RUA_MAX, &bad);
	if (bad > 0)
		buf_appendf(&why, "%zu rua URI(s) not mailto: or malformed; ", bad);
	/* RFC 9990 3 "Transport": every URI in order, each verified */
	for (i = 0; i < nrua; i++) {
		long long until;
		enum dest_check dc;

		dc = dest_cached(r, domain, &rua[i], e, sizeof(e));
		if (dc == DEST_TEMP) {
			temp = 1;
			buf_appendf(&why, "%s; ", e);
			continue;
		}
		if (dc == DEST_REFUSED) {
			log_warning("report id=%s domain=%s rua %s refused: %s", id,
			    domain, log_safe(rua[i].uri), e);
			buf_appendf(&why, "%s; ", e);
			continue;
		}
		for (j = 0; j < nuse; j++)
			if (strcasecmp(use[j]->addr, rua[i].addr) == 0)
				break;
		if (j < nuse)
			continue;		/* the same address twice */
		if (report_store_dest_suppressed(r->st, rua[i].addr, r->now,
		    &until, e, sizeof(e)) == 1) {
			log_info("report id=%s domain=%s rua %s suppressed until %lld "
			    "after repeated delivery failures", id, domain,
			    log_safe(rua[i].addr), until);
			buf_appendf(&why, "%s suppressed; ", rua[i].addr);
			continue;
		}
		use[nuse++] = &rua[i];
	}
	/* a destination we could not verify yet is tried again with the
	 * others, not left out (RFC 9990 3: every remaining URI) */
	if (temp && !giveup) {
		log_info("report id=%s domain=%s left pending: %s", id, domain,
		    why.data ? log_safe(why.data) : "");
		r->stats->deferred++;
		ret = 1;
		goto out;
	}

	memset(&m, 0, sizeof(m));
	m.org_name = c->org_name;
	m.email = c->email;
	m.extra_contact_info = c->extra_contact_info ? c->extra_contact_info : "";
	m.report_id = id;
	m.begin = begin;
	m.end = end - 1;	/* date_range end is inclusive */
	m.errors = "";
	m.generator = "mxgate";
	id_unique(id, uniq, sizeof(uniq));
	e[0] = '\0';
	if (report_filename(c->hostname, domain, begin, end - 1, uniq,
	    &fname) == -1)
		snprintf(e, sizeof(e), "no RFC 9990 file name for receiver %.255s "
		    "and domain %.255s", c->hostname, domain);
	if (e[0] ||
	    report_xml(&m, &k.policy, k.rows, k.nrows, &xml, e, sizeof(e)) == -1 ||
	    report_gzip(xml.data, xml.len, fname.data ? fname.data : "report.xml",
	    r->now, &gz, e, sizeof(e)) == -1) {
		log_error("report id=%s domain=%s cannot be built: %s", id, domain, e);
		finish(r, id, "failed", e);
		r->stats->failed++;
		goto out;
	}
	if (nuse > 0 && build_mail(r, &m, &k.policy, use, nuse, fname.data, &gz,
	    &msg, &sig, e, sizeof(e)) == -1) {
		log_error("report id=%s domain=%s cannot be built: %s", id, domain, e);
		finish(r, id, "failed", e);
		r->stats->failed++;
		goto out;
	}
	/* RFC 9990 3: a URI whose size limit the report exceeds is not used;
	 * then the receiver's own limit on URIs (max_rua) */
	total = sig.len + msg.len;
	for (i = 0, kept = 0; i < nuse; i++) {
		if (use[i]->max_size && total > use[i]->max_size) {
			log_info("report id=%s domain=%s %s: %zu octets over its "
			    "limit of %llu", id, domain, log_safe(use[i]->addr),
			    total, use[i]->max_size);
			buf_appendf(&why, "%s over its size limit; ", use[i]->addr);
			continue;
		}
		if (kept == c->max_rua) {
			buf_appendf(&why, "%s past max_rua; ", use[i]->addr);
			continue;
		}
		use[kept++] = use[i];
	}
	if (kept == 0) {
		finish(r, id, "skipped", why.data ? why.data : "no rua");
		log_info("report id=%s domain=%s skipped: %s", id, domain,
		    why.data ? log_safe(why.data) : "no rua");
		r->stats->skipped++;
		goto out;
	}
	if (kept != nuse) {	/* To: names only those it goes to */
		nuse = kept;
		if (build_mail(r, &m, &k.policy, use, nuse, fname.data, &gz, &msg,
		    &sig, e, sizeof(e)) == -1) {
			log_error("report id=%s domain=%s cannot be built: %s", id,
			    domain, e);
			finish(r, id, "failed", e);
			r->stats->failed++;
			goto out;
		}
	}
	rate_pause(r);
	if ((sm = spool_msg_new(r->sp, qid)) == NULL ||
	    spool_msg_write(sm, sig.data, sig.len) == -1 ||
	    spool_msg_write(sm, msg.data, msg.len) == -1) {
		snprintf(r->err, r->errlen, "report %s: spool: %s", id,
		    strerror(errno));
		if (sm)
			spool_msg_abort(sm);
		ret = -1;
		goto out;
	}
	env.arrival = r->now;
	if (envelope_set(&env.session, "dmarc-report") == -1 ||
	    envelope_set(&env.client_ip, "127.0.0.1") == -1 ||
	    envelope_set(&env.helo, c->hostname) == -1 ||
	    envelope_set(&env.sender, "") == -1) {
		spool_msg_abort(sm);
		snprintf(r->err, r->errlen, "report %s: out of memory", id);
		ret = -1;
		goto out;
	}
	for (i = 0; i < nuse; i++)
		if (envelope_add_rcpt(&env, use[i]->addr) == -1) {
			spool_msg_abort(sm);
			snprintf(r->err, r->errlen, "report %s: out of memory", id);
			ret = -1;
			goto out;
		}
	if (spool_msg_commit(sm, &env) == -1) {
		snprintf(r->err, r->errlen, "report %s: spool commit: %s", id,
		    strerror(errno));
		ret = -1;
		goto out;
	}
	spool_notify(r->sp, env.id);
	finish(r, id, "queued", why.data);
	r->stats->queued++;
	r->queued_before = 1;
	{
		struct buf list = { 0 };

		for (i = 0; i < nuse; i++)
			buf_appendf(&list, "%s%s", i ? "," : "", use[i]->addr);
		log_info("report id=%s domain=%s begin=%lld end=%lld records=%zu "
		    "size=%zu queued as id=%s to=%s", id, domain, begin, end - 1,
		    k.nrows, sig.len + msg.len, env.id, log_safe(list.data));
		buf_free(&list);
	}
out:
	envelope_free(&env);
	buf_free(&xml);
	buf_free(&gz);
	buf_free(&fname);
	buf_free(&msg);
	buf_free(&sig);
	buf_free(&why);
	collect_free(&k);
	return ret;
}

/* ---- the run ---- */

struct due {
	char *domain;
	long long begin, end;
	char *id;		/* pending ones: their id */
};

struct duelist {
	struct due *v;
	size_t n, cap;
	struct run *r;
	int oom;
};

static int
due_add(struct duelist *l, const char *domain, long long begin,
    long long end, const char *id)
{
	struct due *d;

	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		struct due *v = realloc(l->v, nc * sizeof(*v));

		if (v == NULL)
			return l->oom = 1;
		l->v = v;
		l->cap = nc;
	}
	d = &l->v[l->n];
	d->domain = strdup(domain);
	d->id = id ? strdup(id) : NULL;
	d->begin = begin;
	d->end = end;
	if (d->domain == NULL || (id && d->id == NULL)) {
		free(d->domain);
		free(d->id);
		return l->oom = 1;
	}
	l->n++;
	return 0;
}

static void
due_free(struct duelist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].domain);
		free(l->v[i].id);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int
unfinished_cb(const char *domain, long long begin, long long end,
    const char *id, void *arg)
{
	return due_add(arg, domain, begin, end, id);
}

/* The domain's latest ri=, for its period. */
static void
ri_policy_cb(const struct report_policy *p, void *arg)
{
	*(int *)arg = p->ri;
}

static int
pending_cb(const char *domain, long long first, long long reported_until,
    void *arg)
{
	struct duelist *l = arg;
	struct run *r = l->r;
	const struct report_send_config *c = r->c;
	long long begin, end;
	int ri = 0, period;
	char e[256];

	/* the policy alone: no aggregation just to read ri= */
	report_store_rows(r->st, domain, first, r->now + 1, ri_policy_cb,
	    NULL, &ri, e, sizeof(e));
	period = report_period(ri, c->interval, c->min_interval);
	begin = first - (first % period);
	end = begin + period;
	if (begin < reported_until)
		begin = reported_until;
	/* due once ended, with a margin for evaluations still on their way
	 * into the store (the daemon's recorder commits a moment later) */
	if (end + REPORT_MARGIN > r->now) {
		/* --now: the current period too, through the current second */
		if (!r->flush_now || r->now + 1 <= begin)
			return 0;
		if (end > r->now + 1)
			end = r->now + 1;
	}
	return due_add(l, domain, begin, end, NULL);
}

int
report_send_run(const struct report_send_config *c,
    struct report_store *st, struct spool *sp, struct event_base *base,
    struct dns_resolver *res, long long now, int flush_now,
    struct report_send_stats *stats, char *err, size_t errlen)
{
	struct run r;
	struct duelist l;
	size_t i;
	int rounds, rc = 0;
	long long ex;

	memset(&r, 0, sizeof(r));
	memset(&l, 0, sizeof(l));
	memset(stats, 0, sizeof(*stats));
	r.c = c;
	r.st = st;
	r.sp = sp;
	r.base = base;
	r.res = res;
	r.now = now;
	r.flush_now = flush_now;
	r.stats = stats;
	r.err = err;
	r.errlen = errlen;
	l.r = &r;

	r.deadline = (long long)time(NULL) + REPORT_RUN_MAX;
	/* 2-6: due periods; a domain behind by several periods catches up
	 * one period per round (bounded) */
	for (rounds = 0; rc == 0 && rounds < 400; rounds++) {
		if (report_store_pending(st, pending_cb, &l, err, errlen) == -1 ||
		    l.oom) {
			if (l.oom)
				snprintf(err, errlen, "report: out of memory");
			rc = -1;
			break;
		}
		if (l.n == 0)
			break;
		for (i = 0; i < l.n && rc == 0; i++) {
			char id[300], hex[20], got[300];
			int created;

			if ((long long)time(NULL) > r.deadline) {
				log_warning("report: run longer than %ds: the rest "
				    "waits for the next run", REPORT_RUN_MAX);
				rounds = 400;
				break;
			}
			/* RFC 9990 ridfmt: unique without the domain (which
			 * could make it too long) */
			unique_hex(hex, sizeof(hex));
			snprintf(id, sizeof(id), "%s.%lld@%s", hex, l.v[i].begin,
			    c->hostname);
			created = report_store_begin_report(st, l.v[i].domain,
			    l.v[i].begin, l.v[i].end, id, got, sizeof(got), err,
			    errlen);
			if (created == -1) {
				rc = -1;
				break;
			}
			/* recorded before (by a run that crashed): the
			 * pending pass below has it */
			if (created && send_one(&r, l.v[i].domain, l.v[i].begin,
			    l.v[i].end, id, 0) == -1)
				rc = -1;
		}
		due_free(&l);
		l.r = &r;
	}
	/* 1: what a run left pending (a crash, a DNS failure), after the new
	 * ones so one domain's failing DNS cannot hold up everyone's; given
	 * up on (sent to what can be used) a day after its period */
	if (rc == 0 && report_store_unfinished(st, unfinished_cb, &l, err,
	    errlen) == -1)
		rc = -1;
	if (l.oom) {
		snprintf(err, errlen, "report: out of memory");
		rc = -1;
	}
	for (i = 0; i < l.n && rc == 0; i++) {
		if ((long long)time(NULL) > r.deadline)
			break;
		log_info("report id=%s domain=%s: sending again (left pending)",
		    l.v[i].id, l.v[i].domain);
		if (send_one(&r, l.v[i].domain, l.v[i].begin, l.v[i].end,
		    l.v[i].id, now - l.v[i].end > REPORT_GIVEUP) == -1)
			rc = -1;
	}
	due_free(&l);
	/* 7: retention */
	if (rc == 0 && c->retention > 0 &&
	    (ex = report_store_expire(st, now - c->retention, err, errlen)) > 0)
		log_info("report: %lld reported evaluations older than %ds deleted",
		    ex, c->retention);
	return rc;
}
