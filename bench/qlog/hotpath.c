/* Per-request cost of the query log in the front, without the noise of a whole server: one
 * dg_qlog_record of a typical point-lookup row (serialise to JSON, take the lock, append), with
 * the flusher thread running and a store that confirms every batch at once (so the cost of
 * batching and freeing is included, the engine's append is not: it runs in engine 0, ~1 batch
 * per second). Single-threaded and on 2 recording threads.
 * Build and run (bench/metrics_overhead.sh does it when HOTPATH=1):
 *   cc -O2 -std=c11 -include src/core/dg_feat.h -Isrc bench/qlog/hotpath.c \
 *      build-release/src/qlog/libdg_qlog.a build-release/src/core/libdg_core.a -lpthread
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "qlog/qlog.h"

#define N 1000000

static dg_qlog_t *q;
static _Atomic unsigned long long shipped_bytes;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of the whole process (recorders and flusher): on a loaded machine wall time
 * measures the other processes too. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static dg_rc_t ship(void *ctx, const char *rows_json, size_t rows_len, uint64_t last_seq)
{
    (void)ctx;
    (void)rows_json;
    (void)last_seq;
    atomic_fetch_add(&shipped_bytes, rows_len);
    return DG_OK;
}

static void *record_loop(void *arg)
{
    (void)arg;
    static const char sql[] = "SELECT id, name, score, cat, created FROM t WHERE id = $1";
    for (int i = 0; i < N; i++) {
        dg_qlog_row_t row = {
            .request_id = "a85fcb6ba04af131",
            .kind = "sql",
            .db = "bench",
            .query = sql,
            .query_len = sizeof sql - 1,
            .principal = "ip:127.0.0.1",
            .role = "analyst",
            .status = 200,
            .rows = 1,
            .bytes = 180,
            .queue_ms = 0,
            .duration_ms = 1.2,
        };
        dg_qlog_record(q, &row);
    }
    return NULL;
}

int main(void)
{
    dg_qlog_opts_t o = {.is_on = true,
                        .capacity = 10000,
                        .max_query_bytes = 4096,
                        .slow_ms = 0,
                        .ship = ship,
                        .ship_ctx = NULL};
    if (dg_qlog_new(&o, &q) != DG_OK) {
        return 1;
    }
    double t0 = now_s(), c0 = cpu_s();
    record_loop(NULL);
    double t1 = now_s(), c1 = cpu_s();
    printf("qlog 1 thread : %.0f ns wall, %.0f ns CPU (recorder + flusher) per row recorded\n",
           (t1 - t0) / N * 1e9, (c1 - c0) / N * 1e9);
    pthread_t th[2];
    t0 = now_s();
    c0 = cpu_s();
    for (int i = 0; i < 2; i++) {
        pthread_create(&th[i], NULL, record_loop, NULL);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    t1 = now_s();
    c1 = cpu_s();
    printf("qlog 2 threads: %.0f ns wall per row per thread, %.0f ns CPU per row\n",
           (t1 - t0) / N * 1e9, (c1 - c0) / (2.0 * N) * 1e9);
    dg_qlog_stats_t st;
    dg_qlog_sync(q, 10000);
    dg_qlog_stats(q, &st);
    printf("qlog rows recorded=%llu shipped=%llu dropped=%llu (a drop means the flusher fell "
           "behind a recorder running flat out)\n",
           (unsigned long long)st.recorded, (unsigned long long)st.shipped,
           (unsigned long long)st.dropped);
    dg_qlog_free(q);
    return 0;
}
