/*
 * test_stream_source.c - video sources (src/stream/source.c) on clips that
 * the test makes with the ffmpeg CLI: frame counts and sizes, the target-rate
 * policy, "newest frame wins" when the consumer is busy, the letterbox,
 * corrupt data counted and skipped, a vanished source reconnected with
 * exponential backoff (an injected sleep records the delays), a stalled one
 * cut by the read timeout.
 *
 * Every expectation is a count, never a duration.  Without the ffmpeg CLI
 * (or its libx264) the tests skip.
 */
#include "testing.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stream/source.h"

static char work_dir[256];

static int have_ffmpeg(void) {
    return system("ffmpeg -version >/dev/null 2>&1") == 0;
}

/* Makes work_dir/name with ffmpeg's test pattern; 0 on success. */
static int make_clip(const char *name, int frames, const char *codec_args) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=320x240:rate=30 -frames:v %d %s %s/%s", frames,
             codec_args, work_dir, name);
    return system(cmd);
}

static const char *clip_path(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", work_dir, name);
    return buf;
}

/* What a run saw. */
typedef struct seen {
    atomic_int frames;
    int width, height, stride, source_width;
    uint64_t last_index;
    int indexes_increase;
    int pad_ok, picture_ok;       /* letterbox checks on the first frame */
    _Atomic(stream_source *) src; /* for the busy consumer */
    int block_first;              /* hold the first frame until decoding ended */
    int slow_ms;                  /* each frame takes this long */
    atomic_int ends;              /* on_end calls */
} seen;

static void on_end(void *user) {
    seen *s = user;
    atomic_fetch_add(&s->ends, 1);
}

static void on_frame(void *user, const stream_frame *f) {
    seen *s = user;
    int n = atomic_fetch_add(&s->frames, 1);
    if (n == 0) {
        s->indexes_increase = 1;
        s->width = f->width;
        s->height = f->height;
        s->stride = f->stride;
        s->source_width = f->source_width;
        if (f->pad_top > 0) {
            /* Rows above and below the picture are all pad; a row inside is not. */
            int pad = 1, picture = 0;
            for (int x = 0; x < f->width * 3; x++) {
                pad &= f->rgb[x] == 114 && f->rgb[(size_t)(f->height - 1) * f->stride + x] == 114;
                picture |= f->rgb[(size_t)(f->height / 2) * f->stride + x] != 114;
            }
            s->pad_ok = pad;
            s->picture_ok = picture;
        }
    } else if (f->index <= s->last_index) {
        s->indexes_increase = 0;
    }
    s->last_index = f->index;
    if (s->slow_ms) nanosleep(&(struct timespec){0, (long)s->slow_ms * 1000000}, NULL);
    if (n == 0 && s->block_first) {
        for (int i = 0; i < 20000; i++) { /* at most 20 s: the decoder of a 30-frame clip ends long before */
            stream_source *src = atomic_load(&s->src);
            if (src) {
                stream_state st = stream_source_get_stats(src).state;
                if (st == STREAM_ENDED || st == STREAM_FAILED) break;
            }
            nanosleep(&(struct timespec){0, 1000000}, NULL);
        }
    }
}

/* Records backoff delays instead of sleeping; deletes a file at the first. */
typedef struct sleeps {
    int delays[16];
    int n;
    const char *remove_at_first;
} sleeps;

static int record_sleep(void *user, int ms) {
    sleeps *s = user;
    if (s->n == 0 && s->remove_at_first) unlink(s->remove_at_first);
    if (s->n < 16) s->delays[s->n++] = ms;
    return 0;
}

/* A source that backs off from 10 ms, doubling, with no jitter, and gives
 * up after max_failures; its delays are recorded in z instead of slept. */
static void backoff_options(stream_source_options *o, const char *url, int max_failures, sleeps *z) {
    stream_source_options_default(o);
    o->url = url;
    o->backoff_initial_ms = 10;
    o->backoff_max_ms = 1000;
    o->backoff_jitter = 0;
    o->max_failures = max_failures;
    o->sleep = record_sleep;
    o->sleep_user = z;
}

