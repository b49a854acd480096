/* Caller values -> typed values (see named.h for the typed forms), checked against the
 * declarations of a named query. Every problem of every parameter is collected, so a 422
 * answer lists them all at once.
 *
 * Text syntax (GET): BOOLEAN true|false|1|0; integers -?[0-9]+ within the type's range;
 * DOUBLE a finite decimal number; DATE YYYY-MM-DD; TIMESTAMP YYYY-MM-DD[T| ]HH:MM[:SS[.f{1,6}]]
 * with an optional Z (UTC, as DuckDB's TIMESTAMP has no zone); VARCHAR any valid UTF-8.
 * Pure and thread-safe (regexec on a shared compiled regex is thread-safe in glibc). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "named/named.h"

/* ---- dates --------------------------------------------------------------------------------- */

int64_t dg_named_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* H. Hinnant's days_from_civil: exact for the proleptic Gregorian calendar. */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) {
            return false;
        }
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const unsigned dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* YYYY-MM-DD at s (exactly 10 bytes) -> days. */
static bool parse_date10(const char *s, int64_t *out)
{
    unsigned y, m, d;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &m) || s[7] != '-' ||
        !digits(s + 8, 2, &d)) {
        return false;
    }
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) {
        return false;
    }
    *out = dg_named_days_from_civil(y, m, d);
    return true;
}

static bool parse_timestamp(const char *s, int64_t *out)
{
    size_t len = strlen(s);
    int64_t days;
    if (len < 10 || !parse_date10(s, &days)) {
        return false;
    }
    unsigned hh = 0, mi = 0, ss = 0, frac = 0;
    const char *p = s + 10, *end = s + len;
    if (p < end && *(end - 1) == 'Z') {
        end--;
    }
    if (p < end) {
        if ((*p != 'T' && *p != ' ') || end - p < 6 || !digits(p + 1, 2, &hh) || p[3] != ':' ||
            !digits(p + 4, 2, &mi)) {
            return false;
        }
        p += 6;
        if (p < end) {
            if (end - p < 3 || *p != ':' || !digits(p + 1, 2, &ss)) {
                return false;
            }
            p += 3;
        }
        if (p < end) {
            size_t n = (size_t)(end - p - 1);
            if (*p != '.' || n < 1 || n > 6 || !digits(p + 1, n, &frac)) {
                return false;
            }
            for (size_t i = n; i < 6; i++) {
                frac *= 10;
            }
            p = end;
        }
        if (hh > 23 || mi > 59 || ss > 59) {
            return false;
        }
    }
    *out = ((days * 86400) + hh * 3600 + mi * 60 + ss) * INT64_C(1000000) + frac;
    return true;
}

void dg_named_scalar_text(dg_named_type_t t, const json_t *v, char *out, size_t cap)
{
    if (json_is_null(v)) {
        snprintf(out, cap, "NULL");
        return;
    }
    switch (t) {
    case DG_NAMED_BOOLEAN:
        snprintf(out, cap, "%s", json_is_true(v) ? "true" : "false");
        return;
    case DG_NAMED_DOUBLE:
        snprintf(out, cap, "%.17g", json_number_value(v));
        return;
    case DG_NAMED_VARCHAR:
        snprintf(out, cap, "%s", json_string_value(v) ? json_string_value(v) : "");
        return;
    case DG_NAMED_DATE:
    case DG_NAMED_TIMESTAMP: {
        int64_t x = json_integer_value(v);
        int64_t days = x;
        int64_t us = 0;
        if (t == DG_NAMED_TIMESTAMP) {
            int64_t per_day = INT64_C(86400000000);
            days = x >= 0 ? x / per_day : -((-x + per_day - 1) / per_day);
            us = x - days * per_day;
        }
        int64_t y;
        unsigned m, d;
        civil_from_days(days, &y, &m, &d);
        if (t == DG_NAMED_DATE) {
            snprintf(out, cap, "%04lld-%02u-%02u", (long long)y, m, d);
        } else {
            int64_t s = us / 1000000;
            snprintf(out, cap, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%06lld", (long long)y, m, d,
                     (long long)(s / 3600), (long long)(s / 60 % 60), (long long)(s % 60),
                     (long long)(us % 1000000));
        }
        return;
    }
    default:
        snprintf(out, cap, "%lld", (long long)json_integer_value(v));
        return;
    }
}

