/*
 * test_edge_outbox.c - the SQLite outbox (src/edge/outbox.c): claim order,
 * ack/retry/park, caps and eviction at their exact thresholds, TTL, restart
 * recovery, the history's JSON, quarantine of corrupt files and SQLite
 * failures surfaced as errors.  Each test works in its own temporary dir.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edge/event.h"
#include "edge/outbox.h"
#include "testing.h"

static char tmp_root[256];

static void tmp_path(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", tmp_root, name);
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* An event of class priority made at created_ms with a frame of frame_bytes. */
static edge_event make_event(int priority, int64_t created_ms, size_t frame_bytes) {
    edge_event e;
    memset(&e, 0, sizeof e);
    vigil_error err;
    if (edge_uuid7(created_ms, e.id, &err) != VIGIL_OK) abort();
    e.priority = priority;
    e.created_ms = created_ms;
    snprintf(e.traceparent, sizeof e.traceparent, "00-%032d-%016d-01", 1, 2);
    char doc[256];
    int n = snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"priority\":%d,\"created_ms\":%lld,\"reason\":\"band\"}", e.id,
                     priority, (long long)created_ms);
    e.json = strdup(doc);
    e.json_bytes = (size_t)n;
    if (frame_bytes) {
        e.frame = malloc(frame_bytes);
        for (size_t i = 0; i < frame_bytes; i++)
            e.frame[i] = (unsigned char)(i * 7 + (size_t)created_ms);
        e.frame_bytes = frame_bytes;
    }
    if (!e.json || (frame_bytes && !e.frame)) abort();
    return e;
}

static outbox *open_box(const char *name, const outbox_limits *limits) {
    char path[512];
    tmp_path(path, sizeof path, name);
    outbox *box = NULL;
    vigil_error err = {0};
    vigil_status st = outbox_open(path, limits, &box, &err);
    if (st != VIGIL_OK) fprintf(stderr, "outbox_open: %s\n", err.message);
    return box;
}

static vigil_status put(outbox *box, const edge_event *e, int64_t now) {
    vigil_error err = {0};
    return outbox_put(box, e, now, &err);
}

static void claim(outbox *box, int64_t now, edge_event *e, bool *found) {
    vigil_error err = {0};
    vigil_status st = outbox_claim(box, now, e, found, &err);
    if (st != VIGIL_OK) fprintf(stderr, "outbox_claim: %s\n", err.message);
    CHECK_EQ_INT(st, VIGIL_OK);
}

static outbox_stats stats(outbox *box, int64_t now) {
    outbox_stats s;
    vigil_error err = {0};
    CHECK_EQ_INT(outbox_stats_get(box, now, &s, &err), VIGIL_OK);
    return s;
}

static void test_claim_order(void) {
    outbox *box = open_box("order.db", NULL);
    CHECK(box != NULL);
    if (!box) return;
    /* priority first, then created_ms, then id (two events made in the same ms) */
    edge_event e[5] = {make_event(2, 1000, 10), make_event(1, 3000, 10), make_event(0, 4000, 0),
                       make_event(1, 2000, 10), make_event(1, 2000, 10)};
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(put(box, &e[i], 5000), VIGIL_OK);
    const edge_event *tie_first = strcmp(e[3].id, e[4].id) < 0 ? &e[3] : &e[4];
    const edge_event *tie_second = tie_first == &e[3] ? &e[4] : &e[3];
    const edge_event *want[5] = {&e[2], tie_first, tie_second, &e[1], &e[0]};
    for (int i = 0; i < 5; i++) {
        edge_event got;
        bool found = false;
        claim(box, 5000, &got, &found);
        CHECK(found);
        CHECK_STR(got.id, want[i]->id);
        CHECK_EQ_INT(got.priority, want[i]->priority);
        CHECK_EQ_INT(got.created_ms, want[i]->created_ms);
        CHECK_STR(got.traceparent, want[i]->traceparent);
        CHECK_EQ_INT(got.json_bytes, want[i]->json_bytes);
        CHECK(got.json && strcmp(got.json, want[i]->json) == 0);
        CHECK_EQ_INT(got.frame_bytes, want[i]->frame_bytes);
        CHECK((got.frame == NULL) == (want[i]->frame == NULL));
        if (got.frame && want[i]->frame) CHECK(memcmp(got.frame, want[i]->frame, got.frame_bytes) == 0);
        edge_event_clear(&got);
    }
    edge_event none;
    bool found = true;
    claim(box, 5000, &none, &found);
    CHECK(!found);
    /* the same id twice is refused, not overwritten */
    vigil_error err = {0};
    CHECK_EQ_INT(outbox_put(box, &e[0], 5000, &err), VIGIL_ERR_EXISTS);
    /* outbox_claim_next keeps to the classes it is allowed */
    edge_event low = make_event(3, 6000, 0), got;
    CHECK_EQ_INT(put(box, &low, 6000), VIGIL_OK);
    int attempts = -1;
    CHECK_EQ_INT(outbox_claim_next(box, 6000, 2, &got, &found, &attempts, &err), VIGIL_OK);
    CHECK(!found);
    CHECK_EQ_INT(outbox_claim_next(box, 6000, 3, &got, &found, &attempts, &err), VIGIL_OK);
    CHECK(found);
    CHECK_EQ_INT(attempts, 0);
    edge_event_clear(&got);
    edge_event_clear(&low);
    for (int i = 0; i < 5; i++)
        edge_event_clear(&e[i]);
    outbox_close(box);
}

