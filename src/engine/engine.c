/*
 * engine.c - the public face of the engine: the engine handle (thread pool),
 * model loading with validation, and model introspection.
 *
 * Loading maps the file (onnx.c), checks every node against the op table
 * (operator, opset, attributes), then compiles the graph once at batch 1
 * without creating kernels, so that type and shape errors are reported at
 * load rather than at the first plan.
 */
#include <string.h>
#include <unistd.h>
#include <xnnpack.h>

#include "core/alloc.h"
#include "engine/exec.h"

/* The ONNX opsets whose rules the engine implements (each op also has its own
 * range; older opsets are accepted where the op's rules have not changed). */
#define ENGINE_MIN_OPSET 1
#define ENGINE_MAX_OPSET 20

/* vigil_dtype_name and vigil_dtype_size live in core/tensor.c (vigil/tensor.h). */

vigil_status vigil_engine_create(const vigil_engine_options *options, vigil_engine **out, vigil_error *err) {
    if (!out) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "engine: out is NULL");
    *out = NULL;
    int threads = options ? options->threads : 0;
    if (threads < 0 || threads > 1024)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "engine: threads must be 0..1024, got %d", threads);
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    /* the allocator only counts what operator creation allocates (packed weights) */
    if (xnn_initialize(engine_xnn_allocator()) != xnn_status_success)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "XNNPACK does not support this CPU");
    vigil_engine *e = vigil_calloc(1, sizeof *e);
    if (!e) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    e->threads = threads;
    int cap = options ? options->batch_cap : 0;
    if (cap < 0) {
        vigil_free(e);
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "engine: batch_cap must be >= 0, got %d", cap);
    }
    e->batch_cap = cap > 0 ? cap : (threads > 2 ? threads : 2);
    e->portable_kernels = options ? options->portable_kernels != 0 : 0;
    int f16 = options ? options->float16 : VIGIL_FLOAT16_AUTO;
    if (f16 < VIGIL_FLOAT16_AUTO || f16 > VIGIL_FLOAT16_XNNPACK) {
        vigil_free(e);
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "engine: float16 mode %d is not auto, fp32 or xnnpack",
                               f16);
    }
    e->float16_xnnpack =
        f16 == VIGIL_FLOAT16_XNNPACK || (f16 == VIGIL_FLOAT16_AUTO && vigil_cpu_has_float16_arithmetic());
    if (threads > 1) {
        e->pool = pthreadpool_create((size_t)threads);
        if (!e->pool) {
            vigil_free(e);
            return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "cannot create a pool of %d threads", threads);
        }
    }
    *out = e;
    return VIGIL_OK;
}

void vigil_engine_destroy(vigil_engine *e) {
    if (!e) return;
    if (e->pool) pthreadpool_destroy(e->pool);
    vigil_free(e);
}

int vigil_engine_threads(const vigil_engine *e) {
    return e ? e->threads : 0;
}

int vigil_engine_batch_cap(const vigil_engine *e) {
    return e ? e->batch_cap : 0;
}

int vigil_engine_float16_xnnpack(const vigil_engine *e) {
    return e ? e->float16_xnnpack : 0;
}

void vigil_engine_parallelize(vigil_engine *e, void (*task)(void *ctx, size_t index), void *ctx, size_t n) {
    if (e && e->pool && n > 1) {
        pthreadpool_parallelize_1d(e->pool, task, ctx, n, 0);
        return;
    }
    for (size_t i = 0; i < n; i++)
        task(ctx, i);
}

vigil_engine *vigil_model_engine(const vigil_model *m) {
    return m ? m->engine : NULL;
}

vigil_status exec_validate(const onnx_model *m, vigil_error *err) {
    if (m->opset < ENGINE_MIN_OPSET || m->opset > ENGINE_MAX_OPSET)
        return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "opset %lld is outside the supported %d..%d",
                               (long long)m->opset, ENGINE_MIN_OPSET, ENGINE_MAX_OPSET);
    for (size_t i = 0; i < m->n_nodes; i++) {
        vigil_status st = ops_check_node(&m->nodes[i], m->opset, err);
        if (st != VIGIL_OK) return st;
    }
    return VIGIL_OK;
}

