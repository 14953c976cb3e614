/*
 * linalg.c - matrix products: the sgemm building block, MatMul with numpy
 * batch broadcasting (F32, I64) and Gemm.
 *
 * sgemm is blocked over N and K so that a block of B stays in cache; inside a
 * block a 4 x 8 tile of C is accumulated in registers over the whole depth
 * (the i-k-j order with four rows per pass handles the edges).  The inner loops are restrict-qualified and
 * contiguous so the compiler vectorises them; no intrinsics.  Gemm with a
 * transposed B uses dot products along the shared dim instead (both operands
 * contiguous), with eight partial sums to keep the FPU busy.
 */
#include <string.h>

#include "engine/kernels/kernels_internal.h"

#define NB 512 /* columns of B / C per block */
#define KB 256 /* depth per block */

/* c_r[j] += sum over the 4 rows: a_r * b[j] for one k. */
static void sgemm_row4(int64_t n, const float *restrict b, float a0, float a1, float a2, float a3, float *restrict c0,
                       float *restrict c1, float *restrict c2, float *restrict c3) {
    for (int64_t j = 0; j < n; j++) {
        float bj = b[j];
        c0[j] += a0 * bj;
        c1[j] += a1 * bj;
        c2[j] += a2 * bj;
        c3[j] += a3 * bj;
    }
}

static void sgemm_row1(int64_t n, const float *restrict b, float a, float *restrict c) {
    for (int64_t j = 0; j < n; j++) c[j] += a * b[j];
}

/* C[4 x 8] += A[4 x kb] * B[kb x 8]: the accumulators stay in registers for
 * the whole depth and the fixed-width inner loop is vectorised by the
 * compiler (SLP) even at -O2. */
static void sgemm_micro_4x8(int64_t kb, const float *A, int64_t ars, int64_t acs, const float *B, int64_t ldb,
                            float *C, int64_t ldc) {
    float acc[4][8];
    memset(acc, 0, sizeof acc);
    for (int64_t k = 0; k < kb; k++) {
        const float *b = B + k * ldb;
        const float a0 = A[k * acs], a1 = A[ars + k * acs], a2 = A[2 * ars + k * acs], a3 = A[3 * ars + k * acs];
        for (int t = 0; t < 8; t++) {
            acc[0][t] += a0 * b[t];
            acc[1][t] += a1 * b[t];
            acc[2][t] += a2 * b[t];
            acc[3][t] += a3 * b[t];
        }
    }
    for (int r = 0; r < 4; r++)
        for (int t = 0; t < 8; t++) C[r * ldc + t] += acc[r][t];
}

/* C += A * B with A element (i, k) at A[i * ars + k * acs]. */
static void sgemm_general(int64_t M, int64_t N, int64_t K, const float *A, int64_t ars, int64_t acs, const float *B,
                          int64_t ldb, float *C, int64_t ldc) {
    for (int64_t j0 = 0; j0 < N; j0 += NB) {
        int64_t nb = N - j0 < NB ? N - j0 : NB;
        for (int64_t k0 = 0; k0 < K; k0 += KB) {
            int64_t kb = K - k0 < KB ? K - k0 : KB;
            int64_t i = 0;
            for (; i + 4 <= M; i += 4) {
                const float *a = A + i * ars + k0 * acs;
                float *c0 = C + i * ldc;
                int64_t j = j0;
                for (; j + 8 <= j0 + nb; j += 8) sgemm_micro_4x8(kb, a, ars, acs, B + k0 * ldb + j, ldb, c0 + j, ldc);
                if (j == j0 + nb) continue;
                for (int64_t k = 0; k < kb; k++) /* remaining columns */
                    sgemm_row4(j0 + nb - j, B + (k0 + k) * ldb + j, a[k * acs], a[ars + k * acs], a[2 * ars + k * acs],
                               a[3 * ars + k * acs], c0 + j, c0 + ldc + j, c0 + 2 * ldc + j, c0 + 3 * ldc + j);
            }
            for (; i < M; i++)
                for (int64_t k = k0; k < k0 + kb; k++)
                    sgemm_row1(nb, B + k * ldb + j0, A[i * ars + k * acs], C + i * ldc + j0);
        }
    }
}

