/*
 * clock.h - the one monotonic clock for timing stages (engine probes,
 * detection splits, benchmarks).
 */
#ifndef VIGIL_CORE_CLOCK_H
#define VIGIL_CORE_CLOCK_H

/* CLOCK_MONOTONIC now, in milliseconds. */
double clock_now_ms(void);

#endif
