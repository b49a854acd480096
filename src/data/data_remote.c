/* `duckgate build --remote URL --key KEY DB PIPELINE_DIR`: the steps of a pipeline run on a
 * server through its admin API (docs/pipeline.md "Remote builds"), with the same progress bars
 * and summary as a local build.
 *
 * Protocol: POST /api/admin/stage/DB (a fresh staging copy DB.duckdb.next of the served file);
 * per step POST /api/admin/jobs {"db","sql","target":"next"} and GET /api/admin/jobs/{id} every
 * poll_ms (sooner at first, so short steps end quickly) until done; then POST
 * /api/admin/reload/DB, which checks the staging copy and swaps it in atomically. A failed or
 * cancelled step, a Ctrl-C (the running job is cancelled) or a failed reload discards the
 * staging copy (DELETE /api/admin/stage/DB): the served file never changed.
 *
 * Single-threaded (the CLI). SIGINT is caught only while the build runs and restored after. */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "data/data_int.h"

#define DEFAULT_POLL_MS 250
#define FIRST_POLL_MS 20
/* Answers of the admin API are small JSON documents. */
#define ANSWER_CAP ((size_t)1 << 20)
#define CONNECT_TIMEOUT_S 10L
/* Stage (a file copy) and reload (the engine opens and checks the new file) scale with the
 * database; a job poll or submission does not. */
#define CALL_TIMEOUT_S 60L
#define FILE_OP_TIMEOUT_S 3600L

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

typedef struct remote {
    CURL *curl;
    struct curl_slist *headers;
    const dg_data_remote_t *r;
    char base[1024]; /* URL without trailing slashes */
    dg_buf_t answer;
    char curl_err[CURL_ERROR_SIZE];
} remote_t;

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    dg_buf_t *b = ctx;
    /* Past the cap the transfer stops (curl reports a write error). */
    return dg_buf_append(b, p, size * n) == DG_OK ? size * n : 0;
}

/* The answer of a call: the HTTP status and the body parsed as JSON (NULL when it is not). */
typedef struct answer {
    long status;
    json_t *json;
} answer_t;

/* Turns an error answer into err: the server's code and message, with what the caller should
 * do about the usual ones. */
static dg_rc_t answer_error(const remote_t *x, const char *what, const answer_t *a, dg_error_t *err)
{
    json_t *e = json_object_get(a->json, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (!code || !msg) {
        return dg_error_set(err, DG_PROTOCOL, "%s: %s answered HTTP %ld without an error object",
                            what, x->base, a->status);
    }
    dg_rc_t rc = dg_rc_from_name(code);
    if (a->status == 401) {
        return dg_error_set(err, DG_UNAUTHORIZED,
                            "%s: the server refused the key (%s: %s); pass an admin key with "
                            "--key or DUCKGATE_KEY",
                            what, code, msg);
    }
    if (a->status == 403) {
        return dg_error_set(err, DG_FORBIDDEN,
                            "%s: the key may not do this (%s: %s); remote builds need an admin key "
                            "for database %s",
                            what, code, msg, x->r->db);
    }
    if (rc == DG_UNKNOWN_DB) {
        return dg_error_set(err, rc, "%s: %s serves no database %s", what, x->base, x->r->db);
    }
    return dg_error_set(err, rc, "%s: %s", what, msg);
}

/* One request: method on base + path with the JSON body (may be NULL). A transport failure or
 * an answer that is not JSON is an error here; HTTP error statuses are the caller's business
 * (a->json holds the body). The caller json_decref's a->json. */
static dg_rc_t call(remote_t *x, const char *method, const char *path, const json_t *body,
                    long timeout_s, answer_t *a, dg_error_t *err)
{
    char url[2048];
    char *text = NULL;
    a->status = 0;
    a->json = NULL;
    int n = snprintf(url, sizeof url, "%s%s", x->base, path);
    if (n < 0 || (size_t)n >= sizeof url) {
        return dg_error_set(err, DG_BAD_REQUEST, "the URL is too long");
    }
    if (body && !(text = json_dumps(body, JSON_COMPACT))) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    dg_buf_reset(&x->answer);
    x->curl_err[0] = '\0';
    curl_easy_setopt(x->curl, CURLOPT_URL, url);
    curl_easy_setopt(x->curl, CURLOPT_CUSTOMREQUEST, NULL);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(x->curl, CURLOPT_POST, 1L);
        curl_easy_setopt(x->curl, CURLOPT_POSTFIELDSIZE, (long)(text ? strlen(text) : 0));
        curl_easy_setopt(x->curl, CURLOPT_POSTFIELDS, text ? text : "");
    } else {
        /* GET and DELETE carry no body. */
        curl_easy_setopt(x->curl, CURLOPT_HTTPGET, 1L);
        if (strcmp(method, "GET") != 0) {
            curl_easy_setopt(x->curl, CURLOPT_CUSTOMREQUEST, method);
        }
    }
    curl_easy_setopt(x->curl, CURLOPT_TIMEOUT, timeout_s);
    CURLcode cc = curl_easy_perform(x->curl);
    free(text);
    if (cc != CURLE_OK) {
        if (cc == CURLE_WRITE_ERROR && x->answer.len >= ANSWER_CAP) {
            return dg_error_set(err, DG_PROTOCOL, "%s answered more than %zu bytes to %s %s",
                                x->base, ANSWER_CAP, method, path);
        }
        return dg_error_set(err, DG_IO, "cannot reach %s: %s", x->base,
                            x->curl_err[0] ? x->curl_err : curl_easy_strerror(cc));
    }
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &a->status);
    a->json = json_loadb(x->answer.p ? x->answer.p : "", x->answer.len, 0, NULL);
    if (!json_is_object(a->json)) {
        json_decref(a->json);
        a->json = NULL;
        return dg_error_set(err, DG_PROTOCOL,
                            "%s answered HTTP %ld to %s %s with a body that is not a JSON object "
                            "(is it a duckgate server?)",
                            x->base, a->status, method, path);
    }
    return DG_OK;
}

