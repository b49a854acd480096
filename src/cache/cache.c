/* The result cache store: a hash index over published entries, two LRU lists (one over every
 * entry for the byte cap, one per database for the entry cap), the TTL backstop and the
 * single-flight table.
 *
 * Invariants (under c->mu): an entry is in the index iff it is on both LRU lists; the cache
 * holds one reference to every indexed entry; per-database and total counts and bytes match the
 * lists; a flight is on c->flights iff its state is RUNNING. Entries are immutable once
 * published, so readers use them without the lock while they hold a reference.
 *
 * Threads: any; one mutex, one condition variable (monotonic clock) for followers. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/cache.h"
#include "core/buf.h"
#include "core/dgtime.h"

struct dg_cache_entry {
    atomic_long refs;
    dg_cache_entry_t *hnext;         /* index chain */
    dg_cache_entry_t *prev, *next;   /* global LRU: c->head is the most recently used */
    dg_cache_entry_t *dprev, *dnext; /* LRU of its database */
    int db;
    uint64_t version;
    unsigned char hash[DG_CACHE_HASH_LEN];
    char *key;
    size_t key_len;
    dg_cache_head_t head;
    char etag[DG_CACHE_ETAG_LEN];
    char *body;
    size_t body_len;
    uint64_t cost;                  /* what the entry counts against max_bytes */
    int64_t created_ms, expires_ms; /* expires_ms 0 = never */
};

typedef enum { F_RUNNING = 0, F_ENTRY, F_RETRY, F_OWN } flight_state;

struct dg_cache_flight {
    dg_cache_flight_t *next; /* c->flights while running */
    int refs;                /* leader + followers; under c->mu */
    flight_state state;
    dg_cache_key_t key;
    dg_cache_entry_t *entry; /* F_ENTRY: a reference owned by the flight */
    /* Leader only, no lock needed: the builder of the body. */
    dg_buf_t body;
    bool is_over;
    uint64_t max;
};

typedef struct db_state {
    dg_cache_entry_t *head, *tail;
    uint64_t max_version;
    uint64_t entries, bytes;
    uint64_t hits, misses, evictions, expired, stored, too_big;
} db_state;

struct dg_cache {
    dg_cache_opts_t o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    dg_cache_entry_t **buckets;
    size_t n_buckets; /* power of two */
    dg_cache_entry_t *head, *tail;
    uint64_t entries, bytes;
    db_state *dbs;
    dg_cache_flight_t *flights;
};

/* Bookkeeping charged per entry on top of the body and key bytes. */
#define ENTRY_OVERHEAD ((uint64_t)sizeof(dg_cache_entry_t) + 64)

static int64_t now_ms(const dg_cache_t *c)
{
    return c->o.clock ? c->o.clock(c->o.clock_ctx) : dg_now_ms();
}

static size_t bucket_of(const dg_cache_t *c, const unsigned char *hash)
{
    uint64_t h;
    memcpy(&h, hash, sizeof h);
    return (size_t)h & (c->n_buckets - 1);
}

static bool key_equal(const dg_cache_entry_t *e, const dg_cache_key_t *k)
{
    return e->db == k->db && e->version == k->version && e->key_len == k->len &&
           memcmp(e->hash, k->hash, DG_CACHE_HASH_LEN) == 0 && memcmp(e->key, k->text, k->len) == 0;
}

static void entry_free(dg_cache_entry_t *e)
{
    free(e->key);
    free(e->body);
    free(e);
}

void dg_cache_entry_unref(dg_cache_entry_t *e)
{
    if (e && atomic_fetch_sub(&e->refs, 1) == 1) {
        entry_free(e);
    }
}

const dg_cache_head_t *dg_cache_entry_head(const dg_cache_entry_t *e)
{
    return &e->head;
}

const char *dg_cache_entry_body(const dg_cache_entry_t *e, size_t *out_len)
{
    *out_len = e->body_len;
    return e->body ? e->body : "";
}

const char *dg_cache_entry_etag(const dg_cache_entry_t *e)
{
    return e->etag;
}

int64_t dg_cache_entry_age_s(const dg_cache_t *c, const dg_cache_entry_t *e)
{
    int64_t age = now_ms(c) - e->created_ms;
    return age > 0 ? age / 1000 : 0;
}

