/*
 * instance.c - what the plans of one model instance share (vigil_arena):
 * activation memory and the XNNPACK operators that hold packed weights.
 *
 * XNNPACK packs a layer's weights when its operator is created
 * (xnn_create_*) and takes the batch size, input size and pointers when the
 * operator is set up (xnn_setup_*, cheap: strides, and an indirection buffer
 * per image that only an input size change rebuilds).  An instance's plans
 * never run at the same time, so one operator per weighted node serves every
 * batch size: a plan finds the operator its node already has on the arena
 * and sets it up again before a run when another plan (or another part of a
 * split batch) set it up last.  The match is by the node and a hash of the
 * operator's create parameters and weights, so an operator is never reused
 * for different weights.
 *
 * Lanes: a batch split across the pool's threads (exec.c) runs its parts at
 * the same time, so part k needs operators and activations that no other
 * part touches.  Part k of every split plan uses lane k, plans that do not
 * split lane 0, and each lane has its own operators: an instance holds at
 * most one packed copy of the weights per lane in use, whatever batch sizes
 * it runs.  Activations stay one buffer: part k works k part-sizes into it,
 * so a split batch of B needs what a whole plan of B needs, and the buffer
 * is sized for the largest compiled graph (at most the engine's batch cap:
 * exec.c runs larger batches as runs of the cap's plan).  The outputs of a
 * plan that copies them (a split or capped batch) go to one staging buffer
 * on the arena, sized for the run's outputs (kept while runs need at least
 * half of it).
 *
 * Packed-weight bytes are measured, not estimated: the engine installs an
 * XNNPACK allocator that, while a create call runs on this thread, adds
 * every byte it allocates to a thread-local counter (xnn_count_*).
 */
#include <stdlib.h>
#include <string.h>
#include <xnnpack.h>

#include "core/alloc.h"
#include "engine/exec.h"

/* ---- the XNNPACK allocator that counts what create calls allocate ---- */

/* The one thread-local of the engine: where the current thread's XNNPACK
 * allocations are counted (NULL: not counted). */
static _Thread_local size_t *xnn_counter;

static void *xnn_count_allocate(void *context, size_t size) {
    (void)context;
    if (xnn_counter) *xnn_counter += size;
    return malloc(size);
}

static void *xnn_count_reallocate(void *context, void *pointer, size_t size) {
    (void)context;
    if (xnn_counter) *xnn_counter += size;
    return realloc(pointer, size);
}

static void xnn_count_deallocate(void *context, void *pointer) {
    (void)context;
    free(pointer);
}

static void *xnn_count_aligned_allocate(void *context, size_t alignment, size_t size) {
    (void)context;
    void *p = NULL;
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    if (posix_memalign(&p, alignment, size ? size : 1) != 0) return NULL;
    if (xnn_counter) *xnn_counter += size;
    return p;
}

static void xnn_count_aligned_deallocate(void *context, void *pointer) {
    (void)context;
    free(pointer);
}

const struct xnn_allocator *engine_xnn_allocator(void) {
    static const struct xnn_allocator allocator = {
        .allocate = xnn_count_allocate,
        .reallocate = xnn_count_reallocate,
        .deallocate = xnn_count_deallocate,
        .aligned_allocate = xnn_count_aligned_allocate,
        .aligned_deallocate = xnn_count_aligned_deallocate,
    };
    return &allocator;
}

void xnn_count_begin(size_t *bytes) {
    *bytes = 0;
    xnn_counter = bytes;
}

void xnn_count_end(void) {
    xnn_counter = NULL;
}

/* ---- the arena ---- */

#define ARENA_PIECES 8 /* pieces kept for sharing; more are owned by their capped plan alone */

struct shared_op_list {
    shared_op *op;
    struct shared_op_list *next;
};

struct vigil_arena {
    uint8_t *base; /* activations */
    size_t bytes;
    uint8_t *staging; /* outputs of plans that copy them (arena_staging) */
    size_t staging_bytes;
    /* plans that capped batches run (exec.c, plan_capped): one per batch
     * size, shared by every capped plan on the arena, users counted */
    struct {
        vigil_plan *plan;
        int users;
    } pieces[ARENA_PIECES];
    int plans; /* alive on the arena */
    struct shared_op_list *ops;
    const vigil_model *model; /* whose operators ops holds */
    size_t weight_bytes;      /* packed bytes of ops */
    uint64_t setup_ids;       /* the last id handed out */
};

vigil_status vigil_arena_create(vigil_arena **out, vigil_error *err) {
    *out = vigil_calloc(1, sizeof **out);
    return *out ? VIGIL_OK : vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
}

static void arena_drop_ops(vigil_arena *a) {
    while (a->ops) {
        struct shared_op_list *l = a->ops;
        a->ops = l->next;
        xnn_delete_operator((xnn_operator_t)l->op->xop);
        vigil_free(l->op);
        vigil_free(l);
    }
    a->weight_bytes = 0;
}

