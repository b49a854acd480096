/* Arrow IPC stream writer (see arrow_ipc.h). The FlatBuffers builder writes back to front, the
 * way the reference builder does: children are finished before their parents, so every uoffset
 * points forward and vtables sit just before their tables. Positions are kept as "refs": the
 * number of bytes from an object's first byte to the end of the buffer. */
#include "enc/arrow_ipc.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "Arrow IPC is written little-endian");

/* ---- FlatBuffers builder ------------------------------------------------------------------ */

enum { FB_MAX_FIELDS = 8 };

typedef struct fbb {
    uint8_t *buf;
    size_t cap, size, minalign;
    bool oom;
    uint32_t field_ref[FB_MAX_FIELDS];
    int n_fields;
    size_t table_start;
} fbb_t;

static uint8_t *fbb_claim(fbb_t *b, size_t n)
{
    if (b->oom) {
        return NULL;
    }
    if (b->cap - b->size < n) {
        size_t ncap = b->cap ? b->cap * 2 : 1024;
        while (ncap - b->size < n) {
            ncap *= 2;
        }
        uint8_t *nb = malloc(ncap);
        if (!nb) {
            b->oom = true;
            return NULL;
        }
        if (b->size) {
            memcpy(nb + ncap - b->size, b->buf + b->cap - b->size, b->size);
        }
        free(b->buf);
        b->buf = nb;
        b->cap = ncap;
    }
    b->size += n;
    return b->buf + b->cap - b->size;
}

/* Pads so that after writing n more bytes the size is a multiple of align. */
static void fbb_align(fbb_t *b, size_t n, size_t align)
{
    if (align > b->minalign) {
        b->minalign = align;
    }
    size_t pad = (align - ((b->size + n) & (align - 1))) & (align - 1);
    uint8_t *p = fbb_claim(b, pad);
    if (p) {
        memset(p, 0, pad);
    }
}

static void fbb_push(fbb_t *b, const void *v, size_t n)
{
    fbb_align(b, n, n);
    uint8_t *p = fbb_claim(b, n);
    if (p) {
        memcpy(p, v, n);
    }
}

static void fbb_push_uoff(fbb_t *b, uint32_t ref)
{
    fbb_align(b, 4, 4);
    uint32_t v = (uint32_t)(b->size + 4 - ref);
    fbb_push(b, &v, 4);
}

static uint32_t fbb_string(fbb_t *b, const char *s)
{
    size_t len = s ? strlen(s) : 0;
    fbb_align(b, len + 1 + 4, 4);
    uint8_t *p = fbb_claim(b, len + 1);
    if (p) {
        if (len) {
            memcpy(p, s, len);
        }
        p[len] = 0;
    }
    uint32_t l32 = (uint32_t)len;
    fbb_push(b, &l32, 4);
    return (uint32_t)b->size;
}

static uint32_t fbb_vec_refs(fbb_t *b, const uint32_t *refs, size_t n)
{
    fbb_align(b, n * 4 + 4, 4);
    for (size_t i = n; i-- > 0;) {
        fbb_push_uoff(b, refs[i]);
    }
    uint32_t n32 = (uint32_t)n;
    fbb_push(b, &n32, 4);
    return (uint32_t)b->size;
}

/* A vector of 16-byte structs of two int64 (FieldNode, Buffer). */
static uint32_t fbb_vec_pairs(fbb_t *b, const int64_t *pairs, size_t n)
{
    fbb_align(b, n * 16, 8);
    uint8_t *p = fbb_claim(b, n * 16);
    if (p && n) {
        memcpy(p, pairs, n * 16);
    }
    uint32_t n32 = (uint32_t)n;
    fbb_push(b, &n32, 4);
    return (uint32_t)b->size;
}

