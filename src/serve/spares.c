/* spares.c - large buffers kept for the next request (see spares.h). */
#include "serve/spares.h"

#include <string.h>

#include "core/alloc.h"

void spares_init_sized(spares *s, size_t slots, size_t max_total) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->slots = slots < SPARES_SLOTS ? slots : SPARES_SLOTS;
    s->max_total = max_total;
}

void spares_init(spares *s) { spares_init_sized(s, SPARES_DEFAULT_SLOTS, SPARES_TOTAL_BYTES); }

void spares_destroy(spares *s) {
    for (size_t i = 0; i < SPARES_SLOTS; i++) vigil_free(s->slot[i].data);
    pthread_mutex_destroy(&s->lock);
    memset(s, 0, sizeof *s);
}

void *spares_take(spares *s, size_t need, size_t *size) {
    void *data = NULL;
    *size = 0;
    if (need < SPARES_MIN_BYTES || need > SPARES_MAX_BYTES) return NULL;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->slots && !data; i++) {
        if (!s->slot[i].data || s->slot[i].size < need || s->slot[i].size / 2 > need) continue;
        data = s->slot[i].data;
        *size = s->slot[i].size;
        s->total -= *size;
        s->slot[i].data = NULL;
        s->slot[i].size = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return data;
}

void spares_give(spares *s, void *data, size_t size) {
    if (data && size >= SPARES_MIN_BYTES && size <= SPARES_MAX_BYTES) {
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->slots && data; i++)
            if (!s->slot[i].data && s->total + size <= s->max_total) {
                s->slot[i].data = data;
                s->slot[i].size = size;
                s->total += size;
                data = NULL;
            }
        pthread_mutex_unlock(&s->lock);
    }
    vigil_free(data);
}
