/* Token buckets in a fixed table (see limit.h for the model).
 *
 * Layout: `cap` entries split into `n_stripes` contiguous regions, each guarded by its own
 * mutex. A key's hash picks the stripe and a start slot; the key may live in any of the
 * DG_LIMIT_WAYS slots from there (wrapping inside the region). Each entry holds the hash, the
 * time of its last refill (also its last use), the two token counts and the two capacities it
 * was last charged with (per-role rates differ between keys), refilled lazily on the next
 * check: tokens = min(capacity, tokens + rate * elapsed).
 *
 * Invariants: entry.h == 0 means empty; 0 <= tokens <= capacity; an entry is only touched with
 * its stripe's mutex held. The table is allocated once in dg_limit_new. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/dgtime.h"
#include "limit/limit.h"
#include "limit/limit_int.h"

#define MAX_STRIPES 256
#define STRIPE_MIN_ENTRIES 64
#define EPS 1e-9

typedef struct entry {
    uint64_t h;
    int64_t t_us; /* last refill = last use */
    double burst; /* tokens */
    double sus;
    uint32_t burst_cap; /* tokens; refilled at burst_cap per second */
    uint32_t sus_cap;   /* tokens; refilled at sus_cap per minute */
} entry;

struct dg_limit {
    entry *t;
    size_t cap, n_stripes, region; /* region = cap / n_stripes entries per stripe */
    pthread_mutex_t *mu;
    uint32_t burst_per_s, per_min; /* the rates of dg_limit_check */
    dg_limit_clock_fn clock;
    void *clock_ctx;
    uint64_t k0, k1; /* SipHash key */
    atomic_uint_fast64_t evictions;
};

/* ---- SipHash-2-4 (Aumasson & Bernstein), keyed so clients cannot aim at a slot ------ */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

uint64_t dg_limit__siphash(uint64_t k0, uint64_t k1, const unsigned char *in, size_t len)
{
    uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575), v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = k0 ^ UINT64_C(0x6c7967656e657261), v3 = k1 ^ UINT64_C(0x7465646279746573);
    size_t whole = len - len % 8;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < len % 8; i++) {
        b |= (uint64_t)in[whole + i] << (8 * i);
    }
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- table ------------------------------------------------------------------------- */

static int64_t default_clock(void *ctx)
{
    (void)ctx;
    return dg_now_us();
}

dg_rc_t dg_limit_new(const dg_limit_opts_t *opts, dg_limit_t **out, dg_error_t *err)
{
    *out = NULL;
    if (opts->burst_per_s < 1 || opts->per_min < 1) {
        return dg_error_set(err, DG_CONFIG, "rate limits must be at least 1 request");
    }
    size_t want = opts->capacity ? opts->capacity : DG_LIMIT_DEFAULT_CAPACITY;
    if (want > ((size_t)1 << 30)) {
        return dg_error_set(err, DG_CONFIG, "rate limit table capacity too large");
    }
    size_t cap = STRIPE_MIN_ENTRIES;
    while (cap < want) {
        cap <<= 1;
    }
    dg_limit_t *lim = calloc(1, sizeof *lim);
    if (!lim) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    lim->cap = cap;
    lim->n_stripes =
        cap / STRIPE_MIN_ENTRIES > MAX_STRIPES ? MAX_STRIPES : cap / STRIPE_MIN_ENTRIES;
    lim->region = cap / lim->n_stripes;
    lim->t = calloc(cap, sizeof *lim->t);
    lim->mu = calloc(lim->n_stripes, sizeof *lim->mu);
    if (!lim->t || !lim->mu) {
        free(lim->t);
        free(lim->mu);
        free(lim);
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < lim->n_stripes; i++) {
        pthread_mutex_init(&lim->mu[i], NULL);
    }
    lim->burst_per_s = opts->burst_per_s;
    lim->per_min = opts->per_min;
    lim->clock = opts->clock ? opts->clock : default_clock;
    lim->clock_ctx = opts->clock_ctx;
    uint64_t key[2] = {0, 0};
    if (getrandom(key, sizeof key, GRND_NONBLOCK) != (ssize_t)sizeof key) {
        /* No entropy yet (early boot): a time-based key still varies between runs. */
        key[0] = (uint64_t)dg_wall_ms() * UINT64_C(0x9e3779b97f4a7c15);
        key[1] = (uint64_t)dg_now_us() ^ (uint64_t)(uintptr_t)lim;
    }
    lim->k0 = key[0];
    lim->k1 = key[1];
    atomic_init(&lim->evictions, 0);
    *out = lim;
    return DG_OK;
}

void dg_limit_free(dg_limit_t *lim)
{
    if (!lim) {
        return;
    }
    for (size_t i = 0; i < lim->n_stripes; i++) {
        pthread_mutex_destroy(&lim->mu[i]);
    }
    free(lim->mu);
    free(lim->t);
    free(lim);
}

/* Refill rates in tokens per microsecond. */
static double burst_rate(const entry *e)
{
    return (double)e->burst_cap / 1e6;
}

static double sus_rate(const entry *e)
{
    return (double)e->sus_cap / 60e6;
}

