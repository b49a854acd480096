/* The engine's table of served databases and their lifecycle (engine processes only).
 *
 * Each served database is a holder of refcounted DuckDB instances (dg_db_t). A request takes a
 * reference to the current instance (dg_engine__dbs_acquire) and gives it back when it is done
 * (dg_engine__dbs_release). Before it hands out the instance, acquire compares the identity of
 * the file at the database's path (st_dev, st_ino, st_mtim, st_size; one stat, about a
 * microsecond) with the identity of the file the instance was opened from. When the file was
 * replaced (a rename into the data directory, `POST /api/admin/reload/{db}`, `duckgate build`),
 * the new file is opened READ_ONLY with the same sandbox settings and made current before the
 * request runs; requests already running keep the old instance, which is closed when the last
 * of them releases it. A background thread makes the same check every DG_ENGINE__REFRESH_MS,
 * so an idle engine switches (and lets go of the old file) without waiting for traffic.
 *
 * Guarantee: a request whose REQ frame is read after the replacing rename(2) returned runs on
 * the new file (or, when the new file cannot be opened, on the old one, with a WARN logged once
 * per file identity; it is tried again when the file changes again, or after 5 s in case the
 * cause was passing).
 *
 * Databases served read-write (one owning engine, admin writes) are never swapped: their file
 * changes by the engine's own writes, not by replacement.
 *
 * Locking: per database, `mu` guards the current instance pointer (held for a few instructions)
 * and `open_mu` serialises reopening. Opening a new file holds only that database's open_mu, so
 * requests to other databases never wait for it; requests to the database being reopened wait,
 * which is what makes them see the new file.
 *
 * Contract for code that keeps per-instance state (long-lived connections, cached prepared
 * statements). Every cursor of a request must be freed before the request releases its
 * reference. State kept inside the dg_db_t itself and freed by dg_db_close needs nothing more
 * (the named-query connection pool of src/db/db_named.c is such state: a reopened file gets a
 * new dg_db_t with an empty pool). State kept outside it:
 * - Either register a close hook (dg_engine__dbs_on_close) before serving starts: it runs with
 *   the dg_db_t that is about to be closed, after the last request released it and before
 *   dg_db_close, on the thread that dropped the last reference (a slot thread or the refresh
 *   thread). Free every connection and prepared statement of that dg_db_t there; the pointer
 *   may be reused by a later instance once the hook returns.
 * - Or key the state on dg_engine__dbref_t.gen (unique per database and instance, increasing)
 *   and rebuild it when a request brings a different gen; state must still be freed by a hook,
 *   since dg_db_close requires every connection of the instance to be gone.
 * State for an instance may be created only while holding a reference to it (between acquire
 * and release), so no hook can race with its creation. */
#ifndef DG_ENGINE_DBS_H
#define DG_ENGINE_DBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rc.h"
#include "db/db.h"

/* How often the refresh thread stats every swappable database's file. */
#define DG_ENGINE__REFRESH_MS 200

typedef struct dg_engine__dbs dg_engine__dbs_t;
typedef struct dg_engine__inst dg_engine__inst_t;

/* Settings shared by every instance of the table (from the engine's init message). */
typedef struct dg_engine__dbs_opts {
    uint64_t memory_limit;   /* per instance, bytes; 0 = DuckDB's default */
    uint64_t max_temp_bytes; /* per instance; 0 = dg_db's default */
    int threads;             /* per instance */
    const char *temp_root;   /* engine-private temp directory (emptied here), NULL = no spilling
                                and no Parquet export; borrowed for the call */
} dg_engine__dbs_opts_t;

/* What one request uses; valid between dg_engine__dbs_acquire and dg_engine__dbs_release. */
typedef struct dg_engine__dbref {
    const char *name;       /* served name; owned by the table */
    dg_db_t *db;            /* the instance; borrowed */
    bool is_read_write;     /* served read-write (never swapped) */
    const char *export_dir; /* absolute, private Parquet export directory; NULL = none */
    uint64_t gen;           /* instance generation: 1 for the first, +1 per swap */
    dg_engine__inst_t *inst;
} dg_engine__dbref_t;

/* Creates an empty table for up to cap databases. The temp root is created and emptied (a
 * previous engine's spill files are garbage once it is dead). DG_NOMEM. */
dg_rc_t dg_engine__dbs_new(const dg_engine__dbs_opts_t *o, size_t cap, dg_engine__dbs_t **out);
/* Opens database `name` at `path` (read-only unless is_read_write) and adds it. Start-up only,
 * before any acquire. Errors: those of dg_db_open (err names the database), DG_NOMEM,
 * DG_INTERNAL when the table is full. */