void kernels_sgemm(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                   float *C, int64_t ldc, int accumulate) {
    if (!accumulate)
        for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof(float));
    sgemm_general(M, N, K, A, lda, 1, B, ldb, C, ldc);
}

/* Dot product of a (stride as) and contiguous b, eight partial sums. */
static float dot_f32(const float *a, int64_t as, const float *b, int64_t n) {
    float s[8] = {0};
    int64_t k = 0;
    if (as == 1) {
        for (; k + 8 <= n; k += 8)
            for (int t = 0; t < 8; t++) s[t] += a[k + t] * b[k + t];
    }
    float total = 0.0f;
    for (; k < n; k++) total += a[k * as] * b[k];
    for (int t = 0; t < 8; t++) total += s[t];
    return total;
}

/* ---- MatMul ---- */

vigil_status kernels_matmul_shape(const kshape *as, const kshape *bs, kshape *out, vigil_error *err) {
    if (as->ndim < 1 || bs->ndim < 1)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "matmul: scalar operand");
    int64_t ka = as->dims[as->ndim - 1];
    int64_t kb = bs->ndim == 1 ? bs->dims[0] : bs->dims[bs->ndim - 2];
    if (ka != kb)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "matmul: inner dims %lld and %lld differ",
                               (long long)ka, (long long)kb);
    kshape ab = {0}, bb = {0}, batch;
    ab.ndim = as->ndim > 2 ? as->ndim - 2 : 0;
    bb.ndim = bs->ndim > 2 ? bs->ndim - 2 : 0;
    memcpy(ab.dims, as->dims, (size_t)ab.ndim * sizeof(int64_t));
    memcpy(bb.dims, bs->dims, (size_t)bb.ndim * sizeof(int64_t));
    vigil_status st = kshape_broadcast(&ab, &bb, &batch, err);
    if (st != VIGIL_OK) {
        vigil_error_prefix(err, "matmul batch dims");
        return st;
    }
    kshape r = batch;
    if (as->ndim >= 2) r.dims[r.ndim++] = as->dims[as->ndim - 2];
    if (bs->ndim >= 2) r.dims[r.ndim++] = bs->dims[bs->ndim - 1];
    if (r.ndim > KERNELS_MAX_DIMS) return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "matmul: rank too large");
    st = kshape_check(&r, err);
    if (st != VIGIL_OK) return st;
    *out = r;
    return VIGIL_OK;
}

static void matmul_i64(int64_t M, int64_t N, int64_t K, const int64_t *A, const int64_t *B, int64_t *C) {
    memset(C, 0, (size_t)(M * N) * sizeof(int64_t));
    for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < K; k++) {
            uint64_t a = (uint64_t)A[i * K + k];
            for (int64_t j = 0; j < N; j++) C[i * N + j] = (int64_t)((uint64_t)C[i * N + j] + a * (uint64_t)B[k * N + j]);
        }
}

vigil_status kernels_matmul(vigil_dtype dtype, const void *a, const kshape *as, const void *b, const kshape *bs,
                            void *y, const kshape *ys, vigil_error *err) {
    if (dtype != VIGIL_DTYPE_F32 && dtype != VIGIL_DTYPE_I64)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "matmul on %s", vigil_dtype_name(dtype));
    int64_t M = as->ndim >= 2 ? as->dims[as->ndim - 2] : 1;
    int64_t K = as->dims[as->ndim - 1];
    int64_t N = bs->ndim >= 2 ? bs->dims[bs->ndim - 1] : 1;
    if (kshape_count(ys) == 0) return VIGIL_OK;
    /* Batch shapes: as and bs without their matrix dims, broadcast to ys's batch. */
    kshape ab = {0}, bb = {0}, yb = {0};
    ab.ndim = as->ndim > 2 ? as->ndim - 2 : 0;
    bb.ndim = bs->ndim > 2 ? bs->ndim - 2 : 0;
    yb.ndim = ys->ndim - (as->ndim >= 2) - (bs->ndim >= 2);
    memcpy(ab.dims, as->dims, (size_t)ab.ndim * sizeof(int64_t));
    memcpy(bb.dims, bs->dims, (size_t)bb.ndim * sizeof(int64_t));
    memcpy(yb.dims, ys->dims, (size_t)yb.ndim * sizeof(int64_t));
    bplan plan;
    const kshape *ins[2] = {&ab, &bb};
    bplan_init(&plan, &yb, 2, ins);
    int64_t inner = bplan_inner(&plan), rows = bplan_rows(&plan);
    int last = plan.ndim - 1;
    int64_t sa = last >= 0 ? plan.strides[0][last] : 0, sb = last >= 0 ? plan.strides[1][last] : 0;
    bplan_iter it;
    bplan_iter_start(&it);
    int64_t batch = 0;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < inner; i++, batch++) {
            int64_t ao = (it.off[0] + i * sa) * M * K, bo = (it.off[1] + i * sb) * K * N, yo = batch * M * N;
            if (dtype == VIGIL_DTYPE_F32)
                kernels_sgemm(M, N, K, (const float *)a + ao, K, (const float *)b + bo, N, (float *)y + yo, N, 0);
            else
                matmul_i64(M, N, K, (const int64_t *)a + ao, (const int64_t *)b + bo, (int64_t *)y + yo);
        }
        bplan_iter_next(&plan, &it);
    }
    return VIGIL_OK;
}

