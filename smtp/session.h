/*
 * smtp/session: the server side of one SMTP connection (RFC 5321), on a
 * libevent base. It speaks the protocol and nothing else: it knows no
 * policy, SPF or queue. Whoever creates a session (gateway/) supplies hooks
 * that decide; each decision may come at once or later (after a DNS
 * answer, a disk commit ...). While a decision is pending the session reads
 * nothing more from the client (backpressure), so pipelined commands wait
 * in the input buffer.
 *
 * Deciding: a decision hook (on_connect, on_helo, on_mail, on_rcpt,
 * on_data_start, on_data_end) must eventually call exactly one of
 *   smtp_session_accept(s)              default positive reply
 *   smtp_session_reply(s, code, fmt...) explicit reply; 2xx/3xx accepts,
 *                                       4xx/5xx refuses, 421 also closes
 * either from inside the hook or later from any event callback. on_data_end
 * has no default: it must reply explicitly (the 250 names the queue id).
 * A NULL decision hook accepts.
 *
 * Streaming hook: on_data_chunk receives decoded message content (CRLF
 * lines, dots unstuffed, BDAT chunks as sent) in order, synchronously; it
 * returns 0, or -1 on a local failure (the session then answers the end of
 * data with 451 4.3.0 and calls on_txn_end without on_data_end).
 *
 * Cleanup hooks: on_txn_end(s) is called whenever the current transaction
 * is discarded or finished (after the reply to end of data, RSET, EHLO,
 * STARTTLS, refused content, timeout, close). on_close(s) is the last call
 * for a session; the session is freed right after it returns.
 *
 * Ownership: the session owns the connection and all strings it hands out;
 * they stay valid until the next on_txn_end (envelope) or on_close
 * (connection data).
 */
#ifndef SMTP_SESSION_H
#define SMTP_SESSION_H

#include <stddef.h>
#include <sys/socket.h>
#include <openssl/ssl.h>

#include "smtp/path.h"

struct event_base;
struct smtp_session;

struct smtp_server_config {
	const char *hostname;	/* greeting and EHLO name; borrowed */
	SSL_CTX *ssl_ctx;	/* STARTTLS offered when non-NULL; borrowed */
	size_t max_size;	/* SIZE limit, octets of content */
	size_t max_rcpts;	/* RCPTs per transaction */
	int command_timeout;	/* seconds */
	int data_timeout;	/* seconds */
	int implicit_tls;	/* RFC 8314 3.3: TLS from the first octet (465);
				 * needs ssl_ctx; no STARTTLS offered then */
	int auth;		/* offer AUTH PLAIN LOGIN (RFC 4954), and only
				 * once TLS is active (RFC 4954 4; 8314) */
	int auth_required;	/* MAIL before AUTH: 530 5.7.0 (RFC 4954 6) */

	/* Abuse resistance (0 turns each off unless said otherwise) */
	int tls_timeout;	/* seconds for a whole TLS handshake */
	int min_data_rate;	/* octets/s: DATA/BDAT content must arrive
				 * within data_timeout + octets/rate */
	int pregreet_wait;	/* seconds to watch for talk before the
				 * greeting (talk seen at the greeting is
				 * refused even with 0) */
	int soft_error_limit;	/* errors after which each reply waits
				 * error_delay seconds */
	int hard_error_limit;	/* errors after which: 421 and close */
	int error_delay;	/* seconds */
	int junk_limit;		/* NOOP RSET VRFY EXPN HELP per session,
				 * reset by an accepted message */
};

struct smtp_hooks {
	void (*on_connect)(struct smtp_session *s, void *arg);
	void (*on_helo)(struct smtp_session *s, const char *helo, void *arg);
	void (*on_mail)(struct smtp_session *s, const struct smtp_path_args *a,
	    void *arg);
	void (*on_rcpt)(struct smtp_session *s, const struct smtp_path_args *a,
	    void *arg);
	void (*on_data_start)(struct smtp_session *s, void *arg);
	int (*on_data_chunk)(struct smtp_session *s, const char *p, size_t n,
	    void *arg);
	void (*on_data_end)(struct smtp_session *s, void *arg);
	/* RFC 4954: AUTH PLAIN or LOGIN decoded to user and password
	 * (NUL-free, each at most 255 octets; wiped after the hook returns,
	 * so copy what is needed). A decision hook: answer with
	 * smtp_session_auth_ok(s) (235 2.7.0) or smtp_session_reply(s, 535,
	 * "5.7.8 ...") / 454 / 421, now or later. NULL: AUTH refused. */
	void (*on_auth)(struct smtp_session *s, const char *mech,
	    const char *user, const char *pass, void *arg);
	void (*on_txn_end)(struct smtp_session *s, void *arg);
	void (*on_close)(struct smtp_session *s, void *arg);
};

