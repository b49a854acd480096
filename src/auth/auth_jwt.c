/* JWT verification (see auth_jwt.h for the rules).
 *
 * Keys: a small array built once by dg_jwt_new: each entry has a family (HS256, RS256 or
 * ES256), an optional kid (JWKS) and either the HMAC secret or an OpenSSL public key. A token
 * picks its key by kid when it has one, else the only key of its algorithm's family; the key's
 * family must equal the token's algorithm, so a header cannot make us use an RSA key's bytes as
 * an HMAC secret.
 *
 * Threads: the key array is immutable after dg_jwt_new; EVP_PKEY objects are only read by
 * verification (OpenSSL 3 allows that from many threads at once). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "auth/auth_jwt.h"
#include "core/buf.h"
#include "core/str.h"

#define MAX_KEYS 64
#define KID_MAX 128
#define KEY_FILE_MAX (1u << 20) /* a JWKS of 64 RSA-4096 keys is far below this */
#define MIN_SECRET 32           /* RFC 7518 §3.2: at least the hash size */
#define MIN_RSA_BITS 2048
#define SUB_MAX 256

typedef struct jwt_key {
    unsigned family; /* one DG_JWT_* bit */
    char kid[KID_MAX + 1];
    bool has_kid;
    unsigned char *secret; /* HS256 */
    size_t secret_len;
    EVP_PKEY *pk; /* RS256 / ES256 */
} jwt_key;

struct dg_jwt {
    jwt_key keys[MAX_KEYS];
    size_t n_keys;
    unsigned algs;
    int64_t leeway_s;
    char *issuer, *audience, *role_claim, *db_claim; /* NULL = not checked (role/db: default) */
};

/* ---- base64url ---------------------------------------------------------------------- */

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

void dg_jwt_b64url_encode(const unsigned char *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= in[i + 2];
        }
        out[o++] = a[(v >> 18) & 63];
        out[o++] = a[(v >> 12) & 63];
        if (i + 1 < n) {
            out[o++] = a[(v >> 6) & 63];
        }
        if (i + 2 < n) {
            out[o++] = a[v & 63];
        }
    }
    out[o] = '\0';
}

