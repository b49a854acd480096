/* The gateway's metric set (docs/observability.md lists every name): the families duckgate
 * exposes on /metrics, created once at start with the label values known then (database names,
 * kinds, interrupt reasons, encodings) and helpers that map unknown values to "other".
 *
 * Threads: built once on the main thread before the HTTP front starts; afterwards every update
 * helper may be called from any thread (lock-free once a series exists). */
#ifndef DG_METRICS_GW_H
#define DG_METRICS_GW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics/metrics.h"

typedef struct dg_metrics_gw {
    dg_metrics_t *reg;
    dg_metric_t *http_requests;  /* route, method, status */
    dg_metric_t *queries;        /* db, kind, status */
    dg_metric_t *query_duration; /* db, kind */
    dg_series_t *rows_out;
    dg_metric_t *bytes_out;  /* encoding */
    dg_metric_t *interrupts; /* reason */
    dg_series_t *slots_busy, *slots_total, *queue_depth, *engines_up;
    dg_series_t *rate_limited, *engine_restarts, *engine_kills;
    dg_metric_t *duckdb_memory, *duckdb_memory_limit; /* db, engine */
    dg_series_t *cache_hits, *cache_misses, *cache_evictions, *cache_bytes, *cache_entries;
    dg_series_t *proc_rss, *proc_cpu, *proc_fds, *proc_start, *proc_vsize;
    const char *const *dbs; /* borrowed: the served database names */
    size_t n_dbs;
} dg_metrics_gw_t;

/* Builds the registry and every family. dbs (borrowed, must outlive the set) are the served
 * database names; version is duckgate's, duckdb_version DuckDB's (build_info labels). NULL when
 * out of memory. */
dg_metrics_gw_t *dg_metrics_gw_new(const char *const *dbs, size_t n_dbs, const char *version);
void dg_metrics_gw_free(dg_metrics_gw_t *g);

/* The db label for a database name: the name when it is served, else "other". */
const char *dg_metrics_gw_db(const dg_metrics_gw_t *g, const char *name);
/* The status label of an HTTP status: its three digits in out ("0" outside 100..999). */
const char *dg_metrics_gw_status(int status, char out[4]);
/* Records one finished query. status is the HTTP status answered; duration_s its time from
 * arrival to the end of the response. */
void dg_metrics_gw_query(dg_metrics_gw_t *g, const char *db, const char *kind, int status,
                         double duration_s);
/* Interrupt reasons: "deadline", "disconnect", "cancel". */
void dg_metrics_gw_interrupt(dg_metrics_gw_t *g, const char *reason);
/* Reads /proc/self for the process_* metrics (called at scrape time). */
void dg_metrics_gw_collect_process(dg_metrics_gw_t *g);

#endif
