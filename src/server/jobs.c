/* Admin jobs (server/jobs.h): a bounded table of jobs, a FIFO of queued ones and max_jobs
 * worker threads that each run one job at a time on an engine slot.
 *
 * Invariants (all under mu):
 * - A job is in `all` (newest first) from submit until pruned; it is in the queue exactly while
 *   its state is QUEUED. Only a worker moves a job from RUNNING to a final state; a cancel of a
 *   queued job finalises it directly.
 * - cancel_fd[1] of a running job is shut down (not closed) by a cancel, so the worker's end
 *   sees a hang-up; both ends are closed by the worker when the job ends.
 * - Finished jobs are pruned after job_retention_s, and beyond DG_JOBS_MAX_KEPT oldest first;
 *   unfinished ones never are.
 * Threads: handlers call in from HTTP threads; workers own a running job's slot and fds. */
#include "server/jobs.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/dgtime.h"
#include "core/log.h"
#include "engine/engine.h"
#include "server/server_int.h"

#define MOD "jobs"
/* A job whose slot request was refused (queue full or queue timeout) tries again this often. */
#define RETRY_MS 200
/* How long DELETE waits for a running job to stop before answering with its current state. */
#define CANCEL_WAIT_MS 10000

typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED } job_state_t;

static const char *const state_names[] = {"queued", "running", "done", "failed", "cancelled"};

typedef struct job {
    struct job *next;  /* in all, newest first */
    struct job *qnext; /* in the queue while QUEUED */
    char id[40];
    char db[65];
    int engine;      /* dg_server__engine_for_db */
    int db_idx;      /* in s->dbs */
    bool is_staging; /* "target":"next": runs on the staging copy <db>.duckdb.next */
    char *sql;
    int64_t timeout_ms;
    char principal[48]; /* the submitter, for the job's JSON and its query log row */
    const char *role;   /* the submitter's role (a static name: jobs are admin only) */
    job_state_t state;
    double progress; /* 0..100, < 0 unknown */
    uint64_t rows;
    uint64_t written; /* rows the last statement wrote (DuckDB's "Count"), when has_written */
    bool has_written;
    int64_t created_unix_ms, finished_unix_ms;   /* wall clock, for people */
    int64_t created_ms, started_ms, finished_ms; /* monotonic: elapsed_ms, the log row */
    dg_rc_t err_rc;
    char err_msg[512];
    bool cancel_requested;
    int cancel_fd[2]; /* while RUNNING: [0] watched by the worker, [1] shut down by a cancel */
} job_t;

struct dg_jobs {
    dg_server_t *s;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* queue changes, jobs finishing, stopping */
    job_t *all;
    size_t n_all;
    job_t *q_head, *q_tail;
    bool stopping;
    int n_workers;
    pthread_t *workers;
    /* Per database (index as s->dbs): staging jobs running, and whether a stage or reload
     * operation is replacing or swapping the staging copy (dg_jobs_stage_begin). */
    int *staging_running;
    bool *stage_op;
};

/* ---- helpers (under mu unless said otherwise) ---------------------------------------------- */

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_final(job_state_t st)
{
    return st == JOB_DONE || st == JOB_FAILED || st == JOB_CANCELLED;
}

static void job_free(job_t *job)
{
    if (job) {
        free(job->sql);
        free(job);
    }
}

/* The job's query log row (docs/observability.md "Query log"), recorded once as it reaches its
 * final state: kind "job", the job id as the request id, the submitter, the SQL text (cut by
 * the log), status 200 (done), the error's status (failed) or 499 with code CANCELLED. */
static void log_job(dg_jobs_t *j, const job_t *job)
{
    int64_t end = job->finished_ms;
    int64_t queued_until = job->started_ms > 0 ? job->started_ms : end;
    dg_server__qlog_entry_t e = {
        .kind = "job",
        .db = job->db,
        .query = job->sql,
        .status = job->state == JOB_DONE        ? 200
                  : job->state == JOB_CANCELLED ? 499
                                                : dg_rc_http_status(job->err_rc),
        .code = job->err_rc,
        .rows = job->rows,
        .queue_ms = (double)(queued_until - job->created_ms),
        .request_id = job->id,
        .principal = job->principal,
        .role = job->role,
        .duration_ms = (double)(end - job->created_ms),
    };
    dg_server__qlog(j->s, NULL, &e);
}

