#include "str.h"

#include <stdlib.h>
#include <string.h>

dg_str_t dg_str_c(const char *s)
{
    return (dg_str_t){s ? s : "", s ? strlen(s) : 0};
}

bool dg_str_eq(dg_str_t a, dg_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

bool dg_str_eq_c(dg_str_t a, const char *b)
{
    return dg_str_eq(a, dg_str_c(b));
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

bool dg_str_ieq_c(dg_str_t a, const char *b)
{
    size_t n = strlen(b);
    if (n != a.len) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (lower((unsigned char)a.p[i]) != lower((unsigned char)b[i])) {
            return false;
        }
    }
    return true;
}

bool dg_str_starts_with_c(dg_str_t a, const char *prefix)
{
    size_t n = strlen(prefix);
    return a.len >= n && memcmp(a.p, prefix, n) == 0;
}

dg_str_t dg_str_trim(dg_str_t s)
{
    while (s.len && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.len--;
    }
    while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t')) {
        s.len--;
    }
    return s;
}

bool dg_str_list_next(const char **io_p, dg_str_t *out_item)
{
    const char *p = *io_p;
    if (!*p) {
        return false;
    }
    size_t n = strcspn(p, ",");
    *out_item = dg_str_trim((dg_str_t){p, n});
    p += n;
    *io_p = p + (*p == ',');
    return true;
}

dg_str_t dg_str_split(dg_str_t s, char c, dg_str_t *out_head)
{
    const char *hit = s.len ? memchr(s.p, c, s.len) : NULL;
    if (!hit) {
        *out_head = s;
        return (dg_str_t){s.p + s.len, 0};
    }
    *out_head = (dg_str_t){s.p, (size_t)(hit - s.p)};
    return (dg_str_t){hit + 1, s.len - (size_t)(hit - s.p) - 1};
}

bool dg_str_to_u64(dg_str_t s, uint64_t *out)
{
    if (s.len == 0 || s.len > 20) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d = (unsigned char)s.p[i] - '0';
        if (d > 9 || v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

char *dg_str_dup(dg_str_t s)
{
    char *p = malloc(s.len + 1);
    if (p) {
        if (s.len) {
            memcpy(p, s.p, s.len);
        }
        p[s.len] = '\0';
    }
    return p;
}
