/* Unit tests for src/engine/engine_dbs.c, the engine's served-database table: a replaced file
 * is opened and made current, references taken before keep the old instance until released,
 * the close hook runs once per closed instance, a file that does not open keeps the old one
 * serving, the `.next` check, and read-write databases are never swapped.
 *
 * Fixture files are written with the DuckDB layer (read-write) into a temporary directory. Each
 * generation of a file holds a table named after its content, so the catalog tells which file
 * an instance serves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "db/db.h"
#include "engine/engine_dbs.h"

static char dir[256];
static char live[300], tmp_root[300];

/* Writes a database at path holding table `table`. */
static void make_file(const char *path, const char *table)
{
    unlink(path);
    dg_db_opts_t o = {.path = path, .name = "x", .read_only = false, .threads = 1};
    dg_db_t *db = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_db_open(&o, &db, &err), DG_OK);
    char sql[200];
    snprintf(sql, sizeof sql, "CREATE TABLE %s AS SELECT 1 AS v; CHECKPOINT;", table);
    assert_int_equal(dg_db_exec(db, sql, &err), DG_OK);
    dg_db_close(db);
}

/* Builds the file elsewhere and renames it over dst, as `duckgate build` does. */
static void replace_with(const char *dst, const char *table)
{
    char staged[400];
    snprintf(staged, sizeof staged, "%s/staged.tmp", dir);
    make_file(staged, table);
    assert_int_equal(rename(staged, dst), 0);
}

static void replace_with_garbage(const char *dst)
{
    char staged[400];
    snprintf(staged, sizeof staged, "%s/garbage.tmp", dir);
    FILE *f = fopen(staged, "wb");
    assert_non_null(f);
    for (int i = 0; i < 70000; i++) {
        fputc((i * 7919) & 0xff, f);
    }
    fclose(f);
    assert_int_equal(rename(staged, dst), 0);
}

/* True when the instance's catalog has table `table`. */
static bool serves(dg_db_t *db, const char *table)
{
    dg_buf_t b;
    dg_buf_init(&b, 1 << 20);
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_db_catalog_json(db, &b, &err), DG_OK);
    char needle[100];
    snprintf(needle, sizeof needle, "\"name\":\"%s\"", table);
    bool found = b.p && memmem(b.p, b.len, needle, strlen(needle)) != NULL;
    dg_buf_free(&b);
    return found;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int n_closed;
static dg_db_t *last_closed;

static void on_close(dg_db_t *db, void *ctx)
{
    assert_ptr_equal(ctx, &n_closed);
    n_closed++;
    last_closed = db;
}

static dg_engine__dbs_t *new_table(bool is_rw)
{
    dg_engine__dbs_opts_t o = {.threads = 1, .temp_root = tmp_root};
    dg_engine__dbs_t *t = NULL;
    assert_int_equal(dg_engine__dbs_new(&o, 2, &t), DG_OK);
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_engine__dbs_add(t, "s", live, is_rw, &err), DG_OK);
    assert_int_equal(dg_engine__dbs_on_close(t, on_close, &n_closed), DG_OK);
    n_closed = 0;
    last_closed = NULL;
    return t;
}

static void test_swap_on_replace(void **state)
{
    (void)state;
    make_file(live, "gen_one");
    dg_engine__dbs_t *t = new_table(false);
    assert_int_equal(dg_engine__dbs_count(t), 1);
    assert_string_equal(dg_engine__dbs_name(t, 0), "s");

    dg_engine__dbref_t r1, r2, r3;
    assert_int_equal(dg_engine__dbs_acquire(t, "s", &r1), DG_OK);
    assert_int_equal(r1.gen, 1);
    assert_true(serves(r1.db, "gen_one"));
    assert_non_null(r1.export_dir);

    replace_with(live, "gen_two");
    assert_int_equal(dg_engine__dbs_acquire(t, "s", &r2), DG_OK);
    assert_int_equal(r2.gen, 2);
    assert_true(serves(r2.db, "gen_two"));
    assert_ptr_not_equal(r1.db, r2.db);
    /* The request that started before the swap still runs on the old file. */
    assert_true(serves(r1.db, "gen_one"));
    char old_tmp[400], new_tmp[400];
    snprintf(old_tmp, sizeof old_tmp, "%s/s", tmp_root);
    snprintf(new_tmp, sizeof new_tmp, "%s/s.2", tmp_root);
    assert_true(is_dir(old_tmp));
    assert_true(is_dir(new_tmp));

    /* Same file again: no reopen. */
    assert_int_equal(dg_engine__dbs_acquire(t, "s", &r3), DG_OK);
    assert_int_equal(r3.gen, 2);
    dg_engine__dbs_release(t, &r3);
    assert_null(r3.inst);
    dg_engine__dbs_release(t, &r2);
    assert_int_equal(n_closed, 0);

    /* The last reference to the replaced instance closes it, hook first. */
    dg_db_t *old_db = r1.db;
    dg_engine__dbs_release(t, &r1);
    assert_int_equal(n_closed, 1);
    assert_ptr_equal(last_closed, old_db);
    assert_false(is_dir(old_tmp));

    uint64_t gen = 0;
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_engine__dbs_refresh(t, "s", &gen, &err), DG_OK);
    assert_int_equal(gen, 2);
    replace_with(live, "gen_three");
    assert_int_equal(dg_engine__dbs_refresh(t, "s", &gen, &err), DG_OK);
    assert_int_equal(gen, 3);
    /* No request held gen 2: the refresh closed it at once. */
    assert_int_equal(n_closed, 2);

    dg_engine__dbs_free(t);
    assert_int_equal(n_closed, 3);
}

