/* The engine's served databases: refcounted instances, swapped when their file is replaced.
 * Contract, locking and the guarantee: engine_dbs.h. */
#include "engine/engine_dbs.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/dgtime.h"
#include "core/ioutil.h"
#include "core/log.h"

#define MOD "engine"
#define MAX_HOOKS 4
/* A file that failed to open is tried again after this long (while it stays the same). */
#define RETRY_FAILED_MS 5000
/* The catalog read that proves a new file is usable is capped like a catalog response. */
#define CHECK_CATALOG_CAP ((size_t)64 << 20)

/* What identifies the file behind a path: a rename brings another inode, an in-place rewrite
 * another mtime or size. is_ok = false when the path could not be stat'ed. */
typedef struct file_id {
    bool is_ok;
    dev_t dev;
    ino_t ino;
    struct timespec mtim;
    off_t size;
} file_id_t;

struct dg_engine__inst {
    dg_db_t *db;
    char *temp_dir;   /* private spill directory of this instance, removed on close; or NULL */
    char *export_dir; /* absolute Parquet export directory inside temp_dir, or NULL */
    const char *name; /* the database's served name; owned by the table */
    uint64_t gen;
    file_id_t id;      /* the file as it was just before it was opened */
    _Atomic long refs; /* one for being current + one per request */
};

typedef struct served {
    char *name;
    char *path;
    bool is_rw;
    pthread_mutex_t mu;      /* guards cur, failed, has_failed, failed_at_ms */
    pthread_mutex_t open_mu; /* one reopen at a time; taken before mu, never inside it */
    dg_engine__inst_t *cur;
    file_id_t failed; /* a file that did not open: retried when it changes or after a while */
    bool has_failed;
    int64_t failed_at_ms; /* monotonic time of its last failed open */
    uint64_t last_gen;    /* under open_mu */
    bool is_staging_open; /* under mu: its .next is open for a job (dg_engine__dbs_open_next) */
} served_t;

typedef struct hook {
    void (*fn)(dg_db_t *db, void *ctx);
    void *ctx;
} hook_t;

struct dg_engine__dbs {
    served_t *v;
    size_t n, cap;
    uint64_t memory_limit, max_temp_bytes;
    int threads;
    char *temp_root; /* NULL = no spilling, no export */
    hook_t hooks[MAX_HOOKS];
    size_t n_hooks;
    pthread_t refresher;
    bool has_refresher;
    atomic_bool is_stopping;
};

/* ---- files ------------------------------------------------------------------------------- */

static file_id_t file_id_of(const char *path)
{
    file_id_t id = {0};
    struct stat st;
    if (stat(path, &st) == 0) {
        id.is_ok = true;
        id.dev = st.st_dev;
        id.ino = st.st_ino;
        id.mtim = st.st_mtim;
        id.size = st.st_size;
    }
    return id;
}

static bool file_id_eq(const file_id_t *a, const file_id_t *b)
{
    return a->is_ok == b->is_ok && a->dev == b->dev && a->ino == b->ino &&
           a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
           a->size == b->size;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (ftw->level == 0) {
        return 0; /* the caller decides about the directory itself */
    }
    if (remove(path) != 0) {
        DG_LOGW(MOD, "cannot remove stale temp file path=%s err=%s", path, strerror(errno));
    }
    return 0;
}