bool dg_jwt_b64url_decode(const char *s, size_t len, unsigned char *out, size_t cap,
                          size_t *out_len)
{
    /* A remainder of one character cannot encode a byte. */
    if (len % 4 == 1 || (len / 4) * 3 + (len % 4 ? len % 4 - 1 : 0) > cap) {
        return false;
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_val((unsigned char)s[i]);
        if (v < 0) {
            return false;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Unused low bits of the last character must be zero: one canonical spelling per value,
     * so a tampered token cannot pass as the same bytes. */
    if (acc != 0) {
        return false;
    }
    *out_len = o;
    return true;
}

/* Decodes into a fresh malloc'd buffer (NUL-terminated for convenience). */
static unsigned char *b64url_dup(const char *s, size_t len, size_t *out_len)
{
    unsigned char *p = malloc(len + 1);
    if (!p) {
        return NULL;
    }
    if (!dg_jwt_b64url_decode(s, len, p, len, out_len)) {
        free(p);
        return NULL;
    }
    p[*out_len] = '\0';
    return p;
}

bool dg_jwt_is_shaped(const char *tok, size_t len)
{
    size_t dots = 0, seg = 0;
    for (size_t i = 0; i < len; i++) {
        if (tok[i] == '.') {
            if (seg == 0 || ++dots > 2) {
                return false;
            }
            seg = 0;
        } else if (b64_val((unsigned char)tok[i]) < 0) {
            return false;
        } else {
            seg++;
        }
    }
    return dots == 2 && seg > 0;
}

/* ---- key loading -------------------------------------------------------------------- */

static dg_rc_t read_file(const char *path, const char *what, dg_buf_t *b, dg_error_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return dg_error_set(err, DG_IO, "%s %s: %s", what, path, strerror(errno));
    }
    dg_buf_init(b, KEY_FILE_MAX);
    char chunk[8192];
    ssize_t n;
    dg_rc_t rc = DG_OK;
    while (rc == DG_OK && (n = read(fd, chunk, sizeof chunk)) != 0) {
        if (n < 0) {
            if (errno != EINTR) {
                rc = dg_error_set(err, DG_IO, "%s %s: %s", what, path, strerror(errno));
            }
        } else if (dg_buf_append(b, chunk, (size_t)n) != DG_OK) {
            rc = dg_error_set(err, DG_CONFIG, "%s %s: larger than %u bytes", what, path,
                              KEY_FILE_MAX);
        }
    }
    close(fd);
    if (rc != DG_OK) {
        dg_buf_free(b);
    }
    return rc;
}

static bool has_text(const char *s)
{
    return s && s[0];
}

static jwt_key *new_key(dg_jwt_t *j, unsigned family, dg_error_t *err)
{
    if (j->n_keys >= MAX_KEYS) {
        dg_error_set(err, DG_CONFIG, "JWT: more than %d keys", MAX_KEYS);
        return NULL;
    }
    jwt_key *k = &j->keys[j->n_keys++];
    memset(k, 0, sizeof *k);
    k->family = family;
    return k;
}

static dg_rc_t add_secret(dg_jwt_t *j, const char *s, size_t len, dg_error_t *err)
{
    /* Files usually end with a newline the writer did not mean as part of the secret. */
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r')) {
        len--;
    }
    if (len < MIN_SECRET) {
        return dg_error_set(err, DG_CONFIG, "JWT: the HS256 secret must have at least %d bytes",
                            MIN_SECRET);
    }
    jwt_key *k = new_key(j, DG_JWT_HS256, err);
    if (!k) {
        return DG_CONFIG;
    }
    if (!(k->secret = malloc(len))) {
        j->n_keys--;
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    memcpy(k->secret, s, len);
    k->secret_len = len;
    return DG_OK;
}

/* The family of an OpenSSL public key, after checking it is one we accept (RSA >= 2048 bits,
 * EC on P-256); 0 with err set otherwise. */
static unsigned pkey_family(EVP_PKEY *pk, const char *what, dg_error_t *err)
{
    if (EVP_PKEY_is_a(pk, "RSA")) {
        if (EVP_PKEY_get_bits(pk) < MIN_RSA_BITS) {
            dg_error_set(err, DG_CONFIG, "JWT: %s: RSA keys need at least %d bits", what,
                         MIN_RSA_BITS);
            return 0;
        }
        return DG_JWT_RS256;
    }
    if (EVP_PKEY_is_a(pk, "EC")) {
        char group[64] = "";
        size_t glen = 0;
        if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                           &glen) != 1 ||
            (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)) {
            dg_error_set(err, DG_CONFIG, "JWT: %s: EC keys must be on P-256", what);
            return 0;
        }
        return DG_JWT_ES256;
    }
    dg_error_set(err, DG_CONFIG, "JWT: %s: only RSA and EC P-256 public keys are supported", what);
    return 0;
}

static dg_rc_t add_pem(dg_jwt_t *j, const char *pem, size_t len, dg_error_t *err)
{
    if (len > KEY_FILE_MAX) {
        return dg_error_set(err, DG_CONFIG, "JWT: the PEM key is too large");
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    EVP_PKEY *pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!pk) {
        return dg_error_set(err, DG_CONFIG,
                            "JWT: the PEM key is not a public key (-----BEGIN PUBLIC KEY-----)");
    }
    unsigned fam = pkey_family(pk, "PEM key", err);
    jwt_key *k = fam ? new_key(j, fam, err) : NULL;
    if (!k) {
        EVP_PKEY_free(pk);
        return DG_CONFIG;
    }
    k->pk = pk;
    return DG_OK;
}

/* A big-endian unsigned integer member of a JWK (base64url); NULL with err set. */
static unsigned char *jwk_bytes(json_t *o, const char *name, size_t *out_len, size_t idx,
                                dg_error_t *err)
{
    const char *s = json_string_value(json_object_get(o, name));
    unsigned char *p = s ? b64url_dup(s, strlen(s), out_len) : NULL;
    if (!p || *out_len == 0) {
        free(p);
        dg_error_set(err, DG_CONFIG, "JWT: JWKS key %zu: missing or malformed \"%s\"", idx, name);
        return NULL;
    }
    return p;
}

/* Builds a public key from OpenSSL parameters. */
static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM *params)
{
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) == 1) {
        /* The point must be on the curve / the modulus sane, before we trust it. */
        EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
        if (!chk || EVP_PKEY_public_check(chk) != 1) {
            EVP_PKEY_free(pk);
            pk = NULL;
        }
        EVP_PKEY_CTX_free(chk);
    }
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

