/* Access control: roles, API keys and the per-request gate (DESIGN §7).
 *
 * Roles are ordered: viewer (named queries, catalog) < analyst (+ read-only SQL) < admin
 * (everything). Anonymous callers get the configured public role (DG_ROLE_NONE = nothing).
 * API keys are `dgk_` + 43 base64url characters (32 random bytes); only their SHA-256 is
 * stored, in a JSON key file (mode 0600, rewritten atomically). A lookup hashes the presented
 * key once and probes a hash table; the final comparison is constant-time (CRYPTO_memcmp).
 * A credential shaped like a JWT (three dot-separated base64url segments) is verified by
 * auth_jwt.h instead, against the configured keys.
 *
 * Threads: a dg_auth_keyset_t is immutable once built (any thread may read it). A dg_auth_t is
 * shared by all connection threads: dg_auth_check may be called concurrently; the key file is
 * re-read (at most once per second, when its mtime/size/inode changed) under a lock. Secrets
 * are never logged. */
#ifndef DG_AUTH_H
#define DG_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rc.h"
#include "core/str.h"

typedef enum dg_role {
    DG_ROLE_NONE = 0,
    DG_ROLE_VIEWER = 1,
    DG_ROLE_ANALYST = 2,
    DG_ROLE_ADMIN = 3,
} dg_role_t;

/* "none", "viewer", "analyst", "admin". */
const char *dg_auth_role_name(dg_role_t r);
/* Parses one of the names above; false otherwise. */
bool dg_auth_role_parse(const char *s, dg_role_t *out);

#define DG_AUTH_MAX_DBS 32
#define DG_AUTH_NAME_MAX 64
#define DG_AUTH_SECRET_MAX 256 /* longer API keys are rejected unhashed */
#define DG_AUTH_TOKEN_MAX 8192 /* longest credential extracted at all (JWTs are long) */

typedef struct dg_auth_key {
    char id[17];                     /* 16 hex characters, random */
    char name[DG_AUTH_NAME_MAX + 1]; /* [A-Za-z0-9._-]{1,64}; unique in a set */
    dg_role_t role;                  /* viewer, analyst or admin */
    size_t n_dbs;                    /* 0 = every database */
    char dbs[DG_AUTH_MAX_DBS][65];
    int64_t created;        /* unix seconds */
    int64_t expires;        /* unix seconds; 0 = never */
    unsigned char hash[32]; /* SHA-256 of the secret */
} dg_auth_key_t;

/* An immutable set of keys with a hash index. */
typedef struct dg_auth_keyset dg_auth_keyset_t;

/* True for names of 1..64 bytes of [A-Za-z0-9._-]. */
bool dg_auth_name_valid(const char *s);
/* An empty set (NULL on OOM). */
dg_auth_keyset_t *dg_auth_keys_new(void);
/* Parses key file JSON (len bytes) into a new set. DG_CONFIG when malformed (err says where,
 * never quoting hashes), DG_NOMEM. */
dg_rc_t dg_auth_keys_parse(const char *json, size_t len, dg_auth_keyset_t **out, dg_error_t *err);
/* Reads and parses path; a missing file is an empty set. DG_IO, DG_CONFIG, DG_NOMEM. */
dg_rc_t dg_auth_keys_load(const char *path, dg_auth_keyset_t **out, dg_error_t *err);
/* The key file JSON of ks (malloc'd, NUL-terminated; caller frees), NULL on OOM. */
char *dg_auth_keys_dump(const dg_auth_keyset_t *ks);
/* Writes ks to path atomically: temp file (0600) in the same directory, fsync, rename, fsync
 * of the directory. DG_IO (err names the path), DG_NOMEM. */
dg_rc_t dg_auth_keys_save(const char *path, const dg_auth_keyset_t *ks, dg_error_t *err);
/* Appends a copy of *k (its id and name must be new). DG_CONFIG on a duplicate id or name,
 * DG_NOMEM. Invalidates pointers returned by dg_auth_keys_at/find. */
dg_rc_t dg_auth_keys_add(dg_auth_keyset_t *ks, const dg_auth_key_t *k, dg_error_t *err);
/* Removes the key whose id or name is id_or_name; false when there is none. */
bool dg_auth_keys_remove(dg_auth_keyset_t *ks, const char *id_or_name);
size_t dg_auth_keys_count(const dg_auth_keyset_t *ks);
/* The i-th key (borrowed from ks). */
const dg_auth_key_t *dg_auth_keys_at(const dg_auth_keyset_t *ks, size_t i);
/* The key whose secret is secret[0..len), or NULL (expiry is not checked here). */
const dg_auth_key_t *dg_auth_keys_find(const dg_auth_keyset_t *ks, const char *secret, size_t len);
void dg_auth_keys_free(dg_auth_keyset_t *ks);

/* Fills k with a fresh random id and hash and writes the secret (NUL-terminated, < 64 bytes)
 * to out_secret. Role, name, dbs, created and expires are left to the caller.
 * DG_INTERNAL when the random generator fails. */
