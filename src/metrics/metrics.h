/* Metrics: a registry of counters, gauges and histograms with labels, and its Prometheus text
 * exposition (format 0.0.4).
 *
 * Model: a registry holds families (one metric name, type, help text and label names); a family
 * holds series (one combination of label values). Series are found by their label values in a
 * fixed-size open-addressing table per family: lookups never lock; a miss creates the series
 * under the registry mutex (this happens once per combination, usually at start when the caller
 * pre-creates the combinations it knows). Each family has a cap on its series: past it, and for
 * values the caller does not know, lookups return the family's overflow series whose every label
 * value is "other". Memory is therefore bounded: the registry never allocates after a family
 * reached its cap.
 *
 * Updates are per-series atomics (relaxed increments; a histogram observation touches one bucket,
 * the count and a CAS loop on the sum), so N threads updating one series lose nothing.
 *
 * Threads: every function may be called from any thread, except dg_metrics_free (no concurrent
 * use) and registration of families, which must happen before the registry is shared (at start).
 * Collect callbacks run on the thread that calls dg_metrics_expose, one exposition at a time. */
#ifndef DG_METRICS_H
#define DG_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/rc.h"

#define DG_METRICS_MAX_LABELS 4
#define DG_METRICS_MAX_BUCKETS 24
/* The label value unknown and over-cap values map to. */
#define DG_METRICS_OTHER "other"

typedef struct dg_metrics dg_metrics_t;
typedef struct dg_metric dg_metric_t;
typedef struct dg_series dg_series_t;

typedef enum dg_metric_type {
    DG_METRIC_COUNTER = 0,
    DG_METRIC_GAUGE,
    DG_METRIC_HISTOGRAM,
} dg_metric_type_t;

/* Query duration buckets in seconds: 1 ms ... 60 s. */
extern const double dg_metrics_duration_buckets[15];

/* Creates an empty registry. NULL when out of memory. */
dg_metrics_t *dg_metrics_new(void);
/* Frees the registry, its families and series. NULL is allowed. */
void dg_metrics_free(dg_metrics_t *m);

/* Registers a family. name and help are copied; label_names (n_labels <= DG_METRICS_MAX_LABELS)
 * are copied. bounds (histograms only; n_bounds <= DG_METRICS_MAX_BUCKETS, strictly increasing,
 * +Inf implied) are copied. max_series caps the family (the overflow series is extra). Returns
 * NULL on a bad argument, a duplicate name or out of memory. Not thread-safe with other calls on
 * the same registry: register everything before sharing it. */
dg_metric_t *dg_metrics_add(dg_metrics_t *m, dg_metric_type_t type, const char *name,
                            const char *help, size_t n_labels, const char *const *label_names,
                            const double *bounds, size_t n_bounds, size_t max_series);

/* The series of a family for label values (n_labels strings; NULL entries count as ""). Creates
 * it on first use; past the cap, or when out of memory, returns the overflow series (all labels
 * "other"). Never NULL for a valid family. Lock-free when the series exists. */
dg_series_t *dg_metric_series(dg_metric_t *f, const char *const *values);
/* The single series of a family without labels. */
dg_series_t *dg_metric_only(dg_metric_t *f);
/* The overflow series (every label "other"). */
dg_series_t *dg_metric_other(dg_metric_t *f);

/* Counter: adds n. */
void dg_series_add(dg_series_t *s, uint64_t n);
/* Counter or gauge: sets the value (counters mirrored from elsewhere, gauges). */
void dg_series_set(dg_series_t *s, double v);
/* Histogram: records one observation. */
void dg_series_observe(dg_series_t *s, double v);
/* Current value of a counter or gauge (tests). */
double dg_series_value(const dg_series_t *s);
/* Histogram totals (tests): count and sum; bucket(i) is the non-cumulative count of bucket i
 * (i == n_bounds is the +Inf bucket). */
uint64_t dg_series_count(const dg_series_t *s);
double dg_series_sum(const dg_series_t *s);
uint64_t dg_series_bucket(const dg_series_t *s, size_t i);
/* Series of a family, overflow excluded (tests). */
size_t dg_metric_n_series(const dg_metric_t *f);

/* A callback run at the start of every exposition, to set gauges and mirrored counters from
 * their sources (pool stats, /proc). At most 8 per registry. DG_NOMEM/DG_INVALID_ARG when full. */
typedef void (*dg_metrics_collect_fn)(dg_metrics_t *m, void *ctx);
dg_rc_t dg_metrics_on_collect(dg_metrics_t *m, dg_metrics_collect_fn fn, void *ctx);

/* Appends the text exposition (format 0.0.4) of every family, in registration order, and of
 * every series in creation order (the overflow series only once it was used) to out. Families
 * without series print only HELP and TYPE. DG_NOMEM (or out's cap rc). */
dg_rc_t dg_metrics_expose(dg_metrics_t *m, dg_buf_t *out);
/* Content-Type of the exposition. */
#define DG_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Appends a label value escaped for the exposition (\\, \", \n). */
dg_rc_t dg_metrics_escape_label(dg_buf_t *out, const char *s);
/* Appends a sample value: integers exactly, others shortest round-trip, NaN, +Inf, -Inf. */
dg_rc_t dg_metrics_format_value(dg_buf_t *out, double v);

#endif
