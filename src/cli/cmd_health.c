/*
 * cmd_health.c - `vigil health`: asks a running vigil serve whether it is
 * ready (GET /readyz) and exits 0 when it is, 1 when it is not or cannot be
 * reached, with one line saying which.
 *
 * It exists for the container image, which holds no shell and no curl: the
 * image's HEALTHCHECK and a Kubernetes exec probe run the binary itself.  So
 * it finds the server the way serve finds its own port: the same defaults,
 * the same YAML file (--config) and the same VIGIL_* variables, so a
 * container started with VIGIL_HTTP_PORT=9000 is probed on 9000 without
 * repeating the port in the health check.  With tls.cert_file set the probe
 * speaks HTTPS to its own listener on loopback; it trusts the address, not
 * the certificate (which names the public host, not 127.0.0.1), and sends
 * nothing secret.  An explicit --url is verified as any client would.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/config.h"

extern char **environ;

#define HEALTH_BODY_MAX 512 /* /readyz answers a few bytes; more is kept out */

static void health_help(FILE *out) {
    fprintf(out,
            "usage: vigil health [--url URL | --port N] [--timeout S] [--config FILE] [--ca-file FILE]\n"
            "\n"
            "Asks a running vigil serve whether it is ready (GET /readyz): exits 0 when it\n"
            "is, 1 when it is not ready (loading, draining) or cannot be reached, with one\n"
            "line saying why.  The container image's HEALTHCHECK runs it.\n"
            "\n"
            "Without --url the server is found as serve configures itself: http.port and\n"
            "tls.cert_file from the defaults, --config FILE and VIGIL_* variables\n"
            "(VIGIL_HTTP_PORT, ...), on 127.0.0.1 unless host names one address.\n"
            "\n"
            "options:\n"
            "  --url URL       the server's base URL (e.g. https://vigil.example:8443)\n"
            "  --port N        the HTTP port on this host (overrides the configuration)\n"
            "  --timeout S     give up after S seconds (default 5)\n"
            "  --config FILE   the YAML file vigil serve was started with\n"
            "  --ca-file FILE  CA bundle to verify an HTTPS --url with a private CA\n");
}

typedef struct health_body {
    char text[HEALTH_BODY_MAX + 1];
    size_t len;
} health_body;

/* Keeps the first bytes for the message; the rest is read and dropped, so a
 * chatty proxy in front never fails the probe for its size. */
static size_t health_body_write(char *ptr, size_t size, size_t n, void *user) {
    health_body *b = user;
    size_t add = size * n, room = HEALTH_BODY_MAX - b->len;
    size_t keep = add < room ? add : room;
    memcpy(b->text + b->len, ptr, keep);
    b->len += keep;
    b->text[b->len] = '\0';
    return add;
}

/* The base URL of the local server from the configuration serve would read.
 * Returns 0, or 1 with the reason printed. */
static int health_local_url(const char *config_path, long port_flag, char *url, size_t size, int *tls) {
    vigil_config config, *cfg = &config; /* on the stack, as in cmd_serve */
    vigil_error err = {0};
    config_defaults(cfg);
    if ((config_path && config_load_file(cfg, config_path, &err)) || config_apply_env(cfg, environ, &err)) {
        fprintf(stderr, "vigil health: %s\n", err.message);
        return 1;
    }
    long port = port_flag > 0 ? port_flag : (long)cfg->http_port;
    /* A wildcard listener is reached on loopback; one named address only
     * there (IPv6 literals in brackets). */
    const char *host = cfg->host;
    int wildcard = !host[0] || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 || strcmp(host, "*") == 0;
    *tls = cfg->tls_cert_file[0] != '\0';
    const char *scheme = *tls ? "https" : "http";
    if (wildcard) snprintf(url, size, "%s://127.0.0.1:%ld", scheme, port);
    else if (strchr(host, ':')) snprintf(url, size, "%s://[%.255s]:%ld", scheme, host, port);
    else snprintf(url, size, "%s://%.255s:%ld", scheme, host, port);
    return 0;
}

int cmd_health(int argc, char **argv) {
    const char *url_flag = NULL, *config_path = NULL, *ca_file = NULL;
    long port = 0;
    double timeout_s = 5.0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            health_help(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "vigil health: unexpected argument '%s' (see 'vigil health --help')\n", arg);
            return 2;
        }
        const char *value = argv[++i];
        char *end = NULL;
        if (strcmp(arg, "--url") == 0) {
            url_flag = value;
        } else if (strcmp(arg, "--config") == 0) {
            config_path = value;
        } else if (strcmp(arg, "--ca-file") == 0) {
            ca_file = value;
        } else if (strcmp(arg, "--port") == 0) {
            port = strtol(value, &end, 10);
            if (!*value || *end || port < 1 || port > 65535) {
                fprintf(stderr, "vigil health: --port %s is not a port (1-65535)\n", value);
                return 2;
            }
        } else if (strcmp(arg, "--timeout") == 0) {
            timeout_s = strtod(value, &end);
            if (!*value || *end || !(timeout_s > 0) || timeout_s > 3600) {
                fprintf(stderr, "vigil health: --timeout %s is not a number of seconds (0-3600]\n", value);
                return 2;
            }
        } else {
            fprintf(stderr, "vigil health: unexpected argument '%s' (see 'vigil health --help')\n", arg);
            return 2;
        }
    }
    if (url_flag && port) {
        fprintf(stderr, "vigil health: --url and --port exclude each other\n");
        return 2;
    }
    char base[1100], full[1200];
    int local_tls = 0;
    if (url_flag) {
        size_t n = strlen(url_flag);
        while (n && url_flag[n - 1] == '/') n--; /* "http://h:8000/" means the same server */
        snprintf(base, sizeof base, "%.*s", (int)(n < 1024 ? n : 1024), url_flag);
    } else if (health_local_url(config_path, port, base, sizeof base, &local_tls)) {
        return 1;
    }
    snprintf(full, sizeof full, "%s/readyz", base);

    CURL *curl = curl_easy_init();
    if (!curl) {
        fprintf(stderr, "vigil health: cannot start an HTTP client\n");
        return 1;
    }
    health_body body = {.len = 0};
    long timeout_ms = (long)(timeout_s * 1000.0);
    curl_easy_setopt(curl, CURLOPT_URL, full);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, health_body_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*"); /* a probe of this host never goes through a proxy */
    if (ca_file) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
    if (local_tls) { /* our own listener on loopback: see the essay above */
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    CURLcode rc = curl_easy_perform(curl);
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(curl);

    for (size_t i = 0; i < body.len; i++) /* one line, whatever the server sent */
        if (body.text[i] == '\n' || body.text[i] == '\r') body.text[i] = ' ';
    if (rc != CURLE_OK) {
        fprintf(stderr, "vigil health: unreachable: %s: %s\n", full, curl_easy_strerror(rc));
        return 1;
    }
    if (code != 200) {
        fprintf(stderr, "vigil health: not ready: %s answered %ld %s\n", full, code, body.text);
        return 1;
    }
    printf("vigil health: ready: %s\n", full);
    return 0;
}
