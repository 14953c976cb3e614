/*
 * image.c - turning bytes into RGB pixels and back.
 *
 * JPEG goes through libjpeg(-turbo), by the same decoder the streamed path
 * uses (jpeg_letterbox.c: the two must accept the same files), at full size
 * unless the caller opts in to DCT scaling (target_size; the detector's
 * jpeg_reduced_scale): that changes the pixels the reference would resize,
 * and saves less than it seems, since Huffman decoding still runs whole
 * (docs/BENCHMARKS.md measures it); PNG through libspng; encoding
 * through TurboJPEG.  Both decoders are told the pixel limit before they
 * allocate anything, and warnings (a truncated JPEG decodes to grey rows
 * otherwise) are treated as errors: a detector must not silently run on half
 * an image.  The JPEG EXIF orientation is applied after decoding, as OpenCV's
 * imread does, so boxes come back in the orientation viewers show.
 */
#include <limits.h>
#include <spng.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "core/alloc.h"
#include "vigil/vision.h"
#include "vision/exif.h"
#include "vision/image.h"
#include "vision/jpeg_letterbox.h"

static int64_t image_pixel_limit(int64_t max_pixels) {
    return max_pixels > 0 ? max_pixels : VIGIL_DEFAULT_MAX_PIXELS;
}

vigil_status image_check_size(int64_t width, int64_t height, int64_t max_pixels, vigil_error *err) {
    if (width <= 0 || height <= 0)
        return vigil_error_set(err, VIGIL_ERR_PARSE, "image has an empty size (%lld x %lld)", (long long)width,
                               (long long)height);
    if (width > INT_MAX / 4 || height > INT_MAX / 4 || width * height > image_pixel_limit(max_pixels))
        return vigil_error_set(err, VIGIL_ERR_LIMIT,
                               "image of %lld x %lld pixels exceeds limits.max_image_pixels (%lld)", (long long)width,
                               (long long)height, (long long)image_pixel_limit(max_pixels));
    return VIGIL_OK;
}

vigil_status vigil_image_alloc(int width, int height, vigil_image *out, vigil_error *err) {
    memset(out, 0, sizeof *out);
    if (width <= 0 || height <= 0 || width > INT_MAX / 3 / height)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "bad image size %d x %d", width, height);
    out->data = vigil_malloc((size_t)width * 3 * (size_t)height);
    if (!out->data)
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory for a %d x %d image", width, height);
    out->width = width;
    out->height = height;
    out->stride = width * 3;
    return VIGIL_OK;
}

void vigil_image_free(vigil_image *image) {
    if (!image) return;
    vigil_free(image->data);
    memset(image, 0, sizeof *image);
}

/* ------------------------------------------------------------------ JPEG */

/* Picks the strongest 1/2^k DCT reduction that keeps the long side at least
 * 1.5 x target: only images at least three times the network size are
 * decoded smaller (4K frames become 960 or 1920 pixels wide), so the final
 * resize still interpolates from more pixels than it produces, and photos
 * near the network size decode exactly as OpenCV would decode them. */
int image_jpeg_scale_denom(int width, int height, int target) {
    int best = 1;
    int64_t long_side = width > height ? width : height;
    for (int denom = 2; target > 0 && denom <= 8; denom *= 2)
        if (long_side * 2 >= (int64_t)target * 3 * denom) best = denom; /* long_side / denom >= 1.5 target */
    return best;
}

/* ------------------------------------------------------------------- PNG */

