/* GET /api/openapi.json: an OpenAPI 3.1 document of every route the server has (read from its
 * route table, so a new route is described as soon as it exists) and of every served named
 * query with its parameters, their JSON Schema types and constraints.
 *
 * Built on request from the current registry: cheap next to a query, always in step with the
 * files. Threads: connection threads. */
#include <stdio.h>
#include <string.h>

#include "named/named.h"
#include "server/server_int.h"

/* Summaries of the known routes; a route missing here still appears with a generic one. */
static const struct {
    const char *pattern;
    dg_http_method_t method;
    const char *summary;
} summaries[] = {
    {"/health", DG_HTTP_GET, "Liveness"},
    {"/ready", DG_HTTP_GET, "Readiness: engines up and not draining"},
    {"/metrics", DG_HTTP_GET, "Prometheus metrics (text format)"},
    {"/api/databases", DG_HTTP_GET, "List the served databases"},
    {"/api/databases/{db}", DG_HTTP_GET, "Catalog of a database: tables, columns, row counts"},
    {"/api/query/{db}", DG_HTTP_GET, "Read-only SQL (?sql=, ?params= JSON)"},
    {"/api/query/{db}", DG_HTTP_POST, "Read-only SQL ({\"sql\", \"params\"})"},
    {"/api/q/{db}", DG_HTTP_GET, "List the named queries of a database with their parameters"},
    {"/api/q/{db}/{name}", DG_HTTP_GET, "Run a named query (parameters in the query string)"},
    {"/api/q/{db}/{name}", DG_HTTP_POST, "Run a named query ({\"params\": {...}})"},
    {"/api/openapi.json", DG_HTTP_GET, "This document"},
    {"/api/admin/query/{db}", DG_HTTP_POST, "Admin SQL (any statement)"},
    {"/api/admin/jobs", DG_HTTP_GET, "List admin jobs"},
    {"/api/admin/jobs", DG_HTTP_POST, "Submit an admin job"},
    {"/api/admin/jobs/{id}", DG_HTTP_GET, "State and progress of an admin job"},
    {"/api/admin/jobs/{id}", DG_HTTP_DELETE, "Cancel an admin job"},
    {"/api/admin/reload/{db}", DG_HTTP_POST, "Swap in a rebuilt database file"},
    {"/api/admin/stage/{db}", DG_HTTP_POST, "Make a staging copy for jobs with target next"},
    {"/api/admin/stage/{db}", DG_HTTP_DELETE, "Discard the staging copy"},
    {"/api/admin/queries", DG_HTTP_GET, "Recent query log entries"},
    {"/api/admin/query/" DG_SERVER_QLOG_DB, DG_HTTP_POST, "SQL on the query log (admin)"},
    {"/api/admin/import/{db}", DG_HTTP_POST, "Import files into a read-write database (admin)"},
    {"/api/admin/cache", DG_HTTP_GET, "Result cache statistics (admin)"},
    {"/api/admin/cache", DG_HTTP_DELETE, "Empty the result cache (admin)"},
    {"/api/admin/cache/{db}", DG_HTTP_GET, "Result cache statistics of a database (admin)"},
    {"/api/admin/cache/{db}", DG_HTTP_DELETE, "Drop a database's cached results (admin)"},
};

static const char *summary_of(const char *pattern, dg_http_method_t m)
{
    for (size_t i = 0; i < sizeof summaries / sizeof summaries[0]; i++) {
        if (summaries[i].method == m && strcmp(summaries[i].pattern, pattern) == 0) {
            return summaries[i].summary;
        }
    }
    return NULL;
}

static json_t *error_response(const char *description)
{
    return json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", description, "content",
                     "application/json", "schema", "$ref", "#/components/schemas/Error");
}

/* The result content types every query route can produce (format= or Accept). */
static json_t *result_content(void)
{
    json_t *c = json_object();
    static const char *const types[] = {"application/json",
                                        "application/x-ndjson",
                                        "text/csv",
                                        "text/tab-separated-values",
                                        "application/vnd.apache.parquet",
                                        "application/vnd.apache.arrow.stream"};
    for (size_t i = 0; c && i < sizeof types / sizeof types[0]; i++) {
        json_object_set_new(c, types[i], json_object());
    }
    return c;
}

