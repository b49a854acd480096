/* Unit tests of src/cache: LRU by entries per database and by total bytes, TTL expiry on an
 * injected clock, entry lifetime by reference count (an entry evicted or cleared stays valid for
 * its holder), single-flight (one leader, followers share its entry; a failed or oversized
 * leader sends them their own way), versions (a newer version hides and drops older entries),
 * and key canonicalisation (field order, ignored fields, SQL whitespace, scope, version). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache/cache.h"
#include "core/dgtime.h"

static int64_t fake_now_ms;

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now_ms;
}

static dg_cache_t *mk(size_t n_dbs, uint64_t max_bytes, size_t per_db, uint64_t max_entry,
                      int64_t ttl_ms)
{
    dg_cache_opts_t o = {.n_dbs = n_dbs,
                         .max_bytes = max_bytes,
                         .max_entries_per_db = per_db,
                         .max_entry_bytes = max_entry,
                         .ttl_ms = ttl_ms,
                         .clock = fake_clock};
    dg_cache_t *c = NULL;
    assert_int_equal(dg_cache_new(&o, &c), DG_OK);
    return c;
}

static void key_of(dg_cache_key_t *k, int db, uint64_t version, const char *text)
{
    assert_int_equal(dg_cache_key_init(k, db, version, text, strlen(text)), DG_OK);
}

/* Looks k up expecting a miss with no flight running, and publishes body as its entry. */
static void put(dg_cache_t *c, const dg_cache_key_t *k, const char *body)
{
    dg_cache_verdict_t v;
    dg_cache_entry_t *e;
    dg_cache_flight_t *f;
    assert_int_equal(dg_cache_lookup(c, k, &v, &e, &f), DG_OK);
    assert_int_equal(v, DG_CACHE_LEAD);
    assert_null(e);
    assert_true(dg_cache_flight_append(f, body, strlen(body)));
    dg_cache_head_t h = {.status = 200, .content_type = "application/json", .rows = 1};
    assert_true(dg_cache_flight_finish(c, f, &h, false, 0));
}

/* True when k is a hit (and the body is as expected when want is not NULL). A miss leaves a
 * flight behind, which is finished without an entry. */
static bool hit(dg_cache_t *c, const dg_cache_key_t *k, const char *want)
{
    dg_cache_verdict_t v;
    dg_cache_entry_t *e;
    dg_cache_flight_t *f;
    assert_int_equal(dg_cache_lookup(c, k, &v, &e, &f), DG_OK);
    if (v == DG_CACHE_HIT) {
        size_t len;
        const char *body = dg_cache_entry_body(e, &len);
        if (want) {
            assert_int_equal(len, strlen(want));
            assert_memory_equal(body, want, len);
        }
        dg_cache_entry_unref(e);
        return true;
    }
    assert_int_equal(v, DG_CACHE_LEAD);
    dg_cache_flight_finish(c, f, NULL, false, 0);
    return false;
}

static void test_hit_after_store(void **state)
{
    (void)state;
    dg_cache_t *c = mk(1, 1 << 20, 10, 1 << 16, 0);
    dg_cache_key_t k;
    key_of(&k, 0, 1, "q1");
    assert_false(hit(c, &k, NULL));
    put(c, &k, "[1,2,3]");
    assert_true(hit(c, &k, "[1,2,3]"));
    dg_cache_stats_t st;
    dg_cache_stats(c, 0, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.stored, 1);
    assert_true(st.bytes > 7);
    dg_cache_key_free(&k);
    dg_cache_free(c);
}

