/* autocv dataset: detection datasets on disk (data/det_dataset.h).
 *   convert  read COCO, YOLO or VOC and write it as another of them (or the same, re-laid out)
 *   info     count images, boxes and classes per split, checking every label on the way */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>

#include "autocv/error.h"
#include "base/file.h"
#include "cli/args.h"
#include "data/det_dataset.h"

#define MAX_SPLITS 64

typedef struct split_count {
    char name[32];
    int64_t images, boxes, empty, crowd, difficult;
} split_count;

/* Per-split counts, in order of first appearance ("" for an unsplit source). */
static int count_splits(const acv_det_dataset *ds, split_count *sc)
{
    int n = 0;
    for (int i = 0; i < ds->n; i++) {
        const acv_det_image *im = &ds->images[i];
        int j = 0;
        while (j < n && strcmp(sc[j].name, im->split)) j++;
        if (j == n) {
            if (n == MAX_SPLITS) continue;
            memset(&sc[n], 0, sizeof sc[n]);
            snprintf(sc[n].name, sizeof sc[n].name, "%s", im->split);
            n++;
        }
        sc[j].images++;
        sc[j].boxes += im->n;
        sc[j].empty += im->n == 0;
        for (int b = 0; b < im->n; b++) {
            sc[j].crowd += (im->boxes[b].flags & ACV_BOX_CROWD) != 0;
            sc[j].difficult += (im->boxes[b].flags & ACV_BOX_DIFFICULT) != 0;
        }
    }
    return n;
}

static int64_t total_boxes(const acv_det_dataset *ds)
{
    int64_t t = 0;
    for (int i = 0; i < ds->n; i++) t += ds->images[i].n;
    return t;
}

static json_t *splits_json(const split_count *sc, int n)
{
    json_t *o = json_object();
    for (int i = 0; o && i < n; i++)
        json_object_set_new(o, sc[i].name[0] ? sc[i].name : "(none)",
                            json_pack("{s:I, s:I, s:I, s:I, s:I}", "images", (json_int_t)sc[i].images, "boxes",
                                      (json_int_t)sc[i].boxes, "empty", (json_int_t)sc[i].empty, "crowd",
                                      (json_int_t)sc[i].crowd, "difficult", (json_int_t)sc[i].difficult));
    return o;
}

static bool dir_nonempty(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return acv_path_exists(path); /* a file is "non-empty" too */
    struct dirent *e;
    bool any = false;
    while (!any && (e = readdir(d))) any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return any;
}

static bool known_format(const char *f) { return !strcmp(f, "coco") || !strcmp(f, "yolo") || !strcmp(f, "voc"); }

static int cmd_convert(int argc, char **argv)
{
    const char *from = NULL, *to = NULL, *data = NULL, *out = NULL, *split = NULL;
    bool skip_bad = false, json = false;
    acv_argdef defs[] = {
        {"--from", ACV_ARG_STR, &from, "FMT", "source format: coco, yolo or voc (default: detected)"},
        {"--to", ACV_ARG_STR, &to, "FMT", "output format: coco, yolo or voc"},
        {"--data", ACV_ARG_STR, &data, "PATH", "source dataset folder (or a COCO .json / YOLO data.yaml file)"},
        {"--out", ACV_ARG_STR, &out, "DIR", "output folder (must not exist or be empty)"},
        {"--split", ACV_ARG_STR, &split, "NAME", "convert only this split, written under this name (default: all)"},
        {"--skip-bad", ACV_ARG_FLAG, &skip_bad, NULL, "drop bad labels (counted) instead of failing"},
        {"--json", ACV_ARG_FLAG, &json, NULL, "print the summary as one JSON object"},
    };
    const char *usage = "--to coco|yolo|voc --data PATH --out DIR [--from FMT] [--split NAME] [--skip-bad] [--json]";
    int rc = acv_args_parse("dataset convert", usage, argc, argv, defs, (int)(sizeof defs / sizeof defs[0]), NULL,
                            NULL);
    if (rc) return rc > 0 ? 0 : 2;
    if (!data) return acv_cli_fail("dataset convert", "--data PATH is required (usage: autocv dataset convert %s)", usage);
    if (!out) return acv_cli_fail("dataset convert", "--out DIR is required (usage: autocv dataset convert %s)", usage);
    if (!to) return acv_cli_fail("dataset convert", "--to FMT is required: coco, yolo or voc");
    if (!known_format(to)) return acv_cli_fail("dataset convert", "--to '%s' is not coco, yolo or voc", to);
    if (from && !known_format(from)) return acv_cli_fail("dataset convert", "--from '%s' is not coco, yolo or voc", from);
    if (split && !strcmp(split, "all")) split = NULL;
    if (dir_nonempty(out)) return acv_cli_fail("dataset convert", "--out %s exists and is not empty", out);
    acv_det_open_opts o = {.format = from, .skip_bad = skip_bad};
    acv_det_dataset *ds = NULL;
    rc = acv_det_dataset_open(data, split, &o, &ds);
    if (!rc) rc = acv_det_dataset_write(ds, to, out, split);
    if (rc) {
        acv_det_dataset_free(ds);
        return acv_cli_error("dataset convert", rc);
    }
    split_count sc[MAX_SPLITS];
    int ns = count_splits(ds, sc);
    int64_t boxes = total_boxes(ds);
    if (json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:i, s:I, s:o}", "from", ds->format, "to", to, "data",
                              data, "out", out, "images", ds->n, "boxes", (json_int_t)boxes, "classes", ds->k,
                              "skipped", (json_int_t)ds->bad_labels, "splits", splits_json(sc, ns));
        if (j && ds->bad_labels) json_object_set_new(j, "first_skipped", json_string(ds->first_bad));
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(j);
    } else {
        printf("converted %s %s -> %s %s: %d images, %lld boxes, %d classes, %lld bad labels skipped\n", ds->format,
               data, to, out, ds->n, (long long)boxes, ds->k, (long long)ds->bad_labels);
        for (int i = 0; i < ns; i++)
            printf("  %-12s %8lld images %9lld boxes\n", split ? split : sc[i].name[0] ? sc[i].name : "train",
                   (long long)sc[i].images, (long long)sc[i].boxes);
        if (ds->bad_labels) printf("  first skipped: %s\n", ds->first_bad);
    }
    acv_det_dataset_free(ds);
    return 0;
}

