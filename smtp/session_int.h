/*
 * smtp/session_int: what the files of the session share (session.c: life,
 * I/O, decisions, content; session_cmd.c: one handler per command). Only
 * smtp/session*.c include this; everyone else uses smtp/session.h.
 */
#ifndef SMTP_SESSION_INT_H
#define SMTP_SESSION_INT_H

#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

#include "lib/buf.h"
#include "smtp/datastream.h"
#include "smtp/session.h"

struct bufferevent;
struct event;

/* RFC 5321 4.5.3.1.4: 512 octets with CRLF. MAIL and RCPT may carry
 * extension parameters that the RFC lets extensions add to (RFC 1870 3,
 * RFC 3461 5): they get more room. */
#define SMTP_LINE_MAX 512
#define SMTP_LINE_MAX_PARAMS 1024
#define SMTP_CHUNK_FLUSH (64 * 1024)
#define SMTP_OUTPUT_MAX (64 * 1024)	/* replies queued before we stop reading */

enum smtp_state {
	STATE_CONNECTED,	/* greeting not yet decided */
	STATE_GREETED,		/* waiting for HELO/EHLO */
	STATE_READY,		/* HELO done, no transaction */
	STATE_MAIL,		/* MAIL accepted */
	STATE_RCPT,		/* at least one RCPT accepted */
	STATE_DATA,		/* reading DATA content */
	STATE_BDAT,		/* reading a BDAT chunk */
	STATE_BDAT_WAIT,	/* between BDAT chunks */
	STATE_TLS,		/* STARTTLS handshake */
	STATE_CLOSING,		/* output draining, then free */
};

enum smtp_pending {
	P_NONE,
	P_GREETING,
	P_HELO,
	P_EHLO,
	P_MAIL,
	P_RCPT,
	P_DATA,		/* DATA command: 354 or refusal */
	P_BDAT,		/* first BDAT chunk of a transaction */
	P_DATA_END,	/* end of content: 250 queued or refusal */
	P_AUTH,		/* AUTH credentials: 235 or refusal */
};

/* Where an AUTH exchange stands (session_auth.c) */
enum smtp_auth_step {
	AUTH_IDLE,
	AUTH_PLAIN,	/* "334 " sent, waiting for the PLAIN response */
	AUTH_LOGIN_USER,	/* "334 VXNlcm5hbWU6" (Username:) sent */
	AUTH_LOGIN_PASS,	/* "334 UGFzc3dvcmQ6" (Password:) sent */
};

struct smtp_session {
	struct event_base *base;
	struct bufferevent *bev;
	struct event *ev_resume;
	const struct smtp_server_config *cfg;
	const struct smtp_hooks *hooks;
	void *arg;
	void *udata;

	char id[20];
	struct sockaddr_storage peer;
	char client_ip[64];
	enum smtp_state state;
	enum smtp_pending pending;	/* decision awaited, or P_NONE */
	int in_hook;
	int greeting_due;
	int dead;		/* free at the next resume */
	int closing_after_reply;
	int esmtp;
	int tls;
	char *helo;

	/* AUTH (RFC 4954) */
	enum smtp_auth_step auth_step;	/* a response line is awaited */
	const char *auth_mech;		/* "PLAIN" or "LOGIN" */
	char *auth_user;		/* authenticated as, or NULL */
	char auth_name[256];		/* user name being checked */
	char auth_pass[256];		/* password, wiped after on_auth */

	/* transaction */
	char *sender;
	char **rcpts;
	size_t nrcpt;
	int body_8bit;
	int smtputf8;
	enum smtp_dsn_ret dsn_ret;	/* RFC 3461 MAIL RET= */
	char *dsn_envid;		/* MAIL ENVID= (xtext), or NULL */
	struct session_rcpt_dsn {	/* per rcpts[i]: NOTIFY=, ORCPT= */
		int notify;
		char *orcpt;
	} *rcpt_dsn;
	struct smtp_path_args pending_args;
	char *pending_line;	/* owns the strings in pending_args */

	/* content */
	struct smtp_data data;
	struct buf chunk;	/* decoded content not yet handed to the hook */
	int bdat;		/* this transaction used BDAT */
	int bdat_last;
	size_t bdat_left;	/* octets of the current chunk still to read */
	int content_refused;	/* on_data_start refused: discard content */
	char content_reply[256];
	int oversize;
	int local_error;	/* on_data_chunk failed */
	int skipping_line;	/* discarding an overlong command line */
	int discarding;		/* discarding a BDAT chunk sent out of turn */
	int output_blocked;	/* replies piled up: wait for them to drain */
	int drain_ticks;
	struct event *ev_drain;	/* TLS close: wait for the socket to drain */
	size_t discard_left;
	char discard_reply[128];

	/* abuse resistance */
	int normalise_newlines;	/* smtp_session_set_normalise_newlines */
	int errors;		/* error replies (4xx/5xx) so far */
	int junk;		/* NOOP RSET VRFY EXPN HELP so far */
	int tarpit_due;		/* an error past soft_error_limit: pause */
	int paused;		/* reading paused by ev_pause */
	int pregreet_watched;	/* pregreet_wait has been spent */
	struct event *ev_pause;	/* error delay, pregreet wait */
	struct event *ev_deadline; /* command, content or TLS deadline */
	struct timespec content_start;	/* DATA content or BDAT message
					 * (CLOCK_MONOTONIC) */
	size_t content_read;	/* octets read since content_start */
	int bdat_clock;		/* content_start is this BDAT message's */
	int bdat_late;		/* ... and it is past its deadline */
	int chunk_refusal;	/* the refusal repeated for a BDAT chunk
				 * is being written: not an error again */
};

/* session.c, for the command handlers */
void smtp_session_enter(struct smtp_session *s, enum smtp_state st);
void smtp_session_write_reply(struct smtp_session *s, int code, const char *text);
void smtp_session_reply_now(struct smtp_session *s, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void smtp_session_wait(struct smtp_session *s, enum smtp_pending p);
void smtp_session_txn_end(struct smtp_session *s);
void smtp_session_close(struct smtp_session *s);
void smtp_session_setup_bev(struct smtp_session *s);
/* Content begins (also a BDAT chunk read only to be discarded): it owes
 * min_data_rate once data_timeout has passed. */
void smtp_session_content_clock(struct smtp_session *s);

/* session_cmd.c: one command line (without CRLF, len octets, writable);
 * more: input the client sent after it is already buffered (RFC 2920
 * pipelining checks). */
void smtp_session_command(struct smtp_session *s, char *line, size_t len,
    int more);

/* session.c: a protocol violation (kind is a metric label): logged,
 * counted, answered with code/text, and the connection closed. */
void smtp_session_violation(struct smtp_session *s, const char *kind,
    int code, const char *text, const char *detail);

/* session_auth.c: the AUTH command, and the response lines of its
 * exchange (what session_process reads while auth_step != AUTH_IDLE). */
void smtp_session_cmd_auth(struct smtp_session *s, char *arg);
void smtp_session_auth_line(struct smtp_session *s, const char *line,
    size_t len);
/* An AUTH response line exceeded SASL_LINE_MAX: end the exchange. */
void smtp_session_auth_overlong(struct smtp_session *s);

#endif
