/*
 * smtpload: an SMTP load generator for benchmarks (never a test).
 *
 * Load mode: N concurrent sessions against one server; each says EHLO,
 * then sends messages back to back (MAIL, RCPT, DATA, content, ".", one
 * command at a time, no pipelining) until a message count or a duration
 * is reached, then QUIT. Prints the acknowledgements per second and the
 * latency percentiles from the end of data (the "." line sent) to its
 * reply, and of the whole transaction (connect, or MAIL on a reused
 * connection, to that reply).
 *
 *   -D DIR   send a corpus instead of generated messages: the *.eml files
 *            of DIR in name order (the first -n of them, cycled), as they
 *            are (line ends made CRLF, dot-stuffed, RFC 5321 4.5.2). The
 *            envelope comes from DIR/manifest.tsv ("file TAB mail-from TAB
 *            rcpt" per line, as tests/bench/corpus.py writes it) or else
 *            from each file's From: and To: fields.
 *   -m N     at most N messages per connection, then QUIT and connect
 *            again (-m 1: one connection per message, like smtp-source).
 *   -S       prepend "X-Bench-Sent: SEQ EPOCH" to each message (an
 *            unsigned field: DKIM signatures stay valid) so that a sink
 *            can compute end-to-end latency.
 *   -j FILE  write the summary as JSON too (the keys the shared rig's
 *            benchutil.py analyze reads: accepted, lat_ms, eod_ms, cpu_s,
 *            errors).
 *
 * Idle mode (-I): the sessions connect (at most -P connecting at once),
 * read the greeting, say EHLO and then stay idle. Once every session has
 * settled a line "smtpload: idle: ..." with the counts is printed and
 * flushed, the connections are held for -d seconds, then each says QUIT.
 * Exit status 0 when every session got 220 and 250 to EHLO and none was
 * dropped while held.
 *
 * Bounded: every reply has a timeout (-T), the whole run has a hard
 * deadline (duration or 10 minutes plus the reply timeout; idle mode: 5
 * minutes to settle, then the hold), a broken connection is reopened
 * after a pause (at most -R times per session; never in idle mode), and
 * the program always ends with its report. Exit status in load mode: 0
 * when at least one message was acknowledged and no session gave up,
 * else 1.
 *
 * Usage: smtpload [-h HOST] [-p PORT] [-c SESSIONS] [-n MESSAGES | -d SECONDS]
 *                 [-s BYTES | -D DIR] [-m PER_CONN] [-S] [-e EHLO] [-j FILE]
 *                 [-f FROM] [-r RCPT] [-T TIMEOUT] [-R RECONNECTS] [-q]
 *        smtpload -I [-h HOST] [-p PORT] [-c SESSIONS] [-d HOLD] [-P PENDING]
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define MSG_MAX		(64 * 1024 * 1024)
#define ADDR_MAX	256

enum step { S_CONNECT, S_GREET, S_EHLO, S_MAIL, S_RCPT, S_DATA, S_DOT,
	S_IDLE, S_QUIT, S_DONE };

struct load;

/* One corpus message in wire form (CRLF, dot-stuffed, no final "."). */
struct msg {
	char *from, *rcpt;
	char *data;
	size_t len;
};

struct sess {
	struct load *ld;
	int no;
	struct bufferevent *bev;
	struct event *retry;
	enum step step;
	long seq;		/* messages started by this session */
	long cur;		/* number of the message in flight (0-based) */
	int claimed;		/* cur is taken, not sent yet */
	int again;		/* QUIT to reconnect (-m), not to stop */
	long conn_msgs;		/* messages on this connection */
	double t_txn;		/* start of the transaction */
	double t_dot;		/* when "." was sent */
	int reconnects;
	int dead;		/* gave up */
	int settled;		/* idle mode: greeted and idle, or failed */
};

struct lat {
	double *v;		/* ms */
	size_t n, cap;
};