/* ---- Gemm ---- */

vigil_status kernels_gemm_shape(const kshape *as, const kshape *bs, const kshape *cs, int trans_a, int trans_b,
                                kshape *out, vigil_error *err) {
    if (as->ndim != 2 || bs->ndim != 2)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "gemm: A and B must be 2-D");
    int64_t M = trans_a ? as->dims[1] : as->dims[0], K = trans_a ? as->dims[0] : as->dims[1];
    int64_t K2 = trans_b ? bs->dims[1] : bs->dims[0], N = trans_b ? bs->dims[0] : bs->dims[1];
    if (K != K2)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "gemm: inner dims %lld and %lld differ", (long long)K,
                               (long long)K2);
    int64_t d[2] = {M, N};
    kshape r = kshape_make(2, d);
    if (cs) {
        kshape check;
        if (cs->ndim > 2) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "gemm: C has rank %d", cs->ndim);
        vigil_status st = kshape_broadcast(cs, &r, &check, err);
        if (st != VIGIL_OK || !kshape_equal(&check, &r))
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "gemm: C does not broadcast to [%lld, %lld]",
                                   (long long)M, (long long)N);
    }
    *out = r;
    return VIGIL_OK;
}

void kernels_gemm_f32(const float *A, const kshape *as, const float *B, const kshape *bs, const float *C,
                      const kshape *cs, int trans_a, int trans_b, float alpha, float beta, float *Y) {
    int64_t M = trans_a ? as->dims[1] : as->dims[0], K = trans_a ? as->dims[0] : as->dims[1];
    int64_t N = trans_b ? bs->dims[0] : bs->dims[1];
    int64_t ars = trans_a ? 1 : K, acs = trans_a ? M : 1;
    if (M * N == 0) return;
    if (trans_b) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) Y[i * N + j] = dot_f32(A + i * ars, acs, B + j * K, K);
    } else {
        for (int64_t i = 0; i < M; i++) memset(Y + i * N, 0, (size_t)N * sizeof(float));
        sgemm_general(M, N, K, A, ars, acs, B, N, Y, N);
    }
    /* Y = alpha * Y + beta * C (C broadcast by row / column strides). */
    int64_t crs = 0, ccs = 0;
    if (C && cs) {
        int64_t cr = cs->ndim == 2 ? cs->dims[0] : 1, cc = cs->ndim >= 1 ? cs->dims[cs->ndim - 1] : 1;
        crs = cr == 1 ? 0 : cc;
        ccs = cc == 1 ? 0 : 1;
    }
    for (int64_t i = 0; i < M; i++) {
        float *row = Y + i * N;
        if (C && beta != 0.0f) {
            const float *crow = C + i * crs;
            for (int64_t j = 0; j < N; j++) row[j] = alpha * row[j] + beta * crow[j * ccs];
        } else if (alpha != 1.0f) {
            for (int64_t j = 0; j < N; j++) row[j] *= alpha;
        }
    }
}
