/*
 * `mxgate queue [-c CONFIG] list [--json] | show ID [--body] | flush [ID] |
 * delete ID | hold ID | release ID | stats [--json]`: the delivery queue of
 * the spool (queue/spool.h: queue/, and hold/ where said).
 *
 *   list     queue/ then hold/, oldest first, under a header
 *            "ID AREA AGE SIZE SENDER": one line per message (AREA queue or
 *            held), then one indented line per recipient:
 *              "    STATE <addr> attempts=N next=WHEN last=TEXT"
 *            STATE pending, delivered or failed; attempts the message's
 *            attempts so far; next the time to its next attempt (4m, now;
 *            "-" when the recipient is done or the message held); last the
 *            last result for the recipient, to the end of the line ("-"
 *            when none). A held message has a line "    hold: REASON"
 *            first. Control octets (and spaces, except in the last field)
 *            are escaped as \xNN. "queue is empty" when there is nothing.
 *            --json: a JSON array of objects with the same data: id, area
 *            (the directory: "queue" or "hold"), held, arrival, age, size,
 *            sender, attempts, next_attempt, hold_reason, recipients
 *            [{address, state, attempts, next_attempt (null when done or
 *            held), last}]; times in unix seconds; strings with control
 *            octets escaped and invalid UTF-8 as U+FFFD.
 *   show     the envelope as "key: value" lines under "*** envelope ***"
 *            (every recipient with its state and last result), then under
 *            "*** headers ***" the header section as it would be delivered
 *            (prepend text, then the stored header), or with --body under
 *            "*** message ***" the whole message. On a terminal, control
 *            octets other than TAB, CR and LF print as '?'.
 *   flush    the envelope's next attempt set to now (so a daemon started
 *            later attempts it at once), and pickup/ID (pickup/FLUSH-ALL
 *            without ID) for the running daemon, which takes it within a
 *            second; the command waits up to 3 s to say whether a daemon
 *            took it. A message being attempted is left to that attempt.
 *   delete   removed for good (queue/ or hold/): "deleted ID".
 *   hold     queue/ -> hold/ with the hold reason "held by the
 *            administrator"; the daemon forgets it when its turn comes.
 *   release  hold/ -> queue/ and pickup/ID: "released ID".
 *   stats    counts by area (queued, held, corrupt files), recipients of
 *            queued messages by state, the oldest message's age and id,
 *            the total size of queued and held content; --json: an object.
 *
 * Safe while the daemon runs: envelopes are replaced atomically, so reads
 * see the old or the new one; hold, delete and flush take the spool lock
 * and the message's content lock (queue/spool.h), and are refused ("being
 * attempted right now", exit 1) while a delivery attempt of that message
 * runs, so an attempt's outcome is never written over a held or deleted
 * message. As root the command becomes the spool's owner first
 * (gateway/spoolcli.c).
 *
 * Exit status: 0 done, 1 error (unknown or invalid id, busy message,
 * unreadable spool), 2 usage.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gateway/gateway.h"
#include "lib/id.h"
#include "queue/spool.h"

#define QUEUECMD_CONFIG "/etc/mxgate/mxgate.ini"
#define QUEUECMD_HOLD_REASON "held by the administrator"
#define QUEUECMD_WAIT_MS 3000

struct qc {
	struct spool *sp;
	int json;
	int body;
	long long now;
	int n;			/* messages printed */
	int errors;
	/* stats */
	int count[2];		/* queued, held */
	long rcpts[3];		/* pending, delivered, failed (queued only) */
	long long oldest;
	char oldest_id[ID_LEN + 1];
	unsigned long long size;
};

static void
queuecmd_usage(FILE *f)
{
	fprintf(f, "usage: mxgate queue [-c FILE] list [--json] | show ID [--body] | "
	    "flush [ID] | delete ID | hold ID | release ID | stats [--json]\n");
}

static const char *
queuecmd_state(char state)
{
	return state == ENV_DELIVERED ? "delivered" :
	    state == ENV_FAILED ? "failed" : "pending";
}

