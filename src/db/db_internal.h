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
    char *name;    /* served name: the file stem (what clients call the database) */
    char *catalog; /* DuckDB's catalog name of the file (current_database(); "main.duckdb" is
                      attached as "main_db" because "main" is reserved) */
    char **schemas; /* schemas of that catalog, fixed for a read-only instance; a relation name
                       whose schema part is none of them would be read as a file by DuckDB */
    size_t n_schemas;
    bool read_only;
    size_t n_scrub;
    char *scrub[DG_DB__MAX_SCRUB]; /* longest first, so a directory never hides its file */
    /* The open options, kept so db_export.c can open a second instance with the same limits. */
    char *path;
    char *temp_dir; /* NULL = no spilling */
    uint64_t memory_limit;
    uint64_t max_temp_bytes;
    int threads;
    /* Parquet export (db_export.c): a second READ_ONLY instance of the same file whose COPY may
     * write only inside export_dir. Opened lazily on first use under export_lock; once set,
     * export_inst and export_dir never change until dg_db_close. */
    pthread_mutex_t export_lock;
    bool has_export_lock;
    duckdb_database export_inst;
    char *export_dir;          /* realpath of the directory COPY may write to */
    _Atomic uint64_t export_seq; /* makes export file names unique within the process */
    /* Named queries (db_named.c): idle long-lived connections with their cached statements. */
    pthread_mutex_t named_lock;
    bool has_named_lock;
    struct dg_db__ncon *named_idle;
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
/* Functions whose result can change without a data change (DuckDB stability VOLATILE or
 * CONSISTENT_WITHIN_QUERY, plus the ones DuckDB marks CONSISTENT wrongly): a statement that
 * calls one is never cached (docs/cache.md). */
extern const char *const dg_db__volatile_fns[];
extern const size_t dg_db__n_volatile_fns;
/* True when name (ASCII case-insensitive) is in dg_db__volatile_fns. */
bool dg_db__fn_is_volatile(const char *name);

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
/* dg_db__sandbox_check that also classifies the statement: *out_volatile (may be NULL) is true
 * when it calls a volatile function (as a call or as a bare keyword like current_date) or
 * samples rows (USING SAMPLE, TABLESAMPLE). */
dg_rc_t dg_db__sandbox_check_ex(dg_db_t *db, const char *sql, size_t sql_len, bool *out_volatile,
                                dg_error_t *err);
