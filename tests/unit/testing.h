/*
 * testing.h - the tiny assertion kit shared by vigil's C unit tests.
 *
 * Each test file defines static test functions and a main() that calls
 * RUN(fn) for each and returns testing_report().  A failed CHECK prints
 * file:line and the expression, marks the current test failed and carries on,
 * so one run shows every broken expectation.  Data-dependent tests call
 * testing_shared_dir() and SKIP() when ../shared is absent.
 *
 * A test that neither checks anything nor skips fails: a test that returned
 * early because its data was missing must say so with SKIP, never pass.  The
 * closing line is "N passed, N failed, N skipped" (scripts/check.sh adds the
 * lines of every binary up); a binary whose every test skipped exits with
 * TESTING_SKIPPED so that ctest reports it as skipped, not passed.
 */
#ifndef VIGIL_TESTING_H
#define VIGIL_TESTING_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int testing_failed_checks;
static int testing_tests_run;
static int testing_tests_failed;
static int testing_tests_skipped;
static int testing_current_failed;
static int testing_current_skipped;
static int testing_current_checks;

#define TESTING_SKIPPED 77 /* exit status of a binary that skipped every test (ctest's SKIP_RETURN_CODE) */

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        testing_current_checks++;                                                                                      \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                                   \
            testing_failed_checks++;                                                                                   \
            testing_current_failed = 1;                                                                                \
        }                                                                                                              \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                                             \
    do {                                                                                                               \
        testing_current_checks++;                                                                                      \
        long long testing_a_ = (long long)(a), testing_b_ = (long long)(b);                                            \
        if (testing_a_ != testing_b_) {                                                                                \
            fprintf(stderr, "%s:%d: CHECK_EQ_INT failed: %s == %s (%lld vs %lld)\n", __FILE__, __LINE__, #a, #b,       \
                    testing_a_, testing_b_);                                                                           \
            testing_failed_checks++;                                                                                   \
            testing_current_failed = 1;                                                                                \
        }                                                                                                              \
    } while (0)

