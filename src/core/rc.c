#include "rc.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    int num;
    const char *name;
    int http;
    const char *msg;
} rc_row;

static const rc_row rc_rows[] = {
#define DG_RC_ROW(name, num, http, msg) {num, #name, http, msg},
    DG_RC_TABLE(DG_RC_ROW)
#undef DG_RC_ROW
};

static const rc_row *rc_find(dg_rc_t rc)
{
    for (size_t i = 0; i < sizeof rc_rows / sizeof rc_rows[0]; i++) {
        if (rc_rows[i].num == (int)rc) {
            return &rc_rows[i];
        }
    }
    return &rc_rows[DG_INTERNAL];
}

const char *dg_rc_name(dg_rc_t rc)
{
    return rc_find(rc)->name;
}

int dg_rc_http_status(dg_rc_t rc)
{
    return rc_find(rc)->http;
}

const char *dg_rc_message(dg_rc_t rc)
{
    return rc_find(rc)->msg;
}

dg_rc_t dg_rc_from_name(const char *name)
{
    for (size_t i = 0; name && i < sizeof rc_rows / sizeof rc_rows[0]; i++) {
        if (strcmp(rc_rows[i].name, name) == 0) {
            return (dg_rc_t)rc_rows[i].num;
        }
    }
    return DG_INTERNAL;
}

void dg_error_clear(dg_error_t *err)
{
    if (err) {
        err->rc = DG_OK;
        err->msg[0] = '\0';
    }
}

dg_rc_t dg_error_setv(dg_error_t *err, dg_rc_t rc, const char *fmt, va_list ap)
{
    if (!err || err->rc != DG_OK) {
        return rc;
    }
    err->rc = rc;
    if (fmt) {
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    } else {
        snprintf(err->msg, sizeof err->msg, "%s", dg_rc_message(rc));
    }
    return rc;
}

dg_rc_t dg_error_set(dg_error_t *err, dg_rc_t rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dg_error_setv(err, rc, fmt, ap);
    va_end(ap);
    return rc;
}