/* Sleeps ms unless a SIGINT comes first. */
static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    if (!interrupted) {
        nanosleep(&ts, NULL); /* EINTR on SIGINT: handled by the caller's loop */
    }
}

static dg_rc_t stage(remote_t *x, const char *method, long expect, dg_error_t *err)
{
    char path[256];
    answer_t a;
    snprintf(path, sizeof path, "/api/admin/stage/%s", x->r->db);
    dg_rc_t rc = call(x, method, path, NULL, FILE_OP_TIMEOUT_S, &a, err);
    if (rc == DG_OK && a.status != expect) {
        rc = answer_error(
            x, strcmp(method, "POST") == 0 ? "staging" : "discarding the staging copy", &a, err);
    }
    json_decref(a.json);
    return rc;
}

/* What a job's state says (GET /api/admin/jobs/{id}; dg_data__remote_job_view). */
typedef struct job_view {
    const char *state; /* borrowed from the JSON */
    double progress;   /* -1 unknown */
    uint64_t rows;     /* rows_written when the server reports it, else rows */
    const char *code;  /* of a failed or cancelled job */
    const char *message;
} job_view_t;

bool dg_data__remote_job_view(const json_t *job, const char **out_state, double *out_progress,
                              uint64_t *out_rows, const char **out_code, const char **out_message)
{
    const char *st = json_string_value(json_object_get(job, "state"));
    if (!st) {
        return false;
    }
    json_t *p = json_object_get(job, "progress");
    json_t *w = json_object_get(job, "rows_written");
    json_t *rows = json_is_integer(w) ? w : json_object_get(job, "rows");
    json_t *e = json_object_get(job, "error");
    *out_state = st;
    *out_progress = json_is_number(p) ? json_number_value(p) : -1;
    *out_rows = json_is_integer(rows) && json_integer_value(rows) > 0
                    ? (uint64_t)json_integer_value(rows)
                    : 0;
    *out_code = json_string_value(json_object_get(e, "code"));
    *out_message = json_string_value(json_object_get(e, "message"));
    return true;
}

static bool is_final(const char *st)
{
    return strcmp(st, "done") == 0 || strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0;
}

