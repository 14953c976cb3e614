/*
 * test_vision_letterbox.c - the letterbox against hand-computed small cases
 * and against the exact input tensor ONNX Runtime's reference run was fed
 * for bus.jpg (Ultralytics' LetterBox with cv2.resize).
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/npy.h"
#include "testing.h"
#include "vigil/vision.h"
#include "vision/letterbox_kernels.h"

static vigil_image make_image(int w, int h) {
    vigil_image img;
    vigil_error err;
    if (vigil_image_alloc(w, h, &img, &err) != VIGIL_OK) abort();
    return img;
}

/* No resize needed (r = 1): rows land unchanged, centred with pad 114. */
static void test_pad_only(void) {
    vigil_image img = make_image(4, 2);
    for (int i = 0; i < 4 * 2 * 3; i++)
        img.data[i] = (uint8_t)(10 * i);
    float dst[3 * 4 * 4];
    vigil_letterbox_info info;
    vigil_error err;
    vigil_preprocess pre = vigil_preprocess_default();
    CHECK_EQ_INT(vigil_letterbox(&img, 4, 4, &pre, dst, &info, &err), VIGIL_OK);
    /* dh = (4 - 2) / 2 = 1: top = round(0.9) = 1, bottom = round(1.1) = 1 */
    CHECK_EQ_INT(info.pad_top, 1);
    CHECK_EQ_INT(info.pad_left, 0);
    CHECK_EQ_INT(info.resized_w, 4);
    CHECK_EQ_INT(info.resized_h, 2);
    for (int c = 0; c < 3; c++)
        for (int x = 0; x < 4; x++) {
            CHECK_NEAR(dst[c * 16 + 0 * 4 + x], 114 / 255.f, 1e-7);
            CHECK_NEAR(dst[c * 16 + 3 * 4 + x], 114 / 255.f, 1e-7);
            for (int y = 0; y < 2; y++)
                CHECK_NEAR(dst[c * 16 + (y + 1) * 4 + x], img.data[(y * 4 + x) * 3 + c] / 255.f, 1e-7);
        }
    /* NHWC with red and blue swapped (BGR feeds), raw 0..255 */
    pre.layout = VIGIL_LAYOUT_NHWC;
    pre.swap_rb = 1;
    pre.scale[0] = pre.scale[1] = pre.scale[2] = 1.f;
    CHECK_EQ_INT(vigil_letterbox(&img, 4, 4, &pre, dst, &info, &err), VIGIL_OK);
    CHECK_NEAR(dst[(1 * 4 + 2) * 3 + 0], img.data[2 * 3 + 2], 0);
    CHECK_NEAR(dst[(1 * 4 + 2) * 3 + 2], img.data[2 * 3 + 0], 0);
    CHECK_NEAR(dst[0], 114, 0);
    vigil_image_free(&img);
}

/* A uint8 NHWC input (pre.u8, a Hailo HEF's) holds exactly the bytes the
 * float path's raw 0..255 NHWC values are, padding included, with and
 * without a resize and with red and blue swapped. */
static void test_u8_equals_float_nhwc(void) {
    vigil_image img = make_image(7, 5);
    for (int i = 0; i < 7 * 5 * 3; i++)
        img.data[i] = (uint8_t)((i * 37 + 11) % 256);
    for (int swap = 0; swap < 2; swap++)
        for (int size = 4; size <= 12; size += 3) { /* a reduction, the image's own width (a copy), enlargements */
            vigil_preprocess pre = vigil_preprocess_default();
            pre.layout = VIGIL_LAYOUT_NHWC;
            pre.swap_rb = swap;
            pre.scale[0] = pre.scale[1] = pre.scale[2] = 1.f;
            float f[12 * 12 * 3];
            uint8_t b[12 * 12 * 3];
            vigil_error err;
            CHECK_EQ_INT(vigil_letterbox(&img, size, size, &pre, f, NULL, &err), VIGIL_OK);
            pre.u8 = 1;
            CHECK_EQ_INT(vigil_letterbox(&img, size, size, &pre, b, NULL, &err), VIGIL_OK);
            int same = 1;
            for (int i = 0; i < size * size * 3; i++) same &= f[i] == (float)b[i];
            CHECK(same);
            pre.layout = VIGIL_LAYOUT_NCHW; /* uint8 is NHWC only */
            CHECK_EQ_INT(vigil_letterbox(&img, size, size, &pre, b, NULL, &err), VIGIL_ERR_INVALID_ARGUMENT);
        }
    vigil_image_free(&img);
}

/* An exact 2x reduction is the rounded mean of each 2x2 block, as OpenCV. */
static void test_halving(void) {
    vigil_image img = make_image(4, 4);
    for (int i = 0; i < 48; i++)
        img.data[i] = (uint8_t)((i * 37) % 256);
    float dst[3 * 2 * 2];
    vigil_error err;
    CHECK_EQ_INT(vigil_letterbox(&img, 2, 2, NULL, dst, NULL, &err), VIGIL_OK);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 2; x++) {
                int sum = 0;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++)
                        sum += img.data[((2 * y + dy) * 4 + 2 * x + dx) * 3 + c];
                CHECK_NEAR(dst[c * 4 + y * 2 + x] * 255.f, (sum + 2) >> 2, 1e-3);
            }
    vigil_image_free(&img);
}

