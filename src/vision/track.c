/*
 * track.c - SORT / ByteTrack-style tracking over boxes (see track.h).
 *
 * Motion model: an alpha-beta filter per box coordinate (centre x, centre y,
 * width, height), each with a velocity, rather than SORT's Kalman filter on
 * (cx, cy, area, aspect).  With SORT's diagonal noise matrices the Kalman gain
 * settles within a few frames to a constant per coordinate, which is an
 * alpha-beta filter; fixing the gains up front gives the same prediction
 * without the matrix code, makes the filter's behaviour easy to state in a
 * test (an object at constant velocity is predicted exactly from its second
 * hit on, since the second hit sets the velocity to the measured step), and
 * keeps width and height independent, so a box that changes shape is followed
 * as well as one that only changes size.
 *
 * Association: greedy by IoU (all track/detection pairs of the same class at
 * or above the threshold, highest IoU first; ties broken by track id, then
 * detection index, so results never depend on sort order), in ByteTrack's two
 * stages: high-score detections against every track, then low-score ones
 * against the confirmed tracks still unmatched.  Greedy rather than Hungarian
 * because with a constant-velocity prediction the right pair almost always has
 * the highest IoU, and greedy is easier to reason about and deterministic; the
 * difference shows only in dense scenes of near-equal overlaps.
 *
 * Update does every fallible thing (the pair list may grow) before it changes
 * a track, so a failed update leaves the tracker as it was.
 */
#include "vision/track.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "vision/heads.h"

typedef struct track {
    uint64_t id;
    int class_id;
    float x[4]; /* estimate: cx, cy, w, h */
    float v[4]; /* per-frame velocity of each */
    int hits;   /* matched frames so far */
    int misses; /* consecutive missed frames */
    int confirmed;
    int inside; /* ENTERED reported and no LEFT since */
    float score;
    track_box last_box; /* last matched detection's box */
    uint64_t first_frame, last_frame, best_frame;
    float best_score;
    track_box best_box;
} track;

typedef struct track_pair {
    float iou;
    int track_index;
    int detection_index;
} track_pair;

struct tracker {
    track_options opts;
    int classes[TRACK_MAX_CLASSES];
    float zone[2 * TRACK_MAX_ZONE_POINTS];
    track *tracks; /* TRACK_MAX_TRACKS slots, n_tracks live, in id order */
    size_t n_tracks;
    uint64_t next_id;
    track_box *predicted; /* per track, this frame */
    int *track_match;     /* per track: detection index or -1 */
    int *detection_match; /* per detection: track index or -1 */
    track_pair *pairs;    /* grows as needed */
    size_t pairs_cap;
    track_event *events; /* at most one per track and one per birth */
    size_t n_events;
    track_view *views;
    size_t n_views;
    track_stats stats;
};

void track_options_default(track_options *opts) {
    memset(opts, 0, sizeof *opts);
    opts->high_score = 0.5f;
    opts->low_score = 0.1f;
    opts->iou_min = 0.3f;
    opts->iou_min_low = 0.5f;
    opts->min_hits = 3;
    opts->max_misses = 5;
    opts->alpha = 0.7f;
    opts->beta = 0.3f;
}

static int track_unit(float v) {
    return v >= 0.0f && v <= 1.0f;
}

