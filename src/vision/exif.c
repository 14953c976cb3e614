/*
 * exif.c - finds the orientation tag (0x0112) in a JPEG's Exif segment.
 *
 * Walks the markers up to the first scan, takes the APP1 segment that starts
 * with "Exif\0\0", reads the TIFF header's byte order and looks through IFD0.
 * Every offset is bounds-checked against the segment, so a hostile file can
 * at worst make the answer "1" (no rotation).
 */
#include <string.h>

#include "vision/exif.h"

static unsigned exif_u16(const uint8_t *p, int big_endian) {
    return big_endian ? (unsigned)(p[0] << 8 | p[1]) : (unsigned)(p[1] << 8 | p[0]);
}

static uint32_t exif_u32(const uint8_t *p, int big_endian) {
    return big_endian ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
                      : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* Orientation from a TIFF block (the APP1 payload after "Exif\0\0"). */
static int exif_tiff_orientation(const uint8_t *t, size_t n) {
    if (n < 8) return 1;
    int big;
    if (t[0] == 'I' && t[1] == 'I')
        big = 0;
    else if (t[0] == 'M' && t[1] == 'M')
        big = 1;
    else
        return 1;
    if (exif_u16(t + 2, big) != 42) return 1;
    uint32_t ifd = exif_u32(t + 4, big);
    if (ifd > n - 2) return 1;
    unsigned entries = exif_u16(t + ifd, big);
    for (unsigned i = 0; i < entries; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > n) return 1;
        if (exif_u16(t + e, big) != 0x0112) continue;
        unsigned type = exif_u16(t + e + 2, big);
        unsigned value = type == 3 ? exif_u16(t + e + 8, big) : 1; /* SHORT, stored inline */
        return value >= 1 && value <= 8 ? (int)value : 1;
    }
    return 1;
}

int jpeg_next_segment(const uint8_t *jpeg, size_t size, size_t *pos, jpeg_segment *seg) {
    size_t i = *pos;
    while (i + 2 <= size && jpeg[i] == 0xFF) {
        int marker = jpeg[i + 1];
        if (marker == 0xFF) { /* fill byte */
            i++;
            continue;
        }
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) { /* no length */
            i += 2;
            continue;
        }
        if (marker == 0xD9 || i + 4 > size) return 0;
        size_t len = (size_t)jpeg[i + 2] << 8 | jpeg[i + 3];
        if (len < 2 || len > size - i - 2) return 0;
        *seg = (jpeg_segment){.marker = marker, .at = i, .payload = jpeg + i + 4, .len = len - 2};
        *pos = i + 2 + len;
        return 1;
    }
    return 0;
}

int exif_jpeg_orientation(const uint8_t *jpeg, size_t size) {
    static const uint8_t tag[6] = {'E', 'x', 'i', 'f', 0, 0};
    size_t pos = 2; /* after SOI */
    jpeg_segment seg;
    while (jpeg_next_segment(jpeg, size, &pos, &seg)) {
        if (seg.marker == 0xDA) return 1; /* start of scan: no Exif */
        if (seg.marker == 0xE1 && seg.len >= 6 && memcmp(seg.payload, tag, sizeof tag) == 0)
            return exif_tiff_orientation(seg.payload + 6, seg.len - 6);
    }
    return 1;
}
