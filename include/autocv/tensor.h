/* Shapes and the small tensor helpers shared by the engine's public API. Tensors are
 * float32 and contiguous; image tensors are NCHW. */
#ifndef AUTOCV_TENSOR_H
#define AUTOCV_TENSOR_H

#include <stdint.h>

#define ACV_MAX_DIMS 6

typedef struct acv_shape {
    int ndim;
    int64_t d[ACV_MAX_DIMS];
} acv_shape;

static inline int64_t acv_shape_numel(const acv_shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->d[i];
    return n;
}

/* Makes a shape from up to four dims; unused trailing dims are ignored per ndim. */
static inline acv_shape acv_shape_make(int ndim, int64_t a, int64_t b, int64_t c, int64_t d)
{
    acv_shape s = {ndim, {a, b, c, d, 0, 0}};
    return s;
}

/* "[2, 3, 32, 32]" into buf; returns buf. */
char *acv_shape_str(const acv_shape *s, char *buf, int cap);

#endif
