/* The query file parser: the `-- @` header (options and typed parameters) and a light scan of
 * the SQL that follows (its `$name` parameters, one statement, no positional parameters).
 *
 * The scan is not a SQL parser: it only skips what can hide a `$`, `?` or `;` (string
 * literals, quoted identifiers, comments, dollar-quoted strings) so that the declared and the
 * used parameters can be compared before anything runs. The engine still checks the statement
 * for real (exactly one, of type SELECT) when it first prepares it.
 *
 * Pure and thread-safe; fuzzed by fuzz/fuzz_named.c. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "named/named.h"

static _Atomic uint64_t next_version = 1;

bool dg_named_name_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > 64 || s[0] == '-') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

static const char *const type_names[] = {"BOOLEAN", "TINYINT", "SMALLINT", "INTEGER",  "BIGINT",
                                         "DOUBLE",  "VARCHAR", "DATE",     "TIMESTAMP"};
static const char *const list_names[] = {"BOOLEAN[]", "TINYINT[]", "SMALLINT[]",
                                         "INTEGER[]", "BIGINT[]",  "DOUBLE[]",
                                         "VARCHAR[]", "DATE[]",    "TIMESTAMP[]"};

const char *dg_named_type_name(dg_named_type_t t, bool is_list)
{
    if ((unsigned)t > DG_NAMED_TIMESTAMP) {
        return "?";
    }
    return is_list ? list_names[t] : type_names[t];
}

const char *dg_named_role_name(dg_named_role_t r)
{
    switch (r) {
    case DG_NAMED_ROLE_PUBLIC:
        return "public";
    case DG_NAMED_ROLE_VIEWER:
        return "viewer";
    case DG_NAMED_ROLE_ANALYST:
        return "analyst";
    case DG_NAMED_ROLE_ADMIN:
        return "admin";
    }
    return "?";
}

static void param_clear(dg_named_param_t *p)
{
    json_decref(p->default_value);
    json_decref(p->min);
    json_decref(p->max);
    json_decref(p->one_of);
    free(p->default_text);
    free(p->min_text);
    free(p->max_text);
    if (p->regex_text) {
        regfree(&p->regex);
    }
    free(p->regex_text);
    free(p->doc);
}

void dg_named_query_free(dg_named_query_t *q)
{
    if (!q) {
        return;
    }
    for (size_t i = 0; i < q->n_params; i++) {
        param_clear(&q->params[i]);
    }
    free(q->params);
    free(q->description);
    free(q->sql);
    free(q);
}

/* ---- small text helpers ------------------------------------------------------------------ */

typedef struct parser {
    dg_named_query_t *q;
    dg_error_t *err;
    int line;
    bool seen_roles, seen_ttl, seen_cache, seen_rows, seen_timeout;
} parser_t;

static dg_rc_t fail(parser_t *ps, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static dg_rc_t fail(parser_t *ps, int line, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dg_error_set(ps->err, DG_CONFIG, "%d: %s", line, msg);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Next whitespace-separated token of [*p, end): sets *tok and *tok_len, advances *p. */
static bool next_token(const char **p, const char *end, const char **tok, size_t *tok_len)
{
    const char *s = *p;
    while (s < end && is_space(*s)) {
        s++;
    }
    if (s >= end) {
        *p = s;
        return false;
    }
    const char *t = s;
    while (s < end && !is_space(*s)) {
        s++;
    }
    *tok = t;
    *tok_len = (size_t)(s - t);
    *p = s;
    return true;
}

static bool tok_is(const char *t, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(t, word, len) == 0;
}

/* Plain decimal in [lo, hi], the whole token. */
static bool parse_i64(const char *t, size_t len, int64_t lo, int64_t hi, int64_t *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof buf) {
        return false;
    }
    memcpy(buf, t, len);
    buf[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)buf[i]) && !(i == 0 && buf[i] == '-' && len > 1)) {
            return false;
        }
    }
    errno = 0;
    char *e = NULL;
    long long v = strtoll(buf, &e, 10);
    if (errno != 0 || *e != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = v;
    return true;
}

