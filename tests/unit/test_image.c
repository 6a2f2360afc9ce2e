/* Image decoding and encoding: PNG (1-16-bit, palette, gray+alpha, RGBA, interlaced,
 * ancillary chunks, APNG), JPEG (every coding variant and subsampling written with libjpeg
 * and compared with libjpeg-turbo's own decode; gray, RGB, Adobe CMYK/YCCK), BMP (1/4/8/16/
 * 24/32-bit, bitfields, RLE4/RLE8, OS/2, bottom-up and top-down) on fixtures built in the
 * test; EXIF orientation 1-8 in both byte orders, XMP, ICC and broken EXIF blocks; and
 * every bad input: empty file, text named .jpg, other formats named, truncated
 * JPEG/PNG/BMP (and what only looks truncated: a missing EOI or IEND), 12-bit and lossless
 * JPEG, hostile scan counts, a 30000x30000 header (refused fast with ACV_ERANGE),
 * unsupported BMP variants. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <png.h>
#include <turbojpeg.h>
#include <jpeglib.h>
#include <zlib.h>

#include "autocv/error.h"
#include "base/file.h"
#include "vision/image.h"
#include "vision/transform.h"

#include "as_cap.h"

static char g_dir[64];

static int setup_dir(void **state)
{
    (void)state;
    strcpy(g_dir, "/tmp/acv_test_image_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    return acv_remove_tree(g_dir);
}

static char *tmp_path(const char *name)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", g_dir, name);
    return buf;
}

/* A deterministic image with sharp, distinct values (for lossless formats). */
static void fill_pattern(acv_image *im)
{
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            for (int k = 0; k < im->c; k++)
                im->data[((size_t)y * im->w + x) * im->c + k] = (uint8_t)(x * 37 + y * 91 + k * 53 + 11);
}

/* A smooth image (JPEG-friendly). */
static void fill_smooth(acv_image *im)
{
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            for (int k = 0; k < im->c; k++)
                im->data[((size_t)y * im->w + x) * im->c + k] = (uint8_t)(40 + x * 2 + y + k * 30);
}

static int max_abs_diff(const acv_image *a, const acv_image *b)
{
    assert_int_equal(a->w, b->w);
    assert_int_equal(a->h, b->h);
    assert_int_equal(a->c, b->c);
    int m = 0;
    for (size_t i = 0; i < (size_t)a->w * a->h * a->c; i++) {
        int d = abs((int)a->data[i] - (int)b->data[i]);
        if (d > m) m = d;
    }
    return m;
}

static uint8_t px(const acv_image *im, int x, int y, int k) { return im->data[((size_t)y * im->w + x) * im->c + k]; }

/* ---- a libpng writer for variants our encoder does not produce ---- */

typedef struct membuf {
    uint8_t *d;
    size_t n, cap;
} membuf;

static void mem_write(png_structp p, png_bytep s, size_t n)
{
    membuf *b = png_get_io_ptr(p);
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->d = realloc(b->d, b->cap);
        assert_non_null(b->d);
    }
    memcpy(b->d + b->n, s, n);
    b->n += n;
}

static void mem_flush(png_structp p) { (void)p; }

/* raw: h rows of PNG-packed samples (16-bit big-endian, sub-byte packed MSB first). */
static uint8_t *png_custom(int w, int h, int depth, int ctype, int interlace, const uint8_t *raw,
                           const png_color *pal, int npal, const uint8_t *trns, int ntrns, size_t *len)
{
    membuf b = {0};
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(p);
    assert_non_null(p);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(p))) fail_msg("libpng write failed");
    png_set_write_fn(p, &b, mem_write, mem_flush);
    png_set_IHDR(p, info, w, h, depth, ctype, interlace, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(p, info, pal, npal);
    if (trns) png_set_tRNS(p, info, trns, ntrns, NULL);
    png_write_info(p, info);
    size_t rb = png_get_rowbytes(p, info);
    png_bytep *rows = malloc(sizeof(png_bytep) * h);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)raw + (size_t)y * rb;
    png_write_image(p, rows);
    png_write_end(p, info);
    free(rows);
    png_destroy_write_struct(&p, &info);
    *len = b.n;
    return b.d;
}

static void decode_ok(const uint8_t *buf, size_t len, int want_c, acv_image *out)
{
    acv_decode_opts o = {.want_c = want_c, .apply_exif = 1};
    int rc = acv_image_decode(buf, len, &o, "fixture", out);
    if (rc) fail_msg("decode failed: %s", acv_errmsg());
}

/* ---- PNG ---- */

static void test_png_roundtrip_8bit(void **state)
{
    (void)state;
    int sizes[][2] = {{17, 13}, {1, 1}, {64, 3}};
    for (int s = 0; s < 3; s++)
        for (int c = 1; c <= 4; c++) {
            if (c == 2) continue;
            acv_image im, back;
            assert_int_equal(acv_image_alloc(&im, sizes[s][0], sizes[s][1], c), 0);
            fill_pattern(&im);
            uint8_t *buf;
            size_t len;
            assert_int_equal(acv_image_encode_png(&im, &buf, &len), 0);
            decode_ok(buf, len, 0, &back);
            assert_int_equal(max_abs_diff(&im, &back), 0);
            acv_image_free(&back);
            free(buf);
            acv_image_free(&im);
        }
}

static void test_png_16bit(void **state)
{
    (void)state;
    int w = 5, h = 4;
    uint8_t raw[5 * 4 * 3 * 2];
    for (int i = 0; i < w * h * 3; i++) {
        uint16_t v = (uint16_t)((i * 23 % 256) * 257); /* scales back to i*23 % 256 exactly */
        raw[2 * i] = v >> 8;
        raw[2 * i + 1] = v & 255;
    }
    raw[0] = 0x12; raw[1] = 0x34; /* 0x1234 * 255 / 65535 = 18.1 -> 18 */
    size_t len;
    uint8_t *buf = png_custom(w, h, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, raw, NULL, 0, NULL, 0, &len);
    acv_image im;
    decode_ok(buf, len, 0, &im);
    assert_int_equal(im.c, 3);
    assert_int_equal(im.data[0], 18);
    for (int i = 1; i < w * h * 3; i++) assert_int_equal(im.data[i], i * 23 % 256);
    acv_image_free(&im);
    free(buf);

    /* 16-bit gray */
    uint8_t graw[3 * 2 * 2];
    for (int i = 0; i < 6; i++) { graw[2 * i] = (uint8_t)(i * 40); graw[2 * i + 1] = (uint8_t)(i * 40); }
    buf = png_custom(3, 2, 16, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, graw, NULL, 0, NULL, 0, &len);
    decode_ok(buf, len, 0, &im);
    assert_int_equal(im.c, 1);
    for (int i = 0; i < 6; i++) assert_int_equal(im.data[i], i * 40);
    acv_image_free(&im);
    free(buf);
}

