/* Cache keys: the canonical text of an engine request and its SHA-256.
 *
 * The text is built from the request object the engine will run, not from the HTTP request,
 * so every route that reaches an engine (raw SQL, named queries, the catalog) gets a key from
 * the same fields that decide the bytes. Fields are kept by default and only the known
 * non-semantic ones are left out, so a field added later can only split entries, never merge
 * two different answers. Pure and thread-safe. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cache/cache.h"
#include "core/buf.h"

/* Request fields that do not change the response bytes. */
static const char *const ignored[] = {"id", "timeout_ms", "queue_ms"};

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

static bool is_ident(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

/* True when whitespace outside quotes may be collapsed: no comments, backslash escapes or
 * dollar-quoted strings, whose extent this scanner does not follow. $1 and $name parameters
 * are fine. */
static bool may_collapse(const char *s, size_t len)
{
    char quote = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '\\') {
            return false;
        }
        if (quote) {
            if (ch == quote) {
                quote = 0;
            }
            continue;
        }
        if (ch == '\'' || ch == '"') {
            quote = ch;
        } else if ((ch == '-' && i + 1 < len && s[i + 1] == '-') ||
                   (ch == '/' && i + 1 < len && s[i + 1] == '*')) {
            return false;
        } else if (ch == '$') {
            size_t j = i + 1;
            if (j < len && s[j] == '$') {
                return false;
            }
            if (j < len && !(s[j] >= '0' && s[j] <= '9')) {
                while (j < len && is_ident(s[j])) {
                    j++;
                }
                if (j < len && s[j] == '$') {
                    return false; /* $tag$ ... $tag$ */
                }
            }
        }
    }
    return true;
}

size_t dg_cache_sql_normalize(const char *sql, size_t len, char *out)
{
    size_t a = 0, b = len;
    while (a < b && is_space(sql[a])) {
        a++;
    }
    while (b > a && is_space(sql[b - 1])) {
        b--;
    }
    size_t n = 0;
    if (!may_collapse(sql + a, b - a)) {
        memcpy(out, sql + a, b - a);
        n = b - a;
    } else {
        char quote = 0;
        for (size_t i = a; i < b; i++) {
            char ch = sql[i];
            if (quote) {
                out[n++] = ch;
                if (ch == quote) {
                    quote = 0;
                }
            } else if (is_space(ch)) {
                out[n++] = ' '; /* the ends are trimmed, so a run here is between tokens */
                while (i + 1 < b && is_space(sql[i + 1])) {
                    i++;
                }
            } else {
                if (ch == '\'' || ch == '"') {
                    quote = ch;
                }
                out[n++] = ch;
            }
        }
    }
    out[n] = '\0';
    return n;
}

/* SHA-256, fetched once: an implicit fetch per digest (EVP_sha256() in EVP_Digest) costs more
 * than hashing a key. */
static EVP_MD *sha256_md;
static pthread_key_t sha256_ctx_key; /* each thread's digest context, freed at thread exit */
static bool has_ctx_key;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void ctx_free(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    has_ctx_key = pthread_key_create(&sha256_ctx_key, ctx_free) == 0;
}

/* A context per thread, reused: a new one per key was a malloc/free pair on every lookup. */
static EVP_MD_CTX *thread_ctx(void)
{
    if (!has_ctx_key) {
        return NULL;
    }
    EVP_MD_CTX *ctx = pthread_getspecific(sha256_ctx_key);
    if (!ctx && (ctx = EVP_MD_CTX_new()) != NULL && pthread_setspecific(sha256_ctx_key, ctx) != 0) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

static bool sha256(const char *p, size_t len, unsigned char out[DG_CACHE_HASH_LEN])
{
    pthread_once(&sha256_once, sha256_fetch);
    EVP_MD_CTX *ctx = sha256_md ? thread_ctx() : NULL;
    unsigned int n = 0;
    return ctx && EVP_DigestInit_ex2(ctx, sha256_md, NULL) == 1 &&
           EVP_DigestUpdate(ctx, p, len) == 1 && EVP_DigestFinal_ex(ctx, out, &n) == 1 &&
           n == DG_CACHE_HASH_LEN;
}

dg_rc_t dg_cache_key_init(dg_cache_key_t *k, int db, uint64_t version, const char *text, size_t len)
{
    memset(k, 0, sizeof *k);
    k->text = malloc(len + 1);
    if (!k->text) {
        return DG_NOMEM;
    }
    memcpy(k->text, text, len);
    k->text[len] = '\0';
    k->len = len;
    k->db = db;
    k->version = version;
    if (!sha256(text, len, k->hash)) {
        dg_cache_key_free(k);
        return DG_INTERNAL;
    }
    return DG_OK;
}

dg_rc_t dg_cache_key_copy(dg_cache_key_t *dst, const dg_cache_key_t *src)
{
    *dst = *src;
    dst->text = malloc(src->len + 1);
    if (!dst->text) {
        memset(dst, 0, sizeof *dst);
        return DG_NOMEM;
    }
    memcpy(dst->text, src->text, src->len);
    dst->text[src->len] = '\0';
    return DG_OK;
}

void dg_cache_key_free(dg_cache_key_t *k)
{
    if (k) {
        free(k->text);
        k->text = NULL;
        k->len = 0;
    }
}

void dg_cache_key_etag(const dg_cache_key_t *k, char out[DG_CACHE_ETAG_LEN])
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    out[n++] = '"';
    for (size_t i = 0; i < 16; i++) {
        out[n++] = hex[k->hash[i] >> 4];
        out[n++] = hex[k->hash[i] & 15];
    }
    out[n++] = '"';
    out[n] = '\0';
}

