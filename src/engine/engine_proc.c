/* The engine process (`duckgate engine`): the only process that runs DuckDB.
 *
 * Started by the pool (engine_pool.c) with the control socket on DG_ENGINE__CTL_FD and one
 * socket per slot from DG_ENGINE__SLOT_FD0 on. It reads an init JSON from the control socket,
 * opens every database read-only, answers {"ok":true} (or {"ok":false,"error":...}) and then
 * serves requests: one thread per slot runs REQ -> HEAD, DATA*, END | ERROR (engine/frame.h).
 * It exits when the control socket closes (the front died or is stopping); PR_SET_PDEATHSIG
 * set before exec covers a front that dies without closing it.
 *
 * Threads and invariants:
 * - A slot thread owns its socket for reading while the slot is idle and for writing always.
 * - The watcher thread reads a slot's socket only while the slot is busy and only while it holds
 *   the slot mutex. The slot thread clears `busy` under that mutex before it writes END/ERROR,
 *   and the front sends the next REQ only after END/ERROR, so the watcher can only ever see
 *   CANCEL frames: it never consumes a REQ.
 * - The watcher touches a cursor only under the slot mutex, and the slot thread unpublishes the
 *   cursor under that mutex before freeing it, so an interrupt never hits a freed cursor.
 * - A blocking frame write is the backpressure: the next chunk is fetched only after the bytes
 *   of the previous one were written to the socket. */
#include "engine/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dgtime.h"
#include "core/ioutil.h"
#include "core/log.h"
#include "codec/codec.h"
#include "db/db.h"
#include "enc/arrow_ipc.h"
#include "enc/enc.h"
#include "engine/engine_dbs.h"
#include "engine/engine_import.h"
#include "engine/engine_int.h"
#include "engine/engine_qlog.h"
#include "db/db_qlog.h"

#define MOD "engine"
/* Streaming formats flush after every batch; a batch's bytes are capped so a pathological row
 * cannot grow the buffer without bound. */
#define STREAM_BUF_CAP ((size_t)256 << 20)
/* Cap of a single JSON document when the request did not say (the front always does). */
#define DEFAULT_MAX_BYTES ((size_t)64 << 20)
/* The watcher wakes at least this often to check deadlines. */
#define WATCH_TICK_MS 50
/* An interrupt is repeated this often until the slot returns (DuckDB may miss one that lands
 * between two tasks). */
#define INTERRUPT_REPEAT_MS 100

/* What one request uses of a served database: the instance it holds a reference to
 * (engine_dbs.h), taken by acquire_db and given back by release_db. The fields mirror the
 * reference so the run_* functions read them directly. */
typedef struct served_db {
    const char *name;
    dg_db_t *db;
    const char *export_dir; /* absolute, private: where Parquet exports are written; NULL = none */
    bool is_read_write; /* opened READ_WRITE (read_write_databases; engine 0 only) */
    dg_engine__dbref_t ref;
} served_db_t;

typedef struct eproc eproc_t;

typedef struct eslot {
    eproc_t *proc;
    int idx;
    int fd;
    pthread_t thread;
    pthread_mutex_t mu;        /* guards the fields below */
    bool busy;                 /* a REQ is being served; the watcher may read CANCELs */
    bool peer_gone;            /* the front closed this slot */
    dg_db_cursor_t *cursor;    /* the running query's cursor, or NULL */
    int64_t deadline_ms;       /* monotonic; < 0 = none */
    dg_rc_t stop_reason;       /* DG_OK, or DG_TIMEOUT/DG_CANCELLED once the query must stop */
    _Atomic int start_stop;    /* stop_reason mirrored for dg_db_query_start (no cursor yet) */
    int64_t last_interrupt_ms; /* when the cursor was last interrupted */
    /* Slot-thread only, reset per request: admin SQL started a statement that may change data
     * (reported as "changes":true in HEAD/END/ERROR), and the read-only database an admin
     * request ran on (its write refusals point to build-and-swap), or NULL. */
    bool changes;
    const char *admin_ro_db;
    /* Slot-thread only, reset per request: the result depends only on the data (the sandbox
     * walk found no volatile function or sampling; the catalog), reported as
     * "deterministic":true in HEAD and END so the front may cache it (docs/cache.md). */
    bool is_deterministic;
} eslot_t;

struct eproc {
    int index;
    dg_engine__dbs_t *dbs; /* the served databases and their instances (engine_dbs.h) */
    size_t n_dbs;
    eslot_t *slots;
    int n_slots;
};

/* ---- small helpers ---------------------------------------------------------------------- */

static bool parse_int(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s) {
        return false;
    }
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = v;
    return true;
}

static double ms_since(int64_t t0_us, int64_t t1_us)
{
    return (double)(t1_us - t0_us) / 1000.0;
}

/* ---- frames out ------------------------------------------------------------------------- */

/* Marks the slot idle. Called right before END/ERROR is written (see the file header). */
static void slot_set_idle(eslot_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->busy = false;
    s->deadline_ms = -1;
    pthread_mutex_unlock(&s->mu);
}

static bool slot_peer_gone(eslot_t *s)
{
    pthread_mutex_lock(&s->mu);
    bool gone = s->peer_gone;
    pthread_mutex_unlock(&s->mu);
    return gone;
}

static dg_rc_t send_frame(eslot_t *s, dg_frame_type_t type, const char *p, size_t len)
{
    dg_rc_t rc = dg_frame_write(s->fd, type, p, (uint32_t)len);
    if (rc != DG_OK) {
        /* The front closed the slot (it restarts or stops): nobody will read the rest. */
        pthread_mutex_lock(&s->mu);
        s->peer_gone = true;
        pthread_mutex_unlock(&s->mu);
    }
    return rc;
}

/* Sends out's bytes as DATA frames of at most DG_FRAME_MAX_PAYLOAD and empties out. */
static dg_rc_t send_data(eslot_t *s, dg_buf_t *out, uint64_t *bytes_sent)
{
    size_t off = 0;
    while (off < out->len) {
        size_t n = out->len - off;
        if (n > DG_FRAME_MAX_PAYLOAD) {
            n = DG_FRAME_MAX_PAYLOAD;
        }
        dg_rc_t rc = send_frame(s, DG_FRAME_DATA, out->p + off, n);
        if (rc != DG_OK) {
            return rc;
        }
        off += n;
    }
    *bytes_sent += off;
    dg_buf_reset(out);
    return DG_OK;
}

static void send_error(eslot_t *s, dg_rc_t code, const char *message)
{
    dg_buf_t b;
    dg_buf_init(&b, 4096);
    if (!message || !*message) {
        message = dg_rc_message(code);
    }
    char ro_msg[400];
    if (s->admin_ro_db && code == DG_NOT_READ_ONLY && strstr(message, "read-only")) {
        /* DuckDB refused a write on a READ_ONLY instance: say how such a database changes. */
        code = DG_READ_ONLY_DATABASE;
        snprintf(ro_msg, sizeof ro_msg,
                 "database '%.64s' is served read-only; change it by building a new file and "
                 "swapping it in: duckgate build %.64s.duckdb PIPELINE_DIR (docs/pipeline.md), "
                 "or serve it read-write (read_write_databases, docs/admin.md)",
                 s->admin_ro_db, s->admin_ro_db);
        message = ro_msg;
    }
    /* The message is bounded by dg_error_t (512 bytes), so this cannot pass the cap. */
    dg_buf_puts(&b, "{\"code\":");
    dg_buf_json_str(&b, dg_rc_name(code), strlen(dg_rc_name(code)));
    dg_buf_puts(&b, ",\"message\":");
    dg_buf_json_str(&b, message, strlen(message));
    dg_buf_puts(&b, s->changes ? ",\"changes\":true}" : "}");
    slot_set_idle(s);
    send_frame(s, DG_FRAME_ERROR, b.p ? b.p : "{}", b.p ? b.len : 2);
    dg_buf_free(&b);
}

typedef struct timings {
    int64_t recv_us;   /* REQ receipt */
    double queue_ms;   /* from the front: time spent waiting for a slot */
    double execute_ms; /* inside DuckDB (start + fetches) */
    double encode_ms;  /* inside the encoder */
    double compress_ms;/* inside the codec */
} timings_t;

static dg_rc_t send_head(eslot_t *s, const char *content_type, const char *encoding,
                         const timings_t *t)
{
    dg_buf_t b;
    dg_buf_init(&b, 4096);
    dg_buf_puts(&b, "{\"status\":200,\"content_type\":");
    dg_buf_json_str(&b, content_type, strlen(content_type));
    if (encoding) {
        dg_buf_puts(&b, ",\"content_encoding\":");
        dg_buf_json_str(&b, encoding, strlen(encoding));
    }
    dg_rc_t rc = dg_buf_printf(&b,
                               ",\"queue_ms\":%.3f,\"execute_ms\":%.3f,\"encode_ms\":%.3f,"
                               "\"compress_ms\":%.3f%s}",
                               t->queue_ms, t->execute_ms, t->encode_ms, t->compress_ms,
                               s->changes ? ",\"changes\":true" : "");
    if (rc == DG_OK && s->is_deterministic) {
        /* Inside the object: replace its closing brace. */
        b.len--;
        rc = dg_buf_puts(&b, ",\"deterministic\":true}");
    }
    if (rc == DG_OK) {
        rc = send_frame(s, DG_FRAME_HEAD, b.p, b.len);
    }
    dg_buf_free(&b);
    return rc;
}

