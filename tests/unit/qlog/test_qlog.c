/* Unit tests of src/qlog: the ring (order, wrap-around, drop counting when full, batches capped
 * by rows and bytes), acknowledgement semantics (rows leave only when acked; a failed ship keeps
 * them; an ack after drops), SQL truncation on a UTF-8 boundary, and the flusher thread with a
 * store that refuses and then accepts. */
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/dgtime.h"
#include "qlog/qlog.h"

static dg_qlog_t *new_log(size_t capacity, size_t max_query_bytes)
{
    dg_qlog_opts_t o = {.is_on = true, .capacity = capacity, .max_query_bytes = max_query_bytes};
    dg_qlog_t *q = NULL;
    assert_int_equal(dg_qlog_new(&o, &q), DG_OK);
    return q;
}

static void record(dg_qlog_t *q, const char *rid, const char *sql, int status)
{
    dg_qlog_row_t row = {
        .ts_ms = 1700000000000,
        .request_id = rid,
        .kind = "sql",
        .db = "main",
        .query = sql,
        .query_len = sql ? strlen(sql) : 0,
        .principal = "key:abc",
        .role = "analyst",
        .status = status,
        .code = status >= 400 ? "SQL_ERROR" : NULL,
        .rows = 7,
        .bytes = 99,
        .queue_ms = 0.5,
        .duration_ms = 2.25,
    };
    dg_qlog_record(q, &row);
}

/* Peeks a batch and parses it; returns the array (caller decrefs). */
static json_t *peek(dg_qlog_t *q, size_t max_rows, size_t max_bytes, size_t *out_n,
                    uint64_t *out_last)
{
    dg_buf_t b;
    dg_buf_init(&b, 0);
    *out_n = dg_qlog__peek(q, max_rows, max_bytes, &b, out_last);
    json_t *j = NULL;
    if (*out_n > 0) {
        json_error_t e;
        j = json_loadb(b.p, b.len, 0, &e);
        assert_non_null(j);
        assert_true(json_is_array(j));
        assert_int_equal(json_array_size(j), *out_n);
    } else {
        assert_int_equal(b.len, 0);
    }
    dg_buf_free(&b);
    return j;
}

static void test_row_fields(void **state)
{
    (void)state;
    dg_qlog_t *q = new_log(4, 4096);
    record(q, "r1", "SELECT 1", 200);
    record(q, "r2", "SELEC", 400);
    size_t n;
    uint64_t last;
    json_t *j = peek(q, 10, 1 << 20, &n, &last);
    assert_int_equal(n, 2);
    assert_int_equal(last, 2);
    json_t *a = json_array_get(j, 0), *b = json_array_get(j, 1);
    assert_int_equal(json_integer_value(json_object_get(a, "seq")), 1);
    assert_int_equal(json_integer_value(json_object_get(b, "seq")), 2);
    assert_int_equal(json_integer_value(json_object_get(a, "ts_ms")), 1700000000000);
    assert_string_equal(json_string_value(json_object_get(a, "request_id")), "r1");
    assert_string_equal(json_string_value(json_object_get(a, "kind")), "sql");
    assert_string_equal(json_string_value(json_object_get(a, "db")), "main");
    assert_string_equal(json_string_value(json_object_get(a, "query")), "SELECT 1");
    assert_string_equal(json_string_value(json_object_get(a, "principal")), "key:abc");
    assert_string_equal(json_string_value(json_object_get(a, "role")), "analyst");
    assert_int_equal(json_integer_value(json_object_get(a, "status")), 200);
    assert_true(json_is_null(json_object_get(a, "code")));
    assert_true(json_is_null(json_object_get(a, "cache")));
    assert_string_equal(json_string_value(json_object_get(b, "code")), "SQL_ERROR");
    assert_int_equal(json_integer_value(json_object_get(a, "rows")), 7);
    assert_int_equal(json_integer_value(json_object_get(a, "bytes")), 99);
    assert_true(json_number_value(json_object_get(a, "duration_ms")) == 2.25);
    /* Fields a row without them logs as null. */
    assert_true(json_is_null(json_object_get(a, "execute_ms")));
    assert_true(json_is_null(json_object_get(a, "encode_ms")));
    assert_true(json_is_null(json_object_get(a, "params_hash")));
    assert_true(json_is_null(json_object_get(a, "client_addr")));
    json_decref(j);
    /* Peeking does not remove anything. */
    j = peek(q, 10, 1 << 20, &n, &last);
    assert_int_equal(n, 2);
    json_decref(j);
    dg_qlog_free(q);
}

