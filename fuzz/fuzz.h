/* The libFuzzer entry point every target defines; replay_main.c calls it over a corpus when the
 * build has no libFuzzer (the fuzz-replay tests). */
#ifndef DG_FUZZ_H
#define DG_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
