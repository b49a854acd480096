/* DuckDB logical types -> dg_type_t trees, and DuckDB vectors -> dg_vec_t views (zero copy).
 *
 * The type tree and the vector shells are built once per result in a pool the cursor owns; each
 * fetched chunk only re-points the shells at DuckDB's own memory. Chunks from duckdb_fetch_chunk
 * are flat: the C API fetches through QueryResult::Fetch, which flattens every vector, and
 * flattening a LIST/STRUCT/ARRAY flattens its children. So data/validity pointers can be used
 * with row indices directly.
 *
 * Confined to the cursor's thread. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "db/db_internal.h"

/* dg_type_id_t mirrors duckdb_type number for number (core/batch.h promises it). */
#define DG_SAME(x) _Static_assert((int)DG_TYPE_##x == (int)DUCKDB_TYPE_##x, "DG_TYPE_" #x)
DG_SAME(INVALID);
DG_SAME(BOOLEAN);
DG_SAME(TINYINT);
DG_SAME(SMALLINT);
DG_SAME(INTEGER);
DG_SAME(BIGINT);
DG_SAME(UTINYINT);
DG_SAME(USMALLINT);
DG_SAME(UINTEGER);
DG_SAME(UBIGINT);
DG_SAME(FLOAT);
DG_SAME(DOUBLE);
DG_SAME(TIMESTAMP);
DG_SAME(DATE);
DG_SAME(TIME);
DG_SAME(INTERVAL);
DG_SAME(HUGEINT);
DG_SAME(VARCHAR);
DG_SAME(BLOB);
DG_SAME(DECIMAL);
DG_SAME(TIMESTAMP_S);
DG_SAME(TIMESTAMP_MS);
DG_SAME(TIMESTAMP_NS);
DG_SAME(ENUM);
DG_SAME(LIST);
DG_SAME(STRUCT);
DG_SAME(MAP);
DG_SAME(UUID);
DG_SAME(UNION);
DG_SAME(BIT);
DG_SAME(TIME_TZ);
DG_SAME(TIMESTAMP_TZ);
DG_SAME(UHUGEINT);
DG_SAME(ARRAY);
DG_SAME(ANY);
DG_SAME(BIGNUM);
DG_SAME(SQLNULL);
DG_SAME(STRING_LITERAL);
DG_SAME(INTEGER_LITERAL);
DG_SAME(TIME_NS);
#undef DG_SAME
_Static_assert(sizeof(dg_strval_t) == sizeof(duckdb_string_t), "string layout");
_Static_assert(sizeof(dg_hugeint_t) == sizeof(duckdb_hugeint), "hugeint layout");
_Static_assert(sizeof(dg_interval_t) == sizeof(duckdb_interval), "interval layout");
_Static_assert(sizeof(dg_list_entry_t) == sizeof(duckdb_list_entry), "list entry layout");

void *dg_db__pool_alloc(dg_db__pool_t *pool, size_t size)
{
    if (pool->n == pool->cap) {
        size_t ncap = pool->cap ? pool->cap * 2 : 16;
        void **np = realloc(pool->ptrs, ncap * sizeof *np);
        if (!np) {
            return NULL;
        }
        pool->ptrs = np;
        pool->cap = ncap;
    }
    void *p = calloc(1, size ? size : 1);
    if (p) {
        pool->ptrs[pool->n++] = p;
    }
    return p;
}

char *dg_db__pool_strdup(dg_db__pool_t *pool, const char *s)
{
    size_t len = strlen(s);
    char *p = dg_db__pool_alloc(pool, len + 1);
    if (p) {
        memcpy(p, s, len + 1);
    }
    return p;
}

void dg_db__pool_free(dg_db__pool_t *pool)
{
    for (size_t i = 0; i < pool->n; i++) {
        free(pool->ptrs[i]);
    }
    free(pool->ptrs);
    pool->ptrs = NULL;
    pool->n = pool->cap = 0;
}

