/*
 * test_vision_jpeg_letterbox.c - the streamed, banded JPEG letterbox gives
 * the tensor of vigil_image_decode + vigil_letterbox bit for bit, for every
 * way of splitting a file into bands, and refuses what that refuses.
 *
 * Files come from libjpeg's own encoder so that each layout the splitter
 * handles differently is covered: a restart marker every MCU row (phones,
 * cameras, bus.jpg), markers every few MCUs that do not fall on row starts,
 * grey scale, 4:4:4, no markers, progressive.  bus.jpg and zidane.jpg from
 * ../shared run too when present.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "core/alloc.h"
#include "testing.h"
#include "vigil/engine.h"
#include "vigil/vision.h"
#include "vision/exif.h"
#include "vision/jpeg_letterbox.h"

typedef struct jpeg_spec {
    int width, height, components;
    int h_samp;           /* luma sampling: 2 = 4:2:0, 1 = 4:4:4 */
    int restart_in_rows;  /* marker every n MCU rows */
    int restart_interval; /* or every n MCUs */
    int progressive;
} jpeg_spec;

/* A smooth picture with some detail, so every band has real data. */
static uint8_t *make_pixels(const jpeg_spec *s) {
    size_t n = (size_t)s->width * s->height * s->components;
    uint8_t *px = malloc(n);
    for (int y = 0; y < s->height; y++)
        for (int x = 0; x < s->width; x++)
            for (int c = 0; c < s->components; c++)
                px[((size_t)y * s->width + x) * s->components + c] =
                    (uint8_t)((x * (c + 1) + y * (3 - c) + ((x / 7 + y / 5) % 3) * 40 + (x * y % 17)) & 255);
    return px;
}

static uint8_t *encode(const jpeg_spec *s, size_t *size) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long len = 0;
    jpeg_mem_dest(&c, &out, &len);
    c.image_width = (JDIMENSION)s->width;
    c.image_height = (JDIMENSION)s->height;
    c.input_components = s->components;
    c.in_color_space = s->components == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    if (s->components == 3) c.comp_info[0].h_samp_factor = c.comp_info[0].v_samp_factor = s->h_samp;
    c.restart_in_rows = s->restart_in_rows;
    c.restart_interval = (unsigned)s->restart_interval;
    if (s->progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    uint8_t *px = make_pixels(s);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = px + (size_t)c.next_scanline * s->width * s->components;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(px);
    uint8_t *copy = malloc(len);
    memcpy(copy, out, len);
    free(out);
    *size = len;
    return copy;
}

/* Whole decode + letterbox against the streamed one in `parts` bands; the
 * decode facts must agree too.  Returns the streamed status; *bands (may be
 * NULL) says how many bands ran. */
/* Runs the bands on this engine's pool, lent as a vigil_parallel (NULL:
 * one after another here), as the CPU backend lends it to the server. */
static vigil_engine *engine;
static vigil_parallel *pool;
static void engine_run(void *ctx, size_t n, void (*task)(void *arg, size_t index), void *arg) {
    vigil_engine_parallelize(ctx, task, arg, n);
}

static vigil_status compare_bands(const uint8_t *jpeg, size_t size, int in_w, int in_h, int target, int parts,
                                  int *bands) {
    size_t n = (size_t)in_w * in_h * 3;
    float *want = vigil_malloc(n * sizeof(float)), *got = vigil_malloc(n * sizeof(float));
    vigil_decode_options opt = {.target_size = target};
    vigil_image img;
    vigil_decode_info want_info, got_info;
    vigil_letterbox_info want_lb, got_lb;
    vigil_error err;
    vigil_status want_st = vigil_image_decode(jpeg, size, &opt, &img, &want_info, &err);
    if (!want_st) {
        want_st = vigil_letterbox(&img, in_w, in_h, NULL, want, &want_lb, &err);
        vigil_image_free(&img);
    }
    jpeg_letterbox_stats timing;
    jpeg_letterbox_dst dst = {.data = got, .in_w = in_w, .in_h = in_h};
    vigil_status st = jpeg_letterbox(jpeg, size, &opt, &dst, pool, parts, &got_info, &got_lb, &timing, &err);
    CHECK_EQ_INT(st, want_st);
    if (!st && !want_st) {
        CHECK(memcmp(want, got, n * sizeof(float)) == 0);
        CHECK(memcmp(&want_lb, &got_lb, sizeof want_lb) == 0);
        CHECK_EQ_INT(got_info.orig_width, want_info.orig_width);
        CHECK_EQ_INT(got_info.orig_height, want_info.orig_height);
        CHECK_EQ_INT(got_info.scale_denom, want_info.scale_denom);
        CHECK(timing.decode_ms > 0 && timing.letterbox_ms > 0);
        CHECK(timing.bands >= 1 && timing.bands <= parts);
        CHECK_EQ_INT(timing.pipelined, pool && parts > 1 && timing.bands == 1);
        if (bands) *bands = timing.bands;
    }
    vigil_free(want);
    vigil_free(got);
    return st;
}

