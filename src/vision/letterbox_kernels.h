/*
 * letterbox_kernels.h - the letterbox's horizontal pass, a plain C reference
 * and per-ISA variants beside it (letterbox_x86.c), one picked at run time.
 *
 * hresize: for each output column dx, the two source pixels at byte offsets
 * xofs[dx] and xofs[dx] + 3 of a packed RGB row, weighted by alpha[2 dx] and
 * alpha[2 dx + 1] (11-bit fixed point), summed, shifted right by 4, into the
 * planar rows d0 (red), d1, d2.  Columns whose second pixel would lie past
 * the row (a one-pixel-wide image) are the caller's: variants only run over
 * columns where 8 bytes from xofs[dx] stay inside the row.
 */
#ifndef VIGIL_VISION_LETTERBOX_KERNELS_H
#define VIGIL_VISION_LETTERBOX_KERNELS_H

#include <stdint.h>

typedef void (*lb_hresize_fn)(const uint8_t *src, const int *xofs, const short *alpha, int n, short *d0, short *d1,
                              short *d2);

void lb_hresize_c(const uint8_t *src, const int *xofs, const short *alpha, int n, short *d0, short *d1, short *d2);

/* The fastest variant this CPU runs (lb_hresize_c when there is none). */
lb_hresize_fn lb_hresize_best(void);

#endif
