/*
 * smtp/sasl: decoding of the client side of the SASL mechanisms the server
 * offers with AUTH (RFC 4954): PLAIN (RFC 4616) and LOGIN (the
 * draft-murchison-sasl-login exchange every mail client speaks).
 *
 * Pure functions over one line of client input: no state, no I/O, no
 * allocation. The decoded user name and password are NUL-terminated in
 * buffers the caller provides (SASL_FIELD_MAX + 1 octets each); the caller
 * wipes the password buffer when done.
 */
#ifndef SMTP_SASL_H
#define SMTP_SASL_H

#include <stddef.h>

#define SASL_FIELD_MAX 255	/* user name, password: octets after decoding */
#define SASL_LINE_MAX 12288	/* RFC 4954 4: AUTH lines, with CRLF */

enum sasl_result {
	SASL_OK,
	SASL_BAD_BASE64,	/* not base64 (RFC 4648 4, padded, no spaces) */
	SASL_BAD_SYNTAX,	/* PLAIN without its two NULs, empty field */
	SASL_NUL,		/* a NUL inside a field */
	SASL_TOO_LONG,		/* a field longer than SASL_FIELD_MAX */
	SASL_AUTHZID,		/* PLAIN authzid neither empty nor the user */
};

/*
 * Strict base64: a multiple of 4 characters from the RFC 4648 4 alphabet,
 * "=" only as final padding. Writes at most outsize octets. Returns the
 * decoded length, or -1 (bad input, or the result would not fit).
 */
long sasl_b64_decode(const char *in, size_t inlen, unsigned char *out,
    size_t outsize);

/* Base64 of n octets into out (NUL-terminated); -1 if out is too small. */
int sasl_b64_encode(const unsigned char *p, size_t n, char *out,
    size_t outsize);

/*
 * RFC 4616 2: message = [authzid] NUL authcid NUL passwd, base64 in the
 * client's line (len octets, no CRLF). "=" is an empty response (RFC 4954
 * 4), and so fails. user_r and pass_r: SASL_FIELD_MAX + 1 octets each.
 */
enum sasl_result sasl_plain_decode(const char *line, size_t len,
    char *user_r, char *pass_r);

/* LOGIN: one base64 line carrying the user name or the password.
 * out_r: SASL_FIELD_MAX + 1 octets. */
enum sasl_result sasl_login_decode(const char *line, size_t len, char *out_r);

/* "*" alone cancels an exchange (RFC 4954 4). */
int sasl_is_cancel(const char *line, size_t len);

const char *sasl_result_str(enum sasl_result r);

#endif