static char *dup_n(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* ---- @param ------------------------------------------------------------------------------ */

static bool param_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > 64 || !(isalpha((unsigned char)s[0]) || s[0] == '_')) {
        return false;
    }
    for (size_t i = 1; i < len; i++) {
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) {
            return false;
        }
    }
    return true;
}

static bool parse_type(const char *t, size_t len, dg_named_type_t *out, bool *out_list)
{
    *out_list = len > 2 && t[len - 2] == '[' && t[len - 1] == ']';
    if (*out_list) {
        len -= 2;
    }
    for (unsigned i = 0; i <= DG_NAMED_TIMESTAMP; i++) {
        if (tok_is(t, len, type_names[i])) {
            *out = (dg_named_type_t)i;
            return true;
        }
    }
    /* The usual DuckDB spellings of the same types. */
    static const struct {
        const char *alias;
        dg_named_type_t t;
    } aliases[] = {
        {"BOOL", DG_NAMED_BOOLEAN},  {"INT", DG_NAMED_INTEGER},   {"INT4", DG_NAMED_INTEGER},
        {"INT8", DG_NAMED_BIGINT},   {"INT2", DG_NAMED_SMALLINT}, {"INT1", DG_NAMED_TINYINT},
        {"FLOAT8", DG_NAMED_DOUBLE}, {"TEXT", DG_NAMED_VARCHAR},  {"STRING", DG_NAMED_VARCHAR}};
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        if (tok_is(t, len, aliases[i].alias)) {
            *out = aliases[i].t;
            return true;
        }
    }
    return false;
}

static bool is_numeric(dg_named_type_t t)
{
    return t >= DG_NAMED_TINYINT && t <= DG_NAMED_DOUBLE;
}

static bool has_order(dg_named_type_t t)
{
    return is_numeric(t) || t == DG_NAMED_DATE || t == DG_NAMED_TIMESTAMP;
}

static double num_of(const json_t *v)
{
    return json_number_value(v);
}

/* Compares two typed scalars of an ordered type: <0, 0, >0. */
static int cmp_scalar(dg_named_type_t t, const json_t *a, const json_t *b)
{
    if (t == DG_NAMED_DOUBLE) {
        double x = num_of(a), y = num_of(b);
        return x < y ? -1 : x > y;
    }
    json_int_t x = json_integer_value(a), y = json_integer_value(b);
    return x < y ? -1 : x > y;
}

/* Parses a bound (min=/max=) of p's type into *out and its text into *out_text. */
static dg_rc_t take_bound(parser_t *ps, dg_named_param_t *p, const char *key, const char *v,
                          size_t vlen, json_t **out, char **out_text)
{
    if (!has_order(p->type)) {
        return fail(ps, ps->line, "%s applies to numbers, DATE and TIMESTAMP, not %s", key,
                    dg_named_type_name(p->type, false));
    }
    if (*out) {
        return fail(ps, ps->line, "%s given twice for parameter %s", key, p->name);
    }
    char *text = dup_n(v, vlen);
    if (!text) {
        return dg_error_set(ps->err, DG_NOMEM, "out of memory");
    }
    char reason[160];
    if (!dg_named_scalar_from_text(p->type, text, out, reason, sizeof reason)) {
        free(text);
        return fail(ps, ps->line, "bad %s for parameter %s: %s", key, p->name, reason);
    }
    *out_text = text;
    return DG_OK;
}

