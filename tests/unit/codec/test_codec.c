/* Unit tests for src/codec: every codec's output decoded by its reference decoder (zlib inflate,
 * ZSTD_decompressStream, BrotliDecoderDecompressStream), across writes, sync flushes and finish;
 * flushed prefixes must be decodable before the stream ends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <brotli/decode.h>
#include <cmocka.h>
#include <zlib.h>
#include <zstd.h>

#include "codec/codec.h"

/* Decodes what the stream holds so far; returns the bytes decoded (a growing prefix of input). */
static size_t decode(dg_codec_id_t id, const dg_buf_t *in, char *out, size_t cap)
{
    size_t n = 0;
    if (id == DG_CODEC_IDENTITY) {
        memcpy(out, in->p, in->len);
        return in->len;
    }
    if (id == DG_CODEC_GZIP) {
        z_stream z = {0};
        assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
        z.next_in = (Bytef *)in->p;
        z.avail_in = (uInt)in->len;
        z.next_out = (Bytef *)out;
        z.avail_out = (uInt)cap;
        int r = inflate(&z, Z_SYNC_FLUSH);
        assert_true(r == Z_OK || r == Z_STREAM_END || r == Z_BUF_ERROR);
        n = cap - z.avail_out;
        inflateEnd(&z);
    } else if (id == DG_CODEC_ZSTD) {
        ZSTD_DStream *d = ZSTD_createDStream();
        ZSTD_inBuffer ib = {in->p, in->len, 0};
        ZSTD_outBuffer ob = {out, cap, 0};
        while (ib.pos < ib.size) {
            size_t r = ZSTD_decompressStream(d, &ob, &ib);
            assert_false(ZSTD_isError(r));
            if (r == 0) {
                break;
            }
        }
        n = ob.pos;
        ZSTD_freeDStream(d);
    } else {
        BrotliDecoderState *d = BrotliDecoderCreateInstance(NULL, NULL, NULL);
        const uint8_t *next_in = (const uint8_t *)in->p;
        size_t avail_in = in->len, avail_out = cap;
        uint8_t *next_out = (uint8_t *)out;
        BrotliDecoderResult r =
            BrotliDecoderDecompressStream(d, &avail_in, &next_in, &avail_out, &next_out, NULL);
        assert_true(r != BROTLI_DECODER_RESULT_ERROR);
        n = cap - avail_out;
        BrotliDecoderDestroyInstance(d);
    }
    return n;
}

static void roundtrip(dg_codec_id_t id)
{
    enum { N = 3 * 1000 * 1000 };
    char *text = malloc(N), *back = malloc(N + 1);
    assert_non_null(text);
    assert_non_null(back);
    /* NDJSON-like rows: compressible, but not trivially. */
    size_t fill = 0;
    for (unsigned i = 0; fill < N; i++) {
        char row[96];
        int n = snprintf(row, sizeof row, "[%u,\"name %u\",%u.%02u,\"2024-01-%02u\"]\n", i,
                         (i * 2654435761u) % 100000, i % 977, i % 100, 1 + i % 28);
        size_t take = (size_t)n > N - fill ? N - fill : (size_t)n;
        memcpy(text + fill, row, take);
        fill += take;
    }
    dg_codec_t *c;
    assert_int_equal(dg_codec_new(id, dg_codec_default_level(id), &c), DG_OK);
    dg_buf_t out;
    dg_buf_init(&out, 0);
    size_t fed = 0;
    for (size_t piece = 1; fed < N; piece *= 7) {
        size_t take = piece > N - fed ? N - fed : piece;
        assert_int_equal(dg_codec_write(c, text + fed, take, &out), DG_OK);
        fed += take;
        assert_int_equal(dg_codec_flush(c, &out), DG_OK);
        /* After a flush everything fed so far must be decodable. */
        size_t got = decode(id, &out, back, N);
        assert_int_equal(got, fed);
        assert_memory_equal(back, text, fed);
    }
    assert_int_equal(dg_codec_finish(c, &out), DG_OK);
    assert_int_equal(dg_codec_write(c, "x", 1, &out), DG_INTERNAL);
    assert_int_equal(decode(id, &out, back, N), (size_t)N);
    assert_memory_equal(back, text, N);
    if (id != DG_CODEC_IDENTITY) {
        assert_true(out.len < N / 2);
    }
    dg_codec_free(c);
    dg_buf_free(&out);
    free(text);
    free(back);
}

static void test_identity(void **s)
{
    (void)s;
    roundtrip(DG_CODEC_IDENTITY);
}

static void test_gzip(void **s)
{
    (void)s;
    roundtrip(DG_CODEC_GZIP);
}

static void test_zstd(void **s)
{
    (void)s;
    roundtrip(DG_CODEC_ZSTD);
}

static void test_brotli(void **s)
{
    (void)s;
    roundtrip(DG_CODEC_BR);
}

static void test_names_levels_caps(void **s)
{
    (void)s;
    assert_int_equal(dg_codec_parse("ZSTD", 4), DG_CODEC_ZSTD);
    assert_int_equal(dg_codec_parse("x-gzip", 6), DG_CODEC_GZIP);
    assert_int_equal(dg_codec_parse("br", 2), DG_CODEC_BR);
    assert_int_equal(dg_codec_parse("compress", 8), -1);
    assert_string_equal(dg_codec_name(DG_CODEC_BR), "br");
    dg_codec_t *c = NULL;
    assert_int_equal(dg_codec_new(DG_CODEC_GZIP, 10, &c), DG_CONFIG);
    assert_null(c);
    assert_int_equal(dg_codec_new(DG_CODEC_ZSTD, 0, &c), DG_CONFIG);
    /* A capped output buffer fails cleanly instead of growing. */
    assert_int_equal(dg_codec_new(DG_CODEC_ZSTD, 1, &c), DG_OK);
    dg_buf_t out;
    dg_buf_init(&out, 16);
    assert_int_equal(dg_codec_write(c, "hello", 5, &out), DG_RESULT_TOO_LARGE);
    dg_codec_free(c);
    dg_buf_free(&out);
    dg_codec_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity), cmocka_unit_test(test_gzip),
        cmocka_unit_test(test_zstd),     cmocka_unit_test(test_brotli),
        cmocka_unit_test(test_names_levels_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