/* ---- scalars ------------------------------------------------------------------------------- */

static void why(char *reason, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void why(char *reason, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, cap, fmt, ap);
    va_end(ap);
}

static void int_range(dg_named_type_t t, int64_t *lo, int64_t *hi)
{
    switch (t) {
    case DG_NAMED_TINYINT:
        *lo = INT8_MIN, *hi = INT8_MAX;
        return;
    case DG_NAMED_SMALLINT:
        *lo = INT16_MIN, *hi = INT16_MAX;
        return;
    case DG_NAMED_INTEGER:
        *lo = INT32_MIN, *hi = INT32_MAX;
        return;
    default:
        *lo = INT64_MIN, *hi = INT64_MAX;
        return;
    }
}

static json_t *int_value(dg_named_type_t t, long long v, char *reason, size_t cap)
{
    int64_t lo, hi;
    int_range(t, &lo, &hi);
    if (v < lo || v > hi) {
        why(reason, cap, "must be a whole number from %lld to %lld (%s)", (long long)lo,
            (long long)hi, dg_named_type_name(t, false));
        return NULL;
    }
    json_t *j = json_integer((json_int_t)v);
    if (!j) {
        why(reason, cap, "out of memory");
    }
    return j;
}

bool dg_named_scalar_from_text(dg_named_type_t t, const char *text, json_t **out, char *reason,
                               size_t cap)
{
    *out = NULL;
    size_t len = strlen(text);
    switch (t) {
    case DG_NAMED_BOOLEAN:
        if (strcasecmp(text, "true") == 0 || strcmp(text, "1") == 0) {
            *out = json_true();
        } else if (strcasecmp(text, "false") == 0 || strcmp(text, "0") == 0) {
            *out = json_false();
        } else {
            why(reason, cap, "must be true or false");
            return false;
        }
        return true;
    case DG_NAMED_TINYINT:
    case DG_NAMED_SMALLINT:
    case DG_NAMED_INTEGER:
    case DG_NAMED_BIGINT: {
        bool ok = len > 0 && len < 24;
        for (size_t i = 0; ok && i < len; i++) {
            ok = isdigit((unsigned char)text[i]) || (i == 0 && text[i] == '-' && len > 1);
        }
        errno = 0;
        char *e = NULL;
        long long v = ok ? strtoll(text, &e, 10) : 0;
        if (!ok || errno != 0 || *e != '\0') {
            int64_t lo, hi;
            int_range(t, &lo, &hi);
            why(reason, cap, "must be a whole number from %lld to %lld (%s)", (long long)lo,
                (long long)hi, dg_named_type_name(t, false));
            return false;
        }
        *out = int_value(t, v, reason, cap);
        return *out != NULL;
    }
    case DG_NAMED_DOUBLE: {
        bool ok = len > 0 && len < 64;
        for (size_t i = 0; ok && i < len; i++) {
            ok = isdigit((unsigned char)text[i]) || strchr("+-.eE", text[i]) != NULL;
        }
        errno = 0;
        char *e = NULL;
        double v = ok ? strtod(text, &e) : 0;
        if (!ok || errno != 0 || *e != '\0' || !isfinite(v)) {
            why(reason, cap, "must be a finite decimal number");
            return false;
        }
        *out = json_real(v);
        return *out != NULL;
    }
    case DG_NAMED_VARCHAR:
        if (!dg_utf8_valid(text, len)) {
            why(reason, cap, "must be valid UTF-8 text");
            return false;
        }
        *out = json_stringn(text, len);
        return *out != NULL;
    case DG_NAMED_DATE: {
        int64_t days;
        if (len != 10 || !parse_date10(text, &days)) {
            why(reason, cap, "must be a date YYYY-MM-DD");
            return false;
        }
        *out = json_integer((json_int_t)days);
        return *out != NULL;
    }
    case DG_NAMED_TIMESTAMP: {
        int64_t us;
        if (!parse_timestamp(text, &us)) {
            why(reason, cap, "must be a timestamp YYYY-MM-DDTHH:MM:SS[.ffffff]");
            return false;
        }
        *out = json_integer((json_int_t)us);
        return *out != NULL;
    }
    }
    why(reason, cap, "unsupported type");
    return false;
}

