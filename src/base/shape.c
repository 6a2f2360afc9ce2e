/* Shape formatting (see autocv/tensor.h). */
#include "autocv/tensor.h"

#include <stdio.h>

char *acv_shape_str(const acv_shape *s, char *buf, int cap)
{
    int k = snprintf(buf, (size_t)cap, "[");
    for (int i = 0; i < s->ndim && k < cap; i++)
        k += snprintf(buf + k, (size_t)(cap - k), i ? ", %lld" : "%lld", (long long)s->d[i]);
    if (k < cap) snprintf(buf + k, (size_t)(cap - k), "]");
    return buf;
}
