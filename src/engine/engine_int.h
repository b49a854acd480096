/* Internals shared by the files of src/engine: the command line of the engine process, the
 * control-socket handshake and a deadline-aware frame reader used by the front.
 * Not part of the module's contract; nothing outside src/engine includes this. */
#ifndef DG_ENGINE_INT_H
#define DG_ENGINE_INT_H

#include <stdint.h>

#include "core/buf.h"
#include "core/rc.h"
#include "engine/frame.h"

/* Descriptor numbers inside the engine process: the control socket, then one per slot. The
 * pool dup2()s the child's ends onto these numbers between fork and exec. */
#define DG_ENGINE__CTL_FD 3
#define DG_ENGINE__SLOT_FD0 4

/* Cap of a REQ payload read by an engine slot (SQL is capped far lower by the front). */
#define DG_ENGINE__MAX_REQ (4u << 20)
/* Cap of the init JSON on the control socket. */
#define DG_ENGINE__MAX_INIT (1u << 20)

/* Like dg_frame_read, but gives up with DG_TIMEOUT when deadline_ms (monotonic; < 0 = never)
 * passes before the whole frame arrived, so a stopped engine cannot hang the reader inside a
 * partially written frame. */
dg_rc_t dg_engine__frame_read_until(int fd, dg_frame_type_t *out_type, dg_buf_t *payload,
                                    int64_t deadline_ms);

#endif
