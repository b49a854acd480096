/* The API key set: JSON key file parse/dump/atomic save, generation and hashed lookup.
 *
 * Key file: {"version":1,"keys":[{"id","name","role","dbs":[...],"created","expires",
 * "sha256"}]}; expires 0 = never. The index is open addressing on the first 8 bytes of the
 * hash (capacity a power of two, at least twice the number of keys); the last comparison of a
 * probe is CRYPTO_memcmp over all 32 bytes. A set is mutated only before it is published. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "auth/auth.h"
#include "auth/auth_jwt.h"
#include "core/buf.h"

#define KEY_FILE_MAX (64u << 20)

struct dg_auth_keyset {
    size_t n, cap;
    dg_auth_key_t *keys;
    size_t *index; /* index_cap slots: key position + 1, 0 = empty */
    size_t index_cap;
};

static const char *const role_names[] = {"none", "viewer", "analyst", "admin"};

const char *dg_auth_role_name(dg_role_t r)
{
    return (unsigned)r < 4 ? role_names[r] : "none";
}

bool dg_auth_role_parse(const char *s, dg_role_t *out)
{
    for (unsigned i = 0; s && i < 4; i++) {
        if (strcmp(s, role_names[i]) == 0) {
            *out = (dg_role_t)i;
            return true;
        }
    }
    return false;
}

bool dg_auth_name_valid(const char *s)
{
    size_t n = 0;
    for (; s && s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok || n >= DG_AUTH_NAME_MAX) {
            return false;
        }
    }
    return n > 0;
}

static bool db_name_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok || n >= 64) {
            return false;
        }
    }
    return n > 0 && s[0] != '-';
}

dg_auth_keyset_t *dg_auth_keys_new(void)
{
    return calloc(1, sizeof(dg_auth_keyset_t));
}

void dg_auth_keys_free(dg_auth_keyset_t *ks)
{
    if (ks) {
        free(ks->keys);
        free(ks->index);
        free(ks);
    }
}

size_t dg_auth_keys_count(const dg_auth_keyset_t *ks)
{
    return ks ? ks->n : 0;
}

const dg_auth_key_t *dg_auth_keys_at(const dg_auth_keyset_t *ks, size_t i)
{
    return ks && i < ks->n ? &ks->keys[i] : NULL;
}

static size_t slot_of(const unsigned char *hash, size_t cap)
{
    uint64_t h = 0;
    for (int i = 0; i < 8; i++) {
        h = (h << 8) | hash[i];
    }
    return (size_t)(h & (cap - 1));
}

static dg_rc_t reindex(dg_auth_keyset_t *ks)
{
    size_t cap = 16;
    while (cap < ks->n * 2) {
        cap *= 2;
    }
    size_t *idx = calloc(cap, sizeof *idx);
    if (!idx) {
        return DG_NOMEM;
    }
    for (size_t i = 0; i < ks->n; i++) {
        size_t j = slot_of(ks->keys[i].hash, cap);
        while (idx[j]) {
            j = (j + 1) & (cap - 1);
        }
        idx[j] = i + 1;
    }
    free(ks->index);
    ks->index = idx;
    ks->index_cap = cap;
    return DG_OK;
}

