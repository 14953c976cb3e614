/*
 * graph.c - builds the engine's IR (values and nodes) from an onnx_model.
 *
 * Every tensor name becomes one value; initializers become constants whose
 * data points into the model's mapping (never copied here).  Nodes are put in
 * topological order (ONNX requires it, but producers are not trusted), which
 * also detects cycles and inputs that nothing defines.  Symbolic dimensions
 * of graph inputs become the compile batch when they are the leading
 * dimension; any other symbolic dimension is unsupported.
 *
 * float16 is computed in float32: float16 initializers (and Constant,
 * ConstantOfShape values) are widened here, once per compiled graph; a
 * float16 graph input keeps its type at the API and is read through a
 * vigil.F16ToF32 node, a float16 graph output is written by a vigil.F32ToF16
 * node, and Cast to float16 inside the graph rounds to half precision but
 * keeps float32 (ops/eltwise.c).  Every value the model computes is
 * therefore one a float16 tensor can hold at the points where the model
 * converts, while the arithmetic between those points is float32 (ONNX
 * Runtime does the same on CPUs without float16 kernels).
 */
#include <string.h>

#include "core/alloc.h"
#include "engine/engine_internal.h"
#include "engine/kernels/kernels.h"

/* Name -> value index, open addressing; lives only while building. */
typedef struct name_map {
    int *slots;
    size_t cap;
} name_map;

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int map_find(const name_map *m, const graph *g, const char *name) {
    size_t i = name_hash(name) & (m->cap - 1);
    while (m->slots[i] >= 0) {
        if (strcmp(g->values[m->slots[i]].name, name) == 0) return m->slots[i];
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

static void map_put(name_map *m, const graph *g, int value) {
    size_t i = name_hash(g->values[value].name) & (m->cap - 1);
    while (m->slots[i] >= 0)
        i = (i + 1) & (m->cap - 1);
    m->slots[i] = value;
}

/* Points the name of value at value from now on (it replaces the value of
 * the same name, which must be in the map). */
static void map_replace(name_map *m, const graph *g, int value) {
    const char *name = g->values[value].name;
    size_t i = name_hash(name) & (m->cap - 1);
    while (strcmp(g->values[m->slots[i]].name, name) != 0)
        i = (i + 1) & (m->cap - 1);
    m->slots[i] = value;
}

/* Adds the internal conversion op (vigil.F16ToF32 or vigil.F32ToF16) from
 * value v to a new value of the same name; returns it, -1 when out of memory. */
static int add_conversion(graph *g, const char *op, int v) {
    const char *name = g->values[v].name;
    int n = graph_add_node(g, NULL, ops_find_internal(op), name, 1, 1);
    int t = n < 0 ? -1 : graph_add_value(g, name);
    if (t < 0) return -1;
    g->values[t].producer = n;
    g->nodes[n].in[0] = v;
    g->nodes[n].out[0] = t;
    return t;
}

int64_t tensor_count(int ndim, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= dims[i];
    return n;
}

size_t tensor_bytes(vigil_dtype dtype, int ndim, const int64_t *dims) {
    return (size_t)tensor_count(ndim, dims) * vigil_dtype_size(dtype);
}

vigil_status dtype_from_onnx(int32_t onnx, vigil_dtype *out) {
    switch (onnx) {
    case ONNX_FLOAT: *out = VIGIL_DTYPE_F32; return VIGIL_OK;
    case ONNX_INT64: *out = VIGIL_DTYPE_I64; return VIGIL_OK;
    case ONNX_INT32: *out = VIGIL_DTYPE_I32; return VIGIL_OK;
    case ONNX_UINT8: *out = VIGIL_DTYPE_U8; return VIGIL_OK;
    case ONNX_INT8: *out = VIGIL_DTYPE_I8; return VIGIL_OK;
    case ONNX_BOOL: *out = VIGIL_DTYPE_BOOL; return VIGIL_OK;
    case ONNX_DOUBLE: *out = VIGIL_DTYPE_F64; return VIGIL_OK;
    case ONNX_FLOAT16: *out = VIGIL_DTYPE_F16; return VIGIL_OK;
    default: return VIGIL_ERR_UNSUPPORTED;
    }
}

int graph_add_value(graph *g, const char *name) {
    if (g->n_values == g->cap_values) {
        int cap = g->cap_values ? g->cap_values * 2 : 64;
        gvalue *v = vigil_realloc(g->values, (size_t)cap * sizeof *v);
        if (!v) return -1;
        g->values = v;
        g->cap_values = cap;
    }
    gvalue *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->ndim = -1;
    v->producer = -1;
    v->nhwc_twin = v->onnx_twin = v->alias_of = -1;
    return g->n_values++;
}

int graph_add_node(graph *g, const onnx_node *src, const op_def *op, const char *name, int n_in, int n_out) {
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 64;
        gnode *n = vigil_realloc(g->nodes, (size_t)cap * sizeof *n);
        if (!n) return -1;
        g->nodes = n;
        g->cap_nodes = cap;
    }
    gnode *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->src = src;
    n->op = op;
    n->name = name;
    n->n_in = n_in;
    n->n_out = n_out;
    n->in = vigil_calloc((size_t)(n_in + n_out + 1), sizeof(int));
    if (!n->in) return -1;
    n->out = n->in + n_in;
    return g->n_nodes++;
}

void *graph_alloc_const(graph *g, size_t nbytes) {
    if (g->n_owned == g->cap_owned) {
        int cap = g->cap_owned ? g->cap_owned * 2 : 64;
        void **o = vigil_realloc(g->owned, (size_t)cap * sizeof *o);
        if (!o) return NULL;
        g->owned = o;
        g->cap_owned = cap;
    }
    void *p = vigil_aligned_alloc(ENGINE_ALIGN, nbytes + ENGINE_BUFFER_PAD);
    if (!p) return NULL;
    memset(p, 0, nbytes + ENGINE_BUFFER_PAD);
    g->owned[g->n_owned++] = p;
    return p;
}

void graph_free(graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++)
        vigil_free(g->nodes[i].in);
    for (int i = 0; i < g->n_owned; i++)
        vigil_free(g->owned[i]);
    vigil_free(g->owned);
    vigil_free(g->nodes);
    vigil_free(g->values);
    vigil_free(g->inputs);
    vigil_free(g->outputs);
    vigil_free(g->order);
    vigil_free(g);
}

