/* safetensors: writer/reader round trip, metadata, byte layout, dtype conversion from
 * hand-made files (F16, BF16, F64, integers), and every malformed-file case the reader
 * must refuse with a message naming the file and the tensor. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "autocv/error.h"
#include "base/file.h"
#include "nn/safetensors.h"

static char g_dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(g_dir, "/tmp/acv_st_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
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

/* Writes a raw safetensors file: declared header length hlen_decl (or the real length
 * when UINT64_MAX), the header text, then len data bytes. */
static void write_raw_len(const char *path, uint64_t hlen_decl, const char *header, const void *data, size_t len)
{
    size_t hl = strlen(header);
    if (hlen_decl == UINT64_MAX) hlen_decl = hl;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(hlen_decl >> (8 * i));
    assert_int_equal(fwrite(le, 1, 8, f), 8);
    assert_int_equal(fwrite(header, 1, hl, f), hl);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void write_raw(const char *path, const char *header, const void *data, size_t len)
{
    write_raw_len(path, UINT64_MAX, header, data, len);
}

static void test_round_trip(void **state)
{
    (void)state;
    const char *path = tmp_path("rt.safetensors");
    float w[2 * 3 * 2 * 2], b[3], s[1] = {42.5f};
    for (int i = 0; i < 24; i++) w[i] = (float)i * 0.5f - 3.0f;
    b[0] = -1.0f; b[1] = INFINITY; b[2] = 1e-30f;
    const char *names[] = {"conv.weight", "conv.bias", "scale", "empty"};
    acv_shape shapes[4] = {acv_shape_make(4, 2, 3, 2, 2), acv_shape_make(1, 3, 0, 0, 0),
                           acv_shape_make(0, 0, 0, 0, 0), acv_shape_make(2, 5, 0, 0, 0)};
    const float *datas[] = {w, b, s, NULL};
    const char *meta[] = {"format", "pt", "autocv", "1", NULL};
    assert_int_equal(acv_safetensors_save(path, 4, names, shapes, datas, meta), 0);

    /* Byte layout: header length a multiple of 8, padded with spaces, data contiguous. */
    uint8_t *raw;
    size_t len;
    assert_int_equal(acv_file_read(path, 1 << 20, &raw, &len), 0);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | raw[i];
    assert_int_equal(hlen % 8, 0);
    assert_int_equal(len, 8 + hlen + (24 + 3 + 1) * 4);
    assert_int_equal(raw[8], '{');
    size_t end = 8 + (size_t)hlen;
    while (raw[end - 1] == ' ') end--;
    assert_int_equal(raw[end - 1], '}');
    assert_true(8 + hlen - end < 8);
    /* names sorted: conv.bias first, then conv.weight, empty, scale */
    float first;
    memcpy(&first, raw + 8 + hlen, 4);
    assert_true(first == -1.0f);
    free(raw);

    acv_safetensors *st = NULL;
    assert_int_equal(acv_safetensors_open(path, &st), 0);
    assert_string_equal(acv_safetensors_path(st), path);
    assert_int_equal(acv_safetensors_count(st), 4);
    const char *sorted[] = {"conv.bias", "conv.weight", "empty", "scale"};
    for (int i = 0; i < 4; i++) assert_string_equal(acv_safetensors_at(st, i)->name, sorted[i]);

    const acv_safetensors_tensor *t = acv_safetensors_find(st, "conv.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, ACV_ST_DTYPE_F32);
    assert_int_equal(t->shape.ndim, 4);
    assert_int_equal(t->shape.d[0], 2);
    assert_int_equal(t->shape.d[3], 2);
    assert_int_equal(t->numel, 24);
    assert_int_equal(t->nbytes, 96);
    assert_memory_equal(t->data, w, sizeof w);

    const float *pb;
    acv_shape sb;
    assert_int_equal(acv_safetensors_get_f32(st, "conv.bias", &sb, &pb), 0);
    assert_int_equal(sb.ndim, 1);
    assert_int_equal(sb.d[0], 3);
    assert_memory_equal(pb, b, sizeof b);
    assert_int_equal((uintptr_t)pb % 4, 0);

    float got = 0;
    assert_int_equal(acv_safetensors_read_f32(st, "scale", &got, 1), 0);
    assert_true(got == 42.5f);
    assert_int_equal(acv_safetensors_find(st, "scale")->shape.ndim, 0);
    assert_int_equal(acv_safetensors_find(st, "empty")->numel, 0);
    assert_int_equal(acv_safetensors_read_f32(st, "empty", NULL, 0), 0);

    float wrong[5];
    assert_int_equal(acv_safetensors_read_f32(st, "conv.bias", wrong, 5), ACV_ESHAPE);
    assert_non_null(strstr(acv_errmsg(), "conv.bias"));
    assert_null(acv_safetensors_find(st, "nope"));
    assert_int_equal(acv_safetensors_read_f32(st, "nope", wrong, 1), ACV_ENOTFOUND);
    assert_non_null(strstr(acv_errmsg(), "nope"));
    assert_non_null(strstr(acv_errmsg(), path));

    assert_int_equal(acv_safetensors_meta_count(st), 2);
    assert_string_equal(acv_safetensors_meta(st, "format"), "pt");
    assert_string_equal(acv_safetensors_meta(st, "autocv"), "1");
    assert_null(acv_safetensors_meta(st, "missing"));
    const char *k, *v;
    acv_safetensors_meta_at(st, 0, &k, &v);
    assert_string_equal(k, "autocv");
    assert_string_equal(v, "1");
    acv_safetensors_close(st);

    /* Overwrite with an empty file: no tensors, no metadata. */
    assert_int_equal(acv_safetensors_save(path, 0, NULL, NULL, NULL, NULL), 0);
    assert_int_equal(acv_safetensors_open(path, &st), 0);
    assert_int_equal(acv_safetensors_count(st), 0);
    assert_int_equal(acv_safetensors_meta_count(st), 0);
    assert_null(acv_safetensors_find(st, "conv.bias"));
    assert_null(acv_safetensors_meta(st, "format"));
    acv_safetensors_close(st);
    acv_safetensors_close(NULL);
}

static void test_save_errors(void **state)
{
    (void)state;
    const char *path = tmp_path("bad_save.safetensors");
    float x[2] = {1, 2};
    const float *d2[] = {x, x};
    acv_shape s2[2] = {acv_shape_make(1, 2, 0, 0, 0), acv_shape_make(1, 2, 0, 0, 0)};
    const char *dup[] = {"a", "a"};
    assert_int_equal(acv_safetensors_save(path, 2, dup, s2, d2, NULL), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "'a' given twice"));
    const char *reserved[] = {"__metadata__"};
    assert_int_equal(acv_safetensors_save(path, 1, reserved, s2, d2, NULL), ACV_EINVAL);
    acv_shape neg = acv_shape_make(2, 2, -1, 0, 0);
    const char *one[] = {"w"};
    assert_int_equal(acv_safetensors_save(path, 1, one, &neg, d2, NULL), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "'w'"));
    const float *nulld[] = {NULL};
    assert_int_equal(acv_safetensors_save(path, 1, one, s2, nulld, NULL), ACV_EINVAL);
    acv_shape huge = {3, {INT64_C(1) << 40, INT64_C(1) << 40, 1, 0, 0, 0}};
    assert_int_equal(acv_safetensors_save(path, 1, one, &huge, d2, NULL), ACV_ERANGE);
    const char *meta_odd[] = {"k", NULL};
    assert_int_equal(acv_safetensors_save(path, 1, one, s2, d2, meta_odd), ACV_EINVAL);
    const char *meta_dup[] = {"k", "1", "k", "2", NULL};
    assert_int_equal(acv_safetensors_save(path, 1, one, s2, d2, meta_dup), ACV_EINVAL);
    const char *bad_utf8[] = {"w\xff"};
    assert_int_equal(acv_safetensors_save(path, 1, bad_utf8, s2, d2, NULL), ACV_EINVAL);
    assert_false(acv_path_exists(path)); /* nothing written on error */
    assert_int_equal(acv_safetensors_save(tmp_path("no/such/dir/x.safetensors"), 1, one, s2, d2, NULL), ACV_EIO);
}