static void test_new_fields(void **state)
{
    (void)state;
    dg_qlog_t *q = new_log(4, 4096);
    dg_qlog_row_t row = {
        .ts_ms = 1700000000001,
        .request_id = "n1",
        .kind = "named",
        .db = "main",
        .query = "by_id",
        .query_len = 5,
        .status = 200,
        .has_engine_ms = true,
        .execute_ms = 3.5,
        .encode_ms = 0.125,
        .params_hash = "0123abcd",
        .client_addr = "192.0.2.7",
    };
    dg_qlog_record(q, &row);
    size_t n;
    uint64_t last;
    json_t *j = peek(q, 10, 1 << 20, &n, &last);
    assert_int_equal(n, 1);
    json_t *a = json_array_get(j, 0);
    assert_true(json_number_value(json_object_get(a, "execute_ms")) == 3.5);
    assert_true(json_number_value(json_object_get(a, "encode_ms")) == 0.125);
    assert_string_equal(json_string_value(json_object_get(a, "params_hash")), "0123abcd");
    assert_string_equal(json_string_value(json_object_get(a, "client_addr")), "192.0.2.7");
    assert_string_equal(json_string_value(json_object_get(a, "query")), "by_id");
    assert_true(json_is_null(json_object_get(a, "principal")));
    json_decref(j);
    dg_qlog_free(q);
}

static void test_wrap_and_drop(void **state)
{
    (void)state;
    dg_qlog_t *q = new_log(3, 4096);
    char rid[16];
    for (int i = 1; i <= 3; i++) {
        snprintf(rid, sizeof rid, "r%d", i);
        record(q, rid, "SELECT 1", 200);
    }
    dg_qlog__ack(q, 2); /* head moves: the next records wrap around the array */
    for (int i = 4; i <= 7; i++) {
        snprintf(rid, sizeof rid, "r%d", i);
        record(q, rid, "SELECT 1", 200);
    }
    /* 7 recorded, 2 shipped, capacity 3: rows 5, 6, 7 remain; 3 and 4 were dropped. */
    dg_qlog_stats_t st;
    dg_qlog_stats(q, &st);
    assert_int_equal(st.recorded, 7);
    assert_int_equal(st.shipped, 2);
    assert_int_equal(st.dropped, 2);
    assert_int_equal(st.pending, 3);
    size_t n;
    uint64_t last;
    json_t *j = peek(q, 10, 1 << 20, &n, &last);
    assert_int_equal(n, 3);
    assert_int_equal(last, 7);
    for (size_t i = 0; i < 3; i++) {
        json_t *row = json_array_get(j, i);
        assert_int_equal(json_integer_value(json_object_get(row, "seq")), (json_int_t)(5 + i));
        snprintf(rid, sizeof rid, "r%zu", 5 + i);
        assert_string_equal(json_string_value(json_object_get(row, "request_id")), rid);
    }
    json_decref(j);
    dg_qlog_free(q);
}

