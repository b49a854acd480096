/* Unit tests for src/data's pure helpers: step names and their order (shared by local and
 * remote builds), the job view of a remote build, and the core file helpers they use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/ioutil.h"
#include "data/data_int.h"

static void test_step_names(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool is_step;
        unsigned long num;
    } cases[] = {
        {"01_titles.sql", true, 1},
        {"10_a-b_C9.sql", true, 10},
        {"7_x.sql", true, 7},
        {"001_x.sql", true, 1},
        {"01_.sql", false, 0},
        {"01titles.sql", false, 0},
        {"_01_x.sql", false, 0},
        {"01_x.SQL", false, 0},
        {"01_x.sql.bak", false, 0},
        {"01_x y.sql", false, 0},
        {"01_x.txt", false, 0},
        {"README", false, 0},
        {"", false, 0},
        {"99999999999999999999999_x.sql", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned long num = 0;
        bool got = dg_data__is_step_name(cases[i].name, &num);
        if (got != cases[i].is_step) {
            fail_msg("%s: want %d", cases[i].name, cases[i].is_step);
        }
        if (got) {
            assert_int_equal(num, cases[i].num);
        }
    }
}

static void touch(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("SELECT 1;\n", f);
    fclose(f);
}

static void test_steps_list_order(void **state)
{
    (void)state;
    char dir[] = "/tmp/dg-steps-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *files[] = {"10_last.sql",        "2_second.sql", "01_first.sql",
                           "02_also_second.sql", "notes.txt",    "03_x.sql.orig"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        touch(dir, files[i]);
    }
    dg_data__step_t *steps = calloc(DG_DATA__MAX_STEPS, sizeof *steps);
    size_t n = 0;
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_data__steps_list(dir, steps, &n, &err), DG_OK);
    assert_int_equal(n, 4);
    /* By number, then by name. */
    assert_string_equal(steps[0].name, "01_first.sql");
    assert_string_equal(steps[1].name, "02_also_second.sql");
    assert_string_equal(steps[2].name, "2_second.sql");
    assert_string_equal(steps[3].name, "10_last.sql");
    char *sql = dg_data__step_sql(dir, steps[0].name, &err);
    assert_non_null(sql);
    assert_string_equal(sql, "SELECT 1;\n");
    free(sql);
    dg_data__steps_free(steps, n);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    /* No steps, no directory. */
    n = 0;
    dg_error_clear(&err);
    assert_int_equal(dg_data__steps_list(dir, steps, &n, &err), DG_NOT_FOUND);
    assert_non_null(strstr(err.msg, "no NN_name.sql steps"));
    rmdir(dir);
    dg_error_clear(&err);
    assert_int_equal(dg_data__steps_list(dir, steps, &n, &err), DG_NOT_FOUND);
    free(steps);
}

static void test_remote_job_view(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        bool is_ok;
        const char *state;
        double progress;
        uint64_t rows;
        const char *code;
    } cases[] = {
        {"{\"state\":\"running\",\"progress\":12.5,\"rows\":3}", true, "running", 12.5, 3, NULL},
        {"{\"state\":\"queued\",\"progress\":null,\"rows\":0}", true, "queued", -1, 0, NULL},
        {"{\"state\":\"done\",\"progress\":100,\"rows\":1,\"rows_written\":500}", true, "done", 100,
         500, NULL},
        {"{\"state\":\"done\",\"rows\":1,\"rows_written\":null}", true, "done", -1, 1, NULL},
        {"{\"state\":\"failed\",\"rows\":-4,\"error\":{\"code\":\"SQL_ERROR\",\"message\":\"m\"}}",
         true, "failed", -1, 0, "SQL_ERROR"},
        {"{\"progress\":5}", false, NULL, 0, 0, NULL},
        {"{\"state\":7}", false, NULL, 0, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = json_loads(cases[i].json, 0, NULL);
        assert_non_null(j);
        const char *st = NULL, *code = NULL, *msg = NULL;
        double p = 0;
        uint64_t rows = 0;
        bool ok = dg_data__remote_job_view(j, &st, &p, &rows, &code, &msg);
        assert_int_equal(ok, cases[i].is_ok);
        if (ok) {
            assert_string_equal(st, cases[i].state);
            assert_true(p == cases[i].progress);
            assert_int_equal(rows, cases[i].rows);
            if (cases[i].code) {
                assert_string_equal(code, cases[i].code);
                assert_string_equal(msg, "m");
            } else {
                assert_null(code);
            }
        }
        json_decref(j);
    }
}

static void test_copy_and_rename_durable(void **state)
{
    (void)state;
    char dir[] = "/tmp/dg-copy-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char src[256], dst[256], fin[256], wal[256];
    snprintf(src, sizeof src, "%s/a.duckdb", dir);
    snprintf(dst, sizeof dst, "%s/a.duckdb.copying", dir);
    snprintf(fin, sizeof fin, "%s/a.duckdb.next", dir);
    snprintf(wal, sizeof wal, "%s/a.duckdb.next.wal", dir);
    FILE *f = fopen(src, "w");
    assert_non_null(f);
    for (int i = 0; i < 10000; i++) {
        fprintf(f, "line %d\n", i);
    }
    fclose(f);
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_copy_file(src, dst, &err), DG_OK);
    assert_int_equal(dg_rename_durable(dst, fin, &err), DG_OK);
    struct stat a, b;
    assert_int_equal(stat(src, &a), 0);
    assert_int_equal(stat(fin, &b), 0);
    assert_int_equal(a.st_size, b.st_size);
    assert_int_not_equal(stat(dst, &b), 0);
    f = fopen(wal, "w");
    fclose(f);
    dg_remove_db_file(fin);
    assert_int_not_equal(stat(fin, &b), 0);
    assert_int_not_equal(stat(wal, &b), 0);
    /* A missing source is DG_IO naming it, and leaves no destination. */
    dg_error_clear(&err);
    assert_int_equal(dg_copy_file(fin, dst, &err), DG_IO);
    assert_non_null(strstr(err.msg, "a.duckdb.next"));
    assert_int_not_equal(stat(dst, &b), 0);
    unlink(src);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_names),
        cmocka_unit_test(test_steps_list_order),
        cmocka_unit_test(test_remote_job_view),
        cmocka_unit_test(test_copy_and_rename_durable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
