/*
 * jpeg_letterbox.c - JPEG rows handed straight to the letterbox, in bands
 * that run in parallel where the file allows.
 *
 * Why: decoding a photo whole and then letterboxing it writes and re-reads
 * an image of megabytes (and on a VM every fresh page of it costs a fault),
 * while every core but one idles through the only serial stage of a
 * detection.  Here libjpeg hands over JL_STRIP_ROWS rows at a time and the
 * letterbox filters them while they are still in cache.
 *
 * Bands: Huffman decoding is serial within a scan, but a restart marker
 * (RSTn) resets the decoder, so the data after one decodes on its own.  Many
 * cameras and phones write one every MCU row (bus.jpg does).  A band after
 * the first starts at a marker that falls at the start of an iMCU row k: its
 * decoder reads the file's headers with the frame height patched to the rows
 * left, then the scan from that marker on, markers renumbered from RST0 as a
 * fresh scan expects.  Its first iMCU row serves only as context for chroma
 * upsampling (which looks at the row above); its output is used from the
 * next iMCU row, where it equals a whole-file decode bit for bit.  The band
 * before decodes that far (and one row more, for the vertical interpolation).
 * Files without markers, progressive or arithmetic-coded, run as one band,
 * whose decoder and letterbox still run side by side on two threads when
 * the caller's pool has them (jl_pipe_run).
 *
 * libjpeg reports errors by longjmp: every call into it goes through
 * jl_guard, whose setjmp turns that into a status; warnings (a truncated
 * file decodes to grey rows otherwise) are errors too, but for one that
 * changes no pixel (jl_emit_message).  jpeg_decode_image is the whole-image
 * decoder on the same machinery, which vigil_image_decode uses, so both
 * paths accept and refuse the same files.
 */
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "vision/exif.h"
#include "vision/image.h"
#include "vision/jpeg_letterbox.h"
#include "vision/letterbox.h"

#define JL_MAX_PARTS 16
#define JL_STRIP_ROWS 8 /* rows libjpeg decodes per refill */

int jpeg_letterbox_applies(const uint8_t *bytes, size_t size, const vigil_decode_options *opt) {
    if (!bytes || size < 3 || bytes[0] != 0xFF || bytes[1] != 0xD8 || bytes[2] != 0xFF) return 0;
    return (opt && opt->ignore_exif) || exif_jpeg_orientation(bytes, size) == 1;
}

/* ------------------------------------------------------------- layout */

/* What splitting needs to know of the file.  Anything unexpected leaves it
 * unsplittable, for libjpeg to judge in one band. */
typedef struct jl_layout {
    int width, height; /* the frame */
    int mcu_h, mcus_per_row, mcu_rows;
    int restart_interval; /* MCUs between markers */
    size_t sof_height_at; /* offset of the frame header's height */
    size_t scan_at;       /* first byte of entropy-coded data */
    size_t *markers;      /* offset of each RSTn in the scan, in order */
    size_t n_markers;
} jl_layout;

/* The geometry comes from libjpeg's own reading of the headers (c has
 * started decoding); only two byte offsets are read here: the frame
 * header's height and the start of the scan.  Returns 1 for what bands can
 * split: Huffman-coded sequential 8-bit samples, one scan holding every
 * component, and a restart interval. */
static int jl_read_layout(jl_layout *l, const struct jpeg_decompress_struct *c, const uint8_t *b, size_t size) {
    if (c->progressive_mode || c->arith_code || c->data_precision != 8 || c->restart_interval == 0 ||
        c->comps_in_scan != c->num_components)
        return 0;
    l->width = (int)c->image_width;
    l->height = (int)c->image_height;
    l->restart_interval = (int)c->restart_interval;
    l->mcus_per_row = (int)c->MCUs_per_row;
    l->mcu_rows = (int)c->MCU_rows_in_scan;
    l->mcu_h = c->comps_in_scan == 1 ? DCTSIZE : DCTSIZE * c->max_v_samp_factor; /* one component: not interleaved */
    size_t pos = 2;
    jpeg_segment seg;
    while (jpeg_next_segment(b, size, &pos, &seg)) {
        if (seg.marker == 0xC0 || seg.marker == 0xC1) l->sof_height_at = seg.at + 5;
        if (seg.marker == 0xDA) {
            l->scan_at = pos;
            break;
        }
    }
    return l->sof_height_at && l->scan_at;
}

