/* The configuration table and its loaders. One row per setting drives the defaults, the INI
 * keys, the DUCKGATE_<UPPER_NAME> environment variables, the --name-with-dashes flags, the
 * `config check` listing and the help text, so a new setting is one new row.
 *
 * Invariants: every numeric setting is validated against [min, max] whatever its source; every
 * string setting whose default is not "" is non-empty once loaded; source_[i] says where row i's
 * value came from.
 * Thread affinity: loading is single-threaded (at start); a loaded config is read-only. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/config_int.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/str.h"

typedef enum {
    K_STR,     /* char * */
    K_INT,     /* int, plain decimal */
    K_MS,      /* int64_t milliseconds, plain decimal */
    K_U64,     /* uint64_t count, plain decimal */
    K_BYTES,   /* uint64_t, dg_parse_bytes */
    K_LISTEN,  /* char *, dg_parse_listen */
    K_LOGLEVEL /* char *, dg_log_level_parse */
} setting_kind;

typedef struct {
    const char *name;
    setting_kind kind;
    size_t offset;
    const char *def; /* default as text; NULL = computed after loading (see finish_defaults) */
    uint64_t min, max;
    bool is_secret;  /* redacted by dg_config_print */
    const char *arg; /* metavariable in the help text */
    const char *help;
} setting_t;

#define OFF(f) offsetof(dg_config_t, f)
#define KIB (UINT64_C(1) << 10)
#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)
#define TIB (UINT64_C(1) << 40)

/* The per-role overrides of one role (docs/auth.md "Per-role limits"); 0 or "" = global. */
/* One setting per line reads better than one field per line. */
/* clang-format off */
#define ROLE_SETTINGS(role, i)                                                                     \
    {role "_timeout_ms", K_MS, OFF(roles[i].timeout_ms), "0", 0, 86400000, false, "MS",            \
     role " callers: deadline default and ceiling (0 = timeout_ms)"},                              \
    {role "_max_rows", K_U64, OFF(roles[i].max_rows), "0", 0, UINT64_MAX, false, "N",              \
     role " callers: row cap per result (0 = max_rows)"},                                          \
    {role "_max_result_bytes", K_BYTES, OFF(roles[i].max_result_bytes), "0", 0, 64 * GIB, false,   \
     "BYTES", role " callers: JSON document cap (0 = max_result_bytes)"},                          \
    {role "_max_concurrent", K_INT, OFF(roles[i].max_concurrent), "0", 0, 1000000, false, "N",     \
     role " callers: queries at once per principal (0 = max_concurrent)"},                         \
    {role "_rate_per_min", K_INT, OFF(roles[i].rate_per_min), "0", 0, 100000000, false, "N",       \
     role " callers: sustained rate per principal (0 = rate_per_min)"},                            \
    {role "_rate_burst_per_s", K_INT, OFF(roles[i].rate_burst_per_s), "0", 0, 1000000, false, "N", \
     role " callers: burst rate per principal (0 = rate_burst_per_s)"},                            \
    {role "_databases", K_STR, OFF(roles[i].databases), "", 0, 0, false, "LIST",                   \
     role " callers: comma-separated databases they may use, intersected with their "             \
          "credential's scope (empty: every database)"},                                          \
    {role "_capabilities", K_STR, OFF(roles[i].capabilities), "", 0, 0, false, "LIST",             \
     role " callers: what they may use, a comma list of catalog, named, sql (and admin for the "  \
          "admin role, which must keep it); narrows the role (empty: everything it may do)"}
/* clang-format on */

