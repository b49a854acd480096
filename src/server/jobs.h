/* Admin jobs (POST /api/admin/jobs, docs/admin.md): trusted SQL that runs in the background on
 * an engine slot, outliving the request that submitted it, with DuckDB's query progress, the
 * row count and the outcome kept for job_retention_s after it finished.
 *
 * At most cfg->max_jobs jobs run at once, each on a worker thread of its own that holds one
 * engine slot (of the database's owning engine for read-write databases) for the whole job;
 * the others wait queued in submission order. The rows of a job are counted and discarded by
 * the engine (REQ kind "job"), which reports progress in PROGRESS frames.
 *
 * Cancelling: each running job has a socketpair whose far end the canceller shuts down; the
 * worker passes the near end as the "client" of dg_engines_acquire_on / dg_slot_read, so the
 * pool's own hang-up detection turns a cancel into a CANCEL frame (or leaves the slot queue).
 *
 * Threads: every function may be called from any thread; one mutex guards the table. */
#ifndef DG_SERVER_JOBS_H
#define DG_SERVER_JOBS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "core/rc.h"

struct dg_server;
typedef struct dg_jobs dg_jobs_t;

/* Most jobs kept (finished ones beyond this are forgotten oldest first; when every kept job is
 * still queued or running, submissions get DG_OVERLOADED). */
#define DG_JOBS_MAX_KEPT 1000

/* Starts the worker threads. s (borrowed) must outlive the table: its engines, config and
 * data versions are used by the workers. DG_NOMEM, DG_INTERNAL (no threads). */
dg_rc_t dg_jobs_new(struct dg_server *s, dg_jobs_t **out);
/* Stops taking jobs and cancels every queued and running one (SIGTERM). Returns at once; the
 * workers finish cancelling in the background. */
void dg_jobs_cancel_all(dg_jobs_t *j);
/* Cancels everything, waits for the workers and frees the table. Call after the HTTP daemon
 * stopped (no handler may still use it) and before the engines stop. NULL is allowed. */
void dg_jobs_free(dg_jobs_t *j);

/* Queues a job running sql (len bytes, trusted, several statements allowed) on database db
 * (a served name), or on its staging copy `<db>.duckdb.next` when is_staging ("target":"next",
 * any engine; it fails with DG_STAGING_BUSY when it would start while another staging job of db
 * runs or a stage/reload operation holds db, see dg_jobs_stage_begin). timeout_ms <= 0: no
 * deadline. principal (copied) is the submitting request's r->principal; only admins submit
 * jobs, so the job's role is admin. When the job ends (done, failed or cancelled) it is
 * recorded in the query log as a row of kind "job" whose request id is the job id
 * (docs/observability.md "Query log"). out_id receives its id (NUL-terminated) and *out_json
 * (new reference, NULL on DG_NOMEM) the job as queued (a fast job may be done before the caller
 * could ask). DG_UNKNOWN_DB, DG_OVERLOADED when DG_JOBS_MAX_KEPT jobs are all unfinished,
 * DG_DRAINING, DG_NOMEM. */
dg_rc_t dg_jobs_submit(dg_jobs_t *j, const char *db, bool is_staging, const char *sql, size_t len,
                       int64_t timeout_ms, const char *principal, char out_id[40],
                       json_t **out_json, dg_error_t *err);
/* The job as a JSON object (new reference; see docs/admin.md for the fields), or NULL when no
 * job has that id (or who may not see its database). */
json_t *dg_jobs_get(dg_jobs_t *j, const char *id, size_t id_len, const dg_auth_result_t *who);
/* {"jobs":[...]} newest first, only jobs on databases who may use. NULL on DG_NOMEM. */
json_t *dg_jobs_list(dg_jobs_t *j, const dg_auth_result_t *who);
/* Cancels a queued or running job and waits (up to a few seconds) until it has stopped; a
 * finished job is left as it is. *out gets the job's JSON afterwards (new reference).
 * DG_NOT_FOUND when there is no such job (or who may not see it), DG_NOMEM. */
dg_rc_t dg_jobs_cancel(dg_jobs_t *j, const char *id, size_t id_len, const dg_auth_result_t *who,
                       json_t **out);

/* Reserves the staging copy of database idx (index in s->dbs) for an operation that replaces,
 * removes or renames it (POST/DELETE /api/admin/stage/{db}, a reload): while held, staging jobs
 * of idx that start fail with DG_STAGING_BUSY. Refused with DG_STAGING_BUSY (message in err)
 * while a staging job of idx runs or another operation holds it. Release with
 * dg_jobs_stage_end. */
dg_rc_t dg_jobs_stage_begin(dg_jobs_t *j, int idx, dg_error_t *err);
void dg_jobs_stage_end(dg_jobs_t *j, int idx);

#endif