/* The classification alone on a json_serialize_sql tree (exposed for tests). */
bool dg_db__tree_is_volatile(const char *json, size_t json_len);
/* Releases the idle checkers (dg_db_close). */
void dg_db__checkers_free(dg_db_t *db);
/* The walk alone, on the JSON text json_serialize_sql produced (exposed for tests). */
dg_rc_t dg_db__sandbox_walk(const char *catalog, const char *const *schemas, size_t n_schemas,
                            const char *json, size_t json_len,
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

/* One running query (db_query.c). Confined to the thread that started it, except `reason` and
 * `con`, which dg_db_cursor_interrupt and dg_db_cursor_progress touch from other threads. */
struct dg_db_cursor {
    dg_db_t *db;
    duckdb_connection con;
    duckdb_prepared_statement ps;
    duckdb_pending_result pending;
    duckdb_result res;
    bool has_res;
    bool is_done;
    dg_rc_t fail_rc; /* a failed fetch ends the cursor: later calls repeat the code */
    duckdb_data_chunk chunk;
    _Atomic int reason; /* 0, or the dg_rc_t given to dg_db_cursor_interrupt (first wins) */
    dg_db__pool_t pool; /* schema, type tree, vector shells */
    dg_schema_t schema;
    dg_vec_t *cols;
    dg_batch_t batch;
    /* Arrow output (db_arrow.c): created on first use from the result, so the schema and every
     * array are produced with the same settings; destroyed in dg_db_cursor_free. */
    duckdb_arrow_options arrow_opts;
    /* Named queries: con and ps are borrowed from this pooled connection, which
     * dg_db_cursor_free returns to the pool instead of destroying them. NULL otherwise. */
    struct dg_db__ncon *named;
    /* The statement's result depends only on the data (no volatile function, no sampling), as
     * classified by the sandbox walk; false when unknown (trusted SQL). The cache relies on it. */
    bool is_deterministic;
};

/* Loads DuckDB's keyword list once per process (type names quote keyword member names).
 * Thread-safe; a failure only means less quoting. */
void dg_db__keywords_load(duckdb_database inst);
/* Builds the dg_type_t tree of a DuckDB logical type (borrowed) in pool. NULL on OOM. */
dg_type_t *dg_db__type_from_logical(dg_db__pool_t *pool, duckdb_logical_type lt);
/* Initialises v as the vector shell of type t, allocating child shells in pool. DG_NOMEM. */
dg_rc_t dg_db__vec_shell(dg_db__pool_t *pool, dg_vec_t *v, const dg_type_t *t);
/* Points v (a shell for v->type) at the DuckDB vector dv holding n_rows rows. No copies. */
void dg_db__vec_fill(dg_vec_t *v, duckdb_vector dv, uint64_t n_rows);


/* ---- Opening (db.c) ---- */

/* The instance settings of one DuckDB instance. Every instance refuses extension installing and
 * autoloading, community and unsigned extensions and persistent secrets; the rest is here. A
 * zeroed struct means DuckDB's defaults with external access off. */
typedef struct dg_db__settings {
    const char *access_mode;  /* "READ_ONLY" or "READ_WRITE"; NULL = DuckDB's default */
    uint64_t memory_limit;    /* bytes; 0 = DuckDB's default (80% of RAM) */
    uint64_t max_temp_bytes;  /* bytes; 0 = DuckDB's default */
    const char *temp_dir;     /* spill directory; "" = no spilling; NULL = DuckDB's default */
    int threads;              /* 0 = DuckDB's default (every core) */
    bool has_external_access; /* false: enable_external_access=false */
    bool is_locked;           /* lock_configuration=true (set last) */
} dg_db__settings_t;

/* The settings of DESIGN §4 layer 1 from db's open options (borrowed; out points into db).
 * is_sandbox: external access off and configuration locked (serving instances); false leaves
 * both for the caller's dg_db__confine on the first connection (the export and loader
 * instances, which must set allowed_directories first). temp_dir: spill directory, NULL = no
 * spilling. */
void dg_db__settings_of(const dg_db_t *db, const char *temp_dir, bool is_sandbox,
                        dg_db__settings_t *out);
/* Opens path (":memory:" allowed) as a new instance with settings s into *out (closed by the
 * caller with duckdb_close). db (may be NULL) only supplies the paths scrubbed from messages;
 * what (may be NULL) prefixes the open error. DG_IO (DuckDB's open error), DG_CONFIG (message
 * names the setting), DG_NOMEM. *out is NULL on error. */
dg_rc_t dg_db__instance_open(const dg_db_t *db, const char *path, const dg_db__settings_t *s,
                             const char *what, duckdb_database *out, dg_error_t *err);
/* Confines an instance opened with has_external_access, on its first connection con:
 * allowed_directories = dirs (real paths with no quote, each given a trailing slash), then
 * enable_external_access=false and lock_configuration=true, so that it may read or write inside
 * dirs and nowhere else and nothing can loosen that. DG_CONFIG (DuckDB's message, prefixed by
 * what and scrubbed of db's paths; db may be NULL), DG_NOMEM. */
dg_rc_t dg_db__confine(const dg_db_t *db, duckdb_connection con, const char *what,
                       const char *const *dirs, size_t n_dirs, dg_error_t *err);

/* Prepares the trusted statement sql on con, binds arg (borrowed; NULL: no parameter) as its
 * first parameter and executes it. On DG_OK *out holds the materialized result, which the
 * caller destroys; on error nothing is left to destroy. Errors of dg_db__error (DuckDB's
 * message scrubbed of db's paths), DG_INTERNAL when the bind fails. */
dg_rc_t dg_db__execute(const dg_db_t *db, duckdb_connection con, const char *sql, duckdb_value arg,
                       duckdb_result *out, dg_error_t *err);

/* ---- Queries (db_query.c) ---- */

/* Sandbox layers 2-4 and the parameters, without executing: checks the SQL (when untrusted),
 * opens a fresh connection, extracts exactly one statement, prepares it, requires SELECT (when
 * untrusted) and binds q's parameters. Errors as dg_db_query_start. *out (freed with
 * dg_db_cursor_free) holds the connection and the bound prepared statement; NULL on error. */
dg_rc_t dg_db__query_prepare(dg_db_t *db, const dg_db_query_t *q, bool untrusted,
                             dg_db_cursor_t **out, dg_error_t *err);
/* The one wrapper of DuckDB's deprecated streaming entry point (STYLE.md): a pending result
 * whose chunks are produced as they are fetched (cursors, imports). */
duckdb_state dg_db__pending_streaming(duckdb_prepared_statement ps, duckdb_pending_result *out);
/* Binds q's parameters to ps exactly as dg_db_query_start does. DG_BAD_PARAMS. */
dg_rc_t dg_db__bind_params(duckdb_prepared_statement ps, const dg_db_query_t *q, dg_error_t *err);
/* The one fetch path of a cursor: destroys the previous chunk and leaves the next non-empty
 * chunk in c->chunk (cursor-owned), or NULL at the end of the result. Interrupt and error
 * semantics of dg_db_cursor_next. */
dg_rc_t dg_db__cursor_fetch(dg_db_cursor_t *c, dg_error_t *err);
/* Starts streaming execution of c's bound prepared statement (the second half of
 * dg_db_query_start): on success *out = c; on error c is freed. */
dg_rc_t dg_db__cursor_start(dg_db_cursor_t *c, const dg_db_query_t *q, dg_db_cursor_t **out,
                            dg_error_t *err);

/* ---- Named queries (db_named.c) ---- */

typedef struct dg_db__ncon dg_db__ncon_t;
/* Returns a pooled connection (dg_db_cursor_free of a named cursor). Any thread. */
void dg_db__named_put(dg_db_t *db, dg_db__ncon_t *nc);
/* Frees the idle pool (dg_db_close; every named cursor must be freed first). */
void dg_db__named_close(dg_db_t *db);
/* Binds q's params object by q->param_types (see dg_db_query_t). DG_BAD_PARAMS. */
dg_rc_t dg_db__bind_typed(duckdb_prepared_statement ps, const dg_db_query_t *q, dg_error_t *err);

/* ---- Export (db_export.c) ---- */

/* Closes the export instance, if one was opened (dg_db_close). */
void dg_db__export_close(dg_db_t *db);

#endif
