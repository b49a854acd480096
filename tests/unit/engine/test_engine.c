/* Unit tests for src/engine: the frame codec, and the pool driving real engine processes.
 *
 * This executable doubles as the engine: the pool re-executes /proc/self/exe as
 * `<exe> engine --ctl-fd ...`, which main() hands to dg_engine_main. The fixture database is
 * created in a temporary data directory with the DuckDB layer (read-write), then served
 * read-only by the engines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/dgtime.h"
#include "core/log.h"
#include "db/db.h"
#include "enc/enc.h"
#include "engine/engine.h"
#include "engine/frame.h"

static char data_dir[256];
static char state_dir[300];

/* A query that keeps DuckDB busy for many seconds inside one operator (an aggregate over a
 * cross product), so only an interrupt or a kill ends it early. */
#define LONG_AGG "SELECT sum(a.range * b.range) FROM range(200000) a, range(200000) b"

/* ---- frame codec ------------------------------------------------------------------------- */

static void test_frame_header(void **state)
{
    (void)state;
    uint8_t h[DG_FRAME_HEADER_LEN];
    dg_frame_type_t t;
    uint32_t len;
    dg_frame_header_encode(h, DG_FRAME_DATA, 0x01020304u);
    assert_int_equal(h[0], 0x04);
    assert_int_equal(h[3], 0x01);
    assert_int_equal(h[4], DG_FRAME_DATA);
    /* 0x01020304 > DG_FRAME_MAX_PAYLOAD: the decoder refuses it. */
    assert_int_equal(dg_frame_header_decode(h, &t, &len), DG_PROTOCOL);

    for (int type = DG_FRAME_REQ; type <= DG_FRAME_PROGRESS; type++) {
        dg_frame_header_encode(h, (dg_frame_type_t)type, DG_FRAME_MAX_PAYLOAD);
        assert_int_equal(dg_frame_header_decode(h, &t, &len), DG_OK);
        assert_int_equal(t, type);
        assert_int_equal(len, DG_FRAME_MAX_PAYLOAD);
    }
    dg_frame_header_encode(h, DG_FRAME_END, 7);
    h[4] = 0;
    assert_int_equal(dg_frame_header_decode(h, &t, &len), DG_PROTOCOL);
    h[4] = DG_FRAME_PROGRESS + 1;
    assert_int_equal(dg_frame_header_decode(h, &t, &len), DG_PROTOCOL);
    h[4] = DG_FRAME_END;
    h[5] = 1; /* flags are reserved */
    assert_int_equal(dg_frame_header_decode(h, &t, &len), DG_PROTOCOL);
    h[5] = 0;
    h[7] = 1;
    assert_int_equal(dg_frame_header_decode(h, &t, &len), DG_PROTOCOL);
}

static void test_frame_io(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    dg_buf_t b;
    dg_buf_init(&b, DG_FRAME_MAX_PAYLOAD);
    dg_frame_type_t t;

    assert_int_equal(dg_frame_write(sv[0], DG_FRAME_HEAD, "{\"a\":1}", 7), DG_OK);
    assert_int_equal(dg_frame_read(sv[1], &t, &b), DG_OK);
    assert_int_equal(t, DG_FRAME_HEAD);
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.p, "{\"a\":1}", 7);

    assert_int_equal(dg_frame_write(sv[0], DG_FRAME_CANCEL, NULL, 0), DG_OK);
    assert_int_equal(dg_frame_read(sv[1], &t, &b), DG_OK);
    assert_int_equal(t, DG_FRAME_CANCEL);
    assert_int_equal(b.len, 0);

    /* The frame is larger than the socket buffer: a child process writes it while we read. */
    size_t big = 300000;
    char *data = malloc(big);
    assert_non_null(data);
    for (size_t i = 0; i < big; i++) {
        data[i] = (char)(i * 7);
    }
    pid_t pid = fork();
    if (pid == 0) {
        _exit(dg_frame_write(sv[0], DG_FRAME_DATA, data, (uint32_t)big) == DG_OK ? 0 : 1);
    }
    assert_int_equal(dg_frame_read(sv[1], &t, &b), DG_OK);
    assert_int_equal(t, DG_FRAME_DATA);
    assert_int_equal(b.len, big);
    assert_memory_equal(b.p, data, big);
    int st;
    waitpid(pid, &st, 0);
    assert_int_equal(WEXITSTATUS(st), 0);

    /* Oversize for the writer, and for the reader's buffer cap. */
    assert_int_equal(dg_frame_write(sv[0], DG_FRAME_DATA, data, DG_FRAME_MAX_PAYLOAD + 1),
                     DG_INTERNAL);
    dg_buf_t small;
    dg_buf_init(&small, 16);
    assert_int_equal(dg_frame_write(sv[0], DG_FRAME_DATA, data, 17), DG_OK);
    assert_int_equal(dg_frame_read(sv[1], &t, &small), DG_PROTOCOL);
    dg_buf_free(&small);

    /* Garbage header, then EOF. */
    int sv2[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2), 0);
    uint8_t junk[8] = {1, 0, 0, 0, 99, 0, 0, 0};
    assert_int_equal(write(sv2[0], junk, sizeof junk), 8);
    assert_int_equal(dg_frame_read(sv2[1], &t, &b), DG_PROTOCOL);
    close(sv2[0]);
    assert_int_equal(dg_frame_read(sv2[1], &t, &b), DG_PROTOCOL);
    close(sv2[1]);

    free(data);
    dg_buf_free(&b);
    close(sv[0]);
    close(sv[1]);
}