static void test_png_palette(void **state)
{
    (void)state;
    png_color pal[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
    uint8_t idx[4 * 3] = {0, 1, 2, 3, 3, 2, 1, 0, 0, 0, 3, 3};
    size_t len;
    uint8_t *buf = png_custom(4, 3, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, idx, pal, 4, NULL, 0, &len);
    acv_image im;
    decode_ok(buf, len, 0, &im);
    assert_int_equal(im.c, 3);
    for (int i = 0; i < 12; i++) {
        assert_int_equal(im.data[3 * i], pal[idx[i]].red);
        assert_int_equal(im.data[3 * i + 1], pal[idx[i]].green);
        assert_int_equal(im.data[3 * i + 2], pal[idx[i]].blue);
    }
    acv_image_free(&im);
    free(buf);

    /* With tRNS: RGBA; and 2-bit packed indices. */
    uint8_t trns[2] = {0, 128};
    uint8_t packed[3] = {0x1B, 0xE4, 0x0F}; /* rows of 4 2-bit indices: 0123, 3210, 0033 */
    buf = png_custom(4, 3, 2, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, packed, pal, 4, trns, 2, &len);
    decode_ok(buf, len, 0, &im);
    assert_int_equal(im.c, 4);
    uint8_t want_alpha[4] = {0, 128, 255, 255};
    for (int i = 0; i < 12; i++) {
        assert_int_equal(im.data[4 * i], pal[idx[i]].red);
        assert_int_equal(im.data[4 * i + 3], want_alpha[idx[i]]);
    }
    acv_image_free(&im);
    decode_ok(buf, len, 3, &im); /* alpha dropped */
    assert_int_equal(im.c, 3);
    assert_int_equal(im.data[3 * 2 + 2], 255);
    acv_image_free(&im);
    free(buf);
}

static void test_png_gray_alpha_and_rgba(void **state)
{
    (void)state;
    uint8_t ga[3 * 2 * 2];
    for (int i = 0; i < 6; i++) { ga[2 * i] = (uint8_t)(i * 50); ga[2 * i + 1] = (uint8_t)(255 - i * 10); }
    size_t len;
    uint8_t *buf = png_custom(3, 2, 8, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, ga, NULL, 0, NULL, 0, &len);
    acv_image im;
    decode_ok(buf, len, 0, &im);
    assert_int_equal(im.c, 4);
    for (int i = 0; i < 6; i++) {
        for (int k = 0; k < 3; k++) assert_int_equal(im.data[4 * i + k], i * 50);
        assert_int_equal(im.data[4 * i + 3], 255 - i * 10);
    }
    acv_image_free(&im);
    decode_ok(buf, len, 1, &im);
    assert_int_equal(im.c, 1);
    for (int i = 0; i < 6; i++) assert_int_equal(im.data[i], i * 50);
    acv_image_free(&im);
    free(buf);

    /* 1-bit gray expands to 0/255. */
    uint8_t bits[2] = {0xA0, 0x40}; /* rows: 101, 010 */
    buf = png_custom(3, 2, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, bits, NULL, 0, NULL, 0, &len);
    decode_ok(buf, len, 0, &im);
    uint8_t want[6] = {255, 0, 255, 0, 255, 0};
    assert_memory_equal(im.data, want, 6);
    acv_image_free(&im);
    free(buf);

    /* RGBA decoded to RGB and to gray. */
    acv_image rgba;
    assert_int_equal(acv_image_alloc(&rgba, 2, 1, 4), 0);
    uint8_t v[8] = {255, 0, 0, 7, 0, 255, 0, 200};
    memcpy(rgba.data, v, 8);
    assert_int_equal(acv_image_encode_png(&rgba, &buf, &len), 0);
    decode_ok(buf, len, 3, &im);
    uint8_t want3[6] = {255, 0, 0, 0, 255, 0};
    assert_int_equal(im.c, 3);
    assert_memory_equal(im.data, want3, 6);
    acv_image_free(&im);
    decode_ok(buf, len, 1, &im);
    assert_int_equal(im.data[0], 76);  /* 0.299 * 255 */
    assert_int_equal(im.data[1], 150); /* 0.587 * 255 */
    acv_image_free(&im);
    free(buf);
    acv_image_free(&rgba);
}

static void test_png_interlaced(void **state)
{
    (void)state;
    acv_image im, back;
    assert_int_equal(acv_image_alloc(&im, 13, 11, 3), 0);
    fill_pattern(&im);
    size_t len;
    uint8_t *buf = png_custom(13, 11, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, im.data, NULL, 0, NULL, 0, &len);
    decode_ok(buf, len, 0, &back);
    assert_int_equal(max_abs_diff(&im, &back), 0);
    acv_image_free(&back);
    acv_image_free(&im);
    free(buf);
}

/* ---- JPEG ---- */

static void test_jpeg_gray_rgb(void **state)
{
    (void)state;
    for (int c = 1; c <= 3; c += 2) {
        acv_image im, back;
        assert_int_equal(acv_image_alloc(&im, 40, 24, c), 0);
        fill_smooth(&im);
        uint8_t *buf;
        size_t len;
        assert_int_equal(acv_image_encode_jpeg(&im, 95, &buf, &len), 0);
        assert_true(len > 100 && buf[0] == 0xFF && buf[1] == 0xD8);
        decode_ok(buf, len, 0, &back);
        assert_int_equal(back.c, c);
        assert_true(max_abs_diff(&im, &back) <= 4);
        acv_image_free(&back);
        if (c == 3) { /* straight to gray */
            acv_image g, ref;
            decode_ok(buf, len, 1, &g);
            assert_int_equal(g.c, 1);
            assert_int_equal(acv_img_convert(&im, 1, &ref), 0);
            assert_true(max_abs_diff(&g, &ref) <= 4);
            acv_image_free(&g);
            acv_image_free(&ref);
        }
        free(buf);
        acv_image_free(&im);
    }
    /* Quality out of range. */
    acv_image im;
    uint8_t *buf;
    size_t len;
    assert_int_equal(acv_image_alloc(&im, 2, 2, 3), 0);
    assert_int_equal(acv_image_encode_jpeg(&im, 0, &buf, &len), ACV_EINVAL);
    assert_int_equal(acv_image_encode_jpeg(&im, 101, &buf, &len), ACV_EINVAL);
    acv_image_free(&im);
}

static void test_jpeg_cmyk(void **state)
{
    (void)state;
    int w = 16, h = 16;
    uint8_t cmyk[16 * 16 * 4];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = cmyk + 4 * (y * w + x);
            p[0] = (uint8_t)(100 + 4 * x);
            p[1] = (uint8_t)(200 - 3 * y);
            p[2] = (uint8_t)(60 + 2 * x + 2 * y);
            p[3] = (uint8_t)(180 + 2 * y);
        }
    tjhandle tj = tjInitCompress();
    unsigned char *jb = NULL;
    unsigned long jl = 0;
    assert_int_equal(tjCompress2(tj, cmyk, w, 0, h, TJPF_CMYK, &jb, &jl, TJSAMP_444, 100, 0), 0);
    tjDestroy(tj);
    acv_image im;
    decode_ok(jb, jl, 0, &im);
    assert_int_equal(im.c, 3);
    int maxd = 0;
    for (int i = 0; i < w * h; i++)
        for (int k = 0; k < 3; k++) {
            int want = (cmyk[4 * i + k] * cmyk[4 * i + 3] + 127) / 255;
            int d = abs(want - im.data[3 * i + k]);
            if (d > maxd) maxd = d;
        }
    assert_true(maxd <= 4);
    acv_image_free(&im);
    decode_ok(jb, jl, 1, &im);
    assert_int_equal(im.c, 1);
    acv_image_free(&im);
    tjFree(jb);
}

/* ---- BMP ---- */

static void put16(uint8_t *p, uint32_t v) { p[0] = v & 255; p[1] = (v >> 8) & 255; }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (v >> (8 * i)) & 255; }

/* Builds a BMP from an RGB(A) image: bpp 24, 32 (BI_RGB, or BI_BITFIELDS with alpha when
 * bitfields), or 8 (palette = the given 256-entry RGB table, pixels are indices in im
 * channel 0). */
static uint8_t *make_bmp(const acv_image *im, int bpp, int top_down, int bitfields, const uint8_t *pal,
                         size_t *len)
{
    int w = im->w, h = im->h;
    uint32_t dib = bitfields ? 56 : 40;
    size_t stride = ((size_t)w * bpp + 31) / 32 * 4;
    size_t palbytes = bpp == 8 ? 1024 : 0;
    size_t off = 14 + dib + palbytes;
    *len = off + stride * h;
    uint8_t *b = calloc(1, *len);
    b[0] = 'B'; b[1] = 'M';
    put32(b + 2, (uint32_t)*len);
    put32(b + 10, (uint32_t)off);
    put32(b + 14, dib);
    put32(b + 18, (uint32_t)w);
    put32(b + 22, (uint32_t)(top_down ? -h : h));
    put16(b + 26, 1);
    put16(b + 28, (uint32_t)bpp);
    put32(b + 30, bitfields ? 3 : 0);
    if (bitfields) {
        put32(b + 54, 0x00FF0000); put32(b + 58, 0x0000FF00); put32(b + 62, 0x000000FF); put32(b + 66, 0xFF000000);
    }
    if (bpp == 8) {
        put32(b + 46, 256);
        for (int i = 0; i < 256; i++) {
            b[14 + dib + 4 * i] = pal[3 * i + 2];
            b[14 + dib + 4 * i + 1] = pal[3 * i + 1];
            b[14 + dib + 4 * i + 2] = pal[3 * i];
        }
    }
    for (int y = 0; y < h; y++) {
        uint8_t *row = b + off + stride * (size_t)(top_down ? y : h - 1 - y);
        for (int x = 0; x < w; x++) {
            const uint8_t *s = im->data + ((size_t)y * w + x) * im->c;
            if (bpp == 8) {
                row[x] = s[0];
            } else {
                uint8_t *d = row + (size_t)x * (bpp / 8);
                d[0] = s[2]; d[1] = s[1]; d[2] = s[0];
                if (bpp == 32) d[3] = im->c == 4 ? s[3] : 0;
            }
        }
    }
    return b;
}

