/* Unit tests for src/config: precedence of flags > env > file > defaults, INI errors with
 * file:line, byte sizes, listen addresses, and resource detection against fake cgroup trees. */
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

#include "config/config.h"

static char tmp_root[256];

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void make_dir(const char *path)
{
    assert_true(mkdir(path, 0755) == 0 || access(path, F_OK) == 0);
}

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmp_root, sizeof tmp_root, "/tmp/dg_test_config_XXXXXX");
    assert_non_null(mkdtemp(tmp_root));
    return 0;
}

static int teardown_tmp(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_defaults(void **state)
{
    (void)state;
    dg_config_t cfg;
    dg_error_t err;
    dg_error_clear(&err);
    char *argv[] = {"serve", NULL};
    char *envp[] = {NULL};
    assert_int_equal(dg_config_load(&cfg, 1, argv, envp, NULL, &err), DG_OK);
    assert_string_equal(cfg.data_dir, "data");
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
    assert_string_equal(cfg.state_dir, "data/.duckgate");
    assert_int_equal(cfg.engines, 2);
    assert_true(cfg.slots >= 1);
    assert_int_equal(cfg.queue_len, 64);
    assert_int_equal(cfg.queue_timeout_ms, 10000);
    assert_int_equal(cfg.timeout_ms, 30000);
    assert_int_equal(cfg.kill_grace_ms, 2000);
    assert_int_equal(cfg.shutdown_timeout_ms, 10000);
    assert_int_equal(cfg.max_body_bytes, 1 << 20);
    assert_int_equal(cfg.max_sql_bytes, 64 << 10);
    assert_int_equal(cfg.max_result_bytes, 64 << 20);
    assert_int_equal(cfg.max_rows, 0);
    assert_int_equal(cfg.memory_limit, 0);
    assert_int_equal(cfg.threads, 0);
    assert_string_equal(cfg.cgroup_root, "/sys/fs/cgroup");
    assert_string_equal(cfg.meminfo_path, "/proc/meminfo");
    assert_string_equal(cfg.log_level, "info");
    assert_null(cfg.config_path);
    assert_int_equal(dg_config_source_of(&cfg, "timeout_ms"), DG_CFG_DEFAULT);
    dg_config_free(&cfg);
}

static void test_precedence(void **state)
{
    (void)state;
    char ini[512];
    snprintf(ini, sizeof ini, "%s/p.ini", tmp_root);
    write_file(tmp_root, "p.ini",
               "# comment\n[server]\ntimeout_ms = 1000\nengines = 3\nqueue_len = 7 ; inline\n"
               "data_dir = \"/srv/data dir\"\n");
    char cfgarg[600];
    snprintf(cfgarg, sizeof cfgarg, "--config=%s", ini);
    char *argv[] = {"serve", cfgarg, "--engines", "5", "--max-body-bytes=2MiB", NULL};
    char *envp[] = {"DUCKGATE_ENGINES=4", "DUCKGATE_QUEUE_LEN=8", "DUCKGATE_BIN=/x", "PATH=/bin",
                    NULL};
    dg_config_t cfg;
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_config_load(&cfg, 5, argv, envp, NULL, &err), DG_OK);
    assert_int_equal(cfg.timeout_ms, 1000); /* file */
    assert_int_equal(cfg.engines, 5);       /* flag > env > file */
    assert_int_equal(cfg.queue_len, 8);     /* env > file */
    assert_int_equal(cfg.max_body_bytes, 2 << 20);
    assert_string_equal(cfg.data_dir, "/srv/data dir");
    assert_string_equal(cfg.state_dir, "/srv/data dir/.duckgate");
    assert_string_equal(cfg.config_path, ini);
    assert_int_equal(dg_config_source_of(&cfg, "timeout_ms"), DG_CFG_FILE);
    assert_int_equal(dg_config_source_of(&cfg, "engines"), DG_CFG_FLAG);
    assert_int_equal(dg_config_source_of(&cfg, "queue_len"), DG_CFG_ENV);
    assert_int_equal(dg_config_source_of(&cfg, "kill_grace_ms"), DG_CFG_DEFAULT);

    char out[4096] = {0};
    FILE *f = fmemopen(out, sizeof out - 1, "w");
    dg_config_print(&cfg, f);
    fclose(f);
    assert_non_null(strstr(out, "engines = 5  # flag\n"));
    assert_non_null(strstr(out, "queue_len = 8  # env\n"));
    assert_non_null(strstr(out, "timeout_ms = 1000  # file\n"));
    assert_non_null(strstr(out, "kill_grace_ms = 2000  # default\n"));
    dg_config_free(&cfg);

    /* DUCKGATE_CONFIG names the file when there is no --config. */
    char envcfg[600];
    snprintf(envcfg, sizeof envcfg, "DUCKGATE_CONFIG=%s", ini);
    char *argv2[] = {"serve", NULL};
    char *envp2[] = {envcfg, NULL};
    assert_int_equal(dg_config_load(&cfg, 1, argv2, envp2, NULL, &err), DG_OK);
    assert_int_equal(cfg.engines, 3);
    dg_config_free(&cfg);
}

