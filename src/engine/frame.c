/* The frame codec (engine/frame.h): an 8-byte header (uint32 LE length, type, flags, reserved)
 * and a payload. Invariants: a frame never carries more than DG_FRAME_MAX_PAYLOAD bytes, and a
 * reader never allocates more than the payload buffer's cap, so a corrupt or hostile length
 * cannot make either side allocate without bound. Thread-safe: no shared state. */
#include "engine/frame.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "core/dgtime.h"
#include "core/ioutil.h"
#include "engine/engine_int.h"

void dg_frame_header_encode(uint8_t out[DG_FRAME_HEADER_LEN], dg_frame_type_t type, uint32_t len)
{
    out[0] = (uint8_t)(len & 0xffu);
    out[1] = (uint8_t)((len >> 8) & 0xffu);
    out[2] = (uint8_t)((len >> 16) & 0xffu);
    out[3] = (uint8_t)((len >> 24) & 0xffu);
    out[4] = (uint8_t)type;
    out[5] = 0; /* flags: none defined yet */
    out[6] = 0;
    out[7] = 0;
}

dg_rc_t dg_frame_header_decode(const uint8_t in[DG_FRAME_HEADER_LEN], dg_frame_type_t *out_type,
                               uint32_t *out_len)
{
    uint32_t len =
        (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 24;
    uint8_t type = in[4];
    /* Flags are reserved as well: a peer that sets them speaks a protocol we do not know. */
    if (in[5] != 0 || in[6] != 0 || in[7] != 0) {
        return DG_PROTOCOL;
    }
    if (type < DG_FRAME_REQ || type > DG_FRAME_PROGRESS) {
        return DG_PROTOCOL;
    }
    if (len > DG_FRAME_MAX_PAYLOAD) {
        return DG_PROTOCOL;
    }
    *out_type = (dg_frame_type_t)type;
    *out_len = len;
    return DG_OK;
}

dg_rc_t dg_frame_write(int fd, dg_frame_type_t type, const void *payload, uint32_t len)
{
    if (len > DG_FRAME_MAX_PAYLOAD || (len && !payload)) {
        return DG_INTERNAL;
    }
    uint8_t hdr[DG_FRAME_HEADER_LEN];
    dg_frame_header_encode(hdr, type, len);
    /* Small frames go out in one send so that a CANCEL (8 bytes) is never split, which lets
     * the engine's watcher read it without blocking. */
    if (len <= 4096) {
        uint8_t one[DG_FRAME_HEADER_LEN + 4096];
        memcpy(one, hdr, DG_FRAME_HEADER_LEN);
        if (len) {
            memcpy(one + DG_FRAME_HEADER_LEN, payload, len);
        }
        return dg_write_all(fd, one, DG_FRAME_HEADER_LEN + len);
    }
    dg_rc_t rc = dg_write_all(fd, hdr, sizeof hdr);
    if (rc != DG_OK) {
        return rc;
    }
    return dg_write_all(fd, payload, len);
}

/* Reads exactly len bytes, waiting at most until deadline_ms (< 0: no deadline). */
static dg_rc_t read_until(int fd, void *p, size_t len, int64_t deadline_ms)
{
    char *c = p;
    while (len) {
        if (deadline_ms >= 0) {
            int64_t left = deadline_ms - dg_now_ms();
            if (left <= 0) {
                return DG_TIMEOUT;
            }
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            int n = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
            if (n < 0 && errno != EINTR) {
                return DG_IO;
            }
            if (n <= 0) {
                continue;
            }
        }
        ssize_t n = read(fd, c, len);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            return errno == ECONNRESET ? DG_PROTOCOL : DG_IO;
        }
        if (n == 0) {
            return DG_PROTOCOL;
        }
        c += n;
        len -= (size_t)n;
    }
    return DG_OK;
}

dg_rc_t dg_engine__frame_read_until(int fd, dg_frame_type_t *out_type, dg_buf_t *payload,
                                    int64_t deadline_ms)
{
    uint8_t hdr[DG_FRAME_HEADER_LEN];
    dg_frame_type_t type;
    uint32_t len;
    dg_rc_t rc = read_until(fd, hdr, sizeof hdr, deadline_ms);
    if (rc != DG_OK) {
        return rc;
    }
    rc = dg_frame_header_decode(hdr, &type, &len);
    if (rc != DG_OK) {
        return rc;
    }
    dg_buf_reset(payload);
    /* A frame larger than the caller's buffer cannot be skipped safely (the stream would have to
     * be drained byte by byte), so it is a protocol error like a bad header. */
    if (len > payload->cap) {
        return DG_PROTOCOL;
    }
    rc = dg_buf_reserve(payload, len);
    if (rc != DG_OK) {
        return rc == DG_NOMEM ? DG_NOMEM : DG_PROTOCOL;
    }
    rc = read_until(fd, payload->p, len, deadline_ms);
    if (rc != DG_OK) {
        return rc;
    }
    payload->len = len;
    payload->p[len] = '\0';
    *out_type = type;
    return DG_OK;
}

dg_rc_t dg_frame_read(int fd, dg_frame_type_t *out_type, dg_buf_t *payload)
{
    return dg_engine__frame_read_until(fd, out_type, payload, -1);
}
