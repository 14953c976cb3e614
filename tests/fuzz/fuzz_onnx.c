/*
 * fuzz_onnx.c - libFuzzer target for the ONNX loader: onnx_load_buffer and
 * onnx_tensor_decode on arbitrary bytes.  A successful load is walked end to
 * end (every string, every attribute array, every tensor byte) so that
 * AddressSanitizer sees any pointer the decoder got wrong; then the engine
 * validates it and compiles it at batch 1 (shape inference, constant
 * folding, passes), as loading a model does, so that every operator's load
 * checks and the kernels of folded constants (the quantization operators'
 * among them) see hostile graphs too.  Its corpus
 * (tests/fuzz/corpus/onnx/) is replayed in every ctest run: seeds written by
 * tools/gen_onnx_corpus.py, regress_* inputs that once failed, and fz_* small
 * inputs libFuzzer found to add coverage.
 */
#include <stdint.h>
#include <string.h>

#include "engine/exec.h"
#include "engine/onnx.h"

static volatile size_t fuzz_sink;

static void touch(const void *p, size_t n) {
    const uint8_t *b = p;
    size_t sum = 0;
    for (size_t i = 0; i < n; i++) sum += b[i];
    fuzz_sink += sum;
}

static void touch_str(const char *s) { touch(s, strlen(s) + 1); }

static void touch_tensor(const onnx_tensor *t) {
    touch_str(t->name);
    if (t->data) touch(t->data, t->nbytes);
}

static void touch_values(const onnx_value_info *vi, size_t n) {
    for (size_t i = 0; i < n; i++) {
        touch_str(vi[i].name);
        for (int k = 0; k < vi[i].ndim; k++)
            if (vi[i].dim_params[k]) touch_str(vi[i].dim_params[k]);
    }
}

static void touch_model(const onnx_model *m) {
    for (size_t i = 0; i < m->n_nodes; i++) {
        const onnx_node *n = &m->nodes[i];
        touch_str(n->name);
        touch_str(n->op_type);
        touch_str(n->domain);
        for (size_t k = 0; k < n->n_inputs; k++) touch_str(n->inputs[k]);
        for (size_t k = 0; k < n->n_outputs; k++) touch_str(n->outputs[k]);
        for (size_t k = 0; k < n->n_attrs; k++) {
            const onnx_attr *a = &n->attrs[k];
            touch_str(a->name);
            if (a->s) touch(a->s, a->s_len + 1);
            touch(a->floats, a->n_floats * sizeof *a->floats);
            touch(a->ints, a->n_ints * sizeof *a->ints);
            for (size_t j = 0; j < a->n_strings; j++) touch_str(a->strings[j]);
            if (a->t) touch_tensor(a->t);
        }
        onnx_node_attr(n, "axis");
    }
    for (size_t i = 0; i < m->n_initializers; i++) {
        touch_tensor(&m->initializers[i]);
        fuzz_sink += onnx_find_initializer(m, m->initializers[i].name) != NULL;
    }
    touch_values(m->inputs, m->n_inputs);
    touch_values(m->outputs, m->n_outputs);
    touch_values(m->value_infos, m->n_value_infos);
    for (size_t i = 0; i < m->n_metadata; i++) {
        touch_str(m->metadata[i].key);
        touch_str(m->metadata[i].value);
    }
    fuzz_sink += onnx_metadata(m, "names") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    onnx_model *model = NULL;
    vigil_error err;
    if (onnx_load_buffer(data, size, NULL, &model, &err) == VIGIL_OK) {
        touch_model(model);
        graph *g = NULL;
        if (exec_validate(model, &err) == VIGIL_OK && exec_compile_graph(model, 1, 0, &g, &err) == VIGIL_OK)
            graph_free(g);
    }
    onnx_free(model);
    onnx_tensor *tensor = NULL;
    if (onnx_tensor_decode(data, size, &tensor, &err) == VIGIL_OK) touch_tensor(tensor);
    onnx_tensor_free(tensor);
    return 0;
}