static void test_lru_by_entries_per_db(void **state)
{
    (void)state;
    dg_cache_t *c = mk(2, 1 << 20, 3, 1 << 16, 0);
    dg_cache_key_t k[5], other;
    char name[16];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "q%d", i);
        key_of(&k[i], 0, 1, name);
    }
    key_of(&other, 1, 1, "q0");
    put(c, &other, "other-db");
    put(c, &k[0], "0");
    put(c, &k[1], "1");
    put(c, &k[2], "2");
    assert_true(hit(c, &k[0], "0")); /* k[0] is now the most recently used */
    put(c, &k[3], "3");              /* evicts k[1], the least recently used of db 0 */
    assert_false(hit(c, &k[1], NULL));
    assert_true(hit(c, &k[0], "0"));
    assert_true(hit(c, &k[2], "2"));
    assert_true(hit(c, &k[3], "3"));
    /* The cap is per database: the other database's entry is untouched. */
    assert_true(hit(c, &other, "other-db"));
    dg_cache_stats_t st;
    dg_cache_stats(c, 0, &st);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.evictions, 1);
    dg_cache_stats(c, 1, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.evictions, 0);
    for (int i = 0; i < 5; i++) {
        dg_cache_key_free(&k[i]);
    }
    dg_cache_key_free(&other);
    dg_cache_free(c);
}

static void test_lru_by_bytes(void **state)
{
    (void)state;
    char body[1001];
    memset(body, 'x', 1000);
    body[1000] = '\0';
    /* Room for two 1000-byte entries with their bookkeeping (a few hundred bytes each), not
     * three. */
    dg_cache_t *c = mk(2, 4000, 100, 1 << 16, 0);
    dg_cache_key_t a, b, d;
    key_of(&a, 0, 1, "a");
    key_of(&b, 1, 1, "b");
    key_of(&d, 0, 1, "d");
    put(c, &a, body);
    put(c, &b, body);
    assert_true(hit(c, &a, NULL)); /* b becomes the least recently used, across databases */
    put(c, &d, body);
    assert_false(hit(c, &b, NULL));
    assert_true(hit(c, &a, NULL));
    assert_true(hit(c, &d, NULL));
    dg_cache_stats_t st;
    dg_cache_stats(c, -1, &st);
    assert_int_equal(st.entries, 2);
    assert_true(st.bytes <= 4000 && st.bytes > 2000);
    assert_int_equal(st.evictions, 1);
    dg_cache_key_free(&a);
    dg_cache_key_free(&b);
    dg_cache_key_free(&d);
    dg_cache_free(c);
}

static void test_ttl_expiry(void **state)
{
    (void)state;
    fake_now_ms = 1000;
    dg_cache_t *c = mk(1, 1 << 20, 10, 1 << 16, 5000);
    dg_cache_key_t k, k2;
    key_of(&k, 0, 1, "q");
    key_of(&k2, 0, 1, "q2");
    put(c, &k, "v");
    fake_now_ms += 4999;
    assert_true(hit(c, &k, "v"));
    fake_now_ms += 1;
    assert_false(hit(c, &k, NULL));
    dg_cache_stats_t st;
    dg_cache_stats(c, 0, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.entries, 0);
    /* A per-entry TTL overrides the default. */
    dg_cache_verdict_t v;
    dg_cache_entry_t *e;
    dg_cache_flight_t *f;
    assert_int_equal(dg_cache_lookup(c, &k2, &v, &e, &f), DG_OK);
    assert_int_equal(v, DG_CACHE_LEAD);
    assert_true(dg_cache_flight_append(f, "w", 1));
    dg_cache_head_t h = {.status = 200};
    assert_true(dg_cache_flight_finish(c, f, &h, false, 100));
    fake_now_ms += 99;
    assert_true(hit(c, &k2, "w"));
    fake_now_ms += 1;
    assert_false(hit(c, &k2, NULL));
    dg_cache_key_free(&k);
    dg_cache_key_free(&k2);
    dg_cache_free(c);
}

/* Publishes body under k with a per-entry TTL (0 = the default). */
static void put_ttl(dg_cache_t *c, const dg_cache_key_t *k, const char *body, int64_t ttl_ms)
{
    dg_cache_verdict_t v;
    dg_cache_entry_t *e;
    dg_cache_flight_t *f;
    assert_int_equal(dg_cache_lookup(c, k, &v, &e, &f), DG_OK);
    assert_int_equal(v, DG_CACHE_LEAD);
    assert_true(dg_cache_flight_append(f, body, strlen(body)));
    dg_cache_head_t h = {.status = 200};
    assert_true(dg_cache_flight_finish(c, f, &h, false, ttl_ms));
}

