/* The request gate: credential extraction, identification against the live key set (reloaded
 * when the key file changes, checked at most once per second) and the role/scope decision.
 *
 * Threads: dg_auth_identify runs on connection threads. The key set pointer is swapped under
 * a write lock; readers copy what they need (role, scope, id) under the read lock, so an old
 * set is freed only when no reader holds it. Secrets are never logged. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/auth.h"
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
    if (t.len == 0 || t.len > DG_AUTH_SECRET_MAX) {
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
    atomic_init(&a->next_check_ms, 0);
    if (a->is_on) {
        if (stat(a->keys_file, &a->st) != 0) {
            memset(&a->st, 0, sizeof a->st);
        }
        dg_rc_t rc = dg_auth_keys_load(a->keys_file, &a->ks, err);
        if (rc != DG_OK) {
            dg_auth_free(a);
            return rc;
        }
        atomic_store(&a->next_check_ms, dg_now_ms() + 1000);
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
    pthread_rwlock_destroy(&a->lock);
    pthread_mutex_destroy(&a->reload);
    free(a->keys_file);
    free(a);
}

void dg_auth_identify(dg_auth_t *a, const char *authorization, const char *x_api_key, int64_t now_s,
                      dg_auth_result_t *out)
{
    memset(out, 0, sizeof *out);
    out->is_anonymous = true;
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
    out->is_bad = true;
    out->role = DG_ROLE_NONE;
    if (c < 0) {
        return;
    }
    maybe_reload(a);
    pthread_rwlock_rdlock(&a->lock);
    const dg_auth_key_t *k = dg_auth_keys_find(a->ks, cred.p, cred.len);
    if (k && (k->expires == 0 || now_s < k->expires)) {
        out->is_bad = false;
        out->role = k->role;
        out->n_dbs = k->n_dbs;
        memcpy(out->dbs, k->dbs, sizeof out->dbs);
        snprintf(out->principal, sizeof out->principal, "key:%s", k->id);
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