static void test_bad_file_keeps_old(void **state)
{
    (void)state;
    make_file(live, "good_old");
    dg_engine__dbs_t *t = new_table(false);
    replace_with_garbage(live);
    dg_engine__dbref_t r;
    assert_int_equal(dg_engine__dbs_acquire(t, "s", &r), DG_OK);
    assert_int_equal(r.gen, 1);
    assert_true(serves(r.db, "good_old"));
    dg_engine__dbs_release(t, &r);

    uint64_t gen = 0;
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_engine__dbs_refresh(t, "s", &gen, &err), DG_BAD_SNAPSHOT);
    assert_int_equal(gen, 1);
    assert_null(strstr(err.msg, dir)); /* no server paths in messages */

    /* A missing file (a non-atomic replacement in progress) keeps the old one too. */
    assert_int_equal(unlink(live), 0);
    assert_int_equal(dg_engine__dbs_acquire(t, "s", &r), DG_OK);
    assert_int_equal(r.gen, 1);
    dg_engine__dbs_release(t, &r);

    replace_with(live, "good_new");
    assert_int_equal(dg_engine__dbs_acquire(t, "s", &r), DG_OK);
    assert_true(r.gen > 1);
    assert_true(serves(r.db, "good_new"));
    dg_engine__dbs_release(t, &r);
    assert_int_equal(n_closed, 1);
    dg_engine__dbs_free(t);
}

static void test_check_next(void **state)
{
    (void)state;
    make_file(live, "current");
    char next[400];
    snprintf(next, sizeof next, "%s.next", live);
    unlink(next);
    dg_engine__dbs_t *t = new_table(false);
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_engine__dbs_check_next(t, "s", &err), DG_NOT_FOUND);
    dg_error_clear(&err);
    assert_int_equal(dg_engine__dbs_check_next(t, "nope", &err), DG_UNKNOWN_DB);

    replace_with_garbage(next);
    dg_error_clear(&err);
    assert_int_equal(dg_engine__dbs_check_next(t, "s", &err), DG_BAD_SNAPSHOT);
    assert_null(strstr(err.msg, dir));

    char target[400];
    snprintf(target, sizeof target, "%s/target.duckdb", dir);
    make_file(target, "linked");
    unlink(next);
    assert_int_equal(symlink(target, next), 0);
    dg_error_clear(&err);
    assert_int_equal(dg_engine__dbs_check_next(t, "s", &err), DG_BAD_SNAPSHOT);
    assert_non_null(strstr(err.msg, "regular file"));
    unlink(next);

    make_file(next, "checked");
    dg_error_clear(&err);
    assert_int_equal(dg_engine__dbs_check_next(t, "s", &err), DG_OK);
    /* The check neither swaps nor consumes the file. */
    dg_engine__dbref_t r;
    assert_int_equal(dg_engine__dbs_acquire(t, "s", &r), DG_OK);
    assert_int_equal(r.gen, 1);
    assert_true(serves(r.db, "current"));
    dg_engine__dbs_release(t, &r);
    assert_int_equal(access(next, F_OK), 0);
    unlink(next);
    unlink(target);
    dg_engine__dbs_free(t);
}

static void test_read_write_not_swapped(void **state)
{
    (void)state;
    make_file(live, "rw_first");
    dg_engine__dbs_t *t = new_table(true);
    dg_engine__dbref_t r;
    assert_int_equal(dg_engine__dbs_acquire(t, "s", &r), DG_OK);
    assert_true(r.is_read_write);
    dg_engine__dbs_release(t, &r);
    replace_with(live, "rw_second");
    assert_int_equal(dg_engine__dbs_acquire(t, "s", &r), DG_OK);
    assert_int_equal(r.gen, 1);
    assert_true(serves(r.db, "rw_first"));
    dg_engine__dbs_release(t, &r);
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_engine__dbs_check_next(t, "s", &err), DG_BAD_REQUEST);
    dg_engine__dbs_free(t);
    assert_int_equal(n_closed, 1);
}

static void test_refresh_thread(void **state)
{
    (void)state;
    make_file(live, "idle_old");
    dg_engine__dbs_t *t = new_table(false);
    assert_int_equal(dg_engine__dbs_start_refresh(t), DG_OK);
    replace_with(live, "idle_new");
    /* No request comes: the refresh thread alone switches and closes the old instance. */
    for (int i = 0; i < 100 && n_closed == 0; i++) {
        usleep(50 * 1000);
    }
    assert_int_equal(n_closed, 1);
    dg_engine__dbref_t r;
    dg_engine__dbs_acquire_at(t, 0, &r);
    assert_int_equal(r.gen, 2);
    assert_true(serves(r.db, "idle_new"));
    dg_engine__dbs_release(t, &r);
    dg_engine__dbs_free(t);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/dg-edbs-XXXXXX");
    if (!mkdtemp(dir)) {
        return -1;
    }
    snprintf(live, sizeof live, "%s/s.duckdb", dir);
    snprintf(tmp_root, sizeof tmp_root, "%s/tmp", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    /* The directory is ours (mkdtemp) and its name has no shell metacharacters. */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    int r = system(cmd);
    (void)r;
    return 0;
}

int main(void)
{
    dg_log_set_level(DG_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swap_on_replace), cmocka_unit_test(test_bad_file_keeps_old),
        cmocka_unit_test(test_check_next),      cmocka_unit_test(test_read_write_not_swapped),
        cmocka_unit_test(test_refresh_thread),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