/* END with the request's counts and timings; extra (NULL or ",\"key\":value...") is appended to
 * the object. */
static void send_end_with(eslot_t *s, uint64_t rows, uint64_t bytes, bool truncated,
                          const timings_t *t, const char *extra)
{
    char end[512];
    int n = snprintf(end, sizeof end,
                     "{\"rows\":%llu,\"bytes\":%llu,\"truncated\":%s,\"queue_ms\":%.3f,"
                     "\"execute_ms\":%.3f,\"encode_ms\":%.3f,\"compress_ms\":%.3f%s%s%s}",
                     (unsigned long long)rows, (unsigned long long)bytes,
                     truncated ? "true" : "false", t->queue_ms, t->execute_ms, t->encode_ms,
                     t->compress_ms, s->changes ? ",\"changes\":true" : "",
                     s->is_deterministic ? ",\"deterministic\":true" : "", extra ? extra : "");
    slot_set_idle(s);
    if (n > 0 && (size_t)n < sizeof end) {
        send_frame(s, DG_FRAME_END, end, (size_t)n);
    }
}

static void send_end(eslot_t *s, uint64_t rows, uint64_t bytes, bool truncated, const timings_t *t)
{
    send_end_with(s, rows, bytes, truncated, t, NULL);
}

/* ---- cursor publication (slot thread side) ----------------------------------------------- */

static void publish_cursor(eslot_t *s, dg_db_cursor_t *c)
{
    s->is_deterministic = dg_db_cursor_is_deterministic(c);
    pthread_mutex_lock(&s->mu);
    s->cursor = c;
    /* The deadline or a CANCEL may have come while dg_db_query_start ran. */
    if (c && s->stop_reason != DG_OK) {
        dg_db_cursor_interrupt(c, s->stop_reason);
        s->last_interrupt_ms = dg_now_ms();
    }
    pthread_mutex_unlock(&s->mu);
}

static void release_cursor(eslot_t *s, dg_db_cursor_t **c)
{
    if (!*c) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->cursor = NULL;
    pthread_mutex_unlock(&s->mu);
    dg_db_cursor_free(*c);
    *c = NULL;
}

static dg_rc_t stop_reason(eslot_t *s)
{
    pthread_mutex_lock(&s->mu);
    dg_rc_t r = s->stop_reason;
    pthread_mutex_unlock(&s->mu);
    return r;
}

/* ---- requests --------------------------------------------------------------------------- */

typedef struct req {
    const char *id;
    const char *kind;
    const char *db;
    const char *sql;
    size_t sql_len;
    char *params; /* owned (json_dumps) or NULL */
    /* Kind "named": the declared types (owned, json_dumps), else NULL. */
    char *param_types;
    const char *format;
    int64_t timeout_ms;
    uint64_t max_rows;
    uint64_t max_bytes;
    double queue_ms;
    uint64_t max_export_bytes; /* Parquet temp file cap; 0 = none */
    const char *encoding; /* Content-Encoding token; "identity" when absent */
    int level;            /* codec level; < 0 = the codec's default */
    const char *target;   /* kind "job": "next" = on the staging copy; NULL = served file */
} req_t;

static const char *json_str_or(json_t *o, const char *key, const char *dflt)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : dflt;
}

static int64_t json_int_or(json_t *o, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v)) {
        return (int64_t)json_integer_value(v);
    }
    if (json_is_real(v)) {
        return (int64_t)json_real_value(v);
    }
    return dflt;
}

/* Takes a reference to the current instance of database `name` (switching to a replaced file
 * first, engine_dbs.h) into *use. False for an unknown database. */
static bool acquire_db(eproc_t *e, const char *name, served_db_t *use)
{
    if (dg_engine__dbs_acquire(e->dbs, name, &use->ref) != DG_OK) {
        return false;
    }
    use->name = use->ref.name;
    use->db = use->ref.db;
    use->export_dir = use->ref.export_dir;
    use->is_read_write = use->ref.is_read_write;
    return true;
}

/* Gives the reference back: the last request on a replaced instance closes it. */
static void release_db(eproc_t *e, served_db_t *use)
{
    dg_engine__dbs_release(e->dbs, &use->ref);
    memset(use, 0, sizeof *use);
}

/* kinds "swap_check" (can <db>.duckdb.next be swapped in?) and "refresh" (switch to a replaced
 * file now): both answer END or ERROR only (server/h_reload.c). */
static void run_swap(eslot_t *s, const req_t *r, timings_t *t)
{
    dg_error_t err;
    dg_error_clear(&err);
    uint64_t gen = 0;
    dg_rc_t rc = strcmp(r->kind, "swap_check") == 0
                     ? dg_engine__dbs_check_next(s->proc->dbs, r->db, &err)
                     : dg_engine__dbs_refresh(s->proc->dbs, r->db, &gen, &err);
    if (rc != DG_OK) {
        send_error(s, rc, err.msg);
    } else {
        send_end(s, 0, 0, false, t);
    }
}

static void run_catalog(eslot_t *s, const req_t *r, served_db_t *sdb, timings_t *t)
{
    dg_error_t err;
    dg_error_clear(&err);
    dg_buf_t out;
    dg_buf_init(&out, r->max_bytes ? (size_t)r->max_bytes : DEFAULT_MAX_BYTES);
    uint64_t sent = 0;
    int64_t t0 = dg_now_us();
    dg_rc_t rc = dg_db_catalog_json(sdb->db, &out, &err);
    t->execute_ms = ms_since(t0, dg_now_us());
    s->is_deterministic = true; /* the catalog changes only with the data */
    if (rc != DG_OK) {
        send_error(s, rc, err.msg);
        goto out;
    }
    rc = send_head(s, "application/json", NULL, t);
    if (rc == DG_OK) {
        rc = send_data(s, &out, &sent);
    }
    if (rc == DG_OK) {
        send_end(s, 0, sent, false, t);
    }
out:
    dg_buf_free(&out);
}

/* Runs one SQL request and answers it. Every path ends with END or ERROR (unless the front is
 * gone, in which case nobody listens). */
/* ---- the response body: encoder bytes -> codec -> DATA frames ---------------------------- */

/* Owns the codec of one response. Encoders write plain bytes into `out`; body_emit compresses
 * them (flushing, so the client can decode every batch as it arrives) and sends DATA frames.
 *
 * With a codec, compression overlaps with fetching (DESIGN §11: a streaming result is produced
 * only a little ahead of its consumer, so fetch and encode would otherwise alternate): body_emit
 * hands the filled buffer to a compressor thread, which compresses and sends it while the slot
 * thread fetches and encodes the next chunk. At most one buffer is in flight, so memory stays
 * bounded and a slow socket still stops the fetching (backpressure). The slot thread owns
 * everything except `pending`, `z`, `sent` and the codec while `busy` is set; `mu` orders the
 * hand-over. */
typedef struct body {
    eslot_t *s;
    dg_codec_t *codec; /* NULL = identity */
    dg_buf_t z;        /* compressed bytes of the current piece */
    uint64_t raw;      /* plain bytes produced so far */
    uint64_t sent;     /* bytes sent as DATA (compressed when a codec is set) */
    timings_t *t;
    /* the compressor thread (started on the first compressed emit) */
    pthread_t thread;
    bool has_thread, has_sync;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    dg_buf_t pending;  /* plain bytes handed to the compressor */
    bool busy;         /* pending holds a piece not yet compressed and sent */
    bool finish;       /* that piece ends the stream */
    bool quit;
    dg_rc_t rc;        /* first failure on the compressor side */
    double compress_ms;
} body_t;

static dg_rc_t body_init(body_t *b, eslot_t *s, const req_t *r, timings_t *t, dg_error_t *err)
{
    memset(b, 0, sizeof *b);
    b->s = s;
    b->t = t;
    dg_buf_init_rc(&b->z, STREAM_BUF_CAP, DG_RESOURCE_EXHAUSTED);
    dg_buf_init_rc(&b->pending, STREAM_BUF_CAP, DG_RESOURCE_EXHAUSTED);
    int id = dg_codec_parse(r->encoding, strlen(r->encoding));
    if (id < 0) {
        return dg_error_set(err, DG_NOT_ACCEPTABLE, "unknown content coding '%.32s'", r->encoding);
    }
    if (id == DG_CODEC_IDENTITY) {
        return DG_OK;
    }
    int level = r->level >= 0 ? r->level : dg_codec_default_level((dg_codec_id_t)id);
    dg_rc_t rc = dg_codec_new((dg_codec_id_t)id, level, &b->codec);
    if (rc != DG_OK) {
        return dg_error_set(err, rc, "cannot start %s at level %d", r->encoding, level);
    }
    return DG_OK;
}

