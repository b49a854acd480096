/* The query log's ring buffer and flusher thread (see qlog.h for the contract).
 *
 * The ring is a fixed array of `capacity` entries used circularly: `head` is the oldest pending
 * row, `count` how many there are; entry (head + i) % capacity holds a larger sequence number
 * than the entry before it, because rows are appended in sequence order and only ever leave
 * from the head (acknowledged or dropped). One mutex guards the ring.
 *
 * The hot path is dg_qlog_record, once per query request: it copies the row's strings into one
 * allocation (a compact, immutable record) before taking the lock, and holds the lock only to
 * link it. Records are refcounted: the ring holds one reference, and dg_qlog__peek takes one
 * per record of its batch under the lock and formats the JSON after releasing it, so a row
 * dropped meanwhile (ring full) stays readable until the flusher lets go.
 *
 * The flusher wakes every flush_ms, when min(batch_rows, capacity / 2) rows are pending, or when
 * dg_qlog_sync asks; it formats a batch, ships it without the lock and acknowledges on success.
 * A failed ship is retried on the next tick; the rows stay pending meanwhile. */
#include "qlog/qlog.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dgtime.h"
#include "core/log.h"

#define MOD "qlog"
#define DEFAULT_FLUSH_MS 1000
#define DEFAULT_BATCH_ROWS 1000
#define DEFAULT_BATCH_BYTES ((size_t)512 << 10)
/* Shipping attempts when stopping (each bounded by the ship callback's own deadline). */
#define FINAL_ATTEMPTS 3
/* Retry delay after a refused batch while someone waits in dg_qlog_sync. */
#define SYNC_RETRY_MS 100

/* The strings of a record, in the order of the row's JSON. */
enum {
    S_RID,
    S_KIND,
    S_DB,
    S_QUERY,
    S_PRINCIPAL,
    S_ROLE,
    S_CODE,
    S_CACHE,
    S_PHASH,
    S_CLIENT,
    N_STR
};

/* One recorded row: immutable after dg_qlog_record built it; freed with its last reference. */
typedef struct rec {
    atomic_int refs;
    bool has_engine_ms;
    int status;
    int64_t ts_ms;
    uint64_t rows, bytes;
    double queue_ms, duration_ms, execute_ms, encode_ms;
    const char *s[N_STR]; /* into text (NUL-terminated), NULL when absent */
    size_t n[N_STR];
    char text[];
} rec_t;

typedef struct entry {
    uint64_t seq;
    rec_t *rec; /* one reference, owned */
} entry_t;

static void rec_release(rec_t *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
        free(r);
    }
}

struct dg_qlog {
    dg_qlog_opts_t o;
    pthread_mutex_t mu;
    pthread_cond_t wake;  /* the flusher waits here */
    pthread_cond_t acked; /* dg_qlog_sync waits here */
    entry_t *ring;
    size_t head, count;
    uint64_t next_seq; /* sequence number of the next recorded row */
    uint64_t recorded, dropped, shipped;
    size_t wake_rows; /* pending rows that wake the flusher before its tick */
    bool want_flush, stop;
    int n_syncing; /* threads waiting in dg_qlog_sync */
    pthread_t thread;
    bool has_thread;
};

/* The last complete UTF-8 character boundary at or before cut in s[0..len). */
static size_t utf8_cut(const char *s, size_t len, size_t cut)
{
    if (cut >= len) {
        return len;
    }
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) {
        cut--;
    }
    return cut;
}

/* Decimal digits of v into the end of out[24]; returns the first digit. printf would be the
 * largest cost of a row (recording runs once per request). */
