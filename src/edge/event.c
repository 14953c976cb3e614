/*
 * event.c - escalation events: ownership and identifiers (see event.h).
 */
#include "edge/event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void edge_event_clear(edge_event *event) {
    if (!event) return;
    free(event->json);
    free(event->frame);
    memset(event, 0, sizeof *event);
}

vigil_status edge_uuid7(int64_t unix_ms, char out[EDGE_EVENT_ID_LEN + 1], vigil_error *err) {
    unsigned char b[16];
    if (getrandom(b + 6, 10, 0) != 10) return vigil_error_set(err, VIGIL_ERR_IO, "getrandom failed for an event id");
    uint64_t ms = (uint64_t)unix_ms & 0xffffffffffffull;
    for (int i = 0; i < 6; i++) b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | (b[6] & 0x0f)); /* version 7 */
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f)); /* variant 10 */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
    return VIGIL_OK;
}

int edge_uuid_valid(const char *text) {
    if (!text || strlen(text) != EDGE_EVENT_ID_LEN) return 0;
    for (int i = 0; i < EDGE_EVENT_ID_LEN; i++) {
        char c = text[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return 1;
}
