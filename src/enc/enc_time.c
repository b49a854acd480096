/* Date, time, interval and UUID text for the encoders (ISO 8601; rules in docs/formats.md).
 *
 * Values arrive in DuckDB's storage: days / units since 1970-01-01 (negative before 1970, so all
 * splitting uses floor division), TIME_TZ packed as micros << 24 | (57599 - offset_seconds),
 * UUID as a 128-bit integer with the top bit flipped. DuckDB's infinity sentinels (INT32_MAX /
 * -INT32_MAX for dates, INT64_MAX / -INT64_MAX for timestamps) print as infinity / -infinity.
 * Years 0..9999 take four digits; later years get a '+' and all their digits, earlier ones a
 * '-' (astronomical numbering: year 0 is 1 BC). Fractions are written only when non-zero,
 * without trailing zeros. Pure functions, thread-safe. */
#include <string.h>

#include "enc/enc_int.h"

/* Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's civil_from_days). */
#define ERA_SHIFT 16000 /* 400-year eras added so every DATE is non-negative */

static void civil_from_days(int64_t z, int64_t *out_y, unsigned *out_m, unsigned *out_d)
{
    /* Fast path: C. Neri and L. Schneider, "Euclidean affine functions and their application to
     * calendar algorithms" (2022), 32-bit form, valid here for years -32800..~2.9M. */
    if (z >= -12699422 && z < 1000000000) {
        const uint32_t nu = (uint32_t)(z + 12699422); /* 719468 + 146097 * 82 */
        const uint32_t n1 = 4 * nu + 3;
        const uint32_t c = n1 / 146097;
        const uint32_t nc = n1 % 146097 / 4;
        const uint32_t n2 = 4 * nc + 3;
        const uint64_t p2 = (uint64_t)2939745 * n2;
        const uint32_t zz = (uint32_t)(p2 >> 32);
        const uint32_t ny = (uint32_t)p2 / 2939745 / 4;
        const uint32_t n3 = 2141 * ny + 197913;
        const uint32_t j = ny >= 306;
        *out_y = (int64_t)(100 * c + zz) - 400 * 82 + j;
        *out_m = j ? n3 / 65536 - 12 : n3 / 65536;
        *out_d = n3 % 65536 / 2141 + 1;
        return;
    }
    z += 719468;
    int64_t era;
    unsigned doe;
    if (z >= -(int64_t)ERA_SHIFT * 146097 && z < INT64_MAX / 2) {
        /* Unsigned division by a constant is a multiply; the signed path below is slower. */
        uint64_t zu = (uint64_t)(z + (int64_t)ERA_SHIFT * 146097);
        uint64_t eu = zu / 146097;
        doe = (unsigned)(zu - eu * 146097);
        era = (int64_t)eu - ERA_SHIFT;
    } else {
        era = (z >= 0 ? z : z - 146096) / 146097;
        doe = (unsigned)(z - era * 146097);
    }
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    *out_y = (int64_t)yoe + era * 400 + (m <= 2 ? 1 : 0);
    *out_m = m;
    *out_d = d;
}

static char *put2(unsigned v, char *o)
{
    o[0] = (char)('0' + v / 10);
    o[1] = (char)('0' + v % 10);
    return o + 2;
}

static char *put_ymd(int64_t days, char *o)
{
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    if (y >= 0 && y <= 9999) {
        dg_enc__u64_fixed((uint64_t)y, 4, o);
        o += 4;
    } else if (y > 9999) {
        *o++ = '+';
        o = dg_enc__u64((uint64_t)y, o);
    } else {
        *o++ = '-';
        uint64_t a = 0 - (uint64_t)y;
        if (a < 10000) {
            dg_enc__u64_fixed(a, 4, o);
            o += 4;
        } else {
            o = dg_enc__u64(a, o);
        }
    }
    *o++ = '-';
    o = put2(m, o);
    *o++ = '-';
    return put2(d, o);
}

/* Fraction of `digits` digits, written as '.' + digits without trailing zeros; nothing for 0. */
static inline char *put_frac(uint64_t frac, unsigned digits, char *o)
{
    if (frac == 0 || digits == 0) {
        return o;
    }
    while (frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    *o++ = '.';
    dg_enc__u64_fixed(frac, digits, o);
    return o + digits;
}

static const int64_t unit_per_sec[10] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                         100000000, 1000000000};

/* HH:MM:SS[.f] for a non-negative time of day in units of 10^-digits s (hours may pass 24).
 * Always inlined into callers with a constant `digits`, so every division is by a constant. */
static inline __attribute__((always_inline)) char *put_hms(uint64_t t, unsigned digits, char *o)
{
    uint64_t ups = (uint64_t)unit_per_sec[digits];
    uint64_t secs = t / ups;
    uint64_t frac = t % ups;
    uint64_t h = secs / 3600;
    if (h < 100) {
        o = put2((unsigned)h, o);
    } else {
        o = dg_enc__u64(h, o);
    }
    *o++ = ':';
    unsigned ms = (unsigned)(secs % 3600);
    o = put2(ms / 60, o);
    *o++ = ':';
    o = put2(ms % 60, o);
    return put_frac(frac, digits, o);
}

