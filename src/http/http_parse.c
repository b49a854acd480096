/* Pure parsers of the HTTP front: methods, request targets (path segments and query strings
 * with percent-decoding), routing, output format negotiation and error bodies.
 *
 * Invariants: input is untrusted bytes with explicit lengths; outputs are NUL-terminated
 * copies, so a decoded NUL is an error rather than a silent truncation. No globals except
 * immutable tables; thread-safe. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

/* ---- methods ------------------------------------------------------------------------ */

static const char *const method_names[] = {"OTHER", "GET",    "HEAD",  "POST",
                                           "PUT",   "DELETE", "PATCH", "OPTIONS"};

dg_http_method_t dg_http_method_parse(const char *s)
{
    for (int i = 1; s && i < (int)(sizeof method_names / sizeof method_names[0]); i++) {
        if (strcmp(s, method_names[i]) == 0) {
            return (dg_http_method_t)i;
        }
    }
    return DG_HTTP_OTHER;
}

const char *dg_http_method_name(dg_http_method_t m)
{
    return (unsigned)m < sizeof method_names / sizeof method_names[0] ? method_names[m] : "OTHER";
}

/* ---- decoding ----------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

bool dg_http_pct_decode(const char *in, size_t len, bool is_form, char *out, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= len) {
                return false;
            }
            int hi = hexval(in[i + 1]), lo = hexval(in[i + 2]);
            if (hi < 0 || lo < 0) {
                return false;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && is_form) {
            c = ' ';
        }
        if (c == '\0') {
            return false;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    *out_len = o;
    return true;
}

dg_rc_t dg_http_path_parse(const char *raw, size_t len, dg_http_path_t *out, dg_error_t *err)
{
    out->n = 0;
    if (len > DG_HTTP_MAX_PATH) {
        return dg_error_set(err, DG_URI_TOO_LONG, "the request path is too long");
    }
    if (len == 0 || raw[0] != '/') {
        return dg_error_set(err, DG_BAD_REQUEST, "the request path must start with '/'");
    }
    dg_str_t rest = {raw + 1, len - 1};
    if (rest.len && rest.p[rest.len - 1] == '/') {
        rest.len--; /* "/health/" is "/health" */
    }
    if (rest.len == 0) {
        return DG_OK;
    }
    char *w = out->buf;
    for (;;) {
        dg_str_t seg;
        bool last = memchr(rest.p, '/', rest.len) == NULL;
        rest = dg_str_split(rest, '/', &seg);
        if (out->n == DG_HTTP_MAX_SEGMENTS) {
            return dg_error_set(err, DG_URI_TOO_LONG, "the request path has too many segments");
        }
        size_t dlen;
        if (!dg_http_pct_decode(seg.p, seg.len, false, w, &dlen)) {
            return dg_error_set(err, DG_BAD_REQUEST, "malformed percent-escape in the path");
        }
        out->seg[out->n] = w;
        out->seg_len[out->n] = dlen;
        out->n++;
        w += dlen + 1;
        if (last) {
            break;
        }
    }
    return DG_OK;
}

void dg_http_args_free(dg_http_args_t *a)
{
    if (a) {
        free(a->mem_);
        a->mem_ = NULL;
        a->n = 0;
    }
}

dg_rc_t dg_http_args_parse(const char *qs, size_t len, dg_http_args_t *out, dg_error_t *err)
{
    out->n = 0;
    out->mem_ = NULL;
    if (len == 0) {
        return DG_OK;
    }
    /* Decoded text never grows, plus two NULs per pair; pairs <= len/1 + 1. */
    char *mem = malloc(len * 3 + 2);
    if (!mem) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    out->mem_ = mem;
    char *w = mem;
    dg_str_t rest = {qs, len};
    while (rest.len) {
        dg_str_t pair;
        rest = dg_str_split(rest, '&', &pair);
        if (pair.len == 0) {
            continue;
        }
        if (out->n == DG_HTTP_MAX_ARGS) {
            return dg_error_set(err, DG_BAD_REQUEST, "too many query arguments (max %d)",
                                DG_HTTP_MAX_ARGS);
        }
        dg_str_t key;
        dg_str_t value = dg_str_split(pair, '=', &key);
        size_t klen, vlen;
        if (!dg_http_pct_decode(key.p, key.len, true, w, &klen)) {
            return dg_error_set(err, DG_BAD_REQUEST, "malformed query argument name");
        }
        out->a[out->n].key = w;
        w += klen + 1;
        if (!dg_http_pct_decode(value.p, value.len, true, w, &vlen)) {
            return dg_error_set(err, DG_BAD_REQUEST, "malformed value of query argument \"%.40s\"",
                                out->a[out->n].key);
        }
        out->a[out->n].value = w;
        w += vlen + 1;
        out->n++;
    }
    return DG_OK;
}