static vigil_status compare(const uint8_t *jpeg, size_t size, int in_w, int in_h, int target, int parts) {
    return compare_bands(jpeg, size, in_w, in_h, target, parts, NULL);
}

/* Where the scan starts: the offset after the SOS segment. */
static size_t scan_start(const uint8_t *jpeg, size_t size) {
    size_t pos = 2;
    jpeg_segment seg;
    while (jpeg_next_segment(jpeg, size, &pos, &seg))
        if (seg.marker == 0xDA) return pos;
    return size;
}

/* 1 when an RSTn marker starts at offset i, inside the scan. */
static int restart_marker_at(const uint8_t *jpeg, size_t size, size_t scan, size_t i) {
    return i >= scan && i + 1 < size && jpeg[i] == 0xFF && jpeg[i + 1] >= 0xD0 && jpeg[i + 1] <= 0xD7;
}

/* Every split agrees with the whole decode; `split` says whether the file
 * must actually be cut into as many bands as asked (up to 3). */
static void check_spec(const jpeg_spec *s, int split) {
    size_t size;
    uint8_t *jpeg = encode(s, &size);
    static const int parts[] = {1, 2, 3, 5, 16};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        int bands = 0;
        CHECK_EQ_INT(compare_bands(jpeg, size, 64, 64, 0, parts[i], &bands), VIGIL_OK); /* strong reduction */
        if (split)
            CHECK(bands == parts[i] || (parts[i] > 3 && bands >= 3));
        else
            CHECK_EQ_INT(bands, 1);
        CHECK_EQ_INT(compare(jpeg, size, 320, 256, 0, parts[i]), VIGIL_OK); /* mild, non-square */
        CHECK_EQ_INT(compare(jpeg, size, 96, 96, 96, parts[i]), VIGIL_OK);  /* with DCT scaling */
    }
    free(jpeg);
}

static void test_restart_every_row(void) {
    check_spec(&(jpeg_spec){.width = 405, .height = 540, .components = 3, .h_samp = 2, .restart_in_rows = 1}, 1);
}

static void test_restart_every_few_rows(void) {
    check_spec(&(jpeg_spec){.width = 300, .height = 333, .components = 3, .h_samp = 2, .restart_in_rows = 3}, 1);
}

/* Markers every 7 MCUs fall on a row start only every 7 rows. */
static void test_restart_off_row_starts(void) {
    check_spec(&(jpeg_spec){.width = 250, .height = 410, .components = 3, .h_samp = 1, .restart_interval = 7}, 1);
}

static void test_grey_with_restarts(void) {
    check_spec(&(jpeg_spec){.width = 200, .height = 301, .components = 1, .restart_in_rows = 1}, 1);
}

static void test_no_restarts(void) {
    check_spec(&(jpeg_spec){.width = 320, .height = 200, .components = 3, .h_samp = 2}, 0);
}

static void test_progressive(void) {
    check_spec(
        &(jpeg_spec){.width = 160, .height = 400, .components = 3, .h_samp = 2, .restart_in_rows = 1, .progressive = 1},
        0);
}

/* Images smaller than the input are enlarged; same size is copied. */
static void test_enlarge_and_copy(void) {
    jpeg_spec s = {.width = 48, .height = 80, .components = 3, .h_samp = 2, .restart_in_rows = 1};
    size_t size;
    uint8_t *jpeg = encode(&s, &size);
    for (int parts = 1; parts <= 4; parts++) {
        CHECK_EQ_INT(compare(jpeg, size, 320, 320, 0, parts), VIGIL_OK);
        CHECK_EQ_INT(compare(jpeg, size, 80, 80, 0, parts), VIGIL_OK); /* r = 1: no resize */
    }
    free(jpeg);
    s = (jpeg_spec){.width = 1, .height = 40, .components = 3, .h_samp = 2, .restart_in_rows = 1}; /* one column */
    jpeg = encode(&s, &size);
    for (int parts = 1; parts <= 3; parts++)
        CHECK_EQ_INT(compare(jpeg, size, 16, 16, 0, parts), VIGIL_OK);
    free(jpeg);
}

