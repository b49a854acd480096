/* dg_str_t: a borrowed view of bytes that need not be NUL-terminated (network data never is
 * trusted to be). The view owns nothing. */
#ifndef DG_STR_H
#define DG_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dg_str {
    const char *p;
    size_t len;
} dg_str_t;

#define DG_STR_LIT(s) ((dg_str_t){(s), sizeof(s) - 1})

/* View of a NUL-terminated string (NULL gives the empty view). */
dg_str_t dg_str_c(const char *s);
bool dg_str_eq(dg_str_t a, dg_str_t b);
bool dg_str_eq_c(dg_str_t a, const char *b);
/* ASCII case-insensitive comparison. */
bool dg_str_ieq_c(dg_str_t a, const char *b);
bool dg_str_starts_with_c(dg_str_t a, const char *prefix);
/* Trims ASCII spaces and tabs at both ends. */
dg_str_t dg_str_trim(dg_str_t s);
/* Splits s at the first c: *out_head gets the part before it and the function returns the
 * rest after it (the empty view at p+len when c is absent; then *out_head is s). */
dg_str_t dg_str_split(dg_str_t s, char c, dg_str_t *out_head);
/* Iterates a comma-separated list held in a NUL-terminated string: from *io_p, the next item
 * trimmed of spaces and tabs (possibly empty, as in "a,,b") into *out_item, and *io_p past its
 * comma. False, with nothing changed, at the end of the string. Start with *io_p = the list. */
bool dg_str_list_next(const char **io_p, dg_str_t *out_item);
/* Parses an unsigned decimal integer that fills the whole view; false on overflow, sign,
 * empty input or any other byte. */
bool dg_str_to_u64(dg_str_t s, uint64_t *out);
/* Copies the view into a new NUL-terminated heap string (free() it); NULL on OOM. */
char *dg_str_dup(dg_str_t s);

#endif