/* Finds the restart markers of the scan, which must count up RST0..RST7 in
 * turn.  Returns 1 when they do, 0 when not (or out of memory). */
static int jl_read_markers(jl_layout *l, const uint8_t *b, size_t size) {
    size_t cap = (size_t)l->mcus_per_row * (size_t)l->mcu_rows / (size_t)l->restart_interval + 1;
    l->markers = vigil_malloc(cap * sizeof *l->markers);
    if (!l->markers) return 0;
    size_t i = l->scan_at;
    while (i + 1 < size) {
        const uint8_t *ff = memchr(b + i, 0xFF, size - 1 - i);
        if (!ff) break;
        i = (size_t)(ff - b);
        int m = b[i + 1];
        if (m == 0x00 || m == 0xFF) { /* stuffed byte, fill byte */
            i += m == 0x00 ? 2 : 1;
            continue;
        }
        if (m < 0xD0 || m > 0xD7) break; /* the scan ends */
        if (l->n_markers == cap || m != 0xD0 + (int)(l->n_markers & 7)) return 0;
        l->markers[l->n_markers++] = i;
        i += 2;
    }
    return 1;
}

/* The restart segment that begins iMCU row k, or 0 when none does. */
static size_t jl_segment_at_row(const jl_layout *l, int k) {
    if (k < 1) return 0;
    size_t mcus = (size_t)k * (size_t)l->mcus_per_row;
    if (mcus % (size_t)l->restart_interval) return 0;
    size_t j = mcus / (size_t)l->restart_interval;
    return j <= l->n_markers ? j : 0;
}

/* ------------------------------------------------------------- stream */

typedef struct jl_error_mgr {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} jl_error_mgr;

/* One band's decoder.  cinfo comes first: libjpeg's callbacks get its
 * address and cast it back. */
typedef struct jl_stream {
    struct jpeg_decompress_struct cinfo;
    jl_error_mgr jerr;
    int created;
    /* a band after the first reads header, then scan from a marker on */
    struct jpeg_source_mgr source;
    const uint8_t *bytes;
    size_t size;
    const jl_layout *layout;
    uint8_t *header; /* the file's headers, frame height patched */
    size_t header_len;
    int header_given;
    size_t pos;          /* next byte of the file to hand over */
    size_t next_marker;  /* index into layout->markers */
    size_t first_marker; /* the marker that now reads as RST0 */
    uint8_t marker[2];
    vigil_image *image;   /* jpeg_decode_image: every row goes here */
    struct jl_pipe *pipe; /* jl_pipe_run: rows go to its ring */
    /* rows [base, base + count) of the image sit in strip */
    uint8_t *strip;
    int stride;
    int base, count;
    double decode_ms;
} jl_stream;

static void jl_error_exit(j_common_ptr cinfo) {
    jl_error_mgr *e = (jl_error_mgr *)cinfo->err;
    e->mgr.format_message(cinfo, e->message);
    longjmp(e->jump, 1);
}

/* Warnings are errors (corrupt data: a cut file decodes to grey rows
 * otherwise), but for bytes found between the end of a segment's data and
 * the next marker: they change no pixel, and libjpeg reports them summed at
 * the next marker it reads itself, which a band that stops before EOI never
 * reaches, so counting them would make the banded and the whole decode
 * disagree (fuzz_image compares the two). */
static void jl_emit_message(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code != JWRN_EXTRANEOUS_DATA) jl_error_exit(cinfo);
}

static void jl_source_init(j_decompress_ptr cinfo) {
    (void)cinfo;
}

static void jl_source_term(j_decompress_ptr cinfo) {
    (void)cinfo;
}

/* Hands libjpeg the next piece: the patched headers, then the scan up to the
 * next marker, then that marker renumbered, and so on. */