static void test_ack_semantics(void **state)
{
    (void)state;
    dg_qlog_t *q = new_log(4, 4096);
    record(q, "a", "SELECT 1", 200);
    record(q, "b", "SELECT 2", 200);
    size_t n;
    uint64_t last;
    json_t *j = peek(q, 10, 1 << 20, &n, &last);
    json_decref(j);
    assert_int_equal(last, 2);
    /* While the batch is in flight, the ring fills and drops the in-flight rows. */
    record(q, "c", "SELECT 3", 200);
    record(q, "d", "SELECT 4", 200);
    record(q, "e", "SELECT 5", 200);
    record(q, "f", "SELECT 6", 200);
    dg_qlog_stats_t st;
    dg_qlog_stats(q, &st);
    assert_int_equal(st.dropped, 2);
    assert_int_equal(st.pending, 4);
    /* The late ack of rows 1..2 removes nothing that is still there. */
    dg_qlog__ack(q, last);
    dg_qlog_stats(q, &st);
    assert_int_equal(st.pending, 4);
    assert_int_equal(st.shipped, 0);
    /* A partial ack removes exactly the acked prefix. */
    dg_qlog__ack(q, 4);
    dg_qlog_stats(q, &st);
    assert_int_equal(st.pending, 2);
    assert_int_equal(st.shipped, 2);
    j = peek(q, 10, 1 << 20, &n, &last);
    assert_int_equal(n, 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "request_id")),
                        "e");
    json_decref(j);
    dg_qlog__ack(q, UINT64_MAX);
    j = peek(q, 10, 1 << 20, &n, &last);
    assert_null(j);
    assert_int_equal(n, 0);
    dg_qlog_free(q);
}

static void test_batch_caps(void **state)
{
    (void)state;
    dg_qlog_t *q = new_log(100, 4096);
    char rid[16];
    for (int i = 0; i < 10; i++) {
        snprintf(rid, sizeof rid, "r%d", i);
        record(q, rid, "SELECT 1", 200);
    }
    size_t n;
    uint64_t last;
    json_t *j = peek(q, 4, 1 << 20, &n, &last);
    assert_int_equal(n, 4);
    assert_int_equal(last, 4);
    json_decref(j);
    /* A byte cap smaller than one row still yields one row (progress is always possible). */
    j = peek(q, 100, 10, &n, &last);
    assert_int_equal(n, 1);
    json_decref(j);
    /* A cap of about three rows' worth. */
    dg_buf_t b;
    dg_buf_init(&b, 0);
    size_t one = dg_qlog__peek(q, 1, 1 << 20, &b, &last);
    assert_int_equal(one, 1);
    size_t row_len = b.len;
    dg_buf_free(&b);
    j = peek(q, 100, 3 * (row_len + 40), &n, &last);
    assert_true(n >= 2 && n <= 3);
    json_decref(j);
    dg_qlog_free(q);
}

static void test_truncation_utf8(void **state)
{
    (void)state;
    dg_qlog_t *q = new_log(4, 5);
    /* "ab" + "é" (2 bytes) + "cd": a cut at 5 would split nothing; at 3 it would split é. */
    record(q, "r", "ab\xc3\xa9xyz", 200);
    dg_qlog_free(q);
    q = new_log(4, 3);
    record(q, "r", "ab\xc3\xa9xyz", 200);
    size_t n;
    uint64_t last;
    json_t *j = peek(q, 10, 1 << 20, &n, &last);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "query")), "ab");
    json_decref(j);
    dg_qlog_free(q);
    q = new_log(4, 4);
    record(q, "r", "ab\xc3\xa9xyz", 200);
    j = peek(q, 10, 1 << 20, &n, &last);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "query")),
                        "ab\xc3\xa9");
    json_decref(j);
    dg_qlog_free(q);
}

static void test_off_and_null(void **state)
{
    (void)state;
    dg_qlog_record(NULL, NULL); /* allowed: no log */
    dg_qlog_opts_t o = {.is_on = false};
    dg_qlog_t *q = NULL;
    assert_int_equal(dg_qlog_new(&o, &q), DG_OK);
    record(q, "r", "SELECT 1", 200);
    dg_qlog_stats_t st;
    dg_qlog_stats(q, &st);
    assert_int_equal(st.recorded, 0);
    assert_true(dg_qlog_sync(q, 10));
    dg_qlog_free(q);
    o.is_on = true;
    o.capacity = 0;
    assert_int_equal(dg_qlog_new(&o, &q), DG_CONFIG);
    assert_null(q);
}