const char *dg_http_args_get(const dg_http_args_t *a, const char *key, size_t *out_count)
{
    const char *first = NULL;
    size_t count = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->a[i].key, key) == 0) {
            if (!first) {
                first = a->a[i].value;
            }
            count++;
        }
    }
    if (out_count) {
        *out_count = count;
    }
    return first;
}

dg_rc_t dg_http_target_parse(const char *uri, size_t len, dg_http_target_t *out, dg_error_t *err)
{
    out->path.n = 0;
    out->args.n = 0;
    out->args.mem_ = NULL;
    dg_str_t path;
    dg_str_t query = dg_str_split((dg_str_t){uri, len}, '?', &path);
    dg_rc_t rc = dg_http_path_parse(path.p, path.len, &out->path, err);
    if (rc != DG_OK) {
        return rc;
    }
    return dg_http_args_parse(query.p, query.len, &out->args, err);
}

void dg_http_target_free(dg_http_target_t *t)
{
    if (t) {
        dg_http_args_free(&t->args);
    }
}

/* ---- formats ------------------------------------------------------------------------ */

typedef struct {
    dg_format_t fmt;
    const char *name;
    const char *media; /* canonical media type */
    const char *alias; /* another media type clients send, or NULL */
    bool is_available; /* produced by this build (flip when the engine can encode it) */
} format_row;

static const format_row formats[] = {
    {DG_FMT_JSON, "json", "application/json", NULL, true},
    {DG_FMT_NDJSON, "ndjson", "application/x-ndjson", "application/ndjson", true},
    {DG_FMT_CSV, "csv", "text/csv", NULL, true},
    {DG_FMT_TSV, "tsv", "text/tab-separated-values", NULL, true},
    {DG_FMT_PARQUET, "parquet", "application/vnd.apache.parquet", NULL, true},
    {DG_FMT_ARROW, "arrow", "application/vnd.apache.arrow.stream", NULL, true},
};
#define N_FORMATS (sizeof formats / sizeof formats[0])

const char *dg_http_format_name(dg_format_t f)
{
    for (size_t i = 0; i < N_FORMATS; i++) {
        if (formats[i].fmt == f) {
            return formats[i].name;
        }
    }
    return "json";
}

/* Parses a q-value ("1", "0.5", "0.125"); -1 when malformed. Result in thousandths. */
static int parse_q(dg_str_t v)
{
    if (v.len == 0 || v.len > 5 || (v.p[0] != '0' && v.p[0] != '1')) {
        return -1;
    }
    int q = (v.p[0] - '0') * 1000;
    if (v.len == 1) {
        return q;
    }
    if (v.p[1] != '.') {
        return -1;
    }
    int scale = 100;
    for (size_t i = 2; i < v.len; i++, scale /= 10) {
        if (v.p[i] < '0' || v.p[i] > '9') {
            return -1;
        }
        q += (v.p[i] - '0') * scale;
    }
    return q > 1000 ? -1 : q;
}

/* Takes the next element of a comma-separated header list ("token;q=0.5;x=y"): *out_token gets
 * the trimmed token, the return value its weight in thousandths (1000 without q, -1 for a
 * malformed q). Parameters other than q are ignored. */
