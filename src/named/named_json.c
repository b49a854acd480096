/* JSON descriptions of named queries: the entry of `GET /api/q/{db}` and the JSON Schema of a
 * parameter for `GET /api/openapi.json`. Pure and thread-safe. */
#include <stdio.h>
#include <string.h>

#include "named/named.h"

static void set_text(json_t *o, const char *key, const char *v)
{
    if (v) {
        json_object_set_new(o, key, json_string(v));
    }
}

/* A typed scalar in the form a client would send it (dates as text, timestamps in UTC). */
static json_t *client_value(dg_named_type_t t, const json_t *v)
{
    if (!v || json_is_null(v)) {
        return json_null();
    }
    if (t == DG_NAMED_DATE || t == DG_NAMED_TIMESTAMP) {
        char buf[64];
        dg_named_scalar_text(t, v, buf, sizeof buf);
        if (t == DG_NAMED_TIMESTAMP) {
            /* RFC 3339 (JSON Schema date-time) needs a zone; the value is read as UTC. */
            size_t n = strlen(buf);
            snprintf(buf + n, sizeof buf - n, "Z");
        }
        return json_string(buf);
    }
    return json_deep_copy(v);
}

static json_t *param_json(const dg_named_param_t *p)
{
    json_t *o = json_object();
    if (!o) {
        return NULL;
    }
    json_object_set_new(o, "name", json_string(p->name));
    json_object_set_new(o, "type", json_string(dg_named_type_name(p->type, p->is_list)));
    json_object_set_new(o, "required", json_boolean(p->is_required));
    if (!p->is_required) {
        json_object_set_new(o, "default", client_value(p->type, p->default_value));
    }
    set_text(o, "min", p->min_text);
    set_text(o, "max", p->max_text);
    if (p->max_length >= 0) {
        json_object_set_new(o, "max_length", json_integer(p->max_length));
    }
    if (p->max_items >= 0) {
        json_object_set_new(o, "max_items", json_integer(p->max_items));
    }
    if (p->one_of) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < json_array_size(p->one_of); i++) {
            json_array_append_new(a, client_value(p->type, json_array_get(p->one_of, i)));
        }
        json_object_set_new(o, "one_of", a);
    }
    set_text(o, "regex", p->regex_text);
    set_text(o, "description", p->doc);
    return o;
}

json_t *dg_named_query_json(const dg_named_query_t *q)
{
    json_t *o = json_object();
    json_t *ps = json_array();
    if (!o || !ps) {
        json_decref(o);
        json_decref(ps);
        return NULL;
    }
    json_object_set_new(o, "name", json_string(q->name));
    set_text(o, "description", q->description);
    json_object_set_new(o, "roles", json_string(dg_named_role_name(q->role)));
    if (q->cache_ttl_s >= 0) {
        json_object_set_new(o, "cache_ttl", json_integer(q->cache_ttl_s));
    }
    json_object_set_new(o, "cache", json_string(q->cache_public ? "public" : "private"));
    if (q->max_rows > 0) {
        json_object_set_new(o, "max_rows", json_integer((json_int_t)q->max_rows));
    }
    if (q->timeout_ms > 0) {
        json_object_set_new(o, "timeout_ms", json_integer(q->timeout_ms));
    }
    for (size_t i = 0; i < q->n_params; i++) {
        json_array_append_new(ps, param_json(&q->params[i]));
    }
    json_object_set_new(o, "params", ps);
    return o;
}

/* The schema of one value of p's scalar type, with its scalar constraints. */
static json_t *scalar_schema(const dg_named_param_t *p)
{
    json_t *s = json_object();
    if (!s) {
        return NULL;
    }
    static const struct {
        const char *type, *format;
        long long lo, hi;
    } k[] = {
        [DG_NAMED_BOOLEAN] = {"boolean", NULL, 0, 0},
        [DG_NAMED_TINYINT] = {"integer", "int8", INT8_MIN, INT8_MAX},
        [DG_NAMED_SMALLINT] = {"integer", "int16", INT16_MIN, INT16_MAX},
        [DG_NAMED_INTEGER] = {"integer", "int32", INT32_MIN, INT32_MAX},
        [DG_NAMED_BIGINT] = {"integer", "int64", INT64_MIN, INT64_MAX},
        [DG_NAMED_DOUBLE] = {"number", "double", 0, 0},
        [DG_NAMED_VARCHAR] = {"string", NULL, 0, 0},
        [DG_NAMED_DATE] = {"string", "date", 0, 0},
        [DG_NAMED_TIMESTAMP] = {"string", "date-time", 0, 0},
    };
    json_object_set_new(s, "type", json_string(k[p->type].type));
    set_text(s, "format", k[p->type].format);
    bool is_num = p->type >= DG_NAMED_TINYINT && p->type <= DG_NAMED_DOUBLE;
    if (is_num) {
        bool is_int = p->type != DG_NAMED_DOUBLE;
        json_t *lo = p->min ? json_deep_copy(p->min)
                            : (is_int ? json_integer((json_int_t)k[p->type].lo) : NULL);
        json_t *hi = p->max ? json_deep_copy(p->max)
                            : (is_int ? json_integer((json_int_t)k[p->type].hi) : NULL);
        if (lo) {
            json_object_set_new(s, "minimum", lo);
        }
        if (hi) {
            json_object_set_new(s, "maximum", hi);
        }
    } else {
        /* JSON Schema has no bounds for dates: keep them as extensions. */
        set_text(s, "x-minimum", p->min_text);
        set_text(s, "x-maximum", p->max_text);
    }
    if (p->max_length >= 0) {
        json_object_set_new(s, "maxLength", json_integer(p->max_length));
    }
    set_text(s, "pattern", p->regex_text);
    if (p->one_of) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < json_array_size(p->one_of); i++) {
            json_array_append_new(a, client_value(p->type, json_array_get(p->one_of, i)));
        }
        json_object_set_new(s, "enum", a);
    }
    return s;
}

json_t *dg_named_param_schema(const dg_named_param_t *p)
{
    json_t *s = scalar_schema(p);
    if (!s) {
        return NULL;
    }
    if (p->is_list) {
        json_t *a = json_object();
        if (!a) {
            json_decref(s);
            return NULL;
        }
        json_object_set_new(a, "type", json_string("array"));
        json_object_set_new(a, "items", s);
        if (p->max_items >= 0) {
            json_object_set_new(a, "maxItems", json_integer(p->max_items));
        }
        s = a;
    }
    bool is_nullable = p->default_value && json_is_null(p->default_value);
    if (is_nullable) {
        /* OpenAPI 3.1 (JSON Schema 2020-12): a type list instead of `nullable`. */
        json_t *types = json_array();
        json_array_append(types, json_object_get(s, "type"));
        json_array_append_new(types, json_string("null"));
        json_object_set_new(s, "type", types);
        json_t *e = json_object_get(s, "enum");
        if (e) {
            json_array_append_new(e, json_null()); /* an enum must list every allowed value */
        }
    }
    if (!p->is_required) {
        json_object_set_new(s, "default",
                            p->is_list ? json_null() : client_value(p->type, p->default_value));
    }
    if (p->doc) {
        json_object_set_new(s, "description", json_string(p->doc));
    }
    return s;
}