static EVP_PKEY *jwk_rsa(json_t *o, size_t idx, dg_error_t *err)
{
    size_t nl = 0, el = 0;
    unsigned char *n = jwk_bytes(o, "n", &nl, idx, err);
    unsigned char *e = n ? jwk_bytes(o, "e", &el, idx, err) : NULL;
    EVP_PKEY *pk = NULL;
    BIGNUM *bn = e ? BN_bin2bn(n, (int)nl, NULL) : NULL;
    BIGNUM *be = bn ? BN_bin2bn(e, (int)el, NULL) : NULL;
    OSSL_PARAM_BLD *bld = be ? OSSL_PARAM_BLD_new() : NULL;
    OSSL_PARAM *params = NULL;
    if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) == 1 &&
        (params = OSSL_PARAM_BLD_to_param(bld)) != NULL) {
        pk = pkey_fromdata("RSA", params);
    }
    if (!pk && e) {
        dg_error_set(err, DG_CONFIG, "JWT: JWKS key %zu: not a valid RSA public key", idx);
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    free(n);
    free(e);
    return pk;
}

static EVP_PKEY *jwk_ec(json_t *o, size_t idx, dg_error_t *err)
{
    const char *crv = json_string_value(json_object_get(o, "crv"));
    if (!crv || strcmp(crv, "P-256") != 0) {
        dg_error_set(err, DG_CONFIG, "JWT: JWKS key %zu: EC keys must have crv P-256", idx);
        return NULL;
    }
    size_t xl = 0, yl = 0;
    unsigned char *x = jwk_bytes(o, "x", &xl, idx, err);
    unsigned char *y = x ? jwk_bytes(o, "y", &yl, idx, err) : NULL;
    EVP_PKEY *pk = NULL;
    if (y && xl == 32 && yl == 32) {
        unsigned char point[65];
        point[0] = 0x04; /* uncompressed */
        memcpy(point + 1, x, 32);
        memcpy(point + 33, y, 32);
        char group[] = "prime256v1";
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
            OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point),
            OSSL_PARAM_construct_end(),
        };
        pk = pkey_fromdata("EC", params);
    }
    if (!pk && y) {
        dg_error_set(err, DG_CONFIG, "JWT: JWKS key %zu: not a valid P-256 public key", idx);
    }
    free(x);
    free(y);
    return pk;
}

static dg_rc_t add_jwks(dg_jwt_t *j, const char *text, size_t len, dg_error_t *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *arr = json_object_get(root, "keys");
    if (!root || !json_is_array(arr)) {
        json_decref(root);
        return dg_error_set(err, DG_CONFIG, "JWT: the JWKS is not {\"keys\":[...]}%s%s",
                            root ? "" : ": ", root ? "" : jerr.text);
    }
    dg_rc_t rc = DG_OK;
    size_t used = 0;
    for (size_t i = 0; rc == DG_OK && i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i);
        const char *kty = json_string_value(json_object_get(o, "kty"));
        const char *use = json_string_value(json_object_get(o, "use"));
        const char *alg = json_string_value(json_object_get(o, "alg"));
        const char *kid = json_string_value(json_object_get(o, "kid"));
        if (!json_is_object(o) || !kty) {
            rc = dg_error_set(err, DG_CONFIG, "JWT: JWKS key %zu has no kty", i);
            break;
        }
        /* Encryption keys and symmetric keys are not for us: a JWKS is public material, and
         * an "oct" secret in it would be readable by anyone who can read the file. */
        if ((use && strcmp(use, "sig") != 0) || strcmp(kty, "oct") == 0 ||
            strcmp(kty, "OKP") == 0) {
            continue;
        }
        unsigned fam = strcmp(kty, "RSA") == 0  ? DG_JWT_RS256
                       : strcmp(kty, "EC") == 0 ? DG_JWT_ES256
                                                : 0;
        if (!fam) {
            rc = dg_error_set(err, DG_CONFIG, "JWT: JWKS key %zu: unsupported kty", i);
            break;
        }
        if (alg && strcmp(alg, fam == DG_JWT_RS256 ? "RS256" : "ES256") != 0) {
            continue; /* e.g. an RSA key meant for PS256: not usable with our algorithms */
        }
        if (kid && (strlen(kid) == 0 || strlen(kid) > KID_MAX)) {
            rc = dg_error_set(err, DG_CONFIG, "JWT: JWKS key %zu: kid empty or too long", i);
            break;
        }
        for (size_t k = 0; kid && k < j->n_keys; k++) {
            if (j->keys[k].has_kid && strcmp(j->keys[k].kid, kid) == 0) {
                rc = dg_error_set(err, DG_CONFIG, "JWT: JWKS key %zu: duplicate kid", i);
            }
        }
        if (rc != DG_OK) {
            break;
        }
        EVP_PKEY *pk = fam == DG_JWT_RS256 ? jwk_rsa(o, i, err) : jwk_ec(o, i, err);
        unsigned got = pk ? pkey_family(pk, "JWKS key", err) : 0;
        jwt_key *k = got == fam ? new_key(j, fam, err) : NULL;
        if (!k) {
            EVP_PKEY_free(pk);
            rc = DG_CONFIG;
            break;
        }
        k->pk = pk;
        if (kid) {
            memcpy(k->kid, kid, strlen(kid) + 1);
            k->has_kid = true;
        }
        used++;
    }
    json_decref(root);
    if (rc == DG_OK && used == 0) {
        rc = dg_error_set(err, DG_CONFIG, "JWT: the JWKS holds no RSA or EC P-256 signing key");
    }
    return rc;
}