static dg_rc_t take_one_of(parser_t *ps, dg_named_param_t *p, const char *v, size_t vlen)
{
    if (p->type == DG_NAMED_BOOLEAN) {
        return fail(ps, ps->line, "one_of does not apply to BOOLEAN");
    }
    if (p->one_of) {
        return fail(ps, ps->line, "one_of given twice for parameter %s", p->name);
    }
    p->one_of = json_array();
    if (!p->one_of) {
        return dg_error_set(ps->err, DG_NOMEM, "out of memory");
    }
    const char *s = v, *end = v + vlen;
    for (;;) {
        const char *bar = memchr(s, '|', (size_t)(end - s));
        const char *stop = bar ? bar : end;
        char *item = dup_n(s, (size_t)(stop - s));
        if (!item) {
            return dg_error_set(ps->err, DG_NOMEM, "out of memory");
        }
        json_t *jv = NULL;
        char reason[160];
        bool ok = item[0] && dg_named_scalar_from_text(p->type, item, &jv, reason, sizeof reason);
        if (!item[0]) {
            snprintf(reason, sizeof reason, "empty choice");
        }
        free(item);
        if (!ok) {
            return fail(ps, ps->line, "bad one_of choice for parameter %s: %s", p->name, reason);
        }
        if (json_array_append_new(p->one_of, jv) != 0) {
            return dg_error_set(ps->err, DG_NOMEM, "out of memory");
        }
        if (!bar) {
            break;
        }
        s = bar + 1;
    }
    return DG_OK;
}

static dg_rc_t take_count(parser_t *ps, dg_named_param_t *p, const char *key, const char *v,
                          size_t vlen, int64_t *out)
{
    if (*out >= 0) {
        return fail(ps, ps->line, "%s given twice for parameter %s", key, p->name);
    }
    if (!parse_i64(v, vlen, 1, INT32_MAX, out)) {
        return fail(ps, ps->line, "%s must be a whole number from 1 to %d", key, INT32_MAX);
    }
    return DG_OK;
}

/* One `key=value` or `required` option of an @param line. */
static dg_rc_t param_option(parser_t *ps, dg_named_param_t *p, const char *t, size_t len,
                            const char **default_tok, size_t *default_len)
{
    if (tok_is(t, len, "required")) {
        if (p->is_required) {
            return fail(ps, ps->line, "required given twice for parameter %s", p->name);
        }
        p->is_required = true;
        return DG_OK;
    }
    const char *eq = memchr(t, '=', len);
    if (!eq) {
        return fail(ps, ps->line,
                    "unknown option \"%.*s\" for parameter %s (required, default=, "
                    "min=, max=, max_length=, one_of=, regex=, max_items=)",
                    (int)(len > 40 ? 40 : len), t, p->name);
    }
    size_t klen = (size_t)(eq - t);
    const char *v = eq + 1;
    size_t vlen = len - klen - 1;
    if (tok_is(t, klen, "default")) {
        if (*default_tok) {
            return fail(ps, ps->line, "default given twice for parameter %s", p->name);
        }
        *default_tok = v;
        *default_len = vlen;
        return DG_OK;
    }
    if (vlen == 0) {
        return fail(ps, ps->line, "%.*s= needs a value", (int)klen, t);
    }
    if (tok_is(t, klen, "min")) {
        return take_bound(ps, p, "min", v, vlen, &p->min, &p->min_text);
    }
    if (tok_is(t, klen, "max")) {
        return take_bound(ps, p, "max", v, vlen, &p->max, &p->max_text);
    }
    if (tok_is(t, klen, "max_length")) {
        if (p->type != DG_NAMED_VARCHAR) {
            return fail(ps, ps->line, "max_length applies to VARCHAR only");
        }
        return take_count(ps, p, "max_length", v, vlen, &p->max_length);
    }
    if (tok_is(t, klen, "max_items")) {
        if (!p->is_list) {
            return fail(ps, ps->line, "max_items applies to list types (T[]) only");
        }
        return take_count(ps, p, "max_items", v, vlen, &p->max_items);
    }
    if (tok_is(t, klen, "one_of")) {
        return take_one_of(ps, p, v, vlen);
    }
    if (tok_is(t, klen, "regex")) {
        if (p->type != DG_NAMED_VARCHAR) {
            return fail(ps, ps->line, "regex applies to VARCHAR only");
        }
        if (p->regex_text) {
            return fail(ps, ps->line, "regex given twice for parameter %s", p->name);
        }
        char *re = dup_n(v, vlen);
        if (!re) {
            return dg_error_set(ps->err, DG_NOMEM, "out of memory");
        }
        int rc = regcomp(&p->regex, re, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char why[128];
            regerror(rc, &p->regex, why, sizeof why);
            free(re);
            return fail(ps, ps->line, "bad regex for parameter %s: %s", p->name, why);
        }
        p->regex_text = re;
        return DG_OK;
    }
    return fail(ps, ps->line,
                "unknown constraint \"%.*s\" for parameter %s (min, max, max_length, one_of, "
                "regex, max_items)",
                (int)(klen > 40 ? 40 : klen), t, p->name);
}