struct load {
	struct event_base *base;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int conc;
	long max_msgs;		/* 0: by time */
	double duration;	/* seconds, when max_msgs == 0; idle: the hold */
	size_t size;
	const char *from, *rcpt, *ehlo;
	int timeout;
	int max_reconnects;
	int quiet;
	long per_conn;		/* 0: no limit */
	int stamp;
	char *body;		/* the content after the headers */
	size_t body_len;
	struct msg *corpus;
	size_t ncorpus;
	double t0, t_end;
	int stopping;		/* no new messages */
	long started;		/* messages begun (for -n) */
	long acked, tempfail, permfail, errors, closed_sessions;
	long acked_in_time;	/* before the duration ran out */
	struct lat eod, txn;
	struct sess *s;
	struct event *deadline, *hold;
	/* idle mode */
	int idle;
	int pending_max;
	int next;		/* sessions started */
	int settled;
	int in_start;
	long greeted, ehlo_ok, refused, closed_early, connect_failed,
	    timeouts, dropped;
	double t_settled;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
wallclock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sess_connect(struct sess *s);
static void sess_next_message(struct sess *s);
static void idle_start_more(struct load *ld);
static void idle_hold(struct load *ld);

static void
load_check_done(struct load *ld)
{
	if (ld->closed_sessions == ld->conc)
		event_base_loopexit(ld->base, NULL);
}

/* Messages left to start (duration mode: until the deadline). */
static int
load_more_work(const struct load *ld)
{
	return !ld->idle && !ld->stopping &&
	    (ld->max_msgs == 0 || ld->started < ld->max_msgs);
}

static void
sess_finish(struct sess *s, int gave_up)
{
	if (s->bev) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (s->step == S_DONE)
		return;
	s->step = S_DONE;
	s->dead = gave_up;
	s->ld->closed_sessions++;
	load_check_done(s->ld);
}

/* Idle mode: this session is greeted and idle, or has failed. */
static void
sess_settle(struct sess *s)
{
	struct load *ld = s->ld;

	if (!ld->idle || s->settled)
		return;
	s->settled = 1;
	ld->settled++;
	idle_start_more(ld);
	if (ld->settled == ld->conc)
		idle_hold(ld);
}

/* Idle mode: all sessions settled (or the time to settle is over): report
 * the counts, then hold the connections open for the duration. */
static void
idle_hold(struct load *ld)
{
	struct timeval tv;

	if (ld->t_settled != 0)
		return;
	ld->t_settled = now();
	evtimer_del(ld->deadline);	/* hold_cb sets the last bound */
	printf("smtpload: idle: sessions=%d greeted=%ld ehlo=%ld refused=%ld "
	    "closed_early=%ld connect_failed=%ld timeouts=%ld settle_s=%.2f\n",
	    ld->conc, ld->greeted, ld->ehlo_ok, ld->refused, ld->closed_early,
	    ld->connect_failed, ld->timeouts, ld->t_settled - ld->t0);
	fflush(stdout);
	tv.tv_sec = (long)ld->duration;
	tv.tv_usec = (long)((ld->duration - (double)tv.tv_sec) * 1e6);
	evtimer_add(ld->hold, &tv);
}

static void
sess_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sess *s = arg;

	if (s->ld->stopping || (!s->claimed && !load_more_work(s->ld))) {
		sess_finish(s, 0);
		return;
	}
	sess_connect(s);
}

/* The connection broke or a reply did not come: count it, maybe reopen. */
static void
sess_error(struct sess *s, const char *why)
{
	struct timeval tv = { 0, 200000 };

	s->ld->errors++;
	if (!s->ld->quiet)
		fprintf(stderr, "smtpload: session %d: %s\n", s->no, why);
	if (s->bev) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (s->ld->idle) {
		if (s->settled)
			s->ld->dropped++;
		sess_finish(s, 1);
		sess_settle(s);
		return;
	}
	if (s->ld->stopping) {
		sess_finish(s, 0);
		return;
	}
	if (++s->reconnects > s->ld->max_reconnects) {
		sess_finish(s, 1);
		return;
	}
	s->step = S_CONNECT;
	evtimer_add(s->retry, &tv);
}

/* The server answered QUIT or closed after it: reconnect for -m, or end. */
static void
sess_quit_done(struct sess *s)
{
	if (s->bev) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (s->again && load_more_work(s->ld)) {
		s->again = 0;
		s->ld->started++;
		s->cur = s->ld->started - 1;
		s->claimed = 1;
		sess_connect(s);
		return;
	}
	sess_finish(s, 0);
}

/* cmd, then arg (may be NULL) and ">" when arg is given, then CRLF */
static void
sess_send(struct sess *s, enum step next, const char *cmd, const char *arg)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	s->step = next;
	evbuffer_add(out, cmd, strlen(cmd));
	if (arg != NULL) {
		evbuffer_add(out, arg, strlen(arg));
		evbuffer_add(out, ">", 1);
	}
	evbuffer_add(out, "\r\n", 2);
}

static void
lat_add(struct lat *l, double ms)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4096;
		double *v;

		if (cap > 50 * 1000 * 1000 ||
		    (v = realloc(l->v, cap * sizeof(*v))) == NULL)
			return;	/* keep counting, stop sampling */
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = ms;
}

