/*
 * test_idem.c - the receiver's idempotency store (receiver.h, idem_*.c) on
 * SQLite: claim, busy, mismatch, replay, abandon, take-over of a stale
 * claim, expiry, and one winner among racing threads and among two
 * handles on one file (two processes).  PostgreSQL runs the same checks
 * when VIGIL_TEST_PG_URL names a database (the integration test
 * tests/integration/test_edge_receiver.py starts a real server for it).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "edge/event.h"
#include "edge/receiver.h"
#include "testing.h"

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static char db_url[512];

static const char *new_key(char key[EDGE_EVENT_ID_LEN + 1]) {
    vigil_error err = {0};
    CHECK_EQ_INT(edge_uuid7(1765000000000, key, &err), VIGIL_OK);
    return key;
}

static idem_store *open_store(double retention_s, double claim_timeout_s) {
    idem_store *s = NULL;
    vigil_error err = {0};
    vigil_status st = idem_open(db_url, retention_s, claim_timeout_s, &s, &err);
    if (st) fprintf(stderr, "idem_open: %s\n", err.message);
    CHECK_EQ_INT(st, VIGIL_OK);
    return s;
}

static void test_contract(void) {
    idem_store *s = open_store(86400, 60);
    if (!s) return;
    char key[EDGE_EVENT_ID_LEN + 1];
    new_key(key);
    vigil_error err = {0};
    idem_outcome out;
    int status = -1;
    char *body = NULL;
    CHECK_EQ_INT(idem_begin(s, key, HASH_A, &out, &status, &body, &err), VIGIL_OK);
    CHECK_EQ_INT(out, IDEM_NEW);
    CHECK(body == NULL);
    CHECK_EQ_INT(idem_begin(s, key, HASH_A, &out, &status, &body, &err), VIGIL_OK);
    CHECK_EQ_INT(out, IDEM_BUSY); /* claimed and under way */
    CHECK_EQ_INT(idem_begin(s, key, HASH_B, &out, &status, &body, &err), VIGIL_OK);
    CHECK_EQ_INT(out, IDEM_MISMATCH);
    CHECK_EQ_INT(idem_finish(s, key, 201, "{\"id\":1}", &err), VIGIL_OK);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(idem_begin(s, key, HASH_A, &out, &status, &body, &err), VIGIL_OK);
        CHECK_EQ_INT(out, IDEM_REPLAY);
        CHECK_EQ_INT(status, 201);
        CHECK_STR(body, "{\"id\":1}");
        vigil_free(body);
        body = NULL;
    }
    CHECK_EQ_INT(idem_begin(s, key, HASH_B, &out, &status, &body, &err), VIGIL_OK);
    CHECK_EQ_INT(out, IDEM_MISMATCH);                                     /* a finished key with another body too */
    CHECK_EQ_INT(idem_finish(s, key, 500, "{}", &err), VIGIL_ERR_EXISTS); /* the first answer stands */
    /* abandoned: the next request claims it again */
    char other[EDGE_EVENT_ID_LEN + 1];
    new_key(other);
    CHECK_EQ_INT(idem_begin(s, other, HASH_B, &out, &status, &body, &err), VIGIL_OK);
    CHECK_EQ_INT(out, IDEM_NEW);
    CHECK_EQ_INT(idem_abandon(s, other, &err), VIGIL_OK);
    CHECK_EQ_INT(idem_finish(s, other, 201, "{}", &err), VIGIL_ERR_NOT_FOUND);
    CHECK_EQ_INT(idem_begin(s, other, HASH_A, &out, &status, &body, &err), VIGIL_OK);
    CHECK_EQ_INT(out, IDEM_NEW); /* abandoned means forgotten, body and all */
    /* bad input is refused before the database */
    CHECK_EQ_INT(idem_begin(s, "not-a-key", HASH_A, &out, &status, &body, &err), VIGIL_ERR_INVALID_ARGUMENT);
    char short_hash[65] = "abc";
    CHECK_EQ_INT(idem_begin(s, key, short_hash, &out, &status, &body, &err), VIGIL_ERR_INVALID_ARGUMENT);
    idem_close(s);
}

