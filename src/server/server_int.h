/* Internals shared by the server's files: the one server context every handler receives.
 * The context is built before the HTTP daemon starts and is read-only afterwards, except
 * `is_draining` (atomic). */
#ifndef DG_SERVER_INT_H
#define DG_SERVER_INT_H

#include <stdatomic.h>

#include "config/config.h"
#include "engine/engine.h"
#include "http/http.h"
#include "metrics/metrics_gw.h"

typedef struct dg_server {
    const dg_config_t *cfg;
    dg_resources_t res;
    dg_engines_t *engines;
    dg_dbfile_t *dbs; /* servable databases, scanned once at start */
    size_t n_dbs;
    const char **db_names;    /* names of dbs, the metrics' db label values */
    dg_metrics_gw_t *metrics; /* never NULL once serving */
    atomic_bool is_draining;
} dg_server_t;

void dg_server__h_health(dg_http_req_t *r, void *ctx);
void dg_server__h_ready(dg_http_req_t *r, void *ctx);
void dg_server__h_databases(dg_http_req_t *r, void *ctx);
void dg_server__h_database(dg_http_req_t *r, void *ctx);
void dg_server__h_query(dg_http_req_t *r, void *ctx);
void dg_server__h_metrics(dg_http_req_t *r, void *ctx);
/* Counts an interrupted query: TIMEOUT (deadline), CLIENT_GONE (disconnect), CANCELLED. */
void dg_server__note_interrupt(dg_server_t *s, dg_rc_t rc);

#endif
