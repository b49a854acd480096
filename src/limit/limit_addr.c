/* Addresses, CIDR lists and forwarded-address headers (see limit.h). Pure functions over
 * untrusted bytes: every input is bounded by its length, copied into a small NUL-terminated
 * stack buffer before inet_pton sees it, and never trusted to contain or lack a NUL. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "limit/limit.h"

#define MAX_ADDR_TEXT 63 /* longest accepted address text (IPv6 with embedded IPv4 is 45) */

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **s, size_t *len)
{
    while (*len && is_space((*s)[0])) {
        (*s)++;
        (*len)--;
    }
    while (*len && is_space((*s)[*len - 1])) {
        (*len)--;
    }
}

bool dg_limit_addr_parse(const char *s, size_t len, dg_limit_addr_t *out)
{
    char buf[MAX_ADDR_TEXT + 1];
    if (len == 0 || len > MAX_ADDR_TEXT || memchr(s, '\0', len)) {
        return false;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(out, 0, sizeof *out);
    if (memchr(buf, ':', len)) {
        if (inet_pton(AF_INET6, buf, out->b) != 1) {
            return false;
        }
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(out->b, mapped, sizeof mapped) == 0) {
            memmove(out->b, out->b + 12, 4);
            memset(out->b + 4, 0, 12);
            out->family = 4;
        } else {
            out->family = 6;
        }
        return true;
    }
    if (inet_pton(AF_INET, buf, out->b) != 1) {
        return false;
    }
    out->family = 4;
    return true;
}

void dg_limit_addr_format(const dg_limit_addr_t *a, char *out, size_t cap)
{
    char buf[INET6_ADDRSTRLEN];
    if (!inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->b, buf, sizeof buf)) {
        buf[0] = '\0';
    }
    snprintf(out, cap, "%s", buf);
}

static unsigned addr_bits(const dg_limit_addr_t *a)
{
    return a->family == 4 ? 32u : 128u;
}

/* True when a's bits below the first `prefix` are all zero. */
static bool host_bits_zero(const dg_limit_addr_t *a, unsigned prefix)
{
    for (unsigned bit = prefix; bit < addr_bits(a); bit++) {
        if (a->b[bit / 8] & (0x80u >> (bit % 8))) {
            return false;
        }
    }
    return true;
}

bool dg_limit_cidr_parse(const char *s, size_t len, dg_limit_cidr_t *out)
{
    trim(&s, &len);
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    if (!dg_limit_addr_parse(s, alen, &out->addr)) {
        return false;
    }
    /* "::ffff:10.0.0.0/104" was written for IPv6 bits; the address is now IPv4. */
    bool was_mapped = out->addr.family == 4 && memchr(s, ':', alen) != NULL;
    unsigned max = addr_bits(&out->addr);
    if (!slash) {
        out->prefix = max;
        return true;
    }
    const char *p = slash + 1, *end = s + len;
    if (p == end || end - p > 3) {
        return false;
    }
    unsigned v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (was_mapped) {
        if (v < 96 || v > 128) {
            return false;
        }
        v -= 96;
    }
    if (v > max || !host_bits_zero(&out->addr, v)) {
        return false;
    }
    out->prefix = v;
    return true;
}

bool dg_limit_cidr_match(const dg_limit_cidr_t *c, const dg_limit_addr_t *a)
{
    if (c->addr.family != a->family) {
        return false;
    }
    unsigned full = c->prefix / 8, rem = c->prefix % 8;
    if (memcmp(c->addr.b, a->b, full) != 0) {
        return false;
    }
    if (rem == 0) {
        return true;
    }
    uint8_t mask = (uint8_t)(0xffu << (8 - rem));
    return (c->addr.b[full] & mask) == (a->b[full] & mask);
}

