/* The front's view of each served database's file: its identity (what the data version keys on)
 * and the swap of a rebuilt file `<data_dir>/<db>.duckdb.next` over the live one.
 *
 * Data version: dg_server__db_version adds the file generation of a database to its bump
 * counter. The generation grows by one every time a call sees another file at the path (a
 * rename by `duckgate build`, `mv`, or the reload route), so the version changes without any
 * route being called and no cached response computed from the old file matches a later key.
 * A call stats the files only when inotify on their directory has queued an event since the
 * last look (else it costs one poll of that queue, not a path walk per request); without
 * inotify, or once a watched directory moved, every call stats. Never a cached stat: that
 * would let responses keyed on the old version be served for the cache's age after a rename.
 *
 * Threads: every function may be called from any connection thread. */
#ifndef DG_SERVER_SWAP_H
#define DG_SERVER_SWAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "config/config.h"
#include "core/rc.h"

typedef struct dg_server__swap dg_server__swap_t;

/* What identifies the file behind a path (is_ok = false: the path could not be stat'ed). */
typedef struct dg_server__file_id {
    bool is_ok;
    dev_t dev;
    ino_t ino;
    struct timespec mtim;
    off_t size;
} dg_server__file_id_t;

/* Tracks dbs[0..n) (borrowed; must outlive the tracker), noting each file's identity now.
 * DG_NOMEM. */
dg_rc_t dg_server__swap_new(const dg_dbfile_t *dbs, size_t n, dg_server__swap_t **out);
/* NULL is allowed. */
void dg_server__swap_free(dg_server__swap_t *w);
/* The file generation of database idx (0 for a bad idx or a NULL tracker): stats the file and
 * counts a change of identity since the last call. */
uint64_t dg_server__swap_file_gen(dg_server__swap_t *w, int idx);

/* Serialises reloads of database idx (a second reload waits for the first). */
void dg_server__swap_lock(dg_server__swap_t *w, int idx);
void dg_server__swap_unlock(dg_server__swap_t *w, int idx);

/* Looks at `<path of idx>.next` before it is checked by an engine. *out_exists = false when
 * there is none (DG_OK). Otherwise *out_next is its identity. Errors: DG_BAD_SNAPSHOT when it
 * is not a regular file (symlinks are refused) or comes with a write-ahead log (`.next.wal`:
 * its changes would be lost by the rename), DG_IO when it cannot be examined; err says why
 * without server paths. */
dg_rc_t dg_server__swap_prepare(dg_server__swap_t *w, int idx, bool *out_exists,
                                dg_server__file_id_t *out_next, dg_error_t *err);
/* Renames `<path>.next` over `<path>` (atomic: a reader sees the old or the new file, never a
 * mix) and fsyncs the data directory so the swap survives a crash, provided the `.next` file is
 * still the one `expect` describes (else DG_BAD_SNAPSHOT: it changed after it was checked).
 * DG_IO when the rename fails (the old file is untouched). */
dg_rc_t dg_server__swap_commit(dg_server__swap_t *w, int idx, const dg_server__file_id_t *expect,
                               dg_error_t *err);

#endif
