/* A one-line terminal progress bar: "label [#####.....] 412/937 <extra> ETA 0:28".
 * Redraws at most 10 times a second; finish() ends the line. */
#ifndef ACV_BASE_PROGRESS_H
#define ACV_BASE_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct acv_progress {
    FILE *f;
    char label[64];
    int64_t total;
    double t0, last_draw;
} acv_progress;

void acv_progress_start(acv_progress *p, FILE *f, const char *label, int64_t total);
/* Draws the bar at done/total with an extra text (may be NULL). */
void acv_progress_update(acv_progress *p, int64_t done, const char *extra);
/* Clears the bar line so a summary can be printed in its place. */
void acv_progress_clear(acv_progress *p);
/* Formats seconds as H:MM:SS or M:SS into buf. */
char *acv_fmt_duration(double s, char *buf, int cap);

#endif