/* ---- index and lists (under mu) ---------------------------------------------------------- */

static void lru_unlink(dg_cache_t *c, dg_cache_entry_t *e)
{
    db_state *d = &c->dbs[e->db];
    *(e->prev ? &e->prev->next : &c->head) = e->next;
    *(e->next ? &e->next->prev : &c->tail) = e->prev;
    *(e->dprev ? &e->dprev->dnext : &d->head) = e->dnext;
    *(e->dnext ? &e->dnext->dprev : &d->tail) = e->dprev;
    e->prev = e->next = e->dprev = e->dnext = NULL;
}

static void lru_push_front(dg_cache_t *c, dg_cache_entry_t *e)
{
    db_state *d = &c->dbs[e->db];
    e->prev = NULL;
    e->next = c->head;
    *(c->head ? &c->head->prev : &c->tail) = e;
    c->head = e;
    e->dprev = NULL;
    e->dnext = d->head;
    *(d->head ? &d->head->dprev : &d->tail) = e;
    d->head = e;
}

/* Removes e from the index and the lists and drops the cache's reference. */
static void entry_remove(dg_cache_t *c, dg_cache_entry_t *e)
{
    dg_cache_entry_t **pp = &c->buckets[bucket_of(c, e->hash)];
    while (*pp && *pp != e) {
        pp = &(*pp)->hnext;
    }
    if (DG_ALWAYS(*pp)) {
        *pp = e->hnext;
    }
    e->hnext = NULL;
    lru_unlink(c, e);
    db_state *d = &c->dbs[e->db];
    d->entries--;
    d->bytes -= e->cost;
    c->entries--;
    c->bytes -= e->cost;
    dg_cache_entry_unref(e);
}

static dg_cache_entry_t *index_find(dg_cache_t *c, const dg_cache_key_t *k)
{
    for (dg_cache_entry_t *e = c->buckets[bucket_of(c, k->hash)]; e; e = e->hnext) {
        if (key_equal(e, k)) {
            return e;
        }
    }
    return NULL;
}

/* Doubles the index when it is fuller than one entry per bucket; a failed grow only means
 * longer chains. */
