/* The request gate: credential extraction, identification against the live key set and JWT
 * keys (each reloaded when its files change, checked at most once per second) and the
 * role/scope decision.
 *
 * Threads: dg_auth_identify runs on connection threads. The key set and JWT verifier pointers
 * are swapped under a write lock; readers copy what they need (role, scope, id) under the read
 * lock, so an old set is freed only when no reader holds it. Secrets are never logged. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/auth.h"
#include "auth/auth_jwt.h"
#include "core/dgtime.h"
#include "core/log.h"
#include "core/str.h"

struct dg_auth {
    bool is_on;
    dg_role_t public_role;
    char *keys_file;
    pthread_rwlock_t lock;  /* guards ks */
    pthread_mutex_t reload; /* one reloader at a time */
    dg_auth_keyset_t *ks;
    atomic_llong next_check_ms;
    struct stat st; /* of the loaded file; st_ino 0 = absent */
    dg_jwt_t *jwt;  /* NULL = JWTs are refused; guarded by lock, immutable itself */
    /* Where the JWT keys come from, kept to rebuild the verifier when a key file changes
     * (identity provider key rotation). Only for keys from files. */
    struct jwt_src {
        bool is_files;
        dg_jwt_opts_t o;   /* its strings are the copies in strs */
        char *strs[8];     /* owned */
        struct stat st[3]; /* secret, PEM, JWKS files as loaded; st_ino 0 = absent */
        pthread_mutex_t reload;
        atomic_llong next_check_ms;
    } js;
};

static bool token_char(char c)
{
    /* RFC 6750 b64token plus what keys and JWTs use. */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
}

static int token_of(dg_str_t t, dg_str_t *out)
{
    t = dg_str_trim(t);
    if (t.len == 0 || t.len > DG_AUTH_TOKEN_MAX) {
        return -1;
    }
    for (size_t i = 0; i < t.len; i++) {
        if (!token_char(t.p[i])) {
            return -1;
        }
    }
    *out = t;
    return 1;
}