dg_rc_t dg_auth_key_generate(dg_auth_key_t *k, char out_secret[64]);

/* Extracts the credential from an Authorization header (`Bearer <token>`, scheme
 * case-insensitive) or, when that is NULL, from X-API-Key. Returns 0 when neither header is
 * present, 1 with *out set (a view into the header) when one is well-formed, -1 when a header
 * is present but malformed (other scheme, empty, longer than DG_AUTH_TOKEN_MAX, non-token
 * characters). An API key starts with "dgk_"; a JWT has three dot-separated segments. */
int dg_auth_credential(const char *authorization, const char *x_api_key, dg_str_t *out);

/* ---- the gate ---------------------------------------------------------------------- */

struct dg_jwt_opts; /* auth_jwt.h */

typedef struct dg_auth_opts {
    bool is_on;            /* false: every caller is anonymous with public_role */
    dg_role_t public_role; /* what anonymous callers may do */
    const char *keys_file; /* read at dg_auth_new and re-read when it changes; copied */
    /* JWT keys and policy (borrowed during dg_auth_new); NULL or no key = JWTs are refused.
     * Keys from files are re-read when a file changes (checked at most once per second). */
    const struct dg_jwt_opts *jwt;
} dg_auth_opts_t;

typedef struct dg_auth dg_auth_t;

/* Who made a request and what they may do. */
typedef struct dg_auth_result {
    dg_role_t role;
    bool is_anonymous;  /* no credentials while auth is on (a refusal is then 401) */
    bool is_public;     /* no credential used (anonymous, or auth off): the "public" policy */
    bool is_bad;        /* credentials presented but rejected (malformed, unknown, expired) */
    char principal[48]; /* "key:<id>", "jwt:<sub>" or "ip" (anonymous: the limiter keys by
                           client IP) */
    size_t n_dbs;       /* 0 = every database (unless has_no_db) */
    char dbs[DG_AUTH_MAX_DBS][65];
    bool has_no_db;     /* the scope is empty (a role's databases and a credential's scope do
                           not meet): every database is refused */
    const char *reason; /* is_bad: why, a static text fit for the client; else NULL */
} dg_auth_result_t;

/* Builds the gate and loads the key file when auth is on. DG_IO/DG_CONFIG (err says why),
 * DG_NOMEM. */
dg_rc_t dg_auth_new(const dg_auth_opts_t *opts, dg_auth_t **out, dg_error_t *err);
void dg_auth_free(dg_auth_t *a);
/* Identifies a caller from its headers (either may be NULL) at unix time now_s. Never fails:
 * bad credentials give is_bad with role NONE. */
void dg_auth_identify(dg_auth_t *a, const char *authorization, const char *x_api_key, int64_t now_s,
                      dg_auth_result_t *out);
/* Whether res may use a route that needs role `need` on database db (NULL for routes without
 * one): DG_OK, DG_UNAUTHORIZED (bad credentials, or anonymous below need), DG_FORBIDDEN
 * (authenticated but role too low or db outside the key's scope). */
dg_rc_t dg_auth_gate(const dg_auth_result_t *res, dg_role_t need, const char *db, size_t db_len);
/* Narrows res's database scope to the comma-separated list `dbs` (NULL or "" = no change): the
 * result is the intersection with what res already had (every database when n_dbs is 0). An
 * empty intersection sets has_no_db. */
void dg_auth_scope_narrow(dg_auth_result_t *res, const char *dbs);

/* ---- capabilities (docs/auth.md "Capabilities") ---------------------------------------- */

/* What a role may do, beyond the role order: a role's ROLE_capabilities setting narrows its
 * built-in set (viewer: catalog, named; analyst: + sql; admin: + admin). Only the admin role
 * has admin, and it always keeps it (the config refuses an admin list without it). */
typedef enum dg_auth_cap {
    DG_AUTH_CAP_CATALOG = 1, /* /api/databases[/{db}] */
    DG_AUTH_CAP_NAMED = 2,   /* /api/q/... (named queries and their listing) */
    DG_AUTH_CAP_SQL = 4,     /* /api/query/{db} (raw read-only SQL) */
    DG_AUTH_CAP_ADMIN = 8,   /* /api/admin/... and every other admin route */
} dg_auth_cap_t;

/* The built-in capabilities of role r (0 for DG_ROLE_NONE). */
unsigned dg_auth_caps_builtin(dg_role_t r);
/* Role r's built-in capabilities narrowed to the comma-separated list (NULL or "" = no
 * narrowing; unknown names are ignored: dg_config_set refused them). Admin keeps admin. */
unsigned dg_auth_caps_of(dg_role_t r, const char *list);
/* The capability a route needs: from its first path segment under /api (`section`, NULL when
 * none) and the role it needs. "query" -> sql, "q" -> named, "databases" -> catalog, any other
 * route that needs the admin role -> admin, else 0 (no capability needed). */
unsigned dg_auth_route_cap(const char *section, dg_role_t need);
/* "catalog", "named", "sql", "admin" (one bit), else "?". */
const char *dg_auth_cap_name(unsigned cap);

#endif
