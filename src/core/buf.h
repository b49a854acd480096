/* dg_buf_t: a growable byte buffer with a hard capacity. Anything sized by a client or a query
 * result is built in one of these, so growth past the cap is an error (DG_RESULT_TOO_LARGE by
 * default, or the code given at init) instead of an abort. Confined to one thread.
 * The buffer owns `p`; dg_buf_free releases it. `p` is always NUL-terminated when non-NULL
 * (the NUL is not counted in len and does not count against cap). */
#ifndef DG_BUF_H
#define DG_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "rc.h"

typedef struct dg_buf {
    char *p;
    size_t len;
    size_t alloc;   /* bytes allocated, including room for the NUL */
    size_t cap;     /* maximum len; 0 = SIZE_MAX */
    dg_rc_t over_rc;/* code returned when an append would pass cap */
} dg_buf_t;

/* Initialises an empty buffer that may hold at most cap bytes (0 = unbounded). No allocation. */
void dg_buf_init(dg_buf_t *b, size_t cap);
/* Like dg_buf_init, but appends past cap return over_rc. */
void dg_buf_init_rc(dg_buf_t *b, size_t cap, dg_rc_t over_rc);
/* Releases the storage; the buffer is empty and reusable afterwards. b may be NULL. */
void dg_buf_free(dg_buf_t *b);
/* Drops the contents, keeps the storage. */
void dg_buf_reset(dg_buf_t *b);
/* Makes room for extra more bytes. DG_NOMEM or over_rc on failure (buffer unchanged). */
dg_rc_t dg_buf_reserve(dg_buf_t *b, size_t extra);
/* Appends len bytes. */
dg_rc_t dg_buf_append(dg_buf_t *b, const void *p, size_t len);
/* Appends a NUL-terminated string. */
dg_rc_t dg_buf_puts(dg_buf_t *b, const char *s);
/* Appends one byte. */
dg_rc_t dg_buf_putc(dg_buf_t *b, char c);
/* Appends printf-style formatted text. */
dg_rc_t dg_buf_printf(dg_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal (with quotes), escaping per RFC 8259; invalid UTF-8 bytes
 * become U+FFFD, so the output is always valid UTF-8 JSON. */
dg_rc_t dg_buf_json_str(dg_buf_t *b, const char *s, size_t len);
/* Removes the first n bytes (n <= len). */
void dg_buf_consume(dg_buf_t *b, size_t n);
/* Transfers ownership of the contents to the caller (free() them); the buffer becomes empty. */
char *dg_buf_take(dg_buf_t *b, size_t *out_len);

#endif