vigil_status track_create(tracker **out, const track_options *opts, vigil_error *err) {
    *out = NULL;
    if (!track_unit(opts->high_score) || !track_unit(opts->low_score) || opts->low_score > opts->high_score)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "track: scores need 0 <= low <= high <= 1");
    if (!track_unit(opts->iou_min) || !track_unit(opts->iou_min_low))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "track: IoU thresholds need 0..1");
    if (!(opts->alpha > 0.0f && opts->alpha <= 1.0f) || !track_unit(opts->beta))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "track: alpha needs (0, 1], beta [0, 1]");
    if (opts->min_hits < 1 || opts->max_misses < 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "track: min_hits >= 1 and max_misses >= 0");
    if (opts->n_classes > TRACK_MAX_CLASSES || (opts->n_classes && !opts->classes))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "track: at most %d classes", TRACK_MAX_CLASSES);
    if (opts->n_zone_points &&
        (opts->n_zone_points < 3 || opts->n_zone_points > TRACK_MAX_ZONE_POINTS || !opts->zone_xy))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "track: a zone needs 3..%d points",
                               TRACK_MAX_ZONE_POINTS);

    tracker *t = vigil_calloc(1, sizeof *t);
    if (!t) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "track: out of memory");
    t->opts = *opts;
    if (opts->n_classes) memcpy(t->classes, opts->classes, opts->n_classes * sizeof(int));
    if (opts->n_zone_points) memcpy(t->zone, opts->zone_xy, 2 * opts->n_zone_points * sizeof(float));
    t->opts.classes = t->classes;
    t->opts.zone_xy = t->zone;
    t->next_id = 1;
    t->tracks = vigil_calloc(TRACK_MAX_TRACKS, sizeof *t->tracks);
    t->predicted = vigil_calloc(TRACK_MAX_TRACKS, sizeof *t->predicted);
    t->track_match = vigil_calloc(TRACK_MAX_TRACKS, sizeof *t->track_match);
    t->detection_match = vigil_calloc(TRACK_MAX_DETECTIONS, sizeof *t->detection_match);
    t->events = vigil_calloc(TRACK_MAX_TRACKS + TRACK_MAX_DETECTIONS, sizeof *t->events);
    t->views = vigil_calloc(TRACK_MAX_TRACKS, sizeof *t->views);
    if (!t->tracks || !t->predicted || !t->track_match || !t->detection_match || !t->events || !t->views) {
        track_destroy(t);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "track: out of memory");
    }
    *out = t;
    return VIGIL_OK;
}

void track_destroy(tracker *t) {
    if (!t) return;
    vigil_free(t->tracks);
    vigil_free(t->predicted);
    vigil_free(t->track_match);
    vigil_free(t->detection_match);
    vigil_free(t->pairs);
    vigil_free(t->events);
    vigil_free(t->views);
    vigil_free(t);
}

/* The one IoU rule of vision (nms.c's, Ultralytics' convention). */
float track_iou(const track_box *a, const track_box *b) {
    head_box ha = {.x1 = a->x1, .y1 = a->y1, .x2 = a->x2, .y2 = a->y2};
    head_box hb = {.x1 = b->x1, .y1 = b->y1, .x2 = b->x2, .y2 = b->y2};
    return head_iou(&ha, &hb);
}

