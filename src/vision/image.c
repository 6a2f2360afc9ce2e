/* Image decoding and encoding: JPEG through libturbojpeg, PNG through libpng, BMP by
 * hand. Every decoder reads the dimensions from the header and refuses images over the
 * pixel limit before allocating the pixel buffer; truncated or corrupt data (including
 * what libjpeg only warns about) is ACV_EFORMAT with the source named. */
#include "vision/image.h"

#include <limits.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "autocv/error.h"
#include "base/file.h"
#include "vision/transform.h"

#define MAX_FILE_BYTES ((size_t)512 << 20)

static const uint8_t PNG_SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint32_t le32(const uint8_t *p) { return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0]; }
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

int acv_image_alloc(acv_image *im, int w, int h, int c)
{
    memset(im, 0, sizeof *im);
    if (w <= 0 || h <= 0 || (c != 1 && c != 3 && c != 4))
        return acv_error(ACV_EINVAL, "image size %dx%dx%d is invalid (need w, h > 0 and 1, 3 or 4 channels)",
                         w, h, c);
    size_t n = (size_t)w * (size_t)h;
    if (n > SIZE_MAX / 4) return acv_error(ACV_ERANGE, "image size %dx%d is too large", w, h);
    im->data = calloc(n * (size_t)c, 1);
    if (!im->data) return acv_error(ACV_ENOMEM, "out of memory allocating a %dx%dx%d image", w, h, c);
    im->w = w;
    im->h = h;
    im->c = c;
    return 0;
}

void acv_image_free(acv_image *im)
{
    if (!im) return;
    free(im->data);
    memset(im, 0, sizeof *im);
}

static int too_big(const char *what, const char *fmt, int64_t w, int64_t h, int64_t max_pixels)
{
    return acv_error(ACV_ERANGE, "%s: %s image is %lldx%lld (%lld pixels), over the limit of %lld pixels",
                     what, fmt, (long long)w, (long long)h, (long long)(w * h), (long long)max_pixels);
}

/* ---- EXIF ---- */

static uint32_t rd_tiff(const uint8_t *p, int nbytes, int le)
{
    uint32_t v = 0;
    for (int i = 0; i < nbytes; i++) v = v << 8 | p[le ? nbytes - 1 - i : i];
    return v;
}

/* Orientation tag (0x0112) of IFD0 in a TIFF structure, or 0 when absent/invalid. */
static int tiff_orientation(const uint8_t *t, size_t n)
{
    if (n < 8) return 0;
    int le;
    if (t[0] == 'I' && t[1] == 'I') le = 1;
    else if (t[0] == 'M' && t[1] == 'M') le = 0;
    else return 0;
    if (rd_tiff(t + 2, 2, le) != 42) return 0;
    uint32_t ifd = rd_tiff(t + 4, 4, le);
    if (ifd < 8 || ifd > n - 2) return 0;
    uint32_t count = rd_tiff(t + ifd, 2, le);
    for (uint32_t i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + 12 * (size_t)i;
        if (e + 12 > n) return 0;
        if (rd_tiff(t + e, 2, le) != 0x0112) continue;
        uint32_t type = rd_tiff(t + e + 2, 2, le), v;
        if (type == 3) v = rd_tiff(t + e + 8, 2, le);       /* SHORT */
        else if (type == 4) v = rd_tiff(t + e + 8, 4, le);  /* LONG (non-conforming writers) */
        else return 0;
        return v >= 1 && v <= 8 ? (int)v : 0;
    }
    return 0;
}

int acv_image_exif_orientation(const uint8_t *b, size_t n)
{
    if (n < 4 || b[0] != 0xFF || b[1] != 0xD8) return 1;
    size_t p = 2;
    while (p + 4 <= n) {
        if (b[p] != 0xFF) return 1;
        uint8_t m = b[p + 1];
        if (m == 0xFF) { p++; continue; }                   /* fill byte */
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) { p += 2; continue; }
        if (m == 0xDA || m == 0xD9) return 1;               /* SOS / EOI: no more headers */
        size_t seg = (size_t)b[p + 2] << 8 | b[p + 3];
        if (seg < 2 || p + 2 + seg > n) return 1;
        if (m == 0xE1 && seg >= 2 + 6 + 8 && memcmp(b + p + 4, "Exif\0\0", 6) == 0) {
            int o = tiff_orientation(b + p + 10, seg - 8);
            if (o) return o;
        }
        p += 2 + seg;
    }
    return 1;
}

