/* The one place that selects the feature-test macros: every .c file includes this first
 * (CMake passes it with -include), so the whole tree sees the same libc surface. */
#ifndef DG_FEAT_H
#define DG_FEAT_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#endif
