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

#endif