/* ---- JPEG ---- */

/* Decodes a JPEG into *out (1 or 3 channels; 1 directly when want_c == 1). CMYK/YCCK
 * data is decoded as CMYK and converted with the Adobe (inverted) convention used by
 * libjpeg-turbo: R = C * K / 255. */
static int decode_jpeg(const uint8_t *buf, size_t len, const acv_decode_opts *o, const char *what,
                       acv_image *out)
{
    if (len > ULONG_MAX) return acv_error(ACV_ERANGE, "%s: JPEG data too large", what);
    tjhandle tj = tjInitDecompress();
    if (!tj) return acv_error(ACV_ENOMEM, "%s: cannot create a JPEG decoder: %s", what, tjGetErrorStr2(NULL));
    int w = 0, h = 0, subsamp = -1, cs = -1, rc = 0; /* the header call may succeed without setting them */
    uint8_t *cmyk = NULL;
    if (tjDecompressHeader3(tj, buf, (unsigned long)len, &w, &h, &subsamp, &cs) != 0) {
        rc = acv_error(ACV_EFORMAT, "%s: corrupt or truncated JPEG header (%s)", what, tjGetErrorStr2(tj));
        goto done;
    }
    if (w <= 0 || h <= 0 || cs < 0) {
        rc = acv_error(ACV_EFORMAT, "%s: truncated JPEG data (no frame header)", what);
        goto done;
    }
    if ((int64_t)w * h > o->max_pixels) {
        rc = too_big(what, "JPEG", w, h, o->max_pixels);
        goto done;
    }
    int is_cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    int c = (cs == TJCS_GRAY || (o->want_c == 1 && !is_cmyk)) ? 1 : 3;
    int flags = TJFLAG_STOPONWARNING;
    if ((rc = acv_image_alloc(out, w, h, c)) != 0) {
        rc = acv_error_prefix(rc, "%s: ", what);
        goto done;
    }
    if (is_cmyk) {
        cmyk = malloc((size_t)w * h * 4);
        if (!cmyk) {
            rc = acv_error(ACV_ENOMEM, "%s: out of memory decoding a %dx%d CMYK JPEG", what, w, h);
            goto done;
        }
    }
    int pf = is_cmyk ? TJPF_CMYK : c == 1 ? TJPF_GRAY : TJPF_RGB;
    if (tjDecompress2(tj, buf, (unsigned long)len, is_cmyk ? cmyk : out->data, w, 0, h, pf, flags) != 0) {
        rc = acv_error(ACV_EFORMAT, "%s: corrupt or truncated JPEG data (%s)", what, tjGetErrorStr2(tj));
        goto done;
    }
    if (is_cmyk) {
        size_t n = (size_t)w * h;
        for (size_t i = 0; i < n; i++) {
            const uint8_t *s = cmyk + 4 * i;
            uint8_t *d = out->data + 3 * i;
            for (int k = 0; k < 3; k++) d[k] = (uint8_t)((s[k] * s[3] + 127) / 255);
        }
    }
done:
    free(cmyk);
    if (rc) acv_image_free(out);
    tjDestroy(tj);
    return rc;
}

/* ---- PNG ---- */

typedef struct png_ctx {
    const uint8_t *buf;
    size_t len, pos;
    int truncated, nomem;
    char msg[200];
} png_ctx;

static void png_read_cb(png_structp png, png_bytep dst, size_t n)
{
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) {
        c->truncated = 1;
        png_error(png, "unexpected end of data");
    }
    memcpy(dst, c->buf + c->pos, n);
    c->pos += n;
}

