/*
 * test_edge_uplink.c - the uplink (src/edge/uplink.c) against a real HTTP
 * server on 127.0.0.1: libmicrohttpd in this process, one thread per
 * connection, answering from a per-test script (201, a replayed 200, 503
 * with Retry-After, 429, 408, 400, a slow answer past the timeout), plus a
 * closed port (connection refused) and HTTPS with a test CA (and a client
 * certificate) made by the openssl command.
 *
 * What is asserted: the wire format (multipart parts, headers), the result
 * of each answer (ack, retry, park), strict priority order in the server's
 * log, lower bounds on retry delays (Retry-After honoured; never an upper
 * bound: no timing assertions), and that nothing is lost: every committed id
 * ends acked or parked, across an uplink destroyed mid-drain.  Waits poll
 * with a generous deadline.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "edge/clock.h"
#include "edge/event.h"
#include "edge/outbox.h"
#include "edge/uplink.h"
#include "testing.h"

#define LOG_MAX 1024
#define WAIT_MS 20000

static char tmp_root[256];

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the scripted server ------------------------------------------------------------- */

typedef struct answer {
    int status;
    const char *header, *value; /* one extra header, NULL: none */
    int delay_ms;               /* before answering */
} answer;

typedef struct request_rec {
    char key[64];
    int priority;
    bool traceparent_ok, multipart_ok, event_part_ok, frame_ok, bearer_ok, client_cert;
    int status;
    int64_t arrive_ms, done_ms;
    int arrive_seq, done_seq;
} request_rec;

typedef struct server server;
typedef answer (*script_fn)(server *srv, const char *key, int nth, const request_rec *rec);

struct server {
    struct MHD_Daemon *daemon;
    int port;
    script_fn script;
    pthread_mutex_t lock;
    request_rec log[LOG_MAX];
    int n, seq;
    int ready_status; /* for GET /v2/health/ready */
    int connections;  /* TCP connections accepted */
    bool want_client_cert;
    char *bearer; /* expected token, NULL: none */
};

typedef struct upload {
    char *data;
    size_t len, cap;
} upload;

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode code) {
    (void)cls;
    (void)c;
    (void)code;
    upload *u = *con_cls;
    if (u) {
        free(u->data);
        free(u);
    }
    *con_cls = NULL;
}

static void connection_seen(void *cls, struct MHD_Connection *c, void **socket_context,
                            enum MHD_ConnectionNotificationCode code) {
    (void)c;
    (void)socket_context;
    server *srv = cls;
    if (code != MHD_CONNECTION_NOTIFY_STARTED) return;
    pthread_mutex_lock(&srv->lock);
    srv->connections++;
    pthread_mutex_unlock(&srv->lock);
}

static const void *find(const upload *u, const char *needle) {
    return u->data ? memmem(u->data, u->len, needle, strlen(needle)) : NULL;
}

static bool client_cert_ok(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!info || !info->tls_session) return false;
    unsigned int status = 1, n = 0;
    gnutls_session_t session = (gnutls_session_t)info->tls_session;
    return gnutls_certificate_get_peers(session, &n) && n > 0 &&
           gnutls_certificate_verify_peers2(session, &status) == 0 && status == 0;
}

static enum MHD_Result respond(struct MHD_Connection *c, int status, const char *body, const char *header,
                               const char *value) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (header) MHD_add_response_header(r, header, value);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *data, size_t *size, void **con_cls) {
    (void)version;
    server *srv = cls;
    if (!*con_cls) {
        upload *u = calloc(1, sizeof *u);
        if (!u) return MHD_NO;
        *con_cls = u;
        return MHD_YES;
    }
    upload *u = *con_cls;
    if (*size) {
        if (u->len + *size + 1 > u->cap) {
            size_t cap = (u->len + *size + 1) * 2;
            char *grown = realloc(u->data, cap);
            if (!grown) return MHD_NO;
            u->data = grown;
            u->cap = cap;
        }
        memcpy(u->data + u->len, data, *size);
        u->len += *size;
        *size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") == 0 && strcmp(url, "/v2/health/ready") == 0) {
        pthread_mutex_lock(&srv->lock);
        int status = srv->ready_status;
        pthread_mutex_unlock(&srv->lock);
        return respond(c, status, "{}", NULL, NULL);
    }
    if (strcmp(method, "POST") != 0 || strcmp(url, "/api/v1/events") != 0) return respond(c, 404, "{}", NULL, NULL);

    request_rec rec;
    memset(&rec, 0, sizeof rec);
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    snprintf(rec.key, sizeof rec.key, "%s", key ? key : "");
    const char *trace = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "traceparent");
    rec.traceparent_ok = trace && strncmp(trace, "00-", 3) == 0;
    const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    rec.multipart_ok = type && strncmp(type, "multipart/form-data; boundary=", 30) == 0;
    const char *priority = find(u, "\"priority\":");
    rec.priority = priority ? atoi(priority + 11) : -1;
    rec.event_part_ok = find(u, "name=\"event\"") && find(u, "Content-Type: application/json");
    char frame_mark[80];
    snprintf(frame_mark, sizeof frame_mark, "FRAME-%s", rec.key);
    rec.frame_ok = find(u, "name=\"frame\"") && find(u, "Content-Type: image/jpeg") && find(u, frame_mark);
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    char want_auth[160] = "";
    if (srv->bearer) snprintf(want_auth, sizeof want_auth, "Bearer %s", srv->bearer);
    rec.bearer_ok = srv->bearer ? (auth && strcmp(auth, want_auth) == 0) : auth == NULL;
    rec.client_cert = client_cert_ok(c);

    pthread_mutex_lock(&srv->lock);
    int nth = 0;
    for (int i = 0; i < srv->n; i++)
        if (strcmp(srv->log[i].key, rec.key) == 0) nth++;
    int slot = srv->n < LOG_MAX ? srv->n++ : LOG_MAX - 1;
    rec.arrive_ms = mono_ms();
    rec.arrive_seq = ++srv->seq;
    srv->log[slot] = rec;
    pthread_mutex_unlock(&srv->lock);

    answer a = {201, NULL, NULL, 0};
    if (srv->want_client_cert && !rec.client_cert)
        a.status = 401;
    else if (srv->script)
        a = srv->script(srv, rec.key, nth, &rec);
    if (a.delay_ms) sleep_ms(a.delay_ms);
    char body[256];
    if (a.status >= 200 && a.status < 300)
        snprintf(body, sizeof body,
                 "{\"id\":\"%s\",\"verdict\":{\"model\":\"big\",\"version\":1,\"detections\":[]},\"received_ms\":1}",
                 rec.key);
    else
        snprintf(body, sizeof body, "{\"error\":\"scripted %d\"}", a.status);
    pthread_mutex_lock(&srv->lock);
    srv->log[slot].status = a.status;
    srv->log[slot].done_ms = mono_ms();
    srv->log[slot].done_seq = ++srv->seq;
    pthread_mutex_unlock(&srv->lock);
    return respond(c, a.status, body, a.header, a.value);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *text = calloc(1, 65536);
    size_t n = text ? fread(text, 1, 65535, f) : 0;
    fclose(f);
    if (text && n == 0) {
        free(text);
        text = NULL;
    }
    return text;
}

