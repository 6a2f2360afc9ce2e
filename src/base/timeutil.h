/* Monotonic time and peak memory. */
#ifndef ACV_BASE_TIMEUTIL_H
#define ACV_BASE_TIMEUTIL_H

/* Seconds from a monotonic clock. */
double acv_now(void);
/* Peak resident set size of this process in MiB. */
double acv_peak_rss_mb(void);

#endif
