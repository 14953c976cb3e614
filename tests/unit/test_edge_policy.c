/* test_edge_policy.c - the escalation policy (src/edge/policy.c) and the
 * config.yaml `escalation:` section that feeds it (serve/model_config.c). */
#include <string.h>

#include "edge/policy.h"
#include "serve/model_config.h"
#include "testing.h"

static model_escalation parsed(const char *yaml, vigil_status *st) {
    model_config cfg;
    vigil_error err = {0};
    model_config_defaults(&cfg);
    *st = model_config_parse(yaml, strlen(yaml), "m/config.yaml", &cfg, &err);
    if (*st) fprintf(stderr, "  (%s)\n", err.message);
    return cfg.escalation;
}

static void test_config_defaults_and_keys(void) {
    vigil_status st;
    model_escalation off = parsed("backend: cpu\n", &st);
    CHECK_EQ_INT(st, VIGIL_OK);
    CHECK_EQ_INT(off.enabled, 0);
    model_escalation d = parsed("escalation:\n", &st);
    CHECK_EQ_INT(st, VIGIL_OK);
    CHECK_EQ_INT(d.enabled, 1);
    CHECK_NEAR(d.score_band[0], 0.25, 1e-12);
    CHECK_NEAR(d.score_band[1], 0.6, 1e-12);
    CHECK_NEAR(d.rate_limit_per_source, 1.0, 1e-12);
    CHECK_EQ_INT(d.priority_class, 0);
    CHECK_EQ_INT(d.priority_band, 1);
    CHECK_EQ_INT(d.priority_sample, 3);
    model_escalation e = parsed("escalation:\n  score_band: [0.3, 0.5]\n  classes: [person, 2]\n  sample_rate: 0.01\n"
                                "  rate_limit_per_source: 5\n  priority: {class: 0, band: 2, sample: 3}\n",
                                &st);
    CHECK_EQ_INT(st, VIGIL_OK);
    CHECK_NEAR(e.score_band[0], 0.3, 1e-12);
    CHECK_EQ_INT(e.n_classes, 2);
    CHECK_STR(e.classes[0], "person");
    CHECK_STR(e.classes[1], "2");
    CHECK_NEAR(e.sample_rate, 0.01, 1e-12);
    CHECK_NEAR(e.rate_limit_per_source, 5, 1e-12);
    CHECK_EQ_INT(e.priority_band, 2);
    model_escalation no = parsed("escalation:\n  enabled: false\n", &st);
    CHECK_EQ_INT(st, VIGIL_OK);
    CHECK_EQ_INT(no.enabled, 0);
    parsed("escalation:\n  score_band: [0.7, 0.5]\n", &st);
    CHECK_EQ_INT(st, VIGIL_ERR_INVALID_ARGUMENT);
    parsed("escalation:\n  score_band: [0.2]\n", &st);
    CHECK_EQ_INT(st, VIGIL_ERR_INVALID_ARGUMENT);
    parsed("escalation:\n  priority: {band: 4}\n", &st);
    CHECK_EQ_INT(st, VIGIL_ERR_INVALID_ARGUMENT);
    parsed("escalation:\n  bogus: 1\n", &st);
    CHECK_EQ_INT(st, VIGIL_ERR_INVALID_ARGUMENT);
}

static model_escalation defaults(void) {
    model_config cfg;
    model_config_defaults(&cfg);
    cfg.escalation.enabled = 1;
    return cfg.escalation;
}

/* The band is closed: exactly lo and exactly hi escalate; just outside does not. */
static void test_band_edges(void) {
    model_escalation e = defaults();
    policy_detection d = {0, "person", 0.25};
    CHECK_EQ_INT(policy_decide(&e, &d, 1, 0.5).reason, POLICY_BAND);
    d.score = 0.6;
    CHECK_EQ_INT(policy_decide(&e, &d, 1, 0.5).reason, POLICY_BAND);
    CHECK_EQ_INT(policy_decide(&e, &d, 1, 0.5).priority, 1);
    d.score = 0.4;
    CHECK_EQ_INT(policy_decide(&e, &d, 1, 0.5).reason, POLICY_BAND);
    d.score = 0.2499999;
    CHECK_EQ_INT(policy_decide(&e, &d, 1, 0.5).reason, POLICY_NONE);
    d.score = 0.6000001;
    CHECK_EQ_INT(policy_decide(&e, &d, 1, 0.5).reason, POLICY_NONE);
    CHECK_EQ_INT(policy_decide(&e, NULL, 0, 0.5).reason, POLICY_NONE);
    e.enabled = 0;
    d.score = 0.4;
    CHECK_EQ_INT(policy_decide(&e, &d, 1, 0.5).reason, POLICY_NONE);
}