/* ---- pool fixtures ------------------------------------------------------------------------- */

typedef struct pool_fix {
    dg_config_t cfg;
    dg_resources_t res;
    dg_engines_t *p;
} pool_fix_t;

static void fix_start(pool_fix_t *f, int engines, int slots, int queue_len)
{
    memset(f, 0, sizeof *f);
    f->cfg.data_dir = data_dir;
    f->cfg.state_dir = state_dir;
    f->cfg.engines = engines;
    f->cfg.slots = slots;
    f->cfg.queue_len = queue_len;
    f->cfg.queue_timeout_ms = 200;
    f->cfg.timeout_ms = 30000;
    f->cfg.kill_grace_ms = 5000;
    f->cfg.log_level = (char *)"warn";
    f->res.budget_bytes = (uint64_t)512 << 20;
    f->res.threads = 1;
    dg_engines_opts_t o = {.cfg = &f->cfg, .res = &f->res, .self_exe = "/proc/self/exe"};
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = dg_engines_start(&o, &f->p, &err);
    if (rc != DG_OK) {
        fail_msg("dg_engines_start: %s: %s", dg_rc_name(rc), err.msg);
    }
}

static void fix_stop(pool_fix_t *f)
{
    dg_engines_stop(f->p, 2000);
    f->p = NULL;
}

typedef struct answer {
    dg_rc_t rc;    /* of the pool calls */
    json_t *head;  /* HEAD payload, or NULL */
    json_t *end;   /* END payload, or NULL */
    json_t *error; /* ERROR payload, or NULL */
    dg_buf_t body; /* DATA bytes */
    int n_data;
} answer_t;

static void answer_free(answer_t *a)
{
    json_decref(a->head);
    json_decref(a->end);
    json_decref(a->error);
    dg_buf_free(&a->body);
    memset(a, 0, sizeof *a);
}

static char *req_json(const char *kind, const char *sql, const char *format, int64_t timeout_ms,
                      int64_t max_rows)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "id", "test-q", "kind", kind,
                          "db", "t", "format", format, "timeout_ms", (json_int_t)timeout_ms,
                          "max_rows", (json_int_t)max_rows, "max_bytes", (json_int_t)(1 << 20),
                          "queue_ms", (json_int_t)0);
    if (sql) {
        json_object_set_new(o, "sql", json_string(sql));
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static json_t *parse(const dg_buf_t *b)
{
    json_error_t e;
    json_t *j = json_loadb(b->p, b->len, 0, &e);
    assert_non_null(j);
    return j;
}

/* Reads frames until END/ERROR or a pool error. */
static void read_answer(dg_slot_t *s, int client_fd, answer_t *a)
{
    dg_buf_t pl;
    dg_buf_init(&pl, DG_FRAME_MAX_PAYLOAD);
    for (;;) {
        dg_frame_type_t t;
        a->rc = dg_slot_read(s, client_fd, &t, &pl);
        if (a->rc != DG_OK) {
            break;
        }
        if (t == DG_FRAME_HEAD) {
            assert_null(a->head);
            a->head = parse(&pl);
        } else if (t == DG_FRAME_DATA) {
            assert_non_null(a->head);
            assert_true(pl.len <= DG_FRAME_MAX_PAYLOAD);
            dg_buf_append(&a->body, pl.p, pl.len);
            a->n_data++;
        } else if (t == DG_FRAME_END) {
            a->end = parse(&pl);
            break;
        } else if (t == DG_FRAME_ERROR) {
            a->error = parse(&pl);
            break;
        } else {
            fail_msg("unexpected frame type %d", (int)t);
        }
    }
    dg_buf_free(&pl);
}

/* Runs one request on a leased slot. */
static void run_on(dg_slot_t *s, const char *kind, const char *sql, const char *format,
                   int64_t timeout_ms, int64_t max_rows, answer_t *a)
{
    memset(a, 0, sizeof *a);
    dg_buf_init(&a->body, 0);
    char *req = req_json(kind, sql, format, timeout_ms, max_rows);
    a->rc = dg_slot_send(s, req, strlen(req), dg_now_ms() + timeout_ms);
    free(req);
    if (a->rc == DG_OK) {
        read_answer(s, -1, a);
    }
}

static void run(pool_fix_t *f, const char *sql, const char *format, int64_t timeout_ms, answer_t *a)
{
    dg_slot_t *s = NULL;
    int retry = 0;
    assert_int_equal(dg_engines_acquire(f->p, -1, &s, &retry), DG_OK);
    run_on(s, "sql", sql, format, timeout_ms, 0, a);
    dg_engines_release(f->p, s);
}

static const char *err_code(const answer_t *a)
{
    return a->error ? json_string_value(json_object_get(a->error, "code")) : "(none)";
}

/* The value of a "Key:" line of /proc/<pid>/<file>, or "" when absent. */
static void proc_field(int pid, const char *file, const char *key, char *out, size_t cap)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) {
        return;
    }
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, strlen(key)) == 0) {
            snprintf(out, cap, "%s", line + strlen(key));
            break;
        }
    }
    fclose(f);
}

