/* File identity per served database and the swap of `<db>.duckdb.next` (swap.h). */
#include "server/swap.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

typedef struct watch {
    pthread_mutex_t mu;      /* guards id */
    dg_server__file_id_t id; /* the identity last seen */
    _Atomic uint64_t print;  /* fingerprint(id): the per-request check needs no lock */
    _Atomic uint64_t gen;    /* +1 per identity change seen */
    pthread_mutex_t swap_mu; /* one reload at a time */
} watch_t;

struct dg_server__swap {
    const dg_dbfile_t *dbs;
    size_t n;
    watch_t *w;
    /* inotify on the databases' directories: while no event is pending (and no drain runs), no
     * file can have changed, and a request needs no stat. -1 = stat on every call. */
    int ino_fd;
    pthread_mutex_t drain_mu;  /* one drain (read events, stat every file) at a time */
    _Atomic bool is_draining;  /* set before the events are read, cleared after the stats */
    _Atomic bool is_stat_mode; /* a watched directory went away: stat on every call */
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

/* A 64-bit digest of an identity (FNV-1a over its fields). Equal prints with different
 * identities only send a request down the locked path, which compares the whole identity. */
static uint64_t fingerprint(const dg_server__file_id_t *id)
{
    const uint64_t f[] = {(uint64_t)id->is_ok,        (uint64_t)id->dev,
                          (uint64_t)id->ino,          (uint64_t)id->mtim.tv_sec,
                          (uint64_t)id->mtim.tv_nsec, (uint64_t)id->size};
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        for (int b = 0; b < 64; b += 8) {
            h = (h ^ ((f[i] >> b) & 0xff)) * 1099511628211ULL;
        }
    }
    return h;
}

static bool id_eq(const dg_server__file_id_t *a, const dg_server__file_id_t *b)
{
    return a->is_ok == b->is_ok && a->dev == b->dev && a->ino == b->ino &&
           a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
           a->size == b->size;
}

/* Watches the directory of every database for what can change a file behind its name. False
 * when inotify is not available (the tracker then stats on every call). */
static bool watch_dirs(dg_server__swap_t *w)
{
    w->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->ino_fd < 0) {
        return false;
    }
    const uint32_t mask = IN_ATTRIB | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MODIFY |
                          IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
    for (size_t i = 0; i < w->n; i++) {
        char dir[PATH_MAX];
        const char *slash = strrchr(w->dbs[i].path, '/');
        int len = slash ? (int)(slash - w->dbs[i].path) : 1;
        int n = snprintf(dir, sizeof dir, "%.*s", len, slash ? w->dbs[i].path : ".");
        if (n < 0 || (size_t)n >= sizeof dir || inotify_add_watch(w->ino_fd, dir, mask) < 0) {
            close(w->ino_fd); /* the same directory twice is one watch: no dedup needed */
            w->ino_fd = -1;
            return false;
        }
    }
    return true;
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
    pthread_mutex_init(&w->drain_mu, NULL);
    /* Watch first, then note the identities: a rename in between is an event, not a miss. */
    if (!watch_dirs(w)) {
        DG_LOGW("swap", "inotify unavailable (%s): every query stats its database file",
                strerror(errno));
    }
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_init(&w->w[i].mu, NULL);
        pthread_mutex_init(&w->w[i].swap_mu, NULL);
        w->w[i].id = stat_id(dbs[i].path);
        atomic_init(&w->w[i].print, fingerprint(&w->w[i].id));
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
    if (w->ino_fd >= 0) {
        close(w->ino_fd);
    }
    pthread_mutex_destroy(&w->drain_mu);
    free(w->w);
    free(w);
}

/* Stats database idx and counts a change of identity. */
static uint64_t restat(dg_server__swap_t *w, size_t idx)
{
    watch_t *x = &w->w[idx];
    const char *path = w->dbs[idx].path;
    dg_server__file_id_t now = stat_id(path);
    /* The usual request: the file is the one last seen. The generation is read after the
     * print, and a change stores gen before print (under mu), so a matching print never pairs
     * with a generation older than the identity it stands for. */
    if (fingerprint(&now) == atomic_load(&x->print)) {
        return atomic_load(&x->gen);
    }
    pthread_mutex_lock(&x->mu);
    if (!id_eq(&now, &x->id)) {
        /* Stat again under the lock: a thread whose stat predates the rename must not flip the
         * identity back to the old file after another thread recorded the new one. */
        now = stat_id(path);
        if (!id_eq(&now, &x->id)) {
            x->id = now;
            atomic_fetch_add(&x->gen, 1);
            atomic_store(&x->print, fingerprint(&now));
            DG_LOGI("swap", "database file changed db=%s", w->dbs[idx].name);
        }
    }
    uint64_t gen = atomic_load(&x->gen);
    pthread_mutex_unlock(&x->mu);
    return gen;
}

/* Reads every pending event, then stats every database: an event names a file, but reading
 * it consumes it for the other databases too. A watched directory that went away (or an
 * unreadable queue) switches the tracker to stat on every call for good. */
static void drain(dg_server__swap_t *w)
{
    pthread_mutex_lock(&w->drain_mu);
    atomic_store(&w->is_draining, true);
    char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t got = read(w->ino_fd, ev, sizeof ev);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            if (got < 0 && errno != EAGAIN) {
                atomic_store(&w->is_stat_mode, true);
            }
            break;
        }
        for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= got;) {
            const struct inotify_event *e = (const struct inotify_event *)(ev + off);
            if (e->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
                if (!atomic_exchange(&w->is_stat_mode, true)) {
                    DG_LOGW("swap", "a data directory moved: every query stats its database "
                                    "file from now on");
                }
            }
            off += (ssize_t)sizeof *e + e->len;
        }
    }
    for (size_t i = 0; i < w->n; i++) {
        restat(w, i);
    }
    atomic_store(&w->is_draining, false);
    pthread_mutex_unlock(&w->drain_mu);
}

uint64_t dg_server__swap_file_gen(dg_server__swap_t *w, int idx)
{
    if (!w || idx < 0 || (size_t)idx >= w->n) {
        return 0;
    }
    if (w->ino_fd < 0 || atomic_load(&w->is_stat_mode)) {
        return restat(w, (size_t)idx);
    }
    /* No event pending and no drain between reading events and recording identities: every
     * change made before this call would have queued an event (inotify queues it before the
     * rename returns), so the recorded generation is current. A drainer sets is_draining
     * before its read empties the queue, so a poll that finds the queue empty because of that
     * read also sees the flag until the new identities are recorded. */
    struct pollfd p = {.fd = w->ino_fd, .events = POLLIN};
    if (poll(&p, 1, 0) == 0 && !atomic_load(&w->is_draining)) {
        return atomic_load(&w->w[idx].gen);
    }
    drain(w);
    return atomic_load(&w->is_stat_mode) ? restat(w, (size_t)idx) : atomic_load(&w->w[idx].gen);
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
