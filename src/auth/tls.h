/*
 * tls.h - TLS material for the HTTP (the gate, over GnuTLS) and gRPC
 * listeners: the certificate chain, its private key and, for mutual TLS,
 * the CA bundle that client certificates must chain to.  Loading checks the
 * files up front (cert and key present together and matching, the CA bundle
 * parseable) so that a misconfiguration is a clear start-up error, not a
 * failed listen.
 *
 * Reloadable: tls_material_reload (on SIGHUP) reads the same files again
 * and, when they check out, makes them the current generation; new
 * handshakes use it, connections already open keep theirs.  Old generations
 * stay allocated until the material is destroyed (a reload is rare and a
 * handshake in progress may still point into one), so nothing is freed
 * under a reader.
 *
 * HTTP: the gate (src/serve/http_gate.c) terminates TLS with credentials
 * whose certificate comes from tls_http_cert_callback, and calls
 * tls_session_attach on every new session, which is how the callback finds
 * the material.  With mTLS, tls_session_attach also makes the session
 * require a client certificate and verify it in the handshake against the
 * current CA bundle, so a client without a good one gets no session; the
 * gate keeps tls_session_verified's verdict and the HTTP handler checks it
 * on every request (defence in depth).
 */
#ifndef VIGIL_AUTH_TLS_H
#define VIGIL_AUTH_TLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdint.h>

#include "core/config.h"
#include "vigil/status.h"

typedef struct tls_material tls_material;

/* Reads cfg's tls.* files.  *out stays NULL when tls.cert_file is unset
 * (plain HTTP); tls.key_file or tls.client_ca_file without tls.cert_file is
 * an error.  The caller owns *out. */
vigil_status tls_material_load(const vigil_config *cfg, tls_material **out, vigil_error *err);
void tls_material_destroy(tls_material *tls);

/* Reads the files again; on success they serve every new handshake (HTTP
 * and gRPC), on failure the current ones stay and err says why. */
vigil_status tls_material_reload(tls_material *tls, vigil_error *err);

/* Counts successful loads (1 after tls_material_load); gRPC compares it to
 * decide whether to hand its transport a new configuration. */
uint64_t tls_material_generation(tls_material *tls);

/* Copies of the current PEM texts (caller frees each with vigil_free; *ca is
 * NULL without mTLS) and their generation.  VIGIL_ERR_NO_MEMORY on failure. */
vigil_status tls_material_copy(tls_material *tls, char **cert, char **key, char **ca, uint64_t *generation);

/* The start-up CA bundle (the gate's credentials name it in the certificate
 * request); NULL without mTLS. */
const char *tls_client_ca_pem(const tls_material *tls);

/* For gnutls_certificate_set_retrieve_function2: the current certificate
 * and key of the material attached to the session. */
int tls_http_cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                           const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
                           unsigned int *pcert_length, gnutls_privkey_t *pkey);

/* Attaches tls to a new server session (before its handshake): the
 * certificate callback finds the material through it, and with mTLS the
 * session requires a client certificate and verifies it in the handshake. */
void tls_session_attach(tls_material *tls, gnutls_session_t session);

/* 1 when the session's client presented a certificate chain that verifies
 * against the current CA bundle; 0 otherwise. */
int tls_session_verified(tls_material *tls, gnutls_session_t session);

#endif
