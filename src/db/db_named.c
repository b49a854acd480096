/* Named queries on long-lived connections with cached prepared statements (DESIGN §4), and the
 * typed binding of their parameters.
 *
 * Named queries are written by the data owner, so their SQL skips the parse-tree check of raw
 * SQL; it is still checked once, when first prepared on a connection: exactly one statement, of
 * type SELECT. Only parameter values come from callers, and they are always bound.
 *
 * Each dg_db_t keeps a pool of idle "named connections" (one duckdb_connection each with a
 * small LRU of prepared statements keyed by the SQL text). A query checks one out for the life
 * of its cursor and dg_db_cursor_free puts it back, so a connection and its statements are only
 * ever used by one thread at a time. The pool belongs to the instance: dg_db_close frees it, and
 * a reopened database (a new dg_db_t) starts with an empty one, so no statement prepared against
 * an old file is ever reused. DuckDB resets a connection's interrupt flag when the next query
 * starts, so an interrupted query leaves its connection reusable.
 *
 * Threads: the pool is guarded by db->named_lock; a checked-out connection is confined to the
 * cursor's thread. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "db/db_internal.h"

#define NAMED_STMTS 16 /* prepared statements cached per connection */

typedef struct nstmt {
    char *sql;
    size_t sql_len;
    duckdb_prepared_statement ps;
    uint64_t last_use;
    bool is_deterministic; /* cacheable result (dg_db_sql_is_deterministic), once per prepare */
} nstmt_t;

struct dg_db__ncon {
    struct dg_db__ncon *next;
    duckdb_connection con;
    size_t n;
    nstmt_t st[NAMED_STMTS];
    uint64_t tick;
};

/* Statements prepared (statement-cache misses), process-wide: see dg_db_named_prepares. */
static atomic_uint_fast64_t g_prepares;

uint64_t dg_db_named_prepares(void)
{
    return (uint64_t)atomic_load(&g_prepares);
}

static void ncon_free(dg_db__ncon_t *nc)
{
    for (size_t i = 0; i < nc->n; i++) {
        duckdb_destroy_prepare(&nc->st[i].ps);
        free(nc->st[i].sql);
    }
    if (nc->con) {
        duckdb_disconnect(&nc->con);
    }
    free(nc);
}

void dg_db__named_put(dg_db_t *db, dg_db__ncon_t *nc)
{
    if (!nc) {
        return;
    }
    pthread_mutex_lock(&db->named_lock);
    nc->next = db->named_idle;
    db->named_idle = nc;
    pthread_mutex_unlock(&db->named_lock);
}

void dg_db__named_close(dg_db_t *db)
{
    dg_db__ncon_t *nc = db->named_idle;
    db->named_idle = NULL;
    while (nc) {
        dg_db__ncon_t *next = nc->next;
        ncon_free(nc);
        nc = next;
    }
}

static dg_rc_t checkout(dg_db_t *db, dg_db__ncon_t **out, dg_error_t *err)
{
    pthread_mutex_lock(&db->named_lock);
    dg_db__ncon_t *nc = db->named_idle;
    if (nc) {
        db->named_idle = nc->next;
        nc->next = NULL;
    }
    pthread_mutex_unlock(&db->named_lock);
    if (!nc) {
        nc = calloc(1, sizeof *nc);
        if (!nc) {
            return dg_error_set(err, DG_NOMEM, "out of memory");
        }
        if (duckdb_connect(db->inst, &nc->con) != DuckDBSuccess) {
            free(nc);
            return dg_error_set(err, DG_INTERNAL, "could not connect to the database");
        }
    }
    *out = nc;
    return DG_OK;
}

/* The cached statement for sql on nc, preparing (and checking) it on a miss. */
static dg_rc_t statement(dg_db_t *db, dg_db__ncon_t *nc, const char *sql, size_t len,
                         duckdb_prepared_statement *out, bool *out_det, dg_error_t *err)
{
    nc->tick++;
    for (size_t i = 0; i < nc->n; i++) {
        if (nc->st[i].sql_len == len && memcmp(nc->st[i].sql, sql, len) == 0) {
            nc->st[i].last_use = nc->tick;
            *out = nc->st[i].ps;
            *out_det = nc->st[i].is_deterministic;
            return DG_OK;
        }
    }
    dg_rc_t rc = DG_OK;
    char *text = strndup(sql, len);
    duckdb_extracted_statements ext = NULL;
    duckdb_prepared_statement ps = NULL;
    if (!text) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    idx_t n = duckdb_extract_statements(nc->con, text, &ext);
    if (n == 0) {
        const char *e = ext ? duckdb_extract_statements_error(ext) : NULL;
        rc = e ? dg_db__error(db, -1, e, 0, err)
               : dg_error_set(err, DG_SQL_ERROR, "the named query holds no statement");
        goto out;
    }
    if (n > 1) {
        rc = dg_error_set(err, DG_MULTIPLE_STATEMENTS,
                          "a named query must be exactly one SQL statement");
        goto out;
    }
    atomic_fetch_add(&g_prepares, 1);
    if (duckdb_prepare_extracted_statement(nc->con, ext, 0, &ps) != DuckDBSuccess) {
        rc = dg_db__error(db, -1, duckdb_prepare_error(ps), 0, err);
        goto out;
    }
    if (duckdb_prepared_statement_type(ps) != DUCKDB_STATEMENT_TYPE_SELECT) {
        rc = dg_error_set(err, DG_NOT_READ_ONLY, "a named query must be a SELECT statement");
        goto out;
    }
    size_t slot = nc->n;
    if (slot == NAMED_STMTS) {
        slot = 0; /* evict the least recently used */
        for (size_t i = 1; i < nc->n; i++) {
            if (nc->st[i].last_use < nc->st[slot].last_use) {
                slot = i;
            }
        }
        duckdb_destroy_prepare(&nc->st[slot].ps);
        free(nc->st[slot].sql);
    } else {
        nc->n++;
    }
    /* The result cache may keep only results that depend on the data alone. */
    *out_det = dg_db_sql_is_deterministic(db, sql, len);
    nc->st[slot] = (nstmt_t){
        .sql = text, .sql_len = len, .ps = ps, .last_use = nc->tick, .is_deterministic = *out_det};
    text = NULL;
    *out = ps;
    ps = NULL;
out:
    if (ps) {
        duckdb_destroy_prepare(&ps);
    }
    if (ext) {
        duckdb_destroy_extracted(&ext);
    }
    free(text);
    return rc;
}

