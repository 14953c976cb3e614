/*
 * model_config.c - config.yaml of one model, read with libyaml's document API.
 *
 * The document is loaded whole (it is small: capped at 64 KiB) and walked as
 * a tree; every mapping key is looked up in the table for its level, so an
 * unknown or misplaced key is reported with its line.
 */
#include "serve/model_config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/alloc.h"

#define MODEL_CONFIG_MAX_BYTES (64 * 1024)

typedef struct yaml_ctx {
    yaml_document_t *doc;
    const char *name;
    model_config *cfg;
    vigil_error *err;
} yaml_ctx;

void model_config_defaults(model_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->backend, sizeof cfg->backend, "cpu");
    cfg->task = MODEL_TASK_AUTO;
    cfg->max_batch_size = -1;
    cfg->instances = 1;
    cfg->conf_threshold = -1;
    cfg->iou_threshold = -1;
    cfg->sched_priority = cfg->sched_timeout_ms = cfg->sched_threshold = -1;
    cfg->escalation.score_band[0] = 0.25;
    cfg->escalation.score_band[1] = 0.6;
    cfg->escalation.rate_limit_per_source = 1;
    cfg->escalation.priority_class = 0;
    cfg->escalation.priority_band = 1;
    cfg->escalation.priority_sample = 3;
}

static unsigned long node_line(const yaml_node_t *node) { return (unsigned long)node->start_mark.line + 1; }

static vigil_status bad(yaml_ctx *c, const yaml_node_t *node, const char *key, const char *what) {
    return vigil_error_set(c->err, VIGIL_ERR_INVALID_ARGUMENT, "%s:%lu: %s: %s", c->name, node_line(node), key,
                           what);
}

static const char *scalar_text(const yaml_node_t *node) {
    return node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
}

static vigil_status get_int(yaml_ctx *c, const yaml_node_t *node, const char *key, int64_t lo, int64_t hi,
                            int64_t *out) {
    const char *text = scalar_text(node);
    if (!text) return bad(c, node, key, "expected an integer");
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end) return bad(c, node, key, "expected an integer");
    if (v < lo || v > hi) {
        char what[128];
        snprintf(what, sizeof what, "%lld is outside [%lld, %lld]", v, (long long)lo, (long long)hi);
        return bad(c, node, key, what);
    }
    *out = v;
    return VIGIL_OK;
}

static vigil_status get_prob(yaml_ctx *c, const yaml_node_t *node, const char *key, double *out) {
    const char *text = scalar_text(node);
    char *end = NULL;
    double v = text ? strtod(text, &end) : NAN;
    if (!text || end == text || *end || !(v >= 0.0 && v <= 1.0)) return bad(c, node, key, "expected a number in [0, 1]");
    *out = v;
    return VIGIL_OK;
}

static vigil_status get_str(yaml_ctx *c, const yaml_node_t *node, const char *key, char *out, size_t size) {
    const char *text = scalar_text(node);
    if (!text) return bad(c, node, key, "expected a string");
    if (strlen(text) >= size) return bad(c, node, key, "value too long");
    snprintf(out, size, "%s", text);
    return VIGIL_OK;
}

typedef vigil_status (*key_fn)(yaml_ctx *c, const yaml_node_t *value, const char *key);

typedef struct key_entry {
    const char *key;
    key_fn fn;
} key_entry;

/* Calls the table entry for each key of the mapping node; prefix names the
 * section in messages. */
static vigil_status walk_mapping(yaml_ctx *c, const yaml_node_t *node, const char *prefix, const key_entry *table,
                                 size_t n) {
    if (node->type != YAML_MAPPING_NODE) {
        return vigil_error_set(c->err, VIGIL_ERR_INVALID_ARGUMENT, "%s:%lu: %s must be a mapping", c->name,
                               node_line(node), prefix[0] ? prefix : "the document");
    }
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        const char *ktext = k ? scalar_text(k) : NULL;
        if (!ktext || !v)
            return vigil_error_set(c->err, VIGIL_ERR_INVALID_ARGUMENT, "%s:%lu: keys must be plain strings", c->name,
                                   k ? node_line(k) : 0);
        char full[160];
        snprintf(full, sizeof full, "%s%s%s", prefix, prefix[0] ? "." : "", ktext);
        const key_entry *e = NULL;
        for (size_t i = 0; i < n && !e; i++)
            if (strcmp(table[i].key, ktext) == 0) e = &table[i];
        if (!e)
            return vigil_error_set(c->err, VIGIL_ERR_INVALID_ARGUMENT, "%s:%lu: unknown key '%s'", c->name,
                                   node_line(k), full);
        vigil_status st = e->fn(c, v, full);
        if (st) return st;
    }
    return VIGIL_OK;
}

static vigil_status key_backend(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return get_str(c, v, key, c->cfg->backend, sizeof c->cfg->backend);
}

