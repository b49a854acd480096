/* Named queries (issue #5, docs/named-queries.md): files `queries/{db}/{name}.sql` whose
 * leading `-- @` comment lines declare the query's options and typed parameters, the parser of
 * that header, the validation of caller values against the declarations, and the registry that
 * (re)loads the files.
 *
 * Layers: named_parse.c (header -> dg_named_query_t, pure), named_value.c (caller values ->
 * typed JSON, pure), named_json.c (listing and OpenAPI schemas, pure), named_set.c (the
 * registry: directory scan, reload on change, refcounted versions).
 *
 * Typed values (what the engine binds, and what a cache key may hash): BOOLEAN -> JSON bool;
 * TINYINT..BIGINT -> JSON integer; DOUBLE -> JSON real; VARCHAR -> JSON string; DATE -> JSON
 * integer, days since 1970-01-01; TIMESTAMP -> JSON integer, microseconds since 1970-01-01
 * 00:00:00; T[] -> JSON array of T; NULL -> JSON null.
 *
 * Threads: a parsed dg_named_query_t is immutable once published (any thread may read it; it is
 * refcounted by the registry). The registry is shared by all connection threads. */
#ifndef DG_NAMED_H
#define DG_NAMED_H

#include <regex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/rc.h"

#define DG_NAMED_MAX_PARAMS 64
#define DG_NAMED_MAX_FILE_BYTES (256u * 1024u)
/* Bad parameters listed in one 422 answer; more are counted, not listed. */
#define DG_NAMED_MAX_BAD 64

typedef enum dg_named_type {
    DG_NAMED_BOOLEAN = 0,
    DG_NAMED_TINYINT,
    DG_NAMED_SMALLINT,
    DG_NAMED_INTEGER,
    DG_NAMED_BIGINT,
    DG_NAMED_DOUBLE,
    DG_NAMED_VARCHAR,
    DG_NAMED_DATE,
    DG_NAMED_TIMESTAMP,
} dg_named_type_t;

/* Lowest role allowed to run a query; the numbers match dg_role_t, PUBLIC is "anyone". */
typedef enum dg_named_role {
    DG_NAMED_ROLE_PUBLIC = 0,
    DG_NAMED_ROLE_VIEWER = 1,
    DG_NAMED_ROLE_ANALYST = 2,
    DG_NAMED_ROLE_ADMIN = 3,
} dg_named_role_t;

typedef struct dg_named_param {
    char name[65]; /* [A-Za-z_][A-Za-z0-9_]{0,63} */
    dg_named_type_t type;
    bool is_list;          /* T[] */
    bool is_required;      /* else default_value applies when absent */
    json_t *default_value; /* owned typed value (json null for default=NULL); NULL when required */
    char *default_text;    /* as written, for listings; NULL when required */
    bool has_min, has_max;
    json_t *min, *max; /* owned typed scalars (integer or real) */
    char *min_text, *max_text;
    int64_t max_length; /* characters (code points); -1 = none */
    int64_t max_items;  /* list items; -1 = none */
    json_t *one_of;     /* owned array of typed scalars; NULL = none */
    char *regex_text;   /* POSIX ERE as written; NULL = none */
    regex_t regex;      /* compiled regex_text (REG_EXTENDED | REG_NOSUB) */
    char *doc;          /* text after ` -- ` on the @param line; NULL = none */
    int line;           /* line of the declaration */
} dg_named_param_t;

typedef struct dg_named_query {
    char db[65];
    char name[65];
    char *description;    /* NULL = none */
    dg_named_role_t role; /* default viewer */
    int64_t cache_ttl_s;  /* -1 = the server's cache_ttl; 0 = never cache */
    bool cache_public;    /* @cache public: shared caches may store it */
    uint64_t max_rows;    /* 0 = the server's cap only */
    int64_t timeout_ms;   /* 0 = the server's deadline only */
    dg_named_param_t *params;
    size_t n_params;
    char *sql; /* the statement after the header, NUL-terminated */
    size_t sql_len;
    uint64_t version;  /* unique per loaded version (process-wide counter): changes on reload */
    _Atomic int refs_; /* private: registry refcount */
} dg_named_query_t;

/* ---- parsing (named_parse.c) ---------------------------------------------------------- */

/* True for 1..64 bytes of [A-Za-z0-9_-] not starting with '-': a query file's stem. */
bool dg_named_name_valid(const char *s, size_t len);
/* Canonical type name ("INTEGER", "VARCHAR[]" when is_list). */
const char *dg_named_type_name(dg_named_type_t t, bool is_list);
/* "public", "viewer", "analyst", "admin". */
const char *dg_named_role_name(dg_named_role_t r);

/* Parses a query file's text (len bytes; need not be NUL-terminated) into a new query named
 * db/name (copied). The header is the leading block of `--` comment and blank lines;
 * directives are the `-- @` lines in it; the SQL follows. On error returns DG_CONFIG with
 * err->msg = "LINE: message" (1-based line), or DG_NOMEM; *out is then NULL. */
dg_rc_t dg_named_parse(const char *db, const char *name, const char *text, size_t len,
                       dg_named_query_t **out, dg_error_t *err);
/* Frees a query (ignores the refcount). NULL is allowed. */
void dg_named_query_free(dg_named_query_t *q);

/* ---- values (named_value.c) ----------------------------------------------------------- */