static void
queuecmd_next(char *out, size_t n, const struct qc *q, const struct envelope *env,
    int held, char state)
{
	if (held || state != ENV_PENDING)
		snprintf(out, n, "-");
	else if (env->next_attempt <= q->now)
		snprintf(out, n, "now");
	else
		spoolcli_age(out, n, env->next_attempt - q->now);
}

static void
queuecmd_list_text(struct qc *q, const struct envelope *env, int held)
{
	char age[32], next[32];
	size_t i;

	if (q->n++ == 0)
		printf("%-16s %-5s %5s %9s %s\n", "ID", "AREA", "AGE", "SIZE",
		    "SENDER");
	spoolcli_age(age, sizeof(age), q->now - env->arrival);
	printf("%-16s %-5s %5s %9zu <", env->id, held ? "held" : "queue", age,
	    env->size);
	spoolcli_put(stdout, env->sender, 0);
	printf(">\n");
	if (held) {
		printf("    hold: ");
		spoolcli_put(stdout, env->hold_reason ? env->hold_reason : "-", 1);
		putchar('\n');
	}
	for (i = 0; i < env->nrcpt; i++) {
		const struct env_rcpt *r = &env->rcpts[i];

		queuecmd_next(next, sizeof(next), q, env, held, r->state);
		printf("    %s <", queuecmd_state(r->state));
		spoolcli_put(stdout, r->addr, 0);
		printf("> attempts=%d next=%s last=", env->attempts, next);
		spoolcli_put(stdout, r->last ? r->last : "-", 1);
		putchar('\n');
	}
}

static void
queuecmd_list_json(struct qc *q, const struct envelope *env, int held)
{
	size_t i;

	printf("%s\n  {\"id\": \"%s\", \"area\": \"%s\", \"held\": %s, "
	    "\"arrival\": %lld, \"age\": %lld, \"size\": %zu, \"sender\": ",
	    q->n++ ? "," : "", env->id, held ? "hold" : "queue",
	    held ? "true" : "false", env->arrival, q->now - env->arrival,
	    env->size);
	spoolcli_json_str(stdout, env->sender);
	printf(", \"attempts\": %d, \"next_attempt\": %lld, \"hold_reason\": ",
	    env->attempts, env->next_attempt);
	spoolcli_json_str(stdout, held ? env->hold_reason : NULL);
	printf(", \"recipients\": [");
	for (i = 0; i < env->nrcpt; i++) {
		const struct env_rcpt *r = &env->rcpts[i];

		printf("%s{\"address\": ", i ? ", " : "");
		spoolcli_json_str(stdout, r->addr);
		printf(", \"state\": \"%s\", \"attempts\": %d, \"next_attempt\": ",
		    queuecmd_state(r->state), env->attempts);
		if (held || r->state != ENV_PENDING)
			printf("null");
		else
			printf("%lld", env->next_attempt);
		printf(", \"last\": ");
		spoolcli_json_str(stdout, r->last);
		putchar('}');
	}
	printf("]}");
}

/* The envelope of id in queue/ (held 0) or hold/; gone meanwhile (moved,
 * delivered) is skipped quietly, damaged is said. -1 when skipped. */
static int
queuecmd_load(struct qc *q, const char *id, int held, struct envelope *env)
{
	const char *err;
	int r = held ? spool_load_held(q->sp, id, env, &err) :
	    spool_load(q->sp, id, env, &err);

	if (r == -1 && errno != ENOENT) {
		fprintf(stderr, "mxgate: %s: unreadable envelope: %s\n", id, err);
		q->errors++;
	}
	return r;
}

static int
queuecmd_list_one(struct qc *q, const char *id, int held)
{
	struct envelope env;

	if (queuecmd_load(q, id, held, &env) == -1)
		return 0;
	if (q->json)
		queuecmd_list_json(q, &env, held);
	else
		queuecmd_list_text(q, &env, held);
	envelope_free(&env);
	return 0;
}

