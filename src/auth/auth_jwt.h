/* JSON Web Tokens (RFC 7519) as credentials: HS256, RS256 and ES256 signatures checked with
 * OpenSSL, claims read with jansson (DESIGN §7, docs/auth.md "JWT").
 *
 * Rules that keep the usual JWT mistakes out:
 * - The configured key decides the algorithm family, never the token: an HS256 token is only
 *   checked against an HMAC secret, an RS256 token only against an RSA key, an ES256 token only
 *   against an EC P-256 key. "none" and every other algorithm are refused, and so is anything
 *   outside the allow-list (jwt_algorithms, default: the families of the configured keys).
 * - Headers that would make us fetch or trust key material (jku, x5u, jwk, x5c) are ignored;
 *   a "crit" header is refused (we implement no extension).
 * - Strict base64url (no padding, no stray bits), duplicate JSON keys refused, a size cap on
 *   the token, the signature checked before the claims are parsed.
 * - exp, sub and the role claim are required; nbf and iat are checked when present; iss and
 *   aud when configured. exp/nbf allow `leeway_s` of clock skew.
 *
 * Threads: a dg_jwt_t is immutable after dg_jwt_new; dg_jwt_verify may run on any thread
 * concurrently. Tokens are never logged. */
#ifndef DG_AUTH_JWT_H
#define DG_AUTH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "core/rc.h"

/* Longest token accepted (bytes of the compact serialisation). */
#define DG_JWT_MAX_BYTES 8192
/* Algorithm bits. */
#define DG_JWT_HS256 1u
#define DG_JWT_RS256 2u
#define DG_JWT_ES256 4u

/* Where the keys come from and which claims are checked. Key material may be given in memory
 * (tests, fuzzing) or as files (the server); for each kind the memory field wins when not NULL.
 * Strings are borrowed for the duration of dg_jwt_new only. */
typedef struct dg_jwt_opts {
    const char *secret; /* HS256 secret bytes (>= 32) */
    size_t secret_len;
    const char *secret_file; /* "" or NULL = none; a final newline is not part of the secret */
    const char *pem;         /* PEM SubjectPublicKeyInfo: RSA >= 2048 bits or EC P-256 */
    size_t pem_len;
    const char *pem_file;
    const char *jwks; /* JWKS JSON: {"keys":[{"kty":"RSA"|"EC",...}]} */
    size_t jwks_len;
    const char *jwks_file;
    const char *algorithms; /* comma list of HS256, RS256, ES256; NULL/"" = from the keys */
    int64_t leeway_s;       /* clock skew allowed on exp, nbf and iat */
    const char *issuer;     /* required iss; NULL/"" = not checked */
    const char *audience;   /* required aud (string or array claim); NULL/"" = not checked */
    const char *role_claim; /* NULL/"" = "role" */
    const char *db_claim;   /* NULL/"" = "dbs" */
} dg_jwt_opts_t;

/* What a valid token says. */
typedef struct dg_jwt_claims {
    char principal[48]; /* "jwt:<sub>" when sub is <= 40 of [A-Za-z0-9._@+:-], else
                           "jwt:#" + 32 hex digits of SHA-256(sub) */
    dg_role_t role;     /* viewer, analyst or admin */
    size_t n_dbs;       /* 0 = every database (the claim was absent) */
    char dbs[DG_AUTH_MAX_DBS][65];
    int64_t exp; /* unix seconds */
} dg_jwt_claims_t;

typedef struct dg_jwt dg_jwt_t;

/* True when opts configures at least one key (memory or file). */
bool dg_jwt_opts_has_key(const dg_jwt_opts_t *opts);
/* Loads the keys and the policy. DG_CONFIG (err says which key, file or setting is wrong: a
 * short secret, a weak or unsupported key, an algorithm without a key of its family, an
 * unknown algorithm, no key at all), DG_IO (a key file cannot be read), DG_NOMEM. */
dg_rc_t dg_jwt_new(const dg_jwt_opts_t *opts, dg_jwt_t **out, dg_error_t *err);
/* NULL is allowed. */
void dg_jwt_free(dg_jwt_t *j);
/* The allow-list in effect (DG_JWT_* bits). */
unsigned dg_jwt_algorithms(const dg_jwt_t *j);

/* True when tok[0..len) has the shape of a compact JWT: three non-empty segments of base64url
 * characters separated by two dots. (API keys start with "dgk_" and contain no dot.) */
bool dg_jwt_is_shaped(const char *tok, size_t len);

/* Verifies tok[0..len) at unix time now_s and fills *out. DG_OK, DG_UNAUTHORIZED with
 * *out_reason (may be NULL; a static string fit for the client, never quoting the token),
 * DG_NOMEM. */
dg_rc_t dg_jwt_verify(const dg_jwt_t *j, const char *tok, size_t len, int64_t now_s,
                      dg_jwt_claims_t *out, const char **out_reason);

/* Strict base64url (RFC 4648 §5, no padding, unused bits zero) of s[0..len) into out[0..cap).
 * False when malformed or when the result does not fit. Exposed for the tests. */
bool dg_jwt_b64url_decode(const char *s, size_t len, unsigned char *out, size_t cap,
                          size_t *out_len);
/* Characters of the base64url text (no padding) of n bytes, without the NUL. */
#define DG_JWT_B64URL_LEN(n) (((n)*4 + 2) / 3)
/* Base64url (RFC 4648 §5, no padding) of in[0..n) into out, which must hold
 * DG_JWT_B64URL_LEN(n) + 1 bytes; NUL-terminated. The API key generator and the tests use it. */
void dg_jwt_b64url_encode(const unsigned char *in, size_t n, char *out);

#endif
