/* Tests for src/data/yolo_yaml.c, the data.yaml reader both YOLO readers share: every form of
 * names (flow and block lists, block and flow maps, one line or several), nc with and without
 * names, path, train / val (valid, validation) / test as a string, a flow list or a block
 * list, null and empty values, a byte order mark, CRLF, comments and quoted scalars; each
 * refusal with its line (the message carries no location: the callers add it); and the
 * helpers (scalar, class tokens, label paths). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "data/yolo_yaml.h"

static void assert_has(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("\"%s\" does not mention \"%s\"", hay, needle);
}

static acv_yolo_yaml parse_ok(const char *text, bool utf8)
{
    char *t = strdup(text);
    assert_non_null(t);
    acv_yolo_yaml y;
    int line = -1;
    int rc = acv_yolo_yaml_parse(t, utf8, &y, &line);
    free(t);
    if (rc) fail_msg("parse of \"%s\" failed: line %d: %s", text, line, acv_errmsg());
    return y;
}

/* text must be refused at line with a message saying what (and no location of its own). */
static void parse_bad(const char *text, bool utf8, int line, const char *what)
{
    char *t = strdup(text);
    assert_non_null(t);
    acv_yolo_yaml y;
    int at = -1;
    acv_error_clear();
    assert_int_equal(acv_yolo_yaml_parse(t, utf8, &y, &at), ACV_EFORMAT);
    free(t);
    if (at != line) fail_msg("\"%s\": error at line %d, expected %d (%s)", text, at, line, acv_errmsg());
    assert_has(acv_errmsg(), what);
    assert_null(strstr(acv_errmsg(), "line"));
    assert_null(y.names); /* left empty */
    assert_int_equal(y.k, 0);
    assert_int_equal(y.nc, -1);
    assert_int_equal(y.hole, -1);
}

static void assert_names(const acv_yolo_yaml *y, int k, const char *const *want)
{
    assert_int_equal(y->k, k);
    assert_int_equal(y->hole, -1);
    assert_true(y->have_names);
    for (int i = 0; i < k; i++) assert_string_equal(y->names[i], want[i]);
}

static void test_names_forms(void **state)
{
    (void)state;
    static const char *const WANT[] = {"a", "b c", "d\"e"};
    static const char *const CASES[] = {
        "names: [a, 'b c', \"d\\\"e\"]  # three\n",                       /* flow list, one line */
        "names: [a,\n  b c,\n  d\"e]\n",                                    /* flow list over lines */
        "names:\n  - a\n  - b c  # comment\n  - 'd\"e'\n",                  /* block list */
        "names:\n- a\n- b c\n- d\"e\n",                                     /* block list, not indented */
        "names:\n  2: d\"e\n  0: a\n  1: \"b c\"\n",                        /* block map, any order */
        "names: {0: a, 1: b c,\n  2: 'd\"e'}\n",                            /* flow map over lines */
        "names: {2: 'd\"e', 0: a, 1: b c}\n",                               /* flow map, one line */
        "\xEF\xBB\xBFnames:\r\n  0: a\r\n  1: b c\r\n  2: d\"e\r\nnc: 3\r\n", /* BOM, CRLF, nc agrees */
        "# a comment\nnc: 3 # three\n\nnames: ['a', 'b c', 'd\"e']\n",     /* nc first, quoted */
        "roboflow:\n  names: [x]\n  nc: 7\nnames: [a, b c, d\"e]\n",        /* other keys' content skipped */
    };
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
        acv_yolo_yaml y = parse_ok(CASES[i], false);
        assert_names(&y, 3, WANT);
        acv_yolo_yaml_free(&y);
    }
    /* '' in a single-quoted scalar, \n in a double-quoted one, # inside a word */
    acv_yolo_yaml y = parse_ok("names: ['it''s', \"x\\ny\", a#b]\n", false);
    assert_names(&y, 3, (const char *const[]){"it's", "x\ny", "a#b"});
    acv_yolo_yaml_free(&y);
    /* names empty or absent */
    y = parse_ok("names: []\n", false);
    assert_true(y.have_names);
    assert_int_equal(y.k, 0);
    acv_yolo_yaml_free(&y);
    y = parse_ok("train: images\n", false);
    assert_false(y.have_names);
    assert_int_equal(y.k, 0);
    assert_int_equal(y.nc, -1);
    acv_yolo_yaml_free(&y);
}