static int count_fds(void)
{
    int n = 0;
    char path[64];
    for (int fd = 0; fd < 1024; fd++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        n += access(path, F_OK) == 0;
    }
    return n;
}

/* Encodes a query's result in-process, the way the engine does, to compare bytes. */
static void encode_local(const char *sql, dg_format_t fmt, dg_buf_t *out)
{
    char path[512];
    snprintf(path, sizeof path, "%s/t.duckdb", data_dir);
    char tdir[512];
    snprintf(tdir, sizeof tdir, "%s/.fixtmp", data_dir);
    dg_db_opts_t o = {.path = path, .name = "t", .read_only = true, .threads = 1, .temp_dir = tdir};
    dg_db_t *db = NULL;
    dg_db_cursor_t *c = NULL;
    dg_enc_t *e = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_db_open(&o, &db, &err), DG_OK);
    dg_db_query_t q = {.sql = sql, .sql_len = strlen(sql)};
    assert_int_equal(dg_db_query_start(db, &q, &c, &err), DG_OK);
    dg_enc_opts_t eo = {.query_id = "test-q"};
    assert_int_equal(dg_enc_new(fmt, dg_db_cursor_schema(c), &eo, &e), DG_OK);
    assert_int_equal(dg_enc_begin(e, out), DG_OK);
    uint64_t rows = 0;
    for (;;) {
        const dg_batch_t *b = NULL;
        assert_int_equal(dg_db_cursor_next(c, &b, &err), DG_OK);
        if (!b) {
            break;
        }
        assert_int_equal(dg_enc_batch(e, b, b->n_rows, out), DG_OK);
        rows += b->n_rows;
    }
    dg_enc_summary_t sum = {.rows = rows, .bytes = out->len};
    assert_int_equal(dg_enc_end(e, &sum, out), DG_OK);
    dg_enc_free(e);
    dg_db_cursor_free(c);
    dg_db_close(db);
}

/* ---- pool tests ------------------------------------------------------------------------------ */