static void test_ack_retry_park(void) {
    outbox *box = open_box("states.db", NULL);
    CHECK(box != NULL);
    if (!box) return;
    vigil_error err = {0};
    edge_event a = make_event(1, 1000, 100), b = make_event(1, 1001, 100), c = make_event(1, 1002, 100);
    CHECK_EQ_INT(put(box, &a, 1000), VIGIL_OK);
    CHECK_EQ_INT(put(box, &b, 1001), VIGIL_OK);
    CHECK_EQ_INT(put(box, &c, 1002), VIGIL_OK);
    CHECK_EQ_INT(outbox_next_due_ms(box), 0);

    /* a: retried, due at 5000: invisible before, claimed again at 5000 with one attempt behind it */
    edge_event got;
    bool found = false;
    claim(box, 2000, &got, &found);
    CHECK(found && strcmp(got.id, a.id) == 0);
    edge_event_clear(&got);
    CHECK_EQ_INT(outbox_retry(box, a.id, 5000, "http 503", &err), VIGIL_OK);
    CHECK_EQ_INT(outbox_retry(box, a.id, 5000, "again", &err), VIGIL_ERR_NOT_FOUND); /* not inflight now */
    /* b: parked after a 400 */
    claim(box, 2000, &got, &found);
    CHECK(found && strcmp(got.id, b.id) == 0);
    edge_event_clear(&got);
    CHECK_EQ_INT(outbox_park(box, b.id, 400, "http 400: bad body", &err), VIGIL_OK);
    /* c: acked with the cloud's answer */
    claim(box, 2000, &got, &found);
    CHECK(found && strcmp(got.id, c.id) == 0);
    edge_event_clear(&got);
    char answer[256];
    snprintf(answer, sizeof answer,
             "{\"id\":\"%s\",\"verdict\":{\"model\":\"yolov8m\",\"version\":1,\"detections\":[]},\"received_ms\":7}",
             c.id);
    CHECK_EQ_INT(outbox_ack(box, c.id, answer, 2500, &err), VIGIL_OK);
    CHECK_EQ_INT(outbox_ack(box, c.id, answer, 2500, &err), VIGIL_ERR_NOT_FOUND);

    claim(box, 4999, &got, &found);
    CHECK(!found);
    CHECK_EQ_INT(outbox_next_due_ms(box), 5000);
    int attempts = 0;
    CHECK_EQ_INT(outbox_claim_next(box, 5000, 3, &got, &found, &attempts, &err), VIGIL_OK);
    CHECK(found && strcmp(got.id, a.id) == 0);
    CHECK_EQ_INT(attempts, 1);
    edge_event_clear(&got);
    CHECK_EQ_INT(outbox_next_due_ms(box), INT64_MAX);

    outbox_stats s = stats(box, 5000);
    CHECK_EQ_INT(s.rows[1], 1); /* a, inflight */
    CHECK_EQ_INT(s.bytes[1], (int64_t)(a.json_bytes + a.frame_bytes));
    CHECK_EQ_INT(s.parked, 1);
    CHECK_EQ_INT(s.acked, 1);
    CHECK(!s.quarantined);

    char *json = NULL;
    CHECK_EQ_INT(outbox_event_json(box, c.id, &json, &err), VIGIL_OK);
    CHECK(json && strstr(json, "\"state\":\"acked\"") && strstr(json, "\"verdict\":{\"model\":\"yolov8m\""));
    CHECK(json && strstr(json, "\"reason\":\"band\"")); /* the event document itself */
    free(json);
    CHECK_EQ_INT(outbox_event_json(box, b.id, &json, &err), VIGIL_OK);
    CHECK(json && strstr(json, "\"state\":\"parked\"") && strstr(json, "\"last_status\":400") &&
          strstr(json, "\"verdict\":null"));
    free(json);
    CHECK_EQ_INT(outbox_event_json(box, a.id, &json, &err), VIGIL_OK);
    CHECK(json && strstr(json, "\"state\":\"pending\"") && strstr(json, "\"last_error\":\"http 503\""));
    free(json);
    CHECK_EQ_INT(outbox_event_json(box, "00000000-0000-7000-8000-000000000000", &json, &err), VIGIL_ERR_NOT_FOUND);
    edge_event_clear(&a);
    edge_event_clear(&b);
    edge_event_clear(&c);
    outbox_close(box);
}