static const setting_t settings[] = {
    {"data_dir", K_STR, OFF(data_dir), "data", 0, 0, false, "DIR",
     "directory holding the NAME.duckdb files to serve"},
    {"queries_dir", K_STR, OFF(queries_dir), "queries", 0, 0, false, "DIR",
     "named queries: DIR/DB/NAME.sql served as /api/q/DB/NAME (missing = none; reloaded on "
     "change and SIGHUP)"},
    {"listen", K_LISTEN, OFF(listen), "127.0.0.1:8080", 0, 0, false, "HOST:PORT",
     "address to listen on ([::1]:PORT for IPv6; port 0 picks a free port)"},
    {"state_dir", K_STR, OFF(state_dir), NULL, 0, 0, false, "DIR",
     "temp/spill and state directory (default DATA_DIR/.duckgate)"},
    {"engines", K_INT, OFF(engines), "2", 1, 64, false, "N", "engine processes"},
    {"slots", K_INT, OFF(slots), NULL, 1, 1024, false, "N",
     "concurrent queries per engine (default: CPU count)"},
    {"queue_len", K_INT, OFF(queue_len), "64", 0, 1000000, false, "N",
     "requests that may wait for a slot before 503"},
    {"queue_timeout_ms", K_MS, OFF(queue_timeout_ms), "10000", 0, 3600000, false, "MS",
     "longest wait for a slot before 503"},
    {"timeout_ms", K_MS, OFF(timeout_ms), "30000", 1, 86400000, false, "MS",
     "default and ceiling of a query deadline"},
    {"kill_grace_ms", K_MS, OFF(kill_grace_ms), "2000", 0, 600000, false, "MS",
     "an engine is killed this long after a deadline it ignored"},
    {"shutdown_timeout_ms", K_MS, OFF(shutdown_timeout_ms), "10000", 0, 3600000, false, "MS",
     "time in-flight requests get to finish on SIGTERM"},
    {"client_timeout_s", K_INT, OFF(client_timeout_s), "60", 1, 86400, false, "S",
     "a connection that makes no progress this long (idle, or not reading its response) is "
     "closed and its query interrupted"},
    {"max_body_bytes", K_BYTES, OFF(max_body_bytes), "1MiB", 1, GIB, false, "BYTES",
     "request body cap"},
    {"max_sql_bytes", K_BYTES, OFF(max_sql_bytes), "64KiB", 1, 16 * MIB, false, "BYTES",
     "SQL text cap"},
    {"max_headers", K_INT, OFF(max_headers), "100", 1, 10000, false, "N",
     "request header fields per request; more get 431 HEADERS_TOO_LARGE"},
    {"max_header_bytes", K_BYTES, OFF(max_header_bytes), "64KiB", 1024, 128 * KIB, false, "BYTES",
     "request headers cap (names + values + 4 bytes per field); more get 431 HEADERS_TOO_LARGE"},
    {"max_url_bytes", K_BYTES, OFF(max_url_bytes), "64KiB", 256, 128 * KIB, false, "BYTES",
     "request target (path and query string) cap; longer gets 414 URI_TOO_LONG"},
    {"max_connections", K_INT, OFF(max_connections), "1024", 1, 65536, false, "N",
     "open client connections; further connections are closed at once"},
    {"header_timeout_s", K_INT, OFF(header_timeout_s), "10", 1, 3600, false, "S",
     "a request head (request line and headers) must arrive within this; else 408 "
     "REQUEST_TIMEOUT and the connection is closed (slowloris defence)"},
    {"request_timeout_s", K_INT, OFF(request_timeout_s), "60", 1, 86400, false, "S",
     "a whole request (head and body) must arrive within this; else 408 REQUEST_TIMEOUT and the "
     "connection is closed (slow POST defence)"},
    {"connection_max_s", K_INT, OFF(connection_max_s), "3600", 1, 31 * 86400, false, "S",
     "a connection older than this is closed after its current response"},
    {"cors_origins", K_STR, OFF(cors_origins), "off", 0, 0, false, "LIST",
     "comma-separated origins allowed cross-origin requests (https://app.example), * for any, "
     "off = no CORS"},
    {"cors_credentials", K_INT, OFF(cors_credentials), "0", 0, 1, false, "0|1",
     "1: answer allowed origins with Access-Control-Allow-Credentials (not with *)"},
    {"max_result_bytes", K_BYTES, OFF(max_result_bytes), "64MiB", 1, 64 * GIB, false, "BYTES",
     "cap of a single JSON document result"},
    {"max_export_bytes", K_BYTES, OFF(max_export_bytes), "4GiB", 1, 1024 * TIB, false, "BYTES",
     "cap of the temporary file behind one Parquet result"},
    {"max_rows", K_U64, OFF(max_rows), "0", 0, UINT64_MAX, false, "N",
     "row cap per result (0 = none)"},
    {"memory_limit", K_BYTES, OFF(memory_limit), "0", 0, 1024 * TIB, false, "BYTES",
     "DuckDB memory budget for all engines (0 = 80% of RAM/cgroup limit)"},
    {"threads", K_INT, OFF(threads), "0", 0, 1024, false, "N",
     "DuckDB threads per instance (0 = from the CPU quota)"},
    {"engine_as_limit", K_BYTES, OFF(engine_as_limit), "0", 0, 1024 * TIB, false, "BYTES",
     "address-space cap per engine process (0 = auto)"},
    {"cgroup_root", K_STR, OFF(cgroup_root), "/sys/fs/cgroup", 0, 0, false, "DIR",
     "where cgroup limits are read"},
    {"meminfo_path", K_STR, OFF(meminfo_path), "/proc/meminfo", 0, 0, false, "FILE",
     "where physical memory is read"},
    {"log_level", K_LOGLEVEL, OFF(log_level), "info", 0, 0, false, "LEVEL",
     "debug, info, warn or error"},
    {"access_log", K_STR, OFF(access_log), "text", 0, 0, false, "FORMAT",
     "access log, one line per request: off, text, json or combined (Apache/NCSA)"},
    {"access_log_file", K_STR, OFF(access_log_file), "-", 0, 0, false, "FILE",
     "where the access log goes (- = stderr)"},
    {"trust_request_id", K_INT, OFF(trust_request_id), "0", 0, 1, false, "0|1",
     "1: reuse a well-formed X-Request-Id (<= 64 of [A-Za-z0-9._-]) sent by a trusted_proxies "
     "peer; 0: always generate"},
    {"metrics_listen", K_STR, OFF(metrics_listen), "main", 0, 0, false, "HOST:PORT",
     "where GET /metrics is served: main (the main listener), a separate HOST:PORT, or off "
     "(no /metrics and no request metrics)"},
    {"query_log", K_STR, OFF(query_log), "on", 0, 0, false, "on|off",
     "query log: one row per query, kept in STATE_DIR/query_log.duckdb, read by admins with "
     "GET /api/admin/queries"},
    {"query_log_buffer", K_INT, OFF(query_log_buffer), "10000", 1, 10000000, false, "N",
     "query log rows held in memory until engine 0 stored them (the oldest are dropped when "
     "full)"},
    {"query_log_sql_bytes", K_BYTES, OFF(query_log_sql_bytes), "4KiB", 0, 64 * KIB, false,
     "BYTES", "SQL text kept per query log row; longer text is cut"},
    {"query_log_retention_days", K_INT, OFF(query_log_retention_days), "30", 0, 36500, false,
     "DAYS", "query log rows older than this are deleted (0 = no age limit)"},
    {"query_log_max_rows", K_U64, OFF(query_log_max_rows), "0", 0, UINT64_MAX, false, "N",
     "only the newest N query log rows are kept (0 = no cap)"},
    {"query_log_max_bytes", K_BYTES, OFF(query_log_max_bytes), "1GiB", 0, 1024 * 1024 * GIB,
     false, "BYTES",
     "the query log's file is kept under this size by deleting its oldest rows (0 = no cap)"},
    {"slow_query_ms", K_MS, OFF(slow_query_ms), "1000", 0, 86400000, false, "MS",
     "queries taking at least this long get a WARN log line (0 = none)"},
    {"zstd_level", K_INT, OFF(zstd_level), "1", 1, 19, false, "N",
     "zstd level for Accept-Encoding: zstd (1 is fastest and, on result data, best per CPU)"},
    {"gzip_level", K_INT, OFF(gzip_level), "1", 1, 9, false, "N", "gzip level"},
    {"br_level", K_INT, OFF(br_level), "1", 0, 11, false, "N", "brotli quality"},
    {"cache", K_STR, OFF(cache), "on", 0, 0, false, "on|off",
     "result cache: repeated deterministic queries are answered from memory (docs/cache.md)"},
    {"cache_max_bytes", K_BYTES, OFF(cache_max_bytes), "0", 0, 1024 * GIB, false, "BYTES",
     "result cache size (0 = 10% of the memory budget)"},
    {"cache_max_entries_per_db", K_INT, OFF(cache_max_entries_per_db), "2000", 1, 10000000,
     false, "N", "result cache entries per database (least recently used go first)"},
    {"cache_max_entry_bytes", K_BYTES, OFF(cache_max_entry_bytes), "8MiB", 1, 64 * GIB, false,
     "BYTES", "larger results stream through uncached"},
    {"cache_ttl_s", K_U64, OFF(cache_ttl_s), "2592000", 1, 315360000, false, "S",
     "lifetime of a cache entry, a backstop only: a data change makes entries unreachable at once"},
    {"auth", K_STR, OFF(auth), "off", 0, 0, false, "off|on",
     "on: API keys decide roles; off: every caller gets public_role (refused on a non-loopback "
     "listen unless allow_public)"},
    {"public_role", K_STR, OFF(public_role), NULL, 0, 0, false, "ROLE",
     "what anonymous callers may do: none, viewer or analyst (default analyst with auth off, "
     "none with auth on)"},
    {"allow_public", K_INT, OFF(allow_public), "0", 0, 1, false, "0|1",
     "1: serve with auth off on a non-loopback address (a bare --allow-public means 1)"},
    {"keys_file", K_STR, OFF(keys_file), NULL, 0, 0, false, "FILE",
     "API key file managed by `duckgate keys` (default STATE_DIR/keys.json); re-read when it "
     "changes"},
    {"jwt_secret_file", K_STR, OFF(jwt_secret_file), "", 0, 0, false, "FILE",
     "JWT: file holding the HS256 secret (at least 32 bytes; a final newline is ignored)"},
    {"jwt_public_key_file", K_STR, OFF(jwt_public_key_file), "", 0, 0, false, "FILE",
     "JWT: PEM public key (RSA >= 2048 bits for RS256, EC P-256 for ES256)"},
    {"jwt_jwks_file", K_STR, OFF(jwt_jwks_file), "", 0, 0, false, "FILE",
     "JWT: local JWKS file (RSA and EC P-256 keys, chosen by the token's kid)"},
    {"jwt_algorithms", K_STR, OFF(jwt_algorithms), "", 0, 0, false, "LIST",
     "JWT: accepted algorithms, a comma list of HS256, RS256, ES256 (empty: what the keys "
     "allow)"},
    {"jwt_leeway_s", K_INT, OFF(jwt_leeway_s), "30", 0, 3600, false, "S",
     "JWT: clock skew allowed when checking exp and nbf"},
    {"jwt_issuer", K_STR, OFF(jwt_issuer), "", 0, 0, false, "ISS",
     "JWT: required iss claim (empty: not checked)"},
    {"jwt_audience", K_STR, OFF(jwt_audience), "", 0, 0, false, "AUD",
     "JWT: required aud (the claim may be a string or an array; empty: not checked)"},
    {"jwt_role_claim", K_STR, OFF(jwt_role_claim), "role", 0, 0, false, "NAME",
     "JWT: claim holding the role (viewer, analyst or admin)"},
    {"jwt_db_claim", K_STR, OFF(jwt_db_claim), "dbs", 0, 0, false, "NAME",
     "JWT: claim holding the database scope, an array of names (absent: every database)"},
    {"max_concurrent", K_INT, OFF(max_concurrent), "0", 0, 1000000, false, "N",
     "queries running at once per principal (0 = no limit); more get 429 TOO_MANY_CONCURRENT"},
    ROLE_SETTINGS("public", 0),
    ROLE_SETTINGS("viewer", 1),
    ROLE_SETTINGS("analyst", 2),
    ROLE_SETTINGS("admin", 3),
    {"rate_limit", K_STR, OFF(rate_limit), "on", 0, 0, false, "on|off",
     "per-client token buckets on /api routes (429 RATE_LIMITED when both are not satisfied)"},
    {"rate_burst_per_s", K_INT, OFF(rate_burst_per_s), "20", 1, 1000000, false, "N",
     "burst limit: requests per second per client (bucket capacity and refill rate)"},
    {"rate_per_min", K_INT, OFF(rate_per_min), "500", 1, 100000000, false, "N",
     "sustained limit: requests per minute per client"},
    {"trusted_proxies", K_STR, OFF(trusted_proxies), "", 0, 0, false, "CIDRS",
     "comma-separated CIDRs (IPv4/IPv6) of reverse proxies whose forwarded_header is believed "
     "(empty: none)"},
    {"read_write_databases", K_STR, OFF(read_write_databases), "", 0, 0, false, "LIST",
     "comma-separated database names served read-write: engine 0 alone opens them, admin "
     "writes run there, reads run in read-only transactions (empty: all read-only)"},
    {"max_jobs", K_INT, OFF(max_jobs), "2", 1, 64, false, "N",
     "admin jobs (POST /api/admin/jobs) running at once; more wait queued"},
    {"job_retention_s", K_INT, OFF(job_retention_s), "3600", 1, 31 * 86400, false, "S",
     "finished admin jobs stay listed this long (at most 1000 are kept)"},
    {"import_dirs", K_STR, OFF(import_dirs), "", 0, 0, false, "DIRS",
     "comma-separated directories whose plain files admins may import into read-write "
     "databases (POST /api/admin/import/{db}; empty: no imports)"},
    {"forwarded_header", K_STR, OFF(forwarded_header), "X-Forwarded-For", 0, 0, false, "NAME",
     "header a trusted proxy puts the client address in (comma list; right-most untrusted "
     "address wins)"},
};