/* Runs one step as a job on the staging copy, showing its progress under bar. */
static dg_rc_t run_step(remote_t *x, dg_data__bar_t *bar, const char *name, const char *sql,
                        dg_data__step_result_t *res, dg_error_t *err)
{
    char path[128];
    answer_t a = {0};
    dg_rc_t rc;
    json_t *body = json_pack("{s:s, s:s, s:s}", "db", x->r->db, "sql", sql, "target", "next");
    if (!body) {
        return dg_error_set(err, DG_BAD_REQUEST, "step %s: the SQL is not valid UTF-8", name);
    }
    rc = call(x, "POST", "/api/admin/jobs", body, CALL_TIMEOUT_S, &a, err);
    json_decref(body);
    const char *id = json_string_value(json_object_get(a.json, "id"));
    if (rc == DG_OK && (a.status != 202 || !id)) {
        rc = a.status == 202 ? dg_error_set(err, DG_PROTOCOL, "the job answer has no id")
                             : answer_error(x, "submitting a job", &a, err);
    }
    if (rc == DG_OK) {
        snprintf(path, sizeof path, "/api/admin/jobs/%.64s", id);
    }
    json_decref(a.json);
    if (rc != DG_OK) {
        return rc;
    }

    dg_data__bar_start(bar, name);
    int wait_ms = FIRST_POLL_MS;
    int poll_ms = x->r->poll_ms > 0 ? x->r->poll_ms : DEFAULT_POLL_MS;
    job_view_t v = {0};
    for (;;) {
        nap(wait_ms);
        wait_ms = wait_ms * 2 > poll_ms ? poll_ms : wait_ms * 2;
        bool is_cancel = interrupted;
        rc = call(x, is_cancel ? "DELETE" : "GET", path, NULL, CALL_TIMEOUT_S, &a, err);
        if (rc == DG_OK && a.status != 200) {
            rc = answer_error(x, "polling the job", &a, err);
        }
        if (rc == DG_OK && !dg_data__remote_job_view(a.json, &v.state, &v.progress, &v.rows,
                                                     &v.code, &v.message)) {
            rc = dg_error_set(err, DG_PROTOCOL, "the job answer has no state");
        }
        if (rc != DG_OK) {
            json_decref(a.json);
            break;
        }
        if (is_final(v.state)) {
            if (strcmp(v.state, "done") == 0) {
                res->rows = v.rows;
            } else if (is_cancel) {
                rc = dg_error_set(err, DG_CANCELLED, "interrupted: step %s was cancelled", name);
            } else {
                dg_rc_t code = v.code ? dg_rc_from_name(v.code) : DG_INTERNAL;
                rc = dg_error_set(err, code, "step %s failed: %s: %s", name,
                                  v.code ? v.code : "INTERNAL", v.message ? v.message : "");
            }
            json_decref(a.json);
            break;
        }
        if (is_cancel) {
            /* The cancel did not stop it within the server's wait: ask again. */
            json_decref(a.json);
            continue;
        }
        dg_db_progress_t p = {.percent = v.progress, .rows_done = v.rows};
        dg_data__bar_progress(&p, bar);
        json_decref(a.json);
    }
    int64_t ms = dg_data__bar_end(bar, rc == DG_OK, rc == DG_OK ? res->rows : 0);
    snprintf(res->name, sizeof res->name, "%s", name);
    res->ms = ms;
    return rc;
}

static dg_rc_t reload(remote_t *x, uint64_t *out_version, dg_error_t *err)
{
    char path[256];
    answer_t a;
    snprintf(path, sizeof path, "/api/admin/reload/%s", x->r->db);
    dg_rc_t rc = call(x, "POST", path, NULL, FILE_OP_TIMEOUT_S, &a, err);
    if (rc == DG_OK && a.status != 200) {
        rc = answer_error(x, "reloading", &a, err);
    }
    if (rc == DG_OK && !json_is_true(json_object_get(a.json, "swapped"))) {
        rc = dg_error_set(err, DG_BAD_SNAPSHOT,
                          "reloading: the server swapped nothing in (the staging copy vanished)");
    }
    if (rc == DG_OK) {
        json_t *v = json_object_get(a.json, "version");
        *out_version = json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
    }
    json_decref(a.json);
    return rc;
}