static void test_caps_rows_exact(void) {
    outbox_limits lim = {0};
    lim.max_rows[0] = 2;
    lim.max_rows[1] = 3;
    outbox *box = open_box("rows.db", &lim);
    CHECK(box != NULL);
    if (!box) return;
    vigil_error err = {0};
    /* priority 0: the second put reaches the cap exactly and is stored; the third is refused */
    edge_event p0[3] = {make_event(0, 100, 10), make_event(0, 101, 10), make_event(0, 102, 10)};
    CHECK_EQ_INT(put(box, &p0[0], 200), VIGIL_OK);
    CHECK_EQ_INT(put(box, &p0[1], 200), VIGIL_OK);
    CHECK_EQ_INT(outbox_put(box, &p0[2], 200, &err), VIGIL_ERR_LIMIT);
    CHECK(strstr(err.message, "full") != NULL);
    outbox_stats s = stats(box, 200);
    CHECK_EQ_INT(s.rows[0], 2);
    CHECK_EQ_INT(s.refused_full, 1);
    CHECK_EQ_INT(s.evicted_full, 0);
    char *json = NULL;
    CHECK_EQ_INT(outbox_event_json(box, p0[2].id, &json, &err), VIGIL_ERR_NOT_FOUND);
    CHECK_EQ_INT(outbox_event_json(box, p0[0].id, &json, &err), VIGIL_OK); /* never evicted */
    free(json);

    /* priority 1 at 3 rows: the third fits exactly, the fourth evicts the oldest of the class */
    edge_event p1[4] = {make_event(1, 300, 10), make_event(1, 100, 10), make_event(1, 200, 10), make_event(1, 400, 10)};
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(put(box, &p1[i], 500), VIGIL_OK);
    s = stats(box, 500);
    CHECK_EQ_INT(s.rows[1], 3);
    CHECK_EQ_INT(s.evicted_full, 0);
    CHECK_EQ_INT(put(box, &p1[3], 500), VIGIL_OK);
    s = stats(box, 500);
    CHECK_EQ_INT(s.rows[1], 3);
    CHECK_EQ_INT(s.evicted_full, 1);
    CHECK_EQ_INT(s.rows[0], 2);                                            /* the other class untouched */
    CHECK_EQ_INT(outbox_event_json(box, p1[1].id, &json, &err), VIGIL_OK); /* created at 100: the oldest */
    CHECK(json && strstr(json, "\"state\":\"evicted\"") && strstr(json, "\"last_error\":\"full\""));
    free(json);
    /* what is left of class 1 comes out oldest first, the evicted one never */
    edge_event got;
    bool found;
    int64_t order[3] = {200, 300, 400};
    for (int i = 0; i < 5; i++) {
        claim(box, 600, &got, &found);
        CHECK(found);
        if (i >= 2) CHECK_EQ_INT(got.created_ms, order[i - 2]);
        edge_event_clear(&got);
    }
    /* all of class 1 inflight: a put cannot evict them and is refused, not stored over the cap */
    edge_event extra = make_event(1, 700, 10);
    CHECK_EQ_INT(outbox_put(box, &extra, 700, &err), VIGIL_ERR_LIMIT);
    s = stats(box, 700);
    CHECK_EQ_INT(s.rows[1], 3);
    CHECK_EQ_INT(s.refused_full, 2);
    edge_event_clear(&extra);
    for (int i = 0; i < 3; i++)
        edge_event_clear(&p0[i]);
    for (int i = 0; i < 4; i++)
        edge_event_clear(&p1[i]);
    outbox_close(box);
}

