/*
 * heads.c - YOLO output decoding, one small function per family.
 *
 * Families and their output rows (A anchors, nc classes):
 *   YOLOv5     [A, 5+nc]  cx cy w h obj cls...   score = obj * cls (decoded in-graph)
 *   YOLOv8/11  [4+nc, A]  cx cy w h cls...       score = max cls (channels first)
 *   YOLOv8-seg [4+nc+nm, A] as v8, then nm mask coefficients
 *   YOLOX      [A, 5+nc]  raw: xy = (t + grid) * s, wh = exp(t) * s over strides 8/16/32
 *   NanoDet    [A, nc + 4(R+1)] sigmoid scores, then per side a distribution
 *              over R+1 bins whose expectation * stride is the distance from
 *              the grid point: Plus over strides 8/16/32/64 from (x s, y s);
 *              the original head over 8/16/32 from the cell centre, as one
 *              output or six (scores [cells, nc] and distributions
 *              [cells, 4(R+1)] per stride)
 *   YOLOv10    [K, 6]     x1 y1 x2 y2 score class (NMS done in the graph)
 *   hailo_nms  [nc, 1+5K] per class: a count, then K slots of y_min x_min
 *              y_max x_max (0..1 of the input) score; NMS done on the Hailo
 *              chip (HAILO_FORMAT_ORDER_HAILO_NMS_BY_CLASS), laid out in fixed
 *              rows by the backend; recognised by its last dimension's name
 * The family is chosen from the shapes: channels-first is v8; a row count of
 * 3x the grid cells is v5, 1x is YOLOX, 1x over four strides is NanoDet; six
 * columns with few rows is v10; a 4-D second output is seg.  The metadata's
 * class count and task break ties, and the caller may override.
 *
 * A candidate is kept when its score is strictly greater than the threshold,
 * as Ultralytics (`amax(1) > conf`), YOLOv5 (obj, then obj * cls) and
 * NanoDet (`scores > score_thr`) do: a score equal to it is dropped.
 */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "vision/heads.h"

static const int head_strides3[] = {8, 16, 32};
static const int head_strides4[] = {8, 16, 32, 64};

void head_boxes_free(head_boxes *boxes) {
    vigil_free(boxes->items);
    memset(boxes, 0, sizeof *boxes);
}

static vigil_status head_push(head_boxes *b, float x1, float y1, float x2, float y2, float score, int cls, int anchor,
                              vigil_error *err) {
    if (b->count == b->capacity) {
        size_t cap = b->capacity ? b->capacity * 2 : 256;
        head_box *grown = vigil_realloc(b->items, cap * sizeof *grown);
        if (!grown) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory for detection candidates");
        b->items = grown;
        b->capacity = cap;
    }
    b->items[b->count++] = (head_box){x1, y1, x2, y2, score, cls, anchor};
    return VIGIL_OK;
}

static vigil_status head_push_center(head_boxes *b, const float *cxcywh, float score, int cls, int anchor,
                                     vigil_error *err) {
    float hw = cxcywh[2] * 0.5f, hh = cxcywh[3] * 0.5f;
    return head_push(b, cxcywh[0] - hw, cxcywh[1] - hh, cxcywh[0] + hw, cxcywh[1] + hh, score, cls, anchor, err);
}

static int head_class_allowed(const head_params *p, int cls) {
    if (!p->classes) return 1;
    for (size_t i = 0; i < p->n_classes; i++)
        if (p->classes[i] == cls) return 1;
    return 0;
}

/* Index of the largest of n scores (first on ties). */
static int head_argmax(const float *s, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (s[i] > s[best]) best = i;
    return best;
}

static int head_grid_cells(int w, int h, const int *strides, int n) {
    int cells = 0;
    for (int i = 0; i < n; i++)
        cells += ((w + strides[i] - 1) / strides[i]) * ((h + strides[i] - 1) / strides[i]);
    return cells;
}

/* ------------------------------------------------------------- families */

