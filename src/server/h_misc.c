/* Handlers answered by the front alone: liveness, readiness and the list of databases.
 * Threads: any connection thread; they only read the server context. */
#include <stdio.h>

#include "core/buf.h"
#include "core/log.h"
#include "server/server_int.h"

void dg_server__h_health(dg_http_req_t *r, void *ctx)
{
    (void)ctx;
    static const char body[] = "{\"status\":\"ok\"}";
    dg_http_respond(r, 200, "application/json", body, sizeof body - 1, NULL, 0);
}

void dg_server__h_ready(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    if (atomic_load(&s->is_draining)) {
        dg_http_respond_error(r, DG_DRAINING, NULL, NULL, 0);
        return;
    }
    if (!dg_engines_ready(s->engines)) {
        dg_http_respond_error(r, DG_NOT_READY, "the query engines are not ready", NULL, 0);
        return;
    }
    static const char body[] = "{\"status\":\"ready\"}";
    dg_http_respond(r, 200, "application/json", body, sizeof body - 1, NULL, 0);
}

/* GET /metrics: the Prometheus text exposition. Collect callbacks read the pool and /proc. */
void dg_server__h_metrics(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    dg_buf_t b;
    dg_buf_init(&b, 16u << 20);
    dg_rc_t rc = dg_metrics_expose(s->metrics->reg, &b);
    if (rc != DG_OK) {
        dg_log(DG_LOG_WARN, "metrics", r->id, "exposition failed: %s", dg_rc_name(rc));
        dg_http_respond_error(r, rc, NULL, NULL, 0);
    } else {
        dg_http_respond(r, 200, DG_METRICS_CONTENT_TYPE, b.p ? b.p : "", b.len, NULL, 0);
    }
    dg_buf_free(&b);
}

void dg_server__note_interrupt(dg_server_t *s, dg_rc_t rc)
{
    const char *reason = rc == DG_TIMEOUT       ? "deadline"
                         : rc == DG_CLIENT_GONE ? "disconnect"
                         : rc == DG_CANCELLED   ? "cancel"
                                                : NULL;
    if (reason && s->metrics) {
        dg_metrics_gw_interrupt(s->metrics, reason);
    }
}

void dg_server__h_databases(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    dg_buf_t b;
    dg_buf_init(&b, 0);
    dg_rc_t rc = dg_buf_puts(&b, "{\"databases\":[");
    for (size_t i = 0; rc == DG_OK && i < s->n_dbs; i++) {
        /* Names are [A-Za-z0-9_-] (dg_dbname_valid), so they need no escaping. */
        rc = dg_buf_printf(&b, "%s{\"name\":\"%s\",\"size_bytes\":%llu,\"read_only\":true}",
                           i ? "," : "", s->dbs[i].name, (unsigned long long)s->dbs[i].size_bytes);
    }
    if (rc == DG_OK) {
        rc = dg_buf_puts(&b, "]}");
    }
    if (rc != DG_OK) {
        dg_http_respond_error(r, rc, NULL, NULL, 0);
    } else {
        dg_http_respond(r, 200, "application/json", b.p, b.len, NULL, 0);
    }
    dg_buf_free(&b);
}