/* Key material from memory or from its file. */
static dg_rc_t load_source(dg_jwt_t *j, const char *mem, size_t mem_len, const char *file,
                           const char *what,
                           dg_rc_t (*add)(dg_jwt_t *, const char *, size_t, dg_error_t *),
                           dg_error_t *err)
{
    if (mem) {
        return add(j, mem, mem_len, err);
    }
    if (!has_text(file)) {
        return DG_OK;
    }
    dg_buf_t b;
    dg_rc_t rc = read_file(file, what, &b, err);
    if (rc == DG_OK) {
        rc = add(j, b.p ? b.p : "", b.len, err);
        OPENSSL_cleanse(b.p, b.len);
        dg_buf_free(&b);
    }
    return rc;
}

static unsigned alg_of(const char *s, size_t len)
{
    if (len == 5 && memcmp(s, "HS256", 5) == 0) {
        return DG_JWT_HS256;
    }
    if (len == 5 && memcmp(s, "RS256", 5) == 0) {
        return DG_JWT_RS256;
    }
    if (len == 5 && memcmp(s, "ES256", 5) == 0) {
        return DG_JWT_ES256;
    }
    return 0;
}

static const char *alg_name(unsigned a)
{
    return a == DG_JWT_HS256 ? "HS256" : a == DG_JWT_RS256 ? "RS256" : "ES256";
}

static dg_rc_t parse_algorithms(dg_jwt_t *j, const char *list, unsigned have, dg_error_t *err)
{
    if (!has_text(list)) {
        j->algs = have;
        return DG_OK;
    }
    unsigned algs = 0;
    const char *p = list;
    dg_str_t item;
    while (dg_str_list_next(&p, &item)) {
        unsigned a = alg_of(item.p, item.len);
        if (!a) {
            return dg_error_set(err, DG_CONFIG,
                                "jwt_algorithms: \"%.*s\" is not one of HS256, RS256, ES256",
                                (int)(item.len > 32 ? 32 : item.len), item.p);
        }
        if (!(have & a)) {
            return dg_error_set(err, DG_CONFIG,
                                "jwt_algorithms lists %s but no %s key is configured", alg_name(a),
                                a == DG_JWT_HS256   ? "HMAC (jwt_secret_file)"
                                : a == DG_JWT_RS256 ? "RSA"
                                                    : "EC P-256");
        }
        algs |= a;
    }
    if (!algs) {
        return dg_error_set(err, DG_CONFIG, "jwt_algorithms is empty");
    }
    j->algs = algs;
    return DG_OK;
}

static char *dup_or_null(const char *s, bool *ok)
{
    if (!has_text(s)) {
        return NULL;
    }
    char *d = strdup(s);
    *ok = *ok && d;
    return d;
}