static uint32_t fbb_vec_i32(fbb_t *b, const int32_t *v, size_t n)
{
    fbb_align(b, n * 4 + 4, 4);
    uint8_t *p = fbb_claim(b, n * 4);
    if (p && n) {
        memcpy(p, v, n * 4);
    }
    uint32_t n32 = (uint32_t)n;
    fbb_push(b, &n32, 4);
    return (uint32_t)b->size;
}

static void fbb_table_start(fbb_t *b)
{
    memset(b->field_ref, 0, sizeof b->field_ref);
    b->n_fields = 0;
    b->table_start = b->size;
}

static void fbb_mark(fbb_t *b, int id)
{
    b->field_ref[id] = (uint32_t)b->size;
    if (id + 1 > b->n_fields) {
        b->n_fields = id + 1;
    }
}

static void fbb_add_u8(fbb_t *b, int id, uint8_t v)
{
    fbb_push(b, &v, 1);
    fbb_mark(b, id);
}

static void fbb_add_i16(fbb_t *b, int id, int16_t v)
{
    fbb_push(b, &v, 2);
    fbb_mark(b, id);
}

static void fbb_add_i32(fbb_t *b, int id, int32_t v)
{
    fbb_push(b, &v, 4);
    fbb_mark(b, id);
}

static void fbb_add_i64(fbb_t *b, int id, int64_t v)
{
    fbb_push(b, &v, 8);
    fbb_mark(b, id);
}

static void fbb_add_ref(fbb_t *b, int id, uint32_t ref)
{
    fbb_push_uoff(b, ref);
    fbb_mark(b, id);
}

static uint32_t fbb_table_end(fbb_t *b)
{
    int32_t placeholder = 0;
    fbb_push(b, &placeholder, 4);
    uint32_t table_ref = (uint32_t)b->size;
    uint16_t table_size = (uint16_t)(table_ref - b->table_start);
    for (int i = b->n_fields; i-- > 0;) {
        uint16_t off = b->field_ref[i] ? (uint16_t)(table_ref - b->field_ref[i]) : 0;
        fbb_push(b, &off, 2);
    }
    uint16_t vt_size = (uint16_t)(4 + 2 * b->n_fields);
    fbb_push(b, &table_size, 2);
    fbb_push(b, &vt_size, 2);
    uint32_t vt_ref = (uint32_t)b->size;
    if (!b->oom) {
        int32_t soff = (int32_t)(vt_ref - table_ref);
        memcpy(b->buf + b->cap - table_ref, &soff, 4);
    }
    return table_ref;
}

static void fbb_finish(fbb_t *b, uint32_t root)
{
    fbb_align(b, 4, b->minalign > 8 ? b->minalign : 8);
    fbb_push_uoff(b, root);
}

static void fbb_reset(fbb_t *b)
{
    b->size = 0;
    b->minalign = 1;
    b->oom = false;
}

/* ---- Arrow types ---------------------------------------------------------------------------- */

enum { /* Type union tags of Schema.fbs */
       T_NULL = 1, T_INT = 2, T_FLOAT = 3, T_BINARY = 4, T_UTF8 = 5, T_BOOL = 6, T_DECIMAL = 7,
       T_DATE = 8, T_TIME = 9, T_TIMESTAMP = 10, T_INTERVAL = 11, T_LIST = 12, T_STRUCT = 13,
       T_UNION = 14, T_FIXED_BINARY = 15, T_FIXED_LIST = 16, T_MAP = 17, T_DURATION = 18,
       T_LARGE_BINARY = 19, T_LARGE_UTF8 = 20, T_LARGE_LIST = 21 };

typedef enum { L_NULL, L_PRIM, L_BOOL, L_VAR, L_LIST, L_FIXLIST, L_STRUCT, L_SPARSE, L_DENSE } layout_t;

typedef struct arrow_type {
    int tag;
    layout_t layout;
    int width;        /* bytes per value (L_PRIM), offset width (L_VAR/L_LIST) */
    int a, b, c;      /* type parameters: int bits/signed, precision/scale/bits, unit, list size */
    const char *tz;   /* timestamp time zone (points into the format string) */
    int32_t type_ids[128];
    int n_type_ids;
} arrow_type_t;

