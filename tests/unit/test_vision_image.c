/*
 * test_vision_image.c - image decode, raw frames, encode and drawing.
 *
 * Every bad input is generated here from small images encoded by the test
 * itself: empty, truncated, corrupt, a header claiming 30000 x 30000, a
 * configurable pixel limit, EXIF orientation, and 1x1 images.
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "testing.h"
#include "vigil/vision.h"

/* An image with the left half red and the right half blue. */
static vigil_image halves(int w, int h) {
    vigil_image img;
    vigil_error err;
    if (vigil_image_alloc(w, h, &img, &err) != VIGIL_OK) abort();
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img.data + y * img.stride + 3 * x;
            p[0] = x < w / 2 ? 220 : 20;
            p[1] = 20;
            p[2] = x < w / 2 ? 20 : 220;
        }
    return img;
}

static uint8_t *encode(const vigil_image *img, vigil_image_format fmt, size_t *size) {
    uint8_t *bytes = NULL;
    vigil_error err;
    CHECK_EQ_INT(vigil_image_encode(img, fmt, 95, &bytes, size, &err), VIGIL_OK);
    return bytes;
}

static void test_roundtrip(void) {
    vigil_image img = halves(48, 32);
    size_t size;
    uint8_t *png = encode(&img, VIGIL_IMAGE_PNG, &size);
    vigil_image back;
    vigil_error err;
    CHECK_EQ_INT(vigil_image_decode(png, size, NULL, &back, NULL, &err), VIGIL_OK);
    CHECK_EQ_INT(back.width, 48);
    CHECK_EQ_INT(back.height, 32);
    CHECK(memcmp(back.data, img.data, 48 * 32 * 3) == 0); /* PNG is lossless */
    vigil_image_free(&back);
    vigil_free(png);
    uint8_t *jpg = encode(&img, VIGIL_IMAGE_JPEG, &size);
    vigil_decode_info info;
    CHECK_EQ_INT(vigil_image_decode(jpg, size, NULL, &back, &info, &err), VIGIL_OK);
    CHECK_EQ_INT(back.width, 48);
    CHECK_EQ_INT(info.orig_height, 32);
    CHECK_EQ_INT(info.orientation, 1);
    CHECK_NEAR(back.data[(16 * back.stride) + 3 * 4], 220, 12);      /* red on the left */
    CHECK_NEAR(back.data[(16 * back.stride) + 3 * 44 + 2], 220, 12); /* blue on the right */
    vigil_image_free(&back);
    vigil_free(jpg);
    vigil_image_free(&img);
}

static void test_dct_scaling(void) {
    vigil_image img = halves(256, 128);
    size_t size;
    uint8_t *jpg = encode(&img, VIGIL_IMAGE_JPEG, &size);
    vigil_decode_options opt = {.target_size = 40};
    vigil_image back;
    vigil_decode_info info;
    vigil_error err;
    CHECK_EQ_INT(vigil_image_decode(jpg, size, &opt, &back, &info, &err), VIGIL_OK);
    CHECK_EQ_INT(back.width, 64); /* 1/4: the long side stays >= 1.5 x 40 (1/8 would not) */
    CHECK_EQ_INT(back.height, 32);
    CHECK_EQ_INT(info.orig_width, 256);
    CHECK_EQ_INT(info.scale_denom, 4);
    vigil_image_free(&back);
    opt.target_size = 100; /* 1/2 would give 128 < 150: full size */
    CHECK_EQ_INT(vigil_image_decode(jpg, size, &opt, &back, &info, &err), VIGIL_OK);
    CHECK_EQ_INT(back.width, 256);
    vigil_image_free(&back);
    vigil_free(jpg);
    vigil_image_free(&img);
}