/* Starts the server on an ephemeral loopback port; TLS when cert/key are given. */
static bool server_start(server *srv, script_fn script, const char *cert_file, const char *key_file,
                         const char *trust_file) {
    memset(srv, 0, sizeof *srv);
    pthread_mutex_init(&srv->lock, NULL);
    srv->script = script;
    srv->ready_status = 200;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    char *cert = NULL, *key = NULL, *trust = NULL;
    struct MHD_OptionItem opts[10];
    int k = 0;
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, NULL};
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)connection_seen, srv};
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &addr};
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, 10, NULL};
    if (cert_file) {
        cert = read_text(cert_file);
        key = read_text(key_file);
        if (!cert || !key) return false;
        flags |= MHD_USE_TLS;
        opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, cert};
        opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, key};
        if (trust_file) {
            trust = read_text(trust_file);
            if (!trust) return false;
            opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, trust};
            srv->want_client_cert = true;
        }
    }
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, handle, srv, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    free(cert); /* MHD copied what it needs into its GnuTLS credentials */
    free(key);
    free(trust);
    if (!srv->daemon) return false;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : 0;
    return srv->port > 0;
}

static void server_stop(server *srv) {
    if (srv->daemon) MHD_stop_daemon(srv->daemon);
    srv->daemon = NULL;
    pthread_mutex_destroy(&srv->lock);
}

static int server_count(server *srv, const char *key) {
    pthread_mutex_lock(&srv->lock);
    int n = 0;
    for (int i = 0; i < srv->n; i++)
        if (!key || strcmp(srv->log[i].key, key) == 0) n++;
    pthread_mutex_unlock(&srv->lock);
    return n;
}

/* The log entries of one key, in arrival order (at most max). */
static int server_find(server *srv, const char *key, request_rec *out, int max) {
    pthread_mutex_lock(&srv->lock);
    int n = 0;
    for (int i = 0; i < srv->n && n < max; i++)
        if (strcmp(srv->log[i].key, key) == 0) out[n++] = srv->log[i];
    pthread_mutex_unlock(&srv->lock);
    return n;
}

/* A port with nothing listening (bound, then closed). */
static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        port = ntohs(addr.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

/* ---- the edge side --------------------------------------------------------------------- */

typedef struct observed {
    pthread_mutex_t lock;
    int verdicts, attempts;
    char last_result[32];
} observed;

static void on_verdict(void *ctx, const char *id, const char *answer_json) {
    observed *o = ctx;
    pthread_mutex_lock(&o->lock);
    if (id && answer_json && strstr(answer_json, id)) o->verdicts++;
    pthread_mutex_unlock(&o->lock);
}

static void on_attempt(void *ctx, const char *id, int priority, int http_status, const char *result) {
    (void)id;
    (void)priority;
    (void)http_status;
    observed *o = ctx;
    pthread_mutex_lock(&o->lock);
    o->attempts++;
    snprintf(o->last_result, sizeof o->last_result, "%s", result);
    pthread_mutex_unlock(&o->lock);
}

static int observed_get(observed *o, int which) {
    pthread_mutex_lock(&o->lock);
    int v = which == 0 ? o->verdicts : o->attempts;
    pthread_mutex_unlock(&o->lock);
    return v;
}

static edge_event make_event(int priority, int64_t created_ms) {
    edge_event e;
    memset(&e, 0, sizeof e);
    vigil_error err;
    if (edge_uuid7(created_ms, e.id, &err) != VIGIL_OK) abort();
    e.priority = priority;
    e.created_ms = created_ms;
    snprintf(e.traceparent, sizeof e.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    char doc[256];
    int n = snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"priority\":%d,\"created_ms\":%lld}", e.id, priority,
                     (long long)created_ms);
    e.json = strdup(doc);
    e.json_bytes = (size_t)n;
    char frame[128];
    n = snprintf(frame, sizeof frame, "\xff\xd8 FRAME-%s \xff\xd9", e.id);
    e.frame = malloc((size_t)n);
    if (!e.json || !e.frame) abort();
    memcpy(e.frame, frame, (size_t)n);
    e.frame_bytes = (size_t)n;
    return e;
}

static outbox *open_box(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp_root, name);
    outbox *box = NULL;
    vigil_error err = {0};
    if (outbox_open(path, NULL, &box, &err) != VIGIL_OK) fprintf(stderr, "outbox_open: %s\n", err.message);
    return box;
}

/* Puts n events; ids[i] gets each id.  Priorities from prio(i). */
static void put_events(outbox *box, int n, int (*prio)(int), char ids[][EDGE_EVENT_ID_LEN + 1], int *prios) {
    int64_t now = edge_clock_now_ms(NULL);
    for (int i = 0; i < n; i++) {
        edge_event e = make_event(prio(i), now + i);
        vigil_error err = {0};
        CHECK_EQ_INT(outbox_put(box, &e, now + i, &err), VIGIL_OK);
        snprintf(ids[i], EDGE_EVENT_ID_LEN + 1, "%s", e.id);
        if (prios) prios[i] = e.priority;
        edge_event_clear(&e);
    }
}