static const struct msg *
sess_msg(const struct sess *s)
{
	const struct load *ld = s->ld;

	return ld->ncorpus ? &ld->corpus[(size_t)s->cur % ld->ncorpus] : NULL;
}

static void
sess_send_content(struct sess *s)
{
	struct load *ld = s->ld;
	struct evbuffer *out = bufferevent_get_output(s->bev);
	const struct msg *m = sess_msg(s);

	if (ld->stamp)
		evbuffer_add_printf(out, "X-Bench-Sent: %ld %.6f\r\n", s->cur,
		    wallclock());
	if (m != NULL)
		evbuffer_add_reference(out, m->data, m->len, NULL, NULL);
	else {
		evbuffer_add_printf(out, "From: <%s>\r\nTo: <%s>\r\n"
		    "Subject: smtpload %d.%ld\r\n"
		    "Message-ID: <smtpload.%ld.%d.%ld@smtpload.test>\r\n\r\n",
		    ld->from, ld->rcpt, s->no, s->seq, (long)getpid(), s->no,
		    s->seq);
		evbuffer_add_reference(out, ld->body, ld->body_len, NULL, NULL);
	}
	evbuffer_add(out, ".\r\n", 3);
	s->t_dot = now();
	s->step = S_DOT;
}

/* One complete reply (code) arrived for the current step. */
static void
sess_reply(struct sess *s, int code, const char *line)
{
	struct load *ld = s->ld;
	const struct msg *m;
	char buf[300];

	switch (s->step) {
	case S_GREET:
		if (code != 220) {
			if (ld->idle) {
				ld->refused++;
				sess_finish(s, 1);
				sess_settle(s);
				return;
			}
			goto bad;
		}
		ld->greeted++;
		s->step = S_EHLO;
		evbuffer_add_printf(bufferevent_get_output(s->bev),
		    "EHLO %s\r\n", ld->ehlo);
		return;
	case S_EHLO:
		if (code != 250)
			goto bad;
		if (ld->idle) {
			ld->ehlo_ok++;
			s->step = S_IDLE;
			bufferevent_set_timeouts(s->bev, NULL, NULL);
			sess_settle(s);
			return;
		}
		sess_next_message(s);
		return;
	case S_MAIL:
		if (code != 250)
			goto refused;
		m = sess_msg(s);
		sess_send(s, S_RCPT, "RCPT TO:<", m ? m->rcpt : ld->rcpt);
		return;
	case S_RCPT:
		if (code != 250)
			goto refused;
		sess_send(s, S_DATA, "DATA", NULL);
		return;
	case S_DATA:
		if (code != 354)
			goto refused;
		sess_send_content(s);
		return;
	case S_DOT:
		if (code >= 200 && code < 300) {
			double t = now();

			ld->acked++;
			if (!ld->stopping)
				ld->acked_in_time++;
			lat_add(&ld->eod, (t - s->t_dot) * 1000.0);
			lat_add(&ld->txn, (t - s->t_txn) * 1000.0);
		} else if (code >= 400 && code < 500)
			ld->tempfail++;
		else
			ld->permfail++;
		sess_next_message(s);
		return;
	case S_QUIT:
		sess_quit_done(s);
		return;
	default:
		goto bad;
	}
refused:
	if (code >= 400 && code < 500)
		ld->tempfail++;
	else
		ld->permfail++;
	if (!ld->quiet)
		fprintf(stderr, "smtpload: session %d: refused: %.200s\n", s->no, line);
	if (code == 421) {
		sess_error(s, "421 from the server");
		return;
	}
	/* RFC 5321 4.1.1.5: a fresh transaction after RSET */
	s->step = S_EHLO;	/* whose 250 starts the next message */
	evbuffer_add_printf(bufferevent_get_output(s->bev), "RSET\r\n");
	return;
bad:
	snprintf(buf, sizeof(buf), "unexpected reply: %.200s", line);
	sess_error(s, buf);
}