static const char *body_encoding(const body_t *b, const req_t *r)
{
    return b->codec ? r->encoding : NULL;
}

/* Compresses and sends one piece: plain bytes in, DATA frames out. */
static dg_rc_t body_compress_send(body_t *b, dg_buf_t *plain, bool finish, double *ms)
{
    int64_t t0 = dg_now_us();
    dg_rc_t rc = dg_codec_write(b->codec, plain->p, plain->len, &b->z);
    if (rc == DG_OK) {
        rc = finish ? dg_codec_finish(b->codec, &b->z) : dg_codec_flush(b->codec, &b->z);
    }
    *ms += ms_since(t0, dg_now_us());
    dg_buf_reset(plain);
    if (rc != DG_OK) {
        return rc;
    }
    return send_data(b->s, &b->z, &b->sent);
}

static void *body_compressor_main(void *arg)
{
    body_t *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->busy && !b->quit) {
            pthread_cond_wait(&b->cv, &b->mu);
        }
        if (!b->busy) {
            break; /* quit with nothing left */
        }
        bool finish = b->finish;
        bool failed = b->rc != DG_OK;
        pthread_mutex_unlock(&b->mu);
        double ms = 0;
        dg_rc_t rc = failed ? DG_OK : body_compress_send(b, &b->pending, finish, &ms);
        pthread_mutex_lock(&b->mu);
        dg_buf_reset(&b->pending);
        if (rc != DG_OK && b->rc == DG_OK) {
            b->rc = rc;
        }
        b->compress_ms += ms;
        b->busy = false;
        pthread_cond_broadcast(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* Waits until the compressor has sent everything handed to it; returns its first failure.
 * Adds its compression time to the request's timings. Called with mu held. */
static dg_rc_t body_wait_idle_locked(body_t *b)
{
    while (b->busy) {
        pthread_cond_wait(&b->cv, &b->mu);
    }
    b->t->compress_ms += b->compress_ms;
    b->compress_ms = 0;
    return b->rc;
}

/* Sends out's plain bytes (compressed when a codec is set) and empties out. finish ends the
 * compressed stream (its trailer) after them and returns only once everything is sent. */
static dg_rc_t body_emit(body_t *b, dg_buf_t *out, bool finish)
{
    b->raw += out->len;
    if (!b->codec) {
        return send_data(b->s, out, &b->sent);
    }
    if (!b->has_thread) {
        if (!b->has_sync) {
            if (pthread_mutex_init(&b->mu, NULL) != 0) {
                return DG_NOMEM;
            }
            if (pthread_cond_init(&b->cv, NULL) != 0) {
                pthread_mutex_destroy(&b->mu);
                return DG_NOMEM;
            }
            b->has_sync = true;
        }
        if (finish || pthread_create(&b->thread, NULL, body_compressor_main, b) != 0) {
            /* A single piece (or no thread to be had): compress it here. */
            return body_compress_send(b, out, finish, &b->t->compress_ms);
        }
        b->has_thread = true;
    }
    pthread_mutex_lock(&b->mu);
    dg_rc_t rc = body_wait_idle_locked(b);
    if (rc == DG_OK) {
        /* Hand the filled buffer over and take the compressor's empty one back. */
        dg_buf_t tmp = b->pending;
        b->pending = *out;
        *out = tmp;
        b->busy = true;
        b->finish = finish;
        pthread_cond_broadcast(&b->cv);
        if (finish) {
            rc = body_wait_idle_locked(b);
        }
    }
    pthread_mutex_unlock(&b->mu);
    dg_buf_reset(out);
    return rc;
}

/* Waits until nothing is in flight, so the slot thread may write frames itself (ERROR). */
static void body_quiesce(body_t *b)
{
    if (b->has_thread) {
        pthread_mutex_lock(&b->mu);
        body_wait_idle_locked(b);
        pthread_mutex_unlock(&b->mu);
    }
}

static void body_free(body_t *b)
{
    if (b->has_thread) {
        pthread_mutex_lock(&b->mu);
        body_wait_idle_locked(b);
        b->quit = true;
        pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->thread, NULL);
    }
    if (b->has_sync) {
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
    }
    dg_codec_free(b->codec);
    dg_buf_free(&b->z);
    dg_buf_free(&b->pending);
}

/* Kinds that run trusted SQL (no parse check, still inside the locked settings). */
static bool is_admin_kind(const char *kind)
{
    return strcmp(kind, "admin") == 0 || strcmp(kind, "job") == 0;
}

/* The query of a request, interruptible through the slot's start_stop (deadline, CANCEL). */
static dg_db_query_t query_of(eslot_t *s, const req_t *r)
{
    return (dg_db_query_t){
        .sql = r->sql,
        .sql_len = r->sql_len,
        .params_json = r->params,
        .params_len = r->params ? strlen(r->params) : 0,
        .param_types = r->param_types,
        .param_types_len = r->param_types ? strlen(r->param_types) : 0,
        .mode = is_admin_kind(r->kind) ? DG_DB_MODE_ADMIN : DG_DB_MODE_READONLY_SQL,
        .interrupt = &s->start_stop,
        .changes = &s->changes,
    };
}

/* Starts a read query: named queries run on the instance's long-lived connections with cached
 * statements (dg_db_named_start), everything else on a fresh connection. */
static dg_rc_t start_query(served_db_t *sdb, const req_t *r, const dg_db_query_t *q,
                           dg_db_cursor_t **out, dg_error_t *err)
{
    if (strcmp(r->kind, "named") == 0) {
        return dg_db_named_start(sdb->db, q, out, err);
    }
    return dg_db_query_start(sdb->db, q, out, err);
}

/* Sends ERROR for a failed request; an interrupted query reports why it was interrupted,
 * whatever DuckDB called it. */
static dg_rc_t failure_reason(eslot_t *s, dg_rc_t rc, dg_error_t *err)
{
    dg_rc_t why = stop_reason(s);
    if (why != DG_OK && rc != why) {
        rc = why;
        dg_error_clear(err);
        dg_error_set(err, why, "%s", dg_rc_message(why));
    }
    if (err->rc == DG_OK) {
        dg_error_set(err, rc, "%s", dg_rc_message(rc));
    }
    return rc;
}

static void fail_request(eslot_t *s, dg_rc_t rc, dg_error_t *err)
{
    rc = failure_reason(s, rc, err);
    send_error(s, rc, err->msg);
}

/* Cuts a top-level struct batch to its first n rows: the columns' buffers stay as they are
 * (longer than needed is valid Arrow), lengths shrink and null counts are recounted. */
static void arrow_truncate(struct ArrowArray *a, int64_t n)
{
    a->length = n;
    for (int64_t i = 0; i < a->n_children; i++) {
        a->children[i]->length = n;
        if (a->children[i]->null_count != 0) {
            a->children[i]->null_count = -1;
        }
    }
}

/* Arrow IPC stream: DuckDB's Arrow conversion per chunk, our IPC framing (enc/arrow_ipc.h). A
 * failure after HEAD has no in-band marker in Arrow: the front aborts the chunked body. */
