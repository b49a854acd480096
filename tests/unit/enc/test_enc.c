/* Unit tests for src/enc: every value rule (JSON and CSV/TSV text), exact bytes of each format,
 * output caps, and the shortest round-trip double/float formatter against strtod/strtof on
 * random bit patterns. Batches are built by hand in DuckDB's flat layout (core/batch.h).
 * DG_ENC_RANDOM=N overrides the number of random doubles/floats (default 1,000,000 each). */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "enc/enc.h"

/* ---- helpers ---- */

__extension__ typedef __int128 i128_t;

static dg_strval_t sv(const char *s, uint32_t len)
{
    dg_strval_t v;
    memset(&v, 0, sizeof v);
    v.value.inlined.length = len;
    if (len <= 12) {
        memcpy(v.value.inlined.inlined, s, len);
    } else {
        memcpy(v.value.pointer.prefix, s, 4);
        v.value.pointer.ptr = s;
    }
    return v;
}

#define SV(lit) sv(lit, (uint32_t)(sizeof(lit) - 1))

static void assert_json_valid(const char *s, size_t len)
{
    json_error_t jerr;
    json_t *j = json_loadb(s, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!j) {
        fprintf(stderr, "invalid JSON (%s at %d): %.*s\n", jerr.text, jerr.position, (int)len, s);
    }
    assert_non_null(j);
    json_decref(j);
}

/* JSON of one value, checked to parse. */
static void check_json(const dg_vec_t *v, uint64_t row, const char *want)
{
    dg_buf_t b;
    dg_buf_init(&b, 0);
    assert_int_equal(dg_enc_json_value(v, row, &b), DG_OK);
    if (strlen(want) != b.len || memcmp(b.p, want, b.len) != 0) {
        fprintf(stderr, "row %llu: want %s got %.*s\n", (unsigned long long)row, want, (int)b.len,
                b.p);
    }
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.p, want, b.len);
    assert_json_valid(b.p, b.len);
    dg_buf_free(&b);
}

/* Runs a whole encoder over the given batches; returns malloc'd output or NULL on error. */
static char *run_enc(dg_format_t fmt, const dg_schema_t *schema, const dg_batch_t *batches,
                     size_t n_batches, size_t cap, dg_rc_t *out_rc, size_t *out_len)
{
    dg_enc_t *e = NULL;
    dg_enc_opts_t opts = {.query_id = "q-1"};
    dg_rc_t rc = dg_enc_new(fmt, schema, &opts, &e);
    assert_int_equal(rc, DG_OK);
    dg_buf_t b;
    dg_buf_init(&b, cap);
    rc = dg_enc_begin(e, &b);
    uint64_t rows = 0;
    for (size_t i = 0; i < n_batches && rc == DG_OK; i++) {
        rc = dg_enc_batch(e, &batches[i], batches[i].n_rows, &b);
        rows += batches[i].n_rows;
    }
    if (rc == DG_OK) {
        dg_enc_summary_t sum = {.rows = rows, .bytes = b.len, .elapsed_ms = 1.5, .queue_ms = 0.25,
                                .execute_ms = 1, .encode_ms = 0.125};
        rc = dg_enc_end(e, &sum, &b);
    } else {
        /* After a failure only dg_enc_fail/free are allowed; every later call reports it. */
        assert_int_equal(dg_enc_batch(e, &batches[0], 1, &b), rc);
        (void)dg_enc_fail(e, rc, "cap", &b);
    }
    assert_true(b.len <= (cap ? cap : SIZE_MAX));
    dg_enc_free(e);
    *out_rc = rc;
    return dg_buf_take(&b, out_len);
}

static void check_enc(dg_format_t fmt, const dg_schema_t *schema, const dg_batch_t *batches,
                      size_t n, const char *want)
{
    dg_rc_t rc;
    size_t len;
    char *got = run_enc(fmt, schema, batches, n, 0, &rc, &len);
    assert_int_equal(rc, DG_OK);
    if (strlen(want) != len || memcmp(got, want, len) != 0) {
        fprintf(stderr, "format %s\nwant: %s\ngot:  %.*s\n", dg_format_name(fmt), want, (int)len,
                got);
    }
    assert_int_equal(len, strlen(want));
    assert_memory_equal(got, want, len);
    free(got);
}

/* ---- types ---- */

static const dg_type_t t_bool = {.id = DG_TYPE_BOOLEAN, .name = "BOOLEAN"};
static const dg_type_t t_i8 = {.id = DG_TYPE_TINYINT, .name = "TINYINT"};
static const dg_type_t t_i16 = {.id = DG_TYPE_SMALLINT, .name = "SMALLINT"};
static const dg_type_t t_i32 = {.id = DG_TYPE_INTEGER, .name = "INTEGER"};
static const dg_type_t t_i64 = {.id = DG_TYPE_BIGINT, .name = "BIGINT"};
static const dg_type_t t_u8 = {.id = DG_TYPE_UTINYINT, .name = "UTINYINT"};
static const dg_type_t t_u32 = {.id = DG_TYPE_UINTEGER, .name = "UINTEGER"};
static const dg_type_t t_u64 = {.id = DG_TYPE_UBIGINT, .name = "UBIGINT"};
static const dg_type_t t_f32 = {.id = DG_TYPE_FLOAT, .name = "FLOAT"};
static const dg_type_t t_f64 = {.id = DG_TYPE_DOUBLE, .name = "DOUBLE"};
static const dg_type_t t_i128 = {.id = DG_TYPE_HUGEINT, .name = "HUGEINT"};
static const dg_type_t t_u128 = {.id = DG_TYPE_UHUGEINT, .name = "UHUGEINT"};
static const dg_type_t t_str = {.id = DG_TYPE_VARCHAR, .name = "VARCHAR"};
static const dg_type_t t_blob = {.id = DG_TYPE_BLOB, .name = "BLOB"};
static const dg_type_t t_uuid = {.id = DG_TYPE_UUID, .name = "UUID"};
static const dg_type_t t_date = {.id = DG_TYPE_DATE, .name = "DATE"};
static const dg_type_t t_ts = {.id = DG_TYPE_TIMESTAMP, .name = "TIMESTAMP"};
static const dg_type_t t_ts_s = {.id = DG_TYPE_TIMESTAMP_S, .name = "TIMESTAMP_S"};
static const dg_type_t t_ts_ms = {.id = DG_TYPE_TIMESTAMP_MS, .name = "TIMESTAMP_MS"};
static const dg_type_t t_ts_ns = {.id = DG_TYPE_TIMESTAMP_NS, .name = "TIMESTAMP_NS"};
static const dg_type_t t_ts_tz = {.id = DG_TYPE_TIMESTAMP_TZ, .name = "TIMESTAMP WITH TIME ZONE"};
static const dg_type_t t_time = {.id = DG_TYPE_TIME, .name = "TIME"};
static const dg_type_t t_time_ns = {.id = DG_TYPE_TIME_NS, .name = "TIME_NS"};
static const dg_type_t t_time_tz = {.id = DG_TYPE_TIME_TZ, .name = "TIME WITH TIME ZONE"};
static const dg_type_t t_interval = {.id = DG_TYPE_INTERVAL, .name = "INTERVAL"};
static const dg_type_t t_bit = {.id = DG_TYPE_BIT, .name = "BIT"};
static const dg_type_t t_bignum = {.id = DG_TYPE_BIGNUM, .name = "BIGNUM"};
static const dg_type_t t_null = {.id = DG_TYPE_SQLNULL, .name = "\"NULL\""};

/* ---- scalar values ---- */