static void index_maybe_grow(dg_cache_t *c)
{
    if (c->entries < c->n_buckets || c->n_buckets >= ((size_t)1 << 24)) {
        return;
    }
    size_t nb = c->n_buckets * 2;
    dg_cache_entry_t **b = calloc(nb, sizeof *b);
    if (!b) {
        return;
    }
    size_t old_n = c->n_buckets;
    dg_cache_entry_t **old = c->buckets;
    c->buckets = b;
    c->n_buckets = nb;
    for (size_t i = 0; i < old_n; i++) {
        dg_cache_entry_t *e = old[i];
        while (e) {
            dg_cache_entry_t *next = e->hnext;
            size_t j = bucket_of(c, e->hash);
            e->hnext = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(old);
}

/* Drops the entries of database db computed from versions older than v. */
static void drop_older(dg_cache_t *c, int db, uint64_t v)
{
    dg_cache_entry_t *e = c->dbs[db].head;
    while (e) {
        dg_cache_entry_t *next = e->dnext;
        if (e->version < v) {
            entry_remove(c, e);
        }
        e = next;
    }
}

/* Entries past their TTL removed from the least recently used end per lookup or insert: bounded
 * work, yet an entry nobody asks for again does not keep its memory until the caps push it out. */
#define SWEEP_MAX 8

/* Removes expired entries from the global LRU tail (at most SWEEP_MAX), stopping at the first
 * live one, never touching keep (an entry just inserted). */
static void sweep_expired(dg_cache_t *c, int64_t now, const dg_cache_entry_t *keep)
{
    for (int i = 0; i < SWEEP_MAX; i++) {
        dg_cache_entry_t *e = c->tail;
        if (!e || e == keep || !e->expires_ms || now < e->expires_ms) {
            return;
        }
        c->dbs[e->db].expired++;
        entry_remove(c, e);
    }
}

/* ---- lifecycle --------------------------------------------------------------------------- */

dg_rc_t dg_cache_new(const dg_cache_opts_t *opts, dg_cache_t **out)
{
    *out = NULL;
    if (opts->n_dbs == 0 || opts->max_bytes == 0 || opts->max_entries_per_db == 0 ||
        opts->max_entry_bytes == 0) {
        return DG_CONFIG;
    }
    dg_cache_t *c = calloc(1, sizeof *c);
    if (!c) {
        return DG_NOMEM;
    }
    c->o = *opts;
    c->n_buckets = 256;
    c->buckets = calloc(c->n_buckets, sizeof *c->buckets);
    c->dbs = calloc(opts->n_dbs, sizeof *c->dbs);
    pthread_condattr_t ca;
    bool has_ca = pthread_condattr_init(&ca) == 0;
    bool ok = c->buckets && c->dbs && has_ca &&
              pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
              pthread_mutex_init(&c->mu, NULL) == 0;
    if (ok && pthread_cond_init(&c->cv, &ca) != 0) {
        pthread_mutex_destroy(&c->mu);
        ok = false;
    }
    if (has_ca) {
        pthread_condattr_destroy(&ca);
    }
    if (!ok) {
        free(c->buckets);
        free(c->dbs);
        free(c);
        return DG_NOMEM;
    }
    *out = c;
    return DG_OK;
}

void dg_cache_free(dg_cache_t *c)
{
    if (!c) {
        return;
    }
    dg_cache_clear(c, -1);
    /* A flight left running would be a leader bug; its memory goes with its leader. */
    (void)DG_ALWAYS(c->flights == NULL);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c->buckets);
    free(c->dbs);
    free(c);
}

uint64_t dg_cache_max_entry_bytes(const dg_cache_t *c)
{
    return c->o.max_entry_bytes;
}

uint64_t dg_cache_max_bytes(const dg_cache_t *c)
{
    return c->o.max_bytes;
}

size_t dg_cache_max_entries_per_db(const dg_cache_t *c)
{
    return c->o.max_entries_per_db;
}

int64_t dg_cache_ttl_ms(const dg_cache_t *c)
{
    return c->o.ttl_ms;
}

/* ---- lookup and single-flight -------------------------------------------------------------- */

static dg_cache_flight_t *flight_find(dg_cache_t *c, const dg_cache_key_t *k)
{
    for (dg_cache_flight_t *f = c->flights; f; f = f->next) {
        if (f->key.db == k->db && f->key.version == k->version && f->key.len == k->len &&
            memcmp(f->key.hash, k->hash, DG_CACHE_HASH_LEN) == 0 &&
            memcmp(f->key.text, k->text, k->len) == 0) {
            return f;
        }
    }
    return NULL;
}

/* Drops one reference to f (under mu); the last frees it. */
static void flight_unref_locked(dg_cache_flight_t *f)
{
    if (--f->refs > 0) {
        return;
    }
    dg_cache_entry_unref(f->entry);
    dg_cache_key_free(&f->key);
    dg_buf_free(&f->body);
    free(f);
}

dg_rc_t dg_cache_lookup(dg_cache_t *c, const dg_cache_key_t *key, dg_cache_verdict_t *out,
                        dg_cache_entry_t **out_entry, dg_cache_flight_t **out_flight)
{
    *out_entry = NULL;
    *out_flight = NULL;
    if (DG_NEVER(key->db < 0 || (size_t)key->db >= c->o.n_dbs)) {
        return DG_INTERNAL;
    }
    int64_t now = now_ms(c);
    pthread_mutex_lock(&c->mu);
    db_state *d = &c->dbs[key->db];
    if (key->version > d->max_version) {
        d->max_version = key->version;
        drop_older(c, key->db, key->version);
    }
    sweep_expired(c, now, NULL);
    dg_cache_entry_t *e = index_find(c, key);
    if (e && e->expires_ms && now >= e->expires_ms) {
        d->expired++;
        entry_remove(c, e);
        e = NULL;
    }
    if (e) {
        lru_unlink(c, e);
        lru_push_front(c, e);
        atomic_fetch_add(&e->refs, 1);
        d->hits++;
        pthread_mutex_unlock(&c->mu);
        *out_entry = e;
        *out = DG_CACHE_HIT;
        return DG_OK;
    }
    dg_cache_flight_t *f = flight_find(c, key);
    if (f) {
        f->refs++;
        d->misses++;
        pthread_mutex_unlock(&c->mu);
        *out_flight = f;
        *out = DG_CACHE_FOLLOW;
        return DG_OK;
    }
    /* A new leader: allocated under the lock (two small allocations, misses only), so no
     * second identical flight can start meanwhile. */
    f = calloc(1, sizeof *f);
    if (!f || dg_cache_key_copy(&f->key, key) != DG_OK) {
        pthread_mutex_unlock(&c->mu);
        free(f);
        return DG_NOMEM;
    }
    d->misses++;
    f->refs = 1;
    f->state = F_RUNNING;
    f->max = c->o.max_entry_bytes;
    dg_buf_init(&f->body, (size_t)(f->max < SIZE_MAX ? f->max : SIZE_MAX));
    f->next = c->flights;
    c->flights = f;
    pthread_mutex_unlock(&c->mu);
    *out_flight = f;
    *out = DG_CACHE_LEAD;
    return DG_OK;
}

bool dg_cache_flight_append(dg_cache_flight_t *f, const void *p, size_t len)
{
    if (f->is_over) {
        return false;
    }
    if (f->body.len + len > f->max || dg_buf_append(&f->body, p, len) != DG_OK) {
        f->is_over = true;
        dg_buf_free(&f->body);
        return false;
    }
    return true;
}

/* A new entry from a finished flight (outside the lock); NULL on OOM. */
static dg_cache_entry_t *entry_build(dg_cache_t *c, dg_cache_flight_t *f,
                                     const dg_cache_head_t *head, int64_t ttl_ms)
{
    dg_cache_entry_t *e = calloc(1, sizeof *e);
    char *key = e ? malloc(f->key.len + 1) : NULL;
    if (!key) {
        free(e);
        return NULL;
    }
    memcpy(key, f->key.text, f->key.len);
    key[f->key.len] = '\0';
    atomic_init(&e->refs, 1);
    e->db = f->key.db;
    e->version = f->key.version;
    memcpy(e->hash, f->key.hash, DG_CACHE_HASH_LEN);
    e->key = key;
    e->key_len = f->key.len;
    e->head = *head;
    dg_cache_key_etag(&f->key, e->etag);
    e->body = dg_buf_take(&f->body, &e->body_len);
    /* The builder grew by doubling: give back the slack before the entry lives on. */
    char *tight = e->body ? realloc(e->body, e->body_len + 1) : NULL;
    if (tight) {
        e->body = tight;
    }
    e->cost = e->body_len + e->key_len + ENTRY_OVERHEAD;
    e->created_ms = now_ms(c);
    /* A per-entry TTL (a named query's @cache_ttl) may only shorten the server's backstop. */
    int64_t ttl = c->o.ttl_ms;
    if (ttl_ms > 0 && (ttl <= 0 || ttl_ms < ttl)) {
        ttl = ttl_ms;
    }
    e->expires_ms = ttl > 0 ? e->created_ms + ttl : 0;
    return e;
}

/* Inserts e (under mu), replacing an entry of the same key, then evicts by the caps. */
static void entry_insert(dg_cache_t *c, dg_cache_entry_t *e)
{
    db_state *d = &c->dbs[e->db];
    dg_cache_key_t k = {.db = e->db, .version = e->version, .text = e->key, .len = e->key_len};
    memcpy(k.hash, e->hash, DG_CACHE_HASH_LEN);
    dg_cache_entry_t *old = index_find(c, &k);
    if (old) {
        entry_remove(c, old);
    }
    size_t b = bucket_of(c, e->hash);
    e->hnext = c->buckets[b];
    c->buckets[b] = e;
    lru_push_front(c, e);
    d->entries++;
    d->bytes += e->cost;
    d->stored++;
    c->entries++;
    c->bytes += e->cost;
    while (d->entries > c->o.max_entries_per_db && d->tail != e) {
        d->evictions++;
        entry_remove(c, d->tail);
    }
    while (c->bytes > c->o.max_bytes && c->tail && c->tail != e) {
        c->dbs[c->tail->db].evictions++;
        entry_remove(c, c->tail);
    }
    sweep_expired(c, e->created_ms, e);
    index_maybe_grow(c);
}

bool dg_cache_flight_finish(dg_cache_t *c, dg_cache_flight_t *f, const dg_cache_head_t *head,
                            bool is_retry, int64_t ttl_ms)
{
    dg_cache_entry_t *e = NULL;
    bool is_over = f->is_over;
    if (head && !is_over) {
        e = entry_build(c, f, head, ttl_ms);
    }
    pthread_mutex_lock(&c->mu);
    db_state *d = &c->dbs[f->key.db];
    if (is_over) {
        d->too_big++;
    }
    /* Off the running list first, so no new follower joins a finished flight. */
    dg_cache_flight_t **pp = &c->flights;
    while (*pp && *pp != f) {
        pp = &(*pp)->next;
    }
    if (DG_ALWAYS(*pp)) {
        *pp = f->next;
    }
    f->next = NULL;
    bool is_published = false;
    if (e && e->cost <= c->o.max_bytes && e->version >= d->max_version) {
        entry_insert(c, e); /* the cache's reference */
        atomic_fetch_add(&e->refs, 1);
        f->entry = e; /* the flight's reference, for the followers */
        f->state = F_ENTRY;
        is_published = true;
    } else {
        /* Not storable (too big, older than a known change, out of memory): followers run their
         * own, uncached unless the leader merely failed. */
        dg_cache_entry_unref(e);
        f->state = !head && is_retry && !is_over ? F_RETRY : F_OWN;
    }
    pthread_cond_broadcast(&c->cv);
    flight_unref_locked(f);
    pthread_mutex_unlock(&c->mu);
    return is_published;
}

dg_cache_wait_t dg_cache_flight_wait(dg_cache_t *c, dg_cache_flight_t *f, int64_t deadline_ms,
                                     int64_t poll_ms, bool (*is_gone)(void *ctx), void *ctx,
                                     dg_cache_entry_t **out_entry)
{
    *out_entry = NULL;
    if (poll_ms <= 0) {
        poll_ms = 50;
    }
    dg_cache_wait_t w = DG_CACHE_WAIT_TIMEOUT;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (f->state == F_ENTRY) {
            atomic_fetch_add(&f->entry->refs, 1);
            *out_entry = f->entry;
            w = DG_CACHE_WAIT_ENTRY;
            break;
        }
        if (f->state == F_RETRY || f->state == F_OWN) {
            w = f->state == F_RETRY ? DG_CACHE_WAIT_RETRY : DG_CACHE_WAIT_OWN;
            break;
        }
        int64_t now = dg_now_ms();
        if (now >= deadline_ms) {
            w = DG_CACHE_WAIT_TIMEOUT;
            break;
        }
        if (is_gone) {
            /* The check may block briefly (a poll on a socket): not under the lock. */
            pthread_mutex_unlock(&c->mu);
            bool gone = is_gone(ctx);
            pthread_mutex_lock(&c->mu);
            if (gone) {
                w = DG_CACHE_WAIT_GONE;
                break;
            }
            if (f->state != F_RUNNING) {
                continue;
            }
        }
        int64_t until = deadline_ms - now < poll_ms ? deadline_ms : now + poll_ms;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t wait_ms = until - dg_now_ms();
        if (wait_ms > 0) {
            ts.tv_sec += (time_t)(wait_ms / 1000);
            ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            int rc = pthread_cond_timedwait(&c->cv, &c->mu, &ts);
            (void)rc; /* ETIMEDOUT or a wake-up: the loop re-checks the state either way */
        }
    }
    flight_unref_locked(f);
    pthread_mutex_unlock(&c->mu);
    return w;
}

/* ---- stats and clearing ------------------------------------------------------------------ */

void dg_cache_stats(dg_cache_t *c, int db, dg_cache_stats_t *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->o.n_dbs; i++) {
        if (db >= 0 && (size_t)db != i) {
            continue;
        }
        const db_state *d = &c->dbs[i];
        out->entries += d->entries;
        out->bytes += d->bytes;
        out->hits += d->hits;
        out->misses += d->misses;
        out->evictions += d->evictions;
        out->expired += d->expired;
        out->stored += d->stored;
        out->too_big += d->too_big;
    }
    pthread_mutex_unlock(&c->mu);
}

size_t dg_cache_clear(dg_cache_t *c, int db)
{
    size_t n = 0;
    pthread_mutex_lock(&c->mu);
    dg_cache_entry_t *e = c->head;
    while (e) {
        dg_cache_entry_t *next = e->next;
        if (db < 0 || e->db == db) {
            entry_remove(c, e);
            n++;
        }
        e = next;
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}