static void test_bmp_variants(void **state)
{
    (void)state;
    acv_image rgb, rgba, back;
    assert_int_equal(acv_image_alloc(&rgb, 5, 3, 3), 0); /* 5 * 3 bytes: rows need padding */
    fill_pattern(&rgb);
    assert_int_equal(acv_image_alloc(&rgba, 5, 3, 4), 0);
    fill_pattern(&rgba);
    for (int td = 0; td < 2; td++) {
        size_t len;
        uint8_t *b = make_bmp(&rgb, 24, td, 0, NULL, &len);
        decode_ok(b, len, 0, &back);
        assert_int_equal(max_abs_diff(&rgb, &back), 0);
        acv_image_free(&back);
        free(b);

        b = make_bmp(&rgba, 32, td, 0, NULL, &len); /* BI_RGB: 4th byte ignored */
        decode_ok(b, len, 0, &back);
        assert_int_equal(back.c, 3);
        for (int i = 0; i < 15; i++)
            for (int k = 0; k < 3; k++) assert_int_equal(back.data[3 * i + k], rgba.data[4 * i + k]);
        acv_image_free(&back);
        free(b);

        b = make_bmp(&rgba, 32, td, 1, NULL, &len); /* BI_BITFIELDS with alpha */
        decode_ok(b, len, 0, &back);
        assert_int_equal(max_abs_diff(&rgba, &back), 0);
        acv_image_free(&back);
        free(b);
    }
    /* 8-bit palette: a colour palette gives RGB, a gray palette gives 1 channel. */
    uint8_t pal[768], gpal[768];
    for (int i = 0; i < 256; i++) {
        pal[3 * i] = (uint8_t)i; pal[3 * i + 1] = (uint8_t)(255 - i); pal[3 * i + 2] = (uint8_t)(i * 7);
        gpal[3 * i] = gpal[3 * i + 1] = gpal[3 * i + 2] = (uint8_t)(255 - i);
    }
    acv_image idx;
    assert_int_equal(acv_image_alloc(&idx, 7, 2, 1), 0);
    fill_pattern(&idx);
    for (int td = 0; td < 2; td++) {
        size_t len;
        uint8_t *b = make_bmp(&idx, 8, td, 0, pal, &len);
        decode_ok(b, len, 0, &back);
        assert_int_equal(back.c, 3);
        for (int i = 0; i < 14; i++)
            for (int k = 0; k < 3; k++) assert_int_equal(back.data[3 * i + k], pal[3 * idx.data[i] + k]);
        acv_image_free(&back);
        free(b);
        b = make_bmp(&idx, 8, td, 0, gpal, &len);
        decode_ok(b, len, 0, &back);
        assert_int_equal(back.c, 1);
        for (int i = 0; i < 14; i++) assert_int_equal(back.data[i], 255 - idx.data[i]);
        acv_image_free(&back);
        free(b);
    }
    /* 1x1 */
    acv_image one;
    assert_int_equal(acv_image_alloc(&one, 1, 1, 3), 0);
    one.data[0] = 9; one.data[1] = 8; one.data[2] = 7;
    size_t len;
    uint8_t *b = make_bmp(&one, 24, 0, 0, NULL, &len);
    decode_ok(b, len, 0, &back);
    assert_int_equal(max_abs_diff(&one, &back), 0);
    acv_image_free(&back);

    /* Unsupported: 2 bits per pixel, embedded JPEG; corrupt: truncated pixel data. */
    put16(b + 28, 2);
    assert_int_equal(acv_image_decode(b, len, NULL, "two.bmp", &back), ACV_EUNSUPPORTED);
    assert_non_null(strstr(acv_errmsg(), "two.bmp: unsupported BMP (2 bits per pixel"));
    put16(b + 28, 24);
    put32(b + 30, 4);
    assert_int_equal(acv_image_decode(b, len, NULL, "x.bmp", &back), ACV_EUNSUPPORTED);
    assert_non_null(strstr(acv_errmsg(), "embedded JPEG"));
    free(b);
    b = make_bmp(&rgb, 24, 0, 0, NULL, &len);
    assert_int_equal(acv_image_decode(b, len - 20, NULL, "cut.bmp", &back), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "cut.bmp: truncated BMP"));
    assert_null(back.data);
    free(b);
    acv_image_free(&one);
    acv_image_free(&idx);
    acv_image_free(&rgb);
    acv_image_free(&rgba);
}

/* ---- EXIF ---- */

/* Inserts an APP1 Exif segment with IFD0 orientation `o` right after SOI. */
static uint8_t *with_exif(const uint8_t *jpg, size_t len, int o, int big_endian, size_t *out_len)
{
    static const uint8_t le[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t be[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    uint8_t tiff[26];
    memcpy(tiff, big_endian ? be : le, 26);
    if (big_endian) tiff[19] = (uint8_t)o; else tiff[18] = (uint8_t)o;
    size_t seg = 2 + 6 + 26;
    *out_len = len + 2 + seg;
    uint8_t *b = malloc(*out_len);
    b[0] = 0xFF; b[1] = 0xD8; b[2] = 0xFF; b[3] = 0xE1;
    b[4] = (uint8_t)(seg >> 8); b[5] = (uint8_t)seg;
    memcpy(b + 6, "Exif\0\0", 6);
    memcpy(b + 12, tiff, 26);
    memcpy(b + 38, jpg + 2, len - 2);
    return b;
}

static void test_exif_orientation(void **state)
{
    (void)state;
    /* 32x16 gray, top-left 16x8 block bright (aligned to 8x8 JPEG blocks). */
    acv_image im;
    assert_int_equal(acv_image_alloc(&im, 32, 16, 1), 0);
    for (int y = 0; y < 8; y++) memset(im.data + y * 32, 255, 16);
    uint8_t *jpg;
    size_t jlen;
    assert_int_equal(acv_image_encode_jpeg(&im, 100, &jpg, &jlen), 0);
    assert_int_equal(acv_image_exif_orientation(jpg, jlen), 1);

    size_t len;
    uint8_t *b6 = with_exif(jpg, jlen, 6, 0, &len);
    assert_int_equal(acv_image_exif_orientation(b6, len), 6);
    acv_image r, raw;
    decode_ok(b6, len, 0, &r);
    /* Rotated 90 degrees clockwise: 16 wide, 32 high, the block now top-right. */
    assert_int_equal(r.w, 16);
    assert_int_equal(r.h, 32);
    assert_true(px(&r, 12, 4, 0) > 200);
    assert_true(px(&r, 12, 12, 0) > 200);
    assert_true(px(&r, 3, 4, 0) < 50);
    assert_true(px(&r, 12, 24, 0) < 50);
    acv_image_free(&r);
    acv_decode_opts noexif = {.apply_exif = 0};
    assert_int_equal(acv_image_decode(b6, len, &noexif, "b6", &raw), 0);
    assert_int_equal(raw.w, 32);
    assert_int_equal(raw.h, 16);
    acv_image_free(&raw);
    free(b6);

    uint8_t *b3 = with_exif(jpg, jlen, 3, 1, &len); /* big-endian TIFF */
    assert_int_equal(acv_image_exif_orientation(b3, len), 3);
    decode_ok(b3, len, 3, &r);
    assert_int_equal(r.w, 32);
    assert_int_equal(r.h, 16);
    assert_int_equal(r.c, 3);
    assert_true(px(&r, 24, 12, 1) > 200); /* rotated 180: block bottom-right */
    assert_true(px(&r, 4, 4, 1) < 50);
    acv_image_free(&r);
    free(b3);

    uint8_t *b9 = with_exif(jpg, jlen, 9, 0, &len); /* invalid value: ignored */
    assert_int_equal(acv_image_exif_orientation(b9, len), 1);
    decode_ok(b9, len, 0, &r);
    assert_int_equal(r.w, 32);
    acv_image_free(&r);
    free(b9);
    free(jpg);
    acv_image_free(&im);
}

/* ---- bad input ---- */

static void test_bad_files(void **state)
{
    (void)state;
    acv_image im;
    char *p = tmp_path("empty.png");
    assert_int_equal(acv_file_write_atomic(p, "", 0), 0);
    assert_int_equal(acv_image_load(p, NULL, &im), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "empty.png"));
    assert_non_null(strstr(acv_errmsg(), "not a JPEG, PNG or BMP image"));
    assert_null(im.data);

    p = tmp_path("x.jpg");
    const char *text = "hello, this is not a picture\n";
    assert_int_equal(acv_file_write_atomic(p, text, strlen(text)), 0);
    assert_int_equal(acv_image_load(p, NULL, &im), ACV_EFORMAT);
    char want[300];
    snprintf(want, sizeof want, "%s: not a JPEG, PNG or BMP image", p);
    assert_string_equal(acv_errmsg(), want);

    assert_int_equal(acv_image_load(tmp_path("missing.jpg"), NULL, &im) < 0, 1);
    uint8_t two[2] = {0xFF, 0xD8};
    assert_int_equal(acv_image_decode(two, 2, NULL, "two.jpg", &im), ACV_EFORMAT);
    acv_decode_opts bad = {.want_c = 2};
    assert_int_equal(acv_image_decode(two, 2, &bad, "x", &im), ACV_EINVAL);
}

static void test_truncated(void **state)
{
    (void)state;
    acv_image src, im;
    assert_int_equal(acv_image_alloc(&src, 64, 48, 3), 0);
    fill_smooth(&src);
    uint8_t *jpg, *png;
    size_t jl, pl;
    assert_int_equal(acv_image_encode_jpeg(&src, 90, &jpg, &jl), 0);
    assert_int_equal(acv_image_encode_png(&src, &png, &pl), 0);

    size_t cuts[] = {jl / 2, jl - 40, 100, 4};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(acv_image_decode(jpg, cuts[i], NULL, "t.jpg", &im), ACV_EFORMAT);
        assert_non_null(strstr(acv_errmsg(), "t.jpg: truncated JPEG data"));
        assert_null(im.data);
    }
    /* Only the EOI marker missing (the last 2 or 1 bytes): every pixel is there, so the
     * image decodes, the same as the whole file. */
    acv_image whole;
    decode_ok(jpg, jl, 0, &whole);
    for (size_t cut = 1; cut <= 2; cut++) {
        decode_ok(jpg, jl - cut, 0, &im);
        assert_int_equal(max_abs_diff(&whole, &im), 0);
        acv_image_free(&im);
    }
    acv_image_free(&whole);
    /* PNG: only IEND (or its CRC) missing decodes too, the pixels being complete. */
    for (size_t cut = 4; cut <= 12; cut += 8) {
        decode_ok(png, pl - cut, 0, &im);
        assert_int_equal(max_abs_diff(&src, &im), 0);
        acv_image_free(&im);
    }
    size_t pcuts[] = {pl / 2, pl - 16, 40, 20, 6};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(acv_image_decode(png, pcuts[i], NULL, "t.png", &im), ACV_EFORMAT);
        assert_string_equal(acv_errmsg(), "t.png: truncated PNG data");
        assert_null(im.data);
    }
    /* Corrupted compressed data (CRC mismatch in IDAT). */
    png[pl / 2] ^= 0x55;
    assert_int_equal(acv_image_decode(png, pl, NULL, "c.png", &im), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "c.png: corrupt PNG data"));
    free(jpg);
    free(png);
    acv_image_free(&src);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Finds the SOF0 segment of a baseline JPEG by walking the markers. */
