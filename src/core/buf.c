#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

void dg_buf_init_rc(dg_buf_t *b, size_t cap, dg_rc_t over_rc)
{
    b->p = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap ? cap : SIZE_MAX - 1;
    b->over_rc = over_rc;
}

void dg_buf_init(dg_buf_t *b, size_t cap)
{
    dg_buf_init_rc(b, cap, DG_RESULT_TOO_LARGE);
}

void dg_buf_free(dg_buf_t *b)
{
    if (!b) {
        return;
    }
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->alloc = 0;
}

void dg_buf_reset(dg_buf_t *b)
{
    b->len = 0;
    if (b->p) {
        b->p[0] = '\0';
    }
}

dg_rc_t dg_buf_reserve(dg_buf_t *b, size_t extra)
{
    if (extra > b->cap || b->len > b->cap - extra) {
        return b->over_rc;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->alloc) {
        return DG_OK;
    }
    size_t n = b->alloc ? b->alloc : 64;
    while (n < need) {
        n = n > SIZE_MAX / 2 ? need : n * 2;
    }
    if (n > b->cap + 1) {
        n = b->cap + 1;
    }
    char *p = realloc(b->p, n);
    if (!p) {
        return DG_NOMEM;
    }
    b->p = p;
    b->alloc = n;
    return DG_OK;
}

dg_rc_t dg_buf_append(dg_buf_t *b, const void *p, size_t len)
{
    dg_rc_t rc = dg_buf_reserve(b, len);
    if (rc != DG_OK) {
        return rc;
    }
    if (len) {
        memcpy(b->p + b->len, p, len);
    }
    b->len += len;
    b->p[b->len] = '\0';
    return DG_OK;
}

dg_rc_t dg_buf_puts(dg_buf_t *b, const char *s)
{
    return dg_buf_append(b, s, strlen(s));
}

dg_rc_t dg_buf_putc(dg_buf_t *b, char c)
{
    return dg_buf_append(b, &c, 1);
}

dg_rc_t dg_buf_printf(dg_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return DG_INTERNAL;
    }
    dg_rc_t rc = dg_buf_reserve(b, (size_t)n);
    if (rc != DG_OK) {
        return rc;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return DG_OK;
}

dg_rc_t dg_buf_json_str(dg_buf_t *b, const char *s, size_t len)
{
    /* Worst case: every byte becomes \u00XX (6 bytes) or U+FFFD (3 bytes). */
    if (len > (SIZE_MAX - 2) / 6) {
        return b->over_rc;
    }
    dg_rc_t rc = dg_buf_reserve(b, len * 6 + 2);
    if (rc != DG_OK) {
        /* The worst case may not fit although the real output does: retry exactly. */
        rc = dg_buf_reserve(b, dg_utf8_json_escaped_len(s, len) + 2);
        if (rc != DG_OK) {
            return rc;
        }
    }
    char *out = b->p + b->len;
    *out++ = '"';
    out += dg_utf8_json_escape(out, s, len);
    *out++ = '"';
    b->len = (size_t)(out - b->p);
    b->p[b->len] = '\0';
    return DG_OK;
}

void dg_buf_consume(dg_buf_t *b, size_t n)
{
    if (n >= b->len) {
        dg_buf_reset(b);
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
    b->p[b->len] = '\0';
}

char *dg_buf_take(dg_buf_t *b, size_t *out_len)
{
    char *p = b->p;
    if (out_len) {
        *out_len = b->len;
    }
    if (!p) {
        p = calloc(1, 1);
    }
    b->p = NULL;
    b->len = 0;
    b->alloc = 0;
    return p;
}