/* Prepares x for calls to r's server (x zeroed by the caller; remote_close it in any case). */
static dg_rc_t remote_open(remote_t *x, const dg_data_remote_t *r, dg_error_t *err)
{
    x->r = r;
    dg_buf_init(&x->answer, ANSWER_CAP);
    size_t len = strlen(r->url);
    while (len > 0 && r->url[len - 1] == '/') {
        len--;
    }
    if (len == 0 || len >= sizeof x->base) {
        return dg_error_set(err, DG_BAD_REQUEST, "bad --remote URL");
    }
    memcpy(x->base, r->url, len);
    x->base[len] = '\0';
    if (!(x->curl = curl_easy_init())) {
        return dg_error_set(err, DG_NOMEM, "cannot start libcurl");
    }
    if (r->key && r->key[0]) {
        char h[512];
        int n = snprintf(h, sizeof h, "Authorization: Bearer %s", r->key);
        if (n < 0 || (size_t)n >= sizeof h) {
            return dg_error_set(err, DG_BAD_REQUEST, "the key is too long");
        }
        x->headers = curl_slist_append(x->headers, h);
    }
    x->headers = curl_slist_append(x->headers, "Content-Type: application/json");
    x->headers = curl_slist_append(x->headers, "Accept: application/json");
    if (!x->headers) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(x->curl, CURLOPT_WRITEDATA, &x->answer);
    curl_easy_setopt(x->curl, CURLOPT_ERRORBUFFER, x->curl_err);
    curl_easy_setopt(x->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(x->curl, CURLOPT_USERAGENT, "duckgate-build/" DG_VERSION);
    /* The key goes to this server only: no redirects. */
    curl_easy_setopt(x->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(x->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    return DG_OK;
}

static void remote_close(remote_t *x)
{
    if (x->curl) {
        curl_easy_cleanup(x->curl);
    }
    curl_slist_free_all(x->headers);
    dg_buf_free(&x->answer);
}

dg_rc_t dg_data_build_remote(const dg_data_remote_t *r, const dg_data_opts_t *o, dg_error_t *err)
{
    dg_data__step_t *steps = calloc(DG_DATA__MAX_STEPS, sizeof *steps);
    dg_data__step_result_t *res = calloc(DG_DATA__MAX_STEPS, sizeof *res);
    size_t n = 0;
    bool is_staged = false, has_curl = false;
    remote_t x;
    dg_data__bar_t bar;
    struct sigaction sa, old_sa;
    dg_rc_t rc;

    memset(&x, 0, sizeof x);
    if (!steps || !res) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory");
        goto out;
    }
    rc = dg_data__steps_list(r->pipeline_dir, steps, &n, err);
    if (rc != DG_OK) {
        goto out;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = dg_error_set(err, DG_INTERNAL, "cannot initialise libcurl");
        goto out;
    }
    has_curl = true;
    rc = remote_open(&x, r, err);
    if (rc != DG_OK) {
        goto out;
    }
    /* No SA_RESTART: a Ctrl-C cuts the poll interval short. */
    interrupted = 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);

    dg_data__bar_init(&bar, o);
    rc = stage(&x, "POST", 201, err);
    if (rc != DG_OK) {
        goto out_sig;
    }
    is_staged = true;
    fprintf(bar.out, "staging copy of %s made on %s\n", r->db, x.base);
    fflush(bar.out);
    for (size_t i = 0; i < n && rc == DG_OK; i++) {
        if (interrupted) {
            rc = dg_error_set(err, DG_CANCELLED, "interrupted before step %s", steps[i].name);
            break;
        }
        dg_error_t one;
        dg_error_clear(&one);
        char *sql = dg_data__step_sql(r->pipeline_dir, steps[i].name, &one);
        if (!sql) {
            rc = dg_error_set(err, one.rc, "step %s: %s", steps[i].name, one.msg);
            break;
        }
        rc = run_step(&x, &bar, steps[i].name, sql, &res[i], err);
        free(sql);
    }
    if (rc == DG_OK && interrupted) {
        rc = dg_error_set(err, DG_CANCELLED, "interrupted before the reload");
    }
    uint64_t version = 0;
    if (rc == DG_OK) {
        rc = reload(&x, &version, err);
    }
    if (rc == DG_OK) {
        is_staged = false; /* renamed over the served file */
        dg_data__summary(bar.out, res, n);
        fprintf(bar.out, "%s reloaded on %s: data version %llu\n", r->db, x.base,
                (unsigned long long)version);
        fflush(bar.out);
    }
out_sig:
    if (is_staged) {
        dg_error_t derr;
        dg_error_clear(&derr);
        if (stage(&x, "DELETE", 200, &derr) == DG_OK) {
            fprintf(bar.out, "staging copy of %s discarded; the served file is unchanged\n", r->db);
        } else {
            fprintf(bar.out, "could not discard the staging copy of %s: %s\n", r->db, derr.msg);
        }
        fflush(bar.out);
    }
    sigaction(SIGINT, &old_sa, NULL);
out:
    remote_close(&x);
    if (has_curl) {
        curl_global_cleanup();
    }
    dg_data__steps_free(steps, n);
    free(steps);
    free(res);
    return rc;
}