static boolean jl_source_fill(j_decompress_ptr cinfo) {
    jl_stream *s = (jl_stream *)cinfo;
    const jl_layout *l = s->layout;
    const uint8_t *p;
    size_t n;
    if (!s->header_given) {
        p = s->header, n = s->header_len;
        s->header_given = 1;
    } else if (s->pos >= s->size) {
        static const uint8_t eoi[2] = {0xFF, JPEG_EOI};
        WARNMS(cinfo, JWRN_JPEG_EOF); /* an error here: the file is cut short */
        p = eoi, n = sizeof eoi;
    } else if (s->next_marker < l->n_markers && s->pos == l->markers[s->next_marker]) {
        s->marker[0] = 0xFF;
        s->marker[1] = (uint8_t)(JPEG_RST0 + ((s->next_marker - s->first_marker) & 7));
        p = s->marker, n = 2;
        s->pos += 2;
        s->next_marker++;
    } else {
        size_t end = s->next_marker < l->n_markers ? l->markers[s->next_marker] : s->size;
        p = s->bytes + s->pos, n = end - s->pos;
        s->pos = end;
    }
    cinfo->src->next_input_byte = p;
    cinfo->src->bytes_in_buffer = n;
    return TRUE;
}

static void jl_source_skip(j_decompress_ptr cinfo, long count) {
    while (count > 0) {
        if ((size_t)count <= cinfo->src->bytes_in_buffer) {
            cinfo->src->next_input_byte += count;
            cinfo->src->bytes_in_buffer -= (size_t)count;
            return;
        }
        count -= (long)cinfo->src->bytes_in_buffer;
        jl_source_fill(cinfo);
    }
}

/* Runs fn(s) with libjpeg's errors caught; a caught error is a parse
 * failure naming libjpeg's message. */
static vigil_status jl_guard(jl_stream *s, void (*fn)(jl_stream *), vigil_error *err) {
    if (setjmp(s->jerr.jump))
        return vigil_error_set(err, VIGIL_ERR_PARSE, "corrupt or truncated JPEG: %s", s->jerr.message);
    fn(s);
    return VIGIL_OK;
}

static void jl_do_create(jl_stream *s) {
    jpeg_create_decompress(&s->cinfo);
    s->created = 1;
}

static void jl_do_read_header(jl_stream *s) {
    jpeg_read_header(&s->cinfo, TRUE);
}

static void jl_do_start(jl_stream *s) {
    jpeg_start_decompress(&s->cinfo);
}

/* Decodes the next strip of rows. */
static void jl_do_refill(jl_stream *s) {
    s->base += s->count;
    s->count = 0;
    JSAMPROW rows[JL_STRIP_ROWS];
    while (s->count < JL_STRIP_ROWS && s->cinfo.output_scanline < s->cinfo.output_height) {
        for (int i = s->count; i < JL_STRIP_ROWS; i++)
            rows[i - s->count] = s->strip + (size_t)i * (size_t)s->stride;
        s->count += (int)jpeg_read_scanlines(&s->cinfo, rows, (JDIMENSION)(JL_STRIP_ROWS - s->count));
    }
}

/* Decodes what no band asked for and reads on to the end of the file, as a
 * whole-file decode does, so that damage there is still refused. */
static void jl_do_finish(jl_stream *s) {
    while (s->cinfo.output_scanline < s->cinfo.output_height)
        jl_do_refill(s);
    jpeg_finish_decompress(&s->cinfo);
}

/* Decodes every row into s->image and reads to the end of the file. */
static void jl_do_read_image(jl_stream *s) {
    while (s->cinfo.output_scanline < s->cinfo.output_height) {
        JSAMPROW row = s->image->data + (size_t)s->cinfo.output_scanline * (size_t)s->image->stride;
        jpeg_read_scanlines(&s->cinfo, &row, 1);
    }
    jpeg_finish_decompress(&s->cinfo);
}

static void jl_stream_close(jl_stream *s) {
    if (!s) return;
    if (s->created) jpeg_destroy_decompress(&s->cinfo);
    vigil_free(s->header);
    vigil_free(s->strip);
    vigil_free(s);
}