static void test_query_roundtrip(void **state)
{
    (void)state;
    pool_fix_t f;
    fix_start(&f, 1, 2, 4);
    assert_true(dg_engines_ready(f.p));
    answer_t a;

    /* The engine runs with no new privileges and, outside sanitizer builds, an address-space
     * cap; it holds only stdio, the control socket and its slots (plus DuckDB's own files). */
    int pid = 0;
    assert_int_equal(dg_engines_pids(f.p, &pid, 1), 1);
    char v[256];
    proc_field(pid, "status", "NoNewPrivs:", v, sizeof v);
    assert_int_equal(strtol(v, NULL, 10), 1);
    proc_field(pid, "limits", "Max address space", v, sizeof v);
#if defined(__SANITIZE_ADDRESS__)
    assert_non_null(strstr(v, "unlimited"));
#else
    assert_null(strstr(v, "unlimited"));
#endif
    for (int fd = 4 + 2; fd < 64; fd++) {
        char link[64], target[512];
        snprintf(link, sizeof link, "/proc/%d/fd/%d", pid, fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n > 0) {
            target[n] = '\0';
            /* Anything but DuckDB's database/wal/temp files is an inherited leak. */
            if (strstr(target, "socket:") || strstr(target, "pipe:") || strstr(target, "eventfd")) {
                fail_msg("engine fd %d leaked: %s", fd, target);
            }
        }
    }

    run(&f, "SELECT 42 AS x", "json", 10000, &a);
    assert_int_equal(a.rc, DG_OK);
    assert_non_null(a.head);
    assert_int_equal(json_integer_value(json_object_get(a.head, "status")), 200);
    assert_string_equal(json_string_value(json_object_get(a.head, "content_type")),
                        dg_format_content_type(DG_FMT_JSON));
    assert_non_null(a.end);
    assert_int_equal(json_integer_value(json_object_get(a.end, "rows")), 1);
    assert_int_equal(json_integer_value(json_object_get(a.end, "bytes")), a.body.len);
    assert_non_null(strstr(a.body.p, "42"));
    answer_free(&a);

    /* CSV has no timings in it, so the relayed bytes must equal a local encoding exactly;
     * 300k rows make many DATA frames. */
    const char *big = "SELECT i, 'name-' || i::VARCHAR AS s FROM t ORDER BY i";
    dg_buf_t local;
    dg_buf_init(&local, 0);
    encode_local(big, DG_FMT_CSV, &local);
    run(&f, big, "csv", 10000, &a);
    assert_int_equal(a.rc, DG_OK);
    assert_non_null(a.end);
    assert_true(a.n_data > 1);
    assert_int_equal(a.body.len, local.len);
    assert_memory_equal(a.body.p, local.p, local.len);
    assert_int_equal(json_integer_value(json_object_get(a.end, "rows")), 300000);
    assert_false(json_is_true(json_object_get(a.end, "truncated")));
    dg_buf_free(&local);
    answer_free(&a);

    /* max_rows truncates and says so. */
    dg_slot_t *s = NULL;
    assert_int_equal(dg_engines_acquire(f.p, -1, &s, NULL), DG_OK);
    run_on(s, "sql", big, "ndjson", 10000, 5000, &a);
    assert_non_null(a.end);
    assert_int_equal(json_integer_value(json_object_get(a.end, "rows")), 5000);
    assert_true(json_is_true(json_object_get(a.end, "truncated")));
    answer_free(&a);
    /* The same slot serves the next request: ping, catalog, unknown db. */
    run_on(s, "ping", NULL, "json", 1000, 0, &a);
    assert_non_null(a.end);
    assert_null(a.head);
    answer_free(&a);
    run_on(s, "catalog", NULL, "json", 5000, 0, &a);
    assert_non_null(a.end);
    assert_non_null(strstr(a.body.p, "\"t\""));
    answer_free(&a);
    dg_engines_release(f.p, s);

    /* Over the JSON cap: RESULT_TOO_LARGE pointing at ndjson, before any HEAD. */
    run(&f, "SELECT * FROM range(2000000)", "json", 10000, &a);
    assert_string_equal(err_code(&a), "RESULT_TOO_LARGE");
    assert_null(a.head);
    assert_non_null(strstr(json_string_value(json_object_get(a.error, "message")), "ndjson"));
    answer_free(&a);

    dg_engines_stats_t st;
    dg_engines_stats(f.p, &st);
    assert_int_equal(st.engines_up, 1);
    assert_int_equal(st.slots_total, 2);
    assert_int_equal(st.slots_busy, 0);
    fix_stop(&f);
}

static void test_sql_error(void **state)
{
    (void)state;
    pool_fix_t f;
    fix_start(&f, 1, 1, 4);
    answer_t a;
    run(&f, "SELEC 1", "json", 5000, &a);
    assert_int_equal(a.rc, DG_OK);
    assert_null(a.head);
    assert_string_equal(err_code(&a), "SQL_ERROR");
    answer_free(&a);

    dg_slot_t *s = NULL;
    assert_int_equal(dg_engines_acquire(f.p, -1, &s, NULL), DG_OK);
    char *req = strdup("{\"id\":\"x\",\"kind\":\"sql\",\"db\":\"nope\",\"sql\":\"SELECT 1\"}");
    assert_int_equal(dg_slot_send(s, req, strlen(req), dg_now_ms() + 5000), DG_OK);
    free(req);
    memset(&a, 0, sizeof a);
    read_answer(s, -1, &a);
    assert_string_equal(err_code(&a), "UNKNOWN_DB");
    answer_free(&a);
    dg_engines_release(f.p, s);
    fix_stop(&f);
}

static void test_admission(void **state)
{
    (void)state;
    pool_fix_t f;
    fix_start(&f, 1, 1, 0);
    dg_slot_t *s1 = NULL, *s2 = NULL;
    int retry = 0;
    assert_int_equal(dg_engines_acquire(f.p, -1, &s1, &retry), DG_OK);
    assert_int_equal(dg_engines_acquire(f.p, -1, &s2, &retry), DG_OVERLOADED);
    assert_null(s2);
    assert_true(retry >= 1);
    dg_engines_stats_t st;
    dg_engines_stats(f.p, &st);
    assert_int_equal(st.slots_busy, 1);
    dg_engines_release(f.p, s1);
    assert_int_equal(dg_engines_acquire(f.p, -1, &s2, &retry), DG_OK);
    dg_engines_release(f.p, s2);
    fix_stop(&f);

    /* With a queue: a waiter times out after queue_timeout_ms, and draining wakes waiters. */
    fix_start(&f, 1, 1, 1);
    assert_int_equal(dg_engines_acquire(f.p, -1, &s1, &retry), DG_OK);
    int64_t t0 = dg_now_ms();
    assert_int_equal(dg_engines_acquire(f.p, -1, &s2, &retry), DG_OVERLOADED);
    int64_t waited = dg_now_ms() - t0;
    assert_true(waited >= 150 && waited < 2000);

    /* A queued client that hangs up leaves the queue instead of holding its place. */
    int cl[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, cl), 0);
    close(cl[1]);
    assert_int_equal(dg_engines_acquire(f.p, cl[0], &s2, &retry), DG_CLIENT_GONE);
    assert_null(s2);
    close(cl[0]);
    dg_engines_stats(f.p, &st);
    assert_int_equal(st.queue_depth, 0);
    dg_engines_release(f.p, s1);
    dg_engines_stop(f.p, 0);
}