static const char *simple_name(duckdb_type id)
{
    switch (id) {
    case DUCKDB_TYPE_BOOLEAN:
        return "BOOLEAN";
    case DUCKDB_TYPE_TINYINT:
        return "TINYINT";
    case DUCKDB_TYPE_SMALLINT:
        return "SMALLINT";
    case DUCKDB_TYPE_INTEGER:
        return "INTEGER";
    case DUCKDB_TYPE_BIGINT:
        return "BIGINT";
    case DUCKDB_TYPE_UTINYINT:
        return "UTINYINT";
    case DUCKDB_TYPE_USMALLINT:
        return "USMALLINT";
    case DUCKDB_TYPE_UINTEGER:
        return "UINTEGER";
    case DUCKDB_TYPE_UBIGINT:
        return "UBIGINT";
    case DUCKDB_TYPE_FLOAT:
        return "FLOAT";
    case DUCKDB_TYPE_DOUBLE:
        return "DOUBLE";
    case DUCKDB_TYPE_TIMESTAMP:
        return "TIMESTAMP";
    case DUCKDB_TYPE_DATE:
        return "DATE";
    case DUCKDB_TYPE_TIME:
        return "TIME";
    case DUCKDB_TYPE_INTERVAL:
        return "INTERVAL";
    case DUCKDB_TYPE_HUGEINT:
        return "HUGEINT";
    case DUCKDB_TYPE_VARCHAR:
        return "VARCHAR";
    case DUCKDB_TYPE_BLOB:
        return "BLOB";
    case DUCKDB_TYPE_TIMESTAMP_S:
        return "TIMESTAMP_S";
    case DUCKDB_TYPE_TIMESTAMP_MS:
        return "TIMESTAMP_MS";
    case DUCKDB_TYPE_TIMESTAMP_NS:
        return "TIMESTAMP_NS";
    case DUCKDB_TYPE_UUID:
        return "UUID";
    case DUCKDB_TYPE_BIT:
        return "BIT";
    case DUCKDB_TYPE_TIME_TZ:
        return "TIME WITH TIME ZONE";
    case DUCKDB_TYPE_TIMESTAMP_TZ:
        return "TIMESTAMP WITH TIME ZONE";
    case DUCKDB_TYPE_UHUGEINT:
        return "UHUGEINT";
    case DUCKDB_TYPE_ANY:
        return "ANY";
    case DUCKDB_TYPE_BIGNUM:
        return "BIGNUM";
    case DUCKDB_TYPE_SQLNULL:
        return "\"NULL\"";
    case DUCKDB_TYPE_STRING_LITERAL:
        return "STRING_LITERAL";
    case DUCKDB_TYPE_INTEGER_LITERAL:
        return "INTEGER_LITERAL";
    case DUCKDB_TYPE_TIME_NS:
        return "TIME_NS";
    default:
        return NULL;
    }
}

/* DuckDB's keywords, loaded once per process (they depend only on the library): member names
 * that are keywords are printed quoted. Sorted for bsearch; immutable once published. */
static pthread_mutex_t kw_lock = PTHREAD_MUTEX_INITIALIZER;
static char **kw_words;
static size_t kw_n;
static _Atomic bool kw_loaded;

static int kw_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void dg_db__keywords_load(duckdb_database inst)
{
    duckdb_connection con = NULL;
    duckdb_result res;
    bool has_res = false;
    if (atomic_load(&kw_loaded)) {
        return;
    }
    pthread_mutex_lock(&kw_lock);
    if (atomic_load(&kw_loaded) || duckdb_connect(inst, &con) != DuckDBSuccess) {
        goto out;
    }
    has_res = true;
    if (duckdb_query(con, "SELECT DISTINCT keyword_name FROM duckdb_keywords()", &res) !=
        DuckDBSuccess) {
        goto out;
    }
    size_t cap = 0, n = 0;
    char **words = NULL;
    duckdb_data_chunk chunk;
    while ((chunk = duckdb_fetch_chunk(res)) != NULL) {
        duckdb_vector v = duckdb_data_chunk_get_vector(chunk, 0);
        const dg_strval_t *sv = duckdb_vector_get_data(v);
        for (idx_t r = 0; r < duckdb_data_chunk_get_size(chunk); r++) {
            uint32_t len;
            const char *w = dg_strval_data(&sv[r], &len);
            if (n == cap) {
                cap = cap ? cap * 2 : 512;
                char **nw = realloc(words, cap * sizeof *nw);
                if (!nw) {
                    break;
                }
                words = nw;
            }
            words[n] = strndup(w, len);
            if (words[n]) {
                n++;
            }
        }
        duckdb_destroy_data_chunk(&chunk);
    }
    qsort(words, n, sizeof *words, kw_cmp);
    kw_words = words;
    kw_n = n;
    atomic_store(&kw_loaded, true);
out:
    if (has_res) {
        duckdb_destroy_result(&res);
    }
    if (con) {
        duckdb_disconnect(&con);
    }
    pthread_mutex_unlock(&kw_lock);
}