static vigil_status png_decode(const uint8_t *bytes, size_t size, const vigil_decode_options *opt, vigil_image *out,
                               vigil_decode_info *info, vigil_error *err) {
    spng_ctx *ctx = spng_ctx_new(0);
    if (!ctx) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "cannot create a PNG decoder");
    vigil_status st = VIGIL_OK;
    uint8_t *rgba = NULL;
    spng_set_crc_action(ctx, SPNG_CRC_ERROR, SPNG_CRC_DISCARD);
    spng_set_chunk_limits(ctx, 64u << 20, 64u << 20);
    int rc = spng_set_png_buffer(ctx, bytes, size);
    struct spng_ihdr ihdr;
    if (!rc) rc = spng_get_ihdr(ctx, &ihdr);
    if (rc) {
        st = vigil_error_set(err, VIGIL_ERR_PARSE, "corrupt PNG header: %s", spng_strerror(rc));
        goto done;
    }
    st = image_check_size(ihdr.width, ihdr.height, opt->max_pixels, err);
    if (st) goto done;
    size_t len = 0;
    rc = spng_decoded_image_size(ctx, SPNG_FMT_RGBA8, &len);
    if (!rc) {
        rgba = vigil_malloc(len);
        if (!rgba) {
            st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory decoding PNG");
            goto done;
        }
        rc = spng_decode_image(ctx, rgba, len, SPNG_FMT_RGBA8, SPNG_DECODE_TRNS);
    }
    if (rc) {
        st = vigil_error_set(err, VIGIL_ERR_PARSE, "corrupt or truncated PNG: %s", spng_strerror(rc));
        goto done;
    }
    st = vigil_image_alloc((int)ihdr.width, (int)ihdr.height, out, err);
    if (st) goto done;
    size_t pixels = (size_t)ihdr.width * ihdr.height;
    for (size_t i = 0; i < pixels; i++) { /* alpha dropped, as OpenCV's IMREAD_COLOR does */
        out->data[3 * i] = rgba[4 * i];
        out->data[3 * i + 1] = rgba[4 * i + 1];
        out->data[3 * i + 2] = rgba[4 * i + 2];
    }
    info->orig_width = (int)ihdr.width;
    info->orig_height = (int)ihdr.height;
done:
    vigil_free(rgba);
    spng_ctx_free(ctx);
    return st;
}

/* ------------------------------------------------------------ orientation */

/* Source pixel for destination (x, y) of an image oriented by EXIF tag o,
 * where w x h is the stored (pre-rotation) size. */
static void orient_source(int o, int x, int y, int w, int h, int *sx, int *sy) {
    switch (o) {
    case 2:
        *sx = w - 1 - x;
        *sy = y;
        break;
    case 3:
        *sx = w - 1 - x;
        *sy = h - 1 - y;
        break;
    case 4:
        *sx = x;
        *sy = h - 1 - y;
        break;
    case 5:
        *sx = y;
        *sy = x;
        break;
    case 6:
        *sx = y;
        *sy = h - 1 - x;
        break;
    case 7:
        *sx = w - 1 - y;
        *sy = h - 1 - x;
        break;
    case 8:
        *sx = w - 1 - y;
        *sy = x;
        break;
    default:
        *sx = x;
        *sy = y;
        break;
    }
}

static vigil_status image_apply_orientation(vigil_image *img, int o, vigil_error *err) {
    if (o < 2 || o > 8) return VIGIL_OK;
    int transpose = o >= 5;
    int nw = transpose ? img->height : img->width, nh = transpose ? img->width : img->height;
    vigil_image rot;
    vigil_status st = vigil_image_alloc(nw, nh, &rot, err);
    if (st) return st;
    for (int y = 0; y < nh; y++) {
        uint8_t *d = rot.data + (size_t)y * rot.stride;
        for (int x = 0; x < nw; x++) {
            int sx, sy;
            orient_source(o, x, y, img->width, img->height, &sx, &sy);
            memcpy(d + 3 * x, img->data + (size_t)sy * img->stride + 3 * sx, 3);
        }
    }
    vigil_image_free(img);
    *img = rot;
    return VIGIL_OK;
}

/* ---------------------------------------------------------------- decode */

