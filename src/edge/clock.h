/*
 * clock.h - the edge's wall clock, injectable so that tests can compress a
 * 2-hour outage into seconds.
 *
 * Everything in src/edge/ that reasons about ages, TTLs, backoff deadlines,
 * rate limits and heartbeats reads time through an edge_clock.  The system
 * clock is CLOCK_REALTIME in unix milliseconds; the test clock adds an offset
 * read from a file (edge.test_clock_file, integer milliseconds; re-read when
 * the file changes), so a test can jump the whole edge forward by writing one
 * number.  Sleeping (poll timeouts, heartbeat periods) stays in real time.
 */
#ifndef VIGIL_EDGE_CLOCK_H
#define VIGIL_EDGE_CLOCK_H

#include <stdint.h>

typedef struct edge_clock edge_clock;

/* offset_file NULL: the system clock.  Returns NULL only when out of memory. */
edge_clock *edge_clock_create(const char *offset_file);
void edge_clock_destroy(edge_clock *clock);

/* Unix milliseconds; a NULL clock is the system clock.  Thread-safe. */
int64_t edge_clock_now_ms(const edge_clock *clock);

#endif
