/* The query log inside engine 0 (see engine_qlog.h): opening the store on first use, appends
 * with retention, and the parameters of the listing query.
 *
 * Retention: the row and size caps are checked after every append (a count and the file's
 * used blocks are cheap in DuckDB); the age
 * limit is swept on the first append of the process and then at most once a minute, since
 * retention is counted in days. */
#include "engine/engine_qlog.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/dgtime.h"
#include "core/log.h"
#include "db/db_qlog.h"

#define MOD "engine"
/* DuckDB memory of the store's instance: appends and a top-N listing need little. */
#define QLOG_MEMORY_LIMIT ((uint64_t)128 << 20)
#define AGE_SWEEP_MS 60000
#define MS_PER_DAY INT64_C(86400000)

static struct {
    pthread_mutex_t mu;
    dg_db_t *db; /* the store, once opened; never closed (the process exits) */
    char *path;  /* where it was opened from */
    char *front; /* boot id of the front whose sequence numbers last_seq tracks */
    uint64_t last_seq;
    bool is_known; /* last_seq was read from the table for this front */
    int64_t next_age_sweep_ms;
    uint64_t size_floor; /* blocks a size trim could not get under max_bytes (0 = none) */
} st = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Opens the store from req's path. Called with st.mu held. */
static dg_rc_t open_locked(int engine_index, const json_t *req, dg_error_t *err)
{
    if (engine_index != 0) {
        return dg_error_set(err, DG_FORBIDDEN, "the query log lives in engine 0");
    }
    const char *path = json_string_value(json_object_get(req, "path"));
    if (!path || !*path) {
        return dg_error_set(err, DG_BAD_REQUEST, "query log request without path");
    }
    if (st.db) {
        if (strcmp(path, st.path) != 0) {
            return dg_error_set(err, DG_BAD_REQUEST, "the query log is already open elsewhere");
        }
        return DG_OK;
    }
    char *copy = strdup(path);
    if (!copy) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    dg_rc_t rc = dg_db_qlog_open(path, QLOG_MEMORY_LIMIT, &st.db, err);
    if (rc != DG_OK) {
        DG_LOGE(MOD, "cannot open the query log: %s", err->msg);
        free(copy);
        return rc;
    }
    st.path = copy;
    DG_LOGI(MOD, "query log open");
    return DG_OK;
}

dg_rc_t dg_engine__qlog_db(int engine_index, const json_t *req, dg_db_t **out, dg_error_t *err)
{
    pthread_mutex_lock(&st.mu);
    dg_rc_t rc = open_locked(engine_index, req, err);
    *out = rc == DG_OK ? st.db : NULL;
    pthread_mutex_unlock(&st.mu);
    return rc;
}

dg_db_t *dg_engine__qlog_db_if_open(void)
{
    pthread_mutex_lock(&st.mu);
    dg_db_t *db = st.db;
    pthread_mutex_unlock(&st.mu);
    return db;
}

static int64_t int_or(const json_t *o, const char *key, int64_t dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

/* Applies retention when due. Called with st.mu held; failures are logged, not returned: the
 * rows are stored, and the next append tries again. */
static uint64_t retain_locked(const json_t *req)
{
    int64_t days = int_or(req, "retention_days", 0);
    int64_t max_rows = int_or(req, "max_rows", 0);
    int64_t max_bytes = int_or(req, "max_bytes", 0);
    int64_t now = dg_now_ms();
    int64_t cutoff = 0;
    if (days > 0 && now >= st.next_age_sweep_ms) {
        cutoff = dg_wall_ms() - days * MS_PER_DAY;
        st.next_age_sweep_ms = now + AGE_SWEEP_MS;
    }
    if (cutoff <= 0 && max_rows <= 0 && max_bytes <= 0) {
        return 0;
    }
    uint64_t deleted = 0, used = 0;
    dg_error_t err;
    dg_error_clear(&err);
    uint64_t cap = max_bytes > 0 ? (uint64_t)max_bytes : 0;
    if (dg_db_qlog_retain(st.db, cutoff, max_rows > 0 ? (uint64_t)max_rows : 0, cap, st.size_floor,
                          &deleted, &used, &err) != DG_OK) {
        DG_LOGW(MOD, "query log retention failed: %s", err.msg);
    } else if (cap > 0) {
        st.size_floor = used > cap ? used : 0;
    }
    return deleted;
}

dg_rc_t dg_engine__qlog_append(int engine_index, const json_t *req, dg_buf_t *out, dg_error_t *err)
{
    const char *front = json_string_value(json_object_get(req, "front"));
    const json_t *rows = json_object_get(req, "rows");
    if (!front || !*front || !json_is_array(rows)) {
        return dg_error_set(err, DG_BAD_REQUEST, "qlog_append needs front and rows");
    }
    pthread_mutex_lock(&st.mu);
    dg_rc_t rc = open_locked(engine_index, req, err);
    if (rc == DG_OK && (!st.front || strcmp(st.front, front) != 0)) {
        /* A new front (a restart of the server): its sequence numbers start again. */
        char *copy = strdup(front);
        if (!copy) {
            rc = dg_error_set(err, DG_NOMEM, "out of memory");
        } else {
            free(st.front);
            st.front = copy;
            st.is_known = false;
            st.last_seq = 0;
        }
    }
    size_t appended = 0;
    uint64_t deleted = 0;
    if (rc == DG_OK) {
        rc = dg_db_qlog_append(st.db, st.front, rows, &st.last_seq, &st.is_known, &appended, err);
    }
    if (rc == DG_OK) {
        deleted = retain_locked(req);
        rc = dg_buf_printf(out, "{\"acked\":%llu,\"appended\":%zu,\"deleted\":%llu}",
                           (unsigned long long)st.last_seq, appended, (unsigned long long)deleted);
    }
    pthread_mutex_unlock(&st.mu);
    return rc;
}

char *dg_engine__qlog_params(const json_t *req)
{
    const char *db = json_string_value(json_object_get(req, "filter_db"));
    json_t *p = json_pack("{s:s, s:I, s:I, s:I, s:I}", "db", db ? db : "", "slo",
                          (json_int_t)int_or(req, "status_lo", 0), "shi",
                          (json_int_t)int_or(req, "status_hi", 999), "since_us",
                          (json_int_t)int_or(req, "since_us", 0), "limit",
                          (json_int_t)int_or(req, "limit", 100));
    char *text = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    return text;
}
