/*
 * fuzz_image.c - libFuzzer target for the image decoders (JPEG, PNG, EXIF,
 * raw frames) and the letterbox that follows them.
 *
 * Input: any bytes.  They are decoded as an encoded image (with a small
 * pixel limit so that the fuzzer explores parsers, not big allocations and
 * with DCT scaling on for half the inputs); what decodes is letterboxed.
 * JPEGs also go through the streamed decoder (jpeg_letterbox.c), split into
 * 1 to 3 bands at their restart markers (it parses the markers itself), and
 * must give exactly what decode + letterbox gives.
 * The same bytes are also read as a raw frame whose format and size come
 * from the first bytes.  Nothing may crash, leak or read out of bounds:
 * every failure must be a status.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vigil/vision.h"
#include "vision/jpeg_letterbox.h"

#define FUZZ_MAX_PIXELS (1 << 20)

#define FUZZ_W 48
#define FUZZ_H 32
#define FUZZ_FLOATS (3 * FUZZ_W * FUZZ_H)

static vigil_status fuzz_letterbox(const vigil_image *img, float *tensor) {
    vigil_error err;
    return vigil_letterbox(img, FUZZ_W, FUZZ_H, NULL, tensor, NULL, &err);
}

static void fuzz_raw(const uint8_t *data, size_t size) {
    if (size < 4) return;
    vigil_pixel_format fmt = (vigil_pixel_format)(data[0] % 3);
    int w = 1 + data[1] % 64, h = 1 + data[2] % 64, pad = data[3] % 8;
    int stride = (fmt == VIGIL_PIXEL_NV12 ? w : 3 * w) + pad;
    vigil_image img;
    vigil_error err;
    if (vigil_image_from_raw(data + 4, size - 4, fmt, w, h, stride, FUZZ_MAX_PIXELS, &img, &err) == VIGIL_OK) {
        static float tensor[FUZZ_FLOATS];
        fuzz_letterbox(&img, tensor);
        vigil_image_free(&img);
    }
}

/* The streamed, banded JPEG path must agree with decode + letterbox on
 * every input: the same status, and when both succeed the same tensor bit
 * for bit.  A difference aborts, so the fuzzer hunts for one. */
static void fuzz_streamed(const uint8_t *data, size_t size, const vigil_decode_options *opt, vigil_status whole_st,
                          const float *whole) {
    static float tensor[FUZZ_FLOATS];
    if (!jpeg_letterbox_applies(data, size, opt)) return;
    jpeg_letterbox_dst dst = {.data = tensor, .in_w = FUZZ_W, .in_h = FUZZ_H};
    vigil_error err;
    vigil_status st = jpeg_letterbox(data, size, opt, &dst, NULL, 1 + (int)(size % 3), NULL, NULL, NULL, &err);
    if ((st == VIGIL_OK) != (whole_st == VIGIL_OK)) abort();
    if (st == VIGIL_OK && memcmp(tensor, whole, sizeof tensor) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static float whole[FUZZ_FLOATS];
    vigil_decode_options opt = {.max_pixels = FUZZ_MAX_PIXELS, .target_size = size % 2 ? 16 : 0};
    vigil_image img;
    vigil_decode_info info;
    vigil_error err;
    vigil_status st = vigil_image_decode(data, size, &opt, &img, &info, &err);
    if (st == VIGIL_OK) {
        st = fuzz_letterbox(&img, whole);
        vigil_image_free(&img);
    }
    fuzz_streamed(data, size, &opt, st, whole);
    fuzz_raw(data, size);
    return 0;
}
