/*
 * test_edge_receiver_uplink.c - the wire contract of event.h, end to end in
 * one process: the edge's real outbox and uplink (libcurl, a fresh
 * multipart envelope per send) against the cloud's real server, receiver
 * and store, with yolov8n from ../shared as the cloud model.
 *
 * First the events are delivered (201, verdicts recorded at the edge, one
 * frame file and one stored answer each); then the same events, committed
 * to a second outbox as an edge would after losing its acknowledgements,
 * are sent again: every one is a replay of the first answer, byte for byte,
 * not a 422, although curl chose new multipart boundaries.
 */
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "edge/event.h"
#include "edge/outbox.h"
#include "edge/receiver.h"
#include "edge/uplink.h"
#include "serve/server.h"
#include "testing.h"

#define EVENTS 3

typedef struct verdicts {
    pthread_mutex_t lock;
    int n;
    char id[2 * EVENTS][EDGE_EVENT_ID_LEN + 1];
    char *answer[2 * EVENTS];
} verdicts;

static void on_verdict(void *ctx, const char *id, const char *answer_json) {
    verdicts *v = ctx;
    pthread_mutex_lock(&v->lock);
    if (v->n < 2 * EVENTS) {
        snprintf(v->id[v->n], sizeof v->id[0], "%s", id);
        v->answer[v->n] = strdup(answer_json);
        v->n++;
    }
    pthread_mutex_unlock(&v->lock);
}

static int verdict_count(verdicts *v) {
    pthread_mutex_lock(&v->lock);
    int n = v->n;
    pthread_mutex_unlock(&v->lock);
    return n;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Delivers every event in box to url; 1 when the outbox emptied in time. */
static int deliver(const char *url, outbox *box, verdicts *v, int expect, uplink_stats *stats) {
    uplink_config cfg = {.cloud_url = url,
                         .connect_timeout_s = 5,
                         .timeout_s = 60,
                         .concurrency = 2,
                         .backoff_base_s = 0.05,
                         .backoff_max_s = 0.5,
                         .on_verdict = on_verdict,
                         .ctx = v};
    uplink *up = NULL;
    vigil_error err = {0};
    CHECK_EQ_INT(uplink_create(&cfg, box, NULL, &up, &err), VIGIL_OK);
    if (!up) return 0;
    uplink_set_online(up, true);
    int64_t deadline = now_ms() + 120000;
    while (verdict_count(v) < expect && now_ms() < deadline)
        usleep(20000);
    uplink_stats_get(up, stats);
    uplink_destroy(up);
    return verdict_count(v) == expect;
}

static edge_event make_event(const unsigned char *jpeg, size_t size, int i) {
    edge_event e;
    memset(&e, 0, sizeof e);
    vigil_error err = {0};
    CHECK_EQ_INT(edge_uuid7(now_ms(), e.id, &err), VIGIL_OK);
    e.priority = i % EDGE_PRIORITY_CLASSES;
    e.created_ms = 1765000000000 + i;
    char doc[512];
    int n = snprintf(doc, sizeof doc,
                     "{\"id\":\"%s\",\"source\":\"cam%d\",\"model\":\"yolov8n\",\"version\":1,\"priority\":%d,"
                     "\"reason\":\"band\",\"created_ms\":%lld,\"width\":810,\"height\":1080,\"detections\":[]}",
                     e.id, i, e.priority, (long long)e.created_ms);
    e.json = strdup(doc);
    e.json_bytes = (size_t)n;
    e.frame = malloc(size);
    if (e.frame) memcpy(e.frame, jpeg, size);
    e.frame_bytes = size;
    return e;
}

static int stored_rows(const char *db_path, const char *key) {
    sqlite3 *db = NULL;
    int n = -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *stmt = NULL;
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM vigil_idem WHERE key = ?1 AND state = 1", -1, &stmt, NULL) ==
                SQLITE_OK &&
            sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW)
            n = sqlite3_column_int(stmt, 0);
        sqlite3_finalize(stmt);
    }
    sqlite3_close(db);
    return n;
}