/* The job's metrics as it reaches its final state: duckgate_queries_total and the duration
 * histogram with kind "job" (status as in its log row), and duckgate_interrupts_total for a
 * cancel (DELETE /api/admin/jobs/{id}, or the server stopping) or a deadline. */
static void count_job(dg_jobs_t *j, const job_t *job)
{
    dg_server_t *s = j->s;
    if (!s->metrics) {
        return;
    }
    int status = job->state == JOB_DONE        ? 200
                 : job->state == JOB_CANCELLED ? 499
                                               : dg_rc_http_status(job->err_rc);
    dg_metrics_gw_query(s->metrics, job->db, "job", status,
                        (double)(job->finished_ms - job->created_ms) / 1000.0);
    dg_server__note_interrupt(s, job->state == JOB_CANCELLED ? DG_CANCELLED : job->err_rc);
}

static void finish(dg_jobs_t *j, job_t *job, job_state_t st, dg_rc_t rc, const char *msg)
{
    job->state = st;
    job->finished_ms = dg_now_ms();
    job->finished_unix_ms = unix_ms();
    if (st == JOB_DONE) {
        job->progress = 100;
    }
    if (rc != DG_OK) {
        job->err_rc = rc;
        snprintf(job->err_msg, sizeof job->err_msg, "%s", msg && *msg ? msg : dg_rc_message(rc));
    }
    log_job(j, job);
    count_job(j, job);
    pthread_cond_broadcast(&j->cv);
}

/* Forgets finished jobs past their retention, and the oldest finished ones beyond the cap. */
static void prune(dg_jobs_t *j)
{
    int64_t now = dg_now_ms();
    int64_t keep_ms = (int64_t)j->s->cfg->job_retention_s * 1000;
    size_t seen = 0;
    for (job_t **pp = &j->all; *pp;) {
        job_t *job = *pp;
        seen++;
        bool old =
            is_final(job->state) && (now - job->finished_ms >= keep_ms || seen > DG_JOBS_MAX_KEPT);
        if (old) {
            *pp = job->next;
            j->n_all--;
            seen--;
            job_free(job);
        } else {
            pp = &job->next;
        }
    }
}

static job_t *find(dg_jobs_t *j, const char *id, size_t len)
{
    for (job_t *job = j->all; job; job = job->next) {
        if (strlen(job->id) == len && memcmp(job->id, id, len) == 0) {
            return job;
        }
    }
    return NULL;
}

static bool may_see(const dg_auth_result_t *who, const job_t *job)
{
    return !who || dg_auth_gate(who, DG_ROLE_ADMIN, job->db, strlen(job->db)) == DG_OK;
}

static json_t *iso_time(int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char buf[40];
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(ms % 1000));
    return json_string(buf);
}

static json_t *job_json(const job_t *job)
{
    int64_t elapsed = job->state == JOB_QUEUED    ? 0
                      : job->state == JOB_RUNNING ? dg_now_ms() - job->started_ms
                      : job->started_ms > 0       ? job->finished_ms - job->started_ms
                                                  : 0;
    json_t *err = job->err_rc != DG_OK ? json_pack("{s:s, s:s}", "code", dg_rc_name(job->err_rc),
                                                   "message", job->err_msg)
                                       : json_null();
    json_t *o = json_object();
    if (!o || !err) {
        json_decref(o);
        json_decref(err);
        return NULL;
    }
    json_object_set_new(o, "id", json_string(job->id));
    json_object_set_new(o, "db", json_string(job->db));
    json_object_set_new(o, "state", json_string(state_names[job->state]));
    json_object_set_new(o, "progress", job->progress >= 0 ? json_real(job->progress) : json_null());
    json_object_set_new(o, "rows", json_integer((json_int_t)job->rows));
    json_object_set_new(o, "rows_written",
                        job->has_written ? json_integer((json_int_t)job->written) : json_null());
    json_object_set_new(o, "target", json_string(job->is_staging ? "next" : "served"));
    json_object_set_new(o, "elapsed_ms", json_integer(elapsed));
    json_object_set_new(o, "error", err);
    json_object_set_new(o, "created", iso_time(job->created_unix_ms));
    json_object_set_new(o, "finished",
                        is_final(job->state) ? iso_time(job->finished_unix_ms) : json_null());
    json_object_set_new(o, "principal", json_string(job->principal));
    return o;
}