static int
queuecmd_list_queued(const char *id, void *arg)
{
	return queuecmd_list_one(arg, id, 0);
}

static int
queuecmd_list_held(const char *id, void *arg)
{
	return queuecmd_list_one(arg, id, 1);
}

static int
queuecmd_list(struct qc *q)
{
	if (q->json)
		putchar('[');
	if (spool_list(q->sp, 0, queuecmd_list_queued, q) == -1 ||
	    spool_list(q->sp, 1, queuecmd_list_held, q) == -1) {
		fprintf(stderr, "mxgate: spool %s: cannot list: %s\n",
		    spool_dir(q->sp), strerror(errno));
		return 1;
	}
	if (q->json)
		printf("%s]\n", q->n ? "\n" : "");
	else if (q->n == 0 && q->errors == 0)
		printf("queue is empty\n");
	return q->errors ? 1 : 0;
}

/* Finds id: 0 queued, 1 held, -1 (said) when neither. */
static int
queuecmd_find(struct qc *q, const char *id, struct envelope *env)
{
	const char *err;

	if (spool_load(q->sp, id, env, &err) == 0)
		return 0;
	if (errno == ENOENT && spool_load_held(q->sp, id, env, &err) == 0)
		return 1;
	if (errno == ENOENT)
		fprintf(stderr, "mxgate: %s: no such message in the queue\n", id);
	else
		fprintf(stderr, "mxgate: %s: %s\n", id, err);
	return -1;
}

static void
queuecmd_field(const char *key, const char *value)
{
	printf("%s: ", key);
	spoolcli_put(stdout, value ? value : "-", 1);
	putchar('\n');
}

/* The header section of fd up to and with the blank line. */
static int
queuecmd_copy_header(int fd, int tty)
{
	char chunk[16384];
	ssize_t r;
	size_t i;
	int bol = 1;

	while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (i = 0; i < (size_t)r; i++) {
			if (chunk[i] == '\n' && bol)
				return spoolcli_write(chunk, i + 1, tty);
			if (chunk[i] == '\n')
				bol = 1;
			else if (chunk[i] != '\r')
				bol = 0;
		}
		if (spoolcli_write(chunk, (size_t)r, tty) == -1)
			return -1;
	}
	return 0;
}

static int
queuecmd_show(struct qc *q, const char *id)
{
	struct envelope env;
	char when[64], age[32];
	size_t i;
	off_t size;
	int held, fd, tty = isatty(STDOUT_FILENO), rc = 0;

	if ((held = queuecmd_find(q, id, &env)) == -1)
		return 1;
	fd = held ? spool_open_held_content(q->sp, id, &size) :
	    spool_open_content(q->sp, id, &size);
	if (fd == -1) {
		fprintf(stderr, "mxgate: %s: content unreadable: %s\n", id,
		    strerror(errno));
		envelope_free(&env);
		return 1;
	}
	printf("*** envelope ***\n");
	queuecmd_field("id", env.id);
	printf("area: %s\n", held ? "hold" : "queue");
	spoolcli_time(when, sizeof(when), env.arrival);
	spoolcli_age(age, sizeof(age), q->now - env.arrival);
	printf("arrival: %s (%s ago)\n", when, age);
	printf("attempts: %d\n", env.attempts);
	queuecmd_next(age, sizeof(age), q, &env, held, ENV_PENDING);
	spoolcli_time(when, sizeof(when), env.next_attempt);
	printf("next attempt: %s (%s)\n", held ? "-" : when, age);
	if (held) {
		spoolcli_time(when, sizeof(when), env.hold_time);
		printf("held: %s\n", when);
		queuecmd_field("reason", env.hold_reason);
	}
	queuecmd_field("client", env.client_ip);
	queuecmd_field("helo", env.helo);
	queuecmd_field("session", env.session);
	printf("sender: <");
	spoolcli_put(stdout, env.sender, 1);
	printf(">\n");
	for (i = 0; i < env.nrcpt; i++) {
		printf("recipient: <");
		spoolcli_put(stdout, env.rcpts[i].addr, 1);
		printf("> %s; last: ", queuecmd_state(env.rcpts[i].state));
		spoolcli_put(stdout, env.rcpts[i].last ? env.rcpts[i].last : "-", 1);
		putchar('\n');
	}
	printf("size: %lld\n", (long long)size);
	printf("body: %s%s\n", env.body_8bit ? "8bitmime" : "7bit",
	    env.smtputf8 ? " smtputf8" : "");
	printf("*** %s ***\n", q->body ? "message" : "headers");
	fflush(stdout);
	if ((env.prepend &&
	    spoolcli_write(env.prepend, strlen(env.prepend), tty) == -1) ||
	    (q->body ? spoolcli_copy(fd, tty) : queuecmd_copy_header(fd, tty)) == -1 ||
	    fflush(stdout) == EOF) {
		fprintf(stderr, "mxgate: %s: %s\n", id, strerror(errno));
		rc = 1;
	}
	close(fd);
	envelope_free(&env);
	return rc;
}