static void test_nc(void **state)
{
    (void)state;
    /* nc alone: the caller names the classes (Ultralytics' class_0, class_1, ...) */
    acv_yolo_yaml y = parse_ok("train: images\n\nnc: 2\n", false);
    assert_false(y.have_names);
    assert_int_equal(y.nc, 2);
    assert_int_equal(y.nc_line, 3);
    assert_int_equal(acv_yolo_add_name(&y, "class_0"), 0);
    assert_int_equal(acv_yolo_add_name(&y, "class_1"), 0);
    assert_int_equal(y.k, 2);
    assert_string_equal(y.names[0], "class_0");
    assert_string_equal(y.names[1], "class_1");
    acv_yolo_yaml_free(&y);
    assert_int_equal(y.nc, -1); /* free leaves it empty */
    y = parse_ok("nc: 0\nnames: []\n", false);
    assert_int_equal(y.nc, 0);
    acv_yolo_yaml_free(&y);
}

static void test_hole(void **state)
{
    (void)state;
    /* A map that skips an index: the caller refuses it in its own words; nc is not checked. */
    acv_yolo_yaml y = parse_ok("nc: 5\nnames:\n  0: a\n  2: c\n", false);
    assert_int_equal(y.hole, 1);
    assert_int_equal(y.k, 3);
    assert_null(y.names[1]);
    acv_yolo_yaml_free(&y);
    y = parse_ok("names: {1: b, 0: a}\n", false);
    assert_int_equal(y.hole, -1);
    acv_yolo_yaml_free(&y);
}

static void test_path_and_splits(void **state)
{
    (void)state;
    acv_yolo_yaml y = parse_ok("path: '../my data'  # root\n"
                               "train: images/train\n"
                               "val: [images/val, 'lists/val.txt']\n"
                               "test:\n"
                               "  - a  # first\n"
                               "\n"
                               "  - \"b\"\n"
                               "names: [x]\n",
                               false);
    assert_string_equal(y.path, "../my data");
    assert_int_equal(y.split_line[0], 2);
    assert_int_equal(y.nsplit[0], 1);
    assert_string_equal(y.split[0][0], "images/train");
    assert_int_equal(y.split_line[1], 3);
    assert_int_equal(y.nsplit[1], 2);
    assert_string_equal(y.split[1][0], "images/val");
    assert_string_equal(y.split[1][1], "lists/val.txt");
    assert_int_equal(y.split_line[2], 4);
    assert_int_equal(y.nsplit[2], 2);
    assert_string_equal(y.split[2][0], "a");
    assert_string_equal(y.split[2][1], "b");
    acv_yolo_yaml_free(&y);
    /* valid and validation stand for val, the first given counts; a flow list over lines */
    y = parse_ok("validation: [v1,\n  v2]\nvalid: v3\nval: v4\n", false);
    assert_int_equal(y.split_line[1], 1);
    assert_int_equal(y.nsplit[1], 2);
    assert_string_equal(y.split[1][1], "v2");
    acv_yolo_yaml_free(&y);
    y = parse_ok("valid: ../valid/images\n", false);
    assert_int_equal(y.split_line[1], 1);
    assert_string_equal(y.split[1][0], "../valid/images");
    acv_yolo_yaml_free(&y);
    /* null, empty, an empty list, a block list with nothing in it: not given */
    y = parse_ok("path: null\ntrain: ~\nval:\ntest: []\nnames: [x]\n", false);
    assert_null(y.path);
    for (int i = 0; i < 3; i++) assert_int_equal(y.split_line[i], 0);
    acv_yolo_yaml_free(&y);
    y = parse_ok("path:\ntest: NULL\nval: ''\n", false);
    assert_null(y.path);
    for (int i = 0; i < 3; i++) assert_int_equal(y.split_line[i], 0);
    acv_yolo_yaml_free(&y);
    /* a quoted "null" is a string; the first path counts */
    y = parse_ok("test: 'null'\npath: a\npath: b\n", false);
    assert_int_equal(y.split_line[2], 1);
    assert_string_equal(y.split[2][0], "null");
    assert_string_equal(y.path, "a");
    acv_yolo_yaml_free(&y);
}

