/* `duckgate import imdb DIR`: the real IMDb TSV dumps into typed tables.
 *
 * The dumps are tab-separated with a header line, `\N` for NULL, and NO quoting or escaping: a
 * `"` inside a title is a literal character (quote='' and escape='' make DuckDB's reader agree).
 * Arrays (genres, primaryProfession, knownForTitles, directors, writers) stay VARCHAR comma lists
 * exactly as in the dumps, so imported and generated databases have the same schema and the
 * same pipeline runs on both; an empty array field is stored as NULL like `\N`. Column types are
 * given explicitly (no sniffing), so a malformed line is an error naming the file and line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "data/data_int.h"

typedef struct dump {
    const char *file; /* base name without .tsv[.gz] */
    const char *table;
    const char *columns; /* read_csv columns struct */
    const char *select;  /* the projection with type fixes */
} dump;

static const dump dumps[] = {
    {"name.basics", "name_basics",
     "{'nconst': 'VARCHAR', 'primaryName': 'VARCHAR', 'birthYear': 'INTEGER', "
     "'deathYear': 'INTEGER', 'primaryProfession': 'VARCHAR', 'knownForTitles': 'VARCHAR'}",
     "nconst, primaryName, birthYear, deathYear, NULLIF(primaryProfession, '') AS "
     "primaryProfession, NULLIF(knownForTitles, '') AS knownForTitles"},
    {"title.basics", "title_basics",
     "{'tconst': 'VARCHAR', 'titleType': 'VARCHAR', 'primaryTitle': 'VARCHAR', "
     "'originalTitle': 'VARCHAR', 'isAdult': 'INTEGER', 'startYear': 'INTEGER', "
     "'endYear': 'INTEGER', 'runtimeMinutes': 'INTEGER', 'genres': 'VARCHAR'}",
     /* isAdult is 0/1 in the dumps. */
     "tconst, titleType, primaryTitle, originalTitle, (isAdult <> 0) AS isAdult, startYear, "
     "endYear, runtimeMinutes, NULLIF(genres, '') AS genres"},
    {"title.principals", "title_principals",
     "{'tconst': 'VARCHAR', 'ordering': 'INTEGER', 'nconst': 'VARCHAR', 'category': 'VARCHAR', "
     "'job': 'VARCHAR', 'characters': 'VARCHAR'}",
     "tconst, ordering, nconst, category, job, characters"},
    {"title.ratings", "title_ratings",
     "{'tconst': 'VARCHAR', 'averageRating': 'DOUBLE', 'numVotes': 'INTEGER'}",
     "tconst, averageRating, numVotes"},
    {"title.crew", "title_crew",
     "{'tconst': 'VARCHAR', 'directors': 'VARCHAR', 'writers': 'VARCHAR'}",
     "tconst, NULLIF(directors, '') AS directors, NULLIF(writers, '') AS writers"},
};

#define N_DUMPS (sizeof dumps / sizeof dumps[0])

/* Appends s as a SQL string literal ('' for every '). */
static dg_rc_t put_literal(dg_buf_t *b, const char *s)
{
    dg_rc_t rc = dg_buf_putc(b, '\'');
    for (; rc == DG_OK && *s; s++) {
        rc = *s == '\'' ? dg_buf_puts(b, "''") : dg_buf_putc(b, *s);
    }
    return rc == DG_OK ? dg_buf_putc(b, '\'') : rc;
}

/* Finds DIR/<file>.tsv or DIR/<file>.tsv.gz. */
static dg_rc_t find_dump(const char *dir, const dump *d, dg_buf_t *path, dg_error_t *err)
{
    static const char *const exts[] = {".tsv", ".tsv.gz"};
    for (size_t i = 0; i < 2; i++) {
        dg_buf_reset(path);
        if (dg_buf_printf(path, "%s/%s%s", dir, d->file, exts[i]) != DG_OK) {
            return dg_error_set(err, DG_NOMEM, "out of memory");
        }
        if (access(path->p, R_OK) == 0) {
            return DG_OK;
        }
    }
    return dg_error_set(err, DG_NOT_FOUND, "%s/%s.tsv[.gz] not found (or not readable)", dir,
                        d->file);
}

dg_rc_t dg_data_import_imdb(const char *dir, const char *out_path, const dg_data_opts_t *o,
                            dg_error_t *err)
{
    dg_rc_t rc = DG_OK;
    dg_buf_t paths[N_DUMPS], sql;
    dg_db_build_t *b = NULL;
    dg_data__bar_t bar;
    dg_data__step_result_t res[N_DUMPS];
    char *next = NULL;

    dg_buf_init(&sql, 0);
    for (size_t i = 0; i < N_DUMPS; i++) {
        dg_buf_init(&paths[i], 0);
    }
    /* Every dump is located before anything is written. */
    for (size_t i = 0; i < N_DUMPS && rc == DG_OK; i++) {
        rc = find_dump(dir, &dumps[i], &paths[i], err);
    }
    if (rc != DG_OK) {
        goto out;
    }
    next = dg_data__next_path(out_path);
    if (!next) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory");
        goto out;
    }
    dg_data__remove_db(next);
    rc = dg_data__open(next, o, true, &b, err);
    if (rc != DG_OK) {
        goto out;
    }
    dg_data__bar_init(&bar, o);
    for (size_t i = 0; i < N_DUMPS; i++) {
        dg_buf_reset(&sql);
        rc = dg_buf_printf(&sql, "CREATE OR REPLACE TABLE %s AS SELECT %s FROM read_csv(",
                           dumps[i].table, dumps[i].select);
        if (rc == DG_OK) {
            rc = put_literal(&sql, paths[i].p);
        }
        if (rc == DG_OK) {
            rc = dg_buf_printf(&sql,
                               ", delim = '\\t', quote = '', escape = '', header = true, "
                               "nullstr = '\\N', auto_detect = false, columns = %s)",
                               dumps[i].columns);
        }
        if (rc != DG_OK) {
            dg_error_set(err, rc, "out of memory");
            goto out;
        }
        dg_error_t one;
        dg_error_clear(&one);
        rc = dg_data__run_step(b, &bar, dumps[i].table, sql.p, &res[i], &one);
        if (rc != DG_OK) {
            dg_error_set(err, rc, "importing %s: %s", paths[i].p, one.msg);
            goto out;
        }
    }
    rc = dg_data__finish(&b, bar.out, res, N_DUMPS, next, out_path, err);
out:
    dg_data__release(b, next, rc != DG_OK);
    dg_buf_free(&sql);
    for (size_t i = 0; i < N_DUMPS; i++) {
        dg_buf_free(&paths[i]);
    }
    return rc;
}
