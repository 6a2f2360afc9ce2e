/* A small XML element tree over libexpat, for annotation files (Pascal VOC): each element
 * keeps its name, the character data directly inside it (CDATA, entities and character
 * references decoded by expat, UTF-8), its children and the line its start tag is on.
 * Attributes, comments and processing instructions are dropped. A DOCTYPE is refused (so
 * no entity is ever declared or expanded: no billion laughs, no external entities), and so
 * is nesting deeper than ACV_XML_DEPTH or more than ACV_XML_NODES elements. */
#ifndef ACV_DATA_XML_H
#define ACV_DATA_XML_H

#include <stdbool.h>
#include <stddef.h>

#define ACV_XML_DEPTH 64        /* the root is at depth 0 */
#define ACV_XML_NODES 200000

typedef struct acv_xml {
    char *name;
    char *text;                 /* character data directly inside, concatenated; NULL when none */
    int line;                   /* 1-based line of its start tag */
    struct acv_xml *child;      /* the first child, in document order */
    struct acv_xml *next;       /* the next sibling */
} acv_xml;

/* Parses the document s[0..len) into *root (released with acv_xml_free). A malformed or
 * refused document is ACV_EFORMAT with the message "line N: what" (acv_errmsg); out of
 * memory is ACV_ENOMEM. *root is NULL on failure. */
int acv_xml_parse(const char *s, size_t len, acv_xml **root);
void acv_xml_free(acv_xml *root);

/* The first child of n named name, or NULL (n may be NULL). */
acv_xml *acv_xml_child(const acv_xml *n, const char *name);
/* The text of child name with surrounding white space trimmed (in place), "" when it has
 * none, NULL when there is no such child. */
const char *acv_xml_text(const acv_xml *n, const char *name);
/* Child name's text as a finite number: false when missing, empty or not wholly a number. */
bool acv_xml_num(const acv_xml *n, const char *name, double *out);
/* Child name's text is "true" (any case) or a nonzero integer. */
bool acv_xml_flag(const acv_xml *n, const char *name);

/* For writing XML: the entity that stands for c in text and attribute values (&amp; &lt; &gt;
 * &quot; &apos;), or NULL when c is written as it is. */
const char *acv_xml_entity(char c);

#endif
