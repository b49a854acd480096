/* Fuzzes the named-query parsers: a query file (header directives, typed parameters and their
 * constraints, the SQL scan), then caller values against whatever parsed, both as GET
 * arguments and as a POST JSON object. Input: FILE, then optionally "\n===\n" and the values
 * (lines `key=value`; the same bytes are also tried as a JSON object).
 * Invariants: a parsed query describes itself (listing entry, every parameter's schema); a
 * successful validation gives a value for every declared parameter; a refusal lists at least
 * one parameter. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "named/named.h"

#define MAX_ARGS 64

static void check_values(const dg_named_query_t *q, dg_rc_t rc, json_t *out,
                         const dg_named_errors_t *errs)
{
    if (rc == DG_OK) {
        for (size_t i = 0; i < q->n_params; i++) {
            if (!json_object_get(out, q->params[i].name)) {
                abort();
            }
        }
        json_decref(out);
    } else if (rc == DG_INVALID_PARAMS) {
        if (out || errs->n == 0) {
            abort();
        }
    } else if (rc != DG_NOMEM) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t file_len = size;
    const char *vals = NULL;
    size_t vals_len = 0;
    for (size_t i = 0; i + 5 <= size; i++) {
        if (memcmp(text + i, "\n===\n", 5) == 0) {
            file_len = i;
            vals = text + i + 5;
            vals_len = size - i - 5;
            break;
        }
    }
    dg_named_query_t *q = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = dg_named_parse("db", "q", text, file_len, &q, &err);
    if ((rc == DG_OK) != (q != NULL) || (rc != DG_OK && rc != DG_CONFIG && rc != DG_NOMEM)) {
        abort();
    }
    if (!q) {
        return 0;
    }
    json_t *j = dg_named_query_json(q);
    if (!j) {
        abort();
    }
    json_decref(j);
    for (size_t i = 0; i < q->n_params; i++) {
        json_t *s = dg_named_param_schema(&q->params[i]);
        if (!s) {
            abort();
        }
        json_decref(s);
    }
    /* GET arguments: NUL-terminated copies of each line, split at the first '='. */
    char *copy = malloc(vals_len + 1);
    if (copy) {
        memcpy(copy, vals ? vals : "", vals_len);
        copy[vals_len] = '\0';
        dg_named_kv_t kv[MAX_ARGS];
        size_t n = 0;
        char *save = NULL;
        for (char *line = strtok_r(copy, "\n", &save); line && n < MAX_ARGS;
             line = strtok_r(NULL, "\n", &save)) {
            char *eq = strchr(line, '=');
            if (eq) {
                *eq = '\0';
            }
            kv[n++] = (dg_named_kv_t){line, eq ? eq + 1 : ""};
        }
        dg_named_errors_t errs;
        json_t *out = NULL;
        rc = dg_named_values_from_args(q, kv, n, NULL, &out, &errs);
        check_values(q, rc, out, &errs);
        free(copy);
    }
    json_t *obj = vals ? json_loadb(vals, vals_len, 0, NULL) : NULL;
    if (json_is_object(obj)) {
        dg_named_errors_t errs;
        json_t *out = NULL;
        rc = dg_named_values_from_json(q, obj, &out, &errs);
        check_values(q, rc, out, &errs);
    }
    json_decref(obj);
    dg_named_query_free(q);
    return 0;
}
