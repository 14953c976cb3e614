/*
 * track.h - multi-object tracking over detection boxes (SORT / ByteTrack
 * style), so that one car passing a camera is one object with one id, not
 * thirty detections.
 *
 * The tracker sees boxes only: it runs no model and keeps no pixels.  Each
 * call to track_update is one processed frame; the tracker predicts every
 * track one frame ahead at constant velocity, associates the frame's
 * detections with the predictions by IoU (per class, in ByteTrack's two
 * stages), births, confirms and drops tracks, and reports events:
 *
 *   ENTERED  a confirmed track is inside the zone for the first time (or again
 *            after it left the zone);
 *   UPDATED  an entered track was matched again in this frame;
 *   LEFT     an entered track was dropped (lost) or its box left the zone.
 *
 * Frames where a track was only predicted give no event.  Each entered track
 * keeps its best snapshot: the frame (the caller's frame id) where its matched
 * score was highest while it was inside the zone; an event with best_changed
 * set tells the caller to keep this frame's pixels as the track's snapshot.
 *
 * A tracker is for one stream and one thread: it has no locks.
 */
#ifndef VIGIL_VISION_TRACK_H
#define VIGIL_VISION_TRACK_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/status.h"

/* Most live tracks (tentative and confirmed) a tracker holds; births beyond
 * it are refused and counted (track_stats.births_refused). */
#define TRACK_MAX_TRACKS 1024
/* Most detections one frame may carry (more is VIGIL_ERR_LIMIT). */
#define TRACK_MAX_DETECTIONS 4096
/* Most vertices of a zone polygon. */
#define TRACK_MAX_ZONE_POINTS 64
/* Most classes of interest. */
#define TRACK_MAX_CLASSES 256

typedef struct track_box {
    float x1, y1, x2, y2; /* image pixels, corners */
} track_box;

typedef struct track_detection {
    track_box box;
    float score;
    int class_id;
} track_detection;

typedef struct track_options {
    /* ByteTrack's two score bands: a detection with score >= high_score is
     * matched first and may start a track; one with low_score <= score <
     * high_score only keeps an existing confirmed track alive; below
     * low_score it is ignored. */
    float high_score; /* default 0.5 */
    float low_score;  /* default 0.1 */
    /* A detection matches a predicted track box when IoU >= iou_min (first
     * stage) or >= iou_min_low (second stage, low-score detections). */
    float iou_min;     /* default 0.3 */
    float iou_min_low; /* default 0.5 */
    /* Birth: a new track is confirmed on its min_hits-th consecutive matched
     * frame (1 = at once); a tentative track that misses a frame is dropped. */
    int min_hits; /* default 3 */
    /* Death: a confirmed track survives max_misses consecutive frames without
     * a match (coasting on its prediction) and is dropped on the next miss. */
    int max_misses; /* default 5 */
    /* Alpha-beta gains of the box filter (0 < alpha <= 1, 0 <= beta <= 1):
     * how far the estimate moves to a measurement, and its velocity with it. */
    float alpha; /* default 0.7 */
    float beta;  /* default 0.3 */
    /* Classes of interest: when n_classes > 0 detections of other classes are
     * ignored.  Copied by track_create. */
    const int *classes;
    size_t n_classes;
    /* Zone: a polygon of n_zone_points (x, y) pairs in image pixels; a track
     * is inside when its box's bottom centre is (crossing-number rule; a point
     * exactly on an edge may fall on either side).  n_zone_points == 0: the
     * whole image.  Copied by track_create; 3..TRACK_MAX_ZONE_POINTS points. */
    const float *zone_xy;
    size_t n_zone_points;
} track_options;

typedef enum track_event_kind {
    TRACK_ENTERED = 0,
    TRACK_UPDATED = 1,
    TRACK_LEFT = 2,
} track_event_kind;

typedef enum track_left_reason {
    TRACK_LEFT_NONE = 0, /* not a LEFT event */
    TRACK_LEFT_LOST = 1, /* no match for more than max_misses frames */
    TRACK_LEFT_ZONE = 2, /* matched, but its bottom centre is outside the zone */
} track_left_reason;

typedef struct track_event {
    track_event_kind kind;
    track_left_reason reason;
    uint64_t track_id; /* 1, 2, ... in birth order; never reused by a tracker */
    int class_id;
    track_box box;        /* filtered box of this frame (for LEFT: the last matched one) */
    float score;          /* matched detection's score (for LEFT: the last matched one) */
    int detection;        /* index into this frame's detections, -1 for LEFT */
    uint64_t first_frame; /* frame id where the track was born */
    uint64_t last_frame;  /* frame id of its last match */
    uint64_t best_frame;  /* frame id of its best snapshot */
    float best_score;
    track_box best_box;
    int best_changed; /* this frame became the best snapshot */
} track_event;

/* A confirmed track as the live view draws it. */
typedef struct track_view {
    uint64_t track_id;
    int class_id;
    track_box box; /* current estimate (predicted on a missed frame) */
    float score;   /* last matched score */
    int misses;    /* consecutive missed frames */
    int inside;    /* entered and not left */
} track_view;

typedef struct track_stats {
    uint64_t frames;
    uint64_t tracks_born; /* tentative tracks created */
    uint64_t tracks_confirmed;
    uint64_t births_refused;     /* TRACK_MAX_TRACKS reached */
    uint64_t detections_ignored; /* below low_score or not a class of interest */
} track_stats;

typedef struct tracker tracker;

/* Fills opts with the defaults written above. */
void track_options_default(track_options *opts);

/* Creates a tracker; *out is the caller's to track_destroy.  Bad options
 * (thresholds out of 0..1, low_score > high_score, min_hits < 1, max_misses
 * < 0, a zone of 1-2 or too many points) are VIGIL_ERR_INVALID_ARGUMENT. */
vigil_status track_create(tracker **out, const track_options *opts, vigil_error *err);
void track_destroy(tracker *t);

/* One frame: frame is the caller's id for it (a sequence number or a pts;
 * it is only carried into events), dets its n detections.  On success
 * *events / *n_events are this frame's events, owned by the tracker and valid
 * until the next track_update or track_destroy.  Order: LEFT events of lost
 * tracks first, then the rest (ENTERED, UPDATED, LEFT by zone) in track-id
 * order.  Event boxes are the matched detections' boxes, not the filter's.  On failure the tracker is
 * unchanged. */
vigil_status track_update(tracker *t, uint64_t frame, const track_detection *dets, size_t n, const track_event **events,
                          size_t *n_events, vigil_error *err);

/* The confirmed tracks after the last update, owned by the tracker (valid
 * until the next update); returns their count. */
size_t track_views(const tracker *t, const track_view **views);

track_stats track_get_stats(const tracker *t);

/* IoU of two boxes (areas without the +1 pixel convention); 0 when either is
 * empty. */
float track_iou(const track_box *a, const track_box *b);

/* Whether (x, y) is inside the polygon of n (x, y) pairs (crossing number). */
int track_point_in_polygon(const float *xy, size_t n, float x, float y);

#endif