static int parse_int(const char **p)
{
    int v = 0, any = 0;
    while (**p >= '0' && **p <= '9' && v < 100000000) {
        v = v * 10 + (**p - '0');
        (*p)++;
        any = 1;
    }
    return any ? v : -1;
}

static int time_unit(char c)
{
    return c == 's' ? 0 : c == 'm' ? 1 : c == 'u' ? 2 : c == 'n' ? 3 : -1;
}

/* Parses a C Data Interface format string. Returns false for what the writer does not support. */
static bool parse_format(const char *f, arrow_type_t *t)
{
    memset(t, 0, sizeof *t);
    t->layout = L_PRIM;
    if (!f || !*f) {
        return false;
    }
    if (f[1] == '\0') {
        static const char ints[] = "cCsSiIlL";
        const char *hit = strchr(ints, f[0]);
        if (hit) {
            int i = (int)(hit - ints);
            t->tag = T_INT;
            t->width = 1 << (i / 2);
            t->a = t->width * 8;
            t->b = (i % 2) == 0; /* lower case = signed */
            return true;
        }
        switch (f[0]) {
        case 'n':
            t->tag = T_NULL;
            t->layout = L_NULL;
            return true;
        case 'b':
            t->tag = T_BOOL;
            t->layout = L_BOOL;
            return true;
        case 'e':
        case 'f':
        case 'g':
            t->tag = T_FLOAT;
            t->a = f[0] == 'e' ? 0 : f[0] == 'f' ? 1 : 2;
            t->width = f[0] == 'e' ? 2 : f[0] == 'f' ? 4 : 8;
            return true;
        case 'z':
        case 'u':
            t->tag = f[0] == 'z' ? T_BINARY : T_UTF8;
            t->layout = L_VAR;
            t->width = 4;
            return true;
        case 'Z':
        case 'U':
            t->tag = f[0] == 'Z' ? T_LARGE_BINARY : T_LARGE_UTF8;
            t->layout = L_VAR;
            t->width = 8;
            return true;
        default:
            return false;
        }
    }
    const char *p = f + 2;
    if (f[0] == 'w' && f[1] == ':') {
        t->tag = T_FIXED_BINARY;
        t->width = t->a = parse_int(&p);
        return t->width > 0 && *p == '\0';
    }
    if (f[0] == 'd' && f[1] == ':') {
        t->tag = T_DECIMAL;
        t->a = parse_int(&p);
        if (*p++ != ',') {
            return false;
        }
        t->b = parse_int(&p);
        t->c = 128;
        if (*p == ',') {
            p++;
            t->c = parse_int(&p);
        }
        t->width = t->c / 8;
        return *p == '\0' && t->a > 0 && (t->c == 128 || t->c == 64 || t->c == 32 || t->c == 256);
    }
    if (f[0] == 't') {
        if (f[1] == 'd' && (f[2] == 'D' || f[2] == 'm') && !f[3]) {
            t->tag = T_DATE;
            t->a = f[2] == 'D' ? 0 : 1;
            t->width = f[2] == 'D' ? 4 : 8;
            return true;
        }
        if (f[1] == 't' && time_unit(f[2]) >= 0 && !f[3]) {
            t->tag = T_TIME;
            t->a = time_unit(f[2]);
            t->width = t->a <= 1 ? 4 : 8;
            t->b = t->width * 8;
            return true;
        }
        if (f[1] == 's' && time_unit(f[2]) >= 0 && f[3] == ':') {
            t->tag = T_TIMESTAMP;
            t->a = time_unit(f[2]);
            t->width = 8;
            t->tz = f + 4;
            return true;
        }
        if (f[1] == 'D' && time_unit(f[2]) >= 0 && !f[3]) {
            t->tag = T_DURATION;
            t->a = time_unit(f[2]);
            t->width = 8;
            return true;
        }
        if (f[1] == 'i' && !f[3]) {
            t->tag = T_INTERVAL;
            t->a = f[2] == 'M' ? 0 : f[2] == 'D' ? 1 : f[2] == 'n' ? 2 : -1;
            t->width = f[2] == 'M' ? 4 : f[2] == 'D' ? 8 : 16;
            return t->a >= 0;
        }
        return false;
    }
    if (f[0] == '+') {
        switch (f[1]) {
        case 'l':
        case 'L':
            t->tag = f[1] == 'l' ? T_LIST : T_LARGE_LIST;
            t->layout = L_LIST;
            t->width = f[1] == 'l' ? 4 : 8;
            return !f[2];
        case 'm':
            t->tag = T_MAP;
            t->layout = L_LIST;
            t->width = 4;
            return !f[2];
        case 's':
            t->tag = T_STRUCT;
            t->layout = L_STRUCT;
            return !f[2];
        case 'w':
            p = f + 3;
            t->tag = T_FIXED_LIST;
            t->layout = L_FIXLIST;
            t->a = f[2] == ':' ? parse_int(&p) : -1;
            return t->a > 0 && *p == '\0';
        case 'u':
            if ((f[2] != 's' && f[2] != 'd') || f[3] != ':') {
                return false;
            }
            t->tag = T_UNION;
            t->layout = f[2] == 's' ? L_SPARSE : L_DENSE;
            t->a = f[2] == 's' ? 0 : 1;
            p = f + 4;
            while (*p) {
                int id = parse_int(&p);
                if (id < 0 || id > 127 || t->n_type_ids >= 128) {
                    return false;
                }
                t->type_ids[t->n_type_ids++] = id;
                if (*p == ',') {
                    p++;
                } else if (*p) {
                    return false;
                }
            }
            return true;
        default:
            return false;
        }
    }
    return false;
}

