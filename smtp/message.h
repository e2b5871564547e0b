/*
 * smtp/message: the RFC 5322 header section of a message, parsed as the
 * content streams in (CRLF lines, as the session hands them over).
 *
 * Header fields are kept in order, each as received (name, the raw field
 * with its folding and final CRLF); the body is passed on in chunks and
 * never kept. Bounded: at most max_bytes of header section and max_fields
 * fields; past them the parser fails with MSG_ERR_LIMIT (the caller
 * refuses the message). A header section without a blank line ends at the
 * end of content (no body). A line without a colon in the header section
 * (RFC 5322 2.2) is kept as a field with an empty name, so verifiers see
 * exactly what was sent, and MSG_ERR_SYNTAX is recorded; parsing goes on.
 * (Its value is then the whole line without the final CRLF.)
 */
#ifndef SMTP_MESSAGE_H
#define SMTP_MESSAGE_H

#include <stddef.h>

struct msg_parser;

struct msg_field {
	const char *name;	/* field name, not NUL-terminated */
	size_t name_len;
	const char *raw;	/* whole field: "Name: value\r\n\tmore\r\n" */
	size_t raw_len;
	const char *value;	/* after the colon, up to (not incl.) the final CRLF */
	size_t value_len;
};

enum msg_error {
	MSG_OK,
	MSG_ERR_SYNTAX,		/* a header line without a colon */
	MSG_ERR_LIMIT,		/* header section too large / too many fields */
	MSG_ERR_NOMEM,
};

/* Called for each complete header field, in order (the field stays valid
 * until msg_parser_free); for each body chunk; return -1 to stop. */
typedef int (*msg_field_cb)(const struct msg_field *f, void *arg);
typedef int (*msg_body_cb)(const char *p, size_t n, void *arg);

struct msg_parser *msg_parser_new(size_t max_bytes, size_t max_fields,
    msg_field_cb on_field, msg_body_cb on_body, void *arg);
void msg_parser_free(struct msg_parser *p);

/* 0, or -1 once an error is recorded or a callback returned -1. */
int msg_parser_feed(struct msg_parser *p, const char *data, size_t n);
/* End of content: completes a last field without CRLF. 0 or -1. */
int msg_parser_end(struct msg_parser *p);
enum msg_error msg_parser_error(const struct msg_parser *p);

/* The fields seen so far, in order; valid until msg_parser_free. */
size_t msg_parser_count(const struct msg_parser *p);
const struct msg_field *msg_parser_field(const struct msg_parser *p, size_t i);
/* 1 once the blank line ending the header section was seen. */
int msg_parser_in_body(const struct msg_parser *p);

#endif
