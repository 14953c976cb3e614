/*
 * cmd_edge.c - `vigil edge status`: asks a running vigil serve for its edge
 * status (GET /api/v1/edge/status, docs/EDGE.md) and prints it for a person,
 * or as the JSON with --json.
 *
 * The numbers are the server's, not a second computation here: the command
 * is a reader of the same document the web UI and scripts use, so the three
 * cannot disagree.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/keys.h"
#include "cli/commands.h"
#include "core/alloc.h"

#define EDGE_STATUS_MAX (1 << 20)

static void edge_help(FILE *out) {
    fprintf(out,
            "usage: vigil edge status [--url URL] [--json] [--token-file FILE] [--ca-file FILE]\n"
            "\n"
            "Prints the edge-cloud status of a running vigil serve: its role, the link to\n"
            "the cloud, the outbox by priority class, uploads, escalations and verdicts.\n"
            "\n"
            "options:\n"
            "  --url URL          the server (default http://127.0.0.1:8000)\n"
            "  --json             print the server's JSON document as it is\n"
            "  --token-file FILE  bearer token for auth.mode=jwt\n"
            "  --ca-file FILE     CA bundle for an HTTPS server with a private CA\n");
}

typedef struct body {
    char *data;
    size_t len;
} body;

static size_t body_write(char *ptr, size_t size, size_t n, void *user) {
    body *b = user;
    size_t add = size * n;
    if (b->len + add > EDGE_STATUS_MAX) return 0;
    char *grown = realloc(b->data, b->len + add + 1);
    if (!grown) return 0;
    memcpy(grown + b->len, ptr, add);
    b->data = grown;
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}


static const char *str_of(json_t *o, const char *key, const char *fallback) {
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : fallback;
}

static long long int_of(json_t *o, const char *key) { return (long long)json_integer_value(json_object_get(o, key)); }

static void print_bytes(long long n) {
    if (n >= 10LL << 20) printf("%.1f MB", (double)n / 1e6);
    else if (n >= 10LL << 10) printf("%.1f kB", (double)n / 1e3);
    else printf("%lld B", n);
}

static void print_status(json_t *root) {
    long long now = int_of(root, "now_ms");
    printf("role         %s (node %s)\n", str_of(root, "role", "?"), str_of(root, "node_id", "?"));
    json_t *link = json_object_get(root, "link");
    if (link) {
        long long since = int_of(link, "since_ms"), beat = int_of(link, "last_heartbeat_ms");
        printf("link         %s", str_of(link, "state", "?"));
        if (since) printf(" for %.1f s", (double)(now - since) / 1000.0);
        printf(", %lld transitions, broker %s", int_of(link, "transitions"),
               json_is_true(json_object_get(link, "broker_connected")) ? "connected" : "not connected");
        if (beat) printf(", last heartbeat %.1f s ago", (double)(now - beat) / 1000.0);
        printf("\n");
    }
    json_t *box = json_object_get(root, "outbox");
    if (box && json_object_get(box, "error")) {
        printf("outbox       error: %s\n", str_of(box, "error", "?"));
    } else if (box) {
        json_t *rows = json_object_get(box, "rows_by_priority"), *bytes = json_object_get(box, "bytes_by_priority");
        long long total_bytes = 0;
        printf("outbox       %lld events (", int_of(box, "depth"));
        for (size_t i = 0; i < json_array_size(rows); i++) {
            printf("%sp%zu %lld", i ? ", " : "", i, (long long)json_integer_value(json_array_get(rows, i)));
            total_bytes += (long long)json_integer_value(json_array_get(bytes, i));
        }
        printf("), ");
        print_bytes(total_bytes);
        long long age = int_of(box, "oldest_pending_age_ms");
        if (age) printf(", oldest pending %.1f s", (double)age / 1000.0);
        printf(", %lld parked\n", int_of(box, "parked"));
        printf("dropped      %lld evicted (full), %lld expired (ttl), %lld refused (priority 0)%s\n",
               int_of(box, "evicted_full"), int_of(box, "expired_ttl"), int_of(box, "refused_full"),
               int_of(box, "refused_full") ? "  ALARM" : "");
        if (json_is_true(json_object_get(box, "quarantined")))
            printf("quarantined  a corrupt outbox was moved aside to %s\n", str_of(box, "quarantine_path", "?"));
    }
    json_t *up = json_object_get(root, "uploads");
    if (up)
        printf("uploads      %lld ok, %lld replayed, %lld retried, %lld parked, %lld transport failures; drain %.1f/s\n",
               int_of(up, "sent_ok"), int_of(up, "replayed"), int_of(up, "retried"), int_of(up, "parked"),
               int_of(up, "failed_transport"), json_number_value(json_object_get(up, "drain_rate_per_s")));
    json_t *esc = json_object_get(root, "escalations"), *queue = json_object_get(root, "queue");
    if (esc && queue)
        printf("escalations  %lld class, %lld band, %lld sample; queue %lld/%lld, dropped %lld (full) %lld (rate "
               "limit) %lld (commit failed)\n",
               int_of(esc, "class"), int_of(esc, "band"), int_of(esc, "sample"), int_of(queue, "depth"),
               int_of(queue, "max"), int_of(queue, "dropped_full"), int_of(queue, "dropped_rate_limit"),
               int_of(queue, "commit_failed"));
    json_t *verdicts = json_object_get(root, "verdicts");
    if (verdicts)
        printf("verdicts     %lld received, %lld published on MQTT\n", int_of(verdicts, "received"),
               int_of(verdicts, "published"));
}

int cmd_edge(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        edge_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "status") != 0) {
        fprintf(stderr, "vigil edge: unknown subcommand '%s' (see 'vigil edge --help')\n", argv[1]);
        return 2;
    }
    const char *url = "http://127.0.0.1:8000", *token_file = NULL, *ca_file = NULL;
    int as_json = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) as_json = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            edge_help(stdout);
            return 0;
        } else if (i + 1 < argc && strcmp(argv[i], "--url") == 0) url = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--token-file") == 0) token_file = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--ca-file") == 0) ca_file = argv[++i];
        else {
            fprintf(stderr, "vigil edge status: unexpected argument '%s' (see 'vigil edge --help')\n", argv[i]);
            return 2;
        }
    }
    char *token = NULL;
    vigil_error token_err = {0};
    if (token_file && keys_read_text_secret(token_file, 8192, "--token-file", &token, NULL, &token_err) != VIGIL_OK) {
        fprintf(stderr, "vigil edge status: %s\n", token_err.message);
        return 1;
    }
    char full[2048], auth[8300];
    snprintf(full, sizeof full, "%s/api/v1/edge/status", url);
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = NULL;
    body b = {0};
    long code = 0;
    CURLcode rc = CURLE_FAILED_INIT;
    if (curl) {
        curl_easy_setopt(curl, CURLOPT_URL, full);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, body_write);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 15000L);
        if (ca_file) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
        if (token) {
            snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
            headers = curl_slist_append(headers, auth);
            curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        }
        rc = curl_easy_perform(curl);
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
    }
    vigil_free(token);
    int status = 1;
    if (rc != CURLE_OK) {
        fprintf(stderr, "vigil edge status: %s: %s\n", full, curl_easy_strerror(rc));
    } else if (code == 404) {
        fprintf(stderr, "vigil edge status: %s answers 404: is edge.role set (edge or cloud)?\n", url);
    } else if (code != 200) {
        fprintf(stderr, "vigil edge status: %s answered %ld: %s\n", full, code, b.data ? b.data : "");
    } else if (as_json) {
        printf("%s\n", b.data ? b.data : "");
        status = 0;
    } else {
        json_t *root = b.data ? json_loads(b.data, 0, NULL) : NULL;
        if (!root) {
            fprintf(stderr, "vigil edge status: the answer is no JSON\n");
        } else {
            print_status(root);
            json_decref(root);
            status = 0;
        }
    }
    free(b.data);
    return status;
}
