/* Fuzzes JWT parsing and verification (src/auth/auth_jwt.c) with a fixed HS256 secret and a
 * fixed EC P-256 public key: the token is untrusted input from the Authorization header. Inputs
 * that start with '{' are also tried as a JWKS file. Checks the contract: a verified token has
 * a role, a "jwt:" principal and a bounded scope; a refused one has a reason. */
#include <stdlib.h>
#include <string.h>

#include "auth/auth_jwt.h"
#include "fuzz.h"

#define NOW 1700000000

/* The seeds in fuzz/corpus/fuzz_jwt are signed with this secret and the private half of this
 * key (kept out of the repository: fuzzing needs only the public half). */
static const char secret[] = "duckgate-fuzz-hs256-secret-0123456789abcdef";
static const char ec_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                             "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAETnwuxGMtwBrep7885ClqGRRNAEwf\n"
                             "v2xXuWvqhUWuezDZY97l4EiFsHihHJk+hhhBLVS73BfBR36qcDdBwlfDIA==\n"
                             "-----END PUBLIC KEY-----\n";

static dg_jwt_t *verifier(void)
{
    static dg_jwt_t *j;
    if (!j) {
        dg_jwt_opts_t o = {.secret = secret,
                           .secret_len = sizeof secret - 1,
                           .pem = ec_pem,
                           .pem_len = sizeof ec_pem - 1,
                           .leeway_s = 30,
                           .audience = "duckgate"};
        if (dg_jwt_new(&o, &j, NULL) != DG_OK) {
            abort();
        }
    }
    return j;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *tok = (const char *)data;
    dg_jwt_claims_t cl;
    const char *why = NULL;
    dg_rc_t rc = dg_jwt_verify(verifier(), tok, size, NOW, &cl, &why);
    if (rc == DG_OK) {
        if (why || cl.role < DG_ROLE_VIEWER || cl.role > DG_ROLE_ADMIN ||
            strncmp(cl.principal, "jwt:", 4) != 0 || cl.n_dbs > DG_AUTH_MAX_DBS ||
            !dg_jwt_is_shaped(tok, size)) {
            abort();
        }
    } else if (rc != DG_UNAUTHORIZED || !why) {
        abort();
    }

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
        rc = dg_jwt_new(&o, &j, &err);
        if ((rc == DG_OK) != (j != NULL) || (rc != DG_OK && err.msg[0] == '\0')) {
            abort();
        }
        dg_jwt_free(j);
    }
    return 0;
}
