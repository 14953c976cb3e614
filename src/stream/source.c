/*
 * source.c - a video source on its own decode thread (see source.h).
 *
 * The decode thread owns the FFmpeg objects of one connection at a time
 * (format context, decoder, swscale context); everything the other threads
 * may read (the mailbox, the counters, the state) sits under one mutex, and
 * the only thing crossing without it is the stop flag and the time of the
 * last packet, both atomics, which libavformat's interrupt callback reads
 * from inside a blocked read.
 *
 * Rate: a frame is picked when its presentation time enters a new slot of
 * 1/target_fps seconds (slot k = floor(pts * target_fps)), so a 30 frames/s
 * clip at 5 gives exactly every sixth frame whatever the decoding speed, and
 * a camera with jittery timestamps still gives about target_fps.  Frames
 * without a timestamp are counted through the stream's nominal rate.
 *
 * Each decoder runs single-threaded (thread_count 1): one decode thread per
 * source is the parallelism, and a box with four cameras on two cores gains
 * nothing from frame threads except latency.
 */
#include "stream/source.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "stream/ffmpeg_lib.h"

typedef struct source_slot {
    uint8_t *data;
    size_t capacity;
    stream_frame frame;
    int padded_w, padded_h, padded_left, padded_top; /* geometry whose padding data holds (0: none) */
} source_slot;

struct stream_source {
    const ffmpeg_lib *av; /* FFmpeg, opened at run time (ffmpeg_lib.h) */
    stream_source_options opts;
    char *url;
    char transport[8];

    pthread_t decode_thread, deliver_thread;
    int threads_started;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC: mailbox, state, backoff waits */
    atomic_int stop;
    atomic_llong last_activity_ns;
    atomic_int idle_limit_ms; /* open_timeout_ms while connecting, read_timeout_ms after */

    /* Under lock. */
    source_slot slots[3];
    int back, mailbox, front; /* slot indices: decoder's, waiting, consumer's */
    int mailbox_full;
    int decode_done, deliver_done;
    stream_stats stats;
    int64_t first_frame_ns;

    /* Decode thread only. */
    uint64_t rng;
    struct SwsContext *sws;
};

static int64_t source_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

const char *stream_state_name(stream_state state) {
    switch (state) {
    case STREAM_CONNECTING: return "connecting";
    case STREAM_RUNNING: return "running";
    case STREAM_BACKOFF: return "backoff";
    case STREAM_ENDED: return "ended";
    case STREAM_FAILED: return "failed";
    }
    return "unknown";
}

void stream_source_options_default(stream_source_options *opts) {
    memset(opts, 0, sizeof *opts);
    opts->pad_value = 114;
    opts->read_timeout_ms = 5000;
    opts->open_timeout_ms = 15000;
    opts->backoff_initial_ms = 500;
    opts->backoff_max_ms = 30000;
    opts->backoff_jitter = 0.2;
    opts->jitter_seed = 1;
    opts->max_failures = -1;
}

static void source_set_state(stream_source *src, stream_state state) {
    pthread_mutex_lock(&src->lock);
    src->stats.state = state;
    pthread_cond_broadcast(&src->cond);
    pthread_mutex_unlock(&src->lock);
}

static void source_error(stream_source *src, const char *what, int averr) {
    char msg[AV_ERROR_MAX_STRING_SIZE] = "";
    src->av->av_strerror(averr, msg, sizeof msg);
    pthread_mutex_lock(&src->lock);
    snprintf(src->stats.last_error, sizeof src->stats.last_error, "%s: %s", what, msg);
    pthread_mutex_unlock(&src->lock);
}

static void source_count(stream_source *src, uint64_t *counter) {
    pthread_mutex_lock(&src->lock);
    (*counter)++;
    pthread_mutex_unlock(&src->lock);
}

/* libavformat calls this from inside blocking reads: nonzero aborts them. */
static int source_interrupt(void *opaque) {
    stream_source *src = opaque;
    if (atomic_load(&src->stop)) return 1;
    int64_t idle = source_now_ns() - atomic_load(&src->last_activity_ns);
    return idle > (int64_t)atomic_load(&src->idle_limit_ms) * 1000000;
}

static void source_touch(stream_source *src) {
    atomic_store(&src->last_activity_ns, source_now_ns());
}

/* ------------------------------------------------------------ one frame */