static void run_arrow(eslot_t *s, const req_t *r, served_db_t *sdb, timings_t *t, body_t *body)
{
    dg_error_t err;
    dg_error_clear(&err);
    dg_db_cursor_t *cur = NULL;
    struct ArrowSchema schema = {0};
    dg_arrow_ipc_t *w = NULL;
    dg_buf_t out;
    dg_buf_init_rc(&out, STREAM_BUF_CAP, DG_RESOURCE_EXHAUSTED);
    uint64_t rows = 0;
    bool truncated = false, head_sent = false;
    const char *ctype = dg_format_content_type(DG_FMT_ARROW);

    dg_db_query_t q = query_of(s, r);
    int64_t t0 = dg_now_us();
    dg_rc_t rc = start_query(sdb, r, &q, &cur, &err);
    t->execute_ms += ms_since(t0, dg_now_us());
    publish_cursor(s, cur);
    if (rc == DG_OK) {
        rc = dg_db_cursor_arrow_schema(cur, &schema, &err);
    }
    if (rc == DG_OK) {
        rc = dg_arrow_ipc_new(&schema, &w, &err);
    }
    if (rc == DG_OK) {
        rc = dg_arrow_ipc_write_schema(w, &out);
    }
    while (rc == DG_OK) {
        rc = stop_reason(s);
        if (rc != DG_OK) {
            break;
        }
        struct ArrowArray arr = {0};
        bool end = false;
        t0 = dg_now_us();
        rc = dg_db_cursor_next_arrow(cur, &arr, &end, &err);
        t->execute_ms += ms_since(t0, dg_now_us());
        if (rc != DG_OK || end) {
            break;
        }
        if (r->max_rows && rows + (uint64_t)arr.length > r->max_rows) {
            arrow_truncate(&arr, (int64_t)(r->max_rows - rows));
            truncated = true;
        }
        t0 = dg_now_us();
        rc = dg_arrow_ipc_write_batch(w, &arr, &out, &err);
        t->encode_ms += ms_since(t0, dg_now_us());
        rows += (uint64_t)arr.length;
        arr.release(&arr);
        if (rc != DG_OK) {
            break;
        }
        if (!head_sent) {
            rc = send_head(s, ctype, body_encoding(body, r), t);
            if (rc != DG_OK) {
                goto gone;
            }
            head_sent = true;
        }
        rc = body_emit(body, &out, false);
        if (rc != DG_OK) {
            break;
        }
        if (truncated) {
            break;
        }
    }
    release_cursor(s, &cur);
    if (rc == DG_OK) {
        rc = dg_arrow_ipc_write_eos(w, &out);
    }
    if (rc == DG_OK && !head_sent) {
        rc = send_head(s, ctype, body_encoding(body, r), t);
        if (rc != DG_OK) {
            goto gone;
        }
        head_sent = true;
    }
    if (rc == DG_OK) {
        rc = body_emit(body, &out, true);
    }
    body_quiesce(body); /* no DATA frame may be in flight when END or ERROR is written */
    if (rc == DG_OK) {
        send_end(s, rows, body->sent, truncated, t);
    } else if (slot_peer_gone(s)) {
        goto gone;
    } else {
        fail_request(s, rc, &err);
    }
    goto out;
gone:
    body_quiesce(body);
    release_cursor(s, &cur);
    slot_set_idle(s);
out:
    dg_arrow_ipc_free(w);
    if (schema.release) {
        schema.release(&schema);
    }
    dg_buf_free(&out);
}

/* Parquet: DuckDB's own writer (zstd) into a private, already-unlinked temp file (see
 * dg_db_export_parquet), then streamed. Parquet is compressed inside, so no codec on top. */
static void run_parquet(eslot_t *s, const req_t *r, served_db_t *sdb, timings_t *t)
{
    dg_error_t err;
    dg_error_clear(&err);
    int fd = -1;
    uint64_t size = 0, sent = 0;
    dg_rc_t rc;
    char *chunk = NULL;
    if (!sdb->export_dir) {
        rc = dg_error_set(&err, DG_NOT_ACCEPTABLE,
                          "parquet needs the engine's temp directory, which is not available");
        goto fail;
    }
    dg_db_query_t q = query_of(s, r);
    int64_t t0 = dg_now_us();
    rc = dg_db_export_parquet(sdb->db, &q, sdb->export_dir, r->max_export_bytes, &fd, &size,
                              &err);
    t->execute_ms += ms_since(t0, dg_now_us());
    if (rc == DG_RESULT_TOO_LARGE) {
        dg_error_clear(&err);
        dg_error_set(&err, rc,
                     "the Parquet result is larger than max_export_bytes (%llu bytes); add a "
                     "LIMIT or use format=ndjson",
                     (unsigned long long)r->max_export_bytes);
    }
    if (rc != DG_OK) {
        goto fail;
    }
    chunk = malloc(DG_FRAME_MAX_PAYLOAD);
    if (!chunk) {
        rc = dg_error_set(&err, DG_NOMEM, "out of memory");
        goto fail;
    }
    /* The same rule as every other format (docs/cache.md): a file computed only from the data
     * may be cached. One more parse beside writing a file costs little; trusted SQL is never
     * classified. */
    s->is_deterministic =
        !is_admin_kind(r->kind) && dg_db_sql_is_deterministic(sdb->db, q.sql, q.sql_len);
    rc = send_head(s, dg_format_content_type(DG_FMT_PARQUET), NULL, t);
    while (rc == DG_OK && sent < size) {
        rc = stop_reason(s);
        if (rc != DG_OK) {
            break;
        }
        ssize_t n = read(fd, chunk, DG_FRAME_MAX_PAYLOAD);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            rc = dg_error_set(&err, DG_IO, "reading the Parquet export failed");
            break;
        }
        rc = send_frame(s, DG_FRAME_DATA, chunk, (size_t)n);
        sent += (uint64_t)n;
    }
    if (rc == DG_OK) {
        send_end(s, 0, sent, false, t);
    } else if (slot_peer_gone(s)) {
        slot_set_idle(s);
    } else {
        fail_request(s, rc, &err);
    }
    goto out;
fail:
    fail_request(s, rc, &err);
out:
    free(chunk);
    if (fd >= 0) {
        close(fd);
    }
}

static void run_sql(eslot_t *s, const req_t *r, served_db_t *sdb, timings_t *t)
{
    dg_error_t err;
    dg_error_clear(&err);
    dg_db_cursor_t *cur = NULL;
    dg_enc_t *enc = NULL;
    dg_buf_t out;
    body_t body;
    uint64_t rows = 0;
    bool truncated = false, head_sent = false;
    dg_rc_t rc = body_init(&body, s, r, t, &err);

    int fmt = dg_format_parse(r->format ? r->format : "json");
    bool is_doc = fmt == DG_FMT_JSON;
    size_t max_bytes = r->max_bytes ? (size_t)r->max_bytes : DEFAULT_MAX_BYTES;
    if (is_doc) {
        dg_buf_init_rc(&out, max_bytes, DG_RESULT_TOO_LARGE);
    } else {
        dg_buf_init_rc(&out, STREAM_BUF_CAP, DG_RESOURCE_EXHAUSTED);
    }
    if (rc != DG_OK) {
        goto fail;
    }
    if (fmt < 0) {
        rc = dg_error_set(&err, DG_NOT_ACCEPTABLE, "unknown format '%s'", r->format);
        goto fail;
    }
    if (!r->sql) {
        rc = dg_error_set(&err, DG_MISSING_SQL, "the request has no sql");
        goto fail;
    }
    if (fmt == DG_FMT_ARROW) {
        run_arrow(s, r, sdb, t, &body);
        goto out;
    }
    if (fmt == DG_FMT_PARQUET) {
        run_parquet(s, r, sdb, t);
        goto out;
    }

    dg_db_query_t q = query_of(s, r);
    int64_t t0 = dg_now_us();
    rc = start_query(sdb, r, &q, &cur, &err);
    t->execute_ms += ms_since(t0, dg_now_us());
    publish_cursor(s, cur);
    if (rc != DG_OK) {
        goto fail;
    }

    dg_enc_opts_t eo = {.query_id = r->id};
    rc = dg_enc_new((dg_format_t)fmt, dg_db_cursor_schema(cur), &eo, &enc);
    if (rc != DG_OK) {
        dg_error_set(&err, rc, "cannot encode format %s", dg_format_name((dg_format_t)fmt));
        goto fail;
    }
    t0 = dg_now_us();
    rc = dg_enc_begin(enc, &out);
    t->encode_ms += ms_since(t0, dg_now_us());
    if (rc != DG_OK) {
        goto fail;
    }

    for (;;) {
        rc = stop_reason(s);
        if (rc != DG_OK) {
            goto fail;
        }
        const dg_batch_t *batch = NULL;
        t0 = dg_now_us();
        rc = dg_db_cursor_next(cur, &batch, &err);
        t->execute_ms += ms_since(t0, dg_now_us());
        if (rc != DG_OK) {
            goto fail;
        }
        if (!batch) {
            break;
        }
        uint64_t n = batch->n_rows;
        if (r->max_rows && rows + n > r->max_rows) {
            /* The cap cuts this batch, or the previous batch ended exactly at the cap and this
             * one proves there were more rows. Either way: stop fetching. */
            n = r->max_rows - rows;
            truncated = true;
        }
        if (n > 0) {
            t0 = dg_now_us();
            rc = dg_enc_batch(enc, batch, n, &out);
            t->encode_ms += ms_since(t0, dg_now_us());
            rows += n;
            if (rc != DG_OK) {
                goto fail;
            }
        }
        if (!is_doc && out.len > 0) {
            if (!head_sent) {
                /* Headers are committed only once the first batch is encoded, so a query
                 * that fails early still gets a real HTTP error status. */
                rc = send_head(s, dg_format_content_type((dg_format_t)fmt),
                               body_encoding(&body, r), t);
                if (rc != DG_OK) {
                    goto gone;
                }
                head_sent = true;
            }
            rc = body_emit(&body, &out, false);
            if (rc != DG_OK) {
                goto emit_failed;
            }
        }
        if (truncated) {
            break;
        }
    }
    /* Done fetching: free the cursor (and DuckDB's result) before the last bytes go out. */
    release_cursor(s, &cur);

    dg_enc_summary_t sum = {
        .rows = rows,
        .bytes = body.raw + out.len,
        .truncated = truncated,
        .queue_ms = t->queue_ms,
        .execute_ms = t->execute_ms,
        .encode_ms = t->encode_ms,
        .compress_ms = t->compress_ms,
        .elapsed_ms = ms_since(t->recv_us, dg_now_us()) + t->queue_ms,
    };
    t0 = dg_now_us();
    rc = dg_enc_end(enc, &sum, &out);
    t->encode_ms += ms_since(t0, dg_now_us());
    if (rc != DG_OK) {
        goto fail;
    }
    if (!head_sent) {
        if (body.codec) {
            /* A single document is compressed whole before HEAD, so the header can report the
             * compression time too and a codec failure is still a real HTTP error. */
            dg_buf_t plain = out;
            dg_buf_init_rc(&out, STREAM_BUF_CAP, DG_RESOURCE_EXHAUSTED);
            int64_t t1 = dg_now_us();
            body.raw += plain.len;
            rc = dg_codec_write(body.codec, plain.p, plain.len, &out);
            if (rc == DG_OK) {
                rc = dg_codec_finish(body.codec, &out);
            }
            t->compress_ms += ms_since(t1, dg_now_us());
            dg_buf_free(&plain);
            if (rc != DG_OK) {
                goto fail;
            }
            dg_codec_free(body.codec);
            body.codec = NULL; /* already compressed: send as is */
            rc = send_head(s, dg_format_content_type((dg_format_t)fmt), r->encoding, t);
        } else {
            rc = send_head(s, dg_format_content_type((dg_format_t)fmt), NULL, t);
        }
        if (rc != DG_OK) {
            goto gone;
        }
        head_sent = true;
    }
    rc = body_emit(&body, &out, true);
    if (rc != DG_OK) {
        goto emit_failed;
    }
    send_end(s, rows, body.sent, truncated, t);
    goto out;

emit_failed:
    /* A frame write failed (the front closed the slot) or the codec failed mid-stream. */
    if (!slot_peer_gone(s)) {
        release_cursor(s, &cur);
        send_error(s, rc, dg_rc_message(rc));
        goto out;
    }
    goto gone;

fail:
    release_cursor(s, &cur);
    if (rc == DG_RESULT_TOO_LARGE && stop_reason(s) == DG_OK) {
        dg_error_clear(&err);
        dg_error_set(&err, rc,
                     "the result is larger than %zu bytes, the cap for one JSON document; "
                     "use format=ndjson (or csv) to stream large results",
                     max_bytes);
    }
    rc = failure_reason(s, rc, &err);
    if (head_sent) {
        /* Drop a half-encoded batch, then end the body with the format's in-band marker so a
         * client that reads only the body still sees the failure. */
        dg_buf_reset(&out);
        if (enc && dg_enc_fail(enc, rc, err.msg, &out) == DG_OK &&
            (out.len > 0 || body.codec)) {
            /* Through the codec and finished, so a compressed stream stays decodable up to
             * and including the error line. */
            if (body_emit(&body, &out, true) != DG_OK && slot_peer_gone(s)) {
                goto gone;
            }
        }
    }
    body_quiesce(&body);
    send_error(s, rc, err.msg);
    goto out;

gone:
    /* The front closed the slot: nothing more can be said on it. */
    release_cursor(s, &cur);
    slot_set_idle(s);

out:
    dg_enc_free(enc);
    dg_buf_free(&out);
    body_free(&body);
}