static int64_t outbox_depth(outbox *box) {
    outbox_stats s;
    vigil_error err = {0};
    if (outbox_stats_get(box, edge_clock_now_ms(NULL), &s, &err) != VIGIL_OK) return -1;
    return s.rows[0] + s.rows[1] + s.rows[2] + s.rows[3];
}

static bool wait_empty_within(outbox *box, int64_t ms) {
    int64_t deadline = mono_ms() + ms;
    while (mono_ms() < deadline) {
        if (outbox_depth(box) == 0) return true;
        sleep_ms(20);
    }
    return false;
}

static bool wait_empty(outbox *box) {
    return wait_empty_within(box, WAIT_MS);
}

/* The uplink updates its stats and calls on_attempt just after the outbox
 * changed, so a test that read the outbox waits for the attempt too. */
static bool wait_attempts(observed *o, int n) {
    int64_t deadline = mono_ms() + WAIT_MS;
    while (mono_ms() < deadline) {
        if (observed_get(o, 1) >= n) return true;
        sleep_ms(5);
    }
    return false;
}

static uplink_config base_config(const char *url, observed *o) {
    uplink_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.cloud_url = url;
    cfg.connect_timeout_s = 2;
    cfg.timeout_s = 5;
    cfg.concurrency = 1;
    cfg.backoff_base_s = 0.05;
    cfg.backoff_max_s = 0.3;
    cfg.on_verdict = on_verdict;
    cfg.on_attempt = on_attempt;
    cfg.ctx = o;
    return cfg;
}

static const char *event_state(outbox *box, const char *id, char *buf, size_t size) {
    char *json = NULL;
    vigil_error err = {0};
    buf[0] = '\0';
    if (outbox_event_json(box, id, &json, &err) == VIGIL_OK) {
        const char *s = strstr(json, "\"state\":\"");
        if (s) snprintf(buf, size, "%.*s", (int)strcspn(s + 9, "\""), s + 9);
        free(json);
    }
    return buf;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_backoff_bounds(void) {
    /* full jitter: uniform in [0, min(max, base * 2^attempts)] */
    uint64_t randoms[] = {0, 1, 0x8000000000000000ull, UINT64_MAX - 1, UINT64_MAX};
    for (int attempts = 0; attempts < 70; attempts++) {
        double cap = 0.5 * 1000.0 * pow(2.0, attempts);
        if (cap > 30000.0) cap = 30000.0;
        for (size_t r = 0; r < sizeof randoms / sizeof randoms[0]; r++) {
            int64_t d = uplink_backoff_ms(attempts, 0.5, 30, randoms[r]);
            CHECK(d >= 0 && d <= (int64_t)cap);
        }
        CHECK_EQ_INT(uplink_backoff_ms(attempts, 0.5, 30, 0), 0);
        CHECK_EQ_INT(uplink_backoff_ms(attempts, 0.5, 30, UINT64_MAX), (int64_t)cap);
    }
    CHECK_EQ_INT(uplink_backoff_ms(0, 1, 300, UINT64_MAX), 1000);
    CHECK_EQ_INT(uplink_backoff_ms(3, 1, 300, UINT64_MAX), 8000);
    CHECK_EQ_INT(uplink_backoff_ms(9, 1, 300, UINT64_MAX), 300000); /* 512 s capped */
    CHECK_EQ_INT(uplink_backoff_ms(-5, 0, 0, UINT64_MAX), 1000);    /* defaults 1 s and 300 s */

    /* Retry-After: delta seconds or an HTTP-date */
    CHECK_EQ_INT(uplink_retry_after_ms("5", 1000), 5000);
    CHECK_EQ_INT(uplink_retry_after_ms(" 0\r\n", 1000), 0);
    CHECK_EQ_INT(uplink_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470), 10000);
    CHECK_EQ_INT(uplink_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT\r\n", 1445412480), 0);
    CHECK_EQ_INT(uplink_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445419999), 0); /* past */
    CHECK_EQ_INT(uplink_retry_after_ms("soon", 1000), -1);
    CHECK_EQ_INT(uplink_retry_after_ms("5s", 1000), -1);
    CHECK_EQ_INT(uplink_retry_after_ms("", 1000), -1);
    CHECK_EQ_INT(uplink_retry_after_ms(NULL, 1000), -1);
}

/* The scripted answers of test_results, by each key's index in the run. */
static char results_ids[8][EDGE_EVENT_ID_LEN + 1];

static answer results_script(server *srv, const char *key, int nth, const request_rec *rec) {
    (void)srv;
    (void)rec;
    int which = -1;
    for (int i = 0; i < 8; i++)
        if (strcmp(key, results_ids[i]) == 0) which = i;
    switch (which) {
    case 0: return (answer){201, NULL, NULL, 0};
    case 1: return (answer){200, "Idempotent-Replayed", "true", 0};
    case 2: return nth == 0 ? (answer){503, "Retry-After", "1", 0} : (answer){201, NULL, NULL, 0};
    case 3: return nth == 0 ? (answer){429, NULL, NULL, 0} : (answer){201, NULL, NULL, 0};
    case 4: return (answer){400, NULL, NULL, 0};
    case 5: return nth == 0 ? (answer){408, NULL, NULL, 0} : (answer){201, NULL, NULL, 0};
    case 6: return nth < 2 ? (answer){500, NULL, NULL, 0} : (answer){201, NULL, NULL, 0};
    /* 409: the receiver is still processing the first copy (an edge restarted mid-send): ask again */
    case 7: return nth == 0 ? (answer){409, "Retry-After", "1", 0} : (answer){200, "Idempotent-Replayed", "true", 0};
    default: return (answer){500, NULL, NULL, 0};
    }
}

static int prio_one(int i) {
    (void)i;
    return 1;
}