static char *u64_digits(uint64_t v, char out[24])
{
    char *p = out + 23;
    *p = '\0';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

/* Appends ,"key": (key is a plain literal: nothing to escape). */
static dg_rc_t put_key(dg_buf_t *b, const char *key)
{
    dg_rc_t rc = dg_buf_puts(b, ",\"");
    if (rc == DG_OK) {
        rc = dg_buf_puts(b, key);
    }
    return rc == DG_OK ? dg_buf_puts(b, "\":") : rc;
}

/* Appends ,"key": and the string (or null). */
static dg_rc_t put_str(dg_buf_t *b, const char *key, const char *v, size_t len)
{
    dg_rc_t rc = put_key(b, key);
    if (rc != DG_OK) {
        return rc;
    }
    return v ? dg_buf_json_str(b, v, len) : dg_buf_puts(b, "null");
}

/* Appends ,"key":N. */
static dg_rc_t put_u64(dg_buf_t *b, const char *key, uint64_t v)
{
    char num[24];
    dg_rc_t rc = put_key(b, key);
    return rc == DG_OK ? dg_buf_puts(b, u64_digits(v, num)) : rc;
}

/* Appends ,"key":M.UUU for a non-negative millisecond value (microsecond precision). */
static dg_rc_t put_ms(dg_buf_t *b, const char *key, double ms)
{
    uint64_t us = ms > 0 && ms < 1e15 ? (uint64_t)(ms * 1000.0 + 0.5) : 0;
    char frac[5] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
                    (char)('0' + us % 10), '\0'};
    dg_rc_t rc = put_u64(b, key, us / 1000);
    return rc == DG_OK ? dg_buf_puts(b, frac) : rc;
}

static const char *const str_keys[N_STR] = {
    [S_RID] = "request_id",      [S_KIND] = "kind",         [S_DB] = "db",     [S_QUERY] = "query",
    [S_PRINCIPAL] = "principal", [S_ROLE] = "role",         [S_CODE] = "code", [S_CACHE] = "cache",
    [S_PHASH] = "params_hash",   [S_CLIENT] = "client_addr"};

/* Serialises a record into b as one JSON object, its sequence number first. Runs on the
 * flusher thread, without the ring's lock. */
static dg_rc_t rec_json(const rec_t *r, uint64_t seq, dg_buf_t *b)
{
    char num[24];
    dg_rc_t rc = dg_buf_reserve(b, 400 + r->n[S_QUERY] + r->n[S_QUERY] / 8);
    if (rc == DG_OK) {
        rc = dg_buf_puts(b, "{\"seq\":");
    }
    if (rc == DG_OK) {
        rc = dg_buf_puts(b, u64_digits(seq, num));
    }
    if (rc == DG_OK) {
        rc = put_u64(b, "ts_ms", r->ts_ms > 0 ? (uint64_t)r->ts_ms : 0);
    }
    for (int i = S_RID; rc == DG_OK && i <= S_CODE; i++) {
        if (i == S_CODE) {
            rc = put_u64(b, "status", r->status > 0 ? (uint64_t)r->status : 0);
        }
        if (rc == DG_OK) {
            rc = put_str(b, str_keys[i], r->s[i], r->n[i]);
        }
    }
    if (rc == DG_OK) {
        rc = put_u64(b, "rows", r->rows);
    }
    if (rc == DG_OK) {
        rc = put_u64(b, "bytes", r->bytes);
    }
    if (rc == DG_OK) {
        rc = put_ms(b, "queue_ms", r->queue_ms);
    }
    if (rc == DG_OK) {
        rc = put_ms(b, "duration_ms", r->duration_ms);
    }
    if (rc == DG_OK) {
        rc = r->has_engine_ms ? put_ms(b, "execute_ms", r->execute_ms)
                              : put_str(b, "execute_ms", NULL, 0);
    }
    if (rc == DG_OK) {
        rc = r->has_engine_ms ? put_ms(b, "encode_ms", r->encode_ms)
                              : put_str(b, "encode_ms", NULL, 0);
    }
    for (int i = S_CACHE; rc == DG_OK && i < N_STR; i++) {
        rc = put_str(b, str_keys[i], r->s[i], r->n[i]);
    }
    if (rc == DG_OK) {
        rc = dg_buf_putc(b, '}');
    }
    return rc;
}