static void test_class_sample_and_priority(void) {
    model_escalation e = defaults();
    snprintf(e.classes[0], sizeof e.classes[0], "bus");
    snprintf(e.classes[1], sizeof e.classes[1], "7");
    e.n_classes = 2;
    policy_detection sure[2] = {{0, "person", 0.9}, {5, "bus", 0.95}};
    policy_decision r = policy_decide(&e, sure, 2, 0.5);
    CHECK_EQ_INT(r.reason, POLICY_CLASS);
    CHECK_EQ_INT(r.priority, 0);
    policy_detection by_id = {7, NULL, 0.99};
    CHECK_EQ_INT(policy_decide(&e, &by_id, 1, 0.5).reason, POLICY_CLASS);
    /* class and band both apply: the higher priority (class 0) names it */
    policy_detection both[2] = {{0, "person", 0.3}, {5, "bus", 0.95}};
    CHECK_EQ_INT(policy_decide(&e, both, 2, 0.5).reason, POLICY_CLASS);
    /* ... unless band has the higher priority */
    e.priority_band = 0;
    e.priority_class = 2;
    r = policy_decide(&e, both, 2, 0.5);
    CHECK_EQ_INT(r.reason, POLICY_BAND);
    CHECK_EQ_INT(r.priority, 0);
    /* sampling: draw < rate */
    policy_detection confident = {0, "person", 0.9};
    e.sample_rate = 0.01;
    CHECK_EQ_INT(policy_decide(&e, &confident, 1, 0.005).reason, POLICY_SAMPLE);
    CHECK_EQ_INT(policy_decide(&e, &confident, 1, 0.005).priority, 3);
    CHECK_EQ_INT(policy_decide(&e, &confident, 1, 0.01).reason, POLICY_NONE);
    CHECK_EQ_INT(policy_decide(&e, NULL, 0, 0.0).reason, POLICY_SAMPLE); /* an empty frame can be sampled */
    e.sample_rate = 0;
    CHECK_EQ_INT(policy_decide(&e, NULL, 0, 0.0).reason, POLICY_NONE);
    CHECK_STR(policy_reason_name(POLICY_BAND), "band");
}

static void test_rate_limiter(void) {
    rate_limiter *rl = rate_limiter_create(2);
    CHECK(rl != NULL);
    if (!rl) return;
    int64_t t = 1000000;
    /* 2 per second: a burst of 2, then one every 500 ms */
    CHECK_EQ_INT(rate_limiter_allow(rl, "m", "cam1", 2, t), 1);
    CHECK_EQ_INT(rate_limiter_allow(rl, "m", "cam1", 2, t), 1);
    CHECK_EQ_INT(rate_limiter_allow(rl, "m", "cam1", 2, t), 0);
    CHECK_EQ_INT(rate_limiter_allow(rl, "m", "cam2", 2, t), 1); /* per source */
    CHECK_EQ_INT(rate_limiter_allow(rl, "m", "cam1", 2, t + 499), 0);
    CHECK_EQ_INT(rate_limiter_allow(rl, "m", "cam1", 2, t + 500), 1);
    CHECK_EQ_INT(rate_limiter_allow(rl, "m", "cam1", 2, t - 5000), 0); /* a clock going back refills nothing */
    /* a third source replaces the idlest (cam2); the table stays at 2 */
    CHECK_EQ_INT(rate_limiter_allow(rl, "m", "cam3", 2, t + 600), 1);
    CHECK_EQ_INT(rate_limiter_allow(rl, "m", "cam1", 0, t + 600), 1); /* unlimited */
    /* a fractional rate: one per 10 s, burst 1 */
    CHECK_EQ_INT(rate_limiter_allow(rl, "m", "slow", 0.1, t), 1);
    CHECK_EQ_INT(rate_limiter_allow(rl, "m", "slow", 0.1, t + 5000), 0);
    CHECK_EQ_INT(rate_limiter_allow(rl, "m", "slow", 0.1, t + 10000), 1);
    rate_limiter_destroy(rl);
}

int main(void) {
    RUN(test_config_defaults_and_keys);
    RUN(test_band_edges);
    RUN(test_class_sample_and_priority);
    RUN(test_rate_limiter);
    return testing_report();
}