/* Per-connection state of the decode loop. */
typedef struct source_connection {
    const ffmpeg_lib *av;
    AVFormatContext *format;
    AVCodecContext *codec;
    AVStream *stream;
    int64_t start_pts;
    uint64_t frames; /* decoded in this connection */
    int64_t next_slot;
    int64_t pace_base_ns; /* realtime: wall clock at pts 0 (0: not yet) */
    int got_frame;
} source_connection;

/* The frame's presentation time in microseconds from the connection's
 * first timestamp; -1 when it has none. */
static int64_t source_pts_us(source_connection *c, const AVFrame *frame) {
    int64_t ts = frame->best_effort_timestamp;
    if (ts == AV_NOPTS_VALUE) return -1;
    if (c->start_pts == AV_NOPTS_VALUE) c->start_pts = ts;
    return c->av->av_rescale_q(ts - c->start_pts, c->stream->time_base, AV_TIME_BASE_Q);
}

static int source_picks(stream_source *src, source_connection *c, int64_t pts_us) {
    if (src->opts.target_fps <= 0) return 1;
    double seconds;
    if (pts_us >= 0) {
        seconds = (double)pts_us / 1e6;
    } else {
        AVRational rate = c->stream->avg_frame_rate.num ? c->stream->avg_frame_rate : c->stream->r_frame_rate;
        if (!rate.num || !rate.den) return 1; /* no clock at all: every frame */
        seconds = (double)(c->frames - 1) * rate.den / rate.num;
    }
    int64_t slot = (int64_t)floor(seconds * src->opts.target_fps + 1e-6);
    if (slot < c->next_slot) return 0;
    c->next_slot = slot + 1;
    return 1;
}

/* realtime: holds the frame until the wall clock reaches its pts (counted
 * from the connection's first frame), as a camera would send it.  A jump of
 * more than two seconds either way (a loop, a seek, a stall upstream) starts
 * the count again rather than sleeping or racing to catch up. */
static void source_pace(stream_source *src, source_connection *c, int64_t pts_us) {
    int64_t now = source_now_ns();
    int64_t due = c->pace_base_ns + pts_us * 1000;
    if (!c->pace_base_ns || due - now > 2000000000 || now - due > 2000000000) {
        c->pace_base_ns = now - pts_us * 1000;
        return;
    }
    if (due <= now) return;
    struct timespec deadline = {.tv_sec = due / 1000000000, .tv_nsec = due % 1000000000};
    pthread_mutex_lock(&src->lock);
    while (!atomic_load(&src->stop) && pthread_cond_timedwait(&src->cond, &src->lock, &deadline) == 0) {
    }
    pthread_mutex_unlock(&src->lock);
    source_touch(src); /* waiting for the clock is not a stalled camera */
}

/* swscale wants the pixel format without the deprecated full-range J
 * variants, and the range said separately. */
static enum AVPixelFormat source_plain_format(enum AVPixelFormat f, int *full_range) {
    switch (f) {
    case AV_PIX_FMT_YUVJ420P: *full_range = 1; return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P: *full_range = 1; return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P: *full_range = 1; return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P: *full_range = 1; return AV_PIX_FMT_YUV440P;
    default: return f;
    }
}