static void test_caps_bytes_exact(void) {
    edge_event probe = make_event(0, 1000, 1000);
    int64_t size = (int64_t)(probe.json_bytes + probe.frame_bytes); /* every event below has this size */
    edge_event_clear(&probe);
    outbox_limits lim = {0};
    lim.max_bytes[0] = 2 * size;
    lim.max_bytes[2] = 2 * size;
    outbox *box = open_box("bytes.db", &lim);
    CHECK(box != NULL);
    if (!box) return;
    vigil_error err = {0};
    edge_event p0[3] = {make_event(0, 1000, 1000), make_event(0, 1001, 1000), make_event(0, 1002, 1000)};
    CHECK_EQ_INT((int64_t)(p0[0].json_bytes + p0[0].frame_bytes), size);
    CHECK_EQ_INT(put(box, &p0[0], 2000), VIGIL_OK);
    CHECK_EQ_INT(put(box, &p0[1], 2000), VIGIL_OK); /* exactly at the byte cap */
    CHECK_EQ_INT(outbox_put(box, &p0[2], 2000, &err), VIGIL_ERR_LIMIT);
    outbox_stats s = stats(box, 2000);
    CHECK_EQ_INT(s.bytes[0], 2 * size);
    CHECK_EQ_INT(s.refused_full, 1);

    edge_event p2[3] = {make_event(2, 1000, 1000), make_event(2, 1001, 1000), make_event(2, 1002, 1000)};
    CHECK_EQ_INT(put(box, &p2[0], 2000), VIGIL_OK);
    CHECK_EQ_INT(put(box, &p2[1], 2000), VIGIL_OK);
    s = stats(box, 2000);
    CHECK_EQ_INT(s.bytes[2], 2 * size);
    CHECK_EQ_INT(s.evicted_full, 0);
    CHECK_EQ_INT(put(box, &p2[2], 2000), VIGIL_OK); /* one byte over: the oldest goes */
    s = stats(box, 2000);
    CHECK_EQ_INT(s.bytes[2], 2 * size);
    CHECK_EQ_INT(s.rows[2], 2);
    CHECK_EQ_INT(s.evicted_full, 1);
    /* an event larger than its class's cap can never fit: refused, nothing evicted for it */
    edge_event huge = make_event(2, 3000, 3000);
    CHECK_EQ_INT(outbox_put(box, &huge, 3000, &err), VIGIL_ERR_LIMIT);
    s = stats(box, 3000);
    CHECK_EQ_INT(s.rows[2], 2);
    CHECK_EQ_INT(s.evicted_full, 1);
    CHECK_EQ_INT(s.refused_full, 2);
    edge_event_clear(&huge);
    for (int i = 0; i < 3; i++) {
        edge_event_clear(&p0[i]);
        edge_event_clear(&p2[i]);
    }
    outbox_close(box);
}

