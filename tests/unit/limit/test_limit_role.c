/* Unit tests of the per-role parts of src/limit: token buckets charged with each key's own
 * rates (dg_limit_check_rate) and the concurrent-query table (limit_conc.c): limits per key,
 * idempotent enter per holder, release by holder, the full-table answer, deletion keeping
 * probe runs intact under churn, and many threads entering and leaving at once. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "limit/limit.h"

static int64_t fake_now_us;

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now_us;
}

static void test_rates_per_key(void **state)
{
    (void)state;
    fake_now_us = 1000000;
    dg_limit_opts_t o = {.burst_per_s = 20, .per_min = 500, .clock = fake_clock};
    dg_limit_t *lim = NULL;
    assert_int_equal(dg_limit_new(&o, &lim, NULL), DG_OK);
    /* A key with burst 3: three requests, then 429 with its own limit in the report. */
    dg_limit_result_t res;
    for (int i = 0; i < 3; i++) {
        assert_true(dg_limit_check_rate(lim, "key:viewer", 3, 100, &res));
    }
    assert_false(dg_limit_check_rate(lim, "key:viewer", 3, 100, &res));
    assert_int_equal(res.limit, 3);
    assert_int_equal(res.window_s, 1);
    assert_int_equal(res.retry_after_s, 1);
    /* Another key at the table's rates (0 = default) is unaffected. */
    for (int i = 0; i < 20; i++) {
        assert_true(dg_limit_check_rate(lim, "key:admin", 0, 0, &res));
    }
    assert_false(dg_limit_check(lim, "key:admin", &res));
    assert_int_equal(res.limit, 20);
    /* The sustained bucket of a per-key rate binds too: 5 per minute. */
    for (int i = 0; i < 5; i++) {
        assert_true(dg_limit_check_rate(lim, "jwt:slow", 10, 5, &res));
        fake_now_us += 1000000;
    }
    assert_false(dg_limit_check_rate(lim, "jwt:slow", 10, 5, &res));
    assert_int_equal(res.limit, 5);
    assert_int_equal(res.window_s, 60);
    assert_int_equal(res.retry_after_s, 7); /* 5/12 of a token left after 5 s: 7 s to one */
    /* New rates for the same key: its tokens are kept, capped at the new capacity. */
    fake_now_us += 60 * 1000000;
    assert_true(dg_limit_check_rate(lim, "jwt:slow", 2, 2, &res));
    assert_true(dg_limit_check_rate(lim, "jwt:slow", 2, 2, &res));
    assert_false(dg_limit_check_rate(lim, "jwt:slow", 2, 2, &res));
    dg_limit_free(lim);
}

static void test_conc_basic(void **state)
{
    (void)state;
    dg_limit_conc_t *c = NULL;
    assert_int_equal(dg_limit_conc_new(0, &c, NULL), DG_OK);
    int h[8];
    assert_int_equal(dg_limit_conc_enter(c, "key:a", 2, &h[0]), DG_OK);
    assert_int_equal(dg_limit_conc_enter(c, "key:a", 2, &h[1]), DG_OK);
    assert_int_equal(dg_limit_conc_enter(c, "key:a", 2, &h[2]), DG_TOO_MANY_CONCURRENT);
    assert_int_equal(dg_limit_conc_count(c, "key:a"), 2);
    /* The same holder entering again keeps its one place. */
    assert_int_equal(dg_limit_conc_enter(c, "key:a", 2, &h[1]), DG_OK);
    assert_int_equal(dg_limit_conc_count(c, "key:a"), 2);
    /* Other keys have their own places. */
    assert_int_equal(dg_limit_conc_enter(c, "ip:1.2.3.4", 1, &h[3]), DG_OK);
    assert_int_equal(dg_limit_conc_enter(c, "ip:1.2.3.5", 1, &h[4]), DG_OK);
    assert_int_equal(dg_limit_conc_enter(c, "ip:1.2.3.4", 1, &h[5]), DG_TOO_MANY_CONCURRENT);
    /* Release by holder frees the key's place. */
    assert_true(dg_limit_conc_leave(c, &h[0]));
    assert_false(dg_limit_conc_leave(c, &h[0]));
    assert_false(dg_limit_conc_leave(c, &h[2])); /* was refused: holds nothing */
    assert_int_equal(dg_limit_conc_count(c, "key:a"), 1);
    assert_int_equal(dg_limit_conc_enter(c, "key:a", 2, &h[2]), DG_OK);
    assert_true(dg_limit_conc_leave(c, &h[1]));
    assert_true(dg_limit_conc_leave(c, &h[2]));
    assert_int_equal(dg_limit_conc_count(c, "key:a"), 0);
    assert_true(dg_limit_conc_leave(c, &h[3]));
    assert_true(dg_limit_conc_leave(c, &h[4]));
    assert_int_equal(dg_limit_conc_count(c, "ip:1.2.3.4"), 0);
    dg_limit_conc_free(c);
    dg_limit_conc_free(NULL);
    assert_int_equal(dg_limit_conc_new((size_t)1 << 30, &c, NULL), DG_CONFIG);
}

