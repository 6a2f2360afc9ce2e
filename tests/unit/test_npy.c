/* .npy: round trip, cross-checks against the real numpy (/usr/bin/python3; skipped when
 * it is missing) in both directions -- numpy-written files of every accepted dtype, byte
 * order and format version load to numpy's own float32 conversion, and our files are
 * byte-identical to numpy.save -- and malformed headers. */
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
#include "base/npy.h"

static char g_dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(g_dir, "/tmp/acv_npy_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return acv_remove_tree(g_dir);
}

static const char *tmp_path(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static void test_round_trip(void **state)
{
    (void)state;
    acv_shape shapes[] = {
        acv_shape_make(0, 0, 0, 0, 0),   acv_shape_make(1, 7, 0, 0, 0), acv_shape_make(3, 2, 3, 4, 0),
        acv_shape_make(2, 0, 3, 0, 0),   {6, {1, 2, 1, 3, 1, 2}},
    };
    float buf[64];
    for (int i = 0; i < 64; i++) buf[i] = (float)i * 0.25f - 5.0f;
    buf[1] = NAN;
    buf[2] = -INFINITY;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const char *path = tmp_path("rt.npy");
        assert_int_equal(acv_npy_save(path, &shapes[s], buf), 0);
        uint8_t *raw;
        size_t len;
        assert_int_equal(acv_file_read(path, 1 << 20, &raw, &len), 0);
        int64_t n = acv_shape_numel(&shapes[s]);
        assert_int_equal((len - (size_t)n * 4) % 64, 0); /* header aligned to 64 like numpy */
        assert_int_equal(raw[len - (size_t)n * 4 - 1], '\n');
        acv_shape got;
        float *data = NULL;
        assert_int_equal(acv_npy_load_mem(raw, len, "mem", &got, &data), 0);
        free(data);
        free(raw);
        assert_int_equal(acv_npy_load(path, &got, &data), 0);
        assert_non_null(data);
        assert_int_equal(got.ndim, shapes[s].ndim);
        for (int d = 0; d < got.ndim; d++) assert_int_equal(got.d[d], shapes[s].d[d]);
        if (n > 0) assert_memory_equal(data, buf, (size_t)n * sizeof(float));
        free(data);
    }
    acv_shape neg = acv_shape_make(2, 2, -2, 0, 0);
    assert_int_equal(acv_npy_save(tmp_path("neg.npy"), &neg, buf), ACV_EINVAL);
    acv_shape one = acv_shape_make(1, 3, 0, 0, 0);
    assert_int_equal(acv_npy_save(tmp_path("null.npy"), &one, NULL), ACV_EINVAL);
    assert_false(acv_path_exists(tmp_path("null.npy")));
    assert_int_equal(acv_npy_save(tmp_path("no/dir/x.npy"), &one, buf), ACV_EIO);
}

/* The numpy side: writes inputs (name.npy) and numpy's own float32 conversion of them
 * (name.f32, raw little-endian bytes), plus np.save files of float32 arrays (save_*.npy)
 * with their raw data (save_*.raw) and shape (save_*.shape). */
static const char *const py_script =
    "import sys, numpy as np\n"
    "from numpy.lib import format as fmt\n"
    "d = sys.argv[1]\n"
    "def both(name, a, version=None):\n"
    "    with open(f'{d}/{name}.npy', 'wb') as f:\n"
    "        fmt.write_array(f, a, version=version)\n"
    "    np.ascontiguousarray(a).astype('<f4').tofile(f'{d}/{name}.f32')\n"
    "r = np.random.default_rng(7)\n"
    "both('f4', r.standard_normal((2, 3)).astype('<f4'))\n"
    "both('f8', r.standard_normal((4, 5)) * 1e3)\n"
    "both('f2', np.arange(65536, dtype='<u2').view('<f2'))\n"
    "both('i8', np.array([[-(2**40), -1, 0], [1, 7, 2**53 + 1]], dtype='<i8'))\n"
    "both('i4', np.arange(-6, 6, dtype='<i4').reshape(3, 2, 2))\n"
    "both('u1', np.arange(256, dtype='u1'))\n"
    "both('i1', np.arange(-128, 128, dtype='i1'))\n"
    "both('u2', np.array([0, 1, 65535], dtype='<u2'))\n"
    "both('b1', np.array([True, False, True]))\n"
    "both('be_f4', r.standard_normal((3, 4)).astype('>f4'))\n"
    "both('be_f8', r.standard_normal(5).astype('>f8'))\n"
    "both('be_i2', np.array([-300, 5, 32767], dtype='>i2'))\n"
    "both('be_f2', np.array([1.5, -0.0001, 65504], dtype='>f2'))\n"
    "both('scalar', np.array(3.25, dtype='<f4'))\n"
    "both('empty', np.zeros((0, 4), dtype='<f8'))\n"
    "both('dims6', np.arange(24, dtype='<f4').reshape(1, 2, 3, 1, 4, 1))\n"
    "both('v2', r.standard_normal((2, 2)).astype('<f4'), (2, 0))\n"
    "both('v3', r.standard_normal((3,)).astype('<f4'), (3, 0))\n"
    "np.save(f'{d}/fortran.npy', np.asfortranarray(np.ones((2, 3), dtype='<f4')))\n"
    "np.save(f'{d}/complex.npy', np.ones(3, dtype='<c8'))\n"
    "np.save(f'{d}/struct.npy', np.zeros(2, dtype=[('a', '<f4'), ('b', '<i4')]))\n"
    "np.save(f'{d}/dims7.npy', np.zeros((1,) * 7, dtype='<f4'))\n"
    "for i, shape in enumerate([(), (5,), (2, 3), (1, 2, 3, 4), (0, 3), (12345678901, 0), (3, 1, 1, 1, 1, 2)]):\n"
    "    a = r.standard_normal(shape).astype('<f4') if 0 not in shape else np.zeros(shape, '<f4')\n"
    "    np.save(f'{d}/save_{i}.npy', a)\n"
    "    a.tofile(f'{d}/save_{i}.raw')\n"
    "    open(f'{d}/save_{i}.shape', 'w').write(' '.join(map(str, shape)) + '\\n')\n";

