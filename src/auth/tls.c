/*
 * tls.c - TLS material: loading, checking, reloading and client-certificate
 * checks (see tls.h).  Files are read whole (PEM, at most 1 MiB); keys are
 * scrubbed from memory when the material is destroyed.
 */
#include "auth/tls.h"

#include <gnutls/x509.h>
#include <pthread.h>
#include <string.h>

#include "auth/keys.h"
#include "core/alloc.h"

#define TLS_FILE_MAX (1024 * 1024)
#define TLS_CHAIN_MAX 16  /* certificates in the served chain */
#define TLS_PEER_MAX 16   /* certificates taken from a client's chain */

/* One successful load of the files, with what GnuTLS needs parsed. */
typedef struct tls_generation {
    uint64_t number;
    char *cert;
    char *key;
    size_t key_len;
    char *client_ca; /* NULL without mTLS */
    gnutls_pcert_st pcerts[TLS_CHAIN_MAX];
    unsigned n_pcerts;
    gnutls_privkey_t privkey;
    gnutls_x509_trust_list_t trust; /* NULL without mTLS */
    struct tls_generation *older;
} tls_generation;

struct tls_material {
    char cert_file[CONFIG_STR_MAX];
    char key_file[CONFIG_STR_MAX];
    char client_ca_file[CONFIG_STR_MAX];
    char *startup_ca; /* the first generation's bundle, named in certificate requests */
    pthread_mutex_t lock;
    tls_generation *current; /* newest first; older ones kept until destroy */
};

static void generation_destroy(tls_generation *g) {
    if (!g) return;
    for (unsigned i = 0; i < g->n_pcerts; i++) gnutls_pcert_deinit(&g->pcerts[i]);
    if (g->privkey) gnutls_privkey_deinit(g->privkey);
    if (g->trust) gnutls_x509_trust_list_deinit(g->trust, 1);
    if (g->key) memset(g->key, 0, g->key_len);
    vigil_free(g->key);
    vigil_free(g->cert);
    vigil_free(g->client_ca);
    vigil_free(g);
}

/* Parses the generation's PEM texts: the chain and key (which must match)
 * and the CA bundle. */
static vigil_status generation_parse(tls_generation *g, const tls_material *tls, vigil_error *err) {
    gnutls_datum_t cert = {(unsigned char *)g->cert, (unsigned)strlen(g->cert)};
    gnutls_datum_t key = {(unsigned char *)g->key, (unsigned)g->key_len};
    unsigned n = TLS_CHAIN_MAX;
    int rc = gnutls_pcert_list_import_x509_raw(g->pcerts, &n, &cert, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "tls.cert_file %s: %s", tls->cert_file,
                               gnutls_strerror(rc));
    g->n_pcerts = n;
    if (gnutls_privkey_init(&g->privkey) < 0) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "tls: out of memory");
    rc = gnutls_privkey_import_x509_raw(g->privkey, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "tls.key_file %s: %s", tls->key_file,
                               gnutls_strerror(rc));
    /* Cert and key belong together: the same check the listeners would make. */
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) < 0)
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "tls: out of memory");
    rc = gnutls_certificate_set_x509_key_mem2(cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_certificate_free_credentials(cred);
    if (rc < 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "tls.cert_file %s / tls.key_file %s: %s",
                               tls->cert_file, tls->key_file, gnutls_strerror(rc));
    if (!g->client_ca) return VIGIL_OK;
    gnutls_datum_t ca = {(unsigned char *)g->client_ca, (unsigned)strlen(g->client_ca)};
    if (gnutls_x509_trust_list_init(&g->trust, 0) < 0)
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "tls: out of memory");
    rc = gnutls_x509_trust_list_add_trust_mem(g->trust, &ca, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
    if (rc <= 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "tls.client_ca_file %s: %s", tls->client_ca_file,
                               rc < 0 ? gnutls_strerror(rc) : "no certificate in the file");
    return VIGIL_OK;
}

/* Reads and parses the files into a new generation. */
static vigil_status generation_load(const tls_material *tls, tls_generation **out, vigil_error *err) {
    *out = NULL;
    tls_generation *g = vigil_calloc(1, sizeof *g);
    if (!g) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "tls: out of memory");
    size_t len;
    vigil_status st = keys_read_file(tls->cert_file, TLS_FILE_MAX, "tls.cert_file", &g->cert, &len, err);
    if (!st) st = keys_read_file(tls->key_file, TLS_FILE_MAX, "tls.key_file", &g->key, &g->key_len, err);
    if (!st && tls->client_ca_file[0])
        st = keys_read_file(tls->client_ca_file, TLS_FILE_MAX, "tls.client_ca_file", &g->client_ca, &len, err);
    if (!st) st = generation_parse(g, tls, err);
    if (st) {
        generation_destroy(g);
        return st;
    }
    *out = g;
    return VIGIL_OK;
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
    snprintf(tls->cert_file, sizeof tls->cert_file, "%s", cfg->tls_cert_file);
    snprintf(tls->key_file, sizeof tls->key_file, "%s", cfg->tls_key_file);
    snprintf(tls->client_ca_file, sizeof tls->client_ca_file, "%s", cfg->tls_client_ca_file);
    pthread_mutex_init(&tls->lock, NULL);
    vigil_status st = generation_load(tls, &tls->current, err);
    if (!st && tls->current->client_ca && !(tls->startup_ca = vigil_strdup(tls->current->client_ca)))
        st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "tls: out of memory");
    if (st) {
        tls_material_destroy(tls);
        return st;
    }
    tls->current->number = 1;
    *out = tls;
    return VIGIL_OK;
}

