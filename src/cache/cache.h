/* The result cache (DESIGN §6): final response bytes (encoded and compressed) keyed by what
 * decides them, in refcounted immutable entries, with an LRU bounded by entries per database and
 * by total bytes, a TTL backstop, and single-flight for identical concurrent misses.
 *
 * Never stale by construction: a key holds the database's data version, so a change (which
 * bumps the version) makes every older entry unreachable; the first lookup that names a newer
 * version also drops the older entries of that database at once to free their memory.
 *
 * The module knows neither HTTP nor DuckDB. Keys are built from the engine request object
 * (cache_key.c): a canonical JSON text of its semantic fields plus the version and the caller's
 * scope, hashed with SHA-256; the full text is compared on a hit, so a hash collision can never
 * serve the wrong bytes.
 *
 * Threads: a dg_cache_t may be used from any thread (one mutex guards the index, the LRU lists
 * and the flights; followers wait on a condition variable). An entry is immutable once
 * published and lives while anyone holds a reference. A flight is driven by its leader's thread
 * only; followers only wait on it. */
#ifndef DG_CACHE_H
#define DG_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/rc.h"

/* ---- keys --------------------------------------------------------------------------- */

#define DG_CACHE_HASH_LEN 32
/* A strong ETag: '"' + 32 hex digits (the first 16 bytes of the key hash) + '"' + NUL. */
#define DG_CACHE_ETAG_LEN 35

typedef struct dg_cache_key {
    int db;                                /* database index, 0..n_dbs-1 */
    uint64_t version;                      /* data version the response is computed from */
    unsigned char hash[DG_CACHE_HASH_LEN]; /* SHA-256 of text */
    char *text;                            /* owned canonical text (version and scope included) */
    size_t len;
} dg_cache_key_t;

/* Builds the key of an engine request object (borrowed): the canonical compact JSON of every
 * field of req except the ones that do not change the bytes (id, timeout_ms, queue_ms), with
 * keys sorted and "sql" normalised (dg_cache_sql_normalize), then the version and scope
 * (borrowed, e.g. "analyst|*"). DG_BAD_REQUEST when req is not an object, DG_NOMEM. On error
 * *out is empty (freeing it is still allowed). */
dg_rc_t dg_cache_key_from_req(const json_t *req, int db, uint64_t version, const char *scope,
                              dg_cache_key_t *out);
/* Builds a key from text (copied) as is. DG_NOMEM, DG_INTERNAL (hash failed). */
dg_rc_t dg_cache_key_init(dg_cache_key_t *k, int db, uint64_t version, const char *text,
                          size_t len);
/* Copies src into dst (the text is duplicated, the hash copied). DG_NOMEM (dst is then empty). */
dg_rc_t dg_cache_key_copy(dg_cache_key_t *dst, const dg_cache_key_t *src);
/* Releases k->text; k may be NULL or empty. */
void dg_cache_key_free(dg_cache_key_t *k);
/* The strong ETag of a key into out. */
void dg_cache_key_etag(const dg_cache_key_t *k, char out[DG_CACHE_ETAG_LEN]);
/* Normalises SQL text for the key: runs of ASCII whitespace outside quotes become one space and
 * the ends are trimmed, so reformatted SQL shares an entry. Text whose meaning could depend on
 * whitespace in ways this scanner does not follow (comments, dollar quoting, backslashes) is
 * only trimmed. Writes at most len bytes to out (room for len + 1, NUL-terminated) and returns
 * the new length. Pure. */
size_t dg_cache_sql_normalize(const char *sql, size_t len, char *out);

/* ---- the cache ---------------------------------------------------------------------- */

typedef int64_t (*dg_cache_clock_fn)(void *ctx);

typedef struct dg_cache_opts {
    size_t n_dbs;              /* databases (indexes 0..n_dbs-1) */
    uint64_t max_bytes;        /* total bytes of entries (bodies, keys, bookkeeping) */
    size_t max_entries_per_db; /* entries per database */
    uint64_t max_entry_bytes;  /* a body above it streams through uncached */
    int64_t ttl_ms;            /* default lifetime of an entry; 0 = none */
    dg_cache_clock_fn clock;   /* milliseconds (tests inject one); NULL = dg_now_ms */
    void *clock_ctx;
} dg_cache_opts_t;

typedef struct dg_cache dg_cache_t;

/* Creates a cache. DG_NOMEM; DG_CONFIG when n_dbs is 0 or a cap is 0. */
dg_rc_t dg_cache_new(const dg_cache_opts_t *opts, dg_cache_t **out);
/* Frees the cache and drops its references to entries (held entries stay valid until their
 * last unref). No flight may be running. NULL is allowed. */
void dg_cache_free(dg_cache_t *c);

/* The response head kept with the bytes. */
typedef struct dg_cache_head {
    int status;
    char content_type[128];
    char content_encoding[16]; /* "" = identity */
    uint64_t rows;
} dg_cache_head_t;

