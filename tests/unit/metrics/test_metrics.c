/* Unit tests of src/metrics: the registry, series lookup and caps, histogram bucket math, the
 * exact text exposition, label escaping and concurrent updates. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics/metrics.h"
#include "metrics/metrics_gw.h"

static char *expose(dg_metrics_t *m)
{
    dg_buf_t b;
    dg_buf_init(&b, 0);
    assert_int_equal(dg_metrics_expose(m, &b), DG_OK);
    assert_int_equal(dg_buf_putc(&b, '\0'), DG_OK);
    size_t len;
    return dg_buf_take(&b, &len);
}

static void test_exposition_exact(void **state)
{
    (void)state;
    dg_metrics_t *m = dg_metrics_new();
    const char *l2[2] = {"route", "status"};
    dg_metric_t *c =
        dg_metrics_add(m, DG_METRIC_COUNTER, "t_requests_total", "Requests.", 2, l2, NULL, 0, 8);
    dg_metric_t *g =
        dg_metrics_add(m, DG_METRIC_GAUGE, "t_busy", "Busy\\slots\nnow.", 0, NULL, NULL, 0, 1);
    const double b[3] = {0.1, 0.5, 1};
    const char *l1[1] = {"db"};
    dg_metric_t *h =
        dg_metrics_add(m, DG_METRIC_HISTOGRAM, "t_seconds", "Latency.", 1, l1, b, 3, 4);
    dg_metric_t *empty =
        dg_metrics_add(m, DG_METRIC_COUNTER, "t_empty_total", "Nothing yet.", 1, l1, NULL, 0, 4);
    assert_non_null(c);
    assert_non_null(g);
    assert_non_null(h);
    assert_non_null(empty);
    const char *v1[2] = {"/a/{x}", "200"};
    const char *v2[2] = {"/b", "404"};
    dg_series_add(dg_metric_series(c, v1), 3);
    dg_series_add(dg_metric_series(c, v2), 1);
    dg_series_add(dg_metric_series(c, v1), 2);
    dg_series_set(dg_metric_only(g), 2);
    const char *db[1] = {"main"};
    dg_series_t *hs = dg_metric_series(h, db);
    dg_series_observe(hs, 0.05);
    dg_series_observe(hs, 0.1); /* le is inclusive */
    dg_series_observe(hs, 0.7);
    dg_series_observe(hs, 5);
    char *text = expose(m);
    static const char want[] = "# HELP t_requests_total Requests.\n"
                               "# TYPE t_requests_total counter\n"
                               "t_requests_total{route=\"/a/{x}\",status=\"200\"} 5\n"
                               "t_requests_total{route=\"/b\",status=\"404\"} 1\n"
                               "# HELP t_busy Busy\\\\slots\\nnow.\n"
                               "# TYPE t_busy gauge\n"
                               "t_busy 2\n"
                               "# HELP t_seconds Latency.\n"
                               "# TYPE t_seconds histogram\n"
                               "t_seconds_bucket{db=\"main\",le=\"0.1\"} 2\n"
                               "t_seconds_bucket{db=\"main\",le=\"0.5\"} 2\n"
                               "t_seconds_bucket{db=\"main\",le=\"1\"} 3\n"
                               "t_seconds_bucket{db=\"main\",le=\"+Inf\"} 4\n"
                               "t_seconds_sum{db=\"main\"} 5.85\n"
                               "t_seconds_count{db=\"main\"} 4\n"
                               "# HELP t_empty_total Nothing yet.\n"
                               "# TYPE t_empty_total counter\n";
    assert_string_equal(text, want);
    free(text);
    dg_metrics_free(m);
}

static void test_label_escaping(void **state)
{
    (void)state;
    dg_metrics_t *m = dg_metrics_new();
    const char *l[1] = {"v"};
    dg_metric_t *c = dg_metrics_add(m, DG_METRIC_COUNTER, "t_total", "x", 1, l, NULL, 0, 4);
    const char *v[1] = {"a\"b\\c\nd"};
    dg_series_add(dg_metric_series(c, v), 1);
    char *text = expose(m);
    assert_non_null(strstr(text, "t_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
    free(text);
    dg_metrics_free(m);
}

static void test_cap_and_other(void **state)
{
    (void)state;
    dg_metrics_t *m = dg_metrics_new();
    const char *l[1] = {"k"};
    dg_metric_t *c = dg_metrics_add(m, DG_METRIC_COUNTER, "t_total", "x", 1, l, NULL, 0, 3);
    char name[16];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "v%d", i);
        const char *v[1] = {name};
        dg_series_add(dg_metric_series(c, v), 1);
    }
    assert_int_equal(dg_metric_n_series(c), 3);
    assert_true(dg_series_value(dg_metric_other(c)) == 7.0);
    const char *v0[1] = {"v0"};
    assert_ptr_equal(dg_metric_series(c, v0), dg_metric_series(c, v0));
    char *text = expose(m);
    assert_non_null(strstr(text, "t_total{k=\"other\"} 7\n"));
    free(text);
    dg_metrics_free(m);
}

