/*
 * image.h - what image.c's whole-image decoder shares with the streaming one
 * (jpeg_letterbox.c), so both refuse and scale the same files the same way.
 */
#ifndef VIGIL_VISION_IMAGE_H
#define VIGIL_VISION_IMAGE_H

#include <stdint.h>

#include "vigil/vision.h"

/* VIGIL_ERR_PARSE for an empty size, VIGIL_ERR_LIMIT past max_pixels (0 =
 * VIGIL_DEFAULT_MAX_PIXELS). */
vigil_status image_check_size(int64_t width, int64_t height, int64_t max_pixels, vigil_error *err);

/* The JPEG DCT scaling (1/denom) for a width x height file decoded towards
 * target pixels (0 = none): *denom is 1, 2, 4 or 8. */
int image_jpeg_scale_denom(int width, int height, int target);

#endif