/* ---- the writer --------------------------------------------------------------------------- */

typedef struct body_buf {
    const void *p;
    int64_t len;
} body_buf_t;

struct dg_arrow_ipc {
    const struct ArrowSchema *schema;
    fbb_t fb;
    int64_t *nodes;       /* FieldNode pairs: length, null_count */
    size_t n_nodes, cap_nodes;
    body_buf_t *bufs;
    int64_t *buf_pairs;   /* Buffer pairs: offset, length */
    size_t n_bufs, cap_bufs;
    int64_t next_dict_id;
};

static dg_rc_t check_schema(dg_arrow_ipc_t *w, const struct ArrowSchema *s, bool in_dict,
                            dg_error_t *err)
{
    arrow_type_t t;
    const struct ArrowSchema *value = s->dictionary ? s->dictionary : s;
    if (s->dictionary) {
        if (in_dict || !parse_format(s->format, &t) || t.tag != T_INT) {
            return dg_error_set(err, DG_NOT_ACCEPTABLE, "column %s: unsupported Arrow dictionary",
                                s->name ? s->name : "?");
        }
        w->next_dict_id++;
    }
    if (!parse_format(value->format, &t)) {
        return dg_error_set(err, DG_NOT_ACCEPTABLE,
                            "column %s: Arrow type '%s' cannot be written as an Arrow IPC stream",
                            s->name ? s->name : "?", value->format ? value->format : "");
    }
    for (int64_t i = 0; i < value->n_children; i++) {
        dg_rc_t rc = check_schema(w, value->children[i], in_dict || s->dictionary, err);
        if (rc != DG_OK) {
            return rc;
        }
    }
    return DG_OK;
}

