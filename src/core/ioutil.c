#include "ioutil.h"

#include "dgtime.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

dg_rc_t dg_write_all(int fd, const void *p, size_t len)
{
    const char *c = p;
    while (len) {
        ssize_t n = send(fd, c, len, MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK) {
            n = write(fd, c, len);
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EPIPE || errno == ECONNRESET ? DG_CLIENT_GONE : DG_IO;
        }
        c += n;
        len -= (size_t)n;
    }
    return DG_OK;
}

dg_rc_t dg_read_all(int fd, void *p, size_t len)
{
    char *c = p;
    while (len) {
        ssize_t n = read(fd, c, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return DG_IO;
        }
        if (n == 0) {
            return DG_PROTOCOL;
        }
        c += n;
        len -= (size_t)n;
    }
    return DG_OK;
}

/* Bumped in a child after fork(), so its copy of the forking thread's pool is not reused. */
static _Atomic unsigned fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    atomic_fetch_add(&fork_gen, 1);
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

/* Random bytes for ids, fetched 256 at a time per thread: one getrandom per request was a
 * system call on every request (and so would be a getpid per request to notice a fork). */
static void random_bytes(unsigned char *out, size_t n)
{
    static __thread unsigned char pool[256];
    static __thread size_t used = sizeof pool;
    static __thread unsigned gen;
    pthread_once(&atfork_once, register_atfork);
    unsigned now_gen = atomic_load(&fork_gen);
    if (used + n > sizeof pool || gen != now_gen) {
        if (getrandom(pool, sizeof pool, 0) != (ssize_t)sizeof pool) {
            /* Cannot fail for 256 bytes once the pool is ready; keep a unique-ish fallback. */
            unsigned seed = (unsigned)getpid() + (unsigned)dg_now_us();
            for (size_t i = 0; i < sizeof pool; i++) {
                pool[i] = (unsigned char)(i * 37 + seed);
            }
        }
        used = 0;
        gen = now_gen;
    }
    memcpy(out, pool + used, n);
    memset(pool + used, 0, n); /* used bytes are not kept around */
    used += n;
}

void dg_random_id(char out[17])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[8];
    random_bytes(b, sizeof b);
    for (int i = 0; i < 8; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[16] = '\0';
}

int dg_mkdir_p(const char *dir, unsigned mode)
{
    char tmp[PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(tmp, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char saved = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, (mode_t)mode) != 0 && errno != EEXIST) {
                return -1;
            }
            tmp[i] = saved;
        }
    }
    return 0;
}

dg_rc_t dg_copy_file(const char *src, const char *dst, dg_error_t *err)
{
    dg_rc_t rc = DG_OK;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = -1;
    struct stat st;
    if (in < 0 || fstat(in, &st) != 0) {
        rc = dg_error_set(err, DG_IO, "%s: %s", src, strerror(errno));
        goto out;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        rc = dg_error_set(err, DG_IO, "%s: %s", dst, strerror(errno));
        goto out;
    }
    off_t left = st.st_size;
    while (left > 0) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rc = dg_error_set(err, DG_IO, "copying %s to %s: %s", src, dst,
                              n < 0 ? strerror(errno) : "unexpected end of file");
            goto out;
        }
        left -= n;
    }
    if (fsync(out) != 0) {
        rc = dg_error_set(err, DG_IO, "%s: %s", dst, strerror(errno));
    }
out:
    if (in >= 0) {
        close(in);
    }
    if (out >= 0 && close(out) != 0 && rc == DG_OK) {
        rc = dg_error_set(err, DG_IO, "%s: %s", dst, strerror(errno));
    }
    if (rc != DG_OK && out >= 0) {
        unlink(dst);
    }
    return rc;
}

static dg_rc_t fsync_path(const char *path, int flags, dg_error_t *err)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0) {
        return dg_error_set(err, DG_IO, "%s: %s", path, strerror(errno));
    }
    int r = fsync(fd);
    int e = errno;
    close(fd);
    if (r != 0) {
        return dg_error_set(err, DG_IO, "fsync %s: %s", path, strerror(e));
    }
    return DG_OK;
}

dg_rc_t dg_rename_durable(const char *from, const char *to, dg_error_t *err)
{
    dg_rc_t rc = fsync_path(from, O_RDONLY, err);
    if (rc != DG_OK) {
        return rc;
    }
    if (rename(from, to) != 0) {
        return dg_error_set(err, DG_IO, "rename %s -> %s: %s", from, to, strerror(errno));
    }
    char *dir = strdup(to);
    if (!dir) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash) {
        slash[slash == dir ? 1 : 0] = '\0';
        d = dir;
    }
    rc = fsync_path(d, O_RDONLY | O_DIRECTORY, err);
    free(dir);
    return rc;
}

void dg_remove_db_file(const char *path)
{
    char wal[PATH_MAX];
    unlink(path);
    if ((size_t)snprintf(wal, sizeof wal, "%s.wal", path) < sizeof wal) {
        unlink(wal);
    }
}