static bool is_keyword(const char *s)
{
    char lower[64];
    size_t n = strlen(s);
    if (!atomic_load(&kw_loaded) || n >= sizeof lower) {
        return false;
    }
    for (size_t i = 0; i <= n; i++) {
        lower[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] - 'A' + 'a' : s[i]);
    }
    const char *key = lower;
    return bsearch(&key, kw_words, kw_n, sizeof *kw_words, kw_cmp) != NULL;
}

/* Member names are printed bare when they are plain identifiers and not keywords, else quoted
 * (KeywordHelper::WriteOptionallyQuoted). */
static dg_rc_t put_ident(dg_buf_t *b, const char *s)
{
    bool plain = s[0] != '\0' && !(s[0] >= '0' && s[0] <= '9');
    for (const char *p = s; *p && plain; p++) {
        plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                *p == '_';
    }
    if (plain && !is_keyword(s)) {
        return dg_buf_puts(b, s);
    }
    dg_rc_t rc = dg_buf_putc(b, '"');
    for (const char *p = s; *p && rc == DG_OK; p++) {
        rc = *p == '"' ? dg_buf_puts(b, "\"\"") : dg_buf_putc(b, *p);
    }
    return rc == DG_OK ? dg_buf_putc(b, '"') : rc;
}

static dg_rc_t put_quoted(dg_buf_t *b, const char *s)
{
    dg_rc_t rc = dg_buf_putc(b, '\'');
    for (const char *p = s; *p && rc == DG_OK; p++) {
        rc = *p == '\'' ? dg_buf_puts(b, "''") : dg_buf_putc(b, *p);
    }
    return rc == DG_OK ? dg_buf_putc(b, '\'') : rc;
}

/* Builds a member list "(a T, b U)" for STRUCT/UNION. */
static dg_rc_t put_members(dg_buf_t *b, const dg_type_t *t, size_t first)
{
    dg_rc_t rc = dg_buf_putc(b, '(');
    for (size_t i = first; i < t->n_children && rc == DG_OK; i++) {
        if (i > first) {
            rc = dg_buf_puts(b, ", ");
        }
        if (rc == DG_OK) {
            rc = put_ident(b, t->child_names[i]);
        }
        if (rc == DG_OK) {
            rc = dg_buf_printf(b, " %s", t->children[i]->name);
        }
    }
    return rc == DG_OK ? dg_buf_putc(b, ')') : rc;
}

static dg_rc_t make_name(dg_type_t *t, duckdb_logical_type lt, dg_buf_t *b)
{
    dg_rc_t rc = DG_OK;
    switch ((duckdb_type)t->id) {
    case DUCKDB_TYPE_DECIMAL:
        return dg_buf_printf(b, "DECIMAL(%u,%u)", t->width, t->scale);
    case DUCKDB_TYPE_LIST:
        return dg_buf_printf(b, "%s[]", t->children[0]->name);
    case DUCKDB_TYPE_ARRAY:
        return dg_buf_printf(b, "%s[%" PRIu64 "]", t->children[0]->name, t->array_size);
    case DUCKDB_TYPE_MAP: {
        const dg_type_t *kv = t->children[0];
        return dg_buf_printf(b, "MAP(%s, %s)", kv->children[0]->name, kv->children[1]->name);
    }
    case DUCKDB_TYPE_STRUCT:
        rc = dg_buf_puts(b, "STRUCT");
        return rc == DG_OK ? put_members(b, t, 0) : rc;
    case DUCKDB_TYPE_UNION:
        rc = dg_buf_puts(b, "UNION");
        return rc == DG_OK ? put_members(b, t, 1) : rc;
    case DUCKDB_TYPE_ENUM:
        rc = dg_buf_puts(b, "ENUM(");
        for (size_t i = 0; i < t->n_enum && rc == DG_OK; i++) {
            rc = i ? dg_buf_puts(b, ", ") : DG_OK;
            if (rc == DG_OK) {
                rc = put_quoted(b, t->enum_values[i]);
            }
        }
        return rc == DG_OK ? dg_buf_putc(b, ')') : rc;
    default: {
        const char *s = simple_name(duckdb_get_type_id(lt));
        return dg_buf_puts(b, s ? s : "UNKNOWN");
    }
    }
}

