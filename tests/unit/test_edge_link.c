/*
 * test_edge_link.c - the link monitor (src/edge/link.c) against the real
 * mosquitto broker, started here as a child process on a free loopback port
 * (the binary absent: every test skips).
 *
 * Timings are short (keepalive 5 s, libmosquitto's least; heartbeat 0.5 s,
 * missed 3, rise 2) so the file runs in about a minute.  Times are measured and printed; the
 * only time asserted is the issue's correctness bound for a silent cut
 * (2 x keepalive + 2 s), which the heartbeats beat by a wide margin.
 *
 * The tests: a cloud and an edge reach ONLINE and a graceful cloud shutdown
 * sends its Will; the broker frozen with SIGSTOP (no FIN, no RST) takes the
 * edge OFFLINE and SIGCONT brings it back; a cloud process killed with
 * SIGKILL takes the edge OFFLINE through its Will; a stale offline status
 * (older epoch) is ignored while a current one is not; a failing probe keeps
 * the edge OFFLINE despite heartbeats; heartbeats every other period never
 * toggle the state; an unreachable broker is OFFLINE and shuts down at once;
 * bad configurations are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "edge/clock.h"
#include "edge/link.h"
#include "testing.h"

#define BROKER "/usr/sbin/mosquitto"
#define KEEPALIVE_S 5 /* libmosquitto 2.0 refuses less */
#define HEARTBEAT_S 0.5

static char tmp_dir[256];
static int broker_port;
static pid_t broker_pid;

