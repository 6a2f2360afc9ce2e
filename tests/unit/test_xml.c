/* Tests for src/data/xml.c, the element tree over libexpat: documents, nesting, text with
 * entities and CDATA, attributes ignored, the lookups (child, text, number, flag), errors that
 * name their line, and hostile input (truncated, garbage, binary bytes, a DOCTYPE with entity
 * expansion or an external entity, nesting past the limit, too many elements, empty input). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "data/xml.h"

static void assert_has(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("\"%s\" does not mention \"%s\"", hay, needle);
}

static acv_xml *parse_ok(const char *s)
{
    acv_xml *root = NULL;
    int rc = acv_xml_parse(s, strlen(s), &root);
    if (rc) fail_msg("parse failed: %s", acv_errmsg());
    assert_non_null(root);
    return root;
}

/* Parses s[0..len), which must fail with ACV_EFORMAT and a message naming line and what. */
static void parse_bad_n(const char *s, size_t len, int line, const char *what)
{
    acv_xml *root = (acv_xml *)1;
    acv_error_clear();
    assert_int_equal(acv_xml_parse(s, len, &root), ACV_EFORMAT);
    assert_null(root);
    char want[32];
    snprintf(want, sizeof want, "line %d: ", line);
    if (line > 0) assert_has(acv_errmsg(), want);
    else assert_true(!strncmp(acv_errmsg(), "line ", 5));
    if (what) assert_has(acv_errmsg(), what);
}

static void parse_bad(const char *s, int line, const char *what) { parse_bad_n(s, strlen(s), line, what); }

static void test_document(void **state)
{
    (void)state;
    static const char doc[] = "\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                              "<!-- LabelImg -->\n"
                              "<annotation verified=\"no\" a='1'>\n"
                              "  <folder>VOC2012</folder>\n"
                              "  <?pi data?>\n"
                              "  <size><width> 100 </width><height>50</height><depth/></size>\n"
                              "  <object id=\"7\"><name>cat</name></object>\n"
                              "  <object>\n"
                              "    <name>dog</name><!-- a comment -->\n"
                              "  </object>\n"
                              "</annotation>\n"
                              "<!-- after -->\n";
    acv_xml *root = parse_ok(doc);
    assert_string_equal(root->name, "annotation");
    assert_int_equal(root->line, 3);
    assert_null(root->next);
    const char *names[] = {"folder", "size", "object", "object"};
    const int lines[] = {4, 6, 7, 8};
    int i = 0;
    for (acv_xml *c = root->child; c; c = c->next, i++) {
        assert_true(i < 4);
        assert_string_equal(c->name, names[i]);
        assert_int_equal(c->line, lines[i]);
    }
    assert_int_equal(i, 4);
    acv_xml *size = acv_xml_child(root, "size");
    assert_non_null(size);
    assert_string_equal(size->child->name, "width");
    assert_string_equal(size->child->next->name, "height");
    assert_string_equal(size->child->next->next->name, "depth");
    assert_null(size->child->next->next->next);
    assert_string_equal(acv_xml_text(root, "folder"), "VOC2012");
    assert_string_equal(acv_xml_text(size, "width"), "100");
    assert_string_equal(acv_xml_text(size, "depth"), ""); /* empty element */
    assert_null(acv_xml_text(size, "colour"));
    assert_null(acv_xml_child(NULL, "x"));
    /* the first child of a name; the second object found by walking */
    acv_xml *o = acv_xml_child(root, "object");
    assert_string_equal(acv_xml_text(o, "name"), "cat");
    assert_string_equal(acv_xml_text(o->next, "name"), "dog");
    assert_int_equal(o->next->child->line, 9);
    acv_xml_free(root);
    acv_xml_free(NULL);
}

static void test_text(void **state)
{
    (void)state;
    acv_xml *root = parse_ok("<a>x &lt;&gt;&amp;&quot;&apos; &#65;&#x4e2D;<![CDATA[<raw>&amp;]]]]> \xc3\xa9<b>in</b>"
                             "tail\r\nline</a>");
    /* character data directly inside, concatenated around the child; CRLF becomes LF */
    assert_string_equal(root->text, "x <>&\"' A\xe4\xb8\xad<raw>&amp;]] \xc3\xa9tail\nline");
    assert_string_equal(root->child->text, "in");
    acv_xml_free(root);
    /* a UTF-8 element name; UTF-16 and Latin-1 input come out as UTF-8 */
    root = parse_ok("<r><n\xc3\xa4me>v</n\xc3\xa4me></r>");
    assert_string_equal(acv_xml_text(root, "n\xc3\xa4me"), "v");
    acv_xml_free(root);
    static const char u16[] = "\xff\xfe<\0a\0>\0\xe9\0<\0/\0a\0>\0";
    assert_int_equal(acv_xml_parse(u16, sizeof u16 - 1, &root), 0);
    assert_string_equal(root->text, "\xc3\xa9");
    acv_xml_free(root);
    root = parse_ok("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>\xe9</a>");
    assert_string_equal(root->text, "\xc3\xa9");
    acv_xml_free(root);
}