dg_rc_t dg_arrow_ipc_new(const struct ArrowSchema *schema, dg_arrow_ipc_t **out, dg_error_t *err)
{
    *out = NULL;
    arrow_type_t t;
    if (!schema || !parse_format(schema->format, &t) || t.tag != T_STRUCT) {
        return dg_error_set(err, DG_INTERNAL, "Arrow result schema is not a struct");
    }
    dg_arrow_ipc_t *w = calloc(1, sizeof *w);
    if (!w) {
        return dg_error_set(err, DG_NOMEM, NULL);
    }
    w->schema = schema;
    for (int64_t i = 0; i < schema->n_children; i++) {
        dg_rc_t rc = check_schema(w, schema->children[i], false, err);
        if (rc != DG_OK) {
            free(w);
            return rc;
        }
    }
    *out = w;
    return DG_OK;
}

void dg_arrow_ipc_free(dg_arrow_ipc_t *w)
{
    if (!w) {
        return;
    }
    free(w->fb.buf);
    free(w->nodes);
    free(w->bufs);
    free(w->buf_pairs);
    free(w);
}

/* Writes the Type table for t; returns its ref. */
static uint32_t write_type(fbb_t *b, const arrow_type_t *t)
{
    uint32_t tz_ref = 0, ids_ref = 0;
    if (t->tag == T_TIMESTAMP && t->tz && *t->tz) {
        tz_ref = fbb_string(b, t->tz);
    }
    if (t->tag == T_UNION) {
        ids_ref = fbb_vec_i32(b, t->type_ids, (size_t)t->n_type_ids);
    }
    fbb_table_start(b);
    switch (t->tag) {
    case T_INT:
        fbb_add_i32(b, 0, t->a);
        fbb_add_u8(b, 1, (uint8_t)t->b);
        break;
    case T_FLOAT:
    case T_DATE:
    case T_INTERVAL:
    case T_DURATION:
        fbb_add_i16(b, 0, (int16_t)t->a);
        break;
    case T_DECIMAL:
        fbb_add_i32(b, 0, t->a);
        fbb_add_i32(b, 1, t->b);
        fbb_add_i32(b, 2, t->c);
        break;
    case T_TIME:
        fbb_add_i16(b, 0, (int16_t)t->a);
        fbb_add_i32(b, 1, t->b);
        break;
    case T_TIMESTAMP:
        fbb_add_i16(b, 0, (int16_t)t->a);
        if (tz_ref) {
            fbb_add_ref(b, 1, tz_ref);
        }
        break;
    case T_FIXED_BINARY:
    case T_FIXED_LIST:
        fbb_add_i32(b, 0, t->a);
        break;
    case T_UNION:
        fbb_add_i16(b, 0, (int16_t)t->a);
        fbb_add_ref(b, 1, ids_ref);
        break;
    default: /* Null, Bool, Binary, Utf8, List, Struct_, Map (keysSorted false), Large* */
        break;
    }
    return fbb_table_end(b);
}

static uint32_t write_field(dg_arrow_ipc_t *w, const struct ArrowSchema *s)
{
    fbb_t *b = &w->fb;
    const struct ArrowSchema *value = s->dictionary ? s->dictionary : s;
    int64_t dict_id = s->dictionary ? w->next_dict_id++ : -1;
    arrow_type_t t, idx;
    parse_format(value->format, &t);
    uint32_t child_refs_stack[16] = {0}, *child_refs = child_refs_stack;
    if (value->n_children > 16) {
        child_refs = malloc((size_t)value->n_children * sizeof *child_refs);
        if (!child_refs) {
            b->oom = true;
            return 0;
        }
    }
    for (int64_t i = 0; i < value->n_children; i++) {
        child_refs[i] = write_field(w, value->children[i]);
    }
    uint32_t children = fbb_vec_refs(b, child_refs, (size_t)value->n_children);
    if (child_refs != child_refs_stack) {
        free(child_refs);
    }
    uint32_t name = fbb_string(b, s->name ? s->name : "");
    uint32_t type = write_type(b, &t);
    uint32_t dict = 0;
    if (dict_id >= 0) {
        parse_format(s->format, &idx);
        uint32_t index_type = write_type(b, &idx);
        fbb_table_start(b);
        fbb_add_i64(b, 0, dict_id);
        fbb_add_ref(b, 1, index_type);
        fbb_add_u8(b, 2, (s->flags & ARROW_FLAG_DICTIONARY_ORDERED) != 0);
        dict = fbb_table_end(b);
    }
    fbb_table_start(b);
    fbb_add_ref(b, 0, name);
    fbb_add_u8(b, 1, (s->flags & ARROW_FLAG_NULLABLE) != 0);
    fbb_add_u8(b, 2, (uint8_t)t.tag);
    fbb_add_ref(b, 3, type);
    if (dict) {
        fbb_add_ref(b, 4, dict);
    }
    fbb_add_ref(b, 5, children);
    return fbb_table_end(b);
}