static vigil_status fill_infos(const onnx_value_info *src, size_t n, vigil_tensor_info **out, vigil_error *err) {
    *out = vigil_calloc(n + 1, sizeof **out);
    if (!*out) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < n; i++) {
        vigil_tensor_info *t = &(*out)[i];
        t->name = src[i].name;
        if (dtype_from_onnx(src[i].dtype, &t->dtype) != VIGIL_OK)
            return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "tensor '%s': unsupported type %s", src[i].name,
                                   onnx_dtype_name(src[i].dtype));
        if (src[i].ndim < 0 || src[i].ndim > VIGIL_MAX_DIMS)
            return vigil_error_set(err, VIGIL_ERR_UNSUPPORTED, "tensor '%s': unknown or too large rank", src[i].name);
        t->ndim = src[i].ndim;
        for (int d = 0; d < t->ndim; d++) {
            t->dims[d] = src[i].dims[d];
            t->dim_names[d] = src[i].dim_params[d];
        }
    }
    return VIGIL_OK;
}

static vigil_status model_init(vigil_model *model, vigil_error *err) {
    const onnx_model *m = model->onnx;
    vigil_status st = exec_validate(m, err);
    if (st == VIGIL_OK) st = fill_infos(m->inputs, m->n_inputs, &model->inputs, err);
    if (st == VIGIL_OK) st = fill_infos(m->outputs, m->n_outputs, &model->outputs, err);
    if (st != VIGIL_OK) return st;
    model->n_inputs = m->n_inputs;
    model->n_outputs = m->n_outputs;
    model->native_batch = 1;
    if (m->n_inputs && model->inputs[0].ndim > 0) {
        int64_t d0 = model->inputs[0].dims[0];
        model->native_batch = d0 < 0 ? 0 : d0 == 0 ? 1 : d0;
    }
    /* Trial compile at batch 1: surfaces type, shape and attribute-value errors now. */
    graph *g;
    st = exec_compile_graph(m, 1, model->engine->float16_xnnpack, &g, err);
    if (st == VIGIL_OK) graph_free(g);
    return st;
}

vigil_status vigil_model_load(vigil_engine *engine, const char *path, vigil_model **out, vigil_error *err) {
    if (!engine || !path || !out) return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "model_load: NULL argument");
    *out = NULL;
    vigil_model *model = vigil_calloc(1, sizeof *model);
    if (!model) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    model->engine = engine;
    vigil_status st = onnx_load_file(path, &model->onnx, err);
    if (st == VIGIL_OK) st = model_init(model, err);
    if (st != VIGIL_OK) {
        if (err && !strstr(err->message, path)) vigil_error_prefix(err, "%s", path);
        vigil_model_free(model);
        return st;
    }
    *out = model;
    return VIGIL_OK;
}

void vigil_model_free(vigil_model *model) {
    if (!model) return;
    vigil_free(model->inputs);
    vigil_free(model->outputs);
    onnx_free(model->onnx);
    vigil_free(model);
}

size_t vigil_model_input_count(const vigil_model *m) {
    return m ? m->n_inputs : 0;
}
size_t vigil_model_output_count(const vigil_model *m) {
    return m ? m->n_outputs : 0;
}

const vigil_tensor_info *vigil_model_input(const vigil_model *m, size_t i) {
    return m && i < m->n_inputs ? &m->inputs[i] : NULL;
}

const vigil_tensor_info *vigil_model_output(const vigil_model *m, size_t i) {
    return m && i < m->n_outputs ? &m->outputs[i] : NULL;
}

const char *vigil_model_metadata(const vigil_model *m, const char *key) {
    return m && key ? onnx_metadata(m->onnx, key) : NULL;
}

int64_t vigil_model_opset(const vigil_model *m) {
    return m ? m->onnx->opset : 0;
}

int64_t vigil_model_native_batch(const vigil_model *m) {
    return m ? m->native_batch : 0;
}