static vigil_status head_yolov5(const head_layout *l, const vigil_tensor *out, const head_params *p, head_boxes *b,
                                vigil_error *err) {
    const float *d = out[0].data;
    int row = 5 + l->n_classes;
    for (int a = 0; a < l->n_anchors; a++) {
        const float *r = d + (size_t)a * row;
        float obj = r[4];
        if (!(obj > p->conf_threshold)) continue;
        int c = head_argmax(r + 5, l->n_classes);
        float score = obj * r[5 + c];
        if (score > p->conf_threshold && head_class_allowed(p, c)) {
            vigil_status st = head_push_center(b, r, score, c, a, err);
            if (st) return st;
        }
    }
    return VIGIL_OK;
}

/* Anchors per step of the class maximum. */
#define HEAD_BLOCK 16

/* Four lanes of GCC/clang's portable vector extension (SSE, NEON or
 * scalar code): a comparison gives a lane mask, which selects by bits. */
typedef float head_v4f __attribute__((vector_size(16)));
typedef int head_v4i __attribute__((vector_size(16)));

/* best = max(best, s), best_cls = c where s won, over HEAD_BLOCK anchors. */
static void head_max_block(const float *restrict s, int c, float *restrict best, int *restrict best_cls) {
    head_v4i cls = {c, c, c, c};
    for (int k = 0; k < HEAD_BLOCK; k += 4) {
        head_v4f v, b;
        head_v4i bc;
        memcpy(&v, s + k, sizeof v);
        memcpy(&b, best + k, sizeof b);
        memcpy(&bc, best_cls + k, sizeof bc);
        head_v4i better = v > b;
        head_v4i nb = ((head_v4i)v & better) | ((head_v4i)b & ~better);
        bc = (cls & better) | (bc & ~better);
        memcpy(best + k, &nb, sizeof nb);
        memcpy(best_cls + k, &bc, sizeof bc);
    }
}

/* v8 and v8-seg: channels first, so the class maximum is taken a channel at
 * a time over all anchors (contiguous reads) before boxes are gathered. */
static vigil_status head_yolov8(const head_layout *l, const vigil_tensor *out, const head_params *p, head_boxes *b,
                                vigil_error *err) {
    const float *d = out[0].data;
    size_t A = (size_t)l->n_anchors;
    float *best = vigil_malloc(A * sizeof(float));
    int *best_cls = vigil_calloc(A, sizeof(int));
    if (!best || !best_cls) {
        vigil_free(best);
        vigil_free(best_cls);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory decoding %zu anchors", A);
    }
    memcpy(best, d + 4 * A, A * sizeof(float));
    size_t whole = A / HEAD_BLOCK * HEAD_BLOCK;
    for (int c = 1; c < l->n_classes; c++) {
        const float *s = d + (4 + (size_t)c) * A;
        for (size_t a = 0; a < whole; a += HEAD_BLOCK)
            head_max_block(s + a, c, best + a, best_cls + a);
        for (size_t a = whole; a < A; a++) {
            int better = s[a] > best[a];
            best[a] = better ? s[a] : best[a];
            best_cls[a] = better ? c : best_cls[a];
        }
    }
    vigil_status st = VIGIL_OK;
    for (size_t a = 0; a < A && !st; a++) {
        if (!(best[a] > p->conf_threshold) || !head_class_allowed(p, best_cls[a])) continue;
        float box[4] = {d[a], d[A + a], d[2 * A + a], d[3 * A + a]};
        st = head_push_center(b, box, best[a], best_cls[a], (int)a, err);
    }
    vigil_free(best);
    vigil_free(best_cls);
    return st;
}

static vigil_status head_yolox(const head_layout *l, const vigil_tensor *out, const head_params *p, head_boxes *b,
                               vigil_error *err) {
    const float *d = out[0].data;
    int row = 5 + l->n_classes, a = 0;
    for (int si = 0; si < 3; si++) {
        int s = head_strides3[si];
        int gw = (p->input_w + s - 1) / s, gh = (p->input_h + s - 1) / s;
        for (int gy = 0; gy < gh; gy++)
            for (int gx = 0; gx < gw; gx++, a++) {
                const float *r = d + (size_t)a * row;
                int c = head_argmax(r + 5, l->n_classes);
                float score = r[4] * r[5 + c];
                if (!(score > p->conf_threshold) || !head_class_allowed(p, c)) continue;
                float box[4] = {(r[0] + gx) * s, (r[1] + gy) * s, expf(r[2]) * s, expf(r[3]) * s};
                vigil_status st = head_push_center(b, box, score, c, a, err);
                if (st) return st;
            }
    }
    return VIGIL_OK;
}

