/*
 * test_vision_heads.c - each YOLO head decoder, the family detection, NMS,
 * box mapping and labels, on small hand-built tensors whose right answers
 * are worked out in the comments.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "testing.h"
#include "vision/heads.h"

static vigil_tensor tensor3(float *data, int64_t d1, int64_t d2) {
    vigil_tensor t = {.dtype = VIGIL_DTYPE_F32, .ndim = 3, .dims = {1, d1, d2}, .data = data};
    return t;
}

static head_params params(float conf, int w, int h) {
    head_params p = {.conf_threshold = conf, .input_w = w, .input_h = h};
    return p;
}

static void check_box(const head_box *b, float x1, float y1, float x2, float y2, float score, int cls) {
    CHECK_NEAR(b->x1, x1, 1e-4);
    CHECK_NEAR(b->y1, y1, 1e-4);
    CHECK_NEAR(b->x2, x2, 1e-4);
    CHECK_NEAR(b->y2, y2, 1e-4);
    CHECK_NEAR(b->score, score, 1e-5);
    CHECK_EQ_INT(b->class_id, cls);
}

/* v8: [1, 4+3, 16] channels first (anchors 4..15 score 0). */
static void test_yolov8_decode(void) {
    enum { A = 16, C = 7 };
    float d[C * A] = {0};
#define V8(c, a) d[(c)*A + (a)]
    /* anchor 0: cx 10 cy 10 w 4 h 6 -> (8,7,12,13), class 1 at 0.9 */
    V8(0, 0) = 10, V8(1, 0) = 10, V8(2, 0) = 4, V8(3, 0) = 6, V8(4, 0) = .1f, V8(5, 0) = .9f, V8(6, 0) = .2f;
    /* anchor 1: every score below the threshold */
    V8(4, 1) = .1f, V8(5, 1) = .1f, V8(6, 1) = .1f;
    /* anchor 2: past the left/top border, kept as is (clipping comes later) */
    V8(0, 2) = 1, V8(1, 2) = 2, V8(2, 2) = 6, V8(3, 2) = 8, V8(4, 2) = .5f;
    /* anchor 3: a tie between classes 0 and 1 picks the first */
    V8(0, 3) = 30, V8(1, 3) = 30, V8(2, 3) = 2, V8(3, 3) = 2, V8(4, 3) = .6f, V8(5, 3) = .6f;
#undef V8
    vigil_tensor_info info = {.ndim = 3, .dims = {1, C, A}};
    head_layout l;
    vigil_error err;
    CHECK_EQ_INT(head_detect_layout(&info, 1, 0, NULL, 64, 64, VIGIL_HEAD_AUTO, 0, &l, &err), VIGIL_OK);
    CHECK_EQ_INT(l.family, VIGIL_HEAD_YOLOV8);
    CHECK_EQ_INT(l.n_classes, 3);
    vigil_tensor t = tensor3(d, C, A);
    head_params p = params(0.25f, 64, 64);
    head_boxes b = {0};
    CHECK_EQ_INT(head_decode(&l, &t, &p, &b, &err), VIGIL_OK);
    CHECK_EQ_INT(b.count, 3);
    if (b.count == 3) {
        check_box(&b.items[0], 8, 7, 12, 13, .9f, 1);
        check_box(&b.items[1], -2, -2, 4, 6, .5f, 0);
        check_box(&b.items[2], 29, 29, 31, 31, .6f, 0);
    }
    /* class filter: only class 1 */
    int only1[] = {1};
    p.classes = only1, p.n_classes = 1;
    b.count = 0;
    CHECK_EQ_INT(head_decode(&l, &t, &p, &b, &err), VIGIL_OK);
    CHECK_EQ_INT(b.count, 1);
    /* nothing above a high threshold: empty output */
    p = params(0.95f, 64, 64);
    b.count = 0;
    CHECK_EQ_INT(head_decode(&l, &t, &p, &b, &err), VIGIL_OK);
    CHECK_EQ_INT(b.count, 0);
    head_boxes_free(&b);
}

/* v5: rows of cx cy w h obj c0 c1; score = obj * cls. */
static void test_yolov5_decode(void) {
    enum { A = 3, K = 7 };
    float d[A * K] = {
        20, 20, 10, 10, .8f, .5f, .25f, /* 0.8*0.5 = 0.4, class 0, box (15,15,25,25) */
        5,  5,  2,  2,  .2f, 1.f, 1.f,  /* objectness 0.2 < 0.25: dropped */
        40, 40, 4,  4,  .5f, .4f, .45f, /* 0.5*0.45 = 0.225 < 0.25: dropped */
    };
    head_layout l = {.family = VIGIL_HEAD_YOLOV5, .n_classes = 2, .n_anchors = A};
    vigil_tensor t = tensor3(d, A, K);
    head_params p = params(0.25f, 64, 64);
    head_boxes b = {0};
    vigil_error err;
    CHECK_EQ_INT(head_decode(&l, &t, &p, &b, &err), VIGIL_OK);
    CHECK_EQ_INT(b.count, 1);
    if (b.count) check_box(&b.items[0], 15, 15, 25, 25, .4f, 0);
    /* a tensor of the wrong size is refused, not read past its end */
    vigil_tensor small = tensor3(d, 2, K);
    CHECK_EQ_INT(head_decode(&l, &small, &p, &b, &err), VIGIL_ERR_INVALID_ARGUMENT);
    head_boxes_free(&b);
}

