/*
 * cmd_serve.c - `vigil serve`: loads the configuration (defaults, then the
 * YAML file, then VIGIL_* variables, then flags), starts the server and runs
 * until SIGINT or SIGTERM, then shuts down gracefully and exits 0.
 *
 * What would stop the server half-way (a missing model repository, an HTTP
 * or gRPC port already taken) is checked before anything starts, and is
 * refused with one line saying what to change, like a configuration error:
 * no listener is left open and no model is loaded for nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "edge/edge.h"
#include "edge/receiver.h"
#include "grpc/grpc_frontend.h"
#include "serve/server.h"
#include "stream/mqtt_out.h"
#include "stream/runtime.h"
#include "stream/spec.h"

extern char **environ;

static void print_flag(const char *flag, const char *value_name, const char *help, void *user) {
    char left[80];
    snprintf(left, sizeof left, "--%s %s", flag, value_name);
    fprintf((FILE *)user, "  %-44s %s\n", left, help);
}

static void serve_help(FILE *out) {
    fprintf(out,
            "usage: vigil serve [--config FILE] [options]\n"
            "\n"
            "Runs the inference server: HTTP on --http-port (default 8000), gRPC on\n"
            "--grpc-port (default 50051), models from --models (default ./models).\n"
            "Settings come from defaults, then the YAML file, then VIGIL_* environment\n"
            "variables (VIGIL_HTTP_PORT, ...), then these flags, each overriding the last.\n"
            "SIGINT or SIGTERM stops accepting work, drains what is queued and exits 0.\n"
            "\n"
            "options:\n"
            "  --config FILE                                YAML configuration file\n");
    config_describe(print_flag, out);
    fprintf(out, "\nSee docs/CONFIG.md for every setting and its YAML form.\n");
}

/* Splits "--name=value" or "--name value"; returns the index of the last
 * argument consumed, or -1 (message printed) on a usage error. */
static int flag_value(int argc, char **argv, int i, char *name, size_t name_size, const char **value) {
    const char *arg = argv[i] + 2;
    *value = NULL; /* on every path: gcc -O3 (Release) warned maybe-uninitialized */
    const char *eq = strchr(arg, '=');
    if (eq) {
        snprintf(name, name_size, "%.*s", (int)(eq - arg), arg);
        *value = eq + 1;
        return i;
    }
    snprintf(name, name_size, "%s", arg);
    if (i + 1 >= argc) {
        fprintf(stderr, "vigil serve: --%s needs a value\n", name);
        return -1;
    }
    *value = argv[i + 1];
    return i + 1;
}

/* Loads the configuration in precedence order. Returns an exit code or -1.
 * OUT: *config_file, the --config argument (NULL: none). */
static int serve_configure(int argc, char **argv, vigil_config *cfg, const char **config_file) {
    vigil_error err = {0};
    config_defaults(cfg);
    const char *config_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            serve_help(stdout);
            return 0;
        }
        if (strncmp(argv[i], "--", 2) != 0) {
            fprintf(stderr, "vigil serve: unexpected argument '%s' (see 'vigil serve --help')\n", argv[i]);
            return 2;
        }
        char name[128];
        const char *value;
        int last = flag_value(argc, argv, i, name, sizeof name, &value);
        if (last < 0) return 2;
        if (strcmp(name, "config") == 0) config_path = value;
        i = last;
    }
    if (config_path && config_load_file(cfg, config_path, &err)) goto fail;
    if (config_apply_env(cfg, environ, &err)) goto fail;
    for (int i = 1; i < argc; i++) {
        char name[128];
        const char *value;
        i = flag_value(argc, argv, i, name, sizeof name, &value);
        if (i < 0) return 2; /* the first pass has already said which flag lacks its value */
        if (strcmp(name, "config") == 0) continue;
        vigil_status st = config_apply_flag(cfg, name, value, &err);
        if (st == VIGIL_ERR_NOT_FOUND) {
            fprintf(stderr, "vigil serve: unknown flag --%s (see 'vigil serve --help')\n", name);
            return 2;
        }
        if (st) goto fail;
    }
    if (config_validate(cfg, &err)) goto fail;
    *config_file = config_path;
    return -1;
fail:
    fprintf(stderr, "vigil serve: %s\n", err.message);
    return 2;
}

/* Counts model directories, and tells a new user how to add one. */
static void serve_describe_repository(const char *dir) {
    DIR *d = opendir(dir);
    int models = 0;
    if (d) {
        struct dirent *ent;
        while ((ent = readdir(d)))
            if (ent->d_name[0] != '.' && ent->d_type != DT_REG) models++;
        closedir(d);
    }
    if (models == 0) {
        LOG_W("model repository %s is empty; add a model with: mkdir -p %s/yolov8n/1 && cp yolov8n.onnx "
              "%s/yolov8n/1/model.onnx",
              dir, dir, dir);
    } else {
        LOG_I("model repository %s: %d model director%s", dir, models, models == 1 ? "y" : "ies");
    }
}

