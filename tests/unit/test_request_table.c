/*
 * test_request_table.c - the status table that both front ends answer by
 * (request_http_status, request_grpc_code) is the one docs/API.md prints.
 *
 * test_request_parity.py walks the statuses a request can reach from outside
 * over REST and gRPC; some (out of memory, i/o, internal, exists, state) are
 * reachable only by fault or by the repository routes, so this test walks
 * the whole table in-process: every vigil_status but OK must sit in exactly
 * one row of docs/API.md's table, with that row's HTTP status and gRPC code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/request.h"
#include "testing.h"

/* docs/API.md's names for the statuses (the table is written for people). */
static const struct {
    const char *doc;
    vigil_status status;
} DOC_NAMES[] = {
    {"invalid argument", VIGIL_ERR_INVALID_ARGUMENT}, {"parse", VIGIL_ERR_PARSE},
    {"unauthenticated", VIGIL_ERR_UNAUTHENTICATED},   {"permission", VIGIL_ERR_PERMISSION},
    {"not found", VIGIL_ERR_NOT_FOUND},               {"exists", VIGIL_ERR_EXISTS},
    {"state", VIGIL_ERR_STATE},                       {"limit", VIGIL_ERR_LIMIT},
    {"out of memory", VIGIL_ERR_NO_MEMORY},           {"unsupported", VIGIL_ERR_UNSUPPORTED},
    {"unavailable", VIGIL_ERR_UNAVAILABLE},           {"timeout", VIGIL_ERR_TIMEOUT},
    {"i/o", VIGIL_ERR_IO},                            {"internal", VIGIL_ERR_INTERNAL},
};

static const struct {
    const char *name;
    request_grpc code;
} GRPC_NAMES[] = {
    {"INVALID_ARGUMENT", REQUEST_GRPC_INVALID_ARGUMENT},
    {"DEADLINE_EXCEEDED", REQUEST_GRPC_DEADLINE_EXCEEDED},
    {"NOT_FOUND", REQUEST_GRPC_NOT_FOUND},
    {"ALREADY_EXISTS", REQUEST_GRPC_ALREADY_EXISTS},
    {"PERMISSION_DENIED", REQUEST_GRPC_PERMISSION_DENIED},
    {"RESOURCE_EXHAUSTED", REQUEST_GRPC_RESOURCE_EXHAUSTED},
    {"FAILED_PRECONDITION", REQUEST_GRPC_FAILED_PRECONDITION},
    {"UNIMPLEMENTED", REQUEST_GRPC_UNIMPLEMENTED},
    {"INTERNAL", REQUEST_GRPC_INTERNAL},
    {"UNAVAILABLE", REQUEST_GRPC_UNAVAILABLE},
    {"UNAUTHENTICATED", REQUEST_GRPC_UNAUTHENTICATED},
};

static int doc_status(const char *name, vigil_status *out) {
    for (size_t i = 0; i < sizeof DOC_NAMES / sizeof DOC_NAMES[0]; i++)
        if (strcmp(DOC_NAMES[i].doc, name) == 0) return *out = DOC_NAMES[i].status, 1;
    return 0;
}

static int grpc_code(const char *name, request_grpc *out) {
    for (size_t i = 0; i < sizeof GRPC_NAMES / sizeof GRPC_NAMES[0]; i++)
        if (strcmp(GRPC_NAMES[i].name, name) == 0) return *out = GRPC_NAMES[i].code, 1;
    return 0;
}

/* Splits s in place at " / " into at most max parts; returns the count. */
static int split_slash(char *s, char **parts, int max) {
    int n = 0;
    while (s && n < max) {
        parts[n++] = s;
        char *sep = strstr(s, " / ");
        if (!sep) break;
        *sep = '\0';
        s = sep + 3;
    }
    return n;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '`') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '`')) s[--n] = '\0';
    return s;
}

static void test_api_md_table_is_the_code_table(void) {
    const char *root = getenv("VIGIL_SOURCE_DIR");
    if (!root) SKIP("VIGIL_SOURCE_DIR is not set (ctest sets it)");
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/API.md", root);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f) return;
    int seen[VIGIL_STATUS_COUNT] = {0};
    char line[2048];
    int in_table = 0, rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "| status | vigil status | gRPC |", strlen("| status | vigil status | gRPC |")) == 0) {
            in_table = 1;
            continue;
        }
        if (!in_table) continue;
        if (line[0] != '|') break;
        if (strncmp(line, "|---", 4) == 0) continue;
        /* | http | names | grpc | when | */
        char *cols[4] = {0};
        char *p = line + 1;
        for (int c = 0; c < 4 && p; c++) {
            cols[c] = p;
            p = strchr(p, '|');
            if (p) *p++ = '\0';
        }
        if (!cols[3]) continue;
        char *https[4], *names[4], *codes[4];
        int nh = split_slash(trim(cols[0]), https, 4);
        int nn = split_slash(trim(cols[1]), names, 4);
        int nc = split_slash(trim(cols[2]), codes, 4);
        if (strcmp(trim(names[0]), "-") == 0) continue; /* 405: no status behind it */
        rows++;
        CHECK(nn == nc);
        for (int k = 0; k < nn && k < nc; k++) {
            int http = atoi(trim(https[nh == nn ? k : 0]));
            request_grpc code = REQUEST_GRPC_OK;
            CHECK(grpc_code(trim(codes[k]), &code));
            /* "invalid argument, parse": one answer for several statuses */
            for (char *name = strtok(names[k], ","); name; name = strtok(NULL, ",")) {
                vigil_status st = VIGIL_OK;
                if (!doc_status(trim(name), &st)) {
                    fprintf(stderr, "  docs/API.md names an unknown status '%s'\n", trim(name));
                    CHECK(0);
                    continue;
                }
                seen[-st]++;
                if (request_http_status(st) != http || request_grpc_code(st) != code)
                    fprintf(stderr, "  %s: code gives %d/%d, docs/API.md %d/%d\n", vigil_status_str(st),
                            request_http_status(st), (int)request_grpc_code(st), http, (int)code);
                CHECK(request_http_status(st) == http);
                CHECK(request_grpc_code(st) == code);
            }
        }
    }
    fclose(f);
    CHECK(rows >= 8);
    for (int i = 1; i < VIGIL_STATUS_COUNT; i++) {
        if (seen[i] != 1) fprintf(stderr, "  %s is in %d rows of docs/API.md's table\n", vigil_status_str(-i), seen[i]);
        CHECK(seen[i] == 1);
    }
    CHECK(request_http_status(VIGIL_OK) == 200);
    CHECK(request_grpc_code(VIGIL_OK) == REQUEST_GRPC_OK);
}

int main(void) {
    RUN(test_api_md_table_is_the_code_table);
    return testing_report();
}