static stream_stats run_source(stream_source_options *o, seen *s) {
    o->on_frame = on_frame;
    o->user = s;
    stream_source *src = NULL;
    vigil_error err;
    stream_stats stats = {0};
    CHECK_EQ_INT(stream_source_create(&src, o, &err), VIGIL_OK);
    if (!src) return stats;
    atomic_store(&s->src, src);
    CHECK_EQ_INT(stream_source_wait(src, 60000), VIGIL_OK);
    stats = stream_source_get_stats(src);
    stream_source_destroy(src);
    return stats;
}

static void test_h264_every_frame(void) {
    char path[512];
    stream_source_options o;
    stream_source_options_default(&o);
    o.url = clip_path(path, sizeof path, "clip.mp4");
    seen s = {0};
    stream_stats st = run_source(&o, &s);
    CHECK_EQ_INT(st.state, STREAM_ENDED);
    CHECK_EQ_INT(st.connects, 1);
    CHECK_EQ_INT(st.frames_decoded, 60);
    CHECK_EQ_INT(st.dropped_rate, 0);
    CHECK_EQ_INT(st.decode_errors, 0);
    CHECK_EQ_INT(st.frames_delivered + st.dropped_busy, 60);
    CHECK_EQ_INT(atomic_load(&s.frames), st.frames_delivered);
    CHECK_EQ_INT(s.last_index, 59); /* the newest frame always gets through */
    CHECK(s.indexes_increase);
    CHECK_EQ_INT(s.width, 320);
    CHECK_EQ_INT(s.height, 240);
    CHECK_EQ_INT(s.stride, 960);
    CHECK(st.decode_ms_total > 0);
}

/* 60 frames at 30/s with a target of 5/s: every sixth frame, 10 in all. */
static void test_target_rate(void) {
    char path[512];
    stream_source_options o;
    stream_source_options_default(&o);
    o.url = clip_path(path, sizeof path, "clip.mp4");
    o.target_fps = 5;
    seen s = {0};
    stream_stats st = run_source(&o, &s);
    CHECK_EQ_INT(st.frames_decoded, 60);
    CHECK_EQ_INT(st.dropped_rate, 50);
    CHECK_EQ_INT(st.frames_delivered + st.dropped_busy, 10);
    CHECK_EQ_INT(s.last_index, 54);
}

/* A consumer stuck on the first frame until decoding ended gets exactly two
 * frames: the first and the newest; the rest were replaced in the mailbox. */
static void test_busy_consumer_newest_wins(void) {
    char path[512];
    stream_source_options o;
    stream_source_options_default(&o);
    o.url = clip_path(path, sizeof path, "clip.avi");
    seen s = {0};
    s.block_first = 1;
    stream_stats st = run_source(&o, &s);
    CHECK_EQ_INT(st.frames_decoded, 30);
    CHECK_EQ_INT(st.frames_delivered, 2);
    CHECK_EQ_INT(st.dropped_busy, 28);
    CHECK_EQ_INT(s.last_index, 29);
}

/* A consumer slower than decoding, with wait_for_consumer: the source waits
 * for it, so every frame is delivered and none dropped busy; the end is
 * reported once, after the last frame. */
static void test_wait_for_consumer_drops_nothing(void) {
    char path[512];
    stream_source_options o;
    stream_source_options_default(&o);
    o.url = clip_path(path, sizeof path, "clip.avi");
    o.wait_for_consumer = 1;
    o.on_end = on_end;
    seen s = {0};
    s.slow_ms = 5;
    stream_stats st = run_source(&o, &s);
    CHECK_EQ_INT(st.frames_decoded, 30);
    CHECK_EQ_INT(st.frames_delivered, 30);
    CHECK_EQ_INT(st.dropped_busy, 0);
    CHECK_EQ_INT(atomic_load(&s.ends), 1);
    CHECK_EQ_INT(s.last_index, 29);
}

/* 320x240 into 640x640: scale 2, the picture in rows 80..559. */
static void test_letterbox_output(void) {
    char path[512];
    stream_source_options o;
    stream_source_options_default(&o);
    o.url = clip_path(path, sizeof path, "clip.avi");
    o.out_width = 640;
    o.out_height = 640;
    o.target_fps = 1;
    seen s = {0};
    stream_stats st = run_source(&o, &s);
    CHECK_EQ_INT(st.frames_delivered + st.dropped_busy, 1);
    CHECK_EQ_INT(s.width, 640);
    CHECK_EQ_INT(s.height, 640);
    CHECK_EQ_INT(s.source_width, 320);
    CHECK(s.pad_ok);
    CHECK(s.picture_ok);
}

