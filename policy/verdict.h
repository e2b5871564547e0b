/*
 * policy/verdict: what happens to a message at end of data, given its
 * DMARC outcome, how it reached us (trusted relays, hybrid mode) and the
 * local configuration (enforcement, overrides, quarantine action). It
 * decides and returns the decision as data; gateway/ carries it out
 * (only the SMTP layer writes replies, only queue/ stores).
 */
#ifndef POLICY_VERDICT_H
#define POLICY_VERDICT_H

#include <stddef.h>

#include "auth/dmarc.h"
#include "lib/buf.h"
#include "lib/cidr.h"

enum verdict_action {
	VERDICT_DELIVER,	/* as is (with the stamps) */
	VERDICT_TAG,		/* quarantine by stamps: deliver marked */
	VERDICT_HOLD,		/* quarantine by keeping it: hold/ */
	VERDICT_REJECT,		/* 5xx at end of data */
	VERDICT_DEFER,		/* 4xx at end of data */
};

struct verdict_config {
	int enforce;
	int reject_override;		/* reject -> quarantine, "oreject" */
	int bad_from_reject;
	int temperror_defer;
	int quarantine_hold;
	int primary_mx;
	const struct cidr_list *allow_ips;
	const struct cidr_list *trusted_forwarders;
	const struct cidr_list *mailing_lists;
	const char *const *allow_senders;	/* "user@domain" or "domain" */
	size_t nallow_senders;
};

/* How the message reached us (RFC 9989 hybrid handling, see
 * policy/received.h for the recovery itself). */
enum verdict_path {
	VERDICT_PATH_DIRECT,		/* the client is the sender's server */
	VERDICT_PATH_RELAY_SKIP,	/* trusted relay (or not the primary
					 * MX): failures are not enforced */
	VERDICT_PATH_RELAY_RECOVERED,	/* trusted relay; the original client
					 * was recovered and checked */
};

struct verdict_input {
	const struct dmarc_outcome *dmarc;	/* NULL: DMARC not evaluated */
	enum verdict_path path;
	const char *client_ip;		/* the (recovered) client */
	const char *sender;		/* MAIL FROM, "" null sender */
	const char *from_local;		/* header From, NULL if none */
	const char *from_domain;
};

struct verdict {
	enum verdict_action action;
	/* For Authentication-Results and the log: the disposition applied
	 * ("none", "quarantine", "reject"; RFC 7489 7.2 "disposition"), the
	 * action taken ("none", "quarantine", "reject", "oreject", "skip",
	 * "defer") and the RFC 7489 PolicyOverrideType when a local rule
	 * changed the outcome ("local_policy", "trusted_forwarder",
	 * "mailing_list"), else NULL. */
	const char *disposition;
	const char *ar_action;
	const char *override;
	/* The reply for REJECT and DEFER: "550" "5.7.1" "text". */
	int code;
	const char *enhanced;
	char text[384];
	char why[256];		/* one line for the log */
};

/* The comment of the dmarc= result in Authentication-Results:
 * "p=reject sp=reject dis=quarantine[ testing][ override=R][ NOTE][; why]"
 * with a record, else the outcome's reason (and NOTE). note: the hybrid
 * remark, or NULL. */
int verdict_comment(const struct dmarc_outcome *o, const struct verdict *v,
    const char *note, struct buf *out);

void verdict_decide(const struct verdict_config *cfg,
    const struct verdict_input *in, struct verdict *v_r);
const char *verdict_action_name(enum verdict_action a);

#endif