/* kind "stats": the memory of every instance of this engine, for the front's /metrics, as the
 * END payload {"dbs":[{"db":..,"memory_bytes":N,"limit_bytes":N}]}. */
static void run_stats(eslot_t *s)
{
    dg_buf_t b;
    dg_buf_init(&b, DG_FRAME_MAX_PAYLOAD);
    dg_rc_t rc = dg_buf_puts(&b, "{\"dbs\":[");
    for (size_t i = 0; rc == DG_OK && i < dg_engine__dbs_count(s->proc->dbs); i++) {
        uint64_t used = 0, limit = 0;
        dg_engine__dbref_t ref;
        dg_engine__dbs_acquire_at(s->proc->dbs, i, &ref);
        dg_db_memory_usage(ref.db, &used, &limit);
        dg_engine__dbs_release(s->proc->dbs, &ref);
        /* Served names are [A-Za-z0-9_-] (dg_dbname_valid): nothing to escape. */
        rc = dg_buf_printf(&b, "%s{\"db\":\"%s\",\"memory_bytes\":%llu,\"limit_bytes\":%llu}",
                           i ? "," : "", dg_engine__dbs_name(s->proc->dbs, i),
                           (unsigned long long)used, (unsigned long long)limit);
    }
    if (rc == DG_OK) {
        rc = dg_buf_puts(&b, "]}");
    }
    if (rc != DG_OK) {
        send_error(s, rc, NULL);
    } else {
        slot_set_idle(s);
        send_frame(s, DG_FRAME_END, b.p, b.len);
    }
    dg_buf_free(&b);
}

/* kind "qlog_append" (engine 0): stores a batch of the front's query log; END carries the
 * highest sequence number now durable (engine_qlog.h). */
static void run_qlog_append(eslot_t *s, const json_t *root)
{
    dg_error_t err;
    dg_error_clear(&err);
    dg_buf_t b;
    dg_buf_init(&b, 4096);
    dg_rc_t rc = dg_engine__qlog_append(s->proc->index, root, &b, &err);
    if (rc != DG_OK) {
        send_error(s, rc, err.msg);
    } else {
        slot_set_idle(s);
        send_frame(s, DG_FRAME_END, b.p, b.len);
    }
    dg_buf_free(&b);
}

/* kind "qlog_query" (engine 0): the newest query log rows matching the request's filters, in
 * the requested format, through the ordinary result path. The SQL is the engine's own
 * (dg_db_qlog_select_sql) and the filters are bound parameters. */
static void run_qlog_query(eslot_t *s, const req_t *r, const json_t *root, timings_t *t)
{
    dg_error_t err;
    dg_error_clear(&err);
    served_db_t log = {.name = "_query_log", .is_read_write = true};
    dg_rc_t rc = dg_engine__qlog_db(s->proc->index, root, &log.db, &err);
    char *params = rc == DG_OK ? dg_engine__qlog_params(root) : NULL;
    if (rc == DG_OK && !params) {
        rc = dg_error_set(&err, DG_NOMEM, "out of memory");
    }
    if (rc != DG_OK) {
        send_error(s, rc, err.msg);
        return;
    }
    req_t q = *r;
    q.kind = "admin"; /* trusted SQL written here: no sandbox parse check */
    q.sql = dg_db_qlog_select_sql;
    q.sql_len = strlen(dg_db_qlog_select_sql);
    q.params = params;
    run_sql(s, &q, &log, t);
    free(params);
}

/* kind "admin" on db "_query_log" (engine 0): an admin's SQL over the query log, checked as
 * untrusted read-only SQL (every sandbox layer), so the log can be read like a system table but
 * not changed. */
static void run_qlog_sql(eslot_t *s, const req_t *r, const json_t *root, timings_t *t)
{
    dg_error_t err;
    dg_error_clear(&err);
    served_db_t log = {.name = "_query_log", .is_read_write = true};
    dg_rc_t rc = dg_engine__qlog_db(s->proc->index, root, &log.db, &err);
    if (rc != DG_OK) {
        send_error(s, rc, err.msg);
        return;
    }
    req_t q = *r;
    q.kind = "sql";
    run_sql(s, &q, &log, t);
}

/* ---- admin jobs (kind "job") -------------------------------------------------------------- */

/* A job reports progress at most this often (and at least this often while DuckDB hands back
 * control between tasks or chunks), so the front sees it move and can tell the job is alive. */
#define JOB_PROGRESS_MS 250

typedef struct job_run {
    eslot_t *s;
    int64_t next_ms; /* when the next PROGRESS frame is due */
    uint64_t rows;   /* result rows counted (and discarded) so far */
    /* Rows the last statement wrote, when its result is DuckDB's one BIGINT column "Count"
     * (CREATE TABLE AS, INSERT, UPDATE, DELETE); has_written false otherwise. */
    uint64_t written;
    bool has_written;
} job_run_t;

/* Adds a batch of DuckDB's "Count" answer to j->written (see job_run_t). */
static void job_count_written(job_run_t *j, const dg_db_cursor_t *cur, const dg_batch_t *b)
{
    const dg_schema_t *sc = dg_db_cursor_schema(cur);
    if (!sc || sc->n_cols != 1 || strcmp(sc->names[0], "Count") != 0 ||
        sc->types[0]->id != DG_TYPE_BIGINT || b->n_cols != 1 || !b->cols[0].data) {
        return;
    }
    const int64_t *v = b->cols[0].data;
    for (uint64_t i = 0; i < b->n_rows; i++) {
        if (dg_vec_is_valid(&b->cols[0], i) && v[i] > 0) {
            j->written += (uint64_t)v[i];
        }
    }
    j->has_written = true;
}