static void test_deadline_interrupt(void **state)
{
    (void)state;
    pool_fix_t f;
    fix_start(&f, 1, 1, 4);
    answer_t a;
    int64_t t0 = dg_now_ms();
    run(&f, LONG_AGG, "json", 300, &a);
    int64_t took = dg_now_ms() - t0;
    assert_int_equal(a.rc, DG_OK);
    assert_string_equal(err_code(&a), "TIMEOUT");
    assert_true(took < 3000); /* the kill would come at 300 + 5000 ms */
    answer_free(&a);
    dg_engines_stats_t st;
    dg_engines_stats(f.p, &st);
    assert_int_equal(st.kills, 0);
    assert_int_equal(st.restarts, 0);
    /* The slot is clean afterwards. */
    run(&f, "SELECT 1 AS one", "ndjson", 5000, &a);
    assert_non_null(a.end);
    answer_free(&a);
    fix_stop(&f);
}

static void wait_engines_up(pool_fix_t *f, int n, uint64_t restarts)
{
    dg_engines_stats_t st;
    for (int i = 0; i < 200; i++) {
        dg_engines_stats(f->p, &st);
        if (st.engines_up == n && st.restarts >= restarts) {
            return;
        }
        dg_sleep_ms(50);
    }
    fail_msg("engines did not come back: up=%d restarts=%llu", st.engines_up,
             (unsigned long long)st.restarts);
}

static void test_kill_path(void **state)
{
    (void)state;
    pool_fix_t f;
    fix_start(&f, 1, 1, 4);
    f.cfg.kill_grace_ms = 300;
    int pid = 0;
    assert_int_equal(dg_engines_pids(f.p, &pid, 1), 1);
    dg_slot_t *s = NULL;
    assert_int_equal(dg_engines_acquire(f.p, -1, &s, NULL), DG_OK);
    char *req = req_json("sql", LONG_AGG, "json", 200, 0);
    int64_t t0 = dg_now_ms();
    assert_int_equal(dg_slot_send(s, req, strlen(req), t0 + 200), DG_OK);
    free(req);
    /* A stopped engine ignores its own deadline, like a query that ignores interrupts. */
    kill(pid, SIGSTOP);
    answer_t a;
    memset(&a, 0, sizeof a);
    read_answer(s, -1, &a);
    int64_t took = dg_now_ms() - t0;
    assert_int_equal(a.rc, DG_TIMEOUT);
    assert_true(took >= 450 && took < 2000);
    answer_free(&a);
    dg_engines_release(f.p, s);
    dg_engines_stats_t st;
    dg_engines_stats(f.p, &st);
    assert_int_equal(st.kills, 1);
    wait_engines_up(&f, 1, 1);
    int pid2 = 0;
    assert_int_equal(dg_engines_pids(f.p, &pid2, 1), 1);
    assert_int_not_equal(pid, pid2);
    run(&f, "SELECT 2 AS two", "json", 5000, &a);
    assert_non_null(a.end);
    answer_free(&a);
    fix_stop(&f);
}

typedef struct par {
    pool_fix_t *f;
    dg_slot_t *s;
    answer_t a;
    int64_t done_ms;
} par_t;

static void *par_main(void *arg)
{
    par_t *q = arg;
    read_answer(q->s, -1, &q->a);
    q->done_ms = dg_now_ms();
    return NULL;
}

static void test_engine_crash(void **state)
{
    (void)state;
    int fds_before = count_fds();
    pool_fix_t f;
    fix_start(&f, 2, 2, 4);
    int pids[2];
    assert_int_equal(dg_engines_pids(f.p, pids, 2), 2);
    par_t q[4];
    pthread_t th[4];
    /* Four slots: the pool spreads them over both engines (most free slots first), two each.
     * The query runs for seconds, so all four are in flight when engine 0 dies. */
    for (int i = 0; i < 4; i++) {
        memset(&q[i], 0, sizeof q[i]);
        q[i].f = &f;
        assert_int_equal(dg_engines_acquire(f.p, -1, &q[i].s, NULL), DG_OK);
        dg_buf_init(&q[i].a.body, 0);
        char *req = req_json("sql", "SELECT count(*) FROM range(2000000000)", "json", 20000, 0);
        assert_int_equal(dg_slot_send(q[i].s, req, strlen(req), dg_now_ms() + 20000), DG_OK);
        free(req);
    }
    for (int i = 0; i < 4; i++) {
        pthread_create(&th[i], NULL, par_main, &q[i]);
    }
    dg_sleep_ms(100);
    int64_t killed_ms = dg_now_ms();
    kill(pids[0], SIGKILL);
    int failed = 0, ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        if (q[i].a.rc == DG_ENGINE_FAILED) {
            failed++;
        } else if (q[i].a.rc == DG_OK && q[i].a.end) {
            /* It was still running when its neighbour engine died. */
            assert_true(q[i].done_ms > killed_ms);
            ok++;
        } else {
            fail_msg("unexpected answer rc=%s error=%s", dg_rc_name(q[i].a.rc), err_code(&q[i].a));
        }
        dg_engines_release(f.p, q[i].s);
        answer_free(&q[i].a);
    }
    assert_int_equal(failed, 2);
    assert_int_equal(ok, 2);
    wait_engines_up(&f, 2, 1);
    dg_engines_stats_t st;
    dg_engines_stats(f.p, &st);
    assert_int_equal(st.restarts, 1);
    assert_int_equal(st.kills, 0);
    assert_int_equal(st.slots_total, 4);
    for (int i = 0; i < 4; i++) {
        answer_t a;
        run(&f, "SELECT 3 AS three", "json", 5000, &a);
        assert_non_null(a.end);
        answer_free(&a);
    }
    fix_stop(&f);
    assert_int_equal(count_fds(), fds_before);
}

