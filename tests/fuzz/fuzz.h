/* fuzz.h — the one entry point every fuzz target defines, called by
 * libFuzzer (-Dfuzz=true) or by replay.c over a corpus. A target aborts
 * (or trips a sanitizer) when a property it checks fails. */
#ifndef EXPBUS_FUZZ_H
#define EXPBUS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