static void test_refused(void **state)
{
    (void)state;
    parse_bad("names:\n  0: a\n  0: b\n", false, 3, "class 0 is named twice");
    parse_bad("names: {0: a, x: b}\n", false, 1, "names key 'x' is not a class index");
    parse_bad("names:\n  0: a\n  : b\n", false, 3, "names key '' is not a class index");
    parse_bad("names:\n  -1: a\n", false, 2, "names key '-1' is not a class index");
    parse_bad("names:\n  0: a\n  b\n", false, 3, "a names entry is not 'index: name'");
    parse_bad("names: [a, '']\n", false, 1, "an empty class name");
    parse_bad("names:\n  0:\n", false, 2, "an empty class name");
    parse_bad("names: {100000: a}\n", false, 1, "class index 100000 is too large");
    parse_bad("names: bolt\n", false, 1, "names is neither a list nor a map");
    parse_bad("names: [a]\nnc: three\n", false, 2, "nc 'three' is not a number of classes");
    parse_bad("nc: -1\n", false, 1, "nc '-1' is not a number of classes");
    parse_bad("nc: 100001\n", false, 1, "nc '100001' is not a number of classes");
    parse_bad("train: images\n\nnc: 3\nnames: [a, b]\n", false, 3, "nc is 3 but names lists 2 classes: make them agree");
    parse_bad("names: [a]\nnc: 0\n", false, 2, "nc is 0 but names lists 1 classes");
    parse_bad("x: 1\nnames: [a,\n  b\nval: c\n", false, 2, "the [...] or {...} is not closed");
    parse_bad("names: {0: a\n", false, 1, "the [...] or {...} is not closed");
    parse_bad("validation: {a: b}\n", false, 1, "validation is a map; expected a folder, a .txt list or a list of them");
    parse_bad("names: [a]\ntrain:\n  - a\n  b: c\n", false, 4, "train: expected a list item '- folder'");
    /* with utf8 (the platform), names and split values must be UTF-8 */
    parse_bad("names: [a, \"\xff\"]\n", true, 1, "a class name is not valid UTF-8");
    parse_bad("names: [a]\ntest:\n  - ok\n  - \xc3\n", true, 4, "test is not valid UTF-8");
    acv_yolo_yaml y = parse_ok("names: [\"\xff\"]\ntrain: \xc3\n", false);
    assert_string_equal(y.names[0], "\xff");
    acv_yolo_yaml_free(&y);
    y = parse_ok("names: [b\xc3\xa4r]\n", true);
    assert_string_equal(y.names[0], "b\xc3\xa4r");
    acv_yolo_yaml_free(&y);
}

static void test_helpers(void **state)
{
    (void)state;
    char bom[] = "\xEF\xBB\xBFx", plain[] = "x";
    assert_string_equal(acv_yolo_skip_bom(bom), "x");
    assert_ptr_equal(acv_yolo_skip_bom(plain), plain);
    char s1[] = "  a b  # c ", s2[] = " 'a '' #b' # c", s3[] = "\"a\\\\b\\\"\\tc\"", s4[] = "# all comment";
    assert_string_equal(acv_yolo_scalar(s1), "a b");
    assert_string_equal(acv_yolo_scalar(s2), "a ' #b");
    assert_string_equal(acv_yolo_scalar(s3), "a\\b\"\tc");
    assert_string_equal(acv_yolo_scalar(s4), "");
    double c;
    assert_true(acv_yolo_class("3", &c) && c == 3);
    assert_true(acv_yolo_class("1.0", &c) && c == 1);
    assert_true(acv_yolo_class("2e0", &c) && c == 2);
    assert_true(acv_yolo_class("-1", &c) && c == -1); /* whole; the callers refuse negatives */
    static const char *const NOT[] = {"", "1.5", "x", "1x", "nan", "inf", "1e9", "1e-400"};
    for (size_t i = 0; i < sizeof NOT / sizeof *NOT; i++)
        if (acv_yolo_class(NOT[i], &c)) fail_msg("'%s' read as a class", NOT[i]);
    static const char *const LP[][2] = {
        {"images/train/x.jpg", "labels/train/x.txt"},
        {"train/images/x.JPG", "train/labels/x.txt"},
        {"a/images/b/images/x.png", "a/images/b/labels/x.txt"}, /* the last images folder */
        {"myimages/x.png", "myimages/x.txt"},                   /* not an images folder */
        {"images/a.b/x", "labels/a.b/x.txt"},
        {"x.tar.png", "x.tar.txt"},
    };
    for (size_t i = 0; i < sizeof LP / sizeof *LP; i++) {
        char *p = acv_yolo_label_path(LP[i][0]);
        assert_non_null(p);
        assert_string_equal(p, LP[i][1]);
        free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_forms),
        cmocka_unit_test(test_nc),
        cmocka_unit_test(test_hole),
        cmocka_unit_test(test_path_and_splits),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