static void test_ttl(void) {
    outbox_limits lim = {0};
    lim.ttl_ms = 1000;
    outbox *box = open_box("ttl.db", &lim);
    CHECK(box != NULL);
    if (!box) return;
    vigil_error err = {0};
    edge_event old = make_event(1, 10, 10), young = make_event(2, 500, 10), parked = make_event(3, 100, 10);
    CHECK_EQ_INT(put(box, &old, 10), VIGIL_OK);
    CHECK_EQ_INT(put(box, &young, 500), VIGIL_OK);
    CHECK_EQ_INT(put(box, &parked, 500), VIGIL_OK);
    edge_event got;
    bool found;
    const edge_event *want[3] = {&old, &young, &parked};
    for (int i = 0; i < 3; i++) {
        claim(box, 600, &got, &found);
        CHECK(found && strcmp(got.id, want[i]->id) == 0);
        edge_event_clear(&got);
    }
    CHECK_EQ_INT(outbox_retry(box, old.id, 600, "http 503", &err), VIGIL_OK);   /* pending */
    CHECK_EQ_INT(outbox_park(box, parked.id, 404, "http 404", &err), VIGIL_OK); /* parked */
    /* young stays inflight */
    /* at exactly created + ttl a row is still alive; one ms later it is expired */
    outbox_stats s = stats(box, 1010);
    CHECK_EQ_INT(s.expired_ttl, 0);
    CHECK_EQ_INT(s.rows[1], 1);
    CHECK_EQ_INT(s.oldest_pending_ms, 10);
    s = stats(box, 1011);
    CHECK_EQ_INT(s.expired_ttl, 1);
    CHECK_EQ_INT(s.rows[1], 0);
    CHECK_EQ_INT(s.oldest_pending_ms, 0);
    char *json = NULL;
    CHECK_EQ_INT(outbox_event_json(box, old.id, &json, &err), VIGIL_OK);
    CHECK(json && strstr(json, "\"state\":\"expired\"") && strstr(json, "\"last_error\":\"ttl\""));
    free(json);
    /* parked rows expire too */
    CHECK_EQ_INT(stats(box, 1100).parked, 1);
    s = stats(box, 1101);
    CHECK_EQ_INT(s.parked, 0);
    CHECK_EQ_INT(s.expired_ttl, 2);
    /* an inflight row is left to its answer; back in pending, it expires */
    s = stats(box, 1600);
    CHECK_EQ_INT(s.rows[2], 1);
    CHECK_EQ_INT(s.expired_ttl, 2);
    CHECK_EQ_INT(outbox_retry(box, young.id, 1600, "shutdown", &err), VIGIL_OK);
    claim(box, 1600, &got, &found);
    CHECK(!found);
    s = stats(box, 1600);
    CHECK_EQ_INT(s.rows[2], 0);
    CHECK_EQ_INT(s.expired_ttl, 3);
    edge_event_clear(&old);
    edge_event_clear(&young);
    edge_event_clear(&parked);
    outbox_close(box);
}

static void test_reopen_resets_inflight(void) {
    outbox *box = open_box("reopen.db", NULL);
    CHECK(box != NULL);
    if (!box) return;
    vigil_error err = {0};
    edge_event a = make_event(0, 10, 50), b = make_event(1, 20, 50);
    CHECK_EQ_INT(put(box, &a, 30), VIGIL_OK);
    CHECK_EQ_INT(put(box, &b, 30), VIGIL_OK);
    edge_event got;
    bool found;
    claim(box, 40, &got, &found);
    CHECK(found && strcmp(got.id, a.id) == 0);
    CHECK_EQ_INT(outbox_ack(box, got.id, "{}", 50, &err), VIGIL_OK);
    edge_event_clear(&got);
    claim(box, 40, &got, &found); /* b inflight when the process "dies" */
    CHECK(found && strcmp(got.id, b.id) == 0);
    edge_event_clear(&got);
    outbox_close(box);

    box = open_box("reopen.db", NULL);
    CHECK(box != NULL);
    if (!box) return;
    outbox_stats s = stats(box, 60);
    CHECK_EQ_INT(s.rows[1], 1);
    CHECK_EQ_INT(s.acked, 1); /* counters survive a restart */
    int attempts = 0;
    CHECK_EQ_INT(outbox_claim_next(box, 60, 3, &got, &found, &attempts, &err), VIGIL_OK);
    CHECK(found && strcmp(got.id, b.id) == 0);
    CHECK_EQ_INT(attempts, 1);
    CHECK_EQ_INT(got.frame_bytes, 50);
    edge_event_clear(&got);
    edge_event_clear(&a);
    edge_event_clear(&b);
    outbox_close(box);
}

