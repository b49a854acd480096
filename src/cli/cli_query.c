/* `duckgate query DB SQL`: runs one read-only query against a local database file, in this
 * process, and streams the result to stdout or to a file.
 *
 * It takes exactly the path a query takes in an engine (src/engine/engine_proc.c run_sql): the
 * database is opened READ_ONLY with the sandbox settings (dg_db_open), the SQL goes through
 * every read-only sandbox layer (DG_DB_MODE_READONLY_SQL), and the bytes come from the same
 * encoders (and, with --compress, the same stream compressors), so for the same query id and
 * timings the output equals a server response body byte for byte.
 *
 * Invariants: memory stays bounded by about one chunk of output (every buffer is capped and is
 * drained after each batch); `-o FILE` is written as FILE.tmp and renamed only after the whole
 * result and the trailer are on disk, and FILE.tmp is removed on every failure, so FILE is either
 * the complete result or untouched. Single-threaded, except the signal handler, which only
 * stores into an atomic flag that the query polls.
 *
 * Hidden options for tests: --query-id ID fixes the id echoed in JSON/NDJSON (default: a random
 * one, like the server's request id). --no-timings writes 0 for every time field, so golden
 * files can compare bytes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/codec.h"
#include "core/buf.h"
#include "core/dgtime.h"
#include "core/ioutil.h"
#include "db/db.h"
#include "enc/arrow_ipc.h"
#include "enc/enc.h"

/* Declared again in cli.c's command table (src/cli has no internal header). */
int dg_cli__query(int argc, char **argv, char **envp);

/* Output of one batch (and the compressed copy): like the engine's stream buffer. */
#define QUERY_BUF_CAP ((size_t)256 << 20)
/* SQL read from stdin ('-'). */
#define QUERY_SQL_CAP ((size_t)16 << 20)

typedef struct query_args query_args;
typedef struct sink sink;

/* Runs the query and writes the whole result into the sink (including a compressed stream's
 * end); err gets the message. One per way of producing a format, as in the engine. */
typedef dg_rc_t (*query_run_fn)(const query_args *a, dg_format_t fmt, const char *sql,
                                const char *query_id, dg_db_t *db, sink *k, dg_error_t *err);

static dg_rc_t run_batches(const query_args *a, dg_format_t fmt, const char *sql,
                           const char *query_id, dg_db_t *db, sink *k, dg_error_t *err);
static dg_rc_t run_arrow(const query_args *a, dg_format_t fmt, const char *sql,
                         const char *query_id, dg_db_t *db, sink *k, dg_error_t *err);
static dg_rc_t run_parquet(const query_args *a, dg_format_t fmt, const char *sql,
                           const char *query_id, dg_db_t *db, sink *k, dg_error_t *err);

/* The formats this command writes, each produced the way the engine produces it. */
typedef struct query_format {
    dg_format_t fmt;
    query_run_fn run;
} query_format;

static const query_format query_formats[] = {
    {DG_FMT_JSON, run_batches}, {DG_FMT_NDJSON, run_batches}, {DG_FMT_CSV, run_batches},
    {DG_FMT_TSV, run_batches},  {DG_FMT_ARROW, run_arrow},    {DG_FMT_PARQUET, run_parquet},
};

struct query_args {
    const char *db_path;
    const char *sql_arg;      /* the SQL, or "-" for stdin */
    const char *format;       /* name; default json */
    const char *params;       /* JSON text or NULL */
    const char *out_path;     /* NULL = stdout */
    const char *compress;     /* codec name or NULL */
    const char *level;        /* NULL = the codec's default */
    const char *query_id;     /* NULL = random */
    const char *threads;      /* NULL = 1 */
    bool is_no_timings;
};

/* Set by SIGINT/SIGTERM; polled by dg_db_query_start and between batches. */
static _Atomic int query_stop;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&query_stop, (int)DG_CANCELLED);
}