static void test_lookups(void **state)
{
    (void)state;
    acv_xml *root = parse_ok("<o><n> 12.5 </n><t>ten</t><e></e><big>1e999</big><nan>nan</nan><i>-3</i>"
                             "<f1>true</f1><f2>TRUE</f2><f3> 1 </f3><f4>0</f4><f5>false</f5><f6>2</f6>"
                             "<f7>yes</f7></o>");
    double v = 0;
    assert_true(acv_xml_num(root, "n", &v));
    assert_true(v == 12.5);
    assert_true(acv_xml_num(root, "i", &v));
    assert_true(v == -3);
    assert_false(acv_xml_num(root, "t", &v));
    assert_false(acv_xml_num(root, "e", &v));
    assert_false(acv_xml_num(root, "big", &v));
    assert_false(acv_xml_num(root, "nan", &v));
    assert_false(acv_xml_num(root, "missing", &v));
    assert_true(acv_xml_flag(root, "f1"));
    assert_true(acv_xml_flag(root, "f2"));
    assert_true(acv_xml_flag(root, "f3"));
    assert_false(acv_xml_flag(root, "f4"));
    assert_false(acv_xml_flag(root, "f5"));
    assert_true(acv_xml_flag(root, "f6"));
    assert_false(acv_xml_flag(root, "f7"));
    assert_false(acv_xml_flag(root, "missing"));
    acv_xml_free(root);
}

static void test_errors_name_the_line(void **state)
{
    (void)state;
    parse_bad("<annotation>\n  <object>\n    <name>a</name>\n  </objekt>\n</annotation>\n", 4,
              "a closing tag does not match its element (<object> of line 2)");
    parse_bad("<a>\n\n<b>&nbsp;</b></a>", 3, "an unknown entity");
    parse_bad("<a>&#0;</a>", 1, "a character reference to an invalid character");
    parse_bad("<a>&#xD800;</a>", 1, "invalid character");
    parse_bad("<a/>\n<b/>", 2, "content after the root element");
    parse_bad("<a>\n<b x=1></b></a>", 2, NULL);
    parse_bad("<a>\n<b x=\"1\" x=\"2\"></b></a>", 2, "duplicate attribute");
    parse_bad("<a>\n\n<b>x < y</b></a>", 3, NULL);
}

static void test_truncated(void **state)
{
    (void)state;
    static const char doc[] = "<?xml version=\"1.0\"?>\n<annotation>\n  <filename>a&amp;b.png</filename>\n"
                              "  <object><name><![CDATA[x]]></name><bndbox><xmin>1</xmin></bndbox></object>\n"
                              "  <!-- c --><e a='v'/>\n</annotation>";
    size_t n = sizeof doc - 1;
    acv_xml *root = NULL;
    assert_int_equal(acv_xml_parse(doc, n, &root), 0);
    acv_xml_free(root);
    for (size_t k = 0; k < n; k++) parse_bad_n(doc, k, 0, NULL); /* every prefix */
    parse_bad("<annotation>\n<filename>p2.png</filename><object>", 2, "an element is not closed (<object> of line 2)");
    parse_bad("<a><b", 1, "unterminated markup (the file ends inside a tag)");
    parse_bad("<a><![CDATA[x", 1, NULL);
}

static void test_garbage_and_binary(void **state)
{
    (void)state;
    parse_bad("hello world", 1, NULL);
    parse_bad("<<<>>>", 1, NULL);
    parse_bad("</a>", 1, NULL);
    parse_bad("<a></b>", 1, "closing tag");
    parse_bad("<a>\n\xff\xfe\x80</a>", 2, NULL);            /* not UTF-8 */
    parse_bad_n("<a>\n\n x\0y</a>", 13, 3, NULL);          /* a NUL byte */
    parse_bad("<a>\x01</a>", 1, NULL);                     /* a control character */
    uint32_t s = 12345;
    char buf[512];
    for (int t = 0; t < 2000; t++) {
        size_t n = 1 + t % (sizeof buf - 1);
        for (size_t i = 0; i < n; i++) {
            s = s * 1664525u + 1013904223u;
            buf[i] = (char)(s >> 24);
        }
        if (t % 2) memcpy(buf, "<a>", 3); /* half of them past the first tag */
        acv_xml *root = NULL;
        int rc = acv_xml_parse(buf, n, &root);
        assert_true(rc == ACV_EFORMAT || rc == 0);
        acv_xml_free(root);
    }
}

