// Process-level settings that the C library offers and Swift's Glibc module does not export.
// No stable API; only the unet executable imports it.
#ifndef CSYSTEMSHIMS_H
#define CSYSTEMSHIMS_H

/// Sets glibc's mmap and trim thresholds (bytes) so large buffers are reused from the heap
/// rather than mapped and zeroed by the kernel on every allocation. Returns 0 on success, -1
/// where the C library has no mallopt.
int CSystemShims_set_malloc_thresholds(long mmap_threshold, long trim_threshold);

#endif