/* Cut anywhere, or damaged markers: refused (or decoded) exactly as the
 * whole-image decoder does, in any number of bands. */
static void test_damage(void) {
    jpeg_spec s = {.width = 256, .height = 256, .components = 3, .h_samp = 2, .restart_in_rows = 1};
    size_t size;
    uint8_t *jpeg = encode(&s, &size);
    static const double cuts[] = {0.01, 0.3, 0.6, 0.99};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        size_t cut = (size_t)(size * cuts[i]);
        CHECK(compare(jpeg, cut, 64, 64, 0, 3) != VIGIL_OK);
    }
    /* every restart marker renamed RST3: whatever libjpeg makes of that */
    uint8_t *bad = malloc(size);
    memcpy(bad, jpeg, size);
    size_t scan = scan_start(bad, size);
    for (size_t i = 0; i < size; i++)
        if (restart_marker_at(bad, size, scan, i)) bad[i + 1] = 0xD3;
    compare(bad, size, 64, 64, 0, 2);
    free(bad);
    free(jpeg);
}

/* Junk between a segment's data and its restart marker changes no pixel:
 * accepted by both paths (libjpeg only reports it at the next marker it
 * reads itself, which a band that stops early never reaches). */
static void test_junk_before_markers(void) {
    jpeg_spec s = {.width = 96, .height = 128, .components = 3, .h_samp = 2, .restart_in_rows = 1};
    size_t size;
    uint8_t *jpeg = encode(&s, &size);
    uint8_t *junk = malloc(size * 2);
    size_t n = 0, markers = 0, scan = scan_start(jpeg, size);
    for (size_t i = 0; i < size; i++) {
        if (restart_marker_at(jpeg, size, scan, i)) {
            junk[n++] = 0x12, junk[n++] = 0x34, junk[n++] = 0x56;
            markers++;
        }
        junk[n++] = jpeg[i];
    }
    CHECK(markers >= 4);
    for (int parts = 1; parts <= 3; parts++)
        CHECK_EQ_INT(compare(junk, n, 64, 64, 0, parts), VIGIL_OK);
    free(junk);
    free(jpeg);
}

/* A pixel limit refuses before decoding, in bands too. */
static void test_pixel_limit(void) {
    jpeg_spec s = {.width = 200, .height = 200, .components = 3, .h_samp = 2, .restart_in_rows = 1};
    size_t size;
    uint8_t *jpeg = encode(&s, &size);
    float tensor[3 * 32 * 32];
    vigil_decode_options opt = {.max_pixels = 199 * 200};
    vigil_error err;
    jpeg_letterbox_dst dst = {.data = tensor, .in_w = 32, .in_h = 32};
    CHECK_EQ_INT(jpeg_letterbox(jpeg, size, &opt, &dst, NULL, 2, NULL, NULL, NULL, &err), VIGIL_ERR_LIMIT);
    CHECK(strstr(err.message, "max_image_pixels") != NULL);
    free(jpeg);
}

/* A tensor that already holds this geometry's padding keeps it (the
 * padding is not written again); any other geometry is written whole. */
static void test_padding_reused(void) {
    jpeg_spec s = {.width = 120, .height = 200, .components = 3, .h_samp = 2, .restart_in_rows = 1};
    size_t size;
    uint8_t *jpeg = encode(&s, &size);
    enum { W = 64, H = 64, N = 3 * W * H };
    static float want[N], got[N];
    vigil_error err;
    vigil_letterbox_info geometry, other;
    jpeg_letterbox_dst dst = {.data = want, .in_w = W, .in_h = H};
    CHECK_EQ_INT(jpeg_letterbox(jpeg, size, NULL, &dst, NULL, 2, NULL, &geometry, NULL, &err), VIGIL_OK);
    CHECK(geometry.pad_left > 0);
    for (int i = 0; i < N; i++)
        got[i] = -7.f;
    dst = (jpeg_letterbox_dst){.data = got, .in_w = W, .in_h = H, .padded = &geometry};
    CHECK_EQ_INT(jpeg_letterbox(jpeg, size, NULL, &dst, NULL, 2, NULL, NULL, NULL, &err), VIGIL_OK);
    int kept = 0, image_equal = 1;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int i = (c * H + y) * W + x;
                int in_image = x >= geometry.pad_left && x < geometry.pad_left + geometry.resized_w &&
                               y >= geometry.pad_top && y < geometry.pad_top + geometry.resized_h;
                if (in_image)
                    image_equal &= got[i] == want[i];
                else
                    kept += got[i] == -7.f;
            }
    CHECK(image_equal);
    CHECK_EQ_INT(kept, 3 * (W * H - geometry.resized_w * geometry.resized_h));
    other = geometry;
    other.pad_left++;
    dst.padded = &other;
    CHECK_EQ_INT(jpeg_letterbox(jpeg, size, NULL, &dst, NULL, 2, NULL, NULL, NULL, &err), VIGIL_OK);
    CHECK(memcmp(got, want, sizeof want) == 0);
    free(jpeg);
}