bool dg_jwt_opts_has_key(const dg_jwt_opts_t *o)
{
    return o->secret || o->pem || o->jwks || has_text(o->secret_file) || has_text(o->pem_file) ||
           has_text(o->jwks_file);
}

dg_rc_t dg_jwt_new(const dg_jwt_opts_t *o, dg_jwt_t **out, dg_error_t *err)
{
    *out = NULL;
    dg_jwt_t *j = calloc(1, sizeof *j);
    if (!j) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    bool ok = true;
    j->leeway_s = o->leeway_s < 0 ? 0 : o->leeway_s;
    j->issuer = dup_or_null(o->issuer, &ok);
    j->audience = dup_or_null(o->audience, &ok);
    j->role_claim = strdup(has_text(o->role_claim) ? o->role_claim : "role");
    j->db_claim = strdup(has_text(o->db_claim) ? o->db_claim : "dbs");
    dg_rc_t rc =
        ok && j->role_claim && j->db_claim ? DG_OK : dg_error_set(err, DG_NOMEM, "out of memory");
    if (rc == DG_OK) {
        rc = load_source(j, o->secret, o->secret_len, o->secret_file, "jwt_secret_file", add_secret,
                         err);
    }
    if (rc == DG_OK) {
        rc = load_source(j, o->pem, o->pem_len, o->pem_file, "jwt_public_key_file", add_pem, err);
    }
    if (rc == DG_OK) {
        rc = load_source(j, o->jwks, o->jwks_len, o->jwks_file, "jwt_jwks_file", add_jwks, err);
    }
    if (rc == DG_OK && j->n_keys == 0) {
        rc = dg_error_set(err, DG_CONFIG, "JWT: no key configured");
    }
    unsigned have = 0;
    for (size_t i = 0; i < j->n_keys; i++) {
        have |= j->keys[i].family;
    }
    if (rc == DG_OK) {
        rc = parse_algorithms(j, o->algorithms, have, err);
    }
    if (rc != DG_OK) {
        dg_jwt_free(j);
        return rc;
    }
    *out = j;
    return DG_OK;
}

void dg_jwt_free(dg_jwt_t *j)
{
    if (!j) {
        return;
    }
    for (size_t i = 0; i < j->n_keys; i++) {
        if (j->keys[i].secret) {
            OPENSSL_cleanse(j->keys[i].secret, j->keys[i].secret_len);
        }
        free(j->keys[i].secret);
        EVP_PKEY_free(j->keys[i].pk);
    }
    free(j->issuer);
    free(j->audience);
    free(j->role_claim);
    free(j->db_claim);
    free(j);
}

unsigned dg_jwt_algorithms(const dg_jwt_t *j)
{
    return j->algs;
}

/* ---- verification ------------------------------------------------------------------- */

/* The key for a token of algorithm alg with an optional kid, or NULL with *why set. */
static const jwt_key *pick_key(const dg_jwt_t *j, unsigned alg, const char *kid, const char **why)
{
    if (kid) {
        for (size_t i = 0; i < j->n_keys; i++) {
            if (j->keys[i].has_kid && strcmp(j->keys[i].kid, kid) == 0) {
                if (j->keys[i].family != alg) {
                    *why = "token algorithm does not match its key";
                    return NULL;
                }
                return &j->keys[i];
            }
        }
    }
    /* No kid, or a kid we do not know: the single key of the family without a kid (a secret
     * or a PEM key) may still be meant. */
    const jwt_key *found = NULL;
    size_t n = 0;
    for (size_t i = 0; i < j->n_keys; i++) {
        if (j->keys[i].family == alg && (!kid || !j->keys[i].has_kid)) {
            found = &j->keys[i];
            n++;
        }
    }
    if (n == 1) {
        return found;
    }
    *why = n == 0 ? (kid ? "unknown key id" : "no key for the token's algorithm")
                  : "token has no key id (kid)";
    return NULL;
}

