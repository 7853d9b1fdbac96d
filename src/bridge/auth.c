/* auth.c — who may talk to the bridge: TLS credentials (server certificate,
 * optionally client certificates), plaintext only on loopback unless asked
 * for, and the bearer token every call must carry when one is set. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>
#include <grpc/slice.h>

#include "bridge.h"

#define PEM_MAX (1u << 20)

/* The whole of a PEM file as a string, or NULL with why. */
static char *read_pem(const char *path, char *why, size_t why_len)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	if (!f) {
		snprintf(why, why_len, "cannot open %s: %s", path,
			 strerror(errno));
		return NULL;
	}
	buf = malloc(PEM_MAX + 1);
	n = buf ? fread(buf, 1, PEM_MAX, f) : 0;
	fclose(f);
	if (!buf || n == 0 || n == PEM_MAX) {
		snprintf(why, why_len, "%s is empty, unreadable or over 1 MiB",
			 path);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

bool auth_is_loopback(const char *listen)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	size_t n = colon ? (size_t)(colon - listen) : strlen(listen);
	struct in6_addr a6;
	struct in_addr a4;

	if (n >= sizeof(host))
		return false;
	memcpy(host, listen, n);
	host[n] = '\0';
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		memmove(host, host + 1, n - 2);
		host[n - 2] = '\0';
	}
	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return memcmp(&a6, &in6addr_loopback, sizeof(a6)) == 0;
	return false;
}

grpc_server_credentials *auth_credentials(const struct bridge_config *cfg,
					  char *why, size_t why_len)
{
	grpc_ssl_pem_key_cert_pair pair;
	grpc_server_credentials *creds;
	char *cert, *key, *ca = NULL;

	if (!cfg->tls_cert) {
		if (!cfg->insecure && !auth_is_loopback(cfg->listen)) {
			snprintf(why, why_len,
				 "%s is not a loopback address: give "
				 "--tls-cert and --tls-key, or --insecure to "
				 "serve plaintext on the network",
				 cfg->listen);
			return NULL;
		}
		return grpc_insecure_server_credentials_create();
	}
	cert = read_pem(cfg->tls_cert, why, why_len);
	key = cert ? read_pem(cfg->tls_key, why, why_len) : NULL;
	if (key && cfg->tls_client_ca)
		ca = read_pem(cfg->tls_client_ca, why, why_len);
	if (!cert || !key || (cfg->tls_client_ca && !ca)) {
		free(cert);
		free(key);
		return NULL;
	}
	pair.private_key = key;
	pair.cert_chain = cert;
	creds = grpc_ssl_server_credentials_create_ex(
	    ca, &pair, 1,
	    !ca ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
	    : cfg->tls_require_client
		? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
		: GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY,
	    NULL);
	/* gRPC copies the PEM strings. */
	free(cert);
	free(key);
	free(ca);
	if (!creds)
		snprintf(why, why_len,
			 "gRPC refused the TLS certificate %s "
			 "or key %s",
			 cfg->tls_cert, cfg->tls_key);
	return creds;
}

/* Compares in time that depends on the lengths only. */
static bool same(const char *a, size_t an, const char *b, size_t bn)
{
	unsigned diff = an != bn;

	for (size_t i = 0; i < an && i < bn; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)b[i];
	return diff == 0;
}

bool auth_token_ok(const struct bridge_config *cfg,
		   const grpc_metadata_array *md)
{
	static const char bearer[] = "Bearer ";

	if (!cfg->token)
		return true;
	for (size_t i = 0; i < md->count; i++) {
		const grpc_slice *k = &md->metadata[i].key;
		const grpc_slice *v = &md->metadata[i].value;
		const char *vs = (const char *)GRPC_SLICE_START_PTR(*v);
		size_t vn = GRPC_SLICE_LENGTH(*v);

		if (GRPC_SLICE_LENGTH(*k) != 13 ||
		    memcmp(GRPC_SLICE_START_PTR(*k), "authorization", 13))
			continue;
		if (vn < sizeof(bearer) - 1 ||
		    memcmp(vs, bearer, sizeof(bearer) - 1))
			return false;
		return same(vs + sizeof(bearer) - 1, vn - (sizeof(bearer) - 1),
			    cfg->token, strlen(cfg->token));
	}
	return false;
}