/* YOLOX on a 64x64 input: 8x8 + 4x4 + 2x2 = 84 rows of 5 + 2. */
static void test_yolox_decode(void) {
    enum { A = 84, K = 7 };
    float *d = calloc(A * K, sizeof(float));
    /* stride 16, grid (x 1, y 2) is row 64 + 2*4 + 1 = 73:
     * cx = (0.5+1)*16 = 24, cy = (0.25+2)*16 = 36, w = e^ln2 * 16 = 32, h = e^0 * 16 = 16
     * -> (8, 28, 40, 44); score 0.9 * 0.5 = 0.45, class 1 */
    float *r = d + 73 * K;
    r[0] = .5f, r[1] = .25f, r[2] = logf(2.f), r[3] = 0, r[4] = .9f, r[5] = .1f, r[6] = .5f;
    vigil_tensor_info info = {.ndim = 3, .dims = {1, A, K}};
    head_layout l;
    vigil_error err;
    CHECK_EQ_INT(head_detect_layout(&info, 1, 2, NULL, 64, 64, VIGIL_HEAD_AUTO, 0, &l, &err), VIGIL_OK);
    CHECK_EQ_INT(l.family, VIGIL_HEAD_YOLOX);
    vigil_tensor t = tensor3(d, A, K);
    head_params p = params(0.25f, 64, 64);
    head_boxes b = {0};
    CHECK_EQ_INT(head_decode(&l, &t, &p, &b, &err), VIGIL_OK);
    CHECK_EQ_INT(b.count, 1);
    if (b.count) {
        check_box(&b.items[0], 8, 28, 40, 44, .45f, 1);
        CHECK_EQ_INT(b.items[0].anchor, 73);
    }
    head_boxes_free(&b);
    free(d);
}

/* NanoDet on 64x64: strides 8/16/32/64 give 64+16+4+1 = 85 rows of
 * 2 scores + 4 sides x 8 bins. */
static void test_nanodet_decode(void) {
    enum { A = 85, K = 2 + 32 };
    float *d = calloc(A * K, sizeof(float));
    /* stride 8, grid (x 3, y 2) = row 19, centre (24, 16).  Bins: left peaks
     * at 2 (16 px), top at 1 (8 px), right at 3 (24 px), bottom split evenly
     * between 1 and 3 (expectation 2: 16 px) -> (8, 8, 48, 32). */
    float *r = d + 19 * K;
    r[0] = .3f, r[1] = .7f;
    float *reg = r + 2;
    reg[0 * 8 + 2] = 30, reg[1 * 8 + 1] = 30, reg[2 * 8 + 3] = 30, reg[3 * 8 + 1] = 30, reg[3 * 8 + 3] = 30;
    vigil_tensor_info info = {.ndim = 3, .dims = {1, A, K}};
    head_layout l;
    vigil_error err;
    CHECK_EQ_INT(head_detect_layout(&info, 1, 2, NULL, 64, 64, VIGIL_HEAD_AUTO, 0, &l, &err), VIGIL_OK);
    CHECK_EQ_INT(l.family, VIGIL_HEAD_NANODET);
    CHECK_EQ_INT(l.n_classes, 2);
    vigil_tensor t = tensor3(d, A, K);
    head_params p = params(0.5f, 64, 64);
    head_boxes b = {0};
    CHECK_EQ_INT(head_decode(&l, &t, &p, &b, &err), VIGIL_OK);
    CHECK_EQ_INT(b.count, 1);
    if (b.count) check_box(&b.items[0], 8, 8, 48, 32, .7f, 1);
    head_boxes_free(&b);
    free(d);
}

/* NanoDet's original export on 64x64: per stride 8/16/32 (64, 16 and 4
 * cells) a score output [1, cells, 2] and a distribution output
 * [1, cells, 32]; grid points at cell centres ((x + 0.5) s, as GFL's
 * get_single_level_center_point).
 *   stride 8, cell (3, 2), anchor 19: centre (28, 20); left 2 bins (16 px),
 *     top 1 (8), right 3 (24), bottom split between 1 and 3 (16)
 *     -> (12, 12, 52, 36), class 1 at 0.7
 *   stride 32, cell (1, 0), anchor 64 + 16 + 1 = 81: centre (48, 16); left 1
 *     (32), top 1 (32), right 2 (64), bottom 0 -> (16, -16, 112, 16),
 *     clipped to the input: (16, 0, 64, 16), class 0 at 0.8 */