static bool verify_sig(const jwt_key *k, const unsigned char *msg, size_t msg_len,
                       const unsigned char *sig, size_t sig_len)
{
    if (k->family == DG_JWT_HS256) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        if (sig_len != 32 ||
            !HMAC(EVP_sha256(), k->secret, (int)k->secret_len, msg, msg_len, mac, &mac_len) ||
            mac_len != 32) {
            return false;
        }
        return CRYPTO_memcmp(mac, sig, 32) == 0;
    }
    unsigned char *der = NULL;
    const unsigned char *s = sig;
    size_t s_len = sig_len;
    if (k->family == DG_JWT_ES256) {
        /* JOSE sends r || s (32 bytes each); OpenSSL wants an ASN.1 DER ECDSA-Sig-Value. */
        if (sig_len != 64) {
            return false;
        }
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL);
        BIGNUM *ss = BN_bin2bn(sig + 32, 32, NULL);
        if (!es || !r || !ss || ECDSA_SIG_set0(es, r, ss) != 1) {
            BN_free(r);
            BN_free(ss);
            ECDSA_SIG_free(es);
            return false;
        }
        int n = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        if (n <= 0) {
            return false;
        }
        s = der;
        s_len = (size_t)n;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pk) == 1 &&
              EVP_DigestVerify(ctx, s, s_len, msg, msg_len) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    return ok;
}

/* A NumericDate claim (RFC 7519 §2): integer or real seconds; false when malformed. */
static bool numeric_date(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d < -9007199254740992.0 || d > 9007199254740992.0) {
            return false;
        }
        int64_t t = (int64_t)d; /* truncates toward zero; step down for negative fractions */
        *out = (double)t > d ? t - 1 : t;
        return true;
    }
    return false;
}

static bool db_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > 64 || s[0] == '-') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

static void set_principal(const char *sub, size_t len, char out[48])
{
    bool plain = len <= 40;
    for (size_t i = 0; plain && i < len; i++) {
        char c = sub[i];
        plain = isalnum((unsigned char)c) || c == '.' || c == '_' || c == '@' || c == '+' ||
                c == ':' || c == '-';
    }
    if (plain) {
        snprintf(out, 48, "jwt:%.*s", (int)len, sub);
        return;
    }
    /* Long or unusual subjects: a stable digest keeps the principal short, log-safe and
     * unique ('#' never occurs in the plain form). */
    unsigned char h[32];
    SHA256((const unsigned char *)sub, len, h);
    memcpy(out, "jwt:#", 5);
    for (int i = 0; i < 16; i++) {
        snprintf(out + 5 + 2 * i, 3, "%02x", h[i]);
    }
}

/* Checks the claims of a verified payload. NULL when fine, else the reason. */
static const char *check_claims(const dg_jwt_t *j, json_t *c, int64_t now, dg_jwt_claims_t *out)
{
    if (!json_is_object(c)) {
        return "token payload is not a JSON object";
    }
    int64_t exp = 0, nbf = 0, iat = 0;
    json_t *v = json_object_get(c, "exp");
    if (!v) {
        return "token has no exp";
    }
    if (!numeric_date(v, &exp)) {
        return "token exp is not a number";
    }
    if (now >= exp && now - exp >= j->leeway_s) {
        return "token expired";
    }
    if ((v = json_object_get(c, "nbf")) != NULL) {
        if (!numeric_date(v, &nbf)) {
            return "token nbf is not a number";
        }
        if (nbf > now && nbf - now > j->leeway_s) {
            return "token not valid yet (nbf)";
        }
    }
    if ((v = json_object_get(c, "iat")) != NULL) {
        if (!numeric_date(v, &iat)) {
            return "token iat is not a number";
        }
        if (iat > now && iat - now > j->leeway_s) {
            return "token issued in the future (iat)";
        }
    }
    if (j->issuer) {
        const char *iss = json_string_value(json_object_get(c, "iss"));
        if (!iss || strcmp(iss, j->issuer) != 0) {
            return "token issuer (iss) not accepted";
        }
    }
    if (j->audience) {
        json_t *aud = json_object_get(c, "aud");
        bool found = json_is_string(aud) && strcmp(json_string_value(aud), j->audience) == 0;
        for (size_t i = 0; !found && json_is_array(aud) && i < json_array_size(aud); i++) {
            const char *a = json_string_value(json_array_get(aud, i));
            found = a && strcmp(a, j->audience) == 0;
        }
        if (!found) {
            return "token audience (aud) not accepted";
        }
    }
    json_t *sub = json_object_get(c, "sub");
    if (!json_is_string(sub) || json_string_length(sub) == 0 || json_string_length(sub) > SUB_MAX) {
        return "token has no usable sub";
    }
    const char *role = json_string_value(json_object_get(c, j->role_claim));
    if (!role) {
        return "token has no role claim";
    }
    if (!dg_auth_role_parse(role, &out->role) || out->role == DG_ROLE_NONE) {
        return "token role is not viewer, analyst or admin";
    }
    json_t *dbs = json_object_get(c, j->db_claim);
    out->n_dbs = 0;
    if (dbs) {
        /* Present means "only these": an empty or malformed list must not widen to "all". */
        if (!json_is_array(dbs) || json_array_size(dbs) == 0 ||
            json_array_size(dbs) > DG_AUTH_MAX_DBS) {
            return "token database claim must be a list of 1 to 32 names";
        }
        for (size_t i = 0; i < json_array_size(dbs); i++) {
            json_t *d = json_array_get(dbs, i);
            if (!json_is_string(d) || !db_name_ok(json_string_value(d), json_string_length(d))) {
                return "token database claim holds a bad name";
            }
            memcpy(out->dbs[out->n_dbs++], json_string_value(d), json_string_length(d) + 1);
        }
    }
    set_principal(json_string_value(sub), json_string_length(sub), out->principal);
    out->exp = exp;
    return NULL;
}

