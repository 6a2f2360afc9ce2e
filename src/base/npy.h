/* NumPy .npy files (format versions 1.0, 2.0 and 3.0): the exchange format for tensors
 * between AutoCV and Python, used by reference tests (activations and gradients dumped
 * from PyTorch) and by data tools.
 *
 * Writing produces float32, C-order files byte-identical to numpy.save. Reading accepts
 * float32 and converts float16, float64, the signed and unsigned integer types (1, 2, 4,
 * 8 bytes) and bool to float32, in either byte order; Fortran-order arrays, structured
 * and other dtypes are refused with ACV_EUNSUPPORTED. Up to ACV_MAX_DIMS dims. */
#ifndef ACV_BASE_NPY_H
#define ACV_BASE_NPY_H

#include <stddef.h>

#include "autocv/tensor.h"

/* Reads path into *data (malloc'd, numel floats; caller frees; non-NULL even for an
 * empty array) and its shape into *shape (ndim 0 for a 0-d array, which holds one
 * value). Errors name the file: ACV_ENOTFOUND / ACV_EIO when it cannot be read,
 * ACV_EFORMAT for a bad magic, version or header, or a data size that disagrees with the
 * shape (truncated or trailing bytes), ACV_EUNSUPPORTED for a dtype, Fortran order or
 * rank this reader does not handle. On failure *data is NULL. */
int acv_npy_load(const char *path, acv_shape *shape, float **data);
/* The same from a whole .npy image in memory (e.g. a member of an .npz archive); name
 * is used in error messages only. */
int acv_npy_load_mem(const void *buf, size_t len, const char *name, acv_shape *shape, float **data);
/* Writes shape and data (numel floats; may be NULL when numel is 0) to path as a
 * little-endian float32 array, atomically (a reader sees the old or the new file).
 * ACV_EINVAL for a bad shape, ACV_EIO when the file cannot be written. */
int acv_npy_save(const char *path, const acv_shape *shape, const float *data);

#endif