static int next_list_item(dg_str_t *rest, dg_str_t *out_token)
{
    dg_str_t item;
    *rest = dg_str_split(*rest, ',', &item);
    dg_str_t params = dg_str_split(item, ';', out_token);
    *out_token = dg_str_trim(*out_token);
    int q = 1000;
    while (params.len) {
        dg_str_t param;
        params = dg_str_split(params, ';', &param);
        dg_str_t pname;
        dg_str_t pval = dg_str_split(dg_str_trim(param), '=', &pname);
        if (dg_str_ieq_c(dg_str_trim(pname), "q")) {
            q = parse_q(dg_str_trim(pval));
        }
    }
    return q;
}

dg_rc_t dg_http_negotiate_encoding(const char *accept_encoding, dg_codec_id_t *out,
                                   dg_error_t *err)
{
    /* Server preference on equal weight: best ratio per CPU first (DESIGN §11). */
    static const dg_codec_id_t preference[] = {DG_CODEC_ZSTD, DG_CODEC_BR, DG_CODEC_GZIP,
                                               DG_CODEC_IDENTITY};
    *out = DG_CODEC_IDENTITY;
    dg_str_t rest = dg_str_trim(dg_str_c(accept_encoding));
    if (rest.len == 0) {
        return DG_OK;
    }
    /* -2 = not named; otherwise the named weight. */
    int named[DG_CODEC_COUNT_];
    int star = -2;
    for (int i = 0; i < DG_CODEC_COUNT_; i++) {
        named[i] = -2;
    }
    while (rest.len) {
        dg_str_t token;
        int q = next_list_item(&rest, &token);
        if (token.len == 0 || q < 0) {
            continue;
        }
        if (dg_str_eq_c(token, "*")) {
            star = q;
            continue;
        }
        int c = dg_codec_parse(token.p, token.len);
        if (c >= 0) {
            named[c] = q > named[c] ? q : named[c];
        }
    }
    int best = -1, best_q = 0;
    for (size_t i = 0; i < sizeof preference / sizeof preference[0]; i++) {
        dg_codec_id_t c = preference[i];
        int q = named[c];
        if (q == -2) {
            /* Not named: `*` decides; identity stays acceptable unless `*;q=0` excludes it. */
            q = star != -2 ? star : c == DG_CODEC_IDENTITY ? 1 : 0;
        }
        if (q > best_q) {
            best = (int)c;
            best_q = q;
        }
    }
    if (best < 0) {
        return dg_error_set(err, DG_NOT_ACCEPTABLE,
                            "no acceptable content coding: duckgate offers zstd, br, gzip and "
                            "identity");
    }
    *out = (dg_codec_id_t)best;
    return DG_OK;
}

dg_rc_t dg_http_negotiate(const char *format_arg, const char *accept, dg_format_t *out,
                          dg_error_t *err)
{
    *out = DG_FMT_JSON;
    if (format_arg) {
        for (size_t i = 0; i < N_FORMATS; i++) {
            if (strcmp(format_arg, formats[i].name) == 0) {
                if (!formats[i].is_available) {
                    return dg_error_set(err, DG_NOT_ACCEPTABLE, "format %s is not available yet",
                                        formats[i].name);
                }
                *out = formats[i].fmt;
                return DG_OK;
            }
        }
        return dg_error_set(err, DG_NOT_ACCEPTABLE,
                            "unknown format \"%.32s\" (json, ndjson, csv or tsv)", format_arg);
    }
    if (!accept) {
        return DG_OK;
    }
    dg_str_t rest = dg_str_trim(dg_str_c(accept));
    if (rest.len == 0) {
        return DG_OK;
    }
    int best_q = 0;
    const char *unavailable = NULL;
    while (rest.len) {
        dg_str_t range;
        int q = next_list_item(&rest, &range);
        if (q <= best_q || range.len == 0) {
            continue; /* also skips q=0 and malformed q */
        }
        dg_format_t f;
        bool hit = false;
        if (dg_str_eq_c(range, "*/*") || dg_str_ieq_c(range, "application/*")) {
            f = DG_FMT_JSON;
            hit = true;
        } else if (dg_str_ieq_c(range, "text/*")) {
            f = DG_FMT_CSV;
            hit = true;
        } else {
            for (size_t i = 0; i < N_FORMATS; i++) {
                if (dg_str_ieq_c(range, formats[i].media) ||
                    (formats[i].alias && dg_str_ieq_c(range, formats[i].alias))) {
                    if (!formats[i].is_available) {
                        unavailable = formats[i].name;
                        break;
                    }
                    f = formats[i].fmt;
                    hit = true;
                    break;
                }
            }
        }
        if (hit) {
            best_q = q;
            *out = f;
        }
    }
    if (best_q == 0) {
        if (unavailable) {
            return dg_error_set(err, DG_NOT_ACCEPTABLE, "format %s is not available yet",
                                unavailable);
        }
        return dg_error_set(err, DG_NOT_ACCEPTABLE,
                            "Accept names no format we produce (application/json, "
                            "application/x-ndjson, text/csv, text/tab-separated-values)");
    }
    return DG_OK;
}

