/* Internals shared by the files of src/db. Only src/db (and its unit test) include this header,
 * and with it duckdb.h. Thread affinity is stated per declaration. */
#ifndef DG_DB_INTERNAL_H
#define DG_DB_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <duckdb.h>

#include "core/batch.h"
#include "core/rc.h"
#include "db/db.h"

/* Paths scrubbed out of every message that leaves this module. */
#define DG_DB__MAX_SCRUB 8

/* An internal connection with the parse-check statement prepared on it. The untrusted SQL is
 * only ever a bound parameter of json_serialize_sql there, never executed, so reusing the
 * connection across checks carries no caller state. */
typedef struct dg_db__checker {
    duckdb_connection con;
    duckdb_prepared_statement ps;
} dg_db__checker_t;

#define DG_DB__MAX_CHECKERS 16

struct dg_db {
    duckdb_database inst;
    pthread_mutex_t check_lock; /* guards checkers/n_checkers */
    bool has_check_lock;
    size_t n_checkers;
    dg_db__checker_t checkers[DG_DB__MAX_CHECKERS]; /* idle checkers */
    char *catalog;                                  /* DuckDB catalog name of the file: its stem */
    bool read_only;
    size_t n_scrub;
    char *scrub[DG_DB__MAX_SCRUB]; /* longest first, so a directory never hides its file */
};

/* ---- Function and relation classification (db_funcs.c): data, not code. ---- */

typedef enum dg_db__fn_kind {
    DG_DB__FN_SCALAR = 0, /* scalar function or scalar macro */
    DG_DB__FN_AGGREGATE,
    DG_DB__FN_TABLE, /* table function or table macro */
    DG_DB__FN_VIEW,  /* built-in view in the system catalog */
} dg_db__fn_kind_t;

typedef enum dg_db__verdict {
    DG_DB__ALLOW = 0,
    DG_DB__DENY,
} dg_db__verdict_t;

typedef struct dg_db__fn {
    const char *name;
    dg_db__fn_kind_t kind;
    dg_db__verdict_t verdict;
    const char *reason; /* the rule, as shown to callers in refusals */
    bool is_optional;   /* absent from this DuckDB build on purpose (kept as defence in depth) */
} dg_db__fn_t;

extern const dg_db__fn_t dg_db__fns[];
extern const size_t dg_db__n_fns;

/* The entry for name (ASCII case-insensitive) of the given kind, or NULL. */
const dg_db__fn_t *dg_db__fn_find(const char *name, dg_db__fn_kind_t kind);
/* The first DENY entry for name of any kind, or NULL. */
const dg_db__fn_t *dg_db__fn_denied(const char *name);

/* ---- Sandbox (db_sandbox.c) ---- */

/* Parse-tree limits (DESIGN §4 layer 2): cheap refusals for the query shapes that make DuckDB
 * use unbounded stack or memory before any interrupt can act. */
#define DG_DB__MAX_DEPTH 200     /* nesting of JSON objects in the serialized parse tree */
#define DG_DB__MAX_NODES 200000  /* JSON values in the serialized parse tree */
#define DG_DB__MAX_IN_LIST 10000 /* elements of one IN (...) list */
#define DG_DB__MAX_CTES 100      /* common table expressions in one WITH */

/* Checks untrusted SQL without preparing it: serializes the parse tree with json_serialize_sql
 * (the SQL bound as a parameter) on a short-lived internal connection and walks it.
 * DG_OK, DG_NOT_READ_ONLY (message names the rule and the function/table), DG_SQL_ERROR,
 * DG_MULTIPLE_STATEMENTS, DG_NOMEM, DG_INTERNAL. Thread-safe. */
dg_rc_t dg_db__sandbox_check(dg_db_t *db, const char *sql, size_t sql_len, dg_error_t *err);
/* Releases the idle checkers (dg_db_close). */
void dg_db__checkers_free(dg_db_t *db);
/* The walk alone, on the JSON text json_serialize_sql produced (exposed for tests). */
dg_rc_t dg_db__sandbox_walk(const char *catalog, const char *json, size_t json_len,
                            dg_error_t *err);

/* ---- Errors (db.c) ---- */

/* Maps a DuckDB error (type when known, else -1, and message) to a code and records it in err
 * with the server paths scrubbed. `reason` is the interrupt reason (0 = none). Returns the code. */
dg_rc_t dg_db__error(const dg_db_t *db, int error_type, const char *msg, int reason,
                     dg_error_t *err);
/* Copies msg into out (cap bytes) with every known server path replaced by "<path>". */
void dg_db__scrub(const dg_db_t *db, const char *msg, char *out, size_t cap);

/* ---- Types and vectors (db_types.c) ---- */

/* A list of allocations freed together: the type tree and vector shells of one cursor. */
typedef struct dg_db__pool {
    void **ptrs;
    size_t n, cap;
} dg_db__pool_t;

void *dg_db__pool_alloc(dg_db__pool_t *pool, size_t size); /* zeroed; NULL on OOM */
char *dg_db__pool_strdup(dg_db__pool_t *pool, const char *s);
void dg_db__pool_free(dg_db__pool_t *pool);

/* Loads DuckDB's keyword list once per process (type names quote keyword member names).
 * Thread-safe; a failure only means less quoting. */
void dg_db__keywords_load(duckdb_database inst);
/* Builds the dg_type_t tree of a DuckDB logical type (borrowed) in pool. NULL on OOM. */
dg_type_t *dg_db__type_from_logical(dg_db__pool_t *pool, duckdb_logical_type lt);
/* Initialises v as the vector shell of type t, allocating child shells in pool. DG_NOMEM. */
dg_rc_t dg_db__vec_shell(dg_db__pool_t *pool, dg_vec_t *v, const dg_type_t *t);
/* Points v (a shell for v->type) at the DuckDB vector dv holding n_rows rows. No copies. */
void dg_db__vec_fill(dg_vec_t *v, duckdb_vector dv, uint64_t n_rows);

#endif