/* Children of nested types; each child logical type is destroyed here. */
static dg_rc_t build_children(dg_db__pool_t *pool, dg_type_t *t, duckdb_logical_type lt)
{
    duckdb_type id = (duckdb_type)t->id;
    size_t n = 0, first = 0;
    if (id == DUCKDB_TYPE_LIST || id == DUCKDB_TYPE_MAP || id == DUCKDB_TYPE_ARRAY) {
        n = 1;
    } else if (id == DUCKDB_TYPE_STRUCT) {
        n = duckdb_struct_type_child_count(lt);
    } else if (id == DUCKDB_TYPE_UNION) {
        n = duckdb_union_type_member_count(lt) + 1; /* the tag comes first */
        first = 1;
    } else {
        return DG_OK;
    }
    const dg_type_t **kids = dg_db__pool_alloc(pool, n * sizeof *kids);
    const char **names = NULL;
    if (!kids) {
        return DG_NOMEM;
    }
    if (id == DUCKDB_TYPE_STRUCT || id == DUCKDB_TYPE_UNION) {
        names = dg_db__pool_alloc(pool, n * sizeof *names);
        if (!names) {
            return DG_NOMEM;
        }
    }
    if (first) {
        duckdb_logical_type tag = duckdb_create_logical_type(DUCKDB_TYPE_UTINYINT);
        kids[0] = dg_db__type_from_logical(pool, tag);
        duckdb_destroy_logical_type(&tag);
        names[0] = "";
        if (!kids[0]) {
            return DG_NOMEM;
        }
    }
    for (size_t i = first; i < n; i++) {
        duckdb_logical_type c = NULL;
        char *cname = NULL;
        if (id == DUCKDB_TYPE_LIST) {
            c = duckdb_list_type_child_type(lt);
        } else if (id == DUCKDB_TYPE_ARRAY) {
            c = duckdb_array_type_child_type(lt);
        } else if (id == DUCKDB_TYPE_MAP) {
            /* A MAP is a LIST of STRUCT(key, value): build that struct. */
            duckdb_logical_type kv[2] = {duckdb_map_type_key_type(lt),
                                         duckdb_map_type_value_type(lt)};
            const char *kvn[2] = {"key", "value"};
            c = duckdb_create_struct_type(kv, kvn, 2);
            duckdb_destroy_logical_type(&kv[0]);
            duckdb_destroy_logical_type(&kv[1]);
        } else if (id == DUCKDB_TYPE_STRUCT) {
            c = duckdb_struct_type_child_type(lt, i);
            cname = duckdb_struct_type_child_name(lt, i);
        } else {
            c = duckdb_union_type_member_type(lt, i - 1);
            cname = duckdb_union_type_member_name(lt, i - 1);
        }
        kids[i] = c ? dg_db__type_from_logical(pool, c) : NULL;
        if (c) {
            duckdb_destroy_logical_type(&c);
        }
        if (names) {
            names[i] = dg_db__pool_strdup(pool, cname ? cname : "");
        }
        if (cname) {
            duckdb_free(cname);
        }
        if (!kids[i] || (names && !names[i])) {
            return DG_NOMEM;
        }
    }
    t->n_children = n;
    t->children = kids;
    t->child_names = names;
    return DG_OK;
}

