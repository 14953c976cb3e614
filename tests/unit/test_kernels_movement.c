/*
 * test_kernels_movement.c - Transpose, Concat, Split, Slice, Gather*,
 * Scatter*, Expand, Tile, Pad, DepthToSpace and SpaceToDepth: hand-computed
 * cases plus comparisons of the optimised paths (merged dims, tiled
 * transpose) against a naive index-by-index version.
 */
#include <math.h>
#include <stdint.h>

#include "engine/kernels/kernels.h"
#include "testing.h"

static kshape S(int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int64_t d[4] = {d0, d1, d2, d3};
    return kshape_make(ndim, d);
}

/* Naive transpose for checking: one element at a time through full indices. */
static void naive_transpose(const float *x, const kshape *xs, const int *perm, float *y) {
    int64_t xstr[KERNELS_MAX_DIMS], n = kshape_count(xs), idx[KERNELS_MAX_DIMS] = {0};
    kshape ys;
    kernels_transpose_shape(xs, perm, &ys, NULL);
    kshape_strides(xs, xstr);
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int d = 0; d < ys.ndim; d++) off += idx[d] * xstr[perm[d]];
        y[i] = x[off];
        for (int d = ys.ndim - 1; d >= 0; d--) {
            if (++idx[d] < ys.dims[d]) break;
            idx[d] = 0;
        }
    }
}

static void check_transpose(kshape xs, const int *perm) {
    int64_t n = kshape_count(&xs);
    float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)n * sizeof(float)),
          *e = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = (float)i;
    kernels_transpose(sizeof(float), x, &xs, perm, y);
    naive_transpose(x, &xs, perm, e);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += y[i] != e[i];
    CHECK_EQ_INT(bad, 0);
    free(x);
    free(y);
    free(e);
}

