/* Server lifecycle: resources -> data directory scan -> engines -> HTTP front -> wait for a
 * signal -> drain -> stop.
 *
 * Signals: SIGTERM/SIGINT handlers only write the signal number to a self-pipe (async-signal
 * safe, and whichever thread the kernel picks runs it); the main thread reads the pipe and
 * does the work. Draining: /ready and new queries answer 503 DRAINING, the listening socket is
 * closed, in-flight requests get up to shutdown_timeout_ms (a second signal cuts the wait
 * short), then connections are closed (which returns their slots) and the engines stopped.
 * Threads: dg_server_run runs on the main thread; handlers on connection threads. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "core/dgtime.h"
#include "core/log.h"
#include "named/named.h"
#include "server/server.h"
#include "server/jobs.h"
#include "server/server_int.h"
#include "server/swap.h"

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char c = (unsigned char)sig;
    ssize_t w = write(sig_pipe[1], &c, 1);
    (void)w;
    errno = saved;
}

static const dg_http_route_t routes[] = {
    {"/health", DG_HTTP_M(DG_HTTP_GET), dg_server__h_health},
    {"/ready", DG_HTTP_M(DG_HTTP_GET), dg_server__h_ready},
    {"/api/databases", DG_HTTP_M(DG_HTTP_GET), dg_server__h_databases},
    {"/api/databases/{db}", DG_HTTP_M(DG_HTTP_GET), dg_server__h_database},
    {"/api/query/{db}", DG_HTTP_M(DG_HTTP_GET) | DG_HTTP_M(DG_HTTP_POST), dg_server__h_query},
    {"/api/admin/queries", DG_HTTP_M(DG_HTTP_GET), dg_server__h_admin_queries},
    {"/api/admin/reload/{db}", DG_HTTP_M(DG_HTTP_POST), dg_server__h_reload},
    {"/api/admin/stage/{db}", DG_HTTP_M(DG_HTTP_POST) | DG_HTTP_M(DG_HTTP_DELETE),
     dg_server__h_stage},
    /* Before /api/admin/query/{db}: the first matching route wins. */
    {"/api/admin/query/" DG_SERVER_QLOG_DB, DG_HTTP_M(DG_HTTP_POST), dg_server__h_admin_qlog_sql},
    {"/api/admin/query/{db}", DG_HTTP_M(DG_HTTP_POST), dg_server__h_admin_query},
    {"/api/admin/jobs", DG_HTTP_M(DG_HTTP_GET) | DG_HTTP_M(DG_HTTP_POST), dg_server__h_admin_jobs},
    {"/api/admin/jobs/{id}", DG_HTTP_M(DG_HTTP_GET) | DG_HTTP_M(DG_HTTP_DELETE),
     dg_server__h_admin_job},
    {"/api/admin/import/{db}", DG_HTTP_M(DG_HTTP_POST), dg_server__h_admin_import},
    {"/api/admin/cache", DG_HTTP_M(DG_HTTP_GET) | DG_HTTP_M(DG_HTTP_DELETE), dg_server__h_cache},
    {"/api/admin/cache/{db}", DG_HTTP_M(DG_HTTP_GET) | DG_HTTP_M(DG_HTTP_DELETE),
     dg_server__h_cache},
    {"/api/q/{db}", DG_HTTP_M(DG_HTTP_GET), dg_server__h_named_list},
    {"/api/q/{db}/{name}", DG_HTTP_M(DG_HTTP_GET) | DG_HTTP_M(DG_HTTP_POST), dg_server__h_named},
    {"/api/openapi.json", DG_HTTP_M(DG_HTTP_GET), dg_server__h_openapi},
    /* Last: left out of the main listener when metrics_listen names its own address. */
    {"/metrics", DG_HTTP_M(DG_HTTP_GET), dg_server__h_metrics},
};
static const dg_http_route_t metrics_routes[] = {
    {"/metrics", DG_HTTP_M(DG_HTTP_GET), dg_server__h_metrics},
};

/* Every finished request: gives back its running-query place (h_limit.c), then counts
 * duckgate_http_requests_total, and for the query routes (SQL, named, admin SQL) the query count
 * and duration (from arrival to the end of the response, whatever the outcome). */
