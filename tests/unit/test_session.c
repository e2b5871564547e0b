/*
 * smtp/session driven over a socketpair with a real event loop: hooks that
 * answer later (timers) must hold the session still — pipelined commands
 * wait, replies come in order — and the content reaches on_data_chunk
 * unstuffed. The client side is a script of steps, each sent once so many
 * replies have arrived (as a client that obeys RFC 2920 does), or before
 * the greeting to test the daemon's refusals.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "smtp/session.h"

struct step {
	int after;		/* replies to wait for (-1: end of script) */
	const char *text;
};

struct harness {
	const struct step *steps;
	size_t next_step;
	struct event_base *base;
	struct smtp_session *s;
	struct event *later;		/* pending async decision */
	int later_code;
	char later_text[128];
	struct buf content;
	struct buf events;		/* hook call order */
	int client_fd;
	struct buf replies;
	struct event *rd;
	int closed;
	int txn_ends;
	int close_on_mail;		/* client vanishes while MAIL is pending */
};

static void
later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct harness *h = arg;

	if (h->later_code == 0)
		smtp_session_accept(h->s);
	else
		smtp_session_reply(h->s, h->later_code, "%s", h->later_text);
}

static void
answer_later_ms(struct harness *h, int code, const char *text, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	h->later_code = code;
	snprintf(h->later_text, sizeof(h->later_text), "%s", text);
	evtimer_add(h->later, &tv);
}

static void
answer_later(struct harness *h, int code, const char *text)
{
	struct timeval tv = { 0, 30000 };

	h->later_code = code;
	snprintf(h->later_text, sizeof(h->later_text), "%s", text);
	evtimer_add(h->later, &tv);
}

static void
hk_connect(struct smtp_session *s, void *arg)
{
	struct harness *h = arg;

	h->s = s;
	buf_appends(&h->events, "connect;");
	smtp_session_accept(s);
}

static void
hk_mail(struct smtp_session *s, const struct smtp_path_args *a, void *arg)
{
	struct harness *h = arg;

	buf_appendf(&h->events, "mail=%s;", a->path);
	if (h->close_on_mail) {
		if (h->rd)
			event_del(h->rd);
		close(h->client_fd);
		h->client_fd = open("/dev/null", O_RDONLY);
	}
	answer_later(h, 0, "");
}

static void
hk_rcpt(struct smtp_session *s, const struct smtp_path_args *a, void *arg)
{
	struct harness *h = arg;

	buf_appendf(&h->events, "rcpt=%s;", a->path);
	if (strncmp(a->path, "bad@", 4) == 0)
		answer_later(h, 550, "5.7.1 no");
	else
		answer_later(h, 0, "");
}

/* on_data_start refuses with this (0: accepts at once) */
static int refuse_data_start;

static void
hk_data_start(struct smtp_session *s, void *arg)
{
	if (refuse_data_start)
		smtp_session_reply(s, refuse_data_start, "4.3.1 Insufficient "
		    "system storage");
	else
		smtp_session_accept(s);
}

static int
hk_chunk(struct smtp_session *s, const char *p, size_t n, void *arg)
{
	struct harness *h = arg;

	buf_append(&h->content, p, n);
	return 0;
}

/* how long on_data_end takes to answer (DNS, the spool commit) */
static int data_end_ms = 30;

static void
hk_data_end(struct smtp_session *s, void *arg)
{
	struct harness *h = arg;

	buf_appendf(&h->events, "end:%zu;", smtp_session_rcpt_count(s));
	answer_later_ms(h, 250, "2.0.0 Ok: queued as TEST", data_end_ms);
}

static void
hk_txn_end(struct smtp_session *s, void *arg)
{
	struct harness *h = arg;

	h->txn_ends++;
}

static void
hk_close(struct smtp_session *s, void *arg)
{
	struct harness *h = arg;

	evtimer_del(h->later);	/* the owner cancels what it had pending */
	h->closed = 1;
	h->s = NULL;
}

static const struct smtp_hooks hooks = {
	.on_connect = hk_connect,
	.on_mail = hk_mail,
	.on_rcpt = hk_rcpt,
	.on_data_start = hk_data_start,
	.on_data_chunk = hk_chunk,
	.on_data_end = hk_data_end,
	.on_txn_end = hk_txn_end,
	.on_close = hk_close,
};