static void test_integers(void **state)
{
    (void)state;
    int8_t i8[] = {-128, 127, 0};
    dg_vec_t v8 = {.type = &t_i8, .data = i8};
    check_json(&v8, 0, "-128");
    check_json(&v8, 1, "127");
    check_json(&v8, 2, "0");
    int16_t i16[] = {-32768};
    dg_vec_t v16 = {.type = &t_i16, .data = i16};
    check_json(&v16, 0, "-32768");
    int32_t i32[] = {INT32_MIN, INT32_MAX, 1000000};
    dg_vec_t v32 = {.type = &t_i32, .data = i32};
    check_json(&v32, 0, "-2147483648");
    check_json(&v32, 1, "2147483647");
    check_json(&v32, 2, "1000000");
    const int64_t p53 = INT64_C(9007199254740992);
    int64_t i64[] = {p53, p53 + 1, -p53, -p53 - 1, INT64_MIN, INT64_MAX, p53 - 1, -12};
    dg_vec_t v64 = {.type = &t_i64, .data = i64};
    check_json(&v64, 0, "9007199254740992");
    check_json(&v64, 1, "\"9007199254740993\"");
    check_json(&v64, 2, "-9007199254740992");
    check_json(&v64, 3, "\"-9007199254740993\"");
    check_json(&v64, 4, "\"-9223372036854775808\"");
    check_json(&v64, 5, "\"9223372036854775807\"");
    check_json(&v64, 6, "9007199254740991");
    check_json(&v64, 7, "-12");
    uint8_t u8[] = {255};
    dg_vec_t vu8 = {.type = &t_u8, .data = u8};
    check_json(&vu8, 0, "255");
    uint32_t u32[] = {UINT32_MAX};
    dg_vec_t vu32 = {.type = &t_u32, .data = u32};
    check_json(&vu32, 0, "4294967295");
    uint64_t u64[] = {UINT64_MAX, (uint64_t)p53, (uint64_t)p53 + 1, 0};
    dg_vec_t vu64 = {.type = &t_u64, .data = u64};
    check_json(&vu64, 0, "\"18446744073709551615\"");
    check_json(&vu64, 1, "9007199254740992");
    check_json(&vu64, 2, "\"9007199254740993\"");
    check_json(&vu64, 3, "0");

    dg_hugeint_t h[] = {{0, INT64_MIN}, {UINT64_MAX, INT64_MAX}, {0, 0}, {UINT64_MAX, -1},
                        {0, 1}, {10000000000000000000ull, 0}};
    dg_vec_t vh = {.type = &t_i128, .data = h};
    check_json(&vh, 0, "\"-170141183460469231731687303715884105728\"");
    check_json(&vh, 1, "\"170141183460469231731687303715884105727\"");
    check_json(&vh, 2, "\"0\"");
    check_json(&vh, 3, "\"-1\"");
    check_json(&vh, 4, "\"18446744073709551616\"");
    check_json(&vh, 5, "\"10000000000000000000\"");
    dg_uhugeint_t uh[] = {{UINT64_MAX, UINT64_MAX}, {5, 0}};
    dg_vec_t vuh = {.type = &t_u128, .data = uh};
    check_json(&vuh, 0, "\"340282366920938463463374607431768211455\"");
    check_json(&vuh, 1, "\"5\"");

    bool b[] = {true, false};
    dg_vec_t vb = {.type = &t_bool, .data = b};
    check_json(&vb, 0, "true");
    check_json(&vb, 1, "false");
}

static void test_decimal(void **state)
{
    (void)state;
    dg_type_t d4 = {.id = DG_TYPE_DECIMAL, .name = "DECIMAL(4,1)", .width = 4, .scale = 1,
                    .storage = DG_TYPE_SMALLINT};
    int16_t v16[] = {-1, 9999, 0};
    dg_vec_t a = {.type = &d4, .data = v16};
    check_json(&a, 0, "\"-0.1\"");
    check_json(&a, 1, "\"999.9\"");
    check_json(&a, 2, "\"0.0\"");
    dg_type_t d9 = {.id = DG_TYPE_DECIMAL, .name = "DECIMAL(9,0)", .width = 9, .scale = 0,
                    .storage = DG_TYPE_INTEGER};
    int32_t v32[] = {-42};
    dg_vec_t b = {.type = &d9, .data = v32};
    check_json(&b, 0, "\"-42\"");
    dg_type_t d18 = {.id = DG_TYPE_DECIMAL, .name = "DECIMAL(18,3)", .width = 18, .scale = 3};
    int64_t v64[] = {1234567, -5, INT64_MIN, 999999999999999999};
    dg_vec_t c = {.type = &d18, .data = v64};
    check_json(&c, 0, "\"1234.567\"");
    check_json(&c, 1, "\"-0.005\"");
    check_json(&c, 2, "\"-9223372036854775.808\"");
    check_json(&c, 3, "\"999999999999999.999\"");
    /* Every int64 scale takes its own path: compare with a reference built digit by digit. */
    for (uint8_t sc = 0; sc <= 18; sc++) {
        dg_type_t ds = {.id = DG_TYPE_DECIMAL, .name = "DECIMAL", .width = 18, .scale = sc,
                        .storage = DG_TYPE_BIGINT};
        int64_t vals[] = {-123456789012345678, 7};
        dg_vec_t vd = {.type = &ds, .data = vals};
        for (int r = 0; r < 2; r++) {
            char digits[40], want[48];
            unsigned long long mag = (unsigned long long)(vals[r] < 0 ? -vals[r] : vals[r]);
            snprintf(digits, sizeof digits, "%0*llu", sc + 1, mag);
            size_t nd = strlen(digits);
            snprintf(want, sizeof want, "\"%s%.*s%s%s\"", vals[r] < 0 ? "-" : "",
                     (int)(nd - sc), digits, sc ? "." : "", digits + nd - sc);
            check_json(&vd, (uint64_t)r, want);
        }
    }
    dg_type_t d38 = {.id = DG_TYPE_DECIMAL, .name = "DECIMAL(38,10)", .width = 38, .scale = 10,
                     .storage = DG_TYPE_HUGEINT};
    /* 123456789012345678900123456789 and 10^38 - 1, built from 64-bit parts. */
    i128_t big = (i128_t)123456789012345678ll * 1000000000000ll + 900123456789ll;
    i128_t nb = -big;
    i128_t max38 = (i128_t)99999999999999999ll * (i128_t)1000000000000000000ull * 1000 +
                   (i128_t)999999999999999999ull * 1000 + 999;
    i128_t vals[] = {nb, -5000000000, -max38, 0};
    dg_hugeint_t hv[4];
    for (int i = 0; i < 4; i++) {
        hv[i].lower = (uint64_t)vals[i];
        hv[i].upper = (int64_t)(vals[i] >> 64);
    }
    dg_vec_t d = {.type = &d38, .data = hv};
    check_json(&d, 0, "\"-12345678901234567890.0123456789\"");
    check_json(&d, 1, "\"-0.5000000000\"");
    check_json(&d, 2, "\"-9999999999999999999999999999.9999999999\"");
    check_json(&d, 3, "\"0.0000000000\"");
}

static void test_floats(void **state)
{
    (void)state;
    double big[] = {1e17, 1e18, 123456789012345680.0, 1e-6, 1.25e-6, 9.5e-7,
                    999999999999999900.0};
    const char *bigw[] = {"100000000000000000", "1e+18", "123456789012345680", "0.000001",
                          "0.00000125", "9.5e-7", "999999999999999900"};
    dg_vec_t vbig = {.type = &t_f64, .data = big};
    for (uint64_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        check_json(&vbig, i, bigw[i]);
    }
    double d[] = {0.1, 1e23, 5e-324, DBL_MAX, -0.0, 100, 1e21, 1e20, 1.5e-7, 0.000001,
                  123.456, NAN, INFINITY, -INFINITY, DBL_MIN, 0.0, 9007199254740993.0, -2.5};
    const char *want[] = {"0.1", "1e+23", "5e-324", "1.7976931348623157e+308", "-0", "100",
                          "1e+21", "1e+20", "1.5e-7", "0.000001", "123.456",
                          "null", "null", "null", "2.2250738585072014e-308", "0",
                          "9007199254740992", "-2.5"};
    dg_vec_t v = {.type = &t_f64, .data = d};
    for (uint64_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        check_json(&v, i, want[i]);
    }
    float f[] = {0.1f, 1.0f / 3, 16777216.0f, 1e-45f, FLT_MAX, NAN, -1.5f, 3e10f};
    const char *fwant[] = {"0.1", "0.33333334", "16777216", "1e-45", "3.4028235e+38",
                           "null", "-1.5", "30000000000"};
    dg_vec_t vf = {.type = &t_f32, .data = f};
    for (uint64_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        check_json(&vf, i, fwant[i]);
    }
    char buf[40];
    assert_int_equal(dg_enc_double(NAN, buf), 3);
    assert_string_equal(buf, "nan");
    dg_enc_double(-INFINITY, buf);
    assert_string_equal(buf, "-inf");
    dg_enc_double(0.3, buf);
    assert_string_equal(buf, "0.3");
}

