/* Stream compressors over zlib (gzip container), libzstd and libbrotlienc. Each backend exposes
 * the same three operations — process input, flush, finish — and writes straight into the caller's
 * capped output buffer, growing it as the compressor asks for room. */
#include "codec/codec.h"

#include <brotli/encode.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "core/str.h"

typedef enum { OP_WRITE, OP_FLUSH, OP_FINISH } codec_op;

struct dg_codec {
    dg_codec_id_t id;
    int finished;
    union {
        z_stream z;
        ZSTD_CCtx *zstd;
        BrotliEncoderState *br;
    } u;
};

static const char *const codec_names[DG_CODEC_COUNT_] = {"identity", "gzip", "zstd", "br"};

const char *dg_codec_name(dg_codec_id_t id)
{
    return (unsigned)id < DG_CODEC_COUNT_ ? codec_names[id] : "identity";
}

int dg_codec_parse(const char *name, size_t len)
{
    dg_str_t s = {name, len};
    for (int i = 0; i < DG_CODEC_COUNT_; i++) {
        if (dg_str_ieq_c(s, codec_names[i])) {
            return i;
        }
    }
    return dg_str_ieq_c(s, "x-gzip") ? DG_CODEC_GZIP : -1;
}

int dg_codec_default_level(dg_codec_id_t id)
{
    (void)id;
    return 1;
}

void dg_codec_level_range(dg_codec_id_t id, int *out_min, int *out_max)
{
    switch (id) {
    case DG_CODEC_GZIP:
        *out_min = 1;
        *out_max = 9;
        break;
    case DG_CODEC_ZSTD:
        *out_min = 1;
        *out_max = ZSTD_maxCLevel();
        break;
    case DG_CODEC_BR:
        *out_min = 0;
        *out_max = 11;
        break;
    default:
        *out_min = 0;
        *out_max = 0;
        break;
    }
}

