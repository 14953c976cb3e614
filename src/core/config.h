/*
 * config.h - vigil's configuration: one table of settings, three sources.
 *
 * Precedence, lowest to highest: built-in defaults, a YAML file
 * (`--config FILE`), environment variables (`VIGIL_<KEY>`), command-line
 * flags (`--<key>`).  Every setting is declared once in config.c's table,
 * which derives its YAML path ("http.port" is `http: {port: ...}`), its
 * environment name (VIGIL_HTTP_PORT) and its flag (--http-port).  Unknown
 * keys are errors that name the key and the file line.
 */
#ifndef VIGIL_CORE_CONFIG_H
#define VIGIL_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/status.h"

#define CONFIG_STR_MAX 1024

typedef struct vigil_config {
    char host[CONFIG_STR_MAX];        /* address to bind */
    int64_t http_port;
    int64_t grpc_port;
    int64_t grpc_threads;             /* gRPC poller threads (grpc.threads) */
    char models_dir[CONFIG_STR_MAX];  /* model repository root */
    char repository_mode[16];         /* none | poll | explicit */
    char default_detect_model[128];   /* detection model for requests naming none ("" = the only one) */
    int64_t poll_interval_ms;
    int64_t threads;                  /* engine threads; 0 = all cores */
    int64_t engine_batch_cap;         /* engine.batch_cap; 0 = the engine's default */
    char engine_float16[16];          /* engine.float16: auto | fp32 | xnnpack (vigil_float16_mode) */
    int64_t http_threads;             /* I/O threads */
    int64_t max_connections;          /* open HTTP connections at once */
    int64_t idle_timeout_s;           /* an idle HTTP connection is closed after this */
    char log_level[16];               /* debug | info | warn | error */
    char log_format[16];              /* json | text */
    int64_t max_body_bytes;
    int64_t max_upload_bytes;         /* model uploads (streamed to disk) */
    int64_t max_buffered_bytes;       /* request bodies held in memory, all connections together */
    int64_t max_image_pixels;
    int64_t max_tensor_elements;      /* elements in one input tensor */
    int64_t max_queue;                /* per-model queue bound */
    int64_t request_timeout_ms;
    int64_t shutdown_timeout_ms;
    int64_t cache_max_bytes;          /* response cache bound (models opt in) */
    char auth_mode[16];               /* off | jwt */
    char auth_secret_file[CONFIG_STR_MAX];     /* HS256 shared secret */
    char auth_public_key_file[CONFIG_STR_MAX]; /* RS256/ES256 public key (PEM) */
    char auth_jwks_file[CONFIG_STR_MAX];       /* RS256/ES256 keys by kid (JWKS) */
    char auth_issuer[256];            /* required iss ("" = not checked) */
    char auth_audience[256];          /* required aud ("" = not checked) */
    int64_t auth_clock_skew_s;        /* leeway for exp and nbf */
    int64_t auth_open_health;         /* 1: health endpoints need no token */
    int64_t auth_open_metrics;        /* 1: /metrics needs no token */
    char tls_cert_file[CONFIG_STR_MAX];      /* HTTPS when set (with tls_key_file) */
    char tls_key_file[CONFIG_STR_MAX];
    char tls_client_ca_file[CONFIG_STR_MAX]; /* mTLS: client certificates required */
    char edge_role[16];                        /* off | edge | cloud (docs/EDGE.md) */
    char metrics_node_type[16];                /* edge | cloud; "" = from edge_role (config_node_type) */
    char edge_data_dir[CONFIG_STR_MAX];        /* where the edge parts keep their files */
    char edge_receiver_model[128];             /* the cloud's model ("" = detect.default_model's rule) */
    char edge_receiver_store[CONFIG_STR_MAX];  /* "" = sqlite:<edge.data_dir>/receiver.db */
    char edge_receiver_frames_dir[CONFIG_STR_MAX]; /* "" = <edge.data_dir>/frames */
    int64_t edge_receiver_retention_s;         /* keys and answers kept at least this long */
    int64_t edge_receiver_claim_timeout_s;     /* an unfinished claim older than this is taken over */
    int64_t edge_receiver_workers;             /* threads doing the receiver's work */
    /* the edge runtime (src/edge/edge.c) */
    char edge_node_id[128];                  /* "" = the host name */
    char edge_cloud_url[CONFIG_STR_MAX];     /* edge: where events go (https://...) */
    char edge_ca_file[CONFIG_STR_MAX];       /* edge: CA bundle for the cloud ("" = the system's) */
    char edge_cert_file[CONFIG_STR_MAX];     /* edge: client certificate for mTLS */
    char edge_key_file[CONFIG_STR_MAX];
    char edge_token_file[CONFIG_STR_MAX];    /* edge: bearer token (JWT) sent to the cloud */
    int64_t edge_peak_events_per_s;          /* sizes the outbox caps: 2 h at this rate */
    int64_t edge_outbox_max_rows;            /* per priority class, 0 = 2 h at the peak rate */
    int64_t edge_outbox_max_bytes;           /* per priority class, 0 = max_rows x 256 KiB */
    int64_t edge_outbox_ttl_s;
    int64_t edge_queue_max;                  /* escalations waiting for the outbox */
    char edge_mqtt_host[256];
    int64_t edge_mqtt_port;
    int64_t edge_mqtt_keepalive_s;
    int64_t edge_mqtt_reconnect_max_ms;      /* cap of the broker reconnect backoff */
    char edge_mqtt_prefix[64];
    char edge_mqtt_username[128];            /* "" = none */
    char edge_mqtt_password_file[CONFIG_STR_MAX]; /* file holding the broker password */
    char edge_mqtt_ca_file[CONFIG_STR_MAX];  /* "" = plain TCP; set: TLS, the broker verified */
    char edge_mqtt_cert_file[CONFIG_STR_MAX]; /* client certificate for the broker */
    char edge_mqtt_key_file[CONFIG_STR_MAX];
    int64_t edge_heartbeat_ms;
    int64_t edge_heartbeat_missed;
    int64_t edge_heartbeat_rise;
    int64_t edge_uplink_concurrency;
    int64_t edge_uplink_timeout_ms;
    int64_t edge_uplink_backoff_base_ms;
    int64_t edge_uplink_backoff_max_ms;
    char edge_upload_log_file[CONFIG_STR_MAX]; /* "" = none: one line per upload attempt */
    char edge_test_clock_file[CONFIG_STR_MAX]; /* tests: offset of the edge clock in ms */
    /* tracing (src/serve/trace.c, docs/OBSERVABILITY.md) */
    int64_t tracing_enabled;                  /* 1: spans are made and exported */
    char tracing_endpoint[CONFIG_STR_MAX];    /* OTLP/HTTP base URL; spans go to {endpoint}/v1/traces */
    double tracing_sampling_ratio;            /* [0, 1] of new traces recorded (parent-based) */
    char tracing_service_name[128];           /* resource attribute service.name */
    int64_t tracing_queue_size;               /* spans waiting for the exporter; more are dropped */
    int64_t tracing_batch_size;               /* spans per export request */
    int64_t tracing_flush_interval_ms;        /* longest wait before a partial batch is sent */
    int64_t tracing_timeout_ms;               /* bound on one export request */
    /* video streams (src/stream/, docs/STREAMS.md); the streams themselves
     * are the config file's `streams:` list, read by stream/spec.c */
    char stream_mqtt_host[256];               /* "" = edge.mqtt.host */
    int64_t stream_mqtt_port;                 /* 0 = edge.mqtt.port */
    char stream_mqtt_prefix[64];              /* "" = edge.mqtt.prefix */
    int64_t stream_events_max;                /* events kept in memory */
} vigil_config;