#define N_SETTINGS (sizeof settings / sizeof settings[0])
_Static_assert(N_SETTINGS <= sizeof(((dg_config_t *)0)->source_), "source_ too small");

static const char *const source_names[] = {"default", "file", "env", "flag"};

static void *field(dg_config_t *cfg, const setting_t *s)
{
    return (char *)cfg + s->offset;
}

static const void *cfield(const dg_config_t *cfg, const setting_t *s)
{
    return (const char *)cfg + s->offset;
}

static bool is_string_kind(setting_kind k)
{
    return k == K_STR || k == K_LISTEN || k == K_LOGLEVEL;
}

/* Finds a row by name; dashes in name match underscores. */
static const setting_t *find_setting(const char *name, size_t len)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const char *n = settings[i].name;
        if (strlen(n) != len) {
            continue;
        }
        size_t j = 0;
        while (j < len && (name[j] == n[j] || (name[j] == '-' && n[j] == '_'))) {
            j++;
        }
        if (j == len) {
            return &settings[i];
        }
    }
    return NULL;
}

/* Plain unsigned decimal, whole string. */
static bool parse_u64_text(const char *s, uint64_t *out)
{
    return dg_str_to_u64(dg_str_c(s), out);
}

static dg_rc_t range_error(const setting_t *s, const char *where, const char *value,
                           const char *what, dg_error_t *err)
{
    return dg_error_set(err, DG_CONFIG, "%s: bad value \"%.64s\" for %s: expected %s %llu..%llu",
                        where, value, s->name, what, (unsigned long long)s->min,
                        (unsigned long long)s->max);
}

