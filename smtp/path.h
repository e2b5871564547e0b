/*
 * smtp/path: the arguments of MAIL and RCPT (RFC 5321 4.1.2, 4.1.1.2-3):
 * "FROM:<path> params" and "TO:<path> params".
 *
 * Syntax only. The argument string is modified in place; results point
 * into it. Paths are returned without angle brackets and without any
 * source route (RFC 5321 4.1.1.3: accepted, ignored). The null reverse
 * path is "".
 */
#ifndef SMTP_PATH_H
#define SMTP_PATH_H

#include <stddef.h>

/* RFC 5321 4.5.3.1 */
#define SMTP_MAX_LOCALPART 64
#define SMTP_MAX_DOMAIN 255
#define SMTP_MAX_PATH 256
#define SMTP_MAX_PARAMS 16

struct smtp_param {
	char *keyword;		/* as sent; compare case-insensitively */
	char *value;		/* NULL when the parameter has no "=value" */
};

struct smtp_path_args {
	char *path;		/* "user@domain", "" (null sender), "postmaster" */
	char *domain;		/* points into path after '@'; NULL for "" / postmaster */
	int utf8;		/* path holds non-ASCII octets */
	struct smtp_param params[SMTP_MAX_PARAMS];
	size_t nparams;
};

enum smtp_path_result {
	SMTP_PATH_OK,
	SMTP_PATH_SYNTAX,	/* not "FROM:<...>" / "TO:<...>" at all */
	SMTP_PATH_BADADDR,	/* mailbox syntax wrong */
	SMTP_PATH_TOOLONG,	/* a 4.5.3.1 limit exceeded */
	SMTP_PATH_BADPARAM,	/* parameter syntax wrong or too many */
};

/*
 * keyword is "FROM" or "TO". For TO, the null path is refused and a bare
 * "<postmaster>" (any case) is allowed (RFC 5321 4.1.1.3). err_r gets a
 * short human explanation for the reply.
 */
enum smtp_path_result smtp_path_parse(char *arg, const char *keyword,
    struct smtp_path_args *r, const char **err_r);

/* Mailbox syntax only ("local@domain"); allow_utf8 admits UTF-8 octets
 * (RFC 6531). Returns 0 if valid, -1 otherwise with err_r set. */
int smtp_path_check_mailbox(const char *mbox, int allow_utf8,
    const char **err_r);

/* Domain (or address literal) syntax; 0 if valid. */
int smtp_path_check_domain(const char *d, int allow_utf8);

/* Parameter lookup by keyword, case-insensitive; NULL if absent. */
const struct smtp_param *smtp_path_param(const struct smtp_path_args *r,
    const char *keyword);

/*
 * RFC 3461 DSN parameters: MAIL RET= ENVID=, RCPT NOTIFY= ORCPT=. Values
 * keep the xtext form they arrived in (checked): that is how they are
 * stored and passed on downstream; smtp_xtext_decode gives the text to
 * show in a report.
 */
#define SMTP_DSN_ENVID_MAX 100	/* RFC 3461 4.4 */
#define SMTP_DSN_ORCPT_MAX 500	/* RFC 3461 4.2 */

#define SMTP_NOTIFY_SUCCESS	0x01
#define SMTP_NOTIFY_FAILURE	0x02
#define SMTP_NOTIFY_DELAY	0x04
#define SMTP_NOTIFY_NEVER	0x08
/* What a recipient without NOTIFY gets (RFC 3461 4.1 leaves DELAY to the
 * MTA; we warn, as Postfix and sendmail do). */
#define SMTP_NOTIFY_DEFAULT	(SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY)

enum smtp_dsn_ret {
	SMTP_RET_UNSET = 0,	/* no RET: headers only */
	SMTP_RET_FULL,
	SMTP_RET_HDRS,
};

struct smtp_dsn_mail {
	enum smtp_dsn_ret ret;
	const char *envid;	/* xtext, into the args; NULL when absent */
};

struct smtp_dsn_rcpt {
	int notify;		/* SMTP_NOTIFY_* mask; 0 when absent */
	const char *orcpt;	/* "addr-type;xtext", into the args; NULL */
};

/* RET and ENVID of parsed MAIL args, NOTIFY and ORCPT of RCPT args; other
 * parameters are ignored. 0, or -1 with err_r set on bad syntax or a
 * repeated parameter (the caller answers 501 5.5.4). */
int smtp_path_dsn_mail(const struct smtp_path_args *a, struct smtp_dsn_mail *r,
    const char **err_r);
int smtp_path_dsn_rcpt(const struct smtp_path_args *a, struct smtp_dsn_rcpt *r,
    const char **err_r);

/* NOTIFY value: "NEVER" or a list of SUCCESS, FAILURE, DELAY (any case).
 * 0 and the mask, or -1. */
int smtp_dsn_notify_parse(const char *v, int *mask_r);
/* "NEVER", or "SUCCESS,FAILURE,DELAY" (those set, in that order), "" for
 * 0; into out (32 octets are enough). */
const char *smtp_dsn_notify_str(int mask, char *out, size_t outlen);
/* ORCPT value: addr-type ";" xtext, at most SMTP_DSN_ORCPT_MAX, a
 * non-empty address. 0 if valid. */
int smtp_dsn_orcpt_check(const char *v);

/* RFC 3461 4: xtext is printable ASCII but "+" and "=", with "+XX" for any
 * octet (hex digits accepted in either case). An encoding of NUL is
 * refused. smtp_xtext_check: 0 if s is valid xtext. smtp_xtext_decode:
 * the decoded text into out (NUL-terminated), its length, or -1 if s is
 * not valid or does not fit. */
int smtp_xtext_check(const char *s);
int smtp_xtext_decode(const char *s, char *out, size_t outlen);

#endif