/* Copies row into one allocation (the query cut to max_query_bytes); NULL when out of memory. */
static rec_t *rec_new(const dg_qlog_t *q, const dg_qlog_row_t *row)
{
    const char *src[N_STR] = {
        [S_RID] = row->request_id,    [S_KIND] = row->kind,           [S_DB] = row->db,
        [S_QUERY] = row->query,       [S_PRINCIPAL] = row->principal, [S_ROLE] = row->role,
        [S_CODE] = row->code,         [S_CACHE] = row->cache,         [S_PHASH] = row->params_hash,
        [S_CLIENT] = row->client_addr};
    size_t n[N_STR], total = 0;
    for (int i = 0; i < N_STR; i++) {
        n[i] = !src[i]        ? 0
               : i == S_QUERY ? utf8_cut(src[i], row->query_len, q->o.max_query_bytes)
                              : strlen(src[i]);
        total += src[i] ? n[i] + 1 : 0;
    }
    rec_t *r = malloc(sizeof *r + total);
    if (!r) {
        return NULL;
    }
    atomic_init(&r->refs, 1);
    r->has_engine_ms = row->has_engine_ms;
    r->status = row->status;
    r->ts_ms = row->ts_ms ? row->ts_ms : dg_wall_ms() - (int64_t)row->duration_ms;
    r->rows = row->rows;
    r->bytes = row->bytes;
    r->queue_ms = row->queue_ms;
    r->duration_ms = row->duration_ms;
    r->execute_ms = row->execute_ms;
    r->encode_ms = row->encode_ms;
    char *p = r->text;
    for (int i = 0; i < N_STR; i++) {
        r->n[i] = n[i];
        r->s[i] = NULL;
        if (src[i]) {
            memcpy(p, src[i], n[i]);
            p[n[i]] = '\0';
            r->s[i] = p;
            p += n[i] + 1;
        }
    }
    return r;
}

static void slow_line(const dg_qlog_t *q, const dg_qlog_row_t *row)
{
    if (q->o.slow_ms <= 0 || row->duration_ms < (double)q->o.slow_ms) {
        return;
    }
    /* Never the parameters; not the SQL either (it is in the query log, for admins). */
    dg_log(DG_LOG_WARN, "query", row->request_id,
           "slow query kind=%s db=%s ms=%.3f rows=%llu "
           "status=%d code=%s",
           row->kind ? row->kind : "-", row->db ? row->db : "-", row->duration_ms,
           (unsigned long long)row->rows, row->status, row->code ? row->code : "-");
}

static entry_t *at(dg_qlog_t *q, size_t i)
{
    return &q->ring[(q->head + i) % q->o.capacity];
}

/* Drops the head entry. Called with the lock held. */
static void pop_head(dg_qlog_t *q)
{
    entry_t *e = at(q, 0);
    rec_release(e->rec);
    e->rec = NULL;
    q->head = (q->head + 1) % q->o.capacity;
    q->count--;
}

void dg_qlog_record(dg_qlog_t *q, const dg_qlog_row_t *row)
{
    if (!q) {
        return;
    }
    slow_line(q, row);
    if (!q->o.is_on) {
        return;
    }
    /* The copy is made before the lock is taken; the sequence number is assigned under it, so
     * rows enter the ring in sequence order. */
    rec_t *rec = rec_new(q, row);
    rec_t *dropped = NULL;
    pthread_mutex_lock(&q->mu);
    uint64_t seq = q->next_seq++;
    q->recorded++;
    if (!rec) {
        q->dropped++;
    } else {
        if (q->count == q->o.capacity) {
            /* Full: the oldest row goes (also when it is in flight: its ack is then a no-op). It
             * is released after the lock, as freeing need not happen under it. */
            entry_t *h = at(q, 0);
            dropped = h->rec;
            h->rec = NULL;
            q->head = (q->head + 1) % q->o.capacity;
            q->count--;
            q->dropped++;
        }
        entry_t *e = at(q, q->count);
        e->seq = seq;
        e->rec = rec;
        q->count++;
        if (q->count >= q->wake_rows) {
            pthread_cond_signal(&q->wake);
        }
    }
    pthread_mutex_unlock(&q->mu);
    rec_release(dropped);
}

