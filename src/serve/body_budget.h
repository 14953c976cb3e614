/*
 * body_budget.h - the process-wide budget for request bodies held in memory
 * (http.max_buffered_bytes).
 *
 * http.max_body_bytes bounds one body; this bounds all of them together, so
 * that a thousand connections each sending 64 MiB and stalling cannot take
 * the box's memory.  A body is reserved before it is read: one of known
 * length reserves its Content-Length when its headers arrive, a chunked one
 * reserves as it grows.  What an exchange holds is given back when it ends,
 * however it ends (answered, or its connection died).  Model uploads stream
 * to disk and reserve nothing.
 */
#ifndef VIGIL_SERVE_BODY_BUDGET_H
#define VIGIL_SERVE_BODY_BUDGET_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct body_budget {
    atomic_size_t used; /* bytes reserved by every exchange together */
    size_t limit;
} body_budget;

void body_budget_init(body_budget *b, size_t limit);

/* Raises what one exchange holds (*held, 0 at first) to want bytes.
 * Returns 0 when the budget had room (or *held >= want already); -1 when it
 * had not, and then nothing changes. */
int body_budget_hold(body_budget *b, size_t *held, size_t want);

/* Gives back all of *held and sets it to 0.  After a large body (at least
 * BODY_BUDGET_TRIM_BYTES) the heap the request freed is handed back to the
 * system too (malloc_trim): glibc keeps freed chunks below its mmap
 * threshold in its arenas, and a box that served one large request should
 * not look as if it still held it. */
void body_budget_release(body_budget *b, size_t *held);

size_t body_budget_used(body_budget *b);

#define BODY_BUDGET_TRIM_BYTES ((size_t)4 << 20)

#endif