static void
sess_next_message(struct sess *s)
{
	struct load *ld = s->ld;
	const struct msg *m;

	if (ld->stopping) {
		sess_send(s, S_QUIT, "QUIT", NULL);
		return;
	}
	if (!s->claimed) {
		if (!load_more_work(ld)) {
			sess_send(s, S_QUIT, "QUIT", NULL);
			return;
		}
		if (ld->per_conn && s->conn_msgs >= ld->per_conn) {
			s->again = 1;
			sess_send(s, S_QUIT, "QUIT", NULL);
			return;
		}
		ld->started++;
		s->cur = ld->started - 1;
	}
	s->claimed = 0;
	if (s->conn_msgs > 0)
		s->t_txn = now();	/* else it began at the connect */
	s->conn_msgs++;
	s->seq++;
	m = sess_msg(s);
	sess_send(s, S_MAIL, "MAIL FROM:<", m ? m->from : ld->from);
}

static void
sess_read_cb(struct bufferevent *bev, void *arg)
{
	struct sess *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	while (s->bev != NULL &&
	    (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		int last = n == 3 || (n > 3 && line[3] == ' ');

		if (n < 3 || line[0] < '2' || line[0] > '5' ||
		    (n > 3 && line[3] != ' ' && line[3] != '-')) {
			free(line);
			sess_error(s, "malformed reply");
			return;
		}
		if (last) {
			int code = atoi(line);

			sess_reply(s, code, line);
		}
		free(line);
	}
	if (s->bev != NULL && evbuffer_get_length(in) > 4096)
		sess_error(s, "reply line too long");
}

static void
sess_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sess *s = arg;
	struct load *ld = s->ld;
	char why[128];

	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;

		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY,
		    &one, sizeof(one));
		s->step = S_GREET;
		return;
	}
	if (s->step == S_QUIT && (what & BEV_EVENT_EOF)) {
		sess_quit_done(s);
		return;
	}
	if (ld->idle) {
		if (what & BEV_EVENT_TIMEOUT)
			ld->timeouts++;
		else if (s->step == S_CONNECT)
			ld->connect_failed++;
		else if (s->step == S_GREET)
			ld->closed_early++;
	}
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(why, sizeof(why), "no reply within %d s (step %d)",
		    ld->timeout, (int)s->step);
	else if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "connection closed (step %d)", (int)s->step);
	else
		snprintf(why, sizeof(why), "connection error: %s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	if (s->step == S_DOT)
		ld->tempfail++;	/* the message in flight: unknown fate */
	sess_error(s, why);
}

static void
sess_connect(struct sess *s)
{
	struct load *ld = s->ld;
	struct timeval tv = { ld->timeout, 0 };

	s->conn_msgs = 0;
	s->t_txn = now();
	s->bev = bufferevent_socket_new(ld->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		if (ld->idle)
			ld->connect_failed++;
		sess_error(s, "out of memory");
		return;
	}
	bufferevent_setcb(s->bev, sess_read_cb, NULL, sess_event_cb, s);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->step = S_CONNECT;
	if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&ld->addr,
	    (int)ld->addrlen) == -1) {
		if (ld->idle)
			ld->connect_failed++;
		sess_error(s, "connect failed");
	}
}

/* Idle mode: keep at most pending_max sessions between connect and idle. */
static void
idle_start_more(struct load *ld)
{
	if (ld->in_start)
		return;	/* the loop below is already running */
	ld->in_start = 1;
	while (ld->next < ld->conc && ld->next - ld->settled < ld->pending_max)
		sess_connect(&ld->s[ld->next++]);
	ld->in_start = 0;
}