/* The checks that need no server: 0 to go on, or 1 with one line printed.
 * The ports are checked again when they are bound (another program may
 * take one in between); this is what keeps a busy gRPC port from being
 * found only after HTTP listens and the models have loaded. */
static int serve_preflight(const vigil_config *cfg) {
    char sources[160];
    struct stat st;
    int found = stat(cfg->models_dir, &st) == 0;
    if (!found || !S_ISDIR(st.st_mode)) {
        int missing = !found && errno == ENOENT;
        config_setting_sources("models", sources, sizeof sources);
        if (missing)
            fprintf(stderr, "vigil serve: model repository %s does not exist (%s); create it with: mkdir -p %s\n",
                    cfg->models_dir, sources, cfg->models_dir);
        else
            fprintf(stderr, "vigil serve: model repository %s is not a readable directory (%s)\n", cfg->models_dir,
                    sources);
        return 1;
    }
    vigil_error err = {0};
    if (server_port_check(cfg->host, cfg->http_port, "HTTP", "http.port", &err) ||
        server_port_check(cfg->host, cfg->grpc_port, "gRPC", "grpc.port", &err)) {
        fprintf(stderr, "vigil serve: %s\n", err.message);
        return 1;
    }
    return 0;
}

/* edge.role cloud: the idempotent receiver of the edges' events on this
 * server (docs/EDGE.md, "Cloud receiver"); *out stays NULL otherwise.
 * Added before server_start: the route must exist when the port opens. */
static vigil_status serve_start_receiver(const vigil_config *cfg, vigil_server *server, receiver **out,
                                         vigil_error *err) {
    *out = NULL;
    if (strcmp(cfg->edge_role, "cloud") != 0) return VIGIL_OK;
    char store[CONFIG_STR_MAX + 32], frames[CONFIG_STR_MAX + 16];
    if (cfg->edge_receiver_store[0]) snprintf(store, sizeof store, "%s", cfg->edge_receiver_store);
    else snprintf(store, sizeof store, "sqlite:%s/receiver.db", cfg->edge_data_dir);
    if (cfg->edge_receiver_frames_dir[0]) snprintf(frames, sizeof frames, "%s", cfg->edge_receiver_frames_dir);
    else snprintf(frames, sizeof frames, "%s/frames", cfg->edge_data_dir);
    receiver_config rc = {
        .store_url = store,
        .frames_dir = frames,
        .model = cfg->edge_receiver_model,
        .retention_s = (double)cfg->edge_receiver_retention_s,
        .claim_timeout_s = (double)cfg->edge_receiver_claim_timeout_s,
        .workers = (int)cfg->edge_receiver_workers,
    };
    return receiver_create(server, &rc, out, err);
}

/* The video streams (docs/STREAMS.md): the set with its routes before
 * server_start, its events on MQTT when a broker is configured. */
typedef struct serve_streams {
    stream_set *set;
    stream_mqtt *mqtt;
    stream_spec *specs; /* the config file's `streams:` list, started after server_start */
    size_t n_specs;
} serve_streams;

static vigil_status serve_streams_create(const vigil_config *cfg, const char *config_file, vigil_server *server,
                                         serve_streams *ss, vigil_error *err) {
    vigil_status st = config_file ? stream_specs_load_file(config_file, &ss->specs, &ss->n_specs, err) : VIGIL_OK;
    if (!st) st = stream_set_create(server, cfg, strcmp(cfg->edge_role, "edge") == 0, &ss->set, err);
    /* edge.mqtt.host has a default (127.0.0.1), so it is the streams' broker
     * only where the edge's MQTT is in use: with a role */
    int edge_broker = strcmp(cfg->edge_role, "edge") == 0 || strcmp(cfg->edge_role, "cloud") == 0;
    const char *host = cfg->stream_mqtt_host[0] ? cfg->stream_mqtt_host : edge_broker ? cfg->edge_mqtt_host : "";
    if (!st && host[0]) {
        stream_mqtt_config mc = {
            .host = host,
            .port = (int)(cfg->stream_mqtt_port ? cfg->stream_mqtt_port : cfg->edge_mqtt_port),
            .prefix = cfg->stream_mqtt_prefix[0] ? cfg->stream_mqtt_prefix : cfg->edge_mqtt_prefix,
        };
        st = stream_mqtt_create(&mc, &ss->mqtt, err);
        if (!st) stream_set_sink(ss->set, stream_mqtt_sink, ss->mqtt);
        if (!st) st = server_metrics_add(server, stream_mqtt_metrics, ss->mqtt, err);
    }
    return st;
}

