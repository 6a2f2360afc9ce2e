/* idx file reading and writing (see idx.h). */
#include "data/idx.h"

#include "autocv/error.h"
#include "base/file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08
/* Refuse headers announcing more than 16 GiB; no idx data set comes near that. */
#define IDX_MAX_BYTES ((uint64_t)1 << 34)
#define IDX_CHUNK ((unsigned)4 << 20)

static const char *gz_msg(gzFile f)
{
    int zerr = 0;
    const char *m = gzerror(f, &zerr);
    return (m && *m) ? m : "read error";
}

/* Reads exactly n bytes; returns the count read (< n at end of data) or -1 on error. */
static long long gz_read_full(gzFile f, uint8_t *dst, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got;
        unsigned step = want > IDX_CHUNK ? IDX_CHUNK : (unsigned)want;
        int r = gzread(f, dst + got, step);
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (long long)got;
}

int acv_idx_read(const char *path, acv_idx *out)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st) != 0)
        return acv_error(errno == ENOENT ? ACV_ENOTFOUND : ACV_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return acv_error(ACV_EIO, "%s: not a regular file", path);
    gzFile f = gzopen(path, "rb");
    if (!f) return acv_error(ACV_EIO, "%s: cannot open: %s", path, strerror(errno ? errno : EIO));
    gzbuffer(f, 1 << 18);

    int rc = 0;
    uint8_t *data = NULL;
    uint8_t head[4];
    long long got = gz_read_full(f, head, 4);
    if (got < 0) { rc = acv_error(ACV_EFORMAT, "%s: %s", path, gz_msg(f)); goto done; }
    if (got < 4) {
        rc = acv_error(ACV_EFORMAT, "%s: only %lld bytes, too short for an idx header", path, got);
        goto done;
    }
    if (head[0] != 0 || head[1] != 0) {
        rc = acv_error(ACV_EFORMAT, "%s: bad magic %02x %02x (an idx file starts with two zero bytes)",
                       path, head[0], head[1]);
        goto done;
    }
    if (head[2] != IDX_TYPE_UBYTE) {
        rc = acv_error(ACV_EUNSUPPORTED, "%s: idx element type 0x%02x is not supported (only 0x08, unsigned byte)",
                       path, head[2]);
        goto done;
    }
    int ndim = head[3];
    if (ndim < 1 || ndim > ACV_IDX_MAX_DIMS) {
        rc = acv_error(ACV_EFORMAT, "%s: idx header has %d dimensions (expected 1 to %d)", path, ndim,
                       ACV_IDX_MAX_DIMS);
        goto done;
    }
    uint8_t dimb[4 * ACV_IDX_MAX_DIMS];
    got = gz_read_full(f, dimb, (size_t)ndim * 4);
    if (got < 0) { rc = acv_error(ACV_EFORMAT, "%s: %s", path, gz_msg(f)); goto done; }
    if (got < ndim * 4) { rc = acv_error(ACV_EFORMAT, "%s: truncated idx header", path); goto done; }
    uint64_t total = 1;
    for (int d = 0; d < ndim; d++) {
        const uint8_t *b = dimb + 4 * d;
        uint32_t v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (v > (uint32_t)INT32_MAX) {
            rc = acv_error(ACV_EFORMAT, "%s: dimension %d is %u, too large", path, d, v);
            goto done;
        }
        out->dims[d] = (int)v;
        /* checked before multiplying: dims like [2^30, 16, 2^30] must not wrap to 0 */
        if (v && total > IDX_MAX_BYTES / v) {
            rc = acv_error(ACV_ERANGE, "%s: idx header announces more than %llu bytes", path,
                           (unsigned long long)IDX_MAX_BYTES);
            goto done;
        }
        total *= v;
    }
    out->ndim = ndim;

    /* Grow the buffer with the data actually present, never trusting the header alone. */
    size_t want = (size_t)total, cap = want < (16u << 20) ? want : (16u << 20), have = 0;
    data = malloc(cap ? cap : 1);
    if (!data) { rc = acv_error(ACV_ENOMEM, "%s: cannot allocate %zu bytes", path, cap); goto done; }
    while (have < want) {
        if (have == cap) {
            size_t ncap = cap * 2 < want ? cap * 2 : want;
            uint8_t *nd = realloc(data, ncap);
            if (!nd) { rc = acv_error(ACV_ENOMEM, "%s: cannot allocate %zu bytes", path, ncap); goto done; }
            data = nd;
            cap = ncap;
        }
        got = gz_read_full(f, data + have, cap - have);
        if (got < 0) {
            rc = acv_error(ACV_EFORMAT, "%s: corrupt data after %zu of %zu bytes: %s", path, have, want, gz_msg(f));
            goto done;
        }
        have += (size_t)got;
        if (have < cap) break;
    }
    if (have < want) {
        int zerr = 0;
        gzerror(f, &zerr);
        rc = acv_error(ACV_EFORMAT, "%s: truncated%s: header announces %zu data bytes, file holds %zu", path,
                       zerr == Z_BUF_ERROR ? " gzip stream" : "", want, have);
        goto done;
    }
    uint8_t extra;
    got = gz_read_full(f, &extra, 1);
    if (got < 0) { rc = acv_error(ACV_EFORMAT, "%s: corrupt data at the end: %s", path, gz_msg(f)); goto done; }
    if (got > 0) {
        rc = acv_error(ACV_EFORMAT, "%s: size mismatch: more bytes than the %zu the header announces", path,
                       want);
        goto done;
    }
    out->data = data;
    out->size = want;
    data = NULL;
done:
    gzclose(f);
    free(data);
    if (rc) memset(out, 0, sizeof *out);
    return rc;
}