/* Opens a decoder on the whole file (mcu_row 0) or on the scan from the
 * marker that starts iMCU row mcu_row, reads the headers and checks the
 * pixel limit.  Decoding starts with jl_stream_start. */
static vigil_status jl_stream_open(const uint8_t *bytes, size_t size, const jl_layout *l, int mcu_row,
                                   int64_t max_pixels, jl_stream **out, vigil_error *err) {
    *out = NULL;
    jl_stream *s = vigil_calloc(1, sizeof *s);
    if (!s) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory for a JPEG decoder");
    s->cinfo.err = jpeg_std_error(&s->jerr.mgr);
    s->jerr.mgr.error_exit = jl_error_exit;
    s->jerr.mgr.emit_message = jl_emit_message;
    vigil_status st = jl_guard(s, jl_do_create, err);
    if (st) goto fail;
    if (size > ULONG_MAX) {
        st = vigil_error_set(err, VIGIL_ERR_LIMIT, "JPEG too large");
        goto fail;
    }
    if (mcu_row == 0) {
        jpeg_mem_src(&s->cinfo, bytes, (unsigned long)size);
    } else {
        size_t first = jl_segment_at_row(l, mcu_row);
        s->header = vigil_malloc(l->scan_at);
        if (!s->header) {
            st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory for a JPEG decoder");
            goto fail;
        }
        memcpy(s->header, bytes, l->scan_at);
        int rows = l->height - mcu_row * l->mcu_h;
        s->header[l->sof_height_at] = (uint8_t)(rows >> 8);
        s->header[l->sof_height_at + 1] = (uint8_t)rows;
        s->header_len = l->scan_at;
        s->bytes = bytes, s->size = size, s->layout = l;
        s->pos = l->markers[first - 1] + 2;
        s->next_marker = s->first_marker = first;
        s->source = (struct jpeg_source_mgr){.init_source = jl_source_init,
                                             .fill_input_buffer = jl_source_fill,
                                             .skip_input_data = jl_source_skip,
                                             .resync_to_restart = jpeg_resync_to_restart,
                                             .term_source = jl_source_term};
        s->cinfo.src = &s->source;
    }
    st = jl_guard(s, jl_do_read_header, err);
    if (st) goto fail;
    st = image_check_size(s->cinfo.image_width, s->cinfo.image_height, max_pixels, err);
    if (st) goto fail;
    *out = s;
    return VIGIL_OK;
fail:
    jl_stream_close(s);
    return st;
}

/* Starts decoding at 1/denom scale; the stream's row 0 is row first_row of
 * the whole image. */
static vigil_status jl_stream_start(jl_stream *s, int denom, int first_row, vigil_error *err) {
    s->cinfo.out_color_space = JCS_RGB;
    s->cinfo.scale_num = 1;
    s->cinfo.scale_denom = (unsigned)denom;
    vigil_status st = jl_guard(s, jl_do_start, err);
    if (st) return st;
    s->stride = (int)s->cinfo.output_width * 3;
    s->base = first_row;
    return VIGIL_OK;
}

/* The strip a band decodes into (the whole-image decode and the pipeline
 * write straight to their own rows and never ask for it). */
static vigil_status jl_stream_strip(jl_stream *s, vigil_error *err) {
    if (!s->strip) s->strip = vigil_malloc((size_t)s->stride * JL_STRIP_ROWS);
    return s->strip ? VIGIL_OK : vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory for JPEG rows");
}

/* letterbox_source: row y of the whole image, decoding forward to it. */
static vigil_status jl_stream_row(void *ctx, int y, const uint8_t **pixels, vigil_error *err) {
    jl_stream *s = ctx;
    vigil_status st = jl_stream_strip(s, err);
    if (st) return st;
    while (y >= s->base + s->count) {
        double t0 = clock_now_ms();
        st = jl_guard(s, jl_do_refill, err);
        s->decode_ms += clock_now_ms() - t0;
        if (st) return st;
        if (s->count == 0) return vigil_error_set(err, VIGIL_ERR_PARSE, "truncated JPEG: no row %d", y);
    }
    if (y < s->base) return vigil_error_set(err, VIGIL_ERR_INTERNAL, "JPEG row %d asked for after row %d", y, s->base);
    *pixels = s->strip + (size_t)(y - s->base) * (size_t)s->stride;
    return VIGIL_OK;
}

