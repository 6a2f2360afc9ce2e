/* Image decoding and encoding: JPEG decoded through libjpeg(-turbo)'s own API and encoded
 * through TurboJPEG, PNG through libpng, BMP by hand. Every decoder reads the dimensions
 * from the header and refuses images over the pixel limit before allocating the pixel
 * buffer; truncated or corrupt data (including what libjpeg only warns about, when it
 * means lost pixels) is ACV_EFORMAT with the source named. */
#include "vision/image.h"

#include <limits.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
/* after stdio.h */
#include <jpeglib.h>
#include <jerror.h>

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

/* Decoding goes through libjpeg's own API (the TurboJPEG API, used for encoding, either
 * ignores every warning or stops at the first): libjpeg reports damaged data as warnings
 * and carries on with grey blocks, so each warning is judged here. */

#define JPEG_MAX_SCANS 500 /* a progressive JPEG with more scans is hostile (quadratic time) */

typedef struct jpeg_guard {
    struct jpeg_error_mgr pub;
    struct jpeg_progress_mgr progress;
    jmp_buf jb;
    int eof;                  /* the data ended early: libjpeg inserted an EOI marker */
    int code;                 /* ACV_E* for the failure */
    char msg[JMSG_LENGTH_MAX];
} jpeg_guard;

static void jpeg_fail(j_common_ptr ci)
{
    jpeg_guard *g = (jpeg_guard *)ci->err;
    ci->err->format_message(ci, g->msg);
    int mc = ci->err->msg_code;
    g->code = mc == JERR_BAD_PRECISION || mc == JERR_SOF_UNSUPPORTED || mc == JERR_NOT_COMPILED ||
                      mc == JERR_ARITH_NOTIMPL || mc == JERR_CONVERSION_NOTIMPL
                  ? ACV_EUNSUPPORTED
              : mc == JERR_OUT_OF_MEMORY ? ACV_ENOMEM
                                         : ACV_EFORMAT;
    longjmp(g->jb, 1);
}

/* Warnings (level -1) about metadata or stray bytes leave every pixel intact and are
 * ignored, as other decoders ignore them; the end of the data is judged after decoding
 * (a missing EOI marker loses nothing); any other warning means lost or garbled pixels. */
static void jpeg_warn(j_common_ptr ci, int level)
{
    if (level >= 0) return; /* trace messages */
    jpeg_guard *g = (jpeg_guard *)ci->err;
    switch (ci->err->msg_code) {
    case JWRN_EXTRANEOUS_DATA: /* "N extraneous bytes before marker": padding some writers leave */
    case JWRN_JFIF_MAJOR:      /* unknown JFIF revision */
    case JWRN_ADOBE_XFORM:     /* unknown Adobe transform code: libjpeg guesses from the components */
    case JWRN_NOT_SEQUENTIAL:  /* odd but harmless SOS parameters in a baseline file */
    case JWRN_BOGUS_ICC:       /* a broken ICC profile, which is not used */
        ci->err->num_warnings++;
        return;
    case JWRN_JPEG_EOF:
        g->eof = 1;
        return;
    default:
        jpeg_fail(ci);
    }
}

static void jpeg_progress(j_common_ptr ci)
{
    j_decompress_ptr d = (j_decompress_ptr)ci;
    if (d->input_scan_number > JPEG_MAX_SCANS) {
        jpeg_guard *g = (jpeg_guard *)ci->err;
        snprintf(g->msg, sizeof g->msg, "more than %d scans", JPEG_MAX_SCANS);
        g->code = ACV_EFORMAT;
        longjmp(g->jb, 1);
    }
}

/* Whether the data, should it end early, still held every pixel (only the EOI marker or
 * trailing padding missing). A Huffman decoder that runs out of bits mid-scan warns (a
 * fatal JWRN_HIT_MARKER), so what remains to check is whether a scan is missing: a
 * progressive image must have every coefficient refined to full precision, a sequential one
 * must have had all its components in one scan. Arithmetic decoders pad silently: refused.
 * Called once all input is consumed (a progressive file is read whole by
 * jpeg_start_decompress) and before jpeg_finish_decompress frees coef_bits. */