/* A store that refuses the first `refuse` batches, then keeps every row it gets. */
typedef struct store {
    pthread_mutex_t mu;
    int refuse;
    int calls;
    uint64_t last_seq;
    size_t rows;
    bool is_bad; /* a row arrived out of order or twice (checked on the test's thread) */
} store_t;

static dg_rc_t store_ship(void *ctx, const char *rows_json, size_t rows_len, uint64_t last_seq)
{
    store_t *st = ctx;
    json_t *j = json_loadb(rows_json, rows_len, 0, NULL);
    pthread_mutex_lock(&st->mu);
    st->is_bad |= !json_is_array(j);
    st->calls++;
    dg_rc_t rc = DG_OK;
    if (st->refuse > 0) {
        st->refuse--;
        rc = DG_OVERLOADED;
    } else {
        size_t i;
        json_t *row;
        json_array_foreach(j, i, row)
        {
            uint64_t seq = (uint64_t)json_integer_value(json_object_get(row, "seq"));
            /* Rows arrive in order, each once. */
            st->is_bad |= seq != st->last_seq + 1;
            st->last_seq = seq;
            st->rows++;
        }
        st->is_bad |= st->last_seq != last_seq;
    }
    pthread_mutex_unlock(&st->mu);
    json_decref(j);
    return rc;
}

static void test_flusher_retries(void **state)
{
    (void)state;
    store_t st = {.refuse = 2};
    pthread_mutex_init(&st.mu, NULL);
    dg_qlog_opts_t o = {.is_on = true,
                        .capacity = 1000,
                        .max_query_bytes = 100,
                        .flush_ms = 20,
                        .batch_rows = 16,
                        .ship = store_ship,
                        .ship_ctx = &st};
    dg_qlog_t *q = NULL;
    assert_int_equal(dg_qlog_new(&o, &q), DG_OK);
    for (int i = 0; i < 100; i++) {
        record(q, "r", "SELECT 1", 200);
    }
    /* Refused twice, then everything arrives: sync returns once all 100 are confirmed. */
    assert_true(dg_qlog_sync(q, 10000));
    dg_qlog_stats_t s;
    dg_qlog_stats(q, &s);
    assert_int_equal(s.shipped, 100);
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.dropped, 0);
    pthread_mutex_lock(&st.mu);
    assert_int_equal(st.rows, 100);
    assert_false(st.is_bad);
    assert_true(st.calls >= 3 + 100 / 16);
    pthread_mutex_unlock(&st.mu);
    /* Rows recorded just before stopping are shipped by dg_qlog_free. */
    for (int i = 0; i < 5; i++) {
        record(q, "r", "SELECT 1", 200);
    }
    dg_qlog_free(q);
    assert_int_equal(st.rows, 105);
    assert_false(st.is_bad);
    pthread_mutex_destroy(&st.mu);
}

/* A store that keeps refusing (a busy engine has no slot for the log) is retried once per
 * flush tick, not in a loop that formats the same batch again and again. */
static void test_refused_store_retried_per_tick(void **state)
{
    (void)state;
    store_t st = {.refuse = 1000000};
    pthread_mutex_init(&st.mu, NULL);
    dg_qlog_opts_t o = {.is_on = true,
                        .capacity = 1000,
                        .max_query_bytes = 100,
                        .flush_ms = 50,
                        .batch_rows = 4,
                        .ship = store_ship,
                        .ship_ctx = &st};
    dg_qlog_t *q = NULL;
    assert_int_equal(dg_qlog_new(&o, &q), DG_OK);
    for (int i = 0; i < 10; i++) {
        record(q, "r", "SELECT 1", 200); /* past batch_rows: the flusher wakes at once */
    }
    int64_t t0 = dg_now_ms();
    dg_sleep_ms(500);
    pthread_mutex_lock(&st.mu);
    int calls = st.calls;
    pthread_mutex_unlock(&st.mu);
    int64_t ms = dg_now_ms() - t0;
    /* About one attempt per 50 ms tick; a spin makes thousands. */
    assert_true(calls >= 1);
    assert_true(calls <= 2 + (int)(ms / 50) * 2);
    pthread_mutex_lock(&st.mu);
    st.refuse = 0;
    pthread_mutex_unlock(&st.mu);
    assert_true(dg_qlog_sync(q, 10000));
    dg_qlog_free(q);
    assert_int_equal(st.rows, 10);
    assert_false(st.is_bad);
    pthread_mutex_destroy(&st.mu);
}

