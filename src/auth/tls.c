/*
 * tls.c - TLS material loading and client-certificate checks (see tls.h).
 * Files are read whole (PEM, at most 1 MiB); the key is scrubbed from memory
 * when the material is destroyed.
 */
#include "auth/tls.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <string.h>

#include "auth/keys.h"
#include "core/alloc.h"

#define TLS_FILE_MAX (1024 * 1024)

struct tls_material {
    char *cert;
    char *key;
    size_t key_len;
    char *client_ca; /* NULL without mTLS */
};

/* Checks that cert and key parse and belong together, and that ca parses. */
static vigil_status tls_check(const tls_material *tls, const vigil_config *cfg, vigil_error *err) {
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) < 0)
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "tls: out of memory");
    gnutls_datum_t cert = {(unsigned char *)tls->cert, (unsigned)strlen(tls->cert)};
    gnutls_datum_t key = {(unsigned char *)tls->key, (unsigned)tls->key_len};
    vigil_status st = VIGIL_OK;
    int rc = gnutls_certificate_set_x509_key_mem2(cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0)
        st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "tls.cert_file %s / tls.key_file %s: %s",
                             cfg->tls_cert_file, cfg->tls_key_file, gnutls_strerror(rc));
    if (!st && tls->client_ca) {
        gnutls_datum_t ca = {(unsigned char *)tls->client_ca, (unsigned)strlen(tls->client_ca)};
        rc = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
        if (rc <= 0)
            st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "tls.client_ca_file %s: %s", cfg->tls_client_ca_file,
                                 rc < 0 ? gnutls_strerror(rc) : "no certificate in the file");
    }
    gnutls_certificate_free_credentials(cred);
    return st;
}

vigil_status tls_material_load(const vigil_config *cfg, tls_material **out, vigil_error *err) {
    *out = NULL;
    if (!cfg->tls_cert_file[0]) {
        if (cfg->tls_key_file[0] || cfg->tls_client_ca_file[0])
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "tls.key_file and tls.client_ca_file need tls.cert_file");
        return VIGIL_OK;
    }
    if (!cfg->tls_key_file[0])
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "tls.cert_file needs tls.key_file");
    tls_material *tls = vigil_calloc(1, sizeof *tls);
    if (!tls) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "tls: out of memory");
    size_t len;
    vigil_status st = keys_read_file(cfg->tls_cert_file, TLS_FILE_MAX, "tls.cert_file", &tls->cert, &len, err);
    if (!st) st = keys_read_file(cfg->tls_key_file, TLS_FILE_MAX, "tls.key_file", &tls->key, &tls->key_len, err);
    if (!st && cfg->tls_client_ca_file[0])
        st = keys_read_file(cfg->tls_client_ca_file, TLS_FILE_MAX, "tls.client_ca_file", &tls->client_ca, &len, err);
    if (!st) st = tls_check(tls, cfg, err);
    if (st) {
        tls_material_destroy(tls);
        return st;
    }
    *out = tls;
    return VIGIL_OK;
}

void tls_material_destroy(tls_material *tls) {
    if (!tls) return;
    if (tls->key) memset(tls->key, 0, tls->key_len);
    vigil_free(tls->key);
    vigil_free(tls->cert);
    vigil_free(tls->client_ca);
    vigil_free(tls);
}

const char *tls_cert_pem(const tls_material *tls) { return tls ? tls->cert : NULL; }
const char *tls_key_pem(const tls_material *tls) { return tls ? tls->key : NULL; }
const char *tls_client_ca_pem(const tls_material *tls) { return tls ? tls->client_ca : NULL; }

int tls_client_verified(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!info || !info->tls_session) return 0;
    gnutls_session_t session = (gnutls_session_t)info->tls_session;
    unsigned count = 0;
    if (!gnutls_certificate_get_peers(session, &count) || count == 0) return 0;
    unsigned status = 0;
    return gnutls_certificate_verify_peers2(session, &status) == 0 && status == 0;
}