/* A per-entry TTL larger than the server's never extends an entry's life: the smaller wins. */
static void test_ttl_entry_bounded_by_default(void **state)
{
    (void)state;
    fake_now_ms = 1000;
    dg_cache_t *c = mk(1, 1 << 20, 10, 1 << 16, 5000);
    dg_cache_key_t k;
    key_of(&k, 0, 1, "long");
    put_ttl(c, &k, "v", 60000);
    fake_now_ms += 4999;
    assert_true(hit(c, &k, "v"));
    fake_now_ms += 1;
    assert_false(hit(c, &k, NULL));
    dg_cache_key_free(&k);
    dg_cache_free(c);
    /* With no server TTL the entry's own applies. */
    c = mk(1, 1 << 20, 10, 1 << 16, 0);
    key_of(&k, 0, 1, "own");
    put_ttl(c, &k, "w", 300);
    fake_now_ms += 299;
    assert_true(hit(c, &k, "w"));
    fake_now_ms += 1;
    assert_false(hit(c, &k, NULL));
    dg_cache_key_free(&k);
    dg_cache_free(c);
}

/* Expired entries at the LRU tail go on the next lookup or insert of any key: an entry nobody
 * asks for again does not keep its memory. The sweep stops at the first live entry. */
static void test_ttl_sweeps_unused_tail(void **state)
{
    (void)state;
    fake_now_ms = 1000;
    dg_cache_t *c = mk(2, 1 << 20, 10, 1 << 16, 0);
    dg_cache_key_t a, b, live, other, fresh;
    key_of(&a, 0, 1, "a");
    key_of(&b, 1, 1, "b");
    key_of(&live, 0, 1, "live");
    key_of(&other, 0, 1, "other");
    key_of(&fresh, 1, 1, "fresh");
    put_ttl(c, &a, "aaaa", 100);
    put_ttl(c, &b, "bbbb", 100);
    put_ttl(c, &live, "llll", 0);
    dg_cache_stats_t st;
    dg_cache_stats(c, -1, &st);
    assert_int_equal(st.entries, 3);
    uint64_t bytes_before = st.bytes;
    fake_now_ms += 100;
    /* A lookup of an unrelated key (a miss) drops both expired entries, of both databases. */
    assert_false(hit(c, &other, NULL));
    dg_cache_stats(c, -1, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.expired, 2);
    assert_true(st.bytes < bytes_before);
    dg_cache_stats(c, 1, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    assert_true(hit(c, &live, "llll"));
    /* An insert sweeps too; a live entry at the tail stops the sweep (the expired one behind it
     * waits for its own lookup or the caps). */
    put_ttl(c, &a, "aaaa", 50);
    fake_now_ms += 50;
    assert_true(hit(c, &live, "llll")); /* the tail was live: a stays, and is now the tail */
    dg_cache_stats(c, -1, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.expired, 2);
    assert_true(hit(c, &live, "llll")); /* now the expired tail goes */
    dg_cache_stats(c, -1, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.expired, 3);
    put_ttl(c, &b, "bbbb", 50);
    assert_true(hit(c, &b, "bbbb")); /* tail: live (never expires), then b */
    fake_now_ms += 50;               /* b expired but live is at the tail */
    put_ttl(c, &fresh, "ffff", 0);
    dg_cache_stats(c, -1, &st);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.expired, 3);
    dg_cache_key_free(&a);
    dg_cache_key_free(&b);
    dg_cache_key_free(&live);
    dg_cache_key_free(&other);
    dg_cache_key_free(&fresh);
    dg_cache_free(c);
}