/* Appends an encapsulated message: continuation, metadata length, metadata padded to 8. */
static dg_rc_t emit_message(dg_arrow_ipc_t *w, uint8_t header_type, uint32_t header,
                            int64_t body_len, dg_buf_t *out)
{
    fbb_t *b = &w->fb;
    fbb_table_start(b);
    fbb_add_i64(b, 3, body_len);
    fbb_add_ref(b, 2, header);
    fbb_add_i16(b, 0, 4 /* MetadataVersion V5 */);
    fbb_add_u8(b, 1, header_type);
    uint32_t msg = fbb_table_end(b);
    fbb_finish(b, msg);
    if (b->oom) {
        return DG_NOMEM;
    }
    size_t meta_len = (b->size + 7) & ~(size_t)7;
    uint32_t prefix[2] = {0xFFFFFFFFu, (uint32_t)meta_len};
    dg_rc_t rc = dg_buf_reserve(out, 8 + meta_len);
    if (rc != DG_OK) {
        return rc;
    }
    dg_buf_append(out, prefix, 8);
    dg_buf_append(out, b->buf + b->cap - b->size, b->size);
    static const char zeros[8] = {0};
    return dg_buf_append(out, zeros, meta_len - b->size);
}

dg_rc_t dg_arrow_ipc_write_schema(dg_arrow_ipc_t *w, dg_buf_t *out)
{
    fbb_t *b = &w->fb;
    fbb_reset(b);
    w->next_dict_id = 0;
    size_t n = (size_t)w->schema->n_children;
    uint32_t *refs = calloc(n ? n : 1, sizeof *refs);
    if (!refs) {
        return DG_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        refs[i] = write_field(w, w->schema->children[i]);
    }
    uint32_t fields = fbb_vec_refs(b, refs, n);
    free(refs);
    fbb_table_start(b);
    fbb_add_ref(b, 1, fields);
    uint32_t schema = fbb_table_end(b);
    return emit_message(w, 1 /* Schema */, schema, 0, out);
}

static bool push_node(dg_arrow_ipc_t *w, int64_t length, int64_t nulls)
{
    if (w->n_nodes == w->cap_nodes) {
        size_t nc = w->cap_nodes ? w->cap_nodes * 2 : 32;
        int64_t *nn = realloc(w->nodes, nc * 2 * sizeof *nn);
        if (!nn) {
            return false;
        }
        w->nodes = nn;
        w->cap_nodes = nc;
    }
    w->nodes[2 * w->n_nodes] = length;
    w->nodes[2 * w->n_nodes + 1] = nulls;
    w->n_nodes++;
    return true;
}

static bool push_buf(dg_arrow_ipc_t *w, const void *p, int64_t len)
{
    if (w->n_bufs == w->cap_bufs) {
        size_t nc = w->cap_bufs ? w->cap_bufs * 2 : 64;
        body_buf_t *nb = realloc(w->bufs, nc * sizeof *nb);
        if (!nb) {
            return false;
        }
        w->bufs = nb;
        int64_t *np = realloc(w->buf_pairs, nc * 2 * sizeof *np);
        if (!np) {
            return false;
        }
        w->buf_pairs = np;
        w->cap_bufs = nc;
    }
    w->bufs[w->n_bufs].p = p;
    w->bufs[w->n_bufs].len = p ? len : 0;
    w->n_bufs++;
    return true;
}