/* ------------------------------------------------------------ the broker */

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        port = ntohs(addr.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static bool port_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

static void sleep_ms(double ms) {
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)((ms - (time_t)(ms / 1000) * 1000) * 1e6)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Starts mosquitto on port with `settings` after the listener line (config
 * and log named after name in tmp_dir); its pid, or 0 when it would not start. */
static pid_t broker_spawn(const char *name, int port, const char *settings) {
    char conf[512], logf[512];
    snprintf(conf, sizeof conf, "%s/%s.conf", tmp_dir, name);
    snprintf(logf, sizeof logf, "%s/%s.log", tmp_dir, name);
    FILE *f = fopen(conf, "w");
    if (!f || port <= 0) {
        if (f) fclose(f);
        return 0;
    }
    /* Logs to stderr, sent to a file here: as root, mosquitto drops to its
     * own user before it would open a log file in our private directory. */
    fprintf(f, "listener %d 127.0.0.1\npersistence false\nlog_dest stderr\n%s", port, settings);
    fclose(f);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        if (getppid() != parent) _exit(1);
        int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(BROKER, BROKER, "-c", conf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        if (port_open(port)) return pid;
        if (waitpid(pid, NULL, WNOHANG) == pid) return 0;
        sleep_ms(25);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return 0;
}

static void broker_kill(pid_t pid) {
    if (pid <= 0) return;
    kill(pid, SIGCONT);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* The shared plain broker most tests use. */
static bool broker_start(void) {
    broker_port = free_port();
    broker_pid = broker_spawn("mosquitto", broker_port, "allow_anonymous true\n");
    return broker_pid > 0;
}

static void broker_stop(void) {
    broker_kill(broker_pid);
    broker_pid = 0;
}

/* ------------------------------------------------------------ monitors */

#define MAX_EVENTS 64
typedef struct recorder {
    pthread_mutex_t lock;
    int count;
    link_state states[MAX_EVENTS];
    char whys[MAX_EVENTS][128];
    double at[MAX_EVENTS]; /* monotonic ms */
    volatile int probe_ok; /* what the probe answers */
    volatile int probes;   /* probe calls */
} recorder;

static void recorder_init(recorder *rec, int probe_ok) {
    memset(rec, 0, sizeof *rec);
    pthread_mutex_init(&rec->lock, NULL);
    rec->probe_ok = probe_ok;
}

static void on_change(void *ctx, link_state state, const char *why) {
    recorder *rec = ctx;
    pthread_mutex_lock(&rec->lock);
    if (rec->count < MAX_EVENTS) {
        rec->states[rec->count] = state;
        snprintf(rec->whys[rec->count], sizeof rec->whys[0], "%s", why);
        rec->at[rec->count] = clock_now_ms();
        rec->count++;
    }
    pthread_mutex_unlock(&rec->lock);
    fprintf(stderr, "  on_change: %s (%s)\n", link_state_name(state), why);
}

static bool probe(void *ctx) {
    recorder *rec = ctx;
    __atomic_add_fetch(&rec->probes, 1, __ATOMIC_SEQ_CST);
    return __atomic_load_n(&rec->probe_ok, __ATOMIC_SEQ_CST) != 0;
}

/* The reason of the last change, as on_change reported it (waiting for the
 * callback, which runs just after the state changed) and as the stats say. */
static void last_why(link_monitor *link, recorder *rec, char *out, size_t size) {
    link_stats s;
    link_stats_get(link, &s);
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&rec->lock);
        bool caught_up = rec->count >= s.transitions;
        pthread_mutex_unlock(&rec->lock);
        if (caught_up) break;
        sleep_ms(10);
    }
    pthread_mutex_lock(&rec->lock);
    snprintf(out, size, "%s", rec->count ? rec->whys[rec->count - 1] : "");
    pthread_mutex_unlock(&rec->lock);
    CHECK_STR(out, s.reason);
}

static link_config config_for(link_role role, const char *node, const char *prefix, recorder *rec) {
    link_config cfg = {
        .role = role,
        .host = "127.0.0.1",
        .port = broker_port,
        .node_id = node,
        .prefix = prefix,
        .keepalive_s = KEEPALIVE_S,
        .heartbeat_s = HEARTBEAT_S,
        .missed = 3,
        .rise = 2,
        .probe_interval_s = 0.5,
        .reconnect_max_s = 2,
        .probe = role == LINK_ROLE_EDGE ? probe : NULL,
        .on_change = on_change,
        .ctx = rec,
    };
    return cfg;
}

static link_monitor *start(const link_config *cfg) {
    link_monitor *link = NULL;
    vigil_error err = {0};
    vigil_status st = link_create(cfg, NULL, &link, &err);
    if (st != VIGIL_OK) fprintf(stderr, "  link_create: %s\n", err.message);
    return link;
}

/* Waits up to timeout_ms for the state; returns the ms it took, or -1. */
static double wait_state(link_monitor *link, link_state state, double timeout_ms) {
    double t0 = clock_now_ms();
    while (clock_now_ms() - t0 < timeout_ms) {
        if (link_state_get(link) == state) return clock_now_ms() - t0;
        sleep_ms(10);
    }
    return -1;
}

static double wait_disconnected(link_monitor *link, double timeout_ms) {
    double t0 = clock_now_ms();
    link_stats s;
    while (clock_now_ms() - t0 < timeout_ms) {
        link_stats_get(link, &s);
        if (!s.broker_connected) return clock_now_ms() - t0;
        sleep_ms(10);
    }
    return -1;
}

/* A plain MQTT client of the test's own, to play a cloud or a subscriber. */
typedef struct raw_client {
    struct mosquitto *mosq;
    pthread_mutex_t lock;
    char last_topic[256];
    char last_payload[512];
    int received;
} raw_client;

static void raw_on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg) {
    (void)mosq;
    raw_client *raw = obj;
    pthread_mutex_lock(&raw->lock);
    snprintf(raw->last_topic, sizeof raw->last_topic, "%s", msg->topic);
    snprintf(raw->last_payload, sizeof raw->last_payload, "%.*s", msg->payloadlen, (const char *)msg->payload);
    raw->received++;
    pthread_mutex_unlock(&raw->lock);
}

