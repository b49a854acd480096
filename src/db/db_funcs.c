/* The sandbox classification of DuckDB functions and built-in views (DESIGN §4 layer 2), kept as
 * data so that a review of a DuckDB upgrade is a review of this table.
 *
 * Rules: table functions (and table macros) are ALLOW-listed: a table function that is not
 * listed here with DG_DB__ALLOW is refused. Scalar and aggregate functions (and scalar macros)
 * are DENY-listed: anything not listed with DG_DB__DENY is allowed. Built-in views are refused
 * when listed with DG_DB__DENY. The unit test enumerates duckdb_functions() and fails when a
 * table function is unclassified or a deny-listed name vanished (unless it is marked optional:
 * kept on purpose for other builds of DuckDB, e.g. the CLI's getenv).
 *
 * Immutable; thread-safe. */
#include <stdbool.h>
#include <stddef.h>
#include <strings.h>

#include "db/db_internal.h"

#define T DG_DB__FN_TABLE
#define S DG_DB__FN_SCALAR
#define A DG_DB__FN_AGGREGATE
#define V DG_DB__FN_VIEW
#define OK DG_DB__ALLOW
#define NO DG_DB__DENY

#define R_FILE "file readers and writers are not allowed"
#define R_NESTED "functions that run nested SQL are not allowed"
#define R_EFFECT "functions with side effects are not allowed"
#define R_INTRO "settings, paths, secrets and other sessions are not visible"
#define R_CRASH "functions that recurse without bound on nested input are not allowed"
#define R_INTERNAL "internal and test functions are not allowed"
#define R_PURE "reads only the served catalog or generates values"

