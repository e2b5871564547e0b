/*
 * smtp/address: the author address of a message, from its From header
 * field (RFC 5322 3.4, 3.6.2), read the way a mail client shows it.
 *
 * DMARC keys on the domain of the one address in the one From field
 * (RFC 9989 4.4 and 6.6.1; RFC 7489 6.6.1). Every way a message can
 * be ambiguous about that address is a distinct status, never a guess:
 * several addresses, a group with none, an address that does not parse.
 * The parser knows comments (nested, with quoted-pairs), quoted strings,
 * display names (including RFC 2047 encoded words, taken as opaque
 * phrase text), angle addresses, groups ("name: a@b, c@d;"),
 * obs-route (<@relay:a@b>), folding white space, and rejects NUL, bare
 * CR/LF, 8-bit octets in the address itself (local part, quoted or not,
 * and domain) unless utf8 = 1 (RFC 6532), and then only as well-formed
 * UTF-8 (display names and comments may carry 8-bit octets either way),
 * and anything left over after the address.
 *
 * Stricter than RFC 5322 where the domain goes to the DNS: a domain
 * label is letters, digits, "-", "_" (or UTF-8 with utf8 = 1), at most
 * 63 octets when ASCII, the domain at most 253; other atext
 * ("legitimate.com'") is ADDR_FROM_BAD. "<>" is ADDR_FROM_BAD; so is a
 * group not closed by ";" and an unquoted "@" in a display name.
 *
 * No allocation; no I/O; bounded by the input (len up to any size).
 */
#ifndef SMTP_ADDRESS_H
#define SMTP_ADDRESS_H

#include <stddef.h>

enum addr_from_status {
	ADDR_FROM_OK,		/* exactly one mailbox: local_r, domain_r set */
	ADDR_FROM_EMPTY,	/* no mailbox at all (empty value, empty group) */
	ADDR_FROM_MULTIPLE,	/* more than one mailbox */
	ADDR_FROM_BAD,		/* does not parse as a mailbox-list */
	ADDR_FROM_NODOMAIN,	/* a mailbox without "@domain", or a
				 * domain literal ([192.0.2.1]) */
};

/* "ok", "no address", "multiple addresses", "unparseable", "no domain" */
const char *addr_from_status_name(enum addr_from_status st);

/*
 * Parse the value of one From field (after the colon, folding included,
 * without the final CRLF). On ADDR_FROM_OK the local part (unquoted) and
 * domain (lower case, trailing dot removed) are copied, NUL-terminated,
 * into local_r[nlocal] and domain_r[ndomain]; if either does not fit the
 * status is ADDR_FROM_BAD. *naddr_r (may be NULL) gets the number of
 * mailboxes seen (for logs).
 */
enum addr_from_status addr_from_parse(const char *value, size_t len,
    int utf8, char *local_r, size_t nlocal, char *domain_r, size_t ndomain,
    size_t *naddr_r);

/*
 * 1 if the raw header field (name, colon, value, final CRLF) is a From
 * field by any reading a mail client might use: "From:", "from :", or a
 * name folded away from its colon ("From\r\n :"), which a strict parser
 * sees as a line without a colon. *value_r and *vlen_r get the text
 * after the colon, without the final CRLF. 0 otherwise.
 */
int addr_field_is_from(const char *raw, size_t len, const char **value_r,
    size_t *vlen_r);

/*
 * The name of a raw header field by the same reading: the text before
 * the first colon without the white space and line breaks before it
 * ("X-Name :", "X-Name\r\n :"), when that is a field name (RFC 5322
 * 3.6.8 ftext). 1 with *name_r[*nlen_r] (not NUL-terminated) and the
 * value as for addr_field_is_from; 0 otherwise. For fields that must be
 * recognised however a reader spells them (our own stamps).
 */
int addr_field_name(const char *raw, size_t len, const char **name_r,
    size_t *nlen_r, const char **value_r, size_t *vlen_r);

#endif
