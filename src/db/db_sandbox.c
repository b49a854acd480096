/* The parse-only sandbox check (DESIGN §4 layer 2) for untrusted SQL.
 *
 * DuckDB serializes the parse tree with json_serialize_sql, the SQL bound as a parameter (never
 * spliced into SQL text), on a short-lived internal connection; nothing is bound or executed.
 * Then the whole JSON tree is walked generically, by key, so that a node type this code does not
 * know still has its functions, relations and catalogs checked:
 *   - every "function_name" against the deny-list (db_funcs.c); the function of a TABLE_FUNCTION
 *     reference must be on the allow-list;
 *   - every BASE_TABLE: no path-like names (they would become replacement scans of files), no
 *     denied built-in views;
 *   - every "catalog"/"catalog_name": only the served catalog, system and temp;
 *   - SHOW_REF without a query (SHOW TABLES, SHOW ALL TABLES, SHOW DATABASES...): only the table
 *     listings;
 *   - the VARIANT type and recursive JSON paths ('$..'), which recurse without bound in 1.4;
 *   - size limits: object nesting, node count, IN-list length, CTE count.
 * Every refusal is DG_NOT_READ_ONLY with a message naming the rule and the name. Fail closed:
 * anything unexpected in the serialized form is a refusal.
 *
 * Thread-safe: checks run on pooled internal connections, one check per connection at a time
 * (the pool is guarded by db->check_lock). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "db/db_internal.h"

typedef struct walk {
    const char *catalog;
    const char *const *schemas; /* the catalog's schemas; NULL = not checked */
    size_t n_schemas;
    dg_error_t *err;
    size_t nodes;
} walk_t;

/* Every refusal of this layer; names come from the caller's SQL, so formats cut them. */
#define REFUSE(w, ...) dg_error_set((w)->err, DG_NOT_READ_ONLY, __VA_ARGS__)

static const char *get_str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool catalog_allowed(const walk_t *w, const char *cat)
{
    return cat[0] == '\0' || strcasecmp(cat, w->catalog) == 0 || strcasecmp(cat, "system") == 0 ||
           strcasecmp(cat, "temp") == 0;
}

/* True for a schema of the served catalog, a built-in schema, or a catalog name (a two-part
 * name may be catalog.table). */
static bool schema_known(const walk_t *w, const char *schema)
{
    if (!w->schemas) {
        return true;
    }
    static const char *const builtin[] = {"main", "information_schema", "pg_catalog"};
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
        if (strcasecmp(schema, builtin[i]) == 0) {
            return true;
        }
    }
    for (size_t i = 0; i < w->n_schemas; i++) {
        if (strcasecmp(schema, w->schemas[i]) == 0) {
            return true;
        }
    }
    return catalog_allowed(w, schema);
}

/* A relation name DuckDB would try as a file (replacement scan) or that names a path or URL. */
static bool looks_like_path(const char *name)
{
    return strpbrk(name, "/\\:.~") != NULL;
}

