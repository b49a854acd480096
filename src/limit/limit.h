/* Rate limits: token buckets per principal (any string key: "ip:203.0.113.7", "key:<id>"), and
 * the client address as trusted proxies report it.
 *
 * Every key has two buckets that must both admit a request: a burst bucket (capacity
 * burst_per_s, refilled at burst_per_s tokens per second) and a sustained bucket (capacity
 * per_min, refilled at per_min / 60 tokens per second). A request costs one token of each.
 *
 * Memory is fixed at dg_limit_new: a table of `capacity` entries (40 bytes each) split into
 * stripes, each with its own mutex, so concurrent requests for different keys rarely share a
 * lock. A key lives in one of DG_LIMIT_WAYS slots of its stripe; a slot whose buckets have
 * refilled to full is free for any key (its state is the same as a fresh bucket), and when all
 * ways are busy the least recently used one is taken. A flood of distinct keys therefore never
 * allocates; at worst it resets the buckets of other keys that share its slots. Keys are
 * stored as a keyed 64-bit hash (SipHash-2-4, random key per table), never as text.
 *
 * The parsers (addresses, CIDR lists, forwarded headers) take untrusted bytes, never trust a
 * NUL, and have a fuzz target (fuzz/fuzz_limit.c).
 *
 * Threads: dg_limit_check and dg_limit_stats may be called from any thread; dg_limit_new and
 * dg_limit_free from one thread while no check runs. A dg_limit_proxies_t is immutable after
 * parsing and may be read from any thread. */
#ifndef DG_LIMIT_H
#define DG_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rc.h"

/* ---- addresses and trusted proxies ------------------------------------------------- */

/* An IP address: family 4 uses b[0..4), family 6 all 16 bytes. IPv4-mapped IPv6 addresses
 * (::ffff:a.b.c.d) are stored as IPv4, so a dual-stack listener and an IPv4 CIDR agree. */
typedef struct dg_limit_addr {
    uint8_t family; /* 4 or 6 */
    uint8_t b[16];
} dg_limit_addr_t;

typedef struct dg_limit_cidr {
    dg_limit_addr_t addr; /* host bits cleared */
    unsigned prefix;      /* 0..32 (IPv4) or 0..128 (IPv6) */
} dg_limit_cidr_t;

#define DG_LIMIT_MAX_PROXIES 64

/* A parsed trusted_proxies list. Self-contained (no heap). */
typedef struct dg_limit_proxies {
    size_t n;
    dg_limit_cidr_t cidr[DG_LIMIT_MAX_PROXIES];
} dg_limit_proxies_t;

/* Parses one address of s[0..len): dotted IPv4 or textual IPv6 (inet_pton syntax, no zone,
 * no brackets, no port). False when malformed. */
bool dg_limit_addr_parse(const char *s, size_t len, dg_limit_addr_t *out);
/* Writes the canonical text of a (inet_ntop) into out (room for 46 bytes is enough). */
void dg_limit_addr_format(const dg_limit_addr_t *a, char *out, size_t cap);
/* Parses "ADDR" or "ADDR/PREFIX" (a bare address is a host route). Host bits set below the
 * prefix are an error, so a typo cannot silently trust a wider range than written. */
bool dg_limit_cidr_parse(const char *s, size_t len, dg_limit_cidr_t *out);
/* True when a lies inside c (an IPv4 address never matches an IPv6 CIDR and vice versa). */
bool dg_limit_cidr_match(const dg_limit_cidr_t *c, const dg_limit_addr_t *a);
/* Parses a comma-separated CIDR list (spaces allowed around items; empty text is an empty
 * list). DG_CONFIG (err names the bad item) on a malformed item, an empty item or more than
 * DG_LIMIT_MAX_PROXIES items. */
dg_rc_t dg_limit_proxies_parse(const char *s, size_t len, dg_limit_proxies_t *out, dg_error_t *err);
/* True when a is inside any CIDR of p. */
bool dg_limit_proxies_match(const dg_limit_proxies_t *p, const dg_limit_addr_t *a);

/* Parses one element of a forwarded-address header: "1.2.3.4", "1.2.3.4:5678", "2001:db8::1",
 * "[2001:db8::1]" or "[2001:db8::1]:5678", with surrounding spaces and quotes ignored. */
bool dg_limit_fwd_elem_parse(const char *s, size_t len, dg_limit_addr_t *out);

/* The client address of a request whose TCP peer is `peer`. When peer is inside p and fwd
 * (the value of the configured forwarded header, fwd_len bytes; NULL when absent) is present,
 * its comma-separated elements are walked from the right: trusted proxies are skipped and the
 * first address that is not one is the client. A malformed element stops the walk (the last
 * trusted hop is then the client, since nothing it forwarded can be believed); when every
 * element is a trusted proxy the left-most is the client. Otherwise the peer is the client.
 * Returns the chosen address in *out. */
