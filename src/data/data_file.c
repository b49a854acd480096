/* Atomic replacement of database files: build as FILE.next, fsync it, rename it over FILE,
 * fsync the directory. rename(2) within one directory is atomic, so a server that opens FILE
 * sees either the old or the new database; the directory fsync makes the new name durable. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "data/data_int.h"

char *dg_data__next_path(const char *path)
{
    dg_buf_t b;
    dg_buf_init(&b, 0);
    if (dg_buf_printf(&b, "%s.next", path) != DG_OK) {
        dg_buf_free(&b);
        return NULL;
    }
    return dg_buf_take(&b, NULL);
}

void dg_data__remove_db(const char *path)
{
    char wal[4096];
    unlink(path);
    if ((size_t)snprintf(wal, sizeof wal, "%s.wal", path) < sizeof wal) {
        unlink(wal);
    }
}

dg_rc_t dg_data__copy_file(const char *src, const char *dst, dg_error_t *err)
{
    dg_rc_t rc = DG_OK;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = -1;
    struct stat st;
    if (in < 0 || fstat(in, &st) != 0) {
        rc = dg_error_set(err, DG_IO, "%s: %s", src, strerror(errno));
        goto out;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        rc = dg_error_set(err, DG_IO, "%s: %s", dst, strerror(errno));
        goto out;
    }
    /* copy_file_range stays in the kernel (and shares extents where the filesystem can). */
    off_t left = st.st_size;
    while (left > 0) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rc = dg_error_set(err, DG_IO, "copying %s to %s: %s", src, dst,
                              n < 0 ? strerror(errno) : "unexpected end of file");
            goto out;
        }
        left -= n;
    }
    if (fsync(out) != 0) {
        rc = dg_error_set(err, DG_IO, "%s: %s", dst, strerror(errno));
    }
out:
    if (in >= 0) {
        close(in);
    }
    if (out >= 0 && close(out) != 0 && rc == DG_OK) {
        rc = dg_error_set(err, DG_IO, "%s: %s", dst, strerror(errno));
    }
    if (rc != DG_OK && out >= 0) {
        unlink(dst);
    }
    return rc;
}

static dg_rc_t fsync_path(const char *path, int flags, dg_error_t *err)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0) {
        return dg_error_set(err, DG_IO, "%s: %s", path, strerror(errno));
    }
    int r = fsync(fd);
    int e = errno;
    close(fd);
    if (r != 0) {
        return dg_error_set(err, DG_IO, "fsync %s: %s", path, strerror(e));
    }
    return DG_OK;
}

dg_rc_t dg_data__commit(const char *next, const char *final_path, dg_error_t *err)
{
    dg_rc_t rc = fsync_path(next, O_RDONLY, err);
    if (rc != DG_OK) {
        return rc;
    }
    if (rename(next, final_path) != 0) {
        return dg_error_set(err, DG_IO, "rename %s -> %s: %s", next, final_path, strerror(errno));
    }
    char *dir = strdup(final_path);
    if (!dir) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash) {
        slash[slash == dir ? 1 : 0] = '\0';
        d = dir;
    }
    rc = fsync_path(d, O_RDONLY | O_DIRECTORY, err);
    free(dir);
    return rc;
}

dg_rc_t dg_data__open(const char *path, const dg_data_opts_t *o, bool has_external_access,
                      dg_db_build_t **out, dg_error_t *err)
{
    dg_db_build_opts_t bo = {
        .path = path,
        .threads = o ? o->threads : 0,
        .memory_limit = o ? o->memory_limit : 0,
        .has_external_access = has_external_access,
    };
    return dg_db_build_open(&bo, out, err);
}

dg_rc_t dg_data__finish(dg_db_build_t **b, FILE *out, const dg_data__step_result_t *res, size_t n,
                        const char *next, const char *final_path, dg_error_t *err)
{
    dg_db_build_close(*b);
    *b = NULL;
    dg_data__summary(out, res, n);
    return dg_data__commit(next, final_path, err);
}

void dg_data__release(dg_db_build_t *b, char *next, bool is_failed)
{
    dg_db_build_close(b);
    if (is_failed && next) {
        dg_data__remove_db(next);
    }
    free(next);
}