static void test_cancel_midstream(void **state)
{
    (void)state;
    pool_fix_t f;
    fix_start(&f, 1, 1, 4);
    dg_slot_t *s = NULL;
    assert_int_equal(dg_engines_acquire(f.p, -1, &s, NULL), DG_OK);
    char *req = req_json("sql", "SELECT * FROM range(1000000000)", "ndjson", 30000, 0);
    assert_int_equal(dg_slot_send(s, req, strlen(req), dg_now_ms() + 30000), DG_OK);
    free(req);
    dg_buf_t pl;
    dg_buf_init(&pl, DG_FRAME_MAX_PAYLOAD);
    dg_frame_type_t t;
    assert_int_equal(dg_slot_read(s, -1, &t, &pl), DG_OK);
    assert_int_equal(t, DG_FRAME_HEAD);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(dg_slot_read(s, -1, &t, &pl), DG_OK);
        assert_int_equal(t, DG_FRAME_DATA);
    }
    dg_slot_cancel(s);
    dg_slot_cancel(s); /* idempotent */
    /* Read to the end: the stream ends with the NDJSON error line and an ERROR frame. */
    answer_t a;
    memset(&a, 0, sizeof a);
    dg_buf_init(&a.body, 0);
    a.head = json_object(); /* already seen */
    int64_t t0 = dg_now_ms();
    read_answer(s, -1, &a);
    assert_true(dg_now_ms() - t0 < 3000);
    assert_int_equal(a.rc, DG_OK);
    assert_string_equal(err_code(&a), "CANCELLED");
    assert_non_null(strstr(a.body.p, "\"type\":\"error\""));
    answer_free(&a);
    dg_buf_free(&pl);

    /* Releasing mid-stream drains; the slot is reusable. */
    req = req_json("sql", "SELECT * FROM range(1000000000)", "csv", 30000, 0);
    assert_int_equal(dg_slot_send(s, req, strlen(req), dg_now_ms() + 30000), DG_OK);
    free(req);
    dg_buf_init(&pl, DG_FRAME_MAX_PAYLOAD);
    assert_int_equal(dg_slot_read(s, -1, &t, &pl), DG_OK);
    dg_buf_free(&pl);
    t0 = dg_now_ms();
    dg_engines_release(f.p, s);
    assert_true(dg_now_ms() - t0 < 3000);
    run(&f, "SELECT 4 AS four", "json", 5000, &a);
    assert_non_null(a.end);
    answer_free(&a);

    /* A CANCEL that crosses the END is ignored by the idle engine: the next request on the
     * same slot is answered normally. */
    assert_int_equal(dg_engines_acquire(f.p, -1, &s, NULL), DG_OK);
    req = req_json("sql", "SELECT 5 AS five", "json", 5000, 0);
    assert_int_equal(dg_slot_send(s, req, strlen(req), dg_now_ms() + 5000), DG_OK);
    free(req);
    dg_sleep_ms(200); /* the engine has answered by now; the CANCEL arrives after its END */
    dg_slot_cancel(s);
    memset(&a, 0, sizeof a);
    dg_buf_init(&a.body, 0);
    read_answer(s, -1, &a);
    assert_non_null(a.end);
    answer_free(&a);
    run_on(s, "sql", "SELECT 6 AS six", "json", 5000, 0, &a);
    assert_non_null(a.end);
    assert_non_null(strstr(a.body.p, "6"));
    answer_free(&a);
    dg_engines_release(f.p, s);
    dg_engines_stats_t st;
    dg_engines_stats(f.p, &st);
    assert_int_equal(st.restarts, 0);
    assert_int_equal(st.kills, 0);
    fix_stop(&f);
}

static void *closer_main(void *arg)
{
    dg_sleep_ms(300);
    close(*(int *)arg);
    return NULL;
}