static bool raw_open(raw_client *raw, const char *id) {
    memset(raw, 0, sizeof *raw);
    pthread_mutex_init(&raw->lock, NULL);
    raw->mosq = mosquitto_new(id, true, raw);
    if (!raw->mosq) return false;
    mosquitto_int_option(raw->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_message_callback_set(raw->mosq, raw_on_message);
    if (mosquitto_connect(raw->mosq, "127.0.0.1", broker_port, 10) != MOSQ_ERR_SUCCESS) return false;
    return mosquitto_loop_start(raw->mosq) == MOSQ_ERR_SUCCESS;
}

static void raw_close(raw_client *raw) {
    if (!raw->mosq) return;
    mosquitto_disconnect(raw->mosq);
    mosquitto_loop_stop(raw->mosq, false);
    mosquitto_destroy(raw->mosq);
    raw->mosq = NULL;
}

static void raw_publish(raw_client *raw, const char *topic, const char *text, int qos, bool retain) {
    int rc = mosquitto_publish(raw->mosq, NULL, topic, (int)strlen(text), text, qos, retain);
    CHECK_EQ_INT(rc, MOSQ_ERR_SUCCESS);
}

static void raw_beat(raw_client *raw, const char *prefix, const char *node, long long epoch, long long seq) {
    char topic[128], text[256];
    snprintf(topic, sizeof topic, "%s/cloud/heartbeat", prefix);
    snprintf(text, sizeof text, "{\"node\":\"%s\",\"epoch\":%lld,\"seq\":%lld,\"period_ms\":%d,\"ts_ms\":0}", node,
             epoch, seq, (int)(HEARTBEAT_S * 1000));
    raw_publish(raw, topic, text, 0, false);
}

/* ------------------------------------------------------------ tests */

static bool have_broker(void) {
    if (access(BROKER, X_OK) != 0) return false;
    if (broker_pid > 0) return true;
    return broker_start();
}

static void test_online_publish_and_graceful_will(void) {
    if (!have_broker()) SKIP("no mosquitto broker");
    recorder cloud_rec, edge_rec;
    recorder_init(&cloud_rec, 1);
    recorder_init(&edge_rec, 1);
    link_config ccfg = config_for(LINK_ROLE_CLOUD, "c1", "t1", &cloud_rec);
    link_config ecfg = config_for(LINK_ROLE_EDGE, "e1", "t1", &edge_rec);
    link_monitor *cloud = start(&ccfg), *edge = start(&ecfg);
    CHECK(cloud && edge);
    if (!cloud || !edge) return;
    double t = wait_state(edge, LINK_ONLINE, 15000);
    fprintf(stderr, "  edge online after %.0f ms\n", t);
    CHECK(t >= 0);
    CHECK(wait_state(cloud, LINK_ONLINE, 5000) >= 0);
    char why[128];
    last_why(edge, &edge_rec, why, sizeof why);
    CHECK_STR(why, "heartbeats resumed, probe ok");
    CHECK(edge_rec.probes >= 1);

    link_stats es, cs;
    link_stats_get(edge, &es);
    link_stats_get(cloud, &cs);
    CHECK(es.broker_connected && cs.broker_connected);
    CHECK(cs.epoch > 0);
    CHECK_EQ_INT(es.cloud_epoch, cs.epoch);
    CHECK(es.heartbeats >= 2 && cs.heartbeats >= 2);
    CHECK(es.last_heartbeat_ms > 0);
    CHECK_EQ_INT(es.transitions, 1);
    CHECK_STR(es.reason, "heartbeats resumed, probe ok");

    /* A verdict published by the edge reaches a subscriber. */
    char topic[256];
    vigil_error err = {0};
    CHECK_EQ_INT(link_topic(edge, "verdicts", topic, sizeof topic, &err), VIGIL_OK);
    CHECK_STR(topic, "t1/edge/e1/verdicts");
    raw_client sub;
    CHECK(raw_open(&sub, "t1-sub"));
    CHECK_EQ_INT(mosquitto_subscribe(sub.mosq, NULL, topic, 1), MOSQ_ERR_SUCCESS);
    sleep_ms(300);
    const char *verdict = "{\"id\":\"x\",\"verdict\":{}}";
    CHECK_EQ_INT(link_publish(edge, topic, verdict, strlen(verdict), 1, false, &err), VIGIL_OK);
    for (int i = 0; i < 200 && !sub.received; i++)
        sleep_ms(10);
    pthread_mutex_lock(&sub.lock);
    CHECK_EQ_INT(sub.received, 1);
    CHECK_STR(sub.last_payload, verdict);
    pthread_mutex_unlock(&sub.lock);
    CHECK_EQ_INT(link_publish(edge, "t1/bad/#", "x", 1, 0, false, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(link_publish(edge, topic, "x", 1, 3, false, &err), VIGIL_ERR_INVALID_ARGUMENT);
    raw_close(&sub);

    /* The cloud's birth is retained, with its session's epoch. */
    raw_client status;
    CHECK(raw_open(&status, "t1-status"));
    CHECK_EQ_INT(mosquitto_subscribe(status.mosq, NULL, "t1/cloud/c1/status", 1), MOSQ_ERR_SUCCESS);
    for (int i = 0; i < 200 && !status.received; i++)
        sleep_ms(10);
    char birth[256];
    snprintf(birth, sizeof birth, "{\"state\":\"online\",\"epoch\":%lld,\"node\":\"c1\",\"role\":\"cloud\"}",
             (long long)cs.epoch);
    pthread_mutex_lock(&status.lock);
    CHECK_STR(status.last_payload, birth);
    pthread_mutex_unlock(&status.lock);

    /* A graceful cloud shutdown disconnects with its Will: the edge knows at
     * once, long before three heartbeats are missed. */
    int64_t epoch = cs.epoch;
    double t0 = clock_now_ms();
    link_destroy(cloud);
    t = wait_state(edge, LINK_OFFLINE, 10000);
    fprintf(stderr, "  edge offline %.0f ms after the cloud's shutdown\n", clock_now_ms() - t0);
    CHECK(t >= 0);
    char expect[128];
    snprintf(expect, sizeof expect, "cloud offline (will, epoch %lld)", (long long)epoch);
    last_why(edge, &edge_rec, why, sizeof why);
    CHECK_STR(why, expect);
    /* ... and the Will replaced the retained birth. */
    for (int i = 0; i < 200 && !strstr(status.last_payload, "offline"); i++)
        sleep_ms(10);
    snprintf(birth, sizeof birth, "{\"state\":\"offline\",\"epoch\":%lld,\"node\":\"c1\",\"role\":\"cloud\"}",
             (long long)epoch);
    pthread_mutex_lock(&status.lock);
    CHECK_STR(status.last_payload, birth);
    pthread_mutex_unlock(&status.lock);
    raw_close(&status);
    link_destroy(edge);
}

static void test_silent_cut_sigstop(void) {
    if (!have_broker()) SKIP("no mosquitto broker");
    recorder cloud_rec, edge_rec;
    recorder_init(&cloud_rec, 1);
    recorder_init(&edge_rec, 1);
    link_config ccfg = config_for(LINK_ROLE_CLOUD, "c2", "t2", &cloud_rec);
    link_config ecfg = config_for(LINK_ROLE_EDGE, "e2", "t2", &edge_rec);
    link_monitor *cloud = start(&ccfg), *edge = start(&ecfg);
    CHECK(cloud && edge);
    if (!cloud || !edge) return;
    CHECK(wait_state(edge, LINK_ONLINE, 15000) >= 0);

    /* Freeze the broker: its sockets stay open, nothing is answered, no FIN
     * and no RST reach anyone. */
    CHECK_EQ_INT(kill(broker_pid, SIGSTOP), 0);
    double offline = wait_state(edge, LINK_OFFLINE, 20000);
    double disconnected = wait_disconnected(edge, 20000);
    double bound = 2 * KEEPALIVE_S * 1000 + 2000;
    char why[128];
    last_why(edge, &edge_rec, why, sizeof why);
    fprintf(stderr,
            "  silent cut: edge offline after %.0f ms (%s), broker connection dropped after %.0f ms "
            "(bound %.0f ms)\n",
            offline, why, disconnected, bound);
    CHECK(offline >= 0);      /* a transition at all */
    CHECK(offline <= bound);  /* the issue's correctness bound */
    CHECK(disconnected >= 0); /* keepalive noticed the silent broker too */
    CHECK_STR(why, "heartbeat missed 3");

    link_stats before;
    link_stats_get(edge, &before);
    CHECK_EQ_INT(kill(broker_pid, SIGCONT), 0);
    double online = wait_state(edge, LINK_ONLINE, 30000);
    fprintf(stderr, "  broker resumed: edge online again after %.0f ms\n", online);
    CHECK(online >= 0);
    link_stats after;
    link_stats_get(edge, &after);
    last_why(edge, &edge_rec, why, sizeof why);
    CHECK_STR(why, "heartbeats resumed, probe ok");
    CHECK(after.connections > before.connections); /* it reconnected */
    CHECK_EQ_INT(after.transitions, before.transitions + 1);
    link_destroy(edge);
    link_destroy(cloud);
}

static void test_killed_cloud_will(void) {
    if (!have_broker()) SKIP("no mosquitto broker");
    /* The cloud runs in a child process (forked while this one has no other
     * threads) so that SIGKILL can take it without a goodbye. */
    pid_t parent = getpid();
    pid_t child = fork();
    CHECK(child >= 0);
    if (child < 0) return;
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        recorder rec;
        recorder_init(&rec, 1);
        link_config ccfg = config_for(LINK_ROLE_CLOUD, "c3", "t3", &rec);
        ccfg.on_change = NULL;
        link_monitor *cloud = start(&ccfg);
        if (!cloud) _exit(1);
        for (;;)
            pause();
    }
    recorder edge_rec;
    recorder_init(&edge_rec, 1);
    link_config ecfg = config_for(LINK_ROLE_EDGE, "e3", "t3", &edge_rec);
    ecfg.missed = 20; /* 10 s: only the Will can be this quick */
    link_monitor *edge = start(&ecfg);
    CHECK(edge != NULL);
    if (!edge) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        return;
    }
    CHECK(wait_state(edge, LINK_ONLINE, 15000) >= 0);
    link_stats s;
    link_stats_get(edge, &s);
    double t0 = clock_now_ms();
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    double t = wait_state(edge, LINK_OFFLINE, 8000);
    fprintf(stderr, "  cloud killed: edge offline after %.0f ms\n", t < 0 ? t : clock_now_ms() - t0);
    CHECK(t >= 0);
    char why[128], expect[128];
    last_why(edge, &edge_rec, why, sizeof why);
    snprintf(expect, sizeof expect, "cloud offline (will, epoch %lld)", (long long)s.cloud_epoch);
    CHECK_STR(why, expect);
    link_destroy(edge);
}

static void test_stale_will_ignored(void) {
    if (!have_broker()) SKIP("no mosquitto broker");
    recorder cloud_rec, edge_rec;
    recorder_init(&cloud_rec, 1);
    recorder_init(&edge_rec, 1);
    link_config ccfg = config_for(LINK_ROLE_CLOUD, "c4", "t4", &cloud_rec);
    link_config ecfg = config_for(LINK_ROLE_EDGE, "e4", "t4", &edge_rec);
    link_monitor *cloud = start(&ccfg), *edge = start(&ecfg);
    raw_client raw;
    CHECK(cloud && edge && raw_open(&raw, "t4-raw"));
    if (!cloud || !edge || !raw.mosq) return;
    CHECK(wait_state(edge, LINK_ONLINE, 15000) >= 0);
    link_stats before, after;
    link_stats_get(edge, &before);

    /* The retained Will of an older session of the same cloud node. */
    char text[256];
    snprintf(text, sizeof text, "{\"state\":\"offline\",\"epoch\":%lld,\"node\":\"c4\",\"role\":\"cloud\"}",
             (long long)before.cloud_epoch - 1000);
    raw_publish(&raw, "t4/cloud/c4/status", text, 1, true);
    sleep_ms(4 * HEARTBEAT_S * 1000);
    link_stats_get(edge, &after);
    CHECK_EQ_INT(after.state, LINK_ONLINE);
    CHECK_EQ_INT(after.transitions, before.transitions);
    CHECK(after.stale_ignored >= 1);

    /* The same with the current epoch is believed (and heartbeats, still
     * flowing, bring the edge back after rise). */
    snprintf(text, sizeof text, "{\"state\":\"offline\",\"epoch\":%lld,\"node\":\"c4\",\"role\":\"cloud\"}",
             (long long)before.cloud_epoch);
    raw_publish(&raw, "t4/cloud/c4/status", text, 1, true);
    CHECK(wait_state(edge, LINK_OFFLINE, 5000) >= 0);
    char why[128], expect[128];
    last_why(edge, &edge_rec, why, sizeof why);
    snprintf(expect, sizeof expect, "cloud offline (will, epoch %lld)", (long long)before.cloud_epoch);
    CHECK_STR(why, expect);
    CHECK(wait_state(edge, LINK_ONLINE, 10000) >= 0);
    raw_publish(&raw, "t4/cloud/c4/status", "", 1, true); /* clear the retained message */
    raw_close(&raw);
    link_destroy(edge);
    link_destroy(cloud);
}

static void test_probe_failure_keeps_offline(void) {
    if (!have_broker()) SKIP("no mosquitto broker");
    recorder cloud_rec, edge_rec;
    recorder_init(&cloud_rec, 1);
    recorder_init(&edge_rec, 0);
    link_config ccfg = config_for(LINK_ROLE_CLOUD, "c5", "t5", &cloud_rec);
    link_config ecfg = config_for(LINK_ROLE_EDGE, "e5", "t5", &edge_rec);
    link_monitor *cloud = start(&ccfg), *edge = start(&ecfg);
    CHECK(cloud && edge);
    if (!cloud || !edge) return;
    CHECK(wait_state(edge, LINK_OFFLINE, 15000) >= 0);
    sleep_ms(3000);
    link_stats s;
    link_stats_get(edge, &s);
    fprintf(stderr, "  probe false: %d probes, %lld heartbeats, state %s\n", edge_rec.probes, (long long)s.heartbeats,
            link_state_name(s.state));
    CHECK_EQ_INT(s.state, LINK_OFFLINE);
    CHECK_EQ_INT(s.transitions, 1);
    CHECK_STR(s.reason, "heartbeats resumed, probe failed");
    CHECK(s.heartbeats >= 4);
    CHECK(edge_rec.probes >= 2);
    CHECK(s.probe_failures >= 2);
    __atomic_store_n(&edge_rec.probe_ok, 1, __ATOMIC_SEQ_CST);
    CHECK(wait_state(edge, LINK_ONLINE, 5000) >= 0);
    link_destroy(edge);
    link_destroy(cloud);
}

static void test_flapping_does_not_toggle(void) {
    if (!have_broker()) SKIP("no mosquitto broker");
    recorder edge_rec;
    recorder_init(&edge_rec, 1);
    link_config ecfg = config_for(LINK_ROLE_EDGE, "e6", "t6", &edge_rec);
    ecfg.missed = 4; /* a 2 s window: a loaded machine's scheduling delays stay far inside it */
    link_monitor *edge = start(&ecfg);
    raw_client cloud;
    CHECK(edge && raw_open(&cloud, "t6-cloud"));
    if (!edge || !cloud.mosq) return;
    sleep_ms(500); /* the edge subscribed */
    long long epoch = 1765000000000LL, seq = 0;
    double period = HEARTBEAT_S * 1000;

    /* A lossy link that drops every other heartbeat (the sequence numbers
     * skip): never `rise` in a row, so never online. */
    for (int i = 0; i < 4; i++) {
        seq += 2;
        raw_beat(&cloud, "t6", "c6", epoch, seq);
        sleep_ms(2 * period);
    }
    link_stats s;
    link_stats_get(edge, &s);
    CHECK(s.state != LINK_ONLINE);
    CHECK(s.transitions <= 1); /* at most unknown -> offline */
    CHECK(s.heartbeats >= 3);
    int64_t transitions = s.transitions;

    /* Steady beats: online. */
    for (int i = 0; i < 5; i++) {
        raw_beat(&cloud, "t6", "c6", epoch, ++seq);
        sleep_ms(period);
    }
    CHECK(wait_state(edge, LINK_ONLINE, 2000) >= 0);
    link_stats_get(edge, &s);
    CHECK_EQ_INT(s.transitions, transitions + 1);
    transitions = s.transitions;

    /* Every other heartbeat lost again: within `missed`, so it stays online. */
    for (int i = 0; i < 4; i++) {
        sleep_ms(2 * period);
        seq += 2;
        raw_beat(&cloud, "t6", "c6", epoch, seq);
    }
    link_stats_get(edge, &s);
    CHECK_EQ_INT(s.state, LINK_ONLINE);
    CHECK_EQ_INT(s.transitions, transitions);

    /* Silence: offline after `missed` periods. */
    double t = wait_state(edge, LINK_OFFLINE, 5000);
    fprintf(stderr, "  heartbeats stopped: offline after %.0f ms\n", t);
    CHECK(t >= 0);
    char why[128];
    last_why(edge, &edge_rec, why, sizeof why);
    CHECK_STR(why, "heartbeat missed 4");
    raw_close(&cloud);
    link_destroy(edge);
}

static void test_unreachable_broker(void) {
    recorder rec;
    recorder_init(&rec, 1);
    link_config cfg = config_for(LINK_ROLE_EDGE, "e7", "t7", &rec);
    cfg.port = free_port(); /* nothing listens there */
    link_monitor *edge = start(&cfg);
    CHECK(edge != NULL);
    if (!edge) return;
    double t = wait_state(edge, LINK_OFFLINE, 10000);
    fprintf(stderr, "  unreachable broker: offline after %.0f ms\n", t);
    CHECK(t >= 0);
    char why[128];
    last_why(edge, &rec, why, sizeof why);
    CHECK_STR(why, "broker unreachable");
    vigil_error err = {0};
    CHECK_EQ_INT(link_publish(edge, "t7/x", "x", 1, 0, false, &err), VIGIL_ERR_UNAVAILABLE);
    double t0 = clock_now_ms();
    link_destroy(edge);
    double took = clock_now_ms() - t0;
    fprintf(stderr, "  destroy took %.0f ms\n", took);
    CHECK(took < 3000); /* no reconnect sleep to sit out */
}

/* Runs a shell command in tmp_dir; true when it exits 0. */
static bool in_tmp(const char *command) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && { %s; } >/dev/null 2>&1", tmp_dir, command);
    return system(cmd) == 0;
}