/* On a real pool: bands run on two threads, and a file that cannot be
 * split is decoded and letterboxed side by side (producer and consumer on a
 * ring of rows).  Repeated, so that a race has many chances to show. */
static void test_on_two_threads(void) {
    vigil_engine_options eo = {.threads = 2};
    vigil_error err;
    CHECK_EQ_INT(vigil_engine_create(&eo, &engine, &err), VIGIL_OK);
    vigil_parallel lent = {.run = engine_run, .ctx = engine, .threads = vigil_engine_threads(engine)};
    pool = &lent;
    static const jpeg_spec specs[] = {
        {.width = 320, .height = 200, .components = 3, .h_samp = 2},                       /* no markers */
        {.width = 160, .height = 400, .components = 3, .h_samp = 2, .progressive = 1},     /* progressive */
        {.width = 405, .height = 540, .components = 3, .h_samp = 2, .restart_in_rows = 1}, /* bands */
        {.width = 30, .height = 700, .components = 1},                                     /* tall, grey */
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        size_t size;
        uint8_t *jpeg = encode(&specs[i], &size);
        for (int round = 0; round < 20; round++) {
            int bands = 0;
            CHECK_EQ_INT(compare_bands(jpeg, size, 64, 64, 0, 2, &bands), VIGIL_OK);
            CHECK_EQ_INT(bands, specs[i].restart_in_rows ? 2 : 1);
            CHECK_EQ_INT(compare(jpeg, size, 320, 320, 0, 2), VIGIL_OK); /* enlarged: rows asked twice */
        }
        for (int cut = 1; cut < 4; cut++) /* a cut file stops both sides, whichever fails first */
            CHECK(compare(jpeg, size * (size_t)cut / 4, 64, 64, 0, 2) != VIGIL_OK);
        free(jpeg);
    }
    size_t bus_size = 0, zidane_size = 0;
    uint8_t *bus = testing_read_shared("images/bus.jpg", &bus_size);
    uint8_t *zidane = testing_read_shared("images/zidane.jpg", &zidane_size);
    for (int round = 0; bus && zidane && round < 5; round++) { /* bands, and one band side by side */
        CHECK_EQ_INT(compare(bus, bus_size, 640, 640, 640, 2), VIGIL_OK);
        CHECK_EQ_INT(compare(zidane, zidane_size, 640, 640, 640, 2), VIGIL_OK);
    }
    free(bus);
    free(zidane);
    pool = NULL;
    vigil_engine_destroy(engine);
    pool = NULL;
}

static void test_shared_images(void) {
    static const char *images[] = {"images/bus.jpg", "images/zidane.jpg"};
    for (size_t i = 0; i < 2; i++) {
        size_t size;
        uint8_t *jpeg = testing_read_shared(images[i], &size);
        if (!jpeg) SKIP("../shared images are absent");
        for (int parts = 1; parts <= 4; parts++)
            CHECK_EQ_INT(compare(jpeg, size, 640, 640, 640, parts), VIGIL_OK);
        free(jpeg);
    }
}

int main(void) {
    RUN(test_restart_every_row);
    RUN(test_restart_every_few_rows);
    RUN(test_restart_off_row_starts);
    RUN(test_grey_with_restarts);
    RUN(test_no_restarts);
    RUN(test_progressive);
    RUN(test_enlarge_and_copy);
    RUN(test_damage);
    RUN(test_junk_before_markers);
    RUN(test_pixel_limit);
    RUN(test_padding_reused);
    RUN(test_shared_images);
    RUN(test_on_two_threads);
    return testing_report();
}