static void test_bad_inputs(void) {
    vigil_image img = halves(64, 64), out;
    vigil_error err;
    size_t size;
    uint8_t *jpg = encode(&img, VIGIL_IMAGE_JPEG, &size);
    uint8_t *png_bytes = NULL;
    size_t png_size = 0;
    png_bytes = encode(&img, VIGIL_IMAGE_PNG, &png_size);
    /* zero bytes */
    CHECK_EQ_INT(vigil_image_decode(jpg, 0, NULL, &out, NULL, &err), VIGIL_ERR_PARSE);
    CHECK(strstr(err.message, "empty") != NULL);
    /* not an image */
    CHECK_EQ_INT(vigil_image_decode("hello world", 11, NULL, &out, NULL, &err), VIGIL_ERR_UNSUPPORTED);
    /* truncated JPEG and PNG */
    CHECK_EQ_INT(vigil_image_decode(jpg, size / 2, NULL, &out, NULL, &err), VIGIL_ERR_PARSE);
    CHECK(out.data == NULL);
    fprintf(stderr, "  truncated JPEG: %s\n", err.message);
    CHECK_EQ_INT(vigil_image_decode(jpg, size - 40, NULL, &out, NULL, &err), VIGIL_ERR_PARSE); /* inside the scan */
    fprintf(stderr, "  JPEG cut inside its scan: %s\n", err.message);
    CHECK_EQ_INT(vigil_image_decode(jpg, 40, NULL, &out, NULL, &err), VIGIL_ERR_PARSE);
    CHECK_EQ_INT(vigil_image_decode(png_bytes, png_size - 20, NULL, &out, NULL, &err), VIGIL_ERR_PARSE);
    fprintf(stderr, "  truncated PNG: %s\n", err.message);
    CHECK_EQ_INT(vigil_image_decode(png_bytes, 30, NULL, &out, NULL, &err), VIGIL_ERR_PARSE);
    /* corrupt: a PNG with a flipped byte in its image data fails its CRC */
    uint8_t *bad = malloc(png_size);
    memcpy(bad, png_bytes, png_size);
    bad[png_size - 20] ^= 0x55;
    CHECK_EQ_INT(vigil_image_decode(bad, png_size, NULL, &out, NULL, &err), VIGIL_ERR_PARSE);
    free(bad);
    /* corrupt: JPEG header garbage right after SOI */
    uint8_t junk[64] = {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x03, 0x01};
    CHECK_EQ_INT(vigil_image_decode(junk, sizeof junk, NULL, &out, NULL, &err), VIGIL_ERR_PARSE);
    /* pixel limit, configurable */
    vigil_decode_options opt = {.max_pixels = 1000};
    CHECK_EQ_INT(vigil_image_decode(jpg, size, &opt, &out, NULL, &err), VIGIL_ERR_LIMIT);
    CHECK_EQ_INT(vigil_image_decode(png_bytes, png_size, &opt, &out, NULL, &err), VIGIL_ERR_LIMIT);
    CHECK(strstr(err.message, "limit") != NULL);
    vigil_free(png_bytes);
    vigil_free(jpg);
    vigil_image_free(&img);
}