static int run_numpy(void)
{
    char script[256], cmd[600];
    snprintf(script, sizeof script, "%s/gen.py", g_dir);
    if (acv_file_write_atomic(script, py_script, strlen(py_script)) != 0) return -1;
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s 2>%s/py.err", script, g_dir, g_dir);
    return system(cmd);
}

/* Loads name.npy and compares it bitwise with numpy's conversion name.f32. */
static void check_against_numpy(const char *name, int ndim, const int64_t *dims)
{
    char p[300], q[300];
    snprintf(p, sizeof p, "%s/%s.npy", g_dir, name);
    snprintf(q, sizeof q, "%s/%s.f32", g_dir, name);
    acv_shape shape;
    float *data;
    int rc = acv_npy_load(p, &shape, &data);
    if (rc) fail_msg("%s: %s", name, acv_errmsg());
    uint8_t *want;
    size_t len;
    assert_int_equal(acv_file_read(q, 1 << 24, &want, &len), 0);
    assert_int_equal(shape.ndim, ndim);
    for (int i = 0; i < ndim; i++) assert_int_equal(shape.d[i], dims[i]);
    assert_int_equal((size_t)acv_shape_numel(&shape) * 4, len);
    if (len && memcmp(data, want, len)) {
        const float *w = (const float *)want;
        for (size_t i = 0; i < len / 4; i++)
            if (memcmp(&data[i], &w[i], 4)) fail_msg("%s: element %zu is %g, numpy says %g", name, i, data[i], w[i]);
    }
    free(want);
    /* The in-memory loader agrees. */
    uint8_t *raw;
    assert_int_equal(acv_file_read(p, 1 << 24, &raw, &len), 0);
    float *data2;
    assert_int_equal(acv_npy_load_mem(raw, len, name, &shape, &data2), 0);
    if (acv_shape_numel(&shape) > 0) assert_memory_equal(data, data2, (size_t)acv_shape_numel(&shape) * 4);
    free(raw);
    free(data2);
    free(data);
}

static void expect_load_error(const char *file, int code, const char *want)
{
    acv_shape shape;
    float *data = (float *)1;
    const char *p = tmp_path(file);
    int rc = acv_npy_load(p, &shape, &data);
    if (rc != code || !strstr(acv_errmsg(), want) || !strstr(acv_errmsg(), p))
        fail_msg("%s: got %d '%s', wanted %d with '%s'", file, rc, acv_errmsg(), code, want);
    assert_null(data);
}