/* Functions whose second argument is a JSON path; '$..' paths recurse without bound. */
static bool is_json_path_fn(const char *name)
{
    static const char *const names[] = {
        "json_extract", "json_extract_string", "json_exists",
        "json_value",   "json_extract_path",   "json_extract_path_text",
        "json_keys",    "json_array_length",   "json_type",
        "->>",          "json_contains",       "json_each",
        "json_tree",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(name, names[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool has_recursive_path(const json_t *v)
{
    if (json_is_string(v)) {
        return strstr(json_string_value(v), "..") != NULL;
    }
    if (json_is_array(v)) {
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e)
        {
            if (has_recursive_path(e)) {
                return true;
            }
        }
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)(uintptr_t)v, k, e)
        {
            if (has_recursive_path(e)) {
                return true;
            }
        }
    }
    return false;
}

/* A JSON path argument must be literal (a constant or a list of constants) and not recursive:
 * a path computed at run time could be '$..x' and crash the engine. */
static dg_rc_t check_json_path(walk_t *w, const char *fn, const json_t *arg, int depth)
{
    const char *cls = get_str(arg, "class");
    if (depth > 8 || !cls) {
        return REFUSE(w, "JSON path rule: the path argument of %.120s must be a literal", fn);
    }
    if (strcmp(cls, "CONSTANT") == 0) {
        if (has_recursive_path(json_object_get(arg, "value"))) {
            return REFUSE(w, "JSON path rule: recursive paths ('..') are not allowed in %.120s",
                          fn);
        }
        return DG_OK;
    }
    if (strcmp(cls, "CAST") == 0) {
        return check_json_path(w, fn, json_object_get(arg, "child"), depth + 1);
    }
    if (strcmp(cls, "FUNCTION") == 0) {
        const char *name = get_str(arg, "function_name");
        const json_t *kids = json_object_get(arg, "children");
        if (name && (strcmp(name, "list_value") == 0 || strcmp(name, "array_value") == 0) &&
            json_is_array(kids)) {
            size_t i;
            const json_t *k;
            json_array_foreach(kids, i, k)
            {
                dg_rc_t rc = check_json_path(w, fn, k, depth + 1);
                if (rc != DG_OK) {
                    return rc;
                }
            }
            return DG_OK;
        }
    }
    return REFUSE(w, "JSON path rule: the path argument of %.120s must be a literal", fn);
}

static dg_rc_t check_function(walk_t *w, const json_t *obj, const char *name)
{
    const dg_db__fn_t *f = dg_db__fn_denied(name);
    if (f) {
        return REFUSE(w, "function rule: %.120s is not allowed (%s)", name, f->reason);
    }
    if (is_json_path_fn(name)) {
        const json_t *kids = json_object_get(obj, "children");
        if (json_is_array(kids) && json_array_size(kids) >= 2) {
            return check_json_path(w, name, json_array_get(kids, 1), 0);
        }
    }
    return DG_OK;
}

static dg_rc_t check_table_function(walk_t *w, const json_t *ref)
{
    const json_t *fn = json_object_get(ref, "function");
    const char *name = json_is_object(fn) ? get_str(fn, "function_name") : NULL;
    if (!name) {
        return REFUSE(w, "table function rule: a table function reference could not be checked");
    }
    const dg_db__fn_t *f = dg_db__fn_find(name, DG_DB__FN_TABLE);
    if (!f) {
        return REFUSE(w, "table function rule: %.120s is not on the allow-list", name);
    }
    if (f->verdict != DG_DB__ALLOW) {
        return REFUSE(w, "table function rule: %.120s is not allowed (%s)", name, f->reason);
    }
    return DG_OK;
}

static dg_rc_t check_base_table(walk_t *w, const json_t *ref)
{
    const char *name = get_str(ref, "table_name");
    if (!name) {
        return REFUSE(w, "relation rule: a table reference could not be checked");
    }
    if (looks_like_path(name)) {
        return REFUSE(w, "relation rule: table name '%.120s' looks like a file path or URL", name);
    }
    const dg_db__fn_t *f = dg_db__fn_denied(name);
    if (f) {
        return REFUSE(w, "relation rule: %.120s is not allowed (%s)", name, f->reason);
    }
    const char *schema = get_str(ref, "schema_name");
    if (schema && looks_like_path(schema)) {
        return REFUSE(w, "relation rule: schema name '%.120s' looks like a file path or URL",
                      schema);
    }
    if (schema && schema[0] && !schema_known(w, schema)) {
        /* `FROM secret.csv` binds as schema "secret", table "csv"; when no such schema exists
         * DuckDB retries the whole name as a file (a replacement scan). */
        return REFUSE(w,
                      "relation rule: '%.60s.%.60s' names no schema of this database (DuckDB "
                      "would read it as a file)",
                      schema, name);
    }
    return DG_OK;
}

static dg_rc_t check_show(walk_t *w, const json_t *ref)
{
    const json_t *q = json_object_get(ref, "query");
    if (json_is_object(q)) {
        return DG_OK; /* DESCRIBE/SUMMARIZE of a query: the query itself is walked */
    }
    const char *name = get_str(ref, "table_name");
    if (name && (strcmp(name, "\"tables\"") == 0 || strcmp(name, "__show_tables_expanded") == 0)) {
        return DG_OK;
    }
    return REFUSE(w, "SHOW rule: SHOW %.120s is not allowed (only SHOW TABLES and DESCRIBE)",
                  name ? name : "");
}

static dg_rc_t walk(walk_t *w, const json_t *v, int depth);

static dg_rc_t walk_object(walk_t *w, const json_t *obj, int depth)
{
    dg_rc_t rc;
    if (depth > DG_DB__MAX_DEPTH) {
        return REFUSE(w, "size rule: the query is nested too deeply (limit %d levels)",
                      DG_DB__MAX_DEPTH);
    }
    const char *type = get_str(obj, "type");
    const char *cls = get_str(obj, "class");
    const char *fname = get_str(obj, "function_name");
    if (fname) {
        rc = check_function(w, obj, fname);
        if (rc != DG_OK) {
            return rc;
        }
    }
    if (type) {
        if (strcmp(type, "TABLE_FUNCTION") == 0) {
            rc = check_table_function(w, obj);
        } else if (strcmp(type, "BASE_TABLE") == 0) {
            rc = check_base_table(w, obj);
        } else if (strcmp(type, "SHOW_REF") == 0) {
            rc = check_show(w, obj);
        } else if (strcmp(type, "COMPARE_IN") == 0 || strcmp(type, "COMPARE_NOT_IN") == 0) {
            const json_t *kids = json_object_get(obj, "children");
            rc = json_array_size(kids) > DG_DB__MAX_IN_LIST + 1
                     ? REFUSE(w, "size rule: IN lists are limited to %d elements",
                              DG_DB__MAX_IN_LIST)
                     : DG_OK;
        } else {
            rc = DG_OK;
        }
        if (rc != DG_OK) {
            return rc;
        }
    }
    if (cls && strcmp(cls, "LAMBDA") == 0) {
        /* `j -> '$.path'` parses as a lambda and binds as json_extract: same path rules. */
        const json_t *e = json_object_get(obj, "expr");
        const char *ecls = json_is_object(e) ? get_str(e, "class") : NULL;
        const char *efn =
            ecls && strcmp(ecls, "FUNCTION") == 0 ? get_str(e, "function_name") : NULL;
        bool is_path_like =
            ecls && (strcmp(ecls, "CONSTANT") == 0 || strcmp(ecls, "PARAMETER") == 0 ||
                     strcmp(ecls, "CAST") == 0 ||
                     (efn && (strcmp(efn, "list_value") == 0 || strcmp(efn, "array_value") == 0)));
        if (is_path_like) {
            rc = check_json_path(w, "->", e, 0);
            if (rc != DG_OK) {
                return rc;
            }
        }
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)(uintptr_t)obj, key, val)
    {
        if (json_is_string(val)) {
            const char *s = json_string_value(val);
            if ((strcmp(key, "catalog") == 0 || strcmp(key, "catalog_name") == 0) &&
                !catalog_allowed(w, s)) {
                return REFUSE(w, "catalog rule: catalog %.120s is not served here", s);
            }
            if (strcmp(key, "id") == 0 && strcmp(s, "VARIANT") == 0) {
                return REFUSE(
                    w, "type rule: the VARIANT type is not allowed (it recurses without bound)");
            }
        } else if (strcmp(key, "cte_map") == 0) {
            const json_t *map = json_object_get(val, "map");
            if (json_array_size(map) > DG_DB__MAX_CTES) {
                return REFUSE(w, "size rule: a WITH clause may define at most %d CTEs",
                              DG_DB__MAX_CTES);
            }
        }
        rc = walk(w, val, depth);
        if (rc != DG_OK) {
            return rc;
        }
    }
    return DG_OK;
}

