/* The command table and the small commands. Each command gets argv shifted so that argv[0] is
 * its own name (what dg_config_load expects) and returns the exit status: 0 ok, 1 failure,
 * 2 usage/config error. Single-threaded until `serve` starts the server. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/str.h"
#include "db/db.h"
#include "engine/engine.h"
#include "server/server.h"

#ifndef DG_VERSION
#define DG_VERSION "0.0.0"
#endif

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv, char **envp);
    const char *usage;
    const char *help;
    bool is_hidden;
} command;

static int cmd_help(int argc, char **argv, char **envp);
int dg_cli__query(int argc, char **argv, char **envp); /* cli_query.c */
int dg_cli__keys(int argc, char **argv, char **envp);  /* cli_keys.c */
int dg_cli__gen(int argc, char **argv, char **envp);    /* cli_data.c */
int dg_cli__import(int argc, char **argv, char **envp); /* cli_data.c */
int dg_cli__build(int argc, char **argv, char **envp);  /* cli_data.c */

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            break;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return true;
        }
    }
    return false;
}

static int cmd_serve(int argc, char **argv, char **envp)
{
    if (wants_help(argc, argv)) {
        printf("usage: duckgate serve [--config FILE] [--name VALUE ...]\n\n"
               "Serves the databases of --data-dir over HTTP. Every setting can also come from\n"
               "the INI file or from DUCKGATE_<NAME> (precedence: flags > env > file > "
               "defaults).\n\n");
        dg_config_print_help(stdout);
        return 0;
    }
    dg_config_t cfg;
    dg_error_t err;
    dg_error_clear(&err);
    if (dg_config_load(&cfg, argc, argv, envp, NULL, &err) != DG_OK) {
        fprintf(stderr, "duckgate serve: %s\n", err.msg);
        return 2;
    }
    int status = dg_server_run(&cfg, envp);
    dg_config_free(&cfg);
    return status;
}

static int cmd_config(int argc, char **argv, char **envp)
{
    if (argc < 2 || strcmp(argv[1], "check") != 0 || wants_help(argc, argv)) {
        fprintf(argc >= 2 && wants_help(argc, argv) ? stdout : stderr,
                "usage: duckgate config check [--config FILE] [--name VALUE ...]\n"
                "Prints the effective configuration with the source of every value.\n");
        return wants_help(argc, argv) ? 0 : 2;
    }
    dg_config_t cfg;
    dg_error_t err;
    dg_error_clear(&err);
    if (dg_config_load(&cfg, argc - 1, argv + 1, envp, NULL, &err) != DG_OK) {
        fprintf(stderr, "duckgate config check: %s\n", err.msg);
        return 2;
    }
    dg_config_print(&cfg, stdout);
    dg_resources_t res;
    dg_error_clear(&err);
    int status = 0;
    if (dg_resources_detect(&cfg, envp, &res, &err) == DG_OK) {
        printf("# resources: memory budget %llu bytes (%s), threads %d, cpus %d\n",
               (unsigned long long)res.budget_bytes, res.memory_source, res.threads, res.cpus);
    } else {
        fprintf(stderr, "duckgate config check: %s\n", err.msg);
        status = 2;
    }
    dg_config_free(&cfg);
    return status;
}

/* Reads all of stdin (for `exec FILE -`), capped at 256 MiB. */
static char *read_stdin(void)
{
    dg_buf_t b;
    dg_buf_init(&b, (size_t)256 << 20);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        if (dg_buf_append(&b, chunk, n) != DG_OK) {
            dg_buf_free(&b);
            return NULL;
        }
    }
    if (!b.p && dg_buf_putc(&b, '\0') == DG_OK) {
        b.len = 0;
    }
    return dg_buf_take(&b, NULL);
}