static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    return n;
}

bool dg_named_scalar_check(const dg_named_param_t *p, const json_t *v, char *reason, size_t cap)
{
    if (json_is_null(v)) {
        return true;
    }
    bool is_double = p->type == DG_NAMED_DOUBLE;
    if (p->min) {
        bool low = is_double ? json_number_value(v) < json_number_value(p->min)
                             : json_integer_value(v) < json_integer_value(p->min);
        if (low) {
            why(reason, cap, "must be >= %s", p->min_text);
            return false;
        }
    }
    if (p->max) {
        bool high = is_double ? json_number_value(v) > json_number_value(p->max)
                              : json_integer_value(v) > json_integer_value(p->max);
        if (high) {
            why(reason, cap, "must be <= %s", p->max_text);
            return false;
        }
    }
    if (p->max_length >= 0 && json_is_string(v) &&
        utf8_chars(json_string_value(v), json_string_length(v)) > (size_t)p->max_length) {
        why(reason, cap, "must be at most %lld characters long", (long long)p->max_length);
        return false;
    }
    if (p->one_of) {
        bool found = false;
        for (size_t i = 0; !found && i < json_array_size(p->one_of); i++) {
            json_t *c = json_array_get(p->one_of, i);
            found = is_double ? json_number_value(c) == json_number_value(v) : json_equal(c, v);
        }
        if (!found) {
            size_t off = (size_t)snprintf(reason, cap, "must be one of ");
            for (size_t i = 0; off < cap && i < json_array_size(p->one_of); i++) {
                char t[64];
                dg_named_scalar_text(p->type, json_array_get(p->one_of, i), t, sizeof t);
                off += (size_t)snprintf(reason + off, cap - off, "%s%s", i ? "|" : "", t);
            }
            return false;
        }
    }
    if (p->regex_text && json_is_string(v) &&
        regexec(&p->regex, json_string_value(v), 0, NULL, 0) != 0) {
        why(reason, cap, "must match %.100s", p->regex_text);
        return false;
    }
    return true;
}

/* A JSON value (POST) -> typed scalar of p's type, or NULL with reason. */
static json_t *scalar_from_json(const dg_named_param_t *p, const json_t *v, char *reason,
                                size_t cap)
{
    dg_named_type_t t = p->type;
    switch (t) {
    case DG_NAMED_BOOLEAN:
        if (!json_is_boolean(v)) {
            why(reason, cap, "must be true or false");
            return NULL;
        }
        return json_incref((json_t *)(uintptr_t)v);
    case DG_NAMED_DOUBLE:
        if (!json_is_number(v)) {
            why(reason, cap, "must be a number");
            return NULL;
        }
        return json_real(json_number_value(v));
    case DG_NAMED_VARCHAR:
        if (!json_is_string(v)) {
            why(reason, cap, "must be a string");
            return NULL;
        }
        if (strlen(json_string_value(v)) != json_string_length(v)) {
            why(reason, cap, "must not contain NUL characters");
            return NULL;
        }
        return json_stringn(json_string_value(v), json_string_length(v));
    case DG_NAMED_DATE:
    case DG_NAMED_TIMESTAMP: {
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
            why(reason, cap, "must be a %s string", t == DG_NAMED_DATE ? "date" : "timestamp");
            return NULL;
        }
        json_t *out = NULL;
        dg_named_scalar_from_text(t, json_string_value(v), &out, reason, cap);
        return out;
    }
    default:
        if (!json_is_integer(v)) {
            int64_t lo, hi;
            int_range(t, &lo, &hi);
            why(reason, cap, "must be a whole number from %lld to %lld (%s)", (long long)lo,
                (long long)hi, dg_named_type_name(t, false));
            return NULL;
        }
        return int_value(t, (long long)json_integer_value(v), reason, cap);
    }
}

