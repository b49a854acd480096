/* File identity per served database and the swap of `<db>.duckdb.next` (swap.h). */
#include "server/swap.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

typedef struct watch {
    pthread_mutex_t mu;      /* guards id */
    dg_server__file_id_t id; /* the identity last seen */
    _Atomic uint64_t gen;    /* +1 per identity change seen */
    pthread_mutex_t swap_mu; /* one reload at a time */
} watch_t;

struct dg_server__swap {
    const dg_dbfile_t *dbs;
    size_t n;
    watch_t *w;
};

static dg_server__file_id_t id_of(const struct stat *st)
{
    return (dg_server__file_id_t){.is_ok = true,
                                  .dev = st->st_dev,
                                  .ino = st->st_ino,
                                  .mtim = st->st_mtim,
                                  .size = st->st_size};
}

static dg_server__file_id_t stat_id(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return (dg_server__file_id_t){.is_ok = false};
    }
    return id_of(&st);
}

static bool id_eq(const dg_server__file_id_t *a, const dg_server__file_id_t *b)
{
    return a->is_ok == b->is_ok && a->dev == b->dev && a->ino == b->ino &&
           a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
           a->size == b->size;
}

dg_rc_t dg_server__swap_new(const dg_dbfile_t *dbs, size_t n, dg_server__swap_t **out)
{
    *out = NULL;
    dg_server__swap_t *w = calloc(1, sizeof *w);
    if (!w || !(w->w = calloc(n + 1, sizeof *w->w))) {
        free(w);
        return DG_NOMEM;
    }
    w->dbs = dbs;
    w->n = n;
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_init(&w->w[i].mu, NULL);
        pthread_mutex_init(&w->w[i].swap_mu, NULL);
        w->w[i].id = stat_id(dbs[i].path);
        atomic_init(&w->w[i].gen, 0);
    }
    *out = w;
    return DG_OK;
}

void dg_server__swap_free(dg_server__swap_t *w)
{
    if (!w) {
        return;
    }
    for (size_t i = 0; i < w->n; i++) {
        pthread_mutex_destroy(&w->w[i].mu);
        pthread_mutex_destroy(&w->w[i].swap_mu);
    }
    free(w->w);
    free(w);
}

uint64_t dg_server__swap_file_gen(dg_server__swap_t *w, int idx)
{
    if (!w || idx < 0 || (size_t)idx >= w->n) {
        return 0;
    }
    watch_t *x = &w->w[idx];
    const char *path = w->dbs[idx].path;
    dg_server__file_id_t now = stat_id(path);
    pthread_mutex_lock(&x->mu);
    if (!id_eq(&now, &x->id)) {
        /* Stat again under the lock: a thread whose stat predates the rename must not flip the
         * identity back to the old file after another thread recorded the new one. */
        now = stat_id(path);
        if (!id_eq(&now, &x->id)) {
            x->id = now;
            atomic_fetch_add(&x->gen, 1);
            DG_LOGI("swap", "database file changed db=%s", w->dbs[idx].name);
        }
    }
    uint64_t gen = atomic_load(&x->gen);
    pthread_mutex_unlock(&x->mu);
    return gen;
}

void dg_server__swap_lock(dg_server__swap_t *w, int idx)
{
    pthread_mutex_lock(&w->w[idx].swap_mu);
}

void dg_server__swap_unlock(dg_server__swap_t *w, int idx)
{
    pthread_mutex_unlock(&w->w[idx].swap_mu);
}

/* "<path><suffix>" into out; false when it does not fit. */
static bool path_with(char *out, size_t cap, const char *path, const char *suffix)
{
    int n = snprintf(out, cap, "%s%s", path, suffix);
    return n > 0 && (size_t)n < cap;
}

dg_rc_t dg_server__swap_prepare(dg_server__swap_t *w, int idx, bool *out_exists,
                                dg_server__file_id_t *out_next, dg_error_t *err)
{
    const dg_dbfile_t *f = &w->dbs[idx];
    char next[PATH_MAX], wal[PATH_MAX];
    *out_exists = false;
    if (!path_with(next, sizeof next, f->path, ".next") ||
        !path_with(wal, sizeof wal, f->path, ".next.wal")) {
        return dg_error_set(err, DG_IO, "the path of %s.duckdb.next is too long", f->name);
    }
    struct stat st;
    if (lstat(next, &st) != 0) {
        if (errno == ENOENT) {
            return DG_OK;
        }
        return dg_error_set(err, DG_IO, "cannot examine %s.duckdb.next: %s", f->name,
                            strerror(errno));
    }
    *out_exists = true;
    if (!S_ISREG(st.st_mode)) {
        return dg_error_set(err, DG_BAD_SNAPSHOT,
                            "%s.duckdb.next is not a regular file (symlinks and directories are "
                            "refused)",
                            f->name);
    }
    if (lstat(wal, &st) == 0) {
        return dg_error_set(err, DG_BAD_SNAPSHOT,
                            "%s.duckdb.next has a write-ahead log (%s.duckdb.next.wal) whose "
                            "changes the swap would lose; run CHECKPOINT on it first",
                            f->name, f->name);
    }
    if (lstat(next, &st) != 0) {
        return dg_error_set(err, DG_BAD_SNAPSHOT, "%s.duckdb.next vanished while examined",
                            f->name);
    }
    *out_next = id_of(&st);
    return DG_OK;
}

/* Makes the rename durable: the directory entry change is only on disk once the directory is
 * synced. */
static void sync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) {
        dir[1] = '\0';
    } else if (slash) {
        *slash = '\0';
    } else {
        snprintf(dir, sizeof dir, ".");
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        DG_LOGW("swap", "cannot sync the data directory after a swap err=%s", strerror(errno));
    }
    if (fd >= 0) {
        close(fd);
    }
}

dg_rc_t dg_server__swap_commit(dg_server__swap_t *w, int idx, const dg_server__file_id_t *expect,
                               dg_error_t *err)
{
    const dg_dbfile_t *f = &w->dbs[idx];
    char next[PATH_MAX];
    if (!path_with(next, sizeof next, f->path, ".next")) {
        return dg_error_set(err, DG_IO, "the path of %s.duckdb.next is too long", f->name);
    }
    struct stat st;
    dg_server__file_id_t now = {.is_ok = false};
    if (lstat(next, &st) == 0 && S_ISREG(st.st_mode)) {
        now = id_of(&st);
    }
    if (!id_eq(&now, expect)) {
        return dg_error_set(err, DG_BAD_SNAPSHOT,
                            "%s.duckdb.next changed while it was being checked; retry the reload",
                            f->name);
    }
    if (rename(next, f->path) != 0) {
        return dg_error_set(err, DG_IO, "cannot rename %s.duckdb.next over %s.duckdb: %s", f->name,
                            f->name, strerror(errno));
    }
    sync_dir_of(f->path);
    return DG_OK;
}
