/*
 * event.h - an escalation event: what an edge vigil sends to the cloud when a
 * frame's detections are uncertain (docs/EDGE.md).
 *
 * The event is born in the edge runtime (edge.c) from a finished detection,
 * committed to the outbox (outbox.c) before anything acknowledges it, sent by
 * the uplink (uplink.c) and applied once by the cloud's receiver
 * (receiver.c).  This header is the contract between those four; the wire
 * format below is the contract between the edge and the cloud.
 *
 * Wire format (edge -> cloud), one HTTP request per event:
 *   POST {cloud_url}/api/v1/events
 *   Idempotency-Key: <event id>          (UUIDv7, canonical lower-case text)
 *   traceparent: <W3C trace context>     (when the event carries one)
 *   Content-Type: multipart/form-data; boundary=...
 *     part "event" (application/json): the event document, edge_event.json
 *       {"id":"...","source":"cam1","model":"yolov8n","version":1,
 *        "priority":1,"reason":"band","created_ms":1765000000000,
 *        "width":640,"height":480,"detections":[ ...as /api/v1/detect... ]}
 *     part "frame" (image/jpeg): the frame, JPEG as received or re-encoded
 * Answer (first time 201, a replay the stored first answer plus
 * `Idempotent-Replayed: true`), application/json:
 *   {"id":"...","verdict":{"model":"yolov8m","version":1,
 *    "detections":[...]},"received_ms":1765000000123}
 * 400 no/invalid key or malformed body, 409 the same key is being processed
 * now, 422 the same key with a different body.
 */
#ifndef VIGIL_EDGE_EVENT_H
#define VIGIL_EDGE_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/status.h"

/* Priority classes: 0 is the highest (never evicted silently). */
#define EDGE_PRIORITY_CLASSES 4
#define EDGE_EVENT_ID_LEN 36 /* canonical UUID text, without the NUL */

typedef struct edge_event {
    char id[EDGE_EVENT_ID_LEN + 1]; /* UUIDv7 */
    int priority;                   /* 0 .. EDGE_PRIORITY_CLASSES-1 */
    int64_t created_ms;             /* edge clock (unix ms) when the event was made */
    char traceparent[64];           /* W3C traceparent, "" when none */
    char *json;                     /* owned: the "event" part, NUL-terminated */
    size_t json_bytes;
    unsigned char *frame;           /* owned: the "frame" part (JPEG), may be NULL */
    size_t frame_bytes;
} edge_event;

/* Frees what the event owns (json, frame) and zeroes it; safe on a zeroed event. */
void edge_event_clear(edge_event *event);

/* Writes a UUIDv7 (RFC 9562: 48-bit unix ms, version 7, variant 10, random
 * rest from getrandom) for unix_ms into out. */
vigil_status edge_uuid7(int64_t unix_ms, char out[EDGE_EVENT_ID_LEN + 1], vigil_error *err);

/* True when text is a canonical lower-case UUID (any version). */
int edge_uuid_valid(const char *text);

#endif