static void test_bad_registrations(void **state)
{
    (void)state;
    dg_metrics_t *m = dg_metrics_new();
    const double unsorted[2] = {1, 0.5};
    const char *bad[1] = {"bad-label"};
    assert_null(dg_metrics_add(m, DG_METRIC_COUNTER, "1bad", "x", 0, NULL, NULL, 0, 1));
    assert_null(dg_metrics_add(m, DG_METRIC_COUNTER, "bad-name", "x", 0, NULL, NULL, 0, 1));
    assert_null(dg_metrics_add(m, DG_METRIC_COUNTER, "t_l", "x", 1, bad, NULL, 0, 1));
    assert_null(dg_metrics_add(m, DG_METRIC_HISTOGRAM, "t_h", "x", 0, NULL, unsorted, 2, 1));
    assert_null(dg_metrics_add(m, DG_METRIC_HISTOGRAM, "t_h", "x", 0, NULL, NULL, 0, 1));
    assert_non_null(dg_metrics_add(m, DG_METRIC_COUNTER, "t_ok", "x", 0, NULL, NULL, 0, 1));
    assert_null(dg_metrics_add(m, DG_METRIC_COUNTER, "t_ok", "x", 0, NULL, NULL, 0, 1));
    dg_metrics_free(m);
}

static void test_bucket_math(void **state)
{
    (void)state;
    dg_metrics_t *m = dg_metrics_new();
    dg_metric_t *h = dg_metrics_add(m, DG_METRIC_HISTOGRAM, "t_d", "x", 0, NULL,
                                    dg_metrics_duration_buckets, 15, 1);
    dg_series_t *s = dg_metric_only(h);
    const double obs[] = {0.0005, 0.001, 0.0011, 0.02, 0.3, 59.9, 60, 61, 1e9};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) {
        dg_series_observe(s, obs[i]);
    }
    assert_int_equal(dg_series_count(s), 9);
    assert_int_equal(dg_series_bucket(s, 0), 2);  /* <= 0.001 */
    assert_int_equal(dg_series_bucket(s, 1), 1);  /* <= 0.0025 */
    assert_int_equal(dg_series_bucket(s, 4), 1);  /* <= 0.025 */
    assert_int_equal(dg_series_bucket(s, 7), 0);  /* <= 0.25 */
    assert_int_equal(dg_series_bucket(s, 8), 1);  /* <= 0.5: 0.3 */
    assert_int_equal(dg_series_bucket(s, 14), 2); /* <= 60 */
    assert_int_equal(dg_series_bucket(s, 15), 2); /* +Inf */
    char *text = expose(m);
    assert_non_null(strstr(text, "t_d_bucket{le=\"0.0025\"} 3\n"));
    assert_non_null(strstr(text, "t_d_bucket{le=\"60\"} 7\n"));
    assert_non_null(strstr(text, "t_d_bucket{le=\"+Inf\"} 9\n"));
    assert_non_null(strstr(text, "t_d_count 9\n"));
    free(text);
    dg_metrics_free(m);
}