/* Sends a PROGRESS frame when one is due. pct < 0 means DuckDB does not know (null). */
static void job_progress(void *ctx, double pct)
{
    job_run_t *j = ctx;
    int64_t now = dg_now_ms();
    if (now < j->next_ms || slot_peer_gone(j->s)) {
        return;
    }
    j->next_ms = now + JOB_PROGRESS_MS;
    char msg[96];
    int n = pct >= 0 ? snprintf(msg, sizeof msg, "{\"progress\":%.2f,\"rows\":%llu}", pct,
                                (unsigned long long)j->rows)
                     : snprintf(msg, sizeof msg, "{\"progress\":null,\"rows\":%llu}",
                                (unsigned long long)j->rows);
    if (n > 0 && (size_t)n < sizeof msg) {
        send_frame(j->s, DG_FRAME_PROGRESS, msg, (size_t)n);
    }
}

/* Runs trusted SQL (several statements allowed) on db to the end, counting and discarding the
 * rows of the last statement and sending PROGRESS frames on the way. */
static dg_rc_t job_exec(eslot_t *s, const req_t *r, dg_db_t *db, job_run_t *j, timings_t *t,
                        dg_error_t *err)
{
    dg_db_cursor_t *cur = NULL;
    if (!r->sql) {
        return dg_error_set(err, DG_MISSING_SQL, "the request has no sql");
    }
    dg_db_query_t q = query_of(s, r);
    q.on_progress = job_progress;
    q.progress_ctx = j;
    int64_t t0 = dg_now_us();
    dg_rc_t rc = dg_db_query_start(db, &q, &cur, err);
    publish_cursor(s, cur);
    while (rc == DG_OK) {
        rc = stop_reason(s);
        if (rc != DG_OK) {
            break;
        }
        const dg_batch_t *batch = NULL;
        rc = dg_db_cursor_next(cur, &batch, err);
        if (rc != DG_OK || !batch) {
            break;
        }
        j->rows += batch->n_rows;
        job_count_written(j, cur, batch);
        job_progress(j, dg_db_cursor_progress(cur));
    }
    t->execute_ms = ms_since(t0, dg_now_us());
    release_cursor(s, &cur);
    return rc;
}

/* Ends a job: END {"rows":N[,"written":W]} or ERROR (nothing when the front went away). */
static void job_end(eslot_t *s, dg_rc_t rc, const job_run_t *j, const timings_t *t, dg_error_t *err)
{
    if (rc == DG_OK) {
        char written[48] = "";
        if (j->has_written) {
            snprintf(written, sizeof written, ",\"written\":%llu", (unsigned long long)j->written);
        }
        send_end_with(s, j->rows, 0, false, t, written);
    } else if (slot_peer_gone(s)) {
        slot_set_idle(s);
    } else {
        fail_request(s, rc, err);
    }
}

/* Runs a job on the served instance: PROGRESS* then END or ERROR. No encoder, no HEAD: nobody
 * reads a job's rows, and the front keeps only its state. */
static void run_job(eslot_t *s, const req_t *r, served_db_t *sdb)
{
    dg_error_t err;
    dg_error_clear(&err);
    timings_t t = {.queue_ms = r->queue_ms};
    job_run_t j = {.s = s, .next_ms = 0};
    dg_rc_t rc = job_exec(s, r, sdb->db, &j, &t, &err);
    job_end(s, rc, &j, &t, &err);
}

/* A job with "target":"next" (docs/admin.md "Staging"): runs on the database's staging copy,
 * opened read-write for this job only, checkpointed and closed before the job's END so a
 * reload can check and rename the file as soon as the front sees the job done. */
static void run_staging_job(eslot_t *s, const req_t *r)
{
    dg_error_t err;
    dg_error_clear(&err);
    timings_t t = {.queue_ms = r->queue_ms};
    job_run_t j = {.s = s, .next_ms = 0};
    dg_engine__staging_t st;
    dg_rc_t rc = dg_engine__dbs_open_next(s->proc->dbs, r->db, &st, &err);
    if (rc == DG_OK) {
        /* Import files are loaded into the staging copy's instance, and dropped before it is
         * checkpointed and closed. */
        req_t q = *r;
        dg_db_staged_t *staged = NULL;
        rc = dg_engine__files_stage(st.db, r->sql, r->sql_len, &s->start_stop, &staged, &err);
        if (rc == DG_OK && staged) {
            q.sql = dg_db_staged_sql(staged, &q.sql_len);
        }
        if (rc == DG_OK) {
            rc = job_exec(s, &q, st.db, &j, &t, &err);
        }
        dg_db_staged_free(staged);
        dg_rc_t crc = dg_engine__dbs_close_next(s->proc->dbs, &st, rc == DG_OK, &err);
        rc = rc == DG_OK ? crc : rc;
    }
    s->changes = false; /* the served file did not change */
    job_end(s, rc, &j, &t, &err);
}

/* ---- admin SQL reading import files -------------------------------------------------------- */

/* Admin SQL (or a job) that reads files of the import directories (docs/admin.md "Imports"):
 * the loader reads them into tables of db's instance and r->sql is pointed at the rewritten SQL
 * (owned by *staged, freed by the caller after the query). False after answering ERROR. */
static bool stage_files(eslot_t *s, req_t *r, dg_db_t *db, dg_db_staged_t **staged)
{
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = dg_engine__files_stage(db, r->sql, r->sql_len, &s->start_stop, staged, &err);
    if (rc != DG_OK) {
        if (slot_peer_gone(s)) {
            slot_set_idle(s);
        } else {
            fail_request(s, rc, &err);
        }
        return false;
    }
    if (*staged) {
        r->sql = dg_db_staged_sql(*staged, &r->sql_len);
    }
    return true;
}

/* ---- admin imports (kind "import") ------------------------------------------------------- */

/* Reads a file from an import directory through the loader into a table of a read-write
 * database (engine_import.h); answers HEAD, one DATA (a JSON summary) and END. */
static void run_import(eslot_t *s, json_t *req, served_db_t *sdb, timings_t *t)
{
    dg_error_t err;
    dg_error_clear(&err);
    if (!sdb->is_read_write) {
        /* send_error turns this into READ_ONLY_DATABASE with the build-and-swap hint. */
        send_error(s, DG_NOT_READ_ONLY, "imports write: the database is read-only");
        return;
    }
    s->changes = true; /* a failed import rolls back, but the caller cannot tell how far it got */
    dg_buf_t out;
    dg_buf_init(&out, 4096);
    uint64_t sent = 0;
    int64_t t0 = dg_now_us();
    dg_rc_t rc = dg_engine__import_run(sdb->db, req, &s->start_stop, &out, &err);
    t->execute_ms = ms_since(t0, dg_now_us());
    if (rc != DG_OK) {
        fail_request(s, rc, &err);
    } else if (send_head(s, "application/json", NULL, t) == DG_OK &&
               send_data(s, &out, &sent) == DG_OK) {
        send_end(s, 1, sent, false, t);
    } else {
        slot_set_idle(s);
    }
    dg_buf_free(&out);
}

