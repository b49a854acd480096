/* The registry of named queries: one entry per file `queries_dir/{db}/{name}.sql` of a served
 * database, holding the version being served (refcounted, immutable) and the file's current
 * error, if any.
 *
 * Reloading: dg_named_refresh stats every file (at most once a second unless forced, e.g. on
 * SIGHUP) and re-parses those whose mtime, size or inode changed. A broken new version is
 * logged with file:line and recorded as the entry's error while the previous good version keeps
 * serving; a deleted file stops being served.
 *
 * Threads: `mu` guards the entry table; `scan_mu` lets one thread scan at a time (a scan reads
 * the table without `mu`, which is safe because only the scanning thread changes it, and it
 * takes `mu` for every change). Readers hold `mu` only to take a reference. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dgtime.h"
#include "core/log.h"
#include "named/named.h"

#define MOD "named"
#define SCAN_INTERVAL_MS 1000
#define MAX_FILES_PER_DB 4096

typedef struct entry {
    char db[65];
    char name[65];
    dg_named_query_t *q; /* served version (one reference), NULL when none */
    char *error;         /* "name.sql:LINE: message", NULL when the file is good */
    struct timespec mtime;
    off_t size;
    ino_t ino;
    bool seen; /* found by the current scan */
} entry_t;

struct dg_named {
    char *dir;
    char **dbs;
    size_t n_dbs;
    pthread_mutex_t mu;
    pthread_mutex_t scan_mu;
    entry_t *e;
    size_t n, cap;
    _Atomic int64_t last_scan_ms;
};

void dg_named_release(const dg_named_query_t *q)
{
    if (!q) {
        return;
    }
    /* The refcount is the one mutable part of a published query. */
    dg_named_query_t *m = (dg_named_query_t *)(uintptr_t)q;
    if (atomic_fetch_sub(&m->refs_, 1) == 1) {
        dg_named_query_free(m);
    }
}

static entry_t *find(dg_named_t *n, const char *db, const char *name)
{
    for (size_t i = 0; i < n->n; i++) {
        if (strcmp(n->e[i].db, db) == 0 && strcmp(n->e[i].name, name) == 0) {
            return &n->e[i];
        }
    }
    return NULL;
}

/* Reads a whole (small) file. NULL with errno-ish message on failure. */
static char *read_file(const char *path, size_t *out_len, char *why, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(why, cap, "cannot open: %s", strerror(errno));
        return NULL;
    }
    char *buf = malloc(DG_NAMED_MAX_FILE_BYTES + 1);
    size_t len = 0;
    while (buf && len <= DG_NAMED_MAX_FILE_BYTES) {
        ssize_t r = read(fd, buf + len, DG_NAMED_MAX_FILE_BYTES + 1 - len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            snprintf(why, cap, "cannot read: %s", strerror(errno));
            free(buf);
            buf = NULL;
            break;
        }
        if (r == 0) {
            break;
        }
        len += (size_t)r;
    }
    close(fd);
    if (!buf) {
        if (!why[0]) {
            snprintf(why, cap, "out of memory");
        }
        return NULL;
    }
    *out_len = len;
    return buf;
}

/* Parses the file of entry-to-be db/name; returns the new query or NULL with *out_error set
 * (malloc'd). */
static dg_named_query_t *load(dg_named_t *n, const char *db, const char *name, char **out_error)
{
    char path[4096], why[256] = "";
    snprintf(path, sizeof path, "%s/%s/%s.sql", n->dir, db, name);
    size_t len = 0;
    char *text = read_file(path, &len, why, sizeof why);
    dg_named_query_t *q = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    if (text) {
        dg_named_parse(db, name, text, len, &q, &err);
        free(text);
    }
    if (!q) {
        char msg[700];
        snprintf(msg, sizeof msg, "%s.sql:%s", name, text ? err.msg : why);
        *out_error = strdup(msg);
        DG_LOGW(MOD, "broken named query db=%s file=%s/%s.sql:%s", db, db, name,
                text ? err.msg : why);
    }
    return q;
}

