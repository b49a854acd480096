/* Logging: `ts level module req=<id> msg key=value` lines on stderr (or a file). Thread-safe:
 * each line is formatted into a local buffer and written with one write(2). Never log secrets or
 * bound parameter values at INFO or above. */
#ifndef DG_LOG_H
#define DG_LOG_H

typedef enum { DG_LOG_DEBUG = 0, DG_LOG_INFO, DG_LOG_WARN, DG_LOG_ERROR, DG_LOG_OFF } dg_log_level_t;

/* Sets the minimum level written (default INFO). Call before starting threads. */
void dg_log_set_level(dg_log_level_t level);
/* Parses "debug|info|warn|error|off"; returns -1 for anything else. */
int dg_log_level_parse(const char *s);
/* Sets the descriptor lines are written to (default 2). */
void dg_log_set_fd(int fd);
/* Writes one line; req may be NULL. The line is truncated at 4 KiB. */
void dg_log(dg_log_level_t level, const char *module, const char *req, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define DG_LOGD(mod, ...) dg_log(DG_LOG_DEBUG, mod, NULL, __VA_ARGS__)
#define DG_LOGI(mod, ...) dg_log(DG_LOG_INFO, mod, NULL, __VA_ARGS__)
#define DG_LOGW(mod, ...) dg_log(DG_LOG_WARN, mod, NULL, __VA_ARGS__)
#define DG_LOGE(mod, ...) dg_log(DG_LOG_ERROR, mod, NULL, __VA_ARGS__)

#endif
