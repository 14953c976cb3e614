/*
 * exif.h - the one EXIF fact vision needs: a JPEG's orientation tag.
 */
#ifndef VIGIL_VISION_EXIF_H
#define VIGIL_VISION_EXIF_H

#include <stddef.h>
#include <stdint.h>

/* Orientation (1..8) from the first APP1 Exif segment of a JPEG; 1 when the
 * tag is absent or anything about the segment is malformed. */
int exif_jpeg_orientation(const uint8_t *jpeg, size_t size);

#endif
