/* A YOLO (Ultralytics) data.yaml, read for its top-level keys, and the small helpers both YOLO
 * readers share: the command line's (src/data/det_yolo.c) and the platform's archive importer
 * (src/platform/import_yolo.c).
 *
 * The keys: names (a flow or block list, or a map from index to name, flow or block), nc,
 * path, and train / val (valid, validation) / test (a string, or a flow or block list of
 * them). Values may be quoted ('' and \" escapes) or null (empty, ~, null); comments, a UTF-8
 * byte order mark and CRLF line ends are fine; nested content of any other key (Roboflow's
 * roboflow: block, download: scripts) is skipped. What each value means (folders, the root)
 * is up to the caller. */
#ifndef ACV_DATA_YOLO_YAML_H
#define ACV_DATA_YOLO_YAML_H

#include <stdbool.h>

#define ACV_YOLO_MAX_CLASSES 100000

/* The split keys, in the order of acv_yolo_yaml's split arrays: train, val, test. */
extern const char *const acv_yolo_splits[3];

typedef struct acv_yolo_yaml {
    char **names;      /* k names, in index order (names[hole] is NULL when hole >= 0) */
    int k;
    int hole;          /* the first index a names map skips (-1: none): the caller refuses it */
    bool have_names;   /* a names: key was given (perhaps empty) */
    long nc;           /* nc: (-1 when absent) */
    int nc_line;
    char *path;        /* path: (NULL when absent or null) */
    char **split[3];   /* train, val, test: the values given */
    int nsplit[3];
    int split_line[3]; /* the key's line (0: not given, null, or an empty list) */
    int cap;           /* names' capacity (for acv_yolo_add_name) */
} acv_yolo_yaml;

/* What an acv_yolo_yaml holds before anything is read. */
#define ACV_YOLO_YAML_EMPTY {.hole = -1, .nc = -1}

/* Reads the keys of text (NUL-terminated; cut up in place) into *y. A malformed file is
 * ACV_EFORMAT with acv_errmsg() saying what and *line where, so each caller can name the file
 * and line its own way; out of memory is ACV_ENOMEM. With utf8, a name or split value that is
 * not UTF-8 is malformed too (the platform keeps them as JSON). A names map that skips an
 * index is no error here: y->hole says which, and the caller words the refusal (nc is then
 * not checked against names). On failure *y is empty. */
int acv_yolo_yaml_parse(char *text, bool utf8, acv_yolo_yaml *y, int *line);
/* Appends a class name (classes.txt, or nc's class_0, class_1, ...): 0 or ACV_ENOMEM. */
int acv_yolo_add_name(acv_yolo_yaml *y, const char *name);
/* Releases *y and leaves it empty. */
void acv_yolo_yaml_free(acv_yolo_yaml *y);

/* Skips a UTF-8 byte order mark (Windows editors write one). */
char *acv_yolo_skip_bom(char *s);
/* Cuts a YAML scalar in place: trims, unquotes ('' and \" \\ escapes), drops a " #" comment. */
char *acv_yolo_scalar(char *s);
/* A label line's class token: a whole number, also written as 1.0 (|c| < 1e9). */
bool acv_yolo_class(const char *t, double *c);
/* An image's label file: its path with the last "images" folder replaced by "labels" and the
 * extension by .txt (beside the image when there is no images folder). malloc'd; NULL when
 * out of memory. */
char *acv_yolo_label_path(const char *img);

#endif
