/* The configuration: one table of settings (config_table.c) drives the INI file, the DUCKGATE_*
 * environment variables, the command-line flags, the defaults, `duckgate config check` and the
 * help text. Precedence: flags > env > file > defaults.
 *
 * A loaded dg_config_t is immutable and may be read from any thread. Strings are owned by the
 * config and released by dg_config_free. */
#ifndef DG_CONFIG_H
#define DG_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/rc.h"

/* Per-role policy (docs/auth.md "Per-role limits"): dg_config_t.roles is indexed 0 = public
 * (callers without credentials), 1 = viewer, 2 = analyst, 3 = admin (dg_role_t order). A zero
 * number or an empty list means "the global value". */
typedef struct dg_config_role {
    int64_t timeout_ms;         /* deadline default and ceiling */
    uint64_t max_rows;          /* row cap per result */
    uint64_t max_result_bytes;  /* single JSON document cap */
    int max_concurrent;         /* queries running at once per principal */
    int rate_per_min;           /* sustained rate per principal */
    int rate_burst_per_s;       /* burst rate per principal */
    char *databases;            /* comma-separated database names; "" = every database */
    char *capabilities;         /* comma list of catalog, named, sql, admin narrowing the
                                   role's built-in set (auth.h); "" = the built-in set */
} dg_config_role_t;

#define DG_CONFIG_N_ROLES 4