/* Expectation of a softmax over n bins. */
static float head_dfl_distance(const float *logits, int n) {
    float m = logits[0];
    for (int i = 1; i < n; i++)
        m = logits[i] > m ? logits[i] : m;
    float sum = 0, acc = 0;
    for (int i = 0; i < n; i++) {
        float e = expf(logits[i] - m);
        sum += e;
        acc += e * (float)i;
    }
    return acc / sum;
}

/* One NanoDet stride level of gw x gh cells, anchors numbered from `anchor`:
 * cell i has its sigmoid scores at cls + i * cls_step and its four sides'
 * distributions (left, top, right, bottom) at reg + i * reg_step. */
static vigil_status head_nanodet_level(const head_layout *l, const float *cls, size_t cls_step, const float *reg,
                                       size_t reg_step, int s, int anchor, const head_params *p, head_boxes *b,
                                       vigil_error *err) {
    int bins = l->reg_max + 1;
    int gw = (p->input_w + s - 1) / s, gh = (p->input_h + s - 1) / s;
    for (int gy = 0; gy < gh; gy++)
        for (int gx = 0; gx < gw; gx++, anchor++, cls += cls_step, reg += reg_step) {
            int c = head_argmax(cls, l->n_classes);
            if (!(cls[c] > p->conf_threshold) || !head_class_allowed(p, c)) continue;
            float cx = ((float)gx + l->nanodet_offset) * (float)s, cy = ((float)gy + l->nanodet_offset) * (float)s;
            float x1 = cx - head_dfl_distance(reg, bins) * s, y1 = cy - head_dfl_distance(reg + bins, bins) * s;
            float x2 = cx + head_dfl_distance(reg + 2 * bins, bins) * s;
            float y2 = cy + head_dfl_distance(reg + 3 * bins, bins) * s;
            x1 = fmaxf(x1, 0), y1 = fmaxf(y1, 0);
            x2 = fminf(x2, (float)p->input_w), y2 = fminf(y2, (float)p->input_h);
            vigil_status st = head_push(b, x1, y1, x2, y2, cls[c], c, anchor, err);
            if (st) return st;
        }
    return VIGIL_OK;
}

/* NanoDet: one output of rows [scores, distributions] over all levels, or
 * (the original export) a scores and a distributions output per level. */
static vigil_status head_nanodet(const head_layout *l, const vigil_tensor *out, const head_params *p, head_boxes *b,
                                 vigil_error *err) {
    size_t nc = (size_t)l->n_classes, row = nc + 4 * (size_t)(l->reg_max + 1);
    const float *d = out[0].data;
    vigil_status st = VIGIL_OK;
    for (int lv = 0, anchor = 0; lv < l->nanodet_levels && !st; lv++) {
        int s = head_strides4[lv]; /* the original head's levels are the first three */
        if (l->n_outputs == 6)
            st = head_nanodet_level(l, out[l->nanodet_cls_output[lv]].data, nc, out[l->nanodet_dis_output[lv]].data,
                                    row - nc, s, anchor, p, b, err);
        else
            st = head_nanodet_level(l, d + anchor * row, row, d + anchor * row + nc, row, s, anchor, p, b, err);
        anchor += head_grid_cells(p->input_w, p->input_h, &s, 1);
    }
    return st;
}

static vigil_status head_yolov10(const head_layout *l, const vigil_tensor *out, const head_params *p, head_boxes *b,
                                 vigil_error *err) {
    const float *d = out[0].data;
    for (int a = 0; a < l->n_anchors; a++) {
        const float *r = d + (size_t)a * 6;
        int c = (int)lrintf(r[5]);
        if (!(r[4] > p->conf_threshold) || !head_class_allowed(p, c)) continue;
        vigil_status st = head_push(b, r[0], r[1], r[2], r[3], r[4], c, a, err);
        if (st) return st;
    }
    return VIGIL_OK;
}

