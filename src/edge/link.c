/*
 * link.c - the link monitor over MQTT 5 (see link.h and docs/EDGE.md,
 * "Link monitor").
 *
 * Two threads per monitor, each with one job:
 *  - the network thread owns the MQTT connection: it connects (a new
 *    session epoch and Will each time), runs libmosquitto's read, write and
 *    keepalive steps from its own poll() loop, and reconnects with a
 *    doubling, jittered backoff.  libmosquitto's callbacks (connect,
 *    disconnect, message) run here and only record what happened under the
 *    monitor's mutex.  We do not use mosquitto_loop_start: its reconnect
 *    wait is an uninterruptible nanosleep of up to reconnect_delay_max (a
 *    shutdown would wait for it), it gives up for good on an auth or TLS
 *    error (a broker restarted with new credentials would never be retried),
 *    and mosquitto_loop's select() fails on descriptors above 1023, which a
 *    busy server reaches.
 *  - the monitor thread owns the state: every 100 ms, or at once when the
 *    network thread signals, it decides ONLINE/OFFLINE from what was
 *    recorded, publishes the cloud's heartbeats, runs the probe (an HTTPS
 *    request may take seconds: it must never stall MQTT's keepalive, so it
 *    is never on the network thread) and calls on_change with no lock held.
 *
 * The edge keeps a small table of cloud nodes (a multi-replica cloud has
 * several), each with its newest session epoch: a heartbeat is live
 * evidence and is always believed; a retained status is believed only when
 * its epoch is at least the newest known for that node, so a stale Will
 * (older epoch) is ignored and counted.  The edge is online while some node
 * is alive (not dead by its Will, heard within `missed` of its periods).
 *
 * Time: waiting and heartbeat ages use the monotonic clock (a test clock
 * jumped by two hours must not look like two hours of silence); the edge
 * clock stamps what we report (since_ms, last_heartbeat_ms); epochs are
 * CLOCK_REALTIME, because they name sessions and must keep growing across
 * restarts whatever a test clock says.
 *
 * Lock order: never call libmosquitto while holding link->lock (its
 * callbacks take link->lock while libmosquitto holds its own mutexes).
 *
 * Process-wide effects, both libmosquitto's: mosquitto_lib_init once (kept
 * for the process's life), and mosquitto_new sets SIGPIPE to SIG_IGN, since
 * it writes to sockets with write() - vigil serve ignores SIGPIPE anyway.
 * Two statics of this file guard them: the once-flag of that init, and a
 * mutex around TLS connects (see link_tls_connect_lock).
 */
#include "edge/link.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"

#define LINK_MAX_CLOUD_NODES 8 /* cloud replicas tracked at once; the least recently heard is replaced */
#define LINK_NODE_MAX 64
#define LINK_TOPIC_MAX 256
#define LINK_TICK_MS 100.0           /* the monitor's longest sleep */
#define LINK_RECONNECT_BASE_MS 500.0 /* first reconnect delay, doubled per failure */
#define LINK_STOP_GRACE_MS 1000.0    /* how long destroy waits for the DISCONNECT to go out */
#define LINK_KEEPALIVE_MIN_S 5       /* libmosquitto 2.0 refuses a shorter keepalive */

typedef struct cloud_node {
    char name[LINK_NODE_MAX + 1];
    int64_t epoch;    /* newest session epoch known for this node */
    bool dead;        /* its offline status (Will) with the newest epoch was seen */
    int64_t last_seq; /* last heartbeat's sequence number */
    double last_beat; /* monotonic ms of the last heartbeat, 0: none since (re)connect or death */
    double period_ms; /* the period the node announces */
    int run;          /* heartbeats in a row */
    double heard;     /* monotonic ms of the last message of any kind (table replacement) */
    double died;      /* monotonic ms when marked dead */
} cloud_node;

struct link_monitor {
    /* Configuration (immutable after create). */
    link_role role;
    char *host, *node_id, *prefix, *username, *password, *ca_file, *cert_file, *key_file;
    int port, keepalive_s, missed, rise;
    double heartbeat_ms, probe_interval_ms, reconnect_max_ms;
    bool (*probe)(void *ctx);
    void (*on_change)(void *ctx, link_state state, const char *why);
    void *ctx;
    const edge_clock *clock;
    char client_id[LINK_TOPIC_MAX];
    char status_topic[LINK_TOPIC_MAX];        /* {prefix}/{role}/{node}/status */
    char heartbeat_topic[LINK_TOPIC_MAX];     /* {prefix}/cloud/heartbeat */
    char cloud_status_filter[LINK_TOPIC_MAX]; /* {prefix}/cloud/+/status */

    struct mosquitto *mosq;
    int wake_read, wake_write; /* pokes the network thread out of poll() */
    pthread_t net_thread, monitor_thread;
    bool net_started, monitor_started;
    unsigned jitter_seed;   /* network thread only */
    int reconnect_failures; /* network thread only: reset by a CONNACK */
    char refusal[96];       /* network thread only: the broker's CONNACK refusal, "" when none */
    double connected_at;    /* network thread only: monotonic ms of the last CONNACK */
    int short_lived;        /* network thread only: accepted connections in a row that ended within a keepalive */

