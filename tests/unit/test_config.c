/* test_config.c - configuration precedence (defaults < file < environment <
 * flags) and the errors for unknown keys, bad values and bad YAML; a model's
 * config.yaml (serve/model_config.c). */
#include "core/config.h"
#include "serve/model_config.h"
#include "testing.h"

static void test_defaults(void) {
    vigil_config cfg;
    config_defaults(&cfg);
    CHECK_EQ_INT(cfg.http_port, 8000);
    CHECK_EQ_INT(cfg.grpc_port, 50051);
    CHECK_STR(cfg.models_dir, "./models");
    vigil_error err = {0};
    CHECK_EQ_INT(config_validate(&cfg, &err), VIGIL_OK);
}

static void test_yaml_file_values(void) {
    vigil_config cfg;
    config_defaults(&cfg);
    vigil_error err = {0};
    const char *yaml = "# comment\nhttp:\n  port: 9000\n  threads: 2\nmodels: /srv/models\nlog:\n  level: debug\n";
    CHECK_EQ_INT(config_load_string(&cfg, yaml, strlen(yaml), "t.yaml", &err), VIGIL_OK);
    CHECK_EQ_INT(cfg.http_port, 9000);
    CHECK_EQ_INT(cfg.http_threads, 2);
    CHECK_STR(cfg.models_dir, "/srv/models");
    CHECK_STR(cfg.log_level, "debug");
    CHECK_EQ_INT(cfg.grpc_port, 50051); /* untouched keys keep defaults */
}

static void test_unknown_key_names_key_and_line(void) {
    vigil_config cfg;
    config_defaults(&cfg);
    vigil_error err = {0};
    const char *yaml = "http:\n  port: 9000\n  prot: 1\n";
    CHECK_EQ_INT(config_load_string(&cfg, yaml, strlen(yaml), "bad.yaml", &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "bad.yaml:3") != NULL);
    CHECK(strstr(err.message, "http.prot") != NULL);
}

