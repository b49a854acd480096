/* Fuzzes the configuration parsers: the INI reader applied to a full config, and the value
 * parsers (byte sizes, listen addresses) on every line. Errors must name file:line. */
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dg_config_t cfg;
    if (dg_config_defaults(&cfg) != DG_OK) {
        return 0;
    }
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = dg_config_apply_ini(&cfg, (const char *)data, size, "fuzz.ini", &err);
    if (rc == DG_CONFIG && strncmp(err.msg, "fuzz.ini:", 9) != 0) {
        abort();
    }
    if (rc == DG_OK && (!cfg.data_dir || !cfg.data_dir[0] || cfg.engines < 1 ||
                        cfg.timeout_ms < 1 || cfg.max_body_bytes < 1)) {
        abort();
    }
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) {
        dg_config_print(&cfg, devnull);
        fclose(devnull);
    }
    dg_config_free(&cfg);

    /* Each line through the value parsers. */
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char *line = malloc(len + 1);
        if (!line) {
            abort();
        }
        memcpy(line, p, len);
        line[len] = '\0';
        uint64_t v;
        dg_parse_bytes(line, &v);
        char host[64];
        int port;
        if (dg_parse_listen(line, host, sizeof host, &port) && (port < 0 || port > 65535)) {
            abort();
        }
        free(line);
        p = nl ? nl + 1 : end;
    }
    return 0;
}
