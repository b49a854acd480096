/* Value writers: one per (type, mode), chosen once per column by dg_enc__plan, so the row loops
 * in enc.c call a function pointer per cell and never switch on the type.
 *
 * JSON values follow the lossless rules of DESIGN §5 (docs/formats.md lists them all). CSV and
 * TSV cells use the same text without JSON quoting for scalars; nested values are written as
 * their JSON text and then quoted (CSV) or escaped (TSV) as one field.
 * Strings take a fast path when they are plain printable ASCII (checked eight bytes at a time);
 * anything else goes through the shared core rule (core/utf8.h). Thread-compatible. */
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "enc/enc_int.h"

/* ---- scalar readers ---- */

#define VAL(T, v, row) (((const T *)(v)->data)[row])

static dg_enc__i128_t hugeint_val(const dg_vec_t *v, uint64_t row)
{
    const dg_hugeint_t *h = (const dg_hugeint_t *)v->data + row;
    return (dg_enc__i128_t)(((dg_enc__u128_t)(uint64_t)h->upper << 64) | h->lower);
}

static dg_enc__u128_t uhugeint_val(const dg_vec_t *v, uint64_t row)
{
    const dg_uhugeint_t *h = (const dg_uhugeint_t *)v->data + row;
    return ((dg_enc__u128_t)h->upper << 64) | h->lower;
}

static char *put_lit(const char *s, size_t n, char *o)
{
    memcpy(o, s, n);
    return o + n;
}

/* ---- text writers (shared by CSV/TSV and, inside quotes, JSON) ---- */

static char *t_bool(const dg_vec_t *v, uint64_t row, char *o)
{
    return VAL(bool, v, row) ? put_lit("true", 4, o) : put_lit("false", 5, o);
}
static char *t_i8(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__i64(VAL(int8_t, v, row), o);
}
static char *t_i16(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__i64(VAL(int16_t, v, row), o);
}
static char *t_i32(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__i64(VAL(int32_t, v, row), o);
}
static char *t_i64(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__i64(VAL(int64_t, v, row), o);
}
static char *t_u8(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__u64(VAL(uint8_t, v, row), o);
}
static char *t_u16(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__u64(VAL(uint16_t, v, row), o);
}
static char *t_u32(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__u64(VAL(uint32_t, v, row), o);
}
static char *t_u64(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__u64(VAL(uint64_t, v, row), o);
}
static char *t_i128(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__i128(hugeint_val(v, row), o);
}
static char *t_u128(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__u128(uhugeint_val(v, row), o);
}

/* Non-finite floats: CSV/TSV spell them the way DuckDB reads them back. */
static char *t_nonfinite(double d, char *o)
{
    if (d != d) {
        return put_lit("nan", 3, o);
    }
    return d < 0 ? put_lit("-inf", 4, o) : put_lit("inf", 3, o);
}
static char *t_f32(const dg_vec_t *v, uint64_t row, char *o)
{
    float f = VAL(float, v, row);
    if (f - f != 0) {
        return t_nonfinite(f, o);
    }
    return dg_enc__float(f, o);
}
static char *t_f64(const dg_vec_t *v, uint64_t row, char *o)
{
    double d = VAL(double, v, row);
    if (d - d != 0) {
        return t_nonfinite(d, o);
    }
    return dg_enc__dbl(d, o);
}

/* DECIMAL: the scale lives in the type, so each storage width gets a writer that reads it. */
#define DEC_SCALE(v) ((unsigned)(v)->type->scale)
static char *t_dec16(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__decimal64(VAL(int16_t, v, row), DEC_SCALE(v), o);
}
static char *t_dec32(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__decimal64(VAL(int32_t, v, row), DEC_SCALE(v), o);
}
static char *t_dec64(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__decimal64(VAL(int64_t, v, row), DEC_SCALE(v), o);
}
static char *t_dec128(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__decimal128(hugeint_val(v, row), DEC_SCALE(v), o);
}

static char *t_date(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__date(VAL(int32_t, v, row), o);
}
static char *t_ts_s(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__timestamp(VAL(int64_t, v, row), 0, false, o);
}
static char *t_ts_ms(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__timestamp(VAL(int64_t, v, row), 3, false, o);
}
static char *t_ts_us(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__timestamp(VAL(int64_t, v, row), 6, false, o);
}
static char *t_ts_ns(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__timestamp(VAL(int64_t, v, row), 9, false, o);
}
static char *t_ts_tz(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__timestamp(VAL(int64_t, v, row), 6, true, o);
}
static char *t_time(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__time(VAL(int64_t, v, row), 6, o);
}
static char *t_time_ns(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__time(VAL(int64_t, v, row), 9, o);
}
static char *t_time_tz(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__time_tz(VAL(uint64_t, v, row), o);
}
static char *t_interval(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__interval((const dg_interval_t *)v->data + row, o);
}
static char *t_uuid(const dg_vec_t *v, uint64_t row, char *o)
{
    return dg_enc__uuid((const dg_hugeint_t *)v->data + row, o);
}
static char *t_null(const dg_vec_t *v, uint64_t row, char *o)
{
    (void)v;
    (void)row;
    return o;
}

/* ---- JSON-specific fixed writers ---- */

static char *j_null(const dg_vec_t *v, uint64_t row, char *o)
{
    (void)v;
    (void)row;
    return put_lit("null", 4, o);
}

