/* Unit tests of src/auth/auth_jwt.c: tokens are built and signed here with OpenSSL (keys
 * generated per run), then verified: valid HS256/RS256/ES256 (PEM and JWKS with kid),
 * tampering, wrong keys, alg none, the HS/RS confusion attack, exp/nbf/iat with leeway, iss and
 * aud, missing and malformed claims, malformed base64url and JSON, size caps, bad key
 * configurations, and the JWT path of dg_auth_identify plus scope narrowing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "auth/auth_jwt.h"

#define NOW 1700000000
#define SECRET "0123456789abcdef0123456789abcdef-hs256-test-secret"

/* Keys shared by the tests (generated once in setup). */
static EVP_PKEY *rsa_a, *rsa_b, *ec_a, *ec_b;
static char *rsa_a_pem, *ec_a_pem;

/* ---- helpers: encoding, signing, keys ------------------------------------------------- */

static char *b64url(const unsigned char *in, size_t n)
{
    char *out = malloc(DG_JWT_B64URL_LEN(n) + 1);
    assert_non_null(out);
    dg_jwt_b64url_encode(in, n, out);
    return out;
}

static char *b64s(const char *s)
{
    return b64url((const unsigned char *)s, strlen(s));
}

/* Signature bytes of msg by alg: "HS256" with secret, "RS256"/"ES256" with pk. ES256 is
 * converted from OpenSSL's DER to JOSE r||s unless der is true. */
static unsigned char *sign(const char *alg, const void *secret, size_t secret_len, EVP_PKEY *pk,
                           const char *msg, bool der, size_t *out_len)
{
    unsigned char *sig = malloc(1024);
    assert_non_null(sig);
    if (strcmp(alg, "HS256") == 0) {
        unsigned int n = 0;
        assert_non_null(HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)msg,
                             strlen(msg), sig, &n));
        *out_len = n;
        return sig;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t n = 1024;
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pk), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &n, (const unsigned char *)msg, strlen(msg)), 1);
    EVP_MD_CTX_free(ctx);
    if (strcmp(alg, "ES256") == 0 && !der) {
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
        assert_non_null(es);
        unsigned char raw[64];
        assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32), 32);
        assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32), 32);
        ECDSA_SIG_free(es);
        memcpy(sig, raw, 64);
        n = 64;
    }
    *out_len = n;
    return sig;
}

/* header.payload.signature with the given JSON texts. */
static char *token_ex(const char *header, const char *payload, const char *alg, const void *secret,
                      size_t secret_len, EVP_PKEY *pk, bool der)
{
    char *h = b64s(header), *p = b64s(payload);
    size_t mlen = strlen(h) + strlen(p) + 2;
    char *msg = malloc(mlen);
    snprintf(msg, mlen, "%s.%s", h, p);
    size_t sl = 0;
    unsigned char *sig = sign(alg, secret, secret_len, pk, msg, der, &sl);
    char *s = b64url(sig, sl);
    size_t tlen = mlen + strlen(s) + 1;
    char *tok = malloc(tlen);
    snprintf(tok, tlen, "%s.%s", msg, s);
    free(h);
    free(p);
    free(msg);
    free(sig);
    free(s);
    return tok;
}

static char *hs(const char *payload)
{
    return token_ex("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, "HS256", SECRET, strlen(SECRET),
                    NULL, false);
}

static char *rs(const char *payload, EVP_PKEY *k, const char *kid)
{
    char hdr[128];
    if (kid) {
        snprintf(hdr, sizeof hdr, "{\"alg\":\"RS256\",\"kid\":\"%s\"}", kid);
    } else {
        snprintf(hdr, sizeof hdr, "{\"alg\":\"RS256\"}");
    }
    return token_ex(hdr, payload, "RS256", NULL, 0, k, false);
}

static char *es(const char *payload, EVP_PKEY *k, const char *kid)
{
    char hdr[128];
    if (kid) {
        snprintf(hdr, sizeof hdr, "{\"alg\":\"ES256\",\"kid\":\"%s\"}", kid);
    } else {
        snprintf(hdr, sizeof hdr, "{\"alg\":\"ES256\"}");
    }
    return token_ex(hdr, payload, "ES256", NULL, 0, k, false);
}

static char *pem_of(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *out = malloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(b);
    return out;
}

static char *bn_b64(EVP_PKEY *k, const char *param)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    unsigned char buf[1024];
    int n = BN_bn2bin(bn, buf);
    /* EC coordinates are fixed-size (32 bytes) in a JWK. */
    if (strcmp(param, OSSL_PKEY_PARAM_EC_PUB_X) == 0 ||
        strcmp(param, OSSL_PKEY_PARAM_EC_PUB_Y) == 0) {
        n = BN_bn2binpad(bn, buf, 32);
    }
    BN_free(bn);
    return b64url(buf, (size_t)n);
}

