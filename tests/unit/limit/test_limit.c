/* Unit tests of src/limit: token bucket math on an injected clock (refill, both limits, the
 * RateLimit header values), the fixed table under a flood of distinct keys, CIDR parsing and
 * matching (IPv4 and IPv6), forwarded-header parsing and the trusted-proxy walk, and
 * concurrent checks. */
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

static dg_limit_t *mk(uint32_t burst, uint32_t per_min, size_t cap)
{
    dg_limit_opts_t o = {
        .burst_per_s = burst, .per_min = per_min, .capacity = cap, .clock = fake_clock};
    dg_limit_t *lim = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_limit_new(&o, &lim, &err), DG_OK);
    assert_non_null(lim);
    return lim;
}

static void test_burst_then_refill(void **state)
{
    (void)state;
    fake_now_us = 1000000;
    dg_limit_t *lim = mk(20, 500, 0);
    dg_limit_result_t r;
    for (int i = 0; i < 20; i++) {
        assert_true(dg_limit_check(lim, "ip:1.2.3.4", &r));
        assert_int_equal(r.limit, 20);
        assert_int_equal(r.window_s, 1);
        assert_int_equal(r.remaining, 19 - i);
        assert_int_equal(r.retry_after_s, 0);
    }
    assert_false(dg_limit_check(lim, "ip:1.2.3.4", &r));
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.retry_after_s, 1);
    assert_int_equal(r.reset_s, 1);
    /* Another key is independent. */
    assert_true(dg_limit_check(lim, "ip:1.2.3.5", NULL));
    /* 50 ms = one token at 20/s. */
    fake_now_us += 50000;
    assert_true(dg_limit_check(lim, "ip:1.2.3.4", &r));
    assert_false(dg_limit_check(lim, "ip:1.2.3.4", NULL));
    /* A full second refills the burst bucket completely (capped at 20). */
    fake_now_us += 5000000;
    for (int i = 0; i < 20; i++) {
        assert_true(dg_limit_check(lim, "ip:1.2.3.4", NULL));
    }
    assert_false(dg_limit_check(lim, "ip:1.2.3.4", NULL));
    dg_limit_free(lim);
}

static void test_sustained_binds(void **state)
{
    (void)state;
    fake_now_us = 0;
    /* 10/s burst, 30/min sustained: after 30 admitted requests the minute bucket binds. */
    dg_limit_t *lim = mk(10, 30, 64);
    dg_limit_result_t r;
    int admitted = 0;
    for (int step = 0; step < 10; step++) {
        for (int i = 0; i < 10; i++) {
            admitted += dg_limit_check(lim, "k", &r);
        }
        fake_now_us += 1000000;
    }
    /* 30 from the bucket + 9 s * 0.5/s refill = 4.5 -> 34 whole tokens; one more by t = 10 s. */
    assert_int_equal(admitted, 34);
    assert_true(dg_limit_check(lim, "k", &r));
    assert_int_equal(r.remaining, 0);
    assert_false(dg_limit_check(lim, "k", &r));
    assert_int_equal(r.limit, 30);
    assert_int_equal(r.window_s, 60);
    assert_int_equal(r.remaining, 0);
    /* At 0.5 tokens/s the next token is at most 2 s away. */
    assert_in_range(r.retry_after_s, 1, 2);
    assert_in_range(r.reset_s, 57, 60);
    fake_now_us += (int64_t)r.retry_after_s * 1000000;
    assert_true(dg_limit_check(lim, "k", &r));
    dg_limit_free(lim);
}

static void test_retry_after_math(void **state)
{
    (void)state;
    fake_now_us = 0;
    dg_limit_t *lim = mk(1, 1, 64);
    dg_limit_result_t r;
    assert_true(dg_limit_check(lim, "a", &r));
    assert_int_equal(r.remaining, 0);
    assert_false(dg_limit_check(lim, "a", &r));
    assert_int_equal(r.retry_after_s, 60);
    fake_now_us += 59 * 1000000LL;
    assert_false(dg_limit_check(lim, "a", &r));
    assert_int_equal(r.retry_after_s, 1);
    fake_now_us += 1000000;
    assert_true(dg_limit_check(lim, "a", NULL));
    dg_limit_free(lim);
}