/* HailoRT's by-class NMS rows: the chip ranked and suppressed already, so
 * the boxes only need scaling from 0..1 to input pixels.  A count beyond
 * the row's room is a corrupt frame: only the room is read. */
static vigil_status head_hailo_nms(const head_layout *l, const vigil_tensor *out, const head_params *p, head_boxes *b,
                                   vigil_error *err) {
    const float *d = out[0].data;
    int room = l->nms_max_boxes;
    for (int c = 0; c < l->n_classes; c++) {
        const float *row = d + (size_t)c * (size_t)(1 + 5 * room);
        int count = row[0] > 0 ? (row[0] < (float)room ? (int)row[0] : room) : 0;
        if (!head_class_allowed(p, c)) continue;
        for (int j = 0; j < count; j++) {
            const float *r = row + 1 + 5 * j;
            if (!(r[4] > p->conf_threshold)) continue;
            vigil_status st = head_push(b, r[1] * (float)p->input_w, r[0] * (float)p->input_h,
                                        r[3] * (float)p->input_w, r[2] * (float)p->input_h, r[4], c, c * room + j, err);
            if (st) return st;
        }
    }
    return VIGIL_OK;
}

/* ------------------------------------------------------------- dispatch */

typedef vigil_status (*head_decode_fn)(const head_layout *, const vigil_tensor *, const head_params *, head_boxes *,
                                       vigil_error *);

static const struct {
    vigil_head_family family;
    const char *name;
    head_decode_fn decode;
} head_table[] = {
    {VIGIL_HEAD_YOLOV5, "yolov5", head_yolov5},    {VIGIL_HEAD_YOLOV8, "yolov8", head_yolov8},
    {VIGIL_HEAD_YOLOX, "yolox", head_yolox},       {VIGIL_HEAD_NANODET, "nanodet", head_nanodet},
    {VIGIL_HEAD_YOLOV10, "yolov10", head_yolov10}, {VIGIL_HEAD_YOLOV8_SEG, "yolov8-seg", head_yolov8},
    {VIGIL_HEAD_HAILO_NMS, "hailo_nms", head_hailo_nms},
};
#define HEAD_TABLE_SIZE (sizeof head_table / sizeof head_table[0])

const char *vigil_head_family_name(vigil_head_family family) {
    for (size_t i = 0; i < HEAD_TABLE_SIZE; i++)
        if (head_table[i].family == family) return head_table[i].name;
    return "auto";
}

int vigil_head_family_parse(const char *name) {
    if (!name) return -1;
    if (strcmp(name, "auto") == 0) return VIGIL_HEAD_AUTO;
    if (strcmp(name, "yolo11") == 0 || strcmp(name, "yolov11") == 0) return VIGIL_HEAD_YOLOV8;
    if (strcmp(name, "yolov8seg") == 0 || strcmp(name, "yolov8_seg") == 0) return VIGIL_HEAD_YOLOV8_SEG;
    for (size_t i = 0; i < HEAD_TABLE_SIZE; i++)
        if (strcmp(head_table[i].name, name) == 0) return (int)head_table[i].family;
    return -1;
}

/* Item 0 of output t holds rows x cols float32 values. */
static vigil_status head_check_output(const head_layout *l, const vigil_tensor *t, int64_t rows, int64_t cols,
                                      vigil_error *err) {
    if (t->dtype != VIGIL_DTYPE_F32 || !t->data)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "detection output must be float32");
    int64_t per_item = 1;
    for (int i = 1; i < t->ndim; i++)
        per_item *= t->dims[i];
    if (t->ndim != 3 || per_item != rows * cols)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "%s output has %lld values per image, the layout expects %lld",
                               vigil_head_family_name(l->family), (long long)per_item, (long long)(rows * cols));
    return VIGIL_OK;
}