static size_t find_sof(const uint8_t *b, size_t n)
{
    size_t p = 2;
    while (p + 4 < n) {
        assert_int_equal(b[p], 0xFF);
        if (b[p + 1] == 0xC0) return p;
        p += 2 + ((size_t)b[p + 2] << 8 | b[p + 3]);
    }
    fail_msg("no SOF0");
    return 0;
}

static void test_huge_header_refused(void **state)
{
    (void)state;
    acv_image src, im;
    assert_int_equal(acv_image_alloc(&src, 8, 8, 3), 0);
    fill_smooth(&src);
    uint8_t *jpg, *png;
    size_t jl, pl;
    assert_int_equal(acv_image_encode_jpeg(&src, 90, &jpg, &jl), 0);
    assert_int_equal(acv_image_encode_png(&src, &png, &pl), 0);

    /* PNG: patch IHDR to 30000x30000 with a valid CRC. */
    png[16] = 0; png[17] = 0; png[18] = 30000 >> 8; png[19] = 30000 & 255;
    png[20] = 0; png[21] = 0; png[22] = 30000 >> 8; png[23] = 30000 & 255;
    uint32_t crc = (uint32_t)crc32(0, png + 12, 17);
    png[29] = crc >> 24; png[30] = crc >> 16; png[31] = crc >> 8; png[32] = crc & 255;
    double t0 = now_s();
    assert_int_equal(acv_image_decode(png, pl, NULL, "big.png", &im), ACV_ERANGE);
    assert_true(now_s() - t0 < 0.5);
    assert_non_null(strstr(acv_errmsg(), "big.png"));
    assert_non_null(strstr(acv_errmsg(), "30000x30000"));
    assert_null(im.data);

    /* JPEG: patch SOF0 height and width. */
    size_t s = find_sof(jpg, jl);
    jpg[s + 5] = 30000 >> 8; jpg[s + 6] = 30000 & 255;
    jpg[s + 7] = 30000 >> 8; jpg[s + 8] = 30000 & 255;
    t0 = now_s();
    assert_int_equal(acv_image_decode(jpg, jl, NULL, "big.jpg", &im), ACV_ERANGE);
    assert_true(now_s() - t0 < 0.5);
    assert_non_null(strstr(acv_errmsg(), "big.jpg"));
    assert_non_null(strstr(acv_errmsg(), "30000x30000"));
    assert_null(im.data);

    /* BMP header declaring 30000x30000 with no pixel data. */
    uint8_t bmp[54] = {'B', 'M'};
    put32(bmp + 10, 54); put32(bmp + 14, 40); put32(bmp + 18, 30000); put32(bmp + 22, 30000);
    put16(bmp + 26, 1); put16(bmp + 28, 24);
    assert_int_equal(acv_image_decode(bmp, sizeof bmp, NULL, "big.bmp", &im), ACV_ERANGE);
    assert_non_null(strstr(acv_errmsg(), "big.bmp"));

    /* A custom limit applies to small images too. */
    uint8_t *ok;
    size_t ol;
    assert_int_equal(acv_image_encode_png(&src, &ok, &ol), 0);
    acv_decode_opts lim = {.max_pixels = 63, .apply_exif = 1};
    assert_int_equal(acv_image_decode(ok, ol, &lim, "small.png", &im), ACV_ERANGE);
    lim.max_pixels = 64;
    assert_int_equal(acv_image_decode(ok, ol, &lim, "small.png", &im), 0);
    acv_image_free(&im);
    free(ok);
    free(jpg);
    free(png);
    acv_image_free(&src);
}

static void test_one_pixel_and_files(void **state)
{
    (void)state;
    for (int c = 1; c <= 3; c += 2) {
        acv_image one, back;
        assert_int_equal(acv_image_alloc(&one, 1, 1, c), 0);
        memset(one.data, 200, (size_t)c);
        char *p = tmp_path("one.jpg");
        assert_int_equal(acv_image_save_jpeg(&one, p, 90), 0);
        assert_int_equal(acv_image_load(p, NULL, &back), 0);
        assert_int_equal(back.w, 1);
        assert_int_equal(back.h, 1);
        assert_int_equal(back.c, c);
        assert_true(max_abs_diff(&one, &back) <= 2);
        acv_image_free(&back);
        p = tmp_path("one.png");
        assert_int_equal(acv_image_save_png(&one, p), 0);
        assert_int_equal(acv_image_load(p, NULL, &back), 0);
        assert_int_equal(max_abs_diff(&one, &back), 0);
        acv_image_free(&back);
        acv_image_free(&one);
    }
    /* The format is sniffed, not taken from the name. */
    acv_image im, back;
    assert_int_equal(acv_image_alloc(&im, 3, 2, 4), 0);
    fill_pattern(&im);
    char *p = tmp_path("really_png.jpg");
    assert_int_equal(acv_image_save_png(&im, p), 0);
    assert_int_equal(acv_image_load(p, NULL, &back), 0);
    assert_int_equal(max_abs_diff(&im, &back), 0);
    acv_image_free(&back);
    acv_image_free(&im);
    /* Bad encoder input. */
    acv_image none = {0};
    uint8_t *buf;
    size_t len;
    assert_int_equal(acv_image_encode_png(&none, &buf, &len), ACV_EINVAL);
    assert_int_equal(acv_image_alloc(&im, 0, 3, 3), ACV_EINVAL);
}

/* A JPEG whose pixel buffer cannot be allocated (60000x60000, under a raised pixel limit,
 * with the address space capped so the 10 GB allocation fails): ACV_ENOMEM naming the
 * source, as every other decode error does. */
static void test_jpeg_alloc_failure_names_source(void **state)
{
    (void)state;
    acv_image src, im;
    assert_int_equal(acv_image_alloc(&src, 8, 8, 3), 0);
    fill_smooth(&src);
    uint8_t *jpg;
    size_t jl;
    assert_int_equal(acv_image_encode_jpeg(&src, 90, &jpg, &jl), 0);
    size_t s = find_sof(jpg, jl);
    jpg[s + 5] = 60000 >> 8; jpg[s + 6] = 60000 & 255;
    jpg[s + 7] = 60000 >> 8; jpg[s + 8] = 60000 & 255;
    acv_decode_opts o = {.want_c = 3, .max_pixels = 4000LL * 1000 * 1000, .apply_exif = 1};

    cap_address_space((size_t)1 << 30);
    int rc = acv_image_decode(jpg, jl, &o, "huge.jpg", &im);
    uncap_address_space();

    assert_int_equal(rc, ACV_ENOMEM);
    assert_null(im.data);
    if (strncmp(acv_errmsg(), "huge.jpg: ", 10)) fail_msg("message '%s' does not name huge.jpg", acv_errmsg());
    assert_non_null(strstr(acv_errmsg(), "60000x60000"));
    free(jpg);
    acv_image_free(&src);
}

/* ---- JPEG variants, written with libjpeg ---- */

typedef struct jpeg_spec {
    int comps;                  /* 1 gray, 3 RGB, 4 CMYK (Adobe-inverted samples) */
    int ycck;                   /* with comps 4: YCCK instead of CMYK */
    int h0, v0;                 /* luma sampling factors (0: libjpeg's 2x2) */
    int progressive, arith, restart_interval, restart_rows, quality;
    const jpeg_scan_info *scans;
    int nscans;
} jpeg_spec;

static uint8_t *jpeg_make(const uint8_t *px, int w, int h, const jpeg_spec *o, size_t *len)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long n = 0;
    jpeg_mem_dest(&c, &out, &n);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = o->comps;
    c.in_color_space = o->comps == 1 ? JCS_GRAYSCALE : o->comps == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, o->quality ? o->quality : 95, TRUE);
    if (o->ycck) jpeg_set_colorspace(&c, JCS_YCCK);
    if (o->comps == 3 && o->h0) {
        c.comp_info[0].h_samp_factor = o->h0;
        c.comp_info[0].v_samp_factor = o->v0;
    }
    if (o->progressive) jpeg_simple_progression(&c);
    if (o->scans) {
        c.scan_info = o->scans;
        c.num_scans = o->nscans;
    }
    c.arith_code = o->arith ? TRUE : FALSE;
    c.restart_interval = (unsigned)o->restart_interval;
    c.restart_in_rows = o->restart_rows;
    jpeg_start_compress(&c, TRUE);
    for (int y = 0; y < h; y++) {
        JSAMPROW r = (JSAMPROW)(px + (size_t)y * w * o->comps);
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    *len = n;
    return out; /* malloc'd by jpeg_mem_dest */
}