size_t dg_qlog__peek(dg_qlog_t *q, size_t max_rows, size_t max_bytes, dg_buf_t *out,
                     uint64_t *out_last_seq)
{
    *out_last_seq = 0;
    size_t cap = max_rows < q->o.capacity ? max_rows : q->o.capacity;
    entry_t *take = q->ring && cap ? malloc(cap * sizeof *take) : NULL;
    if (!take) {
        return 0;
    }
    /* Under the lock: only references to the oldest records. */
    size_t n = 0;
    pthread_mutex_lock(&q->mu);
    while (n < q->count && n < cap) {
        take[n] = *at(q, n);
        atomic_fetch_add(&take[n].rec->refs, 1);
        n++;
    }
    pthread_mutex_unlock(&q->mu);
    /* Without it: the JSON, row by row, until the byte cap (at least one row). */
    size_t start = out->len, used = 0;
    dg_rc_t rc = n ? dg_buf_putc(out, '[') : DG_OK;
    for (size_t i = 0; rc == DG_OK && i < n; i++) {
        size_t before = out->len;
        if (i) {
            rc = dg_buf_putc(out, ',');
        }
        if (rc == DG_OK) {
            rc = rec_json(take[i].rec, take[i].seq, out);
        }
        if (rc == DG_OK && i > 0 && out->len + 1 - start > max_bytes) {
            out->len = before;
            break;
        }
        used = rc == DG_OK ? i + 1 : used;
    }
    if (rc == DG_OK && used) {
        rc = dg_buf_putc(out, ']');
    }
    if (rc != DG_OK || used == 0) {
        used = 0;
        out->len = start;
    } else {
        *out_last_seq = take[used - 1].seq;
    }
    if (out->p) {
        out->p[out->len] = '\0';
    }
    for (size_t i = 0; i < n; i++) {
        rec_release(take[i].rec);
    }
    free(take);
    return used;
}

/* Removes every row with a sequence number <= last_seq, counting them as shipped or dropped. */
static void take_through(dg_qlog_t *q, uint64_t last_seq, bool is_shipped)
{
    pthread_mutex_lock(&q->mu);
    while (q->count > 0 && at(q, 0)->seq <= last_seq) {
        pop_head(q);
        if (is_shipped) {
            q->shipped++;
        } else {
            q->dropped++;
        }
    }
    pthread_cond_broadcast(&q->acked);
    pthread_mutex_unlock(&q->mu);
}

void dg_qlog__ack(dg_qlog_t *q, uint64_t last_seq)
{
    take_through(q, last_seq, true);
}

/* Ships one batch; true when it was confirmed (or there was nothing to ship). */
static bool ship_once(dg_qlog_t *q, bool *out_more)
{
    dg_buf_t b;
    dg_buf_init(&b, 0);
    uint64_t last = 0;
    size_t n = dg_qlog__peek(q, q->o.batch_rows, q->o.batch_bytes, &b, &last);
    bool ok = true;
    *out_more = false;
    if (n > 0) {
        dg_rc_t rc = q->o.ship(q->o.ship_ctx, b.p, b.len, last);
        /* A batch the store calls malformed would be refused forever: drop it, so the rows
         * after it are not held up (rows are built here, so this means a bug). */
        if (rc == DG_BAD_REQUEST) {
            DG_LOGE(MOD, "query log batch refused as malformed; dropped rows=%zu", n);
            take_through(q, last, false);
            rc = DG_OK;
        } else if (rc == DG_OK) {
            dg_qlog__ack(q, last);
        }
        ok = rc == DG_OK;
        if (ok) {
            pthread_mutex_lock(&q->mu);
            *out_more = q->count > 0;
            pthread_mutex_unlock(&q->mu);
        } else {
            /* Rows remain: the flusher waits a tick before the retry. Without this a busy
             * engine (no free slot for the log) turned the flusher into a spin that formatted
             * the same batch over and over. */
            *out_more = true;
            DG_LOGD(MOD, "query log batch not shipped rows=%zu rc=%s; retrying", n, dg_rc_name(rc));
        }
    }
    dg_buf_free(&b);
    return ok;
}