/* ---- whole requests ------------------------------------------------------------------------ */

static void add_bad(dg_named_errors_t *errs, const char *name, const char *reason)
{
    if (errs->n >= DG_NAMED_MAX_BAD) {
        errs->n_more++;
        return;
    }
    dg_named_bad_t *b = &errs->items[errs->n++];
    snprintf(b->name, sizeof b->name, "%s", name);
    snprintf(b->reason, sizeof b->reason, "%s", reason);
}

static const dg_named_param_t *find_param(const dg_named_query_t *q, const char *name)
{
    for (size_t i = 0; i < q->n_params; i++) {
        if (strcmp(q->params[i].name, name) == 0) {
            return &q->params[i];
        }
    }
    return NULL;
}

/* Adds one converted scalar (or the item of a list) after checking its constraints; on a
 * failure records it for p (with "item N: " for list items) and returns false. */
static bool accept_scalar(const dg_named_param_t *p, json_t *v, const char *reason_in, size_t item,
                          json_t *into, dg_named_errors_t *errs)
{
    char reason[160], full[192];
    if (!v) {
        snprintf(reason, sizeof reason, "%s", reason_in);
    } else if (!dg_named_scalar_check(p, v, reason, sizeof reason)) {
        json_decref(v);
        v = NULL;
    }
    if (!v) {
        if (p->is_list) {
            snprintf(full, sizeof full, "item %zu: %s", item + 1, reason);
            add_bad(errs, p->name, full);
        } else {
            add_bad(errs, p->name, reason);
        }
        return false;
    }
    if (p->is_list) {
        json_array_append_new(into, v);
    } else {
        json_object_set_new(into, p->name, v);
    }
    return true;
}

static bool list_count_ok(const dg_named_param_t *p, size_t n, dg_named_errors_t *errs)
{
    if (p->max_items >= 0 && n > (size_t)p->max_items) {
        char reason[96];
        snprintf(reason, sizeof reason, "must have at most %lld items", (long long)p->max_items);
        add_bad(errs, p->name, reason);
        return false;
    }
    return true;
}

static dg_rc_t finish(json_t *obj, dg_named_errors_t *errs, json_t **out)
{
    if (errs->n > 0 || errs->n_more > 0) {
        json_decref(obj);
        return DG_INVALID_PARAMS;
    }
    *out = obj;
    return DG_OK;
}

/* The start of both value builders (the counterpart of finish): clears *out and errs and returns
 * the empty values object, or NULL on OOM. */
static json_t *begin(json_t **out, dg_named_errors_t *errs)
{
    *out = NULL;
    memset(errs, 0, sizeof *errs);
    return json_object();
}

static void missing(const dg_named_param_t *p, json_t *obj, dg_named_errors_t *errs)
{
    if (p->is_required) {
        add_bad(errs, p->name, "is required");
    } else {
        json_object_set(obj, p->name, p->default_value);
    }
}

