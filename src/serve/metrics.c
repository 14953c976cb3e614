/*
 * metrics.c - counters and histograms behind one mutex, rendered as
 * Prometheus text.  Series are created on first use and live until the
 * server stops (a model that is unloaded keeps its history, as Prometheus
 * expects of counters).  The number of series is bounded: routes are
 * patterns and models are repository entries, so labels cannot explode with
 * client input.
 */
#include "serve/metrics.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

#define METRICS_MAX_SERIES 512

static const double seconds_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128};
#define MAX_BUCKETS 16

typedef struct histogram {
    uint64_t buckets[MAX_BUCKETS]; /* non-cumulative; rendered cumulative */
    uint64_t count;
    double sum;
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

vigil_status metrics_create(metrics **out, vigil_error *err) {
    metrics *m = vigil_calloc(1, sizeof *m);
    if (!m) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "metrics: out of memory");
    pthread_mutex_init(&m->lock, NULL);
    *out = m;
    return VIGIL_OK;
}

void metrics_destroy(metrics *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_models; i++) vigil_free(m->models[i]);
    pthread_mutex_destroy(&m->lock);
    vigil_free(m);
}

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

void metrics_observe(metrics *m, const char *model, metrics_histogram which, double value) {
    pthread_mutex_lock(&m->lock);
    model_series *s = model_series_get(m, model);
    if (s) {
        histogram *h = &s->hists[which];
        size_t b = 0;
        while (b < hist_defs[which].n_bounds && value > hist_defs[which].bounds[b]) b++;
        if (b < hist_defs[which].n_bounds) h->buckets[b]++;
        h->count++;
        h->sum += value;
    }
    pthread_mutex_unlock(&m->lock);
}

static void render_histogram(textbuf *out, const char *name, const char *model, const histogram *h,
                             const double *bounds, size_t n_bounds) {
    uint64_t cumulative = 0;
    for (size_t b = 0; b < n_bounds; b++) {
        cumulative += h->buckets[b];
        textbuf_printf(out, "%s_bucket{model=\"%s\",le=\"%g\"} %llu\n", name, model, bounds[b],
                       (unsigned long long)cumulative);
    }
    textbuf_printf(out, "%s_bucket{model=\"%s\",le=\"+Inf\"} %llu\n", name, model, (unsigned long long)h->count);
    textbuf_printf(out, "%s_sum{model=\"%s\"} %.9g\n", name, model, h->sum);
    textbuf_printf(out, "%s_count{model=\"%s\"} %llu\n", name, model, (unsigned long long)h->count);
}

void metrics_render(metrics *m, textbuf *out) {
    pthread_mutex_lock(&m->lock);
    textbuf_printf(out, "# HELP vigil_http_requests_total HTTP requests answered, by route and status.\n"
                        "# TYPE vigil_http_requests_total counter\n");
    for (size_t i = 0; i < m->n_http; i++)
        textbuf_printf(out, "vigil_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n", m->http[i].route,
                       m->http[i].code, (unsigned long long)m->http[i].count);
    textbuf_printf(out, "# HELP vigil_inference_requests_total Inference requests by model and outcome.\n"
                        "# TYPE vigil_inference_requests_total counter\n");
    for (size_t i = 0; i < m->n_models; i++)
        for (int o = 0; o < METRICS_OUTCOME_COUNT; o++)
            textbuf_printf(out, "vigil_inference_requests_total{model=\"%s\",outcome=\"%s\"} %llu\n",
                           m->models[i]->model, outcome_names[o], (unsigned long long)m->models[i]->outcomes[o]);
    textbuf_printf(out, "# HELP vigil_cache_requests_total Response cache lookups by model and result.\n"
                        "# TYPE vigil_cache_requests_total counter\n");
    for (size_t i = 0; i < m->n_models; i++)
        for (int hit = 0; hit < 2; hit++)
            textbuf_printf(out, "vigil_cache_requests_total{model=\"%s\",result=\"%s\"} %llu\n", m->models[i]->model,
                           hit ? "hit" : "miss", (unsigned long long)m->models[i]->cache[hit]);
    for (int h = 0; h < METRICS_HISTOGRAM_COUNT; h++) {
        textbuf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", hist_defs[h].name, hist_defs[h].help,
                       hist_defs[h].name);
        for (size_t i = 0; i < m->n_models; i++)
            render_histogram(out, hist_defs[h].name, m->models[i]->model, &m->models[i]->hists[h],
                             hist_defs[h].bounds, hist_defs[h].n_bounds);
    }
    pthread_mutex_unlock(&m->lock);
}