static void print_usage(FILE *f)
{
    fprintf(f,
            "usage: duckgate query DB SQL [--format json|ndjson|csv|tsv] [--params JSON]\n"
            "                            [-o FILE] [--compress zstd|gzip|br] [--level N]\n"
            "                            [--threads N] [--no-timings]\n\n"
            "Runs one read-only SQL statement against the database file DB, in this process,\n"
            "with the server's sandbox and encoders, and streams the result to stdout.\n"
            "SQL '-' reads the statement from stdin.\n\n"
            "  -f, --format NAME    json (default), ndjson, csv or tsv (docs/formats.md);\n"
            "                       (arrow: an Arrow IPC stream; parquet: DuckDB's zstd writer)\n"
            "  -p, --params JSON    parameters: an array for $1/? or an object for $name\n"
            "  -o, --output FILE    write FILE (via FILE.tmp, renamed when complete)\n"
            "  --compress CODEC     compress the output with zstd, gzip or br\n"
            "  --level N            compression level (default: the codec's fast level)\n"
            "  --threads N          DuckDB threads (default 1, as an engine slot)\n"
            "  --no-timings         write 0 for the time fields (reproducible output)\n\n"
            "Exit status: 0 ok, 1 the query or the output failed (the error code name and\n"
            "message go to stderr), 2 bad usage.\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints a usage message; returns the usage exit status. */
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("duckgate query: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (try duckgate query --help)\n", stderr);
    va_end(ap);
    return 2;
}

/* Parses argv into a; returns 0, 2 on bad usage (message printed), or -1 for --help. */
static int parse_args(int argc, char **argv, query_args *a)
{
    int n_pos = 0;
    bool is_opts_done = false;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!is_opts_done && s[0] == '-' && s[1] != '\0') {
            if (strcmp(s, "--") == 0) {
                is_opts_done = true;
                continue;
            }
            if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
                return -1;
            }
            if (strcmp(s, "--no-timings") == 0) {
                a->is_no_timings = true;
                continue;
            }
            const char **dst = NULL;
            if (strcmp(s, "--format") == 0 || strcmp(s, "-f") == 0) {
                dst = &a->format;
            } else if (strcmp(s, "--params") == 0 || strcmp(s, "-p") == 0) {
                dst = &a->params;
            } else if (strcmp(s, "--output") == 0 || strcmp(s, "-o") == 0) {
                dst = &a->out_path;
            } else if (strcmp(s, "--compress") == 0) {
                dst = &a->compress;
            } else if (strcmp(s, "--level") == 0) {
                dst = &a->level;
            } else if (strcmp(s, "--threads") == 0) {
                dst = &a->threads;
            } else if (strcmp(s, "--query-id") == 0) {
                dst = &a->query_id;
            } else {
                return usage_error("unknown option %s", s);
            }
            if (i + 1 >= argc) {
                return usage_error("%s needs a value", s);
            }
            *dst = argv[++i];
            continue;
        }
        if (n_pos == 0) {
            a->db_path = s;
        } else if (n_pos == 1) {
            a->sql_arg = s;
        } else {
            return usage_error("unexpected argument %s", s);
        }
        n_pos++;
    }
    if (n_pos != 2) {
        return usage_error("%s", "needs a database file and the SQL");
    }
    return 0;
}

/* Parses a decimal int in [lo, hi]; false on anything else. */
static bool parse_int(const char *s, long lo, long hi, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = (int)v;
    return true;
}

/* Reads all of stdin, capped; NULL (err set) on failure. */
static char *read_sql_stdin(dg_error_t *err)
{
    dg_buf_t b;
    dg_buf_init_rc(&b, QUERY_SQL_CAP, DG_SQL_TOO_LARGE);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        dg_rc_t rc = dg_buf_append(&b, chunk, n);
        if (rc != DG_OK) {
            dg_buf_free(&b);
            dg_error_set(err, rc, "cannot read the SQL from stdin (cap %zu bytes)", QUERY_SQL_CAP);
            return NULL;
        }
    }
    if (ferror(stdin)) {
        dg_buf_free(&b);
        dg_error_set(err, DG_IO, "cannot read the SQL from stdin: %s", strerror(errno));
        return NULL;
    }
    if (!b.p && dg_buf_putc(&b, '\0') == DG_OK) {
        b.len = 0;
    }
    char *p = dg_buf_take(&b, NULL);
    if (!p) {
        dg_error_set(err, DG_NOMEM, "out of memory");
    }
    return p;
}