static int cmd_exec(int argc, char **argv, char **envp)
{
    (void)envp;
    if (wants_help(argc, argv) || argc != 3) {
        fprintf(argc == 3 ? stdout : stderr,
                "usage: duckgate exec FILE SQL\n"
                "Runs trusted SQL statements against FILE (created if missing), read-write.\n"
                "SQL '-' reads the statements from stdin. Not for untrusted input.\n");
        return argc == 3 ? 0 : 2;
    }
    const char *path = argv[1];
    char *sql = strcmp(argv[2], "-") == 0 ? read_stdin() : dg_str_dup(dg_str_c(argv[2]));
    if (!sql) {
        fprintf(stderr, "duckgate exec: cannot read the SQL\n");
        return 1;
    }
    /* Spilling goes where DuckDB itself would put it (FILE.tmp, created only when needed):
     * exec builds whole databases, which may not fit in memory. */
    dg_buf_t tmp;
    dg_buf_init(&tmp, 0);
    dg_db_opts_t opts = {.path = path, .name = "exec", .read_only = false};
    dg_db_t *db = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    int status = 0;
    if (dg_buf_printf(&tmp, "%s.tmp", path) != DG_OK) {
        free(sql);
        fprintf(stderr, "duckgate exec: out of memory\n");
        return 1;
    }
    opts.temp_dir = tmp.p;
    if (dg_db_open(&opts, &db, &err) != DG_OK || dg_db_exec(db, sql, &err) != DG_OK) {
        fprintf(stderr, "duckgate exec: %s: %s\n", path, err.msg[0] ? err.msg : "failed");
        status = 1;
    }
    dg_db_close(db);
    dg_buf_free(&tmp);
    free(sql);
    return status;
}

static int cmd_engine(int argc, char **argv, char **envp)
{
    (void)envp;
    return dg_engine_main(argc, argv);
}

static int cmd_version(int argc, char **argv, char **envp)
{
    (void)argc;
    (void)argv;
    (void)envp;
    printf("duckgate %s\n", DG_VERSION);
    return 0;
}

static const command commands[] = {
    {"serve", cmd_serve, "serve [--config FILE] [--name VALUE ...]",
     "serve the databases of a data directory over HTTP", false},
    {"config", cmd_config, "config check [flags]",
     "print the effective configuration and where each value came from", false},
    {"exec", cmd_exec, "exec FILE SQL", "run trusted SQL against a database file (read-write)",
     false},
    {"query", dg_cli__query, "query DB SQL [--format F] [-o FILE] [...]",
     "run one read-only query locally and stream the result", false},
    {"gen", dg_cli__gen, "gen imdb --scale S --out FILE",
     "generate a deterministic IMDb-shaped database", false},
    {"import", dg_cli__import, "import imdb DIR --out FILE",
     "load the IMDb TSV dumps (plain or .gz) into a database", false},
    {"build", dg_cli__build, "build [--remote URL] FILE|DB PIPELINE_DIR",
     "run a pipeline's SQL steps on a copy of FILE (or on a server) and swap it in atomically",
     false},
    {"keys", dg_cli__keys, "keys add|list|revoke [...]",
     "manage API keys (the key is printed once; only its hash is stored)", false},
    {"version", cmd_version, "version", "print the version", false},
    {"help", cmd_help, "help", "this help", false},
    {"engine", cmd_engine, "engine", "(internal) engine process", true},
};

static int cmd_help(int argc, char **argv, char **envp)
{
    (void)argc;
    (void)argv;
    (void)envp;
    printf("usage: duckgate COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (!commands[i].is_hidden) {
            printf("  %-44s %s\n", commands[i].usage, commands[i].help);
        }
    }
    printf("\n`duckgate serve --help` lists every setting.\n");
    return 0;
}

int dg_cli_main(int argc, char **argv, char **envp)
{
    if (argc < 2) {
        cmd_help(argc, argv, envp);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        return cmd_help(argc, argv, envp);
    }
    if (strcmp(name, "--version") == 0) {
        return cmd_version(argc, argv, envp);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(name, commands[i].name) == 0) {
            return commands[i].run(argc - 1, argv + 1, envp);
        }
    }
    fprintf(stderr, "duckgate: unknown command \"%s\" (try duckgate help)\n", name);
    return 2;
}