static void handle_req(eslot_t *s, const dg_buf_t *payload)
{
    timings_t t = {.recv_us = dg_now_us()};
    req_t r = {0};
    served_db_t use = {0};
    dg_db_staged_t *staged = NULL; /* admin SQL that reads import files (stage_files) */
    json_error_t jerr;
    json_t *root = json_loadb(payload->p, payload->len, JSON_REJECT_DUPLICATES, &jerr);

    if (root && json_is_object(root)) {
        r.id = json_str_or(root, "id", "");
        r.kind = json_str_or(root, "kind", "sql");
        r.db = json_str_or(root, "db", NULL);
        json_t *sql = json_object_get(root, "sql");
        r.sql = json_string_value(sql);
        r.sql_len = r.sql ? json_string_length(sql) : 0;
        r.format = json_str_or(root, "format", "json");
        r.timeout_ms = json_int_or(root, "timeout_ms", 0);
        int64_t v = json_int_or(root, "max_rows", 0);
        r.max_rows = v > 0 ? (uint64_t)v : 0;
        v = json_int_or(root, "max_bytes", 0);
        r.max_bytes = v > 0 ? (uint64_t)v : 0;
        r.queue_ms = (double)json_int_or(root, "queue_ms", 0);
        r.encoding = json_str_or(root, "encoding", "identity");
        v = json_int_or(root, "max_export_bytes", 0);
        r.max_export_bytes = v > 0 ? (uint64_t)v : 0;
        r.level = (int)json_int_or(root, "level", -1);
        r.target = json_str_or(root, "target", NULL);
        t.queue_ms = r.queue_ms;
    }

    /* The deadline runs from REQ receipt; the front added its queue time to its own deadline. */
    pthread_mutex_lock(&s->mu);
    s->busy = true;
    s->stop_reason = DG_OK;
    atomic_store(&s->start_stop, 0);
    s->last_interrupt_ms = 0;
    s->deadline_ms = r.timeout_ms > 0 ? t.recv_us / 1000 + r.timeout_ms : -1;
    pthread_mutex_unlock(&s->mu);
    s->changes = false;
    s->admin_ro_db = NULL;
    s->is_deterministic = false;

    if (!root || !json_is_object(root)) {
        send_error(s, DG_BAD_JSON, "the engine request is not a JSON object");
        goto out;
    }
    json_t *params = json_object_get(root, "params");
    if (params && (json_is_array(params) || json_is_object(params))) {
        r.params = json_dumps(params, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!r.params) {
            send_error(s, DG_NOMEM, NULL);
            goto out;
        }
    } else if (params && !json_is_null(params)) {
        send_error(s, DG_BAD_PARAMS, "params must be an array or an object");
        goto out;
    }
    json_t *types = json_object_get(root, "types");
    if (strcmp(r.kind, "named") == 0) {
        /* Named queries bind every value as its declared type (src/named/named.h). */
        if (!json_is_object(types) || !(r.param_types = json_dumps(types, JSON_COMPACT))) {
            send_error(s, DG_BAD_PARAMS, "a named query needs its declared types");
            goto out;
        }
        if (!r.params && !(r.params = strdup("{}"))) {
            send_error(s, DG_NOMEM, NULL);
            goto out;
        }
    }

    if (strcmp(r.kind, "ping") == 0) {
        send_end(s, 0, 0, false, &t);
        goto out;
    }
    if (strcmp(r.kind, "stats") == 0) {
        run_stats(s);
        goto out;
    }
    if (strcmp(r.kind, "qlog_append") == 0) {
        run_qlog_append(s, root);
        goto out;
    }
    if (strcmp(r.kind, "qlog_query") == 0) {
        run_qlog_query(s, &r, root, &t);
        goto out;
    }
    if (strcmp(r.kind, "admin") == 0 && r.db && strcmp(r.db, "_query_log") == 0) {
        run_qlog_sql(s, &r, root, &t);
        goto out;
    }
    if (strcmp(r.kind, "swap_check") == 0 || strcmp(r.kind, "refresh") == 0) {
        run_swap(s, &r, &t);
        goto out;
    }
    if (strcmp(r.kind, "job") == 0 && r.target && strcmp(r.target, "next") == 0) {
        run_staging_job(s, &r);
        goto out;
    }
    served_db_t *sdb = acquire_db(s->proc, r.db, &use) ? &use : NULL;
    if (!sdb) {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown database '%.64s'", r.db ? r.db : "");
        send_error(s, DG_UNKNOWN_DB, msg);
        goto out;
    }
    if (strcmp(r.kind, "catalog") == 0) {
        run_catalog(s, &r, sdb, &t);
    } else if (strcmp(r.kind, "sql") == 0 || strcmp(r.kind, "admin") == 0) {
        s->admin_ro_db = strcmp(r.kind, "admin") == 0 && !sdb->is_read_write ? sdb->name : NULL;
        if (strcmp(r.kind, "sql") == 0 || stage_files(s, &r, sdb->db, &staged)) {
            run_sql(s, &r, sdb, &t);
        }
    } else if (strcmp(r.kind, "named") == 0) {
        run_sql(s, &r, sdb, &t);
    } else if (strcmp(r.kind, "job") == 0) {
        s->admin_ro_db = sdb->is_read_write ? NULL : sdb->name;
        if (stage_files(s, &r, sdb->db, &staged)) {
            run_job(s, &r, sdb);
        }
    } else if (strcmp(r.kind, "import") == 0) {
        s->admin_ro_db = sdb->is_read_write ? NULL : sdb->name;
        run_import(s, root, sdb, &t);
    } else {
        send_error(s, DG_BAD_REQUEST, "unknown request kind");
    }

out:
    dg_db_staged_free(staged); /* before release_db: the loaded tables live in its instance */
    release_db(s->proc, &use);
    free(r.params);
    free(r.param_types);
    json_decref(root);
}

static void *slot_main(void *arg)
{
    eslot_t *s = arg;
    dg_buf_t req;
    dg_buf_init_rc(&req, DG_ENGINE__MAX_REQ, DG_PROTOCOL);
    for (;;) {
        dg_frame_type_t type;
        dg_rc_t rc = dg_frame_read(s->fd, &type, &req);
        if (rc != DG_OK) {
            /* EOF: the front dropped this slot; anything else leaves the stream unusable. */
            if (rc != DG_PROTOCOL) {
                DG_LOGW(MOD, "slot read failed engine=%d slot=%d rc=%s", s->proc->index, s->idx,
                        dg_rc_name(rc));
            }
            break;
        }
        if (type == DG_FRAME_CANCEL) {
            continue; /* a CANCEL that crossed our END/ERROR: nothing to cancel */
        }
        if (type != DG_FRAME_REQ) {
            DG_LOGW(MOD, "unexpected frame engine=%d slot=%d type=%d", s->proc->index, s->idx,
                    (int)type);
            continue;
        }
        handle_req(s, &req);
        pthread_mutex_lock(&s->mu);
        bool gone = s->peer_gone;
        pthread_mutex_unlock(&s->mu);
        if (gone) {
            break;
        }
    }
    dg_buf_free(&req);
    return NULL;
}

/* ---- the watcher ------------------------------------------------------------------------- */

/* Records why the running query must stop (first reason wins). Called with s->mu held. */
static void set_stop(eslot_t *s, dg_rc_t reason)
{
    if (s->stop_reason == DG_OK) {
        s->stop_reason = reason;
        /* A query still inside dg_db_query_start polls this between execution tasks. */
        atomic_store(&s->start_stop, (int)reason);
    }
}

/* Consumes what the front sent on a busy slot: CANCEL frames (anything else is a protocol
 * violation and is dropped). Called with s->mu held. */
static void watcher_read(eslot_t *s, int64_t now)
{
    uint8_t hdr[DG_FRAME_HEADER_LEN];
    ssize_t n = recv(s->fd, hdr, sizeof hdr, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        /* EOF or error: the front dropped the slot. Stop the query; nobody reads its bytes. */
        s->peer_gone = true;
        set_stop(s, DG_CANCELLED);
        goto interrupt;
    }
    /* The front writes a frame with one send, so a short read is rare; finish it. */
    if ((size_t)n < sizeof hdr && dg_read_all(s->fd, hdr + n, sizeof hdr - (size_t)n) != DG_OK) {
        s->peer_gone = true;
        set_stop(s, DG_CANCELLED);
        goto interrupt;
    }
    dg_frame_type_t type;
    uint32_t len;
    if (dg_frame_header_decode(hdr, &type, &len) != DG_OK) {
        DG_LOGE(MOD, "bad frame from the front engine=%d slot=%d", s->proc->index, s->idx);
        s->peer_gone = true;
        set_stop(s, DG_CANCELLED);
        goto interrupt;
    }
    while (len > 0) {
        char junk[4096];
        size_t k = len < sizeof junk ? len : sizeof junk;
        if (dg_read_all(s->fd, junk, k) != DG_OK) {
            s->peer_gone = true;
            set_stop(s, DG_CANCELLED);
            goto interrupt;
        }
        len -= (uint32_t)k;
    }
    if (type != DG_FRAME_CANCEL) {
        DG_LOGE(MOD, "frame type %d while busy dropped engine=%d slot=%d", (int)type,
                s->proc->index, s->idx);
        return;
    }
    set_stop(s, DG_CANCELLED);
interrupt:
    if (s->cursor && s->stop_reason != DG_OK) {
        dg_db_cursor_interrupt(s->cursor, s->stop_reason);
        s->last_interrupt_ms = now;
    }
}