/* JSON string form of a text writer: the text never needs escaping (digits, dates, hex). */
#define JQ(name)                                                                                   \
    static char *j_##name(const dg_vec_t *v, uint64_t row, char *o)                                \
    {                                                                                              \
        *o++ = '"';                                                                                \
        o = t_##name(v, row, o);                                                                   \
        *o++ = '"';                                                                                \
        return o;                                                                                  \
    }
JQ(i128)
JQ(u128)
JQ(dec16)
JQ(dec32)
JQ(dec64)
JQ(dec128)
JQ(date)
JQ(ts_s)
JQ(ts_ms)
JQ(ts_us)
JQ(ts_ns)
JQ(ts_tz)
JQ(time)
JQ(time_ns)
JQ(time_tz)
JQ(interval)
JQ(uuid)

/* BIGINT/UBIGINT stay numbers while a double holds them exactly (|x| <= 2^53), else strings. */
#define SAFE_INT (1ull << 53)
static char *j_i64(const dg_vec_t *v, uint64_t row, char *o)
{
    int64_t x = VAL(int64_t, v, row);
    if ((uint64_t)x + SAFE_INT <= 2 * SAFE_INT) {
        return dg_enc__i64(x, o);
    }
    *o++ = '"';
    o = dg_enc__i64(x, o);
    *o++ = '"';
    return o;
}
static char *j_u64(const dg_vec_t *v, uint64_t row, char *o)
{
    uint64_t x = VAL(uint64_t, v, row);
    if (x <= SAFE_INT) {
        return dg_enc__u64(x, o);
    }
    *o++ = '"';
    o = dg_enc__u64(x, o);
    *o++ = '"';
    return o;
}
static char *j_f32(const dg_vec_t *v, uint64_t row, char *o)
{
    float f = VAL(float, v, row);
    if (f - f != 0) {
        return put_lit("null", 4, o);
    }
    return dg_enc__float(f, o);
}
static char *j_f64(const dg_vec_t *v, uint64_t row, char *o)
{
    double d = VAL(double, v, row);
    if (d - d != 0) {
        return put_lit("null", 4, o);
    }
    return dg_enc__dbl(d, o);
}

/* ---- strings ---- */

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Bytes of w that are zero get their high bit set (exact, no false positives). */
static inline uint64_t zero_bytes(uint64_t w)
{
    return ~(((w & ~HIGHS) + ~HIGHS) | w) & HIGHS;
}

/* Length of the prefix of s that JSON copies verbatim: printable ASCII other than `"` and `\`. */
static size_t json_plain_prefix(const char *s, size_t len)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t bad = (w & HIGHS) | zero_bytes(w & (~(0x1Full * ONES))) |
                       zero_bytes(w ^ ('"' * ONES)) | zero_bytes(w ^ ('\\' * ONES));
        if (bad) {
            break;
        }
    }
    for (; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') {
            break;
        }
    }
    return i;
}

dg_rc_t dg_enc__json_str(dg_buf_t *out, const char *s, size_t len)
{
    size_t plain = json_plain_prefix(s, len);
    size_t rest = len - plain;
    size_t need;
    if (rest == 0) {
        need = len + 2;
    } else if (rest > (SIZE_MAX - len) / 6) {
        return out->over_rc;
    } else {
        need = plain + rest * 6 + 2; /* worst case of the core rule */
    }
    dg_rc_t rc = dg_enc__ensure(out, need);
    if (rc != DG_OK && rest) {
        /* The worst case may not fit under the cap although the real output does. */
        rc = dg_enc__ensure(out, plain + dg_utf8_json_escaped_len(s + plain, rest) + 2);
    }
    if (rc != DG_OK) {
        return rc;
    }
    char *o = out->p + out->len;
    *o++ = '"';
    memcpy(o, s, plain);
    o += plain;
    if (rest) {
        o += dg_utf8_json_escape(o, s + plain, rest);
    }
    *o++ = '"';
    out->len = (size_t)(o - out->p);
    out->p[out->len] = '\0';
    return DG_OK;
}

/* CSV/TSV: is byte c special (needs the slow path)? */
static inline bool text_special(dg_enc__mode_t mode, unsigned char c)
{
    if (c >= 0x80) {
        return true;
    }
    if (mode == DG_ENC__CSV) {
        return c == ',' || c == '"' || c == '\n' || c == '\r';
    }
    return c == '\\' || c == '\t' || c == '\n' || c == '\r';
}

static size_t text_plain_prefix(dg_enc__mode_t mode, const char *s, size_t len)
{
    size_t i = 0;
    uint64_t a = (mode == DG_ENC__CSV ? ',' : '\\') * ONES;
    uint64_t b = (mode == DG_ENC__CSV ? '"' : '\t') * ONES;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t bad = (w & HIGHS) | zero_bytes(w ^ a) | zero_bytes(w ^ b) |
                       zero_bytes(w ^ ('\n' * ONES)) | zero_bytes(w ^ ('\r' * ONES));
        if (bad) {
            break;
        }
    }
    while (i < len && !text_special(mode, (unsigned char)s[i])) {
        i++;
    }
    return i;
}