static void test_bad_values(void) {
    vigil_config cfg;
    config_defaults(&cfg);
    vigil_error err = {0};
    const char *range = "http:\n  port: 70000\n";
    CHECK_EQ_INT(config_load_string(&cfg, range, strlen(range), "r.yaml", &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "r.yaml:2") && strstr(err.message, "outside"));
    const char *word = "http:\n  port: eighty\n";
    CHECK_EQ_INT(config_load_string(&cfg, word, strlen(word), "w.yaml", &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "integer") != NULL);
    const char *choice = "repository:\n  mode: sometimes\n";
    CHECK_EQ_INT(config_load_string(&cfg, choice, strlen(choice), "c.yaml", &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "none|poll|explicit") != NULL);
    const char *broken = "http: [1, 2\n";
    CHECK(config_load_string(&cfg, broken, strlen(broken), "b.yaml", &err) != VIGIL_OK);
    const char *mapping_for_value = "models:\n  dir: x\n";
    CHECK_EQ_INT(config_load_string(&cfg, mapping_for_value, strlen(mapping_for_value), "m.yaml", &err),
                 VIGIL_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(config_load_file(&cfg, "/nonexistent/vigil.yaml", &err), VIGIL_ERR_NOT_FOUND);
}

static void test_precedence(void) {
    vigil_config cfg;
    config_defaults(&cfg);
    vigil_error err = {0};
    const char *yaml = "http:\n  port: 9000\ngrpc:\n  port: 9001\nthreads: 3\n";
    CHECK_EQ_INT(config_load_string(&cfg, yaml, strlen(yaml), "p.yaml", &err), VIGIL_OK);
    char *env[] = {"PATH=/bin", "VIGIL_HTTP_PORT=9100", "VIGIL_THREADS=4", "VIGIL_SHARED_DIR=/x", NULL};
    CHECK_EQ_INT(config_apply_env(&cfg, env, &err), VIGIL_OK);
    CHECK_EQ_INT(config_apply_flag(&cfg, "http-port", "9200", &err), VIGIL_OK);
    CHECK_EQ_INT(cfg.http_port, 9200); /* flag beats env beats file */
    CHECK_EQ_INT(cfg.threads, 4);      /* env beats file */
    CHECK_EQ_INT(cfg.grpc_port, 9001); /* file beats default */
    char *bad_env[] = {"VIGIL_HTTP_PROT=1", NULL};
    CHECK_EQ_INT(config_apply_env(&cfg, bad_env, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "VIGIL_HTTP_PROT") != NULL);
    CHECK_EQ_INT(config_apply_flag(&cfg, "no-such-flag", "1", &err), VIGIL_ERR_NOT_FOUND);
    CHECK_EQ_INT(config_apply_flag(&cfg, "grpc-port", "9200", &err), VIGIL_OK);
    CHECK_EQ_INT(config_validate(&cfg, &err), VIGIL_ERR_INVALID_ARGUMENT); /* same port twice */
}

/* Reduced-scale JPEG decoding is an opt-in per model: off unless the key says true. */
static void test_model_jpeg_reduced_scale(void) {
    model_config cfg;
    vigil_error err = {0};
    model_config_defaults(&cfg);
    CHECK_EQ_INT(cfg.jpeg_reduced_scale, 0);
    const char *plain = "task: detect\n";
    CHECK_EQ_INT(model_config_parse(plain, strlen(plain), "m/config.yaml", &cfg, &err), VIGIL_OK);
    CHECK_EQ_INT(cfg.jpeg_reduced_scale, 0);
    const char *on = "task: detect\njpeg_reduced_scale: true\n";
    CHECK_EQ_INT(model_config_parse(on, strlen(on), "m/config.yaml", &cfg, &err), VIGIL_OK);
    CHECK_EQ_INT(cfg.jpeg_reduced_scale, 1);
    const char *off = "jpeg_reduced_scale: false\n";
    CHECK_EQ_INT(model_config_parse(off, strlen(off), "m/config.yaml", &cfg, &err), VIGIL_OK);
    CHECK_EQ_INT(cfg.jpeg_reduced_scale, 0);
    const char *bad = "task: detect\njpeg_reduced_scale: 2\n";
    CHECK_EQ_INT(model_config_parse(bad, strlen(bad), "m/config.yaml", &cfg, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "m/config.yaml:2") && strstr(err.message, "jpeg_reduced_scale") &&
          strstr(err.message, "true or false"));
}

/* config.yaml's scheduler: section (an accelerator's own scheduler, Hailo's):
 * -1 = the backend's default until set; priority is HailoRT's 0..31. */
static void test_model_scheduler_section(void) {
    model_config cfg;
    vigil_error err;
    model_config_defaults(&cfg);
    CHECK_EQ_INT(cfg.sched_priority, -1);
    CHECK_EQ_INT(cfg.sched_timeout_ms, -1);
    CHECK_EQ_INT(cfg.sched_threshold, -1);
    const char *set = "backend: hailo\nscheduler:\n  priority: 31\n  timeout_ms: 5\n  threshold: 4\n";
    CHECK_EQ_INT(model_config_parse(set, strlen(set), "m/config.yaml", &cfg, &err), VIGIL_OK);
    CHECK_EQ_INT(cfg.sched_priority, 31);
    CHECK_EQ_INT(cfg.sched_timeout_ms, 5);
    CHECK_EQ_INT(cfg.sched_threshold, 4);
    const char *high = "scheduler:\n  priority: 32\n";
    CHECK_EQ_INT(model_config_parse(high, strlen(high), "m/config.yaml", &cfg, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "m/config.yaml:2") && strstr(err.message, "scheduler.priority"));
    const char *unknown = "scheduler:\n  weight: 2\n";
    CHECK_EQ_INT(model_config_parse(unknown, strlen(unknown), "m/config.yaml", &cfg, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "scheduler.weight") != NULL);
}

/* The cloud receiver's settings (docs/EDGE.md): three levels of YAML, the
 * --role alias, the 24-hour floor on the retention. */
static void test_edge_receiver_settings(void) {
    vigil_config cfg;
    config_defaults(&cfg);
    CHECK_STR(cfg.edge_role, "off");
    CHECK_STR(cfg.edge_data_dir, "./data");
    CHECK_EQ_INT(cfg.edge_receiver_retention_s, 86400);
    vigil_error err = {0};
    const char *yaml = "edge:\n  role: cloud\n  receiver:\n    store: postgresql://db/vigil\n    workers: 8\n";
    CHECK_EQ_INT(config_load_string(&cfg, yaml, strlen(yaml), "t.yaml", &err), VIGIL_OK);
    CHECK_STR(cfg.edge_role, "cloud");
    CHECK_STR(cfg.edge_receiver_store, "postgresql://db/vigil");
    CHECK_EQ_INT(cfg.edge_receiver_workers, 8);
    CHECK_EQ_INT(config_apply_flag(&cfg, "role", "edge", &err), VIGIL_OK);
    CHECK_STR(cfg.edge_role, "edge");
    CHECK_EQ_INT(config_apply_flag(&cfg, "edge-role", "off", &err), VIGIL_OK);
    CHECK_STR(cfg.edge_role, "off");
    CHECK_EQ_INT(config_apply_flag(&cfg, "role", "fog", &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "off|edge|cloud") != NULL);
    CHECK_EQ_INT(config_apply_flag(&cfg, "edge-receiver-retention-s", "3600", &err), VIGIL_ERR_INVALID_ARGUMENT);
    char *env[] = {"VIGIL_EDGE_RECEIVER_CLAIM_TIMEOUT_S=30", NULL};
    CHECK_EQ_INT(config_apply_env(&cfg, env, &err), VIGIL_OK);
    CHECK_EQ_INT(cfg.edge_receiver_claim_timeout_s, 30);
}

/* metrics.node_type: follows the role until set, and takes only edge|cloud. */
static void test_metrics_node_type(void) {
    vigil_config cfg;
    vigil_error err = {0};
    config_defaults(&cfg);
    CHECK_STR(config_node_type(&cfg), "edge");
    CHECK_EQ_INT(config_apply_flag(&cfg, "role", "cloud", &err), VIGIL_OK);
    CHECK_STR(config_node_type(&cfg), "cloud");
    CHECK_EQ_INT(config_apply_flag(&cfg, "metrics-node-type", "edge", &err), VIGIL_OK);
    CHECK_STR(config_node_type(&cfg), "edge");
    CHECK_EQ_INT(config_apply_flag(&cfg, "metrics-node-type", "fog", &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK_STR(config_node_type(&cfg), "edge");
}

/* tracing.*: off by default; the sampling ratio is the one fractional setting. */
static void test_tracing_settings(void) {
    vigil_config cfg;
    config_defaults(&cfg);
    CHECK_EQ_INT(cfg.tracing_enabled, 0);
    CHECK_STR(cfg.tracing_endpoint, "http://127.0.0.1:4318");
    CHECK_NEAR(cfg.tracing_sampling_ratio, 1.0, 0);
    vigil_error err = {0};
    const char *yaml = "tracing:\n  enabled: 1\n  sampling_ratio: 0.25\n  service_name: cam-box\n";
    CHECK_EQ_INT(config_load_string(&cfg, yaml, strlen(yaml), "t.yaml", &err), VIGIL_OK);
    CHECK_EQ_INT(cfg.tracing_enabled, 1);
    CHECK_NEAR(cfg.tracing_sampling_ratio, 0.25, 0);
    CHECK_STR(cfg.tracing_service_name, "cam-box");
    CHECK_EQ_INT(config_apply_flag(&cfg, "tracing-sampling-ratio", "0", &err), VIGIL_OK);
    CHECK_NEAR(cfg.tracing_sampling_ratio, 0.0, 0);
    const char *bad[] = {"1.5", "-0.1", "nan", "half", "0.5x", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(config_apply_flag(&cfg, "tracing-sampling-ratio", bad[i], &err), VIGIL_ERR_INVALID_ARGUMENT);
        CHECK(strstr(err.message, "tracing.sampling_ratio") != NULL);
    }
    CHECK_NEAR(cfg.tracing_sampling_ratio, 0.0, 0); /* a refused value changes nothing */
}

int main(void) {
    RUN(test_defaults);
    RUN(test_yaml_file_values);
    RUN(test_unknown_key_names_key_and_line);
    RUN(test_bad_values);
    RUN(test_precedence);
    RUN(test_model_jpeg_reduced_scale);
    RUN(test_model_scheduler_section);
    RUN(test_edge_receiver_settings);
    RUN(test_metrics_node_type);
    RUN(test_tracing_settings);
    return testing_report();
}