/* Says why a change to id failed (e: its errno); where names the area the
 * call looked in ("queued" or "held"). Always 1. */
static int
queuecmd_failed(struct qc *q, const char *id, int e, const char *where)
{
	struct envelope env;
	const char *err;
	int held = -1;

	if (e == EBUSY)
		fprintf(stderr, "mxgate: %s is being attempted right now; try "
		    "again when the attempt is over\n", id);
	else if (e == ENOENT) {
		if (spool_load(q->sp, id, &env, &err) == 0)
			held = 0;
		else if (spool_load_held(q->sp, id, &env, &err) == 0)
			held = 1;
		fprintf(stderr, "mxgate: %s: no such %s message%s\n", id, where,
		    held == 0 ? " (it is queued)" : held == 1 ? " (it is held)" : "");
		if (held != -1)
			envelope_free(&env);
	} else if (e == ENODATA)
		fprintf(stderr, "mxgate: %s: its content is missing; the daemon's "
		    "next start sets it aside in corrupt/\n", id);
	else
		fprintf(stderr, "mxgate: %s: %s\n", id, strerror(e));
	return 1;
}

/* Waits for a running daemon to take pickup/ID (or FLUSH-ALL): 1 taken,
 * 0 not within QUEUECMD_WAIT_MS. */
static int
queuecmd_wait_taken(struct qc *q, const char *id)
{
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	int waited;

	for (waited = 0; waited < QUEUECMD_WAIT_MS; waited += 100) {
		if (spool_notify_pending(q->sp, id) != 1)
			return 1;
		nanosleep(&ts, NULL);
	}
	return spool_notify_pending(q->sp, id) != 1;
}

static void
queuecmd_flush_told(struct qc *q, const char *id, const char *what)
{
	if ((id ? spool_notify(q->sp, id) : spool_notify_all(q->sp)) == -1)
		printf("%s: the running daemon, if any, could not be told (%s); "
		    "the next start attempts %s at once\n", what, strerror(errno),
		    id ? "it" : "them");
	else if (queuecmd_wait_taken(q, id))
		printf("%s: the running daemon attempts %s now\n", what,
		    id ? "it" : "them");
	else
		printf("%s: no running daemon took the request within %ds; the "
		    "next start attempts %s at once\n", what,
		    QUEUECMD_WAIT_MS / 1000, id ? "it" : "them");
}

struct queuecmd_ids {
	struct qc *q;
	int done, busy;
};

static int
queuecmd_flush_each(const char *id, void *arg)
{
	struct queuecmd_ids *f = arg;

	if (spool_reschedule(f->q->sp, id, f->q->now) == 0)
		f->done++;
	else if (errno == EBUSY)
		f->busy++;
	else if (errno != ENOENT) {
		fprintf(stderr, "mxgate: %s: %s\n", id, strerror(errno));
		f->q->errors++;
	}
	return 0;
}

