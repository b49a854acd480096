#include "utf8.h"

#include <string.h>

size_t dg_utf8_seq_len(const unsigned char *s, size_t len, size_t *out_skip)
{
    unsigned c = s[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) {
            lo = 0xA0; /* overlong */
        } else if (c == 0xED) {
            hi = 0x9F; /* surrogates */
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) {
            lo = 0x90;
        } else if (c == 0xF4) {
            hi = 0x8F; /* above U+10FFFF */
        }
    } else {
        if (out_skip) {
            *out_skip = 1;
        }
        return 0;
    }
    size_t i = 1;
    for (; i < need; i++) {
        if (i >= len) {
            break;
        }
        unsigned b = s[i];
        unsigned l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) {
            break;
        }
    }
    if (i == need) {
        return need;
    }
    if (out_skip) {
        *out_skip = i; /* the maximal subpart: the lead byte plus the valid continuation bytes */
    }
    return 0;
}

static const char hex_digits[] = "0123456789abcdef";

/* Escape for one ASCII byte, or NULL when it is copied as is. Writes into tmp. */
static size_t ascii_escape(unsigned char c, char *out)
{
    switch (c) {
    case '"':
        out[0] = '\\';
        out[1] = '"';
        return 2;
    case '\\':
        out[0] = '\\';
        out[1] = '\\';
        return 2;
    case '\n':
        out[0] = '\\';
        out[1] = 'n';
        return 2;
    case '\r':
        out[0] = '\\';
        out[1] = 'r';
        return 2;
    case '\t':
        out[0] = '\\';
        out[1] = 't';
        return 2;
    case '\b':
        out[0] = '\\';
        out[1] = 'b';
        return 2;
    case '\f':
        out[0] = '\\';
        out[1] = 'f';
        return 2;
    default:
        if (c < 0x20) {
            memcpy(out, "\\u00", 4);
            out[4] = hex_digits[c >> 4];
            out[5] = hex_digits[c & 15];
            return 6;
        }
        out[0] = (char)c;
        return 1;
    }
}

size_t dg_utf8_json_escape(char *out, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    char *o = out;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *o++ = (char)c;
            i++;
            continue;
        }
        if (c < 0x80) {
            o += ascii_escape(c, o);
            i++;
            continue;
        }
        size_t skip = 1;
        size_t n = dg_utf8_seq_len(s + i, len - i, &skip);
        if (n == 0) {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += skip;
        } else if (n == 3 && c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
            memcpy(o, s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
            o += 6;
            i += 3;
        } else {
            memcpy(o, s + i, n);
            o += n;
            i += n;
        }
    }
    return (size_t)(o - out);
}

size_t dg_utf8_json_escaped_len(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n_out = 0, i = 0;
    char tmp[8];
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            n_out += ascii_escape(c, tmp);
            i++;
            continue;
        }
        size_t skip = 1;
        size_t n = dg_utf8_seq_len(s + i, len - i, &skip);
        if (n == 0) {
            n_out += 3;
            i += skip;
        } else if (n == 3 && c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
            n_out += 6;
            i += 3;
        } else {
            n_out += n;
            i += n;
        }
    }
    return n_out;
}

int dg_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        size_t n = dg_utf8_seq_len(s + i, len - i, NULL);
        if (n == 0) {
            return 0;
        }
        i += n;
    }
    return 1;
}