static void test_bad_opts(void **state)
{
    (void)state;
    dg_limit_opts_t o = {.burst_per_s = 0, .per_min = 5};
    dg_limit_t *lim = (dg_limit_t *)1;
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_limit_new(&o, &lim, &err), DG_CONFIG);
    assert_null(lim);
    dg_limit_free(NULL);
}

static void test_flood_bounded(void **state)
{
    (void)state;
    fake_now_us = 0;
    dg_limit_t *lim = mk(20, 500, 1024);
    /* An exhausted key... */
    for (int i = 0; i < 20; i++) {
        dg_limit_check(lim, "victim", NULL);
    }
    assert_false(dg_limit_check(lim, "victim", NULL));
    /* ...then a million distinct keys in the same instant: the table never grows. */
    char key[32];
    for (int i = 0; i < 1000000; i++) {
        snprintf(key, sizeof key, "ip:%d", i);
        assert_true(dg_limit_check(lim, key, NULL));
    }
    dg_limit_stats_t st;
    dg_limit_stats(lim, &st);
    assert_int_equal(st.capacity, 1024);
    assert_true(st.used <= 1024);
    assert_true(st.evictions > 900000);
    dg_limit_free(lim);
}

static void test_idle_reuse(void **state)
{
    (void)state;
    fake_now_us = 0;
    dg_limit_t *lim = mk(20, 500, 64);
    char key[32];
    for (int i = 0; i < 64; i++) {
        snprintf(key, sizeof key, "a%d", i);
        dg_limit_check(lim, key, NULL);
    }
    dg_limit_stats_t st;
    dg_limit_stats(lim, &st);
    uint64_t ev0 = st.evictions;
    /* After a minute every bucket is full again: new keys reuse slots without evicting (four
     * keys: each 8-way window then always holds an idle slot). */
    fake_now_us += 61 * 1000000LL;
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "b%d", i);
        assert_true(dg_limit_check(lim, key, NULL));
    }
    dg_limit_stats(lim, &st);
    assert_int_equal(st.evictions, ev0);
    assert_true(st.used <= 64);
    /* A key that is still limited keeps its state while there is room. */
    for (int i = 0; i < 21; i++) {
        dg_limit_check(lim, "busy", NULL);
    }
    assert_false(dg_limit_check(lim, "busy", NULL));
    dg_limit_free(lim);
}

/* ---- addresses ---------------------------------------------------------------------- */

static bool addr(const char *s, dg_limit_addr_t *a)
{
    return dg_limit_addr_parse(s, strlen(s), a);
}

static bool cidr(const char *s, dg_limit_cidr_t *c)
{
    return dg_limit_cidr_parse(s, strlen(s), c);
}

