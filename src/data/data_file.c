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
#include "core/ioutil.h"
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
    dg_remove_db_file(path);
}

dg_rc_t dg_data__copy_file(const char *src, const char *dst, dg_error_t *err)
{
    return dg_copy_file(src, dst, err);
}

dg_rc_t dg_data__commit(const char *next, const char *final_path, dg_error_t *err)
{
    return dg_rename_durable(next, final_path, err);
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