const dg_db__fn_t dg_db__fns[] = {
    /* ---- table functions and table macros: allow-list ---- */
    {"range", T, OK, R_PURE, false},
    {"generate_series", T, OK, R_PURE, false},
    {"unnest", T, OK, R_PURE, false},
    {"repeat", T, OK, R_PURE, false},
    {"repeat_row", T, OK, R_PURE, false},
    {"json_each", T, OK, R_PURE, false},
    {"test_all_types", T, OK, R_PURE, false},
    {"test_vector_types", T, OK, R_PURE, false},
    {"summary", T, OK, R_PURE, false},
    {"duckdb_columns", T, OK, R_PURE, false},
    {"duckdb_constraints", T, OK, R_PURE, false},
    {"duckdb_dependencies", T, OK, R_PURE, false},
    {"duckdb_functions", T, OK, R_PURE, false},
    {"duckdb_indexes", T, OK, R_PURE, false},
    {"duckdb_keywords", T, OK, R_PURE, false},
    {"duckdb_optimizers", T, OK, R_PURE, false},
    {"duckdb_schemas", T, OK, R_PURE, false},
    {"duckdb_sequences", T, OK, R_PURE, false},
    {"duckdb_tables", T, OK, R_PURE, false},
    {"duckdb_types", T, OK, R_PURE, false},
    {"duckdb_views", T, OK, R_PURE, false},
    {"pg_timezone_names", T, OK, R_PURE, false},
    {"icu_calendar_names", T, OK, R_PURE, false},
    {"pragma_table_info", T, OK, R_PURE, false},
    {"pragma_show", T, OK, R_PURE, false},
    {"pragma_version", T, OK, R_PURE, false},
    {"pragma_collations", T, OK, R_PURE, false},
    {"pragma_platform", T, OK, R_PURE, false},

    {"read_csv", T, NO, R_FILE, false},
    {"read_csv_auto", T, NO, R_FILE, false},
    {"sniff_csv", T, NO, R_FILE, false},
    {"read_parquet", T, NO, R_FILE, false},
    {"parquet_scan", T, NO, R_FILE, false},
    {"parquet_metadata", T, NO, R_FILE, false},
    {"parquet_schema", T, NO, R_FILE, false},
    {"parquet_file_metadata", T, NO, R_FILE, false},
    {"parquet_kv_metadata", T, NO, R_FILE, false},
    {"parquet_bloom_probe", T, NO, R_FILE, false},
    {"read_json", T, NO, R_FILE, false},
    {"read_json_auto", T, NO, R_FILE, false},
    {"read_json_objects", T, NO, R_FILE, false},
    {"read_json_objects_auto", T, NO, R_FILE, false},
    {"read_ndjson", T, NO, R_FILE, false},
    {"read_ndjson_auto", T, NO, R_FILE, false},
    {"read_ndjson_objects", T, NO, R_FILE, false},
    {"read_text", T, NO, R_FILE, false},
    {"read_blob", T, NO, R_FILE, false},
    {"glob", T, NO, R_FILE, false},
    {"arrow_scan", T, NO, R_INTERNAL, false},
    {"arrow_scan_dumb", T, NO, R_INTERNAL, false},
    {"seq_scan", T, NO, R_INTERNAL, false},
    {"check_peg_parser", T, NO, R_INTERNAL, false},
    {"duckdb_table_sample", T, NO, R_INTERNAL, false},
    {"query", T, NO, R_NESTED, false},
    {"query_table", T, NO, R_NESTED, false},
    {"json_execute_serialized_sql", T, NO, R_NESTED, false},
    {"sql_auto_complete", T, NO, R_NESTED, false},
    {"histogram", T, NO, R_NESTED, false},        /* table macro over query_table */
    {"histogram_values", T, NO, R_NESTED, false}, /* table macro over query_table */
    {"checkpoint", T, NO, R_EFFECT, false},
    {"force_checkpoint", T, NO, R_EFFECT, false},
    {"enable_logging", T, NO, R_EFFECT, false},
    {"disable_logging", T, NO, R_EFFECT, false},
    {"truncate_duckdb_logs", T, NO, R_EFFECT, false},
    {"duckdb_settings", T, NO, R_INTRO, false},
    {"duckdb_secrets", T, NO, R_INTRO, false},
    {"duckdb_secret_types", T, NO, R_INTRO, false},
    {"which_secret", T, NO, R_INTRO, false},
    {"duckdb_databases", T, NO, R_INTRO, false},
    {"duckdb_temporary_files", T, NO, R_INTRO, false},
    {"duckdb_extensions", T, NO, R_INTRO, false},
    {"duckdb_logs", T, NO, R_INTRO, false},
    {"duckdb_logs_parsed", T, NO, R_INTRO, false},
    {"duckdb_log_contexts", T, NO, R_INTRO, false},
    {"duckdb_memory", T, NO, R_INTRO, false},
    {"duckdb_external_file_cache", T, NO, R_INTRO, false},
    {"duckdb_variables", T, NO, R_INTRO, false},
    {"duckdb_prepared_statements", T, NO, R_INTRO, false},
    {"duckdb_connection_count", T, NO, R_INTRO, false},
    {"duckdb_approx_database_count", T, NO, R_INTRO, false},
    {"pragma_database_size", T, NO, R_INTRO, false},
    {"pragma_metadata_info", T, NO, R_INTRO, false},
    {"pragma_storage_info", T, NO, R_INTRO, false},
    {"pragma_user_agent", T, NO, R_INTRO, false},
    {"json_tree", T, NO, R_CRASH, false},

    /* ---- scalar and aggregate functions, scalar macros: deny-list ---- */
    {"query", S, NO, R_NESTED, true},
    {"json_serialize_sql", S, NO, R_NESTED, false},
    {"json_deserialize_sql", S, NO, R_NESTED, false},
    {"json_serialize_plan", S, NO, R_NESTED, false},
    {"nextval", S, NO, R_EFFECT, false},
    {"currval", S, NO, R_EFFECT, false},
    {"setseed", S, NO, R_EFFECT, false},
    {"write_log", S, NO, R_EFFECT, false},
    {"set_variable", S, NO, R_EFFECT, true},
    {"current_setting", S, NO, R_INTRO, false},
    {"getvariable", S, NO, R_INTRO, false},
    {"getenv", S, NO, R_INTRO, true},          /* the CLI registers it; libduckdb does not */
    {"get_block_size", S, NO, R_INTRO, false}, /* macro over pragma_database_size */
    {"json_structure", S, NO, R_CRASH, false},
    {"json_group_structure", A, NO, R_CRASH, false},
    {"json_contains", S, NO, R_CRASH, false},
    {"json_merge_patch", S, NO, R_CRASH, false},
    {"json_pretty", S, NO, R_CRASH, false},
    {"json_deep_merge", S, NO, R_CRASH, true}, /* DuckDB 1.5+ */
    {"variant_extract", S, NO, R_CRASH, false},
    {"variant_typeof", S, NO, R_CRASH, false},

    /* ---- built-in views of the system catalog: deny-list ---- */
    {"duckdb_databases", V, NO, R_INTRO, false},
    {"duckdb_logs", V, NO, R_INTRO, false},
    {"pragma_database_list", V, NO, R_INTRO, false},
    {"pg_settings", V, NO, R_INTRO, false},
    {"pg_prepared_statements", V, NO, R_INTRO, false},
};

