/* Blocking I/O helpers that finish the job: full reads/writes that retry on EINTR and short
 * counts, and the random request ids. Thread-safe. */
#ifndef DG_IOUTIL_H
#define DG_IOUTIL_H

#include <stddef.h>

#include "rc.h"

/* Writes all len bytes to fd (MSG_NOSIGNAL on sockets). DG_IO on error, DG_CLIENT_GONE on EPIPE. */
dg_rc_t dg_write_all(int fd, const void *p, size_t len);
/* Reads exactly len bytes. DG_IO on error, DG_PROTOCOL on EOF before len bytes. */
dg_rc_t dg_read_all(int fd, void *p, size_t len);
/* Creates dir and its missing parents with the given mode (like `mkdir -p`); existing
 * directories are fine. 0 on success, -1 with errno set (ENAMETOOLONG past PATH_MAX). */
int dg_mkdir_p(const char *dir, unsigned mode);
/* Fills out with a fresh random 16-hex-digit id plus NUL (out must hold 17 bytes). */
void dg_random_id(char out[17]);

/* Copies the regular file src to dst (created 0644, replaced if present) with copy_file_range
 * (in the kernel; extents shared where the filesystem can) and fsyncs dst. On error dst is
 * removed. DG_IO with the path and errno's text in err. */
dg_rc_t dg_copy_file(const char *src, const char *dst, dg_error_t *err);
/* Makes from the file named to, durably: fsync(from), rename(from, to) (atomic within one
 * directory: a reader opens the old or the new file), fsync of to's directory.
 * DG_IO, DG_NOMEM. */
dg_rc_t dg_rename_durable(const char *from, const char *to, dg_error_t *err);
/* Removes a database file and its write-ahead log (path.wal, which DuckDB would otherwise
 * replay into whatever file appears at path next). Missing files are fine. */
void dg_remove_db_file(const char *path);

#endif