static void test_nanodet_six_outputs(void) {
    enum { NC = 2, BINS = 8, DIS = 4 * BINS };
    static const int cells[3] = {64, 16, 4};
    float *cls[3], *dis[3];
    for (int lv = 0; lv < 3; lv++) {
        cls[lv] = calloc((size_t)cells[lv] * NC, sizeof(float));
        dis[lv] = calloc((size_t)cells[lv] * DIS, sizeof(float));
    }
    float *r = cls[0] + 19 * NC, *reg = dis[0] + 19 * DIS;
    r[0] = .3f, r[1] = .7f;
    reg[0 * BINS + 2] = 30, reg[1 * BINS + 1] = 30, reg[2 * BINS + 3] = 30, reg[3 * BINS + 1] = 30,
                   reg[3 * BINS + 3] = 30;
    r = cls[2] + 1 * NC, reg = dis[2] + 1 * DIS;
    r[0] = .8f;
    reg[0 * BINS + 1] = 30, reg[1 * BINS + 1] = 30, reg[2 * BINS + 2] = 30, reg[3 * BINS + 0] = 30;
    /* the two orders exporters write: grouped (scores, then distributions) and
     * interleaved (cls_pred_stride_8, dis_pred_stride_8, ...) */
    static const int grouped[6] = {0, 1, 2, 3, 4, 5}, interleaved[6] = {0, 3, 1, 4, 2, 5};
    const int *orders[2] = {grouped, interleaved};
    for (int o = 0; o < 2; o++) {
        vigil_tensor outs[6];
        vigil_tensor_info infos[6];
        for (int k = 0; k < 6; k++) { /* k < 3: scores of level k; else distributions of level k - 3 */
            int lv = k % 3, at = orders[o][k];
            int64_t cols = k < 3 ? NC : DIS;
            outs[at] = tensor3(k < 3 ? cls[lv] : dis[lv], cells[lv], cols);
            infos[at] = (vigil_tensor_info){.ndim = 3, .dims = {1, cells[lv], cols}};
        }
        for (int forced = 0; forced <= 1; forced++) {
            head_layout l;
            vigil_error err;
            vigil_head_family want = forced ? VIGIL_HEAD_NANODET : VIGIL_HEAD_AUTO;
            CHECK_EQ_INT(head_detect_layout(infos, 6, 0, NULL, 64, 64, want, 0, &l, &err), VIGIL_OK);
            CHECK_EQ_INT(l.family, VIGIL_HEAD_NANODET);
            CHECK_EQ_INT(l.n_outputs, 6);
            CHECK_EQ_INT(l.n_classes, NC);
            CHECK_EQ_INT(l.n_anchors, 84);
            head_params p = params(.5f, 64, 64);
            head_boxes b = {0};
            CHECK_EQ_INT(head_decode_outputs(&l, outs, 6, &p, &b, &err), VIGIL_OK);
            CHECK_EQ_INT(b.count, 2);
            if (b.count == 2) {
                check_box(&b.items[0], 12, 12, 52, 36, .7f, 1);
                CHECK_EQ_INT(b.items[0].anchor, 19);
                check_box(&b.items[1], 16, 0, 64, 16, .8f, 0);
                CHECK_EQ_INT(b.items[1].anchor, 81);
            }
            /* fewer outputs than the layout reads is an error, not a read past the array */
            CHECK_EQ_INT(head_decode_outputs(&l, outs, 5, &p, &b, &err), VIGIL_ERR_INVALID_ARGUMENT);
            head_boxes_free(&b);
        }
    }
    /* six outputs that do not pair up (a distribution of 31 columns) are not
     * taken for NanoDet, and forcing the family says what it needs */
    vigil_tensor_info odd[6];
    for (int k = 0; k < 6; k++)
        odd[k] = (vigil_tensor_info){.ndim = 3, .dims = {1, cells[k % 3], k < 3 ? NC : DIS}};
    odd[4].dims[2] = 31;
    head_layout l;
    vigil_error err;
    CHECK_EQ_INT(head_detect_layout(odd, 6, 0, NULL, 64, 64, VIGIL_HEAD_AUTO, 0, &l, &err), VIGIL_ERR_UNSUPPORTED);
    CHECK_EQ_INT(head_detect_layout(odd, 6, 0, NULL, 64, 64, VIGIL_HEAD_NANODET, 0, &l, &err), VIGIL_ERR_UNSUPPORTED);
    CHECK(strstr(err.message, "six outputs") != NULL);
    for (int lv = 0; lv < 3; lv++)
        free(cls[lv]), free(dis[lv]);
}

/* The original head's single output (current NanoDet export_onnx.py): rows
 * over strides 8/16/32 only (84 at 64x64), grid points at cell centres.
 * Stride 16, cell (1, 2) = row 64 + 2 * 4 + 1 = 73: centre (24, 40); every
 * side 1 bin (16 px) -> (8, 24, 40, 56). */
static void test_nanodet_original_single_output(void) {
    enum { A = 84, K = 2 + 32 };
    float *d = calloc(A * K, sizeof(float));
    float *r = d + 73 * K;
    r[0] = .9f;
    for (int side = 0; side < 4; side++)
        r[2 + side * 8 + 1] = 30;
    vigil_tensor_info info = {.ndim = 3, .dims = {1, A, K}};
    for (int named = 0; named <= 2; named += 2) { /* 2 named classes: found unasked (5 + 2 != 34 rules out YOLOX) */
        head_layout l;
        vigil_error err;
        vigil_head_family want = named ? VIGIL_HEAD_AUTO : VIGIL_HEAD_NANODET;
        CHECK_EQ_INT(head_detect_layout(&info, 1, named, NULL, 64, 64, want, 0, &l, &err), VIGIL_OK);
        CHECK_EQ_INT(l.family, VIGIL_HEAD_NANODET);
        CHECK_EQ_INT(l.n_classes, 2);
        vigil_tensor t = tensor3(d, A, K);
        head_params p = params(.5f, 64, 64);
        head_boxes b = {0};
        CHECK_EQ_INT(head_decode(&l, &t, &p, &b, &err), VIGIL_OK);
        CHECK_EQ_INT(b.count, 1);
        if (b.count) check_box(&b.items[0], 8, 24, 40, 56, .9f, 0);
        head_boxes_free(&b);
    }
    /* a row count of neither grid is refused with both counts */
    vigil_tensor_info wrong = {.ndim = 3, .dims = {1, 80, K}};
    head_layout l;
    vigil_error err;
    CHECK_EQ_INT(head_detect_layout(&wrong, 1, 2, NULL, 64, 64, VIGIL_HEAD_NANODET, 0, &l, &err),
                 VIGIL_ERR_UNSUPPORTED);
    CHECK(strstr(err.message, "85") != NULL && strstr(err.message, "84") != NULL);
    free(d);
}

/* YOLOv10: [1, 300, 6] corners, score, class; rows past 3 are zero. */
static void test_yolov10_decode(void) {
    static float d[300 * 6] = {
        1, 2, 3, 4, .9f, 2, /* kept */
        5, 6, 7, 8, .1f, 1, /* below threshold */
        0, 0, 9, 9, .5f, 7, /* kept, class 7 */
    };
    vigil_tensor_info info = {.ndim = 3, .dims = {1, 300, 6}};
    head_layout l;
    vigil_error err;
    CHECK_EQ_INT(head_detect_layout(&info, 1, 0, NULL, 640, 640, VIGIL_HEAD_AUTO, 0, &l, &err), VIGIL_OK);
    CHECK_EQ_INT(l.family, VIGIL_HEAD_YOLOV10);
    vigil_tensor t = tensor3(d, 300, 6);
    head_params p = params(0.25f, 640, 640);
    head_boxes b = {0};
    CHECK_EQ_INT(head_decode(&l, &t, &p, &b, &err), VIGIL_OK);
    CHECK_EQ_INT(b.count, 2);
    if (b.count == 2) {
        check_box(&b.items[0], 1, 2, 3, 4, .9f, 2);
        check_box(&b.items[1], 0, 0, 9, 9, .5f, 7);
    }
    head_boxes_free(&b);
}

