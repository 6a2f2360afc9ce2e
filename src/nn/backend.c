/* Backend lookup and the process-wide thread count shared by OpenMP, OpenBLAS and oneDNN
 * (the Debian oneDNN build runs on OpenMP, so its team size is OpenMP's). */
#include "nn/backend.h"

#include <omp.h>
#include <stdatomic.h>
#include <string.h>

/* Declared by OpenBLAS's cblas.h in some builds only. */
void openblas_set_num_threads(int num_threads);

static const acv_backend g_ref = {.name = "ref"};

const acv_backend *acv_backend_ref(void) { return &g_ref; }

const acv_backend *acv_backend_by_name(const char *name)
{
    if (!name) return NULL;
    if (strcmp(name, "cpu") == 0) return acv_backend_cpu();
    if (strcmp(name, "ref") == 0) return acv_backend_ref();
    return NULL;
}

static _Atomic int g_threads; /* 0 until acv_set_threads is called */

/* n <= 0 means all cores (omp_get_num_procs). The OpenMP count is set for the calling
 * thread; the CPU backend's kernels re-apply it on whichever thread calls them. */
void acv_set_threads(int n)
{
    if (n <= 0) n = omp_get_num_procs();
    if (n < 1) n = 1;
    atomic_store(&g_threads, n);
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

static _Thread_local int t_threads; /* this thread's own count (0: the process's) */

void acv_set_thread_threads(int n) { t_threads = n > 0 ? n : 0; }

/* This thread's count (acv_set_thread_threads), else the count set by acv_set_threads, or
 * OpenMP's default before any call. */
int acv_get_threads(void)
{
    if (t_threads > 0) return t_threads;
    int n = atomic_load(&g_threads);
    return n > 0 ? n : omp_get_max_threads();
}
