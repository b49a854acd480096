/* Internals shared by the files of src/limit. */
#ifndef DG_LIMIT_INT_H
#define DG_LIMIT_INT_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of in[0..len) under the key (k0, k1): keyed so clients cannot aim at a slot. */
uint64_t dg_limit__siphash(uint64_t k0, uint64_t k1, const unsigned char *in, size_t len);

#endif