/* Appends the JWK of k with kid to out. */
static void jwk(char *out, size_t cap, EVP_PKEY *k, const char *kid)
{
    size_t len = strlen(out);
    if (EVP_PKEY_is_a(k, "RSA")) {
        char *n = bn_b64(k, OSSL_PKEY_PARAM_RSA_N), *e = bn_b64(k, OSSL_PKEY_PARAM_RSA_E);
        snprintf(out + len, cap - len,
                 "%s{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"%s\",\"n\":\"%s\","
                 "\"e\":\"%s\"}",
                 len > 9 ? "," : "", kid, n, e);
        free(n);
        free(e);
    } else {
        char *x = bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X), *y = bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y);
        snprintf(out + len, cap - len,
                 "%s{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}",
                 len > 9 ? "," : "", kid, x, y);
        free(x);
        free(y);
    }
}

static dg_jwt_t *verifier(const dg_jwt_opts_t *o)
{
    dg_jwt_t *j = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = dg_jwt_new(o, &j, &err);
    if (rc != DG_OK) {
        fail_msg("dg_jwt_new: %s", err.msg);
    }
    return j;
}

static dg_jwt_t *hs_verifier(void)
{
    dg_jwt_opts_t o = {.secret = SECRET, .secret_len = strlen(SECRET), .leeway_s = 30};
    return verifier(&o);
}

/* Verifies tok and returns the reason (NULL when valid). */
static const char *check(const dg_jwt_t *j, const char *tok, int64_t now, dg_jwt_claims_t *cl)
{
    dg_jwt_claims_t tmp;
    const char *why = NULL;
    dg_rc_t rc = dg_jwt_verify(j, tok, strlen(tok), now, cl ? cl : &tmp, &why);
    if (rc == DG_OK) {
        assert_null(why);
        return NULL;
    }
    assert_int_equal(rc, DG_UNAUTHORIZED);
    assert_non_null(why);
    return why;
}

static int setup(void **state)
{
    (void)state;
    rsa_a = EVP_RSA_gen(2048);
    rsa_b = EVP_RSA_gen(2048);
    ec_a = EVP_EC_gen("P-256");
    ec_b = EVP_EC_gen("P-256");
    if (!rsa_a || !rsa_b || !ec_a || !ec_b) {
        return -1;
    }
    rsa_a_pem = pem_of(rsa_a);
    ec_a_pem = pem_of(ec_a);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(rsa_a);
    EVP_PKEY_free(rsa_b);
    EVP_PKEY_free(ec_a);
    EVP_PKEY_free(ec_b);
    free(rsa_a_pem);
    free(ec_a_pem);
    return 0;
}

#define CLAIMS "\"sub\":\"alice\",\"role\":\"analyst\",\"exp\":1700000100"

/* ---- tests -------------------------------------------------------------------------- */

static void test_b64url(void **state)
{
    (void)state;
    unsigned char out[16];
    size_t n = 0;
    assert_true(dg_jwt_b64url_decode("", 0, out, sizeof out, &n));
    assert_int_equal(n, 0);
    assert_true(dg_jwt_b64url_decode("Zm9vYmFy", 8, out, sizeof out, &n));
    assert_int_equal(n, 6);
    assert_memory_equal(out, "foobar", 6);
    assert_true(dg_jwt_b64url_decode("Zm9vYg", 6, out, sizeof out, &n));
    assert_memory_equal(out, "foob", 4);
    assert_true(dg_jwt_b64url_decode("-_8", 3, out, sizeof out, &n));
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);
    assert_false(dg_jwt_b64url_decode("Zm9vYg==", 8, out, sizeof out, &n)); /* padding */
    assert_false(dg_jwt_b64url_decode("Zm9vYh", 6, out, sizeof out, &n));   /* stray bits */
    assert_false(dg_jwt_b64url_decode("Zm9+Yg", 6, out, sizeof out, &n));   /* base64, not url */
    assert_false(dg_jwt_b64url_decode("Zm9vY", 5, out, sizeof out, &n));    /* 1 char left */
    assert_false(dg_jwt_b64url_decode("Zm9vYmFy", 8, out, 5, &n));          /* does not fit */

    assert_true(dg_jwt_is_shaped("a.b.c", 5));
    assert_false(dg_jwt_is_shaped("a.b.", 4));
    assert_false(dg_jwt_is_shaped(".b.c", 4));
    assert_false(dg_jwt_is_shaped("a..c", 4));
    assert_false(dg_jwt_is_shaped("a.b.c.d", 7));
    assert_false(dg_jwt_is_shaped("a.b", 3));
    assert_false(dg_jwt_is_shaped("a.b=.c", 6));
    assert_false(dg_jwt_is_shaped("dgk_AAAA", 8));
}