static void png_error_cb(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warning_cb(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

/* Decodes a PNG to 8 bits per channel: 1 (gray), 3 (RGB) or 4 channels (RGBA; gray with
 * alpha becomes RGBA unless the caller drops alpha). *orientation receives the eXIf
 * orientation (1 when absent). */
static int decode_png(const uint8_t *buf, size_t len, const acv_decode_opts *o, const char *what,
                      acv_image *out, int *orientation)
{
    /* Read IHDR ourselves so that the size check needs no libpng allocation. */
    if (len < 33) return acv_error(ACV_EFORMAT, "%s: truncated PNG data", what);
    if (be32(buf + 8) != 13 || memcmp(buf + 12, "IHDR", 4) != 0)
        return acv_error(ACV_EFORMAT, "%s: corrupt PNG data (the first chunk is not IHDR)", what);
    uint32_t hw = be32(buf + 16), hh = be32(buf + 20);
    if (hw == 0 || hh == 0 || hw > PNG_UINT_31_MAX || hh > PNG_UINT_31_MAX)
        return acv_error(ACV_EFORMAT, "%s: corrupt PNG data (IHDR declares %ux%u)", what, hw, hh);
    if ((int64_t)hw * hh > o->max_pixels) return too_big(what, "PNG", hw, hh, o->max_pixels);

    png_ctx ctx = {.buf = buf, .len = len};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_error_cb, png_warning_cb);
    if (!png) return acv_error(ACV_ENOMEM, "%s: cannot create a PNG decoder", what);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return acv_error(ACV_ENOMEM, "%s: cannot create a PNG decoder", what);
    }
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        memset(out, 0, sizeof *out);
        if (ctx.nomem) return acv_error(ACV_ENOMEM, "%s: out of memory decoding a %ux%u PNG", what, hw, hh);
        if (ctx.truncated) return acv_error(ACV_EFORMAT, "%s: truncated PNG data", what);
        return acv_error(ACV_EFORMAT, "%s: corrupt PNG data (%s)", what, ctx.msg);
    }
    png_uint_32 lim = o->max_pixels < PNG_UINT_31_MAX ? (png_uint_32)o->max_pixels : PNG_UINT_31_MAX;
    png_set_user_limits(png, lim, lim);
    png_set_chunk_malloc_max(png, 16u << 20);
    png_set_read_fn(png, &ctx, png_read_cb);
    png_read_info(png, info);

    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    int has_alpha = (ctype & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS);
    int gray = !(ctype & PNG_COLOR_MASK_COLOR);
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (gray && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (depth == 16) png_set_scale_16(png);
    if (has_alpha && (o->want_c == 1 || o->want_c == 3)) png_set_strip_alpha(png);
    else if (has_alpha && gray) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int c = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((c != 1 && c != 3 && c != 4) || rowbytes != (size_t)w * c)
        png_error(png, "unexpected pixel layout after conversion");
    pixels = malloc(rowbytes * h);
    rows = malloc(sizeof(png_bytep) * h);
    if (!pixels || !rows) {
        ctx.nomem = 1;
        png_error(png, "out of memory");
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, info);

    *orientation = 1;
#ifdef PNG_eXIf_SUPPORTED
    png_uint_32 nexif = 0;
    png_bytep exif = NULL;
    if (png_get_eXIf_1(png, info, &nexif, &exif) && exif) {
        int ov = tiff_orientation(exif, nexif);
        if (ov) *orientation = ov;
    }
#endif
    out->w = (int)w;
    out->h = (int)h;
    out->c = c;
    out->data = pixels;
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

/* ---- BMP ---- */

static int mask_shift(uint32_t m) { int s = 0; while (m && !(m & 1)) { m >>= 1; s++; } return s; }
static int mask_bits(uint32_t m) { int n = 0; while (m) { n += m & 1; m >>= 1; } return n; }

static uint8_t mask_get(uint32_t px, uint32_t mask, int shift, int bits)
{
    uint32_t v = (px & mask) >> shift;
    if (bits == 8) return (uint8_t)v;
    uint32_t maxv = bits >= 32 ? 0xFFFFFFFFu : (1u << bits) - 1;
    return (uint8_t)(((uint64_t)v * 255 + maxv / 2) / maxv);
}

/* Decodes an uncompressed BMP: 8-bit palette (gray when the palette is gray), 24-bit,
 * 32-bit BI_RGB (4th byte ignored) or 32-bit BI_BITFIELDS (RGBA when an alpha mask is
 * given). Rows are bottom-up unless the height is negative. */
static int decode_bmp(const uint8_t *buf, size_t len, const acv_decode_opts *o, const char *what,
                      acv_image *out)
{
    if (len < 14 + 4) return acv_error(ACV_EFORMAT, "%s: truncated BMP header", what);
    uint32_t off = le32(buf + 10), dib = le32(buf + 14);
    if (dib == 12)
        return acv_error(ACV_EUNSUPPORTED, "%s: OS/2 BMP (12-byte header) is not supported", what);
    if (dib < 40 || dib > 1024) return acv_error(ACV_EFORMAT, "%s: corrupt BMP (header size %u)", what, dib);
    if (len < 14 + (size_t)dib) return acv_error(ACV_EFORMAT, "%s: truncated BMP header", what);
    int32_t w = (int32_t)le32(buf + 18), sh = (int32_t)le32(buf + 22);
    int bpp = le16(buf + 28);
    uint32_t comp = le32(buf + 30), nclr = le32(buf + 46);
    if (w <= 0 || sh == 0 || sh == INT32_MIN)
        return acv_error(ACV_EFORMAT, "%s: corrupt BMP (declares %dx%d)", what, w, sh);
    int top_down = sh < 0;
    int32_t h = top_down ? -sh : sh;
    if ((int64_t)w * h > o->max_pixels) return too_big(what, "BMP", w, h, o->max_pixels);

    uint32_t mr = 0, mg = 0, mb = 0, ma = 0;
    int ok = (comp == 0 && (bpp == 8 || bpp == 24 || bpp == 32)) || (comp == 3 && bpp == 32);
    if (!ok)
        return acv_error(ACV_EUNSUPPORTED,
                         "%s: unsupported BMP (%d bits per pixel, compression %u); only uncompressed 8-bit "
                         "palette, 24-bit and 32-bit BMPs are supported", what, bpp, comp);
    if (comp == 3) {
        size_t mo = 14 + 40; /* masks are in the V2+ header or follow a 40-byte header */
        if (mo + 12 > len) return acv_error(ACV_EFORMAT, "%s: truncated BMP header", what);
        mr = le32(buf + mo);
        mg = le32(buf + mo + 4);
        mb = le32(buf + mo + 8);
        if (dib >= 56 && mo + 16 <= len) ma = le32(buf + mo + 12);
        if (!mr || !mg || !mb) return acv_error(ACV_EFORMAT, "%s: corrupt BMP (zero colour mask)", what);
    }

    size_t stride = ((size_t)w * bpp + 31) / 32 * 4;
    size_t last = ((size_t)w * bpp + 7) / 8; /* some writers omit the last row's padding */
    if (off < 14 + dib || off > len || (len - off) < stride * (size_t)(h - 1) + last)
        return acv_error(ACV_EFORMAT, "%s: truncated BMP data", what);

    uint8_t pal[256][3] = {{0}};
    int c = 3;
    if (bpp == 8) {
        size_t n = nclr ? nclr : 256, po = 14 + (size_t)dib;
        if (n > 256) return acv_error(ACV_EFORMAT, "%s: corrupt BMP (%u palette entries)", what, nclr);
        if (po + 4 * n > off) return acv_error(ACV_EFORMAT, "%s: truncated BMP palette", what);
        int is_gray = 1;
        for (size_t i = 0; i < n; i++) {
            pal[i][0] = buf[po + 4 * i + 2];
            pal[i][1] = buf[po + 4 * i + 1];
            pal[i][2] = buf[po + 4 * i];
            is_gray &= pal[i][0] == pal[i][1] && pal[i][1] == pal[i][2];
        }
        c = is_gray ? 1 : 3;
    } else if (comp == 3 && ma) {
        c = 4;
    }
    int rc = acv_image_alloc(out, w, h, c);
    if (rc) return acv_error_prefix(rc, "%s: ", what);
    int sr = mask_shift(mr), sg = mask_shift(mg), sb = mask_shift(mb), sa = mask_shift(ma);
    int br = mask_bits(mr), bg = mask_bits(mg), bb = mask_bits(mb), ba = mask_bits(ma);
    for (int32_t y = 0; y < h; y++) {
        const uint8_t *s = buf + off + stride * (size_t)(top_down ? y : h - 1 - y);
        uint8_t *d = out->data + (size_t)y * w * c;
        for (int32_t x = 0; x < w; x++, d += c) {
            if (bpp == 8) {
                const uint8_t *p = pal[s[x]];
                if (c == 1) d[0] = p[0];
                else { d[0] = p[0]; d[1] = p[1]; d[2] = p[2]; }
            } else if (comp == 0) {
                const uint8_t *p = s + (size_t)x * (bpp / 8);
                d[0] = p[2]; d[1] = p[1]; d[2] = p[0];
            } else {
                uint32_t px = le32(s + 4 * (size_t)x);
                d[0] = mask_get(px, mr, sr, br);
                d[1] = mask_get(px, mg, sg, bg);
                d[2] = mask_get(px, mb, sb, bb);
                if (c == 4) d[3] = mask_get(px, ma, sa, ba);
            }
        }
    }
    return 0;
}

/* ---- dispatch ---- */

/* Replaces *im by f(*im) where f writes a new image into its last argument. */
static int replace_convert(acv_image *im, int c)
{
    acv_image t;
    int rc = acv_img_convert(im, c, &t);
    if (rc) return rc;
    acv_image_free(im);
    *im = t;
    return 0;
}

static int replace_orient(acv_image *im, int orientation)
{
    acv_image t;
    int rc = acv_img_orient(im, orientation, &t);
    if (rc) return rc;
    acv_image_free(im);
    *im = t;
    return 0;
}

int acv_image_decode(const uint8_t *buf, size_t len, const acv_decode_opts *opts, const char *what,
                     acv_image *out)
{
    memset(out, 0, sizeof *out);
    if (!what) what = "image";
    acv_decode_opts o = {.want_c = 0, .max_pixels = 0, .apply_exif = 1};
    if (opts) o = *opts;
    if (o.max_pixels <= 0) o.max_pixels = ACV_IMAGE_MAX_PIXELS_DEFAULT;
    if (o.want_c != 0 && o.want_c != 1 && o.want_c != 3 && o.want_c != 4)
        return acv_error(ACV_EINVAL, "%s: cannot decode to %d channels (0, 1, 3 or 4)", what, o.want_c);
    if (!buf || len == 0) return acv_error(ACV_EFORMAT, "%s: empty (0 bytes), not a JPEG, PNG or BMP image", what);

    int rc, orientation = 1;
    size_t sig = len < 8 ? len : 8;
    if (len >= 2 && buf[0] == 0xFF && buf[1] == 0xD8) {
        rc = decode_jpeg(buf, len, &o, what, out);
        if (!rc && o.apply_exif) orientation = acv_image_exif_orientation(buf, len);
    } else if (len >= 4 && memcmp(buf, PNG_SIG, sig) == 0) {
        rc = decode_png(buf, len, &o, what, out, &orientation);
        if (!o.apply_exif) orientation = 1;
    } else if (len >= 2 && buf[0] == 'B' && buf[1] == 'M') {
        rc = decode_bmp(buf, len, &o, what, out);
    } else {
        return acv_error(ACV_EFORMAT, "%s: not a JPEG, PNG or BMP image", what);
    }
    if (rc) return rc;

    /* Shrink channels before reorienting, grow after: both orders give the same pixels. */
    if (o.want_c && o.want_c < out->c && (rc = replace_convert(out, o.want_c)) != 0) goto fail;
    if (orientation != 1 && (rc = replace_orient(out, orientation)) != 0) goto fail;
    if (o.want_c && o.want_c != out->c && (rc = replace_convert(out, o.want_c)) != 0) goto fail;
    return 0;
fail:
    acv_image_free(out);
    return acv_error_prefix(rc, "%s: ", what);
}

int acv_image_load(const char *path, const acv_decode_opts *opts, acv_image *out)
{
    memset(out, 0, sizeof *out);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = acv_file_read(path, MAX_FILE_BYTES, &buf, &len);
    if (rc) return rc;
    rc = acv_image_decode(buf, len, opts, path, out);
    free(buf);
    return rc;
}

/* ---- encoders ---- */

static int check_image(const acv_image *im, const char *op)
{
    if (!im || !im->data || im->w <= 0 || im->h <= 0 || (im->c != 1 && im->c != 3 && im->c != 4))
        return acv_error(ACV_EINVAL, "%s: invalid image (%dx%dx%d)", op, im ? im->w : 0, im ? im->h : 0,
                         im ? im->c : 0);
    return 0;
}

typedef struct png_wbuf {
    uint8_t *data;
    size_t len, cap;
    int nomem;
} png_wbuf;

static void png_write_cb(png_structp png, png_bytep src, size_t n)
{
    png_wbuf *b = png_get_io_ptr(png);
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n) cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d) {
            b->nomem = 1;
            png_error(png, "out of memory");
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, src, n);
    b->len += n;
}