static void test_cidr(void **state)
{
    (void)state;
    static const struct {
        const char *cidr, *addr;
        bool ok, match;
    } cases[] = {
        {"10.0.0.0/8", "10.1.2.3", true, true},
        {"10.0.0.0/8", "11.0.0.1", true, false},
        {"10.0.0.1", "10.0.0.1", true, true},
        {"10.0.0.1", "10.0.0.2", true, false},
        {"192.168.1.0/24", "192.168.1.255", true, true},
        {"192.168.1.0/25", "192.168.1.128", true, false},
        {"0.0.0.0/0", "8.8.8.8", true, true},
        {"0.0.0.0/0", "::1", true, false},
        {"172.16.0.0/12", "172.31.255.255", true, true},
        {"172.16.0.0/12", "172.32.0.0", true, false},
        {"127.0.0.1/32", "::ffff:127.0.0.1", true, true},
        {"::ffff:10.0.0.0/104", "10.9.9.9", true, true},
        {"::1/128", "::1", true, true},
        {"::1", "::2", true, false},
        {"2001:db8::/32", "2001:db8:ffff::1", true, true},
        {"2001:db8::/32", "2001:db9::1", true, false},
        {"2001:db8:0:1::/64", "2001:db8:0:1:ffff::", true, true},
        {"2001:db8:0:2::/63", "2001:db8:0:3::1", true, true},
        {"2001:db8:0:1::/63", NULL, false, false}, /* host bit 63 set */
        {"2001:db8::/33", "2001:db8:8000::", true, false},
        {"::/0", "fe80::1", true, true},
        {"::/0", "1.2.3.4", true, false},
        {"10.0.0.1/8", NULL, false, false}, /* host bits */
        {"10.0.0.0/33", NULL, false, false},
        {"::/129", NULL, false, false},
        {"10.0.0.0/", NULL, false, false},
        {"10.0.0.0/-1", NULL, false, false},
        {"10.0.0.0/1000", NULL, false, false},
        {"10.0.0", NULL, false, false},
        {"010.0.0.1", NULL, false, false},
        {"1.2.3.4.5", NULL, false, false},
        {"2001:db8::1%eth0", NULL, false, false},
        {"[::1]", NULL, false, false},
        {"", NULL, false, false},
        {"hello", NULL, false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dg_limit_cidr_t c;
        bool ok = cidr(cases[i].cidr, &c);
        if (ok != cases[i].ok) {
            fail_msg("cidr %s: parse %d", cases[i].cidr, ok);
        }
        if (ok && cases[i].addr) {
            dg_limit_addr_t a;
            assert_true(addr(cases[i].addr, &a));
            if (dg_limit_cidr_match(&c, &a) != cases[i].match) {
                fail_msg("cidr %s addr %s: wrong match", cases[i].cidr, cases[i].addr);
            }
        }
    }
    /* A NUL inside the bytes is never accepted. */
    dg_limit_addr_t a;
    assert_false(dg_limit_addr_parse("1.2.3.4\0", 8, &a));
}

static void test_proxies_list(void **state)
{
    (void)state;
    dg_limit_proxies_t p;
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_limit_proxies_parse("", 0, &p, &err), DG_OK);
    assert_int_equal(p.n, 0);
    const char *l = " 10.0.0.0/8 , 127.0.0.1/32,::1 ,2001:db8::/32";
    assert_int_equal(dg_limit_proxies_parse(l, strlen(l), &p, &err), DG_OK);
    assert_int_equal(p.n, 4);
    dg_limit_addr_t a;
    assert_true(addr("10.3.3.3", &a));
    assert_true(dg_limit_proxies_match(&p, &a));
    assert_true(addr("2001:db8::7", &a));
    assert_true(dg_limit_proxies_match(&p, &a));
    assert_true(addr("8.8.8.8", &a));
    assert_false(dg_limit_proxies_match(&p, &a));
    static const char *const bad[] = {"10.0.0.0/8,", ",10.0.0.0/8", "10.0.0.0/8,,::1", "x",
                                      "10.0.0.1/8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dg_error_clear(&err);
        assert_int_equal(dg_limit_proxies_parse(bad[i], strlen(bad[i]), &p, &err), DG_CONFIG);
        assert_non_null(strstr(err.msg, "trusted_proxies"));
    }
    char many[2048] = "";
    for (int i = 0; i <= DG_LIMIT_MAX_PROXIES; i++) {
        char item[24];
        snprintf(item, sizeof item, "%s10.0.%d.0/24", i ? "," : "", i);
        strncat(many, item, sizeof many - strlen(many) - 1);
    }
    dg_error_clear(&err);
    assert_int_equal(dg_limit_proxies_parse(many, strlen(many), &p, &err), DG_CONFIG);
}

static void test_fwd_elem(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want; /* want NULL = malformed */
    } cases[] = {
        {"1.2.3.4", "1.2.3.4"},
        {" 1.2.3.4 ", "1.2.3.4"},
        {"1.2.3.4:8080", "1.2.3.4"},
        {"\"1.2.3.4\"", "1.2.3.4"},
        {"2001:db8::1", "2001:db8::1"},
        {"[2001:db8::1]", "2001:db8::1"},
        {"[2001:db8::1]:443", "2001:db8::1"},
        {"\"[2001:db8::1]:443\"", "2001:db8::1"},
        {"::ffff:1.2.3.4", "1.2.3.4"},
        {"1.2.3.4:", NULL},
        {"1.2.3.4:123456", NULL},
        {"[2001:db8::1", NULL},
        {"[2001:db8::1]x", NULL},
        {"[1.2.3.4]", NULL},
        {"unknown", NULL},
        {"_hidden", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dg_limit_addr_t a;
        bool ok = dg_limit_fwd_elem_parse(cases[i].in, strlen(cases[i].in), &a);
        if (ok != (cases[i].want != NULL)) {
            fail_msg("fwd elem \"%s\": parse %d", cases[i].in, ok);
        }
        if (ok) {
            char text[64];
            dg_limit_addr_format(&a, text, sizeof text);
            assert_string_equal(text, cases[i].want);
        }
    }
}

