/* `duckgate build FILE PIPELINE_DIR`: the ordered SQL steps of a pipeline on a copy of FILE,
 * then an atomic swap.
 *
 * Steps are the files NN_name.sql of the directory (NN: digits), run in numeric order, each as
 * one trusted script on FILE.next, a copy of FILE (copy_file_range: in-kernel, extents shared
 * where the filesystem can). Steps must be idempotent (CREATE OR REPLACE ...), so a rerun on an
 * already built file gives the same tables. A failing step stops the build: FILE.next is removed
 * and FILE never changed. On success FILE.next is closed (DuckDB checkpoints it), fsynced and
 * renamed over FILE; a server that watches the directory reopens the new file, and processes
 * that still hold the old one keep reading its (unlinked) inode until they close it. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "data/data_int.h"

#define STEP_SQL_CAP ((size_t)16 << 20)

typedef dg_data__step_t step;

bool dg_data__is_step_name(const char *s, unsigned long *out_num)
{
    const char *p = s;
    if (!isdigit((unsigned char)*p)) {
        return false;
    }
    char *end = NULL;
    errno = 0;
    unsigned long n = strtoul(p, &end, 10);
    if (errno != 0 || *end != '_') {
        return false;
    }
    p = end + 1;
    size_t len = strlen(p);
    if (len <= 4 || strcmp(p + len - 4, ".sql") != 0) {
        return false;
    }
    for (size_t i = 0; i < len - 4; i++) {
        if (!isalnum((unsigned char)p[i]) && p[i] != '_' && p[i] != '-') {
            return false;
        }
    }
    *out_num = n;
    return true;
}

static int step_cmp(const void *a, const void *b)
{
    const step *x = a, *y = b;
    if (x->num != y->num) {
        return x->num < y->num ? -1 : 1;
    }
    return strcmp(x->name, y->name);
}

dg_rc_t dg_data__steps_list(const char *dir, step *steps, size_t *out_n, dg_error_t *err)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    dg_rc_t rc = DG_OK;
    if (!d) {
        return dg_error_set(err, errno == ENOENT ? DG_NOT_FOUND : DG_IO, "pipeline %s: %s", dir,
                            strerror(errno));
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long num;
        if (!dg_data__is_step_name(e->d_name, &num)) {
            continue;
        }
        if (n == DG_DATA__MAX_STEPS) {
            rc = dg_error_set(err, DG_BAD_REQUEST, "pipeline %s: more than %d steps", dir,
                              DG_DATA__MAX_STEPS);
            break;
        }
        steps[n].name = strdup(e->d_name);
        steps[n].num = num;
        if (!steps[n].name) {
            rc = dg_error_set(err, DG_NOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    *out_n = n;
    if (rc == DG_OK && n == 0) {
        rc = dg_error_set(err, DG_NOT_FOUND, "pipeline %s has no NN_name.sql steps", dir);
    }
    if (rc == DG_OK) {
        qsort(steps, n, sizeof *steps, step_cmp);
    }
    return rc;
}

void dg_data__steps_free(step *steps, size_t n)
{
    for (size_t i = 0; steps && i < n; i++) {
        free(steps[i].name);
        steps[i].name = NULL;
    }
}

static char *read_file(const char *path, dg_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        dg_error_set(err, DG_IO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    dg_buf_t b;
    dg_buf_init(&b, STEP_SQL_CAP);
    char chunk[65536];
    size_t n;
    dg_rc_t rc = DG_OK;
    while (rc == DG_OK && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        rc = dg_buf_append(&b, chunk, n);
    }
    if (rc == DG_OK && ferror(f)) {
        rc = DG_IO;
    }
    fclose(f);
    if (rc == DG_OK) {
        rc = dg_buf_putc(&b, '\0');
    }
    if (rc != DG_OK) {
        dg_buf_free(&b);
        dg_error_set(err, rc, "%s: cannot read (cap %zu bytes)", path, STEP_SQL_CAP);
        return NULL;
    }
    return dg_buf_take(&b, NULL);
}

char *dg_data__step_sql(const char *dir, const char *name, dg_error_t *err)
{
    dg_buf_t path;
    dg_buf_init(&path, 0);
    if (dg_buf_printf(&path, "%s/%s", dir, name) != DG_OK) {
        dg_buf_free(&path);
        dg_error_set(err, DG_NOMEM, "out of memory");
        return NULL;
    }
    char *sql = read_file(path.p, err);
    dg_buf_free(&path);
    return sql;
}

dg_rc_t dg_data_build(const char *file, const char *pipeline_dir, const dg_data_opts_t *o,
                      dg_error_t *err)
{
    dg_rc_t rc;
    step *steps = calloc(DG_DATA__MAX_STEPS, sizeof *steps);
    dg_data__step_result_t *res = calloc(DG_DATA__MAX_STEPS, sizeof *res);
    size_t n = 0;
    char *next = NULL;
    dg_db_build_t *b = NULL;
    dg_data__bar_t bar;
    struct stat st;
    int lock_fd = -1;

    if (!steps || !res) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory");
        goto out;
    }
    errno = 0;
    if (stat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = dg_error_set(err, DG_NOT_FOUND, "%s: %s", file,
                          errno ? strerror(errno) : "not a regular file");
        goto out;
    }
    /* Two builds of one file would share FILE.next: the second one fails at once. flock is
     * independent of the POSIX locks DuckDB itself (or a serving engine) holds on the file. */
    lock_fd = open(file, O_RDONLY | O_CLOEXEC);
    if (lock_fd < 0) {
        rc = dg_error_set(err, DG_IO, "%s: %s", file, strerror(errno));
        goto out;
    }
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = dg_error_set(err, DG_IO, "%s: %s", file,
                          errno == EWOULDBLOCK ? "another build of this file is running"
                                               : strerror(errno));
        goto out;
    }
    rc = dg_data__steps_list(pipeline_dir, steps, &n, err);
    if (rc != DG_OK) {
        goto out;
    }
    next = dg_data__next_path(file);
    if (!next) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory");
        goto out;
    }
    dg_data__remove_db(next);
    rc = dg_data__copy_file(file, next, err);
    if (rc != DG_OK) {
        goto out;
    }
    rc = dg_data__open(next, o, false, &b, err);
    if (rc != DG_OK) {
        goto out;
    }
    dg_data__bar_init(&bar, o);
    for (size_t i = 0; i < n; i++) {
        dg_error_t one;
        dg_error_clear(&one);
        char *sql = dg_data__step_sql(pipeline_dir, steps[i].name, &one);
        if (!sql) {
            rc = dg_error_set(err, one.rc, "step %s: %s", steps[i].name, one.msg);
            goto out;
        }
        rc = dg_data__run_step(b, &bar, steps[i].name, sql, &res[i], &one);
        free(sql);
        if (rc != DG_OK) {
            dg_error_set(err, rc, "step %s failed: %s", steps[i].name, one.msg);
            goto out;
        }
    }
    rc = dg_data__finish(&b, bar.out, res, n, next, file, err);
out:
    dg_data__release(b, next, rc != DG_OK);
    dg_data__steps_free(steps, n);
    free(steps);
    free(res);
    if (lock_fd >= 0) {
        close(lock_fd); /* releases the flock */
    }
    return rc;
}