static dg_rc_t walk(walk_t *w, const json_t *v, int depth)
{
    if (++w->nodes > DG_DB__MAX_NODES) {
        return REFUSE(w, "size rule: the query is too large (limit %d parse-tree nodes)",
                      DG_DB__MAX_NODES);
    }
    if (json_is_object(v)) {
        return walk_object(w, v, depth + 1);
    }
    if (json_is_array(v)) {
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e)
        {
            dg_rc_t rc = walk(w, e, depth);
            if (rc != DG_OK) {
                return rc;
            }
        }
    }
    return DG_OK;
}

dg_rc_t dg_db__sandbox_walk(const char *catalog, const char *const *schemas, size_t n_schemas,
                            const char *json, size_t json_len, dg_error_t *err)
{
    json_error_t jerr;
    walk_t w = {.catalog = catalog,
                .schemas = schemas,
                .n_schemas = n_schemas,
                .err = err,
                .nodes = 0};
    dg_rc_t rc;
    /* jansson refuses documents nested deeper than its own limit: fail closed. Integers are
     * read as reals because query_location can be UINT64_MAX, past json_int_t. */
    json_t *root = json_loadb(json, json_len, JSON_DECODE_INT_AS_REAL, &jerr);
    if (!root) {
        return dg_error_set(err, DG_NOT_READ_ONLY,
                            "the query could not be checked (parse tree too large or deep)");
    }
    const json_t *is_err = json_object_get(root, "error");
    if (!json_is_boolean(is_err)) {
        rc = dg_error_set(err, DG_NOT_READ_ONLY, "the query could not be checked");
        goto out;
    }
    if (json_is_true(is_err)) {
        const char *etype = get_str(root, "error_type");
        const char *emsg = get_str(root, "error_message");
        if (emsg && strstr(emsg, "Only SELECT statements")) {
            rc = dg_error_set(err, DG_NOT_READ_ONLY,
                              "only SELECT statements are allowed (read-only rule)");
        } else if (etype && strcmp(etype, "parser") == 0) {
            rc = dg_error_set(err, DG_SQL_ERROR, "Parser Error: %s", emsg ? emsg : "syntax error");
        } else {
            rc = dg_error_set(err, DG_SQL_ERROR, "%s", emsg ? emsg : "the SQL could not be parsed");
        }
        goto out;
    }
    const json_t *stmts = json_object_get(root, "statements");
    if (!json_is_array(stmts)) {
        rc = dg_error_set(err, DG_NOT_READ_ONLY, "the query could not be checked");
        goto out;
    }
    if (json_array_size(stmts) == 0) {
        rc = dg_error_set(err, DG_SQL_ERROR, "the SQL holds no statement");
        goto out;
    }
    if (json_array_size(stmts) > 1) {
        rc = dg_error_set(err, DG_MULTIPLE_STATEMENTS, "exactly one SQL statement is allowed");
        goto out;
    }
    rc = walk(&w, stmts, 0);
out:
    json_decref(root);
    return rc;
}

