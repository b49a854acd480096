/* Fuzzes the result cache's key text: SQL normalisation (untrusted SQL text) and the canonical
 * key of a request holding it. Input: the SQL. Checks that normalisation only ever touches
 * whitespace (the text without any whitespace is unchanged), never grows the text, trims the
 * ends, is idempotent, and that the key of the normalised SQL equals the key of the original. */
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "fuzz.h"

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* s without its whitespace, into out (room for len + 1). */
static size_t squeeze(const char *s, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_space(s[i])) {
            out[n++] = s[i];
        }
    }
    return n;
}

static char *key_text(const char *sql, size_t len)
{
    json_t *req = json_object();
    json_t *v = json_stringn(sql, len); /* NULL for invalid UTF-8 or a NUL: nothing to key */
    char *text = NULL;
    dg_cache_key_t k;
    if (req && v && json_object_set_new(req, "sql", v) == 0 &&
        dg_cache_key_from_req(req, 0, 1, "analyst|*", &k) == DG_OK) {
        text = strdup(k.text);
        dg_cache_key_free(&k);
    } else if (v && req) {
        abort(); /* a valid request must always get a key */
    }
    json_decref(req);
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *sql = (const char *)data;
    char *a = malloc(size + 1), *b = malloc(size + 1), *s1 = malloc(size + 1),
         *s2 = malloc(size + 1);
    if (!a || !b || !s1 || !s2) {
        abort();
    }
    size_t na = dg_cache_sql_normalize(sql, size, a);
    if (na > size || a[na] != '\0' || (na > 0 && (is_space(a[0]) || is_space(a[na - 1])))) {
        abort();
    }
    size_t n1 = squeeze(sql, size, s1), n2 = squeeze(a, na, s2);
    if (n1 != n2 || memcmp(s1, s2, n1) != 0) {
        abort();
    }
    size_t nb = dg_cache_sql_normalize(a, na, b);
    if (nb != na || memcmp(a, b, na) != 0) {
        abort();
    }
    char *k1 = key_text(sql, size), *k2 = key_text(a, na);
    if (k1 && k2 && strcmp(k1, k2) != 0) {
        abort();
    }
    free(k1);
    free(k2);
    free(a);
    free(b);
    free(s1);
    free(s2);
    return 0;
}
