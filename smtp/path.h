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

#endif
