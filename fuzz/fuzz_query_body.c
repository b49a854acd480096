/* Fuzzes the read-only SQL request parser: JSON bodies and GET arguments into a typed
 * dg_http_query_t with every validation rule. Input: "DB\nQUERY_STRING\nBODY..." (the body is
 * the rest, may contain newlines). Checks the invariants of a successful parse. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http/http_query.h"

static const dg_dbfile_t dbs[] = {{"sales", NULL, 1}, {"imdb", NULL, 2}, {"a-b_c", NULL, 3}};
static const dg_http_query_limits_t lim = {256, 30000, dbs, 3};

static void check(const dg_http_query_t *q, dg_rc_t rc, const dg_error_t *err)
{
    if (rc != DG_OK) {
        if (q->sql || q->params || err->msg[0] == '\0') {
            abort();
        }
        return;
    }
    if (!q->sql || q->sql_len == 0 || q->sql_len > lim.max_sql_bytes ||
        strlen(q->sql) != q->sql_len || q->timeout_ms <= 0 || q->timeout_ms > lim.timeout_ms ||
        (q->params && !json_is_array(q->params) && !json_is_object(q->params)) ||
        (unsigned)q->format >= DG_FMT_COUNT_) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    const char *nl = memchr(p, '\n', size);
    dg_str_t db = {p, nl ? (size_t)(nl - p) : size};
    p = nl ? nl + 1 : end;
    nl = memchr(p, '\n', (size_t)(end - p));
    dg_str_t qs = {p, nl ? (size_t)(nl - p) : (size_t)(end - p)};
    p = nl ? nl + 1 : end;
    dg_str_t body = {p, (size_t)(end - p)};

    dg_http_args_t args;
    dg_error_t err;
    dg_error_clear(&err);
    if (dg_http_args_parse(qs.p, qs.len, &args, &err) != DG_OK) {
        dg_http_args_free(&args);
        return 0;
    }
    const char *accept = dg_http_args_get(&args, "accept", NULL);
    dg_http_query_t q;
    dg_error_clear(&err);
    dg_rc_t rc = dg_http_query_from_body(db, body.p, body.len, &args, accept, &lim, &q, &err);
    check(&q, rc, &err);
    dg_http_query_free(&q);
    dg_error_clear(&err);
    rc = dg_http_query_from_args(db, &args, accept, &lim, &q, &err);
    check(&q, rc, &err);
    dg_http_query_free(&q);
    dg_http_args_free(&args);
    return 0;
}
