/*
 * test_core_half.c - core/half.c's binary16 conversions: every half widens
 * and narrows back to itself, float rounding agrees with the engine's Cast
 * kernel on a sweep of bit patterns, and double rounding is done once (the
 * values just off a tie that rounding through float would get wrong).
 */
#include "testing.h"

#include "core/half.h"

static void test_round_trip(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = half_to_float((uint16_t)h);
        int nan = ((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff);
        if (nan)
            bad += !(f != f) || (half_from_float(f) & 0x7c00) != 0x7c00;
        else
            bad += half_from_float(f) != h || half_from_double((double)f) != h;
    }
    CHECK_EQ_INT(bad, 0);
}

/* The compiler's own _Float16 conversion (IEEE round to nearest even, as
 * GCC and Clang implement it on x86-64 and arm64) is an independent oracle. */
static void test_float_matches_compiler(void) {
#ifdef __FLT16_MAX__
    int bad = 0;
    /* every 4099th float bit pattern: normals, subnormals, ties, overflow */
    for (uint64_t b = 0; b <= 0xffffffffu; b += 4099) {
        uint32_t bits = (uint32_t)b;
        float f;
        memcpy(&f, &bits, sizeof f);
        if (f != f) continue;
        _Float16 want = (_Float16)f;
        uint16_t want_bits;
        memcpy(&want_bits, &want, sizeof want_bits);
        bad += half_from_float(f) != want_bits || half_to_float(want_bits) != (float)want;
    }
    CHECK_EQ_INT(bad, 0);
#else
    SKIP("this compiler has no _Float16");
#endif
}

static void test_known_values(void) {
    CHECK_EQ_INT(half_from_double(1.0), 0x3c00);
    CHECK_EQ_INT(half_from_double(-2.0), 0xc000);
    CHECK_EQ_INT(half_from_double(65504.0), 0x7bff);
    CHECK_EQ_INT(half_from_double(65520.0), 0x7c00);                  /* the tie above the largest half: infinity */
    CHECK_EQ_INT(half_from_double(65519.99), 0x7bff);                 /* just below it */
    CHECK_EQ_INT(half_from_double(1.0 + 1.0 / 2048), 0x3c00);         /* tie: to even */
    CHECK_EQ_INT(half_from_double(1.0 + 3.0 / 2048), 0x3c02);         /* tie: to even, upwards */
    CHECK_EQ_INT(half_from_double(1.0 + 1.0 / 2048 + 1e-12), 0x3c01); /* above the tie: float would round to it */
    CHECK_EQ_INT(half_from_float((float)(1.0 + 1.0 / 2048 + 1e-12)),
                 0x3c00);                                           /* (which is why the double path exists) */
    CHECK_EQ_INT(half_from_double(5.9604644775390625e-8), 0x0001);  /* smallest subnormal */
    CHECK_EQ_INT(half_from_double(2.98023223876953125e-8), 0x0000); /* half of it: tie to even, zero */
    CHECK_EQ_INT(half_from_double(2.99e-8), 0x0001);
    CHECK_EQ_INT(half_from_double(-0.0), 0x8000);
    CHECK_EQ_INT(half_from_double(1e300), 0x7c00);
    CHECK_EQ_INT(half_from_double(1e-300), 0x0000);
    CHECK(half_to_float(0x3555) == 0.333251953125f);
    float widened[2];
    uint16_t narrowed[2], halves[2] = {0x3c00, 0xc400};
    half_widen(halves, widened, 2);
    half_narrow(widened, narrowed, 2);
    CHECK(widened[0] == 1.f && widened[1] == -4.f);
    CHECK(narrowed[0] == 0x3c00 && narrowed[1] == 0xc400);
}

/* The array conversions (vectorised with F16C where the CPU has it) give
 * bit for bit what the scalar functions give: every half, NaNs and
 * infinities included, and a sweep of float bit patterns with NaNs among
 * them, at a length that leaves a tail after the blocks of eight. */
static void test_arrays_match_scalar(void) {
    enum { N = 65536 + 5 };
    static uint16_t halves[N], back[N];
    static float floats[N], rounded[N];
    for (uint32_t i = 0; i < N; i++) halves[i] = (uint16_t)(i * 40503u); /* every half, shuffled, then 5 more */
    half_widen(halves, floats, N);
    int bad = 0;
    for (uint32_t i = 0; i < N; i++) {
        float want = half_to_float(halves[i]);
        bad += memcmp(&floats[i], &want, sizeof want) != 0;
    }
    CHECK_EQ_INT(bad, 0);
    for (uint32_t i = 0; i < N; i++) { /* float bit patterns across the whole range */
        uint32_t bits = i * 65537u + (i >> 3) * 977u;
        memcpy(&floats[i], &bits, sizeof bits);
    }
    half_narrow(floats, back, N);
    half_round(floats, rounded, N);
    bad = 0;
    int nans = 0;
    for (uint32_t i = 0; i < N; i++) {
        uint16_t want = half_from_float(floats[i]);
        float want_f = half_to_float(want);
        nans += floats[i] != floats[i];
        bad += back[i] != want || memcmp(&rounded[i], &want_f, sizeof want_f) != 0;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(nans > 0); /* the sweep reached NaNs */
    half_round(floats, floats, N); /* in place */
    CHECK(memcmp(floats, rounded, sizeof rounded) == 0);
}

int main(void) {
    RUN(test_round_trip);
    RUN(test_float_matches_compiler);
    RUN(test_known_values);
    RUN(test_arrays_match_scalar);
    return testing_report();
}