    pthread_mutex_t lock;
    pthread_cond_t wake; /* monitor thread's sleep (monotonic) */
    /* Under lock. */
    bool stopping;
    bool connected;          /* CONNACK success and no disconnect since */
    int64_t failed_attempts; /* connections that failed or ended */
    int64_t epoch;
    int64_t seq; /* cloud: heartbeats sent in this session */
    link_state state;
    int64_t transitions, since_ms, last_heartbeat_ms, heartbeats, connections, probe_failures, stale_ignored;
    char reason[128];
    cloud_node nodes[LINK_MAX_CLOUD_NODES];
    int node_count;
    double started;    /* monotonic ms at create */
    double next_probe; /* monotonic ms */
    bool probe_failed_logged;
    char lib_error[160]; /* libmosquitto's last error or warning line (TLS detail), for the next failure log */
};

static pthread_once_t link_lib_once = PTHREAD_ONCE_INIT;
static int link_lib_rc;
/* libmosquitto 2.0 sets up OpenSSL on a TLS client's first connect behind an
 * unguarded flag, so two monitors connecting at once both run it (ASan sees
 * the UI method of the loser leak).  TLS connects are serialised by this. */
static pthread_mutex_t link_tls_connect_lock = PTHREAD_MUTEX_INITIALIZER;

/* libmosquitto's process-wide initialisation (sockets, OpenSSL): once per
 * process, never undone, since another monitor may start at any time. */
static void link_lib_init(void) {
    link_lib_rc = mosquitto_lib_init();
}

const char *link_state_name(link_state state) {
    switch (state) {
    case LINK_ONLINE: return "online";
    case LINK_OFFLINE: return "offline";
    case LINK_UNKNOWN: break;
    }
    return "unknown";
}

static const char *role_name(link_role role) {
    return role == LINK_ROLE_CLOUD ? "cloud" : "edge";
}

static bool node_id_valid(const char *id) {
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > LINK_NODE_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

static bool prefix_valid(const char *prefix) {
    size_t n = strlen(prefix);
    return n > 0 && n < 128 && !strpbrk(prefix, "+#") && prefix[0] != '/' && prefix[n - 1] != '/';
}

static void wake_network(link_monitor *link) {
    char byte = 1;
    ssize_t n = write(link->wake_write, &byte, 1);
    (void)n; /* a full pipe already holds a wake-up */
}

static void drain_wake(link_monitor *link) {
    char buf[64];
    while (read(link->wake_read, buf, sizeof buf) > 0) {
    }
}

/* ---- the network thread and libmosquitto's callbacks --------------------- */

static int status_payload(char *out, size_t size, const link_monitor *link, const char *state, int64_t epoch) {
    return snprintf(out, size, "{\"state\":\"%s\",\"epoch\":%lld,\"node\":\"%s\",\"role\":\"%s\"}", state,
                    (long long)epoch, link->node_id, role_name(link->role));
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags, const mosquitto_property *props) {
    (void)flags;
    (void)props;
    link_monitor *link = obj;
    if (rc != 0) {
        /* libmosquitto closes the socket; the network thread logs and retries */
        snprintf(link->refusal, sizeof link->refusal, "refused: %s", mosquitto_reason_string(rc));
        return;
    }
    pthread_mutex_lock(&link->lock);
    link->connected = true;
    link->connections++;
    link->seq = 0;
    int64_t epoch = link->epoch;
    for (int i = 0; i < link->node_count; i++) {
        link->nodes[i].run = 0;
        link->nodes[i].last_beat = 0;
    }
    pthread_cond_signal(&link->wake);
    pthread_mutex_unlock(&link->lock);
    link->connected_at = clock_now_ms();
    link->refusal[0] = '\0';
    LOG_I("link: connected to broker %s:%d as %s (epoch %lld)", link->host, link->port, link->client_id,
          (long long)epoch);

    char birth[256];
    int n = status_payload(birth, sizeof birth, link, "online", epoch);
    int prc = mosquitto_publish(mosq, NULL, link->status_topic, n, birth, 1, true);
    if (prc != MOSQ_ERR_SUCCESS) LOG_W("link: birth not published: %s", mosquitto_strerror(prc));
    if (link->role == LINK_ROLE_EDGE) {
        int src = mosquitto_subscribe(mosq, NULL, link->heartbeat_topic, 0);
        if (src == MOSQ_ERR_SUCCESS) src = mosquitto_subscribe(mosq, NULL, link->cloud_status_filter, 1);
        if (src != MOSQ_ERR_SUCCESS) LOG_W("link: subscribe failed: %s", mosquitto_strerror(src));
    }
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc, const mosquitto_property *props) {
    (void)mosq;
    (void)props;
    link_monitor *link = obj;
    pthread_mutex_lock(&link->lock);
    bool was = link->connected, stopping = link->stopping;
    link->connected = false;
    pthread_cond_signal(&link->wake);
    pthread_mutex_unlock(&link->lock);
    if (!was || stopping) return;
    if (rc == MQTT_RC_SESSION_TAKEN_OVER)
        LOG_W("link: broker %s:%d handed our session to another client with the id %s: two nodes share the "
              "node id \"%s\"?",
              link->host, link->port, link->client_id, link->node_id);
    else
        LOG_W("link: disconnected from broker %s:%d: %s", link->host, link->port,
              rc == MOSQ_ERR_KEEPALIVE ? "keepalive timeout (no answer from the broker)"
              : rc >= 128              ? mosquitto_reason_string(rc)
                                       : mosquitto_strerror(rc));
}

/* Keeps libmosquitto's own error lines (OpenSSL's reasons among them) for
 * the next failure message, and shows everything at debug level. */
static void on_log(struct mosquitto *mosq, void *obj, int level, const char *text) {
    (void)mosq;
    link_monitor *link = obj;
    if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) {
        pthread_mutex_lock(&link->lock);
        snprintf(link->lib_error, sizeof link->lib_error, "%s", text);
        pthread_mutex_unlock(&link->lock);
    }
    LOG_D("link: libmosquitto: %s", text);
}

