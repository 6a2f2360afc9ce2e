/* The XML element tree over libexpat (see xml.h). Expat reads the bytes (encodings, CDATA,
 * entities, character references, well-formedness); its callbacks build the tree here, and
 * stop the parse at a DOCTYPE or past the limits. */
#include "data/xml.h"

#include <ctype.h>
#include <errno.h>
#include <expat.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "autocv/error.h"

#define CHUNK (1u << 20) /* bytes handed to expat at a time (it takes an int length) */

typedef struct builder {
    XML_Parser p;
    acv_xml *root;
    int depth;                              /* elements open */
    acv_xml *open[ACV_XML_DEPTH + 1];       /* the open elements, the root first */
    acv_xml *last[ACV_XML_DEPTH + 1];       /* the last child of each */
    size_t tlen[ACV_XML_DEPTH + 1], tcap[ACV_XML_DEPTH + 1];
    int nodes;
    int code, line;                         /* why a callback stopped the parse, and where */
    const char *why;
} builder;

static int line_now(XML_Parser p)
{
    XML_Size l = XML_GetCurrentLineNumber(p);
    return l > INT_MAX ? INT_MAX : (int)l;
}

static void stop(builder *b, int code, const char *why)
{
    if (b->code) return;
    b->code = code;
    b->line = line_now(b->p);
    b->why = why;
    XML_StopParser(b->p, XML_FALSE);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attr)
{
    (void)attr;
    builder *b = ud;
    if (b->code) return;
    if (b->depth > ACV_XML_DEPTH || ++b->nodes > ACV_XML_NODES) {
        stop(b, ACV_EFORMAT, b->depth > ACV_XML_DEPTH ? "elements nested too deep" : "too many elements");
        return;
    }
    acv_xml *n = calloc(1, sizeof *n);
    if (!n || !(n->name = strdup(name))) {
        free(n);
        stop(b, ACV_ENOMEM, "out of memory");
        return;
    }
    n->line = line_now(b->p);
    if (!b->depth) b->root = n;
    else if (b->last[b->depth - 1]) b->last[b->depth - 1]->next = n;
    else b->open[b->depth - 1]->child = n;
    if (b->depth) b->last[b->depth - 1] = n;
    b->open[b->depth] = n;
    b->last[b->depth] = NULL;
    b->tlen[b->depth] = b->tcap[b->depth] = 0;
    b->depth++;
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    (void)name;
    builder *b = ud;
    if (!b->code && b->depth) b->depth--;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    builder *b = ud;
    if (b->code || !b->depth || len <= 0) return;
    int d = b->depth - 1;
    acv_xml *n = b->open[d];
    if (b->tlen[d] + (size_t)len + 1 > b->tcap[d]) {
        size_t cap = b->tcap[d] ? b->tcap[d] : 64;
        while (cap < b->tlen[d] + (size_t)len + 1) cap *= 2;
        char *t = realloc(n->text, cap);
        if (!t) {
            stop(b, ACV_ENOMEM, "out of memory");
            return;
        }
        n->text = t;
        b->tcap[d] = cap;
    }
    memcpy(n->text + b->tlen[d], s, (size_t)len);
    b->tlen[d] += (size_t)len;
    n->text[b->tlen[d]] = 0;
}

/* A DOCTYPE is where entities are declared: refused before its internal subset is read. */
static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
                               int has_internal_subset)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
    stop(ud, ACV_EFORMAT, "a DOCTYPE (DTDs and entity declarations are refused)");
}