/* The position of the n-th (0-based) marker 0xFF m in a JPEG, or 0. */
static size_t jpeg_marker(const uint8_t *b, size_t len, uint8_t m, int n)
{
    for (size_t i = 2; i + 1 < len; i++)
        if (b[i] == 0xFF && b[i + 1] == m && n-- == 0) return i;
    return 0;
}

/* A smooth 37x29 RGB picture (odd sizes: partial MCUs in every subsampling). */
static uint8_t *smooth_rgb(int w, int h)
{
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *d = p + 3 * ((size_t)y * w + x);
            d[0] = (uint8_t)(40 + 4 * x);
            d[1] = (uint8_t)(220 - 3 * y);
            d[2] = (uint8_t)(90 + 2 * x + 2 * y);
        }
    return p;
}

/* Every coding variant a camera or tool writes decodes to libjpeg-turbo's own pixels (the
 * TurboJPEG decoder as reference) and close to the source. */
static void test_jpeg_variants(void **state)
{
    (void)state;
    const int w = 37, h = 29;
    uint8_t *rgb = smooth_rgb(w, h);
    const struct { const char *name; jpeg_spec s; } cases[] = {
        {"baseline 4:2:0", {.comps = 3}},
        {"4:4:4", {.comps = 3, .h0 = 1, .v0 = 1}},
        {"4:2:2", {.comps = 3, .h0 = 2, .v0 = 1}},
        {"4:4:0", {.comps = 3, .h0 = 1, .v0 = 2}},
        {"4:1:1", {.comps = 3, .h0 = 4, .v0 = 1}},
        {"progressive", {.comps = 3, .progressive = 1}},
        {"arithmetic", {.comps = 3, .arith = 1}},
        {"arithmetic progressive", {.comps = 3, .arith = 1, .progressive = 1}},
        {"restart every 2 MCUs", {.comps = 3, .restart_interval = 2}},
        {"restart every MCU row", {.comps = 3, .restart_rows = 1}},
        {"progressive with restarts", {.comps = 3, .progressive = 1, .restart_interval = 3}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        uint8_t *jpg = jpeg_make(rgb, w, h, &cases[i].s, &len);
        acv_image im;
        if (acv_image_decode(jpg, len, NULL, cases[i].name, &im)) fail_msg("%s: %s", cases[i].name, acv_errmsg());
        assert_int_equal(im.w, w);
        assert_int_equal(im.h, h);
        assert_int_equal(im.c, 3);
        uint8_t *ref = malloc((size_t)w * h * 3);
        tjhandle tj = tjInitDecompress();
        assert_int_equal(tjDecompress2(tj, jpg, (unsigned long)len, ref, w, 0, h, TJPF_RGB, 0), 0);
        tjDestroy(tj);
        int dref = 0, dsrc = 0;
        for (size_t k = 0; k < (size_t)w * h * 3; k++) {
            int a = abs(im.data[k] - ref[k]), b = abs(im.data[k] - rgb[k]);
            if (a > dref) dref = a;
            if (b > dsrc) dsrc = b;
        }
        if (dref != 0 || dsrc > 8) fail_msg("%s: %d from libjpeg-turbo, %d from the source", cases[i].name, dref, dsrc);
        acv_image_free(&im);
        free(ref);
        free(jpg);
    }
    /* gray */
    uint8_t g[37 * 29];
    for (int k = 0; k < w * h; k++) g[k] = rgb[3 * k];
    jpeg_spec gs = {.comps = 1, .progressive = 1};
    size_t len;
    uint8_t *jpg = jpeg_make(g, w, h, &gs, &len);
    acv_image im;
    decode_ok(jpg, len, 0, &im);
    assert_int_equal(im.c, 1);
    for (int k = 0; k < w * h; k++) assert_true(abs(im.data[k] - g[k]) <= 3);
    acv_image_free(&im);
    free(jpg);
    free(rgb);
}

/* Adobe CMYK and YCCK as Photoshop writes them (inverted samples): R = C * K / 255. */
static void test_jpeg_adobe_cmyk_ycck(void **state)
{
    (void)state;
    const int w = 16, h = 16;
    uint8_t cmyk[16 * 16 * 4];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = cmyk + 4 * (y * w + x);
            p[0] = (uint8_t)(120 + 4 * x);
            p[1] = (uint8_t)(230 - 3 * y);
            p[2] = (uint8_t)(90 + 2 * x + 2 * y);
            p[3] = (uint8_t)(200 + 3 * y);
        }
    for (int ycck = 0; ycck < 2; ycck++) {
        jpeg_spec s = {.comps = 4, .ycck = ycck, .quality = 100};
        size_t len;
        uint8_t *jpg = jpeg_make(cmyk, w, h, &s, &len);
        assert_true(jpeg_marker(jpg, len, 0xEE, 0) > 0); /* the Adobe APP14 marker */
        acv_image im;
        decode_ok(jpg, len, 0, &im);
        assert_int_equal(im.c, 3);
        int maxd = 0;
        for (int i = 0; i < w * h; i++)
            for (int k = 0; k < 3; k++) {
                int d = abs((cmyk[4 * i + k] * cmyk[4 * i + 3] + 127) / 255 - im.data[3 * i + k]);
                if (d > maxd) maxd = d;
            }
        if (maxd > 3) fail_msg("%s: off by %d", ycck ? "YCCK" : "CMYK", maxd);
        acv_image_free(&im);
        decode_ok(jpg, len, 1, &im);
        assert_int_equal(im.c, 1);
        acv_image_free(&im);
        free(jpg);
    }
}

/* Damage and odd variants: what loses no pixel decodes (a missing EOI, stray bytes before
 * a marker, an unknown JFIF revision), what does is refused naming the file, and so are
 * 12-bit, lossless and hostile (thousands of scans) files. */
static void test_jpeg_damage(void **state)
{
    (void)state;
    const int w = 37, h = 29;
    uint8_t *rgb = smooth_rgb(w, h);
    jpeg_spec base = {.comps = 3}, prog = {.comps = 3, .progressive = 1}, rst = {.comps = 3, .restart_interval = 2},
              arith = {.comps = 3, .arith = 1};
    size_t bl, pl, rl, al;
    uint8_t *b = jpeg_make(rgb, w, h, &base, &bl), *p = jpeg_make(rgb, w, h, &prog, &pl),
            *r = jpeg_make(rgb, w, h, &rst, &rl), *a = jpeg_make(rgb, w, h, &arith, &al);
    acv_image whole, pwhole, im;
    decode_ok(b, bl, 0, &whole);
    decode_ok(p, pl, 0, &pwhole);

    /* no EOI: baseline and progressive decode whole */
    decode_ok(b, bl - 2, 0, &im);
    assert_int_equal(max_abs_diff(&whole, &im), 0);
    acv_image_free(&im);
    decode_ok(p, pl - 2, 0, &im);
    assert_int_equal(max_abs_diff(&pwhole, &im), 0);
    acv_image_free(&im);
    /* ... but an arithmetic-coded one cannot tell lost data from padding: refused */
    assert_int_equal(acv_image_decode(a, al - 2, NULL, "a.jpg", &im), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "a.jpg: truncated JPEG data"));

    /* stray bytes before EOI, JFIF 2.01: libjpeg warns, the pixels are intact */
    uint8_t *x = malloc(bl + 4);
    memcpy(x, b, bl - 2);
    memcpy(x + bl - 2, "\x00\x11\x22\x33\xff\xd9", 6);
    decode_ok(x, bl + 4, 0, &im);
    assert_int_equal(max_abs_diff(&whole, &im), 0);
    acv_image_free(&im);
    memcpy(x, b, bl);
    assert_int_equal(memcmp(x + 6, "JFIF", 4), 0);
    x[11] = 2;
    decode_ok(x, bl, 0, &im);
    assert_int_equal(max_abs_diff(&whole, &im), 0);
    acv_image_free(&im);

    /* truncated: mid-scan, at a progressive scan boundary, at a restart marker */
    assert_int_equal(acv_image_decode(b, bl - 60, NULL, "cut.jpg", &im), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "cut.jpg: truncated JPEG data"));
    assert_null(im.data);
    size_t sos3 = jpeg_marker(p, pl, 0xDA, 3);
    assert_true(sos3 > 0);
    assert_int_equal(acv_image_decode(p, sos3, NULL, "scans.jpg", &im), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "scans.jpg: truncated JPEG data"));
    assert_non_null(strstr(acv_errmsg(), "later scans are missing"));
    size_t rst1 = jpeg_marker(r, rl, 0xD1, 0);
    assert_true(rst1 > 0);
    assert_int_equal(acv_image_decode(r, rst1, NULL, "rst.jpg", &im), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "rst.jpg: truncated JPEG data"));

    /* 12-bit (SOF1, precision 12) and lossless (SOF3): unsupported, said so */
    size_t sof = jpeg_marker(b, bl, 0xC0, 0);
    assert_true(sof > 0);
    memcpy(x, b, bl);
    x[sof + 1] = 0xC1;
    x[sof + 4] = 12;
    assert_int_equal(acv_image_decode(x, bl, NULL, "deep.jpg", &im), ACV_EUNSUPPORTED);
    assert_non_null(strstr(acv_errmsg(), "deep.jpg: unsupported JPEG variant"));
    assert_non_null(strstr(acv_errmsg(), "precision 12"));
    memcpy(x, b, bl);
    x[sof + 1] = 0xC3;
    assert_int_equal(acv_image_decode(x, bl, NULL, "lossless.jpg", &im), ACV_EUNSUPPORTED);
    assert_null(im.data);
    /* 65500 x 65500 declared: refused from the header, with the limit */
    memcpy(x, b, bl);
    x[sof + 5] = 65500 >> 8; x[sof + 6] = 65500 & 255;
    x[sof + 7] = 65500 >> 8; x[sof + 8] = 65500 & 255;
    assert_int_equal(acv_image_decode(x, bl, NULL, "wide.jpg", &im), ACV_ERANGE);
    assert_non_null(strstr(acv_errmsg(), "wide.jpg: JPEG image is 65500x65500"));
    assert_non_null(strstr(acv_errmsg(), "limit of 100000000 pixels"));
    free(x);

    /* a progressive file with 1 + 3 * 63 * 3 = 568 scans (valid, but hostile) */
    jpeg_scan_info *sc = calloc(600, sizeof *sc);
    int ns = 0;
    sc[ns].comps_in_scan = 3;
    for (int c = 0; c < 3; c++) sc[ns].component_index[c] = c;
    ns++;
    for (int c = 0; c < 3; c++)
        for (int k = 1; k < 64; k++)
            for (int al = 2; al >= 0; al--) {
                sc[ns].comps_in_scan = 1;
                sc[ns].component_index[0] = c;
                sc[ns].Ss = k;
                sc[ns].Se = k;
                sc[ns].Ah = al == 2 ? 0 : al + 1;
                sc[ns].Al = al;
                ns++;
            }
    jpeg_spec many = {.comps = 3, .h0 = 1, .v0 = 1, .scans = sc, .nscans = ns};
    size_t ml;
    uint8_t *m = jpeg_make(rgb, 8, 8, &many, &ml);
    assert_int_equal(acv_image_decode(m, ml, NULL, "scans.jpg", &im), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "more than 500 scans"));
    free(m);
    free(sc);

    acv_image_free(&whole);
    acv_image_free(&pwhole);
    free(b); free(p); free(r); free(a);
    free(rgb);
}