static void test_history_json(void) {
    outbox_limits lim = {0};
    lim.history_rows = 3;
    outbox *box = open_box("history.db", &lim);
    CHECK(box != NULL);
    if (!box) return;
    vigil_error err = {0};
    edge_event e[5];
    for (int i = 0; i < 5; i++) {
        e[i] = make_event(i % 2, 1000 + i, 0);
        CHECK_EQ_INT(put(box, &e[i], 1000 + i), VIGIL_OK);
    }
    char *json = NULL;
    CHECK_EQ_INT(outbox_events_since_json(box, 0, 10, &json, &err), VIGIL_OK);
    CHECK(json && strncmp(json, "{\"events\":[", 11) == 0);
    /* the three newest, oldest first; the two oldest dropped from the history (still in the outbox) */
    const char *p2 = json ? strstr(json, e[2].id) : NULL, *p3 = json ? strstr(json, e[3].id) : NULL,
               *p4 = json ? strstr(json, e[4].id) : NULL;
    CHECK(p2 && p3 && p4 && p2 < p3 && p3 < p4);
    CHECK(json && !strstr(json, e[0].id) && !strstr(json, e[1].id));
    free(json);
    CHECK_EQ_INT(outbox_events_since_json(box, 1003, 1, &json, &err), VIGIL_OK);
    CHECK(json && strstr(json, e[3].id) && !strstr(json, e[4].id));
    free(json);
    CHECK_EQ_INT(outbox_events_since_json(box, 5000, 10, &json, &err), VIGIL_OK);
    CHECK_STR(json, "{\"events\":[]}");
    free(json);
    CHECK_EQ_INT(outbox_event_json(box, e[0].id, &json, &err), VIGIL_ERR_NOT_FOUND);
    CHECK_EQ_INT(stats(box, 2000).rows[0] + stats(box, 2000).rows[1], 5);
    /* a verdict that is not JSON is kept as a string */
    edge_event got;
    bool found;
    claim(box, 2000, &got, &found); /* e[0], out of the history but still to send */
    CHECK(found && strcmp(got.id, e[0].id) == 0);
    CHECK_EQ_INT(outbox_ack(box, got.id, "{}", 2001, &err), VIGIL_OK);
    edge_event_clear(&got);
    claim(box, 2000, &got, &found);
    CHECK(found && strcmp(got.id, e[2].id) == 0);
    CHECK_EQ_INT(outbox_ack(box, got.id, "not json", 2001, &err), VIGIL_OK);
    CHECK_EQ_INT(outbox_event_json(box, got.id, &json, &err), VIGIL_OK);
    CHECK(json && strstr(json, "\"verdict\":\"not json\"") && strstr(json, "\"state_ms\":2001"));
    free(json);
    edge_event_clear(&got);
    for (int i = 0; i < 5; i++)
        edge_event_clear(&e[i]);
    outbox_close(box);
}

static bool write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* Finds the quarantined file named in the stats (and its -wal when one was
 * planted) and checks that the fresh outbox works. */
static void check_quarantined(outbox *box, const char *path, bool with_wal) {
    outbox_stats s = stats(box, 1);
    CHECK(s.quarantined);
    CHECK(strncmp(s.quarantine_path, path, strlen(path)) == 0 && strstr(s.quarantine_path, ".corrupt-"));
    CHECK(file_exists(s.quarantine_path));
    char side[700];
    snprintf(side, sizeof side, "%s-wal", s.quarantine_path);
    if (with_wal) CHECK(file_exists(side)); /* else SQLite may have made an empty one */
    CHECK_EQ_INT(s.rows[0] + s.rows[1] + s.rows[2] + s.rows[3], 0);
    /* the fresh outbox works */
    edge_event e = make_event(0, 5, 5);
    CHECK_EQ_INT(put(box, &e, 5), VIGIL_OK);
    edge_event got;
    bool found;
    claim(box, 5, &got, &found);
    CHECK(found && strcmp(got.id, e.id) == 0);
    edge_event_clear(&got);
    edge_event_clear(&e);
}