/* Upscaling a 2x1 image to 4x2: interior columns blend 3:1 and 1:3. */
static void test_upscale_blend(void) {
    vigil_image img = make_image(2, 1);
    memset(img.data, 0, 6);
    img.data[3] = img.data[4] = img.data[5] = 200;
    float dst[3 * 2 * 4];
    vigil_letterbox_info info;
    vigil_error err;
    CHECK_EQ_INT(vigil_letterbox(&img, 4, 2, NULL, dst, &info, &err), VIGIL_OK);
    CHECK_EQ_INT(info.resized_w, 4);
    CHECK_EQ_INT(info.resized_h, 2);
    /* x = 0: edge (0); x = 1: 0.75*0 + 0.25*200 = 50; x = 2: 150; x = 3: 200 */
    float want[4] = {0, 50, 150, 200};
    for (int x = 0; x < 4; x++)
        CHECK_NEAR(dst[4 + x] * 255.f, want[x], 1e-3);
    vigil_image_free(&img);
}

static void test_bad_arguments(void) {
    float dst[12];
    vigil_error err;
    vigil_image none = {0};
    CHECK_EQ_INT(vigil_letterbox(&none, 2, 2, NULL, dst, NULL, &err), VIGIL_ERR_INVALID_ARGUMENT);
    vigil_image img = make_image(2, 2);
    CHECK_EQ_INT(vigil_letterbox(&img, 0, 2, NULL, dst, NULL, &err), VIGIL_ERR_INVALID_ARGUMENT);
    vigil_image_free(&img);
}

/* The letterbox of bus.jpg within 2/255 of the reference on >= 99.9% of values. */
static void test_bus_matches_reference(void) {
    char img_path[4096], ref_path[4096];
    if (!testing_shared_path(img_path, sizeof img_path, "images/bus.jpg") ||
        !testing_shared_path(ref_path, sizeof ref_path, "reference/yolov8n__bus__input.npy"))
        SKIP("../shared (bus.jpg and its reference input) is absent");
    size_t size = 0;
    uint8_t *bytes = testing_read_file(img_path, &size);
    CHECK(bytes != NULL);
    if (!bytes) return;
    vigil_image img;
    vigil_decode_info dinfo;
    vigil_error err;
    CHECK_EQ_INT(vigil_image_decode(bytes, size, NULL, &img, &dinfo, &err), VIGIL_OK);
    free(bytes);
    CHECK_EQ_INT(img.width, 810);
    CHECK_EQ_INT(img.height, 1080);
    npy_array ref;
    CHECK_EQ_INT(npy_read(ref_path, &ref, &err), VIGIL_OK);
    CHECK_EQ_INT(ref.count, 3 * 640 * 640);
    float *mine = malloc(sizeof(float) * 3 * 640 * 640);
    vigil_letterbox_info info;
    CHECK_EQ_INT(vigil_letterbox(&img, 640, 640, NULL, mine, &info, &err), VIGIL_OK);
    CHECK_EQ_INT(info.pad_left, 80);
    CHECK_EQ_INT(info.pad_top, 0);
    CHECK_EQ_INT(info.resized_w, 480);
    size_t close = 0, exact = 0;
    double max_diff = 0;
    const float *r = ref.data;
    for (size_t i = 0; i < ref.count; i++) {
        double d = fabs((double)mine[i] - r[i]);
        close += d <= 2.0 / 255 + 1e-6;
        exact += d <= 0.5 / 255;
        max_diff = d > max_diff ? d : max_diff;
    }
    fprintf(stderr, "  bus letterbox: %.4f%% within 2/255, %.4f%% exact, max diff %.1f/255\n",
            100.0 * close / ref.count, 100.0 * exact / ref.count, max_diff * 255);
    CHECK(close >= ref.count * 0.999);
    free(mine);
    npy_free(&ref);
    vigil_image_free(&img);
}

/* The CPU's horizontal kernel against the C reference: random rows, random
 * non-decreasing offsets (repeats and skips, as reductions and
 * enlargements make them) and random 11-bit weights, every width up to 37
 * columns so that every tail length is seen. */
static void test_hresize_kernel_matches_reference(void) {
    lb_hresize_fn best = lb_hresize_best();
    enum { SW = 64, MAXN = 37 };
    uint8_t row[SW * 3];
    int xofs[MAXN];
    short alpha[2 * MAXN], want[3][MAXN], got[3][MAXN];
    unsigned seed = 12345;
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < SW * 3; i++)
            row[i] = (uint8_t)((seed = seed * 1103515245u + 12345u) >> 16);
        int n = 1 + round % MAXN, sx = 0;
        for (int dx = 0; dx < n; dx++) {
            seed = seed * 1103515245u + 12345u;
            sx += (int)(seed >> 16) % 3;  /* 0, 1 or 2 pixels on */
            if (sx > SW - 3) sx = SW - 3; /* 8 bytes from xofs stay in the row */
            xofs[dx] = sx * 3;
            short w = (short)((seed >> 8) % 2049);
            alpha[2 * dx] = (short)(2048 - w);
            alpha[2 * dx + 1] = w;
        }
        lb_hresize_c(row, xofs, alpha, n, want[0], want[1], want[2]);
        memset(got, 0x55, sizeof got);
        best(row, xofs, alpha, n, got[0], got[1], got[2]);
        for (int c = 0; c < 3; c++)
            CHECK(memcmp(want[c], got[c], sizeof(short) * (size_t)n) == 0);
    }
}

int main(void) {
    RUN(test_hresize_kernel_matches_reference);
    RUN(test_pad_only);
    RUN(test_u8_equals_float_nhwc);
    RUN(test_halving);
    RUN(test_upscale_blend);
    RUN(test_bad_arguments);
    RUN(test_bus_matches_reference);
    return testing_report();
}