/* Starts cancelling job: unqueues a queued one, signals a running one's worker. */
static void cancel_locked(dg_jobs_t *j, job_t *job)
{
    if (job->state == JOB_QUEUED) {
        job_t **pp = &j->q_head;
        job_t *prev = NULL;
        while (*pp && *pp != job) {
            prev = *pp;
            pp = &(*pp)->qnext;
        }
        if (*pp) {
            *pp = job->qnext;
            if (j->q_tail == job) {
                j->q_tail = prev;
            }
        }
        job->qnext = NULL;
        finish(j, job, JOB_CANCELLED, DG_CANCELLED, "the job was cancelled before it started");
    } else if (job->state == JOB_RUNNING && !job->cancel_requested) {
        job->cancel_requested = true;
        if (job->cancel_fd[1] >= 0) {
            shutdown(job->cancel_fd[1], SHUT_RDWR);
        }
    }
}

/* ---- the worker (no lock unless said) ---------------------------------------------------- */

typedef struct outcome {
    job_state_t state;
    dg_rc_t rc;
    char msg[512];
    bool changes;
} outcome_t;

static void set_outcome(outcome_t *o, job_state_t st, dg_rc_t rc, const char *msg)
{
    o->state = st;
    o->rc = rc;
    snprintf(o->msg, sizeof o->msg, "%s", msg ? msg : dg_rc_message(rc));
}

static bool has_changes(const dg_buf_t *b)
{
    return b->p && memmem(b->p, b->len, "\"changes\":true", 14) != NULL;
}

/* Leases a slot of the job's engine, retrying while the admission queue refuses: a job may
 * wait as long as it must, but a cancel (hang-up of cancel_fd) ends the wait. */
static dg_rc_t lease(dg_jobs_t *j, job_t *job, int watch_fd, dg_slot_t **slot)
{
    for (;;) {
        int retry = 0;
        dg_rc_t rc = dg_engines_acquire_on(j->s->engines, job->engine, watch_fd, slot, &retry);
        if (rc != DG_OVERLOADED) {
            return rc;
        }
        struct pollfd pfd = {watch_fd, POLLRDHUP, 0};
        if (poll(&pfd, 1, RETRY_MS) > 0) {
            return DG_CLIENT_GONE;
        }
    }
}

/* Applies a PROGRESS payload ({"progress":P|null,"rows":N}) to the job. */
static void apply_progress(dg_jobs_t *j, job_t *job, const dg_buf_t *b)
{
    json_t *o = json_loadb(b->p ? b->p : "", b->len, 0, NULL);
    if (!o) {
        return;
    }
    json_t *p = json_object_get(o, "progress");
    json_t *rows = json_object_get(o, "rows");
    pthread_mutex_lock(&j->mu);
    if (json_is_number(p)) {
        double v = json_number_value(p);
        /* DuckDB's estimate can step back between pipelines; a job never looks to regress. */
        if (v > job->progress) {
            job->progress = v > 100 ? 100 : v;
        }
    }
    if (json_is_integer(rows)) {
        job->rows = (uint64_t)json_integer_value(rows);
    }
    pthread_mutex_unlock(&j->mu);
    json_decref(o);
}

/* Reads an END/ERROR payload into the outcome. */
static void apply_last(outcome_t *o, job_t *job, dg_frame_type_t type, const dg_buf_t *b,
                       dg_jobs_t *j)
{
    json_t *x = json_loadb(b->p ? b->p : "", b->len, 0, NULL);
    o->changes = o->changes || has_changes(b);
    if (type == DG_FRAME_END) {
        json_t *w = json_object_get(x, "written");
        pthread_mutex_lock(&j->mu);
        job->rows = (uint64_t)json_integer_value(json_object_get(x, "rows"));
        if (json_is_integer(w)) {
            job->written = (uint64_t)json_integer_value(w);
            job->has_written = true;
        }
        pthread_mutex_unlock(&j->mu);
        set_outcome(o, JOB_DONE, DG_OK, NULL);
    } else {
        const char *code = json_string_value(json_object_get(x, "code"));
        const char *msg = json_string_value(json_object_get(x, "message"));
        dg_rc_t rc = code ? dg_rc_from_name(code) : DG_PROTOCOL;
        set_outcome(o, rc == DG_CANCELLED ? JOB_CANCELLED : JOB_FAILED, rc, msg);
    }
    json_decref(x);
}

