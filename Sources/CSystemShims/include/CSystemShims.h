// Process-level settings that the C library offers and Swift's Glibc module does not export.
// No stable API; only the unet executable imports it.
#ifndef CSYSTEMSHIMS_H
#define CSYSTEMSHIMS_H

/// Sets glibc's mmap and trim thresholds (bytes) so large buffers are reused from the heap
/// rather than mapped and zeroed by the kernel on every allocation. Returns 0 on success, -1
/// where the C library has no mallopt.
int CSystemShims_set_malloc_thresholds(long mmap_threshold, long trim_threshold);

/// Catches SIGINT and SIGTERM: the first one only records the signal (read it with
/// CSystemShims_stop_signal) so a long job can stop cleanly at its next safe point; a second
/// one of the same kind terminates the process. Returns 0 on success, -1 on failure.
int CSystemShims_install_stop_handlers(void);

/// The signal number caught by the stop handlers, or 0 while none has arrived.
int CSystemShims_stop_signal(void);

/// Asks the kernel to send SIGKILL to this process when its parent exits (Linux prctl
/// PR_SET_PDEATHSIG), then checks that the parent is still `parent` (it may have exited before
/// the request). Returns 0 when the request holds, 1 when the parent is already gone, -1 where
/// the system has no such request.
int CSystemShims_die_with_parent(int parent);

#endif