static void test_refcount_outlives_eviction(void **state)
{
    (void)state;
    fake_now_ms = 0;
    dg_cache_t *c = mk(1, 1 << 20, 1, 1 << 16, 0);
    dg_cache_key_t a, b;
    key_of(&a, 0, 1, "a");
    key_of(&b, 0, 1, "b");
    put(c, &a, "alpha");
    dg_cache_verdict_t v;
    dg_cache_entry_t *held;
    dg_cache_flight_t *f;
    assert_int_equal(dg_cache_lookup(c, &a, &v, &held, &f), DG_OK);
    assert_int_equal(v, DG_CACHE_HIT);
    put(c, &b, "beta"); /* evicts a while it is held */
    assert_int_equal(dg_cache_clear(c, -1), 1);
    size_t len;
    const char *body = dg_cache_entry_body(held, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(body, "alpha", 5); /* ASan would flag a use after free */
    assert_int_equal(dg_cache_entry_head(held)->status, 200);
    assert_int_equal(strlen(dg_cache_entry_etag(held)), DG_CACHE_ETAG_LEN - 1);
    dg_cache_free(c); /* the cache goes first; the held entry still lives */
    assert_memory_equal(dg_cache_entry_body(held, &len), "alpha", 5);
    dg_cache_entry_unref(held);
    dg_cache_key_free(&a);
    dg_cache_key_free(&b);
}

static void test_newer_version_drops_older(void **state)
{
    (void)state;
    dg_cache_t *c = mk(1, 1 << 20, 10, 1 << 16, 0);
    dg_cache_key_t v1, v2, other;
    key_of(&v1, 0, 1, "q");
    key_of(&v2, 0, 2, "q");
    key_of(&other, 0, 1, "other");
    put(c, &v1, "old");
    put(c, &other, "old2");
    /* Same text, newer data version: a miss, and the older entries are gone. */
    assert_false(hit(c, &v2, NULL));
    dg_cache_stats_t st;
    dg_cache_stats(c, 0, &st);
    assert_int_equal(st.entries, 0);
    put(c, &v2, "new");
    assert_true(hit(c, &v2, "new"));
    /* A leader that computed from an older version does not publish over the newer one. */
    dg_cache_verdict_t v;
    dg_cache_entry_t *e;
    dg_cache_flight_t *f;
    assert_int_equal(dg_cache_lookup(c, &other, &v, &e, &f), DG_OK);
    assert_int_equal(v, DG_CACHE_LEAD);
    dg_cache_flight_append(f, "x", 1);
    dg_cache_head_t h = {.status = 200};
    assert_false(dg_cache_flight_finish(c, f, &h, false, 0));
    dg_cache_key_free(&v1);
    dg_cache_key_free(&v2);
    dg_cache_key_free(&other);
    dg_cache_free(c);
}

static void test_oversized_not_stored(void **state)
{
    (void)state;
    dg_cache_t *c = mk(1, 1 << 20, 10, 8, 0);
    dg_cache_key_t k;
    key_of(&k, 0, 1, "big");
    dg_cache_verdict_t v;
    dg_cache_entry_t *e;
    dg_cache_flight_t *f;
    assert_int_equal(dg_cache_lookup(c, &k, &v, &e, &f), DG_OK);
    assert_true(dg_cache_flight_append(f, "12345678", 8));
    assert_false(dg_cache_flight_append(f, "9", 1));
    assert_false(dg_cache_flight_append(f, "", 0)); /* stays abandoned */
    dg_cache_head_t h = {.status = 200};
    assert_false(dg_cache_flight_finish(c, f, &h, false, 0));
    dg_cache_stats_t st;
    dg_cache_stats(c, 0, &st);
    assert_int_equal(st.too_big, 1);
    assert_int_equal(st.entries, 0);
    dg_cache_key_free(&k);
    dg_cache_free(c);
}

/* ---- single-flight ---- */

typedef struct follower {
    dg_cache_t *c;
    const dg_cache_key_t *k;
    dg_cache_verdict_t verdict;
    dg_cache_wait_t wait;
    char body[32];
    pthread_barrier_t *joined;
} follower;

static void *follow_main(void *arg)
{
    follower *w = arg;
    dg_cache_entry_t *e = NULL;
    dg_cache_flight_t *f = NULL;
    assert_int_equal(dg_cache_lookup(w->c, w->k, &w->verdict, &e, &f), DG_OK);
    pthread_barrier_wait(w->joined);
    if (w->verdict == DG_CACHE_FOLLOW) {
        w->wait = dg_cache_flight_wait(w->c, f, dg_now_ms() + 10000, 5, NULL, NULL, &e);
        if (w->wait == DG_CACHE_WAIT_ENTRY) {
            size_t len;
            const char *b = dg_cache_entry_body(e, &len);
            snprintf(w->body, sizeof w->body, "%.*s", (int)len, b);
            dg_cache_entry_unref(e);
        }
    }
    return NULL;
}

/* Starts n followers of k, all after the leader's lookup; the leader then ends with head (or
 * NULL) and is_retry. */
static void run_flight(dg_cache_t *c, const dg_cache_key_t *k, size_t n, const char *body,
                       const dg_cache_head_t *head, bool is_retry, follower *w)
{
    dg_cache_verdict_t v;
    dg_cache_entry_t *e;
    dg_cache_flight_t *f;
    assert_int_equal(dg_cache_lookup(c, k, &v, &e, &f), DG_OK);
    assert_int_equal(v, DG_CACHE_LEAD);
    pthread_barrier_t joined;
    pthread_barrier_init(&joined, NULL, (unsigned)n + 1);
    pthread_t t[16];
    for (size_t i = 0; i < n; i++) {
        w[i] = (follower){.c = c, .k = k, .joined = &joined};
        assert_int_equal(pthread_create(&t[i], NULL, follow_main, &w[i]), 0);
    }
    pthread_barrier_wait(&joined); /* every follower has looked up */
    dg_cache_flight_append(f, body, strlen(body));
    dg_cache_flight_finish(c, f, head, is_retry, 0);
    for (size_t i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
    }
    pthread_barrier_destroy(&joined);
}

static void test_single_flight_shares(void **state)
{
    (void)state;
    dg_cache_t *c = mk(1, 1 << 20, 10, 1 << 16, 0);
    dg_cache_key_t k;
    key_of(&k, 0, 1, "slow");
    follower w[16];
    dg_cache_head_t h = {.status = 200};
    run_flight(c, &k, 16, "shared", &h, false, w);
    for (size_t i = 0; i < 16; i++) {
        assert_int_equal(w[i].verdict, DG_CACHE_FOLLOW);
        assert_int_equal(w[i].wait, DG_CACHE_WAIT_ENTRY);
        assert_string_equal(w[i].body, "shared");
    }
    dg_cache_stats_t st;
    dg_cache_stats(c, 0, &st);
    assert_int_equal(st.misses, 17);
    assert_int_equal(st.stored, 1);
    dg_cache_key_free(&k);
    dg_cache_free(c);
}

static void test_single_flight_failure(void **state)
{
    (void)state;
    dg_cache_t *c = mk(1, 1 << 20, 10, 4, 0);
    dg_cache_key_t k;
    key_of(&k, 0, 1, "q");
    follower w[4];
    /* The leader failed (e.g. its client left): followers may try again. */
    run_flight(c, &k, 4, "x", NULL, true, w);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(w[i].wait, DG_CACHE_WAIT_RETRY);
    }
    /* The result is not storable (volatile): followers run their own. */
    run_flight(c, &k, 4, "x", NULL, false, w);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(w[i].wait, DG_CACHE_WAIT_OWN);
    }
    /* Too big for an entry (cap 4): the same. */
    dg_cache_head_t h = {.status = 200};
    run_flight(c, &k, 4, "too big", &h, false, w);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(w[i].wait, DG_CACHE_WAIT_OWN);
    }
    dg_cache_key_free(&k);
    dg_cache_free(c);
}