static void test_numpy_cross_check(void **state)
{
    (void)state;
    if (run_numpy() != 0) {
        fprintf(stderr, "[  SKIPPED ] /usr/bin/python3 with numpy is not available\n");
        skip();
    }
    check_against_numpy("f4", 2, (int64_t[]){2, 3});
    check_against_numpy("f8", 2, (int64_t[]){4, 5});
    check_against_numpy("f2", 1, (int64_t[]){65536}); /* every half, NaN payloads included */
    check_against_numpy("i8", 2, (int64_t[]){2, 3});
    check_against_numpy("i4", 3, (int64_t[]){3, 2, 2});
    check_against_numpy("u1", 1, (int64_t[]){256});
    check_against_numpy("i1", 1, (int64_t[]){256});
    check_against_numpy("u2", 1, (int64_t[]){3});
    check_against_numpy("b1", 1, (int64_t[]){3});
    check_against_numpy("be_f4", 2, (int64_t[]){3, 4});
    check_against_numpy("be_f8", 1, (int64_t[]){5});
    check_against_numpy("be_i2", 1, (int64_t[]){3});
    check_against_numpy("be_f2", 1, (int64_t[]){3});
    check_against_numpy("scalar", 0, NULL);
    check_against_numpy("empty", 2, (int64_t[]){0, 4});
    check_against_numpy("dims6", 6, (int64_t[]){1, 2, 3, 1, 4, 1});
    check_against_numpy("v2", 2, (int64_t[]){2, 2});
    check_against_numpy("v3", 1, (int64_t[]){3});
    expect_load_error("fortran.npy", ACV_EUNSUPPORTED, "Fortran");
    expect_load_error("complex.npy", ACV_EUNSUPPORTED, "'<c8'");
    expect_load_error("struct.npy", ACV_EUNSUPPORTED, "structured");
    expect_load_error("dims7.npy", ACV_EUNSUPPORTED, "more than 6 dims");

    /* Our writer produces the very bytes numpy.save does. */
    for (int i = 0; i < 7; i++) {
        char p[300];
        snprintf(p, sizeof p, "%s/save_%d.shape", g_dir, i);
        uint8_t *txt;
        size_t len;
        assert_int_equal(acv_file_read(p, 4096, &txt, &len), 0);
        acv_shape shape = {0};
        char *s = (char *)txt, *end;
        for (long long v; (v = strtoll(s, &end, 10)), end != s; s = end) shape.d[shape.ndim++] = v;
        free(txt);
        snprintf(p, sizeof p, "%s/save_%d.raw", g_dir, i);
        uint8_t *data;
        assert_int_equal(acv_file_read(p, 1 << 20, &data, &len), 0);
        assert_int_equal(len, (size_t)acv_shape_numel(&shape) * 4);
        snprintf(p, sizeof p, "%s/ours_%d.npy", g_dir, i);
        assert_int_equal(acv_npy_save(p, &shape, (const float *)data), 0);
        free(data);
        uint8_t *ours, *theirs;
        size_t lo, lt;
        assert_int_equal(acv_file_read(p, 1 << 20, &ours, &lo), 0);
        snprintf(p, sizeof p, "%s/save_%d.npy", g_dir, i);
        assert_int_equal(acv_file_read(p, 1 << 20, &theirs, &lt), 0);
        if (lo != lt || memcmp(ours, theirs, lo))
            fail_msg("save_%d: our file differs from numpy.save's:\n ours:   %.120s\n numpy:  %.120s", i,
                     (char *)ours + 10, (char *)theirs + 10);
        free(ours);
        free(theirs);
    }
}