static void test_client_gone(void **state)
{
    (void)state;
    pool_fix_t f;
    fix_start(&f, 1, 1, 4);
    int cl[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, cl), 0);
    dg_slot_t *s = NULL;
    assert_int_equal(dg_engines_acquire(f.p, -1, &s, NULL), DG_OK);
    char *req = req_json("sql", LONG_AGG, "json", 30000, 0);
    assert_int_equal(dg_slot_send(s, req, strlen(req), dg_now_ms() + 30000), DG_OK);
    free(req);
    /* Pipelined bytes from the client must not count as hanging up. */
    assert_int_equal(write(cl[1], "GET / HTTP/1.1\r\n", 16), 16);
    dg_buf_t pl;
    dg_buf_init(&pl, DG_FRAME_MAX_PAYLOAD);
    pthread_t th;
    int64_t t0 = dg_now_ms();
    pthread_create(&th, NULL, closer_main, &cl[1]);
    dg_frame_type_t t;
    dg_rc_t rc = dg_slot_read(s, cl[0], &t, &pl);
    int64_t took = dg_now_ms() - t0;
    pthread_join(th, NULL);
    assert_int_equal(rc, DG_CLIENT_GONE);
    assert_true(took >= 250 && took < 1500);
    /* Release drains the interrupted query quickly: it was cancelled, not waited for. */
    int64_t t1 = dg_now_ms();
    dg_engines_release(f.p, s);
    assert_true(dg_now_ms() - t1 < 1000);
    dg_buf_free(&pl);
    close(cl[0]);
    dg_engines_stats_t st;
    dg_engines_stats(f.p, &st);
    assert_int_equal(st.kills, 0);
    fix_stop(&f);
}

typedef struct holder {
    dg_engines_t *p;
    dg_slot_t *s;
    answer_t a;
    dg_rc_t acquire_rc;
} holder_t;

static void *holder_main(void *arg)
{
    holder_t *h = arg;
    read_answer(h->s, -1, &h->a);
    dg_engines_release(h->p, h->s);
    return NULL;
}

static void *waiter_main(void *arg)
{
    holder_t *h = arg;
    h->acquire_rc = dg_engines_acquire(h->p, -1, &h->s, NULL);
    return NULL;
}

static void test_stop_drain(void **state)
{
    (void)state;
    pool_fix_t f;
    fix_start(&f, 1, 1, 4);
    f.cfg.queue_timeout_ms = 10000;
    holder_t h = {.p = f.p}, w = {.p = f.p};
    dg_buf_init(&h.a.body, 0);
    assert_int_equal(dg_engines_acquire(f.p, -1, &h.s, NULL), DG_OK);
    char *req = req_json("sql", LONG_AGG, "json", 30000, 0);
    assert_int_equal(dg_slot_send(h.s, req, strlen(req), dg_now_ms() + 30000), DG_OK);
    free(req);
    pthread_t th, tw;
    pthread_create(&th, NULL, holder_main, &h);
    pthread_create(&tw, NULL, waiter_main, &w);
    dg_engines_stats_t st;
    for (int i = 0; i < 100; i++) {
        dg_engines_stats(f.p, &st);
        if (st.queue_depth == 1) {
            break;
        }
        dg_sleep_ms(10);
    }
    assert_int_equal(st.queue_depth, 1);
    /* The running query outlives the drain time: stop terminates its engine, the holder sees
     * ENGINE_FAILED and hands the slot back, the queued request is turned away. */
    int64_t t0 = dg_now_ms();
    dg_engines_stop(f.p, 300);
    int64_t took = dg_now_ms() - t0;
    pthread_join(th, NULL);
    pthread_join(tw, NULL);
    assert_true(took >= 300 && took < 3000);
    assert_int_equal(h.a.rc, DG_ENGINE_FAILED);
    assert_int_equal(w.acquire_rc, DG_DRAINING);
    assert_null(w.s);
    answer_free(&h.a);
}

static void test_start_failure(void **state)
{
    (void)state;
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/bad", data_dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/broken.duckdb", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("this is not a database file, not even close; DuckDB must refuse it", fp);
    fclose(fp);
    dg_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.data_dir = dir;
    cfg.engines = 2;
    cfg.slots = 1;
    cfg.log_level = (char *)"off";
    dg_resources_t res;
    memset(&res, 0, sizeof res);
    res.budget_bytes = (uint64_t)256 << 20;
    res.threads = 1;
    dg_engines_opts_t o = {.cfg = &cfg, .res = &res, .self_exe = "/proc/self/exe"};
    dg_engines_t *p = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    int fds_before = count_fds();
    assert_int_equal(dg_engines_start(&o, &p, &err), DG_IO);
    assert_null(p);
    assert_non_null(strstr(err.msg, "broken"));
    assert_int_equal(count_fds(), fds_before);
}