static const struct smtp_server_config scfg = {
	.hostname = "mx.test",
	.ssl_ctx = NULL,
	.max_size = 1000000,
	.max_rcpts = 100,
	.command_timeout = 5,
	.data_timeout = 5,
};

/* the configuration the next run_dialogue uses */
static const struct smtp_server_config *run_cfg = &scfg;

static void send_steps(struct harness *h);
static int close_on_mail;

static void
client_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct harness *h = arg;
	char b[4096];
	ssize_t n = read(fd, b, sizeof(b));

	if (n <= 0) {
		event_del(h->rd);
		event_base_loopbreak(h->base);
		return;
	}
	buf_append(&h->replies, b, (size_t)n);
	send_steps(h);
}

/* Final reply lines so far ("NNN text", not "NNN-text"). */
static int
count_replies(const struct harness *h)
{
	const char *p = h->replies.data, *end = p + h->replies.len;
	int n = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (nl == NULL)
			break;
		if (nl - p >= 4 && p[3] == ' ')
			n++;
		p = nl + 1;
	}
	return n;
}

static void
send_steps(struct harness *h)
{
	const struct step *st;
	int n = count_replies(h);

	while ((st = &h->steps[h->next_step])->after >= 0 && st->after <= n) {
		size_t len = strlen(st->text);

		h->next_step++;
		/* the session may have closed already (a refusal) */
		if (write(h->client_fd, st->text, len) != (ssize_t)len)
			break;
	}
}

static void
run_dialogue(struct harness *h, const struct step *steps)
{
	struct sockaddr_in peer;
	struct timeval limit = { 5, 0 };
	int sv[2];

	memset(h, 0, sizeof(*h));
	h->steps = steps;
	h->close_on_mail = close_on_mail;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	h->base = event_base_new();
	h->later = evtimer_new(h->base, later_cb, h);
	memset(&peer, 0, sizeof(peer));
	peer.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.7", &peer.sin_addr);
	assert_non_null(smtp_session_new(h->base, sv[0], (struct sockaddr *)&peer,
	    sizeof(peer), run_cfg, &hooks, h));
	h->client_fd = sv[1];
	send_steps(h);
	h->rd = event_new(h->base, sv[1], EV_READ | EV_PERSIST, client_read_cb, h);
	event_add(h->rd, NULL);
	event_base_loopexit(h->base, &limit);
	event_base_dispatch(h->base);
}

static void
harness_free(struct harness *h)
{
	/* let the session finish freeing itself */
	event_base_loop(h->base, EVLOOP_NONBLOCK);
	event_free(h->rd);
	event_free(h->later);
	event_base_free(h->base);
	close(h->client_fd);
	buf_free(&h->content);
	buf_free(&h->events);
	buf_free(&h->replies);
}

static void
test_async_pipelined(void **state)
{
	static const struct step in[] = {
		{ 1, "EHLO client.test\r\n" },
		{ 2, "MAIL FROM:<a@b.test>\r\n"
		    "RCPT TO:<bad@x.test>\r\n"
		    "RCPT TO:<good@x.test>\r\n"
		    "DATA\r\n" },
		{ 6, "Subject: hi\r\n"
		    "\r\n"
		    "..dot line\r\n"
		    "body\r\n"
		    ".\r\n"
		    "QUIT\r\n" },
		{ -1, NULL },
	};
	static const char want[] =
	    "220 mx.test ESMTP mxgate\r\n"
	    "250-mx.test\r\n"
	    "250-PIPELINING\r\n"
	    "250-SIZE 1000000\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n"
	    "250-8BITMIME\r\n"
	    "250-CHUNKING\r\n"
	    "250-DSN\r\n"
	    "250 SMTPUTF8\r\n"
	    "250 2.1.0 Ok\r\n"
	    "550 5.7.1 no\r\n"
	    "250 2.1.5 Ok\r\n"
	    "354 End data with <CR><LF>.<CR><LF>\r\n"
	    "250 2.0.0 Ok: queued as TEST\r\n"
	    "221 2.0.0 Bye\r\n";
	struct harness h;

	run_dialogue(&h, in);
	assert_string_equal(h.replies.data, want);
	assert_string_equal(h.events.data,
	    "connect;mail=a@b.test;rcpt=bad@x.test;rcpt=good@x.test;end:1;");
	assert_string_equal(h.content.data, "Subject: hi\r\n\r\n.dot line\r\nbody\r\n");
	assert_int_equal(h.closed, 1);
	assert_int_equal(h.txn_ends, 1);
	harness_free(&h);
}