/* ROLE_capabilities (docs/auth.md "Capabilities"): names of catalog, named, sql and admin;
 * admin only for the admin role, whose list must keep it (its routes cannot be lost by a
 * typo). */
static dg_rc_t check_capabilities(const char *name, const char *value, const char *where,
                                  dg_error_t *err)
{
    static const char *const names[] = {"catalog", "named", "sql", "admin"};
    bool is_admin = strncmp(name, "admin_", 6) == 0, has_admin = false;
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        size_t n = strcspn(p, ", ");
        if (n == 0) {
            break;
        }
        size_t i = 0;
        while (i < sizeof names / sizeof names[0] &&
               !(strlen(names[i]) == n && strncmp(names[i], p, n) == 0)) {
            i++;
        }
        if (i == sizeof names / sizeof names[0]) {
            return dg_error_set(err, DG_CONFIG,
                                "%s: unknown capability \"%.*s\" in %s: expected catalog, named, "
                                "sql or admin",
                                where, (int)(n < 32 ? n : 32), p, name);
        }
        if (i == 3 && !is_admin) {
            return dg_error_set(err, DG_CONFIG, "%s: %s: only the admin role has admin", where,
                                name);
        }
        has_admin |= i == 3;
        p += n;
    }
    if (is_admin && value[0] && !has_admin) {
        return dg_error_set(err, DG_CONFIG,
                            "%s: admin_capabilities must include admin (the admin routes cannot "
                            "be turned off; narrow admins with key scopes instead)",
                            where);
    }
    return DG_OK;
}

static bool is_capabilities(const char *name)
{
    size_t n = strlen(name), k = strlen("_capabilities");
    return n > k && strcmp(name + n - k, "_capabilities") == 0;
}

