/* Fuzzes what the front does with a request head before any handler runs: the request target
 * (path splitting, %-decoding, NUL rejection, dot segments kept as data, query strings),
 * routing against the server's route shapes, and Accept/?format= negotiation; plus the error body
 * writer. Input: "METHOD\nTARGET\nACCEPT" (missing parts are empty). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http/http.h"

static void h_none(dg_http_req_t *r, void *ctx)
{
    (void)r;
    (void)ctx;
}

/* Same shapes as src/server/server.c. */
static const dg_http_route_t routes[] = {
    {"/health", DG_HTTP_M(DG_HTTP_GET), h_none},
    {"/ready", DG_HTTP_M(DG_HTTP_GET), h_none},
    {"/api/databases", DG_HTTP_M(DG_HTTP_GET), h_none},
    {"/api/databases/{db}", DG_HTTP_M(DG_HTTP_GET), h_none},
    {"/api/query/{db}", DG_HTTP_M(DG_HTTP_GET) | DG_HTTP_M(DG_HTTP_POST), h_none},
};

/* Next '\n'-separated part of [*p, end) as a fresh NUL-terminated string. */
static char *next_part(const uint8_t **p, const uint8_t *end, size_t *out_len)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    const uint8_t *stop = nl ? nl : end;
    size_t len = (size_t)(stop - *p);
    char *s = malloc(len + 1);
    if (!s) {
        abort();
    }
    memcpy(s, *p, len);
    s[len] = '\0';
    *p = nl ? nl + 1 : end;
    *out_len = len;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    size_t mlen, ulen, alen;
    char *method = next_part(&p, end, &mlen);
    char *uri = next_part(&p, end, &ulen);
    char *accept = next_part(&p, end, &alen);

    dg_http_target_t t;
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = dg_http_target_parse(uri, ulen, &t, &err);
    if (rc == DG_OK) {
        for (size_t i = 0; i < t.path.n; i++) {
            const char *s = t.path.seg[i];
            size_t n = t.path.seg_len[i];
            if (strlen(s) != n) {
                abort(); /* a decoded NUL must have been refused */
            }
        }
        for (size_t i = 0; i < t.args.n; i++) {
            if (!t.args.a[i].key || !t.args.a[i].value) {
                abort();
            }
        }
        dg_http_match_t m;
        rc = dg_http_route_match(routes, sizeof routes / sizeof routes[0],
                                 dg_http_method_parse(method), &t.path, &m);
        if (rc == DG_OK && (!m.route || (m.n_caps && m.cap[0].len == 0))) {
            abort();
        }
        char allow[96];
        dg_http_allow_string(m.allow, allow, sizeof allow);
        dg_format_t f;
        dg_error_clear(&err);
        rc = dg_http_negotiate(dg_http_args_get(&t.args, "format", NULL), accept, &f, &err);
        if (rc == DG_OK && (unsigned)f >= DG_FMT_COUNT_) {
            abort();
        }
        /* The same header bytes as an Accept-Encoding list. */
        dg_codec_id_t coding = DG_CODEC_COUNT_;
        dg_error_clear(&err);
        rc = dg_http_negotiate_encoding(accept, &coding, &err);
        if ((rc == DG_OK && (unsigned)coding >= DG_CODEC_COUNT_) ||
            (rc != DG_OK && rc != DG_NOT_ACCEPTABLE)) {
            abort();
        }
    } else if (err.msg[0] == '\0') {
        abort(); /* every refusal says why */
    }
    dg_http_target_free(&t);

    dg_buf_t b;
    dg_buf_init(&b, 1 << 16);
    dg_http_error_json(&b, DG_BAD_REQUEST, accept, method);
    dg_buf_free(&b);
    free(method);
    free(uri);
    free(accept);
    return 0;
}