/* The config file's streams, once the models are there; a stream that
 * cannot start is logged and left out (it never stops the daemon). */
static void serve_streams_start(serve_streams *ss) {
    for (size_t i = 0; i < ss->n_specs; i++) {
        vigil_error err = {0};
        if (stream_set_add(ss->set, &ss->specs[i], &err)) LOG_E("stream %s: %s", ss->specs[i].name, err.message);
    }
}

/* The one order of teardown, on failure and on a signal alike (each step
 * takes NULL): the streams stop feeding frames; the server stops taking
 * requests and waits for the calls the receiver holds (its workers still
 * run); then no request observes a detection any more, and the edge
 * commits what its queue holds. */
static void serve_teardown(vigil_server *server, edge_runtime *edge, receiver *cloud_receiver, serve_streams *ss) {
    stream_set_stop(ss->set);
    server_stop(server);
    stream_set_destroy(ss->set);
    stream_mqtt_destroy(ss->mqtt);
    vigil_free(ss->specs);
    edge_destroy(edge);
    receiver_destroy(cloud_receiver);
    server_destroy(server);
}

int cmd_serve(int argc, char **argv) {
    vigil_config cfg;
    const char *config_file = NULL;
    int code = serve_configure(argc, argv, &cfg, &config_file);
    if (code >= 0) return code;
    if (serve_preflight(&cfg)) return 1;
    log_configure((log_level)log_level_parse(cfg.log_level), strcmp(cfg.log_format, "json") == 0, stderr);
    /* The server moves tensors of megabytes per request (a body, the stacked
     * batch, the outputs), and glibc's mmap threshold rises to 32 MiB after
     * the first such buffer is freed: from then on they come from the heap,
     * whose free space is seldom given back, and resident memory grows with
     * the largest request seen.  At 1 MiB each is a mapping of its own,
     * returned when freed (docs/BENCHMARKS.md, "Memory per model instance":
     * yolov8n at batch 8, 211 -> 157 MB resident).  A process-wide setting,
     * so it is made here, by the process, not by a library. */
    if (mallopt(M_MMAP_THRESHOLD, 1 << 20) != 1) /* sanitizer allocators refuse it: harmless */
        LOG_D("the allocator refused the 1 MiB mmap threshold (freed tensors may stay resident)");
    /* Setting the mmap threshold also fixes the trim threshold at 128 KiB:
     * every frame-sized buffer freed at the top of a thread's heap was given
     * back and faulted in again for the next frame (page faults were 4 % of
     * the Hailo bench's gRPC profile).  Up to 4 MiB stays; an idle worker's
     * malloc_trim (scheduler.c) returns it after a burst. */
    (void)mallopt(M_TRIM_THRESHOLD, 4 << 20);

    /* Block the stop signals before any thread starts, then wait for them here. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGHUP); /* reloads the auth keys and TLS files */
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    serve_describe_repository(cfg.models_dir);
    vigil_error err = {0};
    vigil_server *server = NULL;
    receiver *cloud_receiver = NULL;
    edge_runtime *edge = NULL; /* edge.role edge or cloud (docs/EDGE.md): observer, routes, link, before server_start */
    serve_streams streams = {0};
    if (server_create(&cfg, &server, &err) || serve_start_receiver(&cfg, server, &cloud_receiver, &err) ||
        edge_create(&cfg, server, &edge, &err) || serve_streams_create(&cfg, config_file, server, &streams, &err) ||
        server_start(server, &err)) {
        LOG_E("%s", err.message);
        serve_teardown(server, edge, cloud_receiver, &streams);
        return 1;
    }
    grpc_frontend *grpc = NULL;
    if (grpc_frontend_start(&cfg, server, &grpc, &err)) {
        LOG_E("%s", err.message);
        serve_teardown(server, edge, cloud_receiver, &streams);
        return 1;
    }
    serve_streams_start(&streams);
    server_declare_ready(server); /* readyz answers 200 once gRPC and the config file's streams run */
    int sig = 0;
    while (sigwait(&stop_signals, &sig) == 0 && sig == SIGHUP) {
        if (server_reload_auth(server, &err)) LOG_E("SIGHUP: %s (keeping the current keys)", err.message);
        else LOG_I("SIGHUP: auth keys reloaded");
        if (server_reload_tls(server, &err)) LOG_E("SIGHUP: %s (keeping the current certificate)", err.message);
        else if (cfg.tls_cert_file[0]) LOG_I("SIGHUP: TLS certificate reloaded");
    }
    LOG_I("received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    grpc_frontend_stop(grpc); /* drains gRPC calls and streams while the schedulers still run */
    serve_teardown(server, edge, cloud_receiver, &streams);
    return 0;
}