static void test_valid_hs256(void **state)
{
    (void)state;
    dg_jwt_t *j = hs_verifier();
    assert_int_equal(dg_jwt_algorithms(j), DG_JWT_HS256);
    char *t = hs("{" CLAIMS ",\"dbs\":[\"main\",\"other\"],\"iat\":1699999990}");
    dg_jwt_claims_t cl;
    assert_null(check(j, t, NOW, &cl));
    assert_string_equal(cl.principal, "jwt:alice");
    assert_int_equal(cl.role, DG_ROLE_ANALYST);
    assert_int_equal(cl.n_dbs, 2);
    assert_string_equal(cl.dbs[1], "other");
    assert_int_equal(cl.exp, 1700000100);
    free(t);
    /* No db claim: every database. NumericDate may be a real. */
    t = hs("{\"sub\":\"bob\",\"role\":\"viewer\",\"exp\":1700000100.75}");
    assert_null(check(j, t, NOW, &cl));
    assert_int_equal(cl.n_dbs, 0);
    assert_int_equal(cl.role, DG_ROLE_VIEWER);
    free(t);
    /* A long or unusual subject becomes a digest. */
    t = hs("{\"sub\":\"user with spaces and a very long name indeed, over forty\","
           "\"role\":\"admin\",\"exp\":1700000100}");
    assert_null(check(j, t, NOW, &cl));
    assert_memory_equal(cl.principal, "jwt:#", 5);
    assert_int_equal(strlen(cl.principal), 37);
    free(t);
    dg_jwt_free(j);
}

static void test_valid_rs_es_pem(void **state)
{
    (void)state;
    dg_jwt_opts_t o = {.pem = rsa_a_pem, .pem_len = strlen(rsa_a_pem)};
    dg_jwt_t *j = verifier(&o);
    assert_int_equal(dg_jwt_algorithms(j), DG_JWT_RS256);
    char *t = rs("{" CLAIMS "}", rsa_a, NULL);
    assert_null(check(j, t, NOW, NULL));
    free(t);
    /* A kid the PEM key does not have still finds the single PEM key. */
    t = rs("{" CLAIMS "}", rsa_a, "some-kid");
    assert_null(check(j, t, NOW, NULL));
    free(t);
    /* Signed by another RSA key. */
    t = rs("{" CLAIMS "}", rsa_b, NULL);
    assert_string_equal(check(j, t, NOW, NULL), "bad token signature");
    free(t);
    /* ES256 against an RSA-only verifier. */
    t = es("{" CLAIMS "}", ec_a, NULL);
    assert_string_equal(check(j, t, NOW, NULL), "token algorithm not allowed");
    free(t);
    dg_jwt_free(j);

    dg_jwt_opts_t oe = {.pem = ec_a_pem, .pem_len = strlen(ec_a_pem)};
    j = verifier(&oe);
    assert_int_equal(dg_jwt_algorithms(j), DG_JWT_ES256);
    t = es("{" CLAIMS "}", ec_a, NULL);
    assert_null(check(j, t, NOW, NULL));
    free(t);
    t = es("{" CLAIMS "}", ec_b, NULL);
    assert_string_equal(check(j, t, NOW, NULL), "bad token signature");
    free(t);
    /* A DER signature is not the JOSE form. */
    t = token_ex("{\"alg\":\"ES256\"}", "{" CLAIMS "}", "ES256", NULL, 0, ec_a, true);
    assert_string_equal(check(j, t, NOW, NULL), "bad token signature");
    free(t);
    dg_jwt_free(j);
}

static void test_jwks(void **state)
{
    (void)state;
    char set[16384] = "{\"keys\":[";
    jwk(set, sizeof set, rsa_a, "ra");
    jwk(set, sizeof set, rsa_b, "rb");
    jwk(set, sizeof set, ec_a, "ea");
    /* Keys we must skip: an encryption key and a symmetric one. */
    size_t len = strlen(set);
    snprintf(set + len, sizeof set - len,
             ",{\"kty\":\"RSA\",\"use\":\"enc\",\"kid\":\"x\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
             "{\"kty\":\"oct\",\"kid\":\"o\",\"k\":\"c2VjcmV0\"}]}");
    dg_jwt_opts_t o = {.jwks = set, .jwks_len = strlen(set)};
    dg_jwt_t *j = verifier(&o);
    assert_int_equal(dg_jwt_algorithms(j), DG_JWT_RS256 | DG_JWT_ES256);
    char *t = rs("{" CLAIMS "}", rsa_b, "rb");
    assert_null(check(j, t, NOW, NULL));
    free(t);
    t = rs("{" CLAIMS "}", rsa_b, "ra"); /* right key, wrong kid */
    assert_string_equal(check(j, t, NOW, NULL), "bad token signature");
    free(t);
    t = rs("{" CLAIMS "}", rsa_a, NULL); /* two RSA keys: a kid is needed */
    assert_string_equal(check(j, t, NOW, NULL), "token has no key id (kid)");
    free(t);
    t = rs("{" CLAIMS "}", rsa_a, "nope");
    assert_string_equal(check(j, t, NOW, NULL), "unknown key id");
    free(t);
    t = rs("{" CLAIMS "}", rsa_a, "ea"); /* kid of an EC key with alg RS256 */
    assert_string_equal(check(j, t, NOW, NULL), "token algorithm does not match its key");
    free(t);
    t = es("{" CLAIMS "}", ec_a, "ea");
    assert_null(check(j, t, NOW, NULL));
    free(t);
    t = es("{" CLAIMS "}", ec_a, NULL); /* the only EC key */
    assert_null(check(j, t, NOW, NULL));
    free(t);
    t = es("{" CLAIMS "}", ec_a, "o"); /* the skipped symmetric key's kid */
    assert_string_equal(check(j, t, NOW, NULL), "unknown key id");
    free(t);
    dg_jwt_free(j);
}