/* The node's entry, added (or replacing the least recently heard) when new. */
static cloud_node *node_get(link_monitor *link, const char *name, double now) {
    for (int i = 0; i < link->node_count; i++)
        if (strcmp(link->nodes[i].name, name) == 0) return &link->nodes[i];
    cloud_node *slot;
    if (link->node_count < LINK_MAX_CLOUD_NODES) {
        slot = &link->nodes[link->node_count++];
    } else {
        slot = &link->nodes[0];
        for (int i = 1; i < link->node_count; i++)
            if (link->nodes[i].heard < slot->heard) slot = &link->nodes[i];
    }
    memset(slot, 0, sizeof *slot);
    snprintf(slot->name, sizeof slot->name, "%s", name);
    slot->period_ms = link->heartbeat_ms;
    slot->heard = now;
    return slot;
}

static void handle_heartbeat(link_monitor *link, json_t *doc) {
    const char *name = json_string_value(json_object_get(doc, "node"));
    json_t *epoch_j = json_object_get(doc, "epoch"), *seq_j = json_object_get(doc, "seq");
    if (!name || !node_id_valid(name) || !json_is_integer(epoch_j) || !json_is_integer(seq_j)) {
        LOG_D("link: malformed heartbeat ignored");
        return;
    }
    int64_t epoch = json_integer_value(epoch_j), seq = json_integer_value(seq_j);
    json_t *period_j = json_object_get(doc, "period_ms");
    double now = clock_now_ms();
    pthread_mutex_lock(&link->lock);
    cloud_node *node = node_get(link, name, now);
    double period = node->period_ms;
    if (json_is_integer(period_j)) {
        /* The cloud's own period rules, within sane bounds, so that the two
         * sides cannot disagree about what "missed" means. */
        double p = (double)json_integer_value(period_j);
        period = p < 50 ? 50 : p > 60000 ? 60000 : p;
    }
    bool in_row = node->last_beat > 0 && !node->dead && epoch == node->epoch && seq == node->last_seq + 1 &&
                  now - node->last_beat <= 1.5 * period;
    node->run = in_row ? node->run + 1 : 1;
    /* A heartbeat only comes from a live session (the broker forwards a
     * session's messages before its Will), so it is believed whatever its
     * epoch: a clock stepped back on the cloud cannot lock the edge out. */
    node->epoch = epoch;
    node->dead = false;
    node->last_seq = seq;
    node->last_beat = now;
    node->period_ms = period;
    node->heard = now;
    link->heartbeats++;
    link->last_heartbeat_ms = edge_clock_now_ms(link->clock);
    pthread_cond_signal(&link->wake);
    pthread_mutex_unlock(&link->lock);
}

static void handle_cloud_status(link_monitor *link, const char *name, json_t *doc) {
    const char *state = json_string_value(json_object_get(doc, "state"));
    json_t *epoch_j = json_object_get(doc, "epoch");
    if (!state || !json_is_integer(epoch_j) || !node_id_valid(name)) {
        LOG_D("link: malformed cloud status ignored");
        return;
    }
    int64_t epoch = json_integer_value(epoch_j);
    double now = clock_now_ms();
    pthread_mutex_lock(&link->lock);
    cloud_node *node = node_get(link, name, now);
    node->heard = now;
    if (epoch < node->epoch) {
        link->stale_ignored++;
        pthread_mutex_unlock(&link->lock);
        LOG_D("link: cloud %s status %s with stale epoch %lld (current %lld) ignored", name, state, (long long)epoch,
              (long long)node->epoch);
        return;
    }
    if (strcmp(state, "offline") == 0) {
        node->epoch = epoch;
        node->dead = true;
        node->died = now;
        node->run = 0;
        node->last_beat = 0;
        pthread_cond_signal(&link->wake);
    } else if (strcmp(state, "online") == 0) {
        /* A birth says the session exists, not that it beats: only clear
         * a death of an older session. */
        if (epoch > node->epoch) node->dead = false;
        node->epoch = epoch;
    }
    pthread_mutex_unlock(&link->lock);
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg) {
    (void)mosq;
    link_monitor *link = obj;
    if (!msg->topic || msg->payloadlen <= 0 || link->role != LINK_ROLE_EDGE) return;
    json_error_t jerr;
    json_t *doc = json_loadb(msg->payload, (size_t)msg->payloadlen, 0, &jerr);
    if (!doc || !json_is_object(doc)) {
        json_decref(doc);
        LOG_D("link: non-JSON message on %s ignored", msg->topic);
        return;
    }
    if (strcmp(msg->topic, link->heartbeat_topic) == 0) {
        handle_heartbeat(link, doc);
    } else {
        /* {prefix}/cloud/{node}/status */
        size_t plen = strlen(link->prefix);
        const char *rest = msg->topic + plen;
        const char *slash = NULL;
        if (strncmp(msg->topic, link->prefix, plen) == 0 && strncmp(rest, "/cloud/", 7) == 0) {
            rest += 7;
            slash = strchr(rest, '/');
        }
        if (slash && strcmp(slash, "/status") == 0 && slash - rest <= LINK_NODE_MAX) {
            char name[LINK_NODE_MAX + 1];
            memcpy(name, rest, (size_t)(slash - rest));
            name[slash - rest] = '\0';
            handle_cloud_status(link, name, doc);
        }
    }
    json_decref(doc);
}