/* HailoRT's by-class NMS rows (3 classes, room for 2 boxes each) on a
 * 100x200 (w x h) input: y/x swapped into corners, scaled to pixels; the
 * count bounds what is read, the threshold and class filter still apply. */
static void test_hailo_nms_decode(void) {
    static float d[3 * 11] = {
        2, .1f, .2f, .3f, .4f, .9f, .5f, .5f, .6f, .6f, .2f, /* class 0: one kept, one below 0.25 */
        0, .9f, .9f, .9f, .9f, .9f, 0, 0, 0, 0, 0,           /* class 1: count 0, stale slots ignored */
        1, 0, 0, 1, 1, .5f, 0, 0, 0, 0, 0,                   /* class 2: the whole input */
    };
    vigil_tensor_info info = {.ndim = 3, .dims = {1, 3, 11}, .dim_names = {"batch", "classes", "hailo_nms"}};
    head_layout l;
    vigil_error err;
    CHECK_EQ_INT(head_detect_layout(&info, 1, 0, NULL, 100, 200, VIGIL_HEAD_AUTO, 0, &l, &err), VIGIL_OK);
    CHECK_EQ_INT(l.family, VIGIL_HEAD_HAILO_NMS);
    CHECK_EQ_INT(l.n_classes, 3);
    CHECK_EQ_INT(l.nms_max_boxes, 2);
    vigil_tensor t = tensor3(d, 3, 11);
    head_params p = params(0.25f, 100, 200);
    head_boxes b = {0};
    CHECK_EQ_INT(head_decode(&l, &t, &p, &b, &err), VIGIL_OK);
    CHECK_EQ_INT(b.count, 2);
    if (b.count == 2) {
        check_box(&b.items[0], 20, 20, 40, 60, .9f, 0);
        check_box(&b.items[1], 0, 0, 100, 200, .5f, 2);
    }
    head_boxes_free(&b);
    info.dim_names[2] = NULL; /* the same shape without the name is not taken for it */
    CHECK(head_detect_layout(&info, 1, 0, NULL, 100, 200, VIGIL_HEAD_AUTO, 0, &l, &err) != VIGIL_OK ||
          l.family != VIGIL_HEAD_HAILO_NMS);
}

/* YOLOv8-seg on a 16x16 input with 4x4 prototypes: decode, then the mask. */
static void test_seg_decode_and_mask(void) {
    enum { A = 16, NC = 1, NM = 2, C = 4 + NC + NM };
    float d[C * A] = {0};
#define SG(c, a) d[(c)*A + (a)]
    SG(0, 0) = 4, SG(1, 0) = 4, SG(2, 0) = 8, SG(3, 0) = 8, SG(4, 0) = .8f; /* box (0,0,8,8) */
    SG(5, 0) = 1, SG(6, 0) = 0;                                             /* mask = plane 0 */
#undef SG
    /* Plane 0: +1 in prototype column 0, -1 elsewhere.  Pixel x samples the
     * prototype at (x + 0.5) / 4 - 0.5: x 0..3 give logits 1, 1, .75, .25 (in
     * the mask), x 4 gives -.25 (out). */
    float protos[NM * 16];
    for (int i = 0; i < 16; i++)
        protos[i] = (i % 4 == 0) ? 1.f : -1.f, protos[16 + i] = 5.f;
    vigil_tensor_info infos[2] = {{.ndim = 3, .dims = {1, C, A}}, {.ndim = 4, .dims = {1, NM, 4, 4}}};
    head_layout l;
    vigil_error err;
    CHECK_EQ_INT(head_detect_layout(infos, 2, 0, "segment", 16, 16, VIGIL_HEAD_AUTO, 0, &l, &err), VIGIL_OK);
    CHECK_EQ_INT(l.family, VIGIL_HEAD_YOLOV8_SEG);
    CHECK_EQ_INT(l.n_classes, NC);
    CHECK_EQ_INT(l.n_mask_coeffs, NM);
    vigil_tensor t = tensor3(d, C, A);
    head_params p = params(0.25f, 16, 16);
    head_boxes b = {0};
    CHECK_EQ_INT(head_decode(&l, &t, &p, &b, &err), VIGIL_OK);
    CHECK_EQ_INT(b.count, 1);
    if (b.count != 1) return;
    head_geometry geo = {.gain_x = 1, .gain_y = 1, .input_w = 16, .input_h = 16, .orig_w = 16, .orig_h = 16};
    vigil_detection det = {0};
    head_map_box(&b.items[0], &geo, &det);
    vigil_mask_rle rle;
    CHECK_EQ_INT(head_mask_rle(&l, d, protos, 4, 4, b.items[0].anchor, &det, &geo, &rle, &err), VIGIL_OK);
    uint8_t bitmap[256];
    size_t pos = 0;
    int value = 0, total_ok = 1;
    for (size_t i = 0; i < rle.n_counts; i++, value ^= 1)
        for (uint32_t k = 0; k < rle.counts[i]; k++) {
            if (pos >= 256)
                total_ok = 0;
            else
                bitmap[pos++] = (uint8_t)value;
        }
    CHECK(total_ok);
    CHECK_EQ_INT(pos, 256);
    int wrong = 0;
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++)
            wrong += bitmap[y * 16 + x] != (y < 8 && x < 4);
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(rle.counts[0], 0); /* starts with foreground: empty first background run */
    vigil_free(rle.counts);
    head_boxes_free(&b);
}