static const char *node_label(const onnx_node *n) {
    if (n->name && n->name[0]) return n->name;
    return n->n_outputs ? n->outputs[0] : "";
}

static vigil_status add_graph_inputs(graph *g, name_map *map, vigil_error *err) {
    const onnx_model *m = g->onnx;
    g->inputs = vigil_calloc(m->n_inputs + 1, sizeof(int));
    if (!g->inputs) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < m->n_inputs; i++) {
        const onnx_value_info *vi = &m->inputs[i];
        int v = graph_add_value(g, vi->name);
        if (v < 0) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
        gvalue *val = &g->values[v];
        if (dtype_from_onnx(vi->dtype, &val->dtype) != VIGIL_OK)
            return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "input '%s': unsupported type %s", vi->name,
                                   onnx_dtype_name(vi->dtype));
        if (vi->ndim < 0 || vi->ndim > VIGIL_MAX_DIMS)
            return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "input '%s': unknown or too large rank", vi->name);
        val->ndim = vi->ndim;
        for (int d = 0; d < vi->ndim; d++) {
            int64_t dim = vi->dims[d];
            if (dim < 0 && d == 0) dim = g->batch;
            if (dim < 0)
                return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED,
                                       "input '%s': symbolic dimension %d ('%s') other than the batch", vi->name, d,
                                       vi->dim_params[d] ? vi->dim_params[d] : "?");
            val->dims[d] = dim;
        }
        val->graph_input = (int)i + 1;
        g->inputs[g->n_inputs++] = v;
        map_put(map, g, v);
        if (val->dtype == VIGIL_DTYPE_F16) { /* the model reads it as float32 */
            int t = add_conversion(g, "vigil.F16ToF32", v);
            if (t < 0) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
            map_replace(map, g, t);
        }
    }
    return VIGIL_OK;
}

static vigil_status add_initializers(graph *g, name_map *map, vigil_error *err) {
    const onnx_model *m = g->onnx;
    for (size_t i = 0; i < m->n_initializers; i++) {
        const onnx_tensor *t = &m->initializers[i];
        if (map_find(map, g, t->name) >= 0) continue; /* a graph input overrides (ONNX rule) */
        int v = graph_add_value(g, t->name);
        if (v < 0) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
        gvalue *val = &g->values[v];
        if (dtype_from_onnx(t->dtype, &val->dtype) != VIGIL_OK)
            return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "initializer '%s': unsupported type %s", t->name,
                                   onnx_dtype_name(t->dtype));
        if (t->ndim > VIGIL_MAX_DIMS)
            return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "initializer '%s': rank %d", t->name, t->ndim);
        val->ndim = t->ndim;
        memcpy(val->dims, t->dims, (size_t)t->ndim * sizeof(int64_t));
        if (t->count && !t->data) return vigil_error_set(err, VIGIL_ERR_PARSE, "initializer '%s' has no data", t->name);
        /* Constants are read-only views of the mapping (never copied here);
         * ops that hand one to XNNPACK unpacked make a padded copy. */
        val->cdata = t->data ? (void *)t->data : graph_alloc_const(g, 0);
        if (val->cdata && val->dtype == VIGIL_DTYPE_F16) { /* widened: see the top of the file */
            g->float16 = 1;
            val->dtype = VIGIL_DTYPE_F32;
            val->cdata = graph_alloc_const(g, tensor_bytes(VIGIL_DTYPE_F32, t->ndim, t->dims));
            if (val->cdata)
                kernels_cast(VIGIL_DTYPE_F16, t->data, VIGIL_DTYPE_F32, val->cdata, (int64_t)t->count, NULL);
        }
        if (!val->cdata) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
        map_put(map, g, v);
    }
    return VIGIL_OK;
}