/* Sleeps up to ms unless woken (stop); true when stopping. */
static bool net_wait(link_monitor *link, double ms) {
    struct pollfd p = {.fd = link->wake_read, .events = POLLIN};
    double until = clock_now_ms() + ms;
    for (;;) {
        pthread_mutex_lock(&link->lock);
        bool stopping = link->stopping;
        pthread_mutex_unlock(&link->lock);
        double left = until - clock_now_ms();
        if (stopping) return true;
        if (left <= 0) return false;
        if (poll(&p, 1, (int)ceil(left)) > 0) drain_wake(link);
    }
}

/* Runs one connection until it ends (or stop): libmosquitto's read, write
 * and keepalive steps driven by poll(), woken by publishes through the pipe. */
static int net_run_connection(link_monitor *link) {
    double stop_deadline = 0;
    bool disconnect_sent = false;
    for (;;) {
        pthread_mutex_lock(&link->lock);
        bool stopping = link->stopping, connected = link->connected;
        pthread_mutex_unlock(&link->lock);
        if (stopping) {
            if (!connected) return MOSQ_ERR_SUCCESS;
            if (!disconnect_sent) {
                /* Reason 0x04: the broker publishes our Will, so the other
                 * side learns at once that this session ended. */
                mosquitto_disconnect_v5(link->mosq, MQTT_RC_DISCONNECT_WITH_WILL_MSG, NULL);
                disconnect_sent = true;
                stop_deadline = clock_now_ms() + LINK_STOP_GRACE_MS;
            } else if (clock_now_ms() > stop_deadline) {
                return MOSQ_ERR_SUCCESS;
            }
        }
        int fd = mosquitto_socket(link->mosq);
        if (fd < 0) return MOSQ_ERR_NO_CONN;
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN | (mosquitto_want_write(link->mosq) ? POLLOUT : 0)},
                              {.fd = link->wake_read, .events = POLLIN}};
        int n = poll(p, 2, 250);
        if (n < 0 && errno != EINTR) return MOSQ_ERR_ERRNO;
        int rc = MOSQ_ERR_SUCCESS;
        if (n > 0 && (p[1].revents & POLLIN)) drain_wake(link);
        if (n > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) rc = mosquitto_loop_read(link->mosq, 1);
        if (rc == MOSQ_ERR_SUCCESS && mosquitto_socket(link->mosq) >= 0 && mosquitto_want_write(link->mosq))
            rc = mosquitto_loop_write(link->mosq, 1);
        if (rc == MOSQ_ERR_SUCCESS && mosquitto_socket(link->mosq) >= 0) rc = mosquitto_loop_misc(link->mosq);
        if (rc != MOSQ_ERR_SUCCESS) return rc;
        if (mosquitto_socket(link->mosq) < 0) return MOSQ_ERR_NO_CONN;
    }
}

static void *net_main(void *arg) {
    link_monitor *link = arg;
    for (;;) {
        pthread_mutex_lock(&link->lock);
        if (link->stopping) {
            pthread_mutex_unlock(&link->lock);
            break;
        }
        /* A new session: a larger epoch and its Will. */
        int64_t epoch = edge_clock_now_ms(NULL);
        if (epoch <= link->epoch) epoch = link->epoch + 1;
        link->epoch = epoch;
        int64_t connections = link->connections;
        link->lib_error[0] = '\0';
        pthread_mutex_unlock(&link->lock);
        link->refusal[0] = '\0';

        char will[256];
        int wn = status_payload(will, sizeof will, link, "offline", epoch);
        int rc = mosquitto_will_set(link->mosq, link->status_topic, wn, will, 1, true);
        if (rc == MOSQ_ERR_SUCCESS) {
            if (link->ca_file) pthread_mutex_lock(&link_tls_connect_lock);
            rc = mosquitto_connect_async(link->mosq, link->host, link->port, link->keepalive_s);
            if (link->ca_file) pthread_mutex_unlock(&link_tls_connect_lock);
        }
        const char *cause = rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
        if (rc == MOSQ_ERR_SUCCESS) {
            rc = net_run_connection(link);
            cause = rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
        }
        pthread_mutex_lock(&link->lock);
        link->connected = false;
        link->failed_attempts++;
        bool reached = link->connections != connections, stopping = link->stopping;
        char detail[sizeof link->lib_error];
        snprintf(detail, sizeof detail, "%s", link->lib_error);
        pthread_cond_signal(&link->wake);
        pthread_mutex_unlock(&link->lock);
        if (reached && !stopping) {
            /* The backoff starts over only after a connection that lasted:
             * one the broker keeps closing right after accepting it (another
             * client with our id, an ACL) must not be retried twice a second. */
            if (clock_now_ms() - link->connected_at >= link->keepalive_s * 1000.0) {
                link->reconnect_failures = 0;
                link->short_lived = 0;
            } else if (++link->short_lived == 3) {
                LOG_W("link: broker %s:%d keeps closing our connection right after accepting it: another client "
                      "with the id %s (two nodes with the node id \"%s\")?",
                      link->host, link->port, link->client_id, link->node_id);
            }
        }
        if (!reached && !stopping) {
            /* Once per streak at warn (the state says the rest); the broker's
             * refusal or libmosquitto's own line (a TLS reason) says why. */
            log_level level = link->reconnect_failures == 0 ? LOG_WARN : LOG_DEBUG;
            VIGIL_LOG(level, "link: cannot connect to broker %s:%d: %s%s%s", link->host, link->port,
                      link->refusal[0] ? link->refusal : cause, detail[0] ? "; " : "", detail);
        }

        /* Doubling from 0.5 s up to the cap; half fixed, half random, so a
         * fleet that lost the same broker does not return in step. */
        double delay = LINK_RECONNECT_BASE_MS * pow(2.0, link->reconnect_failures < 16 ? link->reconnect_failures : 16);
        if (delay > link->reconnect_max_ms) delay = link->reconnect_max_ms;
        delay = delay / 2 + (delay / 2) * ((double)rand_r(&link->jitter_seed) / RAND_MAX);
        link->reconnect_failures++;
        if (net_wait(link, delay)) break;
    }
    return NULL;
}

