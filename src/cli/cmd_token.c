/*
 * cmd_token.c - `vigil token`: issue an HS256 bearer token for a server run
 * with auth.mode=jwt and auth.secret_file.  Meant for tests, development and
 * small deployments; larger ones issue RS256/ES256 tokens from their own
 * identity provider and give vigil its public keys (auth.jwks_file).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/mint.h"
#include "cli/commands.h"
#include "core/alloc.h"

static void token_usage(FILE *out) {
    fprintf(out,
            "usage: vigil token --secret-file FILE [--scope \"infer admin\"] [--issuer ISS]\n"
            "                   [--audience AUD] [--subject SUB] [--ttl SECONDS]\n"
            "\n"
            "Prints an HS256 JWT signed with the secret in FILE (at least 32 bytes; trailing\n"
            "whitespace is ignored), for a server started with auth.mode=jwt and the same\n"
            "auth.secret_file.  Use it as 'Authorization: Bearer <token>'.\n"
            "\n"
            "  --secret-file FILE  the shared secret (required)\n"
            "  --scope S           space-separated scopes: infer, admin, events (admin implies\n"
            "                      infer and events; events: an edge's uploads to the cloud's\n"
            "                      POST /api/v1/events, nothing else); default \"infer\"\n"
            "  --issuer ISS        iss claim (must match the server's auth.issuer if set)\n"
            "  --audience AUD      aud claim (must match the server's auth.audience if set)\n"
            "  --subject SUB       sub claim, shown in the server's logs\n"
            "  --ttl SECONDS       lifetime, 1 to 31536000; default 3600\n");
}

int cmd_token(int argc, char **argv) {
    const char *secret_file = NULL;
    mint_options opt = {.scope = "infer", .ttl_s = 3600, .now = (int64_t)time(NULL)};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            token_usage(stdout);
            return 0;
        }
        const char **target = strcmp(arg, "--secret-file") == 0 ? &secret_file
                              : strcmp(arg, "--scope") == 0     ? &opt.scope
                              : strcmp(arg, "--issuer") == 0    ? &opt.issuer
                              : strcmp(arg, "--audience") == 0  ? &opt.audience
                              : strcmp(arg, "--subject") == 0   ? &opt.subject
                                                                : NULL;
        int is_ttl = strcmp(arg, "--ttl") == 0;
        if (!target && !is_ttl) {
            fprintf(stderr, "vigil token: unknown argument '%s' (see vigil token --help)\n", arg);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "vigil token: %s needs a value\n", arg);
            return 2;
        }
        const char *value = argv[++i];
        if (target) {
            *target = value;
            continue;
        }
        char *end;
        errno = 0;
        long long ttl = strtoll(value, &end, 10);
        if (errno || end == value || *end || ttl < 1 || ttl > 31536000) {
            fprintf(stderr, "vigil token: --ttl must be an integer from 1 to 31536000, got '%s'\n", value);
            return 2;
        }
        opt.ttl_s = ttl;
    }
    if (!secret_file) {
        fprintf(stderr, "vigil token: --secret-file is required (see vigil token --help)\n");
        return 2;
    }
    char *token;
    vigil_error err = {0};
    if (mint_hs256(secret_file, &opt, &token, &err)) {
        fprintf(stderr, "vigil token: %s\n", err.message);
        return 1;
    }
    printf("%s\n", token);
    vigil_free(token);
    return 0;
}
