/* Internal to src/config: helpers shared by the settings table and resource detection. */
#ifndef DG_CONFIG_INT_H
#define DG_CONFIG_INT_H

/* Value of NAME in a NULL-terminated "NAME=value" environment array, or NULL. envp may be NULL. */
const char *dg_config__env_get(char **envp, const char *name);

#endif