/* The default value: NULL, or a valid value of a scalar type that meets the constraints. */
static dg_rc_t take_default(parser_t *ps, dg_named_param_t *p, const char *v, size_t vlen)
{
    p->default_text = dup_n(v, vlen);
    if (!p->default_text) {
        return dg_error_set(ps->err, DG_NOMEM, "out of memory");
    }
    if (tok_is(v, vlen, "NULL")) {
        p->default_value = json_null();
        return DG_OK;
    }
    if (p->is_list) {
        return fail(ps, ps->line, "a list parameter's default can only be NULL");
    }
    char reason[192];
    if (!dg_named_scalar_from_text(p->type, p->default_text, &p->default_value, reason,
                                   sizeof reason)) {
        return fail(ps, ps->line, "bad default for parameter %s: %s", p->name, reason);
    }
    if (!dg_named_scalar_check(p, p->default_value, reason, sizeof reason)) {
        return fail(ps, ps->line, "the default of parameter %s %s", p->name, reason);
    }
    return DG_OK;
}

static dg_rc_t directive_param(parser_t *ps, const char *s, const char *end)
{
    dg_named_query_t *q = ps->q;
    if (q->n_params >= DG_NAMED_MAX_PARAMS) {
        return fail(ps, ps->line, "more than %d parameters", DG_NAMED_MAX_PARAMS);
    }
    /* ` -- ` starts the parameter's own description. */
    const char *doc = NULL, *line_end = end;
    for (const char *c = s; c + 1 < end; c++) {
        if (c[0] == '-' && c[1] == '-' && (c == s || is_space(c[-1])) &&
            (c + 2 == end || is_space(c[2]))) {
            doc = c + 2;
            end = c;
            break;
        }
    }
    dg_named_param_t *p = &q->params[q->n_params];
    memset(p, 0, sizeof *p);
    p->max_length = -1;
    p->max_items = -1;
    p->line = ps->line;
    q->n_params++; /* owned from here on, so a failure frees what was taken */
    const char *t;
    size_t len;
    if (!next_token(&s, end, &t, &len)) {
        return fail(ps, ps->line, "@param needs a name and a type");
    }
    if (!param_name_valid(t, len)) {
        return fail(ps, ps->line, "bad parameter name \"%.*s\" (letters, digits, _; 1..64)",
                    (int)(len > 64 ? 64 : len), t);
    }
    memcpy(p->name, t, len);
    p->name[len] = '\0';
    if (strcmp(p->name, "format") == 0) {
        return fail(ps, ps->line, "parameter name \"format\" is reserved (output format)");
    }
    if (strcmp(p->name, "cache") == 0) {
        return fail(ps, ps->line, "parameter name \"cache\" is reserved (?cache=bypass)");
    }
    for (size_t i = 0; i + 1 < q->n_params; i++) {
        if (strcmp(q->params[i].name, p->name) == 0) {
            return fail(ps, ps->line, "parameter %s declared twice (first on line %d)", p->name,
                        q->params[i].line);
        }
    }
    if (!next_token(&s, end, &t, &len)) {
        return fail(ps, ps->line, "parameter %s has no type", p->name);
    }
    if (!parse_type(t, len, &p->type, &p->is_list)) {
        return fail(ps, ps->line,
                    "unknown type \"%.*s\" for parameter %s (BOOLEAN, TINYINT, SMALLINT, "
                    "INTEGER, BIGINT, DOUBLE, VARCHAR, DATE, TIMESTAMP, or T[])",
                    (int)(len > 40 ? 40 : len), t, p->name);
    }
    const char *dflt = NULL;
    size_t dflt_len = 0;
    while (next_token(&s, end, &t, &len)) {
        dg_rc_t rc = param_option(ps, p, t, len, &dflt, &dflt_len);
        if (rc != DG_OK) {
            return rc;
        }
    }
    if (p->min && p->max && cmp_scalar(p->type, p->min, p->max) > 0) {
        return fail(ps, ps->line, "min is greater than max for parameter %s", p->name);
    }
    if (p->is_required == (dflt != NULL)) {
        return fail(ps, ps->line,
                    "parameter %s must be either required or have a default=", p->name);
    }
    if (dflt) {
        dg_rc_t rc = take_default(ps, p, dflt, dflt_len);
        if (rc != DG_OK) {
            return rc;
        }
    }
    if (doc) {
        const char *d = doc, *e = line_end;
        while (d < e && is_space(*d)) {
            d++;
        }
        while (e > d && is_space(e[-1])) {
            e--;
        }
        if (e > d && !(p->doc = dup_n(d, (size_t)(e - d)))) {
            return dg_error_set(ps->err, DG_NOMEM, "out of memory");
        }
    }
    return DG_OK;
}