static void test_family_from_real_shapes(void) {
    struct {
        int64_t d1, d2;
        int w, nc;
        vigil_head_family want;
        int classes;
    } cases[] = {
        {84, 8400, 640, 80, VIGIL_HEAD_YOLOV8, 80},   /* yolov8n / yolo11n */
        {25200, 85, 640, 80, VIGIL_HEAD_YOLOV5, 80},  /* yolov5n */
        {8400, 85, 640, 80, VIGIL_HEAD_YOLOX, 80},    /* yolox-s */
        {3598, 112, 416, 80, VIGIL_HEAD_NANODET, 80}, /* nanodet-plus-m 416 */
        {300, 6, 640, 80, VIGIL_HEAD_YOLOV10, 80},    /* yolov10n */
        {25200, 6, 640, 1, VIGIL_HEAD_YOLOV5, 1},     /* one-class v5 is not v10 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vigil_tensor_info info = {.ndim = 3, .dims = {1, cases[i].d1, cases[i].d2}};
        head_layout l;
        vigil_error err;
        CHECK_EQ_INT(
            head_detect_layout(&info, 1, cases[i].nc, "detect", cases[i].w, cases[i].w, VIGIL_HEAD_AUTO, 0, &l, &err),
            VIGIL_OK);
        CHECK_EQ_INT(l.family, cases[i].want);
        if (cases[i].want != VIGIL_HEAD_YOLOV10) CHECK_EQ_INT(l.n_classes, cases[i].classes);
    }
    vigil_tensor_info seg[2] = {{.ndim = 3, .dims = {1, 116, 8400}}, {.ndim = 4, .dims = {1, 32, 160, 160}}};
    head_layout l;
    vigil_error err;
    /* nanodet-m 416, the original six-output export (was "2704 rows do not match a 416x416 input") */
    static const int64_t cells416[3] = {2704, 676, 169};
    vigil_tensor_info six[6];
    for (int k = 0; k < 6; k++)
        six[k] = (vigil_tensor_info){.ndim = 3, .dims = {1, cells416[k / 2], k % 2 ? 32 : 80}};
    CHECK_EQ_INT(head_detect_layout(six, 6, 80, NULL, 416, 416, VIGIL_HEAD_NANODET, 0, &l, &err), VIGIL_OK);
    CHECK_EQ_INT(head_detect_layout(six, 6, 80, "detect", 416, 416, VIGIL_HEAD_AUTO, 0, &l, &err), VIGIL_OK);
    CHECK_EQ_INT(l.family, VIGIL_HEAD_NANODET);
    CHECK_EQ_INT(l.n_classes, 80);
    CHECK_EQ_INT(l.n_anchors, 3549);
    CHECK_EQ_INT(head_detect_layout(seg, 2, 80, "segment", 640, 640, VIGIL_HEAD_AUTO, 0, &l, &err), VIGIL_OK);
    CHECK_EQ_INT(l.family, VIGIL_HEAD_YOLOV8_SEG);
    CHECK_EQ_INT(l.n_classes, 80);
    /* unknown shapes are a clear error; an override is checked */
    vigil_tensor_info odd = {.ndim = 3, .dims = {1, 7, 7}};
    CHECK_EQ_INT(head_detect_layout(&odd, 1, 0, NULL, 640, 640, VIGIL_HEAD_AUTO, 0, &l, &err), VIGIL_ERR_UNSUPPORTED);
    CHECK(strstr(err.message, "pass the family") != NULL);
    vigil_tensor_info v8 = {.ndim = 3, .dims = {1, 84, 8400}};
    CHECK_EQ_INT(head_detect_layout(&v8, 1, 0, NULL, 640, 640, VIGIL_HEAD_YOLOV10, 0, &l, &err), VIGIL_ERR_UNSUPPORTED);
    CHECK_EQ_INT(head_detect_layout(&v8, 1, 0, NULL, 640, 640, VIGIL_HEAD_YOLOX, 0, &l, &err), VIGIL_ERR_UNSUPPORTED);
    CHECK_EQ_INT(vigil_head_family_parse("yolo11"), VIGIL_HEAD_YOLOV8);
    CHECK_EQ_INT(vigil_head_family_parse("nanodet"), VIGIL_HEAD_NANODET);
    CHECK_EQ_INT(vigil_head_family_parse("yolov99"), -1);
}

/* --------------------------------------------------------------- NMS */

static head_box box(float x1, float y1, float x2, float y2, float score, int cls, int anchor) {
    head_box b = {x1, y1, x2, y2, score, cls, anchor};
    return b;
}

static void fill(head_boxes *b, const head_box *items, size_t n) {
    b->count = 0;
    for (size_t i = 0; i < n; i++) {
        if (b->count == b->capacity) {
            b->capacity = b->capacity ? b->capacity * 2 : 8;
            b->items = realloc(b->items, b->capacity * sizeof(head_box));
        }
        b->items[b->count++] = items[i];
    }
}

static void test_nms(void) {
    head_boxes b = {0};
    /* empty */
    CHECK_EQ_INT(head_nms(&b, .45f, 0, 300), 0);
    /* all suppressed but the best: three near-identical boxes of a class */
    head_box same[] = {box(0, 0, 10, 10, .5f, 0, 0), box(0, 0, 10, 10.5f, .9f, 0, 1), box(.5f, 0, 10, 10, .7f, 0, 2)};
    fill(&b, same, 3);
    CHECK_EQ_INT(head_nms(&b, .45f, 0, 300), 1);
    CHECK_NEAR(b.items[0].score, .9f, 1e-6);
    /* class-aware keeps overlapping boxes of different classes, agnostic does not */
    head_box two[] = {box(0, 0, 10, 10, .8f, 0, 0), box(0, 0, 10, 10, .6f, 1, 1)};
    fill(&b, two, 2);
    CHECK_EQ_INT(head_nms(&b, .45f, 0, 300), 2);
    fill(&b, two, 2);
    CHECK_EQ_INT(head_nms(&b, .45f, 1, 300), 1);
    CHECK_EQ_INT(b.items[0].class_id, 0);
    /* ties: equal scores, the lower anchor wins whatever the input order */
    head_box tie[] = {box(0, 0, 10, 10, .5f, 0, 5), box(1, 1, 11, 11, .5f, 0, 2)};
    fill(&b, tie, 2);
    CHECK_EQ_INT(head_nms(&b, .45f, 0, 300), 1);
    CHECK_EQ_INT(b.items[0].anchor, 2);
    /* Suppression needs IoU > threshold: [0,10]x[0,10] and [0,10]x[0,15]
     * have IoU 100 / 150 = 2/3, kept at 0.67, suppressed at 0.66. */
    head_box edge[] = {box(0, 0, 10, 10, .9f, 0, 0), box(0, 0, 10, 15, .8f, 0, 1)};
    CHECK_NEAR(head_iou(&edge[0], &edge[1]), 2.0 / 3.0, 1e-6);
    fill(&b, edge, 2);
    CHECK_EQ_INT(head_nms(&b, 0.67f, 0, 300), 2);
    fill(&b, edge, 2);
    CHECK_EQ_INT(head_nms(&b, 0.66f, 0, 300), 1);
    /* disjoint boxes and degenerate ones never suppress; max_det caps */
    head_box many[] = {box(0, 0, 1, 1, .1f, 0, 0), box(5, 5, 6, 6, .4f, 0, 1), box(9, 9, 9, 9, .3f, 0, 2),
                       box(20, 20, 30, 30, .2f, 0, 3)};
    CHECK_NEAR(head_iou(&many[2], &many[2]), 0, 0);
    fill(&b, many, 4);
    CHECK_EQ_INT(head_nms(&b, .45f, 0, 300), 4);
    CHECK_NEAR(b.items[0].score, .4f, 1e-6); /* sorted by score */
    CHECK_NEAR(b.items[3].score, .1f, 1e-6);
    fill(&b, many, 4);
    CHECK_EQ_INT(head_nms(&b, .45f, 0, 2), 2);
    free(b.items);
}

/* ------------------------------------------------ thresholds at the edge
 *
 * The references keep a candidate only when its score is strictly greater
 * than conf (Ultralytics `amax(1) > conf`, YOLOv5 `obj > conf` and then
 * `obj * cls > conf`, NanoDet `scores > score_thr`) and suppress a box only
 * when its IoU with a kept one is strictly greater than iou
 * (torchvision.ops.nms).  Each family gets scores exactly at the threshold
 * (dropped), one ulp above (kept) and one ulp below (dropped), so that a
 * `>=` anywhere in the decoders or NMS fails here.  Scores are multiplied
 * only by 1, which is exact. */

#define EDGE_CONF 0.25f

static float edge_at(void) {
    return EDGE_CONF;
}
static float edge_above(void) {
    return nextafterf(EDGE_CONF, 1.f);
}
static float edge_below(void) {
    return nextafterf(EDGE_CONF, 0.f);
}

/* The boxes kept are exactly these anchors, with these scores and classes. */
static void check_kept(const head_boxes *b, const int *anchors, const float *scores, const int *classes, size_t n) {
    CHECK_EQ_INT(b->count, n);
    for (size_t i = 0; i < n && i < b->count; i++) {
        CHECK_EQ_INT(b->items[i].anchor, anchors[i]);
        CHECK(b->items[i].score == scores[i]); /* bit for bit: no tolerance at the edge */
        CHECK_EQ_INT(b->items[i].class_id, classes[i]);
    }
}

static void test_yolov5_threshold_edge(void) {
    enum { A = 7, K = 7 };
    float d[A * K] = {0};
    float *r;
    /* rows 0-2: objectness 1, the class score decides (obj * cls > conf) */
    r = d + 0 * K, r[4] = 1, r[5] = edge_at();
    r = d + 1 * K, r[4] = 1, r[5] = edge_above();
    r = d + 2 * K, r[4] = 1, r[5] = edge_below();
    /* rows 3-5: objectness at the edge and a class score of 2, so obj * cls
     * clears conf and only the objectness filter (obj > conf) decides */
    r = d + 3 * K, r[4] = edge_at(), r[6] = 2;
    r = d + 4 * K, r[4] = edge_above(), r[6] = 1;
    r = d + 5 * K, r[4] = edge_below(), r[6] = 2;
    /* row 6: a tie between the classes picks the first */
    r = d + 6 * K, r[4] = 1, r[5] = .9f, r[6] = .9f;
    head_layout l = {.family = VIGIL_HEAD_YOLOV5, .n_classes = 2, .n_anchors = A};
    vigil_tensor t = tensor3(d, A, K);
    head_params p = params(EDGE_CONF, 64, 64);
    head_boxes b = {0};
    vigil_error err;
    CHECK_EQ_INT(head_decode(&l, &t, &p, &b, &err), VIGIL_OK);
    check_kept(&b, (const int[]){1, 4, 6}, (const float[]){edge_above(), edge_above(), .9f}, (const int[]){0, 1, 0}, 3);
    head_boxes_free(&b);
}

/* v8 (and v8-seg, the same decoder): 37 anchors are two blocks of 16 for
 * the vectorised class maximum and a remainder of 5 for the scalar one.
 * Edge scores sit in class 2 (reached through the maximum) in both parts and
 * in class 0 (the starting maximum); ties between classes 1 and 2 in both
 * parts pick class 1. */
static void test_yolov8_threshold_edge(void) {
    enum { A = 37, NC = 3, C = 4 + NC };
    float d[C * A];
    memset(d, 0, sizeof d);
#define V8(c, a) d[(c)*A + (a)]
    V8(6, 1) = edge_at(), V8(6, 6) = edge_above(), V8(6, 15) = edge_below();   /* block 0, lanes 1, 6, 15 */
    V8(6, 16) = edge_above(), V8(6, 31) = edge_at();                           /* block 1 */
    V8(4, 20) = edge_above(), V8(4, 21) = edge_at(), V8(4, 22) = edge_below(); /* class 0 */
    V8(5, 9) = .9f, V8(6, 9) = .9f;                                            /* tie in a block */
    V8(6, 32) = edge_at(), V8(6, 34) = edge_above(), V8(6, 36) = edge_below(); /* remainder */
    V8(5, 35) = .9f, V8(6, 35) = .9f;                                          /* tie in the remainder */
#undef V8
    vigil_tensor_info info = {.ndim = 3, .dims = {1, C, A}};
    head_layout l;
    vigil_error err;
    CHECK_EQ_INT(head_detect_layout(&info, 1, 0, NULL, 64, 64, VIGIL_HEAD_AUTO, 0, &l, &err), VIGIL_OK);
    CHECK_EQ_INT(l.family, VIGIL_HEAD_YOLOV8);
    vigil_tensor t = tensor3(d, C, A);
    head_params p = params(EDGE_CONF, 64, 64);
    head_boxes b = {0};
    CHECK_EQ_INT(head_decode(&l, &t, &p, &b, &err), VIGIL_OK);
    float up = edge_above();
    check_kept(&b, (const int[]){6, 9, 16, 20, 34, 35}, (const float[]){up, .9f, up, up, up, .9f},
               (const int[]){2, 1, 2, 0, 2, 1}, 6);
    head_boxes_free(&b);
}

/* The same through the seg layout: 20 anchors (a block and a remainder of 4),
 * one class, then two mask coefficients that must not be read as scores. */
static void test_seg_threshold_edge(void) {
    enum { A = 20, NC = 1, NM = 2, C = 4 + NC + NM };
    float d[C * A];
    memset(d, 0, sizeof d);
    d[4 * A + 2] = edge_at(), d[4 * A + 3] = edge_above(), d[4 * A + 4] = edge_below();
    d[4 * A + 17] = edge_at(), d[4 * A + 18] = edge_above(), d[4 * A + 19] = edge_below();
    d[5 * A + 5] = 1.f, d[6 * A + 6] = 1.f; /* coefficients only */
    head_layout l = {.family = VIGIL_HEAD_YOLOV8_SEG, .n_classes = NC, .n_anchors = A, .n_mask_coeffs = NM};
    vigil_tensor t = tensor3(d, C, A);
    head_params p = params(EDGE_CONF, 16, 16);
    head_boxes b = {0};
    vigil_error err;
    CHECK_EQ_INT(head_decode(&l, &t, &p, &b, &err), VIGIL_OK);
    check_kept(&b, (const int[]){3, 18}, (const float[]){edge_above(), edge_above()}, (const int[]){0, 0}, 2);
    head_boxes_free(&b);
}

/* YOLOX (score = obj * cls, obj 1) and NanoDet (sigmoid scores) on 64x64,
 * rows 0-2 at, above and below the edge, row 3 a class tie. */
static void test_yolox_nanodet_threshold_edge(void) {
    struct {
        vigil_head_family family;
        int rows, cols, first_score;
    } fams[] = {{VIGIL_HEAD_YOLOX, 84, 5 + 2, 5}, {VIGIL_HEAD_NANODET, 85, 2 + 32, 0}};
    for (size_t f = 0; f < 2; f++) {
        int K = fams[f].cols, s0 = fams[f].first_score;
        float *d = calloc((size_t)fams[f].rows * K, sizeof(float));
        for (int a = 0; a < 4 && fams[f].family == VIGIL_HEAD_YOLOX; a++)
            d[a * K + 4] = 1.f; /* objectness */
        d[0 * K + s0 + 1] = edge_at(), d[1 * K + s0 + 1] = edge_above(), d[2 * K + s0 + 1] = edge_below();
        d[3 * K + s0] = .9f, d[3 * K + s0 + 1] = .9f;
        vigil_tensor_info info = {.ndim = 3, .dims = {1, fams[f].rows, K}};
        head_layout l;
        vigil_error err;
        CHECK_EQ_INT(head_detect_layout(&info, 1, 2, NULL, 64, 64, fams[f].family, 0, &l, &err), VIGIL_OK);
        vigil_tensor t = tensor3(d, fams[f].rows, K);
        head_params p = params(EDGE_CONF, 64, 64);
        head_boxes b = {0};
        CHECK_EQ_INT(head_decode(&l, &t, &p, &b, &err), VIGIL_OK);
        check_kept(&b, (const int[]){1, 3}, (const float[]){edge_above(), .9f}, (const int[]){1, 0}, 2);
        head_boxes_free(&b);
        free(d);
    }
}

static void test_yolov10_threshold_edge(void) {
    static float d[300 * 6];
    memset(d, 0, sizeof d);
    d[0 * 6 + 4] = edge_at(), d[1 * 6 + 4] = edge_above(), d[2 * 6 + 4] = edge_below();
    d[1 * 6 + 5] = 3;
    head_layout l = {.family = VIGIL_HEAD_YOLOV10, .n_classes = 80, .n_anchors = 300};
    vigil_tensor t = tensor3(d, 300, 6);
    head_params p = params(EDGE_CONF, 640, 640);
    head_boxes b = {0};
    vigil_error err;
    CHECK_EQ_INT(head_decode(&l, &t, &p, &b, &err), VIGIL_OK);
    check_kept(&b, (const int[]){1}, (const float[]){edge_above()}, (const int[]){3}, 1);
    head_boxes_free(&b);
}

/* Boxes whose IoU in float is exactly a chosen threshold: at it both stay,
 * with the threshold one ulp lower (the IoU one ulp above it) the second
 * goes, one ulp higher both stay; class-aware and agnostic alike. */
static void test_nms_iou_at_threshold(void) {
    struct {
        head_box a, b;
        float iou;
    } cases[] = {
        /* intersection 1, union 2: 0.5 */
        {box(0, 0, 2, 1, .9f, 0, 0), box(0, 0, 1, 1, .8f, 0, 1), .5f},
        /* [0,9] inside [0,20]: 9 / 20 rounds to the float nearest 0.45, the default --iou */
        {box(0, 0, 20, 1, .9f, 0, 0), box(0, 0, 9, 1, .8f, 0, 1), .45f},
        /* 100 / 150: 2/3, not representable, taken as head_iou computes it */
        {box(0, 0, 10, 10, .9f, 0, 0), box(0, 0, 10, 15, .8f, 0, 1), 0},
    };
    head_boxes b = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float iou = head_iou(&cases[i].a, &cases[i].b);
        if (cases[i].iou != 0) CHECK(memcmp(&iou, &cases[i].iou, sizeof iou) == 0);
        for (int agnostic = 0; agnostic <= 1; agnostic++) {
            head_box pair[2] = {cases[i].a, cases[i].b};
            pair[1].class_id = agnostic; /* agnostic: different classes still compete */
            fill(&b, pair, 2);
            CHECK_EQ_INT(head_nms(&b, iou, agnostic, 300), 2);
            fill(&b, pair, 2);
            CHECK_EQ_INT(head_nms(&b, nextafterf(iou, 0.f), agnostic, 300), 1);
            CHECK_EQ_INT(b.items[0].anchor, 0);
            fill(&b, pair, 2);
            CHECK_EQ_INT(head_nms(&b, nextafterf(iou, 1.f), agnostic, 300), 2);
        }
    }
    free(b.items);
}

