/*
 * test_track.c - the box tracker (src/vision/track.c): ids that hold across
 * motion, misses and crossings, births and deaths exactly at their
 * thresholds, one ENTERED and one LEFT per object, zones and classes.
 *
 * Scenes are drawn by hand: boxes move a whole number of pixels per frame, so
 * the constant-velocity prediction is exact in float and every expectation is
 * an equality.
 */
#include "testing.h"

#include "core/alloc.h"
#include "vision/track.h"

/* Every event of a run, copied out of the tracker's per-frame buffer. */
typedef struct event_log {
    track_event events[512];
    uint64_t frames[512];
    size_t n;
} event_log;

static void step(tracker *t, event_log *log, uint64_t frame, const track_detection *dets, size_t n) {
    const track_event *ev = NULL;
    size_t n_ev = 0;
    vigil_error err;
    CHECK_EQ_INT(track_update(t, frame, dets, n, &ev, &n_ev, &err), VIGIL_OK);
    for (size_t i = 0; i < n_ev && log->n < 512; i++) {
        log->frames[log->n] = frame;
        log->events[log->n++] = ev[i];
    }
}

static size_t count(const event_log *log, track_event_kind kind, uint64_t id) {
    size_t c = 0;
    for (size_t i = 0; i < log->n; i++)
        c += log->events[i].kind == kind && log->events[i].track_id == id;
    return c;
}

/* Frame of the first event of this kind for id; UINT64_MAX when none. */
static uint64_t first_frame_of(const event_log *log, track_event_kind kind, uint64_t id) {
    for (size_t i = 0; i < log->n; i++)
        if (log->events[i].kind == kind && log->events[i].track_id == id) return log->frames[i];
    return UINT64_MAX;
}

static track_detection box_at(float cx, float cy, float w, float h, float score, int class_id) {
    track_detection d = {{cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2}, score, class_id};
    return d;
}

static tracker *make(int min_hits, int max_misses) {
    track_options o;
    track_options_default(&o);
    o.min_hits = min_hits;
    o.max_misses = max_misses;
    tracker *t = NULL;
    vigil_error err;
    CHECK_EQ_INT(track_create(&t, &o, &err), VIGIL_OK);
    return t;
}

/* 10 px a frame with a 50 px box: consecutive boxes overlap by IoU 0.67, but
 * after three missed frames the last box and the new one overlap by 0.11,
 * under iou_min: only the prediction can keep the id. */
static void test_constant_velocity_through_misses(void) {
    tracker *t = make(3, 3);
    event_log log = {0};
    uint64_t f = 0;
    for (; f < 10; f++) {
        track_detection d = box_at(25 + 10.0f * f, 100, 50, 50, 0.9f, 0);
        step(t, &log, f, &d, 1);
    }
    for (; f < 13; f++)
        step(t, &log, f, NULL, 0); /* max_misses (3) missed frames: survives */
    for (; f < 20; f++) {
        track_detection d = box_at(25 + 10.0f * f, 100, 50, 50, 0.9f, 0);
        step(t, &log, f, &d, 1);
    }
    CHECK_EQ_INT(count(&log, TRACK_ENTERED, 1), 1);
    CHECK_EQ_INT(first_frame_of(&log, TRACK_ENTERED, 1), 2); /* confirmed on the 3rd hit */
    CHECK_EQ_INT(count(&log, TRACK_UPDATED, 1), 7 + 7);
    CHECK_EQ_INT(track_get_stats(t).tracks_born, 1);
    CHECK_EQ_INT(count(&log, TRACK_LEFT, 1), 0);

    /* The track coasts on its prediction through the misses. */
    for (; f < 23; f++)
        step(t, &log, f, NULL, 0);
    const track_view *views = NULL;
    CHECK_EQ_INT(track_views(t, &views), 1);
    CHECK_NEAR(views[0].box.x1, 10.0f * 22, 1e-3);
    CHECK_EQ_INT(views[0].misses, 3);
    CHECK_EQ_INT(count(&log, TRACK_LEFT, 1), 0);
    step(t, &log, f, NULL, 0); /* the 4th miss: dropped now */
    CHECK_EQ_INT(count(&log, TRACK_LEFT, 1), 1);
    CHECK_EQ_INT(first_frame_of(&log, TRACK_LEFT, 1), 23);
    CHECK_EQ_INT(log.events[log.n - 1].reason, TRACK_LEFT_LOST);
    CHECK_EQ_INT(log.events[log.n - 1].last_frame, 19);
    CHECK_EQ_INT(log.events[log.n - 1].detection, -1);
    CHECK_EQ_INT(track_views(t, &views), 0);
    track_destroy(t);
}