static void png_flush_cb(png_structp png) { (void)png; }

int acv_image_encode_png(const acv_image *im, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int rc = check_image(im, "PNG encode");
    if (rc) return rc;
    png_ctx ctx = {0};
    png_wbuf wb = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_error_cb, png_warning_cb);
    if (!png) return acv_error(ACV_ENOMEM, "cannot create a PNG encoder");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return acv_error(ACV_ENOMEM, "cannot create a PNG encoder");
    }
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        free(wb.data);
        png_destroy_write_struct(&png, &info);
        if (wb.nomem || ctx.nomem) return acv_error(ACV_ENOMEM, "out of memory encoding a %dx%d PNG", im->w, im->h);
        return acv_error(ACV_EFORMAT, "PNG encode failed: %s", ctx.msg);
    }
    png_set_write_fn(png, &wb, png_write_cb, png_flush_cb);
    int ctype = im->c == 1 ? PNG_COLOR_TYPE_GRAY : im->c == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGB_ALPHA;
    png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8, ctype, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    rows = malloc(sizeof(png_bytep) * (size_t)im->h);
    if (!rows) {
        ctx.nomem = 1;
        png_error(png, "out of memory");
    }
    for (int y = 0; y < im->h; y++) rows[y] = im->data + (size_t)y * im->w * im->c;
    png_write_image(png, rows);
    png_write_end(png, info);
    free(rows);
    png_destroy_write_struct(&png, &info);
    *out = wb.data;
    *len = wb.len;
    return 0;
}