/* realtime: a file at its own pace (one second of frames here) keeps the
 * counts of the fast path; a source stopped while it waits for the clock
 * stops (destroy returns). */
static void test_realtime_file(void) {
    char path[512];
    stream_source_options o;
    stream_source_options_default(&o);
    o.url = clip_path(path, sizeof path, "clip.avi");
    o.realtime = 1;
    o.target_fps = 5;
    seen s = {0};
    stream_stats st = run_source(&o, &s);
    CHECK_EQ_INT(st.state, STREAM_ENDED);
    CHECK_EQ_INT(st.frames_decoded, 30);
    CHECK_EQ_INT(st.dropped_rate, 25);
    CHECK_EQ_INT(st.frames_delivered + st.dropped_busy, 5);
    CHECK_EQ_INT(s.last_index, 24);

    seen u = {0};
    o.user = &u;
    stream_source *src = NULL;
    vigil_error err;
    CHECK_EQ_INT(stream_source_create(&src, &o, &err), VIGIL_OK);
    for (int i = 0; src && i < 20000 && atomic_load(&u.frames) < 1; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    CHECK_EQ_INT(atomic_load(&u.frames), 1);
    stream_source_destroy(src); /* returns: the wait for the clock is interrupted */
    CHECK(atomic_load(&u.frames) <= 5);
}

/* Overwrites 600 bytes at 30%, 50% and 70% of a copy of name. */
static int corrupt_copy(const char *name, const char *out_name) {
    char in_path[512], out_path[512];
    FILE *in = fopen(clip_path(in_path, sizeof in_path, name), "rb");
    if (!in) return -1;
    static unsigned char data[4 << 20];
    size_t len = fread(data, 1, sizeof data, in);
    fclose(in);
    for (int k = 3; k <= 7; k += 2) {
        size_t at = len * (size_t)k / 10;
        for (size_t i = 0; i < 600 && at + i < len; i++)
            data[at + i] = (unsigned char)(i * 37 + 11);
    }
    FILE *out = fopen(clip_path(out_path, sizeof out_path, out_name), "wb");
    if (!out) return -1;
    size_t wrote = fwrite(data, 1, len, out);
    fclose(out);
    return wrote == len ? 0 : -1;
}

static void test_corrupt_data_counted(void) {
    const char *clips[][2] = {{"clip.avi", "bad.avi"}, {"clip.mp4", "bad.mp4"}};
    for (int c = 0; c < 2; c++) {
        CHECK_EQ_INT(corrupt_copy(clips[c][0], clips[c][1]), 0);
        char path[512];
        stream_source_options o;
        stream_source_options_default(&o);
        o.url = clip_path(path, sizeof path, clips[c][1]);
        seen s = {0};
        stream_stats st = run_source(&o, &s);
        fprintf(stderr, "%s: decoded %llu, delivered %llu, errors %llu\n", clips[c][1],
                (unsigned long long)st.frames_decoded, (unsigned long long)st.frames_delivered,
                (unsigned long long)st.decode_errors);
        CHECK_EQ_INT(st.state, STREAM_ENDED);
        CHECK(st.decode_errors > 0);
        CHECK(st.frames_delivered > 0);
        CHECK(atomic_load(&s.frames) > 0);
    }
}

/* A path that is not there: three reconnects after 10, 20 and 30 ms (the
 * cap), then failed at the fourth consecutive failure. */
static void test_missing_source_backoff(void) {
    char path[512];
    stream_source_options o;
    sleeps z = {0};
    backoff_options(&o, clip_path(path, sizeof path, "absent.mp4"), 4, &z);
    o.backoff_max_ms = 30;
    seen s = {0};
    stream_stats st = run_source(&o, &s);
    CHECK_EQ_INT(st.state, STREAM_FAILED);
    CHECK_EQ_INT(st.connects, 0);
    CHECK_EQ_INT(st.reconnects, 3);
    CHECK_EQ_INT(z.n, 3);
    CHECK_EQ_INT(z.delays[0], 10);
    CHECK_EQ_INT(z.delays[1], 20);
    CHECK_EQ_INT(z.delays[2], 30); /* capped */
    CHECK(strstr(st.last_error, "open") != NULL);

    /* Jitter shortens each delay by at most its fraction. */
    o.backoff_jitter = 0.5;
    o.backoff_max_ms = 1000;
    o.max_failures = 6;
    o.jitter_seed = 42;
    sleeps j = {0};
    o.sleep_user = &j;
    seen s2 = {0};
    run_source(&o, &s2);
    CHECK_EQ_INT(j.n, 5);
    for (int i = 0, full = 10; i < j.n; i++, full *= 2)
        CHECK(j.delays[i] <= full && j.delays[i] >= full / 2);
}

/* A file replayed as a camera disappears after its first pass: the end is
 * reconnected at once (it had frames), then the failures back off. */
static void test_source_disappears(void) {
    char path[512];
    CHECK_EQ_INT(make_clip("gone.avi", 10, "-c:v mjpeg"), 0);
    stream_source_options o;
    sleeps z = {0};
    backoff_options(&o, clip_path(path, sizeof path, "gone.avi"), 3, &z);
    o.reconnect_on_end = 1;
    z.remove_at_first = path;
    seen s = {0};
    stream_stats st = run_source(&o, &s);
    CHECK_EQ_INT(st.state, STREAM_FAILED);
    CHECK_EQ_INT(st.frames_decoded, 10);
    CHECK_EQ_INT(st.connects, 1);
    CHECK_EQ_INT(st.reconnects, 3);
    CHECK_EQ_INT(z.delays[0], 10);
    CHECK_EQ_INT(z.delays[1], 10);
    CHECK_EQ_INT(z.delays[2], 20);
}

/* A one-connection HTTP MJPEG camera on loopback: answers the first request
 * with multipart/x-mixed-replace parts (a file the ffmpeg CLI wrote with its
 * mpjpeg muxer), then either hangs up or, when hold is set, keeps the
 * connection open without sending (a stalled camera) until released. */
typedef struct mjpeg_server {
    int listen_fd, port, hold;
    char path[512];
    atomic_int release;
    pthread_t thread;
} mjpeg_server;

static void *mjpeg_serve(void *arg) {
    mjpeg_server *m = arg;
    int fd = accept(m->listen_fd, NULL, NULL);
    if (fd < 0) return NULL;
    char req[2048];
    size_t got = 0;
    while (got < sizeof req - 1) { /* read the request up to its blank line */
        ssize_t r = read(fd, req + got, sizeof req - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
        req[got] = 0;
        if (strstr(req, "\r\n\r\n")) break;
    }
    const char *head = "HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=ffmpeg\r\n\r\n";
    int ok = write(fd, head, strlen(head)) == (ssize_t)strlen(head);
    FILE *f = fopen(m->path, "rb");
    char buf[16384];
    size_t n;
    while (ok && f && (n = fread(buf, 1, sizeof buf, f)) > 0)
        ok = write(fd, buf, n) == (ssize_t)n;
    if (f) fclose(f);
    while (m->hold && !atomic_load(&m->release))
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    close(fd);
    return NULL;
}

/* Starts serving parts.mjpeg and writes the camera's URL. */
static int mjpeg_server_start(mjpeg_server *m, int hold, char *url, size_t url_size) {
    m->hold = hold;
    clip_path(m->path, sizeof m->path, "parts.mjpeg");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    m->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (m->listen_fd < 0 || bind(m->listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(m->listen_fd, 4) != 0 || getsockname(m->listen_fd, (struct sockaddr *)&addr, &len) != 0)
        return -1;
    m->port = ntohs(addr.sin_port);
    snprintf(url, url_size, "http://127.0.0.1:%d/video", m->port);
    return pthread_create(&m->thread, NULL, mjpeg_serve, m);
}

static void mjpeg_server_stop(mjpeg_server *m) {
    atomic_store(&m->release, 1);
    shutdown(m->listen_fd, SHUT_RDWR); /* wakes an accept that never got its client */
    pthread_join(m->thread, NULL);
    close(m->listen_fd);
}

/* http:// MJPEG: every part is a frame. */
static void test_http_mjpeg(void) {
    CHECK_EQ_INT(make_clip("parts.mjpeg", 12, "-c:v mjpeg -f mpjpeg"), 0);
    mjpeg_server m = {0};
    char url[64];
    CHECK_EQ_INT(mjpeg_server_start(&m, 0, url, sizeof url), 0);
    stream_source_options o;
    stream_source_options_default(&o);
    o.url = url;
    o.read_timeout_ms = 300;
    o.open_timeout_ms = 300;
    o.max_failures = 1;
    seen s = {0};
    stream_stats st = run_source(&o, &s);
    mjpeg_server_stop(&m);
    /* A camera hanging up is an error to reconnect from, not an end; this
     * one answers once, so the second try (never answered) fails. */
    CHECK_EQ_INT(st.state, STREAM_FAILED);
    CHECK_EQ_INT(st.connects, 1);
    CHECK_EQ_INT(st.reconnects, 1);
    CHECK_EQ_INT(st.decode_errors, 0);
    CHECK_EQ_INT(st.frames_decoded, 12);
    CHECK_EQ_INT(st.frames_delivered + st.dropped_busy, 12);
    CHECK_EQ_INT(s.width, 320);
}

/* A camera that sends 12 frames and then goes quiet with the connection
 * open: the read timeout cuts it, the source reconnects at once (the
 * connection had frames), and the second try, never answered, fails. */
static void test_http_mjpeg_stall_reconnects(void) {
    mjpeg_server m = {0};
    char url[64];
    CHECK_EQ_INT(mjpeg_server_start(&m, 1, url, sizeof url), 0);
    stream_source_options o;
    sleeps z = {0};
    backoff_options(&o, url, 1, &z);
    o.read_timeout_ms = 300;
    o.open_timeout_ms = 300;
    seen s = {0};
    stream_stats st = run_source(&o, &s);
    mjpeg_server_stop(&m);
    CHECK_EQ_INT(st.state, STREAM_FAILED);
    CHECK_EQ_INT(st.frames_decoded, 12);
    CHECK_EQ_INT(st.connects, 1);
    CHECK_EQ_INT(st.reconnects, 1);
    CHECK_EQ_INT(z.delays[0], 10);
}

/* tests/harness/rtsp_server.py serving clip.mp4 on a loopback port; pid 0
 * when GStreamer's RTSP server is not there. */
typedef struct rtsp_server {
    pid_t pid;
    int to_child;
    int port;
} rtsp_server;

static void rtsp_server_start(rtsp_server *r, const char *clip) {
    int in[2], out[2];
    memset(r, 0, sizeof *r);
    if (pipe(in) != 0) return;
    if (pipe(out) != 0) {
        close(in[0]);
        close(in[1]);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execl("/usr/bin/python3", "python3", VIGIL_SOURCE_DIR "/tests/harness/rtsp_server.py", clip, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    char line[64] = "";
    size_t got = 0;
    while (pid > 0 && got < sizeof line - 1) { /* "ready PORT\n", or EOF when it could not start */
        ssize_t n = read(out[0], line + got, 1);
        if (n <= 0 || line[got] == '\n') break;
        got++;
    }
    close(out[0]);
    r->pid = pid;
    r->to_child = in[1];
    if (sscanf(line, "ready %d", &r->port) != 1) r->port = 0;
}

static void rtsp_server_stop(rtsp_server *r) {
    if (r->pid <= 0) return;
    close(r->to_child); /* the server quits when its standard input closes */
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
}

/* RTSP over TCP plays the whole clip and ends; over UDP (loopback may still
 * lose a datagram) frames arrive until the test has seen ten. */
static void test_rtsp_tcp_and_udp(void) {
    char clip[512];
    rtsp_server r;
    rtsp_server_start(&r, clip_path(clip, sizeof clip, "clip.mp4"));
    if (!r.port) {
        rtsp_server_stop(&r);
        SKIP("GStreamer's RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) did not start");
    }
    char url[80];
    snprintf(url, sizeof url, "rtsp://127.0.0.1:%d/clip", r.port);
    stream_source_options o;
    stream_source_options_default(&o);
    o.url = url;
    o.rtsp_transport = "tcp";
    seen s = {0};
    stream_stats st = run_source(&o, &s);
    CHECK_EQ_INT(st.state, STREAM_ENDED);
    CHECK_EQ_INT(st.connects, 1);
    CHECK_EQ_INT(st.frames_decoded, 60);
    CHECK_EQ_INT(s.width, 320);

    o.rtsp_transport = "udp";
    seen u = {0};
    o.user = &u;
    stream_source *src = NULL;
    vigil_error err;
    CHECK_EQ_INT(stream_source_create(&src, &o, &err), VIGIL_OK);
    for (int i = 0; src && i < 20000 && atomic_load(&u.frames) < 10; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    CHECK(atomic_load(&u.frames) >= 10);
    CHECK_EQ_INT(u.height, 240);
    stream_source_destroy(src); /* stops a running source: interrupts its read */
    rtsp_server_stop(&r);
}

/* A peer that accepts the connection and never sends: the open timeout
 * interrupts the blocked open, which counts as a failure. */
static void test_stalled_source_times_out(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    CHECK(fd >= 0);
    CHECK_EQ_INT(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    CHECK_EQ_INT(listen(fd, 4), 0); /* the kernel completes connects; nobody ever writes */
    CHECK_EQ_INT(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ntohs(addr.sin_port));
    stream_source_options o;
    sleeps z = {0};
    backoff_options(&o, url, 2, &z);
    o.open_timeout_ms = 200;
    seen s = {0};
    stream_stats st = run_source(&o, &s);
    CHECK_EQ_INT(st.state, STREAM_FAILED);
    CHECK_EQ_INT(st.reconnects, 1);
    CHECK_EQ_INT(st.frames_decoded, 0);
    close(fd);
}

static void test_bad_options(void) {
    stream_source_options o;
    stream_source *src = NULL;
    vigil_error err;
    stream_source_options_default(&o);
    CHECK_EQ_INT(stream_source_create(&src, &o, &err), VIGIL_ERR_INVALID_ARGUMENT); /* no url */
    o.url = "rtsp://127.0.0.1:1/x";
    o.on_frame = on_frame;
    o.rtsp_transport = "sctp";
    CHECK_EQ_INT(stream_source_create(&src, &o, &err), VIGIL_ERR_INVALID_ARGUMENT);
    o.rtsp_transport = "tcp";
    o.out_width = 640; /* without a height */
    CHECK_EQ_INT(stream_source_create(&src, &o, &err), VIGIL_ERR_INVALID_ARGUMENT);
    o.out_width = 0;
    o.backoff_max_ms = 1;
    CHECK_EQ_INT(stream_source_create(&src, &o, &err), VIGIL_ERR_INVALID_ARGUMENT);
    CHECK(src == NULL);
    CHECK_STR(stream_state_name(STREAM_BACKOFF), "backoff");
}

/* Makes the clips every other test reads; they skip when it could not. */
static int clips_ready;
static void test_make_clips(void) {
    if (!have_ffmpeg()) SKIP("the ffmpeg CLI is not installed (scripts/deps/debian.txt)");
    snprintf(work_dir, sizeof work_dir, "/tmp/vigil-stream-XXXXXX");
    CHECK(mkdtemp(work_dir) != NULL);
    if (make_clip("clip.mp4", 60, "-c:v libx264 -g 10 -pix_fmt yuv420p") != 0 ||
        make_clip("clip.avi", 30, "-c:v mjpeg -q:v 5") != 0)
        SKIP("ffmpeg could not make the H.264 and MJPEG clips");
    clips_ready = 1;
}

#define RUN_WITH_CLIPS(fn)                                                                                             \
    do {                                                                                                               \
        if (clips_ready) RUN(fn);                                                                                      \
    } while (0)

int main(void) {
    RUN(test_bad_options);
    RUN(test_make_clips);
    RUN_WITH_CLIPS(test_h264_every_frame);
    RUN_WITH_CLIPS(test_target_rate);
    RUN_WITH_CLIPS(test_busy_consumer_newest_wins);
    RUN_WITH_CLIPS(test_wait_for_consumer_drops_nothing);
    RUN_WITH_CLIPS(test_letterbox_output);
    RUN_WITH_CLIPS(test_realtime_file);
    RUN_WITH_CLIPS(test_corrupt_data_counted);
    RUN_WITH_CLIPS(test_missing_source_backoff);
    RUN_WITH_CLIPS(test_source_disappears);
    RUN_WITH_CLIPS(test_http_mjpeg);
    RUN_WITH_CLIPS(test_http_mjpeg_stall_reconnects);
    RUN_WITH_CLIPS(test_rtsp_tcp_and_udp);
    RUN(test_stalled_source_times_out);
    if (work_dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", work_dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", work_dir);
    }
    return testing_report();
}