/* ---- fixture data ---------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    snprintf(data_dir, sizeof data_dir, "/tmp/dg-engine-test-XXXXXX");
    if (!mkdtemp(data_dir)) {
        return -1;
    }
    snprintf(state_dir, sizeof state_dir, "%s/.state", data_dir);
    char path[512];
    snprintf(path, sizeof path, "%s/t.duckdb", data_dir);
    char tdir[512];
    snprintf(tdir, sizeof tdir, "%s/.fixtmp", data_dir);
    dg_db_opts_t o = {
        .path = path, .name = "t", .read_only = false, .threads = 1, .temp_dir = tdir};
    dg_db_t *db = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    if (dg_db_open(&o, &db, &err) != DG_OK) {
        fprintf(stderr, "fixture open: %s\n", err.msg);
        return -1;
    }
    dg_rc_t rc =
        dg_db_exec(db, "CREATE TABLE t AS SELECT range::INTEGER AS i FROM range(300000)", &err);
    dg_db_close(db);
    if (rc != DG_OK) {
        fprintf(stderr, "fixture exec: %s\n", err.msg);
        return -1;
    }
    return 0;
}
static void *waiter_on0_main(void *arg)
{
    holder_t *h = arg;
    h->acquire_rc = dg_engines_acquire_on(h->p, 0, -1, &h->s, NULL);
    return NULL;
}

/* dg_engines_acquire_on: only slots of the named engine; a waiter for a busy engine neither
 * takes another engine's slot nor holds up requests that can. */
static void test_acquire_on(void **state)
{
    (void)state;
    pool_fix_t f;
    fix_start(&f, 2, 1, 4);
    dg_slot_t *s0 = NULL, *s1 = NULL;
    int retry = 0;
    assert_int_equal(dg_engines_acquire_on(f.p, 2, -1, &s0, &retry), DG_INTERNAL);
    assert_int_equal(dg_engines_acquire_on(f.p, 0, -1, &s0, &retry), DG_OK);
    /* Engine 0's only slot is leased: a request for engine 0 waits and times out although
     * engine 1 is free. */
    int64_t t0 = dg_now_ms();
    assert_int_equal(dg_engines_acquire_on(f.p, 0, -1, &s1, &retry), DG_OVERLOADED);
    assert_true(dg_now_ms() - t0 >= 150);
    assert_null(s1);

    /* A queued waiter for engine 0 ... */
    f.cfg.queue_timeout_ms = 10000;
    holder_t w = {.p = f.p};
    pthread_t tw;
    pthread_create(&tw, NULL, waiter_on0_main, &w);
    dg_engines_stats_t st;
    for (int i = 0; i < 200; i++) {
        dg_engines_stats(f.p, &st);
        if (st.queue_depth == 1) {
            break;
        }
        dg_sleep_ms(10);
    }
    assert_int_equal(st.queue_depth, 1);
    /* ... does not stop a request for any engine from taking engine 1 at once, */
    t0 = dg_now_ms();
    assert_int_equal(dg_engines_acquire(f.p, -1, &s1, &retry), DG_OK);
    assert_true(dg_now_ms() - t0 < 150);
    /* and releasing engine 1's slot does not hand it to the engine-0 waiter. */
    dg_engines_release(f.p, s1);
    dg_sleep_ms(50);
    dg_engines_stats(f.p, &st);
    assert_int_equal(st.queue_depth, 1);
    assert_int_equal(dg_engines_try_acquire(f.p, 1, &s1), DG_OK);
    dg_engines_release(f.p, s1);
    /* Engine 0's slot goes to its waiter. */
    dg_engines_release(f.p, s0);
    pthread_join(tw, NULL);
    assert_int_equal(w.acquire_rc, DG_OK);
    assert_non_null(w.s);
    dg_engines_stats(f.p, &st);
    assert_int_equal(st.queue_depth, 0);
    /* The slot it got is engine 0's: engine 0 has no free slot left, engine 1 has. */
    assert_int_equal(dg_engines_try_acquire(f.p, 0, &s0), DG_OVERLOADED);
    assert_int_equal(dg_engines_try_acquire(f.p, 1, &s1), DG_OK);
    dg_engines_release(f.p, s1);
    dg_engines_release(f.p, w.s);
    fix_stop(&f);
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[600];
    /* The directory is ours (mkdtemp) and its name has no shell metacharacters. */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data_dir);
    int r = system(cmd);
    (void)r;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "engine") == 0) {
        return dg_engine_main(argc - 1, argv + 1);
    }
    signal(SIGPIPE, SIG_IGN);
    dg_log_set_level(DG_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_header),     cmocka_unit_test(test_frame_io),
        cmocka_unit_test(test_query_roundtrip),  cmocka_unit_test(test_sql_error),
        cmocka_unit_test(test_admission),        cmocka_unit_test(test_deadline_interrupt),
        cmocka_unit_test(test_kill_path),        cmocka_unit_test(test_engine_crash),
        cmocka_unit_test(test_cancel_midstream), cmocka_unit_test(test_client_gone),
        cmocka_unit_test(test_stop_drain),       cmocka_unit_test(test_acquire_on),
        cmocka_unit_test(test_start_failure),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
