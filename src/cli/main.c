/*
 * main.c - the `vigil` command: dispatches to a subcommand and prints the
 * overview help.  Each subcommand lives in its own cmd_*.c and owns its flags
 * and --help.
 */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand subcommands[] = {
    {"serve", cmd_serve, "run the inference server (HTTP, gRPC, model repository)"},
    {"detect", cmd_detect, "detect objects in images in-process and print or draw the boxes"},
    {"infer", cmd_infer, "run an ONNX model on .npy inputs and write .npy outputs"},
    {"bench", cmd_bench, "measure a model's latency and throughput on this machine"},
    {"models", cmd_models, "inspect ONNX files and model repositories"},
    {"device", cmd_device, "show the CPU and each backend's device as the server would see them"},
    {"edge", cmd_edge, "show the edge-cloud status of a running server (vigil edge status)"},
    {"health", cmd_health, "exit 0 when a running server is ready (/readyz): the image's health check"},
    {"token", cmd_token, "issue an HS256 bearer token for auth.mode=jwt"},
    {"version", cmd_version, "print the version and build details"},
};
#define SUBCOMMAND_COUNT (sizeof subcommands / sizeof subcommands[0])

static void print_help(FILE *out) {
    fprintf(out,
            "vigil - an edge-first AI inference server\n"
            "\n"
            "usage: vigil <command> [options]\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < SUBCOMMAND_COUNT; i++)
        fprintf(out, "  %-9s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(out, "  %-9s %s\n", "help", "show this help, or a command's: vigil help <command>");
    fprintf(out,
            "\n"
            "Run 'vigil <command> --help' for a command's options.\n"
            "Quick start: vigil serve --models ./models   then   curl localhost:8000/healthz\n");
}

static const subcommand *find_subcommand(const char *name) {
    for (size_t i = 0; i < SUBCOMMAND_COUNT; i++)
        if (strcmp(subcommands[i].name, name) == 0) return &subcommands[i];
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        print_help(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0) return cmd_version(1, &argv[1]);
    if (strcmp(name, "help") == 0) {
        /* `vigil help`, `vigil help --help` and `vigil help help` all mean
         * the overview: every command answers --help with exit status 0. */
        if (argc < 3 || strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0 ||
            strcmp(argv[2], "help") == 0) {
            print_help(stdout);
            return 0;
        }
        const subcommand *sub = find_subcommand(argv[2]);
        if (!sub) {
            fprintf(stderr, "vigil: unknown command '%s' (see 'vigil --help')\n", argv[2]);
            return 2;
        }
        char *help_argv[] = {argv[2], "--help", NULL};
        return sub->run(2, help_argv);
    }
    const subcommand *sub = find_subcommand(name);
    if (!sub) {
        fprintf(stderr, "vigil: unknown command '%s' (see 'vigil --help')\n", name);
        return 2;
    }
    return sub->run(argc - 1, argv + 1);
}