static char *put_lit(const char *s, char *o)
{
    size_t n = strlen(s);
    memcpy(o, s, n);
    return o + n;
}

char *dg_enc__date(int32_t days, char *o)
{
    if (days == INT32_MAX) {
        return put_lit("infinity", o);
    }
    if (days == -INT32_MAX) {
        return put_lit("-infinity", o);
    }
    return put_ymd(days, o);
}

static inline __attribute__((always_inline)) char *timestamp(int64_t v, unsigned digits,
                                                            bool tz, char *o)
{
    if (v == INT64_MAX) {
        return put_lit("infinity", o);
    }
    if (v == -INT64_MAX) {
        return put_lit("-infinity", o);
    }
    const int64_t per_day = 86400 * unit_per_sec[digits];
    /* Floor division without overflow, also for INT64_MIN. */
    int64_t days = v / per_day;
    int64_t rem = v % per_day;
    if (rem < 0) {
        rem += per_day;
        days--;
    }
    o = put_ymd(days, o);
    *o++ = 'T';
    o = put_hms((uint64_t)rem, digits, o);
    if (tz) {
        *o++ = 'Z';
    }
    return o;
}

char *dg_enc__timestamp(int64_t v, unsigned digits, bool tz, char *o)
{
    switch (digits) {
    case 0: return timestamp(v, 0, false, o);
    case 3: return timestamp(v, 3, false, o);
    case 9: return timestamp(v, 9, false, o);
    default: return tz ? timestamp(v, 6, true, o) : timestamp(v, 6, false, o);
    }
}

char *dg_enc__time(int64_t v, unsigned digits, char *o)
{
    uint64_t u = (uint64_t)v;
    if (v < 0) { /* not produced by DuckDB; printed rather than wrapped */
        *o++ = '-';
        u = 0 - u;
    }
    return digits == 9 ? put_hms(u, 9, o) : put_hms(u, 6, o);
}

char *dg_enc__time_tz(uint64_t bits, char *o)
{
    uint64_t micros = bits >> 24;
    int32_t offset = 57599 - (int32_t)(bits & 0xFFFFFF);
    o = put_hms(micros, 6, o);
    uint32_t a;
    if (offset < 0) {
        *o++ = '-';
        a = (uint32_t)-offset;
    } else {
        *o++ = '+';
        a = (uint32_t)offset;
    }
    o = put2(a / 3600 % 100, o);
    *o++ = ':';
    o = put2(a / 60 % 60, o);
    if (a % 60) {
        *o++ = ':';
        o = put2(a % 60, o);
    }
    return o;
}

/* One signed ISO 8601 component ("-3D"); nothing when zero. */
static char *put_part(int64_t v, char unit, char *o)
{
    if (v == 0) {
        return o;
    }
    o = dg_enc__i64(v, o);
    *o++ = unit;
    return o;
}

char *dg_enc__interval(const dg_interval_t *iv, char *o)
{
    if (iv->months == 0 && iv->days == 0 && iv->micros == 0) {
        return put_lit("PT0S", o);
    }
    *o++ = 'P';
    /* C division truncates toward zero, so every component carries the sign of its field,
     * as in PostgreSQL's iso_8601 interval style. */
    o = put_part(iv->months / 12, 'Y', o);
    o = put_part(iv->months % 12, 'M', o);
    o = put_part(iv->days, 'D', o);
    if (iv->micros == 0) {
        return o;
    }
    *o++ = 'T';
    int64_t us = iv->micros;
    uint64_t a = us < 0 ? 0 - (uint64_t)us : (uint64_t)us;
    const char *sign = us < 0 ? "-" : "";
    uint64_t h = a / 3600000000ull;
    uint64_t m = a / 60000000ull % 60;
    uint64_t s = a / 1000000ull % 60;
    uint64_t f = a % 1000000ull;
    if (h) {
        o = put_lit(sign, o);
        o = dg_enc__u64(h, o);
        *o++ = 'H';
    }
    if (m) {
        o = put_lit(sign, o);
        o = dg_enc__u64(m, o);
        *o++ = 'M';
    }
    if (s || f) {
        o = put_lit(sign, o);
        o = dg_enc__u64(s, o);
        o = put_frac(f, 6, o);
        *o++ = 'S';
    }
    return o;
}

char *dg_enc__uuid(const dg_hugeint_t *h, char *o)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t hi = (uint64_t)h->upper ^ (1ull << 63);
    uint64_t lo = h->lower;
    for (int i = 0; i < 32; i++) {
        uint64_t w = i < 16 ? hi : lo;
        int shift = 60 - 4 * (i & 15);
        if (i == 8 || i == 12 || i == 16 || i == 20) {
            *o++ = '-';
        }
        *o++ = hex[(w >> shift) & 15];
    }
    return o;
}
