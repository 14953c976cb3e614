/*
 * exif.h - walking a JPEG's header segments, and the one EXIF fact vision
 * needs: the orientation tag.
 */
#ifndef VIGIL_VISION_EXIF_H
#define VIGIL_VISION_EXIF_H

#include <stddef.h>
#include <stdint.h>

/* One marker segment of a JPEG header. */
typedef struct jpeg_segment {
    int marker;             /* 0xC0 (SOF0), 0xDA (SOS), 0xE1 (APP1), ... */
    size_t at;              /* offset of its 0xFF */
    const uint8_t *payload; /* after the length field */
    size_t len;             /* payload bytes */
} jpeg_segment;

/* Reads the segment at *pos (2 for the first, just after SOI) into *seg and
 * moves *pos past it.  Fill bytes and the markers without a length (TEM,
 * RSTn, SOI) are skipped, as libjpeg skips them.  Returns 0 at EOI, at the
 * end of the data or at anything malformed. */
int jpeg_next_segment(const uint8_t *jpeg, size_t size, size_t *pos, jpeg_segment *seg);

/* Orientation (1..8) from the first APP1 Exif segment of a JPEG; 1 when the
 * tag is absent or anything about the segment is malformed. */
int exif_jpeg_orientation(const uint8_t *jpeg, size_t size);

#endif