int track_point_in_polygon(const float *xy, size_t n, float x, float y) {
    int inside = 0;
    for (size_t i = 0, j = n - 1; i < n; j = i++) {
        float xi = xy[2 * i], yi = xy[2 * i + 1], xj = xy[2 * j], yj = xy[2 * j + 1];
        if ((yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
}

static track_box track_box_of(const float x[4]) {
    track_box b = {x[0] - x[2] / 2, x[1] - x[3] / 2, x[0] + x[2] / 2, x[1] + x[3] / 2};
    return b;
}

static void track_measure(const track_box *b, float z[4]) {
    z[0] = (b->x1 + b->x2) / 2;
    z[1] = (b->y1 + b->y2) / 2;
    z[2] = b->x2 - b->x1;
    z[3] = b->y2 - b->y1;
}

/* The estimate one frame ahead; width and height never drop below one pixel
 * so that a shrinking box coasting through misses stays a box. */
static void track_predict(const track *tr, float out[4]) {
    for (int k = 0; k < 4; k++)
        out[k] = tr->x[k] + tr->v[k];
    if (out[2] < 1) out[2] = 1;
    if (out[3] < 1) out[3] = 1;
}

static int track_of_interest(const tracker *t, int class_id) {
    if (!t->opts.n_classes) return 1;
    for (size_t i = 0; i < t->opts.n_classes; i++)
        if (t->classes[i] == class_id) return 1;
    return 0;
}

static int track_in_zone(const tracker *t, const track_box *b) {
    if (!t->opts.n_zone_points) return 1;
    return track_point_in_polygon(t->zone, t->opts.n_zone_points, (b->x1 + b->x2) / 2, b->y2);
}

static int track_pair_compare(const void *pa, const void *pb) {
    const track_pair *a = pa, *b = pb;
    if (a->iou != b->iou) return a->iou > b->iou ? -1 : 1;
    if (a->track_index != b->track_index) return a->track_index < b->track_index ? -1 : 1;
    return (a->detection_index > b->detection_index) - (a->detection_index < b->detection_index);
}

static vigil_status track_pairs_reserve(tracker *t, size_t need, vigil_error *err) {
    if (need <= t->pairs_cap) return VIGIL_OK;
    size_t cap = t->pairs_cap ? t->pairs_cap : 64;
    while (cap < need)
        cap *= 2;
    track_pair *p = vigil_realloc(t->pairs, cap * sizeof *p);
    if (!p) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "track: out of memory for %zu pairs", need);
    t->pairs = p;
    t->pairs_cap = cap;
    return VIGIL_OK;
}

/* One association stage: detections whose score is in [lo, hi) against the
 * tracks still unmatched (confirmed ones only when confirmed_only), greedy by
 * IoU >= iou_min. */
static vigil_status track_associate(tracker *t, const track_detection *dets, size_t n, float lo, float hi,
                                    int hi_inclusive, int confirmed_only, float iou_min, vigil_error *err) {
    size_t n_pairs = 0;
    for (size_t i = 0; i < t->n_tracks; i++) {
        const track *tr = &t->tracks[i];
        if (t->track_match[i] >= 0 || (confirmed_only && !tr->confirmed)) continue;
        for (size_t j = 0; j < n; j++) {
            const track_detection *d = &dets[j];
            if (t->detection_match[j] != -1 || d->class_id != tr->class_id) continue;
            if (d->score < lo || (hi_inclusive ? d->score > hi : d->score >= hi)) continue;
            float iou = track_iou(&t->predicted[i], &d->box);
            if (iou < iou_min || iou <= 0) continue;
            vigil_status st = track_pairs_reserve(t, n_pairs + 1, err);
            if (st != VIGIL_OK) return st;
            t->pairs[n_pairs++] = (track_pair){iou, (int)i, (int)j};
        }
    }
    if (n_pairs) qsort(t->pairs, n_pairs, sizeof *t->pairs, track_pair_compare);
    for (size_t p = 0; p < n_pairs; p++) {
        const track_pair *pr = &t->pairs[p];
        if (t->track_match[pr->track_index] >= 0 || t->detection_match[pr->detection_index] != -1) continue;
        t->track_match[pr->track_index] = pr->detection_index;
        t->detection_match[pr->detection_index] = pr->track_index;
    }
    return VIGIL_OK;
}

static track_event *track_event_push(tracker *t, const track *tr, track_event_kind kind, int detection) {
    track_event *e = &t->events[t->n_events++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->track_id = tr->id;
    e->class_id = tr->class_id;
    e->box = tr->last_box;
    e->score = tr->score;
    e->detection = detection;
    e->first_frame = tr->first_frame;
    e->last_frame = tr->last_frame;
    e->best_frame = tr->best_frame;
    e->best_score = tr->best_score;
    e->best_box = tr->best_box;
    return e;
}

/* A matched confirmed track: zone in/out and the best snapshot. */
static void track_report(tracker *t, track *tr, uint64_t frame, int detection) {
    int in_zone = track_in_zone(t, &tr->last_box);
    if (!in_zone) {
        if (tr->inside) {
            tr->inside = 0;
            track_event_push(t, tr, TRACK_LEFT, -1)->reason = TRACK_LEFT_ZONE;
        }
        return;
    }
    int entering = !tr->inside;
    int best = entering || tr->score > tr->best_score;
    if (best) {
        tr->best_frame = frame;
        tr->best_score = tr->score;
        tr->best_box = tr->last_box;
    }
    tr->inside = 1;
    track_event_push(t, tr, entering ? TRACK_ENTERED : TRACK_UPDATED, detection)->best_changed = best;
}

vigil_status track_update(tracker *t, uint64_t frame, const track_detection *dets, size_t n, const track_event **events,
                          size_t *n_events, vigil_error *err) {
    *events = NULL;
    *n_events = 0;
    if (n > TRACK_MAX_DETECTIONS)
        return vigil_error_set(err, VIGIL_ERR_LIMIT, "track: %zu detections in one frame (most %d)", n,
                               TRACK_MAX_DETECTIONS);
    if (n && !dets) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "track: no detections array");

    /* Association, with nothing changed yet. */
    for (size_t i = 0; i < t->n_tracks; i++) {
        float p[4];
        track_predict(&t->tracks[i], p);
        t->predicted[i] = track_box_of(p);
        t->track_match[i] = -1;
    }
    size_t ignored = 0;
    for (size_t j = 0; j < n; j++) {
        int usable = dets[j].score >= t->opts.low_score && track_of_interest(t, dets[j].class_id) &&
                     dets[j].box.x2 > dets[j].box.x1 && dets[j].box.y2 > dets[j].box.y1;
        t->detection_match[j] = usable ? -1 : -2; /* -2: never matched, never born */
        ignored += !usable;
    }
    vigil_status st = track_associate(t, dets, n, t->opts.high_score, 1.0f, 1, 0, t->opts.iou_min, err);
    if (st == VIGIL_OK)
        st = track_associate(t, dets, n, t->opts.low_score, t->opts.high_score, 0, 1, t->opts.iou_min_low, err);
    if (st != VIGIL_OK) return st;

    /* Commit: filter, confirm, drop; LEFT (lost) events go first. */
    t->n_events = 0;
    t->stats.frames++;
    t->stats.detections_ignored += ignored;
    size_t kept = 0;
    for (size_t i = 0; i < t->n_tracks; i++) {
        track *tr = &t->tracks[i];
        int j = t->track_match[i];
        float p[4];
        track_predict(tr, p);
        if (j < 0) {
            memcpy(tr->x, p, sizeof p);
            tr->misses++;
            if (!tr->confirmed || tr->misses > t->opts.max_misses) {
                if (tr->inside) track_event_push(t, tr, TRACK_LEFT, -1)->reason = TRACK_LEFT_LOST;
                continue; /* dropped */
            }
        } else {
            float z[4];
            track_measure(&dets[j].box, z);
            if (tr->hits == 1) {
                /* Second hit: the measured step is the velocity, exactly. */
                for (int k = 0; k < 4; k++) {
                    tr->v[k] = z[k] - tr->x[k];
                    tr->x[k] = z[k];
                }
            } else {
                for (int k = 0; k < 4; k++) {
                    float r = z[k] - p[k];
                    tr->x[k] = p[k] + t->opts.alpha * r;
                    tr->v[k] += t->opts.beta * r;
                }
            }
            tr->hits++;
            tr->misses = 0;
            tr->score = dets[j].score;
            tr->last_box = dets[j].box;
            tr->last_frame = frame;
        }
        t->track_match[kept] = j;
        if (kept != i) t->tracks[kept] = *tr;
        kept++;
    }
    t->n_tracks = kept;

    /* Births from unmatched high-score detections, in detection order. */
    for (size_t j = 0; j < n; j++) {
        if (t->detection_match[j] != -1 || dets[j].score < t->opts.high_score) continue;
        if (t->n_tracks >= TRACK_MAX_TRACKS) {
            t->stats.births_refused++;
            continue;
        }
        track *tr = &t->tracks[t->n_tracks];
        memset(tr, 0, sizeof *tr);
        tr->id = t->next_id++;
        tr->class_id = dets[j].class_id;
        track_measure(&dets[j].box, tr->x);
        tr->hits = 1;
        tr->score = dets[j].score;
        tr->last_box = dets[j].box;
        tr->first_frame = tr->last_frame = frame;
        t->track_match[t->n_tracks++] = (int)j;
        t->stats.tracks_born++;
    }

    /* Confirmation and zone events, in id order (births come last). */
    t->n_views = 0;
    for (size_t i = 0; i < t->n_tracks; i++) {
        track *tr = &t->tracks[i];
        if (!tr->confirmed && tr->hits >= t->opts.min_hits) {
            tr->confirmed = 1;
            t->stats.tracks_confirmed++;
        }
        if (!tr->confirmed) continue;
        if (t->track_match[i] >= 0) track_report(t, tr, frame, t->track_match[i]);
        track_view *v = &t->views[t->n_views++];
        v->track_id = tr->id;
        v->class_id = tr->class_id;
        v->box = track_box_of(tr->x);
        v->score = tr->score;
        v->misses = tr->misses;
        v->inside = tr->inside;
    }
    *events = t->events;
    *n_events = t->n_events;
    return VIGIL_OK;
}

size_t track_views(const tracker *t, const track_view **views) {
    *views = t->views;
    return t->n_views;
}

track_stats track_get_stats(const tracker *t) {
    return t->stats;
}