static bool is_ignored(const char *field)
{
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) {
        if (strcmp(field, ignored[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Appends one field value: strings escaped (SQL normalised first), integers in decimal, anything
 * else (params: arrays and objects) as jansson's compact text with sorted keys. */
static dg_rc_t put_value(dg_buf_t *b, const char *field, const json_t *v)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (strcmp(field, "sql") != 0) {
            return dg_buf_json_str(b, s, len);
        }
        /* Dashboard SQL is short: normalise on the stack, the heap only for long text. */
        char small[2048];
        char *norm = len < sizeof small ? small : malloc(len + 1);
        if (!norm) {
            return DG_NOMEM;
        }
        dg_rc_t rc = dg_buf_json_str(b, norm, dg_cache_sql_normalize(s, len, norm));
        if (norm != small) {
            free(norm);
        }
        return rc;
    }
    if (json_is_integer(v)) {
        return dg_buf_printf(b, "%lld", (long long)json_integer_value(v));
    }
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (!text) {
        return DG_NOMEM;
    }
    dg_rc_t rc = dg_buf_puts(b, text);
    free(text);
    return rc;
}

dg_rc_t dg_cache_key_from_req(const json_t *req, int db, uint64_t version, const char *scope,
                              dg_cache_key_t *out)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(req)) {
        return DG_BAD_REQUEST;
    }
    /* The top level is written here, keys sorted: it is on every lookup, and a generic dump of
     * a copy of the object cost more than the rest of a cache hit. */
    size_t n = json_object_size(req);
    const char *few[32];
    const char **keys = n <= 32 ? few : malloc(n * sizeof *keys);
    if (!keys) {
        return DG_NOMEM;
    }
    size_t k = 0;
    const char *field;
    json_t *v;
    json_object_foreach((json_t *)(uintptr_t)req, field, v)
    {
        if (!is_ignored(field) && k < n) {
            keys[k++] = field;
        }
    }
    qsort(keys, k, sizeof *keys, cmp_str);
    dg_buf_t b;
    dg_buf_init(&b, 0);
    /* One allocation for the usual request: the SQL (or params) plus a few hundred bytes. */
    const json_t *sql = json_object_get(req, "sql");
    dg_rc_t rc = dg_buf_reserve(&b, 512 + (json_is_string(sql) ? json_string_length(sql) : 0));
    if (rc == DG_OK) {
        rc = dg_buf_puts(&b, "{");
    }
    for (size_t i = 0; i < k && rc == DG_OK; i++) {
        rc = i ? dg_buf_puts(&b, ",") : DG_OK;
        if (rc == DG_OK) {
            rc = dg_buf_json_str(&b, keys[i], strlen(keys[i]));
        }
        if (rc == DG_OK) {
            rc = dg_buf_puts(&b, ":");
        }
        if (rc == DG_OK) {
            rc = put_value(&b, keys[i], json_object_get(req, keys[i]));
        }
    }
    if (rc == DG_OK) {
        rc = dg_buf_printf(&b, "}\nversion=%llu\nscope=%s", (unsigned long long)version,
                           scope ? scope : "");
    }
    if (rc == DG_OK) {
        out->db = db;
        out->version = version;
        out->text = dg_buf_take(&b, &out->len); /* the key owns the built text */
        if (!out->text || !sha256(out->text, out->len, out->hash)) {
            rc = out->text ? DG_INTERNAL : DG_NOMEM;
            dg_cache_key_free(out);
        }
    }
    dg_buf_free(&b);
    if (keys != few) {
        free(keys);
    }
    return rc;
}