/* Expat's error, in the words of this project's messages where they differ. */
static int expat_error(const builder *b)
{
    enum XML_Error e = XML_GetErrorCode(b->p);
    int line = line_now(b->p);
    const acv_xml *open = b->depth ? b->open[b->depth - 1] : NULL;
    const char *what = XML_ErrorString(e);
    switch (e) {
    case XML_ERROR_NO_MEMORY: return acv_error(ACV_ENOMEM, "out of memory");
    case XML_ERROR_NO_ELEMENTS: what = open ? "an element is not closed" : "no root element"; break;
    case XML_ERROR_TAG_MISMATCH: what = "a closing tag does not match its element"; break;
    case XML_ERROR_UNCLOSED_TOKEN: what = "unterminated markup (the file ends inside a tag)"; break;
    case XML_ERROR_UNCLOSED_CDATA_SECTION: what = "an unterminated CDATA section"; break;
    case XML_ERROR_JUNK_AFTER_DOC_ELEMENT: what = "content after the root element"; break;
    case XML_ERROR_UNDEFINED_ENTITY:
        what = "an unknown entity (only &lt; &gt; &amp; &quot; &apos; and &#N; are read)";
        break;
    case XML_ERROR_BAD_CHAR_REF: what = "a character reference to an invalid character"; break;
    default: break;
    }
    if (open && (e == XML_ERROR_NO_ELEMENTS || e == XML_ERROR_TAG_MISMATCH))
        return acv_error(ACV_EFORMAT, "line %d: %s (<%.60s> of line %d)", line, what, open->name, open->line);
    return acv_error(ACV_EFORMAT, "line %d: %s", line, what ? what : "malformed XML");
}

int acv_xml_parse(const char *s, size_t len, acv_xml **root)
{
    *root = NULL;
    XML_Parser p = XML_ParserCreate(NULL);
    if (!p) return acv_error(ACV_ENOMEM, "out of memory");
    builder b = {.p = p};
    XML_SetUserData(p, &b);
    XML_SetElementHandler(p, on_start, on_end);
    XML_SetCharacterDataHandler(p, on_text);
    XML_SetStartDoctypeDeclHandler(p, on_doctype);
    enum XML_Status st;
    size_t off = 0;
    do {
        size_t k = len - off < CHUNK ? len - off : CHUNK;
        st = XML_Parse(p, s + off, (int)k, off + k == len);
        off += k;
    } while (st == XML_STATUS_OK && off < len);
    int rc = 0;
    if (st != XML_STATUS_OK)
        rc = b.code == ACV_ENOMEM ? acv_error(ACV_ENOMEM, "out of memory")
             : b.code             ? acv_error(b.code, "line %d: %s", b.line, b.why)
                                  : expat_error(&b);
    XML_ParserFree(p);
    if (rc) {
        acv_xml_free(b.root);
        return rc;
    }
    *root = b.root;
    return 0;
}

void acv_xml_free(acv_xml *n)
{
    while (n) {
        acv_xml *next = n->next;
        acv_xml_free(n->child); /* at most ACV_XML_DEPTH deep */
        free(n->name);
        free(n->text);
        free(n);
        n = next;
    }
}

acv_xml *acv_xml_child(const acv_xml *n, const char *name)
{
    for (acv_xml *c = n ? n->child : NULL; c; c = c->next)
        if (!strcmp(c->name, name)) return c;
    return NULL;
}

const char *acv_xml_text(const acv_xml *n, const char *name)
{
    acv_xml *c = acv_xml_child(n, name);
    if (!c) return NULL;
    if (!c->text) return "";
    char *s = c->text;
    while (isspace((unsigned char)*s)) s++;
    size_t k = strlen(s);
    while (k > 0 && isspace((unsigned char)s[k - 1])) s[--k] = 0;
    return s;
}

bool acv_xml_num(const acv_xml *n, const char *name, double *out)
{
    const char *t = acv_xml_text(n, name);
    if (!t || !*t) return false;
    char *end;
    errno = 0;
    *out = strtod(t, &end);
    return !*end && !errno && isfinite(*out);
}

bool acv_xml_flag(const acv_xml *n, const char *name)
{
    const char *t = acv_xml_text(n, name);
    return t && (!strcasecmp(t, "true") || atoi(t) != 0);
}

const char *acv_xml_entity(char c)
{
    switch (c) {
    case '&': return "&amp;";
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '"': return "&quot;";
    case '\'': return "&apos;";
    default: return NULL;
    }
}
