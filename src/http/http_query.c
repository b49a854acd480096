/* Parsing and validation of read-only SQL requests (see http_query.h). Every rule a client can
 * trip maps to one error code, checked in a fixed order: database, body syntax, fields, SQL,
 * format; so a request with several faults always gets the same answer.
 * Thread-safe (jansson is used without shared state). */
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "http/http_query.h"

dg_rc_t dg_http_query_check_db(dg_str_t db, const dg_http_query_limits_t *lim, char out[65],
                               dg_error_t *err)
{
    if (dg_dbname_valid(db.p, db.len)) {
        for (size_t i = 0; i < lim->n_dbs; i++) {
            if (dg_str_eq_c(db, lim->dbs[i].name)) {
                memcpy(out, db.p, db.len);
                out[db.len] = '\0';
                return DG_OK;
            }
        }
    }
    /* The name is echoed only when valid: it is then plain [A-Za-z0-9_-]. */
    if (dg_dbname_valid(db.p, db.len)) {
        return dg_error_set(err, DG_UNKNOWN_DB, "unknown database \"%.*s\"", (int)db.len, db.p);
    }
    return dg_error_set(err, DG_UNKNOWN_DB, "unknown database");
}

void dg_http_query_free(dg_http_query_t *q)
{
    if (!q) {
        return;
    }
    free(q->sql);
    q->sql = NULL;
    q->sql_len = 0;
    if (q->params) {
        json_decref(q->params);
        q->params = NULL;
    }
}

static void query_init(dg_http_query_t *q, const dg_http_query_limits_t *lim)
{
    memset(q, 0, sizeof *q);
    q->timeout_ms = lim->timeout_ms;
    q->format = DG_FMT_JSON;
}

static bool is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
            return false;
        }
    }
    return true;
}

/* Checks and copies the SQL text. */
static dg_rc_t take_sql(dg_http_query_t *q, const char *sql, size_t len,
                        const dg_http_query_limits_t *lim, dg_error_t *err)
{
    if (!sql || len == 0 || is_blank(sql, len)) {
        return dg_error_set(err, DG_MISSING_SQL, "the request has no sql");
    }
    if (len > lim->max_sql_bytes) {
        return dg_error_set(err, DG_SQL_TOO_LARGE, "the SQL text is %zu bytes; the limit is %llu",
                            len, (unsigned long long)lim->max_sql_bytes);
    }
    if (memchr(sql, '\0', len)) {
        return dg_error_set(err, DG_BAD_REQUEST, "the SQL text contains a NUL byte");
    }
    if (!dg_utf8_valid(sql, len)) {
        return dg_error_set(err, DG_BAD_REQUEST, "the SQL text is not valid UTF-8");
    }
    q->sql = dg_str_dup((dg_str_t){sql, len});
    if (!q->sql) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    q->sql_len = len;
    return DG_OK;
}

static dg_rc_t take_timeout(dg_http_query_t *q, long long v, const dg_http_query_limits_t *lim,
                            dg_error_t *err)
{
    if (v <= 0) {
        return dg_error_set(err, DG_BAD_REQUEST, "timeout_ms must be a positive integer");
    }
    /* A request may only lower the deadline. */
    q->timeout_ms = v < lim->timeout_ms ? (int64_t)v : lim->timeout_ms;
    return DG_OK;
}

static dg_rc_t parse_timeout_text(dg_http_query_t *q, const char *s,
                                  const dg_http_query_limits_t *lim, dg_error_t *err)
{
    uint64_t v;
    if (!dg_str_to_u64(dg_str_c(s), &v) || v == 0) {
        return dg_error_set(err, DG_BAD_REQUEST, "timeout_ms must be a positive integer");
    }
    return take_timeout(q, v > (uint64_t)INT64_MAX ? (long long)INT64_MAX : (long long)v, lim, err);
}

