/* Per-request cost of the metrics hot path, without the noise of a whole server: what the front
 * does per query request (http_requests_total lookup + add, queries_total + duration histogram,
 * rows/bytes adds), single-threaded and on 2 threads hitting the same series.
 * Build and run (bench/metrics_overhead.sh does it when HOTPATH=1):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Isrc bench/metrics/hotpath.c \
 *      build-release/src/metrics/libdg_metrics.a build-release/src/core/libdg_core.a -lpthread -lm
 */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "metrics/metrics_gw.h"

#define N 2000000

static dg_metrics_gw_t *g;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *one_request_loop(void *arg)
{
    (void)arg;
    const char *enc = "identity";
    for (int i = 0; i < N; i++) {
        char st[4];
        const char *v[3] = {"/api/query/{db}", "GET", dg_metrics_gw_status(i % 50 ? 200 : 400, st)};
        dg_series_add(dg_metric_series(g->http_requests, v), 1);
        dg_metrics_gw_query(g, "bench", "sql", i % 50 ? 200 : 400, 0.0012);
        dg_series_add(g->rows_out, 1);
        dg_series_add(dg_metric_series(g->bytes_out, &enc), 180);
    }
    return NULL;
}

int main(void)
{
    static const char *const dbs[] = {"bench", "other_db"};
    g = dg_metrics_gw_new(dbs, 2, "bench");
    if (!g) {
        return 1;
    }
    double t0 = now_s();
    one_request_loop(NULL);
    double t1 = now_s();
    printf("1 thread : %.0f ns per request\n", (t1 - t0) / N * 1e9);
    pthread_t th[2];
    t0 = now_s();
    for (int i = 0; i < 2; i++) {
        pthread_create(&th[i], NULL, one_request_loop, NULL);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    t1 = now_s();
    printf("2 threads: %.0f ns per request (wall per request per thread, same series)\n",
           (t1 - t0) / N * 1e9);
    dg_buf_t b;
    dg_buf_init(&b, 0);
    t0 = now_s();
    for (int i = 0; i < 100; i++) {
        dg_buf_reset(&b);
        dg_metrics_expose(g->reg, &b);
    }
    t1 = now_s();
    printf("exposition: %.0f us, %zu bytes\n", (t1 - t0) / 100 * 1e6, b.len);
    dg_buf_free(&b);
    dg_metrics_gw_free(g);
    return 0;
}
