/*
 * nms.c - greedy non-maximum suppression, as torchvision.ops.nms does it.
 *
 * Candidates are sorted by score (ties keep the lower anchor first, so the
 * result never depends on qsort's order), trimmed to HEAD_MAX_CANDIDATES, and
 * each box suppresses the later ones of its class (or of any class when
 * agnostic) whose IoU with it is strictly greater than the threshold (an IoU
 * equal to it keeps both).  IoU uses areas without the +1 pixel convention,
 * like Ultralytics.
 */
#include <stdlib.h>

#include "vision/heads.h"

float head_iou(const head_box *a, const head_box *b) {
    float iw = (a->x2 < b->x2 ? a->x2 : b->x2) - (a->x1 > b->x1 ? a->x1 : b->x1);
    float ih = (a->y2 < b->y2 ? a->y2 : b->y2) - (a->y1 > b->y1 ? a->y1 : b->y1);
    if (iw <= 0 || ih <= 0) return 0;
    float inter = iw * ih;
    float area_a = (a->x2 - a->x1) * (a->y2 - a->y1), area_b = (b->x2 - b->x1) * (b->y2 - b->y1);
    float uni = area_a + area_b - inter;
    return uni > 0 ? inter / uni : 0;
}

static int nms_compare(const void *pa, const void *pb) {
    const head_box *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->anchor > b->anchor) - (a->anchor < b->anchor);
}

size_t head_nms(head_boxes *boxes, float iou_threshold, int agnostic, int max_det) {
    if (boxes->count == 0 || max_det <= 0) return 0;
    qsort(boxes->items, boxes->count, sizeof(head_box), nms_compare);
    size_t n = boxes->count < HEAD_MAX_CANDIDATES ? boxes->count : HEAD_MAX_CANDIDATES;
    head_box *b = boxes->items;
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < (size_t)max_det; i++) {
        int suppressed = 0;
        for (size_t k = 0; k < kept && !suppressed; k++)
            suppressed = (agnostic || b[k].class_id == b[i].class_id) && head_iou(&b[k], &b[i]) > iou_threshold;
        if (!suppressed) b[kept++] = b[i];
    }
    return kept;
}