static void on_request_done(const dg_http_req_t *r, int status, double duration_s, bool is_aborted,
                            void *ctx)
{
    (void)is_aborted;
    dg_server_t *s = ctx;
    dg_server__concurrency_done(s, r);
    if (strcmp(s->cfg->metrics_listen, "off") == 0) {
        return; /* no request metrics */
    }
    const dg_http_route_t *route = r->match.route;
    char st[4];
    const char *v[3] = {route ? route->pattern : "other", dg_http_method_name(r->method),
                        dg_metrics_gw_status(status, st)};
    dg_series_add(dg_metric_series(s->metrics->http_requests, v), 1);
    /* Admin SQL over the query log counts as admin with db="other" (it is no served db). */
    const char *kind = !route                                     ? NULL
                       : route->fn == dg_server__h_query          ? "sql"
                       : route->fn == dg_server__h_named          ? "named"
                       : route->fn == dg_server__h_admin_query    ? "admin"
                       : route->fn == dg_server__h_admin_qlog_sql ? "admin"
                                                                  : NULL;
    if (kind) {
        /* The capture is a view into the path ("main/name" for a named query): copy it. Jobs
         * are counted by jobs.c when they end (kind "job"), not when submitted. */
        char db[65] = "";
        if (r->match.n_caps > 0 && r->match.cap[0].len < sizeof db) {
            memcpy(db, r->match.cap[0].p, r->match.cap[0].len);
            db[r->match.cap[0].len] = '\0';
        }
        dg_metrics_gw_query(s->metrics, db, kind, status, duration_s);
    }
}

