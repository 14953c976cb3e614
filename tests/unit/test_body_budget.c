/* test_body_budget.c - the budget for buffered request bodies
 * (serve/body_budget.c) and its setting, http.max_buffered_bytes. */
#include <pthread.h>

#include "core/config.h"
#include "serve/body_budget.h"
#include "testing.h"

static void test_hold_raises_and_release_returns(void) {
    body_budget b;
    body_budget_init(&b, 100);
    size_t one = 0, two = 0;
    CHECK_EQ_INT(body_budget_hold(&b, &one, 60), 0);
    CHECK_EQ_INT(one, 60);
    CHECK_EQ_INT(body_budget_hold(&b, &one, 50), 0); /* already held */
    CHECK_EQ_INT(body_budget_hold(&b, &two, 41), -1); /* 60 + 41 > 100: nothing changes */
    CHECK_EQ_INT(two, 0);
    CHECK_EQ_INT(body_budget_used(&b), 60);
    CHECK_EQ_INT(body_budget_hold(&b, &two, 40), 0);
    CHECK_EQ_INT(body_budget_hold(&b, &one, 61), -1); /* growing past the limit */
    CHECK_EQ_INT(one, 60);
    body_budget_release(&b, &one);
    CHECK_EQ_INT(one, 0);
    CHECK_EQ_INT(body_budget_used(&b), 40);
    CHECK_EQ_INT(body_budget_hold(&b, &two, 100), 0); /* grows by what it lacks */
    body_budget_release(&b, &two);
    body_budget_release(&b, &two); /* twice is harmless */
    CHECK_EQ_INT(body_budget_used(&b), 0);
}

static body_budget shared;

static void *hold_many(void *arg) {
    (void)arg;
    for (int i = 0; i < 100000; i++) {
        size_t held = 0;
        if (body_budget_hold(&shared, &held, 3) == 0) {
            if (body_budget_used(&shared) > 10) return (void *)1; /* over the limit */
            body_budget_release(&shared, &held);
        }
    }
    return NULL;
}

static void test_threads_never_cross_the_limit(void) {
    body_budget_init(&shared, 10);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, hold_many, NULL);
    int crossed = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        crossed |= r != NULL;
    }
    CHECK(!crossed);
    CHECK_EQ_INT(body_budget_used(&shared), 0);
}

static void test_setting_and_its_default(void) {
    vigil_config cfg;
    config_defaults(&cfg);
    CHECK(cfg.max_buffered_bytes >= (INT64_C(256) << 20));
    CHECK(cfg.max_buffered_bytes >= cfg.max_body_bytes);
    vigil_error err = {0};
    char *env[] = {"VIGIL_HTTP_MAX_BUFFERED_BYTES=209715200", NULL};
    CHECK_EQ_INT(config_apply_env(&cfg, env, &err), VIGIL_OK);
    CHECK_EQ_INT(cfg.max_buffered_bytes, 209715200);
    CHECK_EQ_INT(config_apply_flag(&cfg, "http-max-buffered-bytes", "1048576", &err), VIGIL_OK);
    CHECK_EQ_INT(config_validate(&cfg, &err), VIGIL_ERR_INVALID_ARGUMENT); /* below http.max_body_bytes */
    CHECK(strstr(err.message, "http.max_buffered_bytes") != NULL);
    CHECK_EQ_INT(config_apply_flag(&cfg, "http-max-buffered-bytes", "1000", &err), VIGIL_ERR_INVALID_ARGUMENT);
}

int main(void) {
    RUN(test_hold_raises_and_release_returns);
    RUN(test_threads_never_cross_the_limit);
    RUN(test_setting_and_its_default);
    return testing_report();
}