/* Boxes at and beyond the image border map back clipped. */
static void test_map_box_border(void) {
    /* 1280x720 letterboxed into 640x640: gain 0.5, pad top 140 */
    head_geometry geo = {.gain_x = .5f,
                         .gain_y = .5f,
                         .pad_x = 0,
                         .pad_y = 140,
                         .input_w = 640,
                         .input_h = 640,
                         .orig_w = 1280,
                         .orig_h = 720};
    head_box inside = box(100, 240, 200, 340, .9f, 3, 0);
    head_box over = box(-10, 130, 650, 510, .8f, 1, 1);
    vigil_detection d;
    head_map_box(&inside, &geo, &d);
    CHECK_NEAR(d.x1, 200, 1e-4);
    CHECK_NEAR(d.y1, 200, 1e-4);
    CHECK_NEAR(d.x2, 400, 1e-4);
    CHECK_NEAR(d.y2, 400, 1e-4);
    CHECK_EQ_INT(d.class_id, 3);
    head_map_box(&over, &geo, &d);
    CHECK_NEAR(d.x1, 0, 0);
    CHECK_NEAR(d.y1, 0, 0);
    CHECK_NEAR(d.x2, 1280, 0);
    CHECK_NEAR(d.y2, 720, 0);
}

/* ------------------------------------------------------------ labels */

