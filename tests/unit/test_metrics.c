/*
 * test_metrics.c - the metrics module's exposition: the node_type label on
 * every per-model series, the latency bucket edge at 0.5 s, exemplars in
 * OpenMetrics output (and never in the Prometheus text format), the Accept
 * negotiation, and the rewrite of a whole body into OpenMetrics (counter
 * family names without _total, "# EOF" at the end).
 */
#include <string.h>

#include "serve/metrics.h"
#include "serve/textbuf.h"
#include "testing.h"

#define TRACE "4bf92f3577b34da6a3ce929d0e0e4736"

static void test_node_type_label(void) {
    metrics *m = NULL;
    vigil_error err = {0};
    CHECK_EQ_INT(metrics_create(&m, "cloud", &err), VIGIL_OK);
    CHECK_STR(metrics_node_type(m), "cloud");
    metrics_inference(m, "affine", METRICS_SUCCESS);
    metrics_cache(m, "affine", 1);
    metrics_observe(m, "affine", METRICS_TOTAL_SECONDS, 0.5);
    textbuf out;
    textbuf_init(&out, 1 << 20);
    metrics_render(m, &out, 0);
    CHECK(strstr(out.data, "vigil_inference_requests_total{model=\"affine\",node_type=\"cloud\",outcome=\"success\"} 1\n"));
    CHECK(strstr(out.data, "vigil_cache_requests_total{model=\"affine\",node_type=\"cloud\",result=\"hit\"} 1\n"));
    /* 0.5 is a bucket edge and lands in it (le is inclusive) */
    CHECK(strstr(out.data, "vigil_inference_total_seconds_bucket{model=\"affine\",node_type=\"cloud\",le=\"0.5\"} 1\n"));
    CHECK(strstr(out.data, "vigil_inference_total_seconds_bucket{model=\"affine\",node_type=\"cloud\",le=\"0.25\"} 0\n"));
    CHECK(strstr(out.data, "vigil_batch_size_count{model=\"affine\",node_type=\"cloud\"} 0\n"));
    textbuf_free(&out);
    metrics_destroy(m);
}

static void test_exemplars(void) {
    metrics *m = NULL;
    vigil_error err = {0};
    CHECK_EQ_INT(metrics_create(&m, "edge", &err), VIGIL_OK);
    metrics_observe_traced(m, "affine", METRICS_TOTAL_SECONDS, 0.3, TRACE);
    metrics_observe_traced(m, "affine", METRICS_TOTAL_SECONDS, 20, "00000000000000000000000000000000"); /* invalid */
    metrics_observe_traced(m, "affine", METRICS_TOTAL_SECONDS, 30, "4BF92F3577B34DA6A3CE929D0E0E4736"); /* upper */
    metrics_observe_traced(m, "affine", METRICS_TOTAL_SECONDS, 40, "abc");
    textbuf out;
    textbuf_init(&out, 1 << 20);
    metrics_render(m, &out, 1);
    CHECK(strstr(out.data, "vigil_inference_total_seconds_bucket{model=\"affine\",node_type=\"edge\",le=\"0.5\"} 1 # "
                           "{trace_id=\"" TRACE "\"} 0.3 "));
    CHECK(strstr(out.data, "le=\"+Inf\"} 4\n")); /* counted, but no exemplar from a bad id */
    CHECK(strstr(out.data, "le=\"0.25\"} 0\n"));
    textbuf_free(&out);
    textbuf_init(&out, 1 << 20);
    metrics_render(m, &out, 0);
    CHECK(strstr(out.data, "trace_id") == NULL);
    textbuf_free(&out);
    metrics_destroy(m);
}

static void test_accept(void) {
    /* what Prometheus 2.42 sends, and what later versions send */
    CHECK_EQ_INT(metrics_accepts_openmetrics("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                                             "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
                 1);
    CHECK_EQ_INT(metrics_accepts_openmetrics("application/openmetrics-text;version=1.0.0;q=0.5,text/plain;"
                                             "version=0.0.4;q=0.3"),
                 1);
    CHECK_EQ_INT(metrics_accepts_openmetrics("text/plain;version=0.0.4,application/openmetrics-text;q=0.5"), 0);
    CHECK_EQ_INT(metrics_accepts_openmetrics("application/openmetrics-text; q=0"), 0);
    CHECK_EQ_INT(metrics_accepts_openmetrics("*/*"), 0);
    CHECK_EQ_INT(metrics_accepts_openmetrics(NULL), 0);
}

static void test_openmetrics_rewrite(void) {
    textbuf body;
    textbuf_init(&body, 1 << 16);
    textbuf_printf(&body, "# HELP a_total Things.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n"
                          "# HELP g_total A gauge that ends in _total.\n# TYPE g_total gauge\ng_total 1\n"
                          "# TYPE b_total counter\nb_total 3\n");
    metrics_to_openmetrics(&body);
    CHECK_STR(body.data, "# HELP a Things.\n# TYPE a counter\na_total{x=\"1\"} 2\n"
                         "# HELP g_total A gauge that ends in _total.\n# TYPE g_total gauge\ng_total 1\n"
                         "# TYPE b counter\nb_total 3\n# EOF\n");
    textbuf_free(&body);
}

int main(void) {
    RUN(test_node_type_label);
    RUN(test_exemplars);
    RUN(test_accept);
    RUN(test_openmetrics_rewrite);
    return testing_report();
}