dg_type_t *dg_db__type_from_logical(dg_db__pool_t *pool, duckdb_logical_type lt)
{
    dg_type_t *t = dg_db__pool_alloc(pool, sizeof *t);
    dg_buf_t b;
    char *alias = NULL;
    if (!t) {
        return NULL;
    }
    dg_buf_init(&b, 0);
    duckdb_type id = duckdb_get_type_id(lt);
    t->id = (dg_type_id_t)id;
    if (id == DUCKDB_TYPE_DECIMAL) {
        t->width = duckdb_decimal_width(lt);
        t->scale = duckdb_decimal_scale(lt);
        t->storage = (dg_type_id_t)duckdb_decimal_internal_type(lt);
    } else if (id == DUCKDB_TYPE_ENUM) {
        t->storage = (dg_type_id_t)duckdb_enum_internal_type(lt);
        t->n_enum = duckdb_enum_dictionary_size(lt);
        const char **vals = dg_db__pool_alloc(pool, t->n_enum * sizeof *vals);
        if (!vals) {
            goto fail;
        }
        for (size_t i = 0; i < t->n_enum; i++) {
            char *v = duckdb_enum_dictionary_value(lt, i);
            vals[i] = dg_db__pool_strdup(pool, v ? v : "");
            duckdb_free(v);
            if (!vals[i]) {
                goto fail;
            }
        }
        t->enum_values = vals;
    } else if (id == DUCKDB_TYPE_ARRAY) {
        t->array_size = duckdb_array_type_array_size(lt);
    }
    if (build_children(pool, t, lt) != DG_OK) {
        goto fail;
    }
    /* A named type (JSON, a user ENUM type) is printed by its name, as DuckDB does. */
    alias = duckdb_logical_type_get_alias(lt);
    if (alias && alias[0]) {
        t->name = dg_db__pool_strdup(pool, alias);
    } else {
        if (make_name(t, lt, &b) != DG_OK) {
            goto fail;
        }
        t->name = dg_db__pool_strdup(pool, b.p ? b.p : "");
    }
    if (alias) {
        duckdb_free(alias);
        alias = NULL;
    }
    dg_buf_free(&b);
    return t->name ? t : NULL;
fail:
    if (alias) {
        duckdb_free(alias);
    }
    dg_buf_free(&b);
    return NULL;
}

dg_rc_t dg_db__vec_shell(dg_db__pool_t *pool, dg_vec_t *v, const dg_type_t *t)
{
    memset(v, 0, sizeof *v);
    v->type = t;
    v->n_children = t->n_children;
    if (t->n_children) {
        dg_vec_t *kids = dg_db__pool_alloc(pool, t->n_children * sizeof *kids);
        if (!kids) {
            return DG_NOMEM;
        }
        for (size_t k = 0; k < t->n_children; k++) {
            dg_rc_t rc = dg_db__vec_shell(pool, &kids[k], t->children[k]);
            if (rc != DG_OK) {
                return rc;
            }
        }
        v->children = kids;
    }
    return DG_OK;
}

void dg_db__vec_fill(dg_vec_t *v, duckdb_vector dv, uint64_t n_rows)
{
    dg_vec_t *kids = (dg_vec_t *)(uintptr_t)v->children;
    v->validity = duckdb_vector_get_validity(dv);
    v->child_len = 0;
    switch ((duckdb_type)v->type->id) {
    case DUCKDB_TYPE_STRUCT:
    case DUCKDB_TYPE_UNION:
        v->data = NULL;
        for (size_t i = 0; i < v->n_children; i++) {
            dg_db__vec_fill(&kids[i], duckdb_struct_vector_get_child(dv, i), n_rows);
        }
        break;
    case DUCKDB_TYPE_LIST:
    case DUCKDB_TYPE_MAP:
        v->data = duckdb_vector_get_data(dv);
        v->child_len = duckdb_list_vector_get_size(dv);
        dg_db__vec_fill(&kids[0], duckdb_list_vector_get_child(dv), v->child_len);
        break;
    case DUCKDB_TYPE_ARRAY:
        v->data = NULL;
        dg_db__vec_fill(&kids[0], duckdb_array_vector_get_child(dv), n_rows * v->type->array_size);
        break;
    case DUCKDB_TYPE_SQLNULL:
        v->data = NULL;
        break;
    default:
        v->data = duckdb_vector_get_data(dv);
        break;
    }
}
