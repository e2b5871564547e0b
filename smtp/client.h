/*
 * smtp/client: one outbound SMTP connection (RFC 5321), asynchronous on a
 * libevent base. Used by queue/delivery to hand messages downstream.
 *
 * Life of a client:
 *   smtp_client_connect()  → TCP connect, greeting, EHLO (HELO fallback),
 *                            STARTTLS when offered or required, EHLO again
 *   ready_cb(c, 1, NULL)   → smtp_client_send() any number of times, one at
 *                            a time; each ends in sent_cb
 *   smtp_client_quit()     → QUIT, then the client frees itself
 * On failure before ready, ready_cb(c, 0, err) is called once; the caller
 * then calls smtp_client_free(c) (never from inside another callback of
 * the same client: it is safe to free from inside ready_cb and sent_cb).
 *
 * Extensions used when the server offers them: PIPELINING (RFC 2920: MAIL
 * and all RCPTs sent in one write), SIZE (RFC 1870: SIZE= sent; a message
 * larger than the advertised limit fails permanently without being sent),
 * 8BITMIME (BODY=8BITMIME when the message says so), SMTPUTF8 (RFC 6531: if
 * the message needs it and the server lacks it, permanent failure),
 * CHUNKING (RFC 3030: BDAT instead of DATA), STARTTLS (RFC 3207), DSN
 * (RFC 3461: the message's RET, ENVID, NOTIFY and ORCPT passed on).
 *
 * With DATA, the message is dot-stuffed while it streams from the file (RFC
 * 5321 4.5.2) and a final CRLF is added if the content lacks one. The
 * content is read from msg->fd with pread() in bounded chunks as the socket
 * drains: the whole message is never held in memory.
 */
#ifndef SMTP_CLIENT_H
#define SMTP_CLIENT_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <openssl/ssl.h>

struct event_base;
struct smtp_client;

enum smtp_client_tls {
	SMTP_TLS_NONE,		/* never STARTTLS */
	SMTP_TLS_OPPORTUNISTIC,	/* STARTTLS when offered; fall back to plain if not offered */
	SMTP_TLS_REQUIRED,	/* no STARTTLS offered or handshake fails → connection fails */
	SMTP_TLS_VERIFY,	/* as REQUIRED, and the certificate chain must
				 * verify against the context's trust store and
				 * name servername (RFC 6125; an IP literal
				 * servername must be in an iPAddress SAN) */
};

struct smtp_client_config {
	const char *helo;		/* our EHLO name; copied */
	enum smtp_client_tls tls;
	SSL_CTX *ssl_ctx;		/* client context, borrowed; NULL means no TLS */
	const char *servername;		/* the host name we meant to reach: SNI
					 * (not for IP literals) and the name
					 * the certificate is checked for;
					 * NULL = none (VERIFY then fails) */
	int connect_timeout;		/* seconds, TCP connect + greeting */
	int command_timeout;		/* seconds for each reply, from when
					 * its command is sent; partial input
					 * does not extend it */
	int data_timeout;		/* seconds for the reply to end of
					 * data, from the final dot */
};

/*
 * A server reply: code 0 means there was none (connection lost, timeout,
 * protocol error); text then says what happened, e.g.
 * "lost connection after RCPT". Otherwise text is the reply as received
 * (enhanced code included), lines of a multi-line reply joined by a space,
 * without CR/LF, truncated to fit.
 */
struct smtp_client_reply {
	int code;
	char text[512];
};

struct smtp_client_msg {
	const char *sender;		/* reverse path without <>; "" = null sender */
	const char *const *rcpts;	/* forward paths without <> */
	size_t nrcpt;
	int fd;				/* content: CRLF lines, unstuffed */
	off_t size;			/* bytes of content in fd, from offset 0 */
	const char *prefix;		/* header fields to send before the
					 * content (CRLF lines), or NULL */
	size_t prefix_len;
	int body_8bit;			/* client declared BODY=8BITMIME */
	int smtputf8;			/* client declared SMTPUTF8 */
	/* RFC 3461, sent only when the server offers DSN: RET= ("FULL",
	 * "HDRS" or NULL), ENVID= (xtext or NULL), and per recipient NOTIFY=
	 * ("SUCCESS,FAILURE" ... or NULL) and ORCPT= ("rfc822;xtext" or
	 * NULL); the arrays may be NULL. Values must be valid (smtp/path.h). */
	const char *dsn_ret;
	const char *dsn_envid;
	const char *const *dsn_notify;
	const char *const *dsn_orcpt;
};

/*
 * Called once per send: replies[i] is the final outcome for rcpts[i]: the
 * RCPT reply if RCPT failed, otherwise the reply to the end of data (or to
 * MAIL/DATA/BDAT if the transaction failed there, or a code-0 reply if the
 * connection broke). A 2xx means delivered. conn_ok says whether the
 * connection may carry another message (the caller may send again or quit).
 * replies is valid only during the call.
 */
typedef void (*smtp_client_sent_cb)(struct smtp_client *c,
    const struct smtp_client_reply *replies, int conn_ok, void *arg);

/* ok=1: ready to send. ok=0: err says why (e.g. "connect: Connection
 * refused", "greeting: 421 4.3.2 busy", "STARTTLS required but not offered"). */
typedef void (*smtp_client_ready_cb)(struct smtp_client *c, int ok,
    const char *err, void *arg);

/* Starts connecting; returns NULL only on allocation/socket failure. */
struct smtp_client *smtp_client_connect(struct event_base *base,
    const struct sockaddr *addr, socklen_t addrlen,
    const struct smtp_client_config *cfg, smtp_client_ready_cb cb, void *arg);

/* One transaction. Returns -1 if the client is not ready/idle (a bug). The
 * message struct and the strings it points to must stay valid until
 * sent_cb; fd must stay open until then. */
int smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *m,
    smtp_client_sent_cb cb, void *arg);

/* Polite close: RSET is not needed; sends QUIT, frees itself later. */
void smtp_client_quit(struct smtp_client *c);
/* Immediate close and free; no callbacks after this. */
void smtp_client_free(struct smtp_client *c);

/* "[127.0.0.1]:2526" — for logs. */
const char *smtp_client_peer(const struct smtp_client *c);
/* tls_describe() of the connection, or "" without TLS. */
const char *smtp_client_tls_info(const struct smtp_client *c);
/* 1 when the server offered DSN (RFC 3461): NOTIFY and the rest were
 * passed on in the last transaction. */
int smtp_client_dsn(const struct smtp_client *c);
/* "TLSv1.3", or "none" without TLS. */
const char *smtp_client_tls_version(const struct smtp_client *c);
/* 1 when TLS is on and the peer's certificate verified for servername
 * (checked in every mode; only VERIFY refuses a connection for it). */
int smtp_client_tls_verified(const struct smtp_client *c);

/*
 * Give a client context the certificates to verify peers with: the
 * system's default store, and ca_file (PEM, may be NULL or "") as well.
 * The context keeps SSL_VERIFY_NONE: each connection in VERIFY mode asks
 * for verification itself. -1 with err filled when ca_file cannot be
 * loaded. Call before the context is shared.
 */
int smtp_client_ctx_trust(SSL_CTX *ctx, const char *ca_file, char *err,
    size_t errlen);

#endif