/* Writes (out != NULL) or measures the CSV/TSV body of s: doubled quotes (CSV) or backslash
 * escapes (TSV), invalid UTF-8 as U+FFFD. Returns the byte count. */
static size_t text_body(dg_enc__mode_t mode, char *out, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = 0, i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t skip = 1;
            size_t k = dg_utf8_seq_len(s + i, len - i, &skip);
            if (k == 0) {
                if (out) {
                    memcpy(out + n, "\xEF\xBF\xBD", 3);
                }
                n += 3;
                i += skip;
            } else {
                if (out) {
                    memcpy(out + n, s + i, k);
                }
                n += k;
                i += k;
            }
            continue;
        }
        char esc = 0;
        if (mode == DG_ENC__CSV) {
            if (c == '"') {
                esc = '"';
            }
        } else if (c == '\\') {
            esc = '\\';
        } else if (c == '\t') {
            esc = 't';
        } else if (c == '\n') {
            esc = 'n';
        } else if (c == '\r') {
            esc = 'r';
        }
        if (esc) {
            if (out) {
                out[n] = mode == DG_ENC__CSV ? '"' : '\\';
                out[n + 1] = esc;
            }
            n += 2;
        } else {
            if (out) {
                out[n] = (char)c;
            }
            n++;
        }
        i++;
    }
    return n;
}

dg_rc_t dg_enc__text_field(dg_buf_t *out, dg_enc__mode_t mode, const char *s, size_t len)
{
    size_t plain = text_plain_prefix(mode, s, len);
    bool quote = false;
    if (mode == DG_ENC__CSV) {
        /* Quote when RFC 4180 requires it, and for leading/trailing spaces (readers trim them)
         * and for the empty string (so '' differs from NULL, which is an empty field). */
        quote = len == 0 || s[0] == ' ' || s[len - 1] == ' ';
        for (size_t i = plain; i < len && !quote; i++) {
            quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
        }
    }
    size_t nq = quote ? 2 : 0;
    if (plain == len) {
        dg_rc_t rc = dg_enc__ensure(out, len + nq);
        if (rc != DG_OK) {
            return rc;
        }
        char *o = out->p + out->len;
        if (quote) {
            *o++ = '"';
        }
        memcpy(o, s, len);
        o += len;
        if (quote) {
            *o++ = '"';
        }
        out->len = (size_t)(o - out->p);
        out->p[out->len] = '\0';
        return DG_OK;
    }
    size_t body = text_body(mode, NULL, s, len);
    dg_rc_t rc = dg_enc__ensure(out, body + nq);
    if (rc != DG_OK) {
        return rc;
    }
    char *o = out->p + out->len;
    if (quote) {
        *o++ = '"';
    }
    o += text_body(mode, o, s, len);
    if (quote) {
        *o++ = '"';
    }
    out->len = (size_t)(o - out->p);
    out->p[out->len] = '\0';
    return DG_OK;
}

static dg_rc_t v_varchar(const dg_enc__col_t *c, const dg_vec_t *v, uint64_t row, dg_buf_t *out)
{
    uint32_t len;
    const char *p = dg_strval_data((const dg_strval_t *)v->data + row, &len);
    if (c->mode == DG_ENC__JSON) {
        return dg_enc__json_str(out, p, len);
    }
    return dg_enc__text_field(out, c->mode, p, len);
}

static dg_rc_t put_enum(const dg_enc__col_t *c, uint64_t idx, dg_buf_t *out)
{
    const dg_type_t *t = c->type;
    if (idx >= t->n_enum || !t->enum_values || !t->enum_values[idx]) {
        /* A dictionary index out of range is a producer bug; write NULL rather than crash. */
        return c->mode == DG_ENC__JSON ? dg_buf_append(out, "null", 4) : DG_OK;
    }
    const char *s = t->enum_values[idx];
    if (c->mode == DG_ENC__JSON) {
        return dg_enc__json_str(out, s, strlen(s));
    }
    return dg_enc__text_field(out, c->mode, s, strlen(s));
}
static dg_rc_t v_enum8(const dg_enc__col_t *c, const dg_vec_t *v, uint64_t row, dg_buf_t *out)
{
    return put_enum(c, VAL(uint8_t, v, row), out);
}
static dg_rc_t v_enum16(const dg_enc__col_t *c, const dg_vec_t *v, uint64_t row, dg_buf_t *out)
{
    return put_enum(c, VAL(uint16_t, v, row), out);
}
static dg_rc_t v_enum32(const dg_enc__col_t *c, const dg_vec_t *v, uint64_t row, dg_buf_t *out)
{
    return put_enum(c, VAL(uint32_t, v, row), out);
}