static void test_results(void) {
    server srv;
    CHECK(server_start(&srv, results_script, NULL, NULL, NULL));
    srv.bearer = "tok-123";
    outbox *box = open_box("results.db");
    CHECK(box != NULL);
    if (!box || !srv.port) return;
    observed o = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", srv.port); /* a trailing slash is fine */
    uplink_config cfg = base_config(url, &o);
    cfg.bearer_token = "tok-123";
    uplink *up = NULL;
    vigil_error err = {0};
    CHECK_EQ_INT(uplink_create(&cfg, box, NULL, &up, &err), VIGIL_OK);
    put_events(box, 8, prio_one, results_ids, NULL);
    uplink_set_online(up, true);
    CHECK(wait_empty(box));
    uplink_destroy(up);

    int want_requests[8] = {1, 1, 2, 2, 1, 2, 3, 2};
    for (int i = 0; i < 8; i++)
        CHECK_EQ_INT(server_count(&srv, results_ids[i]), want_requests[i]);
    char state[32];
    CHECK_STR(event_state(box, results_ids[0], state, sizeof state), "acked");
    CHECK_STR(event_state(box, results_ids[1], state, sizeof state), "acked");
    CHECK_STR(event_state(box, results_ids[4], state, sizeof state), "parked");
    for (int i = 2; i < 8; i++)
        if (i != 4) CHECK_STR(event_state(box, results_ids[i], state, sizeof state), "acked");
    char *json = NULL;
    CHECK_EQ_INT(outbox_event_json(box, results_ids[0], &json, &err), VIGIL_OK);
    CHECK(json && strstr(json, "\"verdict\":{\"model\":\"big\""));
    free(json);
    CHECK_EQ_INT(outbox_event_json(box, results_ids[4], &json, &err), VIGIL_OK);
    CHECK(json && strstr(json, "\"last_status\":400") && strstr(json, "scripted 400"));
    free(json);

    /* Retry-After: 1 held the retry, and every other send, for at least a second */
    request_rec recs[4];
    CHECK_EQ_INT(server_find(&srv, results_ids[2], recs, 4), 2);
    CHECK(recs[1].arrive_ms - recs[0].done_ms >= 990);
    request_rec busy[4]; /* the 409's Retry-After: 1 holds that event */
    CHECK_EQ_INT(server_find(&srv, results_ids[7], busy, 4), 2);
    CHECK(busy[1].arrive_ms - busy[0].done_ms >= 990);
    pthread_mutex_lock(&srv.lock);
    for (int i = 0; i < srv.n; i++)
        if (srv.log[i].arrive_seq > recs[0].done_seq) CHECK(srv.log[i].arrive_ms - recs[0].done_ms >= 990);
    /* the wire format on every request */
    for (int i = 0; i < srv.n; i++) {
        CHECK(srv.log[i].multipart_ok);
        CHECK(srv.log[i].event_part_ok);
        CHECK(srv.log[i].frame_ok);
        CHECK(srv.log[i].traceparent_ok);
        CHECK(srv.log[i].bearer_ok);
        CHECK_EQ_INT(srv.log[i].priority, 1);
    }
    pthread_mutex_unlock(&srv.lock);

    outbox_stats os;
    CHECK_EQ_INT(outbox_stats_get(box, edge_clock_now_ms(NULL), &os, &err), VIGIL_OK);
    CHECK_EQ_INT(os.acked, 7);
    CHECK_EQ_INT(os.parked, 1);
    CHECK_EQ_INT(observed_get(&o, 0), 7);  /* verdicts */
    CHECK_EQ_INT(observed_get(&o, 1), 14); /* attempts: every request */
    outbox_close(box);
    server_stop(&srv);
}

static void test_stats_by_result(void) {
    /* the same script, counted through uplink_stats before destroy */
    server srv;
    CHECK(server_start(&srv, results_script, NULL, NULL, NULL));
    outbox *box = open_box("stats.db");
    CHECK(box != NULL);
    if (!box || !srv.port) return;
    observed o = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", srv.port);
    uplink_config cfg = base_config(url, &o);
    cfg.concurrency = 3;
    uplink *up = NULL;
    vigil_error err = {0};
    CHECK_EQ_INT(uplink_create(&cfg, box, NULL, &up, &err), VIGIL_OK);
    put_events(box, 8, prio_one, results_ids, NULL);
    uplink_set_online(up, true);
    CHECK(wait_empty(box));
    CHECK(wait_attempts(&o, 14));
    uplink_stats us;
    uplink_stats_get(up, &us);
    CHECK_EQ_INT(us.sent_ok, 5);
    CHECK_EQ_INT(us.replayed, 2);
    CHECK_EQ_INT(us.retried, 6); /* 503, 429, 408, 500, 500, 409 */
    CHECK_EQ_INT(us.parked, 1);
    CHECK_EQ_INT(us.failed_transport, 0);
    CHECK(us.drain_rate_per_s > 0);
    /* the round trip counts the 2xx answers only (ok and replayed) */
    CHECK_EQ_INT(us.round_trip_count, 7);
    int64_t in_buckets = 0;
    for (int b = 0; b <= UPLINK_ROUND_TRIP_BUCKETS; b++) in_buckets += us.round_trip_buckets[b];
    CHECK_EQ_INT(in_buckets, 7);
    CHECK(us.round_trip_sum_s > 0);
    uplink_destroy(up);
    outbox_close(box);
    server_stop(&srv);
}

static int prio_cycle(int i) {
    return 3 - i % 4;
}

static answer slow_high_script(server *srv, const char *key, int nth, const request_rec *rec) {
    (void)srv;
    (void)key;
    (void)nth;
    return (answer){201, NULL, NULL, rec->priority == 0 ? 150 : 0};
}

/* Every request of a lower class arrived after every request of a higher
 * class had been answered (all were committed before the link came up, so
 * every higher row was eligible the whole time). */
static void check_strict_order(server *srv) {
    pthread_mutex_lock(&srv->lock);
    for (int i = 0; i < srv->n; i++)
        for (int j = 0; j < srv->n; j++)
            if (srv->log[j].priority < srv->log[i].priority) CHECK(srv->log[i].arrive_seq > srv->log[j].done_seq);
    pthread_mutex_unlock(&srv->lock);
}