/* Scales and converts frame into the back slot in one swscale pass. */
static int source_convert(stream_source *src, const AVFrame *frame, source_slot *slot) {
    int sw = frame->width, sh = frame->height;
    int ow = src->opts.out_width ? src->opts.out_width : sw;
    int oh = src->opts.out_height ? src->opts.out_height : sh;
    int rw = ow, rh = oh, left = 0, top = 0;
    if (src->opts.out_width) {
        /* Ultralytics' letterbox geometry: scale to fit, centre the rest. */
        double r = fmin((double)oh / sh, (double)ow / sw);
        rw = (int)lround(sw * r);
        rh = (int)lround(sh * r);
        if (rw < 1) rw = 1;
        if (rh < 1) rh = 1;
        left = (int)lround((ow - rw) / 2.0 - 0.1);
        top = (int)lround((oh - rh) / 2.0 - 0.1);
    }
    if ((int64_t)ow * oh > STREAM_MAX_PIXELS || ow <= 0 || oh <= 0) return AVERROR(ERANGE);
    size_t need = (size_t)ow * oh * 3;
    if (need > slot->capacity) {
        uint8_t *p = vigil_realloc(slot->data, need);
        if (!p) return AVERROR(ENOMEM);
        slot->data = p;
        slot->capacity = need;
        slot->padded_w = 0;
    }
    if (src->opts.out_width &&
        (slot->padded_w != ow || slot->padded_h != oh || slot->padded_left != left || slot->padded_top != top)) {
        memset(slot->data, src->opts.pad_value, need);
        slot->padded_w = ow;
        slot->padded_h = oh;
        slot->padded_left = left;
        slot->padded_top = top;
    }
    int full_range = frame->color_range == AVCOL_RANGE_JPEG;
    enum AVPixelFormat fmt = source_plain_format((enum AVPixelFormat)frame->format, &full_range);
    src->sws = src->av->sws_getCachedContext(src->sws, sw, sh, fmt, rw, rh, AV_PIX_FMT_RGB24, SWS_BILINEAR, NULL, NULL, NULL);
    if (!src->sws) return AVERROR(EINVAL);
    int *inv_table, *table, src_range, dst_range, brightness, contrast, saturation;
    if (src->av->sws_getColorspaceDetails(src->sws, &inv_table, &src_range, &table, &dst_range, &brightness, &contrast,
                                 &saturation) >= 0)
        src->av->sws_setColorspaceDetails(src->sws, inv_table, full_range, table, 1, brightness, contrast, saturation);
    uint8_t *dst[4] = {slot->data + (size_t)top * ow * 3 + (size_t)left * 3, NULL, NULL, NULL};
    int dst_stride[4] = {ow * 3, 0, 0, 0};
    src->av->sws_scale(src->sws, (const uint8_t *const *)frame->data, frame->linesize, 0, sh, dst, dst_stride);

    stream_frame *f = &slot->frame;
    f->rgb = slot->data;
    f->width = ow;
    f->height = oh;
    f->stride = ow * 3;
    f->source_width = sw;
    f->source_height = sh;
    f->scale_x = (float)rw / sw;
    f->scale_y = (float)rh / sh;
    f->pad_left = left;
    f->pad_top = top;
    return 0;
}

static void source_frame(stream_source *src, source_connection *c, const AVFrame *frame, int64_t started_ns) {
    int64_t decode_ns = source_now_ns() - started_ns;
    c->frames++;
    c->got_frame = 1;
    pthread_mutex_lock(&src->lock);
    uint64_t index = src->stats.frames_decoded++;
    if (!src->first_frame_ns) src->first_frame_ns = source_now_ns();
    src->stats.state = STREAM_RUNNING;
    pthread_mutex_unlock(&src->lock);

    int64_t pts_us = source_pts_us(c, frame);
    if (src->opts.realtime && pts_us >= 0) source_pace(src, c, pts_us);
    int64_t convert_started = source_now_ns();
    int corrupt = (frame->flags & AV_FRAME_FLAG_CORRUPT) || frame->decode_error_flags;
    int picked = !corrupt && source_picks(src, c, pts_us);
    int converted = 0;
    if (picked) {
        source_slot *slot = &src->slots[src->back]; /* the decode thread's own: no lock needed */
        int r = source_convert(src, frame, slot);
        if (r < 0) {
            source_error(src, "convert", r);
            source_count(src, &src->stats.decode_errors);
        } else {
            slot->frame.index = index;
            slot->frame.pts_us = pts_us;
            slot->frame.decoded_ns = source_now_ns();
            converted = 1;
        }
    }
    pthread_mutex_lock(&src->lock);
    src->stats.decode_ms_total += (double)(decode_ns + source_now_ns() - convert_started) / 1e6;
    if (corrupt)
        src->stats.decode_errors++;
    else if (!picked)
        src->stats.dropped_rate++;
    if (converted && src->opts.wait_for_consumer) { /* a file played for its frames, not its pace */
        while (src->mailbox_full && !atomic_load(&src->stop))
            pthread_cond_wait(&src->cond, &src->lock);
        source_touch(src); /* waiting for the consumer is no stall of the source */
    }
    if (converted) {
        if (src->mailbox_full) src->stats.dropped_busy++;
        int t = src->back;
        src->back = src->mailbox;
        src->mailbox = t;
        src->mailbox_full = 1;
        pthread_cond_broadcast(&src->cond);
    }
    pthread_mutex_unlock(&src->lock);
}

/* ------------------------------------------------------------ one connection */

typedef enum source_outcome { SOURCE_END, SOURCE_ERROR, SOURCE_STOPPED } source_outcome;