static dg_rc_t v_blob(const dg_enc__col_t *c, const dg_vec_t *v, uint64_t row, dg_buf_t *out)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t len;
    const unsigned char *p =
        (const unsigned char *)dg_strval_data((const dg_strval_t *)v->data + row, &len);
    if (len == 0 && c->mode != DG_ENC__JSON) {
        /* An empty BLOB must stay distinguishable from NULL (CSV writes it as ""). */
        return dg_enc__text_field(out, c->mode, "", 0);
    }
    size_t n = ((size_t)len + 2) / 3 * 4;
    bool q = c->mode == DG_ENC__JSON;
    dg_rc_t rc = dg_enc__ensure(out, n + 2);
    if (rc != DG_OK) {
        return rc;
    }
    char *o = out->p + out->len;
    if (q) {
        *o++ = '"';
    }
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        o[0] = b64[w >> 18];
        o[1] = b64[(w >> 12) & 63];
        o[2] = b64[(w >> 6) & 63];
        o[3] = b64[w & 63];
        o += 4;
    }
    if (i < len) {
        uint32_t w = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
        o[0] = b64[w >> 18];
        o[1] = b64[(w >> 12) & 63];
        o[2] = i + 1 < len ? b64[(w >> 6) & 63] : '=';
        o[3] = '=';
        o += 4;
    }
    if (q) {
        *o++ = '"';
    }
    out->len = (size_t)(o - out->p);
    out->p[out->len] = '\0';
    return DG_OK;
}

/* BIT: byte 0 = number of padding bits at the top of byte 1, then the bits, MSB first. */
static dg_rc_t v_bit(const dg_enc__col_t *c, const dg_vec_t *v, uint64_t row, dg_buf_t *out)
{
    uint32_t len;
    const unsigned char *p =
        (const unsigned char *)dg_strval_data((const dg_strval_t *)v->data + row, &len);
    bool q = c->mode == DG_ENC__JSON;
    size_t nbits = len > 1 ? ((size_t)len - 1) * 8 : 0;
    unsigned pad = len > 1 ? p[0] : 0;
    if (pad > 7) {
        pad = 7; /* malformed: keep going, never read out of bounds */
    }
    dg_rc_t rc = dg_enc__ensure(out, nbits + 2);
    if (rc != DG_OK) {
        return rc;
    }
    char *o = out->p + out->len;
    if (q) {
        *o++ = '"';
    }
    for (size_t i = pad; i < nbits; i++) {
        *o++ = (char)('0' + ((p[1 + i / 8] >> (7 - i % 8)) & 1));
    }
    if (q) {
        *o++ = '"';
    }
    out->len = (size_t)(o - out->p);
    out->p[out->len] = '\0';
    return DG_OK;
}

/* Magnitudes above this many bytes (~39,000 digits) are written in hex: the decimal
 * conversion is quadratic, and a hostile query must not pin an engine on one value. */
#define BIGNUM_DECIMAL_MAX 16384

/* Fallback text for huge BIGNUMs: "-0x1f..." (sign, 0x, lower-case hex, no leading zeros). */
static dg_rc_t bignum_hex(bool q, bool neg, const unsigned char *p, size_t nb, dg_buf_t *out)
{
    static const char hex[] = "0123456789abcdef";
    dg_rc_t rc = dg_enc__ensure(out, nb * 2 + 5);
    if (rc != DG_OK) {
        return rc;
    }
    char *o = out->p + out->len;
    if (q) {
        *o++ = '"';
    }
    if (neg) {
        *o++ = '-';
    }
    *o++ = '0';
    *o++ = 'x';
    bool started = false;
    for (size_t i = 0; i < nb; i++) {
        unsigned char b = (unsigned char)(neg ? ~p[i] : p[i]);
        if (!started && b == 0) {
            continue;
        }
        if (started || b >> 4) {
            *o++ = hex[b >> 4];
        }
        *o++ = hex[b & 15];
        started = true;
    }
    if (!started) {
        *o++ = '0';
    }
    if (q) {
        *o++ = '"';
    }
    out->len = (size_t)(o - out->p);
    out->p[out->len] = '\0';
    return DG_OK;
}

/* BIGNUM (DuckDB's varint blob): 3 header bytes whose top bit is 1 for non-negative values,
 * then the big-endian magnitude; negative values store every byte inverted. Converted by
 * schoolbook base-10^9 division (quadratic, fine for the sizes queries return). */
static dg_rc_t v_bignum(const dg_enc__col_t *c, const dg_vec_t *v, uint64_t row, dg_buf_t *out)
{
    uint32_t len;
    const unsigned char *p =
        (const unsigned char *)dg_strval_data((const dg_strval_t *)v->data + row, &len);
    bool q = c->mode == DG_ENC__JSON;
    if (len < 4) {
        return q ? dg_buf_append(out, "null", 4) : DG_OK; /* malformed */
    }
    bool neg = (p[0] & 0x80) == 0;
    size_t nb = (size_t)len - 3;
    if (nb > BIGNUM_DECIMAL_MAX) {
        return bignum_hex(q, neg, p + 3, nb, out);
    }
    size_t nlimbs = nb * 8 / 29 + 2; /* 2^29 < 10^9: one limb per 29 bits is enough */
    uint32_t stack[64];
    uint32_t *limb = nlimbs <= 64 ? stack : malloc(nlimbs * sizeof *limb);
    if (!limb) {
        return DG_NOMEM;
    }
    size_t used = 0;
    /* Three bytes per step: limb * 2^24 + carry stays below 2^64. */
    for (size_t i = 0; i < nb;) {
        size_t k = i == 0 && nb % 3 ? nb % 3 : 3;
        uint64_t carry = 0;
        for (size_t b = 0; b < k; b++, i++) {
            carry = carry << 8 | (uint8_t)(neg ? ~p[3 + i] : p[3 + i]);
        }
        for (size_t j = 0; j < used; j++) {
            uint64_t t = ((uint64_t)limb[j] << (8 * k)) + carry;
            limb[j] = (uint32_t)(t % 1000000000u);
            carry = t / 1000000000u;
        }
        while (carry) {
            limb[used++] = (uint32_t)(carry % 1000000000u);
            carry /= 1000000000u;
        }
    }
    /* Exact size: the top limb's digits, nine per further limb, sign and quotes. */
    char top[24];
    size_t need = 1;
    if (used) {
        need = (size_t)(dg_enc__u64(limb[used - 1], top) - top) + (used - 1) * 9 + (neg ? 1 : 0);
    }
    need += q ? 2 : 0;
    dg_rc_t rc = dg_enc__ensure(out, need);
    if (rc == DG_OK) {
        char *o = out->p + out->len;
        if (q) {
            *o++ = '"';
        }
        if (used == 0) {
            *o++ = '0';
        } else {
            if (neg) {
                *o++ = '-';
            }
            o = dg_enc__u64(limb[used - 1], o);
            for (size_t j = used - 1; j-- > 0;) {
                dg_enc__u64_fixed(limb[j], 9, o);
                o += 9;
            }
        }
        if (q) {
            *o++ = '"';
        }
        out->len = (size_t)(o - out->p);
        out->p[out->len] = '\0';
    }
    if (limb != stack) {
        free(limb);
    }
    return rc;
}