static void test_quarantine_garbage(void) {
    char path[512], wal[600], shm[600];
    tmp_path(path, sizeof path, "garbage.db");
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(shm, sizeof shm, "%s-shm", path);
    char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 31 + 7);
    CHECK(write_file(path, junk, sizeof junk));
    /* a stale WAL and shm from the corrupt file's last life lie beside it */
    CHECK(write_file(wal, junk, 4000));
    CHECK(write_file(shm, junk, sizeof junk));
    outbox *box = open_box("garbage.db", NULL);
    CHECK(box != NULL);
    if (!box) return;
    check_quarantined(box, path, true);
    outbox_close(box);
    /* a clean reopen is not a quarantine */
    box = open_box("garbage.db", NULL);
    CHECK(box != NULL);
    if (!box) return;
    CHECK(!stats(box, 1).quarantined);
    CHECK_EQ_INT(stats(box, 1).rows[0], 1);
    outbox_close(box);
}

static void test_quarantine_truncated(void) {
    /* a real outbox cut in the middle of a page, at a page boundary, inside the
     * header, and one whose header is intact but a page in the middle is
     * overwritten (only quick_check sees that) */
    for (int cut = 0; cut < 4; cut++) {
        char name[32], path[512];
        snprintf(name, sizeof name, "truncated-%d.db", cut);
        tmp_path(path, sizeof path, name);
        outbox *box = open_box(name, NULL);
        CHECK(box != NULL);
        if (!box) return;
        for (int i = 0; i < 40; i++) {
            edge_event e = make_event(i % 4, 100 + i, 6000);
            CHECK_EQ_INT(put(box, &e, 200), VIGIL_OK);
            edge_event_clear(&e);
        }
        outbox_close(box); /* checkpoints the WAL into the file and removes it */
        struct stat st;
        CHECK(stat(path, &st) == 0);
        CHECK(st.st_size > 100000);
        if (cut < 3) {
            off_t at = cut == 0 ? st.st_size / 2 + 1000 : cut == 1 ? 4096 * 8 : 50;
            CHECK(truncate(path, at) == 0);
        } else {
            int fd = open(path, O_WRONLY);
            char junk[2048];
            for (size_t i = 0; i < sizeof junk; i++)
                junk[i] = (char)(0x5a ^ i);
            CHECK(fd >= 0 && pwrite(fd, junk, sizeof junk, 4096 * 2) == (ssize_t)sizeof junk);
            if (fd >= 0) close(fd);
        }
        box = open_box(name, NULL);
        CHECK(box != NULL);
        if (!box) return;
        check_quarantined(box, path, false);
        outbox_close(box);
    }
}

static void test_sqlite_errors_surfaced(void) {
    vigil_error err = {0};
    /* the database ceiling (like a full disk): a clear I/O error, nothing stored, nothing half-written */
    outbox_limits lim = {0};
    lim.max_db_bytes = 64 * 1024;
    outbox *box = open_box("full.db", &lim);
    CHECK(box != NULL);
    if (!box) return;
    edge_event small = make_event(0, 1, 100), big = make_event(0, 2, 200 * 1024), after = make_event(1, 3, 100);
    CHECK_EQ_INT(put(box, &small, 10), VIGIL_OK);
    CHECK_EQ_INT(outbox_put(box, &big, 10, &err), VIGIL_ERR_IO);
    CHECK(strstr(err.message, "full") != NULL);
    char *json = NULL;
    CHECK_EQ_INT(outbox_event_json(box, big.id, &json, &err), VIGIL_ERR_NOT_FOUND);
    outbox_stats s = stats(box, 10);
    CHECK_EQ_INT(s.rows[0], 1);
    CHECK_EQ_INT(s.bytes[0], (int64_t)(small.json_bytes + small.frame_bytes));
    CHECK_EQ_INT(put(box, &after, 10), VIGIL_OK); /* the outbox goes on after the failure */
    edge_event got;
    bool found;
    claim(box, 10, &got, &found);
    CHECK(found && strcmp(got.id, small.id) == 0);
    edge_event_clear(&got);
    edge_event_clear(&small);
    edge_event_clear(&big);
    edge_event_clear(&after);
    outbox_close(box);

    /* a path that cannot be a database (a directory) is an error, and is not "quarantined" */
    char dir[512];
    tmp_path(dir, sizeof dir, "a-directory");
    CHECK(mkdir(dir, 0700) == 0);
    outbox *bad = NULL;
    vigil_status st = outbox_open(dir, NULL, &bad, &err);
    CHECK(st != VIGIL_OK);
    CHECK(bad == NULL);
    CHECK(strstr(err.message, "a-directory") != NULL);
    struct stat sb;
    CHECK(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode));
    /* bad input is a status */
    box = open_box("args.db", NULL);
    CHECK(box != NULL);
    if (!box) return;
    edge_event e = make_event(4, 1, 0);
    CHECK_EQ_INT(outbox_put(box, &e, 1, &err), VIGIL_ERR_INVALID_ARGUMENT);
    e.priority = 1;
    e.id[3] = 'X';
    CHECK_EQ_INT(outbox_put(box, &e, 1, &err), VIGIL_ERR_INVALID_ARGUMENT);
    edge_event_clear(&e);
    outbox_close(box);
}