int dg_auth_credential(const char *authorization, const char *x_api_key, dg_str_t *out)
{
    if (authorization) {
        dg_str_t h = dg_str_trim(dg_str_c(authorization));
        if (h.len < 7 || !dg_str_ieq_c((dg_str_t){h.p, 6}, "bearer") ||
            (h.p[6] != ' ' && h.p[6] != '\t')) {
            return -1;
        }
        return token_of((dg_str_t){h.p + 7, h.len - 7}, out);
    }
    if (x_api_key) {
        return token_of(dg_str_c(x_api_key), out);
    }
    return 0;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Re-reads the key file when it changed; keeps the current set when the new file is bad. */
static void maybe_reload(dg_auth_t *a)
{
    int64_t now = dg_now_ms();
    if (now < atomic_load(&a->next_check_ms) || pthread_mutex_trylock(&a->reload) != 0) {
        return;
    }
    atomic_store(&a->next_check_ms, now + 1000);
    struct stat st;
    memset(&st, 0, sizeof st);
    if (stat(a->keys_file, &st) != 0) {
        memset(&st, 0, sizeof st);
    }
    if (!same_file(&st, &a->st)) {
        dg_auth_keyset_t *ks = NULL;
        dg_error_t err;
        dg_error_clear(&err);
        if (dg_auth_keys_load(a->keys_file, &ks, &err) == DG_OK) {
            pthread_rwlock_wrlock(&a->lock);
            dg_auth_keyset_t *old = a->ks;
            a->ks = ks;
            pthread_rwlock_unlock(&a->lock);
            dg_auth_keys_free(old);
            DG_LOGI("auth", "keys_file reloaded keys=%zu", dg_auth_keys_count(ks));
        } else {
            DG_LOGW("auth", "keys_file reload failed, keeping the previous keys: %s", err.msg);
        }
        a->st = st;
    }
    pthread_mutex_unlock(&a->reload);
}

static void jwt_stat(const struct jwt_src *js, struct stat st[3])
{
    const char *files[3] = {js->o.secret_file, js->o.pem_file, js->o.jwks_file};
    for (int i = 0; i < 3; i++) {
        memset(&st[i], 0, sizeof st[i]);
        if (files[i] && files[i][0] && stat(files[i], &st[i]) != 0) {
            memset(&st[i], 0, sizeof st[i]);
        }
    }
}

/* Keeps what dg_jwt_new needs to run again later (opts are borrowed only for dg_auth_new). */
static dg_rc_t jwt_src_init(struct jwt_src *js, const dg_jwt_opts_t *o)
{
    js->o = *o;
    js->is_files = !o->secret && !o->pem && !o->jwks;
    const char **fields[8] = {&js->o.secret_file, &js->o.pem_file, &js->o.jwks_file,
                              &js->o.algorithms,  &js->o.issuer,   &js->o.audience,
                              &js->o.role_claim,  &js->o.db_claim};
    for (int i = 0; i < 8; i++) {
        if (*fields[i] && !(js->strs[i] = strdup(*fields[i]))) {
            return DG_NOMEM;
        }
        *fields[i] = js->strs[i];
    }
    /* In-memory key material is not kept: it cannot change. */
    js->o.secret = js->o.pem = js->o.jwks = NULL;
    jwt_stat(js, js->st);
    return DG_OK;
}

/* Rebuilds the JWT verifier when one of its key files changed; keeps the current one when the
 * new files are bad (a half-written file is retried once it changes again). */
static void maybe_reload_jwt(dg_auth_t *a)
{
    struct jwt_src *js = &a->js;
    int64_t now = dg_now_ms();
    if (!js->is_files || now < atomic_load(&js->next_check_ms) ||
        pthread_mutex_trylock(&js->reload) != 0) {
        return;
    }
    atomic_store(&js->next_check_ms, now + 1000);
    struct stat st[3];
    jwt_stat(js, st);
    bool changed = false;
    for (int i = 0; i < 3; i++) {
        changed = changed || !same_file(&st[i], &js->st[i]);
    }
    if (changed) {
        dg_jwt_t *j = NULL;
        dg_error_t err;
        dg_error_clear(&err);
        if (dg_jwt_new(&js->o, &j, &err) == DG_OK) {
            pthread_rwlock_wrlock(&a->lock);
            dg_jwt_t *old = a->jwt;
            a->jwt = j;
            pthread_rwlock_unlock(&a->lock);
            dg_jwt_free(old);
            DG_LOGI("auth", "JWT keys reloaded");
        } else {
            DG_LOGW("auth", "JWT key reload failed, keeping the previous keys: %s", err.msg);
        }
        memcpy(js->st, st, sizeof st);
    }
    pthread_mutex_unlock(&js->reload);
}

dg_rc_t dg_auth_new(const dg_auth_opts_t *opts, dg_auth_t **out, dg_error_t *err)
{
    *out = NULL;
    dg_auth_t *a = calloc(1, sizeof *a);
    if (!a || !(a->keys_file = strdup(opts->keys_file ? opts->keys_file : ""))) {
        free(a);
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    a->is_on = opts->is_on;
    a->public_role = opts->public_role;
    pthread_rwlock_init(&a->lock, NULL);
    pthread_mutex_init(&a->reload, NULL);
    pthread_mutex_init(&a->js.reload, NULL);
    atomic_init(&a->next_check_ms, 0);
    atomic_init(&a->js.next_check_ms, 0);
    if (a->is_on) {
        if (stat(a->keys_file, &a->st) != 0) {
            memset(&a->st, 0, sizeof a->st);
        }
        dg_error_t e;
        dg_error_clear(&e);
        dg_rc_t rc = dg_auth_keys_load(a->keys_file, &a->ks, &e);
        if (rc != DG_OK) {
            dg_auth_free(a);
            return dg_error_set(err, rc, "keys_file: %s", e.msg);
        }
        atomic_store(&a->next_check_ms, dg_now_ms() + 1000);
        if (opts->jwt && dg_jwt_opts_has_key(opts->jwt)) {
            rc = jwt_src_init(&a->js, opts->jwt);
            if (rc != DG_OK) {
                dg_auth_free(a);
                return dg_error_set(err, rc, "out of memory");
            }
            atomic_store(&a->js.next_check_ms, dg_now_ms() + 1000);
            rc = dg_jwt_new(opts->jwt, &a->jwt, err);
            if (rc != DG_OK) {
                dg_auth_free(a);
                return rc;
            }
        }
    }
    *out = a;
    return DG_OK;
}

void dg_auth_free(dg_auth_t *a)
{
    if (!a) {
        return;
    }
    dg_auth_keys_free(a->ks);
    dg_jwt_free(a->jwt);
    for (int i = 0; i < 8; i++) {
        free(a->js.strs[i]);
    }
    pthread_rwlock_destroy(&a->lock);
    pthread_mutex_destroy(&a->reload);
    pthread_mutex_destroy(&a->js.reload);
    free(a->keys_file);
    free(a);
}

/* A JWT credential: verified against the configured keys (none configured: refused). */
static void identify_jwt(dg_auth_t *a, dg_str_t cred, int64_t now_s, dg_auth_result_t *out)
{
    maybe_reload_jwt(a);
    pthread_rwlock_rdlock(&a->lock);
    if (!a->jwt) {
        pthread_rwlock_unlock(&a->lock);
        out->reason = "JWT credentials are not enabled on this server";
        return;
    }
    dg_jwt_claims_t cl;
    const char *why = NULL;
    dg_rc_t rc = dg_jwt_verify(a->jwt, cred.p, cred.len, now_s, &cl, &why);
    pthread_rwlock_unlock(&a->lock);
    if (rc != DG_OK) {
        out->reason = why ? why : "invalid token";
        return;
    }
    out->is_bad = false;
    out->reason = NULL;
    out->role = cl.role;
    out->n_dbs = cl.n_dbs;
    memcpy(out->dbs, cl.dbs, sizeof out->dbs);
    memcpy(out->principal, cl.principal, sizeof out->principal);
}

void dg_auth_identify(dg_auth_t *a, const char *authorization, const char *x_api_key, int64_t now_s,
                      dg_auth_result_t *out)
{
    memset(out, 0, sizeof *out);
    out->is_anonymous = true;
    out->is_public = true;
    out->role = a->public_role;
    memcpy(out->principal, "ip", 3);
    if (!a->is_on) {
        /* Nobody can authenticate, so a refusal is final: 403, not 401. */
        out->is_anonymous = false;
        return;
    }
    dg_str_t cred;
    int c = dg_auth_credential(authorization, x_api_key, &cred);
    if (c == 0) {
        return;
    }
    out->is_anonymous = false;
    out->is_public = false;
    out->is_bad = true;
    out->role = DG_ROLE_NONE;
    out->reason = "malformed credentials";
    if (c < 0) {
        return;
    }
    if (dg_jwt_is_shaped(cred.p, cred.len)) {
        identify_jwt(a, cred, now_s, out);
        return;
    }
    out->reason = "invalid, expired or revoked API key";
    maybe_reload(a);
    pthread_rwlock_rdlock(&a->lock);
    const dg_auth_key_t *k = dg_auth_keys_find(a->ks, cred.p, cred.len);
    if (k && (k->expires == 0 || now_s < k->expires)) {
        out->is_bad = false;
        out->role = k->role;
        out->n_dbs = k->n_dbs;
        memcpy(out->dbs, k->dbs, sizeof out->dbs);
        snprintf(out->principal, sizeof out->principal, "key:%s", k->id);
        out->reason = NULL;
    }
    pthread_rwlock_unlock(&a->lock);
}

dg_rc_t dg_auth_gate(const dg_auth_result_t *res, dg_role_t need, const char *db, size_t db_len)
{
    if (res->is_bad) {
        return DG_UNAUTHORIZED;
    }
    if (res->role < need || res->role == DG_ROLE_NONE) {
        return res->is_anonymous ? DG_UNAUTHORIZED : DG_FORBIDDEN;
    }
    if (db && res->has_no_db) {
        return DG_FORBIDDEN;
    }
    if (db && res->n_dbs > 0) {
        for (size_t i = 0; i < res->n_dbs; i++) {
            if (strlen(res->dbs[i]) == db_len && memcmp(res->dbs[i], db, db_len) == 0) {
                return DG_OK;
            }
        }
        return DG_FORBIDDEN;
    }
    return DG_OK;
}

/* True when the comma-separated list holds db[0..len) (items trimmed of spaces). */
static bool list_has(const char *list, const char *db, size_t len)
{
    const char *p = list;
    dg_str_t item;
    while (dg_str_list_next(&p, &item)) {
        if (item.len == len && memcmp(item.p, db, len) == 0) {
            return true;
        }
    }
    return false;
}

void dg_auth_scope_narrow(dg_auth_result_t *res, const char *dbs)
{
    if (!dbs || !dbs[0] || res->has_no_db) {
        return;
    }
    if (res->n_dbs > 0) {
        /* Keep the credential's names that the list also has. */
        size_t k = 0;
        for (size_t i = 0; i < res->n_dbs; i++) {
            if (list_has(dbs, res->dbs[i], strlen(res->dbs[i]))) {
                memmove(res->dbs[k++], res->dbs[i], sizeof res->dbs[i]);
            }
        }
        res->n_dbs = k;
        res->has_no_db = k == 0;
        return;
    }
    /* Every database before: the list's well-formed names become the scope. */
    size_t k = 0;
    const char *p = dbs;
    dg_str_t item;
    while (k < DG_AUTH_MAX_DBS && dg_str_list_next(&p, &item)) {
        if (item.len > 0 && item.len < sizeof res->dbs[0]) {
            memcpy(res->dbs[k], item.p, item.len);
            res->dbs[k][item.len] = '\0';
            k++;
        }
    }
    res->n_dbs = k;
    res->has_no_db = k == 0;
}

/* ---- capabilities ------------------------------------------------------------------------- */

static const struct {
    const char *name;
    unsigned cap;
} cap_names[] = {
    {"catalog", DG_AUTH_CAP_CATALOG},
    {"named", DG_AUTH_CAP_NAMED},
    {"sql", DG_AUTH_CAP_SQL},
    {"admin", DG_AUTH_CAP_ADMIN},
};

unsigned dg_auth_caps_builtin(dg_role_t r)
{
    switch (r) {
    case DG_ROLE_VIEWER:
        return DG_AUTH_CAP_CATALOG | DG_AUTH_CAP_NAMED;
    case DG_ROLE_ANALYST:
        return DG_AUTH_CAP_CATALOG | DG_AUTH_CAP_NAMED | DG_AUTH_CAP_SQL;
    case DG_ROLE_ADMIN:
        return DG_AUTH_CAP_CATALOG | DG_AUTH_CAP_NAMED | DG_AUTH_CAP_SQL | DG_AUTH_CAP_ADMIN;
    default:
        return 0;
    }
}

unsigned dg_auth_caps_of(dg_role_t r, const char *list)
{
    unsigned builtin = dg_auth_caps_builtin(r);
    if (!list || !*list) {
        return builtin;
    }
    unsigned listed = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        size_t n = strcspn(p, ", ");
        for (size_t i = 0; n && i < sizeof cap_names / sizeof cap_names[0]; i++) {
            if (strlen(cap_names[i].name) == n && strncmp(cap_names[i].name, p, n) == 0) {
                listed |= cap_names[i].cap;
            }
        }
        p += n;
    }
    return (builtin & listed) | (builtin & DG_AUTH_CAP_ADMIN);
}

unsigned dg_auth_route_cap(const char *section, dg_role_t need)
{
    if (section && strcmp(section, "query") == 0) {
        return DG_AUTH_CAP_SQL;
    }
    if (section && strcmp(section, "q") == 0) {
        return DG_AUTH_CAP_NAMED;
    }
    if (section && strcmp(section, "databases") == 0) {
        return DG_AUTH_CAP_CATALOG;
    }
    return need == DG_ROLE_ADMIN ? DG_AUTH_CAP_ADMIN : 0;
}

const char *dg_auth_cap_name(unsigned cap)
{
    for (size_t i = 0; i < sizeof cap_names / sizeof cap_names[0]; i++) {
        if (cap_names[i].cap == cap) {
            return cap_names[i].name;
        }
    }
    return "?";
}
