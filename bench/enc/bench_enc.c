/* Micro-benchmark of the result encoders (not part of any test suite).
 *
 * Encodes N rows (default 10M) of BIGINT, INTEGER, DOUBLE, VARCHAR, DATE, TIMESTAMP and
 * DECIMAL(18,3), in batches of 2048 rows (DuckDB's vector size) with ~5% NULLs, into a buffer
 * drained after every batch, and reports MB/s and rows/s per format (CPU time, median of 5).
 *
 * Build (release flags) and run, from the repository root:
 *   cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
 *   cmake --build build-release --target dg_enc
 *   cc -O2 -std=c11 -include src/core/dg_feat.h -Isrc bench/enc/bench_enc.c \
 *      build-release/src/enc/libdg_enc.a build-release/src/core/libdg_core.a -lm -o /tmp/bench_enc
 *   /tmp/bench_enc [rows] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "enc/enc.h"

#define BATCH 2048

static double now_s(void)
{
    struct timespec ts;
    /* Process CPU time: the benchmark is single-threaded and the machine may be shared. */
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    long long n_rows = 10000000;
    if (argc > 1) {
        n_rows = strtoll(argv[1], NULL, 10);
    }
    static const dg_type_t t_i64 = {.id = DG_TYPE_BIGINT, .name = "BIGINT"};
    static const dg_type_t t_i32 = {.id = DG_TYPE_INTEGER, .name = "INTEGER"};
    static const dg_type_t t_f64 = {.id = DG_TYPE_DOUBLE, .name = "DOUBLE"};
    static const dg_type_t t_str = {.id = DG_TYPE_VARCHAR, .name = "VARCHAR"};
    static const dg_type_t t_date = {.id = DG_TYPE_DATE, .name = "DATE"};
    static const dg_type_t t_ts = {.id = DG_TYPE_TIMESTAMP, .name = "TIMESTAMP"};
    static const dg_type_t t_dec = {.id = DG_TYPE_DECIMAL, .name = "DECIMAL(18,3)", .width = 18,
                                    .scale = 3, .storage = DG_TYPE_BIGINT};
    const dg_type_t *types[] = {&t_i64, &t_i32, &t_f64, &t_str, &t_date, &t_ts, &t_dec};
    const char *names[] = {"id", "year", "rating", "title", "born", "updated", "amount"};
    dg_schema_t schema = {.n_cols = 7, .names = names, .types = types};

    /* One batch of data, reused for every batch (the encoders only read). */
    static int64_t c_i64[BATCH], c_ts[BATCH], c_dec[BATCH];
    static int32_t c_i32[BATCH], c_date[BATCH];
    static double c_f64[BATCH];
    static dg_strval_t c_str[BATCH];
    static char text[BATCH][40];
    static uint64_t valid[BATCH / 64];
    uint64_t seed = 88172645463325252ull;
    for (int i = 0; i < BATCH; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        c_i64[i] = (int64_t)(seed % 100000000);
        c_i32[i] = 1900 + (int32_t)(seed % 125);
        c_f64[i] = (double)(seed % 100) / 10.0 + 0.05;
        c_date[i] = -25000 + (int32_t)(seed % 40000);
        c_ts[i] = 1600000000000000ll + (int64_t)(seed % 100000000000000ull);
        c_dec[i] = (int64_t)(seed % 100000000) - 50000000;
        int len = snprintf(text[i], sizeof text[i], "Title number %d of %d", i, (int)(seed % 997));
        memset(&c_str[i], 0, sizeof c_str[i]);
        c_str[i].value.inlined.length = (uint32_t)len;
        if (len <= 12) {
            memcpy(c_str[i].value.inlined.inlined, text[i], (size_t)len);
        } else {
            memcpy(c_str[i].value.pointer.prefix, text[i], 4);
            c_str[i].value.pointer.ptr = text[i];
        }
    }
    for (int i = 0; i < BATCH / 64; i++) {
        valid[i] = ~0ull ^ (1ull << (i % 64)) ^ (1ull << ((i * 7) % 64)) ^ (1ull << 33);
    }
    dg_vec_t cols[7] = {
        {.type = &t_i64, .data = c_i64},
        {.type = &t_i32, .data = c_i32, .validity = valid},
        {.type = &t_f64, .data = c_f64},
        {.type = &t_str, .data = c_str, .validity = valid},
        {.type = &t_date, .data = c_date},
        {.type = &t_ts, .data = c_ts},
        {.type = &t_dec, .data = c_dec},
    };
    dg_batch_t batch = {.n_rows = BATCH, .n_cols = 7, .cols = cols};

    const dg_format_t fmts[] = {DG_FMT_JSON, DG_FMT_NDJSON, DG_FMT_CSV, DG_FMT_TSV};
    for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
        double secs[5];
        unsigned long long bytes = 0;
        for (int run = 0; run < 5; run++) {
            dg_enc_t *e;
            if (dg_enc_new(fmts[f], &schema, &(dg_enc_opts_t){.query_id = "bench"}, &e) != DG_OK) {
                return 1;
            }
            dg_buf_t out;
            dg_buf_init(&out, 0);
            bytes = 0;
            double t0 = now_s();
            dg_enc_begin(e, &out);
            for (long long done = 0; done < n_rows; done += BATCH) {
                uint64_t n = (uint64_t)(n_rows - done < BATCH ? n_rows - done : BATCH);
                if (dg_enc_batch(e, &batch, n, &out) != DG_OK) {
                    return 1;
                }
                bytes += out.len;
                dg_buf_reset(&out); /* the server would hand these bytes to the socket */
            }
            dg_enc_summary_t sum = {.rows = (uint64_t)n_rows};
            dg_enc_end(e, &sum, &out);
            bytes += out.len;
            secs[run] = now_s() - t0;
            dg_buf_free(&out);
            dg_enc_free(e);
        }
        qsort(secs, 5, sizeof secs[0], cmp_double);
        double s = secs[2];
        printf("%-7s %lld rows  %.1f MB  %.3f s  %.0f MB/s  %.2f Mrows/s\n",
               dg_format_name(fmts[f]), n_rows, (double)bytes / 1e6, s, (double)bytes / 1e6 / s,
               (double)n_rows / 1e6 / s);
    }
    return 0;
}