/* ------------------------------------------------------- whole image */

vigil_status jpeg_decode_image(const uint8_t *bytes, size_t size, const vigil_decode_options *opt, vigil_image *out,
                               vigil_decode_info *info, vigil_error *err) {
    memset(out, 0, sizeof *out);
    jl_stream *s;
    vigil_status st = jl_stream_open(bytes, size, NULL, 0, opt->max_pixels, &s, err);
    if (st) return st;
    int width = (int)s->cinfo.image_width, height = (int)s->cinfo.image_height;
    int denom = image_jpeg_scale_denom(width, height, opt->target_size);
    st = jl_stream_start(s, denom, 0, err);
    if (!st) st = vigil_image_alloc((int)s->cinfo.output_width, (int)s->cinfo.output_height, out, err);
    if (!st) {
        s->image = out;
        st = jl_guard(s, jl_do_read_image, err);
    }
    jl_stream_close(s);
    if (st) {
        vigil_image_free(out);
        return st;
    }
    info->orig_width = width;
    info->orig_height = height;
    info->scale_num = 1;
    info->scale_denom = denom;
    return VIGIL_OK;
}

/* -------------------------------------------------------------- bands */

typedef struct jl_band {
    int mcu_row;       /* first iMCU row it decodes */
    int dy0, dy1;      /* resized rows it produces */
    jl_stream *stream; /* band 0's is opened before the bands run */
    vigil_status status;
    vigil_error err;
    double decode_ms, total_ms;
} jl_band;

typedef struct jl_job {
    const uint8_t *bytes;
    size_t size;
    const jl_layout *layout;
    const letterbox *lb;
    int64_t max_pixels;
    int denom, out_rows_per_mcu_row;
    int n_bands;
    jl_band bands[JL_MAX_PARTS];
} jl_job;

/* Band b: open (bands after the first), letterbox its rows, then read to
 * the end (the last band) or stop. */
static void jl_band_run(void *ctx, size_t b) {
    jl_job *job = ctx;
    jl_band *band = &job->bands[b];
    double t0 = clock_now_ms();
    vigil_status st = VIGIL_OK;
    double open_ms = 0;
    if (!band->stream) { /* reading the headers and starting libjpeg count as decoding */
        st = jl_stream_open(job->bytes, job->size, job->layout, band->mcu_row, job->max_pixels, &band->stream,
                            &band->err);
        if (!st) st = jl_stream_start(band->stream, job->denom, band->mcu_row * job->out_rows_per_mcu_row, &band->err);
        open_ms = clock_now_ms() - t0;
    }
    if (!st) {
        letterbox_source src = {.row = jl_stream_row, .ctx = band->stream};
        st = letterbox_run(job->lb, &src, band->dy0, band->dy1, &band->err);
    }
    if (!st && b + 1 == (size_t)job->n_bands) {
        double t1 = clock_now_ms();
        st = jl_stream_strip(band->stream, &band->err);
        if (!st) st = jl_guard(band->stream, jl_do_finish, &band->err);
        band->stream->decode_ms += clock_now_ms() - t1;
    }
    band->status = st;
    band->decode_ms = open_ms + (band->stream ? band->stream->decode_ms : 0);
    jl_stream_close(band->stream);
    band->stream = NULL;
    band->total_ms = clock_now_ms() - t0;
}

/* ----------------------------------------------- one band, two threads */

/* A file that cannot be split (no restart markers, progressive) still
 * leaves a second thread idle: the letterbox of the rows already decoded
 * can run beside the decoding of the next ones.  The decoder (producer)
 * writes rows into a ring of JL_RING_ROWS; the letterbox (consumer) reads
 * them in order.  needed says which rows the consumer may still ask for
 * (it asks in increasing order and filters each row before asking for the
 * next), so the producer may reuse a slot once its row is below needed.
 * Each side only waits for the other, so both must run at once: only used
 * when the caller's pool has at least two threads, which gives each of the
 * two tasks its own thread (vigil/parallel.h). */