static void test_alg_attacks(void **state)
{
    (void)state;
    dg_jwt_opts_t o = {.pem = rsa_a_pem, .pem_len = strlen(rsa_a_pem)};
    dg_jwt_t *j = verifier(&o);
    /* alg none: no signature (shape refused), or any signature (algorithm refused). */
    char *h = b64s("{\"alg\":\"none\"}"), *p = b64s("{" CLAIMS "}");
    char t[1024];
    snprintf(t, sizeof t, "%s.%s.", h, p);
    assert_string_equal(check(j, t, NOW, NULL), "malformed token");
    snprintf(t, sizeof t, "%s.%s.AAAA", h, p);
    assert_string_equal(check(j, t, NOW, NULL), "token algorithm not allowed");
    free(h);
    h = b64s("{\"alg\":\"NONE\"}");
    snprintf(t, sizeof t, "%s.%s.AAAA", h, p);
    assert_string_equal(check(j, t, NOW, NULL), "token algorithm not allowed");
    free(h);
    free(p);
    /* HS/RS confusion: HS256 "signed" with the RSA public key PEM as the HMAC secret. */
    char *conf = token_ex("{\"alg\":\"HS256\"}", "{" CLAIMS "}", "HS256", rsa_a_pem,
                          strlen(rsa_a_pem), NULL, false);
    assert_string_equal(check(j, conf, NOW, NULL), "token algorithm not allowed");
    dg_jwt_free(j);
    /* Even with a secret configured next to the RSA key, the PEM bytes are not the secret. */
    dg_jwt_opts_t both = {.pem = rsa_a_pem,
                          .pem_len = strlen(rsa_a_pem),
                          .secret = SECRET,
                          .secret_len = strlen(SECRET)};
    j = verifier(&both);
    assert_int_equal(dg_jwt_algorithms(j), DG_JWT_HS256 | DG_JWT_RS256);
    assert_string_equal(check(j, conf, NOW, NULL), "bad token signature");
    free(conf);
    /* An allow-list narrower than the keys. */
    dg_jwt_free(j);
    both.algorithms = "RS256";
    j = verifier(&both);
    char *t2 = hs("{" CLAIMS "}");
    assert_string_equal(check(j, t2, NOW, NULL), "token algorithm not allowed");
    free(t2);
    dg_jwt_free(j);
    /* Other algorithms and extensions. */
    j = hs_verifier();
    t2 = token_ex("{\"alg\":\"HS512\"}", "{" CLAIMS "}", "HS256", SECRET, strlen(SECRET), NULL,
                  false);
    assert_string_equal(check(j, t2, NOW, NULL), "token algorithm not allowed");
    free(t2);
    t2 = token_ex("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", "{" CLAIMS "}", "HS256", SECRET,
                  strlen(SECRET), NULL, false);
    assert_string_equal(check(j, t2, NOW, NULL),
                        "token header has unsupported critical extensions");
    free(t2);
    t2 = token_ex("{\"alg\":\"HS256\",\"alg\":\"none\"}", "{" CLAIMS "}", "HS256", SECRET,
                  strlen(SECRET), NULL, false);
    assert_string_equal(check(j, t2, NOW, NULL), "malformed token header");
    free(t2);
    dg_jwt_free(j);
}