/* A CA, a server certificate for 127.0.0.1 signed by it, a second CA that
 * signed nothing, and a password file; false when a tool is missing. */
static bool make_tls_material(void) {
    return access("/usr/bin/openssl", X_OK) == 0 && access("/usr/bin/mosquitto_passwd", X_OK) == 0 &&
           in_tmp("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
                  "-subj /CN=vigil-test-ca -keyout ca.key -out ca.pem") &&
           in_tmp("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
                  "-subj /CN=other-ca -keyout other.key -out other.pem") &&
           in_tmp("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost "
                  "-keyout server.key -out server.csr") &&
           in_tmp("printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext && "
                  "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
                  "-extfile san.ext -out server.pem") &&
           in_tmp("mosquitto_passwd -c -b passwd vigil s3cret") &&
           /* readable by the broker after it drops to its own user */
           in_tmp("chmod 0644 ca.pem server.pem server.key passwd && chmod 0711 .");
}

static void test_tls_and_password(void) {
    if (access(BROKER, X_OK) != 0) SKIP("no mosquitto broker");
    if (!make_tls_material()) SKIP("openssl or mosquitto_passwd missing");
    int port = free_port();
    char settings[2048], ca[512], other[512];
    snprintf(settings, sizeof settings,
             "allow_anonymous false\npassword_file %s/passwd\ncafile %s/ca.pem\ncertfile %s/server.pem\n"
             "keyfile %s/server.key\n",
             tmp_dir, tmp_dir, tmp_dir, tmp_dir);
    pid_t pid = broker_spawn("tls", port, settings);
    CHECK(pid > 0);
    if (pid <= 0) return;
    snprintf(ca, sizeof ca, "%s/ca.pem", tmp_dir);
    snprintf(other, sizeof other, "%s/other.pem", tmp_dir);

    recorder cloud_rec, edge_rec, bad_rec, anon_rec;
    recorder_init(&cloud_rec, 1);
    recorder_init(&edge_rec, 1);
    recorder_init(&bad_rec, 1);
    recorder_init(&anon_rec, 1);
    link_config ccfg = config_for(LINK_ROLE_CLOUD, "c9", "t9", &cloud_rec);
    link_config ecfg = config_for(LINK_ROLE_EDGE, "e9", "t9", &edge_rec);
    ccfg.port = ecfg.port = port;
    ccfg.ca_file = ecfg.ca_file = ca;
    ccfg.username = ecfg.username = "vigil";
    ccfg.password = ecfg.password = "s3cret";
    /* A wrong password, and a CA that did not sign the broker's certificate. */
    link_config wrong_password = ecfg, wrong_ca = ecfg;
    wrong_password.node_id = "e9-password";
    wrong_password.password = "guess";
    wrong_password.ctx = &bad_rec;
    wrong_ca.node_id = "e9-ca";
    wrong_ca.ca_file = other;
    wrong_ca.ctx = &anon_rec;

    link_monitor *cloud = start(&ccfg), *edge = start(&ecfg), *bad = start(&wrong_password),
                 *untrusted = start(&wrong_ca);
    CHECK(cloud && edge && bad && untrusted);
    double t = edge ? wait_state(edge, LINK_ONLINE, 15000) : -1;
    fprintf(stderr, "  TLS + password: edge online after %.0f ms\n", t);
    CHECK(t >= 0);
    if (bad) CHECK(wait_state(bad, LINK_OFFLINE, 10000) >= 0);
    if (untrusted) CHECK(wait_state(untrusted, LINK_OFFLINE, 10000) >= 0);
    link_stats s;
    if (bad) {
        link_stats_get(bad, &s);
        CHECK_EQ_INT(s.connections, 0);
        CHECK_STR(s.reason, "broker unreachable");
    }
    if (untrusted) {
        link_stats_get(untrusted, &s);
        CHECK_EQ_INT(s.connections, 0);
        CHECK_STR(s.reason, "broker unreachable");
    }
    link_destroy(untrusted);
    link_destroy(bad);
    link_destroy(edge);
    link_destroy(cloud);
    broker_kill(pid);
}