/* Significant digits in a formatted number. */
static int sig_digits(const char *s)
{
    char m[64];
    size_t n = 0;
    for (const char *p = s; *p && *p != 'e' && n < sizeof m - 1; p++) {
        if (*p >= '0' && *p <= '9') {
            m[n++] = *p;
        }
    }
    m[n] = 0;
    size_t a = 0;
    while (a < n && m[a] == '0') {
        a++;
    }
    while (n > a && m[n - 1] == '0') {
        n--;
    }
    return n > a ? (int)(n - a) : 1;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    /* splitmix64: deterministic, so a failure reproduces. */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Round trip + shortness of one double. full: scan every shorter precision. */
static void check_double(double d, bool full)
{
    char buf[40], tmp[64];
    size_t n = dg_enc_double(d, buf);
    assert_true(n <= 32);
    double back = strtod(buf, NULL);
    if (memcmp(&back, &d, sizeof d) != 0) {
        fprintf(stderr, "round trip failed: %.17g -> %s\n", d, buf);
        fail();
    }
    int digits = sig_digits(buf);
    /* No shorter correctly rounded decimal may read back to d. With a full scan every shorter
     * precision is tried; otherwise digits-1 only, which decides it except at powers of two. */
    for (int p = full ? 1 : digits - 1; p < digits; p++) {
        if (p < 1) {
            continue;
        }
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, d);
        if (strtod(tmp, NULL) == d) {
            fprintf(stderr, "not shortest: %s (%d digits) but %s reads back\n", buf, digits, tmp);
            fail();
        }
    }
}

static void check_float(float f, bool full)
{
    char tmp[64];
    char buf[40];
    /* Through the encoder path for FLOAT columns. */
    dg_vec_t v = {.type = &t_f32, .data = &f};
    dg_buf_t b;
    dg_buf_init(&b, 0);
    assert_int_equal(dg_enc_json_value(&v, 0, &b), DG_OK);
    assert_true(b.len < sizeof buf);
    memcpy(buf, b.p, b.len + 1);
    dg_buf_free(&b);
    float back = strtof(buf, NULL);
    if (memcmp(&back, &f, sizeof f) != 0) {
        fprintf(stderr, "float round trip failed: %.9g -> %s\n", (double)f, buf);
        fail();
    }
    int digits = sig_digits(buf);
    for (int p = full ? 1 : digits - 1; p < digits; p++) {
        if (p < 1) {
            continue;
        }
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, (double)f);
        if (strtof(tmp, NULL) == f) {
            fprintf(stderr, "float not shortest: %s but %s reads back\n", buf, tmp);
            fail();
        }
    }
}

static long random_count(void)
{
    const char *s = getenv("DG_ENC_RANDOM");
    if (s && *s) {
        char *end;
        long n = strtol(s, &end, 10);
        if (*end == '\0' && n >= 0) {
            return n;
        }
    }
    return 1000000;
}

static void test_double_roundtrip(void **state)
{
    (void)state;
    const double edge[] = {0.0, -0.0, 5e-324, -5e-324, 2.2250738585072009e-308, DBL_MIN, DBL_MAX,
                           -DBL_MAX, 0.1, 0.2, 0.3, 1e23, 1e22, 9007199254740992.0,
                           9007199254740991.0, 1.0, 2.0, 0.5, 1e-7, 1e21, 123456789012345680.0,
                           4.35, 2.98023223876953125e-8, 1.7976931348623157e308 / 3,
                           5.0e-324 * 3};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        check_double(edge[i], true);
    }
    for (uint64_t i = 1; i <= (1ull << 53); i = i * 3 + 1) {
        check_double((double)i, true);
    }
    for (int e = -1074; e <= 1023; e++) {
        check_double(ldexp(1.0, e), true); /* powers of two: the asymmetric intervals */
    }
    long n = random_count();
    for (long i = 0; i < n; i++) {
        uint64_t bits = rnd();
        double d;
        memcpy(&d, &bits, sizeof d);
        if (!isfinite(d)) {
            continue;
        }
        check_double(d, i < 20000);
    }
}

static void test_float_roundtrip(void **state)
{
    (void)state;
    const float edge[] = {0.0f, -0.0f, 1e-45f, FLT_MIN, FLT_MAX, 0.1f, 0.2f, 0.3f, 16777216.0f,
                          16777217.0f, 3.4e38f, 1.17549421e-38f, 7.038531e-26f};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        check_float(edge[i], true);
    }
    for (int e = -149; e <= 127; e++) {
        check_float(ldexpf(1.0f, e), true);
    }
    long n = random_count();
    for (long i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)rnd();
        float f;
        memcpy(&f, &bits, sizeof f);
        if (!isfinite(f)) {
            continue;
        }
        check_float(f, i < 20000);
    }
}

