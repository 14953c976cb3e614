/*
 * clock.h - the one monotonic clock for timing stages (engine probes,
 * detection splits, benchmarks), and the one way to write the wall clock.
 */
#ifndef VIGIL_CORE_CLOCK_H
#define VIGIL_CORE_CLOCK_H

/* CLOCK_MONOTONIC now, in milliseconds. */
double clock_now_ms(void);

#include <stddef.h>

/* The wall clock now as RFC 3339 UTC with milliseconds
 * ("2026-12-06T07:35:50.880Z": 24 bytes and the NUL), for log lines and
 * event documents. */
#define CLOCK_RFC3339_SIZE 32
void clock_utc_rfc3339(char *out, size_t size);

#endif
