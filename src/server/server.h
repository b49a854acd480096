/* The serving process: wires config, resources, the engine pool and the HTTP front together,
 * runs until SIGTERM/SIGINT and drains. Called once, from the main thread, by `duckgate serve`. */
#ifndef DG_SERVER_H
#define DG_SERVER_H

#include "config/config.h"

/* Runs the server with a loaded config (borrowed) and the process environment (for
 * DUCKDB_MEMORY_LIMIT). Returns the process exit status: 0 after a clean drain, 1 when
 * startup failed (the reason is logged). */
int dg_server_run(const dg_config_t *cfg, char **envp);

#endif