static void test_strings(void **state)
{
    (void)state;
    static const char nul[] = "NUL\0x";
    static const char long_ascii[] = "a fairly long plain ascii string, over 12 bytes";
    dg_strval_t s[] = {SV("plain"),
                       SV("q\"b\\s"),
                       SV("nl\ntab\tcr\r"),
                       sv(nul, 5),
                       SV("h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93"),
                       SV("bad \xff byte"),
                       SV("sep \xe2\x80\xa8"),
                       SV(""),
                       SV(long_ascii),
                       SV("\x01\x1f")};
    dg_vec_t v = {.type = &t_str, .data = s};
    check_json(&v, 0, "\"plain\"");
    check_json(&v, 1, "\"q\\\"b\\\\s\"");
    check_json(&v, 2, "\"nl\\ntab\\tcr\\r\"");
    check_json(&v, 3, "\"NUL\\u0000x\"");
    check_json(&v, 4, "\"h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93\"");
    check_json(&v, 5, "\"bad \xef\xbf\xbd byte\"");
    check_json(&v, 6, "\"sep \\u2028\"");
    check_json(&v, 7, "\"\"");
    check_json(&v, 8, "\"a fairly long plain ascii string, over 12 bytes\"");
    check_json(&v, 9, "\"\\u0001\\u001f\"");

    dg_strval_t bl[] = {sv("\x00\x01\x02\xff", 4), SV(""), SV("ab"), SV("abc")};
    dg_vec_t vb = {.type = &t_blob, .data = bl};
    check_json(&vb, 0, "\"AAEC/w==\"");
    check_json(&vb, 1, "\"\"");
    check_json(&vb, 2, "\"YWI=\"");
    check_json(&vb, 3, "\"YWJj\"");

    const char *const dict[] = {"red", "gr\"een"};
    dg_type_t te = {.id = DG_TYPE_ENUM, .name = "ENUM('red', 'gr\"een')",
                    .storage = DG_TYPE_UTINYINT, .n_enum = 2, .enum_values = dict};
    uint8_t idx[] = {1, 0, 7};
    dg_vec_t ve = {.type = &te, .data = idx};
    check_json(&ve, 0, "\"gr\\\"een\"");
    check_json(&ve, 1, "\"red\"");
    check_json(&ve, 2, "null"); /* out-of-range index: NULL, no crash */

    /* BIT '10101': padding 3 (set to 1 by DuckDB), then 11110101. */
    dg_strval_t bits[] = {sv("\x03\xf5", 2), sv("\x00\x80\x01", 3)};
    dg_vec_t vbit = {.type = &t_bit, .data = bits};
    check_json(&vbit, 0, "\"10101\"");
    check_json(&vbit, 1, "\"1000000000000001\"");

    dg_strval_t bn[] = {sv("\x80\x00\x01\x00", 4),
                        sv("\x80\x00\x01\xff", 4),
                        sv("\x7f\xff\xfe\xfe", 4),
                        sv("\x80\x00\x09\x01\x00\x00\x00\x00\x00\x00\x00\x00", 12),
                        sv("\x7f\xff\xf6\xfe\xff\xff\xff\xff\xff\xff\xff\xff", 12),
                        sv("\x80\x00\x0b\x01\x52\x74\x17\x63\x4f\x1a\xbb\x0f\xc1\xfe", 14)};
    dg_vec_t vbn = {.type = &t_bignum, .data = bn};
    check_json(&vbn, 0, "\"0\"");
    check_json(&vbn, 1, "\"255\"");
    check_json(&vbn, 2, "\"-1\"");
    check_json(&vbn, 3, "\"18446744073709551616\"");
    check_json(&vbn, 4, "\"-18446744073709551616\"");
    check_json(&vbn, 5, "\"1598301378800152183030270\"");
    /* 10^k for k = 1..60 through the 3-byte steps (each length mod 3), against a reference. */
    for (int k = 1; k <= 60; k++) {
        unsigned char mag[32] = {0};
        mag[31] = 1;
        for (int m = 0; m < k; m++) { /* mag *= 10, big-endian */
            unsigned carry = 0;
            for (int i = 31; i >= 0; i--) {
                unsigned t = mag[i] * 10u + carry;
                mag[i] = (unsigned char)t;
                carry = t >> 8;
            }
        }
        int first = 0;
        while (mag[first] == 0) {
            first++;
        }
        int nb = 32 - first;
        char blob[40];
        unsigned hdr = 0x800000u | (unsigned)nb;
        blob[0] = (char)(hdr >> 16);
        blob[1] = (char)(hdr >> 8);
        blob[2] = (char)hdr;
        memcpy(blob + 3, mag + first, (size_t)nb);
        dg_strval_t one = sv(blob, (uint32_t)(nb + 3));
        dg_vec_t vone = {.type = &t_bignum, .data = &one};
        char want[80];
        snprintf(want, sizeof want, "\"1%0*d\"", k, 0);
        check_json(&vone, 0, want);
    }
    /* Huge values fall back to hex. */
    static char huge[3 + 20000];
    memset(huge, 0, sizeof huge);
    huge[0] = (char)0x80;
    huge[1] = (char)(20000 >> 8);
    huge[2] = (char)(20000 & 0xff);
    huge[3] = 0x0a;
    huge[4] = (char)0xbc;
    dg_strval_t hv = sv(huge, sizeof huge);
    dg_vec_t vh = {.type = &t_bignum, .data = &hv};
    dg_buf_t hb;
    dg_buf_init(&hb, 0);
    assert_int_equal(dg_enc_json_value(&vh, 0, &hb), DG_OK);
    assert_int_equal(hb.len, 1 + 2 + 3 + 2 * 19998 + 1);
    assert_memory_equal(hb.p, "\"0xabc0000", 10);
    dg_buf_free(&hb);

    dg_hugeint_t u[] = {{0xa716446655440000ull, (int64_t)0xd50e8400e29b41d4ull},
                        {0, INT64_MIN},
                        {UINT64_MAX, INT64_MAX}};
    dg_vec_t vu = {.type = &t_uuid, .data = u};
    check_json(&vu, 0, "\"550e8400-e29b-41d4-a716-446655440000\"");
    check_json(&vu, 1, "\"00000000-0000-0000-0000-000000000000\"");
    check_json(&vu, 2, "\"ffffffff-ffff-ffff-ffff-ffffffffffff\"");

    dg_vec_t vn = {.type = &t_null, .data = NULL};
    check_json(&vn, 0, "null");
}

static void test_temporal(void **state)
{
    (void)state;
    int32_t days[] = {0, -1, 19000, -719528, -719529, INT32_MAX, -INT32_MAX, 2932897, -25508,
                      2932896};
    const char *dw[] = {"\"1970-01-01\"", "\"1969-12-31\"", "\"2022-01-08\"", "\"0000-01-01\"",
                        "\"-0001-12-31\"", "\"infinity\"", "\"-infinity\"", "\"+10000-01-01\"",
                        "\"1900-03-01\"", "\"9999-12-31\""};
    dg_vec_t vd = {.type = &t_date, .data = days};
    for (uint64_t i = 0; i < sizeof days / sizeof days[0]; i++) {
        check_json(&vd, i, dw[i]);
    }
    int64_t ts[] = {0, -1, 1500, INT64_MAX, -INT64_MAX, 1700000000123456, -86400000000ll * 365,
                    INT64_MIN};
    const char *tw[] = {"\"1970-01-01T00:00:00\"", "\"1969-12-31T23:59:59.999999\"",
                        "\"1970-01-01T00:00:00.0015\"", "\"infinity\"", "\"-infinity\"",
                        "\"2023-11-14T22:13:20.123456\"", "\"1969-01-01T00:00:00\"",
                        "\"-290308-12-21T19:59:05.224192\""};
    dg_vec_t vt = {.type = &t_ts, .data = ts};
    for (uint64_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        check_json(&vt, i, tw[i]);
    }
    int64_t ns[] = {1, -1, 1700000000123456789};
    dg_vec_t vns = {.type = &t_ts_ns, .data = ns};
    check_json(&vns, 0, "\"1970-01-01T00:00:00.000000001\"");
    check_json(&vns, 1, "\"1969-12-31T23:59:59.999999999\"");
    check_json(&vns, 2, "\"2023-11-14T22:13:20.123456789\"");
    int64_t ms[] = {-1, INT64_MAX};
    dg_vec_t vms = {.type = &t_ts_ms, .data = ms};
    check_json(&vms, 0, "\"1969-12-31T23:59:59.999\"");
    check_json(&vms, 1, "\"infinity\"");
    int64_t sec[] = {86400, -1};
    dg_vec_t vs = {.type = &t_ts_s, .data = sec};
    check_json(&vs, 0, "\"1970-01-02T00:00:00\"");
    check_json(&vs, 1, "\"1969-12-31T23:59:59\"");
    int64_t tz[] = {0, -INT64_MAX};
    dg_vec_t vtz = {.type = &t_ts_tz, .data = tz};
    check_json(&vtz, 0, "\"1970-01-01T00:00:00Z\"");
    check_json(&vtz, 1, "\"-infinity\"");

    int64_t tm[] = {0, 86400000000ll, 45296789000ll, 1};
    dg_vec_t vtm = {.type = &t_time, .data = tm};
    check_json(&vtm, 0, "\"00:00:00\"");
    check_json(&vtm, 1, "\"24:00:00\"");
    check_json(&vtm, 2, "\"12:34:56.789\"");
    check_json(&vtm, 3, "\"00:00:00.000001\"");
    int64_t tmn[] = {1, 45296000000001ll};
    dg_vec_t vtmn = {.type = &t_time_ns, .data = tmn};
    check_json(&vtmn, 0, "\"00:00:00.000000001\"");
    check_json(&vtmn, 1, "\"12:34:56.000000001\"");

    const uint64_t us = 45296000000ull; /* 12:34:56 */
    uint64_t ttz[] = {us << 24 | (uint64_t)(57599 - 7200), us << 24 | (uint64_t)(57599 + 19800),
                      0ull << 24 | 57599, (us + 500000) << 24 | (uint64_t)(57599 + 57599),
                      us << 24 | (uint64_t)(57599 - 3661)};
    dg_vec_t vttz = {.type = &t_time_tz, .data = ttz};
    check_json(&vttz, 0, "\"12:34:56+02:00\"");
    check_json(&vttz, 1, "\"12:34:56-05:30\"");
    check_json(&vttz, 2, "\"00:00:00+00:00\"");
    check_json(&vttz, 3, "\"12:34:56.5-15:59:59\"");
    check_json(&vttz, 4, "\"12:34:56+01:01:01\"");

    const int64_t hms = ((4 * 60 + 5) * 60 + 6) * 1000000ll + 500000;
    dg_interval_t iv[] = {{0, 0, 0},     {14, 3, hms}, {-14, -3, -hms}, {0, 0, -500000},
                          {1, 0, 0},     {0, 1, 0},    {12, 0, 3600000000ll},
                          {-1, 2, 60000000}};
    const char *iw[] = {"\"PT0S\"",
                        "\"P1Y2M3DT4H5M6.5S\"",
                        "\"P-1Y-2M-3DT-4H-5M-6.5S\"",
                        "\"PT-0.5S\"",
                        "\"P1M\"",
                        "\"P1D\"",
                        "\"P1YT1H\"",
                        "\"P-1M2DT1M\""};
    dg_vec_t viv = {.type = &t_interval, .data = iv};
    for (uint64_t i = 0; i < sizeof iv / sizeof iv[0]; i++) {
        check_json(&viv, i, iw[i]);
    }
}