/* Inserts a segment (marker, payload) right after SOI. */
static uint8_t *with_segment(const uint8_t *jpg, size_t len, uint8_t marker, const void *payload, size_t n,
                             size_t *out_len)
{
    *out_len = len + 4 + n;
    uint8_t *b = malloc(*out_len);
    b[0] = 0xFF; b[1] = 0xD8; b[2] = 0xFF; b[3] = marker;
    b[4] = (uint8_t)((n + 2) >> 8); b[5] = (uint8_t)(n + 2);
    memcpy(b + 6, payload, n);
    memcpy(b + 6 + n, jpg + 2, len - 2);
    return b;
}

/* Where EXIF orientation o shows stored pixel (x, y) of a W x H image: the inverse, output
 * (ox, oy) -> stored, from the EXIF 2.3 table. */
static void exif_source(int o, int W, int H, int ox, int oy, int *x, int *y)
{
    switch (o) {
    case 1: *x = ox; *y = oy; break;
    case 2: *x = W - 1 - ox; *y = oy; break;
    case 3: *x = W - 1 - ox; *y = H - 1 - oy; break;
    case 4: *x = ox; *y = H - 1 - oy; break;
    case 5: *x = oy; *y = ox; break;
    case 6: *x = oy; *y = H - 1 - ox; break;
    case 7: *x = W - 1 - oy; *y = H - 1 - ox; break;
    default: *x = W - 1 - oy; *y = ox; break;
    }
}

/* All eight orientations in both TIFF byte orders put every 8x8 block where the EXIF table
 * says; XMP in APP1, an ICC profile and broken EXIF blocks are ignored. */
static void test_exif_all_orientations(void **state)
{
    (void)state;
    const int W = 32, H = 16;
    uint8_t g[32 * 16];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) g[y * W + x] = (uint8_t)(30 + 25 * ((y / 8) * 4 + x / 8));
    jpeg_spec s = {.comps = 1, .quality = 100};
    size_t jl;
    uint8_t *jpg = jpeg_make(g, W, H, &s, &jl);
    for (int be = 0; be < 2; be++)
        for (int o = 1; o <= 8; o++) {
            size_t len;
            uint8_t *b = with_exif(jpg, jl, o, be, &len);
            acv_image im;
            decode_ok(b, len, 0, &im);
            int ow = o >= 5 ? H : W, oh = o >= 5 ? W : H;
            assert_int_equal(im.w, ow);
            assert_int_equal(im.h, oh);
            for (int oy = 4; oy < oh; oy += 8)
                for (int ox = 4; ox < ow; ox += 8) {
                    int x, y;
                    exif_source(o, W, H, ox, oy, &x, &y);
                    if (abs(px(&im, ox, oy, 0) - g[y * W + x]) > 1)
                        fail_msg("orientation %d (%s): (%d,%d) is %d, want %d", o, be ? "MM" : "II", ox, oy,
                                 px(&im, ox, oy, 0), g[y * W + x]);
                }
            acv_image_free(&im);
            free(b);
        }
    /* XMP first, then EXIF 6: the EXIF block still counts */
    static const char xmp[] = "http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><tiff:Orientation>3</tiff:Orientation></x:xmpmeta>";
    size_t l6, lx;
    uint8_t *b6 = with_exif(jpg, jl, 6, 0, &l6);
    uint8_t *bx = with_segment(b6, l6, 0xE1, xmp, sizeof xmp, &lx);
    assert_int_equal(acv_image_exif_orientation(bx, lx), 6);
    free(bx);
    bx = with_segment(jpg, jl, 0xE1, xmp, sizeof xmp, &lx);
    assert_int_equal(acv_image_exif_orientation(bx, lx), 1);
    free(bx);
    /* an ICC profile in APP2 before the EXIF block */
    uint8_t icc[14 + 128] = "ICC_PROFILE\0\1\1";
    bx = with_segment(b6, l6, 0xE2, icc, sizeof icc, &lx);
    acv_image im;
    decode_ok(bx, lx, 0, &im);
    assert_int_equal(im.w, H);
    acv_image_free(&im);
    free(bx);
    free(b6);
    /* broken EXIF: IFD offset past the end, an entry count running off, garbage, too short */
    uint8_t bad[4][40];
    size_t badn[4] = {34, 34, 40, 8};
    static const uint8_t tiff[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        memcpy(bad[i], "Exif\0\0", 6);
        memcpy(bad[i] + 6, tiff, 28);
    }
    bad[0][6 + 4] = 0xF0;             /* IFD at 0xF0 */
    bad[1][6 + 8] = 0xFF; bad[1][6 + 9] = 0xFF; bad[1][6 + 10] = 0; /* 65535 entries, the first not orientation */
    for (int k = 6; k < 40; k++) bad[2][k] = (uint8_t)(k * 97 + 13);
    bad[3][6] = 'I'; bad[3][7] = 'I';
    for (int i = 0; i < 4; i++) {
        bx = with_segment(jpg, jl, 0xE1, bad[i], badn[i], &lx);
        assert_int_equal(acv_image_exif_orientation(bx, lx), 1);
        decode_ok(bx, lx, 0, &im);
        assert_int_equal(im.w, W);
        acv_image_free(&im);
        free(bx);
    }
    free(jpg);
}

/* ---- PNG chunks ---- */

static size_t put_chunk(uint8_t *d, const char *type, const void *data, uint32_t n)
{
    d[0] = (uint8_t)(n >> 24); d[1] = (uint8_t)(n >> 16); d[2] = (uint8_t)(n >> 8); d[3] = (uint8_t)n;
    memcpy(d + 4, type, 4);
    if (n) memcpy(d + 8, data, n);
    uint32_t crc = (uint32_t)crc32(0, d + 4, 4 + n);
    d[8 + n] = (uint8_t)(crc >> 24); d[9 + n] = (uint8_t)(crc >> 16); d[10 + n] = (uint8_t)(crc >> 8);
    d[11 + n] = (uint8_t)crc;
    return 12 + n;
}

/* Ancillary chunks (gAMA, sRGB, a bogus iCCP, tEXt with a bad CRC, APNG's acTL/fcTL/fdAT)
 * change no pixel: an APNG gives its first frame. */
