/* MNIST-style idx files (http://yann.lecun.com/exdb/mnist/): a big-endian header
 * (two zero bytes, a type byte, a dimension count, then one uint32 per dimension)
 * followed by the raw data. Only the unsigned-byte type (0x08) is read, which is what
 * MNIST, Fashion-MNIST, KMNIST and EMNIST use. Files may be plain or gzip-compressed;
 * zlib's gzread reads both transparently. */
#ifndef ACV_DATA_IDX_H
#define ACV_DATA_IDX_H

#include <stddef.h>
#include <stdint.h>

#define ACV_IDX_MAX_DIMS 4

typedef struct acv_idx {
    int ndim;                       /* 1..ACV_IDX_MAX_DIMS */
    int dims[ACV_IDX_MAX_DIMS];     /* dims[0] is the item count */
    uint8_t *data;                  /* product(dims) bytes, row-major; owned */
    size_t size;                    /* product(dims) */
} acv_idx;

/* Reads a ubyte idx file of any rank. The file must hold exactly the bytes its header
 * announces: a bad magic, an unsupported type, fewer bytes (a truncated file or gzip
 * stream) or trailing bytes are ACV_EFORMAT with a message naming the file. Memory grows
 * with the bytes actually read, so a lying header cannot force a huge allocation.
 * On success the caller releases *out with acv_idx_free; on failure *out is zeroed. */
int acv_idx_read(const char *path, acv_idx *out);

/* Reads an image file: rank 3, (n, rows, cols). */
int acv_idx_read_images(const char *path, acv_idx *out);
/* Reads a label file: rank 1, (n). */
int acv_idx_read_labels(const char *path, acv_idx *out);

void acv_idx_free(acv_idx *idx);

/* Writes a ubyte idx file (gzip-compressed when gz is nonzero). dims has ndim entries
 * and data product(dims) bytes. Used by tests and by dataset export. */
int acv_idx_write(const char *path, int ndim, const int *dims, const uint8_t *data, int gz);

#endif
