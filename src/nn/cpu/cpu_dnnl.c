/* oneDNN plumbing for the CPU backend: one engine per process, one stream and a few
 * growable scratch buffers per thread, and prepared ops (a primitive plus the reorders
 * between the user's plain buffers and the primitive's layouts).
 *
 * Scratch is per thread rather than per node so that reordered copies of activations are
 * not kept alive for every node of a graph: a node's op only keeps its primitives and
 * memory descriptors, and borrows the thread's scratch while it runs. */
#include "nn/cpu/cpu.h"

#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "nn/backend.h"

typedef struct tls_state {
    dnnl_stream_t stream;
    void *buf[ACV__CPU_SCRATCH_SLOTS];
    size_t cap[ACV__CPU_SCRATCH_SLOTS];
} tls_state;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static bool g_key_ok;
static dnnl_engine_t g_engine;

static void tls_destroy(void *v)
{
    tls_state *t = v;
    if (!t) return;
    if (t->stream) dnnl_stream_destroy(t->stream);
    for (int i = 0; i < ACV__CPU_SCRATCH_SLOTS; i++) free(t->buf[i]);
    free(t);
}

static void init_once(void)
{
    g_key_ok = pthread_key_create(&g_key, tls_destroy) == 0;
    if (dnnl_engine_create(&g_engine, dnnl_cpu, 0) != dnnl_success) g_engine = NULL;
}

dnnl_engine_t acv__cpu_engine(void)
{
    pthread_once(&g_once, init_once);
    return g_engine;
}

static tls_state *tls_get(void)
{
    pthread_once(&g_once, init_once);
    if (!g_key_ok) return NULL;
    tls_state *t = pthread_getspecific(g_key);
    if (t) return t;
    t = calloc(1, sizeof *t);
    if (!t) return NULL;
    if (pthread_setspecific(g_key, t) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

dnnl_stream_t acv__cpu_stream(void)
{
    tls_state *t = tls_get();
    if (!t || !g_engine) return NULL;
    if (!t->stream && dnnl_stream_create(&t->stream, g_engine, dnnl_stream_default_flags) !=
                          dnnl_success)
        t->stream = NULL;
    return t->stream;
}

void *acv__cpu_scratch(int slot, size_t bytes)
{
    ACV_ASSERT(slot >= 0 && slot < ACV__CPU_SCRATCH_SLOTS);
    tls_state *t = tls_get();
    if (!t) return NULL;
    if (bytes == 0) bytes = 64;
    if (t->cap[slot] < bytes) {
        size_t cap = (bytes + 4095) & ~(size_t)4095;
        void *p = NULL;
        free(t->buf[slot]);
        t->buf[slot] = NULL;
        t->cap[slot] = 0;
        if (posix_memalign(&p, 64, cap) != 0) return NULL;
        t->buf[slot] = p;
        t->cap[slot] = cap;
    }
    return t->buf[slot];
}

void acv__cpu_sync_threads(void)
{
    int n = acv_get_threads();
    if (n > 0 && omp_get_max_threads() != n) omp_set_num_threads(n);
}

void acv__cpu_add(float *dst, const float *src, int64_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= (1 << 15))
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

bool acv__pd_is_naive(const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success ||
        !impl)
        return true;
    return strncmp(impl, "ref", 3) == 0;
}

static int64_t md_nelem(const dnnl_memory_desc_t *md)
{
    int64_t n = 1;
    for (int i = 0; i < md->ndims; i++) n *= md->dims[i];
    return n;
}

int acv__attr_user_scratchpad(dnnl_primitive_attr_t *attr)
{
    bool made = false;
    if (!*attr) {
        if (dnnl_primitive_attr_create(attr) != dnnl_success) {
            *attr = NULL;
            return -1;
        }
        made = true;
    }
    if (dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user) != dnnl_success) {
        if (made) {
            dnnl_primitive_attr_destroy(*attr);
            *attr = NULL;
        }
        return -1;
    }
    return 0;
}

/* A reorder from src to dst; with accumulate, dst = src + dst (sum post-op). *scratch gets
 * the memory object for its scratchpad when it needs one (the Winograd weight transform),
 * else NULL. */
