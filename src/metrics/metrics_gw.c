/* The gateway's metric families (see metrics_gw.h) and the process_* collector.
 * Series caps: every label value comes from a bounded set (route patterns, parsed methods,
 * statuses of the rc table, served databases, fixed kinds/reasons/encodings), and each family
 * is capped anyway, so a scrape stays small whatever clients send. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metrics/metrics_gw.h"

#ifndef DG_VERSION
#define DG_VERSION "0"
#endif
#ifndef DG_DUCKDB_VERSION
#define DG_DUCKDB_VERSION "unknown"
#endif

static const char *const kinds[] = {"sql", "named", "admin", "job"};
static const char *const reasons[] = {"deadline", "disconnect", "cancel"};
static const char *const encodings[] = {"identity", "gzip", "zstd", "br"};

static dg_series_t *only(dg_metrics_t *r, dg_metric_type_t t, const char *name, const char *help)
{
    dg_metric_t *f = dg_metrics_add(r, t, name, help, 0, NULL, NULL, 0, 1);
    return f ? dg_metric_only(f) : NULL;
}

static dg_metric_t *fam(dg_metrics_t *r, dg_metric_type_t t, const char *name, const char *help,
                        size_t n_labels, const char *l0, const char *l1, const char *l2, size_t cap)
{
    const char *labels[3] = {l0, l1, l2};
    bool is_hist = t == DG_METRIC_HISTOGRAM;
    return dg_metrics_add(r, t, name, help, n_labels, labels,
                          is_hist ? dg_metrics_duration_buckets : NULL,
                          is_hist ? sizeof dg_metrics_duration_buckets / sizeof(double) : 0, cap);
}

dg_metrics_gw_t *dg_metrics_gw_new(const char *const *dbs, size_t n_dbs, const char *version)
{
    dg_metrics_gw_t *g = calloc(1, sizeof *g);
    if (!g || !(g->reg = dg_metrics_new())) {
        free(g);
        return NULL;
    }
    dg_metrics_t *r = g->reg;
    g->dbs = dbs;
    g->n_dbs = n_dbs;
    const dg_metric_type_t C = DG_METRIC_COUNTER, G = DG_METRIC_GAUGE, H = DG_METRIC_HISTOGRAM;
    size_t ndb = n_dbs + 1;
    dg_metric_t *build =
        fam(r, G, "duckgate_build_info", "Build information; the value is always 1.", 2, "version",
            "duckdb", NULL, 1);
    g->http_requests = fam(r, C, "duckgate_http_requests_total",
                           "HTTP requests answered, by route pattern, method and status.", 3,
                           "route", "method", "status", 1024);
    g->queries =
        fam(r, C, "duckgate_queries_total", "Queries finished, by database, kind and HTTP status.",
            3, "db", "kind", "status", 128 * ndb);
    g->query_duration =
        fam(r, H, "duckgate_query_duration_seconds",
            "Query time from arrival to the end of the response.", 2, "db", "kind", NULL, 4 * ndb);
    g->rows_out = only(r, C, "duckgate_rows_out_total", "Result rows sent to clients.");
    g->bytes_out = fam(r, C, "duckgate_bytes_out_total",
                       "Query result bytes sent to clients (after compression), by encoding.", 1,
                       "encoding", NULL, NULL, 8);
    g->interrupts = fam(r, C, "duckgate_interrupts_total",
                        "Queries interrupted, by reason (deadline, disconnect, cancel).", 1,
                        "reason", NULL, NULL, 8);
    g->rate_limited =
        only(r, C, "duckgate_rate_limited_total", "Requests refused by a rate limit (429).");
    g->slots_busy = only(r, G, "duckgate_slots_busy", "Engine slots running a query.");
    g->slots_total = only(r, G, "duckgate_slots_total", "Engine slots of running engines.");
    g->queue_depth = only(r, G, "duckgate_queue_depth", "Requests waiting for a slot.");
    g->engines_up = only(r, G, "duckgate_engines_up", "Engine processes running.");
    g->engine_restarts =
        only(r, C, "duckgate_engine_restarts_total", "Engine processes restarted after a death.");
    g->engine_kills = only(r, C, "duckgate_engine_kills_total",
                           "Engines killed by the front (a query ignored its deadline).");
    g->duckdb_memory =
        fam(r, G, "duckgate_duckdb_memory_bytes",
            "DuckDB memory in use per database instance (sum of duckdb_memory table).", 2, "db",
            "engine", NULL, 64 * ndb);
    g->duckdb_memory_limit = fam(r, G, "duckgate_duckdb_memory_limit_bytes",
                                 "DuckDB memory_limit of the engine serving the instance.", 2, "db",
                                 "engine", NULL, 64 * ndb);
    g->cache_hits = only(r, C, "duckgate_cache_hits_total", "Result cache hits.");
    g->cache_misses = only(r, C, "duckgate_cache_misses_total", "Result cache misses.");
    g->cache_evictions = only(r, C, "duckgate_cache_evictions_total", "Result cache evictions.");
    g->cache_bytes = only(r, G, "duckgate_cache_bytes", "Bytes held by the result cache.");
    g->cache_entries = only(r, G, "duckgate_cache_entries", "Entries held by the result cache.");
    g->proc_cpu = only(r, C, "process_cpu_seconds_total",
                       "User and system CPU time of the front process in seconds.");
    g->proc_rss = only(r, G, "process_resident_memory_bytes",
                       "Resident memory of the front process in bytes.");
    g->proc_vsize =
        only(r, G, "process_virtual_memory_bytes", "Virtual memory of the front process in bytes.");
    g->proc_fds = only(r, G, "process_open_fds", "Open file descriptors of the front process.");
    g->proc_start = only(r, G, "process_start_time_seconds",
                         "Start time of the front process since the Unix epoch in seconds.");
    bool ok = build && g->http_requests && g->queries && g->query_duration && g->rows_out &&
              g->bytes_out && g->interrupts && g->rate_limited && g->slots_busy && g->slots_total &&
              g->queue_depth && g->engines_up && g->engine_restarts && g->engine_kills &&
              g->duckdb_memory && g->duckdb_memory_limit && g->cache_hits && g->cache_misses &&
              g->cache_evictions && g->cache_bytes && g->cache_entries && g->proc_cpu &&
              g->proc_rss && g->proc_vsize && g->proc_fds && g->proc_start;
    if (!ok) {
        dg_metrics_gw_free(g);
        return NULL;
    }
    const char *bi[2] = {version ? version : DG_VERSION, DG_DUCKDB_VERSION};
    dg_series_set(dg_metric_series(build, bi), 1);
    /* Pre-create the series dashboards and alerts read, so they exist (at 0) from the first
     * scrape: rate() over a series that appears later misses its first increment. */
    for (size_t i = 0; i < n_dbs; i++) {
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            const char *q[3] = {dbs[i], kinds[k], "200"};
            dg_metric_series(g->queries, q);
            dg_metric_series(g->query_duration, q);
        }
    }
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
        dg_metric_series(g->interrupts, &reasons[i]);
    }
    for (size_t i = 0; i < sizeof encodings / sizeof encodings[0]; i++) {
        dg_metric_series(g->bytes_out, &encodings[i]);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    dg_series_set(g->proc_start, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    return g;
}

void dg_metrics_gw_free(dg_metrics_gw_t *g)
{
    if (g) {
        dg_metrics_free(g->reg);
        free(g);
    }
}

const char *dg_metrics_gw_db(const dg_metrics_gw_t *g, const char *name)
{
    for (size_t i = 0; name && i < g->n_dbs; i++) {
        if (strcmp(g->dbs[i], name) == 0) {
            return g->dbs[i];
        }
    }
    return DG_METRICS_OTHER;
}

const char *dg_metrics_gw_status(int status, char out[4])
{
    if (status < 100 || status > 999) {
        out[0] = '0';
        out[1] = '\0';
        return out;
    }
    out[0] = (char)('0' + status / 100);
    out[1] = (char)('0' + status / 10 % 10);
    out[2] = (char)('0' + status % 10);
    out[3] = '\0';
    return out;
}

void dg_metrics_gw_query(dg_metrics_gw_t *g, const char *db, const char *kind, int status,
                         double duration_s)
{
    char st[4];
    const char *v[3] = {dg_metrics_gw_db(g, db), kind, dg_metrics_gw_status(status, st)};
    dg_series_add(dg_metric_series(g->queries, v), 1);
    dg_series_observe(dg_metric_series(g->query_duration, v), duration_s);
}

void dg_metrics_gw_interrupt(dg_metrics_gw_t *g, const char *reason)
{
    dg_series_add(dg_metric_series(g->interrupts, &reason), 1);
}

void dg_metrics_gw_collect_process(dg_metrics_gw_t *g)
{
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* Fields after the command name (which may hold spaces) start after the last ')'. */
        char *p = strrchr(buf, ')');
        unsigned long long utime = 0, stime = 0, vsize = 0;
        long long rss = 0;
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                        "%*d %*d %*u %llu %lld",
                        &utime, &stime, &vsize, &rss) == 4) {
            double tick = (double)sysconf(_SC_CLK_TCK);
            dg_series_set(g->proc_cpu, (double)(utime + stime) / (tick > 0 ? tick : 100));
            dg_series_set(g->proc_vsize, (double)vsize);
            dg_series_set(g->proc_rss, (double)rss * (double)sysconf(_SC_PAGESIZE));
        }
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long n = 0;
        while (readdir(d)) {
            n++;
        }
        closedir(d);
        dg_series_set(g->proc_fds, (double)(n > 3 ? n - 3 : 0)); /* ".", "..", the dir's fd */
    }
}
