/* Server lifecycle: resources -> data directory scan -> engines -> HTTP front -> wait for a
 * signal -> drain -> stop.
 *
 * Signals: SIGTERM/SIGINT handlers only write the signal number to a self-pipe (async-signal
 * safe, and whichever thread the kernel picks runs it); the main thread reads the pipe and
 * does the work. Draining: /ready and new queries answer 503 DRAINING, the listening socket is
 * closed, in-flight requests get up to shutdown_timeout_ms (a second signal cuts the wait
 * short), then connections are closed (which returns their slots) and the engines stopped.
 * Threads: dg_server_run runs on the main thread; handlers on connection threads. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dgtime.h"
#include "core/log.h"
#include "server/server.h"
#include "server/server_int.h"

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
};

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
    dg_http_t *http = NULL;

    dg_rc_t rc = dg_resources_detect(cfg, envp, &s.res, &err);
    if (rc != DG_OK) {
        DG_LOGE("server", "%s", err.msg);
        return 2;
    }
    log_resources(&s.res);
    rc = dg_datadir_scan(cfg->data_dir, &s.dbs, &s.n_dbs, &err);
    if (rc != DG_OK) {
        DG_LOGE("server", "%s", err.msg);
        return 1;
    }
    DG_LOGI("server", "data_dir=%s databases=%zu", cfg->data_dir, s.n_dbs);
    for (size_t i = 0; i < s.n_dbs; i++) {
        DG_LOGI("server", "database name=%s size_bytes=%llu", s.dbs[i].name,
                (unsigned long long)s.dbs[i].size_bytes);
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
    dg_http_opts_t ho = {.listen = cfg->listen,
                         .max_body_bytes = cfg->max_body_bytes,
                         .idle_timeout_s = (unsigned)cfg->client_timeout_s,
                         .routes = routes,
                         .n_routes = sizeof routes / sizeof routes[0],
                         .ctx = &s};
    rc = dg_http_start(&ho, &http, &err);
    if (rc != DG_OK) {
        DG_LOGE("server", "%s", err.msg);
        goto out;
    }

    int sig = wait_signal(-1);
    DG_LOGI("server", "signal %d: draining (up to %lld ms)", sig,
            (long long)cfg->shutdown_timeout_ms);
    atomic_store(&s.is_draining, true);
    dg_http_quiesce(http);
    int64_t deadline = dg_now_ms() + cfg->shutdown_timeout_ms;
    while (dg_http_inflight(http) > 0 && dg_now_ms() < deadline) {
        if (wait_signal(50) != 0) {
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
    if (s.engines) {
        int64_t remain = cfg->shutdown_timeout_ms > 1000 ? 1000 : cfg->shutdown_timeout_ms;
        dg_engines_stop(s.engines, remain);
    }
    dg_dbfiles_free(s.dbs, s.n_dbs);
    DG_LOGI("server", "stopped");
    return status;
}