/* Idle mode: the hold is over; every idle session says QUIT. */
static void
hold_cb(evutil_socket_t fd, short what, void *arg)
{
	struct load *ld = arg;
	struct timeval tv = { ld->timeout, 0 };
	int i;

	ld->t_end = now();
	ld->stopping = 1;
	for (i = 0; i < ld->conc; i++) {
		struct sess *s = &ld->s[i];

		if (s->step != S_IDLE || s->bev == NULL)
			continue;
		bufferevent_set_timeouts(s->bev, &tv, &tv);
		sess_send(s, S_QUIT, "QUIT", NULL);
	}
	tv.tv_sec = ld->timeout + 1;
	evtimer_del(ld->deadline);
	evtimer_add(ld->deadline, &tv);
	load_check_done(ld);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct load *ld = arg;
	int i;

	if (ld->idle && ld->t_settled == 0) {
		/* not all settled in time: report what there is and hold */
		ld->next = ld->conc;	/* start no more */
		idle_hold(ld);
		return;
	}
	if (!ld->stopping) {
		/* time is up: messages in flight finish, then QUIT */
		struct timeval tv = { ld->timeout + 1, 0 };

		ld->stopping = 1;
		ld->t_end = now();
		evtimer_add(ld->deadline, &tv);
		return;
	}
	/* the grace period is over too: drop whatever is left */
	for (i = 0; i < ld->conc; i++) {
		if (ld->s[i].step != S_DONE && ld->s[i].step != S_QUIT &&
		    !ld->idle)
			ld->errors++;
		sess_finish(&ld->s[i], 0);
	}
	event_base_loopexit(ld->base, NULL);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(const struct lat *l, double p)
{
	size_t i;

	if (l->n == 0)
		return 0;
	i = (size_t)ceil(p / 100.0 * (double)l->n);
	if (i > 0)
		i--;
	return l->v[i < l->n ? i : l->n - 1];
}

static double
lat_mean(const struct lat *l)
{
	double sum = 0;
	size_t i;

	for (i = 0; i < l->n; i++)
		sum += l->v[i];
	return l->n ? sum / (double)l->n : 0;
}

static void
lat_json(FILE *f, const char *name, struct lat *l)
{
	fprintf(f, "\"%s\": {\"p50\": %.3f, \"p90\": %.3f, \"p95\": %.3f, "
	    "\"p99\": %.3f, \"max\": %.3f, \"mean\": %.3f, \"n\": %zu}", name,
	    pct(l, 50), pct(l, 90), pct(l, 95), pct(l, 99),
	    l->n ? l->v[l->n - 1] : 0, lat_mean(l), l->n);
}

static int
resolve(struct load *ld, const char *host, const char *port)
{
	struct addrinfo hints, *res;
	int r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		fprintf(stderr, "smtpload: %s port %s: %s\n", host, port,
		    gai_strerror(r));
		return -1;
	}
	memcpy(&ld->addr, res->ai_addr, res->ai_addrlen);
	ld->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* The whole file, NUL-terminated; NULL on error (reported). */
static char *
read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL, *np;
	size_t len = 0, cap = 0, n;

	if (f == NULL) {
		fprintf(stderr, "smtpload: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 131072;
			if (cap > MSG_MAX + 131072 || (np = realloc(p, cap)) == NULL) {
				fprintf(stderr, "smtpload: %s: too large\n", path);
				goto fail;
			}
			p = np;
		}
		n = fread(p + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		fprintf(stderr, "smtpload: %s: read error\n", path);
		goto fail;
	}
	fclose(f);
	p[len] = '\0';
	*len_r = len;
	return p;
fail:
	fclose(f);
	free(p);
	return NULL;
}

/* Wire form: every line ends in CRLF, a leading "." doubled (RFC 5321
 * 4.5.2). The final "." is added when the message is sent. */
static int
msg_set_data(struct msg *m, const char *raw, size_t len)
{
	size_t i = 0, o = 0;

	if (len == 0 || len > MSG_MAX)
		return -1;
	if ((m->data = malloc(2 * len + 4)) == NULL)
		return -1;
	while (i < len) {
		const char *nl = memchr(raw + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - raw) : len, l = end - i;

		if (l > 0 && raw[end - 1] == '\r')
			l--;
		if (l > 0 && raw[i] == '.')
			m->data[o++] = '.';
		memcpy(m->data + o, raw + i, l);
		o += l;
		m->data[o++] = '\r';
		m->data[o++] = '\n';
		i = nl ? end + 1 : len;
	}
	m->len = o;
	return 0;
}

/* The address of the first NAME: field of the header (<...> or a bare
 * word with "@"), or NULL. */
static char *
header_addr(const char *raw, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = raw, *e, *a, *b;
	char *out;

	while (*p != '\0' && *p != '\r' && *p != '\n') {
		e = strchr(p, '\n');
		if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
			const char *v = p + nlen + 1, *end = e ? e : v + strlen(v);

			if ((a = memchr(v, '<', (size_t)(end - v))) != NULL &&
			    (b = memchr(a, '>', (size_t)(end - a))) != NULL) {
				a++;
			} else if ((b = memchr(v, '@', (size_t)(end - v))) != NULL) {
				for (a = b; a > v && !isspace((unsigned char)a[-1]) &&
				    a[-1] != '"'; a--)
					;
				while (b < end && !isspace((unsigned char)*b) &&
				    *b != '"' && *b != '>')
					b++;
			} else
				return NULL;
			if (b - a <= 0 || b - a >= ADDR_MAX ||
			    memchr(a, '@', (size_t)(b - a)) == NULL)
				return NULL;
			if ((out = malloc((size_t)(b - a) + 1)) == NULL)
				return NULL;
			memcpy(out, a, (size_t)(b - a));
			out[b - a] = '\0';
			return out;
		}
		if (e == NULL)
			break;
		p = e + 1;
	}
	return NULL;
}

