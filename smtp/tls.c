/*
 * tls: OpenSSL contexts for the listeners (server) and for delivery
 * (client), and descriptions of established connections.
 */
#include "smtp/tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

/*
 * OpenSSL queues errors per thread, the root cause first ("No such file
 * or directory" before "system lib"). Report that one and clear the rest
 * so they do not show up in an unrelated later call.
 */
static void
tls_error(char *err, size_t errlen, const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	const char *reason = NULL;
	char buf[256];

	if (e != 0 && ERR_SYSTEM_ERROR(e))
		reason = strerror(ERR_GET_REASON(e));
	else if (e != 0)
		reason = ERR_reason_error_string(e);
	if (reason == NULL) {
		if (e != 0)
			ERR_error_string_n(e, buf, sizeof(buf));
		else
			snprintf(buf, sizeof(buf), "unknown error");
		reason = buf;
	}
	ERR_clear_error();
	if (file != NULL)
		snprintf(err, errlen, "%s %s: %s", what, file, reason);
	else
		snprintf(err, errlen, "%s: %s", what, reason);
}

/* Settings shared by both directions. */
static int
tls_ctx_common(SSL_CTX *ctx)
{
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
		return -1;
	/* CRIME: compression leaks plaintext lengths. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	/* bufferevent_openssl may retry a write from a moved buffer. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	    SSL_MODE_RELEASE_BUFFERS);
	return 0;
}

SSL_CTX *
tls_server_ctx_new(const char *cert_file, const char *key_file,
    char *err, size_t errlen)
{
	static const unsigned char sid_ctx[] = "mxgate";
	SSL_CTX *ctx;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_error(err, errlen, "SSL_CTX_new", NULL);
		return NULL;
	}
	if (tls_ctx_common(ctx) == -1) {
		tls_error(err, errlen, "TLS settings", NULL);
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (!SSL_CTX_set_session_id_context(ctx, sid_ctx,
	    sizeof(sid_ctx) - 1)) {
		tls_error(err, errlen, "session id context", NULL);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		tls_error(err, errlen, "certificate", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		tls_error(err, errlen, "private key", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_error(err, errlen, "private key does not match certificate",
		    key_file);
		goto fail;
	}
	return ctx;

fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *
tls_client_ctx_new(char *err, size_t errlen)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tls_error(err, errlen, "SSL_CTX_new", NULL);
		return NULL;
	}
	if (tls_ctx_common(ctx) == -1) {
		tls_error(err, errlen, "TLS settings", NULL);
		SSL_CTX_free(ctx);
		return NULL;
	}
	/*
	 * RFC 7435: opportunistic security. An MX is found through DNS
	 * without DNSSEC here, so a verified name would prove nothing;
	 * encryption against passive attackers is what we get.
	 */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

void
tls_describe(const SSL *ssl, char *out, size_t n)
{
	const SSL_CIPHER *cipher;
	int bits = 0;

	if (n == 0)
		return;
	if (ssl == NULL) {
		out[0] = '\0';
		return;
	}
	cipher = SSL_get_current_cipher(ssl);
	if (cipher != NULL)
		SSL_CIPHER_get_bits(cipher, &bits);
	snprintf(out, n, "%s cipher=%s bits=%d", SSL_get_version(ssl),
	    cipher != NULL ? SSL_CIPHER_get_name(cipher) : "none", bits);
}

const char *
tls_version(const SSL *ssl)
{
	return ssl != NULL ? SSL_get_version(ssl) : "";
}

const char *
tls_cipher(const SSL *ssl)
{
	const SSL_CIPHER *cipher;

	if (ssl == NULL || (cipher = SSL_get_current_cipher(ssl)) == NULL)
		return "";
	return SSL_CIPHER_get_name(cipher);
}