static void checker_destroy(dg_db__checker_t *chk)
{
    if (chk->ps) {
        duckdb_destroy_prepare(&chk->ps);
    }
    if (chk->con) {
        duckdb_disconnect(&chk->con);
    }
    chk->ps = NULL;
    chk->con = NULL;
}

/* An idle checker, or a new one; preparing costs more than the check, hence the pool. */
static dg_rc_t checker_take(dg_db_t *db, dg_db__checker_t *out, dg_error_t *err)
{
    bool found = false;
    pthread_mutex_lock(&db->check_lock);
    if (db->n_checkers > 0) {
        *out = db->checkers[--db->n_checkers];
        found = true;
    }
    pthread_mutex_unlock(&db->check_lock);
    if (found) {
        return DG_OK;
    }
    out->con = NULL;
    out->ps = NULL;
    if (duckdb_connect(db->inst, &out->con) != DuckDBSuccess) {
        out->con = NULL;
        return dg_error_set(err, DG_INTERNAL, "could not connect to the database");
    }
    if (duckdb_prepare(out->con, "SELECT json_serialize_sql(?::VARCHAR)", &out->ps) !=
        DuckDBSuccess) {
        dg_rc_t rc = dg_db__error(db, -1, duckdb_prepare_error(out->ps), 0, err);
        checker_destroy(out);
        return rc == DG_NOMEM ? rc : DG_INTERNAL;
    }
    return DG_OK;
}

