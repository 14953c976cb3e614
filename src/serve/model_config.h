/*
 * model_config.h - a model's optional config.yaml in the repository
 * (models/<name>/config.yaml): backend, task, batching, instances, labels,
 * detection thresholds, response caching and the JPEG decode scale.
 *
 * Every key is known; an unknown key or a value of the wrong kind fails the
 * model's load with a message naming the key and the file line, and the rest
 * of the repository keeps serving.
 */
#ifndef VIGIL_SERVE_MODEL_CONFIG_H
#define VIGIL_SERVE_MODEL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/status.h"

#define MODEL_CONFIG_MAX_PREFERRED 8

typedef enum model_task { MODEL_TASK_AUTO = 0, MODEL_TASK_RAW, MODEL_TASK_DETECT } model_task;

#define MODEL_ESCALATION_MAX_CLASSES 16

/* The `escalation:` section (docs/EDGE.md): which frames an edge vigil sends
 * to the cloud.  Plain data: serve only reads it; the edge's policy
 * (src/edge/policy.c) applies it to each finished detection. */
typedef struct model_escalation {
    int enabled;              /* 1 when the section is present (and not enabled: false) */
    double score_band[2];     /* closed band [lo, hi] of uncertain scores; default [0.25, 0.6] */
    char classes[MODEL_ESCALATION_MAX_CLASSES][64]; /* classes of interest: ids ("0") or names */
    size_t n_classes;
    double sample_rate;       /* [0, 1]: share of the other frames sent anyway; default 0 */
    double rate_limit_per_source; /* events per second per source (a token bucket); 0 = unlimited; default 1 */
    int64_t priority_class;   /* the priority class of each reason (0 highest); defaults 0, 1, 3 */
    int64_t priority_band;
    int64_t priority_sample;
} model_escalation;

typedef struct model_config {
    char backend[32];        /* "cpu" (default) */
    model_task task;         /* AUTO = detect when the model's metadata says task: detect */
    int64_t max_batch_size;  /* 0 = no batch dimension; >= 1: dim 0 is the batch; -1 = unset (the
                                repository picks 8 for a symbolic batch dimension, else 1) */
    int dynamic_batching;    /* 1 when the dynamic_batching section is present */
    int64_t max_queue_delay_us;
    int64_t preferred_batch_sizes[MODEL_CONFIG_MAX_PREFERRED];
    size_t n_preferred;
    int64_t instances;       /* worker threads, each with its own compiled model (default 1) */
    char labels[1024];       /* labels file, relative to the model directory; "" = model metadata */
    double conf_threshold;   /* < 0 = detector default */
    double iou_threshold;    /* < 0 = detector default */
    int response_cache;      /* 1 = answers are kept in the server's response cache */
    int jpeg_reduced_scale;  /* 1 = detect decodes big JPEGs at 1/2..1/8 scale (faster, drifts from the
                                reference); 0 (default) = full-size decode, the reference's pixels */
    model_escalation escalation;
    /* The `scheduler:` section: how an accelerator's own scheduler shares its
     * device between models (Hailo: HailoRT's model scheduler); -1 = the
     * backend's default.  The CPU backend has no such scheduler and ignores it. */
    int64_t sched_priority;   /* 0..31, higher first (HailoRT's default 16) */
    int64_t sched_timeout_ms; /* longest wait for `threshold` frames before the model gets the device */
    int64_t sched_threshold;  /* frames queued before the model asks for the device */
} model_config;

void model_config_defaults(model_config *cfg);
/* Parses a YAML document; name labels messages ("models/m/config.yaml"). */
vigil_status model_config_parse(const char *text, size_t len, const char *name, model_config *cfg,
                                vigil_error *err);
/* Reads path; a missing file leaves the defaults and is not an error. */
vigil_status model_config_load(const char *path, model_config *cfg, vigil_error *err);

#endif