static void test_priority_order(void) {
    for (int concurrency = 1; concurrency <= 3; concurrency += 2) {
        server srv;
        CHECK(server_start(&srv, slow_high_script, NULL, NULL, NULL));
        char name[32];
        snprintf(name, sizeof name, "order-%d.db", concurrency);
        outbox *box = open_box(name);
        CHECK(box != NULL);
        if (!box || !srv.port) return;
        observed o = {.lock = PTHREAD_MUTEX_INITIALIZER};
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d", srv.port);
        uplink_config cfg = base_config(url, &o);
        cfg.concurrency = concurrency;
        uplink *up = NULL;
        vigil_error err = {0};
        CHECK_EQ_INT(uplink_create(&cfg, box, NULL, &up, &err), VIGIL_OK);
        /* committed while offline, no kick: going online alone starts the drain */
        char ids[16][EDGE_EVENT_ID_LEN + 1];
        int prios[16];
        put_events(box, 16, prio_cycle, ids, prios);
        sleep_ms(100);
        CHECK_EQ_INT(server_count(&srv, NULL), 0); /* offline: nothing sent */
        uplink_set_online(up, true);
        CHECK(wait_empty(box));
        uplink_destroy(up);
        CHECK_EQ_INT(server_count(&srv, NULL), 16);
        check_strict_order(&srv);
        if (concurrency == 1) {
            /* one connection, reused for all 16 */
            CHECK_EQ_INT(srv.connections, 1);
            /* one at a time: exactly priority, then age */
            pthread_mutex_lock(&srv.lock);
            for (int i = 1; i < srv.n; i++) {
                int a = -1, b = -1;
                for (int k = 0; k < 16; k++) {
                    if (strcmp(ids[k], srv.log[i - 1].key) == 0) a = k;
                    if (strcmp(ids[k], srv.log[i].key) == 0) b = k;
                }
                CHECK(a >= 0 && b >= 0);
                if (a >= 0 && b >= 0) CHECK(prios[a] < prios[b] || (prios[a] == prios[b] && a < b));
            }
            pthread_mutex_unlock(&srv.lock);
        }
        outbox_close(box);
        server_stop(&srv);
    }
}

static answer slow_first_script(server *srv, const char *key, int nth, const request_rec *rec) {
    (void)srv;
    (void)key;
    (void)rec;
    return (answer){201, NULL, NULL, nth == 0 ? 1500 : 0};
}

static int prio_zero(int i) {
    (void)i;
    return 0;
}

static void test_refused_and_timeout(void) {
    vigil_error err = {0};
    outbox *box = open_box("refused.db");
    CHECK(box != NULL);
    if (!box) return;
    observed o = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char ids[1][EDGE_EVENT_ID_LEN + 1];
    put_events(box, 1, prio_zero, ids, NULL);

    /* connection refused: retried, never lost */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", closed_port());
    uplink_config cfg = base_config(url, &o);
    uplink *up = NULL;
    CHECK_EQ_INT(uplink_create(&cfg, box, NULL, &up, &err), VIGIL_OK);
    CHECK(!uplink_probe(up));
    uplink_set_online(up, true);
    int64_t deadline = mono_ms() + WAIT_MS;
    uplink_stats us = {0};
    while (mono_ms() < deadline) {
        uplink_stats_get(up, &us);
        if (us.failed_transport >= 3) break;
        sleep_ms(20);
    }
    CHECK(us.failed_transport >= 3);
    uplink_destroy(up);
    CHECK_EQ_INT(outbox_depth(box), 1);
    char *json = NULL;
    CHECK_EQ_INT(outbox_event_json(box, ids[0], &json, &err), VIGIL_OK);
    CHECK(json && strstr(json, "\"state\":\"pending\"") && strstr(json, "onnect")); /* "Couldn't connect ..." */
    free(json);

    /* a server slower than the timeout: the first try times out, the retry is acked */
    server srv;
    CHECK(server_start(&srv, slow_first_script, NULL, NULL, NULL));
    snprintf(url, sizeof url, "http://127.0.0.1:%d", srv.port);
    cfg = base_config(url, &o);
    cfg.timeout_s = 0.5;
    CHECK_EQ_INT(uplink_create(&cfg, box, NULL, &up, &err), VIGIL_OK);
    int before = observed_get(&o, 1);
    uplink_set_online(up, true);
    CHECK(wait_empty(box));
    CHECK(wait_attempts(&o, before + 2));
    uplink_stats_get(up, &us);
    CHECK(us.failed_transport >= 1);
    CHECK_EQ_INT(us.sent_ok, 1);
    uplink_destroy(up);
    CHECK_EQ_INT(server_count(&srv, ids[0]), 2);
    char state[32];
    CHECK_STR(event_state(box, ids[0], state, sizeof state), "acked");
    outbox_close(box);
    server_stop(&srv);
}

static uint32_t key_hash(const char *key) {
    uint32_t h = 2166136261u;
    for (; *key; key++)
        h = (h ^ (uint8_t)*key) * 16777619u;
    return h;
}

static answer mixed_script(server *srv, const char *key, int nth, const request_rec *rec) {
    (void)srv;
    (void)rec;
    uint32_t h = key_hash(key);
    if (h % 7 == 0) return (answer){422, NULL, NULL, 0};
    if (h % 5 == 0 && nth == 0) return (answer){503, NULL, NULL, 0};
    if (h % 3 == 0) return (answer){nth == 0 ? 201 : 200, nth == 0 ? NULL : "Idempotent-Replayed", "true", 60};
    return (answer){201, NULL, NULL, 10};
}

static int prio_mixed(int i) {
    return (i * 7 + 3) % 4;
}