static json_t *format_param(void)
{
    return json_pack("{s:s, s:s, s:b, s:s, s:{s:s, s:[s,s,s,s,s,s]}}", "name", "format", "in",
                     "query", "required", 0, "description",
                     "output format (else the Accept header; default json)", "schema", "type",
                     "string", "enum", "json", "ndjson", "csv", "tsv", "parquet", "arrow");
}

/* One operation of a route from the table: path parameters from its {captures}. */
static json_t *route_operation(const char *pattern, dg_http_method_t m)
{
    char buf[256];
    const char *sum = summary_of(pattern, m);
    if (!sum) {
        snprintf(buf, sizeof buf, "%s %s", dg_http_method_name(m), pattern);
        sum = buf;
    }
    json_t *params = json_array();
    for (const char *p = strchr(pattern, '{'); p && params; p = strchr(p + 1, '{')) {
        const char *e = strchr(p, '}');
        if (!e) {
            break;
        }
        json_array_append_new(params, json_pack("{s:s#, s:s, s:b, s:{s:s}}", "name", p + 1,
                                                (int)(e - p - 1), "in", "path", "required", 1,
                                                "schema", "type", "string"));
    }
    json_t *op = json_pack("{s:s, s:o, s:{s:{s:s}, s:o}}", "summary", sum, "parameters",
                           params ? params : json_array(), "responses", "200", "description",
                           "success", "default", error_response("error"));
    return op;
}

static const char *method_key(dg_http_method_t m)
{
    switch (m) {
    case DG_HTTP_GET:
        return "get";
    case DG_HTTP_POST:
        return "post";
    case DG_HTTP_PUT:
        return "put";
    case DG_HTTP_DELETE:
        return "delete";
    case DG_HTTP_PATCH:
        return "patch";
    default:
        return NULL;
    }
}

static void add_routes(const dg_server_t *s, json_t *paths)
{
    for (size_t i = 0; i < s->n_routes; i++) {
        const dg_http_route_t *rt = &s->routes[i];
        json_t *item = json_object_get(paths, rt->pattern);
        if (!item) {
            item = json_object();
            json_object_set_new(paths, rt->pattern, item);
        }
        for (int m = DG_HTTP_GET; m <= DG_HTTP_OPTIONS; m++) {
            const char *key = method_key((dg_http_method_t)m);
            if (key && (rt->methods & DG_HTTP_M(m)) && !json_object_get(item, key)) {
                json_object_set_new(item, key, route_operation(rt->pattern, (dg_http_method_t)m));
            }
        }
    }
}

/* ---- named queries ---------------------------------------------------------------------- */

static json_t *named_get(const dg_named_query_t *q)
{
    json_t *params = json_array();
    for (size_t i = 0; params && i < q->n_params; i++) {
        const dg_named_param_t *p = &q->params[i];
        json_t *o = json_pack("{s:s, s:s, s:b, s:o}", "name", p->name, "in", "query", "required",
                              p->is_required, "schema", dg_named_param_schema(p));
        if (o && p->is_list) {
            /* Lists repeat the key: ?ids=a&ids=b. */
            json_object_set_new(o, "style", json_string("form"));
            json_object_set_new(o, "explode", json_true());
        }
        json_array_append_new(params, o);
    }
    json_array_append_new(params, format_param());
    char sum[200];
    snprintf(sum, sizeof sum, "Named query %s/%s", q->db, q->name);
    json_t *op = json_pack("{s:s, s:s, s:o, s:{s:{s:s, s:o}, s:o, s:o}}", "summary", sum,
                           "operationId", "", "parameters", params, "responses", "200",
                           "description", "the result", "content", result_content(), "422",
                           error_response("invalid parameters (every bad one is listed)"),
                           "default", error_response("error"));
    char opid[160];
    snprintf(opid, sizeof opid, "named_%s_%s_get", q->db, q->name);
    json_object_set_new(op, "operationId", json_string(opid));
    if (q->description) {
        json_object_set_new(op, "description", json_string(q->description));
    }
    json_object_set_new(op, "x-roles", json_string(dg_named_role_name(q->role)));
    return op;
}

