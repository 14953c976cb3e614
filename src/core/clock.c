/*
 * clock.c - CLOCK_MONOTONIC in milliseconds, the wall clock in RFC 3339 (clock.h).
 */
#include "core/clock.h"

#include <stdio.h>
#include <time.h>

double clock_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void clock_utc_rfc3339(char *out, size_t size) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%.20s.%03dZ", day, (int)(now.tv_nsec / 1000000));
}