static void test_tampering(void **state)
{
    (void)state;
    dg_jwt_t *j = hs_verifier();
    char *good = hs("{" CLAIMS "}");
    /* Swap in another payload, keep the signature. */
    char *p2 = b64s("{\"sub\":\"alice\",\"role\":\"admin\",\"exp\":1700000100}");
    const char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
    char t[2048];
    snprintf(t, sizeof t, "%.*s.%s%s", (int)(d1 - good), good, p2, d2);
    assert_string_equal(check(j, t, NOW, NULL), "bad token signature");
    free(p2);
    /* One flipped signature character. */
    snprintf(t, sizeof t, "%s", good);
    size_t n = strlen(t);
    t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A';
    assert_string_equal(check(j, t, NOW, NULL), "bad token signature");
    /* Non-canonical base64 of the signature (stray low bits) is refused before anything. */
    snprintf(t, sizeof t, "%s", good);
    t[n - 1] = t[n - 1] == 'A' ? 'B' : 'A'; /* 32 bytes: the last char carries 4 bits + 2 zero */
    const char *why = check(j, t, NOW, NULL);
    assert_true(strcmp(why, "malformed token encoding") == 0 ||
                strcmp(why, "bad token signature") == 0);
    /* Truncated signature. */
    snprintf(t, sizeof t, "%.*s", (int)(n - 4), good);
    assert_non_null(check(j, t, NOW, NULL));
    /* Characters outside base64url. */
    snprintf(t, sizeof t, "%s", good);
    t[3] = '+';
    assert_string_equal(check(j, t, NOW, NULL), "malformed token");
    free(good);
    /* A signed payload that is not JSON, or not an object. */
    char *bad =
        token_ex("{\"alg\":\"HS256\"}", "not json", "HS256", SECRET, strlen(SECRET), NULL, false);
    assert_string_equal(check(j, bad, NOW, NULL), "token payload is not valid JSON");
    free(bad);
    bad = token_ex("{\"alg\":\"HS256\"}", "[1,2]", "HS256", SECRET, strlen(SECRET), NULL, false);
    assert_string_equal(check(j, bad, NOW, NULL), "token payload is not a JSON object");
    free(bad);
    bad = token_ex("not json", "{" CLAIMS "}", "HS256", SECRET, strlen(SECRET), NULL, false);
    assert_string_equal(check(j, bad, NOW, NULL), "malformed token header");
    free(bad);
    /* Oversized. */
    char *big = malloc(DG_JWT_MAX_BYTES + 16);
    memset(big, 'A', DG_JWT_MAX_BYTES + 15);
    big[10] = '.';
    big[20] = '.';
    big[DG_JWT_MAX_BYTES + 15] = '\0';
    assert_string_equal(check(j, big, NOW, NULL), "token too large");
    free(big);
    /* A big but allowed payload still verifies. */
    char payload[6000];
    snprintf(payload, sizeof payload, "{" CLAIMS ",\"pad\":\"%0*d\"}", 5000, 7);
    char *large = hs(payload);
    assert_true(strlen(large) <= DG_JWT_MAX_BYTES);
    assert_null(check(j, large, NOW, NULL));
    free(large);
    dg_jwt_free(j);
}