/* Two cars of one class driving at each other and through each other. */
static void test_crossing_objects_keep_ids(void) {
    tracker *t = make(2, 2);
    event_log log = {0};
    uint64_t id_a = 0, id_b = 0;
    int swapped = 0;
    for (uint64_t f = 0; f < 20; f++) {
        track_detection d[2] = {box_at(20 + 20.0f * f, 100, 60, 40, 0.8f, 0),
                                box_at(400 - 20.0f * f, 110, 60, 40, 0.8f, 0)};
        size_t before = log.n;
        step(t, &log, f, d, 2);
        for (size_t i = before; i < log.n; i++) {
            const track_event *e = &log.events[i];
            uint64_t *id = e->detection == 0 ? &id_a : &id_b;
            if (!*id) *id = e->track_id;
            swapped |= *id != e->track_id;
        }
    }
    CHECK(id_a != 0 && id_b != 0 && id_a != id_b);
    CHECK(!swapped);
    CHECK_EQ_INT(track_get_stats(t).tracks_born, 2);
    CHECK_EQ_INT(count(&log, TRACK_ENTERED, id_a), 1);
    CHECK_EQ_INT(count(&log, TRACK_ENTERED, id_b), 1);
    track_destroy(t);
}

/* Two hits, a miss, two hits, ...: never the three in a row birth needs. */
static void test_flicker_never_confirmed(void) {
    tracker *t = make(3, 5);
    event_log log = {0};
    for (uint64_t f = 0; f < 30; f++) {
        track_detection d = box_at(100, 100, 40, 40, 0.9f, 0);
        step(t, &log, f, &d, f % 3 != 2);
    }
    CHECK_EQ_INT(log.n, 0);
    CHECK_EQ_INT(track_get_stats(t).tracks_confirmed, 0);
    CHECK_EQ_INT(track_get_stats(t).tracks_born, 10);
    const track_view *views = NULL;
    CHECK_EQ_INT(track_views(t, &views), 0);
    track_destroy(t);
}

/* Objects come and go at different times: one ENTERED and one LEFT each. */
static void test_enter_and_leave_once_per_object(void) {
    tracker *t = make(2, 1);
    event_log log = {0};
    for (uint64_t f = 0; f < 40; f++) {
        track_detection d[3];
        size_t n = 0;
        if (f < 15) d[n++] = box_at(50 + 5.0f * f, 50, 30, 30, 0.7f, 0);
        if (f >= 5 && f < 30) d[n++] = box_at(400, 50 + 4.0f * f, 30, 30, 0.6f, 1);
        if (f >= 20 && f < 35) d[n++] = box_at(200 - 3.0f * f, 300, 30, 30, 0.95f, 0);
        step(t, &log, f, d, n);
    }
    CHECK_EQ_INT(track_get_stats(t).tracks_born, 3);
    for (uint64_t id = 1; id <= 3; id++) {
        CHECK_EQ_INT(count(&log, TRACK_ENTERED, id), 1);
        CHECK_EQ_INT(count(&log, TRACK_LEFT, id), 1);
    }
    CHECK_EQ_INT(first_frame_of(&log, TRACK_LEFT, 1), 16); /* last seen 14, max_misses 1 */
    track_destroy(t);
}

/* Bottom centre crossing a zone: ENTERED inside, LEFT (zone) outside, one id. */
static void test_zone_in_and_out(void) {
    track_options o;
    track_options_default(&o);
    o.min_hits = 1;
    const float zone[] = {100, 0, 200, 0, 200, 1000, 100, 1000};
    o.zone_xy = zone;
    o.n_zone_points = 4;
    tracker *t = NULL;
    vigil_error err;
    CHECK_EQ_INT(track_create(&t, &o, &err), VIGIL_OK);
    event_log log = {0};
    for (uint64_t f = 0; f < 25; f++) {
        track_detection d = box_at(55 + 10.0f * f, 100, 20, 40, 0.9f, 0);
        step(t, &log, f, &d, 1);
    }
    CHECK_EQ_INT(count(&log, TRACK_ENTERED, 1), 1);
    CHECK_EQ_INT(first_frame_of(&log, TRACK_ENTERED, 1), 5); /* cx 105 */
    CHECK_EQ_INT(first_frame_of(&log, TRACK_LEFT, 1), 15);   /* cx 205 */
    CHECK_EQ_INT(count(&log, TRACK_UPDATED, 1), 9);          /* cx 115 .. 195 */
    CHECK_EQ_INT(count(&log, TRACK_LEFT, 1), 1);
    for (size_t i = 0; i < log.n; i++)
        if (log.events[i].kind == TRACK_LEFT) CHECK_EQ_INT(log.events[i].reason, TRACK_LEFT_ZONE);
    for (uint64_t f = 25; f < 35; f++)
        step(t, &log, f, NULL, 0); /* lost outside: no second LEFT */
    CHECK_EQ_INT(count(&log, TRACK_LEFT, 1), 1);
    CHECK(track_point_in_polygon(zone, 4, 150, 500));
    CHECK(!track_point_in_polygon(zone, 4, 250, 500));
    track_destroy(t);
}