static void
test_smuggled_commands_stay_data(void **state)
{
	/* <LF>.<LF> must not end DATA; the message is refused at the real
	 * end and the embedded MAIL is never seen by a hook. */
	static const struct step in[] = {
		{ 1, "HELO c\r\n" },
		{ 2, "MAIL FROM:<a@b.test>\r\n" },
		{ 3, "RCPT TO:<good@x.test>\r\n" },
		{ 4, "DATA\r\n" },
		{ 5, "x\n.\nMAIL FROM:<evil@e.test>\r\n"
		    ".\r\n" },
		{ 6, "QUIT\r\n" },
		{ -1, NULL },
	};
	struct harness h;

	run_dialogue(&h, in);
	assert_non_null(strstr(h.replies.data, "554 5.6.0 Message refused: bare LF"));
	assert_null(strstr(h.events.data, "evil"));
	assert_null(strstr(h.events.data, "end:"));
	assert_non_null(strstr(h.replies.data, "221 2.0.0 Bye"));
	harness_free(&h);
}

static void
test_close_while_pending(void **state)
{
	/* The client leaves while MAIL awaits its decision: the late answer
	 * finds the connection gone, on_close comes once, nothing leaks. */
	static const struct step in[] = {
		{ 1, "HELO c\r\n" },
		{ 2, "MAIL FROM:<a@b.test>\r\n" },
		{ 3, "RCPT TO:<x@y.test>\r\n" },
		{ -1, NULL },
	};
	struct harness h;

	close_on_mail = 1;
	run_dialogue(&h, in);
	close_on_mail = 0;
	assert_int_equal(h.closed, 1);
	assert_string_equal(h.events.data, "connect;mail=a@b.test;");
	harness_free(&h);
}

/* Refusals that end the session: the reply, then the close; no hook sees
 * what came after. */
static void
check_refused(const struct step *in, const char *reply, const char *events)
{
	struct harness h;

	run_dialogue(&h, in);
	assert_non_null(h.replies.data);
	if (strstr(h.replies.data, reply) == NULL)
		fail_msg("no '%s' in: %s", reply, h.replies.data);
	assert_int_equal(h.closed, 1);
	assert_string_equal(h.events.data ? h.events.data : "", events);
	harness_free(&h);
}

static void
test_pregreet_refused(void **state)
{
	static const struct step in[] = {
		{ 0, "EHLO early.test\r\nMAIL FROM:<a@b.test>\r\n" },
		{ -1, NULL },
	};

	/* the greeting is decided from the loop: the input is there first */
	check_refused(in, "554 mx.test Error: client talked before the "
	    "greeting", "connect;");
}

static void
test_pipelining_refused(void **state)
{
	static const struct step helo[] = {
		{ 1, "HELO c\r\nMAIL FROM:<a@b.test>\r\n" },
		{ -1, NULL },
	};
	static const struct step data[] = {
		{ 1, "EHLO c\r\n" },
		{ 2, "MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n"
		    "Subject: early\r\n\r\n.\r\n" },
		{ -1, NULL },
	};

	check_refused(helo, "554 5.5.0 Error: SMTP protocol synchronization",
	    "connect;");
	check_refused(data, "554 5.5.0 Error: SMTP protocol synchronization",
	    "connect;mail=a@b.test;rcpt=x@y.test;");
}

static void
test_header_command_refused(void **state)
{
	static const struct step in[] = {
		{ 1, "EHLO c\r\n" },
		{ 2, "Subject: not a command\r\n" },
		{ 3, "MAIL FROM:<a@b.test>\r\n" },
		{ -1, NULL },
	};

	check_refused(in, "421 4.7.0 Error: message header received as a "
	    "command", "connect;");
}