static bool gone_after_two(void *ctx)
{
    int *calls = ctx;
    return ++*calls >= 2;
}

static void test_follower_gone_and_timeout(void **state)
{
    (void)state;
    dg_cache_t *c = mk(1, 1 << 20, 10, 1 << 16, 0);
    dg_cache_key_t k;
    key_of(&k, 0, 1, "q");
    dg_cache_verdict_t v;
    dg_cache_entry_t *e;
    dg_cache_flight_t *lead, *f;
    assert_int_equal(dg_cache_lookup(c, &k, &v, &e, &lead), DG_OK);
    assert_int_equal(v, DG_CACHE_LEAD);
    assert_int_equal(dg_cache_lookup(c, &k, &v, &e, &f), DG_OK);
    assert_int_equal(v, DG_CACHE_FOLLOW);
    int calls = 0;
    assert_int_equal(dg_cache_flight_wait(c, f, dg_now_ms() + 10000, 1, gone_after_two, &calls, &e),
                     DG_CACHE_WAIT_GONE);
    assert_int_equal(dg_cache_lookup(c, &k, &v, &e, &f), DG_OK);
    assert_int_equal(v, DG_CACHE_FOLLOW);
    assert_int_equal(dg_cache_flight_wait(c, f, dg_now_ms() + 20, 5, NULL, NULL, &e),
                     DG_CACHE_WAIT_TIMEOUT);
    assert_null(e);
    dg_cache_flight_finish(c, lead, NULL, true, 0);
    dg_cache_key_free(&k);
    dg_cache_free(c);
}