/* ---- the monitor thread ------------------------------------------------- */

/* Publishes with our own wake-up so the network thread sends it now, not
 * at its next poll timeout. */
static int publish_now(link_monitor *link, const char *topic, const void *payload, int bytes, int qos, bool retain) {
    int rc = mosquitto_publish(link->mosq, NULL, topic, bytes, payload, qos, retain);
    if (rc == MOSQ_ERR_SUCCESS) wake_network(link);
    return rc;
}

static void set_state_locked(link_monitor *link, link_state state, const char *why) {
    link->state = state;
    link->transitions++;
    link->since_ms = edge_clock_now_ms(link->clock);
    snprintf(link->reason, sizeof link->reason, "%s", why);
}

/* Announces a change made under the lock: logs and calls on_change unlocked. */
static void announce(link_monitor *link, link_state state, const char *why) {
    pthread_mutex_unlock(&link->lock);
    if (state == LINK_ONLINE)
        LOG_I("link: online (%s)", why);
    else
        LOG_W("link: offline (%s)", why);
    if (link->on_change) link->on_change(link->ctx, state, why);
    pthread_mutex_lock(&link->lock);
}

static bool node_alive(const link_monitor *link, const cloud_node *node, double now) {
    return !node->dead && node->last_beat > 0 && now - node->last_beat <= link->missed * node->period_ms;
}

/* Why the cloud is gone: the newest Will when every known node is dead,
 * else the missed heartbeats. */
static void offline_reason(const link_monitor *link, char *why, size_t size) {
    const cloud_node *newest_dead = NULL;
    bool all_dead = link->node_count > 0;
    for (int i = 0; i < link->node_count; i++) {
        const cloud_node *node = &link->nodes[i];
        if (!node->dead)
            all_dead = false;
        else if (!newest_dead || node->died > newest_dead->died)
            newest_dead = node;
    }
    if (all_dead && newest_dead)
        snprintf(why, size, "cloud offline (will, epoch %lld)", (long long)newest_dead->epoch);
    else
        snprintf(why, size, "heartbeat missed %d", link->missed);
}

/* One decision of role edge, under the lock (which the probe and on_change
 * drop and retake). */
static void edge_step(link_monitor *link, double now) {
    char why[128];
    bool any_alive = false, any_dead = false;
    int best_run = 0;
    for (int i = 0; i < link->node_count; i++) {
        const cloud_node *node = &link->nodes[i];
        if (node->dead) any_dead = true;
        if (node_alive(link, node, now)) {
            any_alive = true;
            if (node->run > best_run) best_run = node->run;
        }
    }
    if (link->state == LINK_ONLINE) {
        if (!link->connected) {
            set_state_locked(link, LINK_OFFLINE, "broker disconnected");
            announce(link, LINK_OFFLINE, "broker disconnected");
        } else if (!any_alive) {
            offline_reason(link, why, sizeof why);
            set_state_locked(link, LINK_OFFLINE, why);
            announce(link, LINK_OFFLINE, why);
        }
        return;
    }
    if (link->connected && any_alive && best_run >= link->rise) {
        if (now < link->next_probe) return;
        bool ok = true;
        if (link->probe) {
            pthread_mutex_unlock(&link->lock);
            ok = link->probe(link->ctx);
            pthread_mutex_lock(&link->lock);
            now = clock_now_ms();
        }
        if (!ok) {
            link->probe_failures++;
            link->next_probe = now + link->probe_interval_ms;
            bool first = !link->probe_failed_logged;
            link->probe_failed_logged = true;
            if (link->state == LINK_UNKNOWN) {
                set_state_locked(link, LINK_OFFLINE, "heartbeats resumed, probe failed");
                announce(link, LINK_OFFLINE, "heartbeats resumed, probe failed");
            } else if (first) {
                pthread_mutex_unlock(&link->lock);
                LOG_I("link: heartbeats resumed but the probe failed: staying offline");
                pthread_mutex_lock(&link->lock);
            }
            return;
        }
        /* The world may have moved while the probe ran. */
        bool still = false;
        for (int i = 0; i < link->node_count; i++)
            if (node_alive(link, &link->nodes[i], now)) still = true;
        if (!link->connected || !still || link->stopping) return;
        link->probe_failed_logged = false;
        const char *ok_why = link->probe ? "heartbeats resumed, probe ok" : "heartbeats resumed";
        set_state_locked(link, LINK_ONLINE, ok_why);
        announce(link, LINK_ONLINE, ok_why);
        return;
    }
    if (link->state == LINK_UNKNOWN) {
        /* Give a healthy link time to show itself before calling it down:
         * the heartbeats' window, plus a keepalive for a connection still
         * being made (a refused one has said all it will). */
        double grace = link->missed * link->heartbeat_ms;
        if (link->connected || link->failed_attempts == 0) grace += link->keepalive_s * 1000.0;
        if (any_dead && !any_alive) {
            offline_reason(link, why, sizeof why);
        } else if (now - link->started >= grace) {
            snprintf(why, sizeof why, "%s",
                     link->connected         ? "no heartbeat from the cloud"
                     : link->connections > 0 ? "broker disconnected"
                                             : "broker unreachable");
        } else {
            return;
        }
        set_state_locked(link, LINK_OFFLINE, why);
        announce(link, LINK_OFFLINE, why);
    }
}