static int read_rank(const char *path, acv_idx *out, int rank, const char *what)
{
    int rc = acv_idx_read(path, out);
    if (rc) return rc;
    if (out->ndim != rank) {
        int nd = out->ndim;
        acv_idx_free(out);
        return acv_error(ACV_EFORMAT, "%s: an idx %s file has %d dimension%s, this one has %d", path, what, rank,
                         rank == 1 ? "" : "s", nd);
    }
    return 0;
}

int acv_idx_read_images(const char *path, acv_idx *out) { return read_rank(path, out, 3, "image"); }
int acv_idx_read_labels(const char *path, acv_idx *out) { return read_rank(path, out, 1, "label"); }

void acv_idx_free(acv_idx *idx)
{
    if (!idx) return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}

/* Gzip-compresses src into a malloc'd buffer. */
static int gzip_buffer(const uint8_t *src, size_t n, uint8_t **out, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return acv_error(ACV_ENOMEM, "gzip: deflateInit2 failed");
    size_t cap = deflateBound(&zs, (uLong)n) + 64;
    uint8_t *buf = malloc(cap);
    if (!buf) { deflateEnd(&zs); return acv_error(ACV_ENOMEM, "gzip: cannot allocate %zu bytes", cap); }
    zs.next_in = (Bytef *)src;
    zs.avail_in = (uInt)n;
    zs.next_out = buf;
    zs.avail_out = (uInt)cap;
    int zr = deflate(&zs, Z_FINISH);
    size_t len = cap - zs.avail_out;
    deflateEnd(&zs);
    if (zr != Z_STREAM_END) { free(buf); return acv_error(ACV_EIO, "gzip: deflate failed (%d)", zr); }
    *out = buf;
    *out_len = len;
    return 0;
}

int acv_idx_write(const char *path, int ndim, const int *dims, const uint8_t *data, int gz)
{
    if (ndim < 1 || ndim > ACV_IDX_MAX_DIMS)
        return acv_error(ACV_EINVAL, "%s: idx rank %d not in 1..%d", path, ndim, ACV_IDX_MAX_DIMS);
    uint64_t total = 1;
    for (int d = 0; d < ndim; d++) {
        if (dims[d] < 0) return acv_error(ACV_EINVAL, "%s: negative idx dimension %d", path, dims[d]);
        total *= (uint64_t)dims[d];
    }
    if (total > ((uint64_t)1 << 31))
        return acv_error(ACV_ERANGE, "%s: idx data of %llu bytes is too large to write", path,
                         (unsigned long long)total);
    size_t hl = 4 + 4 * (size_t)ndim, n = hl + (size_t)total;
    uint8_t *raw = malloc(n);
    if (!raw) return acv_error(ACV_ENOMEM, "%s: cannot allocate %zu bytes", path, n);
    raw[0] = 0; raw[1] = 0; raw[2] = IDX_TYPE_UBYTE; raw[3] = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++) {
        uint32_t v = (uint32_t)dims[d];
        raw[4 + 4 * d] = (uint8_t)(v >> 24);
        raw[5 + 4 * d] = (uint8_t)(v >> 16);
        raw[6 + 4 * d] = (uint8_t)(v >> 8);
        raw[7 + 4 * d] = (uint8_t)v;
    }
    if (total) memcpy(raw + hl, data, (size_t)total);
    int rc;
    if (gz) {
        uint8_t *zbuf = NULL;
        size_t zlen = 0;
        rc = gzip_buffer(raw, n, &zbuf, &zlen);
        if (rc == 0) rc = acv_file_write_atomic(path, zbuf, zlen);
        free(zbuf);
    } else {
        rc = acv_file_write_atomic(path, raw, n);
    }
    free(raw);
    return rc;
}