/* A file written by hand with non-F32 dtypes; the header is padded to an odd length so
 * that the F32 tensor lands misaligned. */
static void test_dtype_conversion(void **state)
{
    (void)state;
    uint8_t data[64];
    size_t o = 0;
    /* F16 x 6 at [0,12): 1, -2, 65504, 2^-24 (subnormal), inf, 0.333251953125 */
    uint16_t h[6] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00, 0x3555};
    memcpy(data + o, h, 12); o += 12;
    /* BF16 x 2 at [12,16): 1, -3 */
    uint16_t bf[2] = {0x3F80, 0xC040};
    memcpy(data + o, bf, 4); o += 4;
    /* F64 x 1 at [16,24) */
    double dd = 0.1;
    memcpy(data + o, &dd, 8); o += 8;
    /* I64 x 1 at [24,32) */
    int64_t i64 = -5;
    memcpy(data + o, &i64, 8); o += 8;
    /* U8 x 2 at [32,34), F8 x 1 at [34,35), BOOL x 1 at [35,36) */
    data[o++] = 7; data[o++] = 255; data[o++] = 0x38; data[o++] = 1;
    /* F32 x 1 at [36,40) */
    float f = 2.5f;
    memcpy(data + o, &f, 4); o += 4;
    /* a F16 NaN at [40,42) and a negative subnormal at [42,44) */
    uint16_t hn[2] = {0x7E00, 0x8200};
    memcpy(data + o, hn, 4); o += 4;
    const char *hdr =
        "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
        "\"bf\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]},"
        "\"d\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[16,24]},"
        "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[24,32]},"
        "\"u\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[32,34]},"
        "\"f8\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[34,35]},"
        "\"b\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[35,36]},"
        "\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[36,40]},"
        "\"hn\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[40,44]},"
        "\"__metadata__\":{\"note\":\"hand-made\"}}  ";
    const char *path = tmp_path("dtypes.safetensors");
    /* Pad so that 8 + header length is 2 mod 4: the F32 at offset 36 is misaligned. */
    char padded[2048];
    snprintf(padded, sizeof padded, "%s", hdr);
    while ((8 + strlen(padded)) % 4 != 2) strcat(padded, " ");
    write_raw(path, padded, data, o);

    acv_safetensors *st;
    assert_int_equal(acv_safetensors_open(path, &st), 0);
    assert_int_equal(acv_safetensors_count(st), 9);
    assert_string_equal(acv_safetensors_meta(st, "note"), "hand-made");
    float out[6];
    assert_int_equal(acv_safetensors_read_f32(st, "h", out, 6), 0);
    assert_true(out[0] == 1.0f);
    assert_true(out[1] == -2.0f);
    assert_true(out[2] == 65504.0f);
    assert_true(out[3] == ldexpf(1.0f, -24));
    assert_true(isinf(out[4]) && out[4] > 0);
    assert_true(out[5] == 0.333251953125f);
    assert_int_equal(acv_safetensors_find(st, "h")->dtype, ACV_ST_DTYPE_F16);
    assert_int_equal(acv_safetensors_read_f32(st, "hn", out, 2), 0);
    assert_true(isnan(out[0]));
    assert_true(out[1] == -ldexpf(1.0f, -15)); /* 0x8200 = -(512 / 1024) * 2^-14 */
    assert_int_equal(acv_safetensors_read_f32(st, "bf", out, 2), 0);
    assert_true(out[0] == 1.0f && out[1] == -3.0f);
    assert_int_equal(acv_safetensors_read_f32(st, "d", out, 1), 0);
    assert_true(out[0] == 0.1f);
    assert_int_equal(acv_safetensors_read_f32(st, "i", out, 1), 0);
    assert_true(out[0] == -5.0f);
    assert_int_equal(acv_safetensors_read_f32(st, "u", out, 2), 0);
    assert_true(out[0] == 7.0f && out[1] == 255.0f);
    assert_int_equal(acv_safetensors_read_f32(st, "b", out, 1), 0);
    assert_true(out[0] == 1.0f);
    assert_int_equal(acv_safetensors_read_f32(st, "f8", out, 1), ACV_EUNSUPPORTED);
    assert_non_null(strstr(acv_errmsg(), "F8_E4M3"));
    /* The F32 tensor is readable by copy, but not zero-copy (misaligned). */
    assert_int_equal(acv_safetensors_read_f32(st, "f", out, 1), 0);
    assert_true(out[0] == 2.5f);
    const float *p;
    assert_int_equal(acv_safetensors_get_f32(st, "f", NULL, &p), ACV_EUNSUPPORTED);
    assert_non_null(strstr(acv_errmsg(), "aligned"));
    assert_int_equal(acv_safetensors_get_f32(st, "h", NULL, &p), ACV_EUNSUPPORTED);
    assert_non_null(strstr(acv_errmsg(), "F16"));
    assert_string_equal(acv_st_dtype_name(ACV_ST_DTYPE_BF16), "BF16");
    assert_int_equal(acv_st_dtype_size(ACV_ST_DTYPE_I64), 8);
    acv_safetensors_close(st);
}