void tls_material_destroy(tls_material *tls) {
    if (!tls) return;
    for (tls_generation *g = tls->current, *older; g; g = older) {
        older = g->older;
        generation_destroy(g);
    }
    vigil_free(tls->startup_ca);
    pthread_mutex_destroy(&tls->lock);
    vigil_free(tls);
}

vigil_status tls_material_reload(tls_material *tls, vigil_error *err) {
    if (!tls) return VIGIL_OK;
    tls_generation *g;
    vigil_status st = generation_load(tls, &g, err);
    if (st) return st;
    pthread_mutex_lock(&tls->lock);
    g->number = tls->current->number + 1;
    g->older = tls->current;
    tls->current = g;
    pthread_mutex_unlock(&tls->lock);
    return VIGIL_OK;
}

static tls_generation *current(tls_material *tls) {
    pthread_mutex_lock(&tls->lock);
    tls_generation *g = tls->current;
    pthread_mutex_unlock(&tls->lock);
    return g;
}

uint64_t tls_material_generation(tls_material *tls) { return tls ? current(tls)->number : 0; }

vigil_status tls_material_copy(tls_material *tls, char **cert, char **key, char **ca, uint64_t *generation) {
    const tls_generation *g = current(tls);
    *cert = vigil_strdup(g->cert);
    *key = vigil_strdup(g->key);
    *ca = g->client_ca ? vigil_strdup(g->client_ca) : NULL;
    *generation = g->number;
    if (*cert && *key && (*ca || !g->client_ca)) return VIGIL_OK;
    vigil_free(*cert);
    if (*key) memset(*key, 0, strlen(*key));
    vigil_free(*key);
    vigil_free(*ca);
    *cert = *key = *ca = NULL;
    return VIGIL_ERR_NO_MEMORY;
}

const char *tls_client_ca_pem(const tls_material *tls) { return tls ? tls->startup_ca : NULL; }

int tls_http_cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                           const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
                           unsigned int *pcert_length, gnutls_privkey_t *pkey) {
    (void)req_ca_dn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
    tls_material *tls = gnutls_session_get_ptr(session);
    if (!tls) return -1;
    tls_generation *g = current(tls);
    *pcert = g->pcerts; /* GnuTLS does not free what this callback returns */
    *pcert_length = g->n_pcerts;
    *pkey = g->privkey;
    return 0;
}

/* 1 when the session's peer sent a chain that verifies against the current
 * CA bundle. */
static int peer_verified(tls_material *tls, gnutls_session_t session) {
    const tls_generation *g = current(tls);
    if (!g->trust) return 0;
    unsigned count = 0;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers(session, &count);
    if (!chain || count == 0) return 0;
    if (count > TLS_PEER_MAX) count = TLS_PEER_MAX;
    gnutls_x509_crt_t crts[TLS_PEER_MAX];
    unsigned n = 0, verdict = 1;
    int ok = 1;
    for (; n < count && ok; n++) {
        ok = gnutls_x509_crt_init(&crts[n]) >= 0;
        if (ok && gnutls_x509_crt_import(crts[n], &chain[n], GNUTLS_X509_FMT_DER) < 0) {
            gnutls_x509_crt_deinit(crts[n]);
            ok = 0;
        }
        if (!ok) break;
    }
    if (ok) ok = gnutls_x509_trust_list_verify_crt(g->trust, crts, n, 0, &verdict, NULL) >= 0 && verdict == 0;
    for (unsigned i = 0; i < n; i++) gnutls_x509_crt_deinit(crts[i]);
    return ok;
}

/* GnuTLS calls this during the handshake (mTLS): a client without a
 * certificate of the current CA never gets a session. */
static int verify_during_handshake(gnutls_session_t session) {
    tls_material *tls = gnutls_session_get_ptr(session);
    return tls && peer_verified(tls, session) ? 0 : GNUTLS_E_CERTIFICATE_ERROR;
}

void tls_session_attach(tls_material *tls, gnutls_session_t session) {
    if (!tls || !session) return;
    gnutls_session_set_ptr(session, tls);
    if (tls->startup_ca) { /* mTLS: refuse in the handshake, not only per request */
        gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUIRE);
        gnutls_session_set_verify_function(session, verify_during_handshake);
    }
}

int tls_session_verified(tls_material *tls, gnutls_session_t session) {
    return tls && session && peer_verified(tls, session);
}