/* Refills e up to now. */
static void refill(entry *e, int64_t now)
{
    if (now > e->t_us) {
        double dt = (double)(now - e->t_us);
        e->burst = fmin(e->burst_cap, e->burst + dt * burst_rate(e));
        e->sus = fmin(e->sus_cap, e->sus + dt * sus_rate(e));
        e->t_us = now;
    }
}

/* True when e, refilled to now, would be full in both buckets: it is then the same as a fresh
 * bucket and its slot may be given to any key. */
static bool is_idle_full(const entry *e, int64_t now)
{
    double dt = now > e->t_us ? (double)(now - e->t_us) : 0.0;
    return e->burst + dt * burst_rate(e) >= e->burst_cap - EPS &&
           e->sus + dt * sus_rate(e) >= e->sus_cap - EPS;
}

/* Whole seconds (rounded up) for a bucket at `tokens` to reach `target` at `rate` per us. */
static uint32_t secs_until(double tokens, double target, double rate)
{
    if (tokens >= target - EPS) {
        return 0;
    }
    double s = ceil((target - tokens) / rate / 1e6 - EPS);
    return s < 1 ? 1 : s > 1e9 ? 1000000000u : (uint32_t)s;
}

bool dg_limit_check(dg_limit_t *lim, const char *principal_key, dg_limit_result_t *out)
{
    return dg_limit_check_rate(lim, principal_key, lim->burst_per_s, lim->per_min, out);
}

bool dg_limit_check_rate(dg_limit_t *lim, const char *principal_key, uint32_t burst_per_s,
                         uint32_t per_min, dg_limit_result_t *out)
{
    burst_per_s = burst_per_s ? burst_per_s : lim->burst_per_s;
    per_min = per_min ? per_min : lim->per_min;
    uint64_t h = dg_limit__siphash(lim->k0, lim->k1, (const unsigned char *)principal_key,
                                   strlen(principal_key));
    if (h == 0) {
        h = 1;
    }
    size_t stripe = (size_t)(h >> 40) % lim->n_stripes;
    size_t base = stripe * lim->region, start = (size_t)h & (lim->region - 1);
    int64_t now = lim->clock(lim->clock_ctx);

    pthread_mutex_lock(&lim->mu[stripe]);
    entry *e = NULL, *free_slot = NULL, *oldest = NULL;
    for (size_t j = 0; j < DG_LIMIT_WAYS; j++) {
        entry *c = &lim->t[base + ((start + j) & (lim->region - 1))];
        if (c->h == h) {
            e = c;
            break;
        }
        if (!free_slot && (c->h == 0 || is_idle_full(c, now))) {
            free_slot = c;
        }
        if (!oldest || c->t_us < oldest->t_us) {
            oldest = c;
        }
    }
    if (!e) {
        e = free_slot;
        if (!e) {
            e = oldest;
            atomic_fetch_add_explicit(&lim->evictions, 1, memory_order_relaxed);
        }
        *e = (entry){.h = h,
                     .t_us = now,
                     .burst = burst_per_s,
                     .sus = per_min,
                     .burst_cap = burst_per_s,
                     .sus_cap = per_min};
    }
    refill(e, now);
    if (e->burst_cap != burst_per_s || e->sus_cap != per_min) {
        /* The key's rates changed (its role did): keep what it has, within the new caps. */
        e->burst_cap = burst_per_s;
        e->sus_cap = per_min;
        e->burst = fmin(e->burst, burst_per_s);
        e->sus = fmin(e->sus, per_min);
    }
    if (e->t_us > now) {
        e->t_us = now; /* a clock that went back: restart the refill from here */
    }
    bool ok = e->burst >= 1.0 - EPS && e->sus >= 1.0 - EPS;
    if (ok) {
        e->burst = fmax(0.0, e->burst - 1.0);
        e->sus = fmax(0.0, e->sus - 1.0);
    }
    double burst = e->burst, sus = e->sus;
    entry caps = *e; /* its capacities and rates, for the report below */
    pthread_mutex_unlock(&lim->mu[stripe]);

    if (out) {
        double fb = floor(burst + EPS), fs = floor(sus + EPS);
        bool is_burst = fb <= fs;
        out->is_allowed = ok;
        out->limit = is_burst ? caps.burst_cap : caps.sus_cap;
        out->window_s = is_burst ? 1 : 60;
        out->remaining = (uint32_t)(is_burst ? fb : fs);
        out->reset_s = is_burst ? secs_until(burst, caps.burst_cap, burst_rate(&caps))
                                : secs_until(sus, caps.sus_cap, sus_rate(&caps));
        uint32_t rb = secs_until(burst, 1.0, burst_rate(&caps));
        uint32_t rs = secs_until(sus, 1.0, sus_rate(&caps));
        uint32_t retry = rb > rs ? rb : rs;
        out->retry_after_s = ok ? 0 : retry < 1 ? 1 : retry;
    }
    return ok;
}

void dg_limit_stats(dg_limit_t *lim, dg_limit_stats_t *out)
{
    out->capacity = lim->cap;
    out->used = 0;
    for (size_t s = 0; s < lim->n_stripes; s++) {
        pthread_mutex_lock(&lim->mu[s]);
        for (size_t i = 0; i < lim->region; i++) {
            out->used += lim->t[s * lim->region + i].h != 0;
        }
        pthread_mutex_unlock(&lim->mu[s]);
    }
    out->evictions = atomic_load_explicit(&lim->evictions, memory_order_relaxed);
}
