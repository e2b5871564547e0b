/*
 * smtp/command: split one SMTP command line into verb and argument.
 *
 * Syntax only: no state, no network. The line is given without its CRLF
 * and is modified in place (the argument points into it).
 */
#ifndef SMTP_COMMAND_H
#define SMTP_COMMAND_H

#include <stddef.h>

enum smtp_verb {
	SMTP_CMD_UNKNOWN,
	SMTP_CMD_HELO,
	SMTP_CMD_EHLO,
	SMTP_CMD_MAIL,
	SMTP_CMD_RCPT,
	SMTP_CMD_DATA,
	SMTP_CMD_BDAT,
	SMTP_CMD_RSET,
	SMTP_CMD_NOOP,
	SMTP_CMD_QUIT,
	SMTP_CMD_VRFY,
	SMTP_CMD_EXPN,
	SMTP_CMD_HELP,
	SMTP_CMD_STARTTLS,
	SMTP_CMD_AUTH,
	SMTP_CMD_HTTP,		/* GET / POST / CONNECT ...: a web client */
};

struct smtp_command {
	enum smtp_verb verb;
	const char *name;	/* canonical upper-case name, "?" if unknown */
	char *arg;		/* after the verb and its spaces; "" if none */
};

enum smtp_parse_result {
	SMTP_PARSE_OK,
	SMTP_PARSE_EMPTY,	/* blank line */
	SMTP_PARSE_NUL,		/* a NUL byte in the line */
	SMTP_PARSE_BADCHAR,	/* a control character (not TAB) or bare CR */
};

/* line[len] need not be NUL; line must have room for it (len+1 bytes). */
enum smtp_parse_result smtp_command_parse(char *line, size_t len,
    struct smtp_command *cmd_r);

#endif