/* The data rate times the client's content, not our answer to it: an end
 * of data decided after data_timeout (slow DNS for DKIM and DMARC, a slow
 * disk) still gets its 250, for DATA and for BDAT. */
static void
test_slow_decision_after_content(void **state)
{
	static const struct step data[] = {
		{ 1, "EHLO c\r\n" },
		{ 2, "MAIL FROM:<a@b.test>\r\n" },
		{ 3, "RCPT TO:<x@y.test>\r\n" },
		{ 4, "DATA\r\n" },
		{ 5, "Subject: s\r\n\r\nbody\r\n.\r\n" },
		{ 6, "QUIT\r\n" },
		{ -1, NULL },
	};
	static const struct step bdat[] = {
		{ 1, "EHLO c\r\n" },
		{ 2, "MAIL FROM:<a@b.test>\r\n" },
		{ 3, "RCPT TO:<x@y.test>\r\n" },
		{ 4, "BDAT 6 LAST\r\nbody\r\n" },
		{ 5, "QUIT\r\n" },
		{ -1, NULL },
	};
	static struct smtp_server_config cfg;
	const struct step *dialogues[] = { data, bdat };
	struct harness h;
	size_t i;

	cfg = scfg;
	cfg.data_timeout = 1;
	cfg.min_data_rate = 1000;
	run_cfg = &cfg;
	data_end_ms = 1600;
	for (i = 0; i < 2; i++) {
		run_dialogue(&h, dialogues[i]);
		assert_non_null(h.replies.data);
		if (strstr(h.replies.data, "250 2.0.0 Ok: queued as TEST\r\n"
		    "221 2.0.0 Bye\r\n") == NULL)
			fail_msg("dialogue %zu: %s", i, h.replies.data);
		assert_null(strstr(h.replies.data, "421"));
		assert_int_equal(h.closed, 1);
		harness_free(&h);
	}
}

/* Only the answers to the chunks of a refused BDAT message go uncounted:
 * errors the client makes while the refusal stands still count toward
 * hard_error_limit. */
static void
test_errors_count_after_refused_bdat(void **state)
{
	static const struct step in[] = {
		{ 1, "EHLO c\r\n" },
		{ 2, "MAIL FROM:<a@b.test>\r\n" },
		{ 3, "RCPT TO:<x@y.test>\r\n" },
		{ 4, "BDAT 1\r\nx" },
		{ 5, "BOGUS1\r\n" },
		{ 6, "BOGUS2\r\n" },
		{ 7, "BOGUS3\r\n" },
		{ 8, "BOGUS4\r\n" },
		{ -1, NULL },
	};
	static struct smtp_server_config cfg;

	cfg = scfg;
	cfg.hard_error_limit = 3;
	run_cfg = &cfg;
	refuse_data_start = 452;
	check_refused(in, "452 4.3.1 Insufficient system storage\r\n"
	    "503 5.5.1 Error: BDAT expected\r\n"
	    "503 5.5.1 Error: BDAT expected\r\n"
	    "503 5.5.1 Error: BDAT expected\r\n"
	    "421 4.7.0 Error: too many errors; closing\r\n",
	    "connect;mail=a@b.test;rcpt=x@y.test;");
}

/* What a test changed for its dialogues, back to the defaults (also when
 * it failed half-way). */
static int
reset_harness(void **state)
{
	run_cfg = &scfg;
	data_end_ms = 30;
	refuse_data_start = 0;
	close_on_mail = 0;
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_async_pipelined),
		cmocka_unit_test(test_smuggled_commands_stay_data),
		cmocka_unit_test(test_close_while_pending),
		cmocka_unit_test(test_pregreet_refused),
		cmocka_unit_test(test_pipelining_refused),
		cmocka_unit_test(test_header_command_refused),
		cmocka_unit_test_teardown(test_slow_decision_after_content,
		    reset_harness),
		cmocka_unit_test_teardown(test_errors_count_after_refused_bdat,
		    reset_harness),
	};

	signal(SIGPIPE, SIG_IGN);	/* as the daemon does */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
