/*
 * policy/received: recover the original client of a message that
 * reached us through trusted relays (hybrid deployments: an on-premises
 * Exchange or another MX received it first), from the Received fields
 * those relays wrote (RFC 5321 4.4).
 *
 * Received fields are read top-down (the top one is the newest). The
 * top one was written by the host that connected to us, a trusted
 * relay. Each field's "from" clause names the host that connected to
 * the relay that wrote it. While that host is itself a trusted relay,
 * step to the next field down. The first field whose "from" address is
 * not a trusted relay was written by the outermost trusted relay, and
 * its "from" clause is the original client: IP and HELO name.
 *
 * Understood "from" clause forms (the address in the comment is the one
 * the relay saw; the HELO is the word after "from"):
 *   from HELO (RDNS [192.0.2.1])                       Postfix, Sendmail
 *   from HELO ([192.0.2.1])   from HELO (192.0.2.1)    mxgate, Exim-like
 *   from HELO (RDNS [IPv6:2001:db8::1])
 *   from HELO (RDNS [192.0.2.1] (may be forged))       Sendmail
 *   from HELO (192.0.2.1) by HOST (10.0.0.1) with Microsoft SMTP Server
 *   from RDNS ([192.0.2.1]:PORT helo=HELO)              Exim, verified name
 *   from [192.0.2.1] (port=PORT helo=HELO)             Exim, no name
 * (Exim: the HELO is the helo= value, or the word when helo= is absent;
 * without an address in the comment the word "[192.0.2.1]" is it.)
 * An address must parse as IPv4 or IPv6 (inet_pton); anything else in a
 * candidate field makes the recovery fail (never a guess).
 *
 * The HELO inside a field is the client's text, and some relays copy it
 * verbatim (spaces, parentheses), so a client can try to plant a fake
 * "(x [192.0.2.1])" in front of the real one. The clause is therefore
 * read strictly (see received.c): balanced comments, one ";" (before the
 * date), one "by", no address literal outside the first comment, no
 * second bare address; anything else fails. A caller must not treat a
 * failure as more trustworthy than the connecting relay's own address.
 */
#ifndef POLICY_RECEIVED_H
#define POLICY_RECEIVED_H

#include <stddef.h>

#include "lib/cidr.h"

struct received_from {
	char ip[64];		/* as inet_ntop writes it; an IPv4-mapped
				 * IPv6 address as the IPv4 address */
	char helo[256];		/* "" if the clause has none, or one that
				 * cannot be a HELO name (over 255 octets,
				 * white space, controls, ( ) \ ; ") */
};

/*
 * Parse the "from" clause of one Received field value (after the
 * colon, folding included, without final CRLF). 0 with r filled, -1 if
 * there is no parseable from clause with an address.
 */
int received_parse_from(const char *value, size_t len,
    struct received_from *r);

/*
 * values[0..n) are the Received field values in header order (top
 * first). The first one is assumed to have been written by a trusted
 * relay (the connecting client). Returns 0 with r set to the original
 * client (*why_r = NULL), or -1 with r zeroed and *why_r explaining
 * ("no Received field from a trusted relay", "unparseable Received
 * field 2" ... "10", "unparseable Received field after the 10th",
 * "every hop is a trusted relay"); static strings. why_r may be NULL.
 * trusted NULL is an empty list.
 */
int received_recover(const char *const *values, const size_t *lens,
    size_t n, const struct cidr_list *trusted, struct received_from *r,
    const char **why_r);

#endif
