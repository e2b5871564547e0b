/*
 * smtp/reply: placeholder (being written): the client side's SMTP reply
 * parser (RFC 5321 4.2), bounded, as a pure function on lines.
 */
#ifndef SMTP_REPLY_H
#define SMTP_REPLY_H
#endif
