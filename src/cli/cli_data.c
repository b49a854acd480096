/* The data commands (docs/pipeline.md): `gen imdb`, `import imdb` and `build`. Argument parsing
 * only; the work is in src/data. Each returns the exit status: 0 ok, 1 failure, 2 bad usage. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"

/* Declared again in cli.c's command table (src/cli has no internal header). */
int dg_cli__gen(int argc, char **argv, char **envp);
int dg_cli__import(int argc, char **argv, char **envp);
int dg_cli__build(int argc, char **argv, char **envp);

/* What every data command accepts besides its positional arguments. */
typedef struct data_args {
    const char *cmd;
    const char *pos[3];
    int n_pos;
    const char *scale;
    const char *out;
    const char *threads;
    const char *memory;
    const char *remote;
    const char *key;
    const char *poll_ms;
    bool is_plain;
    bool is_help;
} data_args;

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "duckgate %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (try duckgate %s --help)\n", cmd);
    va_end(ap);
    return 2;
}

/* Parses argv; returns 0 or 2 (message printed). */
static int parse(int argc, char **argv, data_args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (s[0] == '-' && s[1] != '\0') {
            if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
                a->is_help = true;
                continue;
            }
            if (strcmp(s, "--plain") == 0) {
                a->is_plain = true;
                continue;
            }
            const char **dst = NULL;
            if (strcmp(s, "--scale") == 0) {
                dst = &a->scale;
            } else if (strcmp(s, "--out") == 0 || strcmp(s, "-o") == 0) {
                dst = &a->out;
            } else if (strcmp(s, "--threads") == 0) {
                dst = &a->threads;
            } else if (strcmp(s, "--memory-limit") == 0) {
                dst = &a->memory;
            } else if (strcmp(s, "--remote") == 0) {
                dst = &a->remote;
            } else if (strcmp(s, "--key") == 0) {
                dst = &a->key;
            } else if (strcmp(s, "--poll-ms") == 0) {
                dst = &a->poll_ms;
            } else {
                return usage_error(a->cmd, "unknown option %s", s);
            }
            if (i + 1 >= argc) {
                return usage_error(a->cmd, "%s needs a value", s);
            }
            *dst = argv[++i];
            continue;
        }
        if (a->n_pos == 3) {
            return usage_error(a->cmd, "unexpected argument %s", s);
        }
        a->pos[a->n_pos++] = s;
    }
    return 0;
}

/* "8", "512MiB", "7GB", "2G": bytes (K/M/G/T are powers of 1024, an optional B or iB). */
static bool parse_bytes(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || !(v > 0)) {
        return false;
    }
    double mul = 1;
    const char *units = "KMGT";
    const char *u = *end ? strchr(units, *end) : NULL;
    if (u) {
        for (const char *k = units; k <= u; k++) {
            mul *= 1024;
        }
        end++;
        if (*end == 'i') {
            end++;
        }
    }
    if (*end == 'B') {
        end++;
    }
    if (*end != '\0' || v * mul > 1e18) {
        return false;
    }
    *out = (uint64_t)(v * mul);
    return true;
}

/* Fills the shared options; returns 0 or 2. */
static int opts_from(const data_args *a, dg_data_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->tty = a->is_plain ? 0 : -1;
    if (a->threads) {
        char *end = NULL;
        long t = strtol(a->threads, &end, 10);
        if (end == a->threads || *end != '\0' || t < 1 || t > 1024) {
            return usage_error(a->cmd, "--threads must be 1..1024, got %s", a->threads);
        }
        o->threads = (int)t;
    }
    if (a->memory && !parse_bytes(a->memory, &o->memory_limit)) {
        return usage_error(a->cmd, "bad --memory-limit %s (e.g. 7GB, 512MiB)", a->memory);
    }
    return 0;
}

static int finish(const char *cmd, dg_rc_t rc, const dg_error_t *err)
{
    if (rc != DG_OK) {
        fprintf(stderr, "duckgate %s: %s: %s\n", cmd, dg_rc_name(rc), err->msg);
        return 1;
    }
    return 0;
}

static const char gen_usage[] =
    "usage: duckgate gen imdb --scale S --out FILE [--threads N] [--memory-limit BYTES] "
    "[--plain]\n\n"
    "Writes a deterministic IMDb-shaped database (name_basics, title_basics,\n"
    "title_principals, title_ratings, title_crew) to FILE. Scale 1 is about 15M people,\n"
    "11M titles and 90M credits; the same scale gives the same table contents.\n"
    "FILE is written as FILE.next and renamed when complete.\n";