/* Expects open to fail with code and a message containing want (and the path). */
static void expect_bad(const char *name, const char *header, size_t data_len, int code, const char *want)
{
    const char *path = tmp_path(name);
    uint8_t zeros[256] = {0};
    assert_true(data_len <= sizeof zeros);
    write_raw(path, header, zeros, data_len);
    acv_safetensors *st = (acv_safetensors *)1;
    int rc = acv_safetensors_open(path, &st);
    if (rc != code || !strstr(acv_errmsg(), want) || !strstr(acv_errmsg(), path))
        fail_msg("%s: got %d '%s', wanted %d with '%s'", name, rc, acv_errmsg(), code, want);
    assert_null(st);
}

#define T(name, dtype, shape, b, e) "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void test_malformed(void **state)
{
    (void)state;
    acv_safetensors *st;
    /* Missing file, directory, too short. */
    assert_int_equal(acv_safetensors_open(tmp_path("missing.safetensors"), &st), ACV_ENOTFOUND);
    assert_int_equal(acv_safetensors_open(g_dir, &st), ACV_EIO);
    const char *shortp = tmp_path("short.safetensors");
    assert_int_equal(acv_file_write_atomic(shortp, "abc", 3), 0);
    assert_int_equal(acv_safetensors_open(shortp, &st), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "too short"));

    /* Header length against the file size and the limit. */
    const char *lp = tmp_path("len.safetensors");
    write_raw_len(lp, 1000, "{}", NULL, 0);
    assert_int_equal(acv_safetensors_open(lp, &st), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "header length 1000 exceeds"));
    write_raw_len(lp, UINT64_C(1) << 62, "{}", NULL, 0);
    assert_int_equal(acv_safetensors_open(lp, &st), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "limit"));

    expect_bad("notjson.st", "[1,2]   ", 0, ACV_EFORMAT, "does not start with '{'");
    expect_bad("trunc.st", "{\"a\":{\"dtype\":", 0, ACV_EFORMAT, "malformed JSON");
    expect_bad("garbage.st", "{} xx", 0, ACV_EFORMAT, "malformed JSON");
    expect_bad("dup.st", "{" T("w", "F32", "[1]", 0, 4) "," T("w", "F32", "[1]", 4, 8) "}", 8, ACV_EFORMAT,
               "duplicate");
    expect_bad("entry.st", "{\"w\":[1,2]}", 0, ACV_EFORMAT, "tensor 'w': header entry is not a JSON object");
    expect_bad("nodtype.st", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, ACV_EFORMAT, "'w': \"dtype\"");
    expect_bad("dtype.st", "{" T("w", "Q7", "[1]", 0, 4) "}", 4, ACV_EUNSUPPORTED, "'w': unknown dtype \"Q7\"");
    expect_bad("noshape.st", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, ACV_EFORMAT, "'w': \"shape\"");
    expect_bad("negdim.st", "{" T("w", "F32", "[2,-1]", 0, 4) "}", 4, ACV_EFORMAT, "'w': shape[1]");
    expect_bad("fltdim.st", "{" T("w", "F32", "[1.0]", 0, 4) "}", 4, ACV_EFORMAT, "'w': shape[0]");
    expect_bad("ndim.st", "{" T("w", "F32", "[1,1,1,1,1,1,1]", 0, 4) "}", 4, ACV_EUNSUPPORTED, "'w': 7 dims");
    expect_bad("absurd.st", "{" T("w", "F32", "[4294967296,4294967296,4294967296]", 0, 4) "}", 4, ACV_EFORMAT,
               "'w': absurd shape");
    expect_bad("offs.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, ACV_EFORMAT,
               "'w': \"data_offsets\"");
    expect_bad("noffs.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, ACV_EFORMAT, "'w': \"data_offsets\"");
    expect_bad("backw.st", "{" T("w", "F32", "[1]", 4, 0) "}", 4, ACV_EFORMAT, "'w': data_offsets [4, 0]");
    expect_bad("negoff.st", "{" T("w", "F32", "[1]", -4, 0) "}", 4, ACV_EFORMAT, "'w': data_offsets [-4, 0]");
    expect_bad("oob.st", "{" T("w", "F32", "[4]", 0, 16) "}", 8, ACV_EFORMAT, "'w': data_offsets [0, 16] run past");
    expect_bad("size.st", "{" T("w", "F32", "[3]", 0, 8) "}", 8, ACV_EFORMAT, "'w': data_offsets [0, 8] hold 8 bytes");
    expect_bad("size16.st", "{" T("w", "F16", "[3]", 0, 12) "}", 12, ACV_EFORMAT, "needs 6");
    expect_bad("overlap.st", "{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[2]", 4, 12) "}", 12, ACV_EFORMAT,
               "tensors 'a' and 'b' overlap");
    expect_bad("gap.st", "{" T("a", "F32", "[1]", 0, 4) "," T("b", "F32", "[1]", 8, 12) "}", 12, ACV_EFORMAT,
               "4 unused bytes before tensor 'b'");
    expect_bad("lead.st", "{" T("a", "F32", "[1]", 4, 8) "}", 8, ACV_EFORMAT, "unused bytes before tensor 'a'");
    expect_bad("tail.st", "{" T("a", "F32", "[1]", 0, 4) "}", 12, ACV_EFORMAT, "has 12 bytes but the tensors cover 4");
    expect_bad("meta.st", "{\"__metadata__\":[1]}", 0, ACV_EFORMAT, "\"__metadata__\" is not a JSON object");
    expect_bad("metav.st", "{\"__metadata__\":{\"epoch\":3}}", 0, ACV_EFORMAT, "metadata value of \"epoch\"");

    /* The same layouts, corrected, are accepted (the checks are not over-eager). */
    const char *okp = tmp_path("ok.safetensors");
    write_raw(okp, "{" T("b", "F32", "[1]", 4, 8) "," T("a", "F32", "[1]", 0, 4) "," T("z", "F32", "[0,3]", 8, 8)
                   ",\"__metadata__\":{}}", (float[]){1, 2}, 8);
    assert_int_equal(acv_safetensors_open(okp, &st), 0);
    float v[2];
    assert_int_equal(acv_safetensors_read_f32(st, "b", v, 1), 0);
    assert_true(v[0] == 2.0f);
    assert_int_equal(acv_safetensors_count(st), 3);
    acv_safetensors_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_save_errors),
        cmocka_unit_test(test_dtype_conversion),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
