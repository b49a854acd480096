/* Internal interface shared by the files of src/enc (not for other modules).
 *
 * Encoding is planned once per column when the encoder is created: every column gets a
 * dg_enc__col_t holding the writer for its type and output mode, so the row loops only call
 * through a function pointer and never switch on the type per cell.
 *
 * Two kinds of writers exist:
 *  - fixed writers (`fix`) write a bounded amount of text (at most DG_ENC__FIX_MAX bytes,
 *    quotes included) straight into memory the caller has reserved;
 *  - variable writers (`var`) append to a dg_buf_t themselves (strings, BLOB, nested values).
 * Writers never see NULL cells: the caller checks validity first, except for SQLNULL columns
 * whose writer emits the NULL form itself. Pure functions of their input; thread-compatible. */
#ifndef DG_ENC_INT_H
#define DG_ENC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/batch.h"
#include "core/buf.h"
#include "core/rc.h"

__extension__ typedef unsigned __int128 dg_enc__u128_t;
__extension__ typedef __int128 dg_enc__i128_t;

/* Upper bound of what any fixed writer emits for one value, quotes included. The longest is an
 * INTERVAL ("P-178956970Y-8M-2147483648DT-2562047788H-47M-16.854775S" plus quotes, < 64). */
#define DG_ENC__FIX_MAX 72

typedef enum dg_enc__mode {
    DG_ENC__JSON = 0, /* JSON values (also nested values inside CSV/TSV cells) */
    DG_ENC__CSV,      /* RFC 4180 field text */
    DG_ENC__TSV,      /* PostgreSQL text-format field text */
} dg_enc__mode_t;

typedef struct dg_enc__col dg_enc__col_t;
typedef char *(*dg_enc__fix_fn)(const dg_vec_t *v, uint64_t row, char *o);
typedef dg_rc_t (*dg_enc__var_fn)(const dg_enc__col_t *c, const dg_vec_t *v, uint64_t row,
                                  dg_buf_t *out);

/* How a MAP key becomes a JSON object key. */
typedef enum dg_enc__key_kind {
    DG_ENC__KEY_STRING = 0, /* the key's JSON form is already a string: use it */
    DG_ENC__KEY_TEXT,       /* a number/bool: its text form, put in quotes (never needs escaping) */
    DG_ENC__KEY_NESTED,     /* nested: its JSON text, escaped as a string */
} dg_enc__key_kind_t;

struct dg_enc__col {
    const dg_type_t *type;
    dg_enc__mode_t mode;
    dg_enc__fix_fn fix;          /* exactly one of fix/var is set */
    dg_enc__var_fn var;
    size_t n_children;
    dg_enc__col_t *children;     /* STRUCT/UNION members; LIST/ARRAY element; MAP key, value */
    char **keys;                 /* STRUCT: pre-escaped `"name":` per member */
    size_t *key_lens;
    dg_enc__key_kind_t key_kind; /* MAP */
    dg_enc__fix_fn key_text;     /* MAP with DG_ENC__KEY_TEXT: text writer of the key */
    dg_buf_t *scratch;           /* CSV/TSV nested cells stage their JSON text here (borrowed) */
};

/* Plans column type t for mode. scratch is needed for CSV/TSV (may be NULL for JSON).
 * DG_NOMEM; on error the plan is released. */
dg_rc_t dg_enc__plan(dg_enc__col_t *c, const dg_type_t *t, dg_enc__mode_t mode, dg_buf_t *scratch);
/* Releases what dg_enc__plan allocated (not c itself). */
void dg_enc__plan_free(dg_enc__col_t *c);
/* Appends one cell (NULL included) in the column's mode. */
dg_rc_t dg_enc__cell(const dg_enc__col_t *c, const dg_vec_t *v, uint64_t row, dg_buf_t *out);
/* Appends s as a JSON string (with quotes), fast path for plain ASCII; core escaping rule. */
dg_rc_t dg_enc__json_str(dg_buf_t *out, const char *s, size_t len);
/* Appends s as a CSV or TSV field (mode), quoting/escaping as the format needs. */
dg_rc_t dg_enc__text_field(dg_buf_t *out, dg_enc__mode_t mode, const char *s, size_t len);

/* Room for n more bytes, cheap when it is already there. */
static inline dg_rc_t dg_enc__ensure(dg_buf_t *b, size_t n)
{
    if (b->alloc > b->len && b->alloc - b->len > n) {
        return DG_OK;
    }
    return dg_buf_reserve(b, n);
}

/* ---- enc_num.c ---- */
char *dg_enc__u64(uint64_t v, char *o);
char *dg_enc__i64(int64_t v, char *o);
char *dg_enc__u128(dg_enc__u128_t v, char *o);
char *dg_enc__i128(dg_enc__i128_t v, char *o);
/* Writes v / 10^scale with exactly scale fractional digits (no '.' when scale == 0). */
char *dg_enc__decimal64(int64_t v, unsigned scale, char *o);
char *dg_enc__decimal128(dg_enc__i128_t v, unsigned scale, char *o);
/* Shortest round-trip float32 text (finite values only); returns the end. */
char *dg_enc__float(float f, char *o);
char *dg_enc__dbl(double d, char *o);
/* Digits of v in exactly n characters, zero-padded on the left (n <= 19). */
void dg_enc__u64_fixed(uint64_t v, unsigned n, char *o);

/* ---- enc_time.c ---- (all write ISO 8601 text without quotes) */
char *dg_enc__date(int32_t days, char *o);
/* Timestamp in units of 10^-digits seconds (digits 0, 3, 6, 9); tz appends 'Z'. */
char *dg_enc__timestamp(int64_t v, unsigned digits, bool tz, char *o);
char *dg_enc__time(int64_t v, unsigned digits, char *o);
char *dg_enc__time_tz(uint64_t bits, char *o);
char *dg_enc__interval(const dg_interval_t *iv, char *o);
char *dg_enc__uuid(const dg_hugeint_t *h, char *o);

#endif
