/*
 * smtpload: an SMTP load generator for benchmarks (never a test).
 *
 * N concurrent sessions against one server; each says EHLO once, then
 * sends messages back to back (MAIL, RCPT, DATA, content, ".", one
 * command at a time, no pipelining) until a message count or a duration
 * is reached, then QUIT. Prints the acknowledgements per second and the
 * latency percentiles from the end of data (the "." line sent) to its
 * reply.
 *
 * Bounded: every reply has a timeout (-T), the whole run has a hard
 * deadline (duration or 10 minutes plus the reply timeout), a broken
 * connection is reopened after a pause (at most -R times per session), and
 * the program always ends with its report. Exit status 0 when at least one
 * message was acknowledged and no session gave up, else 1.
 *
 * Usage: smtpload [-h HOST] [-p PORT] [-c SESSIONS] [-n MESSAGES | -d SECONDS]
 *                 [-s BYTES] [-f FROM] [-r RCPT] [-T TIMEOUT] [-R RECONNECTS] [-q]
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

enum step { S_CONNECT, S_GREET, S_EHLO, S_MAIL, S_RCPT, S_DATA, S_DOT,
	S_QUIT, S_DONE };

struct load;

struct sess {
	struct load *ld;
	int no;
	struct bufferevent *bev;
	struct event *retry;
	enum step step;
	long seq;		/* messages started by this session */
	double t_dot;		/* when "." was sent */
	int reconnects;
	int dead;		/* gave up */
};

struct load {
	struct event_base *base;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int conc;
	long max_msgs;		/* 0: by time */
	double duration;	/* seconds, when max_msgs == 0 */
	size_t size;
	const char *from, *rcpt;
	int timeout;
	int max_reconnects;
	int quiet;
	char *body;		/* the content after the headers */
	size_t body_len;
	double t0, t_end;
	int stopping;		/* no new messages */
	long started;		/* messages begun (for -n) */
	long acked, tempfail, permfail, errors, closed_sessions;
	long acked_in_time;	/* before the duration ran out */
	double *lat;		/* ms, one per acknowledged message */
	size_t nlat, caplat;
	struct sess *s;
	struct event *deadline, *tick;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sess_connect(struct sess *s);
static void sess_next_message(struct sess *s);

static void
load_check_done(struct load *ld)
{
	if (ld->closed_sessions == ld->conc)
		event_base_loopexit(ld->base, NULL);
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

static void
sess_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sess *s = arg;

	if (s->ld->stopping) {
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
lat_add(struct load *ld, double ms)
{
	if (ld->nlat == ld->caplat) {
		size_t cap = ld->caplat ? ld->caplat * 2 : 4096;
		double *v;

		if (cap > 50 * 1000 * 1000 ||
		    (v = realloc(ld->lat, cap * sizeof(*v))) == NULL)
			return;	/* keep counting, stop sampling */
		ld->lat = v;
		ld->caplat = cap;
	}
	ld->lat[ld->nlat++] = ms;
}

static void
sess_send_content(struct sess *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	evbuffer_add_printf(out, "From: <%s>\r\nTo: <%s>\r\n"
	    "Subject: smtpload %d.%ld\r\n"
	    "Message-ID: <smtpload.%ld.%d.%ld@smtpload.test>\r\n\r\n",
	    s->ld->from, s->ld->rcpt, s->no, s->seq, (long)getpid(), s->no,
	    s->seq);
	evbuffer_add(out, s->ld->body, s->ld->body_len);
	evbuffer_add(out, ".\r\n", 3);
	s->t_dot = now();
	s->step = S_DOT;
}

/* One complete reply (code) arrived for the current step. */
static void
sess_reply(struct sess *s, int code, const char *line)
{
	struct load *ld = s->ld;
	char buf[300];

	switch (s->step) {
	case S_GREET:
		if (code != 220)
			goto bad;
		sess_send(s, S_EHLO, "EHLO smtpload.test", NULL);
		return;
	case S_EHLO:
		if (code != 250)
			goto bad;
		sess_next_message(s);
		return;
	case S_MAIL:
		if (code != 250)
			goto refused;
		sess_send(s, S_RCPT, "RCPT TO:<", ld->rcpt);
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
			ld->acked++;
			if (!ld->stopping)
				ld->acked_in_time++;
			lat_add(ld, (now() - s->t_dot) * 1000.0);
		} else if (code >= 400 && code < 500)
			ld->tempfail++;
		else
			ld->permfail++;
		sess_next_message(s);
		return;
	case S_QUIT:
		sess_finish(s, 0);
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

	if (ld->stopping || (ld->max_msgs && ld->started >= ld->max_msgs)) {
		sess_send(s, S_QUIT, "QUIT", NULL);
		return;
	}
	ld->started++;
	s->seq++;
	sess_send(s, S_MAIL, "MAIL FROM:<", ld->from);
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
	char why[128];

	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;

		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY,
		    &one, sizeof(one));
		s->step = S_GREET;
		return;
	}
	if (s->step == S_QUIT && (what & BEV_EVENT_EOF)) {
		sess_finish(s, 0);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(why, sizeof(why), "no reply within %d s (step %d)",
		    s->ld->timeout, (int)s->step);
	else if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "connection closed (step %d)", (int)s->step);
	else
		snprintf(why, sizeof(why), "connection error: %s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	if (s->step == S_DOT)
		s->ld->tempfail++;	/* the message in flight: unknown fate */
	sess_error(s, why);
}

static void
sess_connect(struct sess *s)
{
	struct load *ld = s->ld;
	struct timeval tv = { ld->timeout, 0 };

	s->bev = bufferevent_socket_new(ld->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		sess_error(s, "out of memory");
		return;
	}
	bufferevent_setcb(s->bev, sess_read_cb, NULL, sess_event_cb, s);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->step = S_CONNECT;
	if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&ld->addr,
	    (int)ld->addrlen) == -1)
		sess_error(s, "connect failed");
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct load *ld = arg;
	int i;

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
		if (ld->s[i].step != S_DONE && ld->s[i].step != S_QUIT)
			ld->errors++;
		sess_finish(&ld->s[i], 0);
	}
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(const double *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)ceil(p / 100.0 * (double)n);
	if (i > 0)
		i--;
	return v[i < n ? i : n - 1];
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