/* Sends pkt (NULL: flush) and hands every frame that comes out to
 * source_frame.  Decoder errors are counted and skipped. */
static void source_decode(stream_source *src, source_connection *c, const AVPacket *pkt, AVFrame *frame) {
    int64_t started = source_now_ns();
    int r = src->av->avcodec_send_packet(c->codec, pkt);
    if (r < 0 && r != AVERROR(EAGAIN) && r != AVERROR_EOF) {
        source_count(src, &src->stats.decode_errors);
        source_error(src, "decode", r);
        return;
    }
    for (;;) {
        r = src->av->avcodec_receive_frame(c->codec, frame);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) break;
        if (r < 0) {
            source_count(src, &src->stats.decode_errors);
            source_error(src, "decode", r);
            break;
        }
        source_frame(src, c, frame, started);
        src->av->av_frame_unref(frame);
        started = source_now_ns();
    }
}

static source_outcome source_connect_and_run(stream_source *src, source_connection *c) {
    source_outcome outcome = SOURCE_ERROR;
    AVDictionary *dict = NULL;
    AVPacket *pkt = src->av->av_packet_alloc();
    AVFrame *frame = src->av->av_frame_alloc();
    if (!pkt || !frame) goto done;
    c->format = src->av->avformat_alloc_context();
    if (!c->format) goto done;
    c->format->interrupt_callback.callback = source_interrupt;
    c->format->interrupt_callback.opaque = src;
    if (src->transport[0]) src->av->av_dict_set(&dict, "rtsp_transport", src->transport, 0);
    atomic_store(&src->idle_limit_ms, src->opts.open_timeout_ms);
    source_touch(src);
    int r = src->av->avformat_open_input(&c->format, src->url, NULL, &dict);
    if (r < 0) {
        source_error(src, "open", r);
        goto done;
    }
    source_touch(src);
    r = src->av->avformat_find_stream_info(c->format, NULL);
    if (r < 0) {
        source_error(src, "stream info", r);
        goto done;
    }
    const AVCodec *codec = NULL;
    int index = src->av->av_find_best_stream(c->format, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (index < 0 || !codec) {
        source_error(src, "no video stream", index < 0 ? index : AVERROR_DECODER_NOT_FOUND);
        goto done;
    }
    c->stream = c->format->streams[index];
    c->codec = src->av->avcodec_alloc_context3(codec);
    if (!c->codec || src->av->avcodec_parameters_to_context(c->codec, c->stream->codecpar) < 0) goto done;
    c->codec->thread_count = 1;
    /* A damaged packet is an error, not a concealed picture: detections on
     * smeared macroblocks are worse than a skipped frame. */
    c->codec->err_recognition |= AV_EF_EXPLODE;
    r = src->av->avcodec_open2(c->codec, codec, NULL);
    if (r < 0) {
        source_error(src, "decoder", r);
        goto done;
    }
    source_count(src, &src->stats.connects);
    atomic_store(&src->idle_limit_ms, src->opts.read_timeout_ms);

    for (;;) {
        source_touch(src);
        r = src->av->av_read_frame(c->format, pkt);
        if (atomic_load(&src->stop)) {
            outcome = SOURCE_STOPPED;
            break;
        }
        if (r == AVERROR_EOF) {
            source_decode(src, c, NULL, frame); /* the frames the decoder still holds */
            outcome = SOURCE_END;
            break;
        }
        if (r == AVERROR(EAGAIN)) continue;
        if (r == AVERROR_INVALIDDATA) { /* a packet the demuxer could not make sense of */
            source_count(src, &src->stats.decode_errors);
            continue;
        }
        if (r < 0) {
            source_error(src, r == AVERROR_EXIT ? "stalled" : "read", r);
            break;
        }
        if (pkt->stream_index == index) {
            source_count(src, &src->stats.packets);
            if (pkt->flags & AV_PKT_FLAG_CORRUPT) source_count(src, &src->stats.decode_errors);
            source_decode(src, c, pkt, frame);
        }
        src->av->av_packet_unref(pkt);
    }
done:
    src->av->av_dict_free(&dict);
    src->av->av_packet_free(&pkt);
    src->av->av_frame_free(&frame);
    src->av->avcodec_free_context(&c->codec);
    src->av->avformat_close_input(&c->format);
    return outcome;
}

/* ------------------------------------------------------------ threads */

/* CLOCK_MONOTONIC ms from now, for the condition variable's timed waits. */
static struct timespec source_deadline(int ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (long)(ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    return deadline;
}

static int source_default_sleep(void *user, int ms) {
    stream_source *src = user;
    struct timespec deadline = source_deadline(ms);
    pthread_mutex_lock(&src->lock);
    while (!atomic_load(&src->stop) && pthread_cond_timedwait(&src->cond, &src->lock, &deadline) == 0) {
    }
    int stopped = atomic_load(&src->stop);
    pthread_mutex_unlock(&src->lock);
    return stopped;
}

/* Delay before the next attempt after `failures` consecutive connections
 * without a frame: initial, doubling per failure, capped, minus jitter. */
static int source_backoff_ms(stream_source *src, int failures) {
    double delay = src->opts.backoff_initial_ms;
    for (int i = 1; i < failures && delay < src->opts.backoff_max_ms; i++)
        delay *= 2;
    if (delay > src->opts.backoff_max_ms) delay = src->opts.backoff_max_ms;
    src->rng ^= src->rng << 13; /* xorshift64: per source, seeded, no global state */
    src->rng ^= src->rng >> 7;
    src->rng ^= src->rng << 17;
    double u = (double)(src->rng >> 11) / (double)(1ull << 53);
    return (int)(delay * (1.0 - src->opts.backoff_jitter * u));
}

static void *source_decode_main(void *arg) {
    stream_source *src = arg;
    int failures = 0;
    stream_state final = STREAM_ENDED;
    while (!atomic_load(&src->stop)) {
        source_set_state(src, STREAM_CONNECTING);
        source_connection c = {.av = src->av, .start_pts = AV_NOPTS_VALUE};
        source_outcome outcome = source_connect_and_run(src, &c);
        if (outcome == SOURCE_STOPPED || atomic_load(&src->stop)) break;
        if (outcome == SOURCE_END && !src->opts.reconnect_on_end) break;
        failures = c.got_frame ? 0 : failures + 1;
        if (src->opts.max_failures >= 0 && failures >= src->opts.max_failures && failures > 0) {
            final = STREAM_FAILED;
            break;
        }
        int delay = source_backoff_ms(src, failures);
        pthread_mutex_lock(&src->lock);
        src->stats.state = STREAM_BACKOFF;
        src->stats.reconnects++;
        src->stats.last_backoff_ms = (uint64_t)delay;
        pthread_mutex_unlock(&src->lock);
        stream_sleep_fn sleep_fn = src->opts.sleep ? src->opts.sleep : source_default_sleep;
        if (sleep_fn(src->opts.sleep ? src->opts.sleep_user : src, delay)) break;
    }
    pthread_mutex_lock(&src->lock);
    src->stats.state = final;
    src->decode_done = 1;
    pthread_cond_broadcast(&src->cond);
    pthread_mutex_unlock(&src->lock);
    return NULL;
}

static void *source_deliver_main(void *arg) {
    stream_source *src = arg;
    pthread_mutex_lock(&src->lock);
    for (;;) {
        while (!src->mailbox_full && !src->decode_done && !atomic_load(&src->stop))
            pthread_cond_wait(&src->cond, &src->lock);
        if (atomic_load(&src->stop) || !src->mailbox_full) break;
        int t = src->front;
        src->front = src->mailbox;
        src->mailbox = t;
        src->mailbox_full = 0;
        pthread_cond_broadcast(&src->cond); /* a decode thread waiting for the consumer (wait_for_consumer) */
        const stream_frame *frame = &src->slots[src->front].frame;
        pthread_mutex_unlock(&src->lock);
        src->opts.on_frame(src->opts.user, frame);
        pthread_mutex_lock(&src->lock);
        src->stats.frames_delivered++;
    }
    int ended = !atomic_load(&src->stop) && src->decode_done;
    pthread_mutex_unlock(&src->lock);
    if (ended && src->opts.on_end) src->opts.on_end(src->opts.user);
    pthread_mutex_lock(&src->lock);
    src->deliver_done = 1;
    pthread_cond_broadcast(&src->cond);
    pthread_mutex_unlock(&src->lock);
    return NULL;
}

/* ------------------------------------------------------------ public */

vigil_status stream_source_create(stream_source **out, const stream_source_options *opts, vigil_error *err) {
    *out = NULL;
    if (!opts->url || !opts->url[0] || !opts->on_frame)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "stream: a url and a frame callback are required");
    if (opts->rtsp_transport && strcmp(opts->rtsp_transport, "tcp") != 0 && strcmp(opts->rtsp_transport, "udp") != 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "stream: rtsp transport '%s' is not tcp or udp",
                               opts->rtsp_transport);
    if (opts->target_fps < 0 || (opts->out_width > 0) != (opts->out_height > 0) || opts->out_width < 0 ||
        (int64_t)opts->out_width * opts->out_height > STREAM_MAX_PIXELS)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "stream: bad target rate or output size");
    if (opts->read_timeout_ms <= 0 || opts->open_timeout_ms <= 0 || opts->backoff_initial_ms < 0 ||
        opts->backoff_max_ms < opts->backoff_initial_ms || !(opts->backoff_jitter >= 0 && opts->backoff_jitter <= 1))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "stream: bad timeout or backoff settings");

    const ffmpeg_lib *av = ffmpeg_lib_load(err);
    if (!av) return VIGIL_ERR_UNSUPPORTED;
    stream_source *src = vigil_calloc(1, sizeof *src);
    if (!src) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "stream: out of memory");
    src->av = av;
    src->opts = *opts;
    src->url = vigil_strdup(opts->url);
    if (!src->url) {
        vigil_free(src);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "stream: out of memory");
    }
    src->opts.url = src->url;
    if (opts->rtsp_transport) snprintf(src->transport, sizeof src->transport, "%s", opts->rtsp_transport);
    src->opts.rtsp_transport = NULL;
    src->rng = opts->jitter_seed ? opts->jitter_seed : 1;
    src->back = 0;
    src->mailbox = 1;
    src->front = 2;
    atomic_init(&src->stop, 0);
    atomic_init(&src->last_activity_ns, source_now_ns());
    atomic_init(&src->idle_limit_ms, opts->open_timeout_ms);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&src->lock, NULL);
    pthread_cond_init(&src->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&src->decode_thread, NULL, source_decode_main, src) != 0) {
        stream_source_destroy(src);
        return vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "stream: cannot start the decode thread");
    }
    src->threads_started = 1;
    if (pthread_create(&src->deliver_thread, NULL, source_deliver_main, src) != 0) {
        stream_source_destroy(src);
        return vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "stream: cannot start the delivery thread");
    }
    src->threads_started = 2;
    *out = src;
    return VIGIL_OK;
}