static vigil_status key_task(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    const char *text = scalar_text(v);
    if (text && strcmp(text, "detect") == 0) c->cfg->task = MODEL_TASK_DETECT;
    else if (text && strcmp(text, "raw") == 0) c->cfg->task = MODEL_TASK_RAW;
    else return bad(c, v, key, "expected detect or raw");
    return VIGIL_OK;
}

static vigil_status key_max_batch(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return get_int(c, v, key, 0, 1024, &c->cfg->max_batch_size);
}

static vigil_status key_instances(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return get_int(c, v, key, 1, 64, &c->cfg->instances);
}

static vigil_status key_labels(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    vigil_status st = get_str(c, v, key, c->cfg->labels, sizeof c->cfg->labels);
    if (!st && (c->cfg->labels[0] == '/' || strstr(c->cfg->labels, "..")))
        return bad(c, v, key, "must be a file name inside the model directory");
    return st;
}

static vigil_status key_delay(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return get_int(c, v, key, 0, 10000000, &c->cfg->max_queue_delay_us);
}

static vigil_status key_preferred(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    if (v->type != YAML_SEQUENCE_NODE) return bad(c, v, key, "expected a list of batch sizes");
    c->cfg->n_preferred = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        if (c->cfg->n_preferred == MODEL_CONFIG_MAX_PREFERRED) return bad(c, v, key, "at most 8 sizes");
        yaml_node_t *item = yaml_document_get_node(c->doc, *it);
        vigil_status st = get_int(c, item ? item : v, key, 1, 1024, &c->cfg->preferred_batch_sizes[c->cfg->n_preferred]);
        if (st) return st;
        c->cfg->n_preferred++;
    }
    return VIGIL_OK;
}

static const key_entry batching_keys[] = {{"max_queue_delay_us", key_delay}, {"preferred_batch_sizes", key_preferred}};

static vigil_status key_batching(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    c->cfg->dynamic_batching = 1;
    if (v->type == YAML_SCALAR_NODE && scalar_text(v)[0] == '\0') return VIGIL_OK; /* "dynamic_batching:" */
    return walk_mapping(c, v, key, batching_keys, sizeof batching_keys / sizeof batching_keys[0]);
}

static vigil_status key_conf(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return get_prob(c, v, key, &c->cfg->conf_threshold);
}

static vigil_status key_iou(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return get_prob(c, v, key, &c->cfg->iou_threshold);
}

static const key_entry threshold_keys[] = {{"conf", key_conf}, {"iou", key_iou}};

static vigil_status key_thresholds(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return walk_mapping(c, v, key, threshold_keys, sizeof threshold_keys / sizeof threshold_keys[0]);
}

static vigil_status get_bool(yaml_ctx *c, const yaml_node_t *node, const char *key, int *out) {
    const char *text = scalar_text(node);
    if (text && (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)) {
        *out = text[0] == 't';
        return VIGIL_OK;
    }
    return bad(c, node, key, "expected true or false");
}

static vigil_status key_cache(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return get_bool(c, v, key, &c->cfg->response_cache);
}

static vigil_status key_jpeg_reduced_scale(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return get_bool(c, v, key, &c->cfg->jpeg_reduced_scale);
}

/* ------------------------------------------------------------ scheduler */

static vigil_status key_sched_priority(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return get_int(c, v, key, 0, 31, &c->cfg->sched_priority);
}
static vigil_status key_sched_timeout(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return get_int(c, v, key, 0, 600000, &c->cfg->sched_timeout_ms);
}
static vigil_status key_sched_threshold(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return get_int(c, v, key, 1, 1024, &c->cfg->sched_threshold);
}

static const key_entry scheduler_keys[] = {
    {"priority", key_sched_priority}, {"timeout_ms", key_sched_timeout}, {"threshold", key_sched_threshold}};

static vigil_status key_scheduler(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return walk_mapping(c, v, key, scheduler_keys, sizeof scheduler_keys / sizeof scheduler_keys[0]);
}

/* ------------------------------------------------------------ escalation */

static vigil_status key_esc_enabled(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return get_bool(c, v, key, &c->cfg->escalation.enabled);
}

static vigil_status key_esc_band(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    model_escalation *e = &c->cfg->escalation;
    if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top - v->data.sequence.items.start != 2)
        return bad(c, v, key, "expected [low, high]");
    for (int i = 0; i < 2; i++) {
        yaml_node_t *item = yaml_document_get_node(c->doc, v->data.sequence.items.start[i]);
        vigil_status st = get_prob(c, item ? item : v, key, &e->score_band[i]);
        if (st) return st;
    }
    if (e->score_band[0] > e->score_band[1]) return bad(c, v, key, "low must not exceed high");
    return VIGIL_OK;
}

static vigil_status key_esc_classes(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    model_escalation *e = &c->cfg->escalation;
    if (v->type != YAML_SEQUENCE_NODE) return bad(c, v, key, "expected a list of class ids or names");
    e->n_classes = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        if (e->n_classes == MODEL_ESCALATION_MAX_CLASSES) return bad(c, v, key, "at most 16 classes");
        yaml_node_t *item = yaml_document_get_node(c->doc, *it);
        vigil_status st = get_str(c, item ? item : v, key, e->classes[e->n_classes], sizeof e->classes[0]);
        if (st) return st;
        if (!e->classes[e->n_classes][0]) return bad(c, item ? item : v, key, "empty class");
        e->n_classes++;
    }
    return VIGIL_OK;
}

