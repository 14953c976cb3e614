/*
 * clock.c - the edge's injectable wall clock (see clock.h).
 *
 * The offset file is stat'ed on every read and re-parsed only when its
 * modification time or size changed, so the test clock costs one stat().
 */
#include "edge/clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct edge_clock {
    char *offset_file; /* NULL: system clock */
    pthread_mutex_t lock;
    struct timespec seen_mtime;
    off_t seen_size;
    int64_t offset_ms;
};

edge_clock *edge_clock_create(const char *offset_file) {
    edge_clock *clock = calloc(1, sizeof *clock);
    if (!clock) return NULL;
    if (offset_file && offset_file[0]) {
        clock->offset_file = strdup(offset_file);
        if (!clock->offset_file) {
            free(clock);
            return NULL;
        }
    }
    pthread_mutex_init(&clock->lock, NULL);
    clock->seen_size = -1;
    return clock;
}

void edge_clock_destroy(edge_clock *clock) {
    if (!clock) return;
    pthread_mutex_destroy(&clock->lock);
    free(clock->offset_file);
    free(clock);
}

static int64_t realtime_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Re-reads the offset when the file changed; a missing or unreadable file
 * keeps the last offset (a test writes it with rename, never half-written). */
static int64_t offset_now(edge_clock *clock) {
    struct stat st;
    pthread_mutex_lock(&clock->lock);
    if (stat(clock->offset_file, &st) == 0 &&
        (st.st_size != clock->seen_size || st.st_mtim.tv_sec != clock->seen_mtime.tv_sec ||
         st.st_mtim.tv_nsec != clock->seen_mtime.tv_nsec)) {
        FILE *f = fopen(clock->offset_file, "r");
        long long v = 0;
        if (f) {
            if (fscanf(f, "%lld", &v) == 1) clock->offset_ms = v;
            fclose(f);
        }
        clock->seen_size = st.st_size;
        clock->seen_mtime = st.st_mtim;
    }
    int64_t offset = clock->offset_ms;
    pthread_mutex_unlock(&clock->lock);
    return offset;
}

int64_t edge_clock_now_ms(const edge_clock *clock) {
    int64_t now = realtime_ms();
    if (!clock || !clock->offset_file) return now;
    return now + offset_now((edge_clock *)clock);
}