static void test_transpose(void) {
    float x[6] = {1, 2, 3, 4, 5, 6}, y[6];
    kshape xs = S(2, 2, 3, 0, 0), ys;
    int p2[2] = {1, 0};
    CHECK_EQ_INT(kernels_transpose_shape(&xs, p2, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[0], 3);
    kernels_transpose(sizeof(float), x, &xs, p2, y);
    float e[6] = {1, 4, 2, 5, 3, 6};
    for (int i = 0; i < 6; i++) CHECK_NEAR(y[i], e[i], 0);
    int badp[2] = {0, 0};
    CHECK_EQ_INT(kernels_transpose_shape(&xs, badp, &ys, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    /* NCHW -> NHWC (tiled path), NHWC -> NCHW, a middle swap (row copies), odd sizes */
    int nhwc[4] = {0, 2, 3, 1}, nchw[4] = {0, 3, 1, 2}, mid[4] = {0, 2, 1, 3}, rev[4] = {3, 2, 1, 0};
    check_transpose(S(4, 2, 37, 9, 11), nhwc);
    check_transpose(S(4, 1, 9, 11, 37), nchw);
    check_transpose(S(4, 2, 3, 5, 7), mid);
    check_transpose(S(4, 3, 1, 5, 2), rev);
    check_transpose(S(4, 1, 1, 1, 1), rev);
    int p3[3] = {2, 0, 1};
    check_transpose(S(3, 70, 1, 40, 0), p3);
    /* element sizes 1 and 8 */
    uint8_t b[6] = {1, 2, 3, 4, 5, 6}, bo[6];
    kernels_transpose(1, b, &xs, p2, bo);
    CHECK(bo[1] == 4 && bo[4] == 3);
    int64_t l[6] = {1, 2, 3, 4, 5, 6}, lo[6];
    kernels_transpose(8, l, &xs, p2, lo);
    CHECK(lo[1] == 4 && lo[4] == 3);
}

static void test_concat_split(void) {
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6}, y[6];
    kshape s[2] = {S(2, 2, 2, 0, 0), S(2, 2, 1, 0, 0)}, ys;
    CHECK_EQ_INT(kernels_concat_shape(1, 2, s, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[1], 3);
    const void *in[2] = {a, b};
    kernels_concat(sizeof(float), 1, 2, in, s, y);
    float e[6] = {1, 2, 5, 3, 4, 6};
    for (int i = 0; i < 6; i++) CHECK_NEAR(y[i], e[i], 0);
    CHECK_EQ_INT(kernels_concat_shape(0, 2, s, &ys, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    /* with an empty input */
    kshape s3[3] = {S(1, 2, 0, 0, 0), S(1, 0, 0, 0, 0), S(1, 1, 0, 0, 0)};
    const void *in3[3] = {a, NULL, b};
    CHECK_EQ_INT(kernels_concat_shape(0, 3, s3, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[0], 3);
    kernels_concat(sizeof(float), 0, 3, in3, s3, y);
    CHECK(y[0] == 1 && y[1] == 2 && y[2] == 5);
    /* split back */
    float p[4], q[2];
    void *outs[2] = {p, q};
    int64_t sizes[2] = {2, 1};
    kshape cat = S(2, 2, 3, 0, 0);
    CHECK_EQ_INT(kernels_split_check(&cat, 1, 2, sizes, NULL), VIGIL_OK);
    kernels_split(sizeof(float), e, &cat, 1, 2, sizes, outs);
    for (int i = 0; i < 4; i++) CHECK_NEAR(p[i], a[i], 0);
    CHECK(q[0] == 5 && q[1] == 6);
    int64_t bad[2] = {2, 2};
    CHECK_EQ_INT(kernels_split_check(&cat, 1, 2, bad, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    int64_t even[3];
    CHECK_EQ_INT(kernels_split_even(7, 3, 0, even, NULL), VIGIL_OK);
    CHECK(even[0] == 3 && even[1] == 3 && even[2] == 1);
    CHECK_EQ_INT(kernels_split_even(7, 3, 1, even, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(kernels_split_even(6, 3, 1, even, NULL), VIGIL_OK);
    CHECK(even[0] == 2 && even[2] == 2);
}

static void test_slice(void) {
    float x[10];
    for (int i = 0; i < 10; i++) x[i] = (float)i;
    kshape xs = S(1, 10, 0, 0, 0);
    kslice sl;
    float y[10];
    /* negative step from the end: x[::-1] with INT64_MAX / INT64_MIN */
    int64_t st[1] = {-1}, en[1] = {INT64_MIN}, sp[1] = {-1};
    CHECK_EQ_INT(kernels_slice_normalize(&xs, st, en, NULL, sp, 1, &sl, NULL), VIGIL_OK);
    CHECK_EQ_INT(sl.out.dims[0], 10);
    kernels_slice(sizeof(float), x, &xs, &sl, y);
    for (int i = 0; i < 10; i++) CHECK_NEAR(y[i], 9 - i, 0);
    /* start INT64_MAX with negative step starts at the last element, step -3 */
    int64_t st2[1] = {INT64_MAX}, en2[1] = {0}, sp2[1] = {-3};
    CHECK_EQ_INT(kernels_slice_normalize(&xs, st2, en2, NULL, sp2, 1, &sl, NULL), VIGIL_OK);
    CHECK_EQ_INT(sl.out.dims[0], 3); /* 9, 6, 3 */
    kernels_slice(sizeof(float), x, &xs, &sl, y);
    CHECK(y[0] == 9 && y[1] == 6 && y[2] == 3);
    /* positive step with end INT64_MAX and negative start */
    int64_t st3[1] = {-4}, en3[1] = {INT64_MAX}, sp3[1] = {2};
    CHECK_EQ_INT(kernels_slice_normalize(&xs, st3, en3, NULL, sp3, 1, &sl, NULL), VIGIL_OK);
    CHECK_EQ_INT(sl.out.dims[0], 2);
    kernels_slice(sizeof(float), x, &xs, &sl, y);
    CHECK(y[0] == 6 && y[1] == 8);
    /* empty result when start >= end */
    int64_t st4[1] = {5}, en4[1] = {2};
    CHECK_EQ_INT(kernels_slice_normalize(&xs, st4, en4, NULL, NULL, 1, &sl, NULL), VIGIL_OK);
    CHECK_EQ_INT(sl.out.dims[0], 0);
    /* step 0 and repeated axes are errors */
    int64_t zero[1] = {0};
    CHECK_EQ_INT(kernels_slice_normalize(&xs, st, en, NULL, zero, 1, &sl, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    /* 2-D: axes given negative, slicing the last dim of a [3,4] (YOLO-style channel slice) */
    float m[12];
    for (int i = 0; i < 12; i++) m[i] = (float)i;
    kshape ms = S(2, 3, 4, 0, 0);
    int64_t s5[2] = {1, 0}, e5[2] = {3, 2}, ax5[2] = {-1, 0};
    CHECK_EQ_INT(kernels_slice_normalize(&ms, s5, e5, ax5, NULL, 2, &sl, NULL), VIGIL_OK);
    CHECK_EQ_INT(sl.out.dims[0], 2);
    CHECK_EQ_INT(sl.out.dims[1], 2);
    kernels_slice(sizeof(float), m, &ms, &sl, y);
    CHECK(y[0] == 1 && y[1] == 2 && y[2] == 5 && y[3] == 6);
    int64_t ax6[2] = {1, -1};
    CHECK_EQ_INT(kernels_slice_normalize(&ms, s5, e5, ax6, NULL, 2, &sl, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    /* negative step on a 2-D tensor on both axes */
    int64_t s7[2] = {-1, -1}, e7[2] = {INT64_MIN, INT64_MIN}, p7[2] = {-2, -1};
    CHECK_EQ_INT(kernels_slice_normalize(&ms, s7, e7, NULL, p7, 2, &sl, NULL), VIGIL_OK);
    CHECK_EQ_INT(sl.out.dims[0], 2);
    kernels_slice(sizeof(float), m, &ms, &sl, y);
    CHECK(y[0] == 11 && y[3] == 8 && y[4] == 3 && y[7] == 0);
    /* slicing an empty dim */
    kshape es = S(1, 0, 0, 0, 0);
    CHECK_EQ_INT(kernels_slice_normalize(&es, st, en, NULL, sp, 1, &sl, NULL), VIGIL_OK);
    CHECK_EQ_INT(sl.out.dims[0], 0);
}

static void test_gather(void) {
    float data[6] = {1, 2, 3, 4, 5, 6}; /* [3,2] */
    kshape ds = S(2, 3, 2, 0, 0), is = S(2, 2, 2, 0, 0), ys;
    int64_t idx[4] = {0, -1, 1, 2};
    CHECK_EQ_INT(kernels_gather_shape(&ds, &is, 0, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.ndim, 3);
    CHECK_EQ_INT(ys.dims[2], 2);
    float y[8];
    CHECK_EQ_INT(kernels_gather(sizeof(float), data, &ds, 0, idx, VIGIL_DTYPE_I64, &is, y, NULL), VIGIL_OK);
    float e[8] = {1, 2, 5, 6, 3, 4, 5, 6};
    for (int i = 0; i < 8; i++) CHECK_NEAR(y[i], e[i], 0);
    /* axis 1 with int32 indices and a scalar index (rank drops) */
    int32_t one = -1;
    kshape scalar = S(0, 0, 0, 0, 0);
    CHECK_EQ_INT(kernels_gather_shape(&ds, &scalar, 1, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.ndim, 1);
    CHECK_EQ_INT(kernels_gather(sizeof(float), data, &ds, 1, &one, VIGIL_DTYPE_I32, &scalar, y, NULL), VIGIL_OK);
    CHECK(y[0] == 2 && y[1] == 4 && y[2] == 6);
    int64_t oob[1] = {3};
    kshape is1 = S(1, 1, 0, 0, 0);
    vigil_error err;
    CHECK_EQ_INT(kernels_gather(sizeof(float), data, &ds, 0, oob, VIGIL_DTYPE_I64, &is1, y, &err),
                 VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "out of range") != NULL);
    int64_t neg[1] = {-4};
    CHECK_EQ_INT(kernels_gather(sizeof(float), data, &ds, 0, neg, VIGIL_DTYPE_I64, &is1, y, NULL),
                 VIGIL_ERR_INVALID_ARGUMENT);
    /* GatherElements (ONNX doc example, axis 1 and axis 0 with negatives) */
    float ge[4] = {1, 2, 3, 4};
    int64_t gi[4] = {0, 0, 1, 0};
    kshape g2 = S(2, 2, 2, 0, 0);
    CHECK_EQ_INT(kernels_gather_elements(sizeof(float), ge, &g2, 1, gi, VIGIL_DTYPE_I64, &g2, y, NULL), VIGIL_OK);
    CHECK(y[0] == 1 && y[1] == 1 && y[2] == 4 && y[3] == 3);
    float ge3[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    int64_t gi3[6] = {-1, -2, 0, -2, 0, 0};
    kshape d33 = S(2, 3, 3, 0, 0), i23 = S(2, 2, 3, 0, 0);
    CHECK_EQ_INT(kernels_gather_elements(sizeof(float), ge3, &d33, 0, gi3, VIGIL_DTYPE_I64, &i23, y, NULL),
                 VIGIL_OK);
    float e3[6] = {7, 5, 3, 4, 2, 3};
    for (int i = 0; i < 6; i++) CHECK_NEAR(y[i], e3[i], 0);
    /* GatherND (ONNX doc example 5: batch_dims 1) */
    int64_t nd[8] = {0, 1, 2, 3, 4, 5, 6, 7}, ndi[2] = {1, 0}, ndy[4];
    kshape nds = S(3, 2, 2, 2, 0), ndis = S(2, 2, 1, 0, 0);
    CHECK_EQ_INT(kernels_gather_nd_shape(&nds, &ndis, 1, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.ndim, 2);
    CHECK_EQ_INT(ys.dims[1], 2);
    CHECK_EQ_INT(kernels_gather_nd(sizeof(int64_t), nd, &nds, ndi, &ndis, 1, ndy, NULL), VIGIL_OK);
    CHECK(ndy[0] == 2 && ndy[1] == 3 && ndy[2] == 4 && ndy[3] == 5);
    /* ScatterND (ONNX doc example 1) */
    float sd[8] = {1, 2, 3, 4, 5, 6, 7, 8}, up[4] = {9, 10, 11, 12};
    int64_t si[4] = {4, 3, 1, 7};
    kshape sds = S(1, 8, 0, 0, 0), sis = S(2, 4, 1, 0, 0);
    CHECK_EQ_INT(kernels_scatter_nd(sizeof(float), sd, &sds, si, &sis, up, NULL), VIGIL_OK);
    float se[8] = {1, 11, 3, 10, 9, 6, 7, 12};
    for (int i = 0; i < 8; i++) CHECK_NEAR(sd[i], se[i], 0);
    int64_t sbad[1] = {8};
    kshape sbs = S(2, 1, 1, 0, 0);
    CHECK_EQ_INT(kernels_scatter_nd(sizeof(float), sd, &sds, sbad, &sbs, up, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    /* ScatterElements (ONNX doc example 2) */
    float sc[5] = {1, 2, 3, 4, 5}, scu[2] = {1.1f, 2.1f};
    int64_t sci[2] = {1, 3};
    kshape scs = S(2, 1, 5, 0, 0), scis = S(2, 1, 2, 0, 0);
    CHECK_EQ_INT(kernels_scatter_elements(sizeof(float), sc, &scs, 1, sci, VIGIL_DTYPE_I64, &scis, scu, NULL),
                 VIGIL_OK);
    CHECK_NEAR(sc[1], 1.1, 1e-6);
    CHECK_NEAR(sc[3], 2.1, 1e-6);
    CHECK_NEAR(sc[4], 5, 0);
}

static void test_expand_tile(void) {
    float x[3] = {1, 2, 3}, y[12];
    kshape xs = S(2, 3, 1, 0, 0), ys;
    int64_t shape[3] = {2, 1, 2};
    CHECK_EQ_INT(kernels_expand_shape(&xs, shape, 3, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.ndim, 3);
    CHECK_EQ_INT(ys.dims[1], 3);
    CHECK_EQ_INT(ys.dims[2], 2);
    kernels_broadcast_to(sizeof(float), x, &xs, y, &ys);
    float e[12] = {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3};
    for (int i = 0; i < 12; i++) CHECK_NEAR(y[i], e[i], 0);
    int64_t bad[1] = {2};
    CHECK_EQ_INT(kernels_expand_shape(&xs, bad, 1, &ys, NULL), VIGIL_OK); /* [3,1] x [2] -> [3,2] */
    int64_t bad2[2] = {2, 2};
    CHECK_EQ_INT(kernels_expand_shape(&xs, bad2, 2, &ys, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    float t[4] = {1, 2, 3, 4}, ty[16];
    kshape ts = S(2, 2, 2, 0, 0), tys;
    int64_t reps[2] = {2, 2};
    CHECK_EQ_INT(kernels_tile_shape(&ts, reps, &tys, NULL), VIGIL_OK);
    CHECK_EQ_INT(tys.dims[0], 4);
    kernels_tile(sizeof(float), t, &ts, ty, &tys);
    float te[16] = {1, 2, 1, 2, 3, 4, 3, 4, 1, 2, 1, 2, 3, 4, 3, 4};
    for (int i = 0; i < 16; i++) CHECK_NEAR(ty[i], te[i], 0);
    int64_t r0[2] = {1, 0};
    CHECK_EQ_INT(kernels_tile_shape(&ts, r0, &tys, NULL), VIGIL_OK);
    CHECK_EQ_INT(kshape_count(&tys), 0);
    kernels_tile(sizeof(float), t, &ts, ty, &tys); /* writes nothing */
}

static void test_pad(void) {
    /* ONNX doc example: reflect pads [0,2,0,0] on [3,2] */
    float x[6] = {1.0f, 1.2f, 2.3f, 3.4f, 4.5f, 5.7f}, y[24];
    kshape xs = S(2, 3, 2, 0, 0), ys;
    int64_t pads[4] = {0, 2, 0, 0};
    CHECK_EQ_INT(kernels_pad_shape(&xs, pads, KERNELS_PAD_REFLECT, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[1], 4);
    kernels_pad(sizeof(float), x, &xs, pads, KERNELS_PAD_REFLECT, NULL, y, &ys);
    float er[12] = {1.0f, 1.2f, 1.0f, 1.2f, 2.3f, 3.4f, 2.3f, 3.4f, 4.5f, 5.7f, 4.5f, 5.7f};
    for (int i = 0; i < 12; i++) CHECK_NEAR(y[i], er[i], 0);
    kernels_pad(sizeof(float), x, &xs, pads, KERNELS_PAD_EDGE, NULL, y, &ys);
    float ee[12] = {1.0f, 1.0f, 1.0f, 1.2f, 2.3f, 2.3f, 2.3f, 3.4f, 4.5f, 4.5f, 4.5f, 5.7f};
    for (int i = 0; i < 12; i++) CHECK_NEAR(y[i], ee[i], 0);
    /* constant on both dims with a value */
    int64_t p2[4] = {1, 0, 0, 1};
    float v = -1;
    CHECK_EQ_INT(kernels_pad_shape(&xs, p2, KERNELS_PAD_CONSTANT, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[0], 4);
    CHECK_EQ_INT(ys.dims[1], 3);
    kernels_pad(sizeof(float), x, &xs, p2, KERNELS_PAD_CONSTANT, &v, y, &ys);
    float ec[12] = {-1, -1, -1, 1.0f, 1.2f, -1, 2.3f, 3.4f, -1, 4.5f, 5.7f, -1};
    for (int i = 0; i < 12; i++) CHECK_NEAR(y[i], ec[i], 0);
    /* reflect on a row of 4 with pads 3 and 2: 3 2 1 | 0 1 2 3 | 2 1 */
    float r[4] = {0, 1, 2, 3};
    kshape rs = S(1, 4, 0, 0, 0);
    int64_t p3[2] = {3, 2};
    CHECK_EQ_INT(kernels_pad_shape(&rs, p3, KERNELS_PAD_REFLECT, &ys, NULL), VIGIL_OK);
    kernels_pad(sizeof(float), r, &rs, p3, KERNELS_PAD_REFLECT, NULL, y, &ys);
    float e3[9] = {3, 2, 1, 0, 1, 2, 3, 2, 1};
    for (int i = 0; i < 9; i++) CHECK_NEAR(y[i], e3[i], 0);
    kernels_pad(sizeof(float), r, &rs, p3, KERNELS_PAD_WRAP, NULL, y, &ys);
    float ew[9] = {1, 2, 3, 0, 1, 2, 3, 0, 1};
    for (int i = 0; i < 9; i++) CHECK_NEAR(y[i], ew[i], 0);
    /* negative pads crop */
    int64_t p4[2] = {-1, 1};
    CHECK_EQ_INT(kernels_pad_shape(&rs, p4, KERNELS_PAD_CONSTANT, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[0], 4);
    kernels_pad(sizeof(float), r, &rs, p4, KERNELS_PAD_CONSTANT, NULL, y, &ys);
    CHECK(y[0] == 1 && y[1] == 2 && y[2] == 3 && y[3] == 0);
    int64_t p5[2] = {-3, -2};
    CHECK_EQ_INT(kernels_pad_shape(&rs, p5, KERNELS_PAD_CONSTANT, &ys, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    kshape es = S(1, 0, 0, 0, 0);
    int64_t p6[2] = {1, 1};
    CHECK_EQ_INT(kernels_pad_shape(&es, p6, KERNELS_PAD_EDGE, &ys, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(kernels_pad_shape(&es, p6, KERNELS_PAD_CONSTANT, &ys, NULL), VIGIL_OK);
    kernels_pad(sizeof(float), r, &es, p6, KERNELS_PAD_CONSTANT, &v, y, &ys);
    CHECK(y[0] == -1 && y[1] == -1);
}

static void test_depth_space(void) {
    /* [1,8,1,1] -> DCR blocksize 2 -> [1,2,2,2] */
    float x[8] = {0, 1, 2, 3, 4, 5, 6, 7}, y[8], back[8];
    kshape xs = S(4, 1, 8, 1, 1), ys;
    CHECK_EQ_INT(kernels_depth_to_space_shape(&xs, 2, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[1], 2);
    CHECK_EQ_INT(ys.dims[3], 2);
    kernels_depth_to_space(sizeof(float), x, &xs, 2, 0, y);
    /* DCR: out[c, h, w] = in[(h*2 + w) * 2 + c] */
    float edcr[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    for (int i = 0; i < 8; i++) CHECK_NEAR(y[i], edcr[i], 0);
    kernels_depth_to_space(sizeof(float), x, &xs, 2, 1, y);
    /* CRD: out[c, h, w] = in[c * 4 + h * 2 + w] */
    for (int i = 0; i < 8; i++) CHECK_NEAR(y[i], i, 0);
    /* SpaceToDepth inverts DCR */
    kernels_depth_to_space(sizeof(float), x, &xs, 2, 0, y);
    kernels_space_to_depth(sizeof(float), y, &ys, 2, back);
    for (int i = 0; i < 8; i++) CHECK_NEAR(back[i], x[i], 0);
    kshape odd = S(4, 1, 3, 2, 2);
    CHECK_EQ_INT(kernels_depth_to_space_shape(&odd, 2, &ys, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(kernels_space_to_depth_shape(&odd, 2, &ys, NULL), VIGIL_OK);
    CHECK_EQ_INT(ys.dims[1], 12);
}

/* Attributes from a hostile model must give a status, never an overflow. */
static void test_hostile_shapes(void) {
    kshape xs = S(2, 3, 4, 0, 0), ys;
    int64_t reps[2] = {INT64_MAX, 2};
    CHECK_EQ_INT(kernels_tile_shape(&xs, reps, &ys, NULL), VIGIL_ERR_LIMIT);
    int64_t reps2[2] = {(int64_t)1 << 40, (int64_t)1 << 20};
    CHECK_EQ_INT(kernels_tile_shape(&xs, reps2, &ys, NULL), VIGIL_ERR_LIMIT);
    int64_t pads[4] = {INT64_MAX, 0, 5, 0};
    CHECK_EQ_INT(kernels_pad_shape(&xs, pads, KERNELS_PAD_CONSTANT, &ys, NULL), VIGIL_ERR_LIMIT);
    int64_t pads2[4] = {INT64_MIN, 0, 0, 0};
    CHECK(kernels_pad_shape(&xs, pads2, KERNELS_PAD_CONSTANT, &ys, NULL) != VIGIL_OK);
    int64_t big[3] = {(int64_t)1 << 40, 1, 1}, big2[2] = {1, (int64_t)1 << 40};
    kshape a = kshape_make(3, big), b = kshape_make(2, big2);
    CHECK_EQ_INT(kshape_broadcast(&a, &b, &ys, NULL), VIGIL_ERR_LIMIT);
    int64_t shape[2] = {(int64_t)1 << 62, 4};
    CHECK_EQ_INT(kernels_expand_shape(&xs, shape, 2, &ys, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    int64_t rs[3] = {(int64_t)1 << 62, 8, -1};
    CHECK(kernels_reshape_shape(&xs, rs, 3, 0, &ys, NULL) != VIGIL_OK);
    kernels_resize_params p;
    kernels_resize_defaults(&p);
    float scales[2] = {1e30f, 1};
    CHECK_EQ_INT(kernels_resize_shape(&xs, scales, NULL, NULL, 2, 0, &p, &ys, NULL), VIGIL_ERR_LIMIT);
    float nan_scales[2] = {NAN, 1};
    CHECK(kernels_resize_shape(&xs, nan_scales, NULL, NULL, 2, 0, &p, &ys, NULL) != VIGIL_OK);
    kshape x4 = S(4, 1, 4, 8, 8);
    CHECK(kernels_depth_to_space_shape(&x4, (int64_t)1 << 40, &ys, NULL) != VIGIL_OK);
    int64_t lo = INT64_MIN, hi = INT64_MAX, one = 1, n = 0;
    CHECK_EQ_INT(kernels_range_count(VIGIL_DTYPE_I64, &lo, &hi, &one, &n, NULL), VIGIL_ERR_LIMIT);
    int64_t step = INT64_MAX;
    CHECK_EQ_INT(kernels_range_count(VIGIL_DTYPE_I64, &lo, &hi, &step, &n, NULL), VIGIL_OK);
    CHECK_EQ_INT(n, 3); /* MIN, -1, MAX - 1 */
    int64_t ry[3];
    kernels_range(VIGIL_DTYPE_I64, &lo, &step, n, ry);
    CHECK(ry[0] == INT64_MIN && ry[1] == -1 && ry[2] == INT64_MAX - 1);
    /* window parameters */
    kernels_window w;
    int64_t k[2] = {3, 3}, in[2] = {8, 8};
    kernels_window_defaults(&w, 2, k);
    w.stride[0] = INT64_MAX;
    kernels_resolve_auto_pad(KERNELS_PAD_SAME_UPPER, in, &w); /* must not overflow */
    kshape cx = S(4, 1, 1, 8, 8), cw = S(4, 1, 1, 3, 3);
    CHECK_EQ_INT(kernels_conv_shape(&cx, &cw, &w, &ys, NULL), VIGIL_ERR_LIMIT);
    kernels_window_defaults(&w, 2, k);
    w.pad_end[1] = INT64_MAX;
    CHECK_EQ_INT(kernels_pool_shape(&cx, &w, &ys, NULL), VIGIL_ERR_LIMIT);
    kernels_window_defaults(&w, 2, k);
    w.dilation[0] = (int64_t)1 << 40;
    CHECK_EQ_INT(kernels_convtranspose_shape(&cx, &cw, &w, &ys, NULL), VIGIL_ERR_LIMIT);
    int64_t want[2] = {INT64_MAX, 8};
    CHECK(kernels_convtranspose_pads_for_output(in, want, 0, &w, NULL) != VIGIL_OK);
    kshape neg = S(2, -1, 4, 0, 0);
    CHECK_EQ_INT(kshape_check(&neg, NULL), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(kshape_check(&xs, NULL), VIGIL_OK);
}

int main(void) {
    RUN(test_transpose);
    RUN(test_concat_split);
    RUN(test_slice);
    RUN(test_gather);
    RUN(test_expand_tile);
    RUN(test_pad);
    RUN(test_depth_space);
    RUN(test_hostile_shapes);
    return testing_report();
}