static void test_conc_full_and_churn(void **state)
{
    (void)state;
    dg_limit_conc_t *c = NULL;
    assert_int_equal(dg_limit_conc_new(64, &c, NULL), DG_OK);
    /* At most capacity / 2 places: the 33rd holder gets OVERLOADED. */
    static char holders[200];
    char key[32];
    for (int i = 0; i < 32; i++) {
        snprintf(key, sizeof key, "k%d", i % 7);
        assert_int_equal(dg_limit_conc_enter(c, key, 100, &holders[i]), DG_OK);
    }
    assert_int_equal(dg_limit_conc_enter(c, "k0", 100, &holders[32]), DG_OVERLOADED);
    /* Churn: release and re-enter in a scrambled order many times; every count must match a
     * model, which fails if backward-shift deletion ever breaks a probe run. */
    int held[200] = {0};
    for (int i = 0; i < 32; i++) {
        held[i] = 1;
    }
    unsigned x = 12345;
    for (int round = 0; round < 20000; round++) {
        x = x * 1103515245u + 12345u;
        int i = (int)((x >> 8) % 200);
        snprintf(key, sizeof key, "k%d", i % 7);
        if (held[i]) {
            assert_true(dg_limit_conc_leave(c, &holders[i]));
            held[i] = 0;
        } else {
            int n = 0;
            for (int k = 0; k < 200; k++) {
                n += held[k];
            }
            dg_rc_t rc = dg_limit_conc_enter(c, key, 100, &holders[i]);
            assert_int_equal(rc, n < 32 ? DG_OK : DG_OVERLOADED);
            held[i] = rc == DG_OK;
        }
    }
    for (int k = 0; k < 7; k++) {
        uint32_t want = 0;
        for (int i = k; i < 200; i += 7) {
            want += (uint32_t)held[i];
        }
        snprintf(key, sizeof key, "k%d", k);
        assert_int_equal(dg_limit_conc_count(c, key), want);
    }
    for (int i = 0; i < 200; i++) {
        assert_int_equal(dg_limit_conc_leave(c, &holders[i]), held[i] != 0);
    }
    dg_limit_conc_free(c);
}

/* cmocka's asserts must not run off the main thread: workers count what they saw. */
typedef struct {
    dg_limit_conc_t *c;
    int ok, refused, broken;
} thread_arg;

static void *worker(void *p)
{
    thread_arg *a = p;
    char mine;
    for (int i = 0; i < 2000; i++) {
        if (dg_limit_conc_enter(a->c, "key:shared", 3, &mine) == DG_OK) {
            a->ok++;
            a->broken += dg_limit_conc_count(a->c, "key:shared") > 3;
            a->broken += !dg_limit_conc_leave(a->c, &mine);
        } else {
            a->refused++;
        }
    }
    return NULL;
}

static void test_conc_threads(void **state)
{
    (void)state;
    dg_limit_conc_t *c = NULL;
    assert_int_equal(dg_limit_conc_new(1024, &c, NULL), DG_OK);
    pthread_t t[8];
    thread_arg a[8];
    for (int i = 0; i < 8; i++) {
        a[i] = (thread_arg){c, 0, 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &a[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        ok += a[i].ok;
        assert_int_equal(a[i].ok + a[i].refused, 2000);
        assert_int_equal(a[i].broken, 0);
    }
    assert_true(ok > 0);
    assert_int_equal(dg_limit_conc_count(c, "key:shared"), 0);
    dg_limit_conc_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rates_per_key),
        cmocka_unit_test(test_conc_basic),
        cmocka_unit_test(test_conc_full_and_churn),
        cmocka_unit_test(test_conc_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