dg_rc_t dg_config_set(dg_config_t *cfg, const char *name, const char *value, dg_config_source_t src,
                      const char *where, dg_error_t *err)
{
    const setting_t *s = find_setting(name, strlen(name));
    if (!s) {
        return dg_error_set(err, DG_CONFIG, "%s: unknown setting \"%.64s\"", where, name);
    }
    uint64_t v = 0;
    switch (s->kind) {
    case K_STR:
        /* A setting whose default is "" may be set empty (it means "unset" or "none"). */
        if (value[0] == '\0' && !(s->def && s->def[0] == '\0') &&
            strcmp(s->name, "trusted_proxies") != 0 &&
            strcmp(s->name, "read_write_databases") != 0 && strcmp(s->name, "import_dirs") != 0) {
            return dg_error_set(err, DG_CONFIG, "%s: empty value for %s", where, s->name);
        }
        if (is_capabilities(s->name)) {
            dg_rc_t crc = check_capabilities(s->name, value, where, err);
            if (crc != DG_OK) {
                return crc;
            }
        }
        if (strcmp(s->name, "access_log") == 0 && strcmp(value, "off") != 0 &&
            strcmp(value, "text") != 0 && strcmp(value, "json") != 0 &&
            strcmp(value, "combined") != 0) {
            return dg_error_set(
                err, DG_CONFIG,
                "%s: bad value \"%.64s\" for access_log: expected off, text, json or combined",
                where, value);
        }
        if (strcmp(s->name, "query_log") == 0 && strcmp(value, "on") != 0 &&
            strcmp(value, "off") != 0) {
            return dg_error_set(err, DG_CONFIG,
                                "%s: bad value \"%.64s\" for query_log: expected on or off",
                                where, value);
        }
        if ((strcmp(s->name, "rate_limit") == 0 || strcmp(s->name, "cache") == 0) &&
            strcmp(value, "on") != 0 && strcmp(value, "off") != 0) {
            return dg_error_set(err, DG_CONFIG,
                                "%s: bad value \"%.64s\" for %s: expected on or off", where,
                                value, s->name);
        }
        if ((strcmp(s->name, "auth") == 0 && strcmp(value, "off") != 0 &&
             strcmp(value, "on") != 0) ||
            (strcmp(s->name, "public_role") == 0 && strcmp(value, "none") != 0 &&
             strcmp(value, "viewer") != 0 && strcmp(value, "analyst") != 0)) {
            return dg_error_set(err, DG_CONFIG, "%s: bad value \"%.64s\" for %s: expected %s",
                                where, value, s->name,
                                s->name[0] == 'a' ? "off or on" : "none, viewer or analyst");
        }
        if (strcmp(s->name, "metrics_listen") == 0 && strcmp(value, "main") != 0 &&
            strcmp(value, "off") != 0) {
            char host[256];
            int port;
            if (!dg_parse_listen(value, host, sizeof host, &port)) {
                return dg_error_set(err, DG_CONFIG,
                                    "%s: bad value \"%.64s\" for metrics_listen: expected main, "
                                    "off or HOST:PORT",
                                    where, value);
            }
        }
        break;
    case K_LISTEN: {
        char host[256];
        int port;
        if (!dg_parse_listen(value, host, sizeof host, &port)) {
            return dg_error_set(err, DG_CONFIG,
                                "%s: bad value \"%.64s\" for listen: expected HOST:PORT, "
                                "[IPV6]:PORT or :PORT with PORT 0..65535",
                                where, value);
        }
        break;
    }
    case K_LOGLEVEL:
        if (dg_log_level_parse(value) < 0 || dg_log_level_parse(value) == DG_LOG_OFF) {
            return dg_error_set(err, DG_CONFIG,
                                "%s: bad value \"%.64s\" for log_level: expected debug, info, "
                                "warn or error",
                                where, value);
        }
        break;
    case K_INT:
    case K_MS:
    case K_U64:
        if (!parse_u64_text(value, &v) || v < s->min || v > s->max) {
            return range_error(s, where, value, "an integer", err);
        }
        break;
    case K_BYTES:
        if (!dg_parse_bytes(value, &v) || v < s->min || v > s->max) {
            return range_error(s, where, value, "a byte size (e.g. 512MiB, 2GB) in", err);
        }
        break;
    }
    size_t i = (size_t)(s - settings);
    void *f = field(cfg, s);
    switch (s->kind) {
    case K_STR:
    case K_LISTEN:
    case K_LOGLEVEL: {
        char *dup = dg_str_dup(dg_str_c(value));
        if (!dup) {
            return dg_error_set(err, DG_NOMEM, "%s: out of memory", where);
        }
        char **sp = f;
        free(*sp);
        *sp = dup;
        break;
    }
    case K_INT:
        *(int *)f = (int)v;
        break;
    case K_MS:
        *(int64_t *)f = (int64_t)v;
        break;
    case K_U64:
    case K_BYTES:
        *(uint64_t *)f = v;
        break;
    }
    cfg->source_[i] = (unsigned char)src;
    return DG_OK;
}

void dg_config_free(dg_config_t *cfg)
{
    if (!cfg) {
        return;
    }
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (is_string_kind(settings[i].kind)) {
            char **sp = field(cfg, &settings[i]);
            free(*sp);
        }
    }
    free(cfg->config_path);
    memset(cfg, 0, sizeof *cfg);
}