/*
 * Takes over fd (an accepted, connected socket). cfg and hooks are
 * borrowed and must outlive the session. Returns NULL on allocation
 * failure (fd is then closed). on_connect runs from the event loop, not
 * from inside this call.
 */
struct smtp_session *smtp_session_new(struct event_base *base, int fd,
    const struct sockaddr *peer, socklen_t peerlen,
    const struct smtp_server_config *cfg, const struct smtp_hooks *hooks,
    void *arg);

void smtp_session_accept(struct smtp_session *s);
void smtp_session_reply(struct smtp_session *s, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Send "421 4.3.2 ..." and close at once, whatever the session is doing
 * (shutdown, limits). A pending decision is abandoned. */
void smtp_session_shutdown(struct smtp_session *s, const char *text);

/* Drop the connection without a reply; on_txn_end/on_close follow from
 * the event loop (used at exit, after smtp_session_shutdown's grace). */
void smtp_session_abort(struct smtp_session *s);

/* Bare CR and bare LF in message content become CRLF instead of refusing
 * the message (for trusted submitters, whose mail is signed and relayed:
 * the spool and the signature then see only CRLF). Off by default (bare
 * line ends are refused: the SMTP smuggling family). Call before DATA or
 * the first BDAT, e.g. from on_data_start. */
void smtp_session_set_normalise_newlines(struct smtp_session *s, int on);

/* Per-session data for the hook owner. */
void smtp_session_set_udata(struct smtp_session *s, void *udata);
void *smtp_session_udata(const struct smtp_session *s);

/* Connection facts. */
const char *smtp_session_id(const struct smtp_session *s);
const char *smtp_session_client_ip(const struct smtp_session *s);
const struct sockaddr *smtp_session_client_addr(const struct smtp_session *s);
const char *smtp_session_helo(const struct smtp_session *s);	/* NULL before HELO */
int smtp_session_esmtp(const struct smtp_session *s);		/* EHLO was used */
SSL *smtp_session_ssl(const struct smtp_session *s);		/* NULL without TLS */
/* Accept a pending on_auth: "235 2.7.0 Authentication successful", and
 * the session is authenticated as that user until it ends (RFC 4954 4:
 * AUTH once per session). */
void smtp_session_auth_ok(struct smtp_session *s);
/* The authenticated user, or NULL. */
const char *smtp_session_auth_user(const struct smtp_session *s);

/* Transaction facts (valid from MAIL until on_txn_end). */
const char *smtp_session_sender(const struct smtp_session *s);	/* "" = null */
size_t smtp_session_rcpt_count(const struct smtp_session *s);
const char *smtp_session_rcpt(const struct smtp_session *s, size_t i);
int smtp_session_body_8bit(const struct smtp_session *s);	/* BODY=8BITMIME */
int smtp_session_smtputf8(const struct smtp_session *s);	/* SMTPUTF8 */
/* RFC 3461 DSN parameters: RET (SMTP_RET_*), ENVID as xtext or NULL, and
 * per recipient NOTIFY (SMTP_NOTIFY_* mask, 0 = not given) and ORCPT
 * ("addr-type;xtext" or NULL); all checked (smtp/path.h). */
enum smtp_dsn_ret smtp_session_dsn_ret(const struct smtp_session *s);
const char *smtp_session_dsn_envid(const struct smtp_session *s);
int smtp_session_rcpt_notify(const struct smtp_session *s, size_t i);
const char *smtp_session_rcpt_orcpt(const struct smtp_session *s, size_t i);
size_t smtp_session_data_size(const struct smtp_session *s);	/* content so far */
int smtp_session_bdat(const struct smtp_session *s);		/* content via BDAT */

#endif