void dg_limit_client_addr(const dg_limit_proxies_t *p, const dg_limit_addr_t *peer, const char *fwd,
                          size_t fwd_len, dg_limit_addr_t *out);
/* Writes the bucket key of a client address: "ip:1.2.3.4", and for IPv6 its /64
 * ("ip:2001:db8:1:2::/64"), because one host usually owns a whole /64. cap >= 64 always
 * fits. */
void dg_limit_addr_key(const dg_limit_addr_t *a, char *out, size_t cap);

/* ---- token buckets ----------------------------------------------------------------- */

#define DG_LIMIT_WAYS 8
#define DG_LIMIT_DEFAULT_CAPACITY 65536

/* Monotonic microseconds; injectable for tests. */
typedef int64_t (*dg_limit_clock_fn)(void *ctx);

typedef struct dg_limit_opts {
    uint32_t burst_per_s;    /* >= 1 */
    uint32_t per_min;        /* >= 1 */
    size_t capacity;         /* table entries; 0 = DG_LIMIT_DEFAULT_CAPACITY; rounded up to a power
                                of two, at least 64 */
    dg_limit_clock_fn clock; /* NULL = dg_now_us */
    void *clock_ctx;
} dg_limit_opts_t;

/* The outcome of one check, in the terms of the RateLimit-* response headers. The reported
 * limit is the bucket that binds (the one with fewer whole tokens left). */
typedef struct dg_limit_result {
    bool is_allowed;
    uint32_t limit;         /* capacity of the binding bucket */
    uint32_t window_s;      /* its window: 1 (burst) or 60 (sustained) */
    uint32_t remaining;     /* whole tokens left in it after this request */
    uint32_t reset_s;       /* seconds until it is full again (0 when full) */
    uint32_t retry_after_s; /* refused: seconds until both buckets hold a token (>= 1) */
} dg_limit_result_t;

typedef struct dg_limit_stats {
    size_t capacity;    /* table entries */
    size_t used;        /* entries holding a key (full-and-idle ones included until reused) */
    uint64_t evictions; /* entries taken from a key that was not yet full */
} dg_limit_stats_t;

typedef struct dg_limit dg_limit_t;

/* Creates a table (the only allocation it ever makes). DG_CONFIG (err says why) for zero
 * rates, DG_NOMEM. Free with dg_limit_free. */
dg_rc_t dg_limit_new(const dg_limit_opts_t *opts, dg_limit_t **out, dg_error_t *err);
/* NULL is allowed. */
void dg_limit_free(dg_limit_t *lim);
/* Charges one request to principal_key (any NUL-terminated text, borrowed) and says whether
 * it is admitted; *out (may be NULL) gets the header values. */
bool dg_limit_check(dg_limit_t *lim, const char *principal_key, dg_limit_result_t *out);
/* The same with this key's own rates (per-role limits); 0 = the table's rate from
 * dg_limit_new. A key charged with other rates than before keeps its tokens, capped at the new
 * capacities. */
bool dg_limit_check_rate(dg_limit_t *lim, const char *principal_key, uint32_t burst_per_s,
                         uint32_t per_min, dg_limit_result_t *out);
void dg_limit_stats(dg_limit_t *lim, dg_limit_stats_t *out);

/* ---- concurrent queries per principal ---------------------------------------------- */

/* Counts the queries each principal has running, so that a caller can be held to N at once.
 * A place is taken for a holder (an opaque pointer naming one request) and given back by
 * holder, so the code that ends a request need not know who made it. Memory is fixed at
 * dg_limit_conc_new: two open-addressing tables of `capacity` entries (16 bytes each); at most
 * capacity / 2 places are held at once (more get DG_OVERLOADED), which keeps probing short.
 * Keys are stored as a keyed 64-bit hash. Threads: enter/leave/count from any thread (one
 * mutex; a query costs far more than this lock). */
typedef struct dg_limit_conc dg_limit_conc_t;

/* capacity is rounded up to a power of two, at least 64. DG_CONFIG for a capacity over 2^26,
 * DG_NOMEM. */
dg_rc_t dg_limit_conc_new(size_t capacity, dg_limit_conc_t **out, dg_error_t *err);
/* NULL is allowed. */
void dg_limit_conc_free(dg_limit_conc_t *c);
/* Takes one of `limit` places of principal_key (borrowed text) for holder (non-NULL). DG_OK
 * (also when holder already holds a place: it still holds one), DG_TOO_MANY_CONCURRENT when
 * the key holds `limit` places already, DG_OVERLOADED when the table is full. */
dg_rc_t dg_limit_conc_enter(dg_limit_conc_t *c, const char *principal_key, uint32_t limit,
                            const void *holder);
/* Gives back holder's place; false when it holds none. */
bool dg_limit_conc_leave(dg_limit_conc_t *c, const void *holder);
/* Places principal_key holds now. */
uint32_t dg_limit_conc_count(dg_limit_conc_t *c, const char *principal_key);

#endif
