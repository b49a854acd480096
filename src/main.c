/* duckgate: argv -> command dispatch, nothing else. */
#include "cli/cli.h"

int main(int argc, char **argv, char **envp)
{
    return dg_cli_main(argc, argv, envp);
}