static int64_t count_nulls(const struct ArrowArray *a)
{
    if (a->null_count >= 0) {
        return a->null_count;
    }
    const uint8_t *bits = a->n_buffers > 0 ? a->buffers[0] : NULL;
    if (!bits) {
        return 0;
    }
    int64_t valid = 0;
    for (int64_t i = 0; i < a->length; i++) {
        valid += (bits[i >> 3] >> (i & 7)) & 1;
    }
    return a->length - valid;
}

/* Collects the field nodes and body buffers of array a with schema s, pre-order. For a
 * dictionary-encoded column s->format is the index type, so this collects the indices; the values
 * go to a DictionaryBatch (emit_dictionaries). */
static dg_rc_t collect(dg_arrow_ipc_t *w, const struct ArrowSchema *s, const struct ArrowArray *a,
                       dg_error_t *err)
{
    arrow_type_t t;
    parse_format(s->format, &t);
    if (a->offset != 0) {
        return dg_error_set(err, DG_INTERNAL, "Arrow arrays with offsets are not supported");
    }
    int64_t n = a->length;
    int64_t nulls = t.layout == L_NULL ? n : count_nulls(a);
    if (!push_node(w, n, nulls)) {
        return dg_error_set(err, DG_NOMEM, NULL);
    }
    const void *validity = a->n_buffers > 0 ? a->buffers[0] : NULL;
    int64_t vlen = nulls > 0 ? (n + 7) / 8 : 0;
    bool ok = true;
    switch (t.layout) {
    case L_NULL:
        break;
    case L_PRIM:
        ok = push_buf(w, validity, vlen) && push_buf(w, a->buffers[1], n * t.width);
        break;
    case L_BOOL:
        ok = push_buf(w, validity, vlen) && push_buf(w, a->buffers[1], (n + 7) / 8);
        break;
    case L_VAR: {
        int64_t data_len = 0;
        if (n > 0 && a->buffers[1]) {
            data_len = t.width == 4 ? ((const int32_t *)a->buffers[1])[n]
                                    : ((const int64_t *)a->buffers[1])[n];
        }
        ok = push_buf(w, validity, vlen) && push_buf(w, a->buffers[1], (n + 1) * t.width) &&
             push_buf(w, a->buffers[2], data_len);
        break;
    }
    case L_LIST:
        ok = push_buf(w, validity, vlen) && push_buf(w, a->buffers[1], (n + 1) * t.width);
        break;
    case L_FIXLIST:
    case L_STRUCT:
        ok = push_buf(w, validity, vlen);
        break;
    case L_SPARSE:
        ok = push_buf(w, a->buffers[0], n);
        break;
    case L_DENSE:
        ok = push_buf(w, a->buffers[0], n) && push_buf(w, a->buffers[1], n * 4);
        break;
    }
    if (!ok) {
        return dg_error_set(err, DG_NOMEM, NULL);
    }
    if (s->dictionary) {
        return DG_OK;
    }
    if (a->n_children != s->n_children) {
        return dg_error_set(err, DG_INTERNAL, "Arrow array does not match its schema");
    }
    for (int64_t i = 0; i < s->n_children; i++) {
        dg_rc_t rc = collect(w, s->children[i], a->children[i], err);
        if (rc != DG_OK) {
            return rc;
        }
    }
    return DG_OK;
}