#define JL_RING_ROWS 64
#define JL_PIPE_DONE (INT_MAX / 2) /* needed once the letterbox is done: every row is free */

typedef struct jl_pipe {
    jl_stream *stream;
    const letterbox *lb;
    uint8_t *ring;
    int stride;
    /* each on its own cache line: one side writes it, the other reads it */
    _Alignas(64) atomic_int produced; /* rows [0, produced) are in the ring */
    _Alignas(64) atomic_int needed;   /* the consumer may still read rows >= needed */
    _Alignas(64) atomic_int failed;   /* a side gave up: the other stops waiting */
    int seen_produced, seen_needed;   /* each side's last look at the other's counter */
    vigil_status status[2];
    vigil_error err[2];
    double busy_ms[2]; /* decoding, letterboxing: time not spent waiting */
    double wait_ms;    /* the letterbox's waits for rows */
} jl_pipe;

/* Waits until *value >= target or the other side failed; returns the value
 * seen, or -1 when the other side failed. */
static int jl_pipe_wait(jl_pipe *p, atomic_int *value, int target) {
    int v;
    for (unsigned spins = 0; (v = atomic_load_explicit(value, memory_order_acquire)) < target; spins++) {
        if (atomic_load_explicit(&p->failed, memory_order_acquire)) return -1;
        if (spins > 256) sched_yield();
    }
    return v;
}

/* Producer, inside jl_guard: every row into the ring, up to JL_STRIP_ROWS
 * at a time (not past the ring's end, nor onto a row still needed), then on
 * to EOI. */
static void jl_do_produce(jl_stream *s) {
    jl_pipe *p = s->pipe;
    int rows = (int)s->cinfo.output_height;
    while ((int)s->cinfo.output_scanline < rows) {
        int r = (int)s->cinfo.output_scanline;
        if (r >= p->seen_needed + JL_RING_ROWS) {
            p->seen_needed = jl_pipe_wait(p, &p->needed, r - JL_RING_ROWS + 1);
            if (p->seen_needed < 0) return;
        }
        int n = p->seen_needed + JL_RING_ROWS - r, to_end = JL_RING_ROWS - r % JL_RING_ROWS;
        n = n < to_end ? n : to_end;
        n = n < JL_STRIP_ROWS ? n : JL_STRIP_ROWS;
        JSAMPROW slots[JL_STRIP_ROWS];
        for (int i = 0; i < n; i++)
            slots[i] = p->ring + (size_t)((r + i) % JL_RING_ROWS) * (size_t)p->stride;
        double t0 = clock_now_ms();
        int got = (int)jpeg_read_scanlines(&s->cinfo, slots, (JDIMENSION)n);
        p->busy_ms[0] += clock_now_ms() - t0;
        atomic_store_explicit(&p->produced, r + got, memory_order_release);
    }
    double t0 = clock_now_ms();
    jpeg_finish_decompress(&s->cinfo);
    p->busy_ms[0] += clock_now_ms() - t0;
}

/* letterbox_source for the consumer: row y once the producer has it. */
static vigil_status jl_pipe_row(void *ctx, int y, const uint8_t **pixels, vigil_error *err) {
    jl_pipe *p = ctx;
    atomic_store_explicit(&p->needed, y, memory_order_release);
    if (p->seen_produced <= y) {
        double t0 = clock_now_ms();
        p->seen_produced = jl_pipe_wait(p, &p->produced, y + 1);
        p->wait_ms += clock_now_ms() - t0;
        if (p->seen_produced < 0)
            return vigil_error_set(err, VIGIL_ERR_PARSE, "JPEG decoding stopped before row %d", y);
    }
    *pixels = p->ring + (size_t)(y % JL_RING_ROWS) * (size_t)p->stride;
    return VIGIL_OK;
}