int dg_cli__gen(int argc, char **argv, char **envp)
{
    (void)envp;
    data_args a = {.cmd = "gen"};
    dg_data_opts_t o;
    int st = parse(argc, argv, &a);
    if (st != 0) {
        return st;
    }
    if (a.is_help) {
        fputs(gen_usage, stdout);
        return 0;
    }
    if (a.n_pos != 1 || strcmp(a.pos[0], "imdb") != 0) {
        return usage_error("gen", "the only dataset is imdb");
    }
    if (!a.out || !a.scale) {
        return usage_error("gen", "needs --scale S and --out FILE");
    }
    char *end = NULL;
    double scale = strtod(a.scale, &end);
    if (end == a.scale || *end != '\0' || !(scale > 0 && scale <= 10)) {
        return usage_error("gen", "--scale must be a number in (0, 10], got %s", a.scale);
    }
    if ((st = opts_from(&a, &o)) != 0) {
        return st;
    }
    dg_error_t err;
    dg_error_clear(&err);
    return finish("gen", dg_data_gen_imdb(scale, a.out, &o, &err), &err);
}

static const char import_usage[] =
    "usage: duckgate import imdb DIR --out FILE [--threads N] [--memory-limit BYTES] "
    "[--plain]\n\n"
    "Loads the IMDb TSV dumps of DIR (name.basics, title.basics, title.principals,\n"
    "title.ratings, title.crew; each .tsv or .tsv.gz) into FILE with typed columns.\n";

int dg_cli__import(int argc, char **argv, char **envp)
{
    (void)envp;
    data_args a = {.cmd = "import"};
    dg_data_opts_t o;
    int st = parse(argc, argv, &a);
    if (st != 0) {
        return st;
    }
    if (a.is_help) {
        fputs(import_usage, stdout);
        return 0;
    }
    if (a.n_pos != 2 || strcmp(a.pos[0], "imdb") != 0) {
        return usage_error("import", "needs: imdb DIR --out FILE");
    }
    if (!a.out) {
        return usage_error("import", "needs --out FILE");
    }
    if ((st = opts_from(&a, &o)) != 0) {
        return st;
    }
    dg_error_t err;
    dg_error_clear(&err);
    return finish("import", dg_data_import_imdb(a.pos[1], a.out, &o, &err), &err);
}

static const char build_usage[] =
    "usage: duckgate build FILE PIPELINE_DIR [--threads N] [--memory-limit BYTES] [--plain]\n"
    "       duckgate build --remote URL [--key KEY] DB PIPELINE_DIR [--poll-ms N] [--plain]\n\n"
    "Runs the steps NN_name.sql of PIPELINE_DIR in order on a copy FILE.next, with a\n"
    "progress bar per step and a summary table, then renames FILE.next over FILE. A failed\n"
    "step leaves FILE untouched. --plain prints lines instead of redrawn bars.\n\n"
    "With --remote the steps run on the server at URL as admin jobs on a staging copy of\n"
    "its database DB, which the server then swaps in (reload); a failed step or Ctrl-C\n"
    "discards the copy and the served database stays as it was. KEY is an admin API key\n"
    "(default: the DUCKGATE_KEY environment variable); --poll-ms is how often a running\n"
    "step is polled (default 250).\n";

/* The value of NAME in envp, or NULL. */
static const char *env_get(char **envp, const char *name)
{
    size_t len = strlen(name);
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') {
            return *e + len + 1;
        }
    }
    return NULL;
}

static int build_remote(const data_args *a, char **envp)
{
    if (a->n_pos != 2) {
        return usage_error("build", "--remote needs DB and PIPELINE_DIR");
    }
    if (a->threads || a->memory) {
        return usage_error("build", "--threads and --memory-limit are the server's with --remote");
    }
    dg_data_remote_t r = {.url = a->remote,
                          .key = a->key ? a->key : env_get(envp, "DUCKGATE_KEY"),
                          .db = a->pos[0],
                          .pipeline_dir = a->pos[1]};
    if (strncmp(r.url, "http://", 7) != 0 && strncmp(r.url, "https://", 8) != 0) {
        return usage_error("build", "--remote needs an http:// or https:// URL, got %s", r.url);
    }
    if (a->poll_ms) {
        char *end = NULL;
        long v = strtol(a->poll_ms, &end, 10);
        if (end == a->poll_ms || *end != '\0' || v < 10 || v > 60000) {
            return usage_error("build", "--poll-ms must be 10..60000, got %s", a->poll_ms);
        }
        r.poll_ms = (int)v;
    }
    dg_data_opts_t o;
    memset(&o, 0, sizeof o);
    o.tty = a->is_plain ? 0 : -1;
    dg_error_t err;
    dg_error_clear(&err);
    return finish("build", dg_data_build_remote(&r, &o, &err), &err);
}

int dg_cli__build(int argc, char **argv, char **envp)
{
    data_args a = {.cmd = "build"};
    dg_data_opts_t o;
    int st = parse(argc, argv, &a);
    if (st != 0) {
        return st;
    }
    if (a.is_help) {
        fputs(build_usage, stdout);
        return 0;
    }
    if (a.remote) {
        return build_remote(&a, envp);
    }
    if (a.key || a.poll_ms) {
        return usage_error("build", "--key and --poll-ms need --remote");
    }
    if (a.n_pos != 2) {
        return usage_error("build", "needs FILE and PIPELINE_DIR");
    }
    if ((st = opts_from(&a, &o)) != 0) {
        return st;
    }
    dg_error_t err;
    dg_error_clear(&err);
    return finish("build", dg_data_build(a.pos[0], a.pos[1], &o, &err), &err);
}