static int cmd_info(int argc, char **argv)
{
    const char *format = NULL, *data = NULL, *split = NULL;
    bool skip_bad = false, json = false;
    acv_argdef defs[] = {
        {"--data", ACV_ARG_STR, &data, "PATH", "dataset folder (or a COCO .json / YOLO data.yaml file)"},
        {"--format", ACV_ARG_STR, &format, "FMT", "coco, yolo or voc (default: detected)"},
        {"--split", ACV_ARG_STR, &split, "NAME", "only this split (default: all)"},
        {"--skip-bad", ACV_ARG_FLAG, &skip_bad, NULL, "count bad labels instead of failing on the first"},
        {"--json", ACV_ARG_FLAG, &json, NULL, "print one JSON object"},
    };
    const char *usage = "--data PATH [--format FMT] [--split NAME] [--skip-bad] [--json]";
    int rc = acv_args_parse("dataset info", usage, argc, argv, defs, (int)(sizeof defs / sizeof defs[0]), NULL, NULL);
    if (rc) return rc > 0 ? 0 : 2;
    if (!data) return acv_cli_fail("dataset info", "--data PATH is required (usage: autocv dataset info %s)", usage);
    if (format && !known_format(format)) return acv_cli_fail("dataset info", "--format '%s' is not coco, yolo or voc", format);
    acv_det_open_opts o = {.format = format, .skip_bad = skip_bad};
    acv_det_dataset *ds = NULL;
    rc = acv_det_dataset_open(data, split, &o, &ds);
    if (rc) return acv_cli_error("dataset info", rc);
    split_count sc[MAX_SPLITS];
    int ns = count_splits(ds, sc);
    int64_t *per = calloc((size_t)(ds->k ? ds->k : 1), sizeof *per);
    if (!per) {
        acv_det_dataset_free(ds);
        return acv_cli_error("dataset info", acv_error(ACV_ENOMEM, "out of memory"));
    }
    for (int i = 0; i < ds->n; i++)
        for (int b = 0; b < ds->images[i].n; b++) per[ds->images[i].boxes[b].cls]++;
    if (json) {
        json_t *cls = json_array();
        for (int c = 0; cls && c < ds->k; c++)
            json_array_append_new(cls, json_pack("{s:s, s:I, s:I}", "name", ds->names[c], "id",
                                                 (json_int_t)ds->cat_ids[c], "boxes", (json_int_t)per[c]));
        json_t *j = json_pack("{s:s, s:s, s:i, s:I, s:i, s:o, s:o, s:I}", "format", ds->format, "data", data, "images",
                              ds->n, "boxes", (json_int_t)total_boxes(ds), "classes", ds->k, "per_class", cls,
                              "splits", splits_json(sc, ns), "bad_labels", (json_int_t)ds->bad_labels);
        if (j && ds->bad_labels) json_object_set_new(j, "first_bad", json_string(ds->first_bad));
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(j);
    } else {
        printf("%s dataset %s: %d images, %lld boxes, %d classes\n", ds->format, data, ds->n,
               (long long)total_boxes(ds), ds->k);
        printf("  %-12s %8s %9s %7s %7s %9s\n", "split", "images", "boxes", "empty", "crowd", "difficult");
        for (int i = 0; i < ns; i++)
            printf("  %-12s %8lld %9lld %7lld %7lld %9lld\n", sc[i].name[0] ? sc[i].name : "(none)",
                   (long long)sc[i].images, (long long)sc[i].boxes, (long long)sc[i].empty, (long long)sc[i].crowd,
                   (long long)sc[i].difficult);
        printf("  %-24s %8s %9s\n", "class", "id", "boxes");
        for (int c = 0; c < ds->k; c++)
            printf("  %-24.24s %8lld %9lld\n", ds->names[c], (long long)ds->cat_ids[c], (long long)per[c]);
        if (ds->bad_labels)
            printf("  %lld bad labels skipped; first: %s\n", (long long)ds->bad_labels, ds->first_bad);
    }
    free(per);
    acv_det_dataset_free(ds);
    return 0;
}

int acv_cmd_dataset(int argc, char **argv)
{
    static const char *const HELP = "usage: autocv dataset SUBCOMMAND [options]   (autocv dataset SUBCOMMAND --help)\n\n"
                                    "subcommands:\n"
                                    "  convert    convert a detection dataset between COCO, YOLO and Pascal VOC\n"
                                    "  info       count images, boxes and classes per split (checks every label)\n";
    if (argc < 2) {
        fputs(HELP, stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(HELP, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "convert")) return cmd_convert(argc - 1, argv + 1);
    if (!strcmp(argv[1], "info")) return cmd_info(argc - 1, argv + 1);
    return acv_cli_fail("dataset", "unknown subcommand '%s' (convert or info)", argv[1]);
}