dg_rc_t dg_http_query_from_body(dg_str_t db, const char *body, size_t len,
                                const dg_http_args_t *args, const char *accept,
                                const dg_http_query_limits_t *lim, dg_http_query_t *out,
                                dg_error_t *err)
{
    query_init(out, lim);
    json_t *root = NULL;
    const char *format = NULL;
    dg_rc_t rc = dg_http_query_check_db(db, lim, out->db, err);
    if (rc != DG_OK) {
        goto out;
    }
    json_error_t jerr;
    /* JSON_ALLOW_NUL: "\u0000" is valid JSON; a NUL in the SQL is refused by take_sql with a
     * message that says so, instead of calling the body malformed. */
    root = json_loadb(body ? body : "", len,
                      JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        rc = dg_error_set(err, DG_BAD_JSON,
                          "request body is not valid JSON: %s (line %d, column %d)", jerr.text,
                          jerr.line, jerr.column);
        goto out;
    }
    if (!json_is_object(root)) {
        rc = dg_error_set(err, DG_BAD_REQUEST, "the request body must be a JSON object");
        goto out;
    }
    const char *key;
    json_t *v;
    json_t *sql = NULL;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "sql") == 0) {
            if (!json_is_string(v)) {
                rc = dg_error_set(err, DG_BAD_REQUEST, "sql must be a string");
                goto out;
            }
            sql = v;
        } else if (strcmp(key, "params") == 0) {
            if (json_is_null(v)) {
                continue;
            }
            if (!json_is_array(v) && !json_is_object(v)) {
                rc = dg_error_set(err, DG_BAD_PARAMS, "params must be an array or an object");
                goto out;
            }
            out->params = json_incref(v);
        } else if (strcmp(key, "timeout_ms") == 0) {
            if (!json_is_integer(v)) {
                rc = dg_error_set(err, DG_BAD_REQUEST, "timeout_ms must be a positive integer");
                goto out;
            }
            rc = take_timeout(out, (long long)json_integer_value(v), lim, err);
            if (rc != DG_OK) {
                goto out;
            }
        } else if (strcmp(key, "format") == 0) {
            if (!json_is_string(v)) {
                rc = dg_error_set(err, DG_BAD_REQUEST, "format must be a string");
                goto out;
            }
            format = json_string_value(v);
        } else {
            rc = dg_error_set(err, DG_BAD_REQUEST,
                              "unknown field \"%.40s\" (sql, params, timeout_ms, format)", key);
            goto out;
        }
    }
    rc = take_sql(out, sql ? json_string_value(sql) : NULL, sql ? json_string_length(sql) : 0, lim,
                  err);
    if (rc != DG_OK) {
        goto out;
    }
    if (!format && args) {
        size_t count;
        format = dg_http_args_get(args, "format", &count);
        if (count > 1) {
            rc = dg_error_set(err, DG_BAD_REQUEST, "format given more than once");
            goto out;
        }
    }
    rc = dg_http_negotiate(format, accept, &out->format, err);
out:
    if (root) {
        json_decref(root); /* out->params holds its own reference */
    }
    if (rc != DG_OK) {
        dg_http_query_free(out);
    }
    return rc;
}

dg_rc_t dg_http_query_from_args(dg_str_t db, const dg_http_args_t *args, const char *accept,
                                const dg_http_query_limits_t *lim, dg_http_query_t *out,
                                dg_error_t *err)
{
    static const char *const known[] = {"sql", "params", "timeout_ms", "format"};
    query_init(out, lim);
    dg_rc_t rc = dg_http_query_check_db(db, lim, out->db, err);
    if (rc != DG_OK) {
        goto out;
    }
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        size_t count;
        dg_http_args_get(args, known[i], &count);
        if (count > 1) {
            rc = dg_error_set(err, DG_BAD_REQUEST, "%s given more than once", known[i]);
            goto out;
        }
    }
    const char *params = dg_http_args_get(args, "params", NULL);
    if (params && params[0]) {
        json_error_t jerr;
        out->params = json_loads(params, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!out->params) {
            rc = dg_error_set(err, DG_BAD_PARAMS, "params is not valid JSON: %s", jerr.text);
            goto out;
        }
        if (!json_is_array(out->params) && !json_is_object(out->params)) {
            rc = dg_error_set(err, DG_BAD_PARAMS, "params must be a JSON array or object");
            goto out;
        }
    }
    const char *timeout = dg_http_args_get(args, "timeout_ms", NULL);
    if (timeout) {
        rc = parse_timeout_text(out, timeout, lim, err);
        if (rc != DG_OK) {
            goto out;
        }
    }
    const char *sql = dg_http_args_get(args, "sql", NULL);
    rc = take_sql(out, sql, sql ? strlen(sql) : 0, lim, err);
    if (rc != DG_OK) {
        goto out;
    }
    rc = dg_http_negotiate(dg_http_args_get(args, "format", NULL), accept, &out->format, err);
out:
    if (rc != DG_OK) {
        dg_http_query_free(out);
    }
    return rc;
}