dg_rc_t dg_config_defaults(dg_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (!settings[i].def) {
            continue;
        }
        dg_error_t err;
        dg_error_clear(&err);
        dg_rc_t rc =
            dg_config_set(cfg, settings[i].name, settings[i].def, DG_CFG_DEFAULT, "default", &err);
        if (rc != DG_OK) {
            /* Only DG_NOMEM can happen: the defaults are checked by the unit tests. */
            dg_config_free(cfg);
            return rc;
        }
    }
    return DG_OK;
}

dg_config_source_t dg_config_source_of(const dg_config_t *cfg, const char *name)
{
    const setting_t *s = find_setting(name, strlen(name));
    return s ? (dg_config_source_t)cfg->source_[s - settings] : DG_CFG_DEFAULT;
}

/* True when the comma-separated origin list holds a `*` entry. */
static bool cors_has_star(const char *list)
{
    for (const char *p = list; *p;) {
        p += strspn(p, " \t");
        size_t n = strcspn(p, ",");
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) {
            n--;
        }
        if (n == 1 && p[0] == '*') {
            return true;
        }
        p += strcspn(p, ",");
        p += *p == ',';
    }
    return false;
}

/* Settings whose default depends on other settings or on the machine, and checks across
 * settings (DG_CONFIG). */
static dg_rc_t finish_defaults(dg_config_t *cfg)
{
    if (!cfg->state_dir) {
        dg_buf_t b;
        dg_buf_init(&b, 0);
        dg_rc_t rc = dg_buf_printf(&b, "%s/.duckgate", cfg->data_dir);
        if (rc != DG_OK) {
            dg_buf_free(&b);
            return rc;
        }
        cfg->state_dir = dg_buf_take(&b, NULL);
    }
    if (!cfg->keys_file) {
        dg_buf_t b;
        dg_buf_init(&b, 0);
        if (dg_buf_printf(&b, "%s/keys.json", cfg->state_dir) != DG_OK) {
            dg_buf_free(&b);
            return DG_NOMEM;
        }
        cfg->keys_file = dg_buf_take(&b, NULL);
    }
    if (!cfg->public_role) {
        cfg->public_role = dg_str_dup(dg_str_c(strcmp(cfg->auth, "on") == 0 ? "none" : "analyst"));
        if (!cfg->public_role) {
            return DG_NOMEM;
        }
    }
    if (cfg->cors_credentials && cors_has_star(cfg->cors_origins)) {
        return DG_CONFIG;
    }
    if (cfg->slots == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->slots = n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
    }
    return DG_OK;
}

/* ---- INI ---------------------------------------------------------------------------- */

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/* Strips an inline comment: `#` or `;` at the start or after a space/tab. */
static dg_str_t strip_comment(dg_str_t v)
{
    for (size_t i = 0; i < v.len; i++) {
        if ((v.p[i] == '#' || v.p[i] == ';') &&
            (i == 0 || v.p[i - 1] == ' ' || v.p[i - 1] == '\t')) {
            v.len = i;
            break;
        }
    }
    return dg_str_trim(v);
}

static dg_rc_t ini_line(dg_config_t *cfg, dg_str_t line, const char *fname, size_t lineno,
                        dg_error_t *err)
{
    char where[300];
    snprintf(where, sizeof where, "%s:%zu", fname, lineno);
    if (line.len && line.p[line.len - 1] == '\r') {
        line.len--;
    }
    line = dg_str_trim(line);
    if (line.len == 0 || line.p[0] == '#' || line.p[0] == ';') {
        return DG_OK;
    }
    if (memchr(line.p, '\0', line.len)) {
        return dg_error_set(err, DG_CONFIG, "%s: NUL byte in line", where);
    }
    if (line.p[0] == '[') {
        const char *close = memchr(line.p, ']', line.len);
        if (!close) {
            return dg_error_set(err, DG_CONFIG, "%s: section header without ']'", where);
        }
        dg_str_t name = dg_str_trim((dg_str_t){line.p + 1, (size_t)(close - line.p - 1)});
        dg_str_t rest =
            strip_comment((dg_str_t){close + 1, line.len - (size_t)(close - line.p) - 1});
        if (name.len == 0 || rest.len != 0) {
            return dg_error_set(err, DG_CONFIG, "%s: malformed section header", where);
        }
        for (size_t i = 0; i < name.len; i++) {
            if (!is_key_char(name.p[i])) {
                return dg_error_set(err, DG_CONFIG, "%s: bad character in section name", where);
            }
        }
        return DG_OK;
    }
    dg_str_t key;
    dg_str_t value = dg_str_split(line, '=', &key);
    if (key.len == line.len) {
        return dg_error_set(err, DG_CONFIG, "%s: expected `key = value`", where);
    }
    key = dg_str_trim(key);
    if (key.len == 0 || key.len > 64) {
        return dg_error_set(err, DG_CONFIG, "%s: missing or overlong key", where);
    }
    for (size_t i = 0; i < key.len; i++) {
        if (!is_key_char(key.p[i])) {
            return dg_error_set(err, DG_CONFIG, "%s: bad character in key", where);
        }
    }
    value = dg_str_trim(value);
    if (value.len && value.p[0] == '"') {
        const char *close = memchr(value.p + 1, '"', value.len - 1);
        if (!close) {
            return dg_error_set(err, DG_CONFIG, "%s: unterminated quoted value", where);
        }
        dg_str_t rest =
            strip_comment((dg_str_t){close + 1, value.len - (size_t)(close - value.p) - 1});
        if (rest.len) {
            return dg_error_set(err, DG_CONFIG, "%s: text after quoted value", where);
        }
        value = (dg_str_t){value.p + 1, (size_t)(close - value.p - 1)};
    } else {
        value = strip_comment(value);
    }
    char keybuf[65];
    memcpy(keybuf, key.p, key.len);
    keybuf[key.len] = '\0';
    char *val = dg_str_dup(value);
    if (!val) {
        return dg_error_set(err, DG_NOMEM, "%s: out of memory", where);
    }
    dg_rc_t rc = dg_config_set(cfg, keybuf, val, DG_CFG_FILE, where, err);
    free(val);
    return rc;
}