/* Parses "[+-]Y-MM-DD" (JSON quotes included). */
static void parse_ymd(const char *s, long long *y, int *m, int *d)
{
    const char *p = s + 1;
    int neg = 0;
    if (*p == '-' || *p == '+') {
        neg = *p == '-';
        p++;
    }
    char *end;
    *y = strtoll(p, &end, 10) * (neg ? -1 : 1);
    *m = (int)strtol(end + 1, &end, 10);
    *d = (int)strtol(end + 1, &end, 10);
}

static int days_in_month(long long y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* Every day of a range is the calendar successor of the day before (both date algorithms and
 * the switch between them), anchored at 1970-01-01. */
static void check_date_run(int32_t from, int32_t n, bool anchored)
{
    int32_t *days = malloc((size_t)n * sizeof *days);
    assert_non_null(days);
    for (int32_t i = 0; i < n; i++) {
        days[i] = from + i;
    }
    dg_vec_t v = {.type = &t_date, .data = days};
    dg_buf_t b;
    dg_buf_init(&b, 0);
    long long py = 0;
    int pm = 0, pd = 0;
    for (int32_t i = 0; i < n; i++) {
        dg_buf_reset(&b);
        assert_int_equal(dg_enc_json_value(&v, (uint64_t)i, &b), DG_OK);
        long long y;
        int m, d;
        parse_ymd(b.p, &y, &m, &d);
        if (anchored && days[i] == 0) {
            assert_true(y == 1970 && m == 1 && d == 1);
        }
        if (i > 0) {
            long long ey = py;
            int em = pm, ed = pd + 1;
            if (ed > days_in_month(py, pm)) {
                ed = 1;
                if (++em > 12) {
                    em = 1;
                    ey++;
                }
            }
            if (y != ey || m != em || d != ed) {
                fprintf(stderr, "day %d: got %s after %lld-%d-%d\n", days[i], b.p, py, pm, pd);
                fail();
            }
        }
        py = y;
        pm = m;
        pd = d;
    }
    dg_buf_free(&b);
    free(days);
}

static void test_date_range(void **state)
{
    (void)state;
    check_date_run(-800000, 1600000, true); /* about 221 BC to 4160 AD */
    check_date_run(-12699422 - 2000, 4000, false); /* fast/slow path boundary, low end */
    check_date_run(1000000000 - 2000, 4000, false);/* and high end */
    check_date_run(INT32_MAX - 4000, 3999, false);
    check_date_run(-INT32_MAX + 1, 4000, false);
}

/* ---- nested ---- */

/* LIST(STRUCT(a INTEGER, b VARCHAR)) rows: [{1,x},NULL,{NULL,y}], [], NULL */
static const dg_type_t *const st_children[] = {&t_i32, &t_str};
static const char *const st_names[] = {"a", "b\"q"};
static const dg_type_t t_struct = {.id = DG_TYPE_STRUCT, .name = "STRUCT(a INTEGER, \"b\"\"q\" VARCHAR)",
                                   .n_children = 2, .children = st_children,
                                   .child_names = st_names};
static const dg_type_t *const lst_children[] = {&t_struct};
static const dg_type_t t_list_struct = {.id = DG_TYPE_LIST,
                                        .name = "STRUCT(a INTEGER, \"b\"\"q\" VARCHAR)[]",
                                        .n_children = 1, .children = lst_children};

static int32_t ls_a[] = {1, 0, 0};
static const uint64_t ls_a_valid[] = {0x1}; /* element 2's a is NULL */
static dg_strval_t ls_b[3];
static const uint64_t ls_struct_valid[] = {0x5}; /* element 1 is NULL */
static dg_vec_t ls_struct_children[2];
static dg_vec_t ls_elem;
static const dg_list_entry_t ls_entries[] = {{0, 3}, {3, 0}, {0, 0}};
static const uint64_t ls_valid[] = {0x3}; /* row 2 NULL */
static dg_vec_t ls_vec;

static void build_list_struct(void)
{
    ls_b[0] = SV("x");
    ls_b[1] = SV("");
    ls_b[2] = SV("y,\"z\"");
    ls_struct_children[0] = (dg_vec_t){.type = &t_i32, .data = ls_a, .validity = ls_a_valid};
    ls_struct_children[1] = (dg_vec_t){.type = &t_str, .data = ls_b};
    ls_elem = (dg_vec_t){.type = &t_struct, .validity = ls_struct_valid, .n_children = 2,
                         .children = ls_struct_children};
    ls_vec = (dg_vec_t){.type = &t_list_struct, .data = ls_entries, .validity = ls_valid,
                        .child_len = 3, .n_children = 1, .children = &ls_elem};
}

static void test_nested(void **state)
{
    (void)state;
    build_list_struct();
    check_json(&ls_vec, 0,
               "[{\"a\":1,\"b\\\"q\":\"x\"},null,{\"a\":null,\"b\\\"q\":\"y,\\\"z\\\"\"}]");
    check_json(&ls_vec, 1, "[]");
    check_json(&ls_vec, 2, "null");

    /* MAP(VARCHAR, INTEGER) given as MAP(STRUCT(key, value)). */
    static const dg_type_t *const kv_types[] = {&t_str, &t_i32};
    static const char *const kv_names[] = {"key", "value"};
    dg_type_t t_kv = {.id = DG_TYPE_STRUCT, .name = "STRUCT(key VARCHAR, value INTEGER)",
                      .n_children = 2, .children = kv_types, .child_names = kv_names};
    const dg_type_t *map_children[] = {&t_kv};
    dg_type_t t_map = {.id = DG_TYPE_MAP, .name = "MAP(VARCHAR, INTEGER)", .n_children = 1,
                       .children = map_children};
    dg_strval_t keys[] = {SV("k1"), SV("k\n2"), SV("z")};
    int32_t vals[] = {1, 0, 3};
    uint64_t vals_valid[] = {0x5};
    dg_vec_t kvv[] = {{.type = &t_str, .data = keys},
                      {.type = &t_i32, .data = vals, .validity = vals_valid}};
    dg_vec_t kvs = {.type = &t_kv, .n_children = 2, .children = kvv};
    dg_list_entry_t me[] = {{0, 2}, {2, 1}, {3, 0}};
    dg_vec_t vm = {.type = &t_map, .data = me, .child_len = 3, .n_children = 1, .children = &kvs};
    check_json(&vm, 0, "{\"k1\":1,\"k\\n2\":null}");
    check_json(&vm, 1, "{\"z\":3}");
    check_json(&vm, 2, "{}");

    /* MAP(INTEGER, DATE) given as MAP(key, value); keys stringified. */
    const dg_type_t *map2_children[] = {&t_i32, &t_date};
    dg_type_t t_map2 = {.id = DG_TYPE_MAP, .name = "MAP(INTEGER, DATE)", .n_children = 2,
                        .children = map2_children};
    int32_t k2[] = {-7, 42};
    int32_t d2[] = {0, -1};
    dg_vec_t kv2[] = {{.type = &t_i32, .data = k2}, {.type = &t_date, .data = d2}};
    dg_vec_t kvs2 = {.type = &t_kv, .n_children = 2, .children = kv2};
    dg_list_entry_t me2[] = {{0, 2}};
    dg_vec_t vm2 = {.type = &t_map2, .data = me2, .child_len = 2, .n_children = 1,
                    .children = &kvs2};
    check_json(&vm2, 0, "{\"-7\":\"1970-01-01\",\"42\":\"1969-12-31\"}");

    /* MAP(DOUBLE[], BIGINT): nested key becomes its JSON text as a string. */
    const dg_type_t *dl_children[] = {&t_f64};
    dg_type_t t_dlist = {.id = DG_TYPE_LIST, .name = "DOUBLE[]", .n_children = 1,
                         .children = dl_children};
    const dg_type_t *map3_children[] = {&t_dlist, &t_i64};
    dg_type_t t_map3 = {.id = DG_TYPE_MAP, .name = "MAP(DOUBLE[], BIGINT)", .n_children = 2,
                        .children = map3_children};
    double dl[] = {1.5, -0.0};
    dg_vec_t dle = {.type = &t_f64, .data = dl};
    dg_list_entry_t dlo[] = {{0, 2}};
    int64_t big[] = {INT64_MAX};
    dg_vec_t kv3[] = {{.type = &t_dlist, .data = dlo, .child_len = 2, .n_children = 1,
                       .children = &dle},
                      {.type = &t_i64, .data = big}};
    dg_vec_t kvs3 = {.type = &t_kv, .n_children = 2, .children = kv3};
    dg_list_entry_t me3[] = {{0, 1}};
    dg_vec_t vm3 = {.type = &t_map3, .data = me3, .child_len = 1, .n_children = 1,
                    .children = &kvs3};
    check_json(&vm3, 0, "{\"[1.5,-0]\":\"9223372036854775807\"}");

    /* INTEGER[2] array with a NULL element and a NULL row. */
    const dg_type_t *arr_children[] = {&t_i32};
    dg_type_t t_arr = {.id = DG_TYPE_ARRAY, .name = "INTEGER[2]", .array_size = 2,
                       .n_children = 1, .children = arr_children};
    int32_t ae[] = {1, 2, 3, 0, 0, 0};
    uint64_t ae_valid[] = {0x7};
    uint64_t arr_valid[] = {0x3};
    dg_vec_t aev = {.type = &t_i32, .data = ae, .validity = ae_valid};
    dg_vec_t va = {.type = &t_arr, .validity = arr_valid, .n_children = 1, .children = &aev};
    check_json(&va, 0, "[1,2]");
    check_json(&va, 1, "[3,null]");
    check_json(&va, 2, "null");

    /* UNION(num INTEGER, str VARCHAR): types list members only; vectors tag first. */
    const dg_type_t *un_children[] = {&t_i32, &t_str};
    const char *un_names[] = {"num", "str"};
    dg_type_t t_union = {.id = DG_TYPE_UNION, .name = "UNION(num INTEGER, str VARCHAR)",
                         .n_children = 2, .children = un_children, .child_names = un_names};
    uint8_t tags[] = {0, 1, 5};
    int32_t un_num[] = {5, 0, 0};
    dg_strval_t un_str[] = {SV(""), SV("s"), SV("")};
    dg_vec_t un_vecs[] = {{.type = &t_u8, .data = tags},
                          {.type = &t_i32, .data = un_num},
                          {.type = &t_str, .data = un_str}};
    dg_vec_t vun = {.type = &t_union, .n_children = 3, .children = un_vecs};
    check_json(&vun, 0, "5");
    check_json(&vun, 1, "\"s\"");
    check_json(&vun, 2, "null"); /* bad tag */
    /* Same union when the type lists the tag too. */
    const dg_type_t *un_children2[] = {&t_u8, &t_i32, &t_str};
    dg_type_t t_union2 = t_union;
    t_union2.n_children = 3;
    t_union2.children = un_children2;
    vun.type = &t_union2;
    check_json(&vun, 0, "5");
    check_json(&vun, 1, "\"s\"");

    /* In CSV a union cell is its member's text; nested values are quoted JSON. */
    static const char *const un_col[] = {"u", "arr", "m"};
    const dg_type_t *un_types[] = {&t_union, &t_arr, &t_map};
    dg_schema_t sch = {.n_cols = 3, .names = un_col, .types = un_types};
    vun.type = &t_union;
    dg_vec_t cols[] = {vun, va, vm};
    dg_batch_t b = {.n_rows = 3, .n_cols = 3, .cols = cols};
    check_enc(DG_FMT_CSV, &sch, &b, 1,
              "u,arr,m\n5,\"[1,2]\",\"{\"\"k1\"\":1,\"\"k\\n2\"\":null}\"\n"
              "s,\"[3,null]\",\"{\"\"z\"\":3}\"\n,,{}\n");
}

/* ---- whole formats ---- */

static const char *const mix_names[] = {"id", "name", "score", "tags"};
static const dg_type_t *const il_children[] = {&t_i32};
static const dg_type_t t_ilist = {.id = DG_TYPE_LIST, .name = "INTEGER[]", .n_children = 1,
                                  .children = il_children};
static const dg_type_t *const mix_types[] = {&t_i64, &t_str, &t_f64, &t_ilist};
static const dg_schema_t mix_schema = {.n_cols = 4, .names = mix_names, .types = mix_types};

static int64_t m_id[] = {1, 2, 3};
static dg_strval_t m_name[3];
static const uint64_t m_name_valid[] = {0x5};
static double m_score[] = {1.5, NAN, -0.25};
static const dg_list_entry_t m_tags[] = {{0, 2}, {2, 0}, {2, 1}};
static int32_t m_tag_elems[] = {7, 0, 9};
static const uint64_t m_tag_valid[] = {0x5};
static dg_vec_t m_tag_vec;
static dg_vec_t m_cols[4];
static dg_batch_t m_batches[2];

static void build_mix(void)
{
    m_name[0] = SV("plain");
    m_name[1] = SV("");
    m_name[2] = SV("a,\"b\"\tc\nd\\ ");
    m_tag_vec = (dg_vec_t){.type = &t_i32, .data = m_tag_elems, .validity = m_tag_valid};
    m_cols[0] = (dg_vec_t){.type = &t_i64, .data = m_id};
    m_cols[1] = (dg_vec_t){.type = &t_str, .data = m_name, .validity = m_name_valid};
    m_cols[2] = (dg_vec_t){.type = &t_f64, .data = m_score};
    m_cols[3] = (dg_vec_t){.type = &t_ilist, .data = m_tags, .child_len = 3, .n_children = 1,
                           .children = &m_tag_vec};
    /* The same three rows twice: two batches. */
    m_batches[0] = (dg_batch_t){.n_rows = 3, .n_cols = 4, .cols = m_cols};
    m_batches[1] = (dg_batch_t){.n_rows = 3, .n_cols = 4, .cols = m_cols};
}

#define MIX_COLS                                                                                   \
    "\"columns\":[{\"name\":\"id\",\"type\":\"BIGINT\"},{\"name\":\"name\",\"type\":\"VARCHAR\"},"  \
    "{\"name\":\"score\",\"type\":\"DOUBLE\"},{\"name\":\"tags\",\"type\":\"INTEGER[]\"}]"
#define MIX_ROWS                                                                                   \
    "[1,\"plain\",1.5,[7,null]],[2,null,null,[]],[3,\"a,\\\"b\\\"\\tc\\nd\\\\ \",-0.25,[9]]"

static void test_format_json(void **state)
{
    (void)state;
    build_mix();
    const char *want = "{" MIX_COLS ",\"rows\":[" MIX_ROWS "," MIX_ROWS
                       "],\"row_count\":6,\"truncated\":false,\"query_id\":\"q-1\","
                       "\"elapsed_ms\":1.500}\n";
    check_enc(DG_FMT_JSON, &mix_schema, m_batches, 2, want);
    assert_json_valid(want, strlen(want));
    /* No rows at all. */
    check_enc(DG_FMT_JSON, &mix_schema, m_batches, 0,
              "{" MIX_COLS ",\"rows\":[],\"row_count\":0,\"truncated\":false,\"query_id\":\"q-1\","
              "\"elapsed_ms\":1.500}\n");
}

/* The caller's row cap: only the first n rows of a batch are written. */
static void test_row_cap(void **state)
{
    (void)state;
    build_mix();
    dg_enc_t *e;
    assert_int_equal(dg_enc_new(DG_FMT_JSON, &mix_schema, NULL, &e), DG_OK);
    dg_buf_t b;
    dg_buf_init(&b, 0);
    assert_int_equal(dg_enc_begin(e, &b), DG_OK);
    assert_int_equal(dg_enc_batch(e, &m_batches[0], 1, &b), DG_OK);
    assert_int_equal(dg_enc_batch(e, &m_batches[1], 1, &b), DG_OK);
    dg_enc_summary_t sum = {.rows = 2, .truncated = true, .elapsed_ms = NAN};
    assert_int_equal(dg_enc_end(e, &sum, &b), DG_OK);
    assert_string_equal(b.p, "{" MIX_COLS ",\"rows\":[[1,\"plain\",1.5,[7,null]],"
                             "[1,\"plain\",1.5,[7,null]]],\"row_count\":2,\"truncated\":true,"
                             "\"query_id\":null,\"elapsed_ms\":0.000}\n");
    assert_json_valid(b.p, b.len);
    /* JSON and CSV have no in-band error marker: dg_enc_fail is a no-op. */
    size_t len = b.len;
    assert_int_equal(dg_enc_fail(e, DG_TIMEOUT, NULL, &b), DG_OK);
    assert_int_equal(b.len, len);
    dg_buf_free(&b);
    dg_enc_free(e);
}

static void test_format_ndjson(void **state)
{
    (void)state;
    build_mix();
    dg_batch_t with_empty[3] = {m_batches[0], m_batches[1], m_batches[0]};
    with_empty[1].n_rows = 0;
    const char *want = "{\"type\":\"meta\"," MIX_COLS ",\"query_id\":\"q-1\"}\n"
                       "{\"type\":\"rows\",\"rows\":[" MIX_ROWS "]}\n"
                       "{\"type\":\"rows\",\"rows\":[" MIX_ROWS "]}\n"
                       "{\"type\":\"end\",\"rows\":6,\"bytes\":";
    dg_rc_t rc;
    size_t len;
    char *got = run_enc(DG_FMT_NDJSON, &mix_schema, with_empty, 3, 0, &rc, &len);
    assert_int_equal(rc, DG_OK);
    assert_true(len > strlen(want));
    assert_memory_equal(got, want, strlen(want));
    const char *tail = strstr(got, "{\"type\":\"end\"");
    assert_non_null(tail);
    char expect_tail[256];
    snprintf(expect_tail, sizeof expect_tail,
             "{\"type\":\"end\",\"rows\":6,\"bytes\":%zu,\"truncated\":false,\"elapsed_ms\":1.500,"
             "\"queue_ms\":0.250,\"execute_ms\":1.000,\"encode_ms\":0.125,\"compress_ms\":0.000}\n",
             (size_t)(tail - got));
    assert_string_equal(tail, expect_tail);
    /* Every line is a JSON document. */
    for (char *line = got; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_json_valid(line, (size_t)(nl - line));
        line = nl + 1;
    }
    free(got);

    /* Failure path: error line after rows. */
    dg_enc_t *e;
    dg_enc_opts_t opts = {.query_id = NULL};
    assert_int_equal(dg_enc_new(DG_FMT_NDJSON, &mix_schema, &opts, &e), DG_OK);
    dg_buf_t b;
    dg_buf_init(&b, 0);
    assert_int_equal(dg_enc_begin(e, &b), DG_OK);
    assert_int_equal(dg_enc_batch(e, &m_batches[0], 1, &b), DG_OK);
    assert_int_equal(dg_enc_fail(e, DG_TIMEOUT, "ran \"long\"", &b), DG_OK);
    assert_string_equal(b.p, "{\"type\":\"meta\"," MIX_COLS ",\"query_id\":null}\n"
                             "{\"type\":\"rows\",\"rows\":[[1,\"plain\",1.5,[7,null]]]}\n"
                             "{\"type\":\"error\",\"code\":\"TIMEOUT\",\"message\":"
                             "\"ran \\\"long\\\"\"}\n");
    dg_buf_free(&b);
    dg_enc_free(e);
}

static void test_format_csv_tsv(void **state)
{
    (void)state;
    build_mix();
    check_enc(DG_FMT_CSV, &mix_schema, m_batches, 1,
              "id,name,score,tags\n"
              "1,plain,1.5,\"[7,null]\"\n"
              "2,,nan,[]\n"
              "3,\"a,\"\"b\"\"\tc\nd\\ \",-0.25,[9]\n");
    check_enc(DG_FMT_TSV, &mix_schema, m_batches, 1,
              "id\tname\tscore\ttags\n"
              "1\tplain\t1.5\t[7,null]\n"
              "2\t\tnan\t[]\n"
              "3\ta,\"b\"\\tc\\nd\\\\ \t-0.25\t[9]\n");

    /* Empty string vs NULL, leading/trailing spaces, invalid UTF-8, nested with quotes. */
    build_list_struct();
    static const char *const names[] = {"s p", "l"};
    const dg_type_t *types[] = {&t_str, &t_list_struct};
    dg_schema_t sch = {.n_cols = 2, .names = names, .types = types};
    dg_strval_t s[] = {SV(""), SV(" lead"), SV("bad\xc3")};
    uint64_t sv_valid[] = {0x7};
    dg_vec_t cols[] = {{.type = &t_str, .data = s, .validity = sv_valid}, ls_vec};
    dg_batch_t b = {.n_rows = 3, .n_cols = 2, .cols = cols};
    check_enc(DG_FMT_CSV, &sch, &b, 1,
              "s p,l\n"
              "\"\",\"[{\"\"a\"\":1,\"\"b\\\"\"q\"\":\"\"x\"\"},null,{\"\"a\"\":null,\"\"b\\\"\"q\"\":"
              "\"\"y,\\\"\"z\\\"\"\"\"}]\"\n"
              "\" lead\",[]\n"
              "bad\xef\xbf\xbd,\n");
    check_enc(DG_FMT_TSV, &sch, &b, 1,
              "s p\tl\n"
              "\t[{\"a\":1,\"b\\\\\"q\":\"x\"},null,{\"a\":null,\"b\\\\\"q\":\"y,\\\\\"z\\\\\"\"}]\n"
              " lead\t[]\n"
              "bad\xef\xbf\xbd\t\n");

    /* Scalars in CSV: no JSON quoting; NaN/Inf spelled for DuckDB. */
    static const char *const sn[] = {"big", "d", "dt", "f"};
    const dg_type_t *st[] = {&t_i64, &t_f64, &t_ts_tz, &t_f32};
    dg_schema_t ssch = {.n_cols = 4, .names = sn, .types = st};
    int64_t big[] = {INT64_MAX, -1};
    double dd[] = {INFINITY, -INFINITY};
    int64_t ts[] = {INT64_MAX, 0};
    float ff[] = {NAN, 0.1f};
    dg_vec_t sc[] = {{.type = &t_i64, .data = big},
                     {.type = &t_f64, .data = dd},
                     {.type = &t_ts_tz, .data = ts},
                     {.type = &t_f32, .data = ff}};
    dg_batch_t sb = {.n_rows = 2, .n_cols = 4, .cols = sc};
    check_enc(DG_FMT_CSV, &ssch, &sb, 1,
              "big,d,dt,f\n9223372036854775807,inf,infinity,nan\n-1,-inf,1970-01-01T00:00:00Z,0.1\n");
}

/* A row with one of every type, in JSON, checked to parse. */
static void test_all_types_json(void **state)
{
    (void)state;
    build_list_struct();
    bool b = true;
    int8_t i8 = -1;
    int64_t i64 = INT64_MIN;
    uint64_t u64 = UINT64_MAX;
    float f = 1.25f;
    double d = NAN;
    dg_hugeint_t h = {0, INT64_MIN};
    dg_strval_t s = SV("\xe2\x82\xac \" \\ \x7f");
    dg_strval_t bl = SV("blob");
    int32_t dt = -1;
    int64_t ts = -1;
    int64_t tm = 1;
    uint64_t ttz = 57599;
    dg_interval_t iv = {1, 2, 3};
    dg_strval_t bit = sv("\x07\x01", 2);
    dg_strval_t bn = sv("\x80\x00\x01\x2a", 4);
    const dg_type_t *types[] = {&t_bool, &t_i8,    &t_i64,       &t_u64,   &t_f32,
                                &t_f64,  &t_i128,  &t_str,       &t_blob,  &t_date,
                                &t_ts,   &t_time,  &t_time_tz,   &t_interval, &t_bit,
                                &t_bignum, &t_null, &t_list_struct};
    const char *names[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i",
                           "j", "k", "l", "m", "n", "o", "p", "q", "r"};
    dg_vec_t cols[] = {{.type = &t_bool, .data = &b},     {.type = &t_i8, .data = &i8},
                       {.type = &t_i64, .data = &i64},    {.type = &t_u64, .data = &u64},
                       {.type = &t_f32, .data = &f},      {.type = &t_f64, .data = &d},
                       {.type = &t_i128, .data = &h},     {.type = &t_str, .data = &s},
                       {.type = &t_blob, .data = &bl},    {.type = &t_date, .data = &dt},
                       {.type = &t_ts, .data = &ts},      {.type = &t_time, .data = &tm},
                       {.type = &t_time_tz, .data = &ttz}, {.type = &t_interval, .data = &iv},
                       {.type = &t_bit, .data = &bit},    {.type = &t_bignum, .data = &bn},
                       {.type = &t_null},                 ls_vec};
    dg_schema_t sch = {.n_cols = 18, .names = names, .types = types};
    dg_batch_t batch = {.n_rows = 1, .n_cols = 18, .cols = cols};
    dg_rc_t rc;
    size_t len;
    char *got = run_enc(DG_FMT_JSON, &sch, &batch, 1, 0, &rc, &len);
    assert_int_equal(rc, DG_OK);
    assert_json_valid(got, len);
    const char *rows = strstr(got, "\"rows\":");
    assert_non_null(rows);
    const char *want_rows =
        "\"rows\":[[true,-1,\"-9223372036854775808\",\"18446744073709551615\",1.25,null,"
        "\"-170141183460469231731687303715884105728\",\"\xe2\x82\xac \\\" \\\\ \x7f\","
        "\"YmxvYg==\",\"1969-12-31\",\"1969-12-31T23:59:59.999999\",\"00:00:00.000001\","
        "\"00:00:00+00:00\",\"P1M2DT0.000003S\",\"1\",\"42\",null,"
        "[{\"a\":1,\"b\\\"q\":\"x\"},null,{\"a\":null,\"b\\\"q\":\"y,\\\"z\\\"\"}]]]";
    assert_memory_equal(rows, want_rows, strlen(want_rows));
    free(got);
}

/* Caps: an exact cap succeeds; one byte less fails cleanly, in every format and call. */
static void test_caps(void **state)
{
    (void)state;
    build_mix();
    for (int f = DG_FMT_JSON; f <= DG_FMT_TSV; f++) {
        dg_rc_t rc;
        size_t full_len;
        char *full = run_enc((dg_format_t)f, &mix_schema, m_batches, 2, 0, &rc, &full_len);
        assert_int_equal(rc, DG_OK);
        for (size_t cap = 1; cap <= full_len; cap++) {
            size_t len;
            char *got = run_enc((dg_format_t)f, &mix_schema, m_batches, 2, cap, &rc, &len);
            if (cap == full_len) {
                assert_int_equal(rc, DG_OK);
                assert_int_equal(len, full_len);
                assert_memory_equal(got, full, len);
            } else {
                assert_int_equal(rc, DG_RESULT_TOO_LARGE);
                assert_true(len <= cap);
                /* What was kept is a prefix of the full output (failed calls roll back). */
                if (f != DG_FMT_NDJSON) {
                    assert_memory_equal(got, full, len);
                }
            }
            free(got);
        }
        free(full);
    }
    /* A large string against a small cap. */
    static char big[100000];
    memset(big, '"', sizeof big);
    dg_strval_t s = sv(big, sizeof big);
    dg_vec_t v = {.type = &t_str, .data = &s};
    dg_buf_t b;
    dg_buf_init(&b, 1000);
    assert_int_equal(dg_enc_json_value(&v, 0, &b), DG_RESULT_TOO_LARGE);
    assert_int_equal(b.len, 0);
    dg_buf_free(&b);
    /* The exact fallback: the worst case (6x) would not fit, the real output (2x + 2) does. */
    dg_buf_init(&b, 2 * 1000 + 2);
    dg_strval_t s2 = sv(big, 1000);
    v.data = &s2;
    assert_int_equal(dg_enc_json_value(&v, 0, &b), DG_OK);
    assert_int_equal(b.len, 2002);
    dg_buf_free(&b);
}

static void test_format_names(void **state)
{
    (void)state;
    assert_string_equal(dg_format_name(DG_FMT_JSON), "json");
    assert_string_equal(dg_format_name(DG_FMT_ARROW), "arrow");
    assert_null(dg_format_name(DG_FMT_COUNT_));
    assert_string_equal(dg_format_content_type(DG_FMT_CSV),
                        "text/csv; charset=utf-8; header=present");
    assert_string_equal(dg_format_content_type(DG_FMT_TSV),
                        "text/tab-separated-values; charset=utf-8");
    assert_string_equal(dg_format_content_type(DG_FMT_NDJSON), "application/x-ndjson");
    assert_string_equal(dg_format_content_type(DG_FMT_PARQUET), "application/vnd.apache.parquet");
    assert_string_equal(dg_format_content_type(DG_FMT_ARROW),
                        "application/vnd.apache.arrow.stream");
    assert_int_equal(dg_format_parse("ndjson"), DG_FMT_NDJSON);
    assert_int_equal(dg_format_parse("parquet"), DG_FMT_PARQUET);
    assert_int_equal(dg_format_parse("xml"), -1);
    assert_int_equal(dg_format_parse(NULL), -1);
    dg_enc_t *e = (dg_enc_t *)1;
    assert_int_equal(dg_enc_new(DG_FMT_PARQUET, &mix_schema, NULL, &e), DG_NOT_ACCEPTABLE);
    assert_null(e);
    assert_int_equal(dg_enc_new(DG_FMT_ARROW, &mix_schema, NULL, &e), DG_NOT_ACCEPTABLE);
    dg_enc_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_names),   cmocka_unit_test(test_integers),
        cmocka_unit_test(test_decimal),        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_strings),        cmocka_unit_test(test_temporal),
        cmocka_unit_test(test_nested),         cmocka_unit_test(test_date_range),         cmocka_unit_test(test_format_json),
        cmocka_unit_test(test_format_ndjson),  cmocka_unit_test(test_row_cap),  cmocka_unit_test(test_format_csv_tsv),
        cmocka_unit_test(test_all_types_json), cmocka_unit_test(test_caps),
        cmocka_unit_test(test_double_roundtrip), cmocka_unit_test(test_float_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