static void set_error(dg_named_t *n, entry_t *e, char *error)
{
    pthread_mutex_lock(&n->mu);
    free(e->error);
    e->error = error;
    pthread_mutex_unlock(&n->mu);
}

static void set_query(dg_named_t *n, entry_t *e, dg_named_query_t *q)
{
    pthread_mutex_lock(&n->mu);
    dg_named_query_t *old = e->q;
    e->q = q;
    free(e->error);
    e->error = NULL;
    pthread_mutex_unlock(&n->mu);
    dg_named_release(old);
}

/* Adds a new entry (under mu: the table may move). */
static entry_t *add_entry(dg_named_t *n, const char *db, const char *name)
{
    pthread_mutex_lock(&n->mu);
    entry_t *e = NULL;
    if (n->n == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 16;
        entry_t *ne = realloc(n->e, cap * sizeof *ne);
        if (ne) {
            n->e = ne;
            n->cap = cap;
        }
    }
    if (n->n < n->cap) {
        e = &n->e[n->n++];
        memset(e, 0, sizeof *e);
        snprintf(e->db, sizeof e->db, "%s", db);
        snprintf(e->name, sizeof e->name, "%s", name);
    }
    pthread_mutex_unlock(&n->mu);
    return e;
}

static void scan_db(dg_named_t *n, const char *db)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", n->dir, db);
    DIR *d = opendir(path);
    if (!d) {
        return; /* no queries for this database */
    }
    struct dirent *de;
    size_t files = 0;
    while ((de = readdir(d)) != NULL && files < MAX_FILES_PER_DB) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".sql") != 0) {
            continue;
        }
        char name[65];
        if (!dg_named_name_valid(de->d_name, len - 4)) {
            continue;
        }
        memcpy(name, de->d_name, len - 4);
        name[len - 4] = '\0';
        char fpath[4096 + 264];
        snprintf(fpath, sizeof fpath, "%s/%s", path, de->d_name);
        struct stat st;
        if (lstat(fpath, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue; /* no symlinks: a query file is the data owner's own file */
        }
        files++;
        entry_t *e = find(n, db, name);
        if (e && e->mtime.tv_sec == st.st_mtim.tv_sec && e->mtime.tv_nsec == st.st_mtim.tv_nsec &&
            e->size == st.st_size && e->ino == st.st_ino) {
            e->seen = true;
            continue;
        }
        if (!e && !(e = add_entry(n, db, name))) {
            continue;
        }
        e->seen = true;
        e->mtime = st.st_mtim;
        e->size = st.st_size;
        e->ino = st.st_ino;
        char *error = NULL;
        dg_named_query_t *q = load(n, db, name, &error);
        if (q) {
            DG_LOGI(MOD, "loaded named query db=%s name=%s params=%zu version=%llu", db, name,
                    q->n_params, (unsigned long long)q->version);
            set_query(n, e, q);
        } else {
            set_error(n, e, error ? error : strdup("out of memory"));
        }
    }
    closedir(d);
}

/* Drops the entries whose file is gone. */
static void sweep(dg_named_t *n)
{
    pthread_mutex_lock(&n->mu);
    size_t w = 0;
    for (size_t i = 0; i < n->n; i++) {
        if (n->e[i].seen) {
            n->e[w++] = n->e[i];
            continue;
        }
        DG_LOGI(MOD, "named query removed db=%s name=%s", n->e[i].db, n->e[i].name);
        dg_named_release(n->e[i].q);
        free(n->e[i].error);
    }
    n->n = w;
    pthread_mutex_unlock(&n->mu);
}

