#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static dg_log_level_t log_level = DG_LOG_INFO;
static int log_fd = 2;
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void dg_log_set_level(dg_log_level_t level)
{
    log_level = level;
}

int dg_log_level_parse(const char *s)
{
    for (int i = 0; i <= DG_LOG_OFF; i++) {
        if (s && strcmp(s, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

void dg_log_set_fd(int fd)
{
    log_fd = fd;
}

void dg_log(dg_log_level_t level, const char *module, const char *req, const char *fmt, ...)
{
    if (level < log_level || level >= DG_LOG_OFF) {
        return;
    }
    char line[4096];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], module ? module : "-");
    if (req && n > 0 && (size_t)n < sizeof line) {
        n += snprintf(line + n, sizeof line - (size_t)n, "req=%s ", req);
    }
    if (n > 0 && (size_t)n < sizeof line) {
        va_list ap;
        va_start(ap, fmt);
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
    }
    if (n < 0) {
        return;
    }
    size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(log_fd, line, len);
    (void)w;
}