/* Writes a RecordBatch table for the collected nodes/buffers and the message + body. */
static dg_rc_t emit_batch(dg_arrow_ipc_t *w, int64_t length, int64_t dict_id, dg_buf_t *out)
{
    int64_t body = 0;
    for (size_t i = 0; i < w->n_bufs; i++) {
        w->buf_pairs[2 * i] = body;
        w->buf_pairs[2 * i + 1] = w->bufs[i].len;
        body += (w->bufs[i].len + 7) & ~(int64_t)7;
    }
    fbb_t *b = &w->fb;
    fbb_reset(b);
    uint32_t buffers = fbb_vec_pairs(b, w->buf_pairs, w->n_bufs);
    uint32_t nodes = fbb_vec_pairs(b, w->nodes, w->n_nodes);
    fbb_table_start(b);
    fbb_add_i64(b, 0, length);
    fbb_add_ref(b, 1, nodes);
    fbb_add_ref(b, 2, buffers);
    uint32_t rb = fbb_table_end(b);
    uint32_t header = rb;
    uint8_t header_type = 3; /* RecordBatch */
    if (dict_id >= 0) {
        fbb_table_start(b);
        fbb_add_i64(b, 0, dict_id);
        fbb_add_ref(b, 1, rb);
        header = fbb_table_end(b);
        header_type = 2; /* DictionaryBatch */
    }
    dg_rc_t rc = emit_message(w, header_type, header, body, out);
    if (rc != DG_OK) {
        return rc;
    }
    rc = dg_buf_reserve(out, (size_t)body);
    if (rc != DG_OK) {
        return rc;
    }
    static const char zeros[8] = {0};
    for (size_t i = 0; i < w->n_bufs; i++) {
        size_t len = (size_t)w->bufs[i].len;
        if (len) {
            dg_buf_append(out, w->bufs[i].p, len);
        }
        dg_buf_append(out, zeros, ((len + 7) & ~(size_t)7) - len);
    }
    return DG_OK;
}

/* Emits a DictionaryBatch for every dictionary-encoded column under (s, a), pre-order ids. */
static dg_rc_t emit_dictionaries(dg_arrow_ipc_t *w, const struct ArrowSchema *s,
                                 const struct ArrowArray *a, dg_buf_t *out, dg_error_t *err)
{
    if (s->dictionary) {
        int64_t id = w->next_dict_id++;
        if (!a->dictionary) {
            return dg_error_set(err, DG_INTERNAL, "Arrow dictionary array missing");
        }
        w->n_nodes = w->n_bufs = 0;
        /* The dictionary values are a one-column batch of the value type. */
        dg_rc_t rc = collect(w, s->dictionary, a->dictionary, err);
        if (rc != DG_OK) {
            return rc;
        }
        rc = emit_batch(w, a->dictionary->length, id, out);
        if (rc != DG_OK) {
            return dg_error_set(err, rc, NULL);
        }
        return DG_OK;
    }
    for (int64_t i = 0; i < s->n_children && i < a->n_children; i++) {
        dg_rc_t rc = emit_dictionaries(w, s->children[i], a->children[i], out, err);
        if (rc != DG_OK) {
            return rc;
        }
    }
    return DG_OK;
}

dg_rc_t dg_arrow_ipc_write_batch(dg_arrow_ipc_t *w, const struct ArrowArray *batch, dg_buf_t *out,
                                 dg_error_t *err)
{
    const struct ArrowSchema *s = w->schema;
    if (batch->n_children != s->n_children) {
        return dg_error_set(err, DG_INTERNAL, "Arrow batch does not match its schema");
    }
    w->next_dict_id = 0;
    dg_rc_t rc = emit_dictionaries(w, s, batch, out, err);
    if (rc != DG_OK) {
        return rc;
    }
    w->n_nodes = w->n_bufs = 0;
    for (int64_t i = 0; i < s->n_children; i++) {
        rc = collect(w, s->children[i], batch->children[i], err);
        if (rc != DG_OK) {
            return rc;
        }
    }
    rc = emit_batch(w, batch->length, -1, out);
    return rc == DG_OK ? DG_OK : dg_error_set(err, rc, NULL);
}

dg_rc_t dg_arrow_ipc_write_eos(dg_arrow_ipc_t *w, dg_buf_t *out)
{
    (void)w;
    static const uint32_t eos[2] = {0xFFFFFFFFu, 0};
    return dg_buf_append(out, eos, sizeof eos);
}