static void jl_pipe_task(void *ctx, size_t side) {
    jl_pipe *p = ctx;
    double t0 = clock_now_ms();
    vigil_status st;
    if (side == 0) {
        st = jl_guard(p->stream, jl_do_produce, &p->err[0]);
    } else {
        letterbox_source src = {.row = jl_pipe_row, .ctx = p};
        st = letterbox_run(p->lb, &src, 0, letterbox_rows(p->lb), &p->err[1]);
        atomic_store_explicit(&p->needed, JL_PIPE_DONE, memory_order_release); /* the producer reads on to EOI */
        p->busy_ms[1] = clock_now_ms() - t0 - p->wait_ms;
    }
    p->status[side] = st;
    if (st) atomic_store_explicit(&p->failed, 1, memory_order_release);
}

/* Runs the decoder and the letterbox of one band side by side on the
 * caller's pool (at least two threads); *decode_ms and *letterbox_ms get their busy times. */
static vigil_status jl_pipe_run(jl_stream *s, const letterbox *lb, const vigil_parallel *pool, double *decode_ms,
                                double *letterbox_ms, vigil_error *err) {
    jl_pipe p = {.stream = s, .lb = lb, .stride = s->stride};
    p.ring = vigil_malloc((size_t)p.stride * JL_RING_ROWS);
    if (!p.ring) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory for JPEG rows");
    atomic_init(&p.produced, 0);
    atomic_init(&p.needed, 0);
    atomic_init(&p.failed, 0);
    s->pipe = &p;
    pool->run(pool->ctx, 2, jl_pipe_task, &p);
    s->pipe = NULL;
    vigil_free(p.ring);
    int side = p.status[0] ? 0 : 1; /* the decoder's failure is the cause when both stopped */
    if (p.status[side] && err) *err = p.err[side];
    *decode_ms = p.busy_ms[0];
    *letterbox_ms = p.busy_ms[1];
    return p.status[side];
}

/* What a band costs, in bytes of entropy-coded data: Huffman decoding
 * scales with the bytes, the rest (IDCT, upsampling, colour, letterbox) with
 * the pixels.  Measured on bus.jpg: 7.3 ns a byte against 3.4 ns a pixel, so
 * a pixel weighs about half a byte.  Photos put their detail (and bytes)
 * unevenly, which is why equal rows make unequal bands. */
#define JL_PIXEL_BYTES 0.5

/* Cost of iMCU rows [0, k), k at a restart. */
static double jl_cost_before(const jl_layout *l, int k) {
    size_t j = jl_segment_at_row(l, k);
    size_t bytes = j ? l->markers[j - 1] + 2 - l->scan_at : 0;
    return (double)bytes + JL_PIXEL_BYTES * (double)k * l->mcu_h * l->width;
}

/* Splits the rows into up to `parts` bands of about equal cost, at restart
 * markers.  Band b > 0 decodes from iMCU row k and produces the resized rows
 * whose source rows start at iMCU row k + 1 or later. */
static void jl_plan_bands(jl_job *job, int parts) {
    const jl_layout *l = job->layout;
    int nh = letterbox_rows(job->lb);
    double total = (double)(job->size - l->scan_at) + JL_PIXEL_BYTES * (double)l->height * l->width;
    job->n_bands = 1;
    job->bands[0] = (jl_band){.mcu_row = 0, .dy0 = 0, .dy1 = nh};
    for (int b = 1; b < parts; b++) {
        double want = total * b / parts, best_gap = 0;
        int best = -1;
        for (int k = job->bands[job->n_bands - 1].mcu_row + 1; k + 1 < l->mcu_rows; k++) {
            if (!jl_segment_at_row(l, k)) continue;
            double gap = fabs(jl_cost_before(l, k) - want);
            if (best < 0 || gap < best_gap) best = k, best_gap = gap;
        }
        if (best < 0) break;
        int dy = letterbox_first_reader(job->lb, (best + 1) * job->out_rows_per_mcu_row);
        jl_band *last = &job->bands[job->n_bands - 1];
        if (dy <= last->dy0 || dy >= nh) continue; /* too few rows to be worth a band */
        last->dy1 = dy;
        job->bands[job->n_bands++] = (jl_band){.mcu_row = best, .dy0 = dy, .dy1 = nh};
    }
}

