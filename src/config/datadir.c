/* The data directory: which files are servable databases and under which names. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/config.h"
#include "core/buf.h"

bool dg_dbname_valid(const char *name, size_t len)
{
    if (len == 0 || len > 64 || name[0] == '-') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

static int dbfile_cmp(const void *a, const void *b)
{
    return strcmp(((const dg_dbfile_t *)a)->name, ((const dg_dbfile_t *)b)->name);
}

void dg_dbfiles_free(dg_dbfile_t *files, size_t n)
{
    for (size_t i = 0; files && i < n; i++) {
        free(files[i].path);
    }
    free(files);
}

dg_rc_t dg_datadir_scan(const char *dir, dg_dbfile_t **out, size_t *out_n, dg_error_t *err)
{
    static const char ext[] = ".duckdb";
    const size_t ext_len = sizeof ext - 1;
    *out = NULL;
    *out_n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        return dg_error_set(err, DG_IO, "cannot read data directory %s: %s", dir, strerror(errno));
    }
    dg_rc_t rc = DG_OK;
    dg_dbfile_t *files = NULL;
    size_t n = 0, alloc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len <= ext_len || strcmp(de->d_name + len - ext_len, ext) != 0 ||
            !dg_dbname_valid(de->d_name, len - ext_len)) {
            continue;
        }
        dg_buf_t path;
        dg_buf_init(&path, 0);
        rc = dg_buf_printf(&path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (rc != DG_OK || lstat(path.p, &st) != 0 || !S_ISREG(st.st_mode)) {
            dg_buf_free(&path);
            if (rc != DG_OK) {
                break;
            }
            continue;
        }
        if (n == alloc) {
            size_t na = alloc ? alloc * 2 : 8;
            dg_dbfile_t *nf = realloc(files, na * sizeof *nf);
            if (!nf) {
                dg_buf_free(&path);
                rc = DG_NOMEM;
                break;
            }
            files = nf;
            alloc = na;
        }
        memcpy(files[n].name, de->d_name, len - ext_len);
        files[n].name[len - ext_len] = '\0';
        files[n].path = dg_buf_take(&path, NULL);
        files[n].size_bytes = (uint64_t)st.st_size;
        n++;
    }
    closedir(d);
    if (rc != DG_OK) {
        dg_dbfiles_free(files, n);
        return dg_error_set(err, rc, "scanning %s: %s", dir, dg_rc_message(rc));
    }
    if (n > 1) {
        qsort(files, n, sizeof *files, dbfile_cmp);
    }
    *out = files;
    *out_n = n;
    return DG_OK;
}