static void test_time_claims(void **state)
{
    (void)state;
    dg_jwt_t *j = hs_verifier(); /* leeway 30 s */
    static const struct {
        const char *payload;
        const char *why; /* NULL = valid */
    } rows[] = {
        {"{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":1700000001}", NULL},
        {"{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":1699999980}", NULL}, /* 20 s late: leeway */
        {"{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":1699999970}", "token expired"},
        {"{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":1699999000}", "token expired"},
        {"{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":1700000100,\"nbf\":1700000020}", NULL},
        {"{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":1700000100,\"nbf\":1700000031}",
         "token not valid yet (nbf)"},
        {"{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":1700000100,\"iat\":1700000500}",
         "token issued in the future (iat)"},
        {"{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":\"1700000100\"}", "token exp is not a number"},
        {"{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":1700000100,\"nbf\":null}",
         "token nbf is not a number"},
        {"{\"sub\":\"a\",\"role\":\"viewer\"}", "token has no exp"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *t = hs(rows[i].payload);
        const char *why = check(j, t, NOW, NULL);
        if (rows[i].why == NULL && why != NULL) {
            fail_msg("row %zu: want valid, got %s", i, why);
        } else if (rows[i].why && (!why || strcmp(why, rows[i].why) != 0)) {
            fail_msg("row %zu: want %s, got %s", i, rows[i].why, why ? why : "valid");
        }
        free(t);
    }
    dg_jwt_free(j);
    /* Leeway 0: one second late is too late. */
    dg_jwt_opts_t o = {.secret = SECRET, .secret_len = strlen(SECRET), .leeway_s = 0};
    j = verifier(&o);
    char *t = hs("{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":1700000000}");
    assert_string_equal(check(j, t, NOW, NULL), "token expired");
    assert_null(check(j, t, NOW - 1, NULL));
    free(t);
    dg_jwt_free(j);
}

static void test_claims(void **state)
{
    (void)state;
    dg_jwt_opts_t o = {.secret = SECRET,
                       .secret_len = strlen(SECRET),
                       .leeway_s = 30,
                       .issuer = "https://issuer.example",
                       .audience = "duckgate",
                       .role_claim = "dg_role",
                       .db_claim = "dg_dbs"};
    dg_jwt_t *j = verifier(&o);
#define OK_ISS_AUD "\"iss\":\"https://issuer.example\",\"aud\":\"duckgate\""
    static const struct {
        const char *payload;
        const char *why;
    } rows[] = {
        {"{\"sub\":\"a\",\"dg_role\":\"admin\",\"exp\":1700000100," OK_ISS_AUD "}", NULL},
        {"{\"sub\":\"a\",\"dg_role\":\"admin\",\"exp\":1700000100,"
         "\"iss\":\"https://issuer.example\",\"aud\":[\"x\",\"duckgate\"]}",
         NULL},
        {"{\"sub\":\"a\",\"dg_role\":\"admin\",\"exp\":1700000100,"
         "\"iss\":\"https://issuer.example\",\"aud\":[\"x\",\"y\"]}",
         "token audience (aud) not accepted"},
        {"{\"sub\":\"a\",\"dg_role\":\"admin\",\"exp\":1700000100,"
         "\"iss\":\"https://issuer.example\",\"aud\":\"other\"}",
         "token audience (aud) not accepted"},
        {"{\"sub\":\"a\",\"dg_role\":\"admin\",\"exp\":1700000100,"
         "\"iss\":\"https://issuer.example\"}",
         "token audience (aud) not accepted"},
        {"{\"sub\":\"a\",\"dg_role\":\"admin\",\"exp\":1700000100,"
         "\"iss\":\"https://evil.example\",\"aud\":\"duckgate\"}",
         "token issuer (iss) not accepted"},
        {"{\"sub\":\"a\",\"dg_role\":\"admin\",\"exp\":1700000100,\"aud\":\"duckgate\"}",
         "token issuer (iss) not accepted"},
        {"{\"dg_role\":\"admin\",\"exp\":1700000100," OK_ISS_AUD "}", "token has no usable sub"},
        {"{\"sub\":\"\",\"dg_role\":\"admin\",\"exp\":1700000100," OK_ISS_AUD "}",
         "token has no usable sub"},
        {"{\"sub\":5,\"dg_role\":\"admin\",\"exp\":1700000100," OK_ISS_AUD "}",
         "token has no usable sub"},
        {"{\"sub\":\"a\",\"role\":\"admin\",\"exp\":1700000100," OK_ISS_AUD "}",
         "token has no role claim"},
        {"{\"sub\":\"a\",\"dg_role\":\"root\",\"exp\":1700000100," OK_ISS_AUD "}",
         "token role is not viewer, analyst or admin"},
        {"{\"sub\":\"a\",\"dg_role\":\"none\",\"exp\":1700000100," OK_ISS_AUD "}",
         "token role is not viewer, analyst or admin"},
        {"{\"sub\":\"a\",\"dg_role\":\"viewer\",\"exp\":1700000100,\"dg_dbs\":[\"main\"]"
         "," OK_ISS_AUD "}",
         NULL},
        {"{\"sub\":\"a\",\"dg_role\":\"viewer\",\"exp\":1700000100,\"dg_dbs\":[]," OK_ISS_AUD "}",
         "token database claim must be a list of 1 to 32 names"},
        {"{\"sub\":\"a\",\"dg_role\":\"viewer\",\"exp\":1700000100,\"dg_dbs\":\"main\"," OK_ISS_AUD
         "}",
         "token database claim must be a list of 1 to 32 names"},
        {"{\"sub\":\"a\",\"dg_role\":\"viewer\",\"exp\":1700000100,\"dg_dbs\":[\"../"
         "etc\"]," OK_ISS_AUD "}",
         "token database claim holds a bad name"},
        {"{\"sub\":\"a\",\"dg_role\":\"viewer\",\"exp\":1700000100,\"dg_dbs\":[1]," OK_ISS_AUD "}",
         "token database claim holds a bad name"},
        {"{\"sub\":\"a\",\"sub\":\"b\",\"dg_role\":\"viewer\",\"exp\":1700000100," OK_ISS_AUD "}",
         "token payload is not valid JSON"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *t = hs(rows[i].payload);
        const char *why = check(j, t, NOW, NULL);
        if (rows[i].why == NULL && why != NULL) {
            fail_msg("row %zu: want valid, got %s", i, why);
        } else if (rows[i].why && (!why || strcmp(why, rows[i].why) != 0)) {
            fail_msg("row %zu: want %s, got %s", i, rows[i].why, why ? why : "valid");
        }
        free(t);
    }
    dg_jwt_free(j);
}

static void test_bad_config(void **state)
{
    (void)state;
    dg_jwt_t *j = NULL;
    dg_error_t err;
    struct {
        dg_jwt_opts_t o;
        const char *msg_part;
    } rows[] = {
        {{.secret = "short", .secret_len = 5}, "at least 32 bytes"},
        {{
             .pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
         },
         "not a public key"},
        {{.jwks = "{\"keys\":[]}"}, "no RSA or EC P-256 signing key"},
        {{.jwks = "[]"}, "not {\"keys\""},
        {{
             .jwks = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}]}",
         },
         "P-256"},
        {{
             .jwks =
                 "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}",
         },
         "not a valid P-256"},
        {{.secret = SECRET, .secret_len = strlen(SECRET), .algorithms = "HS256,none"},
         "is not one of"},
        {{.secret = SECRET, .secret_len = strlen(SECRET), .algorithms = "RS256"}, "no RSA key"},
        {{.leeway_s = 5}, "no key configured"},
        {{.secret_file = "/nonexistent/dg-jwt-secret"}, "/nonexistent/dg-jwt-secret"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        rows[i].o.pem_len = rows[i].o.pem ? strlen(rows[i].o.pem) : 0;
        rows[i].o.jwks_len = rows[i].o.jwks ? strlen(rows[i].o.jwks) : 0;
        dg_error_clear(&err);
        dg_rc_t rc = dg_jwt_new(&rows[i].o, &j, &err);
        assert_true(rc == DG_CONFIG || rc == DG_IO);
        assert_null(j);
        if (!strstr(err.msg, rows[i].msg_part)) {
            fail_msg("row %zu: error \"%s\" lacks \"%s\"", i, err.msg, rows[i].msg_part);
        }
    }
    /* Weak RSA and other curves in PEM form. */
    EVP_PKEY *weak = EVP_RSA_gen(1024);
    EVP_PKEY *p384 = EVP_EC_gen("P-384");
    assert_non_null(weak);
    assert_non_null(p384);
    char *wp = pem_of(weak), *pp = pem_of(p384);
    dg_jwt_opts_t o = {.pem = wp, .pem_len = strlen(wp)};
    dg_error_clear(&err);
    assert_int_equal(dg_jwt_new(&o, &j, &err), DG_CONFIG);
    assert_non_null(strstr(err.msg, "2048"));
    o = (dg_jwt_opts_t){.pem = pp, .pem_len = strlen(pp)};
    dg_error_clear(&err);
    assert_int_equal(dg_jwt_new(&o, &j, &err), DG_CONFIG);
    assert_non_null(strstr(err.msg, "P-256"));
    free(wp);
    free(pp);
    EVP_PKEY_free(weak);
    EVP_PKEY_free(p384);
}

