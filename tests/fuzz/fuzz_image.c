/*
 * fuzz_image.c - libFuzzer target for the image decoders (JPEG, PNG, EXIF,
 * raw frames) and the letterbox that follows them.
 *
 * Input: any bytes.  They are decoded as an encoded image (with a small
 * pixel limit so that the fuzzer explores parsers, not big allocations and
 * with DCT scaling on for half the inputs); what decodes is letterboxed.
 * JPEGs also go through the streamed decoder (jpeg_letterbox.c), split into
 * 1 to 3 bands at their restart markers, which parses the markers itself.
 * The same bytes are also read as a raw frame whose format and size come
 * from the first bytes.  Nothing may crash, leak or read out of bounds:
 * every failure must be a status.
 */
#include <stddef.h>
#include <stdint.h>

#include "vigil/vision.h"
#include "vision/jpeg_letterbox.h"

#define FUZZ_MAX_PIXELS (1 << 20)

static void fuzz_letterbox(const vigil_image *img) {
    static float tensor[3 * 48 * 32];
    vigil_error err;
    vigil_letterbox(img, 48, 32, NULL, tensor, NULL, &err);
}

static void fuzz_raw(const uint8_t *data, size_t size) {
    if (size < 4) return;
    vigil_pixel_format fmt = (vigil_pixel_format)(data[0] % 3);
    int w = 1 + data[1] % 64, h = 1 + data[2] % 64, pad = data[3] % 8;
    int stride = (fmt == VIGIL_PIXEL_NV12 ? w : 3 * w) + pad;
    vigil_image img;
    vigil_error err;
    if (vigil_image_from_raw(data + 4, size - 4, fmt, w, h, stride, FUZZ_MAX_PIXELS, &img, &err) == VIGIL_OK) {
        fuzz_letterbox(&img);
        vigil_image_free(&img);
    }
}

static void fuzz_streamed(const uint8_t *data, size_t size, const vigil_decode_options *opt) {
    static float tensor[3 * 48 * 32];
    if (!jpeg_letterbox_applies(data, size, opt)) return;
    jpeg_letterbox_dst dst = {.data = tensor, .in_w = 48, .in_h = 32};
    vigil_error err;
    jpeg_letterbox(data, size, opt, &dst, NULL, 1 + (int)(size % 3), NULL, NULL, NULL, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vigil_decode_options opt = {.max_pixels = FUZZ_MAX_PIXELS, .target_size = size % 2 ? 16 : 0};
    fuzz_streamed(data, size, &opt);
    vigil_image img;
    vigil_decode_info info;
    vigil_error err;
    if (vigil_image_decode(data, size, &opt, &img, &info, &err) == VIGIL_OK) {
        fuzz_letterbox(&img);
        vigil_image_free(&img);
    }
    fuzz_raw(data, size);
    return 0;
}
