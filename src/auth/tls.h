/*
 * tls.h - TLS material for the HTTP listener (libmicrohttpd over GnuTLS):
 * the certificate chain, its private key and, for mutual TLS, the CA bundle
 * that client certificates must chain to.  Loading checks the files up front
 * (cert and key present together and matching, the CA bundle parseable) so
 * that a misconfiguration is a clear start-up error, not a failed listen.
 *
 * GnuTLS only *requests* a client certificate when a trust store is set, so
 * the HTTP side must also call tls_client_verified on every request when
 * tls_client_ca_pem is not NULL: no certificate, or one that does not verify,
 * is refused there.
 */
#ifndef VIGIL_AUTH_TLS_H
#define VIGIL_AUTH_TLS_H

#include "core/config.h"
#include "vigil/status.h"

struct MHD_Connection;

typedef struct tls_material tls_material;

/* Reads cfg's tls.* files.  *out stays NULL when tls.cert_file is unset
 * (plain HTTP); tls.key_file or tls.client_ca_file without tls.cert_file is
 * an error.  The caller owns *out. */
vigil_status tls_material_load(const vigil_config *cfg, tls_material **out, vigil_error *err);
void tls_material_destroy(tls_material *tls);

/* PEM texts, valid while tls lives (for MHD_OPTION_HTTPS_MEM_*). */
const char *tls_cert_pem(const tls_material *tls);
const char *tls_key_pem(const tls_material *tls);
const char *tls_client_ca_pem(const tls_material *tls); /* NULL: no mTLS */

/* 1 when the TLS connection presented a client certificate that verifies
 * against the trust store given to libmicrohttpd; 0 otherwise (also for a
 * plain connection). */
int tls_client_verified(struct MHD_Connection *conn);

#endif