vigil_status stream_source_wait(stream_source *src, int timeout_ms) {
    struct timespec deadline = source_deadline(timeout_ms >= 0 ? timeout_ms : 0);
    pthread_mutex_lock(&src->lock);
    int timed_out = 0;
    while (!src->deliver_done && !timed_out) {
        if (timeout_ms < 0)
            pthread_cond_wait(&src->cond, &src->lock);
        else
            timed_out = pthread_cond_timedwait(&src->cond, &src->lock, &deadline) != 0;
    }
    int done = src->deliver_done;
    pthread_mutex_unlock(&src->lock);
    return done ? VIGIL_OK : VIGIL_ERR_TIMEOUT;
}

void stream_source_destroy(stream_source *src) {
    if (!src) return;
    pthread_mutex_lock(&src->lock);
    atomic_store(&src->stop, 1);
    pthread_cond_broadcast(&src->cond);
    pthread_mutex_unlock(&src->lock);
    if (src->threads_started >= 1) pthread_join(src->decode_thread, NULL);
    if (src->threads_started >= 2) pthread_join(src->deliver_thread, NULL);
    src->av->sws_freeContext(src->sws);
    for (int i = 0; i < 3; i++)
        vigil_free(src->slots[i].data);
    pthread_cond_destroy(&src->cond);
    pthread_mutex_destroy(&src->lock);
    vigil_free(src->url);
    vigil_free(src);
}

stream_stats stream_source_get_stats(stream_source *src) {
    pthread_mutex_lock(&src->lock);
    stream_stats s = src->stats;
    int64_t first = src->first_frame_ns;
    pthread_mutex_unlock(&src->lock);
    double seconds = first ? (double)(source_now_ns() - first) / 1e9 : 0;
    if (seconds > 0) {
        s.input_fps = (double)s.frames_decoded / seconds;
        s.delivered_fps = (double)s.frames_delivered / seconds;
    }
    return s;
}
