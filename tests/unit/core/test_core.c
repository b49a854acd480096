/* Unit tests for src/core: the error table, capped buffers, UTF-8/JSON escaping, string views. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/ioutil.h"
#include "core/rc.h"
#include "core/str.h"
#include "core/utf8.h"

static void test_rc_table(void **state)
{
    (void)state;
    assert_string_equal(dg_rc_name(DG_TIMEOUT), "TIMEOUT");
    assert_int_equal(dg_rc_http_status(DG_TIMEOUT), 504);
    assert_int_equal(dg_rc_http_status(DG_UNKNOWN_DB), 404);
    assert_int_equal(dg_rc_http_status(DG_NOT_READ_ONLY), 403);
    assert_int_equal(dg_rc_http_status(DG_OVERLOADED), 503);
    assert_int_equal(dg_rc_http_status(DG_BODY_TOO_LARGE), 413);
    assert_int_equal(dg_rc_from_name("SQL_ERROR"), DG_SQL_ERROR);
    assert_int_equal(dg_rc_from_name("nope"), DG_INTERNAL);
    assert_string_equal(dg_rc_name((dg_rc_t)9999), "INTERNAL");
}

static void test_error_first_wins(void **state)
{
    (void)state;
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_error_set(&err, DG_SQL_ERROR, "first %d", 1), DG_SQL_ERROR);
    dg_error_set(&err, DG_TIMEOUT, "second");
    assert_int_equal(err.rc, DG_SQL_ERROR);
    assert_string_equal(err.msg, "first 1");
    assert_int_equal(dg_error_set(NULL, DG_IO, "ignored"), DG_IO);
}

static void test_buf_cap(void **state)
{
    (void)state;
    dg_buf_t b;
    dg_buf_init(&b, 10);
    assert_int_equal(dg_buf_puts(&b, "0123456789"), DG_OK);
    assert_int_equal(b.len, 10);
    assert_int_equal(dg_buf_putc(&b, 'x'), DG_RESULT_TOO_LARGE);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.p, "0123456789");
    dg_buf_consume(&b, 4);
    assert_string_equal(b.p, "456789");
    assert_int_equal(dg_buf_printf(&b, "%d", 1234), DG_OK);
    assert_int_equal(dg_buf_printf(&b, "%d", 5), DG_RESULT_TOO_LARGE);
    assert_string_equal(b.p, "4567891234");
    dg_buf_free(&b);

    dg_buf_init_rc(&b, 3, DG_BODY_TOO_LARGE);
    assert_int_equal(dg_buf_puts(&b, "abcd"), DG_BODY_TOO_LARGE);
    assert_int_equal(b.len, 0);
    dg_buf_free(&b);
}

static void test_json_escape(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"plain", 5, "\"plain\""},
        {"q\"b\\", 4, "\"q\\\"b\\\\\""},
        {"\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\""},
        {"\x01\x1f", 2, "\"\\u0001\\u001f\""},
        {"a\0b", 3, "\"a\\u0000b\""},
        {"caf\xc3\xa9", 5, "\"caf\xc3\xa9\""},
        {"\xe2\x82\xac", 3, "\"\xe2\x82\xac\""},
        {"\xf0\x9f\xa6\x86", 4, "\"\xf0\x9f\xa6\x86\""},
        {"\xff", 1, "\"\xef\xbf\xbd\""},
        {"\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\""},          /* overlong: two invalid bytes */
        {"\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* surrogate */
        {"\xe2\x82", 2, "\"\xef\xbf\xbd\""},                         /* truncated: one subpart */
        {"\xe2\x80\xa8", 3, "\"\\u2028\""},
        {"\x7f", 1, "\"\x7f\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dg_buf_t b;
        dg_buf_init(&b, 0);
        assert_int_equal(dg_buf_json_str(&b, cases[i].in, cases[i].len), DG_OK);
        assert_string_equal(b.p, cases[i].out);
        assert_int_equal(dg_utf8_json_escaped_len(cases[i].in, cases[i].len) + 2, b.len);
        assert_true(dg_utf8_valid(b.p, b.len));
        dg_buf_free(&b);
    }
    assert_false(dg_utf8_valid("\xf5\x80\x80\x80", 4));
    assert_true(dg_utf8_valid("\xf4\x8f\xbf\xbf", 4));
}