void vigil_arena_destroy(vigil_arena *a) {
    if (!a) return;
    arena_drop_ops(a);
    vigil_free(a->base);
    vigil_free(a->staging);
    vigil_free(a);
}

size_t vigil_arena_bytes(const vigil_arena *a) {
    return a ? a->bytes : 0;
}

size_t vigil_arena_weight_bytes(const vigil_arena *a) {
    return a ? a->weight_bytes : 0;
}

vigil_status arena_take(vigil_arena *a, const vigil_model *model, size_t offset, size_t bytes, uint8_t **base,
                        vigil_error *err) {
    /* Operators of another model are dropped as soon as nothing uses them
     * (they would only hold memory); while plans of it live, the new plan's
     * operators simply will not match theirs (see the fingerprint). */
    if (model != a->model && a->plans == 0) {
        arena_drop_ops(a);
        a->model = model;
    }
    size_t need = offset + bytes;
    if (need > a->bytes) {
        if (a->plans > 0)
            return vigil_error_set(err, VIGIL_ERR_LIMIT, "the shared arena holds %zu bytes, the plan needs %zu",
                                   a->bytes, need);
        /* freed first: the old and the new buffer never count at once */
        vigil_free(a->base);
        a->bytes = 0;
        a->base = vigil_aligned_alloc(ENGINE_ALIGN, need);
        if (!a->base) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory (activation arena)");
        a->bytes = need;
    }
    a->plans++;
    *base = a->base;
    return VIGIL_OK;
}

void arena_release(vigil_arena *a) {
    a->plans--;
}

vigil_plan *arena_piece_get(vigil_arena *a, const vigil_model *model, int64_t batch) {
    for (int i = 0; i < ARENA_PIECES; i++) {
        vigil_plan *p = a->pieces[i].plan;
        if (p && p->model == model && p->batch == batch) {
            a->pieces[i].users++;
            return p;
        }
    }
    return NULL;
}

void arena_piece_keep(vigil_arena *a, vigil_plan *plan) {
    for (int i = 0; i < ARENA_PIECES; i++)
        if (!a->pieces[i].plan) {
            a->pieces[i].plan = plan;
            a->pieces[i].users = 1;
            return;
        }
}

void arena_piece_put(vigil_arena *a, vigil_plan *plan) {
    for (int i = 0; i < ARENA_PIECES; i++)
        if (a->pieces[i].plan == plan) {
            if (--a->pieces[i].users > 0) return;
            a->pieces[i].plan = NULL;
            break;
        }
    vigil_plan_destroy(plan); /* its last user, or never kept */
}

/* Sized to the run: grown when smaller, and given back when more than twice
 * what this run needs, so that after a burst of large batches the smaller
 * runs that follow (detection runs chunks of the batch cap) do not keep the
 * largest batch's outputs resident.  The factor two keeps batch sizes that
 * alternate within it from reallocating on every run. */
void vigil_arena_trim(vigil_arena *a) {
    if (!a) return;
    vigil_free(a->staging);
    a->staging = NULL;
    a->staging_bytes = 0;
}

uint8_t *arena_staging(vigil_arena *a, size_t bytes) {
    if (bytes > a->staging_bytes || bytes < a->staging_bytes / 2) {
        vigil_free(a->staging); /* freed first, like the activations */
        a->staging_bytes = 0;
        a->staging = vigil_aligned_alloc(ENGINE_ALIGN, bytes);
        if (!a->staging) return NULL;
        a->staging_bytes = bytes;
    }
    return a->staging;
}

shared_op *arena_find_op(vigil_arena *a, const void *node, int lane, uint64_t fingerprint) {
    for (struct shared_op_list *l = a->ops; l; l = l->next)
        if (l->op->node == node && l->op->lane == lane && l->op->fingerprint == fingerprint) return l->op;
    return NULL;
}

vigil_status arena_keep_op(vigil_arena *a, const void *node, int lane, uint64_t fingerprint, void *xop,
                           size_t packed_bytes, shared_op **out, vigil_error *err) {
    shared_op *op = vigil_calloc(1, sizeof *op);
    struct shared_op_list *l = vigil_calloc(1, sizeof *l);
    if (!op || !l) {
        vigil_free(op);
        vigil_free(l);
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    }
    op->node = node;
    op->lane = lane;
    op->fingerprint = fingerprint;
    op->xop = xop;
    op->packed_bytes = packed_bytes;
    l->op = op;
    l->next = a->ops;
    a->ops = l;
    a->weight_bytes += packed_bytes;
    *out = op;
    return VIGIL_OK;
}

uint64_t arena_setup_id(vigil_arena *a) {
    return ++a->setup_ids;
}
