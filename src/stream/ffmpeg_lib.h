/*
 * ffmpeg_lib.h - FFmpeg's libraries (libavformat, libavcodec, libswscale,
 * libavutil) opened with dlopen when the first stream starts, not linked.
 *
 * Why: the decoders pull in their codec libraries (x264, x265, libvpx,
 * libaom, dav1d, ...), about 150 MB, which the container image would have
 * to carry for every user, streams or not (issue 20's image is 37 MB).  So
 * vigil links none of it: a box that runs streams has FFmpeg installed (or
 * the image built with it, docs/DEPLOY.md), and one that does not still
 * starts and serves; only adding a stream is refused, saying which library
 * is missing.
 *
 * The entry points are declared from the very headers vigil is compiled
 * against (__typeof__ of each function), and the sonames are the headers'
 * major versions (libavformat.so.59 for FFmpeg 5.1), so the structures the
 * source reads (AVFrame, AVPacket, AVCodecParameters) are the ones the
 * loaded library writes.  The table is loaded once per process (the
 * handles stay open for its life, like libmosquitto's init) and is
 * read-only after; ffmpeg_lib_load is safe from any thread.
 */
#ifndef VIGIL_STREAM_FFMPEG_LIB_H
#define VIGIL_STREAM_FFMPEG_LIB_H

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>

#include "vigil/status.h"

#define FFMPEG_FN(name) __typeof__(&name) name

typedef struct ffmpeg_lib {
    /* libavutil */
    FFMPEG_FN(av_strerror);
    FFMPEG_FN(av_rescale_q);
    FFMPEG_FN(av_dict_set);
    FFMPEG_FN(av_dict_free);
    FFMPEG_FN(av_frame_alloc);
    FFMPEG_FN(av_frame_unref);
    FFMPEG_FN(av_frame_free);
    /* libavcodec */
    FFMPEG_FN(av_packet_alloc);
    FFMPEG_FN(av_packet_unref);
    FFMPEG_FN(av_packet_free);
    FFMPEG_FN(avcodec_alloc_context3);
    FFMPEG_FN(avcodec_parameters_to_context);
    FFMPEG_FN(avcodec_open2);
    FFMPEG_FN(avcodec_send_packet);
    FFMPEG_FN(avcodec_receive_frame);
    FFMPEG_FN(avcodec_free_context);
    /* libavformat */
    FFMPEG_FN(avformat_alloc_context);
    FFMPEG_FN(avformat_open_input);
    FFMPEG_FN(avformat_find_stream_info);
    FFMPEG_FN(av_find_best_stream);
    FFMPEG_FN(av_read_frame);
    FFMPEG_FN(avformat_close_input);
    /* libswscale */
    FFMPEG_FN(sws_getCachedContext);
    FFMPEG_FN(sws_getColorspaceDetails);
    FFMPEG_FN(sws_setColorspaceDetails);
    FFMPEG_FN(sws_scale);
    FFMPEG_FN(sws_freeContext);
} ffmpeg_lib;

/* The loaded table, or NULL with VIGIL_ERR_UNSUPPORTED naming the library
 * or symbol that is missing (the same answer on every later call). */
const ffmpeg_lib *ffmpeg_lib_load(vigil_error *err);

#endif
