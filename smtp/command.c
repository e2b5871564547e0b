#include "smtp/command.h"

#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	enum smtp_verb verb;
} smtp_verbs[] = {
	{ "HELO", SMTP_CMD_HELO },
	{ "EHLO", SMTP_CMD_EHLO },
	{ "MAIL", SMTP_CMD_MAIL },
	{ "RCPT", SMTP_CMD_RCPT },
	{ "DATA", SMTP_CMD_DATA },
	{ "BDAT", SMTP_CMD_BDAT },
	{ "RSET", SMTP_CMD_RSET },
	{ "NOOP", SMTP_CMD_NOOP },
	{ "QUIT", SMTP_CMD_QUIT },
	{ "VRFY", SMTP_CMD_VRFY },
	{ "EXPN", SMTP_CMD_EXPN },
	{ "HELP", SMTP_CMD_HELP },
	{ "STARTTLS", SMTP_CMD_STARTTLS },
	{ "AUTH", SMTP_CMD_AUTH },
	{ "GET", SMTP_CMD_HTTP },
	{ "POST", SMTP_CMD_HTTP },
	{ "HEAD", SMTP_CMD_HTTP },
	{ "PUT", SMTP_CMD_HTTP },
	{ "CONNECT", SMTP_CMD_HTTP },
	{ "OPTIONS", SMTP_CMD_HTTP },
};

enum smtp_parse_result
smtp_command_parse(char *line, size_t len, struct smtp_command *cmd_r)
{
	size_t i, vlen;

	cmd_r->verb = SMTP_CMD_UNKNOWN;
	cmd_r->name = "?";
	cmd_r->arg = line + len;
	line[len] = '\0';

	/* RFC 5321 2.3.8: commands are ASCII lines; NUL and bare CR are
	 * never part of a valid command. */
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c == '\0')
			return SMTP_PARSE_NUL;
		if (c < 0x20 && c != '\t')
			return SMTP_PARSE_BADCHAR;
		if (c == 0x7f)
			return SMTP_PARSE_BADCHAR;
	}
	/* Trailing white space is common from hand-typed sessions. */
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		line[--len] = '\0';
	if (len == 0)
		return SMTP_PARSE_EMPTY;

	for (vlen = 0; vlen < len && line[vlen] != ' ' && line[vlen] != '\t'; vlen++)
		;
	for (i = 0; i < sizeof(smtp_verbs) / sizeof(smtp_verbs[0]); i++) {
		if (strlen(smtp_verbs[i].name) == vlen &&
		    strncasecmp(line, smtp_verbs[i].name, vlen) == 0) {
			cmd_r->verb = smtp_verbs[i].verb;
			cmd_r->name = smtp_verbs[i].name;
			break;
		}
	}
	i = vlen;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	cmd_r->arg = line + i;
	return SMTP_PARSE_OK;
}