static void test_doctype_refused(void **state)
{
    (void)state;
    static const char laughs[] = "<?xml version=\"1.0\"?>\n"
                                 "<!DOCTYPE lolz [\n"
                                 " <!ENTITY lol \"lol\">\n"
                                 " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
                                 " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
                                 " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
                                 " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
                                 " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
                                 " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
                                 " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
                                 " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
                                 " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
                                 "]>\n"
                                 "<lolz>&lol9;</lolz>\n";
    parse_bad(laughs, 2, "a DOCTYPE (DTDs and entity declarations are refused)");
    parse_bad("<?xml version=\"1.0\"?>\n<!DOCTYPE foo [ <!ENTITY xxe SYSTEM \"file:///etc/passwd\"> ]>\n"
              "<foo>&xxe;</foo>",
              2, "DOCTYPE");
    parse_bad("<!DOCTYPE annotation SYSTEM \"http://example.com/voc.dtd\">\n<annotation/>", 1, "DOCTYPE");
    parse_bad("<!DOCTYPE annotation>\n<annotation/>", 1, "DOCTYPE");
    /* no DOCTYPE: an entity reference is only ever unknown */
    parse_bad("<foo>&xxe;</foo>", 1, "an unknown entity");
}

/* depth nested <e> elements, with text in the innermost. */
static char *nested(int depth)
{
    size_t n = (size_t)depth;
    char *s = malloc(n * 7 + 2);
    if (!s) fail_msg("out of memory");
    for (size_t i = 0; i < n; i++) memcpy(s + 3 * i, "<e>", 3);
    s[3 * n] = 'x';
    for (size_t i = 0; i < n; i++) memcpy(s + 3 * n + 1 + 4 * i, "</e>", 4);
    s[7 * n + 1] = 0;
    return s;
}

static void test_limits(void **state)
{
    (void)state;
    char *s = nested(ACV_XML_DEPTH + 1); /* the root and ACV_XML_DEPTH levels below */
    acv_xml *root = parse_ok(s), *n = root;
    for (int i = 0; i < ACV_XML_DEPTH; i++) n = n->child;
    assert_string_equal(n->text, "x");
    assert_null(n->child);
    acv_xml_free(root);
    free(s);
    s = nested(ACV_XML_DEPTH + 2);
    parse_bad(s, 1, "elements nested too deep");
    free(s);
    s = nested(100000);
    parse_bad(s, 1, "elements nested too deep");
    free(s);
    /* too many elements */
    size_t cnt = ACV_XML_NODES + 1;
    s = malloc(cnt * 4 + 16);
    if (!s) fail_msg("out of memory");
    memcpy(s, "<r>", 3);
    for (size_t i = 1; i < cnt; i++) memcpy(s + 3 + 4 * (i - 1), "<b/>", 4);
    char *p = s + 3 + 4 * (cnt - 1);
    memcpy(p, "</r>", 5);
    parse_bad(s, 1, "too many elements");
    /* one fewer is fine */
    memcpy(p - 4, "</r>", 5);
    root = parse_ok(s);
    acv_xml_free(root);
    free(s);
}

static void test_large_text(void **state)
{
    (void)state;
    /* text across expat's input chunks (1 MiB) comes out whole */
    size_t n = 3u << 20;
    char *s = malloc(n + 16);
    assert_non_null(s);
    memcpy(s, "<a>", 3);
    for (size_t i = 0; i < n; i++) s[3 + i] = (char)('a' + i % 26);
    memcpy(s + 3 + n, "</a>", 5);
    acv_xml *root = parse_ok(s);
    assert_int_equal(strlen(root->text), n);
    assert_int_equal(root->text[n - 1], 'a' + (n - 1) % 26);
    acv_xml_free(root);
    free(s);
}

static void test_empty(void **state)
{
    (void)state;
    parse_bad_n("", 0, 1, "no root element");
    parse_bad("   \n  ", 2, "no root element");
    parse_bad("<?xml version=\"1.0\"?>\n<!-- only a comment -->\n", 3, "no root element");
    parse_bad("\xef\xbb\xbf", 1, "no root element");
}

/* What acv_xml_entity writes reads back as the text it stood for. */
static void test_entity_round_trip(void **state)
{
    (void)state;
    const char *text = "a&b<c>d\"e'f \xc3\xa9";
    char doc[128] = "<r>";
    size_t n = strlen(doc);
    for (const char *p = text; *p; p++) {
        const char *e = acv_xml_entity(*p);
        if (e) assert_true(strlen(e) > 1 && e[0] == '&');
        if (e) n += (size_t)snprintf(doc + n, sizeof doc - n, "%s", e);
        else doc[n++] = *p;
    }
    snprintf(doc + n, sizeof doc - n, "</r>");
    assert_null(strchr(doc + 3, '"'));
    acv_xml *root = NULL;
    assert_int_equal(acv_xml_parse(doc, strlen(doc), &root), 0);
    assert_string_equal(root->text, text);
    acv_xml_free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_document),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_errors_name_the_line),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_garbage_and_binary),
        cmocka_unit_test(test_doctype_refused),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_large_text),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_entity_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
