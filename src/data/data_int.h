/* Internals shared by the files of src/data: the progress display and the atomic file
 * replacement. Single-threaded. */
#ifndef DG_DATA_INT_H
#define DG_DATA_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "core/rc.h"
#include "data/data.h"
#include "db/db_build.h"

/* ---- progress (data_progress.c) ---- */

/* One step's progress display: a redrawn bar on a terminal, a plain line every few seconds
 * otherwise. */
typedef struct dg_data__bar {
    FILE *out;
    bool is_tty;
    const char *label; /* borrowed for the step */
    int64_t start_ms;
    int64_t last_ms; /* last plain line */
    int last_width;  /* characters of the last redrawn bar */
    /* DuckDB's percent at its last change, and when: a percent that stops moving (a sort's
     * merge phase) makes the ETA meaningless. */
    double last_pct;
    int64_t pct_ms;
} dg_data__bar_t;

/* Resolves o's stream and tty choice into bar (label NULL until a step starts). */
void dg_data__bar_init(dg_data__bar_t *bar, const dg_data_opts_t *o);
void dg_data__bar_start(dg_data__bar_t *bar, const char *label);
/* dg_db_progress_fn: ctx is the bar. */
void dg_data__bar_progress(const dg_db_progress_t *p, void *ctx);
/* Ends the step's line; returns the step's time in ms. */
int64_t dg_data__bar_end(dg_data__bar_t *bar, bool is_ok, uint64_t rows);

/* One row of the summary table. */
typedef struct dg_data__step_result {
    char name[128];
    uint64_t rows;
    int64_t ms;
} dg_data__step_result_t;

/* Prints the summary table (step, rows, time) and the total. */
void dg_data__summary(FILE *out, const dg_data__step_result_t *r, size_t n);
/* Runs the trusted script sql on b as the step `name` under bar (borrowed) and records the
 * step's name, rows written and time in *out. Errors of dg_db_build_run (DuckDB's message in
 * err, for the caller to put in context). */
dg_rc_t dg_data__run_step(dg_db_build_t *b, dg_data__bar_t *bar, const char *name, const char *sql,
                          dg_data__step_result_t *out, dg_error_t *err);

/* ---- pipeline steps (data_build.c; local and remote builds share them) ---- */

/* Most steps a pipeline may have. */
#define DG_DATA__MAX_STEPS 256

/* One step file NN_name.sql of a pipeline directory. */
typedef struct dg_data__step {
    char *name; /* the file name, owned */
    unsigned long num;
} dg_data__step_t;

/* True when s names a step, NN_name.sql: digits, '_', [A-Za-z0-9_-]+, ".sql"; *out_num gets NN.
 * Pure. */
bool dg_data__is_step_name(const char *s, unsigned long *out_num);
/* Lists the steps of dir into steps[0..*out_n) (room for DG_DATA__MAX_STEPS), ordered by
 * number, then name. The caller frees them with dg_data__steps_free(steps, *out_n), also on
 * error. Errors: DG_NOT_FOUND (no such directory, no steps), DG_IO, DG_BAD_REQUEST (too many),
 * DG_NOMEM. */
dg_rc_t dg_data__steps_list(const char *dir, dg_data__step_t *steps, size_t *out_n,
                            dg_error_t *err);
void dg_data__steps_free(dg_data__step_t *steps, size_t n);
/* The SQL of step `name` of dir as a malloc'd NUL-terminated string (capped at 16 MiB), or NULL
 * with err set (DG_IO, DG_NOMEM, DG_RESOURCE_EXHAUSTED). */
char *dg_data__step_sql(const char *dir, const char *name, dg_error_t *err);

/* ---- remote builds (data_remote.c) ---- */

/* Reads a job object of the admin API ({"state","progress","rows","rows_written","error"}):
 * *out_state its state, *out_progress the percent (-1 when null), *out_rows rows_written when
 * the server reports it, else rows; *out_code and *out_message the error (NULL when none).
 * Strings are borrowed from job. False when job has no state. Pure. */
bool dg_data__remote_job_view(const json_t *job, const char **out_state, double *out_progress,
                              uint64_t *out_rows, const char **out_code, const char **out_message);

/* ---- files (data_file.c) ---- */

/* "<path>.next" into a malloc'd string; NULL on OOM. */
char *dg_data__next_path(const char *path);
/* Removes path and DuckDB's companions (path.wal, path.tmp directory contents are DuckDB's). */
void dg_data__remove_db(const char *path);
/* Copies src to dst (created 0644, replaced if present), fsyncs dst. DG_IO with the path. */
dg_rc_t dg_data__copy_file(const char *src, const char *dst, dg_error_t *err);
/* Makes next the new final: fsync(next), rename(next, final), fsync(directory). DG_IO. */
dg_rc_t dg_data__commit(const char *next, const char *final_path, dg_error_t *err);
/* The end of a build into next whose steps all succeeded: closes *b (set to NULL) so DuckDB
 * checkpoints, prints the summary of res[0..n) to out and commits next as final_path. Errors
 * of dg_data__commit. */
dg_rc_t dg_data__finish(dg_db_build_t **b, FILE *out, const dg_data__step_result_t *res, size_t n,
                        const char *next, const char *final_path, dg_error_t *err);
/* The cleanup of every build: closes b (may be NULL) and frees next (may be NULL; taken),
 * removing that file and its companions first when is_failed. */
void dg_data__release(dg_db_build_t *b, char *next, bool is_failed);
/* Opens a trusted instance on path with o's threads and memory. */
dg_rc_t dg_data__open(const char *path, const dg_data_opts_t *o, bool has_external_access,
                      dg_db_build_t **out, dg_error_t *err);

#endif
