/*
 * ffmpeg_lib.c - see ffmpeg_lib.h.
 */
#include "stream/ffmpeg_lib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

enum { LIB_AVUTIL, LIB_AVCODEC, LIB_AVFORMAT, LIB_SWSCALE, LIBS };

static const char *const sonames[LIBS] = {
    "libavutil.so." STR(LIBAVUTIL_VERSION_MAJOR),
    "libavcodec.so." STR(LIBAVCODEC_VERSION_MAJOR),
    "libavformat.so." STR(LIBAVFORMAT_VERSION_MAJOR),
    "libswscale.so." STR(LIBSWSCALE_VERSION_MAJOR),
};

/* Loaded once per process: see the header. */
static struct {
    pthread_once_t once;
    ffmpeg_lib lib;
    int ok;
    char why[512];
} loaded = {.once = PTHREAD_ONCE_INIT};

typedef struct symbol {
    int lib;
    const char *name;
    size_t offset;
} symbol;

#define SYM(l, name) {l, #name, offsetof(ffmpeg_lib, name)}

static const symbol symbols[] = {
    SYM(LIB_AVUTIL, av_strerror),
    SYM(LIB_AVUTIL, av_rescale_q),
    SYM(LIB_AVUTIL, av_dict_set),
    SYM(LIB_AVUTIL, av_dict_free),
    SYM(LIB_AVUTIL, av_frame_alloc),
    SYM(LIB_AVUTIL, av_frame_unref),
    SYM(LIB_AVUTIL, av_frame_free),
    SYM(LIB_AVCODEC, av_packet_alloc),
    SYM(LIB_AVCODEC, av_packet_unref),
    SYM(LIB_AVCODEC, av_packet_free),
    SYM(LIB_AVCODEC, avcodec_alloc_context3),
    SYM(LIB_AVCODEC, avcodec_parameters_to_context),
    SYM(LIB_AVCODEC, avcodec_open2),
    SYM(LIB_AVCODEC, avcodec_send_packet),
    SYM(LIB_AVCODEC, avcodec_receive_frame),
    SYM(LIB_AVCODEC, avcodec_free_context),
    SYM(LIB_AVFORMAT, avformat_alloc_context),
    SYM(LIB_AVFORMAT, avformat_open_input),
    SYM(LIB_AVFORMAT, avformat_find_stream_info),
    SYM(LIB_AVFORMAT, av_find_best_stream),
    SYM(LIB_AVFORMAT, av_read_frame),
    SYM(LIB_AVFORMAT, avformat_close_input),
    SYM(LIB_SWSCALE, sws_getCachedContext),
    SYM(LIB_SWSCALE, sws_getColorspaceDetails),
    SYM(LIB_SWSCALE, sws_setColorspaceDetails),
    SYM(LIB_SWSCALE, sws_scale),
    SYM(LIB_SWSCALE, sws_freeContext),
};

/* Each library, then its symbols, in dependency order (libavutil first), so
 * the message names the first thing that is wrong. */
static void load_once(void) {
    for (int i = 0; i < LIBS; i++) {
        /* RTLD_GLOBAL: libavformat finds libavcodec's symbols as if linked */
        void *handle = dlopen(sonames[i], RTLD_NOW | RTLD_GLOBAL);
        if (!handle) {
            const char *e = dlerror();
            snprintf(loaded.why, sizeof loaded.why,
                     "video streams need FFmpeg's libraries (Debian packages libavformat%d, libavcodec%d, "
                     "libswscale%d, libavutil%d), and %s did not load: %s",
                     LIBAVFORMAT_VERSION_MAJOR, LIBAVCODEC_VERSION_MAJOR, LIBSWSCALE_VERSION_MAJOR,
                     LIBAVUTIL_VERSION_MAJOR, sonames[i], e ? e : "not found");
            return;
        }
        for (size_t k = 0; k < sizeof symbols / sizeof symbols[0]; k++) {
            if (symbols[k].lib != i) continue;
            void *p = dlsym(handle, symbols[k].name);
            if (!p) {
                snprintf(loaded.why, sizeof loaded.why, "%s has no %s: not the FFmpeg vigil was built against",
                         sonames[i], symbols[k].name);
                return;
            }
            memcpy((char *)&loaded.lib + symbols[k].offset, &p, sizeof p);
        }
    }
    loaded.ok = 1;
}

const ffmpeg_lib *ffmpeg_lib_load(vigil_error *err) {
    pthread_once(&loaded.once, load_once);
    if (loaded.ok) return &loaded.lib;
    vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "%s", loaded.why);
    return NULL;
}