static void *watcher_main(void *arg)
{
    eproc_t *e = arg;
    struct pollfd *pfd = calloc((size_t)e->n_slots, sizeof *pfd);
    int *which = calloc((size_t)e->n_slots, sizeof *which);
    if (!pfd || !which) {
        DG_LOGE(MOD, "watcher: out of memory; deadlines are enforced by the front only");
        free(pfd);
        free(which);
        return NULL;
    }
    for (;;) {
        int n = 0;
        int64_t now = dg_now_ms();
        for (int i = 0; i < e->n_slots; i++) {
            eslot_t *s = &e->slots[i];
            pthread_mutex_lock(&s->mu);
            if (s->busy) {
                if (s->deadline_ms >= 0 && now >= s->deadline_ms) {
                    set_stop(s, DG_TIMEOUT);
                }
                /* Repeat the interrupt until the slot returns: one that lands between two
                 * DuckDB tasks can be lost. */
                if (s->stop_reason != DG_OK && s->cursor &&
                    now - s->last_interrupt_ms >= INTERRUPT_REPEAT_MS) {
                    dg_db_cursor_interrupt(s->cursor, s->stop_reason);
                    s->last_interrupt_ms = now;
                }
                if (!s->peer_gone) {
                    pfd[n].fd = s->fd;
                    pfd[n].events = POLLIN;
                    pfd[n].revents = 0;
                    which[n++] = i;
                }
            }
            pthread_mutex_unlock(&s->mu);
        }
        int k = poll(pfd, (nfds_t)n, WATCH_TICK_MS);
        if (k <= 0) {
            continue;
        }
        now = dg_now_ms();
        for (int j = 0; j < n; j++) {
            if (!(pfd[j].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }
            eslot_t *s = &e->slots[which[j]];
            pthread_mutex_lock(&s->mu);
            if (s->busy && !s->peer_gone) {
                watcher_read(s, now);
            }
            pthread_mutex_unlock(&s->mu);
        }
    }
    return NULL;
}

/* ---- start-up ---------------------------------------------------------------------------- */

static void ctl_reply(int ctl_fd, bool ok, const char *error)
{
    dg_buf_t b;
    dg_buf_init(&b, 4096);
    if (ok) {
        dg_buf_printf(&b, "{\"ok\":true,\"pid\":%ld}", (long)getpid());
    } else {
        dg_buf_puts(&b, "{\"ok\":false,\"error\":");
        dg_buf_json_str(&b, error, strlen(error));
        dg_buf_putc(&b, '}');
    }
    if (b.p) {
        dg_frame_write(ctl_fd, DG_FRAME_END, b.p, (uint32_t)b.len);
    }
    dg_buf_free(&b);
}

/* Opens the databases listed in the init JSON. On failure fills err with a message for the
 * operator (the pool logs it and fails start). */
static dg_rc_t open_databases(eproc_t *e, json_t *init, dg_error_t *err)
{
    json_t *dbs = json_object_get(init, "databases");
    uint64_t mem = (uint64_t)json_int_or(init, "memory_limit", 0);
    uint64_t max_temp = (uint64_t)json_int_or(init, "max_temp_bytes", 0);
    int threads = (int)json_int_or(init, "threads", 1);
    const char *temp_dir = json_str_or(init, "temp_dir", NULL);

    if (!json_is_array(dbs)) {
        return dg_error_set(err, DG_PROTOCOL, "init: databases is not an array");
    }
    dg_engine__dbs_opts_t o = {
        .memory_limit = mem,
        .max_temp_bytes = max_temp,
        .threads = threads,
        .temp_root = temp_dir,
    };
    if (dg_engine__dbs_new(&o, json_array_size(dbs), &e->dbs) != DG_OK) {
        return dg_error_set(err, DG_NOMEM, "init: out of memory");
    }
    size_t i;
    json_t *d;
    json_array_foreach(dbs, i, d)
    {
        const char *name = json_str_or(d, "name", NULL);
        const char *path = json_str_or(d, "path", NULL);
        if (!name || !path) {
            return dg_error_set(err, DG_PROTOCOL, "init: database without name or path");
        }
        bool rw = json_is_true(json_object_get(d, "read_write"));
        dg_rc_t rc = dg_engine__dbs_add(e->dbs, name, path, rw, err);
        if (rc != DG_OK) {
            return rc;
        }
    }
    e->n_dbs = dg_engine__dbs_count(e->dbs);
    /* Read-only files are swapped when replaced, also while no request comes (engine_dbs.h). */
    if (dg_engine__dbs_start_refresh(e->dbs) != DG_OK) {
        return dg_error_set(err, DG_INTERNAL, "cannot start the database refresh thread");
    }
    return DG_OK;
}

static void usage_exit(const char *why)
{
    DG_LOGE(MOD, "bad engine command line: %s (this subcommand is started by `serve`)", why);
    _exit(2);
}

int dg_engine_main(int argc, char **argv)
{
    long ctl_fd = -1, slot_fd0 = -1, n_slots = -1, index = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (strcmp(a, "engine") == 0) {
            continue; /* accept argv as `prog engine ...` as well as `engine ...` */
        } else if (strcmp(a, "--ctl-fd") == 0) {
            ok = parse_int(v, 0, INT_MAX, &ctl_fd);
        } else if (strcmp(a, "--slot-fd0") == 0) {
            ok = parse_int(v, 0, INT_MAX, &slot_fd0);
        } else if (strcmp(a, "--slots") == 0) {
            ok = parse_int(v, 1, 4096, &n_slots);
        } else if (strcmp(a, "--index") == 0) {
            ok = parse_int(v, 0, 4096, &index);
        } else {
            usage_exit(a);
        }
        if (!ok) {
            usage_exit(a);
        }
        i++;
    }
    if (ctl_fd < 0 || slot_fd0 < 0 || n_slots < 1) {
        usage_exit("--ctl-fd, --slot-fd0 and --slots are required");
    }

    /* Writes to a dropped slot must fail with EPIPE, not kill the engine; Ctrl-C in a terminal
     * reaches the whole process group, and the front decides when engines stop. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char title[16];
    snprintf(title, sizeof title, "dg-engine-%ld", index);
    prctl(PR_SET_NAME, title); /* what top and /proc/<pid>/comm show */

    dg_buf_t ib;
    dg_buf_init_rc(&ib, DG_ENGINE__MAX_INIT, DG_PROTOCOL);
    dg_frame_type_t type;
    dg_error_t err;
    dg_error_clear(&err);
    eproc_t e = {.index = (int)index, .n_slots = (int)n_slots};
    json_t *init = NULL;

    dg_rc_t rc = dg_frame_read((int)ctl_fd, &type, &ib);
    if (rc != DG_OK || type != DG_FRAME_REQ) {
        DG_LOGE(MOD, "no init message on the control socket engine=%ld", index);
        _exit(2);
    }
    json_error_t jerr;
    init = json_loadb(ib.p, ib.len, 0, &jerr);
    dg_buf_free(&ib);
    if (!init || !json_is_object(init)) {
        ctl_reply((int)ctl_fd, false, "init: not a JSON object");
        _exit(2);
    }
    const char *lvl = json_str_or(init, "log_level", NULL);
    if (lvl && dg_log_level_parse(lvl) >= 0) {
        dg_log_set_level((dg_log_level_t)dg_log_level_parse(lvl));
    }
    rc = open_databases(&e, init, &err);
    if (rc == DG_OK && dg_engine__imports_init(init) != DG_OK) {
        rc = dg_error_set(&err, DG_NOMEM, "init: out of memory");
    }
    if (rc != DG_OK) {
        DG_LOGE(MOD, "engine %ld cannot start: %s", index, err.msg);
        ctl_reply((int)ctl_fd, false, err.msg);
        _exit(1);
    }
    json_decref(init);

    e.slots = calloc((size_t)e.n_slots, sizeof *e.slots);
    if (!e.slots) {
        ctl_reply((int)ctl_fd, false, "out of memory");
        _exit(1);
    }
    for (int i = 0; i < e.n_slots; i++) {
        eslot_t *s = &e.slots[i];
        s->proc = &e;
        s->idx = i;
        s->fd = (int)slot_fd0 + i;
        s->deadline_ms = -1;
        pthread_mutex_init(&s->mu, NULL);
        /* Later execs (none today) must not inherit the slots. */
        fcntl(s->fd, F_SETFD, FD_CLOEXEC);
    }
    fcntl((int)ctl_fd, F_SETFD, FD_CLOEXEC);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < e.n_slots; i++) {
        if (pthread_create(&e.slots[i].thread, &attr, slot_main, &e.slots[i]) != 0) {
            ctl_reply((int)ctl_fd, false, "cannot create slot threads");
            _exit(1);
        }
    }
    pthread_t watcher;
    if (pthread_create(&watcher, &attr, watcher_main, &e) != 0) {
        ctl_reply((int)ctl_fd, false, "cannot create the watcher thread");
        _exit(1);
    }
    pthread_attr_destroy(&attr);
    DG_LOGI(MOD, "engine up index=%ld pid=%ld databases=%zu slots=%d", index, (long)getpid(),
            e.n_dbs, e.n_slots);
    ctl_reply((int)ctl_fd, true, NULL);

    /* The control socket carries nothing after init: EOF means the front is gone or stopping.
     * Exit at once; the databases are read-only, so there is nothing to flush. */
    for (;;) {
        char c;
        ssize_t n = read((int)ctl_fd, &c, 1);
        if (n == 0 || (n < 0 && errno != EINTR)) {
            break;
        }
    }
    DG_LOGD(MOD, "control socket closed, engine exits index=%ld", index);
    _exit(0);
}
