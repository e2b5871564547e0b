/*
 * tls: OpenSSL contexts for both directions and a one-line description of
 * a finished handshake for logs and Received headers.
 *
 * Contexts are created at start (and on reload) and shared by all
 * sessions; callers own the returned SSL_CTX and free it with
 * SSL_CTX_free(). Nothing here touches the network.
 */
#ifndef SMTP_TLS_H
#define SMTP_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/*
 * Server context from a PEM certificate chain and private key: TLS 1.2 and
 * later, no compression, no renegotiation. Returns NULL and fills err
 * (naming the file and OpenSSL's reason) on failure.
 */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file,
    char *err, size_t errlen);

/*
 * Client context for delivery: TLS 1.2 and later. Certificates are not
 * verified (opportunistic TLS, RFC 7435); a route that requires TLS only
 * requires encryption. Returns NULL and fills err on failure.
 */
SSL_CTX *tls_client_ctx_new(char *err, size_t errlen);

/*
 * "TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256" for an established
 * connection; "" when ssl is NULL.
 */
void tls_describe(const SSL *ssl, char *out, size_t n);

/* Short forms for a Received header: version ("TLSv1.3") and cipher name. */
const char *tls_version(const SSL *ssl);
const char *tls_cipher(const SSL *ssl);

#endif