static void checker_put(dg_db_t *db, dg_db__checker_t *chk)
{
    bool kept = false;
    if (duckdb_clear_bindings(chk->ps) == DuckDBSuccess) {
        pthread_mutex_lock(&db->check_lock);
        if (db->n_checkers < DG_DB__MAX_CHECKERS) {
            db->checkers[db->n_checkers++] = *chk;
            kept = true;
        }
        pthread_mutex_unlock(&db->check_lock);
    }
    if (!kept) {
        checker_destroy(chk);
    }
}

void dg_db__checkers_free(dg_db_t *db)
{
    for (size_t i = 0; i < db->n_checkers; i++) {
        checker_destroy(&db->checkers[i]);
    }
    db->n_checkers = 0;
}

static dg_rc_t count_statements(dg_db_t *db, duckdb_connection con, const char *sql,
                                size_t sql_len, dg_error_t *err)
{
    char *text = strndup(sql, sql_len);
    if (!text) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    duckdb_extracted_statements ext = NULL;
    idx_t n = duckdb_extract_statements(con, text, &ext);
    dg_rc_t rc = DG_OK;
    if (n == 0) {
        const char *e = ext ? duckdb_extract_statements_error(ext) : NULL;
        rc = e ? dg_db__error(db, -1, e, 0, err)
               : dg_error_set(err, DG_SQL_ERROR, "the SQL holds no statement");
    } else if (n > 1) {
        rc = dg_error_set(err, DG_MULTIPLE_STATEMENTS,
                          "exactly one SQL statement is allowed (a PIVOT without an explicit IN "
                          "list counts as several: DuckDB expands it into extra statements)");
    }
    duckdb_destroy_extracted(&ext);
    free(text);
    return rc;
}

/* ---- determinism, for the result cache ----
 * A statement is deterministic when its result depends only on the data: it calls no volatile
 * function (db_funcs.c), names none of the SQL keywords that bind to one when written without
 * parentheses (DuckDB reads `current_date` as a column reference first), and samples no rows.
 * Unknown shapes cannot make a volatile call look deterministic: every function_name anywhere
 * in the tree is checked. */
static const char *const value_keywords[] = {
    "current_date",   "current_time",   "current_timestamp",
    "localtime",      "localtimestamp", "current_catalog",
    "current_schema", "current_role",   "current_user",
    "session_user",   "user",
};