dg_rc_t dg_db_named_start(dg_db_t *db, const dg_db_query_t *q, dg_db_cursor_t **out,
                          dg_error_t *err)
{
    *out = NULL;
    if (!q->sql || q->sql_len == 0 || memchr(q->sql, '\0', q->sql_len)) {
        return dg_error_set(err, DG_SQL_ERROR, "the named query has no SQL");
    }
    dg_db__ncon_t *nc = NULL;
    dg_rc_t rc = checkout(db, &nc, err);
    if (rc != DG_OK) {
        return rc;
    }
    duckdb_prepared_statement ps = NULL;
    bool is_deterministic = false;
    rc = statement(db, nc, q->sql, q->sql_len, &ps, &is_deterministic, err);
    if (rc != DG_OK) {
        dg_db__named_put(db, nc);
        return rc;
    }
    duckdb_clear_bindings(ps);
    rc = dg_db__bind_params(ps, q, err);
    dg_db_cursor_t *c = rc == DG_OK ? calloc(1, sizeof *c) : NULL;
    if (rc == DG_OK && !c) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory");
    }
    if (rc != DG_OK) {
        duckdb_clear_bindings(ps); /* no caller value stays bound on the idle connection */
        dg_db__named_put(db, nc);
        return rc;
    }
    /* The cursor borrows the connection and the statement; freeing it returns them. */
    c->db = db;
    c->con = nc->con;
    c->ps = ps;
    c->named = nc;
    c->is_deterministic = is_deterministic;
    atomic_init(&c->reason, 0);
    return dg_db__cursor_start(c, q, out, err);
}

/* ---- typed binding ---------------------------------------------------------------------- */

typedef enum { T_BOOL, T_I8, T_I16, T_I32, T_I64, T_F64, T_STR, T_DATE, T_TS } vtype_t;

static bool parse_vtype(const char *s, vtype_t *out, bool *is_list)
{
    static const struct {
        const char *name;
        vtype_t t;
    } names[] = {{"BOOLEAN", T_BOOL}, {"TINYINT", T_I8}, {"SMALLINT", T_I16},
                 {"INTEGER", T_I32},  {"BIGINT", T_I64}, {"DOUBLE", T_F64},
                 {"VARCHAR", T_STR},  {"DATE", T_DATE},  {"TIMESTAMP", T_TS}};
    size_t len = strlen(s);
    *is_list = len > 2 && strcmp(s + len - 2, "[]") == 0;
    if (*is_list) {
        len -= 2;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i].name) == len && strncmp(names[i].name, s, len) == 0) {
            *out = names[i].t;
            return true;
        }
    }
    return false;
}

static bool int_fits(vtype_t t, json_int_t v)
{
    switch (t) {
    case T_I8:
        return v >= INT8_MIN && v <= INT8_MAX;
    case T_I16:
        return v >= INT16_MIN && v <= INT16_MAX;
    case T_I32:
    case T_DATE:
        return v >= INT32_MIN && v <= INT32_MAX;
    default:
        return true;
    }
}

/* A DuckDB value of type t from a typed JSON scalar; NULL when it does not have that shape. */
static duckdb_value make_value(vtype_t t, const json_t *v)
{
    switch (t) {
    case T_BOOL:
        return json_is_boolean(v) ? duckdb_create_bool(json_is_true(v)) : NULL;
    case T_F64:
        return json_is_number(v) ? duckdb_create_double(json_number_value(v)) : NULL;
    case T_STR:
        return json_is_string(v)
                   ? duckdb_create_varchar_length(json_string_value(v), json_string_length(v))
                   : NULL;
    default:
        break;
    }
    if (!json_is_integer(v) || !int_fits(t, json_integer_value(v))) {
        return NULL;
    }
    json_int_t x = json_integer_value(v);
    switch (t) {
    case T_I8:
        return duckdb_create_int8((int8_t)x);
    case T_I16:
        return duckdb_create_int16((int16_t)x);
    case T_I32:
        return duckdb_create_int32((int32_t)x);
    case T_DATE:
        return duckdb_create_date((duckdb_date){.days = (int32_t)x});
    case T_TS:
        return duckdb_create_timestamp((duckdb_timestamp){.micros = (int64_t)x});
    default:
        return duckdb_create_int64((int64_t)x);
    }
}