typedef struct dg_config {
    /* serving */
    char *data_dir;             /* data_dir / DUCKGATE_DATA_DIR / --data-dir; default "data" */
    char *queries_dir;          /* named queries: DIR/{db}/{name}.sql; default "queries" */
    char *listen;               /* "host:port"; default "127.0.0.1:8080"; port 0 = any */
    char *state_dir;            /* temp/spill and state; default "<data_dir>/.duckgate" */
    int engines;                /* engine processes; default 2 */
    int slots;                  /* concurrent queries per engine; default = CPU count */
    int queue_len;              /* requests waiting for a slot before 503; default 64 */
    int64_t queue_timeout_ms;   /* longest wait for a slot before 503; default 10000 */
    int64_t timeout_ms;         /* default and ceiling of a query deadline; default 30000 */
    int64_t kill_grace_ms;      /* engine killed this long after the deadline; default 2000 */
    int64_t shutdown_timeout_ms;/* drain time on SIGTERM; default 10000 */
    int client_timeout_s;       /* no progress this long closes a connection; default 60 */
    uint64_t max_body_bytes;    /* request body cap; default 1 MiB */
    uint64_t max_sql_bytes;     /* SQL text cap; default 64 KiB */
    /* request limits and CORS (docs/security.md) */
    int max_headers;            /* request header fields; more get 431; default 100 */
    uint64_t max_header_bytes;  /* sum of header names + values; more get 431; 64 KiB */
    uint64_t max_url_bytes;     /* request target bytes; more get 414; default 64 KiB */
    int max_connections;        /* open connections; more are closed at once; default 1024 */
    int header_timeout_s;       /* a request head must arrive within this; default 10 */
    int request_timeout_s;      /* head + body must arrive within this; default 60 */
    int connection_max_s;       /* a connection this old closes after its response; 3600 */
    char *cors_origins;         /* comma-separated allowed origins, `*`, or "off" (default) */
    int cors_credentials;       /* 1 = Access-Control-Allow-Credentials; default 0 */
    uint64_t max_result_bytes;  /* single JSON document cap; default 64 MiB */
    uint64_t max_rows;          /* row cap per result, 0 = none; default 0 */
    uint64_t max_export_bytes;  /* Parquet temp file cap; default 4 GiB */
    /* resources */
    uint64_t memory_limit;      /* DuckDB budget in bytes, all engines together; 0 = auto */
    int threads;                /* DuckDB threads per instance; 0 = auto (CPU quota) */
    uint64_t engine_as_limit;   /* RLIMIT_AS per engine in bytes; 0 = auto */
    char *cgroup_root;          /* default "/sys/fs/cgroup" (tests point it at fake files) */
    char *meminfo_path;         /* default "/proc/meminfo" */
    /* logging */
    char *log_level;            /* debug|info|warn|error; default info */
    char *access_log;           /* off|text|json|combined; default text */
    char *access_log_file;      /* "-" = stderr (default), else a file opened for append */
    int trust_request_id;       /* 1 = echo a well-formed client X-Request-Id; default 0 */
    /* metrics */
    char *metrics_listen;       /* "main" = GET /metrics on the main listener (default); "off" =
                                   none (no request metrics either); else HOST:PORT */
    /* query log (src/qlog, docs/observability.md "Query log") */
    char *query_log;            /* on|off; default on */
    int query_log_buffer;       /* rows held in the front until engine 0 stored them; 10000 */
    uint64_t query_log_sql_bytes; /* SQL text kept per row; longer is cut; default 4 KiB */
    int query_log_retention_days; /* older rows are deleted; 0 = no age limit; default 30 */
    uint64_t query_log_max_rows;  /* only the newest rows are kept; 0 = no cap; default 0 */
    uint64_t query_log_max_bytes; /* the store's file is kept under this; 0 = no cap; 1 GiB */
    int64_t slow_query_ms;      /* WARN line for queries at least this long; 0 = off; 1000 */
    /* access (src/auth, docs/auth.md) */
    char *auth;                 /* off|on; default off (every caller is public) */
    char *public_role;          /* none|viewer|analyst; default analyst (auth off), none (on) */
    int allow_public;           /* 1 = allow auth off on a non-loopback listen; default 0 */
    char *keys_file;            /* API key file; default "<state_dir>/keys.json" */
    /* JWT (src/auth/auth_jwt.c, docs/auth.md "JWT"); "" = unset */
    char *jwt_secret_file;      /* HS256 secret */
    char *jwt_public_key_file;  /* PEM public key (RSA or EC P-256) */
    char *jwt_jwks_file;        /* local JWKS file (RSA and EC P-256 keys, by kid) */
    char *jwt_algorithms;       /* comma list of HS256/RS256/ES256; "" = from the key types */
    int jwt_leeway_s;           /* clock skew allowed on exp/nbf; default 30 */
    char *jwt_issuer;           /* required iss; "" = not checked */
    char *jwt_audience;         /* required aud (string or array claim); "" = not checked */
    char *jwt_role_claim;       /* claim holding the role; default "role" */
    char *jwt_db_claim;         /* claim holding the database scope; default "dbs" */
    int max_concurrent;         /* queries running at once per principal; 0 = no limit */
    dg_config_role_t roles[DG_CONFIG_N_ROLES]; /* per-role overrides (see dg_config_role_t) */
    /* rate limits (src/limit, docs/security.md "Rate limits") */
    char *rate_limit;           /* on|off; default on */
    int rate_burst_per_s;       /* burst bucket: capacity and refill per second; default 20 */
    int rate_per_min;           /* sustained bucket: capacity, refilled over a minute; 500 */
    char *trusted_proxies;      /* comma-separated CIDRs whose forwarded header is believed; "" */
    char *forwarded_header;     /* header naming the client behind a proxy; X-Forwarded-For */
    /* admin path (docs/admin.md) */
    char *read_write_databases; /* comma-separated names served read-write by engine 0; "" */
    int max_jobs;               /* admin jobs running at once; default 2 */
    int job_retention_s;        /* finished jobs are listed this long; default 3600 */
    char *import_dirs;          /* comma-separated directories admin imports may read; "" */
    /* response compression levels (Accept-Encoding) */
    int zstd_level;             /* default 1 */
    int gzip_level;             /* default 1 */
    int br_level;               /* default 1 */
    /* result cache (src/cache, docs/cache.md) */
    char *cache;                /* on|off; default on */
    uint64_t cache_max_bytes;   /* total bytes; 0 = 10% of the memory budget (default) */
    int cache_max_entries_per_db; /* entries per database; default 2000 */
    uint64_t cache_max_entry_bytes; /* larger results stream through uncached; default 8 MiB */
    uint64_t cache_ttl_s;       /* backstop lifetime of an entry; default 30 days */
    /* bookkeeping for `config check`, filled by the loader */
    char *config_path;          /* INI file that was read; NULL when none */
    unsigned char source_[192]; /* private: dg_config_source_t per setting, in table order */
} dg_config_t;

/* Where a value came from, for `config check`. */
typedef enum { DG_CFG_DEFAULT = 0, DG_CFG_FILE, DG_CFG_ENV, DG_CFG_FLAG } dg_config_source_t;

/* Loads the configuration: defaults, then the INI file (path from --config or
 * DUCKGATE_CONFIG, if any), then env (envp, NULL-terminated), then flags (argv[0] is the
 * subcommand name; unknown flags are errors). On error fills err with "file:line: message" or
 * "--flag: message" and returns DG_CONFIG; *cfg is then freed. Positional arguments are
 * rejected unless out_rest is not NULL, in which case argv is permuted and *out_rest receives
 * the index of the first positional argument. */
