/*
 * registry.c - the operator table: every op family's {0}-terminated array,
 * looked up by (domain, name), and the load-time check of a node against it.
 * ONNX's own operators have no domain in their op_def; a contrib operator
 * (com.microsoft's QLinearAdd, QLinearMul) names its domain and is found
 * only under it.  The opset a node is checked against is ONNX's, so contrib
 * rows accept any.
 */
#include <string.h>

#include "engine/ops/ops.h"

static const op_def *const families[] = {ops_conv,   ops_pool,   ops_eltwise, ops_shape, ops_movement, ops_resize,
                                         ops_reduce, ops_linalg, ops_norm,    ops_misc,  ops_layout,   ops_quant};

/* domain NULL: ONNX's own operators (and vigil's internal ones). */
static const op_def *find(const char *domain, const char *name, int internal) {
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const op_def *d = families[f]; d->name; d++) {
            int is_internal = strncmp(d->name, "vigil.", 6) == 0;
            int same_domain = domain ? d->domain && strcmp(d->domain, domain) == 0 : !d->domain;
            if (is_internal == internal && same_domain && strcmp(d->name, name) == 0) return d;
        }
    return NULL;
}

const op_def *ops_find(const char *domain, const char *name) {
    int onnx = !domain || !domain[0] || strcmp(domain, "ai.onnx") == 0;
    return find(onnx ? NULL : domain, name, 0);
}

const op_def *ops_find_internal(const char *name) {
    return find(NULL, name, 1);
}

vigil_status ops_check_node(const onnx_node *node, int64_t opset, vigil_error *err) {
    const op_def *op = ops_find(node->domain, node->op_type);
    if (!op) {
        if (node->domain && node->domain[0] && strcmp(node->domain, "ai.onnx") != 0)
            return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "operator domain '%s' is not supported",
                                 node->domain);
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "operator is not supported");
    }
    if (opset < op->min_opset || opset > op->max_opset)
        return op_check_fail(node, VIGIL_ERR_UNSUPPORTED, err, "opset %lld is not supported (only %d..%d)",
                             (long long)opset, op->min_opset, op->max_opset);
    if (node->n_outputs < 1 || !node->outputs[0][0]) return op_check_fail(node, VIGIL_ERR_PARSE, err, "has no output");
    int min_in = op->min_inputs < 0 ? 0 : op->min_inputs ? op->min_inputs : 1;
    if (node->n_inputs < (size_t)min_in)
        return op_check_fail(node, VIGIL_ERR_PARSE, err, "needs at least %d inputs", min_in);
    for (int i = 0; i < min_in; i++)
        if (!node->inputs[i][0]) return op_check_fail(node, VIGIL_ERR_PARSE, err, "input %d is required", i);
    vigil_status st = op_check_attrs(node, op, err);
    if (st == VIGIL_OK && op->check) st = op->check(node, opset, err);
    return st;
}

int ops_list(const char **names, int max) {
    int n = 0;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const op_def *d = families[f]; d->name; d++) {
            if (strncmp(d->name, "vigil.", 6) == 0) continue;
            if (n < max) names[n] = d->name;
            n++;
        }
    return n;
}
