/* The query log's ring buffer and flusher thread (see qlog.h for the contract).
 *
 * The ring is a fixed array of `capacity` entries used circularly: `head` is the oldest pending
 * row, `count` how many there are; entry (head + i) % capacity holds a larger sequence number
 * than the entry before it, because rows are appended in sequence order and only ever leave
 * from the head (acknowledged or dropped). One mutex guards everything; the JSON of a row is built
 * before the lock is taken, so recording holds it only for a pointer swap.
 *
 * The flusher wakes every flush_ms, when min(batch_rows, capacity / 2) rows are pending, or when
 * dg_qlog_sync asks; it copies a batch out under the lock, ships it without the lock and
 * acknowledges on success.
 * A failed ship is retried on the next tick; the rows stay pending meanwhile. */
#include "qlog/qlog.h"

#include <errno.h>
#include <pthread.h>
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
/* Bytes of `{"seq":N,` at most. */
#define SEQ_PREFIX_MAX 30

typedef struct entry {
    uint64_t seq;
    char *json; /* one row object, owned */
    size_t len;
} entry_t;

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

/* Serialises row into b as a JSON object without its sequence number. */
static dg_rc_t row_json(const dg_qlog_t *q, const dg_qlog_row_t *row, dg_buf_t *b)
{
    int64_t ts = row->ts_ms ? row->ts_ms : dg_wall_ms() - (int64_t)row->duration_ms;
    const char *qtext = row->query;
    size_t qlen = qtext ? utf8_cut(qtext, row->query_len, q->o.max_query_bytes) : 0;
    /* One allocation for the usual row: fixed part plus the text. */
    dg_rc_t rc = dg_buf_reserve(b, 320 + qlen + qlen / 8);
    char num[24];
    if (rc == DG_OK) {
        rc = dg_buf_puts(b, "{\"ts_ms\":");
    }
    if (rc == DG_OK) {
        rc = dg_buf_puts(b, u64_digits(ts > 0 ? (uint64_t)ts : 0, num));
    }
    if (rc == DG_OK) {
        rc = put_str(b, "request_id", row->request_id,
                     row->request_id ? strlen(row->request_id) : 0);
    }
    if (rc == DG_OK) {
        rc = put_str(b, "kind", row->kind, row->kind ? strlen(row->kind) : 0);
    }
    if (rc == DG_OK) {
        rc = put_str(b, "db", row->db, row->db ? strlen(row->db) : 0);
    }
    if (rc == DG_OK) {
        rc = put_str(b, "query", qtext, qlen);
    }
    if (rc == DG_OK) {
        rc = put_str(b, "principal", row->principal, row->principal ? strlen(row->principal) : 0);
    }
    if (rc == DG_OK) {
        rc = put_str(b, "role", row->role, row->role ? strlen(row->role) : 0);
    }
    if (rc == DG_OK) {
        rc = put_u64(b, "status", row->status > 0 ? (uint64_t)row->status : 0);
    }
    if (rc == DG_OK) {
        rc = put_str(b, "code", row->code, row->code ? strlen(row->code) : 0);
    }
    if (rc == DG_OK) {
        rc = put_u64(b, "rows", row->rows);
    }
    if (rc == DG_OK) {
        rc = put_u64(b, "bytes", row->bytes);
    }
    if (rc == DG_OK) {
        rc = put_ms(b, "queue_ms", row->queue_ms);
    }
    if (rc == DG_OK) {
        rc = put_ms(b, "duration_ms", row->duration_ms);
    }
    if (rc == DG_OK) {
        rc = put_str(b, "cache", row->cache, row->cache ? strlen(row->cache) : 0);
    }
    if (rc == DG_OK) {
        rc = dg_buf_putc(b, '}');
    }
    return rc;
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
    free(e->json);
    e->json = NULL;
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
    /* The JSON is built before the lock is taken; the sequence number is not part of it
     * (dg_qlog__peek writes it), so rows enter the ring in sequence order under the lock. */
    dg_buf_t b;
    dg_buf_init(&b, 0);
    size_t jlen = 0;
    char *json = row_json(q, row, &b) == DG_OK ? dg_buf_take(&b, &jlen) : NULL;
    dg_buf_free(&b);
    pthread_mutex_lock(&q->mu);
    uint64_t seq = q->next_seq++;
    q->recorded++;
    if (!json) {
        q->dropped++;
    } else {
        if (q->count == q->o.capacity) {
            /* Full: the oldest row goes (also when it is in flight: its ack is then a no-op). */
            pop_head(q);
            q->dropped++;
        }
        entry_t *e = at(q, q->count);
        e->seq = seq;
        e->json = json;
        e->len = jlen;
        q->count++;
        if (q->count >= q->wake_rows) {
            pthread_cond_signal(&q->wake);
        }
    }
    pthread_mutex_unlock(&q->mu);
}

size_t dg_qlog__peek(dg_qlog_t *q, size_t max_rows, size_t max_bytes, dg_buf_t *out,
                     uint64_t *out_last_seq)
{
    size_t n = 0;
    *out_last_seq = 0;
    pthread_mutex_lock(&q->mu);
    size_t total = 2;
    while (n < q->count && n < max_rows) {
        entry_t *e = at(q, n);
        size_t need = e->len + SEQ_PREFIX_MAX + 1;
        if (n > 0 && total + need > max_bytes) {
            break;
        }
        total += need;
        n++;
    }
    dg_rc_t rc = n ? dg_buf_reserve(out, total) : DG_OK;
    if (rc == DG_OK && n) {
        dg_buf_putc(out, '[');
        for (size_t i = 0; i < n; i++) {
            entry_t *e = at(q, i);
            if (i) {
                dg_buf_putc(out, ',');
            }
            /* e->json is "{...}": the sequence number goes first. */
            char num[24];
            dg_buf_puts(out, "{\"seq\":");
            dg_buf_puts(out, u64_digits(e->seq, num));
            dg_buf_putc(out, ',');
            dg_buf_append(out, e->json + 1, e->len - 1);
        }
        dg_buf_putc(out, ']');
        *out_last_seq = at(q, n - 1)->seq;
    } else {
        n = 0;
    }
    pthread_mutex_unlock(&q->mu);
    return n;
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