static int
addr_ok(const char *a)
{
	return strlen(a) < ADDR_MAX && strpbrk(a, "<>\r\n \t") == NULL;
}

static int
corpus_add(struct load *ld, size_t *cap, const char *dir, const char *name,
    const char *from, const char *rcpt)
{
	char path[4096];
	struct msg *m;
	char *raw;
	size_t len;

	if (ld->ncorpus == *cap) {
		size_t ncap = *cap ? *cap * 2 : 256;
		struct msg *v = realloc(ld->corpus, ncap * sizeof(*v));

		if (v == NULL)
			return -1;
		ld->corpus = v;
		*cap = ncap;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((raw = read_file(path, &len)) == NULL)
		return -1;
	m = &ld->corpus[ld->ncorpus];
	memset(m, 0, sizeof(*m));
	m->from = from ? strdup(from) : header_addr(raw, "From");
	m->rcpt = rcpt ? strdup(rcpt) : header_addr(raw, "To");
	if (m->from == NULL || m->rcpt == NULL || !addr_ok(m->from) ||
	    !addr_ok(m->rcpt) || m->rcpt[0] == '\0' ||
	    msg_set_data(m, raw, len) == -1) {
		fprintf(stderr, "smtpload: %s: no usable envelope or content\n",
		    path);
		free(m->from);
		free(m->rcpt);
		free(m->data);
		free(raw);
		return -1;
	}
	free(raw);
	ld->ncorpus++;
	return 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The messages of dir (at most limit when > 0). */
static int
corpus_load(struct load *ld, const char *dir, long limit)
{
	char path[4096], *line = NULL, **names = NULL;
	size_t cap = 0, lcap = 0, nnames = 0, ncap = 0, i;
	struct dirent *de;
	FILE *f;
	DIR *d;
	int rc = -1;

	snprintf(path, sizeof(path), "%s/manifest.tsv", dir);
	if ((f = fopen(path, "r")) != NULL) {
		while (getline(&line, &lcap, f) != -1 &&
		    (limit == 0 || (long)ld->ncorpus < limit)) {
			char *name, *from, *rcpt, *save;

			line[strcspn(line, "\r\n")] = '\0';
			if (line[0] == '#' || line[0] == '\0')
				continue;
			name = strtok_r(line, "\t", &save);
			from = strtok_r(NULL, "\t", &save);
			rcpt = strtok_r(NULL, "\t", &save);
			if (name == NULL || from == NULL || rcpt == NULL) {
				fprintf(stderr, "smtpload: %s: bad line\n", path);
				goto out;
			}
			if (strcmp(from, "<>") == 0)
				from = "";
			if (corpus_add(ld, &cap, dir, name, from, rcpt) == -1)
				goto out;
		}
		rc = ld->ncorpus > 0 ? 0 : -1;
		goto out;
	}
	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "smtpload: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);

		if (de->d_name[0] == '.' || l < 5 ||
		    strcmp(de->d_name + l - 4, ".eml") != 0)
			continue;
		if (nnames == ncap) {
			char **v;

			ncap = ncap ? ncap * 2 : 256;
			if ((v = realloc(names, ncap * sizeof(*v))) == NULL)
				break;
			names = v;
		}
		if ((names[nnames] = strdup(de->d_name)) == NULL)
			break;
		nnames++;
	}
	closedir(d);
	if (nnames > 0)
		qsort(names, nnames, sizeof(*names), cmp_str);
	for (i = 0; i < nnames && (limit == 0 || (long)i < limit); i++)
		if (corpus_add(ld, &cap, dir, names[i], NULL, NULL) == -1)
			goto out;
	rc = ld->ncorpus > 0 ? 0 : -1;
out:
	if (f != NULL)
		fclose(f);
	for (i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	free(line);
	if (rc == -1 && ld->ncorpus == 0)
		fprintf(stderr, "smtpload: no messages in %s\n", dir);
	return rc;
}

/* As many descriptors as the hard limit allows: idle mode needs one per
 * session. */
static void
raise_nofile(int need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)need)
		fprintf(stderr, "smtpload: descriptor limit %llu is below the "
		    "%d sessions need (ulimit -n)\n",
		    (unsigned long long)rl.rlim_cur, need);
}