static void test_classes_of_interest_and_per_class(void) {
    track_options o;
    track_options_default(&o);
    o.min_hits = 1;
    const int classes[] = {2, 7};
    o.classes = classes;
    o.n_classes = 2;
    tracker *t = NULL;
    vigil_error err;
    CHECK_EQ_INT(track_create(&t, &o, &err), VIGIL_OK);
    event_log log = {0};
    for (uint64_t f = 0; f < 3; f++) {
        /* Same box, three classes: 0 is ignored, 2 and 7 are two tracks. */
        track_detection d[3] = {box_at(100, 100, 40, 40, 0.9f, 0), box_at(100, 100, 40, 40, 0.9f, 2),
                                box_at(100, 100, 40, 40, 0.9f, 7)};
        step(t, &log, f, d, 3);
    }
    CHECK_EQ_INT(track_get_stats(t).tracks_born, 2);
    CHECK_EQ_INT(track_get_stats(t).detections_ignored, 3);
    CHECK_EQ_INT(count(&log, TRACK_ENTERED, 1), 1);
    CHECK_EQ_INT(count(&log, TRACK_ENTERED, 2), 1);
    CHECK_EQ_INT(count(&log, TRACK_UPDATED, 1), 2);
    CHECK_EQ_INT(log.events[0].class_id, 2);
    CHECK_EQ_INT(log.events[1].class_id, 7);
    track_destroy(t);
}

/* Scores and IoU exactly at their thresholds count as passing. */
static void test_thresholds_exact(void) {
    event_log log = {0};
    /* high_score 0.5: a detection at exactly 0.5 starts a track, one below does not. */
    tracker *t = make(1, 0);
    track_detection d = box_at(100, 100, 40, 40, 0.5f, 0);
    step(t, &log, 0, &d, 1);
    CHECK_EQ_INT(track_get_stats(t).tracks_born, 1);
    track_destroy(t);
    t = make(1, 0);
    d.score = nextafterf(0.5f, 0.0f);
    step(t, &log, 0, &d, 1);
    CHECK_EQ_INT(track_get_stats(t).tracks_born, 0);
    track_destroy(t);

    /* low_score 0.1: keeps a confirmed track alive at exactly 0.1, not below. */
    for (int below = 0; below <= 1; below++) {
        t = make(1, 0);
        log.n = 0;
        d.score = 0.9f;
        step(t, &log, 0, &d, 1);
        d.score = below ? nextafterf(0.1f, 0.0f) : 0.1f;
        step(t, &log, 1, &d, 1);
        CHECK_EQ_INT(count(&log, TRACK_UPDATED, 1), below ? 0 : 1);
        CHECK_EQ_INT(count(&log, TRACK_LEFT, 1), below ? 1 : 0);
        CHECK_EQ_INT(track_get_stats(t).tracks_born, 1); /* a low-score detection starts nothing */
        track_destroy(t);
    }

    /* iou_min: [0,0,10,10] then [0,0,10,5] overlap by exactly 0.5. */
    for (int above = 0; above <= 1; above++) {
        track_options o;
        track_options_default(&o);
        o.min_hits = 1;
        o.max_misses = 0;
        o.iou_min = above ? 0.51f : 0.5f;
        vigil_error err;
        CHECK_EQ_INT(track_create(&t, &o, &err), VIGIL_OK);
        log.n = 0;
        track_detection a = {{0, 0, 10, 10}, 0.9f, 0}, b = {{0, 0, 10, 5}, 0.9f, 0};
        CHECK_EQ_INT(track_iou(&a.box, &b.box), 0.5f);
        step(t, &log, 0, &a, 1);
        step(t, &log, 1, &b, 1);
        CHECK_EQ_INT(track_get_stats(t).tracks_born, above ? 2 : 1);
        CHECK_EQ_INT(count(&log, TRACK_UPDATED, 1), above ? 0 : 1);
        track_destroy(t);
    }

    /* min_hits 1: confirmed at the first frame; max_misses 0: dropped at the first miss. */
    t = make(1, 0);
    log.n = 0;
    d.score = 0.9f;
    step(t, &log, 7, &d, 1);
    CHECK_EQ_INT(first_frame_of(&log, TRACK_ENTERED, 1), 7);
    step(t, &log, 8, NULL, 0);
    CHECK_EQ_INT(first_frame_of(&log, TRACK_LEFT, 1), 8);
    track_destroy(t);
}