/* A store that calls the first batch malformed, then keeps everything. */
static dg_rc_t store_ship_malformed_once(void *ctx, const char *rows_json, size_t rows_len,
                                         uint64_t last_seq)
{
    store_t *st = ctx;
    pthread_mutex_lock(&st->mu);
    bool refuse = st->refuse > 0;
    if (refuse) {
        st->refuse--;
        st->calls++;
        st->last_seq = last_seq; /* the next batch starts after it */
    }
    pthread_mutex_unlock(&st->mu);
    return refuse ? DG_BAD_REQUEST : store_ship(ctx, rows_json, rows_len, last_seq);
}

static void test_malformed_batch_is_dropped(void **state)
{
    (void)state;
    store_t st = {.refuse = 1};
    pthread_mutex_init(&st.mu, NULL);
    dg_qlog_opts_t o = {.is_on = true,
                        .capacity = 100,
                        .max_query_bytes = 100,
                        .flush_ms = 10000,
                        .batch_rows = 4,
                        .ship = store_ship_malformed_once,
                        .ship_ctx = &st};
    dg_qlog_t *q = NULL;
    assert_int_equal(dg_qlog_new(&o, &q), DG_OK);
    for (int i = 0; i < 4; i++) {
        record(q, "r", "SELECT 1", 200);
    }
    assert_true(dg_qlog_sync(q, 10000));
    for (int i = 0; i < 3; i++) {
        record(q, "r", "SELECT 1", 200);
    }
    assert_true(dg_qlog_sync(q, 10000));
    dg_qlog_stats_t s;
    dg_qlog_stats(q, &s);
    assert_int_equal(s.dropped, 4);
    assert_int_equal(s.shipped, 3);
    assert_int_equal(s.pending, 0);
    dg_qlog_free(q);
    assert_int_equal(st.rows, 3);
    assert_false(st.is_bad);
    pthread_mutex_destroy(&st.mu);
}

static void test_sync_times_out_when_refused(void **state)
{
    (void)state;
    store_t st = {.refuse = 1 << 30};
    pthread_mutex_init(&st.mu, NULL);
    dg_qlog_opts_t o = {.is_on = true,
                        .capacity = 10,
                        .max_query_bytes = 100,
                        .flush_ms = 10,
                        .ship = store_ship,
                        .ship_ctx = &st};
    dg_qlog_t *q = NULL;
    assert_int_equal(dg_qlog_new(&o, &q), DG_OK);
    record(q, "r", "SELECT 1", 200);
    int64_t t0 = dg_now_ms();
    assert_false(dg_qlog_sync(q, 100));
    assert_true(dg_now_ms() - t0 >= 90);
    dg_qlog_stats_t s;
    dg_qlog_stats(q, &s);
    assert_int_equal(s.pending, 1); /* refused rows stay */
    dg_qlog_free(q);
    pthread_mutex_destroy(&st.mu);
}

/* ---- concurrency: recorders on several threads against a small ring and a busy flusher ---- */

#define N_THREADS 4
#define N_PER_THREAD 3000

typedef struct cstore {
    pthread_mutex_t mu;
    uint64_t last_seq;
    long last_i[N_THREADS]; /* per recorder thread: the last row number seen */
    size_t rows;
    bool is_bad;
} cstore_t;