/* ---- keys ---- */

static char *key_text(const char *req_json, uint64_t version, const char *scope)
{
    json_error_t jerr;
    json_t *req = json_loads(req_json, 0, &jerr);
    assert_non_null(req);
    dg_cache_key_t k;
    assert_int_equal(dg_cache_key_from_req(req, 0, version, scope, &k), DG_OK);
    json_decref(req);
    char *t = strdup(k.text);
    dg_cache_key_free(&k);
    return t;
}

static void test_key_canonical(void **state)
{
    (void)state;
    static const struct {
        const char *a, *b;
        bool is_same;
    } cases[] = {
        /* field order, ignored fields */
        {"{\"kind\":\"sql\",\"db\":\"m\",\"sql\":\"SELECT 1\",\"format\":\"json\"}",
         "{\"format\":\"json\",\"id\":\"r1\",\"timeout_ms\":5,\"queue_ms\":3,\"sql\":\"SELECT 1\","
         "\"db\":\"m\",\"kind\":\"sql\"}",
         true},
        /* whitespace outside quotes */
        {"{\"sql\":\"SELECT  a,\\n\\tb FROM t \"}", "{\"sql\":\" SELECT a, b FROM t\"}", true},
        /* whitespace inside quotes matters */
        {"{\"sql\":\"SELECT 'a  b'\"}", "{\"sql\":\"SELECT 'a b'\"}", false},
        {"{\"sql\":\"SELECT \\\"a  b\\\" FROM t\"}", "{\"sql\":\"SELECT \\\"a b\\\" FROM t\"}",
         false},
        /* a comment ends at a newline: not collapsed */
        {"{\"sql\":\"SELECT 1 -- c\\n, 2\"}", "{\"sql\":\"SELECT 1 -- c , 2\"}", false},
        /* dollar quoting and backslashes: not collapsed */
        {"{\"sql\":\"SELECT $$a  b$$\"}", "{\"sql\":\"SELECT $$a b$$\"}", false},
        {"{\"sql\":\"SELECT $t$a  b$t$\"}", "{\"sql\":\"SELECT $t$a b$t$\"}", false},
        {"{\"sql\":\"SELECT E'\\\\'  x'\"}", "{\"sql\":\"SELECT E'\\\\' x'\"}", false},
        /* parameters are not dollar quotes */
        {"{\"sql\":\"SELECT $1,  $name\"}", "{\"sql\":\"SELECT $1, $name\"}", true},
        /* values, format, encoding, caps, params and their nested order */
        {"{\"sql\":\"SELECT 1\",\"format\":\"json\"}", "{\"sql\":\"SELECT 1\",\"format\":\"csv\"}",
         false},
        {"{\"sql\":\"SELECT 1\",\"encoding\":\"zstd\"}",
         "{\"sql\":\"SELECT 1\",\"encoding\":\"gzip\"}", false},
        {"{\"sql\":\"SELECT 1\",\"max_rows\":1}", "{\"sql\":\"SELECT 1\",\"max_rows\":2}", false},
        {"{\"sql\":\"SELECT $1\",\"params\":[1]}", "{\"sql\":\"SELECT $1\",\"params\":[\"1\"]}",
         false},
        {"{\"name\":\"q\",\"params\":{\"a\":1,\"b\":2}}",
         "{\"name\":\"q\",\"params\":{\"b\":2,\"a\":1}}", true},
        {"{\"name\":\"q\",\"params\":{\"a\":1}}", "{\"name\":\"r\",\"params\":{\"a\":1}}", false},
        /* case is meaningful in SQL literals: never folded */
        {"{\"sql\":\"SELECT 'A'\"}", "{\"sql\":\"SELECT 'a'\"}", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *a = key_text(cases[i].a, 1, "analyst|*");
        char *b = key_text(cases[i].b, 1, "analyst|*");
        if ((strcmp(a, b) == 0) != cases[i].is_same) {
            fail_msg("case %zu: %s vs %s", i, a, b);
        }
        free(a);
        free(b);
    }
    /* Version and scope are part of the key. */
    char *a = key_text("{\"sql\":\"SELECT 1\"}", 1, "viewer|*");
    char *b = key_text("{\"sql\":\"SELECT 1\"}", 1, "admin|*");
    char *d = key_text("{\"sql\":\"SELECT 1\"}", 2, "viewer|*");
    assert_string_not_equal(a, b);
    assert_string_not_equal(a, d);
    free(a);
    free(b);
    free(d);
    dg_cache_key_t k;
    assert_int_equal(dg_cache_key_from_req(NULL, 0, 1, "", &k), DG_BAD_REQUEST);
    dg_cache_key_free(&k);
}

static void test_key_hash_and_etag(void **state)
{
    (void)state;
    dg_cache_key_t a, b;
    key_of(&a, 0, 1, "abc");
    key_of(&b, 0, 1, "abc");
    /* SHA-256("abc") begins ba7816bf 8f01cfea. */
    static const unsigned char want[8] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea};
    assert_memory_equal(a.hash, want, sizeof want);
    char ea[DG_CACHE_ETAG_LEN], eb[DG_CACHE_ETAG_LEN];
    dg_cache_key_etag(&a, ea);
    dg_cache_key_etag(&b, eb);
    assert_string_equal(ea, "\"ba7816bf8f01cfea414140de5dae2223\"");
    assert_string_equal(ea, eb);
    dg_cache_key_free(&a);
    dg_cache_key_free(&b);
}