/* Fills cfg with the defaults. */
void config_defaults(vigil_config *cfg);

/* Applies a YAML file. */
vigil_status config_load_file(vigil_config *cfg, const char *path, vigil_error *err);
/* Applies a YAML document held in memory; name labels messages. */
vigil_status config_load_string(vigil_config *cfg, const char *text, size_t len, const char *name, vigil_error *err);

/* Applies VIGIL_* variables from envp (NULL-terminated, as environ).  A
 * VIGIL_ variable that names no setting is an error, except those listed in
 * config.c as belonging to tools (VIGIL_SHARED_DIR, VIGIL_BINARY, ...). */
vigil_status config_apply_env(vigil_config *cfg, char *const *envp, vigil_error *err);

/* Applies one flag: name without the leading dashes ("http-port") and its
 * value.  VIGIL_ERR_NOT_FOUND when no setting has that flag. */
vigil_status config_apply_flag(vigil_config *cfg, const char *flag, const char *value, vigil_error *err);

/* Checks cross-field rules (ports in range, enums valid). */
vigil_status config_validate(const vigil_config *cfg, vigil_error *err);

/* The node_type label of the per-model metrics: metrics.node_type when set,
 * else "cloud" under --role cloud and "edge" otherwise (an edge box is the
 * common single-node deployment).  A static string. */
const char *config_node_type(const vigil_config *cfg);

/* Calls fn for each setting with its flag name and a one-line help; used by
 * `vigil serve --help`. */
void config_describe(void (*fn)(const char *flag, const char *value_name, const char *help, void *user), void *user);

/* Writes where a setting can be changed, derived from its table entry:
 * "setting http.port, flag --http-port, variable VIGIL_HTTP_PORT".  For
 * messages that tell the user what to change; an unknown path is written
 * as "setting <path>". */
void config_setting_sources(const char *path, char *out, size_t size);

#endif