static void test_round_trip_and_replay(void) {
    char model_path[1024];
    if (!testing_shared_path(model_path, sizeof model_path, "models/yolov8n.onnx"))
        SKIP("../shared/models/yolov8n.onnx is absent");
    size_t jpeg_size = 0;
    unsigned char *jpeg = testing_read_shared("images/bus.jpg", &jpeg_size);
    if (!jpeg) SKIP("../shared/images/bus.jpg is absent");
    char dir[] = "/tmp/vigil-rcv-uplink-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char models[256], version_dir[512], link[600], store[512], frames[512], box_path[512], db_path[400];
    snprintf(models, sizeof models, "%s/models", dir);
    snprintf(version_dir, sizeof version_dir, "%s/yolov8n", models);
    CHECK(mkdir(models, 0750) == 0 && mkdir(version_dir, 0750) == 0);
    snprintf(version_dir, sizeof version_dir, "%s/yolov8n/1", models);
    CHECK(mkdir(version_dir, 0750) == 0);
    snprintf(link, sizeof link, "%s/model.onnx", version_dir);
    char absolute[PATH_MAX];
    CHECK(realpath(model_path, absolute) != NULL);
    CHECK(symlink(absolute, link) == 0); /* read in place, never copied */
    snprintf(db_path, sizeof db_path, "%s/receiver.db", dir);
    snprintf(store, sizeof store, "sqlite:%s", db_path);
    snprintf(frames, sizeof frames, "%s/frames", dir);

    vigil_config cfg;
    config_defaults(&cfg);
    snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
    cfg.http_port = 0;
    snprintf(cfg.models_dir, sizeof cfg.models_dir, "%s", models);
    snprintf(cfg.log_level, sizeof cfg.log_level, "error");
    vigil_server *server = NULL;
    receiver *rcv = NULL;
    vigil_error err = {0};
    CHECK_EQ_INT(server_create(&cfg, &server, &err), VIGIL_OK);
    receiver_config rc = {.store_url = store, .frames_dir = frames, .retention_s = 86400, .claim_timeout_s = 60};
    if (server) CHECK_EQ_INT(receiver_create(server, &rc, &rcv, &err), VIGIL_OK);
    if (rcv) CHECK_EQ_INT(server_start(server, &err), VIGIL_OK);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", server ? server_http_port(server) : 0);

    /* Two outboxes holding the same events: the second is the edge that
     * sent them but never recorded the acknowledgements. */
    outbox *first = NULL, *again = NULL;
    snprintf(box_path, sizeof box_path, "%s/outbox1.db", dir);
    CHECK_EQ_INT(outbox_open(box_path, NULL, &first, &err), VIGIL_OK);
    snprintf(box_path, sizeof box_path, "%s/outbox2.db", dir);
    CHECK_EQ_INT(outbox_open(box_path, NULL, &again, &err), VIGIL_OK);
    char ids[EVENTS][EDGE_EVENT_ID_LEN + 1];
    for (int i = 0; i < EVENTS && first && again; i++) {
        edge_event e = make_event(jpeg, jpeg_size, i);
        CHECK_EQ_INT(outbox_put(first, &e, now_ms(), &err), VIGIL_OK);
        CHECK_EQ_INT(outbox_put(again, &e, now_ms(), &err), VIGIL_OK);
        snprintf(ids[i], sizeof ids[i], "%s", e.id);
        edge_event_clear(&e);
    }
    verdicts v = {.n = 0};
    pthread_mutex_init(&v.lock, NULL);
    uplink_stats stats;
    if (rcv && first && again) {
        CHECK(deliver(url, first, &v, EVENTS, &stats));
        CHECK_EQ_INT(stats.sent_ok, EVENTS);
        CHECK_EQ_INT(stats.replayed, 0);
        CHECK(deliver(url, again, &v, 2 * EVENTS, &stats));
        CHECK_EQ_INT(stats.replayed, EVENTS); /* not 422: the envelope differs, the parts do not */
        CHECK_EQ_INT(stats.parked, 0);
        for (int i = 0; i < EVENTS; i++) {
            CHECK_EQ_INT(stored_rows(db_path, ids[i]), 1);
            char frame_path[700];
            snprintf(frame_path, sizeof frame_path, "%s/%s.jpg", frames, ids[i]);
            struct stat st;
            CHECK(stat(frame_path, &st) == 0 && (size_t)st.st_size == jpeg_size);
            const char *answer = NULL, *replayed = NULL;
            for (int k = 0; k < v.n; k++)
                if (strcmp(v.id[k], ids[i]) == 0) {
                    if (!answer)
                        answer = v.answer[k];
                    else
                        replayed = v.answer[k];
                }
            CHECK(answer && strstr(answer, "\"verdict\":{\"model\":\"yolov8n\"") && strstr(answer, "\"bus\""));
            CHECK(answer && replayed && strcmp(answer, replayed) == 0); /* the first answer, byte for byte */
        }
    }
    for (int k = 0; k < v.n; k++)
        free(v.answer[k]);
    pthread_mutex_destroy(&v.lock);
    outbox_close(first);
    outbox_close(again);
    server_stop(server);
    receiver_destroy(rcv);
    server_destroy(server);
    free(jpeg);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    RUN(test_round_trip_and_replay);
    return testing_report();
}
