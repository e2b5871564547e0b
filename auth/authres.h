/*
 * auth/authres: the Authentication-Results header field (RFC 8601) that
 * records what we checked: SPF for the MAIL FROM (or HELO) identity and
 * DKIM per signature, DMARC; ARC adds to it later.
 *
 * Values from the message or the client are quoted or replaced so the
 * field stays one valid header: no CR/LF, no control octets.
 */
#ifndef AUTH_AUTHRES_H
#define AUTH_AUTHRES_H

#include "auth/dkim.h"
#include "auth/dmarc.h"
#include "auth/spf.h"
#include "lib/buf.h"

struct authres {
	struct buf b;		/* the field being built, without final CRLF */
	int n;			/* results added */
};

/* "Authentication-Results: authserv-id;" */
int authres_begin(struct authres *ar, const char *authserv_id);
/* spf=RESULT (reason) smtp.mailfrom=... or smtp.helo=... */
int authres_spf(struct authres *ar, enum spf_result r, const char *reason,
    int helo_identity, const char *identity);
/* dkim=RESULT (reason) header.d= header.i= header.s= header.a= header.b= */
int authres_dkim(struct authres *ar, const struct dkim_sig_result *r);
/* dkim=none when the message has no signature */
int authres_dkim_none(struct authres *ar);
/* dmarc=RESULT (comment) action=ACTION header.from=DOMAIN. The comment
 * carries "p=.. sp=.. dis=.." and overrides; action= is the form Exchange
 * Online Protection writes (none, quarantine, reject, oreject, ...), so an
 * Exchange transport rule can match on it. header_from NULL/"" = left out. */
int authres_dmarc(struct authres *ar, enum dmarc_result r, const char *comment,
    const char *action, const char *header_from);
/* Folded field text ending in CRLF, appended to out. */
int authres_end(struct authres *ar, struct buf *out);
void authres_free(struct authres *ar);

/* 1 if the raw header field is an Authentication-Results field whose
 * authserv-id is ours (RFC 8601 5: remove such forgeries). */
int authres_is_ours(const char *field, size_t len, const char *authserv_id);

#endif
