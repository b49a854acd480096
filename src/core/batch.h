/* Column batches: the shape in which query results travel from the DuckDB layer (src/db, the
 * producer) to the encoders (src/enc, the consumers) without either knowing the other.
 * The layout deliberately mirrors DuckDB's flat vectors so the producer hands over pointers into
 * DuckDB's own chunk memory (zero copy) and encoders read values straight from them.
 *
 * Ownership: the producer owns every dg_type_t, dg_schema_t, dg_vec_t and the data they point
 * to. A schema lives as long as its cursor; a batch and its vectors stay valid until the next
 * fetch on the same cursor or until the cursor is freed. Consumers only read. Confined to the
 * thread that fetched the batch. */
#ifndef DG_BATCH_H
#define DG_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Type ids use the same numbers as DuckDB's type enum (src/db asserts this at compile time). */
typedef enum dg_type_id {
    DG_TYPE_INVALID = 0,
    DG_TYPE_BOOLEAN = 1,      /* bool (1 byte) */
    DG_TYPE_TINYINT = 2,      /* int8_t */
    DG_TYPE_SMALLINT = 3,     /* int16_t */
    DG_TYPE_INTEGER = 4,      /* int32_t */
    DG_TYPE_BIGINT = 5,       /* int64_t */
    DG_TYPE_UTINYINT = 6,     /* uint8_t */
    DG_TYPE_USMALLINT = 7,    /* uint16_t */
    DG_TYPE_UINTEGER = 8,     /* uint32_t */
    DG_TYPE_UBIGINT = 9,      /* uint64_t */
    DG_TYPE_FLOAT = 10,       /* float */
    DG_TYPE_DOUBLE = 11,      /* double */
    DG_TYPE_TIMESTAMP = 12,   /* int64_t microseconds since epoch */
    DG_TYPE_DATE = 13,        /* int32_t days since epoch */
    DG_TYPE_TIME = 14,        /* int64_t microseconds since midnight */
    DG_TYPE_INTERVAL = 15,    /* dg_interval_t */
    DG_TYPE_HUGEINT = 16,     /* dg_hugeint_t */
    DG_TYPE_VARCHAR = 17,     /* dg_strval_t */
    DG_TYPE_BLOB = 18,        /* dg_strval_t */
    DG_TYPE_DECIMAL = 19,     /* storage type given by dg_type_t.storage, scaled by 10^scale */
    DG_TYPE_TIMESTAMP_S = 20, /* int64_t seconds */
    DG_TYPE_TIMESTAMP_MS = 21,/* int64_t milliseconds */
    DG_TYPE_TIMESTAMP_NS = 22,/* int64_t nanoseconds */
    DG_TYPE_ENUM = 23,        /* index of storage type (UTINYINT/USMALLINT/UINTEGER) into enum_values */
    DG_TYPE_LIST = 24,        /* dg_list_entry_t; children[0] holds the elements */
    DG_TYPE_STRUCT = 25,      /* no data; children[i] per member, names in child_names */
    DG_TYPE_MAP = 26,         /* as LIST; children[0] is a STRUCT(key, value) */
    DG_TYPE_UUID = 27,        /* dg_hugeint_t with the top bit flipped (DuckDB's storage) */
    DG_TYPE_UNION = 28,       /* as STRUCT; children[0] is the UTINYINT tag, then the members */
    DG_TYPE_BIT = 29,         /* dg_strval_t: first byte = padding bits, then the bits */
    DG_TYPE_TIME_TZ = 30,     /* uint64_t: micros << 24 | (offset seconds encoded, see DuckDB) */
    DG_TYPE_TIMESTAMP_TZ = 31,/* int64_t microseconds since epoch, UTC */
    DG_TYPE_UHUGEINT = 32,    /* dg_uhugeint_t */
    DG_TYPE_ARRAY = 33,       /* no data; children[0] holds array_size elements per row */
    DG_TYPE_ANY = 34,
    DG_TYPE_BIGNUM = 35,      /* dg_strval_t, DuckDB's varint blob encoding */
    DG_TYPE_SQLNULL = 36,     /* every value is NULL */
    DG_TYPE_STRING_LITERAL = 37,
    DG_TYPE_INTEGER_LITERAL = 38,
    DG_TYPE_TIME_NS = 39,     /* int64_t nanoseconds since midnight */
} dg_type_id_t;

typedef struct dg_hugeint {
    uint64_t lower;
    int64_t upper;
} dg_hugeint_t;

typedef struct dg_uhugeint {
    uint64_t lower;
    uint64_t upper;
} dg_uhugeint_t;

typedef struct dg_interval {
    int32_t months;
    int32_t days;
    int64_t micros;
} dg_interval_t;

typedef struct dg_list_entry {
    uint64_t offset;
    uint64_t length;
} dg_list_entry_t;

/* DuckDB's 16-byte string: inline when length <= 12, else a 4-byte prefix and a pointer. */
typedef struct dg_strval {
    union {
        struct {
            uint32_t length;
            char prefix[4];
            const char *ptr;
        } pointer;
        struct {
            uint32_t length;
            char inlined[12];
        } inlined;
    } value;
} dg_strval_t;

/* Pointer to the bytes of a string value and its length. */
static inline const char *dg_strval_data(const dg_strval_t *s, uint32_t *out_len)
{
    *out_len = s->value.inlined.length;
    return s->value.inlined.length <= 12 ? s->value.inlined.inlined : s->value.pointer.ptr;
}

typedef struct dg_type dg_type_t;
struct dg_type {
    dg_type_id_t id;
    const char *name;          /* DuckDB's spelling: "DECIMAL(18,3)", "INTEGER[]", "STRUCT(a INTEGER)" */
    uint8_t width, scale;      /* DECIMAL */
    dg_type_id_t storage;      /* DECIMAL: SMALLINT/INTEGER/BIGINT/HUGEINT; ENUM: UTINYINT/USMALLINT/UINTEGER */
    uint64_t array_size;       /* ARRAY */
    size_t n_children;
    const dg_type_t *const *children;   /* LIST/MAP/ARRAY: 1; STRUCT/UNION: members */
    const char *const *child_names;     /* STRUCT/UNION member names; NULL otherwise */
    size_t n_enum;
    const char *const *enum_values;     /* ENUM dictionary */
};

typedef struct dg_vec dg_vec_t;
struct dg_vec {
    const dg_type_t *type;
    const void *data;          /* flat values of the row type; NULL for STRUCT/ARRAY/SQLNULL */
    const uint64_t *validity;  /* NULL = all valid; row i valid iff bit (i % 64) of word i / 64 */
    uint64_t child_len;        /* LIST/MAP: number of elements in children[0] */
    size_t n_children;
    const dg_vec_t *children;
};

static inline bool dg_vec_is_valid(const dg_vec_t *v, uint64_t row)
{
    return !v->validity || (v->validity[row >> 6] >> (row & 63)) & 1;
}

typedef struct dg_schema {
    size_t n_cols;
    const char *const *names;
    const dg_type_t *const *types;
} dg_schema_t;

typedef struct dg_batch {
    uint64_t n_rows;
    size_t n_cols;
    const dg_vec_t *cols;
} dg_batch_t;

#endif