/* ---- nested values (JSON) ---- */

static dg_rc_t put2(dg_buf_t *out, char a)
{
    return dg_buf_append(out, &a, 1);
}

dg_rc_t dg_enc__cell(const dg_enc__col_t *c, const dg_vec_t *v, uint64_t row, dg_buf_t *out)
{
    if (!dg_vec_is_valid(v, row)) {
        return c->mode == DG_ENC__JSON ? dg_buf_append(out, "null", 4) : DG_OK;
    }
    if (!c->fix) {
        return c->var(c, v, row, out);
    }
    if (dg_enc__ensure(out, DG_ENC__FIX_MAX) == DG_OK) {
        char *end = c->fix(v, row, out->p + out->len);
        out->len = (size_t)(end - out->p);
        out->p[out->len] = '\0';
        return DG_OK;
    }
    /* Near the cap: format aside and append exactly what it takes. */
    char tmp[DG_ENC__FIX_MAX];
    char *end = c->fix(v, row, tmp);
    return dg_buf_append(out, tmp, (size_t)(end - tmp));
}

static dg_rc_t put_elems(const dg_enc__col_t *ec, const dg_vec_t *ev, uint64_t off, uint64_t n,
                         dg_buf_t *out)
{
    dg_rc_t rc = put2(out, '[');
    for (uint64_t i = 0; i < n && rc == DG_OK; i++) {
        if (i) {
            rc = put2(out, ',');
        }
        if (rc == DG_OK) {
            rc = dg_enc__cell(ec, ev, off + i, out);
        }
    }
    return rc == DG_OK ? put2(out, ']') : rc;
}

static dg_rc_t v_list(const dg_enc__col_t *c, const dg_vec_t *v, uint64_t row, dg_buf_t *out)
{
    const dg_list_entry_t *le = (const dg_list_entry_t *)v->data + row;
    if (DG_NEVER(v->n_children < 1 || le->offset > v->child_len ||
                 le->length > v->child_len - le->offset)) {
        return DG_INTERNAL;
    }
    return put_elems(&c->children[0], &v->children[0], le->offset, le->length, out);
}

static dg_rc_t v_array(const dg_enc__col_t *c, const dg_vec_t *v, uint64_t row, dg_buf_t *out)
{
    uint64_t n = c->type->array_size;
    if (DG_NEVER(v->n_children < 1)) {
        return DG_INTERNAL;
    }
    return put_elems(&c->children[0], &v->children[0], row * n, n, out);
}

static dg_rc_t v_struct(const dg_enc__col_t *c, const dg_vec_t *v, uint64_t row, dg_buf_t *out)
{
    if (DG_NEVER(v->n_children < c->n_children)) {
        return DG_INTERNAL;
    }
    dg_rc_t rc = put2(out, '{');
    for (size_t i = 0; i < c->n_children && rc == DG_OK; i++) {
        if (i) {
            rc = put2(out, ',');
        }
        if (rc == DG_OK) {
            rc = dg_buf_append(out, c->keys[i], c->key_lens[i]);
        }
        if (rc == DG_OK) {
            rc = dg_enc__cell(&c->children[i], &v->children[i], row, out);
        }
    }
    return rc == DG_OK ? put2(out, '}') : rc;
}

static dg_rc_t put_map_key(const dg_enc__col_t *c, const dg_vec_t *kv, uint64_t i, dg_buf_t *out)
{
    const dg_enc__col_t *kc = &c->children[0];
    if (!dg_vec_is_valid(kv, i)) {
        return dg_buf_append(out, "\"null\"", 6); /* DuckDB forbids NULL keys; stay valid JSON */
    }
    if (c->key_kind == DG_ENC__KEY_STRING) {
        return dg_enc__cell(kc, kv, i, out);
    }
    if (c->key_kind == DG_ENC__KEY_TEXT) {
        char tmp[DG_ENC__FIX_MAX + 2];
        tmp[0] = '"';
        char *end = c->key_text(kv, i, tmp + 1);
        *end++ = '"';
        return dg_buf_append(out, tmp, (size_t)(end - tmp));
    }
    /* Nested key: render its JSON, then re-append that text as a JSON string. */
    size_t start = out->len;
    dg_rc_t rc = dg_enc__cell(kc, kv, i, out);
    if (rc != DG_OK) {
        return rc;
    }
    size_t n = out->len - start;
    char *copy = malloc(n ? n : 1);
    if (!copy) {
        return DG_NOMEM;
    }
    memcpy(copy, out->p + start, n);
    out->len = start;
    rc = dg_enc__json_str(out, copy, n);
    free(copy);
    return rc;
}