static bool is_value_keyword(const char *name)
{
    for (size_t i = 0; i < sizeof value_keywords / sizeof value_keywords[0]; i++) {
        if (strcasecmp(value_keywords[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static bool volatile_walk(const json_t *v, int depth)
{
    if (depth > DG_DB__MAX_DEPTH + 8) {
        return true; /* deeper than the sandbox admits: do not vouch for it */
    }
    if (json_is_array(v)) {
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e)
        {
            if (volatile_walk(e, depth)) {
                return true;
            }
        }
        return false;
    }
    if (!json_is_object(v)) {
        return false;
    }
    const char *fn = get_str(v, "function_name");
    if (fn && dg_db__fn_is_volatile(fn)) {
        return true;
    }
    const char *cls = get_str(v, "class");
    if (cls && strcmp(cls, "COLUMN_REF") == 0) {
        const json_t *names = json_object_get(v, "column_names");
        const char *n0 = json_string_value(json_array_get(names, 0));
        if (json_array_size(names) == 1 && n0 && is_value_keyword(n0)) {
            return true;
        }
    }
    if (json_is_object(json_object_get(v, "sample"))) {
        return true; /* USING SAMPLE / TABLESAMPLE: a new sample per run */
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)(uintptr_t)v, key, val)
    {
        if (volatile_walk(val, depth + 1)) {
            return true;
        }
    }
    return false;
}

bool dg_db__tree_is_volatile(const char *json, size_t json_len)
{
    json_t *root = json_loadb(json, json_len, JSON_DECODE_INT_AS_REAL, NULL);
    bool is_volatile = !root || volatile_walk(json_object_get(root, "statements"), 0);
    json_decref(root);
    return is_volatile;
}

dg_rc_t dg_db__sandbox_check(dg_db_t *db, const char *sql, size_t sql_len, dg_error_t *err)
{
    return dg_db__sandbox_check_ex(db, sql, sql_len, NULL, err);
}

dg_rc_t dg_db__sandbox_check_ex(dg_db_t *db, const char *sql, size_t sql_len, bool *out_volatile,
                                dg_error_t *err)
{
    dg_db__checker_t chk = {NULL, NULL};
    duckdb_result res;
    bool has_res = false;
    duckdb_data_chunk chunk = NULL;
    dg_rc_t rc;

    rc = checker_take(db, &chk, err);
    if (rc != DG_OK) {
        return rc;
    }
    /* Count statements first (parse only) so `SELECT 1; DROP TABLE t` is reported as what it
     * is, several statements, rather than as whichever of them is not a SELECT. */
    rc = count_statements(db, chk.con, sql, sql_len, err);
    if (rc != DG_OK) {
        goto out;
    }
    if (duckdb_bind_varchar_length(chk.ps, 1, sql, sql_len) != DuckDBSuccess) {
        rc = dg_error_set(err, DG_SQL_ERROR, "the SQL is not valid UTF-8");
        goto out;
    }
    has_res = true;
    if (duckdb_execute_prepared(chk.ps, &res) != DuckDBSuccess) {
        rc = dg_db__error(db, (int)duckdb_result_error_type(&res), duckdb_result_error(&res), 0,
                          err);
        goto out;
    }
    chunk = duckdb_fetch_chunk(res);
    if (!chunk || duckdb_data_chunk_get_size(chunk) != 1) {
        rc = dg_error_set(err, DG_INTERNAL, "the SQL could not be checked");
        goto out;
    }
    duckdb_vector vec = duckdb_data_chunk_get_vector(chunk, 0);
    const uint64_t *valid = duckdb_vector_get_validity(vec);
    if (valid && !(valid[0] & 1)) {
        rc = dg_error_set(err, DG_NOT_READ_ONLY, "the query could not be checked");
        goto out;
    }
    const dg_strval_t *sv = duckdb_vector_get_data(vec);
    uint32_t len;
    const char *json = dg_strval_data(sv, &len);
    rc = dg_db__sandbox_walk(db->catalog, (const char *const *)db->schemas, db->n_schemas, json,
                             len, err);
    if (rc == DG_OK && out_volatile) {
        *out_volatile = dg_db__tree_is_volatile(json, len);
    }
    if (rc == DG_SQL_ERROR && err) {
        /* Re-record through the scrubber: parser messages quote the caller's SQL only, but
         * keep one path for every message that leaves the module. */
        char tmp[sizeof err->msg];
        dg_db__scrub(db, err->msg, tmp, sizeof tmp);
        memcpy(err->msg, tmp, sizeof tmp);
    }
out:
    if (chunk) {
        duckdb_destroy_data_chunk(&chunk);
    }
    if (has_res) {
        duckdb_destroy_result(&res);
    }
    checker_put(db, &chk);
    return rc;
}