/* One refused parameter: its name and why, for the 422 INVALID_PARAMS body. */
typedef struct dg_named_bad {
    char name[65];
    char reason[192];
} dg_named_bad_t;

typedef struct dg_named_errors {
    size_t n;      /* listed */
    size_t n_more; /* refused but not listed (over DG_NAMED_MAX_BAD) */
    dg_named_bad_t items[DG_NAMED_MAX_BAD];
} dg_named_errors_t;

/* A caller argument as text (GET query string). */
typedef struct dg_named_kv {
    const char *key;
    const char *value;
} dg_named_kv_t;

/* Converts GET arguments into the typed params object of q: every declared parameter gets a
 * value (defaults filled in); a list parameter takes every occurrence of its key, a scalar
 * exactly one. Keys listed in `ignore` (NULL-terminated, may be NULL) are skipped (format).
 * DG_OK with *out (owned by the caller), DG_INVALID_PARAMS with every problem in errs (unknown
 * keys, repeated scalars, missing required values, bad syntax, constraint failures) and
 * *out NULL, or DG_NOMEM. */
dg_rc_t dg_named_values_from_args(const dg_named_query_t *q, const dg_named_kv_t *args, size_t n,
                                  const char *const *ignore, json_t **out, dg_named_errors_t *errs);
/* The same from a JSON object of values (POST body "params"): numbers for numeric types, true/
 * false for BOOLEAN, strings for VARCHAR/DATE/TIMESTAMP, arrays for lists, null only where the
 * default is NULL. params may be NULL (no values). Errors as dg_named_values_from_args. */
dg_rc_t dg_named_values_from_json(const dg_named_query_t *q, const json_t *params, json_t **out,
                                  dg_named_errors_t *errs);
/* The declared types as a JSON object {"name": "DATE[]", ...} (owned by the caller; NULL on
 * OOM): what the engine needs to bind the typed values. */
json_t *dg_named_types_json(const dg_named_query_t *q);

/* Parses text as a scalar of type t into a typed JSON value (*out owned by the caller). False
 * with reason filled (cap bytes) when the text is not a valid value. Exposed for the parser
 * (defaults, bounds) and tests. */
bool dg_named_scalar_from_text(dg_named_type_t t, const char *text, json_t **out, char *reason,
                               size_t cap);
/* Checks one typed scalar against p's scalar constraints (min/max, max_length, one_of,
 * regex). False with reason filled when it fails. */
bool dg_named_scalar_check(const dg_named_param_t *p, const json_t *v, char *reason, size_t cap);
/* Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t dg_named_days_from_civil(int64_t y, unsigned m, unsigned d);
/* Formats a typed scalar of type t as text ("2024-01-31", "12", "abc") into out. */
void dg_named_scalar_text(dg_named_type_t t, const json_t *v, char *out, size_t cap);

/* ---- JSON descriptions (named_json.c) ------------------------------------------------- */

/* The listing entry of a query: {"name","description","roles","cache_ttl","cache","max_rows",
 * "timeout_ms","params":[{"name","type","required","default","min","max","max_length",
 * "max_items","one_of","regex","description"}]} (absent options left out). NULL on OOM. */
json_t *dg_named_query_json(const dg_named_query_t *q);
/* The JSON Schema (OpenAPI 3.1) of parameter p: type, format, minimum/maximum, maxLength,
 * pattern, enum, maxItems, items, default; nullable parameters also allow "null". */
json_t *dg_named_param_schema(const dg_named_param_t *p);

/* ---- the registry (named_set.c) ------------------------------------------------------- */

typedef struct dg_named dg_named_t;

/* Creates the registry for queries_dir (copied; a missing directory means no named queries)
 * and the databases dbs[0..n) (copied), and loads every file. DG_NOMEM. */
dg_rc_t dg_named_new(const char *queries_dir, const char *const *dbs, size_t n_dbs,
                     dg_named_t **out);
/* Frees the registry; queries still held stay valid until released. NULL is allowed. */
void dg_named_free(dg_named_t *n);
/* Re-scans the files when force or when the last scan is at least a second old: a changed
 * file is re-parsed; a good new version replaces the served one, a broken one is logged with
 * file:line and recorded while the previous good version keeps serving; deleted files stop
 * being served. Only one thread scans at a time (others return at once). Thread-safe. */
void dg_named_refresh(dg_named_t *n, bool force);
/* The served version of db/name, held for the caller (release it), or NULL when there is
 * none. *out_error (may be NULL) gets a copy of the file's current error ("" when none) so a
 * caller can tell "broken" from "absent". Thread-safe. */
const dg_named_query_t *dg_named_get(dg_named_t *n, const char *db, const char *name,
                                     char *out_error, size_t error_cap);
/* Releases a query from dg_named_get. NULL is allowed. */
void dg_named_release(const dg_named_query_t *q);
/* Calls fn for every query file of db (every database when db is NULL), in name order, with
 * its served version (NULL when none) and its current error (NULL when none). Runs under the
 * registry's lock: fn must not call back into the registry. */
typedef void (*dg_named_each_fn)(void *ctx, const char *db, const char *name,
                                 const dg_named_query_t *q, const char *error);
void dg_named_foreach(dg_named_t *n, const char *db, dg_named_each_fn fn, void *ctx);

#endif