vigil_status jpeg_letterbox(const uint8_t *bytes, size_t size, const vigil_decode_options *opt,
                            const jpeg_letterbox_dst *dst, const vigil_parallel *pool, int parts,
                            vigil_decode_info *info, vigil_letterbox_info *lb_info, jpeg_letterbox_stats *stats,
                            vigil_error *err) {
    vigil_decode_options defaults = {0};
    if (!opt) opt = &defaults;
    if (!jpeg_letterbox_applies(bytes, size, opt))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "not a JPEG that needs no rotation");
    parts = parts < 1 ? 1 : parts > JL_MAX_PARTS ? JL_MAX_PARTS : parts;
    double t0 = clock_now_ms();
    jl_layout layout = {0};
    jl_job job = {.bytes = bytes, .size = size, .layout = &layout, .max_pixels = opt->max_pixels};
    letterbox *lb = NULL;
    jl_stream *first;
    vigil_status st = jl_stream_open(bytes, size, NULL, 0, opt->max_pixels, &first, err);
    if (st) return st;
    int width = (int)first->cinfo.image_width, height = (int)first->cinfo.image_height;
    job.denom = image_jpeg_scale_denom(width, height, opt->target_size);
    st = jl_stream_start(first, job.denom, 0, err);
    if (st) goto done;
    double t1 = clock_now_ms();
    st = letterbox_create((int)first->cinfo.output_width, (int)first->cinfo.output_height, dst->in_w, dst->in_h,
                          dst->pre, dst->data, &lb, err);
    if (st) goto done;
    vigil_letterbox_info geometry;
    letterbox_info(lb, &geometry);
    if (dst->padded && memcmp(dst->padded, &geometry, sizeof geometry) == 0) letterbox_assume_padded(lb);
    job.lb = lb;
    double t2 = clock_now_ms();
    job.out_rows_per_mcu_row = 0;
    if (parts > 1 && jl_read_layout(&layout, &first->cinfo, bytes, size) && layout.mcu_h % job.denom == 0 &&
        jl_read_markers(&layout, bytes, size)) {
        job.out_rows_per_mcu_row = layout.mcu_h / job.denom;
        jl_plan_bands(&job, parts);
    } else {
        job.n_bands = 1;
        job.bands[0] = (jl_band){.dy0 = 0, .dy1 = letterbox_rows(lb)};
    }
    double decode = 0, total = 0, t3;
    int pipelined = job.n_bands == 1 && parts > 1 && pool && pool->run && pool->threads > 1;
    if (pipelined) {
        double letterbox_ms = 0;
        st = jl_pipe_run(first, lb, pool, &decode, &letterbox_ms, err);
        t3 = clock_now_ms();
        total = decode + letterbox_ms;
        if (st) goto done;
    } else {
        job.bands[0].stream = first;
        first = NULL;
        if (job.n_bands > 1 && pool && pool->run && pool->threads > 1)
            pool->run(pool->ctx, (size_t)job.n_bands, jl_band_run, &job);
        else
            for (int b = 0; b < job.n_bands; b++) jl_band_run(&job, (size_t)b);
        t3 = clock_now_ms();
        for (int b = 0; b < job.n_bands; b++) {
            if (job.bands[b].status && !st) {
                st = job.bands[b].status;
                if (err) *err = job.bands[b].err;
            }
            decode += job.bands[b].decode_ms;
            total += job.bands[b].total_ms;
        }
        if (st) goto done;
    }
    double share = total > 0 ? decode / total : 0;
    if (stats) {
        stats->decode_ms = (t1 - t0) + (t3 - t2) * share;
        stats->letterbox_ms = (t2 - t1) + (t3 - t2) * (1 - share);
        stats->bands = job.n_bands;
        stats->pipelined = pipelined;
    }
    if (lb_info) *lb_info = geometry;
    if (info)
        *info = (vigil_decode_info){
            .orig_width = width, .orig_height = height, .scale_num = 1, .scale_denom = job.denom, .orientation = 1};
done:
    jl_stream_close(first);
    letterbox_destroy(lb);
    vigil_free(layout.markers);
    return st;
}