typedef struct {
    const char *text;
    int line;
    const char *needle;
} bad_ini;

static void test_bad_file_lines(void **state)
{
    (void)state;
    static const bad_ini cases[] = {
        {"engines = 2\nnope = 1\n", 2, "unknown setting"},
        {"\n\ntimeout_ms = abc\n", 3, "timeout_ms"},
        {"timeout_ms = 0\n", 1, "timeout_ms"},
        {"engines = 65\n", 1, "engines"},
        {"max_body_bytes = 12XB\n", 1, "max_body_bytes"},
        {"max_body_bytes = -1\n", 1, "max_body_bytes"},
        {"[server\n", 1, "section"},
        {"just text\n", 1, "key = value"},
        {"data_dir = \"unterminated\n", 1, "unterminated"},
        {"listen = localhost\n", 1, "listen"},
        {"listen = 1.2.3.4:70000\n", 1, "listen"},
        {"log_level = loud\n", 1, "log_level"},
        {"data_dir =\n", 1, "empty"},
        {"# ok\n; ok\n= 3\n", 3, "key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(tmp_root, "bad.ini", cases[i].text);
        char ini[512], expect[600];
        snprintf(ini, sizeof ini, "%s/bad.ini", tmp_root);
        snprintf(expect, sizeof expect, "%s:%d: ", ini, cases[i].line);
        char *argv[] = {"serve", "--config", ini, NULL};
        char *envp[] = {NULL};
        dg_config_t cfg;
        dg_error_t err;
        dg_error_clear(&err);
        assert_int_equal(dg_config_load(&cfg, 3, argv, envp, NULL, &err), DG_CONFIG);
        if (strncmp(err.msg, expect, strlen(expect)) != 0 || !strstr(err.msg, cases[i].needle)) {
            fail_msg("case %zu: got \"%s\", want prefix \"%s\" and \"%s\"", i, err.msg, expect,
                     cases[i].needle);
        }
    }
}

static void test_bad_flags_env(void **state)
{
    (void)state;
    dg_config_t cfg;
    dg_error_t err;
    char *envp[] = {NULL};
    {
        char *argv[] = {"serve", "--no-such", "1", NULL};
        dg_error_clear(&err);
        assert_int_equal(dg_config_load(&cfg, 3, argv, envp, NULL, &err), DG_CONFIG);
        assert_non_null(strstr(err.msg, "--no-such"));
    }
    {
        char *argv[] = {"serve", "--timeout-ms", NULL};
        dg_error_clear(&err);
        assert_int_equal(dg_config_load(&cfg, 2, argv, envp, NULL, &err), DG_CONFIG);
        assert_non_null(strstr(err.msg, "missing value"));
    }
    {
        /* An unknown last flag is reported as unknown, not as lacking a value. */
        char *argv[] = {"serve", "--no-such", NULL};
        dg_error_clear(&err);
        assert_int_equal(dg_config_load(&cfg, 2, argv, envp, NULL, &err), DG_CONFIG);
        assert_non_null(strstr(err.msg, "--no-such: unknown flag"));
    }
    {
        char *argv[] = {"serve", "positional", NULL};
        dg_error_clear(&err);
        assert_int_equal(dg_config_load(&cfg, 2, argv, envp, NULL, &err), DG_CONFIG);
    }
    {
        char *argv[] = {"serve", "--timeout_ms", "5", NULL};
        dg_error_clear(&err);
        assert_int_equal(dg_config_load(&cfg, 3, argv, envp, NULL, &err), DG_CONFIG);
    }
    {
        char *argv[] = {"serve", NULL};
        char *bad_env[] = {"DUCKGATE_MAX_SQL_BYTES=lots", NULL};
        dg_error_clear(&err);
        assert_int_equal(dg_config_load(&cfg, 1, argv, bad_env, NULL, &err), DG_CONFIG);
        assert_non_null(strstr(err.msg, "DUCKGATE_MAX_SQL_BYTES"));
    }
    {
        char *argv[] = {"serve", "--config", "/nonexistent/x.ini", NULL};
        dg_error_clear(&err);
        assert_int_equal(dg_config_load(&cfg, 3, argv, envp, NULL, &err), DG_CONFIG);
        assert_non_null(strstr(err.msg, "/nonexistent/x.ini"));
    }
    {
        /* Positionals permitted and moved behind the flags. */
        char *argv[] = {"cmd", "a", "--engines", "3", "b", "--", "--c", NULL};
        int rest = -1;
        dg_error_clear(&err);
        assert_int_equal(dg_config_load(&cfg, 7, argv, envp, &rest, &err), DG_OK);
        assert_int_equal(rest, 3);
        assert_string_equal(argv[rest], "a");
        assert_string_equal(argv[rest + 1], "b");
        assert_string_equal(argv[rest + 2], "--c");
        assert_int_equal(cfg.engines, 3);
        dg_config_free(&cfg);
    }
}

typedef struct {
    const char *in;
    bool ok;
    uint64_t want;
} bytes_case;

static void test_parse_bytes(void **state)
{
    (void)state;
    static const bytes_case cases[] = {
        {"0", true, 0},
        {"100000", true, 100000},
        {"1B", true, 1},
        {"1KB", true, 1000},
        {"1kb", true, 1000},
        {"1KiB", true, 1024},
        {"512MiB", true, 512ull << 20},
        {"8GB", true, 8000000000ull},
        {"8 GiB", true, 8ull << 30},
        {"1.5G", true, 1500000000ull},
        {"1.5GiB", true, 3ull << 29},
        {"2TiB", true, 2ull << 40},
        {"1T", true, 1000000000000ull},
        {" 64KiB ", true, 65536},
        {"0.5KiB", true, 512},
        {"18446744073709551615", true, UINT64_MAX},
        {"18446744073709551616", false, 0},
        {"20000000TiB", false, 0},
        {"12XB", false, 0},
        {"", false, 0},
        {"GB", false, 0},
        {"-1", false, 0},
        {"1.", false, 0},
        {".5G", false, 0},
        {"1.5", false, 0},
        {"1e9", false, 0},
        {"1 2", false, 0},
        {"0x10", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 12345;
        bool ok = dg_parse_bytes(cases[i].in, &v);
        if (ok != cases[i].ok || (ok && v != cases[i].want)) {
            fail_msg("\"%s\": ok=%d v=%llu", cases[i].in, ok, (unsigned long long)v);
        }
    }
}

static void test_parse_listen(void **state)
{
    (void)state;
    char host[64];
    int port;
    assert_true(dg_parse_listen("127.0.0.1:8080", host, sizeof host, &port));
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_true(dg_parse_listen("[::1]:0", host, sizeof host, &port));
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_true(dg_parse_listen(":9000", host, sizeof host, &port));
    assert_string_equal(host, "");
    assert_true(dg_parse_listen("localhost:1", host, sizeof host, &port));
    assert_false(dg_parse_listen("::1:80", host, sizeof host, &port));
    assert_false(dg_parse_listen("host", host, sizeof host, &port));
    assert_false(dg_parse_listen("host:", host, sizeof host, &port));
    assert_false(dg_parse_listen("host:65536", host, sizeof host, &port));
    assert_false(dg_parse_listen("host:12a", host, sizeof host, &port));
    assert_false(dg_parse_listen("[::1]80", host, sizeof host, &port));
    assert_false(dg_parse_listen("a b:80", host, sizeof host, &port));
}

/* ---- resources ------------------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *mem_v2, *cpu_v2;               /* v2 files, NULL = absent */
    const char *mem_v1, *quota_v1, *period_v1; /* v1 files, NULL = absent */
    uint64_t memory_limit;                     /* cfg override */
    int threads;                               /* cfg override */
    const char *env_limit;                     /* DUCKDB_MEMORY_LIMIT */
    uint64_t want_cgroup, want_budget;
    const char *want_source;
    double want_quota;
    int want_threads; /* -1 = cpus */
} res_case;

#define GIB_ (UINT64_C(1) << 30)
#define PHYS (UINT64_C(16) * GIB_)

static void test_resources(void **state)
{
    (void)state;
    static const res_case cases[] = {
        {"v2 limited", "2147483648\n", "150000 100000\n", NULL, NULL, NULL, 0, 0, NULL, 2 * GIB_,
         2 * GIB_ / 10 * 8, "cgroup v2", 1.5, -2},
        {"v2 max", "max\n", "max 100000\n", NULL, NULL, NULL, 0, 0, NULL, 0, PHYS / 10 * 8,
         "physical", 0, -1},
        {"v2 above physical", "68719476736\n", NULL, NULL, NULL, NULL, 0, 0, NULL, 64 * GIB_,
         PHYS / 10 * 8, "physical", 0, -1},
        {"v1", NULL, NULL, "1073741824\n", "50000\n", "100000\n", 0, 0, NULL, GIB_, GIB_ / 10 * 8,
         "cgroup v1", 0.5, 1},
        {"v1 unlimited", NULL, NULL, "9223372036854771712\n", "-1\n", "100000\n", 0, 0, NULL, 0,
         PHYS / 10 * 8, "physical", 0, -1},
        {"none", NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, 0, PHYS / 10 * 8, "physical", 0, -1},
        {"flag override", "2147483648\n", NULL, NULL, NULL, NULL, 5 * GIB_, 3, "1GB", 2 * GIB_,
         5 * GIB_, "--memory-limit", 0, 3},
        {"env override", "2147483648\n", NULL, NULL, NULL, NULL, 0, 0, "1GB", 2 * GIB_, 1000000000,
         "DUCKDB_MEMORY_LIMIT", 0, -1},
    };
    char meminfo_dir[300];
    snprintf(meminfo_dir, sizeof meminfo_dir, "%s/proc", tmp_root);
    make_dir(meminfo_dir);
    write_file(meminfo_dir, "meminfo", "MemTotal:       16777216 kB\nMemFree:         1000 kB\n");
    char meminfo[400];
    snprintf(meminfo, sizeof meminfo, "%s/meminfo", meminfo_dir);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const res_case *c = &cases[i];
        char root[300], sub[400];
        snprintf(root, sizeof root, "%s/cg%zu", tmp_root, i);
        make_dir(root);
        if (c->mem_v2) {
            write_file(root, "memory.max", c->mem_v2);
        }
        if (c->cpu_v2) {
            write_file(root, "cpu.max", c->cpu_v2);
        }
        if (c->mem_v1) {
            snprintf(sub, sizeof sub, "%s/memory", root);
            make_dir(sub);
            write_file(sub, "memory.limit_in_bytes", c->mem_v1);
        }
        if (c->quota_v1) {
            snprintf(sub, sizeof sub, "%s/cpu", root);
            make_dir(sub);
            write_file(sub, "cpu.cfs_quota_us", c->quota_v1);
            write_file(sub, "cpu.cfs_period_us", c->period_v1);
        }
        dg_config_t cfg;
        assert_int_equal(dg_config_defaults(&cfg), DG_OK);
        assert_int_equal(dg_config_set(&cfg, "cgroup_root", root, DG_CFG_FLAG, "t", NULL), DG_OK);
        assert_int_equal(dg_config_set(&cfg, "meminfo_path", meminfo, DG_CFG_FLAG, "t", NULL),
                         DG_OK);
        cfg.memory_limit = c->memory_limit;
        cfg.threads = c->threads;
        char envbuf[64];
        snprintf(envbuf, sizeof envbuf, "DUCKDB_MEMORY_LIMIT=%s", c->env_limit ? c->env_limit : "");
        char *envp[] = {envbuf, NULL};
        dg_resources_t res;
        dg_error_t err;
        dg_error_clear(&err);
        assert_int_equal(dg_resources_detect(&cfg, envp, &res, &err), DG_OK);
        if (res.physical_bytes != PHYS || res.cgroup_bytes != c->want_cgroup ||
            res.budget_bytes != c->want_budget || strcmp(res.memory_source, c->want_source) != 0 ||
            res.cpu_quota < c->want_quota - 1e-9 || res.cpu_quota > c->want_quota + 1e-9) {
            fail_msg("%s: phys=%llu cgroup=%llu budget=%llu source=%s quota=%f", c->name,
                     (unsigned long long)res.physical_bytes, (unsigned long long)res.cgroup_bytes,
                     (unsigned long long)res.budget_bytes, res.memory_source, res.cpu_quota);
        }
        int want_threads = c->want_threads == -1   ? res.cpus
                           : c->want_threads == -2 ? (res.cpus < 2 ? res.cpus : 2)
                                                   : c->want_threads;
        assert_int_equal(res.threads, want_threads);
        assert_true(res.cpus >= 1 && res.cpus <= online);
        dg_config_free(&cfg);
    }
    /* A malformed DUCKDB_MEMORY_LIMIT is an error, not a silent default. */
    dg_config_t cfg;
    assert_int_equal(dg_config_defaults(&cfg), DG_OK);
    dg_config_set(&cfg, "meminfo_path", meminfo, DG_CFG_FLAG, "t", NULL);
    char root[300];
    snprintf(root, sizeof root, "%s/cg5", tmp_root);
    dg_config_set(&cfg, "cgroup_root", root, DG_CFG_FLAG, "t", NULL);
    char *envp[] = {"DUCKDB_MEMORY_LIMIT=12XB", NULL};
    dg_resources_t res;
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_resources_detect(&cfg, envp, &res, &err), DG_CONFIG);
    assert_non_null(strstr(err.msg, "DUCKDB_MEMORY_LIMIT"));
    dg_config_free(&cfg);
}

static void test_help_lists_every_flag(void **state)
{
    (void)state;
    char out[8192] = {0};
    FILE *f = fmemopen(out, sizeof out - 1, "w");
    dg_config_print_help(f);
    fclose(f);
    assert_non_null(strstr(out, "--data-dir DIR"));
    assert_non_null(strstr(out, "DUCKGATE_DATA_DIR"));
    assert_non_null(strstr(out, "--max-result-bytes"));
    assert_non_null(strstr(out, "--log-level"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),       cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_bad_file_lines), cmocka_unit_test(test_bad_flags_env),
        cmocka_unit_test(test_parse_bytes),    cmocka_unit_test(test_parse_listen),
        cmocka_unit_test(test_resources),      cmocka_unit_test(test_help_lists_every_flag),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