vigil_status head_decode_outputs(const head_layout *layout, const vigil_tensor *outputs, size_t n_outputs,
                                 const head_params *params, head_boxes *boxes, vigil_error *err) {
    int n_read = layout->n_outputs > 1 ? layout->n_outputs : 1, nc = layout->n_classes;
    if (!outputs || n_outputs < (size_t)n_read)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "the %s head reads %d outputs, got %zu",
                               vigil_head_family_name(layout->family), n_read, outputs ? n_outputs : 0);
    int64_t cols;
    switch (layout->family) {
    case VIGIL_HEAD_YOLOV5:
    case VIGIL_HEAD_YOLOX: cols = 5 + nc; break;
    case VIGIL_HEAD_YOLOV8: cols = 4 + nc; break;
    case VIGIL_HEAD_YOLOV8_SEG: cols = 4 + nc + layout->n_mask_coeffs; break;
    case VIGIL_HEAD_NANODET: cols = nc + 4 * (layout->reg_max + 1); break;
    case VIGIL_HEAD_YOLOV10: cols = 6; break;
    case VIGIL_HEAD_HAILO_NMS: cols = 1 + 5 * (int64_t)layout->nms_max_boxes; break;
    default: return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "no head family chosen");
    }
    if (nc < 1 && layout->family != VIGIL_HEAD_YOLOV10)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "%s layout has no classes",
                               vigil_head_family_name(layout->family));
    vigil_status st = VIGIL_OK;
    if (n_read == 1) st = head_check_output(layout, &outputs[0], layout->n_anchors, cols, err);
    for (int lv = 0; n_read > 1 && lv < layout->nanodet_levels && !st; lv++) { /* NanoDet, six outputs */
        int64_t rows = head_grid_cells(params->input_w, params->input_h, &head_strides4[lv], 1);
        st = head_check_output(layout, &outputs[layout->nanodet_cls_output[lv]], rows, nc, err);
        if (!st) st = head_check_output(layout, &outputs[layout->nanodet_dis_output[lv]], rows, cols - nc, err);
    }
    if (st) return st;
    for (size_t i = 0; i < HEAD_TABLE_SIZE; i++)
        if (head_table[i].family == layout->family) return head_table[i].decode(layout, outputs, params, boxes, err);
    return vigil_error_set(err, VIGIL_ERR_INTERNAL, "no decoder for family %d", (int)layout->family);
}

vigil_status head_decode(const head_layout *layout, const vigil_tensor *out0, const head_params *params,
                         head_boxes *boxes, vigil_error *err) {
    return head_decode_outputs(layout, out0, out0 ? 1 : 0, params, boxes, err);
}

static float head_clip(float v, float hi) {
    return v < 0 ? 0 : v > hi ? hi : v;
}

void head_map_box(const head_box *box, const head_geometry *geo, vigil_detection *det) {
    det->x1 = head_clip((box->x1 - geo->pad_x) / geo->gain_x, (float)geo->orig_w);
    det->y1 = head_clip((box->y1 - geo->pad_y) / geo->gain_y, (float)geo->orig_h);
    det->x2 = head_clip((box->x2 - geo->pad_x) / geo->gain_x, (float)geo->orig_w);
    det->y2 = head_clip((box->y2 - geo->pad_y) / geo->gain_y, (float)geo->orig_h);
    det->score = box->score;
    det->class_id = box->class_id;
}

/* --------------------------------------------------------------- layout */

/* Row-major [A, K] layouts: which family A and K describe. */
static vigil_head_family head_guess_rows(int64_t A, int64_t K, int nc, int w, int h, int reg_max) {
    int cells3 = head_grid_cells(w, h, head_strides3, 3), cells4 = head_grid_cells(w, h, head_strides4, 4);
    int nano_cols = 4 * (reg_max + 1);
    if (A == 3LL * cells3 && K > 5) return VIGIL_HEAD_YOLOV5;
    if (A == cells3 && K > 5 && (nc == 0 || K == 5 + nc)) return VIGIL_HEAD_YOLOX;
    if (A == cells4 && K > nano_cols && (nc == 0 || K == nc + nano_cols)) return VIGIL_HEAD_NANODET;
    if (A == cells3 && nc > 0 && K == nc + nano_cols) return VIGIL_HEAD_NANODET; /* the original head, one output */
    if (K == 6 && A <= 1000) return VIGIL_HEAD_YOLOV10;
    if (nc > 0 && K == 5 + nc) return VIGIL_HEAD_YOLOV5; /* anchor count off the usual grid */
    return VIGIL_HEAD_AUTO;
}

