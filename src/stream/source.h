/*
 * source.h - one video source (a file, rtsp://, http(s):// MJPEG or anything
 * else FFmpeg's libavformat opens), decoded on a thread of its own and handed
 * to a consumer at a chosen rate, newest frame first.
 *
 * A source runs two threads: the decode thread reads packets, decodes every
 * one of them (inter-coded video needs it), picks the frames that the target
 * rate asks for and converts only those, with swscale, to packed RGB24 (at the
 * source's size, or scaled and letterboxed into the model's input size in the
 * same pass); the delivery thread calls the consumer's callback.  Between the
 * two is a single-slot mailbox: when the consumer is still busy with the last
 * frame, a newer frame replaces the one waiting and the replaced one is
 * counted as dropped (busy).  Nothing ever queues beyond one frame.
 *
 * Three RGB buffers rotate (being written, waiting, being consumed), so a
 * frame is converted once, straight into the buffer the callback reads, and
 * never copied.
 *
 * When the source fails to open (or takes longer than open_timeout_ms), stops
 * sending (no packet for read_timeout_ms: libavformat's interrupt callback
 * cuts the blocked read), errors, or ends
 * (when reconnect_on_end is set: a file replayed as a camera), the decode
 * thread closes it and opens it again after an exponential backoff with
 * jitter; a decoded frame resets the backoff.  A corrupt packet is skipped and
 * counted; it never ends the source.
 *
 * FFmpeg logs its own complaints (a corrupt slice, a lost RTP packet) through
 * av_log, whose level is process-wide: the daemon sets it, not this module.
 */
#ifndef VIGIL_STREAM_SOURCE_H
#define VIGIL_STREAM_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/status.h"

/* Largest output frame (width x height) a source converts into. */
#define STREAM_MAX_PIXELS (8192 * 8192)

/* One delivered frame: packed RGB24, valid only during the callback. */
typedef struct stream_frame {
    const uint8_t *rgb;
    int width, height, stride; /* stride in bytes */
    int source_width, source_height;
    /* Where the picture sits in rgb: scale (output pixels per source pixel)
     * and offset; 1 and 0 when not letterboxed. */
    float scale_x, scale_y;
    int pad_left, pad_top;
    uint64_t index;     /* decoded frames before this one, since the source started (all connections) */
    int64_t pts_us;     /* presentation time in microseconds from the stream's start, -1 when unknown */
    int64_t decoded_ns; /* CLOCK_MONOTONIC when decoding finished (end-to-end latency starts here) */
} stream_frame;

typedef void (*stream_frame_fn)(void *user, const stream_frame *frame);

/* Waits ms milliseconds between reconnect attempts; returns early (nonzero)
 * when the source is being stopped.  Tests inject one that records the
 * delays instead of sleeping. */
typedef int (*stream_sleep_fn)(void *user, int ms);

typedef struct stream_source_options {
    const char *url; /* copied */
    /* rtsp:// only: "tcp" or "udp" (NULL: FFmpeg's default, UDP then TCP). */
    const char *rtsp_transport;
    /* Frames handed on per second of the stream's own time (pts): 5 of a
     * 30 frames/s camera delivers every sixth frame.  0: every frame. */
    double target_fps;
    /* Output size: 0 x 0 = the source's size; otherwise the picture is scaled
     * keeping its aspect and centred on pad_value (Ultralytics' letterbox
     * geometry), in the same swscale pass as the colour conversion. */
    int out_width, out_height;
    uint8_t pad_value;   /* default 114 */
    int read_timeout_ms; /* no packet for this long = stalled (default 5000) */
    /* Connecting, the RTSP handshake and probing the stream (FFmpeg reads up
     * to 5 s of it to learn the codec) may take this long (default 15000). */
    int open_timeout_ms;
    int backoff_initial_ms;   /* first reconnect delay (default 500) */
    int backoff_max_ms;       /* cap (default 30000) */
    double backoff_jitter;    /* each delay is shortened by up to this fraction at random, 0..1 (default 0.2) */
    uint64_t jitter_seed;     /* seed of the per-source generator (default 1) */
    int max_failures;         /* consecutive failed connections before giving up; -1 = never (default) */
    int reconnect_on_end;     /* reopen at end of stream (default 0: a file ends the source) */
    int realtime;             /* hand frames on at their pts pace, as a camera would (files); default 0:
                                 as fast as they decode */
    int wait_for_consumer;    /* a picked frame waits for the consumer to take the one waiting instead of
                                 replacing it: nothing is dropped busy, the source goes at the consumer's
                                 pace (files read for every picked frame; default 0) */
    stream_frame_fn on_frame; /* required; called on the delivery thread */
    /* Optional: called once on the delivery thread after the last frame of
     * a source that ended or failed by itself (never when destroyed). */
    void (*on_end)(void *user);
    void *user;
    stream_sleep_fn sleep; /* NULL: a real, interruptible wait */
    void *sleep_user;
} stream_source_options;

typedef enum stream_state {
    STREAM_CONNECTING = 0,
    STREAM_RUNNING = 1,
    STREAM_BACKOFF = 2,
    STREAM_ENDED = 3,  /* end of a file, or stopped */
    STREAM_FAILED = 4, /* max_failures reached */
} stream_state;

typedef struct stream_stats {
    stream_state state;
    uint64_t packets;
    uint64_t frames_decoded;
    uint64_t frames_delivered;
    uint64_t dropped_rate;  /* not picked by the target rate */
    uint64_t dropped_busy;  /* replaced in the mailbox by a newer frame */
    uint64_t decode_errors; /* packets the demuxer or decoder rejected, frames flagged corrupt or not converted */
    uint64_t connects;      /* successful opens */
    uint64_t reconnects;    /* reconnect attempts (each after a backoff) */
    uint64_t last_backoff_ms;
    double decode_ms_total; /* decoding time of all frames (conversion of picked ones included) */
    double input_fps;       /* decoded frames per second of wall time since the first frame */
    double delivered_fps;
    char last_error[256];
} stream_stats;

typedef struct stream_source stream_source;

void stream_source_options_default(stream_source_options *opts);

/* Validates the options and starts the two threads; *out is the caller's to
 * stream_source_destroy.  Opening happens on the decode thread, so a URL that
 * does not answer is not an error here: it shows in the stats. */
vigil_status stream_source_create(stream_source **out, const stream_source_options *opts, vigil_error *err);

/* Waits until the source has ended or failed and its last frame was
 * delivered, at most timeout_ms (-1: no limit).  VIGIL_ERR_TIMEOUT when it
 * is still running. */
vigil_status stream_source_wait(stream_source *src, int timeout_ms);

/* Stops both threads (interrupting a blocked read or a backoff) and frees
 * everything.  Must not be called from the callback. */
void stream_source_destroy(stream_source *src);

stream_stats stream_source_get_stats(stream_source *src);

const char *stream_state_name(stream_state state);

#endif