static void test_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/dg-jwt-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sec[128], pem[128];
    snprintf(sec, sizeof sec, "%s/secret", dir);
    snprintf(pem, sizeof pem, "%s/key.pem", dir);
    FILE *f = fopen(sec, "w");
    fprintf(f, "%s\n", SECRET); /* the newline is not part of the secret */
    fclose(f);
    f = fopen(pem, "w");
    fputs(ec_a_pem, f);
    fclose(f);
    dg_jwt_opts_t o = {.secret_file = sec, .pem_file = pem, .jwks_file = ""};
    dg_jwt_t *j = verifier(&o);
    assert_int_equal(dg_jwt_algorithms(j), DG_JWT_HS256 | DG_JWT_ES256);
    char *t = hs("{" CLAIMS "}");
    assert_null(check(j, t, NOW, NULL));
    free(t);
    t = es("{" CLAIMS "}", ec_a, NULL);
    assert_null(check(j, t, NOW, NULL));
    free(t);
    dg_jwt_free(j);
    unlink(sec);
    unlink(pem);
    rmdir(dir);
}

static void test_identify_jwt(void **state)
{
    (void)state;
    dg_jwt_opts_t jo = {.secret = SECRET, .secret_len = strlen(SECRET), .leeway_s = 30};
    dg_auth_opts_t ao = {.is_on = true,
                         .public_role = DG_ROLE_NONE,
                         .keys_file = "/nonexistent/dg-keys.json",
                         .jwt = &jo};
    dg_auth_t *a = NULL;
    assert_int_equal(dg_auth_new(&ao, &a, NULL), DG_OK);
    char *t = hs("{\"sub\":\"carol\",\"role\":\"analyst\",\"exp\":1700000100,\"dbs\":[\"main\"]}");
    char hdr[4096];
    snprintf(hdr, sizeof hdr, "Bearer %s", t);
    dg_auth_result_t r;
    dg_auth_identify(a, hdr, NULL, NOW, &r);
    assert_false(r.is_bad);
    assert_false(r.is_public);
    assert_int_equal(r.role, DG_ROLE_ANALYST);
    assert_string_equal(r.principal, "jwt:carol");
    assert_int_equal(dg_auth_gate(&r, DG_ROLE_ANALYST, "main", 4), DG_OK);
    assert_int_equal(dg_auth_gate(&r, DG_ROLE_ANALYST, "other", 5), DG_FORBIDDEN);
    assert_int_equal(dg_auth_gate(&r, DG_ROLE_ADMIN, NULL, 0), DG_FORBIDDEN);
    /* A role's databases narrow the token's scope; no overlap refuses every database. */
    dg_auth_scope_narrow(&r, "other, main");
    assert_int_equal(r.n_dbs, 1);
    assert_int_equal(dg_auth_gate(&r, DG_ROLE_VIEWER, "main", 4), DG_OK);
    dg_auth_scope_narrow(&r, "other");
    assert_true(r.has_no_db);
    assert_int_equal(dg_auth_gate(&r, DG_ROLE_VIEWER, "main", 4), DG_FORBIDDEN);
    assert_int_equal(dg_auth_gate(&r, DG_ROLE_VIEWER, NULL, 0), DG_OK);
    /* Expired: bad credentials with the reason. */
    dg_auth_identify(a, hdr, NULL, NOW + 1000, &r);
    assert_true(r.is_bad);
    assert_string_equal(r.reason, "token expired");
    assert_int_equal(dg_auth_gate(&r, DG_ROLE_VIEWER, NULL, 0), DG_UNAUTHORIZED);
    /* X-API-Key carries JWTs too; a key-shaped credential still goes to the key set. */
    dg_auth_identify(a, NULL, t, NOW, &r);
    assert_false(r.is_bad);
    dg_auth_identify(a, "Bearer dgk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL, NOW, &r);
    assert_true(r.is_bad);
    assert_null(strstr(r.reason, "token"));
    dg_auth_free(a);
    /* Without JWT keys, a JWT is refused with a reason that says so. */
    ao.jwt = NULL;
    assert_int_equal(dg_auth_new(&ao, &a, NULL), DG_OK);
    dg_auth_identify(a, hdr, NULL, NOW, &r);
    assert_true(r.is_bad);
    assert_non_null(strstr(r.reason, "not enabled"));
    dg_auth_free(a);
    free(t);
    /* Anonymous callers are "public"; narrowing an unscoped caller takes the list. */
    memset(&r, 0, sizeof r);
    r.role = DG_ROLE_VIEWER;
    dg_auth_scope_narrow(&r, "a,b");
    assert_int_equal(r.n_dbs, 2);
    assert_string_equal(r.dbs[1], "b");
    dg_auth_scope_narrow(&r, "");
    assert_int_equal(r.n_dbs, 2);
}

static void write_file(const char *path, const char *text)
{
    /* Through a rename, as key rotation tools do: the reader sees old or new, never half. */
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

/* Key files are re-read when they change (at most once a second); a bad new file keeps the
 * previous keys. */
static void test_identify_reloads_key_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/dg-jwt-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char pem[128];
    snprintf(pem, sizeof pem, "%s/key.pem", dir);
    write_file(pem, ec_a_pem);
    dg_jwt_opts_t jo = {.pem_file = pem, .leeway_s = 30};
    dg_auth_opts_t ao = {.is_on = true, .keys_file = "/nonexistent/dg-keys.json", .jwt = &jo};
    dg_auth_t *a = NULL;
    assert_int_equal(dg_auth_new(&ao, &a, NULL), DG_OK);
    char *ta = es("{" CLAIMS "}", ec_a, NULL), *tb = es("{" CLAIMS "}", ec_b, NULL);
    char ha[1024], hb[1024];
    snprintf(ha, sizeof ha, "Bearer %s", ta);
    snprintf(hb, sizeof hb, "Bearer %s", tb);
    dg_auth_result_t r;
    dg_auth_identify(a, ha, NULL, NOW, &r);
    assert_false(r.is_bad);
    dg_auth_identify(a, hb, NULL, NOW, &r);
    assert_true(r.is_bad);
    /* Rotate to key b. */
    char *pem_b = pem_of(ec_b);
    write_file(pem, pem_b);
    usleep(1100 * 1000);
    dg_auth_identify(a, hb, NULL, NOW, &r);
    assert_false(r.is_bad);
    dg_auth_identify(a, ha, NULL, NOW, &r);
    assert_true(r.is_bad);
    assert_string_equal(r.reason, "bad token signature");
    /* A broken file is logged and ignored. */
    write_file(pem, "not a key\n");
    usleep(1100 * 1000);
    dg_auth_identify(a, hb, NULL, NOW, &r);
    assert_false(r.is_bad);
    dg_auth_free(a);
    free(pem_b);
    free(ta);
    free(tb);
    unlink(pem);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),          cmocka_unit_test(test_valid_hs256),
        cmocka_unit_test(test_valid_rs_es_pem), cmocka_unit_test(test_jwks),
        cmocka_unit_test(test_alg_attacks),     cmocka_unit_test(test_tampering),
        cmocka_unit_test(test_time_claims),     cmocka_unit_test(test_claims),
        cmocka_unit_test(test_bad_config),      cmocka_unit_test(test_files),
        cmocka_unit_test(test_identify_jwt),    cmocka_unit_test(test_identify_reloads_key_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