static int make_reorder(dnnl_primitive_t *out, dnnl_memory_t *scratch, size_t *scratch_bytes,
                        const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst, bool accumulate)
{
    *scratch = NULL;
    *scratch_bytes = 0;
    dnnl_engine_t eng = acv__cpu_engine();
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int rc = -1;
    if (acv__attr_user_scratchpad(&attr)) goto done;
    if (accumulate) {
        if (dnnl_post_ops_create(&po) != dnnl_success) goto done;
        if (dnnl_post_ops_append_sum(po, 1.0f) != dnnl_success) goto done;
        if (dnnl_primitive_attr_set_post_ops(attr, po) != dnnl_success) goto done;
    }
    if (dnnl_reorder_primitive_desc_create(&pd, src, eng, dst, eng, attr) != dnnl_success) {
        pd = NULL;
        goto done;
    }
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (smd && dnnl_memory_desc_get_size(smd) > 0) {
        if (dnnl_memory_create(scratch, smd, eng, DNNL_MEMORY_NONE) != dnnl_success) {
            *scratch = NULL;
            goto done;
        }
        *scratch_bytes = dnnl_memory_desc_get_size(smd);
    }
    if (dnnl_primitive_create(out, pd) != dnnl_success) {
        *out = NULL;
        if (*scratch) dnnl_memory_destroy(*scratch);
        *scratch = NULL;
        goto done;
    }
    rc = 0;
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return rc;
}

void acv__op_free(acv__op *op)
{
    for (int i = 0; i < op->nargs; i++) {
        acv__op_arg *a = &op->a[i];
        if (a->reorder) dnnl_primitive_destroy(a->reorder);
        if (a->reorder_scratch) dnnl_memory_destroy(a->reorder_scratch);
        if (a->prim && a->prim != a->user) dnnl_memory_destroy(a->prim);
        free(a->const_buf);
        if (a->user) dnnl_memory_destroy(a->user);
    }
    if (op->scratch) dnnl_memory_destroy(op->scratch);
    if (op->prim) dnnl_primitive_destroy(op->prim);
    memset(op, 0, sizeof *op);
}

int acv__op_init(acv__op *op, dnnl_primitive_desc_t pd, int nargs, const int *args,
                 const acv__arg_dir *dirs, const dnnl_memory_desc_t *user_mds)
{
    memset(op, 0, sizeof *op);
    dnnl_engine_t eng = acv__cpu_engine();
    if (!pd) return -1;
    if (!eng || nargs > ACV__OP_MAX_ARGS) goto fail;
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
        impl)
        snprintf(op->impl, sizeof op->impl, "%s", impl);
    if (dnnl_primitive_create(&op->prim, pd) != dnnl_success) {
        op->prim = NULL;
        goto fail;
    }
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    op->scratch_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (op->scratch_bytes && dnnl_memory_create(&op->scratch, smd, eng, DNNL_MEMORY_NONE) != dnnl_success) {
        op->scratch = NULL;
        goto fail;
    }
    for (int i = 0; i < nargs; i++) {
        acv__op_arg *a = &op->a[i];
        op->nargs = i + 1;
        a->arg = args[i];
        a->dir = dirs[i];
        a->nelem = md_nelem(&user_mds[i]);
        const dnnl_memory_desc_t *pmd =
            dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, args[i]);
        if (!pmd || pmd->ndims == 0) goto fail;
        if (dnnl_memory_create(&a->user, &user_mds[i], eng, DNNL_MEMORY_NONE) != dnnl_success) {
            a->user = NULL;
            goto fail;
        }
        bool same = dnnl_memory_desc_equal(pmd, &user_mds[i]) != 0;
        if (same && dirs[i] != ACV__ARG_OUT_ADD) {
            a->prim = a->user;
            continue;
        }
        if (dnnl_memory_create(&a->prim, pmd, eng, DNNL_MEMORY_NONE) != dnnl_success) {
            a->prim = NULL;
            goto fail;
        }
        a->prim_bytes = dnnl_memory_desc_get_size(pmd);
        if (same) continue; /* OUT_ADD in the user's layout: added by acv__cpu_add */
        int rc = dirs[i] != ACV__ARG_OUT && dirs[i] != ACV__ARG_OUT_ADD
                     ? make_reorder(&a->reorder, &a->reorder_scratch, &a->reorder_scratch_bytes, &user_mds[i], pmd,
                                    false)
                     : make_reorder(&a->reorder, &a->reorder_scratch, &a->reorder_scratch_bytes, pmd, &user_mds[i],
                                    dirs[i] == ACV__ARG_OUT_ADD);
        if (rc != 0) goto fail;
    }
    dnnl_primitive_desc_destroy(pd);
    return 0;