static void cloud_step(link_monitor *link, double now, double *next_beat) {
    link_state want = link->connected ? LINK_ONLINE : LINK_OFFLINE;
    if (want != link->state && (want == LINK_ONLINE || link->state == LINK_ONLINE || link->failed_attempts > 0 ||
                                now - link->started >= link->keepalive_s * 1000.0)) {
        const char *why = want == LINK_ONLINE          ? "broker connected"
                          : link->state == LINK_ONLINE ? "broker disconnected"
                                                       : "broker unreachable";
        set_state_locked(link, want, why);
        announce(link, want, why);
    }
    if (!link->connected || now < *next_beat) return;
    /* Keep the schedule (no drift), but do not burst to catch up. */
    *next_beat += link->heartbeat_ms;
    if (*next_beat < now) *next_beat = now + link->heartbeat_ms;
    int64_t seq = ++link->seq, epoch = link->epoch;
    int64_t ts = edge_clock_now_ms(link->clock);
    pthread_mutex_unlock(&link->lock);
    char beat[256];
    int n = snprintf(beat, sizeof beat, "{\"node\":\"%s\",\"epoch\":%lld,\"seq\":%lld,\"period_ms\":%d,\"ts_ms\":%lld}",
                     link->node_id, (long long)epoch, (long long)seq, (int)link->heartbeat_ms, (long long)ts);
    int rc = publish_now(link, link->heartbeat_topic, beat, n, 0, false);
    pthread_mutex_lock(&link->lock);
    if (rc == MOSQ_ERR_SUCCESS) {
        link->heartbeats++;
        link->last_heartbeat_ms = ts;
    }
}

static void *monitor_main(void *arg) {
    link_monitor *link = arg;
    double next_beat = 0;
    pthread_mutex_lock(&link->lock);
    while (!link->stopping) {
        double now = clock_now_ms();
        if (link->role == LINK_ROLE_CLOUD)
            cloud_step(link, now, &next_beat);
        else
            edge_step(link, now);
        if (link->stopping) break;
        now = clock_now_ms();
        double sleep_ms = LINK_TICK_MS;
        if (link->role == LINK_ROLE_CLOUD && link->connected && next_beat - now < sleep_ms) sleep_ms = next_beat - now;
        if (sleep_ms <= 0) continue;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        long long ns = until.tv_nsec + (long long)(sleep_ms * 1e6);
        until.tv_sec += ns / 1000000000;
        until.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&link->wake, &link->lock, &until);
    }
    pthread_mutex_unlock(&link->lock);
    return NULL;
}

/* ---- lifecycle and queries ---------------------------------------------- */

static void link_free(link_monitor *link) {
    if (link->mosq) mosquitto_destroy(link->mosq);
    if (link->wake_read >= 0) close(link->wake_read);
    if (link->wake_write >= 0) close(link->wake_write);
    pthread_cond_destroy(&link->wake);
    pthread_mutex_destroy(&link->lock);
    char *strings[] = {link->host,     link->node_id, link->prefix,    link->username,
                       link->password, link->ca_file, link->cert_file, link->key_file};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        vigil_free(strings[i]);
    vigil_free(link);
}

static bool dup_opt(const char *from, char **to) {
    *to = NULL;
    if (!from) return true;
    *to = vigil_strdup(from);
    return *to != NULL;
}

vigil_status link_topic(link_monitor *link, const char *leaf, char *out, size_t size, vigil_error *err) {
    if (!link || !leaf || !out) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "link_topic: NULL argument");
    int n = snprintf(out, size, "%s/%s/%s/%s", link->prefix, role_name(link->role), link->node_id, leaf);
    if (n < 0 || (size_t)n >= size)
        return vigil_error_set(err, VIGIL_ERR_LIMIT, "link topic for \"%s\" longer than %zu bytes", leaf, size);
    return VIGIL_OK;
}