static int
queuecmd_flush(struct qc *q, const char *id)
{
	struct queuecmd_ids f = { q, 0, 0 };
	char what[128];

	if (id != NULL) {
		if (spool_reschedule(q->sp, id, q->now) == -1) {
			if (errno != EBUSY)
				return queuecmd_failed(q, id, errno, "queued");
			printf("flushed %s: it is being attempted right now\n", id);
			return 0;
		}
		snprintf(what, sizeof(what), "flushed %s", id);
		queuecmd_flush_told(q, id, what);
		return 0;
	}
	if (spool_list(q->sp, 0, queuecmd_flush_each, &f) == -1) {
		fprintf(stderr, "mxgate: spool %s: cannot list: %s\n",
		    spool_dir(q->sp), strerror(errno));
		return 1;
	}
	snprintf(what, sizeof(what), "flushed %d message(s) (%d being "
	    "attempted already)", f.done, f.busy);
	queuecmd_flush_told(q, NULL, what);
	return q->errors ? 1 : 0;
}

static int
queuecmd_delete(struct qc *q, const char *id)
{
	if (spool_remove_queued(q->sp, id) == -1 &&
	    (errno != ENOENT || spool_remove_held(q->sp, id) == -1))
		return queuecmd_failed(q, id, errno, "queued or held");
	printf("deleted %s\n", id);
	return 0;
}

static int
queuecmd_hold(struct qc *q, const char *id)
{
	if (spool_hold_as(q->sp, id, QUEUECMD_HOLD_REASON) == -1)
		return queuecmd_failed(q, id, errno, "queued");
	printf("held %s\n", id);
	return 0;
}

static int
queuecmd_release(struct qc *q, const char *id)
{
	if (spool_release(q->sp, id) == -1)
		return queuecmd_failed(q, id, errno, "held");
	printf("released %s\n", id);
	if (spool_notify(q->sp, id) == -1)
		fprintf(stderr, "mxgate: %s: the running daemon was not told (%s): "
		    "it is delivered after the daemon's next start\n", id,
		    strerror(errno));
	return 0;
}

static int
queuecmd_stats_one(struct qc *q, const char *id, int held)
{
	struct envelope env;
	size_t i;

	if (queuecmd_load(q, id, held, &env) == -1)
		return 0;
	q->count[held]++;
	q->size += env.size;
	if (q->oldest_id[0] == '\0' || env.arrival < q->oldest) {
		q->oldest = env.arrival;
		memcpy(q->oldest_id, env.id, sizeof(q->oldest_id));
	}
	for (i = 0; !held && i < env.nrcpt; i++)
		q->rcpts[env.rcpts[i].state == ENV_DELIVERED ? 1 :
		    env.rcpts[i].state == ENV_FAILED ? 2 : 0]++;
	envelope_free(&env);
	return 0;
}

static int
queuecmd_stats_queued(const char *id, void *arg)
{
	return queuecmd_stats_one(arg, id, 0);
}

static int
queuecmd_stats_held(const char *id, void *arg)
{
	return queuecmd_stats_one(arg, id, 1);
}

