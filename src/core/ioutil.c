#include "ioutil.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <sys/socket.h>
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

void dg_random_id(char out[17])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[8] = {0};
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        /* getrandom cannot fail for 8 bytes once the pool is ready; keep a unique-ish fallback. */
        for (size_t i = 0; i < sizeof b; i++) {
            b[i] = (unsigned char)(i * 37 + (unsigned)getpid());
        }
    }
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