dg_rc_t dg_config_load(dg_config_t *cfg, int argc, char **argv, char **envp, int *out_rest,
                       dg_error_t *err);
/* Releases the strings of cfg. NULL is allowed. */
void dg_config_free(dg_config_t *cfg);
/* Sets cfg to the defaults (strings allocated; free with dg_config_free). DG_NOMEM. */
dg_rc_t dg_config_defaults(dg_config_t *cfg);
/* Sets one setting by its table name ("timeout_ms"; dashes are accepted for underscores) from
 * text, validating type and range, and records src. `where` prefixes error messages
 * ("file:12", "--timeout-ms", "DUCKGATE_TIMEOUT_MS"). DG_CONFIG on an unknown name or a bad
 * value (err says which), DG_NOMEM. */
dg_rc_t dg_config_set(dg_config_t *cfg, const char *name, const char *value,
                      dg_config_source_t src, const char *where, dg_error_t *err);
/* Applies INI text (len bytes, need not be NUL-terminated) to cfg with source DG_CFG_FILE.
 * Sections are allowed and only group keys; `#`/`;` start comments; values may be quoted.
 * Errors: DG_CONFIG with "fname:line: message". Exposed for the fuzz target and tests. */
dg_rc_t dg_config_apply_ini(dg_config_t *cfg, const char *text, size_t len, const char *fname,
                            dg_error_t *err);
/* Where a setting's value came from; DG_CFG_DEFAULT for unknown names. */
dg_config_source_t dg_config_source_of(const dg_config_t *cfg, const char *name);
/* Splits "host:port", "[v6addr]:port" or ":port" into host (NUL-terminated, brackets
 * removed, "" for any) and port (0..65535). False when malformed or host does not fit. */
bool dg_parse_listen(const char *s, char *out_host, size_t host_cap, int *out_port);

/* Prints every setting as `name = value  # source` (secrets redacted) to f. */
void dg_config_print(const dg_config_t *cfg, FILE *f);
/* Prints the flags with their help text to f. */
void dg_config_print_help(FILE *f);

/* Resources seen by this process, after container limits. */
typedef struct dg_resources {
    uint64_t physical_bytes;   /* MemTotal */
    uint64_t cgroup_bytes;     /* memory.max or memory.limit_in_bytes; 0 = unlimited */
    uint64_t budget_bytes;     /* 80% of the smaller of the two, or the configured override */
    double cpu_quota;          /* cores from cpu.max / cfs_quota; 0 = unlimited */
    int cpus;                  /* online CPUs */
    int threads;               /* DuckDB threads to use per instance */
    const char *memory_source; /* "cgroup v2", "cgroup v1", "physical", "DUCKDB_MEMORY_LIMIT", "--memory-limit" */
} dg_resources_t;

/* Detects resources under cfg->cgroup_root / cfg->meminfo_path and applies overrides
 * (cfg->memory_limit, DUCKDB_MEMORY_LIMIT in envp, cfg->threads). */
dg_rc_t dg_resources_detect(const dg_config_t *cfg, char **envp, dg_resources_t *out,
                            dg_error_t *err);
/* Parses "8GB", "512MiB", "1.5G", "100000" (bytes) into bytes; false when malformed. */
bool dg_parse_bytes(const char *s, uint64_t *out);

/* A servable database: a regular file `<name>.duckdb` directly inside the data directory. */
typedef struct dg_dbfile {
    char name[65];             /* validated name (dg_dbname_valid) */
    char *path;                /* data_dir/name.duckdb; owned */
    uint64_t size_bytes;
} dg_dbfile_t;

/* True for names of 1..64 bytes of [A-Za-z0-9_-] that do not start with '-' or '.': no path
 * separators, no dots, no hidden files, nothing to escape in a URL. */
bool dg_dbname_valid(const char *name, size_t len);
/* Lists the servable databases of dir, sorted by name: regular files (not symlinks) named
 * NAME.duckdb with a valid NAME. Other entries are skipped. *out (free with dg_dbfiles_free) may
 * be empty. DG_IO when dir cannot be read (message names it). */
dg_rc_t dg_datadir_scan(const char *dir, dg_dbfile_t **out, size_t *out_n, dg_error_t *err);
void dg_dbfiles_free(dg_dbfile_t *files, size_t n);

#endif
