/* body_budget.c - reserve and release buffered body bytes (see body_budget.h). */
#include "serve/body_budget.h"

#include <malloc.h>

void body_budget_init(body_budget *b, size_t limit) {
    atomic_init(&b->used, 0);
    b->limit = limit;
}

int body_budget_hold(body_budget *b, size_t *held, size_t want) {
    if (want <= *held) return 0;
    size_t extra = want - *held;
    size_t used = atomic_load(&b->used);
    do {
        if (used > b->limit || extra > b->limit - used) return -1;
    } while (!atomic_compare_exchange_weak(&b->used, &used, used + extra));
    *held = want;
    return 0;
}

void body_budget_release(body_budget *b, size_t *held) {
    size_t n = *held;
    *held = 0;
    if (!n) return;
    atomic_fetch_sub(&b->used, n);
    if (n >= BODY_BUDGET_TRIM_BYTES) malloc_trim(0);
}

size_t body_budget_used(body_budget *b) { return atomic_load(&b->used); }