static void
usage(void)
{
	fprintf(stderr, "usage: smtpload [-h host] [-p port] [-c sessions] "
	    "[-n messages | -d seconds] [-s bytes | -D dir] [-m per-conn] [-S] "
	    "[-e ehlo] [-j file] [-f from] [-r rcpt] [-T reply-timeout] "
	    "[-R reconnects] [-q]\n"
	    "       smtpload -I [-h host] [-p port] [-c sessions] [-d hold] "
	    "[-P pending]\n");
	exit(2);
}

static void
report_idle(struct load *ld, int dead)
{
	printf("smtpload: idle: held=%.2fs sessions=%d greeted=%ld ehlo=%ld "
	    "refused=%ld closed_early=%ld connect_failed=%ld timeouts=%ld "
	    "dropped_while_held=%ld gave_up=%d\n",
	    ld->t_settled && ld->t_end ? ld->t_end - ld->t_settled : 0,
	    ld->conc, ld->greeted, ld->ehlo_ok, ld->refused, ld->closed_early,
	    ld->connect_failed, ld->timeouts, ld->dropped, dead);
}

static void
report_load(struct load *ld, double elapsed, int dead, const char *json)
{
	struct rusage ru;
	double cpu;
	size_t i, bytes = 0;
	FILE *f;

	for (i = 0; i < ld->ncorpus; i++)
		bytes += ld->corpus[i].len;
	bytes = ld->ncorpus ? bytes / ld->ncorpus : ld->body_len;
	if (ld->eod.n > 0)
		qsort(ld->eod.v, ld->eod.n, sizeof(*ld->eod.v), cmp_double);
	if (ld->txn.n > 0)
		qsort(ld->txn.v, ld->txn.n, sizeof(*ld->txn.v), cmp_double);
	printf("smtpload: sessions=%d size=%zu elapsed=%.2fs acked=%ld "
	    "tempfail=%ld permfail=%ld errors=%ld gave_up=%d\n", ld->conc,
	    bytes, elapsed, ld->acked, ld->tempfail, ld->permfail, ld->errors,
	    dead);
	printf("smtpload: acks/s=%.1f latency_ms p50=%.2f p90=%.2f p99=%.2f "
	    "max=%.2f\n", elapsed > 0 ? (double)ld->acked_in_time / elapsed : 0,
	    pct(&ld->eod, 50), pct(&ld->eod, 90), pct(&ld->eod, 99),
	    ld->eod.n ? ld->eod.v[ld->eod.n - 1] : 0);
	if (json == NULL)
		return;
	getrusage(RUSAGE_SELF, &ru);
	cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	if ((f = fopen(json, "w")) == NULL) {
		fprintf(stderr, "smtpload: %s: %s\n", json, strerror(errno));
		return;
	}
	fprintf(f, "{\"loader\": \"smtpload\", \"sessions\": %d, "
	    "\"per_conn\": %ld, \"attempted\": %ld, \"accepted\": %ld, "
	    "\"errors\": {\"tempfail\": %ld, \"permfail\": %ld, \"io\": %ld}, "
	    "\"gave_up\": %d, \"elapsed_s\": %.4f, \"accept_mps\": %.2f, "
	    "\"bytes_per_msg\": %zu, ", ld->conc, ld->per_conn, ld->started,
	    ld->acked, ld->tempfail, ld->permfail, ld->errors, dead, elapsed,
	    elapsed > 0 ? (double)ld->acked_in_time / elapsed : 0, bytes);
	lat_json(f, "lat_ms", &ld->txn);
	fprintf(f, ", ");
	lat_json(f, "eod_ms", &ld->eod);
	fprintf(f, ", \"cpu_s\": %.3f}\n", cpu);
	fclose(f);
}