static void test_png_ancillary_and_apng(void **state)
{
    (void)state;
    acv_image src, im;
    assert_int_equal(acv_image_alloc(&src, 13, 7, 3), 0);
    fill_pattern(&src);
    uint8_t *png;
    size_t pl;
    assert_int_equal(acv_image_encode_png(&src, &png, &pl), 0);
    size_t idat = 33; /* right after IHDR; our encoder writes IHDR then IDAT */
    assert_int_equal(memcmp(png + idat + 4, "IDAT", 4), 0);
    size_t idat_len = 12 + ((size_t)png[idat] << 24 | (size_t)png[idat + 1] << 16 | (size_t)png[idat + 2] << 8 | png[idat + 3]);
    uint8_t *b = malloc(pl + 4096);
    uint8_t zeros[64] = {0}, actl[8] = {0, 0, 0, 2, 0, 0, 0, 0}, fctl[26] = {0};
    fctl[7] = 13; fctl[11] = 7; fctl[21] = 1; fctl[23] = 10; /* 13x7 at 0,0, delay 1/10 */
    for (int v = 0; v < 3; v++) {
        size_t n = 0;
        memcpy(b, png, idat);
        n = idat;
        if (v == 0) {
            uint8_t gama[4] = {0, 0, 0xB1, 0x8F}, srgb = 0;
            n += put_chunk(b + n, "gAMA", gama, 4);
            n += put_chunk(b + n, "sRGB", &srgb, 1);
            uint8_t iccp[6 + 40] = "bogus";
            uLongf zl = 40;
            assert_int_equal(compress(iccp + 7, &zl, zeros, 30), Z_OK);
            n += put_chunk(b + n, "iCCP", iccp, (uint32_t)(7 + zl));
        } else if (v == 1) {
            n += put_chunk(b + n, "tEXt", "Comment\0x", 9);
            b[n - 1] ^= 1;
        } else {
            n += put_chunk(b + n, "acTL", actl, 8);
            n += put_chunk(b + n, "fcTL", fctl, 26);
        }
        memcpy(b + n, png + idat, idat_len);
        n += idat_len;
        if (v == 2) { /* a second frame: all black */
            fctl[3] = 1;
            n += put_chunk(b + n, "fcTL", fctl, 26);
            uint8_t fdat[4 + 64] = {0, 0, 0, 2};
            uLongf zl = 64;
            uint8_t raw[7 * 40] = {0};
            assert_int_equal(compress(fdat + 4, &zl, raw, sizeof raw), Z_OK);
            n += put_chunk(b + n, "fdAT", fdat, (uint32_t)(4 + zl));
        }
        n += put_chunk(b + n, "IEND", NULL, 0);
        decode_ok(b, n, 0, &im);
        assert_int_equal(max_abs_diff(&src, &im), 0);
        acv_image_free(&im);
    }
    free(b);
    free(png);
    acv_image_free(&src);
}

/* 2- and 4-bit gray, 16-bit RGBA and gray+alpha, interlaced 1-bit palette. */
static void test_png_more_depths(void **state)
{
    (void)state;
    size_t len;
    acv_image im;
    uint8_t g2[2] = {0x1B, 0xE4}; /* 4 pixels a row: 0 1 2 3 / 3 2 1 0 */
    uint8_t *buf = png_custom(4, 2, 2, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, g2, NULL, 0, NULL, 0, &len);
    decode_ok(buf, len, 0, &im);
    uint8_t want2[8] = {0, 85, 170, 255, 255, 170, 85, 0};
    assert_memory_equal(im.data, want2, 8);
    acv_image_free(&im);
    free(buf);
    uint8_t g4[2] = {0x0F, 0x8A}; /* 0 15 / 8 10 */
    buf = png_custom(2, 2, 4, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, g4, NULL, 0, NULL, 0, &len);
    decode_ok(buf, len, 0, &im);
    uint8_t want4[4] = {0, 255, 136, 170};
    assert_memory_equal(im.data, want4, 4);
    acv_image_free(&im);
    free(buf);
    /* 16-bit RGBA and gray+alpha: v * 257 scales back to v */
    uint8_t rgba16[2 * 4 * 2], ga16[2 * 2 * 2];
    for (int i = 0; i < 8; i++) rgba16[2 * i] = rgba16[2 * i + 1] = (uint8_t)(i * 30 + 5);
    for (int i = 0; i < 4; i++) ga16[2 * i] = ga16[2 * i + 1] = (uint8_t)(i * 60 + 7);
    buf = png_custom(2, 1, 16, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_NONE, rgba16, NULL, 0, NULL, 0, &len);
    decode_ok(buf, len, 0, &im);
    assert_int_equal(im.c, 4);
    for (int i = 0; i < 8; i++) assert_int_equal(im.data[i], i * 30 + 5);
    acv_image_free(&im);
    free(buf);
    buf = png_custom(2, 1, 16, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, ga16, NULL, 0, NULL, 0, &len);
    decode_ok(buf, len, 0, &im);
    assert_int_equal(im.c, 4);
    assert_int_equal(im.data[0], 7); assert_int_equal(im.data[2], 7); assert_int_equal(im.data[3], 67);
    assert_int_equal(im.data[4], 127); assert_int_equal(im.data[7], 187);
    acv_image_free(&im);
    free(buf);
    /* interlaced 1-bit palette, 11x9 */
    png_color pal[2] = {{10, 20, 30}, {200, 150, 100}};
    uint8_t bits[9 * 2];
    for (int y = 0; y < 9; y++) { bits[2 * y] = (uint8_t)(0xA5 ^ (y * 37)); bits[2 * y + 1] = (uint8_t)((y * 64) & 0xE0); }
    buf = png_custom(11, 9, 1, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_ADAM7, bits, pal, 2, NULL, 0, &len);
    decode_ok(buf, len, 0, &im);
    assert_int_equal(im.c, 3);
    for (int y = 0; y < 9; y++)
        for (int x = 0; x < 11; x++) {
            int i = (bits[2 * y + x / 8] >> (7 - x % 8)) & 1;
            assert_int_equal(px(&im, x, y, 0), pal[i].red);
            assert_int_equal(px(&im, x, y, 2), pal[i].blue);
        }
    acv_image_free(&im);
    free(buf);
}

/* ---- BMP variants ---- */

/* A BMP with header size dib (12: OS/2 core), declared height h (negative: top-down), the
 * given palette (BGR(A) entries already laid out), extra bytes after the header (masks) and
 * pixel data. */
static uint8_t *bmp_build(uint32_t dib, int w, int h, int bpp, uint32_t comp, uint32_t nclr, const uint8_t *extra,
                          size_t nextra, const uint8_t *pal, size_t npal, const uint8_t *pix, size_t npix, size_t *len)
{
    size_t off = 14 + dib + nextra + npal;
    *len = off + npix;
    uint8_t *b = calloc(1, *len);
    b[0] = 'B'; b[1] = 'M';
    put32(b + 2, (uint32_t)*len);
    put32(b + 10, (uint32_t)off);
    put32(b + 14, dib);
    if (dib == 12) {
        put16(b + 18, (uint32_t)w); put16(b + 20, (uint32_t)h); put16(b + 22, 1); put16(b + 24, (uint32_t)bpp);
    } else {
        put32(b + 18, (uint32_t)w); put32(b + 22, (uint32_t)h); put16(b + 26, 1); put16(b + 28, (uint32_t)bpp);
        put32(b + 30, comp); put32(b + 46, nclr);
    }
    if (nextra) memcpy(b + 14 + dib, extra, nextra);
    if (npal) memcpy(b + 14 + dib + nextra, pal, npal);
    if (npix) memcpy(b + off, pix, npix);
    return b;
}