/* Kahn's algorithm over file order: a node is ready once all its inputs exist. */
static vigil_status add_nodes(graph *g, name_map *map, vigil_error *err) {
    const onnx_model *m = g->onnx;
    size_t n = m->n_nodes;
    char *placed = vigil_calloc(n + 1, 1);
    if (!placed) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    size_t done = 0;
    vigil_status st = VIGIL_OK;
    while (done < n && st == VIGIL_OK) {
        size_t before = done;
        for (size_t i = 0; i < n && st == VIGIL_OK; i++) {
            if (placed[i]) continue;
            const onnx_node *src = &m->nodes[i];
            int ready = 1;
            for (size_t k = 0; k < src->n_inputs && ready; k++)
                if (src->inputs[k][0] && map_find(map, g, src->inputs[k]) < 0) ready = 0;
            if (!ready) continue;
            const op_def *op = ops_find(src->domain, src->op_type);
            int id = graph_add_node(g, src, op, node_label(src), (int)src->n_inputs, (int)src->n_outputs);
            if (id < 0) {
                st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
                break;
            }
            gnode *node = &g->nodes[id];
            for (size_t k = 0; k < src->n_inputs; k++)
                node->in[k] = src->inputs[k][0] ? map_find(map, g, src->inputs[k]) : -1;
            for (size_t k = 0; k < src->n_outputs && st == VIGIL_OK; k++) {
                node->out[k] = -1;
                if (!src->outputs[k][0]) continue;
                if (map_find(map, g, src->outputs[k]) >= 0) {
                    st = vigil_error_set(err, VIGIL_ERR_PARSE, "node '%s' (%s): output '%s' is defined twice",
                                         node->name, src->op_type, src->outputs[k]);
                    break;
                }
                int v = graph_add_value(g, src->outputs[k]);
                if (v < 0) {
                    st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
                    break;
                }
                g->values[v].producer = id;
                g->nodes[id].out[k] = v;
                map_put(map, g, v);
            }
            placed[i] = 1;
            done++;
        }
        if (st == VIGIL_OK && done == before) {
            /* Nothing became ready: a cycle or an input nobody defines. */
            for (size_t i = 0; i < n; i++) {
                if (placed[i]) continue;
                const onnx_node *src = &m->nodes[i];
                for (size_t k = 0; k < src->n_inputs; k++) {
                    const char *in = src->inputs[k];
                    if (!in[0] || map_find(map, g, in) >= 0) continue;
                    int produced = 0;
                    for (size_t j = 0; j < n && !produced; j++)
                        for (size_t o = 0; o < m->nodes[j].n_outputs; o++)
                            if (!placed[j] && strcmp(m->nodes[j].outputs[o], in) == 0) produced = 1;
                    st = vigil_error_set(err, VIGIL_ERR_PARSE, "node '%s' (%s): input '%s' %s", node_label(src),
                                         src->op_type, in,
                                         produced ? "is part of a cycle" : "is not produced by any node");
                    break;
                }
                if (st != VIGIL_OK) break;
            }
            if (st == VIGIL_OK) st = vigil_error_set(err, VIGIL_ERR_PARSE, "graph has a cycle");
        }
    }
    vigil_free(placed);
    return st;
}

static vigil_status add_graph_outputs(graph *g, name_map *map, vigil_error *err) {
    const onnx_model *m = g->onnx;
    g->outputs = vigil_calloc(m->n_outputs + 1, sizeof(int));
    if (!g->outputs) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < m->n_outputs; i++) {
        int v = map_find(map, g, m->outputs[i].name);
        if (v < 0)
            return vigil_error_set(err, VIGIL_ERR_PARSE, "graph output '%s' is not produced by any node",
                                   m->outputs[i].name);
        if (m->outputs[i].dtype == ONNX_FLOAT16) { /* computed in float32, written as float16 */
            v = add_conversion(g, "vigil.F32ToF16", v);
            if (v < 0) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
        }
        g->outputs[g->n_outputs++] = v;
    }
    return VIGIL_OK;
}

vigil_status graph_build(const onnx_model *m, int64_t batch, graph **out, vigil_error *err) {
    *out = NULL;
    graph *g = vigil_calloc(1, sizeof *g);
    if (!g) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    g->onnx = m;
    g->opset = m->opset;
    g->batch = batch;
    size_t names = m->n_inputs + m->n_initializers + 1;
    for (size_t i = 0; i < m->n_nodes; i++)
        names += m->nodes[i].n_outputs;
    name_map map = {0};
    map.cap = 16;
    while (map.cap < names * 2)
        map.cap *= 2;
    map.slots = vigil_malloc(map.cap * sizeof(int));
    vigil_status st;
    if (!map.slots) {
        st = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    } else {
        memset(map.slots, 0xff, map.cap * sizeof(int));
        st = add_graph_inputs(g, &map, err);
        if (st == VIGIL_OK) st = add_initializers(g, &map, err);
        if (st == VIGIL_OK) st = add_nodes(g, &map, err);
        if (st == VIGIL_OK) st = add_graph_outputs(g, &map, err);
    }
    vigil_free(map.slots);
    if (st != VIGIL_OK) {
        graph_free(g);
        return st;
    }
    *out = g;
    return VIGIL_OK;
}