/* Files in corrupt/ (any name: it keeps whatever was set aside). */
static long
queuecmd_corrupt(struct qc *q)
{
	char path[4200];
	struct dirent *de;
	DIR *d;
	long n = 0;

	snprintf(path, sizeof(path), "%s/corrupt", spool_dir(q->sp));
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static int
queuecmd_stats(struct qc *q)
{
	long corrupt;
	long long age;
	char a[32];

	if (spool_list(q->sp, 0, queuecmd_stats_queued, q) == -1 ||
	    spool_list(q->sp, 1, queuecmd_stats_held, q) == -1 ||
	    (corrupt = queuecmd_corrupt(q)) == -1) {
		fprintf(stderr, "mxgate: spool %s: cannot list: %s\n",
		    spool_dir(q->sp), strerror(errno));
		return 1;
	}
	age = q->oldest_id[0] ? q->now - q->oldest : 0;
	if (age < 0)
		age = 0;
	if (q->json) {
		printf("{\"queued\": %d, \"held\": %d, \"corrupt\": %ld, "
		    "\"recipients\": {\"pending\": %ld, \"delivered\": %ld, "
		    "\"failed\": %ld}, \"oldest_age\": %lld, \"oldest_id\": ",
		    q->count[0], q->count[1], corrupt, q->rcpts[0], q->rcpts[1],
		    q->rcpts[2], age);
		spoolcli_json_str(stdout, q->oldest_id[0] ? q->oldest_id : NULL);
		printf(", \"size\": %llu}\n", q->size);
	} else {
		spoolcli_age(a, sizeof(a), age);
		printf("queued: %d\nheld: %d\ncorrupt: %ld\n"
		    "recipients pending: %ld\nrecipients delivered: %ld\n"
		    "recipients failed: %ld\noldest: %s%s%s\nsize: %llu\n",
		    q->count[0], q->count[1], corrupt, q->rcpts[0], q->rcpts[1],
		    q->rcpts[2], q->oldest_id[0] ? a : "-",
		    q->oldest_id[0] ? " " : "", q->oldest_id, q->size);
	}
	return q->errors ? 1 : 0;
}

static const struct queuecmd {
	const char *name;
	int nid;		/* 0 none, 1 required, 2 optional */
	int flags;		/* 1 --json, 2 --body */
} queuecmds[] = {
	{ "list", 0, 1 },
	{ "show", 1, 2 },
	{ "flush", 2, 0 },
	{ "delete", 1, 0 },
	{ "hold", 1, 0 },
	{ "release", 1, 0 },
	{ "stats", 0, 1 },
	{ NULL, 0, 0 },
};

int
queuecmd_main(int argc, char **argv)
{
	const char *path = QUEUECMD_CONFIG, *id = NULL;
	const struct queuecmd *c;
	struct qc q;
	int ch, rc, i;

	memset(&q, 0, sizeof(q));
	optind = 1;
	while ((ch = getopt(argc, argv, "+c:")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		default:
			queuecmd_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		queuecmd_usage(stderr);
		return 2;
	}
	for (c = queuecmds; c->name && strcmp(c->name, argv[optind]) != 0; c++)
		;
	if (c->name == NULL) {
		fprintf(stderr, "mxgate: queue: unknown command '");
		spoolcli_put(stderr, argv[optind], 1);
		fprintf(stderr, "'\n");
		queuecmd_usage(stderr);
		return 2;
	}
	for (i = optind + 1; i < argc; i++) {
		if ((c->flags & 1) && strcmp(argv[i], "--json") == 0)
			q.json = 1;
		else if ((c->flags & 2) && strcmp(argv[i], "--body") == 0)
			q.body = 1;
		else if (c->nid && id == NULL && argv[i][0] != '-')
			id = argv[i];
		else {
			queuecmd_usage(stderr);
			return 2;
		}
	}
	if (c->nid == 1 && id == NULL) {
		queuecmd_usage(stderr);
		return 2;
	}
	if (id != NULL && spoolcli_check_id(id) == -1)
		return 1;

	if ((q.sp = spoolcli_open(path)) == NULL)
		return 1;
	q.now = time(NULL);
	if (strcmp(c->name, "list") == 0)
		rc = queuecmd_list(&q);
	else if (strcmp(c->name, "show") == 0)
		rc = queuecmd_show(&q, id);
	else if (strcmp(c->name, "flush") == 0)
		rc = queuecmd_flush(&q, id);
	else if (strcmp(c->name, "delete") == 0)
		rc = queuecmd_delete(&q, id);
	else if (strcmp(c->name, "hold") == 0)
		rc = queuecmd_hold(&q, id);
	else if (strcmp(c->name, "release") == 0)
		rc = queuecmd_release(&q, id);
	else
		rc = queuecmd_stats(&q);
	spool_close(q.sp);
	return rc;
}