static void test_nothing_lost(void) {
    server srv;
    CHECK(server_start(&srv, mixed_script, NULL, NULL, NULL));
    outbox *box = open_box("lost.db");
    CHECK(box != NULL);
    if (!box || !srv.port) return;
    observed o = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", srv.port);
    uplink_config cfg = base_config(url, &o);
    cfg.concurrency = 2;
    vigil_error err = {0};
    enum { N = 40 };
    char ids[N][EDGE_EVENT_ID_LEN + 1];
    put_events(box, N, prio_mixed, ids, NULL);
    /* three uplinks in turn, each destroyed mid-drain: rows in flight go back to pending */
    for (int round = 0; round < 3; round++) {
        uplink *up = NULL;
        CHECK_EQ_INT(uplink_create(&cfg, box, NULL, &up, &err), VIGIL_OK);
        uplink_set_online(up, true);
        if (round < 2) {
            int target = (round + 1) * 10;
            int64_t deadline = mono_ms() + WAIT_MS;
            while (mono_ms() < deadline && server_count(&srv, NULL) < target)
                sleep_ms(5);
            if (round == 1) { /* offline mid-drain too: transfers aborted, rows pending again */
                uplink_set_online(up, false);
                sleep_ms(50);
                uplink_set_online(up, true);
            }
        } else {
            CHECK(wait_empty(box));
        }
        uplink_destroy(up);
    }
    /* every committed id is acked or parked, and the cloud saw every one */
    int acked = 0, parked = 0;
    for (int i = 0; i < N; i++) {
        char state[32];
        event_state(box, ids[i], state, sizeof state);
        if (strcmp(state, "acked") == 0)
            acked++;
        else if (strcmp(state, "parked") == 0)
            parked++;
        else
            fprintf(stderr, "event %s ended %s\n", ids[i], state);
        CHECK(server_count(&srv, ids[i]) >= 1);
        bool should_park = key_hash(ids[i]) % 7 == 0;
        CHECK_STR(state, should_park ? "parked" : "acked");
    }
    CHECK_EQ_INT(acked + parked, N);
    outbox_stats os;
    CHECK_EQ_INT(outbox_stats_get(box, edge_clock_now_ms(NULL), &os, &err), VIGIL_OK);
    CHECK_EQ_INT(os.acked, acked);
    CHECK_EQ_INT(os.parked, parked);
    fprintf(stderr, "  %d committed, %d acked, %d parked, %d requests\n", N, acked, parked, server_count(&srv, NULL));
    outbox_close(box);
    server_stop(&srv);
}

static answer retry_after_100_script(server *srv, const char *key, int nth, const request_rec *rec) {
    (void)srv;
    (void)key;
    (void)rec;
    return nth == 0 ? (answer){503, "Retry-After", "100", 0} : (answer){201, NULL, NULL, 0};
}

/* Backoff deadlines are on the edge clock: a retry 100 s away falls due as
 * soon as the test clock jumps past it, without 100 s of real waiting. */
static void test_clock_jump(void) {
    char clock_file[400], tmp_file[400];
    snprintf(clock_file, sizeof clock_file, "%s/clock", tmp_root);
    snprintf(tmp_file, sizeof tmp_file, "%s/clock.tmp", tmp_root);
    FILE *f = fopen(clock_file, "w");
    CHECK(f && fputs("0\n", f) >= 0);
    if (f) fclose(f);
    edge_clock *clock = edge_clock_create(clock_file);
    CHECK(clock != NULL);
    server srv;
    CHECK(server_start(&srv, retry_after_100_script, NULL, NULL, NULL));
    outbox *box = open_box("clock.db");
    CHECK(box != NULL);
    if (!box || !clock || !srv.port) return;
    observed o = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", srv.port);
    uplink_config cfg = base_config(url, &o);
    uplink *up = NULL;
    vigil_error err = {0};
    CHECK_EQ_INT(uplink_create(&cfg, box, clock, &up, &err), VIGIL_OK);
    char ids[1][EDGE_EVENT_ID_LEN + 1];
    put_events(box, 1, prio_one, ids, NULL);
    uplink_set_online(up, true);
    int64_t deadline = mono_ms() + WAIT_MS;
    while (mono_ms() < deadline && server_count(&srv, NULL) < 1)
        sleep_ms(10);
    CHECK_EQ_INT(server_count(&srv, NULL), 1);
    sleep_ms(300);
    CHECK_EQ_INT(server_count(&srv, NULL), 1); /* held by Retry-After: 100 */
    CHECK_EQ_INT(outbox_depth(box), 1);
    f = fopen(tmp_file, "w");
    CHECK(f && fputs("200000\n", f) >= 0);
    if (f) fclose(f);
    CHECK(rename(tmp_file, clock_file) == 0);
    CHECK(wait_empty(box));
    CHECK_EQ_INT(server_count(&srv, ids[0]), 2);
    uplink_destroy(up);
    outbox_close(box);
    server_stop(&srv);
    edge_clock_destroy(clock);
}

static answer slow_script(server *srv, const char *key, int nth, const request_rec *rec) {
    (void)srv;
    (void)key;
    (void)rec;
    return (answer){201, NULL, NULL, nth == 0 ? 1500 : 0};
}

/* Going offline aborts a transfer in flight: the row is pending again at
 * once (not after the timeout), and sent when the link is back. */
static void test_offline_aborts(void) {
    server srv;
    CHECK(server_start(&srv, slow_script, NULL, NULL, NULL));
    outbox *box = open_box("offline.db");
    CHECK(box != NULL);
    if (!box || !srv.port) return;
    observed o = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", srv.port);
    uplink_config cfg = base_config(url, &o);
    cfg.timeout_s = 30;
    uplink *up = NULL;
    vigil_error err = {0};
    CHECK_EQ_INT(uplink_create(&cfg, box, NULL, &up, &err), VIGIL_OK);
    char ids[1][EDGE_EVENT_ID_LEN + 1];
    put_events(box, 1, prio_zero, ids, NULL);
    uplink_set_online(up, true);
    int64_t deadline = mono_ms() + WAIT_MS;
    while (mono_ms() < deadline && server_count(&srv, NULL) < 1)
        sleep_ms(10);
    uplink_set_online(up, false);
    uplink_stats us = {0};
    while (mono_ms() < deadline && us.aborted < 1) {
        uplink_stats_get(up, &us);
        sleep_ms(10);
    }
    CHECK_EQ_INT(us.aborted, 1);
    CHECK_EQ_INT(us.failed_transport, 0);
    edge_event got;
    bool found = false;
    int attempts = 0;
    /* pending and due: another claimer could take it now */
    CHECK_EQ_INT(outbox_claim_next(box, edge_clock_now_ms(NULL), 3, &got, &found, &attempts, &err), VIGIL_OK);
    CHECK(found && strcmp(got.id, ids[0]) == 0);
    CHECK_EQ_INT(outbox_retry(box, got.id, 0, "test", &err), VIGIL_OK);
    edge_event_clear(&got);
    uplink_set_online(up, true);
    CHECK(wait_empty(box));
    uplink_destroy(up);
    CHECK_EQ_INT(server_count(&srv, ids[0]), 2);
    outbox_close(box);
    server_stop(&srv);
}

/* Sends n events carrying a real JPEG, made at now + i, to url from a fresh
 * outbox named name, with the given ids (made when ids[i][0] is NUL); returns how many
 * the cloud answered as replays.  *verdict_ok counts verdicts with a person. */