#define CHECK_STR(a, b)                                                                                                \
    do {                                                                                                               \
        testing_current_checks++;                                                                                      \
        const char *testing_a_ = (a), *testing_b_ = (b);                                                               \
        if (!testing_a_ || !testing_b_ || strcmp(testing_a_, testing_b_) != 0) {                                       \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s == %s (\"%s\" vs \"%s\")\n", __FILE__, __LINE__, #a, #b,      \
                    testing_a_ ? testing_a_ : "(null)", testing_b_ ? testing_b_ : "(null)");                           \
            testing_failed_checks++;                                                                                   \
            testing_current_failed = 1;                                                                                \
        }                                                                                                              \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                                          \
    do {                                                                                                               \
        testing_current_checks++;                                                                                      \
        double testing_a_ = (double)(a), testing_b_ = (double)(b);                                                     \
        if (!(fabs(testing_a_ - testing_b_) <= (tol))) {                                                               \
            fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s ~ %s (%g vs %g, tol %g)\n", __FILE__, __LINE__, #a, #b,      \
                    testing_a_, testing_b_, (double)(tol));                                                            \
            testing_failed_checks++;                                                                                   \
            testing_current_failed = 1;                                                                                \
        }                                                                                                              \
    } while (0)

/* Marks the running test skipped (with a reason) and returns from it. */
#define SKIP(reason)                                                                                                   \
    do {                                                                                                               \
        fprintf(stderr, "  skipped: %s\n", reason);                                                                    \
        testing_current_skipped = 1;                                                                                   \
        return;                                                                                                        \
    } while (0)

#define RUN(fn)                                                                                                        \
    do {                                                                                                               \
        testing_current_failed = 0;                                                                                    \
        testing_current_skipped = 0;                                                                                   \
        testing_current_checks = 0;                                                                                    \
        fprintf(stderr, "[ RUN  ] %s\n", #fn);                                                                         \
        fn();                                                                                                          \
        testing_tests_run++;                                                                                           \
        if (!testing_current_failed && !testing_current_skipped && testing_current_checks == 0) {                      \
            fprintf(stderr, "%s: ran no check (a test whose data is missing must SKIP)\n", #fn);                       \
            testing_current_failed = 1;                                                                                \
        }                                                                                                              \
        if (testing_current_failed) testing_tests_failed++;                                                            \
        else if (testing_current_skipped) testing_tests_skipped++;                                                     \
        fprintf(stderr, "[ %s ] %s\n",                                                                                 \
                testing_current_failed    ? "FAIL"                                                                     \
                : testing_current_skipped ? "SKIP"                                                                     \
                                          : " OK ",                                                                    \
                #fn);                                                                                                  \
    } while (0)

/* Prints the closing lines and gives main's exit status: 1 when a test
 * failed, TESTING_SKIPPED when every test skipped, else 0.  A failed test
 * that also skipped counts as failed. */
static inline int testing_report(void) {
    int passed = testing_tests_run - testing_tests_failed - testing_tests_skipped;
    if (testing_failed_checks) fprintf(stderr, "%d failed checks\n", testing_failed_checks);
    fprintf(stderr, "%d passed, %d failed, %d skipped\n", passed, testing_tests_failed, testing_tests_skipped);
    if (testing_tests_failed) return 1;
    return testing_tests_run > 0 && testing_tests_skipped == testing_tests_run ? TESTING_SKIPPED : 0;
}

/* Directory of the shared test data (models, images, references), or NULL
 * when it is absent.  VIGIL_SHARED_DIR overrides the default ../shared. */
static inline const char *testing_shared_dir(void) {
    static char dir[1024];
    const char *env = getenv("VIGIL_SHARED_DIR");
    int n = snprintf(dir, sizeof dir, "%s", env ? env : "../shared");
    if (n < 0 || (size_t)n >= sizeof dir) return NULL;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    return dir;
}

/* Joins the shared directory and a relative path into buf; NULL if absent. */
static inline const char *testing_shared_path(char *buf, size_t size, const char *rel) {
    const char *dir = testing_shared_dir();
    if (!dir) return NULL;
    int n = snprintf(buf, size, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= size) return NULL;
    struct stat st;
    if (stat(buf, &st) != 0) return NULL;
    return buf;
}

/* The whole file at path (malloc'd, caller frees; *size its length), or
 * NULL when it cannot be read. */
static inline uint8_t *testing_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    *size = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    return buf;
}

/* testing_read_file of a path under the shared directory; NULL if absent. */
static inline uint8_t *testing_read_shared(const char *rel, size_t *size) {
    char path[4096];
    return testing_shared_path(path, sizeof path, rel) ? testing_read_file(path, size) : NULL;
}

/* A copy of the JPEG jpeg (size bytes) with an APP1 Exif segment saying
 * `orientation` put first, so that it is the one readers find (malloc'd,
 * *out_size bytes). */
static inline uint8_t *testing_jpeg_with_orientation(const uint8_t *jpeg, size_t size, uint8_t orientation,
                                                     size_t *out_size) {
    const uint8_t app1[] = {
        0xFF, 0xE1, 0x00, 0x22, 'E',  'x',  'i',  'f',  0,    0,                       /* marker, length 34 */
        'M',  'M',  0x00, 0x2A, 0x00, 0x00, 0x00, 0x08,                                /* big-endian TIFF */
        0x00, 0x01,                                                                    /* one entry */
        0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, orientation, 0x00, 0x00, /* orientation */
        0x00, 0x00, 0x00, 0x00,                                                        /* no next IFD */
    };
    *out_size = size + sizeof app1;
    uint8_t *with = malloc(*out_size);
    memcpy(with, jpeg, 2);
    memcpy(with + 2, app1, sizeof app1);
    memcpy(with + 2 + sizeof app1, jpeg + 2, size - 2);
    return with;
}

#endif