static void
usage(void)
{
	fprintf(stderr, "usage: smtpload [-h host] [-p port] [-c sessions] "
	    "[-n messages | -d seconds] [-s bytes] [-f from] [-r rcpt] "
	    "[-T reply-timeout] [-R reconnects] [-q]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct load ld;
	const char *host = "127.0.0.1", *port = "25";
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
	ld.timeout = 30;
	ld.max_reconnects = 5;
	while ((ch = getopt(argc, argv, "h:p:c:n:d:s:f:r:T:R:q")) != -1) {
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
		default: usage();
		}
	}
	if (ld.conc < 1 || ld.conc > 10000 || ld.max_msgs < 0 ||
	    ld.duration <= 0 || ld.duration > 3600 || ld.timeout < 1 ||
	    ld.timeout > 600 || ld.size > 64 * 1024 * 1024 ||
	    ld.max_reconnects < 0 || strpbrk(ld.from, "<>\r\n ") ||
	    strpbrk(ld.rcpt, "<>\r\n "))
		usage();
	if (resolve(&ld, host, port) == -1)
		return 2;
	/* body: lines of 76 octets + CRLF, about size octets in all */
	{
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
	    (ld.deadline = evtimer_new(ld.base, deadline_cb, &ld)) == NULL)
		return 2;
	/* by count: a hard bound of 10 minutes all the same */
	tv.tv_sec = ld.max_msgs ? 600 : (long)ld.duration;
	tv.tv_usec = ld.max_msgs ? 0 :
	    (long)((ld.duration - (double)(long)ld.duration) * 1e6);
	evtimer_add(ld.deadline, &tv);
	ld.t0 = now();
	for (i = 0; i < (size_t)ld.conc; i++) {
		ld.s[i].ld = &ld;
		ld.s[i].no = (int)i + 1;
		ld.s[i].retry = evtimer_new(ld.base, sess_retry_cb, &ld.s[i]);
		if (ld.s[i].retry == NULL)
			return 2;
		sess_connect(&ld.s[i]);
	}
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
	qsort(ld.lat, ld.nlat, sizeof(*ld.lat), cmp_double);
	printf("smtpload: sessions=%d size=%zu elapsed=%.2fs acked=%ld "
	    "tempfail=%ld permfail=%ld errors=%ld gave_up=%d\n", ld.conc,
	    ld.body_len, elapsed, ld.acked, ld.tempfail, ld.permfail,
	    ld.errors, dead);
	printf("smtpload: acks/s=%.1f latency_ms p50=%.2f p90=%.2f p99=%.2f "
	    "max=%.2f\n", elapsed > 0 ? (double)ld.acked_in_time / elapsed : 0,
	    pct(ld.lat, ld.nlat, 50), pct(ld.lat, ld.nlat, 90),
	    pct(ld.lat, ld.nlat, 99), ld.nlat ? ld.lat[ld.nlat - 1] : 0);
	event_free(ld.deadline);
	event_base_free(ld.base);
	free(ld.s);
	free(ld.lat);
	free(ld.body);
	return ld.acked > 0 && dead == 0 ? 0 : 1;
}