static void run_one(dg_jobs_t *j, job_t *job, int watch_fd, outcome_t *o)
{
    dg_slot_t *slot = NULL;
    dg_buf_t payload;
    char *text = NULL;
    int64_t t0 = dg_now_ms();
    dg_buf_init_rc(&payload, DG_FRAME_MAX_PAYLOAD, DG_PROTOCOL);
    dg_rc_t rc = lease(j, job, watch_fd, &slot);
    if (rc != DG_OK) {
        goto fail;
    }
    json_t *req = json_pack("{s:s, s:s, s:s, s:s%, s:I, s:I}", "id", job->id, "kind", "job", "db",
                            job->db, "sql", job->sql, strlen(job->sql), "timeout_ms",
                            (json_int_t)(job->timeout_ms > 0 ? job->timeout_ms : 0), "queue_ms",
                            (json_int_t)(dg_now_ms() - t0));
    if (req && job->is_staging && json_object_set_new(req, "target", json_string("next")) != 0) {
        json_decref(req);
        req = NULL;
    }
    text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!text) {
        rc = DG_NOMEM;
        goto fail;
    }
    rc = dg_slot_send(slot, text, strlen(text),
                      job->timeout_ms > 0 ? dg_now_ms() + job->timeout_ms : 0);
    while (rc == DG_OK) {
        dg_frame_type_t type;
        rc = dg_slot_read(slot, watch_fd, &type, &payload);
        if (rc != DG_OK) {
            break;
        }
        if (type == DG_FRAME_PROGRESS) {
            apply_progress(j, job, &payload);
        } else if (type == DG_FRAME_END || type == DG_FRAME_ERROR) {
            apply_last(o, job, type, &payload, j);
            goto out;
        }
        /* HEAD/DATA are not sent for jobs; anything else is ignored. */
    }
fail:
    if (rc == DG_CLIENT_GONE) {
        set_outcome(o, JOB_CANCELLED, DG_CANCELLED, "the job was cancelled");
    } else {
        set_outcome(o, JOB_FAILED, rc, NULL);
    }
    /* The request was sent but its end not seen: a write may have happened. */
    o->changes = slot != NULL;
out:
    dg_engines_release(j->s->engines, slot); /* cancels and drains an unfinished request */
    dg_buf_free(&payload);
    free(text);
}

static void *worker_main(void *arg)
{
    dg_jobs_t *j = arg;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->q_head && !j->stopping) {
            pthread_cond_wait(&j->cv, &j->mu);
        }
        if (j->stopping && !j->q_head) {
            break;
        }
        job_t *job = j->q_head;
        j->q_head = job->qnext;
        if (!j->q_head) {
            j->q_tail = NULL;
        }
        job->qnext = NULL;
        if (job->is_staging && (j->staging_running[job->db_idx] > 0 || j->stage_op[job->db_idx])) {
            /* One writer per staging copy; a queued job never waits for another (a build
             * client runs its steps one after the other). */
            finish(j, job, JOB_FAILED, DG_STAGING_BUSY,
                   j->stage_op[job->db_idx]
                       ? "the staging copy is being replaced or swapped in; retry"
                       : "another job is writing the staging copy of this database; staging "
                         "jobs of one database run one at a time");
            continue;
        }
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, job->cancel_fd) != 0) {
            finish(j, job, JOB_FAILED, DG_INTERNAL, "cannot create the job's cancel channel");
            continue;
        }
        job->state = JOB_RUNNING;
        job->started_ms = dg_now_ms();
        if (job->is_staging) {
            j->staging_running[job->db_idx]++;
        }
        if (j->stopping) {
            cancel_locked(j, job);
        }
        int watch_fd = job->cancel_fd[0];
        pthread_mutex_unlock(&j->mu);

        DG_LOGI(MOD, "job started id=%s db=%s", job->id, job->db);
        outcome_t o = {0};
        run_one(j, job, watch_fd, &o);
        if (o.changes && !job->is_staging) {
            /* A write job on a read-write database: cached answers from before it are stale. */
            dg_server__db_changed(j->s, dg_server__db_index(j->s, job->db, strlen(job->db)));
        }

        pthread_mutex_lock(&j->mu);
        if (job->cancel_requested && o.state == JOB_FAILED) {
            /* Failures caused by the cancel itself (engine interrupted mid-way). */
            set_outcome(&o, JOB_CANCELLED, DG_CANCELLED, "the job was cancelled");
        }
        close(job->cancel_fd[0]);
        close(job->cancel_fd[1]);
        job->cancel_fd[0] = job->cancel_fd[1] = -1;
        if (job->is_staging) {
            j->staging_running[job->db_idx]--;
        }
        finish(j, job, o.state, o.rc, o.msg);
        DG_LOGI(MOD, "job finished id=%s state=%s rows=%llu code=%s", job->id,
                state_names[job->state], (unsigned long long)job->rows, dg_rc_name(o.rc));
        prune(j);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* ---- public API ---------------------------------------------------------------------------- */