/* NanoDet's original export has six outputs: for strides 8, 16 and 32 the
 * sigmoid class scores [1, cells, nc] and the distributions [1, cells,
 * 4 (R+1)], interleaved (cls_pred_stride_8, dis_pred_stride_8,
 * cls_pred_stride_16, ..., as the ncnn/MNN demos name them) or grouped
 * (three scores, then three distributions, as NanoDet's first
 * tools/export.py wrote them).  They are matched by shape,
 * the scores first where both have 4 (R+1) columns.  1 when the six outputs
 * fit, with l's output indices, levels and class count filled in. */
static int head_nanodet_split(const vigil_tensor_info *o, size_t n, int w, int h, head_layout *l) {
    if (n != 6) return 0;
    int64_t dis_cols = 4 * (l->reg_max + 1), nc = 0;
    for (int lv = 0; lv < 3; lv++) {
        int64_t cells = head_grid_cells(w, h, &head_strides3[lv], 1);
        int found[2], n_found = 0;
        for (size_t i = 0; i < n; i++) {
            if (o[i].ndim != 3 || o[i].dims[1] != cells || o[i].dims[2] <= 0) continue;
            if (n_found < 2) found[n_found] = (int)i;
            n_found++;
        }
        if (n_found != 2) return 0;
        int dis_second = o[found[1]].dims[2] == dis_cols;
        if (!dis_second && o[found[0]].dims[2] != dis_cols) return 0;
        int cls = found[dis_second ? 0 : 1], dis = found[dis_second ? 1 : 0];
        if (nc && o[cls].dims[2] != nc) return 0;
        nc = o[cls].dims[2];
        l->nanodet_cls_output[lv] = cls, l->nanodet_dis_output[lv] = dis;
    }
    l->n_outputs = 6, l->n_classes = (int)nc, l->n_anchors = head_grid_cells(w, h, head_strides3, 3);
    l->nanodet_levels = 3, l->nanodet_offset = 0.5f;
    return 1;
}

/* HailoRT's by-class NMS output as the Hailo backend lays it out. */
static int head_is_hailo_nms(const vigil_tensor_info *o) {
    return o->ndim == 3 && o->dim_names[2] && strcmp(o->dim_names[2], "hailo_nms") == 0;
}

static vigil_head_family head_guess(const vigil_tensor_info *o, size_t n, int nc, const char *task, int w, int h,
                                    int reg_max) {
    if (head_is_hailo_nms(&o[0])) return VIGIL_HEAD_HAILO_NMS;
    head_layout split = {.reg_max = reg_max};
    if (head_nanodet_split(o, n, w, h, &split)) return VIGIL_HEAD_NANODET;
    if (o[0].ndim != 3) return VIGIL_HEAD_AUTO;
    int64_t d1 = o[0].dims[1], d2 = o[0].dims[2];
    int seg_task = task && strcmp(task, "segment") == 0;
    if (n >= 2 && o[1].ndim == 4 && d1 < d2) return VIGIL_HEAD_YOLOV8_SEG;
    if (seg_task && d1 < d2) return VIGIL_HEAD_YOLOV8_SEG;
    if (d1 < d2 && !(d2 == 6 && d1 > 6)) return VIGIL_HEAD_YOLOV8;
    return head_guess_rows(d1, d2, nc, w, h, reg_max);
}

