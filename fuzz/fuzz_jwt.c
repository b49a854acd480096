/* Fuzzes JWT parsing and verification (src/auth/auth_jwt.c) with a fixed HS256 secret and a
 * fixed EC P-256 public key, and again with a fixed RSA 2048 public key (a second verifier: a
 * PEM holds one key), so the HS256, ES256 and RS256 paths are all reached; the token is
 * untrusted input from the Authorization header. Inputs
 * that start with '{' are also tried as a JWKS file. Checks the contract: a verified token has
 * a role, a "jwt:" principal and a bounded scope; a refused one has a reason. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_jwt.h"
#include "fuzz.h"

#define NOW 1700000000

/* The seeds in fuzz/corpus/fuzz_jwt are signed with this secret and the private halves of these
 * keys (kept out of the repository: fuzzing needs only the public halves). rs_* seeds are
 * RS256; hs_with_rsa_pub is HS256 keyed with the RSA PEM (algorithm confusion, refused). */
static const char secret[] = "duckgate-fuzz-hs256-secret-0123456789abcdef";
static const char ec_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                             "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAETnwuxGMtwBrep7885ClqGRRNAEwf\n"
                             "v2xXuWvqhUWuezDZY97l4EiFsHihHJk+hhhBLVS73BfBR36qcDdBwlfDIA==\n"
                             "-----END PUBLIC KEY-----\n";

static const char rsa_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                              "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAuTNhEDLIzi971O3UcOiZ\n"
                              "BOgKwJl0QTuTzaOnQGPkD7Cf4lqn/NXHYI+LtsgGICl8CmWeAYuMdqn1D4DEZxvE\n"
                              "ctXfUu+WdMn5/sDrxp/xJJfpBnMfQq+LhfZmtTp0KNJxH78B/wZphXwL/V1o7fmy\n"
                              "rRDJHiBR/aTsyDY5aJnF0/181XUFURARYkAg9xiu+dEpuKmguDyy7pQiVqLrEr7m\n"
                              "N/LwVf14hmjRXGTAqx4tfYbXVtz5OPziFK84bEJhtu+2fClqFopgmnkkUP7EjnCz\n"
                              "N3fZd4VA9RHoYukPDaCAR57bysmlWmimuXtmVOuo/kvGGphj0PNeUFi0IbCbjL2T\n"
                              "SwIDAQAB\n"
                              "-----END PUBLIC KEY-----\n";

static dg_jwt_t *make_verifier(const char *pem, size_t pem_len, bool with_secret)
{
    dg_jwt_t *j = NULL;
    dg_jwt_opts_t o = {.secret = with_secret ? secret : NULL,
                       .secret_len = with_secret ? sizeof secret - 1 : 0,
                       .pem = pem,
                       .pem_len = pem_len,
                       .leeway_s = 30,
                       .audience = "duckgate"};
    if (dg_jwt_new(&o, &j, NULL) != DG_OK) {
        abort();
    }
    return j;
}

/* HS256 + ES256. */
static dg_jwt_t *verifier(void)
{
    static dg_jwt_t *j;
    if (!j) {
        j = make_verifier(ec_pem, sizeof ec_pem - 1, true);
    }
    return j;
}

/* RS256 only: an HS256 token keyed with the RSA key must be refused (no HS/RS confusion). */
static dg_jwt_t *rsa_verifier(void)
{
    static dg_jwt_t *j;
    if (!j) {
        j = make_verifier(rsa_pem, sizeof rsa_pem - 1, false);
    }
    return j;
}

/* The contract of dg_jwt_verify for one verifier. */
static void check(dg_jwt_t *v, const char *tok, size_t size)
{
    dg_jwt_claims_t cl;
    const char *why = NULL;
    dg_rc_t rc = dg_jwt_verify(v, tok, size, NOW, &cl, &why);
    if (rc == DG_OK) {
        if (why || cl.role < DG_ROLE_VIEWER || cl.role > DG_ROLE_ADMIN ||
            strncmp(cl.principal, "jwt:", 4) != 0 || cl.n_dbs > DG_AUTH_MAX_DBS ||
            !dg_jwt_is_shaped(tok, size)) {
            abort();
        }
    } else if (rc != DG_UNAUTHORIZED || !why) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *tok = (const char *)data;
    check(verifier(), tok, size);
    check(rsa_verifier(), tok, size);

    unsigned char out[256];
    size_t n = 0;
    if (dg_jwt_b64url_decode(tok, size, out, sizeof out, &n) && (n > sizeof out || n > size)) {
        abort();
    }

    if (size > 0 && data[0] == '{') {
        dg_jwt_opts_t o = {.jwks = tok, .jwks_len = size};
        dg_jwt_t *j = NULL;
        dg_error_t err;
        dg_error_clear(&err);
        dg_rc_t rc = dg_jwt_new(&o, &j, &err);
        if ((rc == DG_OK) != (j != NULL) || (rc != DG_OK && err.msg[0] == '\0')) {
            abort();
        }
        dg_jwt_free(j);
    }
    return 0;
}