/* ---- routing ------------------------------------------------------------------------ */

static bool pattern_match(const char *pattern, const dg_http_path_t *path, dg_http_match_t *m)
{
    dg_str_t rest = dg_str_c(pattern);
    if (rest.len && rest.p[0] == '/') {
        rest.p++;
        rest.len--;
    }
    size_t i = 0;
    m->n_caps = 0;
    while (rest.len) {
        dg_str_t seg;
        rest = dg_str_split(rest, '/', &seg);
        if (i >= path->n) {
            return false;
        }
        dg_str_t got = {path->seg[i], path->seg_len[i]};
        if (seg.len >= 2 && seg.p[0] == '{' && seg.p[seg.len - 1] == '}') {
            if (got.len == 0 || m->n_caps == DG_HTTP_MAX_CAPTURES) {
                return false;
            }
            m->cap[m->n_caps++] = got;
        } else if (!dg_str_eq(seg, got)) {
            return false;
        }
        i++;
    }
    return i == path->n;
}

dg_rc_t dg_http_route_match(const dg_http_route_t *routes, size_t n, dg_http_method_t m,
                            const dg_http_path_t *path, dg_http_match_t *out)
{
    memset(out, 0, sizeof *out);
    dg_http_match_t tmp;
    for (size_t i = 0; i < n; i++) {
        if (!pattern_match(routes[i].pattern, path, &tmp)) {
            continue;
        }
        unsigned methods = routes[i].methods;
        if (methods & DG_HTTP_M(DG_HTTP_GET)) {
            methods |= DG_HTTP_M(DG_HTTP_HEAD);
        }
        out->allow |= methods;
        if (m != DG_HTTP_OTHER && (methods & DG_HTTP_M(m))) {
            unsigned allow = out->allow;
            *out = tmp;
            out->route = &routes[i];
            out->allow = allow | methods;
            return DG_OK;
        }
    }
    return out->allow ? DG_METHOD_NOT_ALLOWED : DG_NOT_FOUND;
}

void dg_http_allow_string(unsigned methods, char *buf, size_t cap)
{
    size_t o = 0;
    if (cap == 0) {
        return;
    }
    buf[0] = '\0';
    for (int i = 1; i < (int)(sizeof method_names / sizeof method_names[0]); i++) {
        if (!(methods & DG_HTTP_M(i))) {
            continue;
        }
        int w = snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", method_names[i]);
        if (w < 0 || (size_t)w >= cap - o) {
            break;
        }
        o += (size_t)w;
    }
}

/* ---- error bodies ------------------------------------------------------------------- */

dg_rc_t dg_http_error_json(dg_buf_t *out, dg_rc_t rc, const char *message, const char *query_id)
{
    const char *msg = message && message[0] ? message : dg_rc_message(rc);
    dg_rc_t r = dg_buf_puts(out, "{\"error\":{\"code\":");
    if (r == DG_OK) {
        r = dg_buf_json_str(out, dg_rc_name(rc), strlen(dg_rc_name(rc)));
    }
    if (r == DG_OK) {
        r = dg_buf_puts(out, ",\"message\":");
    }
    if (r == DG_OK) {
        r = dg_buf_json_str(out, msg, strlen(msg));
    }
    if (r == DG_OK && query_id) {
        r = dg_buf_puts(out, ",\"query_id\":");
        if (r == DG_OK) {
            r = dg_buf_json_str(out, query_id, strlen(query_id));
        }
    }
    if (r == DG_OK) {
        r = dg_buf_puts(out, "}}");
    }
    return r;
}