static vigil_status configure_client(link_monitor *link, vigil_error *err) {
    struct mosquitto *mosq = link->mosq;
    int rc = mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_threaded_set(mosq, true);
    if (rc != MOSQ_ERR_SUCCESS)
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "link: MQTT client options: %s", mosquitto_strerror(rc));
    if (link->username) {
        rc = mosquitto_username_pw_set(mosq, link->username, link->password);
        if (rc != MOSQ_ERR_SUCCESS)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "link: MQTT username: %s", mosquitto_strerror(rc));
    }
    if (link->ca_file) {
        rc = mosquitto_tls_set(mosq, link->ca_file, NULL, link->cert_file, link->key_file, NULL);
        if (rc != MOSQ_ERR_SUCCESS)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "link: MQTT TLS (ca %s, cert %s): %s",
                                   link->ca_file, link->cert_file ? link->cert_file : "none", mosquitto_strerror(rc));
    }
    mosquitto_connect_v5_callback_set(mosq, on_connect);
    mosquitto_disconnect_v5_callback_set(mosq, on_disconnect);
    mosquitto_message_callback_set(mosq, on_message);
    mosquitto_log_callback_set(mosq, on_log);
    return VIGIL_OK;
}

vigil_status link_create(const link_config *cfg, const edge_clock *clock, link_monitor **out, vigil_error *err) {
    if (!cfg || !out) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "link_create: NULL argument");
    *out = NULL;
    if (!cfg->host || !cfg->host[0]) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "link: no broker host");
    if (!node_id_valid(cfg->node_id))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "link: node id \"%s\" must be 1-%d characters of [A-Za-z0-9._-]",
                               cfg->node_id ? cfg->node_id : "", LINK_NODE_MAX);
    const char *prefix = cfg->prefix ? cfg->prefix : "vigil";
    if (!prefix_valid(prefix))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "link: topic prefix \"%s\" must be non-empty, without + # or a leading/trailing /",
                               prefix);
    if (cfg->role != LINK_ROLE_EDGE && cfg->role != LINK_ROLE_CLOUD)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "link: unknown role %d", (int)cfg->role);
    if ((cfg->cert_file != NULL) != (cfg->key_file != NULL) || (cfg->cert_file && !cfg->ca_file))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "link: a client certificate needs both cert and key files, and a CA file");
    pthread_once(&link_lib_once, link_lib_init);
    if (link_lib_rc != MOSQ_ERR_SUCCESS)
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "link: mosquitto_lib_init: %s",
                               mosquitto_strerror(link_lib_rc));

    link_monitor *link = vigil_calloc(1, sizeof *link);
    if (!link) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "link: out of memory");
    link->wake_read = link->wake_write = -1;
    pthread_mutex_init(&link->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&link->wake, &attr);
    pthread_condattr_destroy(&attr);

    link->role = cfg->role;
    link->port = cfg->port > 0 ? cfg->port : cfg->ca_file ? 8883 : 1883;
    link->keepalive_s = cfg->keepalive_s > 0 ? cfg->keepalive_s : LINK_KEEPALIVE_MIN_S;
    if (link->keepalive_s < LINK_KEEPALIVE_MIN_S) {
        LOG_W("link: MQTT keepalive %d s raised to %d s, libmosquitto's minimum", link->keepalive_s,
              LINK_KEEPALIVE_MIN_S);
        link->keepalive_s = LINK_KEEPALIVE_MIN_S;
    }
    if (link->keepalive_s > 65535) link->keepalive_s = 65535;
    link->heartbeat_ms = cfg->heartbeat_s > 0 ? cfg->heartbeat_s * 1000.0 : 1000.0;
    if (link->heartbeat_ms < 50) link->heartbeat_ms = 50;
    link->missed = cfg->missed > 0 ? cfg->missed : 3;
    link->rise = cfg->rise > 0 ? cfg->rise : 2;
    link->probe_interval_ms = cfg->probe_interval_s > 0 ? cfg->probe_interval_s * 1000.0 : 2000.0;
    link->reconnect_max_ms = cfg->reconnect_max_s > 0 ? cfg->reconnect_max_s * 1000.0 : 30000.0;
    if (link->reconnect_max_ms < LINK_RECONNECT_BASE_MS) link->reconnect_max_ms = LINK_RECONNECT_BASE_MS;
    link->probe = cfg->probe;
    link->on_change = cfg->on_change;
    link->ctx = cfg->ctx;
    link->clock = clock;
    link->state = LINK_UNKNOWN;
    link->started = clock_now_ms();
    link->since_ms = edge_clock_now_ms(clock);
    snprintf(link->reason, sizeof link->reason, "starting");
    link->jitter_seed = (unsigned)edge_clock_now_ms(NULL) ^ (unsigned)(uintptr_t)link;

    vigil_status st = VIGIL_OK;
    if (!dup_opt(cfg->host, &link->host) || !dup_opt(cfg->node_id, &link->node_id) || !dup_opt(prefix, &link->prefix) ||
        !dup_opt(cfg->username, &link->username) || !dup_opt(cfg->password, &link->password) ||
        !dup_opt(cfg->ca_file, &link->ca_file) || !dup_opt(cfg->cert_file, &link->cert_file) ||
        !dup_opt(cfg->key_file, &link->key_file)) {
        st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "link: out of memory");
        goto fail;
    }
    snprintf(link->client_id, sizeof link->client_id, "%s-%s-%s", prefix, role_name(cfg->role), cfg->node_id);
    snprintf(link->status_topic, sizeof link->status_topic, "%s/%s/%s/status", prefix, role_name(cfg->role),
             cfg->node_id);
    snprintf(link->heartbeat_topic, sizeof link->heartbeat_topic, "%s/cloud/heartbeat", prefix);
    snprintf(link->cloud_status_filter, sizeof link->cloud_status_filter, "%s/cloud/+/status", prefix);

    int pipefd[2];
    if (pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
        st = vigil_error_set(err, VIGIL_ERR_IO, "link: pipe: %s", strerror(errno));
        goto fail;
    }
    link->wake_read = pipefd[0];
    link->wake_write = pipefd[1];

    link->mosq = mosquitto_new(link->client_id, true, link);
    if (!link->mosq) {
        st = vigil_error_set(err, errno == ENOMEM ? VIGIL_ERR_NO_MEMORY : VIGIL_ERR_INTERNAL, "link: mosquitto_new: %s",
                             strerror(errno));
        goto fail;
    }
    st = configure_client(link, err);
    if (st != VIGIL_OK) goto fail;

    LOG_I("link: %s %s monitoring broker %s:%d (heartbeat %.0f ms, missed %d, rise %d, keepalive %d s)",
          role_name(link->role), link->node_id, link->host, link->port, link->heartbeat_ms, link->missed, link->rise,
          link->keepalive_s);
    if (pthread_create(&link->net_thread, NULL, net_main, link) != 0) {
        st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "link: cannot start the network thread");
        goto fail;
    }
    link->net_started = true;
    if (pthread_create(&link->monitor_thread, NULL, monitor_main, link) != 0) {
        st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "link: cannot start the monitor thread");
        link_destroy(link);
        return st;
    }
    link->monitor_started = true;
    *out = link;
    return VIGIL_OK;