static void test_labels(void) {
    vigil_labels *l;
    vigil_error err;
    CHECK_EQ_INT(vigil_labels_parse("{0: 'person', 1: 'bicycle', 2: \"traffic light\", 3: 'it\\'s'}", &l, &err),
                 VIGIL_OK);
    CHECK_EQ_INT(vigil_labels_count(l), 4);
    CHECK_STR(vigil_labels_name(l, 0), "person");
    CHECK_STR(vigil_labels_name(l, 2), "traffic light");
    CHECK_STR(vigil_labels_name(l, 3), "it's");
    CHECK(vigil_labels_name(l, 4) == NULL);
    CHECK(vigil_labels_name(l, -1) == NULL);
    CHECK_EQ_INT(vigil_labels_find(l, "bicycle"), 1);
    CHECK_EQ_INT(vigil_labels_find(l, "car"), -1);
    vigil_labels_free(l);
    CHECK_EQ_INT(vigil_labels_parse("['cat', 'dog']", &l, &err), VIGIL_OK);
    CHECK_STR(vigil_labels_name(l, 1), "dog");
    vigil_labels_free(l);
    CHECK_EQ_INT(vigil_labels_parse("scratch\n\n  dent \r\nok\n", &l, &err), VIGIL_OK);
    CHECK_EQ_INT(vigil_labels_count(l), 3);
    CHECK_STR(vigil_labels_name(l, 1), "dent");
    vigil_labels_free(l);
    CHECK_EQ_INT(vigil_labels_parse("{0: 'person', 1: ", &l, &err), VIGIL_ERR_PARSE);
    CHECK(l == NULL);
    CHECK_EQ_INT(vigil_labels_parse("{0: 'unterminated}", &l, &err), VIGIL_ERR_PARSE);
    CHECK_EQ_INT(vigil_labels_parse("{99999999999: 'x'}", &l, &err), VIGIL_ERR_PARSE);
    CHECK_EQ_INT(vigil_labels_parse("   ", &l, &err), VIGIL_ERR_PARSE);
}

int main(void) {
    RUN(test_yolov8_decode);
    RUN(test_yolov5_decode);
    RUN(test_yolox_decode);
    RUN(test_nanodet_decode);
    RUN(test_nanodet_six_outputs);
    RUN(test_nanodet_original_single_output);
    RUN(test_yolov10_decode);
    RUN(test_hailo_nms_decode);
    RUN(test_seg_decode_and_mask);
    RUN(test_family_from_real_shapes);
    RUN(test_nms);
    RUN(test_yolov5_threshold_edge);
    RUN(test_yolov8_threshold_edge);
    RUN(test_seg_threshold_edge);
    RUN(test_yolox_nanodet_threshold_edge);
    RUN(test_yolov10_threshold_edge);
    RUN(test_nms_iou_at_threshold);
    RUN(test_map_box_border);
    RUN(test_labels);
    return testing_report();
}