dg_rc_t dg_config_apply_ini(dg_config_t *cfg, const char *text, size_t len, const char *fname,
                            dg_error_t *err)
{
    dg_str_t rest = {text, len};
    size_t lineno = 0;
    while (rest.len) {
        dg_str_t line;
        rest = dg_str_split(rest, '\n', &line);
        lineno++;
        dg_rc_t rc = ini_line(cfg, line, fname, lineno, err);
        if (rc != DG_OK) {
            return rc == DG_NOMEM ? rc : DG_CONFIG;
        }
    }
    return DG_OK;
}

static dg_rc_t load_file(dg_config_t *cfg, const char *path, dg_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return dg_error_set(err, DG_CONFIG, "%s: cannot open config file: %s", path,
                            strerror(errno));
    }
    dg_buf_t b;
    dg_buf_init_rc(&b, 1 << 20, DG_CONFIG);
    dg_rc_t rc = DG_OK;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        rc = dg_buf_append(&b, chunk, n);
        if (rc != DG_OK) {
            dg_error_set(err, DG_CONFIG, "%s: config file too large (max 1 MiB)", path);
            goto out;
        }
    }
    if (ferror(f)) {
        rc = dg_error_set(err, DG_CONFIG, "%s: read error", path);
        goto out;
    }
    rc = dg_config_apply_ini(cfg, b.p ? b.p : "", b.len, path, err);
out:
    fclose(f);
    dg_buf_free(&b);
    return rc;
}

/* ---- env and flags ----------------------------------------------------------------- */

static dg_rc_t load_env(dg_config_t *cfg, char **envp, dg_error_t *err)
{
    for (size_t e = 0; envp && envp[e]; e++) {
        const char *kv = envp[e];
        if (strncmp(kv, "DUCKGATE_", 9) != 0) {
            continue;
        }
        const char *eq = strchr(kv, '=');
        if (!eq) {
            continue;
        }
        /* Unknown DUCKGATE_* names are ignored: tools and tests use the prefix too. */
        for (size_t i = 0; i < N_SETTINGS; i++) {
            const char *n = settings[i].name;
            size_t nlen = strlen(n);
            if ((size_t)(eq - kv) != 9 + nlen) {
                continue;
            }
            size_t j = 0;
            while (j < nlen && kv[9 + j] == (n[j] >= 'a' && n[j] <= 'z' ? n[j] - 32 : n[j])) {
                j++;
            }
            if (j != nlen) {
                continue;
            }
            char where[80];
            snprintf(where, sizeof where, "%.*s", (int)(eq - kv), kv);
            dg_rc_t rc = dg_config_set(cfg, n, eq + 1, DG_CFG_ENV, where, err);
            if (rc != DG_OK) {
                return rc;
            }
        }
    }
    return DG_OK;
}

const char *dg_config__env_get(char **envp, const char *name)
{
    size_t n = strlen(name);
    for (size_t e = 0; envp && envp[e]; e++) {
        if (strncmp(envp[e], name, n) == 0 && envp[e][n] == '=') {
            return envp[e] + n + 1;
        }
    }
    return NULL;
}

/* Finds --config FILE / --config=FILE before any `--`. */
static dg_rc_t find_config_flag(int argc, char **argv, const char **out, dg_error_t *err)
{
    *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            break;
        }
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                return dg_error_set(err, DG_CONFIG, "--config: missing value");
            }
            *out = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            *out = argv[i] + 9;
        }
    }
    return DG_OK;
}