static struct timespec abs_in(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void *flusher_main(void *arg)
{
    dg_qlog_t *q = arg;
    pthread_mutex_lock(&q->mu);
    while (!q->stop) {
        if (!q->want_flush && q->count < q->wake_rows) {
            struct timespec until = abs_in(q->o.flush_ms);
            while (!q->stop && !q->want_flush && q->count < q->wake_rows) {
                if (pthread_cond_timedwait(&q->wake, &q->mu, &until) == ETIMEDOUT) {
                    break;
                }
            }
        }
        if (q->stop) {
            break;
        }
        q->want_flush = false;
        pthread_mutex_unlock(&q->mu);
        bool more = true;
        /* Drain what is there, batch after batch, unless the store refuses. */
        while (more && ship_once(q, &more)) {
        }
        pthread_mutex_lock(&q->mu);
        if (more) {
            /* The store refused: wait a tick before retrying, a short one while a reader waits
             * in dg_qlog_sync for these rows. */
            int64_t wait =
                q->n_syncing > 0 && q->o.flush_ms > SYNC_RETRY_MS ? SYNC_RETRY_MS : q->o.flush_ms;
            struct timespec until = abs_in(wait);
            while (!q->stop && !q->want_flush &&
                   pthread_cond_timedwait(&q->wake, &q->mu, &until) != ETIMEDOUT) {
            }
        }
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

dg_rc_t dg_qlog_new(const dg_qlog_opts_t *opts, dg_qlog_t **out)
{
    *out = NULL;
    if (opts->is_on && opts->capacity == 0) {
        return DG_CONFIG;
    }
    dg_qlog_t *q = calloc(1, sizeof *q);
    if (!q) {
        return DG_NOMEM;
    }
    q->o = *opts;
    if (q->o.flush_ms <= 0) {
        q->o.flush_ms = DEFAULT_FLUSH_MS;
    }
    if (q->o.batch_rows == 0) {
        q->o.batch_rows = DEFAULT_BATCH_ROWS;
    }
    if (q->o.batch_bytes == 0) {
        q->o.batch_bytes = DEFAULT_BATCH_BYTES;
    }
    q->next_seq = 1;
    /* Wake before the ring is half full, so a small ring is shipped before it overflows. */
    q->wake_rows = q->o.capacity / 2 < q->o.batch_rows ? q->o.capacity / 2 : q->o.batch_rows;
    if (q->wake_rows == 0) {
        q->wake_rows = 1;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->wake, &ca);
    pthread_cond_init(&q->acked, &ca);
    pthread_condattr_destroy(&ca);
    if (q->o.is_on) {
        q->ring = calloc(q->o.capacity, sizeof *q->ring);
        if (!q->ring) {
            dg_qlog_free(q);
            return DG_NOMEM;
        }
        if (q->o.ship) {
            if (pthread_create(&q->thread, NULL, flusher_main, q) != 0) {
                dg_qlog_free(q);
                return DG_INTERNAL;
            }
            q->has_thread = true;
        }
    }
    *out = q;
    return DG_OK;
}

void dg_qlog_free(dg_qlog_t *q)
{
    if (!q) {
        return;
    }
    if (q->has_thread) {
        pthread_mutex_lock(&q->mu);
        q->stop = true;
        pthread_cond_broadcast(&q->wake);
        pthread_mutex_unlock(&q->mu);
        pthread_join(q->thread, NULL);
        bool more = true;
        for (int i = 0; i < FINAL_ATTEMPTS && more; i++) {
            if (!ship_once(q, &more)) {
                more = true;
            }
        }
    }
    if (q->count > 0) {
        DG_LOGW(MOD, "query log rows not shipped at stop rows=%zu", q->count);
    }
    while (q->ring && q->count > 0) {
        pop_head(q);
    }
    free(q->ring);
    pthread_cond_destroy(&q->wake);
    pthread_cond_destroy(&q->acked);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

bool dg_qlog_sync(dg_qlog_t *q, int64_t timeout_ms)
{
    if (!q || !q->o.is_on) {
        return true;
    }
    pthread_mutex_lock(&q->mu);
    uint64_t target = q->next_seq - 1;
    q->want_flush = true;
    q->n_syncing++;
    pthread_cond_signal(&q->wake);
    struct timespec until = abs_in(timeout_ms);
    bool done;
    while (!(done = q->count == 0 || at(q, 0)->seq > target)) {
        if (!q->has_thread || pthread_cond_timedwait(&q->acked, &q->mu, &until) == ETIMEDOUT) {
            done = q->count == 0 || at(q, 0)->seq > target;
            break;
        }
    }
    q->n_syncing--;
    pthread_mutex_unlock(&q->mu);
    return done;
}

void dg_qlog_stats(dg_qlog_t *q, dg_qlog_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!q) {
        return;
    }
    pthread_mutex_lock(&q->mu);
    out->recorded = q->recorded;
    out->dropped = q->dropped;
    out->shipped = q->shipped;
    out->pending = q->count;
    pthread_mutex_unlock(&q->mu);
}
