/* Concurrent-query places per principal (see limit.h).
 *
 * Two open-addressing tables with linear probing and backward-shift deletion (no tombstones,
 * so a long-running server never degrades): `keys` maps a principal hash to the number of
 * places it holds; `holders` maps a holder pointer to the principal hash it holds a place of.
 * A key with zero places is removed, so both tables hold at most as many entries as there are
 * places held, which is capped at cap / 2.
 *
 * Invariants: k == 0 marks an empty slot (hashes of 0 are mapped to 1); the sum of the keys'
 * counts equals the number of holders; everything is touched with `mu` held. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/dgtime.h"
#include "limit/limit.h"
#include "limit/limit_int.h"

#define MIN_CAP 64
#define MAX_CAP ((size_t)1 << 26)

typedef struct slot {
    uint64_t k; /* 0 = empty */
    uint64_t v;
} slot;

struct dg_limit_conc {
    pthread_mutex_t mu;
    size_t cap; /* power of two */
    unsigned bits;
    slot *keys;    /* principal hash -> places held */
    slot *holders; /* holder pointer -> principal hash */
    size_t n_holders;
    uint64_t k0, k1;
};

dg_rc_t dg_limit_conc_new(size_t capacity, dg_limit_conc_t **out, dg_error_t *err)
{
    *out = NULL;
    if (capacity > MAX_CAP) {
        return dg_error_set(err, DG_CONFIG, "concurrency table capacity too large");
    }
    size_t cap = MIN_CAP;
    unsigned bits = 6;
    while (cap < capacity) {
        cap <<= 1;
        bits++;
    }
    dg_limit_conc_t *c = calloc(1, sizeof *c);
    if (!c || !(c->keys = calloc(cap, sizeof *c->keys)) ||
        !(c->holders = calloc(cap, sizeof *c->holders))) {
        if (c) {
            free(c->keys);
        }
        free(c);
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    c->cap = cap;
    c->bits = bits;
    pthread_mutex_init(&c->mu, NULL);
    uint64_t key[2] = {0, 0};
    if (getrandom(key, sizeof key, GRND_NONBLOCK) != (ssize_t)sizeof key) {
        key[0] = (uint64_t)dg_wall_ms() * UINT64_C(0x9e3779b97f4a7c15);
        key[1] = (uint64_t)dg_now_us() ^ (uint64_t)(uintptr_t)c;
    }
    c->k0 = key[0];
    c->k1 = key[1];
    *out = c;
    return DG_OK;
}

void dg_limit_conc_free(dg_limit_conc_t *c)
{
    if (!c) {
        return;
    }
    pthread_mutex_destroy(&c->mu);
    free(c->keys);
    free(c->holders);
    free(c);
}

/* Fibonacci hashing: spreads pointers (aligned, so low bits are zero) over the table. */
static size_t home(const dg_limit_conc_t *c, uint64_t k)
{
    return (size_t)((k * UINT64_C(0x9e3779b97f4a7c15)) >> (64 - c->bits));
}

/* The slot holding k, or NULL. */
static slot *find(const dg_limit_conc_t *c, slot *t, uint64_t k)
{
    for (size_t i = home(c, k);; i = (i + 1) & (c->cap - 1)) {
        if (t[i].k == k) {
            return &t[i];
        }
        if (t[i].k == 0) {
            return NULL;
        }
    }
}

/* Inserts k (not present; the table has room). */
static slot *insert(const dg_limit_conc_t *c, slot *t, uint64_t k, uint64_t v)
{
    size_t i = home(c, k);
    while (t[i].k != 0) {
        i = (i + 1) & (c->cap - 1);
    }
    t[i] = (slot){k, v};
    return &t[i];
}

/* Removes slot e and shifts later members of its probe run back, so lookups stay correct. */
static void erase(const dg_limit_conc_t *c, slot *t, slot *e)
{
    size_t mask = c->cap - 1, i = (size_t)(e - t), j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (t[j].k == 0) {
            break;
        }
        size_t h = home(c, t[j].k);
        /* t[j] may move to i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (h > i && h <= j) : (h > i || h <= j);
        if (!stays) {
            t[i] = t[j];
            i = j;
        }
    }
    t[i] = (slot){0, 0};
}

static uint64_t key_hash(const dg_limit_conc_t *c, const char *key)
{
    uint64_t h = dg_limit__siphash(c->k0, c->k1, (const unsigned char *)key, strlen(key));
    return h ? h : 1;
}

dg_rc_t dg_limit_conc_enter(dg_limit_conc_t *c, const char *principal_key, uint32_t limit,
                            const void *holder)
{
    uint64_t h = key_hash(c, principal_key), hk = (uint64_t)(uintptr_t)holder;
    dg_rc_t rc = DG_OK;
    pthread_mutex_lock(&c->mu);
    if (find(c, c->holders, hk)) {
        goto out; /* already holds a place */
    }
    slot *k = find(c, c->keys, h);
    if (k && k->v >= limit) {
        rc = DG_TOO_MANY_CONCURRENT;
        goto out;
    }
    if (c->n_holders >= c->cap / 2) {
        rc = DG_OVERLOADED;
        goto out;
    }
    if (k) {
        k->v++;
    } else {
        insert(c, c->keys, h, 1);
    }
    insert(c, c->holders, hk, h);
    c->n_holders++;
out:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

bool dg_limit_conc_leave(dg_limit_conc_t *c, const void *holder)
{
    uint64_t hk = (uint64_t)(uintptr_t)holder;
    pthread_mutex_lock(&c->mu);
    slot *e = find(c, c->holders, hk);
    if (e) {
        uint64_t h = e->v;
        erase(c, c->holders, e);
        c->n_holders--;
        slot *k = find(c, c->keys, h);
        if (DG_ALWAYS(k != NULL) && --k->v == 0) {
            erase(c, c->keys, k);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return e != NULL;
}

uint32_t dg_limit_conc_count(dg_limit_conc_t *c, const char *principal_key)
{
    uint64_t h = key_hash(c, principal_key);
    pthread_mutex_lock(&c->mu);
    slot *k = find(c, c->keys, h);
    uint32_t n = k ? (uint32_t)k->v : 0;
    pthread_mutex_unlock(&c->mu);
    return n;
}