dg_rc_t dg_engine__dbs_add(dg_engine__dbs_t *t, const char *name, const char *path,
                           bool is_read_write, dg_error_t *err);
/* Starts the refresh thread (after every add). DG_INTERNAL when the thread cannot start. */
dg_rc_t dg_engine__dbs_start_refresh(dg_engine__dbs_t *t);
/* Registers a hook run before an instance is closed (see the file header). Start-up only.
 * DG_INTERNAL when too many hooks are registered. */
dg_rc_t dg_engine__dbs_on_close(dg_engine__dbs_t *t, void (*fn)(dg_db_t *db, void *ctx), void *ctx);

/* Stops the refresh thread and closes every instance; no reference may be outstanding (the
 * engine process itself exits without it; tests use it). NULL is allowed. */
void dg_engine__dbs_free(dg_engine__dbs_t *t);

size_t dg_engine__dbs_count(const dg_engine__dbs_t *t);
/* Served name of database i (< count); owned by the table. */
const char *dg_engine__dbs_name(const dg_engine__dbs_t *t, size_t i);

/* Takes a reference to the current instance of database `name` (NULL: unknown), switching to a
 * replaced file first (see the header). DG_UNKNOWN_DB. Any thread. */
dg_rc_t dg_engine__dbs_acquire(dg_engine__dbs_t *t, const char *name, dg_engine__dbref_t *out);
/* The same by index (< count), without the file check: for metrics. */
void dg_engine__dbs_acquire_at(dg_engine__dbs_t *t, size_t i, dg_engine__dbref_t *out);
/* Gives the reference back; the last reference to a replaced instance closes it here (hooks,
 * dg_db_close, its temp directory removed). Clears *ref; an empty ref is allowed. */
void dg_engine__dbs_release(dg_engine__dbs_t *t, dg_engine__dbref_t *ref);

/* Checks that `<path of name>.next` could be swapped in: a regular file (not a symlink) that
 * opens READ_ONLY with the sandbox settings and whose catalog can be read. The trial instance
 * is closed again before this returns. Errors: DG_UNKNOWN_DB, DG_BAD_REQUEST (a read-write
 * database), DG_NOT_FOUND (no .next file), DG_BAD_SNAPSHOT (not a regular file, does not open,
 * unreadable catalog; err says why, without server paths), DG_NOMEM. */
dg_rc_t dg_engine__dbs_check_next(dg_engine__dbs_t *t, const char *name, dg_error_t *err);
/* A staging copy `<path of name>.next` opened read-write for an admin job with `"target":
 * "next"` (docs/admin.md "Staging"): trusted SQL, the table's sandbox settings otherwise (no
 * external access, no extension loading, memory limit, threads) and a private temp directory
 * for spilling. At most one per database and engine process is open at a time; another
 * process (engine, server, `duckgate build`) is kept out by DuckDB's file lock. */
typedef struct dg_engine__staging {
    dg_db_t *db; /* the instance; owned until dg_engine__dbs_close_next */
    char *temp_dir;
    size_t idx; /* of the database in the table */
} dg_engine__staging_t;

/* Opens the staging copy of database `name` into *out. Errors: DG_UNKNOWN_DB, DG_BAD_REQUEST
 * (a read-write database has no staging copy), DG_NO_STAGING (no `.next` file), DG_STAGING_BUSY
 * (open here already, or locked by another process), DG_BAD_SNAPSHOT (not a regular file, or
 * not a DuckDB file), those of dg_db_open. err says why without server paths. Any thread. */
dg_rc_t dg_engine__dbs_open_next(dg_engine__dbs_t *t, const char *name, dg_engine__staging_t *out,
                                 dg_error_t *err);
/* Checkpoints the staging copy when is_checkpoint (so the file holds every change and no
 * write-ahead log is left for a reload to refuse), closes it and removes its temp directory.
 * Clears *st. Errors of the checkpoint (DG_SQL_ERROR, DG_IO, ...); the file is closed anyway. */
dg_rc_t dg_engine__dbs_close_next(dg_engine__dbs_t *t, dg_engine__staging_t *st, bool is_checkpoint,
                                  dg_error_t *err);

/* Switches database `name` to its replaced file now, if it was replaced, and reports the
 * generation then current. Errors: DG_UNKNOWN_DB; DG_BAD_SNAPSHOT when the replaced file does
 * not open (the old instance keeps serving; err says why). */
dg_rc_t dg_engine__dbs_refresh(dg_engine__dbs_t *t, const char *name, uint64_t *out_gen,
                               dg_error_t *err);

#endif