static int jpeg_complete(j_decompress_ptr d)
{
    if (d->arith_code) return 0;
    if (d->progressive_mode) {
        if (!d->coef_bits) return 0;
        for (int c = 0; c < d->num_components; c++)
            for (int k = 0; k < DCTSIZE2; k++)
                if (d->coef_bits[c][k] != 0) return 0;
        return 1;
    }
    return d->comps_in_scan == d->num_components;
}

/* Decodes a JPEG into *out: gray JPEGs to 1 channel, colour ones to 3 (1 directly when
 * want_c == 1). CMYK and YCCK are converted to RGB with the samples taken as inverted, as
 * Photoshop (Adobe APP14 marker) writes them: R = C * K / 255, the convention of Pillow
 * (hence torchvision's ImageFolder) and OpenCV. 12-bit, lossless and hierarchical JPEGs are
 * ACV_EUNSUPPORTED. */
static int decode_jpeg(const uint8_t *buf, size_t len, const acv_decode_opts *o, const char *what,
                       acv_image *out)
{
    if (len > ULONG_MAX) return acv_error(ACV_ERANGE, "%s: JPEG data too large", what);
    struct jpeg_decompress_struct d;
    jpeg_guard g;
    memset(&d, 0, sizeof d);
    memset(&g, 0, sizeof g);
    d.err = jpeg_std_error(&g.pub);
    g.pub.error_exit = jpeg_fail;
    g.pub.emit_message = jpeg_warn;
    g.progress.progress_monitor = jpeg_progress;
    volatile int stage = 0; /* 0: header, 1: pixels */
    if (setjmp(g.jb)) {
        jpeg_destroy_decompress(&d);
        acv_image_free(out);
        if (g.code == ACV_ENOMEM) return acv_error(ACV_ENOMEM, "%s: out of memory decoding a JPEG (%s)", what, g.msg);
        if (g.code == ACV_EUNSUPPORTED)
            return acv_error(ACV_EUNSUPPORTED, "%s: unsupported JPEG variant (%s); only 8-bit baseline and progressive "
                             "JPEGs are supported", what, g.msg);
        if (g.eof) return acv_error(ACV_EFORMAT, "%s: truncated JPEG data (the file ends early: %s)", what, g.msg);
        return acv_error(ACV_EFORMAT, "%s: corrupt JPEG %s (%s)", what, stage ? "data" : "header", g.msg);
    }
    jpeg_create_decompress(&d);
    d.progress = &g.progress;
    jpeg_mem_src(&d, buf, (unsigned long)len);
    jpeg_read_header(&d, TRUE);
    int w = (int)d.image_width, h = (int)d.image_height;
    if (g.eof) {
        snprintf(g.msg, sizeof g.msg, "no image data");
        longjmp(g.jb, 1);
    }
    if ((int64_t)w * h > o->max_pixels) {
        jpeg_destroy_decompress(&d);
        return too_big(what, "JPEG", w, h, o->max_pixels);
    }
    int nc = d.num_components;
    int is_cmyk = d.jpeg_color_space == JCS_CMYK || d.jpeg_color_space == JCS_YCCK;
    if (nc != 1 && nc != 3 && !(nc == 4 && is_cmyk)) {
        jpeg_destroy_decompress(&d);
        return acv_error(ACV_EUNSUPPORTED, "%s: unsupported JPEG variant (%d colour components); only gray, colour "
                         "and CMYK JPEGs are supported", what, nc);
    }
    int c = (d.jpeg_color_space == JCS_GRAYSCALE || (o->want_c == 1 && !is_cmyk)) ? 1 : 3;
    d.out_color_space = is_cmyk ? JCS_CMYK : c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    d.dct_method = JDCT_ISLOW;
    int rc = acv_image_alloc(out, w, h, c);
    if (rc) {
        jpeg_destroy_decompress(&d);
        return acv_error_prefix(rc, "%s: ", what);
    }
    stage = 1;
    jpeg_start_decompress(&d);
    if ((int)d.output_width != w || (int)d.output_height != h || d.output_components != (is_cmyk ? 4 : c)) {
        snprintf(g.msg, sizeof g.msg, "unexpected output layout");
        longjmp(g.jb, 1);
    }
    JSAMPARRAY cmyk = is_cmyk ? d.mem->alloc_sarray((j_common_ptr)&d, JPOOL_IMAGE, (JDIMENSION)w * 4, 1) : NULL;
    while (d.output_scanline < d.output_height) {
        JSAMPROW rows[16];
        JDIMENSION y0 = d.output_scanline, n = d.output_height - y0;
        if (n > 16) n = 16;
        if (is_cmyk) n = 1;
        for (JDIMENSION i = 0; i < n; i++) rows[i] = is_cmyk ? cmyk[0] : out->data + (size_t)(y0 + i) * w * c;
        if (jpeg_read_scanlines(&d, rows, n) == 0) {
            snprintf(g.msg, sizeof g.msg, "no progress at scanline %u", (unsigned)y0);
            longjmp(g.jb, 1);
        }
        if (!is_cmyk) continue;
        uint8_t *dst = out->data + (size_t)y0 * w * 3;
        for (int x = 0; x < w; x++, dst += 3) {
            const uint8_t *s = cmyk[0] + 4 * x;
            for (int j = 0; j < 3; j++) dst[j] = (uint8_t)((s[j] * s[3] + 127) / 255);
        }
    }
    int complete = d.progressive_mode ? jpeg_complete(&d) : 1;
    jpeg_finish_decompress(&d);
    if (g.eof && !(d.progressive_mode ? complete : jpeg_complete(&d))) {
        snprintf(g.msg, sizeof g.msg, "%s missing", d.progressive_mode ? "later scans are" : "image data is");
        longjmp(g.jb, 1);
    }
    jpeg_destroy_decompress(&d);
    return 0;
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
    /* Set once every row is decoded: what follows (the rest of the last IDAT, IEND) may be
     * missing without losing a pixel, as Pillow also accepts. */
    volatile png_uint_32 done_w = 0, done_h = 0;
    volatile int done_c = 0;
    if (setjmp(png_jmpbuf(png))) {
        if (done_c && ctx.truncated && !ctx.nomem) goto finish;
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
    done_w = w;
    done_h = h;
    done_c = c;
    png_read_end(png, info);

finish:
    *orientation = 1;
#ifdef PNG_eXIf_SUPPORTED
    png_uint_32 nexif = 0;
    png_bytep exif = NULL;
    if (png_get_eXIf_1(png, info, &nexif, &exif) && exif) {
        int ov = tiff_orientation(exif, nexif);
        if (ov) *orientation = ov;
    }
#endif
    out->w = (int)done_w;
    out->h = (int)done_h;
    out->c = done_c;
    out->data = pixels;
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

/* ---- BMP ---- */

static int mask_shift(uint32_t m) { int s = 0; while (m && !(m & 1)) { m >>= 1; s++; } return s; }
static int mask_bits(uint32_t m) { int n = 0; while (m) { n += m & 1; m >>= 1; } return n; }
/* A usable colour mask: nonzero, one run of set bits. */
static int mask_ok(uint32_t m)
{
    if (!m) return 0;
    uint32_t v = m >> mask_shift(m);
    return (v & (v + 1)) == 0;
}

static uint8_t mask_get(uint32_t px, uint32_t mask, int shift, int bits)
{
    uint32_t v = (px & mask) >> shift;
    if (bits == 8) return (uint8_t)v;
    uint32_t maxv = bits >= 32 ? 0xFFFFFFFFu : (1u << bits) - 1;
    return (uint8_t)(((uint64_t)v * 255 + maxv / 2) / maxv);
}

static const char *bmp_compression_name(uint32_t comp)
{
    static const char *const names[] = {"uncompressed", "RLE8", "RLE4", "BITFIELDS", "embedded JPEG", "embedded PNG",
                                        "ALPHABITFIELDS"};
    return comp < sizeof names / sizeof names[0] ? names[comp] : "an unknown compression";
}

static void bmp_put_index(acv_image *im, int64_t x, int64_t y, unsigned i, const uint8_t (*pal)[3])
{
    uint8_t *d = im->data + ((size_t)y * im->w + (size_t)x) * im->c;
    if (im->c == 1) d[0] = pal[i][0];
    else { d[0] = pal[i][0]; d[1] = pal[i][1]; d[2] = pal[i][2]; }
}

/* Decodes an RLE8 / RLE4 stream (bottom-up) into im through the palette. Pixels the
 * stream skips (delta, end of line, end of bitmap) stay black; runs past the end of a row
 * are clipped. Data that stops before the last row is ACV_EFORMAT. */
static int bmp_rle(const uint8_t *s, size_t n, int rle4, const uint8_t (*pal)[3], acv_image *im, const char *what)
{
    const int64_t w = im->w, h = im->h;
    int64_t x = 0, y = 0; /* y counts rows from the bottom */
    size_t p = 0;
    while (y < h) {
        if (p + 2 > n) break;
        unsigned cnt = s[p], v = s[p + 1];
        p += 2;
        if (cnt) { /* a run of cnt pixels of index v (RLE4: the two nibbles alternate) */
            for (unsigned i = 0; i < cnt && x < w; i++, x++)
                bmp_put_index(im, x, h - 1 - y, rle4 ? (i & 1 ? v & 15 : v >> 4) : v, pal);
        } else if (v == 0) { /* end of line */
            x = 0;
            y++;
        } else if (v == 1) { /* end of bitmap */
            return 0;
        } else if (v == 2) { /* delta */
            if (p + 2 > n) break;
            x += s[p];
            y += s[p + 1];
            p += 2;
            if (x > w) x = w;
        } else { /* absolute run of v indices, padded to 16 bits */
            size_t nb = rle4 ? (v + 1) / 2 : v;
            if (p + nb > n) break;
            for (unsigned i = 0; i < v && x < w; i++, x++)
                bmp_put_index(im, x, h - 1 - y, rle4 ? (i & 1 ? s[p + i / 2] & 15 : s[p + i / 2] >> 4) : s[p + i], pal);
            p += nb + (nb & 1);
        }
    }
    if (y >= h) return 0; /* every row written; the end-of-bitmap marker may be missing */
    return acv_error(ACV_EFORMAT, "%s: truncated BMP data (the %s data ends after %lld of %lld rows)", what,
                     rle4 ? "RLE4" : "RLE8", (long long)y, (long long)h);
}

/* Decodes a BMP: Windows headers (BITMAPINFOHEADER and its V2-V5 successors) and the OS/2
 * 1.x BITMAPCOREHEADER; 1-, 4- and 8-bit palette (uncompressed, RLE4, RLE8; gray when the
 * palette is gray), 16-bit (5-5-5, or BITFIELDS such as 5-6-5), 24-bit and 32-bit
 * (BI_RGB: the 4th byte is ignored; BITFIELDS / ALPHABITFIELDS: RGBA when an alpha mask
 * is given). Rows are bottom-up unless the height is negative. */
static int decode_bmp(const uint8_t *buf, size_t len, const acv_decode_opts *o, const char *what,
                      acv_image *out)
{
    if (len < 14 + 12) return acv_error(ACV_EFORMAT, "%s: truncated BMP header", what);
    uint32_t off = le32(buf + 10), dib = le32(buf + 14), comp = 0, nclr = 0;
    int core = dib == 12; /* OS/2 1.x: 16-bit sizes, 3-byte palette entries */
    int32_t w, sh;
    int bpp;
    if (core) {
        w = le16(buf + 18);
        sh = le16(buf + 20);
        bpp = le16(buf + 24);
    } else {
        if (dib < 40 || dib > 1024) return acv_error(ACV_EFORMAT, "%s: corrupt BMP (header size %u)", what, dib);
        if (len < 14 + (size_t)dib) return acv_error(ACV_EFORMAT, "%s: truncated BMP header", what);
        w = (int32_t)le32(buf + 18);
        sh = (int32_t)le32(buf + 22);
        bpp = le16(buf + 28);
        comp = le32(buf + 30);
        nclr = le32(buf + 46);
    }
    if (w <= 0 || sh == 0 || sh == INT32_MIN)
        return acv_error(ACV_EFORMAT, "%s: corrupt BMP (declares %dx%d)", what, w, sh);
    int top_down = sh < 0;
    int32_t h = top_down ? -sh : sh;
    if ((int64_t)w * h > o->max_pixels) return too_big(what, "BMP", w, h, o->max_pixels);

    int ok = (comp == 0 && (bpp == 1 || bpp == 4 || bpp == 8 || bpp == 16 || bpp == 24 || bpp == 32)) ||
             (comp == 1 && bpp == 8) || (comp == 2 && bpp == 4) ||
             ((comp == 3 || comp == 6) && (bpp == 16 || bpp == 32) && dib != 64); /* OS/2 2.x: 3 is Huffman */
    if (!ok)
        return acv_error(ACV_EUNSUPPORTED,
                         "%s: unsupported BMP (%d bits per pixel, %s); supported: 1-, 4- and 8-bit palette "
                         "(uncompressed or RLE), 16-, 24- and 32-bit", what, bpp, bmp_compression_name(comp));
    int rle = comp == 1 || comp == 2;
    if (rle && top_down) return acv_error(ACV_EFORMAT, "%s: corrupt BMP (RLE data cannot be top-down)", what);
    size_t hdr_end = 14 + (size_t)dib;
    if (off > len) return acv_error(ACV_EFORMAT, "%s: truncated BMP data (pixels start at byte %u of %zu)", what, off, len);
    if (off < hdr_end)
        return acv_error(ACV_EFORMAT, "%s: corrupt BMP (pixel data offset %u inside the %zu-byte header)", what, off,
                         hdr_end);

    uint32_t mr = 0, mg = 0, mb = 0, ma = 0;
    if (comp == 3 || comp == 6) { /* masks: in the V2+ header, or right after a 40-byte one */
        size_t mo = 14 + 40, nm = comp == 6 || dib >= 56 ? 4 : 3;
        if (mo + 4 * nm > len) return acv_error(ACV_EFORMAT, "%s: truncated BMP header", what);
        mr = le32(buf + mo);
        mg = le32(buf + mo + 4);
        mb = le32(buf + mo + 8);
        if (nm == 4) ma = le32(buf + mo + 12);
        if (!mask_ok(mr) || !mask_ok(mg) || !mask_ok(mb) || (ma && !mask_ok(ma)))
            return acv_error(ACV_EFORMAT, "%s: corrupt BMP (colour masks %08x %08x %08x %08x)", what, mr, mg, mb, ma);
    } else if (bpp == 16) {
        mr = 0x7C00; mg = 0x03E0; mb = 0x001F;
    } else if (bpp == 32) {
        mr = 0xFF0000; mg = 0xFF00; mb = 0xFF;
    }

    uint8_t pal[256][3] = {{0}};
    int c = 3;
    if (bpp <= 8) {
        size_t es = core ? 3 : 4, po = hdr_end, maxn = (size_t)1 << bpp;
        size_t n = nclr ? nclr : maxn;
        if (n > 256) return acv_error(ACV_EFORMAT, "%s: corrupt BMP (%u palette entries)", what, nclr);
        if (po + es * n > off) n = (off - po) / es; /* a short palette: the missing entries are black */
        if (n == 0) return acv_error(ACV_EFORMAT, "%s: corrupt BMP (no palette)", what);
        int is_gray = 1;
        for (size_t i = 0; i < n; i++) {
            pal[i][0] = buf[po + es * i + 2];
            pal[i][1] = buf[po + es * i + 1];
            pal[i][2] = buf[po + es * i];
            is_gray &= pal[i][0] == pal[i][1] && pal[i][1] == pal[i][2];
        }
        c = is_gray ? 1 : 3;
    } else if (ma) {
        c = 4;
    }

    size_t stride = ((size_t)w * bpp + 31) / 32 * 4;
    size_t last = ((size_t)w * bpp + 7) / 8; /* some writers omit the last row's padding */
    if (!rle && (len - off) < stride * (size_t)(h - 1) + last)
        return acv_error(ACV_EFORMAT, "%s: truncated BMP data (%zu bytes of pixels, %zu needed)", what, len - off,
                         stride * (size_t)(h - 1) + last);
    int rc = acv_image_alloc(out, w, h, c);
    if (rc) return acv_error_prefix(rc, "%s: ", what);
    if (rle) {
        rc = bmp_rle(buf + off, len - off, comp == 2, (const uint8_t (*)[3])pal, out, what);
        if (rc) acv_image_free(out);
        return rc;
    }
    int sr = mask_shift(mr), sg = mask_shift(mg), sb = mask_shift(mb), sa = mask_shift(ma);
    int br = mask_bits(mr), bg = mask_bits(mg), bb = mask_bits(mb), ba = mask_bits(ma);
    for (int32_t y = 0; y < h; y++) {
        const uint8_t *s = buf + off + stride * (size_t)(top_down ? y : h - 1 - y);
        uint8_t *d = out->data + (size_t)y * w * c;
        for (int32_t x = 0; x < w; x++, d += c) {
            if (bpp <= 8) {
                unsigned i = bpp == 8 ? s[x]
                           : bpp == 4 ? (unsigned)(s[x >> 1] >> (x & 1 ? 0 : 4)) & 15
                                      : (unsigned)(s[x >> 3] >> (7 - (x & 7))) & 1;
                if (c == 1) d[0] = pal[i][0];
                else { d[0] = pal[i][0]; d[1] = pal[i][1]; d[2] = pal[i][2]; }
            } else if (bpp == 24) {
                const uint8_t *p = s + (size_t)x * 3;
                d[0] = p[2]; d[1] = p[1]; d[2] = p[0];
            } else {
                uint32_t px = bpp == 16 ? le16(s + 2 * (size_t)x) : le32(s + 4 * (size_t)x);
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

/* What a file that is not JPEG, PNG or BMP holds, when its first bytes tell (NULL if not):
 * for a message that says more than "not an image". */
static const char *other_format(const uint8_t *b, size_t n)
{
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) return "a WebP image";
    if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) return "a GIF image";
    if (n >= 4 && (!memcmp(b, "II*\0", 4) || !memcmp(b, "MM\0*", 4) || !memcmp(b, "II+\0", 4) ||
                   !memcmp(b, "MM\0+", 4)))
        return "a TIFF image or a camera raw file";
    if (n >= 12 && !memcmp(b + 4, "ftyp", 4)) {
        static const char *const heif[] = {"heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs", "mif1", "msf1"};
        for (size_t i = 0; i < sizeof heif / sizeof heif[0]; i++)
            if (!memcmp(b + 8, heif[i], 4)) return "a HEIF/HEIC image";
        if (!memcmp(b + 8, "avif", 4) || !memcmp(b + 8, "avis", 4)) return "an AVIF image";
        return "an ISO media file such as MP4 or MOV";
    }
    if (n >= 12 && !memcmp(b, "\0\0\0\x0cjP  \r\n\x87\n", 12)) return "a JPEG 2000 image";
    if (n >= 4 && !memcmp(b, "\xff\x4f\xff\x51", 4)) return "a JPEG 2000 codestream";
    if ((n >= 2 && b[0] == 0xFF && b[1] == 0x0A) || (n >= 12 && !memcmp(b, "\0\0\0\x0cJXL \r\n\x87\n", 12)))
        return "a JPEG XL image";
    if (n >= 4 && !memcmp(b, "8BPS", 4)) return "a Photoshop PSD file";
    if (n >= 4 && !memcmp(b, "\0\0\1\0", 4)) return "a Windows icon (ICO)";
    if (n >= 4 && !memcmp(b, "qoif", 4)) return "a QOI image";
    if (n >= 4 && !memcmp(b, "DDS ", 4)) return "a DirectDraw surface (DDS)";
    if (n >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7' && (b[2] == '\n' || b[2] == ' ' || b[2] == '\r'))
        return "a Netpbm image (PBM, PGM or PPM)";
    if (n >= 4 && !memcmp(b, "\0\x05\x16\x07", 4)) return "an AppleDouble '._' file (macOS metadata)";
    if (n >= 8 && !memcmp(b, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 8))
        return "an OLE compound file, such as Windows' Thumbs.db";
    if (n >= 4 && !memcmp(b, "%PDF", 4)) return "a PDF document";
    if (n >= 4 && !memcmp(b, "PK\3\4", 4)) return "a ZIP archive";
    return NULL;
}

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
        const char *other = other_format(buf, len);
        if (other) return acv_error(ACV_EFORMAT, "%s: not a JPEG, PNG or BMP image but %s", what, other);
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
