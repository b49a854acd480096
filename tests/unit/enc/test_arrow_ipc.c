/* Arrow IPC writer tests. The stream is read back by apache-arrow (JavaScript, tests/js), an
 * implementation that shares no code with ours: hand-built C Data Interface arrays covering
 * nulls, strings, lists, structs, dictionaries and an empty batch must come back value for value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "arrow_reader.h"

#include "enc/arrow_ipc.h"

static void no_release_schema(struct ArrowSchema *s)
{
    s->release = NULL;
}

static void no_release_array(struct ArrowArray *a)
{
    a->release = NULL;
}

#define SCHEMA(fmt, nm, nchild, kids, dict)                                                        \
    {(fmt), (nm), NULL, ARROW_FLAG_NULLABLE, (nchild), (kids), (dict), no_release_schema, NULL}
#define ARRAY(len, nulls, nbuf, bufs, nchild, kids, dict)                                          \
    {(len), (nulls), 0, (nbuf), (nchild), (bufs), (kids), (dict), no_release_array, NULL}

static void test_roundtrip(void **state)
{
    (void)state;
    arrow_reader_require();
    /* Column a: int64 with a null. */
    static const int64_t a_vals[4] = {1, -2, 0, 9007199254740993LL};
    static const uint8_t a_valid[1] = {0x0B}; /* rows 0,1,3 valid */
    const void *a_bufs[2] = {a_valid, a_vals};
    /* Column s: utf8. */
    static const int32_t s_off[5] = {0, 3, 3, 9, 13};
    static const char s_data[] = "abch\xc3\xa9llo\"q\"x";
    const void *s_bufs[3] = {NULL, s_off, s_data};
    /* Column l: list<int32> = [1,2], [], null, [3]. */
    static const int32_t l_child_vals[3] = {1, 2, 3};
    const void *lc_bufs[2] = {NULL, l_child_vals};
    static const int32_t l_off[5] = {0, 2, 2, 2, 3};
    static const uint8_t l_valid[1] = {0x0B};
    const void *l_bufs[2] = {l_valid, l_off};
    /* Column st: struct<x: int8>. */
    static const int8_t x_vals[4] = {7, 8, 9, 10};
    const void *x_bufs[2] = {NULL, x_vals};
    const void *st_bufs[1] = {NULL};
    /* Column e: dictionary<uint8 -> utf8> = lo, hi, lo, hi. */
    static const uint8_t e_idx[4] = {0, 1, 0, 1};
    const void *e_bufs[2] = {NULL, e_idx};
    static const int32_t d_off[3] = {0, 2, 4};
    const void *d_bufs[3] = {NULL, d_off, "lohi"};

    struct ArrowSchema lc_s = SCHEMA("i", "item", 0, NULL, NULL);
    struct ArrowSchema *lc_kids[1] = {&lc_s};
    struct ArrowSchema x_s = SCHEMA("c", "x", 0, NULL, NULL);
    struct ArrowSchema *st_kids[1] = {&x_s};
    struct ArrowSchema dict_s = SCHEMA("u", NULL, 0, NULL, NULL);
    struct ArrowSchema cols_s[5] = {
        SCHEMA("l", "a", 0, NULL, NULL),      SCHEMA("u", "s", 0, NULL, NULL),
        SCHEMA("+l", "l", 1, lc_kids, NULL),  SCHEMA("+s", "st", 1, st_kids, NULL),
        SCHEMA("C", "e", 0, NULL, &dict_s),
    };
    struct ArrowSchema *top_kids[5] = {&cols_s[0], &cols_s[1], &cols_s[2], &cols_s[3], &cols_s[4]};
    struct ArrowSchema top_s = SCHEMA("+s", "", 5, top_kids, NULL);

    struct ArrowArray lc_a = ARRAY(3, 0, 2, lc_bufs, 0, NULL, NULL);
    struct ArrowArray *l_kids[1] = {&lc_a};
    struct ArrowArray x_a = ARRAY(4, 0, 2, x_bufs, 0, NULL, NULL);
    struct ArrowArray *st_akids[1] = {&x_a};
    struct ArrowArray dict_a = ARRAY(2, 0, 3, d_bufs, 0, NULL, NULL);
    struct ArrowArray cols_a[5] = {
        ARRAY(4, 1, 2, a_bufs, 0, NULL, NULL),   ARRAY(4, 0, 3, s_bufs, 0, NULL, NULL),
        ARRAY(4, -1, 2, l_bufs, 1, l_kids, NULL), ARRAY(4, 0, 1, st_bufs, 1, st_akids, NULL),
        ARRAY(4, 0, 2, e_bufs, 0, NULL, &dict_a),
    };
    struct ArrowArray *top_akids[5] = {&cols_a[0], &cols_a[1], &cols_a[2], &cols_a[3], &cols_a[4]};
    struct ArrowArray top_a = ARRAY(4, 0, 1, st_bufs, 5, top_akids, NULL);
    struct ArrowArray empty_cols[5];
    for (int i = 0; i < 5; i++) {
        empty_cols[i] = cols_a[i];
        empty_cols[i].length = 0;
        empty_cols[i].null_count = 0;
    }
    struct ArrowArray *empty_kids[5] = {&empty_cols[0], &empty_cols[1], &empty_cols[2],
                                        &empty_cols[3], &empty_cols[4]};
    struct ArrowArray empty_a = ARRAY(0, 0, 1, st_bufs, 5, empty_kids, NULL);

    dg_error_t err;
    dg_error_clear(&err);
    dg_arrow_ipc_t *w = NULL;
    assert_int_equal(dg_arrow_ipc_new(&top_s, &w, &err), DG_OK);
    dg_buf_t out;
    dg_buf_init(&out, 0);
    assert_int_equal(dg_arrow_ipc_write_schema(w, &out), DG_OK);
    assert_int_equal(dg_arrow_ipc_write_batch(w, &top_a, &out, &err), DG_OK);
    assert_int_equal(dg_arrow_ipc_write_batch(w, &empty_a, &out, &err), DG_OK);
    assert_int_equal(dg_arrow_ipc_write_batch(w, &top_a, &out, &err), DG_OK);
    assert_int_equal(dg_arrow_ipc_write_eos(w, &out), DG_OK);
    assert_int_equal(out.len % 8, 0);
    dg_arrow_ipc_free(w);

    char path[] = "/tmp/dg_arrow_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, out.p, out.len), (ssize_t)out.len);
    close(fd);
    dg_buf_free(&out);
    json_t *j = arrow_reader_read(path);
    unlink(path);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "num_rows")), 8);
    char *rows = json_dumps(json_object_get(j, "rows"), JSON_COMPACT);
    const char *want_one =
        "{\"a\":\"1\",\"s\":\"abc\",\"l\":[1,2],\"st\":{\"x\":7},\"e\":\"lo\"},"
        "{\"a\":\"-2\",\"s\":\"\",\"l\":[],\"st\":{\"x\":8},\"e\":\"hi\"},"
        "{\"a\":null,\"s\":\"h\xc3\xa9llo\",\"l\":null,\"st\":{\"x\":9},\"e\":\"lo\"},"
        "{\"a\":\"9007199254740993\",\"s\":\"\\\"q\\\"x\",\"l\":[3],\"st\":{\"x\":10},\"e\":\"hi\"}";
    char want[2048];
    snprintf(want, sizeof want, "[%s,%s]", want_one, want_one);
    assert_string_equal(rows, want);
    free(rows);
    char *schema = json_dumps(json_object_get(j, "schema"), JSON_COMPACT);
    assert_non_null(strstr(schema, "\"type\":\"Dictionary<Uint8, Utf8>\""));
    assert_non_null(strstr(schema, "\"type\":\"List<Int32>\""));
    free(schema);
    json_decref(j);
}

static void test_unsupported(void **state)
{
    (void)state;
    struct ArrowSchema view = SCHEMA("vu", "v", 0, NULL, NULL);
    struct ArrowSchema *kids[1] = {&view};
    struct ArrowSchema top = SCHEMA("+s", "", 1, kids, NULL);
    dg_arrow_ipc_t *w = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_arrow_ipc_new(&top, &w, &err), DG_NOT_ACCEPTABLE);
    assert_null(w);
    assert_non_null(strstr(err.msg, "column v"));
    struct ArrowSchema notstruct = SCHEMA("l", "", 0, NULL, NULL);
    dg_error_clear(&err);
    assert_int_equal(dg_arrow_ipc_new(&notstruct, &w, &err), DG_INTERNAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_unsupported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
