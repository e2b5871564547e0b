/*
 * smtp/mime: placeholder (being written): the MIME structure of a message
 * (RFC 2045, 2046) as it streams in, bounded in depth and part count.
 */
#ifndef SMTP_MIME_H
#define SMTP_MIME_H
#endif