vigil_status vigil_image_decode(const void *bytes, size_t size, const vigil_decode_options *options, vigil_image *out,
                                vigil_decode_info *info, vigil_error *err) {
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    vigil_decode_options defaults = {0};
    const vigil_decode_options *opt = options ? options : &defaults;
    vigil_decode_info local;
    vigil_decode_info *inf = info ? info : &local;
    memset(out, 0, sizeof *out);
    memset(inf, 0, sizeof *inf);
    inf->scale_num = inf->scale_denom = 1;
    inf->orientation = 1;
    const uint8_t *b = bytes;
    if (!b || size == 0) return vigil_error_set(err, VIGIL_ERR_PARSE, "empty image (0 bytes)");
    vigil_status st;
    if (size >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) {
        st = jpeg_decode_image(b, size, opt, out, inf, err);
        if (!st && !opt->ignore_exif) {
            inf->orientation = exif_jpeg_orientation(b, size);
            st = image_apply_orientation(out, inf->orientation, err);
            if (st) vigil_image_free(out);
        }
    } else if (size >= 8 && memcmp(b, png_magic, 8) == 0) {
        st = png_decode(b, size, opt, out, inf, err);
    } else {
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "not a JPEG or PNG image (%zu bytes)", size);
    }
    if (st) return st;
    if (inf->orientation >= 5) {
        int t = inf->orig_width;
        inf->orig_width = inf->orig_height;
        inf->orig_height = t;
    }
    return VIGIL_OK;
}

/* ------------------------------------------------------------------- raw */

static inline uint8_t clamp_u8(int v) {
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* NV12 to RGB with BT.601 limited-range integer coefficients (as OpenCV's
 * COLOR_YUV2RGB_NV12), 20-bit fixed point. */
static void nv12_to_rgb(const uint8_t *y_plane, const uint8_t *uv_plane, int stride, vigil_image *img) {
    for (int y = 0; y < img->height; y++) {
        const uint8_t *yr = y_plane + (size_t)y * stride;
        const uint8_t *uvr = uv_plane + (size_t)(y / 2) * stride;
        uint8_t *d = img->data + (size_t)y * img->stride;
        for (int x = 0; x < img->width; x++) {
            int c = (yr[x] - 16 < 0 ? 0 : yr[x] - 16) * 1220542;
            int u = uvr[x & ~1] - 128, v = uvr[(x & ~1) + 1] - 128;
            d[3 * x] = clamp_u8((c + 1673527 * v + (1 << 19)) >> 20);
            d[3 * x + 1] = clamp_u8((c - 852492 * v - 409993 * u + (1 << 19)) >> 20);
            d[3 * x + 2] = clamp_u8((c + 2116026 * u + (1 << 19)) >> 20);
        }
    }
}

vigil_status vigil_image_raw_check(const void *data, size_t size, vigil_pixel_format format, int width, int height,
                                   int stride, int64_t max_pixels, vigil_error *err) {
    vigil_status st = image_check_size(width, height, max_pixels, err);
    if (st) return st;
    if (format > VIGIL_PIXEL_NV12 || format < 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "unknown pixel format %d", (int)format);
    int row = format == VIGIL_PIXEL_NV12 ? width : width * 3;
    if (stride < row)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "stride %d is less than a row (%d bytes)", stride, row);
    if (format == VIGIL_PIXEL_NV12 && ((width | height) & 1))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "NV12 needs an even size, got %d x %d", width, height);
    size_t rows = format == VIGIL_PIXEL_NV12 ? (size_t)height * 3 / 2 : (size_t)height;
    size_t need = (rows - 1) * (size_t)stride + (size_t)row;
    if (!data || size < need)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "raw frame needs %zu bytes, got %zu", need, size);
    return VIGIL_OK;
}

vigil_status vigil_image_from_raw(const void *data, size_t size, vigil_pixel_format format, int width, int height,
                                  int stride, int64_t max_pixels, vigil_image *out, vigil_error *err) {
    memset(out, 0, sizeof *out);
    vigil_status st = vigil_image_raw_check(data, size, format, width, height, stride, max_pixels, err);
    if (st) return st;
    int row = format == VIGIL_PIXEL_NV12 ? width : width * 3;
    st = vigil_image_alloc(width, height, out, err);
    if (st) return st;
    const uint8_t *src = data;
    if (format == VIGIL_PIXEL_NV12) {
        nv12_to_rgb(src, src + (size_t)stride * height, stride, out);
        return VIGIL_OK;
    }
    for (int y = 0; y < height; y++) {
        const uint8_t *s = src + (size_t)y * stride;
        uint8_t *d = out->data + (size_t)y * out->stride;
        if (format == VIGIL_PIXEL_RGB24) {
            memcpy(d, s, (size_t)row);
            continue;
        }
        for (int x = 0; x < width; x++) {
            d[3 * x] = s[3 * x + 2];
            d[3 * x + 1] = s[3 * x + 1];
            d[3 * x + 2] = s[3 * x];
        }
    }
    return VIGIL_OK;
}

