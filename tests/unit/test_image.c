/* Image decoding and encoding: PNG (8/16-bit, palette, gray+alpha, RGBA, interlaced),
 * JPEG (gray, RGB, CMYK), BMP (24/32/8-bit, bottom-up and top-down) round trips on
 * fixtures built in the test; EXIF orientation 6 and 3 in both byte orders; and every
 * bad input: empty file, text named .jpg, truncated JPEG/PNG/BMP, a 30000x30000
 * header (refused fast with ACV_ERANGE), unsupported BMP variants. */
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

    /* Unsupported: RLE8 and 16-bit; corrupt: truncated pixel data. */
    put32(b + 30, 1);
    put16(b + 28, 8);
    assert_int_equal(acv_image_decode(b, len, NULL, "rle.bmp", &back), ACV_EUNSUPPORTED);
    assert_non_null(strstr(acv_errmsg(), "rle.bmp"));
    put32(b + 30, 0);
    put16(b + 28, 16);
    assert_int_equal(acv_image_decode(b, len, NULL, "x.bmp", &back), ACV_EUNSUPPORTED);
    assert_non_null(strstr(acv_errmsg(), "16 bits per pixel"));
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

    size_t cuts[] = {jl / 2, jl - 2, 100, 4};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(acv_image_decode(jpg, cuts[i], NULL, "t.jpg", &im), ACV_EFORMAT);
        assert_non_null(strstr(acv_errmsg(), "t.jpg: "));
        assert_null(im.data);
    }
    size_t pcuts[] = {pl / 2, pl - 4, 40, 20, 6};
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
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