static uint32_t crc32_of(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Headers that claim 30000 x 30000 pixels are refused before any decoding. */
static void test_bomb_headers(void) {
    vigil_image img = halves(16, 16), out;
    vigil_error err;
    size_t size;
    uint8_t *jpg = encode(&img, VIGIL_IMAGE_JPEG, &size);
    int patched = 0;
    for (size_t i = 2; i + 9 < size; i++)
        if (jpg[i] == 0xFF && (jpg[i + 1] == 0xC0 || jpg[i + 1] == 0xC2)) { /* SOF: height, width at +5, +7 */
            jpg[i + 5] = 30000 >> 8, jpg[i + 6] = 30000 & 255, jpg[i + 7] = 30000 >> 8, jpg[i + 8] = 30000 & 255;
            patched = 1;
            break;
        }
    CHECK(patched);
    CHECK_EQ_INT(vigil_image_decode(jpg, size, NULL, &out, NULL, &err), VIGIL_ERR_LIMIT);
    fprintf(stderr, "  30000x30000 JPEG: %s\n", err.message);
    uint8_t *png = encode(&img, VIGIL_IMAGE_PNG, &size);
    put_be32(png + 16, 30000); /* IHDR width, height; then fix its CRC */
    put_be32(png + 20, 30000);
    put_be32(png + 29, crc32_of(png + 12, 17));
    CHECK_EQ_INT(vigil_image_decode(png, size, NULL, &out, NULL, &err), VIGIL_ERR_LIMIT);
    fprintf(stderr, "  30000x30000 PNG: %s\n", err.message);
    vigil_free(png);
    vigil_free(jpg);
    vigil_image_free(&img);
}

static void test_one_pixel(void) {
    vigil_image img, out;
    vigil_error err;
    CHECK_EQ_INT(vigil_image_alloc(1, 1, &img, &err), VIGIL_OK);
    img.data[0] = 10, img.data[1] = 200, img.data[2] = 30;
    for (int f = 0; f < 2; f++) {
        size_t size;
        uint8_t *bytes = encode(&img, (vigil_image_format)f, &size);
        CHECK_EQ_INT(vigil_image_decode(bytes, size, NULL, &out, NULL, &err), VIGIL_OK);
        CHECK_EQ_INT(out.width, 1);
        CHECK_EQ_INT(out.height, 1);
        CHECK_NEAR(out.data[1], 200, 8);
        float tensor[3 * 8 * 8];
        vigil_letterbox_info info;
        CHECK_EQ_INT(vigil_letterbox(&out, 8, 8, NULL, tensor, &info, &err), VIGIL_OK);
        CHECK_EQ_INT(info.resized_w, 8);
        CHECK_NEAR(tensor[64 + 27] * 255, out.data[1], 1e-3);
        vigil_image_free(&out);
        vigil_free(bytes);
    }
    vigil_image_free(&img);
}

/* A JPEG with an APP1 Exif segment saying orientation 6 (rotate 90 CW). */
static void test_exif_orientation(void) {
    vigil_image img = halves(32, 16), out;
    vigil_error err;
    size_t size;
    uint8_t *jpg = encode(&img, VIGIL_IMAGE_JPEG, &size);
    size_t n;
    uint8_t *with = testing_jpeg_with_orientation(jpg, size, 6, &n);
    vigil_decode_info info;
    CHECK_EQ_INT(vigil_image_decode(with, n, NULL, &out, &info, &err), VIGIL_OK);
    CHECK_EQ_INT(info.orientation, 6);
    CHECK_EQ_INT(out.width, 16);
    CHECK_EQ_INT(out.height, 32);
    CHECK_EQ_INT(info.orig_width, 16);
    /* turned clockwise: the left (red) half is now on top */
    CHECK_NEAR(out.data[4 * out.stride + 3 * 8], 220, 16);
    CHECK_NEAR(out.data[28 * out.stride + 3 * 8 + 2], 220, 16);
    vigil_image_free(&out);
    vigil_decode_options opt = {.ignore_exif = 1};
    CHECK_EQ_INT(vigil_image_decode(with, n, &opt, &out, &info, &err), VIGIL_OK);
    CHECK_EQ_INT(out.width, 32);
    vigil_image_free(&out);
    /* an Exif length past the end of the file is not followed: no rotation */
    with[4] = 0xFF;
    vigil_status st = vigil_image_decode(with, n, NULL, &out, &info, &err);
    CHECK(st != VIGIL_OK || info.orientation == 1);
    vigil_image_free(&out);
    free(with);
    vigil_free(jpg);
    vigil_image_free(&img);
}

static void test_raw_frames(void) {
    vigil_image out;
    vigil_error err;
    /* 2x2 BGR24 with 2 bytes of row padding */
    uint8_t bgr[2 * 8] = {1, 2, 3, 4, 5, 6, 0, 0, 7, 8, 9, 10, 11, 12, 0, 0};
    CHECK_EQ_INT(vigil_image_from_raw(bgr, sizeof bgr, VIGIL_PIXEL_BGR24, 2, 2, 8, 0, &out, &err), VIGIL_OK);
    CHECK_EQ_INT(out.data[0], 3);
    CHECK_EQ_INT(out.data[2], 1);
    CHECK_EQ_INT(out.data[out.stride + 3], 12);
    vigil_image_free(&out);
    CHECK_EQ_INT(vigil_image_from_raw(bgr, sizeof bgr, VIGIL_PIXEL_RGB24, 2, 2, 8, 0, &out, &err), VIGIL_OK);
    CHECK_EQ_INT(out.data[out.stride + 5], 12);
    vigil_image_free(&out);
    /* NV12 grey: Y 128, U = V = 128 -> (128 - 16) * 1.164 = 130 */
    uint8_t nv12[4 * 4 + 4 * 2];
    memset(nv12, 128, sizeof nv12);
    nv12[0] = 235; /* white in limited range */
    CHECK_EQ_INT(vigil_image_from_raw(nv12, sizeof nv12, VIGIL_PIXEL_NV12, 4, 4, 4, 0, &out, &err), VIGIL_OK);
    CHECK_EQ_INT(out.data[0], 255);
    CHECK_EQ_INT(out.data[3], 130);
    CHECK_EQ_INT(out.data[out.stride * 3 + 11], 130);
    vigil_image_free(&out);
    /* wrong sizes are errors */
    CHECK_EQ_INT(vigil_image_from_raw(nv12, sizeof nv12, VIGIL_PIXEL_NV12, 3, 4, 4, 0, &out, &err),
                 VIGIL_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(vigil_image_from_raw(nv12, 10, VIGIL_PIXEL_NV12, 4, 4, 4, 0, &out, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(vigil_image_from_raw(bgr, sizeof bgr, VIGIL_PIXEL_RGB24, 2, 2, 5, 0, &out, &err),
                 VIGIL_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(vigil_image_from_raw(bgr, sizeof bgr, VIGIL_PIXEL_RGB24, 30000, 30000, 90000, 0, &out, &err),
                 VIGIL_ERR_LIMIT);
}

static int count_non_black(const vigil_image *img, int x0, int y0, int x1, int y1) {
    int n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            const uint8_t *p = img->data + y * img->stride + 3 * x;
            n += (p[0] | p[1] | p[2]) != 0;
        }
    return n;
}

static void test_render(void) {
    vigil_image img;
    vigil_error err;
    CHECK_EQ_INT(vigil_image_alloc(200, 200, &img, &err), VIGIL_OK);
    memset(img.data, 0, 200 * 200 * 3);
    vigil_detection dets[2] = {
        {.x1 = 50, .y1 = 60, .x2 = 150, .y2 = 160, .score = .9f, .class_id = 0, .class_name = "person"},
        {.x1 = 0, .y1 = 0, .x2 = 200, .y2 = 200, .score = .5f, .class_id = 5}, /* at the border, no name */
    };
    vigil_render_detections(&img, dets, 1);
    /* box edges are drawn, the inside of the box stays untouched */
    CHECK(count_non_black(&img, 50, 100, 52, 101) == 2);
    CHECK(count_non_black(&img, 70, 80, 130, 140) == 0);
    /* the label sits above the box and holds text */
    int label = count_non_black(&img, 50, 40, 150, 60);
    CHECK(label > 100);
    vigil_render_detections(&img, dets + 1, 1);
    CHECK(count_non_black(&img, 0, 0, 200, 2) == 400);
    /* text: '!' and ' ' differ; characters outside ASCII print as '?' */
    memset(img.data, 0, 200 * 200 * 3);
    uint8_t white[3] = {255, 255, 255};
    vigil_draw_text(&img, 0, 0, 2, " ", white, NULL);
    CHECK_EQ_INT(count_non_black(&img, 0, 0, 20, 20), 0);
    vigil_draw_text(&img, 0, 0, 2, "!", white, NULL);
    CHECK_EQ_INT(count_non_black(&img, 0, 0, 20, 20), 6 * 4);         /* 6 ink pixels in '!', 2x2 each */
    vigil_draw_text(&img, 190, 190, 3, "\x80 clipped", white, white); /* off the edge: clipped */
    vigil_image_free(&img);
}

int main(void) {
    RUN(test_roundtrip);
    RUN(test_dct_scaling);
    RUN(test_bad_inputs);
    RUN(test_bomb_headers);
    RUN(test_one_pixel);
    RUN(test_exif_orientation);
    RUN(test_raw_frames);
    RUN(test_render);
    return testing_report();
}