static void empty_dir(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- instances --------------------------------------------------------------------------- */

static void inst_free(dg_engine__dbs_t *t, dg_engine__inst_t *in)
{
    if (!in) {
        return;
    }
    if (in->db) {
        /* Per-instance state of other parts (named queries' connections) goes first:
         * dg_db_close needs every connection of the instance closed. */
        for (size_t i = 0; i < t->n_hooks; i++) {
            t->hooks[i].fn(in->db, t->hooks[i].ctx);
        }
        dg_db_close(in->db);
    }
    if (in->temp_dir) {
        empty_dir(in->temp_dir);
        rmdir(in->temp_dir);
    }
    free(in->temp_dir);
    free(in->export_dir);
    free(in);
}

static void inst_unref(dg_engine__dbs_t *t, dg_engine__inst_t *in)
{
    if (in && atomic_fetch_sub(&in->refs, 1) == 1) {
        DG_LOGI(MOD, "closing instance db=%s gen=%llu", in->name, (unsigned long long)in->gen);
        inst_free(t, in);
    }
}

/* Opens the file at sd->path as instance generation gen, with the table's sandbox settings.
 * The identity is taken before the open: if the file is replaced meanwhile, the next check sees
 * a difference and opens again, instead of never noticing. */
static dg_rc_t inst_open(dg_engine__dbs_t *t, served_t *sd, uint64_t gen, dg_engine__inst_t **out,
                         dg_error_t *err)
{
    *out = NULL;
    dg_engine__inst_t *in = calloc(1, sizeof *in);
    if (!in) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    in->name = sd->name;
    in->gen = gen;
    in->id = file_id_of(sd->path);
    atomic_init(&in->refs, 1);
    if (t->temp_root) {
        /* One temp directory per instance: two live instances must not share spill files.
         * Names never contain '.', so "<name>.<gen>" cannot be another database's. */
        char tdir[PATH_MAX];
        int n = gen == 1 ? snprintf(tdir, sizeof tdir, "%s/%s", t->temp_root, sd->name)
                         : snprintf(tdir, sizeof tdir, "%s/%s.%llu", t->temp_root, sd->name,
                                    (unsigned long long)gen);
        if (n > 0 && (size_t)n < sizeof tdir && dg_mkdir_p(tdir, 0700) == 0) {
            empty_dir(tdir);
            in->temp_dir = strdup(tdir);
        }
    }
    dg_db_opts_t o = {
        .path = sd->path,
        .name = sd->name,
        .read_only = !sd->is_rw,
        .memory_limit = t->memory_limit,
        .max_temp_bytes = t->max_temp_bytes,
        .threads = t->threads,
        .temp_dir = in->temp_dir,
    };
    dg_error_t derr;
    dg_error_clear(&derr);
    dg_rc_t rc = dg_db_open(&o, &in->db, &derr);
    if (rc != DG_OK) {
        inst_free(t, in);
        return dg_error_set(err, rc, "database %s: %s", sd->name,
                            derr.msg[0] ? derr.msg : dg_rc_message(rc));
    }
    char xdir[PATH_MAX + 16];
    if (in->temp_dir && realpath(in->temp_dir, xdir) &&
        strlen(xdir) + sizeof "/export" <= sizeof xdir) {
        /* The export instance may write only here; it must be absolute and private. */
        memcpy(xdir + strlen(xdir), "/export", sizeof "/export");
        in->export_dir = strdup(xdir);
    }
    *out = in;
    return DG_OK;
}

/* ---- the table --------------------------------------------------------------------------- */

dg_rc_t dg_engine__dbs_new(const dg_engine__dbs_opts_t *o, size_t cap, dg_engine__dbs_t **out)
{
    *out = NULL;
    dg_engine__dbs_t *t = calloc(1, sizeof *t);
    if (!t || !(t->v = calloc(cap + 1, sizeof *t->v))) {
        free(t);
        return DG_NOMEM;
    }
    t->cap = cap;
    atomic_init(&t->is_stopping, false);
    t->memory_limit = o->memory_limit;
    t->max_temp_bytes = o->max_temp_bytes;
    t->threads = o->threads;
    if (o->temp_root && *o->temp_root) {
        if (dg_mkdir_p(o->temp_root, 0700) == 0) {
            empty_dir(o->temp_root);
            t->temp_root = strdup(o->temp_root);
        } else {
            /* Serving works without spilling; large sorts/joins then fail at memory_limit. */
            DG_LOGW(MOD, "no temp directory, spilling disabled path=%s err=%s", o->temp_root,
                    strerror(errno));
        }
    }
    *out = t;
    return DG_OK;
}

dg_rc_t dg_engine__dbs_add(dg_engine__dbs_t *t, const char *name, const char *path,
                           bool is_read_write, dg_error_t *err)
{
    if (t->n >= t->cap) {
        return dg_error_set(err, DG_INTERNAL, "database table full");
    }
    served_t *sd = &t->v[t->n];
    memset(sd, 0, sizeof *sd);
    sd->name = strdup(name);
    sd->path = strdup(path);
    sd->is_rw = is_read_write;
    if (!sd->name || !sd->path) {
        free(sd->name);
        free(sd->path);
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    pthread_mutex_init(&sd->mu, NULL);
    pthread_mutex_init(&sd->open_mu, NULL);
    sd->last_gen = 1;
    dg_rc_t rc = inst_open(t, sd, 1, &sd->cur, err);
    if (rc != DG_OK) {
        pthread_mutex_destroy(&sd->mu);
        pthread_mutex_destroy(&sd->open_mu);
        free(sd->name);
        free(sd->path);
        return rc;
    }
    t->n++;
    return DG_OK;
}

dg_rc_t dg_engine__dbs_on_close(dg_engine__dbs_t *t, void (*fn)(dg_db_t *db, void *ctx), void *ctx)
{
    if (t->n_hooks >= MAX_HOOKS || !fn) {
        return DG_INTERNAL;
    }
    t->hooks[t->n_hooks++] = (hook_t){fn, ctx};
    return DG_OK;
}

size_t dg_engine__dbs_count(const dg_engine__dbs_t *t)
{
    return t->n;
}

const char *dg_engine__dbs_name(const dg_engine__dbs_t *t, size_t i)
{
    return i < t->n ? t->v[i].name : NULL;
}

static served_t *find(dg_engine__dbs_t *t, const char *name)
{
    for (size_t i = 0; name && i < t->n; i++) {
        if (strcmp(t->v[i].name, name) == 0) {
            return &t->v[i];
        }
    }
    return NULL;
}

typedef enum { FILE_CURRENT, FILE_FAILED, FILE_NEW } file_state_t;

/* What the file at the path is: the current instance's (or missing: a non-atomic replacement
 * in progress counts as "nothing new"), one that recently failed to open, or a new one. A
 * failed file is tried again after RETRY_FAILED_MS: the cause may have been passing (memory,
 * descriptors), and an engine must not keep an old file forever because of it. */
static file_state_t file_state(served_t *sd, const file_id_t *now)
{
    if (!now->is_ok) {
        return FILE_CURRENT;
    }
    pthread_mutex_lock(&sd->mu);
    file_state_t st = file_id_eq(now, &sd->cur->id) ? FILE_CURRENT
                      : sd->has_failed && file_id_eq(now, &sd->failed) &&
                              dg_now_ms() - sd->failed_at_ms < RETRY_FAILED_MS
                          ? FILE_FAILED
                          : FILE_NEW;
    pthread_mutex_unlock(&sd->mu);
    return st;
}

static dg_rc_t failed_again(served_t *sd, dg_error_t *err)
{
    return dg_error_set(err, DG_BAD_SNAPSHOT,
                        "the replaced file of %s does not open; the old one keeps serving",
                        sd->name);
}

/* Switches sd to its replaced file when it was replaced. *out_swapped tells whether it did.
 * On an open failure the old instance stays current, the failure is remembered for that file
 * identity and logged once, and err says why (also on later calls while the file is the same:
 * DG_BAD_SNAPSHOT, until it is retried). */
static dg_rc_t maybe_reopen(dg_engine__dbs_t *t, served_t *sd, bool *out_swapped, dg_error_t *err)
{
    *out_swapped = false;
    if (sd->is_rw) {
        return DG_OK;
    }
    file_id_t now = file_id_of(sd->path);
    file_state_t st = file_state(sd, &now);
    if (st != FILE_NEW) {
        return st == FILE_FAILED ? failed_again(sd, err) : DG_OK;
    }
    pthread_mutex_lock(&sd->open_mu);
    /* Another thread may have switched while this one waited: check again. */
    now = file_id_of(sd->path);
    st = file_state(sd, &now);
    dg_rc_t rc = st == FILE_FAILED ? failed_again(sd, err) : DG_OK;
    if (st == FILE_NEW) {
        dg_engine__inst_t *in = NULL;
        dg_error_t oerr;
        dg_error_clear(&oerr);
        rc = inst_open(t, sd, sd->last_gen + 1, &in, &oerr);
        if (rc != DG_OK) {
            pthread_mutex_lock(&sd->mu);
            bool is_repeat = sd->has_failed && file_id_eq(&now, &sd->failed);
            sd->failed = now;
            sd->has_failed = true;
            sd->failed_at_ms = dg_now_ms();
            pthread_mutex_unlock(&sd->mu);
            /* Once per file at WARN; the periodic retries of the same file only at DEBUG. */
            dg_log(is_repeat ? DG_LOG_DEBUG : DG_LOG_WARN, MOD, NULL,
                   "replaced file does not open, the old one keeps serving db=%s err=\"%s\"",
                   sd->name, oerr.msg);
            rc = dg_error_set(err, DG_BAD_SNAPSHOT, "%s", oerr.msg);
        } else {
            sd->last_gen = in->gen;
            pthread_mutex_lock(&sd->mu);
            dg_engine__inst_t *old = sd->cur;
            sd->cur = in;
            sd->has_failed = false;
            pthread_mutex_unlock(&sd->mu);
            DG_LOGI(MOD, "database file replaced, serving the new one db=%s gen=%llu", sd->name,
                    (unsigned long long)in->gen);
            /* Drops the table's reference: closed now, or by the last request still on it. */
            inst_unref(t, old);
            *out_swapped = true;
        }
    }
    pthread_mutex_unlock(&sd->open_mu);
    return rc;
}

static void take_current(served_t *sd, dg_engine__dbref_t *out)
{
    pthread_mutex_lock(&sd->mu);
    dg_engine__inst_t *in = sd->cur;
    atomic_fetch_add(&in->refs, 1);
    pthread_mutex_unlock(&sd->mu);
    out->name = sd->name;
    out->is_read_write = sd->is_rw;
    out->db = in->db;
    out->export_dir = in->export_dir;
    out->gen = in->gen;
    out->inst = in;
}

dg_rc_t dg_engine__dbs_acquire(dg_engine__dbs_t *t, const char *name, dg_engine__dbref_t *out)
{
    memset(out, 0, sizeof *out);
    served_t *sd = find(t, name);
    if (!sd) {
        return DG_UNKNOWN_DB;
    }
    bool swapped;
    dg_error_t err;
    dg_error_clear(&err);
    /* A file that does not open was logged once; the request runs on the old instance. */
    (void)maybe_reopen(t, sd, &swapped, &err);
    take_current(sd, out);
    return DG_OK;
}

void dg_engine__dbs_acquire_at(dg_engine__dbs_t *t, size_t i, dg_engine__dbref_t *out)
{
    memset(out, 0, sizeof *out);
    if (i < t->n) {
        take_current(&t->v[i], out);
    }
}

void dg_engine__dbs_release(dg_engine__dbs_t *t, dg_engine__dbref_t *ref)
{
    if (!ref->inst) {
        return;
    }
    inst_unref(t, ref->inst);
    memset(ref, 0, sizeof *ref);
}

dg_rc_t dg_engine__dbs_refresh(dg_engine__dbs_t *t, const char *name, uint64_t *out_gen,
                               dg_error_t *err)
{
    served_t *sd = find(t, name);
    if (!sd) {
        return dg_error_set(err, DG_UNKNOWN_DB, "unknown database '%.64s'", name ? name : "");
    }
    bool swapped;
    dg_rc_t rc = maybe_reopen(t, sd, &swapped, err);
    pthread_mutex_lock(&sd->mu);
    *out_gen = sd->cur->gen;
    pthread_mutex_unlock(&sd->mu);
    return rc;
}

dg_rc_t dg_engine__dbs_check_next(dg_engine__dbs_t *t, const char *name, dg_error_t *err)
{
    served_t *sd = find(t, name);
    if (!sd) {
        return dg_error_set(err, DG_UNKNOWN_DB, "unknown database '%.64s'", name ? name : "");
    }
    if (sd->is_rw) {
        return dg_error_set(err, DG_BAD_REQUEST,
                            "%s is served read-write: it changes by admin writes, not by swapping "
                            "in a new file",
                            sd->name);
    }
    dg_buf_t next;
    dg_buf_init(&next, PATH_MAX);
    dg_rc_t rc = dg_buf_printf(&next, "%s.next", sd->path);
    if (rc != DG_OK) {
        dg_buf_free(&next);
        return dg_error_set(err, rc, "path too long");
    }
    struct stat st;
    dg_db_t *db = NULL;
    dg_buf_t cat;
    dg_buf_init_rc(&cat, CHECK_CATALOG_CAP, DG_RESULT_TOO_LARGE);
    if (lstat(next.p, &st) != 0) {
        rc = errno == ENOENT
                 ? dg_error_set(err, DG_NOT_FOUND, "%s.duckdb.next does not exist", sd->name)
                 : dg_error_set(err, DG_BAD_SNAPSHOT, "cannot stat %s.duckdb.next: %s", sd->name,
                                strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = dg_error_set(err, DG_BAD_SNAPSHOT, "%s.duckdb.next is not a regular file", sd->name);
        goto out;
    }
    /* The trial instance gets no temp directory: it only reads the catalog. */
    dg_db_opts_t o = {
        .path = next.p,
        .name = sd->name,
        .read_only = true,
        .memory_limit = t->memory_limit,
        .max_temp_bytes = t->max_temp_bytes,
        .threads = 1,
    };
    dg_error_t derr;
    dg_error_clear(&derr);
    rc = dg_db_open(&o, &db, &derr);
    if (rc == DG_OK) {
        rc = dg_db_catalog_json(db, &cat, &derr);
    }
    if (rc != DG_OK) {
        rc = dg_error_set(err, DG_BAD_SNAPSHOT, "%s.duckdb.next cannot be served: %s", sd->name,
                          derr.msg[0] ? derr.msg : dg_rc_message(rc));
    }
out:
    dg_db_close(db);
    dg_buf_free(&cat);
    dg_buf_free(&next);
    return rc;
}

dg_rc_t dg_engine__dbs_open_next(dg_engine__dbs_t *t, const char *name, dg_engine__staging_t *out,
                                 dg_error_t *err)
{
    memset(out, 0, sizeof *out);
    served_t *sd = find(t, name);
    if (!sd) {
        return dg_error_set(err, DG_UNKNOWN_DB, "unknown database '%.64s'", name ? name : "");
    }
    if (sd->is_rw) {
        return dg_error_set(err, DG_BAD_REQUEST,
                            "%s is served read-write: it has no staging copy (run the job on it)",
                            sd->name);
    }
    char next[PATH_MAX], tdir[PATH_MAX];
    int n = snprintf(next, sizeof next, "%s.next", sd->path);
    if (n < 0 || (size_t)n >= sizeof next) {
        return dg_error_set(err, DG_IO, "the path of %s.duckdb.next is too long", sd->name);
    }
    struct stat st;
    if (lstat(next, &st) != 0) {
        return errno == ENOENT ? dg_error_set(err, DG_NO_STAGING,
                                              "%s has no staging copy; POST /api/admin/stage/%s "
                                              "first",
                                              sd->name, sd->name)
                               : dg_error_set(err, DG_IO, "cannot stat %s.duckdb.next: %s",
                                              sd->name, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        return dg_error_set(err, DG_BAD_SNAPSHOT, "%s.duckdb.next is not a regular file", sd->name);
    }
    /* Two read-write instances of one file in one process would not see each other's locks
     * (POSIX locks are per process) and corrupt it: one at a time. */
    pthread_mutex_lock(&sd->mu);
    bool is_busy = sd->is_staging_open;
    sd->is_staging_open = true;
    pthread_mutex_unlock(&sd->mu);
    if (is_busy) {
        return dg_error_set(err, DG_STAGING_BUSY,
                            "another job is writing the staging copy of %s; run one at a time",
                            sd->name);
    }
    out->idx = (size_t)(sd - t->v);
    /* "<name>.stage" cannot be an instance's directory ("<name>" or "<name>.<gen>"). */
    n = t->temp_root ? snprintf(tdir, sizeof tdir, "%s/%s.stage", t->temp_root, sd->name) : -1;
    if (n > 0 && (size_t)n < sizeof tdir && dg_mkdir_p(tdir, 0700) == 0) {
        empty_dir(tdir);
        out->temp_dir = strdup(tdir);
    }
    dg_db_opts_t o = {
        .path = next,
        .name = sd->name,
        .read_only = false,
        .memory_limit = t->memory_limit,
        .max_temp_bytes = t->max_temp_bytes,
        .threads = t->threads,
        .temp_dir = out->temp_dir,
    };
    dg_error_t derr;
    dg_error_clear(&derr);
    dg_rc_t rc = dg_db_open(&o, &out->db, &derr);
    if (rc != DG_OK) {
        if (strstr(derr.msg, "Could not set lock") || strstr(derr.msg, "Conflicting lock")) {
            rc = dg_error_set(err, DG_STAGING_BUSY,
                              "the staging copy of %s is locked by another process (a job of "
                              "another server, or a local build)",
                              sd->name);
        } else {
            rc = dg_error_set(err, DG_BAD_SNAPSHOT, "the staging copy of %s does not open: %s",
                              sd->name, derr.msg[0] ? derr.msg : dg_rc_message(rc));
        }
        dg_engine__dbs_close_next(t, out, false, NULL);
    }
    return rc;
}

dg_rc_t dg_engine__dbs_close_next(dg_engine__dbs_t *t, dg_engine__staging_t *st, bool is_checkpoint,
                                  dg_error_t *err)
{
    dg_rc_t rc = DG_OK;
    if (st->db && is_checkpoint) {
        rc = dg_db_exec(st->db, "CHECKPOINT", err);
    }
    dg_db_close(st->db);
    if (st->temp_dir) {
        empty_dir(st->temp_dir);
        rmdir(st->temp_dir);
        free(st->temp_dir);
    }
    if (st->idx < t->n) {
        served_t *sd = &t->v[st->idx];
        pthread_mutex_lock(&sd->mu);
        sd->is_staging_open = false;
        pthread_mutex_unlock(&sd->mu);
    }
    memset(st, 0, sizeof *st);
    st->idx = SIZE_MAX;
    return rc;
}

/* ---- the refresh thread ------------------------------------------------------------------ */

static void *refresh_main(void *arg)
{
    dg_engine__dbs_t *t = arg;
    const struct timespec tick = {.tv_sec = DG_ENGINE__REFRESH_MS / 1000,
                                  .tv_nsec = (long)(DG_ENGINE__REFRESH_MS % 1000) * 1000000L};
    while (!atomic_load(&t->is_stopping)) {
        nanosleep(&tick, NULL);
        for (size_t i = 0; i < t->n; i++) {
            bool swapped;
            dg_error_t err;
            dg_error_clear(&err);
            /* Failures are logged once per file inside; nothing else to do here. */
            (void)maybe_reopen(t, &t->v[i], &swapped, &err);
        }
    }
    return NULL;
}

dg_rc_t dg_engine__dbs_start_refresh(dg_engine__dbs_t *t)
{
    if (t->has_refresher || pthread_create(&t->refresher, NULL, refresh_main, t) != 0) {
        return DG_INTERNAL;
    }
    t->has_refresher = true;
    return DG_OK;
}

void dg_engine__dbs_free(dg_engine__dbs_t *t)
{
    if (!t) {
        return;
    }
    if (t->has_refresher) {
        atomic_store(&t->is_stopping, true);
        pthread_join(t->refresher, NULL);
    }
    for (size_t i = 0; i < t->n; i++) {
        served_t *sd = &t->v[i];
        inst_unref(t, sd->cur);
        pthread_mutex_destroy(&sd->mu);
        pthread_mutex_destroy(&sd->open_mu);
        free(sd->name);
        free(sd->path);
    }
    free(t->v);
    free(t->temp_root);
    free(t);
}