dg_rc_t dg_auth_keys_add(dg_auth_keyset_t *ks, const dg_auth_key_t *k, dg_error_t *err)
{
    for (size_t i = 0; i < ks->n; i++) {
        if (strcmp(ks->keys[i].id, k->id) == 0 || strcmp(ks->keys[i].name, k->name) == 0 ||
            strcmp(ks->keys[i].name, k->id) == 0 || strcmp(ks->keys[i].id, k->name) == 0) {
            return dg_error_set(err, DG_CONFIG, "a key with id or name \"%s\" exists", k->name);
        }
    }
    if (ks->n == ks->cap) {
        size_t cap = ks->cap ? ks->cap * 2 : 8;
        dg_auth_key_t *p = realloc(ks->keys, cap * sizeof *p);
        if (!p) {
            return dg_error_set(err, DG_NOMEM, "out of memory");
        }
        ks->keys = p;
        ks->cap = cap;
    }
    ks->keys[ks->n++] = *k;
    if (reindex(ks) != DG_OK) {
        ks->n--;
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    return DG_OK;
}

bool dg_auth_keys_remove(dg_auth_keyset_t *ks, const char *id_or_name)
{
    for (size_t i = 0; i < ks->n; i++) {
        if (strcmp(ks->keys[i].id, id_or_name) == 0 || strcmp(ks->keys[i].name, id_or_name) == 0) {
            memmove(&ks->keys[i], &ks->keys[i + 1], (ks->n - i - 1) * sizeof ks->keys[0]);
            ks->n--;
            /* A smaller index always fits; on OOM the old one would be stale, so drop it. */
            if (reindex(ks) != DG_OK) {
                free(ks->index);
                ks->index = NULL;
                ks->index_cap = 0;
            }
            return true;
        }
    }
    return false;
}

const dg_auth_key_t *dg_auth_keys_find(const dg_auth_keyset_t *ks, const char *secret, size_t len)
{
    if (!ks || !ks->index_cap || len == 0 || len > DG_AUTH_SECRET_MAX) {
        return NULL;
    }
    unsigned char h[32];
    SHA256((const unsigned char *)secret, len, h);
    size_t j = slot_of(h, ks->index_cap);
    for (size_t probes = 0; probes < ks->index_cap && ks->index[j]; probes++) {
        const dg_auth_key_t *k = &ks->keys[ks->index[j] - 1];
        if (CRYPTO_memcmp(k->hash, h, sizeof h) == 0) {
            return k;
        }
        j = (j + 1) & (ks->index_cap - 1);
    }
    return NULL;
}

/* ---- generation --------------------------------------------------------------------- */

dg_rc_t dg_auth_key_generate(dg_auth_key_t *k, char out_secret[64])
{
    unsigned char rnd[32], idb[8];
    if (RAND_bytes(rnd, sizeof rnd) != 1 || RAND_bytes(idb, sizeof idb) != 1) {
        return DG_INTERNAL;
    }
    memcpy(out_secret, "dgk_", 4);
    dg_jwt_b64url_encode(rnd, sizeof rnd, out_secret + 4);
    OPENSSL_cleanse(rnd, sizeof rnd);
    for (size_t i = 0; i < sizeof idb; i++) {
        snprintf(k->id + 2 * i, 3, "%02x", idb[i]);
    }
    SHA256((const unsigned char *)out_secret, strlen(out_secret), k->hash);
    return DG_OK;
}

/* ---- file format -------------------------------------------------------------------- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool copy_str(json_t *o, const char *field, char *dst, size_t cap)
{
    const char *s = json_string_value(json_object_get(o, field));
    if (!s || strlen(s) >= cap) {
        return false;
    }
    memcpy(dst, s, strlen(s) + 1);
    return true;
}

static dg_rc_t parse_key(json_t *o, size_t i, dg_auth_key_t *k, dg_error_t *err)
{
    memset(k, 0, sizeof *k);
    const char *role = json_string_value(json_object_get(o, "role"));
    const char *hash = json_string_value(json_object_get(o, "sha256"));
    json_t *created = json_object_get(o, "created"), *expires = json_object_get(o, "expires");
    json_t *dbs = json_object_get(o, "dbs");
    if (!json_is_object(o) || !copy_str(o, "id", k->id, sizeof k->id) ||
        !dg_auth_name_valid(k->id) || !copy_str(o, "name", k->name, sizeof k->name) ||
        !dg_auth_name_valid(k->name)) {
        return dg_error_set(err, DG_CONFIG, "key %zu: bad or missing id/name", i);
    }
    if (!dg_auth_role_parse(role, &k->role) || k->role == DG_ROLE_NONE) {
        return dg_error_set(err, DG_CONFIG, "key %s: bad role", k->id);
    }
    if (!hash || strlen(hash) != 64) {
        return dg_error_set(err, DG_CONFIG, "key %s: bad sha256", k->id);
    }
    for (size_t j = 0; j < 32; j++) {
        int hi = hexval(hash[2 * j]), lo = hexval(hash[2 * j + 1]);
        if (hi < 0 || lo < 0) {
            return dg_error_set(err, DG_CONFIG, "key %s: bad sha256", k->id);
        }
        k->hash[j] = (unsigned char)(hi << 4 | lo);
    }
    if ((created && !json_is_integer(created)) ||
        (expires && !json_is_null(expires) && !json_is_integer(expires))) {
        return dg_error_set(err, DG_CONFIG, "key %s: created/expires must be integers", k->id);
    }
    k->created = created ? (int64_t)json_integer_value(created) : 0;
    k->expires = json_is_integer(expires) ? (int64_t)json_integer_value(expires) : 0;
    if (dbs && !json_is_array(dbs)) {
        return dg_error_set(err, DG_CONFIG, "key %s: dbs must be an array", k->id);
    }
    if (json_array_size(dbs) > DG_AUTH_MAX_DBS) {
        return dg_error_set(err, DG_CONFIG, "key %s: more than %d dbs", k->id, DG_AUTH_MAX_DBS);
    }
    for (size_t j = 0; j < json_array_size(dbs); j++) {
        const char *d = json_string_value(json_array_get(dbs, j));
        if (!d || !db_name_ok(d)) {
            return dg_error_set(err, DG_CONFIG, "key %s: bad database name", k->id);
        }
        memcpy(k->dbs[k->n_dbs++], d, strlen(d) + 1);
    }
    return DG_OK;
}

dg_rc_t dg_auth_keys_parse(const char *text, size_t len, dg_auth_keyset_t **out, dg_error_t *err)
{
    *out = NULL;
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        return dg_error_set(err, DG_CONFIG, "line %d: %.200s", je.line, je.text);
    }
    json_t *keys = json_object_get(j, "keys");
    dg_auth_keyset_t *ks = dg_auth_keys_new();
    dg_rc_t rc = DG_OK;
    if (!ks) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory");
    } else if (!json_is_object(j) || !json_is_array(keys)) {
        rc = dg_error_set(err, DG_CONFIG, "expected {\"keys\":[...]}");
    }
    for (size_t i = 0; rc == DG_OK && i < json_array_size(keys); i++) {
        dg_auth_key_t k;
        rc = parse_key(json_array_get(keys, i), i, &k, err);
        if (rc == DG_OK) {
            rc = dg_auth_keys_add(ks, &k, err);
        }
    }
    json_decref(j);
    if (rc == DG_OK && ks && !ks->index && reindex(ks) != DG_OK) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory");
    }
    if (rc != DG_OK) {
        dg_auth_keys_free(ks);
        return rc;
    }
    *out = ks;
    return DG_OK;
}

dg_rc_t dg_auth_keys_load(const char *path, dg_auth_keyset_t **out, dg_error_t *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            *out = dg_auth_keys_new();
            return *out ? DG_OK : dg_error_set(err, DG_NOMEM, "out of memory");
        }
        return dg_error_set(err, DG_IO, "%s: %s", path, strerror(errno));
    }
    dg_buf_t b;
    dg_buf_init(&b, KEY_FILE_MAX);
    char chunk[8192];
    ssize_t n;
    dg_rc_t rc = DG_OK;
    while (rc == DG_OK && (n = read(fd, chunk, sizeof chunk)) != 0) {
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = dg_error_set(err, DG_IO, "%s: %s", path, strerror(errno));
        } else if (dg_buf_append(&b, chunk, (size_t)n) != DG_OK) {
            rc = dg_error_set(err, DG_CONFIG, "%s: too large", path);
        }
    }
    close(fd);
    if (rc == DG_OK) {
        dg_error_t e;
        dg_error_clear(&e);
        rc = dg_auth_keys_parse(b.p ? b.p : "", b.len, out, &e);
        if (rc != DG_OK) {
            dg_error_set(err, rc, "%s: %s", path, e.msg);
        }
    }
    dg_buf_free(&b);
    return rc;
}

char *dg_auth_keys_dump(const dg_auth_keyset_t *ks)
{
    json_t *arr = json_array();
    json_t *root = json_pack("{s:i,s:o}", "version", 1, "keys", arr);
    if (!root) {
        return NULL;
    }
    bool ok = true;
    for (size_t i = 0; ok && i < ks->n; i++) {
        const dg_auth_key_t *k = &ks->keys[i];
        char hex[65];
        for (size_t j = 0; j < 32; j++) {
            snprintf(hex + 2 * j, 3, "%02x", k->hash[j]);
        }
        json_t *dbs = json_array();
        for (size_t j = 0; dbs && j < k->n_dbs; j++) {
            ok = ok && json_array_append_new(dbs, json_string(k->dbs[j])) == 0;
        }
        json_t *o = json_object();
        ok = ok && o && dbs && json_object_set_new(o, "id", json_string(k->id)) == 0 &&
             json_object_set_new(o, "name", json_string(k->name)) == 0 &&
             json_object_set_new(o, "role", json_string(dg_auth_role_name(k->role))) == 0 &&
             json_object_set(o, "dbs", dbs) == 0 &&
             json_object_set_new(o, "created", json_integer(k->created)) == 0 &&
             json_object_set_new(o, "expires", json_integer(k->expires)) == 0 &&
             json_object_set_new(o, "sha256", json_string(hex)) == 0 &&
             json_array_append(arr, o) == 0;
        json_decref(o);
        json_decref(dbs);
    }
    char *s = ok ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    return s;
}

dg_rc_t dg_auth_keys_save(const char *path, const dg_auth_keyset_t *ks, dg_error_t *err)
{
    char *text = dg_auth_keys_dump(ks);
    if (!text) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    dg_buf_t tmp;
    dg_buf_init(&tmp, 0);
    dg_rc_t rc = dg_buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
    if (rc != DG_OK) {
        free(text);
        dg_buf_free(&tmp);
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    int fd = open(tmp.p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    size_t len = strlen(text), off = 0;
    if (fd < 0) {
        rc = dg_error_set(err, DG_IO, "%s: %s", tmp.p, strerror(errno));
        goto out;
    }
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            rc = dg_error_set(err, DG_IO, "%s: %s", tmp.p, strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    if (fchmod(fd, 0600) != 0 || fsync(fd) != 0) {
        rc = dg_error_set(err, DG_IO, "%s: %s", tmp.p, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = dg_error_set(err, DG_IO, "%s: %s", tmp.p, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp.p, path) != 0) {
        rc = dg_error_set(err, DG_IO, "%s: %s", path, strerror(errno));
        goto out;
    }
    /* The rename itself is durable only once the directory is synced. */
    char *slash = strrchr(tmp.p, '/');
    if (slash) {
        *slash = '\0';
    }
    int dfd =
        open(slash ? (slash == tmp.p ? "/" : tmp.p) : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    if (rc != DG_OK && tmp.p) {
        unlink(tmp.p);
    }
    free(text);
    dg_buf_free(&tmp);
    return rc;
}