const size_t dg_db__n_fns = sizeof dg_db__fns / sizeof dg_db__fns[0];

const dg_db__fn_t *dg_db__fn_find(const char *name, dg_db__fn_kind_t kind)
{
    /* Scalar and aggregate share one namespace in the checks (a macro may be either). */
    bool want_fn = kind == DG_DB__FN_SCALAR || kind == DG_DB__FN_AGGREGATE;
    for (size_t i = 0; i < dg_db__n_fns; i++) {
        const dg_db__fn_t *f = &dg_db__fns[i];
        bool is_fn = f->kind == DG_DB__FN_SCALAR || f->kind == DG_DB__FN_AGGREGATE;
        if ((f->kind == kind || (want_fn && is_fn)) && strcasecmp(f->name, name) == 0) {
            return f;
        }
    }
    return NULL;
}

const dg_db__fn_t *dg_db__fn_denied(const char *name)
{
    for (size_t i = 0; i < dg_db__n_fns; i++) {
        const dg_db__fn_t *f = &dg_db__fns[i];
        if (f->verdict == DG_DB__DENY && strcasecmp(f->name, name) == 0) {
            return f;
        }
    }
    return NULL;
}

/* ---- functions whose result can change without a data change (the result cache) ----
 * DuckDB's own stability column lists most (VOLATILE, CONSISTENT_WITHIN_QUERY); the unit test
 * (tests/unit/cache/test_volatile.c) fails when it lists one that is missing here. The rest are
 * names DuckDB marks CONSISTENT although they read the clock (ICU's local time functions, age()
 * with one argument), macros over such functions, and the SQL keywords that bind to them when
 * written without parentheses (current_timestamp, localtime, ...). */
const char *const dg_db__volatile_fns[] = {
    /* DuckDB: VOLATILE */
    "current_connection_id",
    "current_query",
    "current_query_id",
    "current_transaction_id",
    "currval",
    "error",
    "gen_random_uuid",
    "nextval",
    "random",
    "setseed",
    "stats",
    "uuid",
    "uuidv4",
    "uuidv7",
    "write_log",
    /* DuckDB: CONSISTENT_WITHIN_QUERY */
    "current_database",
    "current_date",
    "current_schema",
    "current_schemas",
    "get_current_time",
    "get_current_timestamp",
    "in_search_path",
    "now",
    "today",
    "transaction_timestamp",
    "txid_current",
    /* marked CONSISTENT but read the clock */
    "current_localtime",
    "current_localtimestamp",
    "age",
    /* macros over the above, and keywords that bind to them without parentheses */
    "pg_conf_load_time",
    "pg_postmaster_start_time",
    "current_catalog",
    "current_role",
    "current_user",
    "session_user",
    "user",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
};

const size_t dg_db__n_volatile_fns = sizeof dg_db__volatile_fns / sizeof dg_db__volatile_fns[0];

bool dg_db__fn_is_volatile(const char *name)
{
    for (size_t i = 0; i < dg_db__n_volatile_fns; i++) {
        if (strcasecmp(dg_db__volatile_fns[i], name) == 0) {
            return true;
        }
    }
    return false;
}
