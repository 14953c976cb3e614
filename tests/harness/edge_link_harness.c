/*
 * edge_link_harness.c - one link monitor as a process, for tests that need
 * the link's two ends in different network namespaces
 * (tests/integration/test_edge_link_netns.py).  A tests-only executable:
 * the daemon's own wiring (the edge runtime) is tested elsewhere.
 *
 *   edge-link-harness --role edge|cloud --host H [--port P] [--node N]
 *                     [--prefix P] [--keepalive S] [--heartbeat S]
 *                     [--missed N] [--rise N] [--reconnect-max S]
 *
 * It prints one JSON line per event on stdout, flushed at once:
 *   {"event":"state","state":"online","why":"...","mono_ms":123.4}
 *   {"event":"broker","connected":false,"mono_ms":...}
 * and runs until SIGTERM or SIGINT, then destroys the monitor and exits 0.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "edge/link.h"

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* Writes why as a JSON string body (quotes and backslashes escaped). */
static void put_json_text(const char *text) {
    for (const char *c = text; *c; c++) {
        if (*c == '"' || *c == '\\') putchar('\\');
        if ((unsigned char)*c >= 0x20) putchar(*c);
    }
}

static void on_change(void *ctx, link_state state, const char *why) {
    (void)ctx;
    pthread_mutex_lock(&out_lock);
    printf("{\"event\":\"state\",\"state\":\"%s\",\"why\":\"", link_state_name(state));
    put_json_text(why);
    printf("\",\"mono_ms\":%.1f}\n", clock_now_ms());
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

static int usage(void) {
    fprintf(stderr,
            "usage: edge-link-harness --role edge|cloud --host H [--port P] [--node N] [--prefix P]\n"
            "                         [--keepalive S] [--heartbeat S] [--missed N] [--rise N] [--reconnect-max S]\n");
    return 2;
}

int main(int argc, char **argv) {
    link_config cfg = {.role = LINK_ROLE_EDGE, .node_id = "n1", .on_change = on_change};
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!value) return usage();
        i++;
        if (strcmp(flag, "--role") == 0) {
            if (strcmp(value, "edge") == 0)
                cfg.role = LINK_ROLE_EDGE;
            else if (strcmp(value, "cloud") == 0)
                cfg.role = LINK_ROLE_CLOUD;
            else
                return usage();
        } else if (strcmp(flag, "--host") == 0)
            cfg.host = value;
        else if (strcmp(flag, "--port") == 0)
            cfg.port = atoi(value);
        else if (strcmp(flag, "--node") == 0)
            cfg.node_id = value;
        else if (strcmp(flag, "--prefix") == 0)
            cfg.prefix = value;
        else if (strcmp(flag, "--keepalive") == 0)
            cfg.keepalive_s = atoi(value);
        else if (strcmp(flag, "--heartbeat") == 0)
            cfg.heartbeat_s = atof(value);
        else if (strcmp(flag, "--missed") == 0)
            cfg.missed = atoi(value);
        else if (strcmp(flag, "--rise") == 0)
            cfg.rise = atoi(value);
        else if (strcmp(flag, "--reconnect-max") == 0)
            cfg.reconnect_max_s = atof(value);
        else
            return usage();
    }
    if (!cfg.host) return usage();
    log_configure(LOG_INFO, 0, stderr);

    /* Signals are taken synchronously by the main thread (blocked before
     * the monitor's threads start, so they inherit the mask). */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    link_monitor *link = NULL;
    vigil_error err = {0};
    if (link_create(&cfg, NULL, &link, &err) != VIGIL_OK) {
        fprintf(stderr, "edge-link-harness: %s\n", err.message);
        return 1;
    }
    bool connected = false;
    for (;;) {
        struct timespec tick = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
        if (sigtimedwait(&stop, NULL, &tick) > 0) break;
        link_stats s;
        link_stats_get(link, &s);
        if (s.broker_connected != connected) {
            connected = s.broker_connected;
            pthread_mutex_lock(&out_lock);
            printf("{\"event\":\"broker\",\"connected\":%s,\"mono_ms\":%.1f}\n", connected ? "true" : "false",
                   clock_now_ms());
            fflush(stdout);
            pthread_mutex_unlock(&out_lock);
        }
    }
    link_destroy(link);
    return 0;
}