static dg_rc_t v_map(const dg_enc__col_t *c, const dg_vec_t *v, uint64_t row, dg_buf_t *out)
{
    const dg_list_entry_t *le = (const dg_list_entry_t *)v->data + row;
    if (DG_NEVER(v->n_children < 1 || v->children[0].n_children < 2 ||
                 le->offset > v->child_len || le->length > v->child_len - le->offset)) {
        return DG_INTERNAL;
    }
    const dg_vec_t *kv = &v->children[0].children[0];
    const dg_vec_t *vv = &v->children[0].children[1];
    dg_rc_t rc = put2(out, '{');
    for (uint64_t i = le->offset; i < le->offset + le->length && rc == DG_OK; i++) {
        if (i != le->offset) {
            rc = put2(out, ',');
        }
        if (rc == DG_OK) {
            rc = put_map_key(c, kv, i, out);
        }
        if (rc == DG_OK) {
            rc = put2(out, ':');
        }
        if (rc == DG_OK) {
            rc = dg_enc__cell(&c->children[1], vv, i, out);
        }
    }
    return rc == DG_OK ? put2(out, '}') : rc;
}

static dg_rc_t v_union(const dg_enc__col_t *c, const dg_vec_t *v, uint64_t row, dg_buf_t *out)
{
    if (DG_NEVER(v->n_children < 1 || !v->children[0].data)) {
        return DG_INTERNAL;
    }
    unsigned tag = VAL(uint8_t, &v->children[0], row);
    /* The type may list the tag as its first child (DuckDB's struct view) or only the members. */
    size_t pi = c->n_children == v->n_children ? (size_t)tag + 1 : tag;
    if ((size_t)tag + 1 >= v->n_children || pi >= c->n_children) {
        return c->mode == DG_ENC__JSON ? dg_buf_append(out, "null", 4) : DG_OK;
    }
    return dg_enc__cell(&c->children[pi], &v->children[tag + 1], row, out);
}

/* CSV/TSV cell holding a nested value: its JSON text, then quoted/escaped as one field. */
static dg_rc_t v_nested_text(const dg_enc__col_t *c, const dg_vec_t *v, uint64_t row,
                             dg_buf_t *out)
{
    dg_buf_t *s = c->scratch;
    dg_buf_reset(s);
    s->cap = out->cap; /* a nested value cannot be larger than the response may be */
    s->over_rc = out->over_rc;
    dg_rc_t rc = c->children[0].var(&c->children[0], v, row, s);
    if (rc != DG_OK) {
        return rc;
    }
    return dg_enc__text_field(out, c->mode, s->p ? s->p : "", s->len);
}

/* ---- planning ---- */

static bool is_nested(dg_type_id_t id)
{
    return id == DG_TYPE_LIST || id == DG_TYPE_STRUCT || id == DG_TYPE_MAP ||
           id == DG_TYPE_UNION || id == DG_TYPE_ARRAY;
}

static dg_type_id_t decimal_storage(const dg_type_t *t)
{
    if (t->storage == DG_TYPE_SMALLINT || t->storage == DG_TYPE_INTEGER ||
        t->storage == DG_TYPE_BIGINT || t->storage == DG_TYPE_HUGEINT) {
        return t->storage;
    }
    /* DuckDB's rule when the producer left storage unset. */
    return t->width <= 4 ? DG_TYPE_SMALLINT
           : t->width <= 9 ? DG_TYPE_INTEGER
           : t->width <= 18 ? DG_TYPE_BIGINT
                            : DG_TYPE_HUGEINT;
}

static dg_type_id_t enum_storage(const dg_type_t *t)
{
    if (t->storage == DG_TYPE_UTINYINT || t->storage == DG_TYPE_USMALLINT ||
        t->storage == DG_TYPE_UINTEGER) {
        return t->storage;
    }
    return t->n_enum <= 0xFF ? DG_TYPE_UTINYINT
           : t->n_enum <= 0xFFFF ? DG_TYPE_USMALLINT
                                 : DG_TYPE_UINTEGER;
}