/* ---- other directives -------------------------------------------------------------------- */

static dg_rc_t once(parser_t *ps, bool *seen, const char *name)
{
    if (*seen) {
        return fail(ps, ps->line, "@%s given twice", name);
    }
    *seen = true;
    return DG_OK;
}

/* The single word after a directive, the whole rest of the line. */
static dg_rc_t one_word(parser_t *ps, const char *s, const char *end, const char *name,
                        const char **t, size_t *len)
{
    const char *rest;
    if (!next_token(&s, end, t, len)) {
        return fail(ps, ps->line, "@%s needs a value", name);
    }
    rest = s;
    const char *t2;
    size_t l2;
    if (next_token(&rest, end, &t2, &l2)) {
        return fail(ps, ps->line, "@%s takes one value", name);
    }
    return DG_OK;
}

static dg_rc_t directive(parser_t *ps, const char *s, const char *end)
{
    dg_named_query_t *q = ps->q;
    const char *name = s;
    while (s < end && (isalnum((unsigned char)*s) || *s == '_')) {
        s++;
    }
    size_t nlen = (size_t)(s - name);
    if (s < end && !is_space(*s)) {
        nlen = (size_t)(end - name);
    }
    const char *t;
    size_t len;
    dg_rc_t rc;
    if (tok_is(name, nlen, "param")) {
        return directive_param(ps, s, end);
    }
    if (tok_is(name, nlen, "description")) {
        while (s < end && is_space(*s)) {
            s++;
        }
        const char *e = end;
        while (e > s && is_space(e[-1])) {
            e--;
        }
        if (e == s) {
            return fail(ps, ps->line, "@description needs text");
        }
        size_t old = q->description ? strlen(q->description) : 0;
        char *d = realloc(q->description, old + (size_t)(e - s) + 2);
        if (!d) {
            return dg_error_set(ps->err, DG_NOMEM, "out of memory");
        }
        if (old) {
            d[old++] = ' '; /* several @description lines make one paragraph */
        }
        memcpy(d + old, s, (size_t)(e - s));
        d[old + (size_t)(e - s)] = '\0';
        q->description = d;
        return DG_OK;
    }
    if (tok_is(name, nlen, "roles") || tok_is(name, nlen, "role")) {
        if ((rc = once(ps, &ps->seen_roles, "roles")) != DG_OK ||
            (rc = one_word(ps, s, end, "roles", &t, &len)) != DG_OK) {
            return rc;
        }
        for (int r = DG_NAMED_ROLE_PUBLIC; r <= DG_NAMED_ROLE_ADMIN; r++) {
            if (tok_is(t, len, dg_named_role_name((dg_named_role_t)r))) {
                q->role = (dg_named_role_t)r;
                return DG_OK;
            }
        }
        return fail(ps, ps->line, "@roles must be public, viewer, analyst or admin");
    }
    if (tok_is(name, nlen, "cache_ttl")) {
        if ((rc = once(ps, &ps->seen_ttl, "cache_ttl")) != DG_OK ||
            (rc = one_word(ps, s, end, "cache_ttl", &t, &len)) != DG_OK) {
            return rc;
        }
        if (!parse_i64(t, len, 0, INT64_C(10) * 366 * 86400, &q->cache_ttl_s)) {
            return fail(ps, ps->line, "@cache_ttl must be whole seconds (0 = never cache)");
        }
        return DG_OK;
    }
    if (tok_is(name, nlen, "cache")) {
        if ((rc = once(ps, &ps->seen_cache, "cache")) != DG_OK ||
            (rc = one_word(ps, s, end, "cache", &t, &len)) != DG_OK) {
            return rc;
        }
        if (!tok_is(t, len, "public") && !tok_is(t, len, "private")) {
            return fail(ps, ps->line, "@cache must be public or private");
        }
        q->cache_public = tok_is(t, len, "public");
        return DG_OK;
    }
    if (tok_is(name, nlen, "max_rows")) {
        int64_t v;
        if ((rc = once(ps, &ps->seen_rows, "max_rows")) != DG_OK ||
            (rc = one_word(ps, s, end, "max_rows", &t, &len)) != DG_OK) {
            return rc;
        }
        if (!parse_i64(t, len, 1, INT64_MAX, &v)) {
            return fail(ps, ps->line, "@max_rows must be a whole number >= 1");
        }
        q->max_rows = (uint64_t)v;
        return DG_OK;
    }
    if (tok_is(name, nlen, "timeout_ms")) {
        if ((rc = once(ps, &ps->seen_timeout, "timeout_ms")) != DG_OK ||
            (rc = one_word(ps, s, end, "timeout_ms", &t, &len)) != DG_OK) {
            return rc;
        }
        if (!parse_i64(t, len, 1, 86400000, &q->timeout_ms)) {
            return fail(ps, ps->line, "@timeout_ms must be whole milliseconds from 1 to 86400000");
        }
        return DG_OK;
    }
    return fail(ps, ps->line,
                "unknown directive @%.*s (description, roles, cache_ttl, cache, max_rows, "
                "timeout_ms, param)",
                (int)(nlen > 40 ? 40 : nlen), name);
}

