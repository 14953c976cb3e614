/*
 * jpeg_letterbox.h - a JPEG decoded straight into the network input, row
 * band by row band, never held whole; split across threads at the file's
 * restart markers when it has them.
 *
 * Gives the same tensor, bit for bit, as vigil_image_decode followed by
 * vigil_letterbox (the unit tests hold it to that), with the same refusals:
 * pixel limit, truncated or corrupt data, warnings treated as errors.  It
 * does not rotate: use it only where jpeg_letterbox_applies says so.
 */
#ifndef VIGIL_VISION_JPEG_LETTERBOX_H
#define VIGIL_VISION_JPEG_LETTERBOX_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/parallel.h"
#include "vigil/vision.h"

/* 1 when bytes are a JPEG that needs no EXIF rotation under opt (NULL =
 * defaults), so jpeg_letterbox can take it. */
int jpeg_letterbox_applies(const uint8_t *bytes, size_t size, const vigil_decode_options *opt);

/* Decodes a JPEG whole into *out (RGB; caller frees), DCT-scaled as
 * opt->target_size asks, and fills info's size and scale (not the
 * orientation: image.c applies that).  The decoder jpeg_letterbox uses, so
 * the two accept and refuse the same files. */
vigil_status jpeg_decode_image(const uint8_t *bytes, size_t size, const vigil_decode_options *opt, vigil_image *out,
                               vigil_decode_info *info, vigil_error *err);

/* Where the time went: libjpeg's share and the letterbox's share of the
 * stage's wall time (when bands run in parallel, the bands' summed split of
 * their own time divides the wall time), how many bands ran and how. */
typedef struct jpeg_letterbox_stats {
    double decode_ms, letterbox_ms;
    int bands;
    int pipelined; /* 1 = one band, decoded and letterboxed on two threads side by side */
} jpeg_letterbox_stats;

/* Where the letterbox goes. */
typedef struct jpeg_letterbox_dst {
    void *data; /* in_w x in_h x 3 in pre->layout, float or with pre->u8 bytes (borrowed) */
    int in_w, in_h;
    const vigil_preprocess *pre; /* NULL = Ultralytics' convention */
    /* The geometry whose padding data already holds (NULL = none): when
     * this image's is the same, the padding is not written again. */
    const vigil_letterbox_info *padded;
} jpeg_letterbox_dst;

/* Decodes the JPEG in bytes into dst in up to `parts` bands, run by the
 * caller's pool (NULL = one after another on this thread).  opt->target_size asks for
 * DCT scaling as vigil_image_decode does.  info, lb_info and stats may be
 * NULL.  On failure dst->data is partly written. */
vigil_status jpeg_letterbox(const uint8_t *bytes, size_t size, const vigil_decode_options *opt,
                            const jpeg_letterbox_dst *dst, const vigil_parallel *pool, int parts,
                            vigil_decode_info *info, vigil_letterbox_info *lb_info, jpeg_letterbox_stats *stats,
                            vigil_error *err);

#endif