/* Text (CSV/TSV, and map-key) writer for fixed-width scalar types; NULL for the others. */
static dg_enc__fix_fn text_fix(const dg_type_t *t)
{
    switch (t->id) {
    case DG_TYPE_BOOLEAN: return t_bool;
    case DG_TYPE_TINYINT: return t_i8;
    case DG_TYPE_SMALLINT: return t_i16;
    case DG_TYPE_INTEGER: return t_i32;
    case DG_TYPE_BIGINT: return t_i64;
    case DG_TYPE_UTINYINT: return t_u8;
    case DG_TYPE_USMALLINT: return t_u16;
    case DG_TYPE_UINTEGER: return t_u32;
    case DG_TYPE_UBIGINT: return t_u64;
    case DG_TYPE_HUGEINT: return t_i128;
    case DG_TYPE_UHUGEINT: return t_u128;
    case DG_TYPE_FLOAT: return t_f32;
    case DG_TYPE_DOUBLE: return t_f64;
    case DG_TYPE_DATE: return t_date;
    case DG_TYPE_TIMESTAMP: return t_ts_us;
    case DG_TYPE_TIMESTAMP_S: return t_ts_s;
    case DG_TYPE_TIMESTAMP_MS: return t_ts_ms;
    case DG_TYPE_TIMESTAMP_NS: return t_ts_ns;
    case DG_TYPE_TIMESTAMP_TZ: return t_ts_tz;
    case DG_TYPE_TIME: return t_time;
    case DG_TYPE_TIME_NS: return t_time_ns;
    case DG_TYPE_TIME_TZ: return t_time_tz;
    case DG_TYPE_INTERVAL: return t_interval;
    case DG_TYPE_UUID: return t_uuid;
    case DG_TYPE_DECIMAL:
        switch (decimal_storage(t)) {
        case DG_TYPE_SMALLINT: return t_dec16;
        case DG_TYPE_INTEGER: return t_dec32;
        case DG_TYPE_BIGINT: return t_dec64;
        default: return t_dec128;
        }
    default: return NULL;
    }
}

/* JSON writer for fixed-width scalar types; NULL for the others. */
static dg_enc__fix_fn json_fix(const dg_type_t *t)
{
    switch (t->id) {
    case DG_TYPE_BOOLEAN: return t_bool;
    case DG_TYPE_TINYINT: return t_i8;
    case DG_TYPE_SMALLINT: return t_i16;
    case DG_TYPE_INTEGER: return t_i32;
    case DG_TYPE_BIGINT: return j_i64;
    case DG_TYPE_UTINYINT: return t_u8;
    case DG_TYPE_USMALLINT: return t_u16;
    case DG_TYPE_UINTEGER: return t_u32;
    case DG_TYPE_UBIGINT: return j_u64;
    case DG_TYPE_HUGEINT: return j_i128;
    case DG_TYPE_UHUGEINT: return j_u128;
    case DG_TYPE_FLOAT: return j_f32;
    case DG_TYPE_DOUBLE: return j_f64;
    case DG_TYPE_DATE: return j_date;
    case DG_TYPE_TIMESTAMP: return j_ts_us;
    case DG_TYPE_TIMESTAMP_S: return j_ts_s;
    case DG_TYPE_TIMESTAMP_MS: return j_ts_ms;
    case DG_TYPE_TIMESTAMP_NS: return j_ts_ns;
    case DG_TYPE_TIMESTAMP_TZ: return j_ts_tz;
    case DG_TYPE_TIME: return j_time;
    case DG_TYPE_TIME_NS: return j_time_ns;
    case DG_TYPE_TIME_TZ: return j_time_tz;
    case DG_TYPE_INTERVAL: return j_interval;
    case DG_TYPE_UUID: return j_uuid;
    case DG_TYPE_DECIMAL:
        switch (decimal_storage(t)) {
        case DG_TYPE_SMALLINT: return j_dec16;
        case DG_TYPE_INTEGER: return j_dec32;
        case DG_TYPE_BIGINT: return j_dec64;
        default: return j_dec128;
        }
    default: return NULL;
    }
}

static dg_rc_t plan_children(dg_enc__col_t *c, size_t n, const dg_type_t *const *types,
                             dg_enc__mode_t mode)
{
    c->children = calloc(n ? n : 1, sizeof *c->children);
    if (!c->children) {
        return DG_NOMEM;
    }
    c->n_children = n;
    for (size_t i = 0; i < n; i++) {
        dg_rc_t rc = dg_enc__plan(&c->children[i], types[i], mode, c->scratch);
        if (rc != DG_OK) {
            return rc;
        }
    }
    return DG_OK;
}

static dg_rc_t plan_struct_keys(dg_enc__col_t *c, const dg_type_t *t)
{
    c->keys = calloc(c->n_children ? c->n_children : 1, sizeof *c->keys);
    c->key_lens = calloc(c->n_children ? c->n_children : 1, sizeof *c->key_lens);
    if (!c->keys || !c->key_lens) {
        return DG_NOMEM;
    }
    for (size_t i = 0; i < c->n_children; i++) {
        const char *name = t->child_names && t->child_names[i] ? t->child_names[i] : "";
        dg_buf_t b;
        dg_buf_init(&b, 0);
        dg_rc_t rc = dg_enc__json_str(&b, name, strlen(name));
        if (rc == DG_OK) {
            rc = dg_buf_putc(&b, ':');
        }
        if (rc != DG_OK) {
            dg_buf_free(&b);
            return rc;
        }
        c->keys[i] = dg_buf_take(&b, &c->key_lens[i]);
        if (!c->keys[i]) {
            return DG_NOMEM;
        }
    }
    return DG_OK;
}