/* The best snapshot is the frame with the highest matched score. */
static void test_best_snapshot(void) {
    tracker *t = make(1, 2);
    event_log log = {0};
    const float scores[] = {0.6f, 0.8f, 0.95f, 0.7f, 0.95f, 0.5f};
    size_t changed = 0;
    for (uint64_t f = 0; f < 6; f++) {
        track_detection d = box_at(100 + 2.0f * f, 100, 40, 40, scores[f], 0);
        step(t, &log, 100 + f, &d, 1);
        changed += log.events[log.n - 1].best_changed;
    }
    for (uint64_t f = 6; f < 9; f++)
        step(t, &log, 100 + f, NULL, 0);
    const track_event *left = &log.events[log.n - 1];
    CHECK_EQ_INT(left->kind, TRACK_LEFT);
    CHECK_EQ_INT(left->best_frame, 102); /* ties keep the earlier frame */
    CHECK_NEAR(left->best_score, 0.95f, 0);
    CHECK_NEAR(left->best_box.x1, 84, 1e-4);
    CHECK_EQ_INT(changed, 3);
    track_destroy(t);
}

static void test_bad_options_and_out_of_memory(void) {
    track_options o;
    tracker *t = NULL;
    vigil_error err;
    track_options_default(&o);
    o.low_score = 0.6f;
    CHECK_EQ_INT(track_create(&t, &o, &err), VIGIL_ERR_INVALID_ARGUMENT);
    track_options_default(&o);
    o.min_hits = 0;
    CHECK_EQ_INT(track_create(&t, &o, &err), VIGIL_ERR_INVALID_ARGUMENT);
    track_options_default(&o);
    const float two[] = {0, 0, 1, 1};
    o.zone_xy = two;
    o.n_zone_points = 2;
    CHECK_EQ_INT(track_create(&t, &o, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(t == NULL);
    track_options_default(&o);
    for (long nth = 1; nth <= 7; nth++) {
        alloc_fail_nth(nth);
        vigil_status st = track_create(&t, &o, &err);
        alloc_fail_nth(0);
        if (st == VIGIL_OK) {
            track_destroy(t);
            continue;
        }
        CHECK_EQ_INT(st, VIGIL_ERR_NO_MEMORY);
        CHECK(t == NULL);
    }
    /* A failed update (the pair list cannot grow) leaves the tracker as it was. */
    CHECK_EQ_INT(track_create(&t, &o, &err), VIGIL_OK);
    track_detection d = box_at(50, 50, 20, 20, 0.9f, 0);
    const track_event *ev;
    size_t n_ev;
    CHECK_EQ_INT(track_update(t, 0, &d, 1, &ev, &n_ev, &err), VIGIL_OK);
    alloc_fail_nth(1);
    CHECK_EQ_INT(track_update(t, 1, &d, 1, &ev, &n_ev, &err), VIGIL_ERR_NO_MEMORY);
    alloc_fail_nth(0);
    CHECK_EQ_INT(track_get_stats(t).frames, 1);
    CHECK_EQ_INT(track_update(t, 1, &d, 1, &ev, &n_ev, &err), VIGIL_OK);
    CHECK_EQ_INT(track_get_stats(t).tracks_born, 1);
    track_destroy(t);
}

int main(void) {
    RUN(test_constant_velocity_through_misses);
    RUN(test_crossing_objects_keep_ids);
    RUN(test_flicker_never_confirmed);
    RUN(test_enter_and_leave_once_per_object);
    RUN(test_zone_in_and_out);
    RUN(test_classes_of_interest_and_per_class);
    RUN(test_thresholds_exact);
    RUN(test_best_snapshot);
    RUN(test_bad_options_and_out_of_memory);
    return testing_report();
}