vigil_status head_detect_layout(const vigil_tensor_info *outputs, size_t n_outputs, int n_named_classes,
                                const char *task, int input_w, int input_h, vigil_head_family requested, int reg_max,
                                head_layout *out, vigil_error *err) {
    memset(out, 0, sizeof *out);
    out->n_outputs = 1;
    if (n_outputs < 1 || !outputs) return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "model has no outputs to decode");
    const vigil_tensor_info *o = outputs;
    if (o[0].ndim != 3 || o[0].dims[1] <= 0 || o[0].dims[2] <= 0)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED,
                               "output 0 must be [N, a, b] with fixed a and b to decode detections (has %d dims)",
                               o[0].ndim);
    out->reg_max = reg_max > 0 ? reg_max : 7;
    vigil_head_family f = requested != VIGIL_HEAD_AUTO
                              ? requested
                              : head_guess(o, n_outputs, n_named_classes, task, input_w, input_h, out->reg_max);
    int64_t d1 = o[0].dims[1], d2 = o[0].dims[2];
    out->family = f;
    switch (f) {
    case VIGIL_HEAD_YOLOV8: out->n_anchors = (int)d2, out->n_classes = (int)d1 - 4; break;
    case VIGIL_HEAD_YOLOV8_SEG:
        if (n_outputs < 2 || o[1].ndim != 4 || o[1].dims[1] <= 0)
            return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "yolov8-seg needs a [N, nm, h, w] prototype output");
        out->n_mask_coeffs = (int)o[1].dims[1];
        out->n_anchors = (int)d2, out->n_classes = (int)d1 - 4 - out->n_mask_coeffs;
        break;
    case VIGIL_HEAD_YOLOV5:
    case VIGIL_HEAD_YOLOX: out->n_anchors = (int)d1, out->n_classes = (int)d2 - 5; break;
    case VIGIL_HEAD_NANODET: {
        if (head_nanodet_split(o, n_outputs, input_w, input_h, out)) break;
        int cells3 = head_grid_cells(input_w, input_h, head_strides3, 3);
        int cells4 = head_grid_cells(input_w, input_h, head_strides4, 4);
        out->n_anchors = (int)d1, out->n_classes = (int)d2 - 4 * (out->reg_max + 1);
        /* NanoDet-Plus: strides 8-64, grid points at cell corners; the
         * original head's single output: strides 8-32, cell centres */
        out->nanodet_levels = d1 == cells4 ? 4 : 3;
        out->nanodet_offset = d1 == cells4 ? 0.f : 0.5f;
        if (d1 != cells4 && d1 != cells3)
            return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED,
                                   "nanodet: output 0 has %lld rows; a %dx%d input needs %d (NanoDet-Plus, strides "
                                   "8-64) or %d (strides 8-32), or six outputs: scores and distributions of %d "
                                   "columns per stride 8, 16 and 32",
                                   (long long)d1, input_w, input_h, cells4, cells3, 4 * (out->reg_max + 1));
        break;
    }
    case VIGIL_HEAD_YOLOV10:
        if (d2 != 6) return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "yolov10 output must be [N, K, 6]");
        out->n_anchors = (int)d1, out->n_classes = n_named_classes; /* ids come from the tensor */
        break;
    case VIGIL_HEAD_HAILO_NMS:
        if (!head_is_hailo_nms(&o[0]) || (d2 - 1) % 5 != 0)
            return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "hailo_nms output must be the Hailo backend's [N, nc, 1+5K]");
        out->n_classes = (int)d1, out->n_anchors = (int)d1, out->nms_max_boxes = (int)((d2 - 1) / 5);
        break;
    default:
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED,
                               "cannot tell the detection head from output shape [N, %lld, %lld]: pass the family",
                               (long long)d1, (long long)d2);
    }
    if (f == VIGIL_HEAD_YOLOX && out->n_anchors != head_grid_cells(input_w, input_h, head_strides3, 3))
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "yolox: %d rows do not match a %dx%d input", out->n_anchors,
                               input_w, input_h);
    if (out->n_classes < 1 && f != VIGIL_HEAD_YOLOV10)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "%s head with output [N, %lld, %lld] has no classes",
                               vigil_head_family_name(f), (long long)d1, (long long)d2);
    return VIGIL_OK;
}