static dg_rc_t plan_json_nested(dg_enc__col_t *c, const dg_type_t *t)
{
    dg_rc_t rc = DG_OK;
    switch (t->id) {
    case DG_TYPE_LIST:
    case DG_TYPE_ARRAY:
        if (t->n_children < 1) {
            return DG_INTERNAL;
        }
        c->var = t->id == DG_TYPE_LIST ? v_list : v_array;
        return plan_children(c, 1, t->children, DG_ENC__JSON);
    case DG_TYPE_STRUCT:
        c->var = v_struct;
        rc = plan_children(c, t->n_children, t->children, DG_ENC__JSON);
        return rc == DG_OK ? plan_struct_keys(c, t) : rc;
    case DG_TYPE_UNION:
        c->var = v_union;
        return plan_children(c, t->n_children, t->children, DG_ENC__JSON);
    case DG_TYPE_MAP: {
        /* Accept both shapes a producer may give: MAP(STRUCT(key, value)) or MAP(key, value). */
        const dg_type_t *const *kv = t->children;
        if (t->n_children == 1 && t->children[0]->n_children >= 2) {
            kv = t->children[0]->children;
        } else if (t->n_children < 2) {
            return DG_INTERNAL;
        }
        c->var = v_map;
        rc = plan_children(c, 2, kv, DG_ENC__JSON);
        if (rc != DG_OK) {
            return rc;
        }
        const dg_type_t *kt = kv[0];
        dg_enc__fix_fn tf = text_fix(kt);
        bool json_is_string = kt->id == DG_TYPE_VARCHAR || kt->id == DG_TYPE_BLOB ||
                              kt->id == DG_TYPE_BIT || kt->id == DG_TYPE_BIGNUM ||
                              kt->id == DG_TYPE_ENUM;
        if (is_nested(kt->id)) {
            c->key_kind = DG_ENC__KEY_NESTED;
        } else if (tf && (json_fix(kt) == tf || kt->id == DG_TYPE_BIGINT ||
                          kt->id == DG_TYPE_UBIGINT || kt->id == DG_TYPE_FLOAT ||
                          kt->id == DG_TYPE_DOUBLE)) {
            /* Numbers and booleans: their text, quoted (never needs escaping). */
            c->key_kind = DG_ENC__KEY_TEXT;
            c->key_text = tf;
        } else if (tf || json_is_string) {
            c->key_kind = DG_ENC__KEY_STRING; /* the JSON form is already a string */
        } else {
            c->key_kind = DG_ENC__KEY_TEXT; /* SQLNULL and the like: "" */
            c->key_text = t_null;
        }
        return DG_OK;
    }
    default:
        return DG_INTERNAL;
    }
}

dg_rc_t dg_enc__plan(dg_enc__col_t *c, const dg_type_t *t, dg_enc__mode_t mode, dg_buf_t *scratch)
{
    memset(c, 0, sizeof *c);
    c->type = t;
    c->mode = mode;
    c->scratch = scratch;
    dg_rc_t rc = DG_OK;
    if (mode == DG_ENC__JSON) {
        c->fix = json_fix(t);
    } else {
        c->fix = text_fix(t);
    }
    if (c->fix) {
        return DG_OK;
    }
    switch (t->id) {
    case DG_TYPE_VARCHAR: c->var = v_varchar; break;
    case DG_TYPE_BLOB: c->var = v_blob; break;
    case DG_TYPE_BIT: c->var = v_bit; break;
    case DG_TYPE_BIGNUM: c->var = v_bignum; break;
    case DG_TYPE_ENUM:
        switch (enum_storage(t)) {
        case DG_TYPE_UTINYINT: c->var = v_enum8; break;
        case DG_TYPE_USMALLINT: c->var = v_enum16; break;
        default: c->var = v_enum32; break;
        }
        break;
    case DG_TYPE_UNION:
        if (mode != DG_ENC__JSON) {
            /* CSV/TSV: the active member's own text ("s", not the JSON "\"s\""). */
            c->var = v_union;
            rc = plan_children(c, t->n_children, t->children, mode);
            break;
        }
        rc = plan_json_nested(c, t);
        break;
    case DG_TYPE_LIST:
    case DG_TYPE_ARRAY:
    case DG_TYPE_STRUCT:
    case DG_TYPE_MAP:
        if (mode == DG_ENC__JSON) {
            rc = plan_json_nested(c, t);
        } else {
            /* One JSON child plan renders the value; this node quotes it as a field. */
            c->var = v_nested_text;
            c->children = calloc(1, sizeof *c->children);
            if (!c->children) {
                rc = DG_NOMEM;
                break;
            }
            c->n_children = 1;
            rc = dg_enc__plan(&c->children[0], t, DG_ENC__JSON, NULL);
        }
        break;
    default:
        /* SQLNULL, and types a result never carries (ANY, literals, INVALID): always NULL. */
        c->fix = mode == DG_ENC__JSON ? j_null : t_null;
        break;
    }
    if (rc != DG_OK) {
        dg_enc__plan_free(c);
    }
    return rc;
}

void dg_enc__plan_free(dg_enc__col_t *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; c->children && i < c->n_children; i++) {
        dg_enc__plan_free(&c->children[i]);
    }
    if (c->keys) {
        for (size_t i = 0; i < c->n_children; i++) {
            free(c->keys[i]);
        }
    }
    free(c->keys);
    free(c->key_lens);
    free(c->children);
    c->keys = NULL;
    c->key_lens = NULL;
    c->children = NULL;
    c->n_children = 0;
}
