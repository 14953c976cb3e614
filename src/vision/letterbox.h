/*
 * letterbox.h - the letterbox in pieces, for callers that do not hold the
 * whole image: a decoder that hands over rows as it produces them
 * (jpeg_letterbox.c), possibly several decoders each producing one band.
 *
 *   letterbox_create   geometry, pixel convention and interpolation tables
 *   letterbox_run      resized rows [dy0, dy1) and the padding beside them
 *                      (above and below too for the first and last rows),
 *                      pulling source rows from a letterbox_source in
 *                      increasing order
 *
 * vigil_letterbox (vision.h) is the two over an image in memory; the
 * pieces give the same values bit for bit whichever way the rows are split.
 * A letterbox is read-only once created, so runs over disjoint row ranges may
 * go on in parallel, each with its own source.
 */
#ifndef VIGIL_VISION_LETTERBOX_H
#define VIGIL_VISION_LETTERBOX_H

#include <stdint.h>

#include "vigil/vision.h"

typedef struct letterbox letterbox;

/* Packed RGB rows of the image.  row(ctx, y, &pixels, err) points pixels
 * at row y (valid until the next call) or fails with a status; a run asks
 * for rows in non-decreasing order, each at most once. */
typedef struct letterbox_source {
    vigil_status (*row)(void *ctx, int y, const uint8_t **pixels, vigil_error *err);
    void *ctx;
} letterbox_source;

/* Plans the letterbox of a src_w x src_h image into dst (in_w x in_h x 3 in
 * pre->layout; pre NULL = Ultralytics' convention).  dst is borrowed. */
vigil_status letterbox_create(int src_w, int src_h, int in_w, int in_h, const vigil_preprocess *pre, void *dst,
                              letterbox **out, vigil_error *err);
void letterbox_destroy(letterbox *lb);
void letterbox_info(const letterbox *lb, vigil_letterbox_info *info);

/* Says dst already holds this letterbox's padding (the last image letterboxed
 * into it had the same geometry: letterbox_info equal), so runs leave it:
 * frames of one camera are all the same size. */
void letterbox_assume_padded(letterbox *lb);

/* 1 when running it only copies rows into uint8 bytes: the image is at the
 * resized size already and its channels stay in order. */
int letterbox_copies(const letterbox *lb);

/* Rows of the resized image (the ones letterbox_run produces). */
int letterbox_rows(const letterbox *lb);
/* The first resized row that reads no source row above sy (rows() when
 * none): a band of source rows from sy on can produce rows from there. */
int letterbox_first_reader(const letterbox *lb, int sy);

/* Produces resized rows [dy0, dy1) from src, and their padding.  Allocates a small row cache
 * of its own, so runs over disjoint ranges may share lb. */
vigil_status letterbox_run(const letterbox *lb, const letterbox_source *src, int dy0, int dy1, vigil_error *err);

#endif
