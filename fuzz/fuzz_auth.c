/* Fuzzes the auth parsers: the Authorization / X-API-Key credential extraction (and the JWT
 * shape test that routes a credential to JWT or key lookup), the key file JSON (a set that
 * parses must dump and re-parse to the same bytes) and the hashed lookup. */
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/auth_jwt.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) {
        return 0;
    }
    memcpy(s, data, size);
    s[size] = '\0';
    dg_str_t t;
    int c = dg_auth_credential(s, NULL, &t);
    if (c == 1 && (t.len == 0 || t.len > DG_AUTH_TOKEN_MAX || t.p < s || t.p + t.len > s + size)) {
        abort();
    }
    /* What identify does next: a JWT by shape, else an API key lookup. */
    if (c == 1 && dg_jwt_is_shaped(t.p, t.len) && (memchr(t.p, '=', t.len) || t.len < 5)) {
        abort();
    }
    c = dg_auth_credential(NULL, s, &t);
    if (c == 1 && (t.len == 0 || t.len > DG_AUTH_TOKEN_MAX)) {
        abort();
    }

    dg_auth_keyset_t *ks = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    if (dg_auth_keys_parse((const char *)data, size, &ks, &err) == DG_OK) {
        char *d1 = dg_auth_keys_dump(ks);
        dg_auth_keyset_t *back = NULL;
        if (!d1 || dg_auth_keys_parse(d1, strlen(d1), &back, &err) != DG_OK) {
            abort();
        }
        char *d2 = dg_auth_keys_dump(back);
        if (!d2 || strcmp(d1, d2) != 0 || dg_auth_keys_count(back) != dg_auth_keys_count(ks)) {
            abort();
        }
        (void)dg_auth_keys_find(ks, s, size);
        free(d1);
        free(d2);
        dg_auth_keys_free(back);
        dg_auth_keys_free(ks);
    } else if (ks || err.msg[0] == '\0') {
        abort();
    }
    free(s);
    return 0;
}