static duckdb_type duck_type(vtype_t t)
{
    static const duckdb_type map[] = {
        [T_BOOL] = DUCKDB_TYPE_BOOLEAN, [T_I8] = DUCKDB_TYPE_TINYINT,
        [T_I16] = DUCKDB_TYPE_SMALLINT, [T_I32] = DUCKDB_TYPE_INTEGER,
        [T_I64] = DUCKDB_TYPE_BIGINT,   [T_F64] = DUCKDB_TYPE_DOUBLE,
        [T_STR] = DUCKDB_TYPE_VARCHAR,  [T_DATE] = DUCKDB_TYPE_DATE,
        [T_TS] = DUCKDB_TYPE_TIMESTAMP,
    };
    return map[t];
}

/* The value of one parameter: a scalar, a list (all items of the list's type) or NULL. */
static dg_rc_t bind_typed_one(duckdb_prepared_statement ps, idx_t idx, const char *name,
                              const char *type, const json_t *v, dg_error_t *err)
{
    vtype_t t;
    bool is_list;
    if (!parse_vtype(type, &t, &is_list)) {
        return dg_error_set(err, DG_BAD_PARAMS, "parameter $%.60s: unknown type %.40s", name, type);
    }
    if (json_is_null(v)) {
        return duckdb_bind_null(ps, idx) == DuckDBSuccess
                   ? DG_OK
                   : dg_error_set(err, DG_BAD_PARAMS, "parameter $%.60s could not be bound", name);
    }
    duckdb_value val = NULL;
    dg_rc_t rc = DG_OK;
    if (!is_list) {
        val = make_value(t, v);
    } else if (json_is_array(v)) {
        size_t n = json_array_size(v);
        duckdb_value *items = calloc(n ? n : 1, sizeof *items);
        duckdb_logical_type child = duckdb_create_logical_type(duck_type(t));
        bool ok = items && child;
        for (size_t i = 0; ok && i < n; i++) {
            ok = (items[i] = make_value(t, json_array_get(v, i))) != NULL;
        }
        if (ok) {
            val = duckdb_create_list_value(child, items, (idx_t)n);
        }
        for (size_t i = 0; items && i < n; i++) {
            if (items[i]) {
                duckdb_destroy_value(&items[i]);
            }
        }
        free(items);
        if (child) {
            duckdb_destroy_logical_type(&child);
        }
    }
    if (!val) {
        return dg_error_set(err, DG_BAD_PARAMS, "parameter $%.60s: the value is not a %.40s", name,
                            type);
    }
    if (duckdb_bind_value(ps, idx, val) != DuckDBSuccess) {
        rc = dg_error_set(err, DG_BAD_PARAMS, "parameter $%.60s could not be bound", name);
    }
    duckdb_destroy_value(&val);
    return rc;
}

dg_rc_t dg_db__bind_typed(duckdb_prepared_statement ps, const dg_db_query_t *q, dg_error_t *err)
{
    json_error_t jerr;
    json_t *types = json_loadb(q->param_types, q->param_types_len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *vals = q->params_json && q->params_len
                       ? json_loadb(q->params_json, q->params_len, JSON_REJECT_DUPLICATES, &jerr)
                       : json_object();
    dg_rc_t rc = DG_OK;
    if (!json_is_object(types) || !json_is_object(vals)) {
        rc = dg_error_set(err, DG_BAD_PARAMS, "typed parameters need JSON objects");
        goto out;
    }
    if (json_object_size(types) != duckdb_nparams(ps) ||
        json_object_size(vals) != json_object_size(types)) {
        rc = dg_error_set(err, DG_BAD_PARAMS,
                          "the query has %llu parameter(s) but %zu were declared and %zu given",
                          (unsigned long long)duckdb_nparams(ps), json_object_size(types),
                          json_object_size(vals));
        goto out;
    }
    const char *name;
    json_t *type;
    json_object_foreach(types, name, type)
    {
        json_t *v = json_object_get(vals, name);
        idx_t idx = 0;
        if (!json_is_string(type) || !v) {
            rc = dg_error_set(err, DG_BAD_PARAMS, "parameter $%.60s has no type or value", name);
            break;
        }
        if (duckdb_bind_parameter_index(ps, &idx, name) != DuckDBSuccess || idx == 0) {
            rc = dg_error_set(err, DG_BAD_PARAMS, "the query has no parameter $%.60s", name);
            break;
        }
        rc = bind_typed_one(ps, idx, name, json_string_value(type), v, err);
        if (rc != DG_OK) {
            break;
        }
    }
out:
    json_decref(types);
    json_decref(vals);
    return rc;
}