dg_rc_t dg_jobs_new(dg_server_t *s, dg_jobs_t **out)
{
    *out = NULL;
    dg_jobs_t *j = calloc(1, sizeof *j);
    int n = s->cfg->max_jobs > 0 ? s->cfg->max_jobs : 1;
    if (!j || !(j->workers = calloc((size_t)n, sizeof *j->workers)) ||
        !(j->staging_running = calloc(s->n_dbs + 1, sizeof *j->staging_running)) ||
        !(j->stage_op = calloc(s->n_dbs + 1, sizeof *j->stage_op))) {
        if (j) {
            free(j->workers);
            free(j->staging_running);
        }
        free(j);
        return DG_NOMEM;
    }
    j->s = s;
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    for (int i = 0; i < n; i++) {
        if (pthread_create(&j->workers[i], NULL, worker_main, j) != 0) {
            dg_jobs_free(j);
            return DG_INTERNAL;
        }
        j->n_workers++;
    }
    *out = j;
    return DG_OK;
}

void dg_jobs_cancel_all(dg_jobs_t *j)
{
    if (!j) {
        return;
    }
    pthread_mutex_lock(&j->mu);
    j->stopping = true;
    for (job_t *job = j->all; job; job = job->next) {
        cancel_locked(j, job);
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

void dg_jobs_free(dg_jobs_t *j)
{
    if (!j) {
        return;
    }
    dg_jobs_cancel_all(j);
    for (int i = 0; i < j->n_workers; i++) {
        pthread_join(j->workers[i], NULL);
    }
    while (j->all) {
        job_t *job = j->all;
        j->all = job->next;
        job_free(job);
    }
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j->workers);
    free(j->staging_running);
    free(j->stage_op);
    free(j);
}

dg_rc_t dg_jobs_submit(dg_jobs_t *j, const char *db, bool is_staging, const char *sql, size_t len,
                       int64_t timeout_ms, const char *principal, char out_id[40],
                       json_t **out_json, dg_error_t *err)
{
    *out_json = NULL;
    unsigned char rnd[12];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        return dg_error_set(err, DG_INTERNAL, "no randomness for a job id");
    }
    job_t *job = calloc(1, sizeof *job);
    if (!job || !(job->sql = strndup(sql, len))) {
        job_free(job);
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    int o = snprintf(job->id, sizeof job->id, "job_");
    for (size_t i = 0; i < sizeof rnd; i++) {
        o += snprintf(job->id + o, sizeof job->id - (size_t)o, "%02x", rnd[i]);
    }
    snprintf(job->db, sizeof job->db, "%s", db);
    snprintf(job->principal, sizeof job->principal, "%s", principal ? principal : "");
    /* Only the admin gate leads here (h_admin.c): the submitter's role is admin. */
    job->role = dg_auth_role_name(DG_ROLE_ADMIN);
    job->engine = is_staging ? -1 : dg_server__engine_for_db(j->s, db);
    job->is_staging = is_staging;
    job->db_idx = dg_server__db_index(j->s, db, strlen(db));
    if (job->db_idx < 0) {
        job_free(job);
        return dg_error_set(err, DG_UNKNOWN_DB, "unknown database '%.64s'", db);
    }
    job->timeout_ms = timeout_ms;
    job->progress = -1;
    job->created_unix_ms = unix_ms();
    job->created_ms = dg_now_ms();
    job->cancel_fd[0] = job->cancel_fd[1] = -1;

    pthread_mutex_lock(&j->mu);
    dg_rc_t rc = DG_OK;
    prune(j);
    if (j->stopping) {
        rc = dg_error_set(err, DG_DRAINING, "the server is shutting down");
    } else if (j->n_all >= DG_JOBS_MAX_KEPT) {
        rc = dg_error_set(err, DG_OVERLOADED, "%d jobs are queued or running; retry later",
                          DG_JOBS_MAX_KEPT);
    } else {
        job->next = j->all;
        j->all = job;
        j->n_all++;
        if (j->q_tail) {
            j->q_tail->qnext = job;
        } else {
            j->q_head = job;
        }
        j->q_tail = job;
        memcpy(out_id, job->id, sizeof job->id);
        *out_json = job_json(job);
        pthread_cond_broadcast(&j->cv);
    }
    pthread_mutex_unlock(&j->mu);
    if (rc != DG_OK) {
        job_free(job);
    }
    return rc;
}

json_t *dg_jobs_get(dg_jobs_t *j, const char *id, size_t id_len, const dg_auth_result_t *who)
{
    pthread_mutex_lock(&j->mu);
    prune(j); /* a job past its retention is 404 even if nobody listed the jobs since */
    job_t *job = find(j, id, id_len);
    json_t *o = job && may_see(who, job) ? job_json(job) : NULL;
    pthread_mutex_unlock(&j->mu);
    return o;
}

json_t *dg_jobs_list(dg_jobs_t *j, const dg_auth_result_t *who)
{
    json_t *arr = json_array();
    json_t *o = arr ? json_pack("{s:o}", "jobs", arr) : NULL;
    if (!o) {
        return NULL;
    }
    pthread_mutex_lock(&j->mu);
    prune(j);
    for (job_t *job = j->all; job; job = job->next) {
        if (may_see(who, job) && json_array_append_new(arr, job_json(job)) != 0) {
            json_decref(o);
            o = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return o;
}

dg_rc_t dg_jobs_cancel(dg_jobs_t *j, const char *id, size_t id_len, const dg_auth_result_t *who,
                       json_t **out)
{
    *out = NULL;
    pthread_mutex_lock(&j->mu);
    job_t *job = find(j, id, id_len);
    if (!job || !may_see(who, job)) {
        pthread_mutex_unlock(&j->mu);
        return DG_NOT_FOUND;
    }
    cancel_locked(j, job);
    /* Wait for the worker to confirm, so the answer (and the engine slot) reflect the cancel. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += CANCEL_WAIT_MS / 1000;
    while (!is_final(job->state)) {
        if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    /* The wait let go of mu: look the job up again rather than trust the pointer. */
    job = find(j, id, id_len);
    if (!job) {
        pthread_mutex_unlock(&j->mu);
        return DG_NOT_FOUND;
    }
    *out = job_json(job);
    pthread_mutex_unlock(&j->mu);
    return *out ? DG_OK : DG_NOMEM;
}

dg_rc_t dg_jobs_stage_begin(dg_jobs_t *j, int idx, dg_error_t *err)
{
    dg_rc_t rc = DG_OK;
    pthread_mutex_lock(&j->mu);
    if (j->staging_running[idx] > 0) {
        rc = dg_error_set(err, DG_STAGING_BUSY,
                          "a job is writing the staging copy of %s; wait for it or cancel it",
                          j->s->dbs[idx].name);
    } else if (j->stage_op[idx]) {
        rc = dg_error_set(err, DG_STAGING_BUSY,
                          "the staging copy of %s is being replaced or swapped in; retry",
                          j->s->dbs[idx].name);
    } else {
        j->stage_op[idx] = true;
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

void dg_jobs_stage_end(dg_jobs_t *j, int idx)
{
    pthread_mutex_lock(&j->mu);
    j->stage_op[idx] = false;
    pthread_mutex_unlock(&j->mu);
}
