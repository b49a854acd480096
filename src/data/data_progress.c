/* Progress display for the data tools: on a terminal one bar per step, redrawn in place
 * (percent, rows, elapsed, ETA); otherwise, for logs and CI, a plain line every 5 s and one at the
 * end of each step. The numbers are DuckDB's own query progress (dg_db_progress_t). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/dgtime.h"
#include "data/data_int.h"

#define BAR_CELLS 30
#define PLAIN_EVERY_MS 5000
/* No percent change for this long: DuckDB is in a phase it does not report (a sort's merge). */
#define STALLED_MS 10000

void dg_data__bar_init(dg_data__bar_t *bar, const dg_data_opts_t *o)
{
    memset(bar, 0, sizeof *bar);
    bar->out = o && o->out ? o->out : stderr;
    int tty = o ? o->tty : -1;
    bar->is_tty = tty < 0 ? isatty(fileno(bar->out)) == 1 : tty == 1;
}

void dg_data__bar_start(dg_data__bar_t *bar, const char *label)
{
    bar->label = label;
    bar->start_ms = dg_now_ms();
    bar->last_ms = bar->start_ms;
    bar->last_width = 0;
    bar->last_pct = -1;
    bar->pct_ms = bar->start_ms;
    if (!bar->is_tty) {
        fprintf(bar->out, "step %s: started\n", label);
        fflush(bar->out);
    }
}

/* "12.3M", "456k", "789": short row counts for a bar. */
static void human(uint64_t n, char *out, size_t cap)
{
    if (n >= 10000000) {
        snprintf(out, cap, "%.1fM", (double)n / 1e6);
    } else if (n >= 10000) {
        snprintf(out, cap, "%" PRIu64 "k", n / 1000);
    } else {
        snprintf(out, cap, "%" PRIu64, n);
    }
}

static void clock_str(int64_t ms, char *out, size_t cap)
{
    int64_t s = ms / 1000;
    snprintf(out, cap, "%" PRId64 ":%02d", s / 60, (int)(s % 60));
}

void dg_data__bar_progress(const dg_db_progress_t *p, void *ctx)
{
    dg_data__bar_t *bar = ctx;
    int64_t now = dg_now_ms();
    int64_t el = now - bar->start_ms;
    char done[32] = "", total[32] = "?", elapsed[32], eta[32] = "?";
    human(p->rows_done, done, sizeof done);
    if (p->rows_total) {
        human(p->rows_total, total, sizeof total);
    }
    clock_str(el, elapsed, sizeof elapsed);
    /* ETA from the rate so far: DuckDB's percent is per statement, so it restarts for every
     * statement of a multi-statement step (shown as [i/n]). */
    if (p->percent != bar->last_pct) {
        bar->last_pct = p->percent;
        bar->pct_ms = now;
    }
    bool is_stalled = now - bar->pct_ms > STALLED_MS;
    if (p->percent > 0.5 && p->percent < 100 && !is_stalled) {
        clock_str((int64_t)((double)el * (100 - p->percent) / p->percent), eta, sizeof eta);
    }
    char stmt[24] = "";
    if (p->n_statements > 1) {
        snprintf(stmt, sizeof stmt, " [%d/%d]", p->statement, p->n_statements);
    }
    double pct = p->percent < 0 ? 0 : p->percent;
    /* Some sources (range(), a sort's final phase) report nothing: say so instead of "0%". */
    bool is_unknown = p->percent < 0 || (p->percent == 0 && p->rows_total == 0);
    if (is_unknown && bar->is_tty) {
        int w = fprintf(bar->out, "\r%-28.28s%s [%s] running  %s", bar->label, stmt,
                        (el / 500) % 2 ? "<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<"
                                       : ">>>>>>>>>>>>>>>>>>>>>>>>>>>>>>",
                        elapsed);
        for (int i = w; i < bar->last_width; i++) {
            fputc(' ', bar->out);
        }
        bar->last_width = w;
        fflush(bar->out);
    } else if (is_unknown) {
        if (now - bar->last_ms >= PLAIN_EVERY_MS) {
            bar->last_ms = now;
            fprintf(bar->out, "step %s%s: running, progress unknown, elapsed %s\n", bar->label,
                    stmt, elapsed);
            fflush(bar->out);
        }
    } else if (bar->is_tty) {
        char cells[BAR_CELLS + 1];
        int full = (int)(pct * BAR_CELLS / 100);
        for (int i = 0; i < BAR_CELLS; i++) {
            cells[i] = i < full ? '#' : '.';
        }
        cells[BAR_CELLS] = '\0';
        int w = fprintf(bar->out, "\r%-28.28s%s [%s] %5.1f%%  rows %s/%s  %s  ETA %s", bar->label,
                        stmt, cells, pct, done, total, elapsed, eta);
        /* Blank the rest of a longer previous line. */
        for (int i = w; i < bar->last_width; i++) {
            fputc(' ', bar->out);
        }
        bar->last_width = w;
        fflush(bar->out);
    } else if (now - bar->last_ms >= PLAIN_EVERY_MS) {
        bar->last_ms = now;
        fprintf(bar->out, "step %s%s: %.1f%% rows %s/%s elapsed %s eta %s\n", bar->label, stmt, pct,
                done, total, elapsed, eta);
        fflush(bar->out);
    }
}

int64_t dg_data__bar_end(dg_data__bar_t *bar, bool is_ok, uint64_t rows)
{
    int64_t ms = dg_now_ms() - bar->start_ms;
    if (bar->is_tty) {
        int w = fprintf(bar->out, "\r%-28.28s %s  rows %" PRIu64 "  %.2f s", bar->label,
                        is_ok ? "done  " : "FAILED", rows, (double)ms / 1000);
        for (int i = w; i < bar->last_width; i++) {
            fputc(' ', bar->out);
        }
        fputc('\n', bar->out);
    } else {
        fprintf(bar->out, "step %s: %s rows %" PRIu64 " time %.2f s\n", bar->label,
                is_ok ? "done" : "FAILED", rows, (double)ms / 1000);
    }
    fflush(bar->out);
    return ms;
}

void dg_data__summary(FILE *out, const dg_data__step_result_t *r, size_t n)
{
    uint64_t rows = 0;
    int64_t ms = 0;
    fprintf(out, "\n%-36s %14s %10s\n", "step", "rows", "time (s)");
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "%-36s %14" PRIu64 " %10.2f\n", r[i].name, r[i].rows, (double)r[i].ms / 1000);
        rows += r[i].rows;
        ms += r[i].ms;
    }
    fprintf(out, "%-36s %14" PRIu64 " %10.2f\n", "total", rows, (double)ms / 1000);
    fflush(out);
}

dg_rc_t dg_data__run_step(dg_db_build_t *b, dg_data__bar_t *bar, const char *name, const char *sql,
                          dg_data__step_result_t *out, dg_error_t *err)
{
    uint64_t rows = 0;
    dg_data__bar_start(bar, name);
    dg_rc_t rc = dg_db_build_run(b, sql, dg_data__bar_progress, bar, &rows, err);
    int64_t ms = dg_data__bar_end(bar, rc == DG_OK, rows);
    snprintf(out->name, sizeof out->name, "%s", name);
    out->rows = rows;
    out->ms = ms;
    return rc;
}