int dg_server__db_index(const dg_server_t *s, const char *db, size_t len)
{
    for (size_t i = 0; db && i < s->n_dbs; i++) {
        if (strlen(s->dbs[i].name) == len && memcmp(s->dbs[i].name, db, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

uint64_t dg_server__db_version(dg_server_t *s, int idx)
{
    if (idx < 0 || (size_t)idx >= s->n_dbs) {
        return 0;
    }
    /* Both parts only grow, so the sum changes whenever either does. */
    return atomic_load(&s->db_versions[idx].v) + dg_server__swap_file_gen(s->swap, idx);
}

void dg_server__db_changed(dg_server_t *s, int idx)
{
    if (idx >= 0 && (size_t)idx < s->n_dbs) {
        atomic_fetch_add(&s->db_versions[idx].v, 1);
    }
}

/* Asks engine idx for the memory of its instances (REQ kind "stats" on a free slot of that
 * engine, answered from DuckDB's memory table function) and sets the duckdb_memory gauges. An
 * engine whose slots are all busy is skipped: its gauges keep the previous scrape's values. */
#define STATS_TIMEOUT_MS 1000
static void poll_engine_memory(dg_server_t *s, int idx)
{
    dg_slot_t *slot = NULL;
    if (dg_engines_try_acquire(s->engines, idx, &slot) != DG_OK) {
        return;
    }
    static const char req[] = "{\"id\":\"metrics\",\"kind\":\"stats\"}";
    dg_buf_t payload;
    dg_buf_init_rc(&payload, DG_FRAME_MAX_PAYLOAD, DG_PROTOCOL);
    dg_frame_type_t type = DG_FRAME_ERROR;
    dg_rc_t rc = dg_slot_send(slot, req, sizeof req - 1, dg_now_ms() + STATS_TIMEOUT_MS);
    while (rc == DG_OK && (rc = dg_slot_read(slot, -1, &type, &payload)) == DG_OK &&
           type != DG_FRAME_END && type != DG_FRAME_ERROR) {
    }
    json_t *j = rc == DG_OK && type == DG_FRAME_END
                    ? json_loadb(payload.p ? payload.p : "", payload.len, 0, NULL)
                    : NULL;
    dg_engines_release(s->engines, slot);
    dg_buf_free(&payload);
    char eng[16];
    snprintf(eng, sizeof eng, "%d", idx);
    json_t *dbs = json_object_get(j, "dbs");
    for (size_t i = 0; i < json_array_size(dbs); i++) {
        json_t *d = json_array_get(dbs, i);
        const char *v[2] = {
            dg_metrics_gw_db(s->metrics, json_string_value(json_object_get(d, "db"))), eng};
        dg_series_set(dg_metric_series(s->metrics->duckdb_memory, v),
                      (double)json_integer_value(json_object_get(d, "memory_bytes")));
        dg_series_set(dg_metric_series(s->metrics->duckdb_memory_limit, v),
                      (double)json_integer_value(json_object_get(d, "limit_bytes")));
    }
    json_decref(j);
}

/* At scrape time: the pool's gauges and counters, DuckDB memory per instance, and the front's
 * process metrics. */
static void collect_metrics(dg_metrics_t *m, void *ctx)
{
    (void)m;
    dg_server_t *s = ctx;
    dg_metrics_gw_t *g = s->metrics;
    if (s->engines) {
        dg_engines_stats_t st;
        dg_engines_stats(s->engines, &st);
        dg_series_set(g->slots_busy, st.slots_busy);
        dg_series_set(g->slots_total, st.slots_total);
        dg_series_set(g->queue_depth, st.queue_depth);
        dg_series_set(g->engines_up, st.engines_up);
        dg_series_set(g->engine_restarts, (double)st.restarts);
        dg_series_set(g->engine_kills, (double)st.kills);
        for (int i = 0; i < s->cfg->engines && !atomic_load(&s->is_draining); i++) {
            poll_engine_memory(s, i);
        }
    }
    dg_server__qlog_collect(s);
    dg_server__cache_collect(s);
    dg_metrics_gw_collect_process(g);
}

/* Opens the access log destination: "-" is stderr. -1 when it cannot be opened. */
static int open_access_log(const char *path)
{
    if (strcmp(path, "-") == 0) {
        return 2;
    }
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

static dg_rc_t install_signals(void)
{
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        return DG_IO;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* reloads the named queries */
    /* Writes to a vanished peer must return EPIPE, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    return DG_OK;
}

/* Waits up to timeout_ms (< 0: forever) for a signal; returns it, or 0 on timeout. */
static int wait_signal(int64_t timeout_ms)
{
    struct pollfd p = {.fd = sig_pipe[0], .events = POLLIN};
    int64_t deadline = timeout_ms < 0 ? -1 : dg_now_ms() + timeout_ms;
    for (;;) {
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - dg_now_ms();
            if (left <= 0) {
                return 0;
            }
            wait = left > 1000 ? 1000 : (int)left;
        }
        int n = poll(&p, 1, wait);
        if (n > 0) {
            unsigned char c;
            if (read(sig_pipe[0], &c, 1) == 1) {
                return c;
            }
        } else if (n < 0 && errno != EINTR) {
            return 0;
        }
    }
}

static void log_resources(const dg_resources_t *r)
{
    DG_LOGI("server",
            "resources memory_budget=%llu memory_source=\"%s\" physical=%llu cgroup=%llu "
            "cpus=%d cpu_quota=%.2f threads=%d",
            (unsigned long long)r->budget_bytes, r->memory_source,
            (unsigned long long)r->physical_bytes, (unsigned long long)r->cgroup_bytes, r->cpus,
            r->cpu_quota, r->threads);
}

/* True when a socket address is a loopback one (127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104). */
static bool addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

/* True when the listen address only accepts local connections: every address its host resolves
 * to, the way the listener binds it (an empty host is the wildcard), is a loopback address.
 * The text is not trusted: "localhost" or a name is judged by what it resolves to, so a name
 * resolving to a public address is refused. */
static bool listen_is_loopback(const char *listen)
{
    char host[256];
    int port;
    if (!dg_parse_listen(listen, host, sizeof host, &port)) {
        return false;
    }
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (getaddrinfo(host[0] ? host : NULL, "0", &hints, &ai) != 0) {
        return false; /* the listener will fail to resolve it too */
    }
    bool is_loopback = ai != NULL;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        is_loopback = is_loopback && addr_is_loopback(a->ai_addr);
    }
    freeaddrinfo(ai);
    return is_loopback;
}

/* Builds the access gate from the auth settings. Exit status 2 on a refused or bad setup. */
static int setup_auth(dg_server_t *s, const dg_config_t *cfg)
{
    bool is_on = strcmp(cfg->auth, "on") == 0;
    if (!is_on && !cfg->allow_public && !listen_is_loopback(cfg->listen)) {
        DG_LOGE("server",
                "refusing to serve %s with auth = off: every caller would get public_role = %s. "
                "Turn auth on (auth = on, keys from `duckgate keys add`), listen on loopback, "
                "or pass --allow-public to expose it deliberately",
                cfg->listen, cfg->public_role);
        return 2;
    }
    dg_jwt_opts_t jo;
    dg_server__jwt_opts(cfg, &jo);
    dg_auth_opts_t ao = {.is_on = is_on, .keys_file = cfg->keys_file, .jwt = &jo};
    if (!dg_auth_role_parse(cfg->public_role, &ao.public_role)) {
        ao.public_role = DG_ROLE_NONE;
    }
    dg_error_t err;
    dg_error_clear(&err);
    if (dg_auth_new(&ao, &s->auth, &err) != DG_OK) {
        DG_LOGE("server", "auth: %s", err.msg);
        return 2;
    }
    DG_LOGI("server", "auth=%s public_role=%s keys_file=%s jwt=%s", cfg->auth, cfg->public_role,
            is_on ? cfg->keys_file : "-", is_on && dg_jwt_opts_has_key(&jo) ? "on" : "off");
    return 0;
}

int dg_server_run(const dg_config_t *cfg, char **envp)
{
    int level = dg_log_level_parse(cfg->log_level);
    if (level >= 0) {
        dg_log_set_level((dg_log_level_t)level);
    }
    dg_server_t s;
    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    atomic_init(&s.is_draining, false);
    dg_error_t err;
    dg_error_clear(&err);
    int status = 1;
    dg_http_t *http = NULL, *metrics_http = NULL;
    int access_fd = -1;

    dg_rc_t rc = dg_resources_detect(cfg, envp, &s.res, &err);
    if (rc != DG_OK) {
        DG_LOGE("server", "%s", err.msg);
        return 2;
    }
    log_resources(&s.res);
    if ((status = setup_auth(&s, cfg)) != 0) {
        return status;
    }
    status = 1;
    rc = dg_datadir_scan(cfg->data_dir, &s.dbs, &s.n_dbs, &err);
    if (rc != DG_OK) {
        DG_LOGE("server", "%s", err.msg);
        dg_auth_free(s.auth);
        return 1;
    }
    DG_LOGI("server", "data_dir=%s databases=%zu", cfg->data_dir, s.n_dbs);
    for (size_t i = 0; i < s.n_dbs; i++) {
        DG_LOGI("server", "database name=%s size_bytes=%llu", s.dbs[i].name,
                (unsigned long long)s.dbs[i].size_bytes);
    }
    s.db_names = calloc(s.n_dbs + 1, sizeof *s.db_names);
    for (size_t i = 0; s.db_names && i < s.n_dbs; i++) {
        s.db_names[i] = s.dbs[i].name;
    }
    s.db_versions = calloc(s.n_dbs + 1, sizeof *s.db_versions);
    for (size_t i = 0; s.db_versions && i < s.n_dbs; i++) {
        atomic_init(&s.db_versions[i].v, 1);
    }
    if (dg_server__swap_new(s.dbs, s.n_dbs, &s.swap) != DG_OK) {
        DG_LOGE("server", "out of memory");
        goto out;
    }
    if (!s.db_names || dg_named_new(cfg->queries_dir, (const char *const *)s.db_names, s.n_dbs,
                                    &s.named) != DG_OK) {
        DG_LOGE("server", "out of memory");
        goto out;
    }
    s.metrics =
        s.db_names && s.db_versions ? dg_metrics_gw_new(s.db_names, s.n_dbs, DG_VERSION) : NULL;
    if (!s.metrics || dg_metrics_on_collect(s.metrics->reg, collect_metrics, &s) != DG_OK) {
        DG_LOGE("server", "out of memory");
        goto out;
    }
    if (dg_server__limit_setup(&s) != DG_OK) {
        status = 2;
        goto out;
    }
    if (dg_server__cache_setup(&s) != DG_OK) {
        goto out;
    }
    dg_http_log_fmt_t log_fmt = strcmp(cfg->access_log, "json") == 0       ? DG_HTTP_LOG_JSON
                                : strcmp(cfg->access_log, "text") == 0     ? DG_HTTP_LOG_TEXT
                                : strcmp(cfg->access_log, "combined") == 0 ? DG_HTTP_LOG_COMBINED
                                                                           : DG_HTTP_LOG_OFF;
    if (log_fmt != DG_HTTP_LOG_OFF && (access_fd = open_access_log(cfg->access_log_file)) < 0) {
        DG_LOGE("server", "cannot open access_log_file %s: %s", cfg->access_log_file,
                strerror(errno));
        goto out;
    }
    /* The engines spill and keep state here; a failure is theirs to report precisely. */
    if (mkdir(cfg->state_dir, 0700) != 0 && errno != EEXIST) {
        DG_LOGW("server", "cannot create state_dir %s: %s", cfg->state_dir, strerror(errno));
    }
    if (install_signals() != DG_OK) {
        DG_LOGE("server", "cannot install signal handlers: %s", strerror(errno));
        goto out;
    }
    dg_engines_opts_t eo = {.cfg = cfg, .res = &s.res, .self_exe = "/proc/self/exe"};
    rc = dg_engines_start(&eo, &s.engines, &err);
    if (rc != DG_OK) {
        DG_LOGE("server", "engines failed to start: %s", err.msg[0] ? err.msg : dg_rc_name(rc));
        goto out;
    }
    if (dg_server__qlog_setup(&s) != DG_OK) {
        DG_LOGE("server", "cannot start the query log");
        goto out;
    }
    if (dg_jobs_new(&s, &s.jobs) != DG_OK) {
        DG_LOGE("server", "cannot start the admin job workers");
        goto out;
    }
    bool is_metrics_off = strcmp(cfg->metrics_listen, "off") == 0;
    bool is_metrics_apart = !is_metrics_off && strcmp(cfg->metrics_listen, "main") != 0;
    dg_http_opts_t ho = {.listen = cfg->listen,
                         .max_body_bytes = cfg->max_body_bytes,
                         .idle_timeout_s = (unsigned)cfg->client_timeout_s,
                         .routes = routes,
                         .n_routes = sizeof routes / sizeof routes[0] -
                                     (is_metrics_apart || is_metrics_off ? 1 : 0),
                         .ctx = &s,
                         .on_complete = on_request_done, /* also ends concurrency places */
                         .access_log = log_fmt,
                         .access_log_fd = access_fd,
                         .trust_request_id = cfg->trust_request_id != 0,
                         .trusted_proxies = cfg->trusted_proxies,
                         .max_headers = (unsigned)cfg->max_headers,
                         .max_header_bytes = cfg->max_header_bytes,
                         .max_url_bytes = cfg->max_url_bytes,
                         .max_connections = (unsigned)cfg->max_connections,
                         .header_timeout_s = (unsigned)cfg->header_timeout_s,
                         .request_timeout_s = (unsigned)cfg->request_timeout_s,
                         .connection_max_s = (unsigned)cfg->connection_max_s,
                         .cors_origins = cfg->cors_origins,
                         .cors_credentials = cfg->cors_credentials != 0};
    s.routes = ho.routes; /* before any handler can run: openapi.json describes them */
    s.n_routes = ho.n_routes;
    rc = dg_http_start(&ho, &http, &err);
    if (rc != DG_OK) {
        DG_LOGE("server", "%s", err.msg);
        goto out;
    }
    /* Started second, so the first `listening on` line is the main listener's. */
    if (is_metrics_apart) {
        dg_http_opts_t mo = ho;
        mo.listen = cfg->metrics_listen;
        mo.routes = metrics_routes;
        mo.n_routes = 1;
        mo.max_connections = 64;
        rc = dg_http_start(&mo, &metrics_http, &err);
        if (rc != DG_OK) {
            DG_LOGE("server", "metrics_listen: %s", err.msg);
            goto out;
        }
        DG_LOGI("server", "metrics_port=%d", dg_http_port(metrics_http));
    }

    int sig;
    while ((sig = wait_signal(-1)) == SIGHUP) {
        DG_LOGI("server", "SIGHUP: reloading named queries");
        dg_named_refresh(s.named, true);
    }
    DG_LOGI("server", "signal %d: draining (up to %lld ms)", sig,
            (long long)cfg->shutdown_timeout_ms);
    atomic_store(&s.is_draining, true);
    /* Admin jobs are cancelled, not waited for: they may run for hours. */
    dg_jobs_cancel_all(s.jobs);
    dg_http_quiesce(http);
    int64_t deadline = dg_now_ms() + cfg->shutdown_timeout_ms;
    while (dg_http_inflight(http) > 0 && dg_now_ms() < deadline) {
        int again = wait_signal(50);
        if (again != 0 && again != SIGHUP) {
            DG_LOGW("server", "second signal: stopping now");
            break;
        }
    }
    unsigned left = dg_http_inflight(http);
    if (left > 0) {
        DG_LOGW("server", "closing %u unfinished requests", left);
    }
    status = 0;
out:
    dg_http_stop(http);
    dg_http_stop(metrics_http);
    dg_jobs_free(s.jobs); /* no handler runs any more; the engines still do */
    dg_server__qlog_stop(&s); /* ships what is left while engine 0 still runs */
    if (s.engines) {
        int64_t remain = cfg->shutdown_timeout_ms > 1000 ? 1000 : cfg->shutdown_timeout_ms;
        dg_engines_stop(s.engines, remain);
    }
    dg_dbfiles_free(s.dbs, s.n_dbs);
    dg_metrics_gw_free(s.metrics);
    dg_cache_free(s.cache); /* after dg_http_stop: no request holds a flight any more */
    dg_auth_free(s.auth);
    dg_limit_free(s.limit);
    dg_limit_conc_free(s.conc);
    free(s.db_names);
    free(s.db_versions);
    dg_server__swap_free(s.swap);
    dg_named_free(s.named);
    if (access_fd > 2) {
        close(access_fd);
    }
    DG_LOGI("server", "stopped");
    return status;
}