static void test_takeover_and_expiry(void) {
    idem_store *s = open_store(0.3, 0.1);
    if (!s) return;
    char key[EDGE_EVENT_ID_LEN + 1];
    new_key(key);
    vigil_error err = {0};
    idem_outcome out;
    int status;
    char *body = NULL;
    CHECK_EQ_INT(idem_begin(s, key, HASH_A, &out, &status, &body, &err), VIGIL_OK);
    CHECK_EQ_INT(out, IDEM_NEW);
    usleep(200000); /* the claim's worker "died" */
    CHECK_EQ_INT(idem_begin(s, key, HASH_A, &out, &status, &body, &err), VIGIL_OK);
    CHECK_EQ_INT(out, IDEM_NEW); /* taken over */
    CHECK_EQ_INT(idem_begin(s, key, HASH_A, &out, &status, &body, &err), VIGIL_OK);
    CHECK_EQ_INT(out, IDEM_BUSY); /* the new claim is fresh */
    CHECK_EQ_INT(idem_finish(s, key, 201, "{\"first\":true}", &err), VIGIL_OK);
    CHECK_EQ_INT(idem_finish(s, key, 201, "{\"second\":true}", &err), VIGIL_ERR_EXISTS); /* the late one loses */
    CHECK_EQ_INT(idem_begin(s, key, HASH_A, &out, &status, &body, &err), VIGIL_OK);
    CHECK_EQ_INT(out, IDEM_REPLAY);
    CHECK_STR(body, "{\"first\":true}");
    vigil_free(body);
    body = NULL;
    CHECK(idem_expire(s, &err) >= 0); /* (other tests' keys share the table) */
    CHECK_EQ_INT(idem_begin(s, key, HASH_A, &out, &status, &body, &err), VIGIL_OK);
    CHECK_EQ_INT(out, IDEM_REPLAY); /* younger than the retention: kept */
    vigil_free(body);
    body = NULL;
    usleep(400000);
    CHECK(idem_expire(s, &err) >= 1);
    CHECK_EQ_INT(idem_begin(s, key, HASH_B, &out, &status, &body, &err), VIGIL_OK);
    CHECK_EQ_INT(out, IDEM_NEW); /* forgotten after the retention */
    idem_close(s);
}

typedef struct race {
    idem_store *store; /* shared, or NULL: each thread opens its own handle (another process) */
    const char *key;
    int news, busies;
    pthread_mutex_t lock;
} race;

static void *race_one(void *arg) {
    race *r = arg;
    idem_store *s = r->store;
    vigil_error err = {0};
    if (!s && idem_open(db_url, 86400, 60, &s, &err)) return NULL;
    idem_outcome out;
    int status;
    char *body = NULL;
    if (idem_begin(s, r->key, HASH_A, &out, &status, &body, &err) == VIGIL_OK) {
        pthread_mutex_lock(&r->lock);
        r->news += out == IDEM_NEW;
        r->busies += out == IDEM_BUSY;
        pthread_mutex_unlock(&r->lock);
    }
    vigil_free(body);
    if (!r->store) idem_close(s);
    return NULL;
}

static void run_race(idem_store *shared) {
    char key[EDGE_EVENT_ID_LEN + 1];
    race r = {.store = shared, .key = new_key(key)};
    pthread_mutex_init(&r.lock, NULL);
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        CHECK_EQ_INT(pthread_create(&t[i], NULL, race_one, &r), 0);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(r.news, 1);
    CHECK_EQ_INT(r.busies, 7);
    pthread_mutex_destroy(&r.lock);
}

static void test_one_winner(void) {
    idem_store *s = open_store(86400, 60);
    if (!s) return;
    run_race(s);    /* threads sharing a handle */
    run_race(NULL); /* a handle each: as separate processes or replicas would */
    idem_close(s);
}

static void test_bad_urls(void) {
    idem_store *s = NULL;
    vigil_error err = {0};
    CHECK_EQ_INT(idem_open("mysql://x", 86400, 60, &s, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "sqlite:") != NULL);
    CHECK_EQ_INT(idem_open("sqlite:", 86400, 60, &s, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(idem_open("sqlite:/proc/no/such/dir/x.db", 86400, 60, &s, &err), VIGIL_ERR_IO);
    CHECK(s == NULL);
    /* a PostgreSQL that is not there: unavailable, said in one line */
    CHECK_EQ_INT(idem_open("postgresql://127.0.0.1:1/none?connect_timeout=2", 86400, 60, &s, &err),
                 VIGIL_ERR_UNAVAILABLE);
    CHECK(strchr(err.message, '\n') == NULL);
}

int main(void) {
    char dir[] = "/tmp/vigil-idem-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    snprintf(db_url, sizeof db_url, "sqlite:%s/sub/receiver.db", dir);
    RUN(test_contract);
    RUN(test_takeover_and_expiry);
    RUN(test_one_winner);
    RUN(test_bad_urls);
    const char *pg = getenv("VIGIL_TEST_PG_URL");
    if (pg && *pg) {
        snprintf(db_url, sizeof db_url, "%s", pg);
        RUN(test_contract);
        RUN(test_takeover_and_expiry);
        RUN(test_one_winner);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return testing_report();
}
