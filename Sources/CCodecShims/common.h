// Small helpers shared by the shim files. Not part of the module's header.
#ifndef CCODECSHIMS_COMMON_H
#define CCODECSHIMS_COMMON_H

#include <stddef.h>
#include <stdint.h>

/// Copies `text` into `dst` (capacity `cap`), truncating, always NUL-terminated, and replaces
/// newlines with spaces so every message stays one line.
void shim_copy(char *dst, size_t cap, const char *text);

/// Appends "; " and `text` to `dst` when there is room (for collecting warnings).
void shim_append(char *dst, size_t cap, const char *text);

/// Grows a malloc'ed buffer to hold at least `needed` bytes (doubling). Returns 0 on success.
int shim_grow(uint8_t **data, size_t *capacity, size_t needed);

#endif
