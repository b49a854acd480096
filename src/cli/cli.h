/* The command line: a table of subcommands (serve, config check, exec, version, help and the
 * hidden engine). Called once from main(). */
#ifndef DG_CLI_H
#define DG_CLI_H

/* Dispatches argv[1] to its command and returns the process exit status: 0 success, 1 failure
 * at run time, 2 usage or configuration error. envp is the process environment. */
int dg_cli_main(int argc, char **argv, char **envp);

#endif
