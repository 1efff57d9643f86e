#include "CCodecShims.h"
#include "common.h"

#include <stdlib.h>
#include <string.h>

void CCodecShims_free(void *pointer) { free(pointer); }

void shim_copy(char *dst, size_t cap, const char *text) {
    if (dst == NULL || cap == 0) {
        return;
    }
    if (text == NULL) {
        text = "unknown error";
    }
    size_t i = 0;
    for (; i + 1 < cap && text[i] != '\0'; i++) {
        char c = text[i];
        dst[i] = (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
    }
    dst[i] = '\0';
    // Drop trailing blanks and full stops: callers add their own context.
    while (i > 0 && (dst[i - 1] == ' ' || dst[i - 1] == '.')) {
        dst[--i] = '\0';
    }
}

void shim_append(char *dst, size_t cap, const char *text) {
    size_t used = strlen(dst);
    if (used + 3 >= cap) {
        return;
    }
    if (used > 0) {
        dst[used++] = ';';
        dst[used++] = ' ';
        dst[used] = '\0';
    }
    shim_copy(dst + used, cap - used, text);
}

int shim_grow(uint8_t **data, size_t *capacity, size_t needed) {
    if (needed <= *capacity) {
        return 0;
    }
    size_t next = *capacity < 4096 ? 4096 : *capacity;
    while (next < needed) {
        if (next > SIZE_MAX / 2) {
            return 1;
        }
        next *= 2;
    }
    uint8_t *grown = realloc(*data, next);
    if (grown == NULL) {
        return 1;
    }
    *data = grown;
    *capacity = next;
    return 0;
}