dg_rc_t dg_named_values_from_args(const dg_named_query_t *q, const dg_named_kv_t *args, size_t n,
                                  const char *const *ignore, json_t **out, dg_named_errors_t *errs)
{
    json_t *obj = begin(out, errs);
    if (!obj) {
        return DG_NOMEM;
    }
    for (size_t i = 0; i < q->n_params; i++) {
        const dg_named_param_t *p = &q->params[i];
        size_t count = 0;
        for (size_t k = 0; k < n; k++) {
            count += strcmp(args[k].key, p->name) == 0;
        }
        if (count == 0) {
            missing(p, obj, errs);
            continue;
        }
        if (!p->is_list && count > 1) {
            add_bad(errs, p->name, "given more than once");
            continue;
        }
        if (p->is_list && !list_count_ok(p, count, errs)) {
            continue;
        }
        json_t *list = p->is_list ? json_array() : obj;
        if (!list) {
            json_decref(obj);
            return DG_NOMEM;
        }
        bool ok = true;
        size_t item = 0;
        for (size_t k = 0; ok && k < n; k++) {
            if (strcmp(args[k].key, p->name) != 0) {
                continue;
            }
            char reason[192] = "";
            json_t *v = NULL;
            dg_named_scalar_from_text(p->type, args[k].value, &v, reason, sizeof reason);
            ok = accept_scalar(p, v, reason, item++, list, errs);
        }
        if (p->is_list) {
            if (ok) {
                json_object_set_new(obj, p->name, list);
            } else {
                json_decref(list);
            }
        }
    }
    for (size_t k = 0; k < n; k++) {
        bool skip = find_param(q, args[k].key) != NULL;
        for (size_t j = 0; !skip && ignore && ignore[j]; j++) {
            skip = strcmp(args[k].key, ignore[j]) == 0;
        }
        bool dup = false;
        for (size_t j = 0; !skip && j < k; j++) {
            dup = strcmp(args[j].key, args[k].key) == 0;
            if (dup) {
                break;
            }
        }
        if (!skip && !dup) {
            add_bad(errs, args[k].key, "unknown parameter");
        }
    }
    return finish(obj, errs, out);
}

dg_rc_t dg_named_values_from_json(const dg_named_query_t *q, const json_t *params, json_t **out,
                                  dg_named_errors_t *errs)
{
    json_t *obj = begin(out, errs);
    if (!obj) {
        return DG_NOMEM;
    }
    for (size_t i = 0; i < q->n_params; i++) {
        const dg_named_param_t *p = &q->params[i];
        json_t *v = params ? json_object_get(params, p->name) : NULL;
        if (!v) {
            missing(p, obj, errs);
            continue;
        }
        if (json_is_null(v)) {
            if (p->default_value && json_is_null(p->default_value)) {
                json_object_set_new(obj, p->name, json_null());
            } else {
                add_bad(errs, p->name,
                        p->is_required ? "is required (null given)" : "must not be null");
            }
            continue;
        }
        char reason[192] = "";
        if (!p->is_list) {
            json_t *tv = scalar_from_json(p, v, reason, sizeof reason);
            accept_scalar(p, tv, reason, 0, obj, errs);
            continue;
        }
        if (!json_is_array(v)) {
            add_bad(errs, p->name, "must be an array");
            continue;
        }
        if (!list_count_ok(p, json_array_size(v), errs)) {
            continue;
        }
        json_t *list = json_array();
        if (!list) {
            json_decref(obj);
            return DG_NOMEM;
        }
        bool ok = true;
        for (size_t k = 0; ok && k < json_array_size(v); k++) {
            json_t *tv = scalar_from_json(p, json_array_get(v, k), reason, sizeof reason);
            ok = accept_scalar(p, tv, reason, k, list, errs);
        }
        if (ok) {
            json_object_set_new(obj, p->name, list);
        } else {
            json_decref(list);
        }
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)(uintptr_t)params, key, val)
    {
        if (!find_param(q, key)) {
            char name[65];
            snprintf(name, sizeof name, "%s", key);
            add_bad(errs, name, "unknown parameter");
        }
    }
    return finish(obj, errs, out);
}

json_t *dg_named_types_json(const dg_named_query_t *q)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < q->n_params; i++) {
        const dg_named_param_t *p = &q->params[i];
        if (json_object_set_new(o, p->name, json_string(dg_named_type_name(p->type, p->is_list))) !=
            0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}