static vigil_status key_esc_sample(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return get_prob(c, v, key, &c->cfg->escalation.sample_rate);
}

static vigil_status key_esc_rate(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    const char *text = scalar_text(v);
    char *end = NULL;
    double r = text ? strtod(text, &end) : NAN;
    if (!text || end == text || *end || !(r >= 0 && r <= 1e6)) return bad(c, v, key, "expected a number in [0, 1e6]");
    c->cfg->escalation.rate_limit_per_source = r;
    return VIGIL_OK;
}

static vigil_status key_prio_class(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return get_int(c, v, key, 0, 3, &c->cfg->escalation.priority_class);
}
static vigil_status key_prio_band(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return get_int(c, v, key, 0, 3, &c->cfg->escalation.priority_band);
}
static vigil_status key_prio_sample(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return get_int(c, v, key, 0, 3, &c->cfg->escalation.priority_sample);
}

static const key_entry priority_keys[] = {{"class", key_prio_class}, {"band", key_prio_band}, {"sample", key_prio_sample}};

static vigil_status key_esc_priority(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    return walk_mapping(c, v, key, priority_keys, sizeof priority_keys / sizeof priority_keys[0]);
}

static const key_entry escalation_keys[] = {
    {"enabled", key_esc_enabled},       {"score_band", key_esc_band},   {"classes", key_esc_classes},
    {"sample_rate", key_esc_sample},    {"rate_limit_per_source", key_esc_rate}, {"priority", key_esc_priority},
};

static vigil_status key_escalation(yaml_ctx *c, const yaml_node_t *v, const char *key) {
    c->cfg->escalation.enabled = 1; /* "enabled: false" below turns it off again */
    if (v->type == YAML_SCALAR_NODE && scalar_text(v)[0] == '\0') return VIGIL_OK; /* "escalation:" = defaults */
    return walk_mapping(c, v, key, escalation_keys, sizeof escalation_keys / sizeof escalation_keys[0]);
}

static const key_entry top_keys[] = {
    {"escalation", key_escalation}, {"scheduler", key_scheduler},
    {"backend", key_backend},     {"task", key_task},         {"max_batch_size", key_max_batch},
    {"dynamic_batching", key_batching}, {"instances", key_instances}, {"labels", key_labels},
    {"thresholds", key_thresholds}, {"response_cache", key_cache}, {"jpeg_reduced_scale", key_jpeg_reduced_scale},
};

vigil_status model_config_parse(const char *text, size_t len, const char *name, model_config *cfg,
                                vigil_error *err) {
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "%s: yaml init", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    vigil_status st = VIGIL_OK;
    if (!yaml_parser_load(&parser, &doc)) {
        st = vigil_error_set(err, VIGIL_ERR_PARSE, "%s:%lu: %s", name, (unsigned long)parser.problem_mark.line + 1,
                             parser.problem ? parser.problem : "invalid YAML");
        yaml_parser_delete(&parser);
        return st;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && !(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0)) {
        yaml_ctx c = {.doc = &doc, .name = name, .cfg = cfg, .err = err};
        st = walk_mapping(&c, root, "", top_keys, sizeof top_keys / sizeof top_keys[0]);
    }
    if (!st && cfg->dynamic_batching && cfg->max_batch_size == 0)
        st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s: dynamic_batching needs max_batch_size >= 1", name);
    for (size_t i = 0; !st && i < cfg->n_preferred; i++)
        if (cfg->max_batch_size > 0 && cfg->preferred_batch_sizes[i] > cfg->max_batch_size)
            st = vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                 "%s: preferred batch size %lld exceeds max_batch_size %lld", name,
                                 (long long)cfg->preferred_batch_sizes[i], (long long)cfg->max_batch_size);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return st;
}

vigil_status model_config_load(const char *path, model_config *cfg, vigil_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return VIGIL_OK;
        return vigil_error_set(err, VIGIL_ERR_IO, "%s: %s", path, strerror(errno));
    }
    char *text = vigil_malloc(MODEL_CONFIG_MAX_BYTES + 1);
    vigil_status st = VIGIL_OK;
    if (!text) {
        st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "%s: out of memory", path);
    } else {
        size_t len = fread(text, 1, MODEL_CONFIG_MAX_BYTES + 1, f);
        if (len > MODEL_CONFIG_MAX_BYTES)
            st = vigil_error_set(err, VIGIL_ERR_LIMIT, "%s: larger than %d bytes", path, MODEL_CONFIG_MAX_BYTES);
        else
            st = model_config_parse(text, len, path, cfg, err);
    }
    vigil_free(text);
    fclose(f);
    return st;
}