int acv_image_encode_jpeg(const acv_image *im, int quality, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int rc = check_image(im, "JPEG encode");
    if (rc) return rc;
    if (quality < 1 || quality > 100)
        return acv_error(ACV_EINVAL, "JPEG quality %d is out of range (1-100)", quality);
    int subsamp = im->c == 1 ? TJSAMP_GRAY : quality >= 90 ? TJSAMP_444 : TJSAMP_420;
    int pf = im->c == 1 ? TJPF_GRAY : im->c == 3 ? TJPF_RGB : TJPF_RGBX;
    unsigned long cap = tjBufSize(im->w, im->h, subsamp);
    if (cap == (unsigned long)-1) return acv_error(ACV_ERANGE, "JPEG encode: image %dx%d too large", im->w, im->h);
    uint8_t *buf = malloc(cap);
    if (!buf) return acv_error(ACV_ENOMEM, "out of memory encoding a %dx%d JPEG", im->w, im->h);
    tjhandle tj = tjInitCompress();
    if (!tj) {
        free(buf);
        return acv_error(ACV_ENOMEM, "cannot create a JPEG encoder: %s", tjGetErrorStr2(NULL));
    }
    /* The buffer is tjBufSize()'s worst case, so libturbojpeg never needs to grow it. */
    unsigned char *jb = buf;
    unsigned long size = cap;
    if (tjCompress2(tj, im->data, im->w, 0, im->h, pf, &jb, &size, subsamp, quality, TJFLAG_NOREALLOC) != 0) {
        rc = acv_error(ACV_EFORMAT, "JPEG encode failed: %s", tjGetErrorStr2(tj));
        free(buf);
        tjDestroy(tj);
        return rc;
    }
    tjDestroy(tj);
    uint8_t *shrunk = realloc(buf, size);
    *out = shrunk ? shrunk : buf;
    *len = size;
    return 0;
}

static int save_encoded(int rc, uint8_t *data, size_t len, const char *path)
{
    if (rc) return acv_error_prefix(rc, "%s: ", path);
    rc = acv_file_write_atomic(path, data, len);
    free(data);
    return rc;
}

int acv_image_save_png(const acv_image *im, const char *path)
{
    uint8_t *data;
    size_t len;
    int rc = acv_image_encode_png(im, &data, &len);
    return save_encoded(rc, data, len, path);
}

int acv_image_save_jpeg(const acv_image *im, const char *path, int quality)
{
    uint8_t *data;
    size_t len;
    int rc = acv_image_encode_jpeg(im, quality, &data, &len);
    return save_encoded(rc, data, len, path);
}