/* ---- the SQL scan ------------------------------------------------------------------------ */

typedef struct sql_scan {
    parser_t *ps;
    bool used[DG_NAMED_MAX_PARAMS];
} sql_scan_t;

static bool ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static dg_rc_t scan_param(sql_scan_t *sc, const char *name, size_t len, int line)
{
    dg_named_query_t *q = sc->ps->q;
    for (size_t i = 0; i < q->n_params; i++) {
        if (strlen(q->params[i].name) == len && memcmp(q->params[i].name, name, len) == 0) {
            sc->used[i] = true;
            return DG_OK;
        }
    }
    return fail(sc->ps, line, "parameter $%.*s is used but not declared (-- @param %.*s TYPE ...)",
                (int)(len > 64 ? 64 : len), name, (int)(len > 64 ? 64 : len), name);
}

/* Walks the SQL (starting on line `line`): records used parameters, refuses positional ones and
 * a second statement, and checks the first keyword. */
static dg_rc_t scan_sql(sql_scan_t *sc, const char *s, size_t len, int line)
{
    parser_t *ps = sc->ps;
    const char *end = s + len;
    bool seen_semicolon = false, seen_token = false;
    int semicolon_line = line;
    while (s < end) {
        char c = *s;
        if (c == '\n') {
            line++;
            s++;
            continue;
        }
        if (isspace((unsigned char)c)) {
            s++;
            continue;
        }
        if (c == '-' && s + 1 < end && s[1] == '-') {
            while (s < end && *s != '\n') {
                s++;
            }
            continue;
        }
        if (c == '/' && s + 1 < end && s[1] == '*') {
            int start = line;
            s += 2;
            while (s + 1 < end && !(s[0] == '*' && s[1] == '/')) {
                line += *s == '\n';
                s++;
            }
            if (s + 1 >= end) {
                return fail(ps, start, "unterminated /* comment");
            }
            s += 2;
            continue;
        }
        if (seen_semicolon) {
            return fail(ps, semicolon_line, "only one SQL statement is allowed");
        }
        if (!seen_token) {
            seen_token = true;
            const char *w = s;
            while (w < end && ident_char(*w)) {
                w++;
            }
            size_t wl = (size_t)(w - s);
            if (!(c == '(' || tok_is(s, wl, "SELECT") || tok_is(s, wl, "WITH") ||
                  tok_is(s, wl, "FROM"))) {
                return fail(ps, line, "the query must be a SELECT (or WITH ... SELECT)");
            }
        }
        if (c == '\'' || c == '"') {
            /* String literal or quoted identifier; a doubled quote is an escaped one. E'..'
             * strings also take backslash escapes. */
            bool backslash = c == '\'' && s > sc->ps->q->sql && (s[-1] == 'E' || s[-1] == 'e') &&
                             (s - 1 == sc->ps->q->sql || !ident_char(s[-2]));
            int start = line;
            s++;
            for (;;) {
                if (s >= end) {
                    return fail(ps, start, "unterminated %s", c == '\'' ? "string" : "identifier");
                }
                if (*s == '\n') {
                    line++;
                } else if (backslash && *s == '\\' && s + 1 < end) {
                    line += s[1] == '\n';
                    s += 2;
                    continue;
                } else if (*s == c) {
                    if (s + 1 < end && s[1] == c) {
                        s += 2;
                        continue;
                    }
                    s++;
                    break;
                }
                s++;
            }
            continue;
        }
        if (c == '$') {
            const char *n = s + 1;
            if (n < end && isdigit((unsigned char)*n)) {
                return fail(ps, line, "positional parameters ($1) are not allowed; use $name");
            }
            const char *ne = n;
            while (ne < end && ident_char(*ne)) {
                ne++;
            }
            if (ne < end && *ne == '$') {
                /* $tag$ ... $tag$ (or $$ ... $$): a dollar-quoted string. */
                size_t tl = (size_t)(ne - s) + 1;
                const char *body = ne + 1;
                const char *close = NULL;
                for (const char *k = body; k + tl <= end; k++) {
                    if (memcmp(k, s, tl) == 0) {
                        close = k;
                        break;
                    }
                }
                if (!close) {
                    return fail(ps, line, "unterminated dollar-quoted string");
                }
                for (const char *k = s; k < close; k++) {
                    line += *k == '\n';
                }
                s = close + tl;
                continue;
            }
            if (ne == n) {
                return fail(ps, line, "a lone $ is not a parameter");
            }
            dg_rc_t rc = scan_param(sc, n, (size_t)(ne - n), line);
            if (rc != DG_OK) {
                return rc;
            }
            s = ne;
            continue;
        }
        if (c == '?') {
            return fail(ps, line, "positional parameters (?) are not allowed; use $name");
        }
        if (c == ';') {
            seen_semicolon = true;
            semicolon_line = line;
            s++;
            continue;
        }
        if (ident_char(c)) {
            /* A whole word, so a '$' inside an identifier (a$b) is not taken for a parameter. */
            while (s < end && (ident_char(*s) || *s == '$')) {
                s++;
            }
            continue;
        }
        s++;
    }
    if (!seen_token) {
        return fail(ps, line, "the file has no SQL after its header");
    }
    return DG_OK;
}

