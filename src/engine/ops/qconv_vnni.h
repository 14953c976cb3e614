/*
 * qconv_vnni.h - QLinearConv's int8 convolution on AVX-512 VNNI
 * (qconv_vnni.c): NHWC, one group, no dilation, int8 weights with zero
 * point 0 per output channel, uint8 or int8 activations.
 */
#ifndef VIGIL_ENGINE_OPS_QCONV_VNNI_H
#define VIGIL_ENGINE_OPS_QCONV_VNNI_H

#include <pthreadpool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qconv_vnni_params {
    int64_t n, h, w, c;                                /* input, NHWC */
    int64_t m, kh, kw, stride_h, stride_w;             /* output channels, kernel */
    int64_t pad_top, pad_left, pad_bottom, pad_right;
    int x_signed;                                      /* int8 activations (else uint8) */
    int32_t x_zp, y_zp, lo, hi;                        /* zero points, output bounds (the output's type) */
    float x_scale, y_scale;
} qconv_vnni_params;

typedef struct qconv_vnni qconv_vnni;

/* Whether this CPU has AVX-512 F, BW and VNNI (and this build the kernel). */
int qconv_vnni_available(void);
/* Packs w (ONNX [M, C, kh, kw] int8), per-channel w_scale (M) and the int32
 * bias (M, may be NULL); NULL when out of memory. */
qconv_vnni *qconv_vnni_create(const qconv_vnni_params *p, const int8_t *w, const float *w_scale,
                              const int32_t *bias);
void qconv_vnni_destroy(qconv_vnni *c);
/* Bytes of scratch qconv_vnni_run needs (the padded input). */
size_t qconv_vnni_scratch(const qconv_vnni_params *p);
/* y (NHWC, the output's 8-bit type) = the convolution of x (NHWC). */
void qconv_vnni_run(const qconv_vnni *c, const void *x, void *y, void *scratch, pthreadpool_t pool);

/* Whether this CPU has AVX-512 VBMI (and this build qlookup_vbmi). */
int qlookup_vbmi_available(void);
/* y[i] = table[x[i]], i < n. */
void qlookup_vbmi(const uint8_t table[256], const uint8_t *x, uint8_t *y, size_t n);

#endif