/* An immutable published response. */
typedef struct dg_cache_entry dg_cache_entry_t;

const dg_cache_head_t *dg_cache_entry_head(const dg_cache_entry_t *e);
/* The body bytes; valid while the caller holds its reference. */
const char *dg_cache_entry_body(const dg_cache_entry_t *e, size_t *out_len);
/* The entry's strong ETag (NUL-terminated). */
const char *dg_cache_entry_etag(const dg_cache_entry_t *e);
/* Age in seconds at time now_ms of the cache's clock (for the Age header). */
int64_t dg_cache_entry_age_s(const dg_cache_t *c, const dg_cache_entry_t *e);
/* Drops one reference; the last one frees the entry. NULL is allowed. */
void dg_cache_entry_unref(dg_cache_entry_t *e);

/* One miss being computed by a leader while followers wait for it. */
typedef struct dg_cache_flight dg_cache_flight_t;

typedef enum dg_cache_verdict {
    DG_CACHE_HIT = 0, /* *out_entry is a new reference */
    DG_CACHE_LEAD,    /* *out_flight: compute the response, tee it, finish the flight */
    DG_CACHE_FOLLOW,  /* *out_flight: an identical miss is running; wait for it */
} dg_cache_verdict_t;

/* Looks key up. A miss with no identical flight running makes the caller the leader (a new
 * flight); with one running, a follower. Counts a hit or a miss. key is borrowed (copied into
 * a new flight). A lookup naming a newer version than any seen for its database first drops
 * that database's older entries. DG_NOMEM (nothing is counted then). */
dg_rc_t dg_cache_lookup(dg_cache_t *c, const dg_cache_key_t *key, dg_cache_verdict_t *out,
                        dg_cache_entry_t **out_entry, dg_cache_flight_t **out_flight);

/* Leader: appends response bytes to the flight's builder. False once the body is over
 * max_entry_bytes: the builder is dropped (and later appends are ignored), and the flight will
 * end without an entry. */
bool dg_cache_flight_append(dg_cache_flight_t *f, const void *p, size_t len);
/* Leader: ends the flight and drops the leader's reference to it. With head (a complete,
 * storable response) and the builder intact, publishes the entry (evicting by LRU as the caps
 * require; replacing an entry of the same key) and hands it to the followers. head NULL: the
 * response failed or must not be stored; followers are told to run their own (is_retry: one of
 * them may lead again, e.g. the leader's client left; else they run uncached). ttl_ms > 0
 * shortens the default TTL for this entry (the smaller of the two applies; it never extends it).
 * Lookups and inserts also drop a few expired entries from the least recently used end. Returns
 * true when an entry was published. */
bool dg_cache_flight_finish(dg_cache_t *c, dg_cache_flight_t *f, const dg_cache_head_t *head,
                            bool is_retry, int64_t ttl_ms);

typedef enum dg_cache_wait {
    DG_CACHE_WAIT_ENTRY = 0, /* *out_entry is a new reference to the leader's result */
    DG_CACHE_WAIT_RETRY,     /* the leader failed: look up again (maybe lead) */
    DG_CACHE_WAIT_OWN,       /* the result is not storable (too big, volatile): run uncached */
    DG_CACHE_WAIT_TIMEOUT,   /* deadline passed */
    DG_CACHE_WAIT_GONE,      /* is_gone said the caller's client left */
} dg_cache_wait_t;

/* Follower: waits for the flight, up to deadline_ms of dg_now_ms, calling is_gone(ctx) (may be
 * NULL) every poll_ms. Drops the follower's reference to f in every case. */
dg_cache_wait_t dg_cache_flight_wait(dg_cache_t *c, dg_cache_flight_t *f, int64_t deadline_ms,
                                     int64_t poll_ms, bool (*is_gone)(void *ctx), void *ctx,
                                     dg_cache_entry_t **out_entry);

/* Counters and gauges of one database (db >= 0) or of all (db < 0). */
typedef struct dg_cache_stats {
    uint64_t entries, bytes;
    uint64_t hits, misses, evictions, expired, stored, too_big;
} dg_cache_stats_t;

void dg_cache_stats(dg_cache_t *c, int db, dg_cache_stats_t *out);
/* Drops every entry of database db (db < 0: all). Held entries stay valid for their holders.
 * Returns how many were dropped. */
size_t dg_cache_clear(dg_cache_t *c, int db);
/* The byte cap of one entry (opts.max_entry_bytes). */
uint64_t dg_cache_max_entry_bytes(const dg_cache_t *c);
/* The total byte cap (opts.max_bytes). */
uint64_t dg_cache_max_bytes(const dg_cache_t *c);
/* The entry cap of each database (opts.max_entries_per_db). */
size_t dg_cache_max_entries_per_db(const dg_cache_t *c);
/* The default lifetime of an entry in milliseconds (opts.ttl_ms; 0 = none). */
int64_t dg_cache_ttl_ms(const dg_cache_t *c);

#endif