/* ---------------------------------------------------------------- encode */

static vigil_status jpeg_encode(const vigil_image *img, int quality, uint8_t **out, size_t *out_size,
                                vigil_error *err) {
    tjhandle tj = tjInitCompress();
    if (!tj) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "cannot create a JPEG encoder");
    unsigned char *buf = NULL;
    unsigned long len = 0;
    vigil_status st = VIGIL_OK;
    if (tjCompress2(tj, img->data, img->width, img->stride, img->height, TJPF_RGB, &buf, &len, TJSAMP_420, quality,
                    0) != 0) {
        st = vigil_error_set(err, VIGIL_ERR_INTERNAL, "JPEG encoding failed: %s", tjGetErrorStr2(tj));
    } else {
        *out = vigil_malloc(len);
        if (!*out)
            st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory for a %lu byte JPEG", len);
        else {
            memcpy(*out, buf, len);
            *out_size = len;
        }
    }
    tjFree(buf);
    tjDestroy(tj);
    return st;
}

static vigil_status png_encode(const vigil_image *img, uint8_t **out, size_t *out_size, vigil_error *err) {
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    if (!ctx) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "cannot create a PNG encoder");
    vigil_status st = VIGIL_OK;
    uint8_t *packed = NULL;
    const uint8_t *pixels = img->data;
    size_t len = (size_t)img->width * 3 * img->height;
    if (img->stride != img->width * 3) { /* spng wants tightly packed rows */
        packed = vigil_malloc(len);
        if (!packed) {
            st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory encoding PNG");
            goto done;
        }
        for (int y = 0; y < img->height; y++)
            memcpy(packed + (size_t)y * img->width * 3, img->data + (size_t)y * img->stride, (size_t)img->width * 3);
        pixels = packed;
    }
    struct spng_ihdr ihdr = {.width = (uint32_t)img->width,
                             .height = (uint32_t)img->height,
                             .bit_depth = 8,
                             .color_type = SPNG_COLOR_TYPE_TRUECOLOR};
    spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    int rc = spng_set_ihdr(ctx, &ihdr);
    if (!rc) rc = spng_encode_image(ctx, pixels, len, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    size_t png_len = 0;
    void *png = rc ? NULL : spng_get_png_buffer(ctx, &png_len, &rc);
    if (rc || !png) {
        st = vigil_error_set(err, VIGIL_ERR_INTERNAL, "PNG encoding failed: %s", spng_strerror(rc));
        goto done;
    }
    *out = vigil_malloc(png_len);
    if (!*out)
        st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory for a PNG");
    else {
        memcpy(*out, png, png_len);
        *out_size = png_len;
    }
    free(png); /* spng allocates with the C library's malloc */
done:
    vigil_free(packed);
    spng_ctx_free(ctx);
    return st;
}

vigil_status vigil_image_encode(const vigil_image *image, vigil_image_format format, int quality, uint8_t **out_bytes,
                                size_t *out_size, vigil_error *err) {
    *out_bytes = NULL;
    *out_size = 0;
    if (!image || !image->data || image->width <= 0 || image->height <= 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "no image to encode");
    if (format == VIGIL_IMAGE_PNG) return png_encode(image, out_bytes, out_size, err);
    if (quality <= 0) quality = 90;
    if (quality > 100) quality = 100;
    return jpeg_encode(image, quality, out_bytes, out_size, err);
}