static dg_rc_t load_flags(dg_config_t *cfg, int argc, char **argv, int *out_rest, dg_error_t *err)
{
    /* Positionals are moved behind the flags, keeping their order. */
    char **pos = argc > 0 ? calloc((size_t)argc, sizeof *pos) : NULL;
    if (argc > 0 && !pos) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    int n_pos = 0, n_flag = 1;
    dg_rc_t rc = DG_OK;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++) {
                pos[n_pos++] = argv[i];
            }
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (!out_rest) {
                rc = dg_error_set(err, DG_CONFIG, "unexpected argument \"%.64s\"", a);
                goto out;
            }
            pos[n_pos++] = a;
            continue;
        }
        if (a[1] != '-') {
            rc = dg_error_set(err, DG_CONFIG, "%.64s: unknown flag (flags are --name VALUE)", a);
            goto out;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const char *value = eq ? eq + 1 : NULL;
        int used = 1;
        const setting_t *bs = value ? NULL : find_setting(name, nlen);
        if (bs && bs->kind == K_INT && bs->min == 0 && bs->max == 1 &&
            (i + 1 >= argc || argv[i + 1][0] == '-')) {
            value = "1"; /* a bare 0|1 flag (--allow-public) means 1 */
        }
        if (!value) {
            if (i + 1 >= argc) {
                /* Say "unknown" rather than "missing value" for a flag that does not exist. */
                bool known = (nlen == 6 && strncmp(name, "config", 6) == 0) ||
                             (find_setting(name, nlen) && !memchr(name, '_', nlen));
                rc = dg_error_set(err, DG_CONFIG, "--%.*s: %s", (int)(nlen > 64 ? 64 : nlen),
                                  name, known ? "missing value" : "unknown flag");
                goto out;
            }
            value = argv[i + 1];
            used = 2;
        }
        char where[80];
        snprintf(where, sizeof where, "--%.*s", (int)(nlen > 64 ? 64 : nlen), name);
        if (nlen == 6 && strncmp(name, "config", 6) == 0) {
            /* Already read by find_config_flag. */
        } else {
            const setting_t *s = find_setting(name, nlen);
            if (!s || memchr(name, '_', nlen)) {
                rc = dg_error_set(err, DG_CONFIG, "%s: unknown flag", where);
                goto out;
            }
            rc = dg_config_set(cfg, s->name, value, DG_CFG_FLAG, where, err);
            if (rc != DG_OK) {
                goto out;
            }
        }
        for (int k = 0; k < used; k++) {
            argv[n_flag++] = argv[i + k];
        }
        i += used - 1;
    }
    for (int k = 0; k < n_pos; k++) {
        argv[n_flag + k] = pos[k];
    }
    if (out_rest) {
        *out_rest = n_flag;
    }
out:
    free(pos);
    return rc;
}

dg_rc_t dg_config_load(dg_config_t *cfg, int argc, char **argv, char **envp, int *out_rest,
                       dg_error_t *err)
{
    const char *path = NULL;
    dg_rc_t rc = dg_config_defaults(cfg);
    if (rc != DG_OK) {
        return dg_error_set(err, rc, "out of memory");
    }
    rc = find_config_flag(argc, argv, &path, err);
    if (rc != DG_OK) {
        goto out;
    }
    if (!path) {
        path = dg_config__env_get(envp, "DUCKGATE_CONFIG");
    }
    if (path && path[0]) {
        cfg->config_path = dg_str_dup(dg_str_c(path));
        if (!cfg->config_path) {
            rc = dg_error_set(err, DG_NOMEM, "out of memory");
            goto out;
        }
        rc = load_file(cfg, path, err);
        if (rc != DG_OK) {
            goto out;
        }
    }
    rc = load_env(cfg, envp, err);
    if (rc != DG_OK) {
        goto out;
    }
    rc = load_flags(cfg, argc, argv, out_rest, err);
    if (rc != DG_OK) {
        goto out;
    }
    rc = finish_defaults(cfg);
    if (rc == DG_CONFIG) {
        dg_error_set(err, rc,
                     "cors_origins = * cannot be combined with cors_credentials = 1 "
                     "(browsers refuse it); list the origins instead");
    } else if (rc != DG_OK) {
        dg_error_set(err, rc, "out of memory");
    }
out:
    if (rc != DG_OK) {
        dg_config_free(cfg);
        return rc == DG_NOMEM ? rc : DG_CONFIG;
    }
    return DG_OK;
}

/* ---- printing ---------------------------------------------------------------------- */

void dg_config_print(const dg_config_t *cfg, FILE *f)
{
    fprintf(f, "# config file: %s\n", cfg->config_path ? cfg->config_path : "(none)");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting_t *s = &settings[i];
        const void *p = cfield(cfg, s);
        const char *src = source_names[cfg->source_[i] < 4 ? cfg->source_[i] : 0];
        fprintf(f, "%s = ", s->name);
        if (s->is_secret) {
            fputs("<redacted>", f);
        } else {
            switch (s->kind) {
            case K_STR:
            case K_LISTEN:
            case K_LOGLEVEL: {
                const char *v = *(char *const *)p;
                fputs(v ? v : "", f);
                break;
            }
            case K_INT:
                fprintf(f, "%d", *(const int *)p);
                break;
            case K_MS:
                fprintf(f, "%lld", (long long)*(const int64_t *)p);
                break;
            case K_U64:
            case K_BYTES:
                fprintf(f, "%llu", (unsigned long long)*(const uint64_t *)p);
                break;
            }
        }
        fprintf(f, "  # %s\n", src);
    }
}

void dg_config_print_help(FILE *f)
{
    fputs("  --config FILE                  INI file (env DUCKGATE_CONFIG)\n", f);
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting_t *s = &settings[i];
        char flag[64], env[64];
        size_t j = 0;
        for (; s->name[j] && j < 40; j++) {
            flag[j] = s->name[j] == '_' ? '-' : s->name[j];
            env[j] = (char)(s->name[j] >= 'a' && s->name[j] <= 'z' ? s->name[j] - 32 : s->name[j]);
        }
        flag[j] = env[j] = '\0';
        char left[96];
        snprintf(left, sizeof left, "--%s %s", flag, s->arg);
        fprintf(f, "  %-30s %s (env DUCKGATE_%s", left, s->help, env);
        if (s->def) {
            fprintf(f, ", default %s", s->def);
        }
        fputs(")\n", f);
    }
}