dg_rc_t dg_codec_new(dg_codec_id_t id, int level, dg_codec_t **out)
{
    *out = NULL;
    int lo, hi;
    if ((unsigned)id >= DG_CODEC_COUNT_) {
        return DG_CONFIG;
    }
    dg_codec_level_range(id, &lo, &hi);
    if (id != DG_CODEC_IDENTITY && (level < lo || level > hi)) {
        return DG_CONFIG;
    }
    dg_codec_t *c = calloc(1, sizeof *c);
    if (!c) {
        return DG_NOMEM;
    }
    c->id = id;
    switch (id) {
    case DG_CODEC_GZIP:
        /* windowBits 15 + 16 selects the gzip container; memLevel 8 is zlib's default. */
        if (deflateInit2(&c->u.z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(c);
            return DG_NOMEM;
        }
        break;
    case DG_CODEC_ZSTD:
        c->u.zstd = ZSTD_createCCtx();
        if (!c->u.zstd ||
            ZSTD_isError(ZSTD_CCtx_setParameter(c->u.zstd, ZSTD_c_compressionLevel, level))) {
            ZSTD_freeCCtx(c->u.zstd);
            free(c);
            return DG_NOMEM;
        }
        break;
    case DG_CODEC_BR:
        c->u.br = BrotliEncoderCreateInstance(NULL, NULL, NULL);
        if (!c->u.br || !BrotliEncoderSetParameter(c->u.br, BROTLI_PARAM_QUALITY, (uint32_t)level)) {
            if (c->u.br) {
                BrotliEncoderDestroyInstance(c->u.br);
            }
            free(c);
            return DG_NOMEM;
        }
        break;
    default:
        break;
    }
    *out = c;
    return DG_OK;
}

/* Room the compressors are offered per round; the buffer grows in these steps. */
enum { CODEC_STEP = 64 * 1024 };

static dg_rc_t run_gzip(dg_codec_t *c, const void *in, size_t len, codec_op op, dg_buf_t *out)
{
    z_stream *z = &c->u.z;
    int flush = op == OP_WRITE ? Z_NO_FLUSH : op == OP_FLUSH ? Z_SYNC_FLUSH : Z_FINISH;
    const Bytef *p = in;
    for (;;) {
        /* zlib counts in uInt: feed at most 1 GiB per round. */
        uInt take = len > (1u << 30) ? (1u << 30) : (uInt)len;
        bool last = take == len;
        z->next_in = (Bytef *)(uintptr_t)p;
        z->avail_in = take;
        /* With room left over after a call, zlib has consumed all input and emitted all it can. */
        do {
            dg_rc_t rc = dg_buf_reserve(out, CODEC_STEP);
            if (rc != DG_OK) {
                return rc;
            }
            z->next_out = (Bytef *)out->p + out->len;
            z->avail_out = CODEC_STEP;
            if (deflate(z, last ? flush : Z_NO_FLUSH) == Z_STREAM_ERROR) {
                return DG_INTERNAL;
            }
            out->len += CODEC_STEP - z->avail_out;
            out->p[out->len] = '\0';
        } while (z->avail_out == 0);
        p += take;
        len -= take;
        if (last) {
            return DG_OK;
        }
    }
}

static dg_rc_t run_zstd(dg_codec_t *c, const void *in, size_t len, codec_op op, dg_buf_t *out)
{
    ZSTD_EndDirective mode = op == OP_WRITE ? ZSTD_e_continue : op == OP_FLUSH ? ZSTD_e_flush : ZSTD_e_end;
    ZSTD_inBuffer ib = {in, len, 0};
    for (;;) {
        dg_rc_t rc = dg_buf_reserve(out, CODEC_STEP);
        if (rc != DG_OK) {
            return rc;
        }
        ZSTD_outBuffer ob = {out->p + out->len, CODEC_STEP, 0};
        size_t left = ZSTD_compressStream2(c->u.zstd, &ob, &ib, mode);
        if (ZSTD_isError(left)) {
            return DG_INTERNAL;
        }
        out->len += ob.pos;
        out->p[out->len] = '\0';
        if (mode == ZSTD_e_continue ? ib.pos == ib.size : left == 0) {
            return DG_OK;
        }
    }
}

static dg_rc_t run_br(dg_codec_t *c, const void *in, size_t len, codec_op op, dg_buf_t *out)
{
    BrotliEncoderOperation mode = op == OP_WRITE   ? BROTLI_OPERATION_PROCESS
                                  : op == OP_FLUSH ? BROTLI_OPERATION_FLUSH
                                                   : BROTLI_OPERATION_FINISH;
    const uint8_t *next_in = in;
    size_t avail_in = len;
    for (;;) {
        dg_rc_t rc = dg_buf_reserve(out, CODEC_STEP);
        if (rc != DG_OK) {
            return rc;
        }
        uint8_t *next_out = (uint8_t *)out->p + out->len;
        size_t avail_out = CODEC_STEP;
        if (!BrotliEncoderCompressStream(c->u.br, mode, &avail_in, &next_in, &avail_out, &next_out,
                                         NULL)) {
            return DG_INTERNAL;
        }
        out->len += CODEC_STEP - avail_out;
        out->p[out->len] = '\0';
        bool done = mode == BROTLI_OPERATION_FINISH ? BrotliEncoderIsFinished(c->u.br)
                    : mode == BROTLI_OPERATION_FLUSH
                        ? avail_in == 0 && !BrotliEncoderHasMoreOutput(c->u.br)
                        : avail_in == 0;
        if (done) {
            return DG_OK;
        }
    }
}

static dg_rc_t run(dg_codec_t *c, const void *in, size_t len, codec_op op, dg_buf_t *out)
{
    if (c->finished) {
        return DG_INTERNAL;
    }
    if (op == OP_FINISH) {
        c->finished = 1;
    }
    switch (c->id) {
    case DG_CODEC_GZIP:
        return run_gzip(c, in, len, op, out);
    case DG_CODEC_ZSTD:
        return run_zstd(c, in, len, op, out);
    case DG_CODEC_BR:
        return run_br(c, in, len, op, out);
    default:
        return op == OP_WRITE ? dg_buf_append(out, in, len) : DG_OK;
    }
}

dg_rc_t dg_codec_write(dg_codec_t *c, const void *in, size_t len, dg_buf_t *out)
{
    return len ? run(c, in, len, OP_WRITE, out) : DG_OK;
}

dg_rc_t dg_codec_flush(dg_codec_t *c, dg_buf_t *out)
{
    return run(c, NULL, 0, OP_FLUSH, out);
}

dg_rc_t dg_codec_finish(dg_codec_t *c, dg_buf_t *out)
{
    return run(c, NULL, 0, OP_FINISH, out);
}

void dg_codec_free(dg_codec_t *c)
{
    if (!c) {
        return;
    }
    switch (c->id) {
    case DG_CODEC_GZIP:
        deflateEnd(&c->u.z);
        break;
    case DG_CODEC_ZSTD:
        ZSTD_freeCCtx(c->u.zstd);
        break;
    case DG_CODEC_BR:
        BrotliEncoderDestroyInstance(c->u.br);
        break;
    default:
        break;
    }
    free(c);
}