dg_rc_t dg_limit_proxies_parse(const char *s, size_t len, dg_limit_proxies_t *out, dg_error_t *err)
{
    out->n = 0;
    const char *p = s, *end = s + len;
    trim(&p, &len);
    if (len == 0) {
        return DG_OK;
    }
    end = p + len;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        const char *item = p;
        size_t ilen = (size_t)(item_end - item);
        trim(&item, &ilen);
        if (ilen == 0) {
            return dg_error_set(err, DG_CONFIG, "trusted_proxies: empty item in the list");
        }
        if (out->n == DG_LIMIT_MAX_PROXIES) {
            return dg_error_set(err, DG_CONFIG, "trusted_proxies: more than %d items",
                                DG_LIMIT_MAX_PROXIES);
        }
        if (!dg_limit_cidr_parse(item, ilen, &out->cidr[out->n])) {
            int shown = ilen > 64 ? 64 : (int)ilen;
            for (int i = 0; i < shown; i++) {
                if ((unsigned char)item[i] < 0x20 || (unsigned char)item[i] >= 0x7f) {
                    shown = i;
                    break;
                }
            }
            return dg_error_set(err, DG_CONFIG,
                                "trusted_proxies: bad CIDR \"%.*s\" (expected ADDR or ADDR/PREFIX "
                                "with no host bits set)",
                                shown, item);
        }
        out->n++;
        if (!comma) {
            break;
        }
        p = comma + 1;
    }
    return DG_OK;
}

bool dg_limit_proxies_match(const dg_limit_proxies_t *p, const dg_limit_addr_t *a)
{
    for (size_t i = 0; i < p->n; i++) {
        if (dg_limit_cidr_match(&p->cidr[i], a)) {
            return true;
        }
    }
    return false;
}

static bool is_port(const char *s, size_t len)
{
    if (len == 0 || len > 5) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return true;
}

bool dg_limit_fwd_elem_parse(const char *s, size_t len, dg_limit_addr_t *out)
{
    trim(&s, &len);
    if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
        s++;
        len -= 2;
        trim(&s, &len);
    }
    if (len && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close) {
            return false;
        }
        size_t alen = (size_t)(close - s - 1);
        size_t rest = len - alen - 2;
        if (rest && (close[1] != ':' || !is_port(close + 2, rest - 1))) {
            return false;
        }
        return memchr(s + 1, ':', alen) && dg_limit_addr_parse(s + 1, alen, out);
    }
    const char *colon = memchr(s, ':', len);
    if (colon && !memchr(colon + 1, ':', len - (size_t)(colon - s) - 1)) {
        /* One colon: IPv4 with a port. */
        size_t alen = (size_t)(colon - s);
        if (!is_port(colon + 1, len - alen - 1)) {
            return false;
        }
        return dg_limit_addr_parse(s, alen, out) && !memchr(s, ':', alen);
    }
    return dg_limit_addr_parse(s, len, out);
}

void dg_limit_client_addr(const dg_limit_proxies_t *p, const dg_limit_addr_t *peer, const char *fwd,
                          size_t fwd_len, dg_limit_addr_t *out)
{
    *out = *peer;
    if (!fwd || p->n == 0 || !dg_limit_proxies_match(p, peer)) {
        return;
    }
    /* Right to left: each trusted hop vouches for the element before it. */
    const char *end = fwd + fwd_len;
    while (end > fwd) {
        const char *start = end;
        while (start > fwd && start[-1] != ',') {
            start--;
        }
        dg_limit_addr_t a;
        if (!dg_limit_fwd_elem_parse(start, (size_t)(end - start), &a)) {
            return;
        }
        *out = a;
        if (!dg_limit_proxies_match(p, &a)) {
            return;
        }
        end = start > fwd ? start - 1 : fwd;
    }
}

void dg_limit_addr_key(const dg_limit_addr_t *a, char *out, size_t cap)
{
    char text[INET6_ADDRSTRLEN];
    if (a->family == 6) {
        dg_limit_addr_t net = *a;
        memset(net.b + 8, 0, 8);
        dg_limit_addr_format(&net, text, sizeof text);
        snprintf(out, cap, "ip:%s/64", text);
    } else {
        dg_limit_addr_format(a, text, sizeof text);
        snprintf(out, cap, "ip:%s", text);
    }
}