static void test_bad_config(void) {
    recorder rec;
    recorder_init(&rec, 1);
    link_monitor *link = NULL;
    vigil_error err = {0};
    link_config cfg = config_for(LINK_ROLE_EDGE, "bad/node", "t8", &rec);
    CHECK_EQ_INT(link_create(&cfg, NULL, &link, &err), VIGIL_ERR_INVALID_ARGUMENT);
    cfg = config_for(LINK_ROLE_EDGE, "e8", "t8/#", &rec);
    CHECK_EQ_INT(link_create(&cfg, NULL, &link, &err), VIGIL_ERR_INVALID_ARGUMENT);
    cfg = config_for(LINK_ROLE_EDGE, "e8", "t8", &rec);
    cfg.host = NULL;
    CHECK_EQ_INT(link_create(&cfg, NULL, &link, &err), VIGIL_ERR_INVALID_ARGUMENT);
    cfg = config_for(LINK_ROLE_EDGE, "e8", "t8", &rec);
    cfg.cert_file = "/nonexistent.pem"; /* a certificate without key and CA */
    CHECK_EQ_INT(link_create(&cfg, NULL, &link, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(link == NULL);
    CHECK_STR(link_state_name(LINK_ONLINE), "online");
    CHECK_STR(link_state_name(LINK_OFFLINE), "offline");
    CHECK_STR(link_state_name(LINK_UNKNOWN), "unknown");
}

int main(void) {
    log_configure(getenv("VIGIL_TEST_VERBOSE") ? LOG_DEBUG : LOG_ERROR, 0, stderr);
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/vigil-link-XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_bad_config);
    RUN(test_unreachable_broker);
    RUN(test_killed_cloud_will); /* first among the broker tests: it forks, so no monitor threads yet */
    RUN(test_online_publish_and_graceful_will);
    RUN(test_stale_will_ignored);
    RUN(test_probe_failure_keeps_offline);
    RUN(test_flapping_does_not_toggle);
    RUN(test_silent_cut_sigstop);
    RUN(test_tls_and_password);
    broker_stop();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
    return testing_report();
}