int
main(int argc, char **argv)
{
	struct load ld;
	const char *host = "127.0.0.1", *port = "25", *dir = NULL, *json = NULL;
	struct timeval tv;
	double elapsed;
	size_t i;
	int ch, dead = 0;

	memset(&ld, 0, sizeof(ld));
	ld.conc = 1;
	ld.duration = 10;
	ld.size = 2048;
	ld.from = "load@smtpload.test";
	ld.rcpt = "user@example.test";
	ld.ehlo = "smtpload.test";
	ld.timeout = 30;
	ld.max_reconnects = 5;
	ld.pending_max = 100;
	while ((ch = getopt(argc, argv, "h:p:c:n:d:s:f:r:T:R:qD:m:Se:j:IP:")) != -1) {
		switch (ch) {
		case 'h': host = optarg; break;
		case 'p': port = optarg; break;
		case 'c': ld.conc = atoi(optarg); break;
		case 'n': ld.max_msgs = atol(optarg); break;
		case 'd': ld.duration = atof(optarg); break;
		case 's': ld.size = (size_t)atol(optarg); break;
		case 'f': ld.from = optarg; break;
		case 'r': ld.rcpt = optarg; break;
		case 'T': ld.timeout = atoi(optarg); break;
		case 'R': ld.max_reconnects = atoi(optarg); break;
		case 'q': ld.quiet = 1; break;
		case 'D': dir = optarg; break;
		case 'm': ld.per_conn = atol(optarg); break;
		case 'S': ld.stamp = 1; break;
		case 'e': ld.ehlo = optarg; break;
		case 'j': json = optarg; break;
		case 'I': ld.idle = 1; break;
		case 'P': ld.pending_max = atoi(optarg); break;
		default: usage();
		}
	}
	if (optind != argc || ld.conc < 1 || ld.conc > 100000 ||
	    ld.max_msgs < 0 || ld.duration <= 0 || ld.duration > 3600 ||
	    ld.timeout < 1 || ld.timeout > 600 || ld.size > MSG_MAX ||
	    ld.max_reconnects < 0 || ld.per_conn < 0 || ld.pending_max < 1 ||
	    !addr_ok(ld.from) || !addr_ok(ld.rcpt) ||
	    strpbrk(ld.ehlo, "\r\n ") != NULL || ld.ehlo[0] == '\0')
		usage();
	if (resolve(&ld, host, port) == -1)
		return 2;
	raise_nofile(ld.conc + 16);
	if (dir != NULL) {
		if (corpus_load(&ld, dir, ld.max_msgs) == -1)
			return 2;
	} else {
		/* body: lines of 76 octets + CRLF, about size octets in all */
		size_t lines = ld.size / 78 + 1, j;

		ld.body_len = lines * 78;
		if ((ld.body = malloc(ld.body_len)) == NULL)
			return 2;
		for (j = 0; j < lines; j++) {
			memset(ld.body + j * 78, 'a' + (int)(j % 26), 76);
			memcpy(ld.body + j * 78 + 76, "\r\n", 2);
		}
	}
	if ((ld.base = event_base_new()) == NULL ||
	    (ld.s = calloc((size_t)ld.conc, sizeof(*ld.s))) == NULL ||
	    (ld.deadline = evtimer_new(ld.base, deadline_cb, &ld)) == NULL ||
	    (ld.hold = evtimer_new(ld.base, hold_cb, &ld)) == NULL)
		return 2;
	if (ld.idle)
		tv.tv_sec = 300, tv.tv_usec = 0;	/* to settle */
	else if (ld.max_msgs) {
		/* by count: a hard bound of 10 minutes all the same */
		tv.tv_sec = 600;
		tv.tv_usec = 0;
	} else {
		tv.tv_sec = (long)ld.duration;
		tv.tv_usec = (long)((ld.duration - (double)(long)ld.duration) * 1e6);
	}
	evtimer_add(ld.deadline, &tv);
	ld.t0 = now();
	for (i = 0; i < (size_t)ld.conc; i++) {
		ld.s[i].ld = &ld;
		ld.s[i].no = (int)i + 1;
		ld.s[i].retry = evtimer_new(ld.base, sess_retry_cb, &ld.s[i]);
		if (ld.s[i].retry == NULL)
			return 2;
	}
	if (ld.idle)
		idle_start_more(&ld);
	else
		for (i = 0; i < (size_t)ld.conc; i++)
			sess_connect(&ld.s[i]);
	event_base_dispatch(ld.base);
	if (ld.t_end == 0)
		ld.t_end = now();
	elapsed = ld.t_end - ld.t0;
	for (i = 0; i < (size_t)ld.conc; i++) {
		dead += ld.s[i].dead;
		if (ld.s[i].bev)
			bufferevent_free(ld.s[i].bev);
		event_free(ld.s[i].retry);
	}
	if (ld.idle)
		report_idle(&ld, dead);
	else
		report_load(&ld, elapsed, dead, json);
	event_free(ld.deadline);
	event_free(ld.hold);
	event_base_free(ld.base);
	for (i = 0; i < ld.ncorpus; i++) {
		free(ld.corpus[i].from);
		free(ld.corpus[i].rcpt);
		free(ld.corpus[i].data);
	}
	free(ld.corpus);
	free(ld.s);
	free(ld.eod.v);
	free(ld.txn.v);
	free(ld.body);
	if (ld.idle)
		return ld.ehlo_ok == ld.conc && ld.dropped == 0 ? 0 : 1;
	return ld.acked > 0 && dead == 0 ? 0 : 1;
}