static void test_normalize_edges(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"   ", ""},
        {" SELECT\t1 ", "SELECT 1"},
        {"SELECT 'unterminated  x", "SELECT 'unterminated  x"},
        {"SELECT ''''  , 'x'", "SELECT '''' , 'x'"},
        {"SELECT 1 /* c  */", "SELECT 1 /* c  */"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = dg_cache_sql_normalize(cases[i].in, strlen(cases[i].in), out);
        assert_int_equal(n, strlen(cases[i].out));
        assert_string_equal(out, cases[i].out);
    }
}

static void test_bad_options(void **state)
{
    (void)state;
    dg_cache_opts_t o = {.n_dbs = 0, .max_bytes = 1, .max_entries_per_db = 1, .max_entry_bytes = 1};
    dg_cache_t *c = (dg_cache_t *)1;
    assert_int_equal(dg_cache_new(&o, &c), DG_CONFIG);
    assert_null(c);
    dg_cache_free(NULL);
    dg_cache_entry_unref(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_after_store),
        cmocka_unit_test(test_lru_by_entries_per_db),
        cmocka_unit_test(test_lru_by_bytes),
        cmocka_unit_test(test_ttl_expiry),
        cmocka_unit_test(test_ttl_entry_bounded_by_default),
        cmocka_unit_test(test_ttl_sweeps_unused_tail),
        cmocka_unit_test(test_refcount_outlives_eviction),
        cmocka_unit_test(test_newer_version_drops_older),
        cmocka_unit_test(test_oversized_not_stored),
        cmocka_unit_test(test_single_flight_shares),
        cmocka_unit_test(test_single_flight_failure),
        cmocka_unit_test(test_follower_gone_and_timeout),
        cmocka_unit_test(test_key_canonical),
        cmocka_unit_test(test_key_hash_and_etag),
        cmocka_unit_test(test_normalize_edges),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