fail:
    link_free(link);
    return st;
}

void link_destroy(link_monitor *link) {
    if (!link) return;
    pthread_mutex_lock(&link->lock);
    link->stopping = true;
    pthread_cond_broadcast(&link->wake);
    pthread_mutex_unlock(&link->lock);
    /* The monitor first (it may be in a probe), so nothing publishes while
     * the network thread says goodbye. */
    if (link->monitor_started) pthread_join(link->monitor_thread, NULL);
    wake_network(link);
    if (link->net_started) pthread_join(link->net_thread, NULL);
    link_free(link);
}

link_state link_state_get(link_monitor *link) {
    pthread_mutex_lock(&link->lock);
    link_state state = link->state;
    pthread_mutex_unlock(&link->lock);
    return state;
}

void link_stats_get(link_monitor *link, link_stats *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&link->lock);
    out->state = link->state;
    out->transitions = link->transitions;
    out->last_heartbeat_ms = link->last_heartbeat_ms;
    out->since_ms = link->since_ms;
    out->broker_connected = link->connected;
    out->epoch = link->connections > 0 || link->connected ? link->epoch : 0;
    int64_t newest = 0;
    double heard = -1;
    for (int i = 0; i < link->node_count; i++) {
        /* The epoch of the node heard from last: the session the edge follows. */
        if (link->nodes[i].heard > heard) {
            heard = link->nodes[i].heard;
            newest = link->nodes[i].epoch;
        }
    }
    out->cloud_epoch = newest;
    out->heartbeats = link->heartbeats;
    out->connections = link->connections;
    out->probe_failures = link->probe_failures;
    out->stale_ignored = link->stale_ignored;
    snprintf(out->reason, sizeof out->reason, "%s", link->reason);
    pthread_mutex_unlock(&link->lock);
}

vigil_status link_publish(link_monitor *link, const char *topic, const void *payload, size_t bytes, int qos,
                          bool retain, vigil_error *err) {
    if (!link || !topic || (bytes && !payload))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "link_publish: NULL argument");
    if (qos < 0 || qos > 2) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "link_publish: qos %d", qos);
    if (mosquitto_pub_topic_check(topic) != MOSQ_ERR_SUCCESS)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "link_publish: bad topic \"%s\"", topic);
    if (bytes > MQTT_MAX_PAYLOAD)
        return vigil_error_set(err, VIGIL_ERR_LIMIT, "link_publish: %zu bytes exceed MQTT's payload limit", bytes);
    pthread_mutex_lock(&link->lock);
    bool connected = link->connected && !link->stopping;
    pthread_mutex_unlock(&link->lock);
    if (!connected) return vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "link: not connected to the broker");
    int rc = publish_now(link, topic, payload, (int)bytes, qos, retain);
    switch (rc) {
    case MOSQ_ERR_SUCCESS: return VIGIL_OK;
    case MOSQ_ERR_NO_CONN: return vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "link: not connected to the broker");
    case MOSQ_ERR_NOMEM: return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "link: out of memory");
    case MOSQ_ERR_PAYLOAD_SIZE:
    case MOSQ_ERR_OVERSIZE_PACKET:
        return vigil_error_set(err, VIGIL_ERR_LIMIT, "link: message of %zu bytes refused: %s", bytes,
                               mosquitto_strerror(rc));
    default: return vigil_error_set(err, VIGIL_ERR_IO, "link: publish: %s", mosquitto_strerror(rc));
    }
}