static void test_json_escape_tight_cap(void **state)
{
    (void)state;
    /* The worst-case reservation does not fit, the exact size does. */
    dg_buf_t b;
    dg_buf_init(&b, 12);
    assert_int_equal(dg_buf_json_str(&b, "0123456789", 10), DG_OK);
    assert_int_equal(b.len, 12);
    assert_int_equal(dg_buf_json_str(&b, "", 0), DG_RESULT_TOO_LARGE);
    dg_buf_free(&b);
}

static void test_str(void **state)
{
    (void)state;
    uint64_t v;
    assert_true(dg_str_to_u64(DG_STR_LIT("18446744073709551615"), &v));
    assert_true(v == UINT64_MAX);
    assert_false(dg_str_to_u64(DG_STR_LIT("18446744073709551616"), &v));
    assert_false(dg_str_to_u64(DG_STR_LIT(""), &v));
    assert_false(dg_str_to_u64(DG_STR_LIT("-1"), &v));
    assert_false(dg_str_to_u64(DG_STR_LIT("1x"), &v));
    dg_str_t head, rest = dg_str_split(DG_STR_LIT("a/b/c"), '/', &head);
    assert_true(dg_str_eq_c(head, "a"));
    assert_true(dg_str_eq_c(rest, "b/c"));
    rest = dg_str_split(DG_STR_LIT("abc"), '/', &head);
    assert_true(dg_str_eq_c(head, "abc"));
    assert_int_equal(rest.len, 0);
    assert_true(dg_str_ieq_c(DG_STR_LIT("Content-TYPE"), "content-type"));
    assert_true(dg_str_eq_c(dg_str_trim(DG_STR_LIT("  x y\t")), "x y"));
}

static void test_mkdir_p(void **state)
{
    (void)state;
    char root[] = "/tmp/dg_core_XXXXXX";
    assert_non_null(mkdtemp(root));
    char deep[256];
    snprintf(deep, sizeof deep, "%s/a/b/c", root);
    assert_int_equal(dg_mkdir_p(deep, 0700), 0);
    assert_int_equal(dg_mkdir_p(deep, 0700), 0); /* existing is fine */
    struct stat st;
    assert_int_equal(stat(deep, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    char *huge = malloc(8192);
    memset(huge, 'x', 8191);
    huge[0] = '/';
    huge[8191] = '\0';
    assert_int_equal(dg_mkdir_p(huge, 0700), -1);
    free(huge);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Request ids: 16 hex digits, no repeats among many (they come from a per-thread pool of
 * random bytes), and a forked child does not reuse the bytes its parent's pool still holds. */
static void test_random_id(void **state)
{
    (void)state;
    enum { N = 5000 };
    static char ids[N + 1][17];
    for (int i = 0; i < N; i++) {
        dg_random_id(ids[i]);
        assert_int_equal(strlen(ids[i]), 16);
        assert_int_equal(strspn(ids[i], "0123456789abcdef"), 16);
    }
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char child[17];
        dg_random_id(child);
        ssize_t w = write(fds[1], child, sizeof child);
        _exit(w == (ssize_t)sizeof child ? 0 : 1);
    }
    close(fds[1]);
    char parent_next[17];
    dg_random_id(parent_next);
    assert_int_equal(read(fds[0], ids[N], sizeof ids[N]), (ssize_t)sizeof ids[N]);
    close(fds[0]);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_string_not_equal(ids[N], parent_next);
    qsort(ids, N + 1, sizeof ids[0], cmp_id);
    for (int i = 1; i <= N; i++) {
        assert_string_not_equal(ids[i - 1], ids[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rc_table),
        cmocka_unit_test(test_error_first_wins),
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_json_escape_tight_cap),
        cmocka_unit_test(test_str),
        cmocka_unit_test(test_mkdir_p),
        cmocka_unit_test(test_random_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
