/* `duckgate keys add|list|revoke`: manages the API key file (keys_file, default
 * STATE_DIR/keys.json). A new key is printed once, on stdout; only its SHA-256 is stored.
 * Writers serialise on an flock of KEYS_FILE.lock and replace the file atomically, so a
 * running server (which re-reads the file when it changes) never sees a partial file.
 * Single-threaded. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "config/config.h"
#include "core/buf.h"

int dg_cli__keys(int argc, char **argv, char **envp);

typedef struct keys_args {
    const char *role, *name, *expires, *file;
    size_t n_dbs;
    const char *dbs[DG_AUTH_MAX_DBS];
} keys_args;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: duckgate keys add --role admin|analyst|viewer [--db DB ...] [--name NAME]\n"
            "                         [--expires 30d|12h|never] [--file PATH]\n"
            "       duckgate keys list [--file PATH]\n"
            "       duckgate keys revoke ID|NAME [--file PATH]\n"
            "The key file is keys_file (default STATE_DIR/keys.json); config flags such as\n"
            "--data-dir, --state-dir and --config are accepted. `add` prints the new key once.\n");
}

/* "30d", "12h", "90m", "3600s", "never" -> seconds (0 = never); false when malformed. */
static bool parse_duration(const char *s, int64_t *out)
{
    if (strcmp(s, "never") == 0) {
        *out = 0;
        return true;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v <= 0 || v > 100000000LL || s[0] == '+' || s[0] == '-') {
        return false;
    }
    int64_t mul = strcmp(end, "d") == 0   ? 86400
                  : strcmp(end, "h") == 0 ? 3600
                  : strcmp(end, "m") == 0 ? 60
                  : strcmp(end, "s") == 0 ? 1
                                          : 0;
    *out = (int64_t)v * mul;
    return mul != 0;
}

/* Takes --role/--db/--name/--expires/--file out of argv; the rest (config flags, positional
 * arguments) is compacted into argv[0..*io_argc). Returns false on a missing value. */
static bool take_own_flags(int *io_argc, char **argv, keys_args *ka)
{
    static const char *const own[] = {"role", "db", "name", "expires", "file"};
    int n = 1;
    for (int i = 1; i < *io_argc; i++) {
        const char *a = argv[i];
        int which = -1;
        const char *value = NULL;
        for (int j = 0; a[0] == '-' && a[1] == '-' && j < 5; j++) {
            size_t l = strlen(own[j]);
            if (strncmp(a + 2, own[j], l) == 0 && (a[2 + l] == '\0' || a[2 + l] == '=')) {
                which = j;
                value = a[2 + l] == '=' ? a + 3 + l : NULL;
            }
        }
        if (which < 0) {
            argv[n++] = argv[i];
            continue;
        }
        if (!value) {
            if (i + 1 >= *io_argc) {
                fprintf(stderr, "duckgate keys: --%s: missing value\n", own[which]);
                return false;
            }
            value = argv[++i];
        }
        switch (which) {
        case 0:
            ka->role = value;
            break;
        case 1:
            if (ka->n_dbs == DG_AUTH_MAX_DBS) {
                fprintf(stderr, "duckgate keys: at most %d --db\n", DG_AUTH_MAX_DBS);
                return false;
            }
            ka->dbs[ka->n_dbs++] = value;
            break;
        case 2:
            ka->name = value;
            break;
        case 3:
            ka->expires = value;
            break;
        default:
            ka->file = value;
            break;
        }
    }
    *io_argc = n;
    return true;
}