/* Where the bytes go: stdout or FILE.tmp (renamed to FILE by sink_commit). */
struct sink {
    int fd;
    const char *path;      /* final name, or NULL for stdout */
    char *tmp_path;        /* owned; NULL for stdout */
    dg_codec_t *codec;     /* NULL = identity */
    dg_buf_t zbuf;         /* compressed bytes waiting to be written */
    uint64_t written;      /* bytes written to fd */
    uint64_t plain;        /* encoder bytes handed to the sink (before compression) */
};

static dg_rc_t sink_open(sink *k, const char *path, dg_codec_t *codec, dg_error_t *err)
{
    k->fd = STDOUT_FILENO;
    k->path = path;
    k->tmp_path = NULL;
    k->codec = codec;
    k->written = 0;
    k->plain = 0;
    dg_buf_init_rc(&k->zbuf, QUERY_BUF_CAP, DG_RESOURCE_EXHAUSTED);
    if (!path) {
        return DG_OK;
    }
    dg_buf_t t;
    dg_buf_init(&t, PATH_MAX);
    if (dg_buf_printf(&t, "%s.tmp", path) != DG_OK) {
        dg_buf_free(&t);
        return dg_error_set(err, DG_IO, "output path too long: %s", path);
    }
    k->tmp_path = dg_buf_take(&t, NULL);
    /* O_NOFOLLOW: never write through a symlink someone left at FILE.tmp. */
    k->fd = open(k->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (k->fd < 0) {
        dg_rc_t rc = dg_error_set(err, DG_IO, "cannot create %s: %s", k->tmp_path, strerror(errno));
        free(k->tmp_path);
        k->tmp_path = NULL;
        return rc;
    }
    return DG_OK;
}

static dg_rc_t sink_write_raw(sink *k, const void *p, size_t len, dg_error_t *err)
{
    if (len == 0) {
        return DG_OK;
    }
    dg_rc_t rc = dg_write_all(k->fd, p, len);
    if (rc == DG_CLIENT_GONE) {
        return dg_error_set(err, DG_CLIENT_GONE, "the output was closed");
    }
    if (rc != DG_OK) {
        return dg_error_set(err, rc, "cannot write %s: %s", k->path ? k->tmp_path : "stdout",
                            strerror(errno));
    }
    k->written += len;
    return DG_OK;
}

/* How sink_put ends a compressed write: keep compressing (one JSON document), make it
 * decodable so far (a stream batch), or end the stream. */
typedef enum sink_mode { SINK_MORE = 0, SINK_FLUSH, SINK_FINISH } sink_mode;

/* Writes (compresses) what the encoder appended to out, then empties out. With a codec this
 * follows the engine's body_emit exactly (a stream: write + flush per non-empty batch, write +
 * finish for the trailer; a JSON document: write, finish at the end), so compressed output is
 * byte for byte what the server sends. */
static dg_rc_t sink_put(sink *k, dg_buf_t *out, sink_mode mode, double *compress_ms,
                        dg_error_t *err)
{
    dg_rc_t rc;
    k->plain += out->len;
    if (!k->codec) {
        rc = sink_write_raw(k, out->p, out->len, err);
        dg_buf_reset(out);
        return rc;
    }
    int64_t t0 = dg_now_us();
    rc = out->len ? dg_codec_write(k->codec, out->p, out->len, &k->zbuf) : DG_OK;
    if (rc == DG_OK && mode == SINK_FLUSH) {
        rc = dg_codec_flush(k->codec, &k->zbuf);
    } else if (rc == DG_OK && mode == SINK_FINISH) {
        rc = dg_codec_finish(k->codec, &k->zbuf);
    }
    *compress_ms += (double)(dg_now_us() - t0) / 1000.0;
    dg_buf_reset(out);
    if (rc != DG_OK) {
        return dg_error_set(err, rc, "compression failed");
    }
    rc = sink_write_raw(k, k->zbuf.p, k->zbuf.len, err);
    dg_buf_reset(&k->zbuf);
    return rc;
}

/* Makes FILE the complete output: fsync, close, rename FILE.tmp over FILE. */
static dg_rc_t sink_commit(sink *k, dg_error_t *err)
{
    if (!k->path) {
        return DG_OK;
    }
    if (fsync(k->fd) != 0 && errno != EINVAL) {
        return dg_error_set(err, DG_IO, "cannot write %s: %s", k->tmp_path, strerror(errno));
    }
    int fd = k->fd;
    k->fd = -1;
    if (close(fd) != 0) {
        return dg_error_set(err, DG_IO, "cannot write %s: %s", k->tmp_path, strerror(errno));
    }
    if (rename(k->tmp_path, k->path) != 0) {
        return dg_error_set(err, DG_IO, "cannot rename %s to %s: %s", k->tmp_path, k->path,
                            strerror(errno));
    }
    free(k->tmp_path);
    k->tmp_path = NULL;
    return DG_OK;
}

/* Releases the sink; a FILE.tmp that was not committed is removed. */
static void sink_close(sink *k)
{
    if (k->path && k->fd >= 0) {
        close(k->fd);
    }
    k->fd = -1;
    if (k->tmp_path) {
        unlink(k->tmp_path);
        free(k->tmp_path);
        k->tmp_path = NULL;
    }
    dg_buf_free(&k->zbuf);
}

static double ms_since(int64_t t0_us)
{
    return (double)(dg_now_us() - t0_us) / 1000.0;
}

/* The text formats: the same sequence of encoder calls as the engine's run_sql. */
static dg_rc_t run_batches(const query_args *a, dg_format_t fmt, const char *sql,
                         const char *query_id, dg_db_t *db, sink *k, dg_error_t *err)
{
    int64_t t_recv = dg_now_us();
    double execute_ms = 0, encode_ms = 0, compress_ms = 0;
    bool is_doc = fmt == DG_FMT_JSON;
    dg_db_cursor_t *cur = NULL;
    dg_enc_t *enc = NULL;
    dg_buf_t out;
    uint64_t rows = 0;
    dg_rc_t rc;
    dg_buf_init_rc(&out, QUERY_BUF_CAP, DG_RESOURCE_EXHAUSTED);

    dg_db_query_t q = {
        .sql = sql,
        .sql_len = strlen(sql),
        .params_json = a->params,
        .params_len = a->params ? strlen(a->params) : 0,
        .mode = DG_DB_MODE_READONLY_SQL,
        .interrupt = &query_stop,
    };
    int64_t t0 = dg_now_us();
    rc = dg_db_query_start(db, &q, &cur, err);
    execute_ms += ms_since(t0);
    if (rc != DG_OK) {
        goto fail;
    }
    dg_enc_opts_t eo = {.query_id = query_id};
    rc = dg_enc_new(fmt, dg_db_cursor_schema(cur), &eo, &enc);
    if (rc != DG_OK) {
        dg_error_set(err, rc, "cannot encode format %s", dg_format_name(fmt));
        goto fail;
    }
    t0 = dg_now_us();
    rc = dg_enc_begin(enc, &out);
    encode_ms += ms_since(t0);
    if (rc != DG_OK) {
        goto fail;
    }
    /* Bounded by the result: each iteration consumes one chunk, and a signal stops it. */
    for (;;) {
        rc = (dg_rc_t)atomic_load(&query_stop);
        if (rc != DG_OK) {
            goto fail;
        }
        const dg_batch_t *batch = NULL;
        t0 = dg_now_us();
        rc = dg_db_cursor_next(cur, &batch, err);
        execute_ms += ms_since(t0);
        if (rc != DG_OK) {
            goto fail;
        }
        if (!batch) {
            break;
        }
        if (batch->n_rows > 0) {
            t0 = dg_now_us();
            rc = dg_enc_batch(enc, batch, batch->n_rows, &out);
            encode_ms += ms_since(t0);
            rows += batch->n_rows;
            if (rc != DG_OK) {
                goto fail;
            }
        }
        if (out.len > 0) {
            rc = sink_put(k, &out, is_doc ? SINK_MORE : SINK_FLUSH, &compress_ms, err);
            if (rc != DG_OK) {
                goto fail;
            }
        }
    }
    dg_db_cursor_free(cur);
    cur = NULL;

    /* `bytes` counts the encoder output before the trailer, before any compression (what
     * the engine counts too). */
    dg_enc_summary_t sum = {.rows = rows, .bytes = k->plain + out.len, .truncated = false};
    if (!a->is_no_timings) {
        sum.execute_ms = execute_ms;
        sum.encode_ms = encode_ms;
        sum.compress_ms = compress_ms;
        sum.elapsed_ms = ms_since(t_recv);
    }
    rc = dg_enc_end(enc, &sum, &out);
    if (rc != DG_OK) {
        goto fail;
    }
    rc = sink_put(k, &out, SINK_FINISH, &compress_ms, err);
    if (rc != DG_OK) {
        goto fail;
    }
    goto out;

fail:
    dg_db_cursor_free(cur);
    cur = NULL;
    {
        /* An interrupted query reports why, whatever DuckDB called it (as the engine does). */
        dg_rc_t why = (dg_rc_t)atomic_load(&query_stop);
        if (why != DG_OK && rc != why) {
            rc = why;
            dg_error_clear(err);
            dg_error_set(err, why, "interrupted by a signal");
        }
    }
    if (err->rc == DG_OK) {
        dg_error_set(err, rc, "%s", dg_rc_message(rc));
    }
    if (!k->path && k->plain > 0 && rc != DG_CLIENT_GONE && rc != DG_IO) {
        /* stdout already has part of the result: end it with the format's in-band marker
         * (the NDJSON error line), as the server ends a started stream. */
        dg_buf_reset(&out);
        if (enc && dg_enc_fail(enc, rc, err->msg, &out) == DG_OK) {
            dg_error_t ignored;
            dg_error_clear(&ignored);
            sink_put(k, &out, SINK_FINISH, &compress_ms, &ignored);
        }
    }
out:
    dg_enc_free(enc);
    dg_buf_free(&out);
    return rc;
}

static dg_db_query_t query_of(const query_args *a, const char *sql)
{
    return (dg_db_query_t){
        .sql = sql,
        .sql_len = strlen(sql),
        .params_json = a->params,
        .params_len = a->params ? strlen(a->params) : 0,
        .mode = DG_DB_MODE_READONLY_SQL,
        .interrupt = &query_stop,
    };
}

/* Arrow IPC stream: DuckDB's Arrow conversion per chunk, the IPC writer the engine uses. */
static dg_rc_t run_arrow(const query_args *a, dg_format_t fmt, const char *sql,
                         const char *query_id, dg_db_t *db, sink *k, dg_error_t *err)
{
    (void)fmt;
    (void)query_id;
    double compress_ms = 0;
    dg_db_cursor_t *cur = NULL;
    struct ArrowSchema schema = {0};
    dg_arrow_ipc_t *w = NULL;
    dg_buf_t out;
    dg_buf_init_rc(&out, QUERY_BUF_CAP, DG_RESOURCE_EXHAUSTED);
    dg_db_query_t q = query_of(a, sql);
    dg_rc_t rc = dg_db_query_start(db, &q, &cur, err);
    if (rc == DG_OK) {
        rc = dg_db_cursor_arrow_schema(cur, &schema, err);
    }
    if (rc == DG_OK) {
        rc = dg_arrow_ipc_new(&schema, &w, err);
    }
    if (rc == DG_OK) {
        rc = dg_arrow_ipc_write_schema(w, &out);
    }
    /* Bounded by the result: each iteration consumes one chunk, and a signal stops it. */
    while (rc == DG_OK) {
        rc = (dg_rc_t)atomic_load(&query_stop);
        if (rc != DG_OK) {
            break;
        }
        struct ArrowArray arr = {0};
        bool end = false;
        rc = dg_db_cursor_next_arrow(cur, &arr, &end, err);
        if (rc != DG_OK || end) {
            break;
        }
        rc = dg_arrow_ipc_write_batch(w, &arr, &out, err);
        arr.release(&arr);
        if (rc == DG_OK) {
            rc = sink_put(k, &out, SINK_FLUSH, &compress_ms, err);
        }
    }
    if (rc == DG_OK) {
        rc = dg_arrow_ipc_write_eos(w, &out);
    }
    if (rc == DG_OK) {
        rc = sink_put(k, &out, SINK_FINISH, &compress_ms, err);
    }
    dg_db_cursor_free(cur);
    dg_arrow_ipc_free(w);
    if (schema.release) {
        schema.release(&schema);
    }
    dg_buf_free(&out);
    if (rc != DG_OK && err->rc == DG_OK) {
        dg_error_set(err, rc, "%s", dg_rc_message(rc));
    }
    return rc;
}

/* Parquet: DuckDB's own writer through the export instance into a private directory made for
 * this run (removed at the end), then the already-unlinked file copied into the sink. */
static dg_rc_t run_parquet(const query_args *a, dg_format_t fmt, const char *sql,
                           const char *query_id, dg_db_t *db, sink *k, dg_error_t *err)
{
    (void)fmt;
    (void)query_id;
    double compress_ms = 0;
    char dir[] = "/tmp/duckgate-query-XXXXXX";
    char real[PATH_MAX];
    int fd = -1;
    uint64_t size = 0, done = 0;
    dg_buf_t out;
    dg_buf_init_rc(&out, QUERY_BUF_CAP, DG_RESOURCE_EXHAUSTED);
    const char *tmp_root = getenv("TMPDIR");
    dg_rc_t rc = DG_OK;
    if (tmp_root && *tmp_root && strlen(tmp_root) + 24 < sizeof real) {
        snprintf(real, sizeof real, "%s/duckgate-query-XXXXXX", tmp_root);
    } else {
        snprintf(real, sizeof real, "%s", dir);
    }
    if (!mkdtemp(real)) {
        return dg_error_set(err, DG_IO, "cannot create a private directory: %s", strerror(errno));
    }
    char xdir[PATH_MAX];
    if (!realpath(real, xdir)) {
        rc = dg_error_set(err, DG_IO, "%s: %s", real, strerror(errno));
        goto out;
    }
    dg_db_query_t q = query_of(a, sql);
    rc = dg_db_export_parquet(db, &q, xdir, 0, &fd, &size, err);
    /* Bounded by the file size; each read moves forward or fails. */
    while (rc == DG_OK && done < size) {
        rc = dg_buf_reserve(&out, 1 << 20);
        if (rc != DG_OK) {
            break;
        }
        ssize_t n = read(fd, out.p + out.len, 1 << 20);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rc = dg_error_set(err, DG_IO, "reading the Parquet export failed");
            break;
        }
        out.len += (size_t)n;
        done += (uint64_t)n;
        rc = sink_put(k, &out, SINK_MORE, &compress_ms, err);
    }
    if (rc == DG_OK) {
        rc = sink_put(k, &out, SINK_FINISH, &compress_ms, err);
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    dg_buf_free(&out);
    rmdir(real);
    return rc;
}

int dg_cli__query(int argc, char **argv, char **envp)
{
    (void)envp;
    query_args a = {0};
    int st = parse_args(argc, argv, &a);
    if (st < 0) {
        print_usage(stdout);
        return 0;
    }
    if (st != 0) {
        return st;
    }

    const char *fname = a.format ? a.format : "json";
    int fmt = dg_format_parse(fname);
    const query_format *qf = NULL;
    for (size_t i = 0; fmt >= 0 && i < sizeof query_formats / sizeof query_formats[0]; i++) {
        if ((int)query_formats[i].fmt == fmt) {
            qf = &query_formats[i];
        }
    }
    if (!qf) {
        return usage_error("unknown format '%s' (json, ndjson, csv, tsv, arrow, parquet)",
                           fname);
    }
    int codec_id = DG_CODEC_IDENTITY;
    if (a.compress) {
        codec_id = dg_codec_parse(a.compress, strlen(a.compress));
        if (codec_id < 0) {
            return usage_error("unknown --compress '%s' (zstd, gzip, br)", a.compress);
        }
    } else if (a.level) {
        return usage_error("%s", "--level needs --compress");
    }
    int level = dg_codec_default_level((dg_codec_id_t)codec_id);
    if (a.level) {
        int lo = 0, hi = 0;
        dg_codec_level_range((dg_codec_id_t)codec_id, &lo, &hi);
        if (!parse_int(a.level, lo, hi, &level)) {
            return usage_error("--level %s: %s takes %d..%d", a.level,
                               dg_codec_name((dg_codec_id_t)codec_id), lo, hi);
        }
    }
    int threads = 1;
    if (a.threads && !parse_int(a.threads, 1, 1024, &threads)) {
        return usage_error("--threads %s: expected 1..1024", a.threads);
    }

    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = DG_OK;
    char *sql = NULL;
    dg_codec_t *codec = NULL;
    dg_db_t *db = NULL;
    sink k = {.fd = -1};
    bool has_sink = false;
    char qid[17];

    dg_random_id(qid);
    sql = strcmp(a.sql_arg, "-") == 0 ? read_sql_stdin(&err) : strdup(a.sql_arg);
    if (!sql) {
        rc = err.rc != DG_OK ? err.rc : dg_error_set(&err, DG_NOMEM, "out of memory");
        goto out;
    }
    if (codec_id != DG_CODEC_IDENTITY) {
        rc = dg_codec_new((dg_codec_id_t)codec_id, level, &codec);
        if (rc != DG_OK) {
            dg_error_set(&err, rc, "cannot start %s", dg_codec_name((dg_codec_id_t)codec_id));
            goto out;
        }
    }
    struct stat stt;
    /* Read-only opening never creates the file; say plainly when it is not there. */
    if (stat(a.db_path, &stt) != 0) {
        rc = dg_error_set(&err, DG_IO, "%s: %s", a.db_path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(stt.st_mode)) {
        rc = dg_error_set(&err, DG_IO, "%s: not a regular file", a.db_path);
        goto out;
    }
    dg_db_opts_t o = {.path = a.db_path, .name = "query", .read_only = true, .threads = threads};
    rc = dg_db_open(&o, &db, &err);
    if (rc != DG_OK) {
        goto out;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C ends the process at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, NULL); /* a closed stdout is an EPIPE error, not a silent death */

    rc = sink_open(&k, a.out_path, codec, &err);
    if (rc != DG_OK) {
        goto out;
    }
    has_sink = true;
    rc = qf->run(&a, (dg_format_t)fmt, sql, a.query_id ? a.query_id : qid, db, &k, &err);
    if (rc == DG_OK) {
        rc = sink_commit(&k, &err);
    }

out:
    if (has_sink) {
        sink_close(&k);
    }
    dg_db_close(db);
    dg_codec_free(codec);
    free(sql);
    if (rc != DG_OK) {
        fprintf(stderr, "duckgate query: %s: %s\n", dg_rc_name(rc),
                err.msg[0] ? err.msg : dg_rc_message(rc));
        return 1;
    }
    return 0;
}