static void test_format_value(void **state)
{
    (void)state;
    struct {
        double v;
        const char *want;
    } cases[] = {{0, "0"},
                 {42, "42"},
                 {-3, "-3"},
                 {0.1, "0.1"},
                 {1e300, "1.00000000000000005e+300"},
                 {1.0 / 0.0, "+Inf"},
                 {-1.0 / 0.0, "-Inf"},
                 {0.0 / 0.0, "NaN"},
                 {2.5, "2.5"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dg_buf_t b;
        dg_buf_init(&b, 0);
        assert_int_equal(dg_metrics_format_value(&b, cases[i].v), DG_OK);
        assert_int_equal(dg_buf_putc(&b, '\0'), DG_OK);
        if (cases[i].v == 1e300) {
            assert_true(strtod(b.p, NULL) == 1e300);
        } else {
            assert_string_equal(b.p, cases[i].want);
        }
        dg_buf_free(&b);
    }
}

#define N_THREADS 8
#define N_ITER 100000

typedef struct {
    dg_metric_t *c, *h, *lab;
} race_t;

static void *racer(void *arg)
{
    race_t *r = arg;
    char name[8];
    for (int i = 0; i < N_ITER; i++) {
        dg_series_add(dg_metric_only(r->c), 1);
        dg_series_observe(dg_metric_only(r->h), 0.5);
        snprintf(name, sizeof name, "k%d", i % 5); /* concurrent creation of the same series */
        const char *v[1] = {name};
        dg_series_add(dg_metric_series(r->lab, v), 1);
    }
    return NULL;
}

static void test_concurrency(void **state)
{
    (void)state;
    dg_metrics_t *m = dg_metrics_new();
    const double b[1] = {1};
    const char *l[1] = {"k"};
    race_t r = {dg_metrics_add(m, DG_METRIC_COUNTER, "t_c_total", "x", 0, NULL, NULL, 0, 1),
                dg_metrics_add(m, DG_METRIC_HISTOGRAM, "t_h", "x", 0, NULL, b, 1, 1),
                dg_metrics_add(m, DG_METRIC_COUNTER, "t_l_total", "x", 1, l, NULL, 0, 16)};
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, racer, &r), 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    assert_true(dg_series_value(dg_metric_only(r.c)) == (double)N_THREADS * N_ITER);
    assert_int_equal(dg_series_count(dg_metric_only(r.h)), (uint64_t)N_THREADS * N_ITER);
    assert_true(dg_series_sum(dg_metric_only(r.h)) == 0.5 * N_THREADS * N_ITER);
    assert_int_equal(dg_metric_n_series(r.lab), 5);
    double total = 0;
    for (int i = 0; i < 5; i++) {
        char name[8];
        snprintf(name, sizeof name, "k%d", i);
        const char *v[1] = {name};
        total += dg_series_value(dg_metric_series(r.lab, v));
    }
    assert_true(total == (double)N_THREADS * N_ITER);
    dg_metrics_free(m);
}

static void test_gateway_set(void **state)
{
    (void)state;
    const char *dbs[2] = {"main", "other_db"};
    dg_metrics_gw_t *g = dg_metrics_gw_new(dbs, 2, "9.9.9");
    assert_non_null(g);
    assert_string_equal(dg_metrics_gw_db(g, "main"), "main");
    assert_string_equal(dg_metrics_gw_db(g, "nope"), "other");
    assert_string_equal(dg_metrics_gw_db(g, NULL), "other");
    dg_metrics_gw_query(g, "main", "sql", 200, 0.003);
    dg_metrics_gw_query(g, "evil\"db", "sql", 404, 0.001);
    dg_metrics_gw_interrupt(g, "deadline");
    dg_metrics_gw_collect_process(g);
    char *text = expose(g->reg);
    assert_non_null(strstr(text, "duckgate_build_info{version=\"9.9.9\",duckdb=\""));
    assert_non_null(
        strstr(text, "duckgate_queries_total{db=\"main\",kind=\"sql\",status=\"200\"} 1\n"));
    assert_non_null(
        strstr(text, "duckgate_queries_total{db=\"other\",kind=\"sql\",status=\"404\"} 1\n"));
    assert_non_null(strstr(text, "duckgate_interrupts_total{reason=\"deadline\"} 1\n"));
    assert_non_null(strstr(text, "duckgate_interrupts_total{reason=\"cancel\"} 0\n"));
    assert_non_null(strstr(text, "duckgate_rate_limited_total 0\n"));
    assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
    assert_null(strstr(text, "evil"));
    const char *names[] = {"\nprocess_resident_memory_bytes ", "\nprocess_open_fds ",
                           "\nprocess_start_time_seconds "};
    for (size_t i = 0; i < 3; i++) {
        const char *p = strstr(text, names[i]);
        assert_non_null(p);
        assert_true(strtod(p + strlen(names[i]), NULL) > 0);
    }
    free(text);
    dg_metrics_gw_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exposition_exact), cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_cap_and_other),    cmocka_unit_test(test_bad_registrations),
        cmocka_unit_test(test_bucket_math),      cmocka_unit_test(test_format_value),
        cmocka_unit_test(test_concurrency),      cmocka_unit_test(test_gateway_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