void dg_named_refresh(dg_named_t *n, bool force)
{
    if (!n) {
        return;
    }
    int64_t now = dg_now_ms();
    if (!force && now - atomic_load(&n->last_scan_ms) < SCAN_INTERVAL_MS) {
        return;
    }
    if (force) {
        pthread_mutex_lock(&n->scan_mu);
    } else if (pthread_mutex_trylock(&n->scan_mu) != 0) {
        return; /* another thread is scanning; serve what is loaded */
    }
    atomic_store(&n->last_scan_ms, now);
    for (size_t i = 0; i < n->n; i++) {
        n->e[i].seen = false;
    }
    for (size_t i = 0; i < n->n_dbs; i++) {
        scan_db(n, n->dbs[i]);
    }
    sweep(n);
    pthread_mutex_unlock(&n->scan_mu);
}

dg_rc_t dg_named_new(const char *queries_dir, const char *const *dbs, size_t n_dbs,
                     dg_named_t **out)
{
    *out = NULL;
    dg_named_t *n = calloc(1, sizeof *n);
    if (!n) {
        return DG_NOMEM;
    }
    n->dir = strdup(queries_dir ? queries_dir : "queries");
    n->dbs = calloc(n_dbs + 1, sizeof *n->dbs);
    if (!n->dir || !n->dbs) {
        dg_named_free(n);
        return DG_NOMEM;
    }
    for (size_t i = 0; i < n_dbs; i++) {
        if (!(n->dbs[i] = strdup(dbs[i]))) {
            dg_named_free(n);
            return DG_NOMEM;
        }
        n->n_dbs++;
    }
    pthread_mutex_init(&n->mu, NULL);
    pthread_mutex_init(&n->scan_mu, NULL);
    atomic_init(&n->last_scan_ms, 0);
    dg_named_refresh(n, true);
    size_t good = 0;
    for (size_t i = 0; i < n->n; i++) {
        good += n->e[i].q != NULL;
    }
    DG_LOGI(MOD, "queries_dir=%s named_queries=%zu broken=%zu", n->dir, good, n->n - good);
    *out = n;
    return DG_OK;
}

void dg_named_free(dg_named_t *n)
{
    if (!n) {
        return;
    }
    for (size_t i = 0; i < n->n; i++) {
        dg_named_release(n->e[i].q);
        free(n->e[i].error);
    }
    free(n->e);
    for (size_t i = 0; i < n->n_dbs; i++) {
        free(n->dbs[i]);
    }
    if (n->dbs) {
        pthread_mutex_destroy(&n->mu);
        pthread_mutex_destroy(&n->scan_mu);
    }
    free(n->dbs);
    free(n->dir);
    free(n);
}

const dg_named_query_t *dg_named_get(dg_named_t *n, const char *db, const char *name,
                                     char *out_error, size_t error_cap)
{
    if (out_error && error_cap) {
        out_error[0] = '\0';
    }
    if (!n) {
        return NULL;
    }
    pthread_mutex_lock(&n->mu);
    entry_t *e = find(n, db, name);
    dg_named_query_t *q = e ? e->q : NULL;
    if (q) {
        atomic_fetch_add(&q->refs_, 1);
    }
    if (e && e->error && out_error && error_cap) {
        snprintf(out_error, error_cap, "%s", e->error);
    }
    pthread_mutex_unlock(&n->mu);
    return q;
}

static int cmp_entry(const void *a, const void *b)
{
    const entry_t *x = *(entry_t *const *)a, *y = *(entry_t *const *)b;
    int c = strcmp(x->db, y->db);
    return c ? c : strcmp(x->name, y->name);
}

void dg_named_foreach(dg_named_t *n, const char *db, dg_named_each_fn fn, void *ctx)
{
    if (!n) {
        return;
    }
    pthread_mutex_lock(&n->mu);
    entry_t **order = calloc(n->n + 1, sizeof *order);
    size_t k = 0;
    for (size_t i = 0; order && i < n->n; i++) {
        if (!db || strcmp(n->e[i].db, db) == 0) {
            order[k++] = &n->e[i];
        }
    }
    if (order) {
        qsort(order, k, sizeof *order, cmp_entry);
        for (size_t i = 0; i < k; i++) {
            fn(ctx, order[i]->db, order[i]->name, order[i]->q, order[i]->error);
        }
    }
    free(order);
    pthread_mutex_unlock(&n->mu);
}
