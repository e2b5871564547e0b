/*
 * libFuzzer target for smtp/command.c, and for smtp/path.c as a session
 * drives it: a MAIL or RCPT line's argument goes on to smtp_path_parse.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/command.h"
#include "smtp/path.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

/* What the parser must answer, from the header's contract alone. */
static enum smtp_parse_result
expected_class(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] == '\0')
			return SMTP_PARSE_NUL;
		if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
			return SMTP_PARSE_BADCHAR;
	}
	for (i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t')
			return SMTP_PARSE_OK;
	return SMTP_PARSE_EMPTY;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_command cmd;
	enum smtp_parse_result r;
	char *line;
	size_t alen, vlen;

	/* exactly len+1 bytes, as the header allows: ASan sees overruns */
	if ((line = malloc(size + 1)) == NULL)
		return 0;
	memcpy(line, data, size);
	r = smtp_command_parse(line, size, &cmd);
	CHECK(r == expected_class(data, size));
	if (r != SMTP_PARSE_OK) {
		free(line);
		return 0;
	}
	CHECK(cmd.name != NULL);
	CHECK((cmd.verb == SMTP_CMD_UNKNOWN) == (strcmp(cmd.name, "?") == 0));
	CHECK(cmd.arg >= line && cmd.arg <= line + size);
	alen = strlen(cmd.arg);
	CHECK(cmd.arg + alen <= line + size);
	/* no white space around the argument */
	if (alen > 0) {
		CHECK(cmd.arg[0] != ' ' && cmd.arg[0] != '\t');
		CHECK(cmd.arg[alen - 1] != ' ' && cmd.arg[alen - 1] != '\t');
	}
	/* a known verb is the first word, in any case */
	for (vlen = 0; vlen < size && data[vlen] != ' ' && data[vlen] != '\t';
	    vlen++)
		;
	if (cmd.verb != SMTP_CMD_UNKNOWN) {
		CHECK(strlen(cmd.name) == vlen);
		CHECK(strncasecmp((const char *)data, cmd.name, vlen) == 0);
	}

	if (cmd.verb == SMTP_CMD_MAIL || cmd.verb == SMTP_CMD_RCPT) {
		struct smtp_path_args pa;
		const char *err = NULL;
		enum smtp_path_result pr;

		pr = smtp_path_parse(cmd.arg,
		    cmd.verb == SMTP_CMD_MAIL ? "FROM" : "TO", &pa, &err);
		CHECK(pr >= SMTP_PATH_OK && pr <= SMTP_PATH_BADPARAM);
		if (pr != SMTP_PATH_OK)
			CHECK(err != NULL);
		else {
			CHECK(pa.path != NULL);
			CHECK(pa.nparams <= SMTP_MAX_PARAMS);
		}
	}
	free(line);
	return 0;
}