static int send_real(const char *url, const char *name, const uint8_t *jpeg, size_t jpeg_size, int n, int64_t now,
                     char ids[][EDGE_EVENT_ID_LEN + 1], int *verdict_ok) {
    outbox *box = open_box(name);
    CHECK(box != NULL);
    if (!box) return -1;
    vigil_error err = {0};
    for (int i = 0; i < n; i++) {
        edge_event e = make_event(i % EDGE_PRIORITY_CLASSES, now + i);
        if (ids[i][0])
            snprintf(e.id, sizeof e.id, "%s", ids[i]);
        else
            snprintf(ids[i], EDGE_EVENT_ID_LEN + 1, "%s", e.id);
        free(e.json);
        char doc[400];
        e.json_bytes = (size_t)snprintf(doc, sizeof doc,
                                        "{\"id\":\"%s\",\"source\":\"cam1\",\"model\":\"yolov8n\",\"version\":1,"
                                        "\"priority\":%d,\"reason\":\"band\",\"created_ms\":%lld,\"width\":810,"
                                        "\"height\":1080,\"detections\":[]}",
                                        e.id, e.priority, (long long)e.created_ms);
        e.json = strdup(doc);
        free(e.frame);
        e.frame = malloc(jpeg_size);
        if (!e.json || !e.frame) abort();
        memcpy(e.frame, jpeg, jpeg_size);
        e.frame_bytes = jpeg_size;
        CHECK_EQ_INT(outbox_put(box, &e, e.created_ms, &err), VIGIL_OK);
        edge_event_clear(&e);
    }
    observed o = {.lock = PTHREAD_MUTEX_INITIALIZER};
    uplink_config cfg = base_config(url, &o);
    cfg.concurrency = 2;
    cfg.timeout_s = 60;
    uplink *up = NULL;
    CHECK_EQ_INT(uplink_create(&cfg, box, NULL, &up, &err), VIGIL_OK);
    uplink_set_online(up, true);
    /* the real model on a loaded 2-core machine (the suite runs tests side by side): a generous bound */
    CHECK(wait_empty_within(box, 180000));
    CHECK(wait_attempts(&o, n));
    uplink_stats us;
    uplink_stats_get(up, &us);
    uplink_destroy(up);
    CHECK_EQ_INT(us.sent_ok + us.replayed, n);
    *verdict_ok = 0;
    for (int i = 0; i < n; i++) {
        char *json = NULL;
        CHECK_EQ_INT(outbox_event_json(box, ids[i], &json, &err), VIGIL_OK);
        if (json && strstr(json, "\"state\":\"acked\"") && strstr(json, "\"model\":\"yolov8n\"") &&
            strstr(json, "\"class_name\":\"person\""))
            (*verdict_ok)++;
        free(json);
    }
    outbox_close(box);
    return (int)us.replayed;
}

/* The uplink against the real receiver (vigil serve --role cloud with
 * yolov8n): the wire format is the one the receiver reads, the verdict comes
 * back, and the same ids sent again from a fresh outbox (an edge that lost
 * its deletes) are answered as replays. */
static void test_real_receiver(void) {
    const char *binary = getenv("VIGIL_BINARY");
    char model[1024], image[1024];
    if (!binary || access(binary, X_OK) != 0) SKIP("VIGIL_BINARY is not set");
    if (!testing_shared_path(model, sizeof model, "models/yolov8n.onnx") ||
        !testing_shared_path(image, sizeof image, "images/bus.jpg"))
        SKIP("../shared has no yolov8n.onnx or bus.jpg");
    size_t jpeg_size = 0;
    uint8_t *jpeg = testing_read_file(image, &jpeg_size);
    CHECK(jpeg != NULL);
    if (!jpeg) return;
    char models[400], link_path[500], data[400], store[500], log_path[400];
    snprintf(models, sizeof models, "%s/cloud-models/yolov8n/1", tmp_root);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", models);
    CHECK(system(cmd) == 0);
    snprintf(link_path, sizeof link_path, "%s/model.onnx", models);
    CHECK(symlink(model, link_path) == 0);
    snprintf(models, sizeof models, "%s/cloud-models", tmp_root);
    snprintf(data, sizeof data, "%s/cloud-data", tmp_root);
    snprintf(store, sizeof store, "sqlite:%s/cloud-receiver.db", tmp_root);
    snprintf(log_path, sizeof log_path, "%s/cloud.log", tmp_root);
    char http_port[16], grpc_port[16];
    snprintf(http_port, sizeof http_port, "%d", closed_port());
    snprintf(grpc_port, sizeof grpc_port, "%d", closed_port());
    char *argv[] = {(char *)binary, "serve",       "--host",          "127.0.0.1", "--http-port",
                    http_port,      "--grpc-port", grpc_port,         "--models",  models,
                    "--role",       "cloud",       "--edge-data-dir", data,        "--edge-receiver-store",
                    store,          NULL};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid = 0;
    extern char **environ;
    int rc = posix_spawn(&pid, binary, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) {
        free(jpeg);
        return;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%s", http_port);
    /* the probe is how the edge learns the cloud is ready (its model loaded) */
    outbox *probe_box = open_box("probe-real.db");
    observed po = {.lock = PTHREAD_MUTEX_INITIALIZER};
    uplink_config pcfg = base_config(url, &po);
    uplink *probe = NULL;
    vigil_error err = {0};
    CHECK_EQ_INT(uplink_create(&pcfg, probe_box, NULL, &probe, &err), VIGIL_OK);
    bool ready = false;
    for (int64_t deadline = mono_ms() + 180000; !ready && mono_ms() < deadline;) {
        ready = uplink_probe(probe);
        if (!ready) sleep_ms(100);
    }
    uplink_destroy(probe);
    outbox_close(probe_box);
    CHECK(ready);
    if (ready) {
        enum { N = 6 };
        char ids[N][EDGE_EVENT_ID_LEN + 1];
        memset(ids, 0, sizeof ids);
        int verdicts = 0;
        int64_t now = edge_clock_now_ms(NULL);
        CHECK_EQ_INT(send_real(url, "real-1.db", jpeg, jpeg_size, N, now, ids, &verdicts), 0);
        CHECK_EQ_INT(verdicts, N);
        /* the same events again (same documents, same frames): all replays */
        CHECK_EQ_INT(send_real(url, "real-2.db", jpeg, jpeg_size, N, now, ids, &verdicts), N);
        CHECK_EQ_INT(verdicts, N);
    }
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!ready || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(cmd, sizeof cmd, "tail -20 '%s' >&2", log_path);
        if (system(cmd) != 0) fprintf(stderr, "no cloud log\n");
    }
    free(jpeg);
}

