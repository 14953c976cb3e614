/*
 * metrics.c - counters and histograms behind one mutex, rendered as
 * Prometheus text.  Series are created on first use and live until the
 * server stops (a model that is unloaded keeps its history, as Prometheus
 * expects of counters).  The number of series is bounded: routes are
 * patterns and models are repository entries, so labels cannot explode with
 * client input.
 *
 * Every per-model series carries model then node_type (edge|cloud) as its
 * first labels, so one dashboard or alert rule reads both kinds of node.
 * The latency buckets have an edge at exactly 0.5 s: the shipped alert
 * (p90 above 0.5 s, deploy/prometheus/rules.yml) then compares against a
 * bucket bound, not an interpolation inside a bucket.
 *
 * OpenMetrics: when the scraper asks for it, each histogram bucket shows the
 * trace id of the last traced observation that fell in it (an exemplar), so
 * a slow bucket on a dashboard leads to one trace.  The rest of the format
 * difference (counter family names, "# EOF") is a rewrite of the whole
 * body in metrics_to_openmetrics, so modules beside this one need not know.
 */
#include "serve/metrics.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"

#define METRICS_MAX_SERIES 512

static const double seconds_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128};
#define MAX_BUCKETS 16

#define TRACE_ID_HEX 32

/* The last traced observation of one bucket (OpenMetrics exemplar). */
typedef struct exemplar {
    char trace_id[TRACE_ID_HEX + 1]; /* "" = none yet */
    double value;
    double unix_seconds;
} exemplar;

typedef struct histogram {
    uint64_t buckets[MAX_BUCKETS]; /* non-cumulative; rendered cumulative */
    uint64_t count;
    double sum;
    exemplar exemplars[MAX_BUCKETS + 1]; /* per bucket, the last one +Inf */
} histogram;

typedef struct http_series {
    char route[64];
    int code;
    uint64_t count;
} http_series;

typedef struct model_series {
    char model[128];
    uint64_t outcomes[METRICS_OUTCOME_COUNT];
    uint64_t cache[2]; /* misses, hits */
    histogram hists[METRICS_HISTOGRAM_COUNT];
} model_series;

struct metrics {
    pthread_mutex_t lock;
    char node_type[16]; /* the node_type label value */
    http_series http[METRICS_MAX_SERIES];
    size_t n_http;
    model_series *models[METRICS_MAX_SERIES];
    size_t n_models;
};

static const char *const outcome_names[] = {"success", "error", "timeout", "rejected"};
static const struct {
    const char *name;
    const char *help;
    const double *bounds;
    size_t n_bounds;
} hist_defs[] = {
    {"vigil_inference_queue_seconds", "Time requests waited in the model queue.", seconds_bounds, 16},
    {"vigil_inference_compute_seconds", "Time the backend spent on the batch that held the request.",
     seconds_bounds, 16},
    {"vigil_inference_total_seconds", "Time from queueing to completion.", seconds_bounds, 16},
    {"vigil_batch_size", "Batch items per backend run.", batch_bounds, 8},
};

vigil_status metrics_create(metrics **out, const char *node_type, vigil_error *err) {
    metrics *m = vigil_calloc(1, sizeof *m);
    if (!m) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "metrics: out of memory");
    pthread_mutex_init(&m->lock, NULL);
    snprintf(m->node_type, sizeof m->node_type, "%s", node_type);
    *out = m;
    return VIGIL_OK;
}

void metrics_destroy(metrics *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_models; i++) vigil_free(m->models[i]);
    pthread_mutex_destroy(&m->lock);
    vigil_free(m);
}

const char *metrics_node_type(const metrics *m) { return m->node_type; }

void metrics_http_request(metrics *m, const char *route, int code) {
    pthread_mutex_lock(&m->lock);
    size_t i = 0;
    while (i < m->n_http && !(m->http[i].code == code && strcmp(m->http[i].route, route) == 0)) i++;
    if (i == m->n_http && m->n_http < METRICS_MAX_SERIES) {
        snprintf(m->http[i].route, sizeof m->http[i].route, "%s", route);
        m->http[i].code = code;
        m->n_http++;
    }
    if (i < m->n_http) m->http[i].count++;
    pthread_mutex_unlock(&m->lock);
}

/* The series for model, created on first use; NULL when full. Lock held. */
static model_series *model_series_get(metrics *m, const char *model) {
    for (size_t i = 0; i < m->n_models; i++)
        if (strcmp(m->models[i]->model, model) == 0) return m->models[i];
    if (m->n_models == METRICS_MAX_SERIES) return NULL;
    model_series *s = vigil_calloc(1, sizeof *s);
    if (!s) return NULL;
    snprintf(s->model, sizeof s->model, "%s", model);
    m->models[m->n_models++] = s;
    return s;
}

