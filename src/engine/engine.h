/* The engine pool as the HTTP front sees it: supervised engine processes, each serving `slots`
 * concurrent queries over one socketpair per slot (engine/frame.h), and the admission gate in
 * front of them.
 *
 * The front never runs DuckDB: engine processes are this same binary re-executed as
 * `duckgate engine` (hidden subcommand) with the slot sockets inherited, an address-space cap
 * and PR_SET_NO_NEW_PRIVS. A dead engine is restarted with backoff; only the requests it was
 * serving fail (DG_ENGINE_FAILED).
 *
 * Thread-safe: every function may be called from any HTTP thread. A leased dg_slot_t is
 * confined to the thread that acquired it until it is released. */
#ifndef DG_ENGINE_H
#define DG_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/rc.h"
#include "engine/frame.h"

typedef struct dg_engines dg_engines_t;
typedef struct dg_slot dg_slot_t;

typedef struct dg_engines_opts {
    const dg_config_t *cfg;        /* borrowed; must outlive the pool */
    const dg_resources_t *res;     /* borrowed; must outlive the pool */
    const char *self_exe;          /* path of this binary ("/proc/self/exe" is fine) */
} dg_engines_opts_t;

/* Read-write databases (cfg->read_write_databases, DESIGN §4) are opened READ_WRITE by this
 * engine alone; the other engines do not open them, so every request for one must lease a slot
 * of this engine (dg_engines_acquire_on). */
#define DG_ENGINES_RW_OWNER 0
/* True when db is listed in cfg->read_write_databases. Pure; any thread. */
bool dg_engines_is_read_write(const dg_config_t *cfg, const char *db);

/* Starts cfg->engines engine processes and waits until each has opened every database of
 * cfg->data_dir (or failed: DG_IO with the engine's message; DG_CONFIG when
 * read_write_databases names a database that is not served). */
dg_rc_t dg_engines_start(const dg_engines_opts_t *opts, dg_engines_t **out, dg_error_t *err);
/* Stops admitting, waits up to drain_ms for leased slots to come back, then terminates the
 * engines and frees the pool. NULL is allowed. */
void dg_engines_stop(dg_engines_t *p, int64_t drain_ms);
/* True when every engine is up and the pool is not draining. */
bool dg_engines_ready(dg_engines_t *p);

/* Leases a free slot, waiting in the bounded queue up to the configured queue timeout.
 * DG_OVERLOADED when the queue is full or the wait timed out (*out_retry_after_s gets a hint);
 * DG_DRAINING when stopping; DG_CLIENT_GONE when client_fd (>= 0) hung up while queued, so a
 * departed client does not keep its place in the queue. */
dg_rc_t dg_engines_acquire(dg_engines_t *p, int client_fd, dg_slot_t **out,
                           int *out_retry_after_s);
/* Like dg_engines_acquire, but only a slot of engine engine_idx (-1 = any engine): databases
 * served read-write live in one engine only. It waits in the same bounded FIFO queue; a waiter
 * for engine k keeps its place but does not hold up later waiters that can take a slot of
 * another engine. DG_INTERNAL when engine_idx is out of range. */
dg_rc_t dg_engines_acquire_on(dg_engines_t *p, int engine_idx, int client_fd, dg_slot_t **out,
                              int *out_retry_after_s);
/* Leases a free slot of engine idx without waiting (scrape-time stats): DG_OVERLOADED when that
 * engine has no free slot, is down, or requests are queued (they go first); DG_DRAINING. */
dg_rc_t dg_engines_try_acquire(dg_engines_t *p, int idx, dg_slot_t **out);
/* Sends a REQ frame. The engine-side deadline comes from the request's timeout_ms; the front
 * kills the engine when no END/ERROR arrived by deadline_ms (monotonic ms) + kill grace
 * (deadline_ms <= 0: never). One request at a time: read it to END/ERROR (or release the slot)
 * before the next send. DG_ENGINE_FAILED when the engine is gone, DG_BODY_TOO_LARGE when len >
 * DG_FRAME_MAX_PAYLOAD, DG_INTERNAL when the previous request was not finished. */
dg_rc_t dg_slot_send(dg_slot_t *s, const char *req_json, size_t len, int64_t deadline_ms);
/* Reads the next frame into payload. Waits at most until the kill deadline, also watching
 * client_fd (>= 0) for the client hanging up. Returns DG_OK with *out_type set;
 * DG_ENGINE_FAILED when the engine died (it is restarted) or broke the protocol; DG_TIMEOUT when
 * the engine had to be killed at the deadline; DG_CLIENT_GONE when client_fd hung up (a CANCEL
 * was sent; release the slot, which drains the rest). payload's cap must be at least
 * DG_FRAME_MAX_PAYLOAD: a larger frame is a protocol error that costs the engine its life. */
dg_rc_t dg_slot_read(dg_slot_t *s, int client_fd, dg_frame_type_t *out_type, dg_buf_t *payload);
/* Sends CANCEL (idempotent). */
void dg_slot_cancel(dg_slot_t *s);
/* Returns the slot to the pool. If the request is still running, cancels it and drains its
 * frames first (bounded by the kill deadline). NULL is allowed. */
void dg_engines_release(dg_engines_t *p, dg_slot_t *s);

/* Pool counters for /metrics and tests. */
typedef struct dg_engines_stats {
    int engines_up;
    int slots_total, slots_busy, queue_depth;
    uint64_t restarts, kills;
} dg_engines_stats_t;
void dg_engines_stats(dg_engines_t *p, dg_engines_stats_t *out);
/* Pids of the engine processes (for tests and logs); returns how many were written. */
int dg_engines_pids(dg_engines_t *p, int *out_pids, int max);

/* Entry point of the `duckgate engine` subcommand (the engine process itself). */
int dg_engine_main(int argc, char **argv);

#endif