static void test_probe(void) {
    server srv;
    CHECK(server_start(&srv, NULL, NULL, NULL, NULL));
    outbox *box = open_box("probe.db");
    CHECK(box != NULL);
    if (!box || !srv.port) return;
    observed o = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", srv.port);
    uplink_config cfg = base_config(url, &o);
    uplink *up = NULL;
    vigil_error err = {0};
    CHECK_EQ_INT(uplink_create(&cfg, box, NULL, &up, &err), VIGIL_OK);
    CHECK(uplink_probe(up));
    pthread_mutex_lock(&srv.lock);
    srv.ready_status = 503;
    pthread_mutex_unlock(&srv.lock);
    CHECK(!uplink_probe(up));
    uplink_destroy(up);
    /* a URL curl would refuse at every send is refused at once */
    cfg.cloud_url = "ftp://127.0.0.1:21";
    up = (uplink *)&cfg; /* must come back NULL */
    CHECK_EQ_INT(uplink_create(&cfg, box, NULL, &up, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(up == NULL);
    cfg.cloud_url = "";
    CHECK_EQ_INT(uplink_create(&cfg, box, NULL, &up, &err), VIGIL_ERR_INVALID_ARGUMENT);
    outbox_close(box);
    server_stop(&srv);
}

static bool sh(const char *fmt, const char *dir) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s >/dev/null 2>&1", dir, fmt);
    return system(cmd) == 0;
}

/* A test CA, a server certificate for 127.0.0.1 and a client certificate. */
static bool make_certs(const char *dir) {
    if (!sh("openssl version", dir)) return false;
    return sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj '/CN=uplink test ca' "
              "-keyout ca.key -out ca.pem",
              dir) &&
           sh("printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext && "
              "printf 'extendedKeyUsage=clientAuth\\n' > client.ext",
              dir) &&
           sh("for n in server client; do openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
              "-subj /CN=$n -keyout $n.key -out $n.csr && openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key "
              "-CAcreateserial -days 2 -extfile $n.ext -out $n.pem || exit 1; done",
              dir);
}

static void test_https(void) {
    char dir[300], ca[400], cert[400], key[400], ccert[400], ckey[400];
    snprintf(dir, sizeof dir, "%s/tls", tmp_root);
    if (mkdir(dir, 0700) != 0 || !make_certs(dir)) SKIP("the openssl command is missing or failed");
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(cert, sizeof cert, "%s/server.pem", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
    snprintf(ccert, sizeof ccert, "%s/client.pem", dir);
    snprintf(ckey, sizeof ckey, "%s/client.key", dir);
    vigil_error err = {0};
    observed o = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char url[64];

    /* server-verified TLS */
    server srv;
    CHECK(server_start(&srv, NULL, cert, key, NULL));
    snprintf(url, sizeof url, "https://127.0.0.1:%d", srv.port);
    outbox *box = open_box("tls.db");
    CHECK(box != NULL);
    if (!box || !srv.port) return;
    char ids[2][EDGE_EVENT_ID_LEN + 1];
    put_events(box, 1, prio_one, ids, NULL);
    /* without the CA (the system's CAs): the certificate is refused, nothing sent, the row kept */
    uplink_config cfg = base_config(url, &o);
    uplink *up = NULL;
    CHECK_EQ_INT(uplink_create(&cfg, box, NULL, &up, &err), VIGIL_OK);
    CHECK(!uplink_probe(up));
    uplink_set_online(up, true);
    int64_t deadline = mono_ms() + WAIT_MS;
    uplink_stats us = {0};
    while (mono_ms() < deadline && us.failed_transport < 1) {
        uplink_stats_get(up, &us);
        sleep_ms(20);
    }
    CHECK(us.failed_transport >= 1);
    uplink_destroy(up);
    CHECK_EQ_INT(server_count(&srv, NULL), 0);
    CHECK_EQ_INT(outbox_depth(box), 1);
    /* with the CA file */
    cfg.ca_file = ca;
    CHECK_EQ_INT(uplink_create(&cfg, box, NULL, &up, &err), VIGIL_OK);
    CHECK(uplink_probe(up));
    uplink_set_online(up, true);
    CHECK(wait_empty(box));
    uplink_destroy(up);
    CHECK_EQ_INT(server_count(&srv, ids[0]), 1);
    server_stop(&srv);

    /* mutual TLS: a client certificate signed by the CA the server trusts */
    CHECK(server_start(&srv, NULL, cert, key, ca));
    snprintf(url, sizeof url, "https://127.0.0.1:%d", srv.port);
    cfg = base_config(url, &o);
    cfg.ca_file = ca;
    cfg.cert_file = ccert;
    cfg.key_file = ckey;
    put_events(box, 1, prio_one, ids + 1, NULL);
    CHECK_EQ_INT(uplink_create(&cfg, box, NULL, &up, &err), VIGIL_OK);
    uplink_set_online(up, true);
    CHECK(wait_empty(box));
    uplink_destroy(up);
    request_rec rec[2];
    CHECK_EQ_INT(server_find(&srv, ids[1], rec, 2), 1);
    CHECK(rec[0].client_cert);
    CHECK_EQ_INT(rec[0].status, 201);
    server_stop(&srv);
    outbox_close(box);
}

int main(void) {
    snprintf(tmp_root, sizeof tmp_root, "/tmp/vigil-uplink-XXXXXX");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_backoff_bounds);
    RUN(test_results);
    RUN(test_stats_by_result);
    RUN(test_priority_order);
    RUN(test_refused_and_timeout);
    RUN(test_nothing_lost);
    RUN(test_clock_jump);
    RUN(test_offline_aborts);
    RUN(test_probe);
    RUN(test_https);
    RUN(test_real_receiver);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_root);
    return testing_report();
}