static void fmt_time(int64_t t, char *buf, size_t cap)
{
    if (t == 0) {
        snprintf(buf, cap, "never");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int cmd_list(const dg_auth_keyset_t *ks)
{
    int64_t now = (int64_t)time(NULL);
    printf("%-16s  %-20s  %-7s  %-20s  %-20s  %s\n", "ID", "NAME", "ROLE", "CREATED", "EXPIRES",
           "DBS");
    for (size_t i = 0; i < dg_auth_keys_count(ks); i++) {
        const dg_auth_key_t *k = dg_auth_keys_at(ks, i);
        char c[32], e[40];
        fmt_time(k->created, c, sizeof c);
        fmt_time(k->expires, e, sizeof e);
        if (k->expires && k->expires <= now) {
            strncat(e, " (expired)", sizeof e - strlen(e) - 1);
        }
        printf("%-16s  %-20s  %-7s  %-20s  %-20s  ", k->id, k->name, dg_auth_role_name(k->role), c,
               e);
        if (k->n_dbs == 0) {
            printf("*");
        }
        for (size_t j = 0; j < k->n_dbs; j++) {
            printf("%s%s", j ? "," : "", k->dbs[j]);
        }
        printf("\n");
    }
    return 0;
}

static int cmd_add(dg_auth_keyset_t *ks, const keys_args *ka, const char *path)
{
    dg_auth_key_t k;
    memset(&k, 0, sizeof k);
    int64_t ttl = 0;
    if (!ka->role || !dg_auth_role_parse(ka->role, &k.role) || k.role == DG_ROLE_NONE) {
        fprintf(stderr, "duckgate keys add: --role must be admin, analyst or viewer\n");
        return 2;
    }
    if (ka->expires && !parse_duration(ka->expires, &ttl)) {
        fprintf(stderr, "duckgate keys add: --expires: expected N[smhd] or never\n");
        return 2;
    }
    if (ka->name && !dg_auth_name_valid(ka->name)) {
        fprintf(stderr, "duckgate keys add: --name: 1..64 of [A-Za-z0-9._-]\n");
        return 2;
    }
    for (size_t i = 0; i < ka->n_dbs; i++) {
        if (!dg_dbname_valid(ka->dbs[i], strlen(ka->dbs[i]))) {
            fprintf(stderr, "duckgate keys add: --db: bad database name\n");
            return 2;
        }
        memcpy(k.dbs[k.n_dbs++], ka->dbs[i], strlen(ka->dbs[i]) + 1);
    }
    char secret[64];
    if (dg_auth_key_generate(&k, secret) != DG_OK) {
        fprintf(stderr, "duckgate keys add: the random generator failed\n");
        return 1;
    }
    memcpy(k.name, ka->name ? ka->name : k.id, strlen(ka->name ? ka->name : k.id) + 1);
    k.created = (int64_t)time(NULL);
    k.expires = ttl ? k.created + ttl : 0;
    dg_error_t err;
    dg_error_clear(&err);
    if (dg_auth_keys_add(ks, &k, &err) != DG_OK || dg_auth_keys_save(path, ks, &err) != DG_OK) {
        fprintf(stderr, "duckgate keys add: %s\n", err.msg);
        memset(secret, 0, sizeof secret);
        return 1;
    }
    printf("%s\n", secret);
    fflush(stdout);
    memset(secret, 0, sizeof secret);
    char e[32];
    fmt_time(k.expires, e, sizeof e);
    fprintf(stderr,
            "added key id=%s name=%s role=%s expires=%s to %s\n"
            "The key is shown only this once; store it now.\n",
            k.id, k.name, dg_auth_role_name(k.role), e, path);
    return 0;
}

int dg_cli__keys(int argc, char **argv, char **envp)
{
    keys_args ka;
    memset(&ka, 0, sizeof ka);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    }
    if (!take_own_flags(&argc, argv, &ka)) {
        return 2;
    }
    dg_config_t cfg;
    dg_error_t err;
    dg_error_clear(&err);
    int rest = argc;
    if (dg_config_load(&cfg, argc, argv, envp, &rest, &err) != DG_OK) {
        fprintf(stderr, "duckgate keys: %s\n", err.msg);
        return 2;
    }
    int n_pos = argc - rest;
    char **pos = argv + rest;
    const char *sub = n_pos > 0 ? pos[0] : "";
    bool ok_args = (strcmp(sub, "add") == 0 && n_pos == 1) ||
                   (strcmp(sub, "list") == 0 && n_pos == 1) ||
                   (strcmp(sub, "revoke") == 0 && n_pos == 2);
    if (!ok_args) {
        usage(stderr);
        dg_config_free(&cfg);
        return 2;
    }
    const char *path = ka.file ? ka.file : cfg.keys_file;
    int status = 1, lock_fd = -1;
    dg_auth_keyset_t *ks = NULL;
    dg_buf_t lock;
    dg_buf_init(&lock, 0);
    bool is_write = strcmp(sub, "list") != 0;
    if (is_write) {
        /* The default location's directory may not exist before the first `serve`. */
        if (!ka.file && mkdir(cfg.state_dir, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "duckgate keys: cannot create %s: %s\n", cfg.state_dir,
                    strerror(errno));
            goto out;
        }
        if (dg_buf_printf(&lock, "%s.lock", path) != DG_OK ||
            (lock_fd = open(lock.p, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
            flock(lock_fd, LOCK_EX) != 0) {
            fprintf(stderr, "duckgate keys: cannot lock %s.lock: %s\n", path, strerror(errno));
            goto out;
        }
    }
    if (dg_auth_keys_load(path, &ks, &err) != DG_OK) {
        fprintf(stderr, "duckgate keys: %s\n", err.msg);
        goto out;
    }
    if (strcmp(sub, "list") == 0) {
        status = cmd_list(ks);
    } else if (strcmp(sub, "add") == 0) {
        status = cmd_add(ks, &ka, path);
    } else if (!dg_auth_keys_remove(ks, pos[1])) {
        fprintf(stderr, "duckgate keys revoke: no key with id or name \"%.64s\"\n", pos[1]);
    } else if (dg_auth_keys_save(path, ks, &err) != DG_OK) {
        fprintf(stderr, "duckgate keys revoke: %s\n", err.msg);
    } else {
        fprintf(stderr, "revoked %s\n", pos[1]);
        status = 0;
    }
out:
    if (lock_fd >= 0) {
        close(lock_fd);
    }
    dg_buf_free(&lock);
    dg_auth_keys_free(ks);
    dg_config_free(&cfg);
    return status;
}