dg_rc_t dg_jwt_verify(const dg_jwt_t *j, const char *tok, size_t len, int64_t now_s,
                      dg_jwt_claims_t *out, const char **out_reason)
{
    const char *why_dummy;
    const char **why = out_reason ? out_reason : &why_dummy;
    *why = NULL;
    memset(out, 0, sizeof *out);
    if (len > DG_JWT_MAX_BYTES) {
        *why = "token too large";
        return DG_UNAUTHORIZED;
    }
    if (!dg_jwt_is_shaped(tok, len)) {
        *why = "malformed token";
        return DG_UNAUTHORIZED;
    }
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok));
    size_t h_len = (size_t)(d1 - tok), p_len = (size_t)(d2 - d1 - 1);
    size_t s_len = len - (size_t)(d2 + 1 - tok);

    dg_rc_t rc = DG_UNAUTHORIZED;
    json_t *hdr = NULL, *claims = NULL;
    unsigned char *h = NULL, *p = NULL, *sig = NULL;
    size_t hn = 0, pn = 0, sn = 0;
    if (!(h = b64url_dup(tok, h_len, &hn)) || !(sig = b64url_dup(d2 + 1, s_len, &sn))) {
        *why = "malformed token encoding";
        goto out;
    }
    hdr = json_loadb((const char *)h, hn, JSON_REJECT_DUPLICATES, NULL);
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    json_t *kidv = json_object_get(hdr, "kid");
    if (!json_is_object(hdr) || !alg) {
        *why = "malformed token header";
        goto out;
    }
    if (json_object_get(hdr, "crit")) {
        *why = "token header has unsupported critical extensions";
        goto out;
    }
    if (kidv && (!json_is_string(kidv) || json_string_length(kidv) > KID_MAX ||
                 strlen(json_string_value(kidv)) != json_string_length(kidv))) {
        *why = "malformed token key id";
        goto out;
    }
    unsigned a = alg_of(alg, strlen(alg));
    if (!a || !(j->algs & a) || strlen(alg) != json_string_length(json_object_get(hdr, "alg"))) {
        *why = "token algorithm not allowed";
        goto out;
    }
    const jwt_key *k = pick_key(j, a, kidv ? json_string_value(kidv) : NULL, why);
    if (!k) {
        goto out;
    }
    /* The signature covers the ASCII "header.payload" exactly as sent. */
    if (!verify_sig(k, (const unsigned char *)tok, h_len + 1 + p_len, sig, sn)) {
        *why = "bad token signature";
        goto out;
    }
    if (!(p = b64url_dup(d1 + 1, p_len, &pn))) {
        *why = "malformed token encoding";
        goto out;
    }
    claims = json_loadb((const char *)p, pn, JSON_REJECT_DUPLICATES, NULL);
    if (!claims) {
        *why = "token payload is not valid JSON";
        goto out;
    }
    *why = check_claims(j, claims, now_s, out);
    if (*why == NULL) {
        rc = DG_OK;
    }
out:
    if (rc != DG_OK) {
        memset(out, 0, sizeof *out);
    }
    json_decref(hdr);
    json_decref(claims);
    free(h);
    free(p);
    free(sig);
    return rc;
}