fail:
    dnnl_primitive_desc_destroy(pd);
    acv__op_free(op);
    return -1;
}

/* Runs argument a's reorder from -> to, lending it the calling thread's scratchpad slot
 * when it needs one. */
static int run_reorder(const acv__op_arg *a, dnnl_stream_t s, dnnl_memory_t from, dnnl_memory_t to)
{
    dnnl_exec_arg_t ra[3] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}, {DNNL_ARG_SCRATCHPAD, a->reorder_scratch}};
    if (a->reorder_scratch) {
        void *buf = acv__cpu_scratch(ACV__CPU_SCRATCHPAD_SLOT, a->reorder_scratch_bytes);
        if (!buf || dnnl_memory_set_data_handle(a->reorder_scratch, buf) != dnnl_success) return -1;
    }
    return dnnl_primitive_execute(a->reorder, s, a->reorder_scratch ? 3 : 2, ra) == dnnl_success ? 0 : -1;
}

int acv__op_exec(acv__op *op, void *const *ptrs)
{
    if (!op->prim) return -1;
    dnnl_stream_t s = acv__cpu_stream();
    if (!s) return -1;
    dnnl_exec_arg_t ea[ACV__OP_MAX_ARGS + 1];
    for (int i = 0; i < op->nargs; i++) {
        acv__op_arg *a = &op->a[i];
        if (dnnl_memory_set_data_handle(a->user, ptrs[i]) != dnnl_success) return -1;
        if (a->prim != a->user && a->dir == ACV__ARG_IN_CONST) {
            if (a->const_src != ptrs[i] || !a->const_buf) {
                free(a->const_buf);
                a->const_buf = aligned_alloc(64, (a->prim_bytes + 63) / 64 * 64);
                a->const_src = NULL;
                if (!a->const_buf || dnnl_memory_set_data_handle(a->prim, a->const_buf) != dnnl_success ||
                    run_reorder(a, s, a->user, a->prim) || dnnl_stream_wait(s) != dnnl_success)
                    return -1;
                a->const_src = ptrs[i];
            }
            if (dnnl_memory_set_data_handle(a->prim, a->const_buf) != dnnl_success) return -1;
        } else if (a->prim != a->user) {
            void *buf = acv__cpu_scratch(i, a->prim_bytes);
            if (!buf || dnnl_memory_set_data_handle(a->prim, buf) != dnnl_success) return -1;
        }
        ea[i].arg = a->arg;
        ea[i].memory = a->prim;
    }
    for (int i = 0; i < op->nargs; i++) {
        acv__op_arg *a = &op->a[i];
        if (a->dir == ACV__ARG_IN && a->reorder && run_reorder(a, s, a->user, a->prim))
            return -1;
    }
    int n = op->nargs;
    if (op->scratch) {
        void *buf = acv__cpu_scratch(ACV__CPU_SCRATCHPAD_SLOT, op->scratch_bytes);
        if (!buf || dnnl_memory_set_data_handle(op->scratch, buf) != dnnl_success) return -1;
        ea[n].arg = DNNL_ARG_SCRATCHPAD;
        ea[n++].memory = op->scratch;
    }
    if (dnnl_primitive_execute(op->prim, s, n, ea) != dnnl_success) return -1;
    for (int i = 0; i < op->nargs; i++) {
        acv__op_arg *a = &op->a[i];
        if (a->dir == ACV__ARG_OUT && a->reorder && run_reorder(a, s, a->prim, a->user))
            return -1;
    }
    if (dnnl_stream_wait(s) != dnnl_success) return -1;
    /* Accumulation last: nothing the caller owns is touched before this point. */
    for (int i = 0; i < op->nargs; i++) {
        acv__op_arg *a = &op->a[i];
        if (a->dir != ACV__ARG_OUT_ADD) continue;
        if (a->reorder) {
            if (run_reorder(a, s, a->prim, a->user)) return -1;
        } else {
            void *buf = NULL;
            if (dnnl_memory_get_data_handle(a->prim, &buf) != dnnl_success) return -1;
            acv__cpu_add(ptrs[i], buf, a->nelem);
        }
    }
    return dnnl_stream_wait(s) == dnnl_success ? 0 : -1;
}