static void test_client_addr(void **state)
{
    (void)state;
    dg_limit_proxies_t p;
    const char *l = "127.0.0.1/32,10.0.0.0/8,fd00::/8";
    assert_int_equal(dg_limit_proxies_parse(l, strlen(l), &p, NULL), DG_OK);
    static const struct {
        const char *peer, *fwd, *want;
    } cases[] = {
        /* untrusted peer: header ignored */
        {"203.0.113.9", "1.1.1.1", "203.0.113.9"},
        /* trusted peer, no header */
        {"127.0.0.1", NULL, "127.0.0.1"},
        /* trusted peer: right-most address */
        {"127.0.0.1", "198.51.100.7", "198.51.100.7"},
        /* a spoofed left part is skipped: the right-most untrusted wins */
        {"127.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"},
        /* a chain of trusted proxies is walked through */
        {"127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.1.1, 10.2.2.2", "198.51.100.7"},
        /* all trusted: the left-most */
        {"10.0.0.5", "10.1.1.1,10.2.2.2", "10.1.1.1"},
        /* garbage to the right of a trusted hop: stop at the hop */
        {"10.0.0.5", "198.51.100.7, garbage", "10.0.0.5"},
        {"10.0.0.5", "198.51.100.7, 10.9.9.9, junk", "10.0.0.5"},
        {"10.0.0.5", "junk, 198.51.100.7", "198.51.100.7"},
        {"10.0.0.5", "198.51.100.7,", "10.0.0.5"},
        {"10.0.0.5", "", "10.0.0.5"},
        /* IPv6 */
        {"fd00::1", "[2001:db8::5]:1234, fd12::1", "2001:db8::5"},
        {"::ffff:127.0.0.1", "2001:db8::5", "2001:db8::5"},
        {"2001:db8::1", "198.51.100.7", "2001:db8::1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dg_limit_addr_t peer, out;
        assert_true(addr(cases[i].peer, &peer));
        const char *f = cases[i].fwd;
        dg_limit_client_addr(&p, &peer, f, f ? strlen(f) : 0, &out);
        char text[64];
        dg_limit_addr_format(&out, text, sizeof text);
        if (strcmp(text, cases[i].want) != 0) {
            fail_msg("peer %s fwd \"%s\": got %s want %s", cases[i].peer, f ? f : "(none)", text,
                     cases[i].want);
        }
    }
    /* No trusted proxies at all: the header is never believed. */
    dg_limit_proxies_t none = {.n = 0};
    dg_limit_addr_t peer, out;
    assert_true(addr("127.0.0.1", &peer));
    dg_limit_client_addr(&none, &peer, "1.1.1.1", 7, &out);
    assert_int_equal(memcmp(&out, &peer, sizeof out), 0);
}

static void test_addr_key(void **state)
{
    (void)state;
    dg_limit_addr_t a;
    char key[64];
    assert_true(addr("192.0.2.1", &a));
    dg_limit_addr_key(&a, key, sizeof key);
    assert_string_equal(key, "ip:192.0.2.1");
    assert_true(addr("2001:db8:1:2:3:4:5:6", &a));
    dg_limit_addr_key(&a, key, sizeof key);
    assert_string_equal(key, "ip:2001:db8:1:2::/64");
    assert_true(addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", &a));
    dg_limit_addr_key(&a, key, sizeof key);
    assert_string_equal(key, "ip:ffff:ffff:ffff:ffff::/64");
}

/* ---- threads ------------------------------------------------------------------------ */

typedef struct {
    dg_limit_t *lim;
    int id;
    int admitted;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    char key[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "k%d", i % 50);
        w->admitted += dg_limit_check(w->lim, key, NULL);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    fake_now_us = 0; /* frozen clock: each of the 50 keys admits exactly 20 in total */
    dg_limit_t *lim = mk(20, 500, 4096);
    worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){lim, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += w[i].admitted;
    }
    assert_int_equal(total, 50 * 20);
    dg_limit_free(lim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refill),
        cmocka_unit_test(test_sustained_binds),
        cmocka_unit_test(test_retry_after_math),
        cmocka_unit_test(test_bad_opts),
        cmocka_unit_test(test_flood_bounded),
        cmocka_unit_test(test_idle_reuse),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_proxies_list),
        cmocka_unit_test(test_fwd_elem),
        cmocka_unit_test(test_client_addr),
        cmocka_unit_test(test_addr_key),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