static void test_bmp_palette_16bit_rle_os2(void **state)
{
    (void)state;
    acv_image im;
    size_t len;
    uint8_t pal[16 * 4], pal3[16 * 3];
    for (int i = 0; i < 16; i++) {
        uint8_t r = (uint8_t)(i * 16 + 1), g = (uint8_t)(255 - i * 15), bl = (uint8_t)(i * 7 + 100);
        pal[4 * i] = bl; pal[4 * i + 1] = g; pal[4 * i + 2] = r; pal[4 * i + 3] = 0;
        pal3[3 * i] = bl; pal3[3 * i + 1] = g; pal3[3 * i + 2] = r;
    }
#define PALR(i) ((i) * 16 + 1)
#define PALB(i) ((i) * 7 + 100)
    /* 1-bit, 9 wide (rows of 2 bytes padded to 4), bottom-up and top-down */
    uint8_t rows1[3][4] = {{0xA5, 0x80}, {0x0F, 0x00}, {0xFF, 0x80}};
    for (int td = 0; td < 2; td++) {
        uint8_t pix[12];
        for (int y = 0; y < 3; y++) memcpy(pix + 4 * y, rows1[td ? y : 2 - y], 4);
        uint8_t *b = bmp_build(40, 9, td ? -3 : 3, 1, 0, 2, NULL, 0, pal, 8, pix, 12, &len);
        decode_ok(b, len, 0, &im);
        assert_int_equal(im.c, 3);
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 9; x++) assert_int_equal(px(&im, x, y, 0), PALR((rows1[y][x / 8] >> (7 - x % 8)) & 1));
        acv_image_free(&im);
        free(b);
    }
    /* 4-bit, 5 wide, the palette size left to the default (16) */
    uint8_t rows4[2][4] = {{0x01, 0x23, 0xF0}, {0xED, 0xCB, 0xA0}};
    uint8_t pix4[8];
    memcpy(pix4, rows4[1], 4);
    memcpy(pix4 + 4, rows4[0], 4);
    uint8_t *b = bmp_build(40, 5, 2, 4, 0, 0, NULL, 0, pal, 64, pix4, 8, &len);
    decode_ok(b, len, 0, &im);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 5; x++) {
            int i = (rows4[y][x / 2] >> (x % 2 ? 0 : 4)) & 15;
            assert_int_equal(px(&im, x, y, 0), PALR(i));
            assert_int_equal(px(&im, x, y, 2), PALB(i));
        }
    acv_image_free(&im);
    free(b);

    /* 16-bit: 5-6-5 BITFIELDS (masks after a 40-byte header) and 5-5-5 BI_RGB; 3 wide */
    uint8_t masks[12], p16[2][8] = {{0x00, 0xF8, 0xE0, 0x07, 0x10, 0x84}, {0x00, 0x7C, 0xE0, 0x03, 0x10, 0x42}};
    put32(masks, 0xF800); put32(masks + 4, 0x07E0); put32(masks + 8, 0x001F);
    for (int v = 0; v < 2; v++) {
        b = bmp_build(40, 3, 1, 16, v ? 0 : 3, 0, masks, v ? 0 : 12, NULL, 0, p16[v], 8, &len);
        decode_ok(b, len, 0, &im);
        uint8_t want[9] = {255, 0, 0, 0, 255, 0, 132, v ? 132 : 130, 132};
        assert_memory_equal(im.data, want, 9);
        acv_image_free(&im);
        free(b);
    }
    /* 32-bit ALPHABITFIELDS (4 masks after a 40-byte header) */
    uint8_t m4[16], p32[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    put32(m4, 0xFF0000); put32(m4 + 4, 0xFF00); put32(m4 + 8, 0xFF); put32(m4 + 12, 0xFF000000u);
    b = bmp_build(40, 2, 1, 32, 6, 0, m4, 16, NULL, 0, p32, 8, &len);
    decode_ok(b, len, 0, &im);
    uint8_t want32[8] = {3, 2, 1, 4, 7, 6, 5, 8};
    assert_int_equal(im.c, 4);
    assert_memory_equal(im.data, want32, 8);
    acv_image_free(&im);
    free(b);
    /* masks that are not one run of bits: refused */
    put32(masks, 0xF0F000);
    b = bmp_build(40, 3, 1, 16, 3, 0, masks, 12, NULL, 0, p16[0], 8, &len);
    assert_int_equal(acv_image_decode(b, len, NULL, "mask.bmp", &im), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "mask.bmp: corrupt BMP (colour masks"));
    free(b);

    /* RLE8, 6x3: bottom row a run and an odd absolute run, middle a delta, top a run
     * clipped at the row's end, then end of bitmap */
    static const uint8_t rle8[] = {3, 1, 0, 3, 2, 3, 4, 0, 0, 0, /* row 0: 1 1 1 2 3 4 */
                                   0, 2, 2, 0, 2, 5, 0, 0,       /* row 1: skip 2, 5 5 */
                                   8, 6, 0, 1};                  /* row 2: 6 x 6 (8 clipped) */
    b = bmp_build(40, 6, 3, 8, 1, 16, NULL, 0, pal, 64, rle8, sizeof rle8, &len);
    decode_ok(b, len, 0, &im);
    int want8[3][6] = {{6, 6, 6, 6, 6, 6}, {-1, -1, 5, 5, -1, -1}, {1, 1, 1, 2, 3, 4}};
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 6; x++) assert_int_equal(px(&im, x, y, 0), want8[y][x] < 0 ? 0 : PALR(want8[y][x]));
    acv_image_free(&im);
    free(b);
    b = bmp_build(40, 6, 3, 8, 1, 16, NULL, 0, pal, 64, rle8, 10, &len); /* only row 0 */
    assert_int_equal(acv_image_decode(b, len, NULL, "rle8.bmp", &im), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "rle8.bmp: truncated BMP data"));
    assert_null(im.data);
    free(b);
    /* RLE4, 5x2: an alternating run, an absolute run of 3 nibbles, a run of 2 */
    static const uint8_t rle4[] = {5, 0x12, 0, 0, 0, 3, 0x34, 0x50, 2, 0x66, 0, 1};
    b = bmp_build(40, 5, 2, 4, 2, 16, NULL, 0, pal, 64, rle4, sizeof rle4, &len);
    decode_ok(b, len, 0, &im);
    int want4[2][5] = {{3, 4, 5, 6, 6}, {1, 2, 1, 2, 1}};
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 5; x++) assert_int_equal(px(&im, x, y, 0), PALR(want4[y][x]));
    acv_image_free(&im);
    free(b);
    /* RLE cannot be top-down */
    b = bmp_build(40, 5, -2, 4, 2, 16, NULL, 0, pal, 64, rle4, sizeof rle4, &len);
    assert_int_equal(acv_image_decode(b, len, NULL, "td.bmp", &im), ACV_EFORMAT);
    free(b);

    /* OS/2 1.x BITMAPCOREHEADER: 4-bit palette of 3-byte entries, and 24-bit */
    b = bmp_build(12, 5, 2, 4, 0, 0, NULL, 0, pal3, 48, pix4, 8, &len);
    decode_ok(b, len, 0, &im);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 5; x++) assert_int_equal(px(&im, x, y, 2), PALB((rows4[y][x / 2] >> (x % 2 ? 0 : 4)) & 15));
    acv_image_free(&im);
    free(b);
    uint8_t p24[8] = {10, 20, 30, 40, 50, 60, 0, 0};
    b = bmp_build(12, 2, 1, 24, 0, 0, NULL, 0, NULL, 0, p24, 8, &len);
    decode_ok(b, len, 0, &im);
    uint8_t want24[6] = {30, 20, 10, 60, 50, 40};
    assert_memory_equal(im.data, want24, 6);
    acv_image_free(&im);
    free(b);
    /* shorter than the header says: a header cut, pixels cut */
    b = bmp_build(40, 9, 3, 1, 0, 2, NULL, 0, pal, 8, (const uint8_t *)rows1, 12, &len);
    assert_int_equal(acv_image_decode(b, 30, NULL, "h.bmp", &im), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "h.bmp: truncated BMP header"));
    assert_int_equal(acv_image_decode(b, len - 6, NULL, "p.bmp", &im), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "p.bmp: truncated BMP data"));
    assert_null(im.data);
    free(b);
#undef PALR
#undef PALB
}

/* Files that are not JPEG, PNG or BMP say what they are. */
static void test_other_formats_named(void **state)
{
    (void)state;
    static const struct { const char *bytes; size_t n; const char *kind; } cases[] = {
        {"RIFF\x10\0\0\0WEBPVP8 ", 16, "but a WebP image"},
        {"GIF89a\1\0\1\0", 10, "but a GIF image"},
        {"II*\0\x08\0\0\0", 8, "but a TIFF image"},
        {"MM\0*\0\0\0\x08", 8, "but a TIFF image"},
        {"\0\0\0\x18" "ftypheic\0\0\0\0", 16, "but a HEIF/HEIC image"},
        {"\0\0\0\x1c" "ftypavif\0\0\0\0", 16, "but an AVIF image"},
        {"\0\x05\x16\x07\0\2\0\0", 8, "AppleDouble"},
        {"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 8, "Thumbs.db"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        acv_image im;
        assert_int_equal(acv_image_decode((const uint8_t *)cases[i].bytes, cases[i].n, NULL, "f", &im), ACV_EFORMAT);
        assert_non_null(strstr(acv_errmsg(), "f: not a JPEG, PNG or BMP image"));
        if (!strstr(acv_errmsg(), cases[i].kind)) fail_msg("'%s' lacks '%s'", acv_errmsg(), cases[i].kind);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_roundtrip_8bit),
        cmocka_unit_test(test_png_16bit),
        cmocka_unit_test(test_png_palette),
        cmocka_unit_test(test_png_gray_alpha_and_rgba),
        cmocka_unit_test(test_png_interlaced),
        cmocka_unit_test(test_jpeg_gray_rgb),
        cmocka_unit_test(test_jpeg_cmyk),
        cmocka_unit_test(test_bmp_variants),
        cmocka_unit_test(test_exif_orientation),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_huge_header_refused),
        cmocka_unit_test(test_jpeg_alloc_failure_names_source),
        cmocka_unit_test(test_one_pixel_and_files),
        cmocka_unit_test(test_jpeg_variants),
        cmocka_unit_test(test_jpeg_adobe_cmyk_ycck),
        cmocka_unit_test(test_jpeg_damage),
        cmocka_unit_test(test_exif_all_orientations),
        cmocka_unit_test(test_png_ancillary_and_apng),
        cmocka_unit_test(test_png_more_depths),
        cmocka_unit_test(test_bmp_palette_16bit_rle_os2),
        cmocka_unit_test(test_other_formats_named),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