/* ---- the file ---------------------------------------------------------------------------- */

dg_rc_t dg_named_parse(const char *db, const char *name, const char *text, size_t len,
                       dg_named_query_t **out, dg_error_t *err)
{
    *out = NULL;
    parser_t ps = {.err = err, .line = 1};
    dg_named_query_t *q = calloc(1, sizeof *q);
    if (!q || !(q->params = calloc(DG_NAMED_MAX_PARAMS, sizeof *q->params))) {
        free(q);
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    ps.q = q;
    q->role = DG_NAMED_ROLE_VIEWER;
    q->cache_ttl_s = -1;
    snprintf(q->db, sizeof q->db, "%s", db ? db : "");
    snprintf(q->name, sizeof q->name, "%s", name ? name : "");
    dg_rc_t rc = DG_OK;
    if (len > DG_NAMED_MAX_FILE_BYTES) {
        rc = fail(&ps, 1, "the file is larger than %u bytes", DG_NAMED_MAX_FILE_BYTES);
        goto out;
    }
    if (memchr(text, '\0', len)) {
        rc = fail(&ps, 1, "the file contains a NUL byte");
        goto out;
    }
    const char *s = text, *end = text + len;
    /* Header: blank lines and `--` comments; `-- @` lines are directives. */
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *le = nl ? nl : end;
        const char *c = s;
        while (c < le && is_space(*c)) {
            c++;
        }
        if (c < le && !(le - c >= 2 && c[0] == '-' && c[1] == '-')) {
            break; /* the SQL starts on this line */
        }
        if (c < le) {
            const char *d = c + 2;
            while (d < le && is_space(*d)) {
                d++;
            }
            if (d < le && *d == '@') {
                rc = directive(&ps, d + 1, le);
                if (rc != DG_OK) {
                    goto out;
                }
            }
        }
        s = nl ? nl + 1 : end;
        ps.line++;
    }
    int sql_line = ps.line;
    /* No directive may hide in the SQL: it would be silently ignored. */
    int ln = sql_line;
    for (const char *c = s; c < end; ln++) {
        const char *nl = memchr(c, '\n', (size_t)(end - c));
        const char *le = nl ? nl : end;
        const char *d = c;
        while (d < le && is_space(*d)) {
            d++;
        }
        if (le - d >= 3 && d[0] == '-' && d[1] == '-') {
            const char *e = d + 2;
            while (e < le && is_space(*e)) {
                e++;
            }
            if (e < le && *e == '@') {
                rc = fail(&ps, ln,
                          "a -- @ directive after the SQL started (the header must "
                          "come first)");
                goto out;
            }
        }
        c = nl ? nl + 1 : end;
    }
    /* Trailing blank space is not part of the statement. */
    while (end > s && isspace((unsigned char)end[-1])) {
        end--;
    }
    q->sql_len = (size_t)(end - s);
    q->sql = dup_n(s, q->sql_len);
    if (!q->sql) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory");
        goto out;
    }
    sql_scan_t sc;
    memset(&sc, 0, sizeof sc);
    sc.ps = &ps;
    rc = scan_sql(&sc, q->sql, q->sql_len, sql_line);
    if (rc != DG_OK) {
        goto out;
    }
    for (size_t i = 0; i < q->n_params; i++) {
        if (!sc.used[i]) {
            rc = fail(&ps, q->params[i].line, "parameter %s is declared but not used in the SQL",
                      q->params[i].name);
            goto out;
        }
    }
    q->version = atomic_fetch_add(&next_version, 1);
    atomic_init(&q->refs_, 1);
out:
    if (rc != DG_OK) {
        dg_named_query_free(q);
        return rc;
    }
    *out = q;
    return DG_OK;
}