static dg_rc_t cstore_ship(void *ctx, const char *rows_json, size_t rows_len, uint64_t last_seq)
{
    cstore_t *st = ctx;
    json_t *j = json_loadb(rows_json, rows_len, 0, NULL);
    pthread_mutex_lock(&st->mu);
    st->is_bad |= !json_is_array(j);
    size_t i;
    json_t *row;
    json_array_foreach(j, i, row)
    {
        uint64_t seq = (uint64_t)json_integer_value(json_object_get(row, "seq"));
        const char *rid = json_string_value(json_object_get(row, "request_id"));
        const char *sql = json_string_value(json_object_get(row, "query"));
        int t = -1;
        long k = -1;
        /* Sequence numbers only grow (drops leave gaps); each thread's rows keep their order
         * and arrive intact. */
        st->is_bad |= seq <= st->last_seq;
        st->last_seq = seq;
        if (!rid || sscanf(rid, "t%d-%ld", &t, &k) != 2 || t < 0 || t >= N_THREADS ||
            k <= st->last_i[t] || !sql || strcmp(sql, "SELECT 'concurrent'") != 0) {
            st->is_bad = true;
        } else {
            st->last_i[t] = k;
        }
        st->rows++;
    }
    st->is_bad |= st->last_seq != last_seq;
    pthread_mutex_unlock(&st->mu);
    json_decref(j);
    return DG_OK;
}

typedef struct recorder {
    dg_qlog_t *q;
    int t;
} recorder_t;

static void *recorder_main(void *arg)
{
    recorder_t *r = arg;
    char rid[32];
    for (long i = 0; i < N_PER_THREAD; i++) {
        snprintf(rid, sizeof rid, "t%d-%ld", r->t, i);
        record(r->q, rid, "SELECT 'concurrent'", 200);
    }
    return NULL;
}

static void test_concurrent_record_and_ship(void **state)
{
    (void)state;
    cstore_t st = {.last_seq = 0};
    pthread_mutex_init(&st.mu, NULL);
    for (int t = 0; t < N_THREADS; t++) {
        st.last_i[t] = -1;
    }
    /* A small ring and a flusher that runs all the time: drops of rows the flusher is
     * formatting must be safe (ASan checks), and nothing is counted twice or lost. */
    dg_qlog_opts_t o = {.is_on = true,
                        .capacity = 64,
                        .max_query_bytes = 100,
                        .flush_ms = 1,
                        .batch_rows = 16,
                        .ship = cstore_ship,
                        .ship_ctx = &st};
    dg_qlog_t *q = NULL;
    assert_int_equal(dg_qlog_new(&o, &q), DG_OK);
    pthread_t th[N_THREADS];
    recorder_t rec[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        rec[t] = (recorder_t){q, t};
        assert_int_equal(pthread_create(&th[t], NULL, recorder_main, &rec[t]), 0);
    }
    for (int t = 0; t < N_THREADS; t++) {
        pthread_join(th[t], NULL);
    }
    assert_true(dg_qlog_sync(q, 10000));
    dg_qlog_stats_t s;
    dg_qlog_stats(q, &s);
    assert_int_equal(s.recorded, N_THREADS * N_PER_THREAD);
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.shipped + s.dropped, s.recorded);
    pthread_mutex_lock(&st.mu);
    /* A row dropped (ring full) while its batch was in flight reaches the store but counts as
     * dropped: the store holds at least the shipped rows and at most every row. */
    assert_true(st.rows >= s.shipped && st.rows <= s.shipped + s.dropped);
    assert_true(st.rows > 0);
    assert_false(st.is_bad);
    pthread_mutex_unlock(&st.mu);
    dg_qlog_free(q);
    pthread_mutex_destroy(&st.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_row_fields),
        cmocka_unit_test(test_new_fields),
        cmocka_unit_test(test_concurrent_record_and_ship),
        cmocka_unit_test(test_wrap_and_drop),
        cmocka_unit_test(test_ack_semantics),
        cmocka_unit_test(test_batch_caps),
        cmocka_unit_test(test_truncation_utf8),
        cmocka_unit_test(test_off_and_null),
        cmocka_unit_test(test_flusher_retries),
        cmocka_unit_test(test_refused_store_retried_per_tick),
        cmocka_unit_test(test_sync_times_out_when_refused),
        cmocka_unit_test(test_malformed_batch_is_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