void metrics_inference(metrics *m, const char *model, metrics_outcome outcome) {
    pthread_mutex_lock(&m->lock);
    model_series *s = model_series_get(m, model);
    if (s) s->outcomes[outcome]++;
    pthread_mutex_unlock(&m->lock);
}

void metrics_cache(metrics *m, const char *model, int hit) {
    pthread_mutex_lock(&m->lock);
    model_series *s = model_series_get(m, model);
    if (s) s->cache[hit ? 1 : 0]++;
    pthread_mutex_unlock(&m->lock);
}

/* A W3C trace id: 32 lower-case hex digits, not all zero. */
static int trace_id_valid(const char *hex) {
    if (!hex) return 0;
    int nonzero = 0;
    for (int i = 0; i < TRACE_ID_HEX; i++) {
        char c = hex[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
        nonzero |= c != '0';
    }
    return hex[TRACE_ID_HEX] == '\0' && nonzero;
}

void metrics_observe_traced(metrics *m, const char *model, metrics_histogram which, double value,
                            const char *trace_id_hex) {
    int traced = trace_id_valid(trace_id_hex);
    struct timespec now = {0};
    if (traced) clock_gettime(CLOCK_REALTIME, &now);
    pthread_mutex_lock(&m->lock);
    model_series *s = model_series_get(m, model);
    if (s) {
        histogram *h = &s->hists[which];
        size_t b = 0;
        while (b < hist_defs[which].n_bounds && value > hist_defs[which].bounds[b]) b++;
        if (b < hist_defs[which].n_bounds) h->buckets[b]++;
        h->count++;
        h->sum += value;
        if (traced) {
            exemplar *e = &h->exemplars[b]; /* b == n_bounds: the +Inf bucket */
            memcpy(e->trace_id, trace_id_hex, TRACE_ID_HEX + 1);
            e->value = value;
            e->unix_seconds = (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
        }
    }
    pthread_mutex_unlock(&m->lock);
}

void metrics_observe(metrics *m, const char *model, metrics_histogram which, double value) {
    metrics_observe_traced(m, model, which, value, NULL);
}

/* One bucket line; with_exemplars adds " # {trace_id=...} value time". */
static void render_bucket(textbuf *out, const char *name, const char *labels, const char *le, uint64_t count,
                          const exemplar *e, int with_exemplars) {
    textbuf_printf(out, "%s_bucket{%s,le=\"%s\"} %llu", name, labels, le, (unsigned long long)count);
    if (with_exemplars && e->trace_id[0])
        textbuf_printf(out, " # {trace_id=\"%s\"} %.9g %.3f", e->trace_id, e->value, e->unix_seconds);
    textbuf_printf(out, "\n");
}

static void render_histogram(textbuf *out, const char *name, const char *labels, const histogram *h,
                             const double *bounds, size_t n_bounds, int with_exemplars) {
    uint64_t cumulative = 0;
    for (size_t b = 0; b < n_bounds; b++) {
        cumulative += h->buckets[b];
        char le[32];
        snprintf(le, sizeof le, "%g", bounds[b]);
        render_bucket(out, name, labels, le, cumulative, &h->exemplars[b], with_exemplars);
    }
    render_bucket(out, name, labels, "+Inf", h->count, &h->exemplars[n_bounds], with_exemplars);
    textbuf_printf(out, "%s_sum{%s} %.9g\n", name, labels, h->sum);
    textbuf_printf(out, "%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
}

void metrics_render(metrics *m, textbuf *out, int with_exemplars) {
    pthread_mutex_lock(&m->lock);
    textbuf_printf(out, "# HELP vigil_http_requests_total HTTP requests answered, by route and status.\n"
                        "# TYPE vigil_http_requests_total counter\n");
    for (size_t i = 0; i < m->n_http; i++)
        textbuf_printf(out, "vigil_http_requests_total{node_type=\"%s\",route=\"%s\",code=\"%d\"} %llu\n",
                       m->node_type, m->http[i].route, m->http[i].code, (unsigned long long)m->http[i].count);
    textbuf_printf(out, "# HELP vigil_inference_requests_total Inference requests by model and outcome.\n"
                        "# TYPE vigil_inference_requests_total counter\n");
    for (size_t i = 0; i < m->n_models; i++)
        for (int o = 0; o < METRICS_OUTCOME_COUNT; o++)
            textbuf_printf(out, "vigil_inference_requests_total{model=\"%s\",node_type=\"%s\",outcome=\"%s\"} %llu\n",
                           m->models[i]->model, m->node_type, outcome_names[o],
                           (unsigned long long)m->models[i]->outcomes[o]);
    textbuf_printf(out, "# HELP vigil_cache_requests_total Response cache lookups by model and result.\n"
                        "# TYPE vigil_cache_requests_total counter\n");
    for (size_t i = 0; i < m->n_models; i++)
        for (int hit = 0; hit < 2; hit++)
            textbuf_printf(out, "vigil_cache_requests_total{model=\"%s\",node_type=\"%s\",result=\"%s\"} %llu\n",
                           m->models[i]->model, m->node_type, hit ? "hit" : "miss",
                           (unsigned long long)m->models[i]->cache[hit]);
    for (int h = 0; h < METRICS_HISTOGRAM_COUNT; h++) {
        textbuf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", hist_defs[h].name, hist_defs[h].help,
                       hist_defs[h].name);
        for (size_t i = 0; i < m->n_models; i++) {
            char labels[192];
            snprintf(labels, sizeof labels, "model=\"%s\",node_type=\"%s\"", m->models[i]->model, m->node_type);
            render_histogram(out, hist_defs[h].name, labels, &m->models[i]->hists[h], hist_defs[h].bounds,
                             hist_defs[h].n_bounds, with_exemplars);
        }
    }
    pthread_mutex_unlock(&m->lock);
}

/* ------------------------------------------------------------ OpenMetrics */

/* The q of one media range's parameters ("version=1.0.0;q=0.5"): 1 unless
 * given. */
static double accept_q(const char *params, size_t len) {
    for (size_t i = 0; i + 2 < len; i++)
        if ((i == 0 || params[i - 1] == ';' || params[i - 1] == ' ') && params[i] == 'q' && params[i + 1] == '=')
            return strtod(params + i + 2, NULL);
    return 1.0;
}

int metrics_accepts_openmetrics(const char *accept) {
    if (!accept) return 0;
    double q_open = 0, q_text = 0;
    for (const char *at = accept; *at;) {
        size_t len = strcspn(at, ",");
        const char *type = at;
        while (type < at + len && *type == ' ') type++;
        size_t type_len = strcspn(type, ";,");
        if (type + type_len > at + len) type_len = (size_t)(at + len - type);
        while (type_len && type[type_len - 1] == ' ') type_len--;
        double q = accept_q(type + type_len, (size_t)(at + len - (type + type_len)));
        if (type_len == 28 && strncmp(type, "application/openmetrics-text", 28) == 0 && q > q_open) q_open = q;
        if (type_len == 10 && strncmp(type, "text/plain", 10) == 0 && q > q_text) q_text = q;
        at += len;
        if (*at == ',') at++;
    }
    return q_open > 0 && q_open >= q_text;
}

/* The length of the metric name that starts a "# HELP name ..." or
 * "# TYPE name ..." line (0 when the line is neither). */
static size_t family_name(const char *line, size_t len, int *is_type) {
    if (len < 8 || (strncmp(line, "# HELP ", 7) != 0 && strncmp(line, "# TYPE ", 7) != 0)) return 0;
    *is_type = line[2] == 'T';
    size_t n = 0;
    while (7 + n < len && line[7 + n] != ' ' && line[7 + n] != '\n') n++;
    return n;
}

/* 1 when line (ending before end) names a counter family called *_total:
 * its own # TYPE line, or the # TYPE line right after its # HELP. */
static int counter_family_line(const char *line, const char *end) {
    int is_type = 0;
    size_t len = (size_t)(end - line);
    size_t n = family_name(line, len, &is_type);
    if (n < 7 || strncmp(line + 7 + n - 6, "_total", 6) != 0) return 0;
    const char *type_line = line;
    if (!is_type) {
        const char *eol = memchr(line, '\n', len);
        if (!eol) return 0;
        type_line = eol + 1;
        int next_is_type = 0;
        size_t next_n = family_name(type_line, (size_t)(end - type_line), &next_is_type);
        if (!next_is_type || next_n != n || strncmp(type_line + 7, line + 7, n) != 0) return 0;
    }
    return (size_t)(end - type_line) >= 7 + n + 8 && strncmp(type_line + 7 + n, " counter", 8) == 0 &&
           (type_line + 7 + n + 8 == end || type_line[7 + n + 8] == '\n');
}

void metrics_to_openmetrics(textbuf *body) {
    if (body->data && !body->status) {
        char *read = body->data, *write = body->data, *end = body->data + body->len;
        while (read < end) {
            const char *eol = memchr(read, '\n', (size_t)(end - read));
            size_t len = eol ? (size_t)(eol - read) + 1 : (size_t)(end - read);
            if (counter_family_line(read, end)) {
                int is_type = 0;
                size_t keep = 7 + family_name(read, len, &is_type) - 6; /* up to "_total" */
                memmove(write, read, keep);
                memmove(write + keep, read + keep + 6, len - keep - 6);
                write += len - 6;
            } else {
                memmove(write, read, len);
                write += len;
            }
            read += len;
        }
        body->len = (size_t)(write - body->data);
        if (body->len < body->cap) body->data[body->len] = '\0'; /* textbuf's promise; full: none */
    }
    textbuf_printf(body, "# EOF\n");
}
