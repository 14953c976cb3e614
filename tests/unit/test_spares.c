/* test_spares.c - large buffers kept for the next request (serve/spares.c):
 * a take gets back what was given when it fits, and what is kept stays
 * within the bounds that keep resident memory near idle. */
#include "core/alloc.h"
#include "serve/spares.h"
#include "testing.h"

#define FRAME ((size_t)921601) /* a 640x480 RGB24 body and its NUL */

static void test_given_buffer_comes_back_for_a_like_size(void) {
    spares s;
    spares_init(&s);
    size_t size = 1;
    CHECK(spares_take(&s, FRAME, &size) == NULL); /* nothing kept yet */
    CHECK_EQ_INT(size, 0);
    void *frame = vigil_malloc(FRAME);
    CHECK(frame != NULL);
    spares_give(&s, frame, FRAME);
    CHECK(spares_take(&s, 3 * FRAME, &size) == NULL);         /* too small for it */
    CHECK(spares_take(&s, FRAME / 2 - 1, &size) == NULL);     /* over twice what is asked */
    CHECK(spares_take(&s, SPARES_MIN_BYTES - 1, &size) == NULL); /* small ones are the heap's */
    CHECK(spares_take(&s, FRAME - 100, &size) == frame);
    CHECK_EQ_INT(size, FRAME);
    CHECK(spares_take(&s, FRAME, &size) == NULL); /* taken: gone from the spares */
    spares_give(&s, frame, size);
    spares_destroy(&s); /* frees what it kept (ASan: no leak) */
}

static void test_kept_bytes_are_bounded(void) {
    spares s;
    spares_init(&s);
    size_t big = SPARES_MAX_BYTES;
    spares_give(&s, vigil_malloc(big + 1), big + 1); /* over the largest kept: freed */
    spares_give(&s, vigil_malloc(SPARES_MIN_BYTES - 1), SPARES_MIN_BYTES - 1);
    spares_give(&s, NULL, FRAME); /* harmless */
    CHECK_EQ_INT(s.total, 0);
    for (int i = 0; i < 2 * SPARES_SLOTS; i++) spares_give(&s, vigil_malloc(big), big);
    CHECK(s.total <= SPARES_TOTAL_BYTES);
    CHECK_EQ_INT(s.total, SPARES_TOTAL_BYTES / big * big);
    size_t size, taken = 0;
    void *p;
    while ((p = spares_take(&s, big, &size)) != NULL) {
        taken += size;
        vigil_free(p);
    }
    CHECK_EQ_INT(taken, SPARES_TOTAL_BYTES / big * big);
    CHECK_EQ_INT(s.total, 0);
    spares_destroy(&s);
}

/* A pool sized for more keeps exactly that many, and no more bytes than it
 * was given; the default keeps SPARES_DEFAULT_SLOTS small enough buffers. */
static void test_sized_pools_keep_their_count(void) {
    spares s;
    size_t block = SPARES_MIN_BYTES; /* many fit in the bytes */
    spares_init(&s);
    for (int i = 0; i < SPARES_SLOTS + 4; i++) spares_give(&s, vigil_malloc(block), block);
    CHECK_EQ_INT(s.total, SPARES_DEFAULT_SLOTS * block);
    spares_destroy(&s);
    spares_init_sized(&s, SPARES_SLOTS + 100, (size_t)1 << 40); /* slots capped at the array */
    for (int i = 0; i < SPARES_SLOTS + 4; i++) spares_give(&s, vigil_malloc(block), block);
    CHECK_EQ_INT(s.total, SPARES_SLOTS * block);
    spares_destroy(&s);
    spares_init_sized(&s, SPARES_SLOTS, 3 * block); /* the byte bound, exactly at it */
    for (int i = 0; i < 5; i++) spares_give(&s, vigil_malloc(block), block);
    CHECK_EQ_INT(s.total, 3 * block);
    size_t size;
    void *p = spares_take(&s, block, &size);
    CHECK(p != NULL);
    spares_give(&s, p, size);
    CHECK_EQ_INT(s.total, 3 * block);
    spares_destroy(&s);
}

int main(void) {
    RUN(test_given_buffer_comes_back_for_a_like_size);
    RUN(test_kept_bytes_are_bounded);
    RUN(test_sized_pools_keep_their_count);
    return testing_report();
}