/* A process killed with SIGKILL loses nothing that outbox_put returned OK
 * for (any class: the commit is in the WAL), and its inflight rows come
 * back pending.  The child reports each committed id through a pipe. */
static void test_sigkill_keeps_commits(void) {
    char path[512];
    tmp_path(path, sizeof path, "killed.db");
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid < 0) return;
    if (pid == 0) {
        close(fds[0]);
        outbox *box = NULL;
        vigil_error err;
        if (outbox_open(path, NULL, &box, &err) != VIGIL_OK) _exit(2);
        for (int i = 0;; i++) {
            edge_event e = make_event(i % 4, 1000 + i, 2000);
            if (outbox_put(box, &e, 1000 + i, &err) != VIGIL_OK) _exit(3);
            if (i % 3 == 0) { /* some rows are inflight when the kill comes */
                edge_event got;
                bool found;
                if (outbox_claim(box, 5000, &got, &found, &err) != VIGIL_OK) _exit(4);
                edge_event_clear(&got);
            }
            char line[EDGE_EVENT_ID_LEN + 2];
            snprintf(line, sizeof line, "%s\n", e.id);
            edge_event_clear(&e);
            if (write(fds[1], line, strlen(line)) != (ssize_t)strlen(line)) _exit(5);
        }
    }
    close(fds[1]);
    enum { WANT = 60 };
    static char ids[WANT][EDGE_EVENT_ID_LEN + 2];
    FILE *in = fdopen(fds[0], "r");
    int n = 0;
    while (in && n < WANT && fgets(ids[n], sizeof ids[n], in)) {
        ids[n][strcspn(ids[n], "\n")] = '\0';
        n++;
    }
    kill(pid, SIGKILL); /* somewhere in the middle of a later put or claim */
    int status = 0;
    waitpid(pid, &status, 0);
    if (in) fclose(in);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK_EQ_INT(n, WANT);
    outbox *box = open_box("killed.db", NULL);
    CHECK(box != NULL);
    if (!box) return;
    CHECK(!stats(box, 1).quarantined);
    vigil_error err = {0};
    for (int i = 0; i < n; i++) {
        char *json = NULL;
        CHECK_EQ_INT(outbox_event_json(box, ids[i], &json, &err), VIGIL_OK);
        CHECK(json && strstr(json, "\"state\":\"pending\""));
        free(json);
    }
    /* every row, inflight ones included, can be claimed again */
    int64_t rows = 0;
    outbox_stats s = stats(box, 1);
    for (int c = 0; c < EDGE_PRIORITY_CLASSES; c++)
        rows += s.rows[c];
    CHECK(rows >= n);
    int claimed = 0;
    for (;;) {
        edge_event got;
        bool found = false;
        claim(box, 5000, &got, &found);
        if (!found) break;
        claimed++;
        edge_event_clear(&got);
    }
    CHECK_EQ_INT(claimed, rows);
    outbox_close(box);
}

int main(void) {
    snprintf(tmp_root, sizeof tmp_root, "/tmp/vigil-outbox-XXXXXX");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_claim_order);
    RUN(test_ack_retry_park);
    RUN(test_caps_rows_exact);
    RUN(test_caps_bytes_exact);
    RUN(test_ttl);
    RUN(test_reopen_resets_inflight);
    RUN(test_history_json);
    RUN(test_quarantine_garbage);
    RUN(test_quarantine_truncated);
    RUN(test_sqlite_errors_surfaced);
    RUN(test_sigkill_keeps_commits);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_root);
    return testing_report();
}