/* Writes magic + version + header length + header text + data. */
static void write_npy_raw(const char *file, int major, const char *header, const void *data, size_t len)
{
    const char *p = tmp_path(file);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    size_t hl = strlen(header);
    uint8_t pre[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', (uint8_t)major, 0};
    for (int i = 0; i < 4; i++) pre[8 + i] = (uint8_t)(hl >> (8 * i));
    fwrite(pre, 1, major == 1 ? 10 : 12, f);
    fwrite(header, 1, hl, f);
    if (len) fwrite(data, 1, len, f);
    fclose(f);
}

static void test_malformed(void **state)
{
    (void)state;
    float z[8] = {0};
    expect_load_error("missing.npy", ACV_ENOTFOUND, "No such file");
    assert_int_equal(acv_file_write_atomic(tmp_path("magic.npy"), "\x93NUMPZ\x01\x00\x00\x00", 10), 0);
    expect_load_error("magic.npy", ACV_EFORMAT, "bad magic");
    assert_int_equal(acv_file_write_atomic(tmp_path("tiny.npy"), "\x93NU", 3), 0);
    expect_load_error("tiny.npy", ACV_EFORMAT, "bad magic");
    const char *good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
    write_npy_raw("v4.npy", 4, good, z, 8);
    expect_load_error("v4.npy", ACV_EFORMAT, "version 4.0");
    write_npy_raw("ok.npy", 1, good, z, 8); /* control: the same bytes with version 1 load */
    acv_shape shape;
    float *data;
    assert_int_equal(acv_npy_load(tmp_path("ok.npy"), &shape, &data), 0);
    free(data);
    write_npy_raw("okv2.npy", 2, "{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(2L,)}", z, 8);
    assert_int_equal(acv_npy_load(tmp_path("okv2.npy"), &shape, &data), 0);
    assert_int_equal(shape.d[0], 2);
    free(data);

    /* Header length beyond the file. */
    const char *p = tmp_path("hlen.npy");
    assert_int_equal(acv_file_write_atomic(p, "\x93NUMPY\x01\x00\xff\x00{}", 12), 0);
    expect_load_error("hlen.npy", ACV_EFORMAT, "truncated .npy header");

    write_npy_raw("notdict.npy", 1, "['descr', '<f4']\n", z, 0);
    expect_load_error("notdict.npy", ACV_EFORMAT, "not a dict");
    write_npy_raw("nokey.npy", 1, "{'descr': '<f4', 'shape': (2,), }\n", z, 8);
    expect_load_error("nokey.npy", ACV_EFORMAT, "missing 'fortran_order'");
    write_npy_raw("extra.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}\n", z, 8);
    expect_load_error("extra.npy", ACV_EFORMAT, "unexpected or repeated key 'x'");
    write_npy_raw("rep.npy", 1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", z, 8);
    expect_load_error("rep.npy", ACV_EFORMAT, "repeated key 'descr'");
    write_npy_raw("bool.npy", 1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", z, 8);
    expect_load_error("bool.npy", ACV_EFORMAT, "'fortran_order' is not True or False");
    write_npy_raw("shape.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': [2]}", z, 8);
    expect_load_error("shape.npy", ACV_EFORMAT, "'shape' is not a tuple");
    write_npy_raw("negshape.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", z, 8);
    expect_load_error("negshape.npy", ACV_EFORMAT, "non-negative integers");
    write_npy_raw("paren.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2 3)}", z, 24);
    expect_load_error("paren.npy", ACV_EFORMAT, "expected ',' or ')'");
    write_npy_raw("open.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", z, 8);
    expect_load_error("open.npy", ACV_EFORMAT, "expected ',' or '}'");
    write_npy_raw("quote.npy", 1, "{'descr: '<f4'}", z, 0);
    expect_load_error("quote.npy", ACV_EFORMAT, "malformed .npy header");
    write_npy_raw("unterm.npy", 1, "{'descr", z, 0);
    expect_load_error("unterm.npy", ACV_EFORMAT, "unterminated string");
    write_npy_raw("after.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", z, 8);
    expect_load_error("after.npy", ACV_EFORMAT, "text after the dict");
    write_npy_raw("huge.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (9999999999, 9999999999, 999999)}",
                  z, 8);
    expect_load_error("huge.npy", ACV_EFORMAT, "absurd shape");
    write_npy_raw("bigdim.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", z, 8);
    expect_load_error("bigdim.npy", ACV_EFORMAT, "absurd dimension");
    write_npy_raw("dtype.npy", 1, "{'descr': '|f4', 'fortran_order': False, 'shape': (2,)}", z, 8);
    expect_load_error("dtype.npy", ACV_EUNSUPPORTED, "dtype '|f4'");
    write_npy_raw("dtype2.npy", 1, "{'descr': '<f16', 'fortran_order': False, 'shape': (2,)}", z, 32);
    expect_load_error("dtype2.npy", ACV_EUNSUPPORTED, "dtype '<f16'");
    write_npy_raw("dtype3.npy", 1, "{'descr': 'O', 'fortran_order': False, 'shape': (2,)}", z, 16);
    expect_load_error("dtype3.npy", ACV_EUNSUPPORTED, "dtype 'O'");
    write_npy_raw("fort.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,)}", z, 8);
    expect_load_error("fort.npy", ACV_EUNSUPPORTED, "Fortran-order");
    write_npy_raw("short.npy", 1, good, z, 7);
    expect_load_error("short.npy", ACV_EFORMAT, "7 bytes of array data, but the header's shape and dtype need 8");
    write_npy_raw("long.npy", 1, good, z, 12);
    expect_load_error("long.npy", ACV_EFORMAT, "12 bytes of array data");
    write_npy_raw("i8short.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1,)}", z, 4);
    expect_load_error("i8short.npy", ACV_EFORMAT, "need 8");

    /* The in-memory loader refuses the same things. */
    uint8_t *raw;
    size_t len;
    assert_int_equal(acv_file_read(tmp_path("short.npy"), 4096, &raw, &len), 0);
    data = (float *)1;
    assert_int_equal(acv_npy_load_mem(raw, len, "member.npy", &shape, &data), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "member.npy"));
    assert_null(data);
    assert_int_equal(acv_npy_load_mem(raw, 20, "member.npy", &shape, &data), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "truncated"));
    assert_int_equal(acv_npy_load_mem(raw, 5, "member.npy", &shape, &data), ACV_EFORMAT);
    free(raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_numpy_cross_check),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
