/*
 * float16.c - which arithmetic a float16 model gets (vigil_float16_mode).
 *
 * XNNPACK's f16 operators pay only where the CPU computes in half precision:
 * x86-64 with AVX512-FP16 (Sapphire Rapids and later) and aarch64 with
 * FEAT_FP16 (ARMv8.2-A: Cortex-A55/A76 and later boards).  On other x86-64
 * CPUs with F16C, XNNPACK still runs its f16 operators, converting to float32
 * around float32 arithmetic, which costs more than the float32 model; so AUTO
 * asks the CPU once, when an engine is created, and the answer selects the
 * path for the engine's life.  The question is put to cpuid (with XGETBV:
 * the OS must save the AVX-512 state) or to the kernel's hwcaps, not to the
 * compiler, so the binary needs no flags for it.
 */
#include <string.h>

#include "vigil/engine.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

int vigil_cpu_has_float16_arithmetic(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return 0; /* OSXSAVE */
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xe6) != 0xe6) return 0; /* XMM, YMM, opmask, ZMM state all enabled */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (d >> 23) & 1; /* AVX512_FP16 */
}
#elif defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>

int vigil_cpu_has_float16_arithmetic(void) {
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDHP) != 0; /* half-precision Advanced SIMD */
}
#else
int vigil_cpu_has_float16_arithmetic(void) {
    return 0;
}
#endif

vigil_status vigil_float16_mode_parse(const char *text, int *out) {
    static const char *const names[] = {"auto", "fp32", "xnnpack"};
    for (int i = 0; text && i < 3; i++)
        if (strcmp(text, names[i]) == 0) {
            *out = i; /* the enum's order */
            return VIGIL_OK;
        }
    return VIGIL_ERR_INVALID_ARGUMENT;
}