static json_t *named_post(const dg_named_query_t *q)
{
    json_t *props = json_object();
    json_t *required = json_array();
    for (size_t i = 0; props && required && i < q->n_params; i++) {
        const dg_named_param_t *p = &q->params[i];
        json_object_set_new(props, p->name, dg_named_param_schema(p));
        if (p->is_required) {
            json_array_append_new(required, json_string(p->name));
        }
    }
    json_t *schema =
        json_pack("{s:s, s:{s:{s:s, s:o, s:o, s:b}, s:{s:s}}, s:b}", "type", "object", "properties",
                  "params", "type", "object", "properties", props ? props : json_object(),
                  "required", required ? required : json_array(), "additionalProperties", 0,
                  "format", "type", "string", "additionalProperties", 0);
    char opid[160];
    snprintf(opid, sizeof opid, "named_%s_%s_post", q->db, q->name);
    json_t *op =
        json_pack("{s:s, s:s, s:{s:b, s:{s:{s:o}}}, s:{s:{s:s, s:o}, s:o, s:o}}", "summary",
                  q->description ? q->description : q->name, "operationId", opid, "requestBody",
                  "required", 0, "content", "application/json", "schema", schema, "responses",
                  "200", "description", "the result", "content", result_content(), "422",
                  error_response("invalid parameters (every bad one is listed)"), "default",
                  error_response("error"));
    if (op) {
        json_object_set_new(op, "x-roles", json_string(dg_named_role_name(q->role)));
    }
    return op;
}

static void add_named(void *ctx, const char *db, const char *name, const dg_named_query_t *q,
                      const char *error)
{
    (void)error;
    json_t *paths = ctx;
    if (!q) {
        return; /* broken and never good: not served, so not described */
    }
    char path[160];
    snprintf(path, sizeof path, "/api/q/%s/%s", db, name);
    json_t *item = json_pack("{s:o, s:o}", "get", named_get(q), "post", named_post(q));
    if (item) {
        json_object_set_new(paths, path, item);
    }
}

static json_t *components(void)
{
    static const char text[] =
        "{\"schemas\":{\"Error\":{\"type\":\"object\",\"required\":[\"error\"],"
        "\"properties\":{\"error\":{\"type\":\"object\",\"required\":[\"code\",\"message\"],"
        "\"properties\":{\"code\":{\"type\":\"string\"},\"message\":{\"type\":\"string\"},"
        "\"query_id\":{\"type\":\"string\"},\"params\":{\"type\":\"array\",\"items\":"
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
        "\"reason\":{\"type\":\"string\"}}}}}}}}},"
        "\"securitySchemes\":{\"bearer\":{\"type\":\"http\",\"scheme\":\"bearer\"},"
        "\"apiKey\":{\"type\":\"apiKey\",\"in\":\"header\",\"name\":\"X-API-Key\"}}}";
    return json_loads(text, 0, NULL);
}

void dg_server__h_openapi(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    dg_named_refresh(s->named, false);
    json_t *paths = json_object();
    json_t *doc = NULL;
    if (paths) {
        add_routes(s, paths);
        dg_named_foreach(s->named, NULL, add_named, paths);
        doc = json_pack("{s:s, s:{s:s, s:s, s:s}, s:o, s:o, s:[{s:[]}, {s:[]}, {}]}", "openapi",
                        "3.1.0", "info", "title", "duckgate", "version", DG_VERSION, "description",
                        "DuckDB databases over HTTP: read-only SQL, named queries, admin.", "paths",
                        paths, "components", components(), "security", "bearer", "apiKey");
    }
    dg_server__respond_json(r, 200, doc, JSON_COMPACT, NULL, 0);
}
