// A fault-injecting LD_PRELOAD library for the fault tests (built by the tests with the C
// compiler; see Tests/SegTestSupport/Faults.swift). It wraps the libc calls the tool's file IO
// goes through and, when an environment variable asks, makes a real fault happen at an exact
// point. Paths are matched with fnmatch(3) (a `*` also matches `/`).
//
//   UNET_FAULT_ENOSPC=GLOB:BYTES     writes to files matching GLOB fail with ENOSPC once BYTES
//                                    bytes in all have gone to such files (the write that
//                                    crosses the limit is cut short first, as on a full disk)
//   UNET_FAULT_KILL=CALL:GLOB:N      SIGKILL the process at the N-th CALL (write, fsync or
//                                    rename; for rename GLOB matches the destination) on a
//                                    matching file, before the call runs
//   UNET_FAULT_TRUNCATE=GLOB:N:BYTES at the N-th open of a matching file, truncate it to BYTES
//                                    on disk first (another process cutting it while we read)
//   UNET_FAULT_REPLACE=GLOB:N:SOURCE at the N-th open of a matching file, rename SOURCE over
//                                    it first (another process replacing it while we read)
//
// Not part of any Swift target; never linked into the tool.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static pthread_mutex_t fault_mutex = PTHREAD_MUTEX_INITIALIZER;
static long long enospc_written = 0;
static int kill_count = 0;
static int truncate_count = 0;
static int replace_count = 0;

/// Splits "A:B:C" into at most `n` fields (the last takes the rest); returns the count.
static int fields(const char *spec, char out[][1024], int n) {
    int k = 0;
    const char *p = spec;
    while (k < n) {
        const char *colon = k == n - 1 ? NULL : strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        if (len >= 1024) len = 1023;
        memcpy(out[k], p, len);
        out[k][len] = '\0';
        k++;
        if (!colon) break;
        p = colon + 1;
    }
    return k;
}

static int fd_path(int fd, char *path, size_t cap) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, cap - 1);
    if (n < 0) return 0;
    path[n] = '\0';
    return 1;
}

static void maybe_kill(const char *call, const char *path) {
    const char *spec = getenv("UNET_FAULT_KILL");
    if (spec == NULL || path == NULL) return;
    char f[3][1024];
    if (fields(spec, f, 3) != 3 || strcmp(f[0], call) != 0 || fnmatch(f[1], path, 0) != 0) return;
    pthread_mutex_lock(&fault_mutex);
    int n = ++kill_count;
    pthread_mutex_unlock(&fault_mutex);
    if (n == atoi(f[2])) raise(SIGKILL);
}

/// How many of `count` bytes may go to `fd` before the disk is "full" (count if no limit).
static size_t allowance(int fd, size_t count, int *full) {
    *full = 0;
    const char *spec = getenv("UNET_FAULT_ENOSPC");
    if (spec == NULL) return count;
    char path[4096];
    char f[2][1024];
    if (fields(spec, f, 2) != 2 || !fd_path(fd, path, sizeof path) || fnmatch(f[0], path, 0) != 0) return count;
    long long limit = atoll(f[1]);
    pthread_mutex_lock(&fault_mutex);
    long long left = limit - enospc_written;
    size_t allowed = left <= 0 ? 0 : ((long long)count < left ? count : (size_t)left);
    enospc_written += (long long)allowed;
    pthread_mutex_unlock(&fault_mutex);
    if (allowed == 0 && count > 0) *full = 1;
    return allowed;
}

static void on_open(const char *path) {
    if (path == NULL) return;
    const char *spec = getenv("UNET_FAULT_TRUNCATE");
    char f[3][1024];
    if (spec != NULL && fields(spec, f, 3) == 3 && fnmatch(f[0], path, 0) == 0) {
        pthread_mutex_lock(&fault_mutex);
        int n = ++truncate_count;
        pthread_mutex_unlock(&fault_mutex);
        if (n == atoi(f[1])) truncate(path, atoll(f[2]));
    }
    spec = getenv("UNET_FAULT_REPLACE");
    if (spec != NULL && fields(spec, f, 3) == 3 && fnmatch(f[0], path, 0) == 0) {
        pthread_mutex_lock(&fault_mutex);
        int n = ++replace_count;
        pthread_mutex_unlock(&fault_mutex);
        if (n == atoi(f[1])) {
            int (*real_rename)(const char *, const char *) = dlsym(RTLD_NEXT, "rename");
            real_rename(f[2], path);
        }
    }
}

ssize_t write(int fd, const void *buf, size_t count) {
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) real = dlsym(RTLD_NEXT, "write");
    if (fd > 2) {
        char path[4096];
        if (getenv("UNET_FAULT_KILL") && fd_path(fd, path, sizeof path)) maybe_kill("write", path);
        int full;
        size_t allowed = allowance(fd, count, &full);
        if (full) {
            errno = ENOSPC;
            return -1;
        }
        return real(fd, buf, allowed);
    }
    return real(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = dlsym(RTLD_NEXT, "pwrite");
    int full;
    size_t allowed = fd > 2 ? allowance(fd, count, &full) : (full = 0, count);
    if (full) {
        errno = ENOSPC;
        return -1;
    }
    return real(fd, buf, allowed, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) { return pwrite(fd, buf, count, offset); }

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    static ssize_t (*real)(int, const struct iovec *, int);
    if (!real) real = dlsym(RTLD_NEXT, "writev");
    if (fd > 2 && iovcnt > 0 && getenv("UNET_FAULT_ENOSPC")) {
        // Rare in our code: pass the first buffer through write() so the limit applies.
        return write(fd, iov[0].iov_base, iov[0].iov_len);
    }
    return real(fd, iov, iovcnt);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = dlsym(RTLD_NEXT, "fsync");
    char path[4096];
    if (getenv("UNET_FAULT_KILL") && fd_path(fd, path, sizeof path)) maybe_kill("fsync", path);
    return real(fd);
}

int rename(const char *from, const char *to) {
    static int (*real)(const char *, const char *);
    if (!real) real = dlsym(RTLD_NEXT, "rename");
    maybe_kill("rename", to);
    return real(from, to);
}

int open(const char *path, int flags, ...) {
    static int (*real)(const char *, int, ...);
    if (!real) real = dlsym(RTLD_NEXT, "open");
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    if ((flags & O_ACCMODE) == O_RDONLY) on_open(path);
    return real(path, flags, mode);
}

// The same function under its large-file name.
int open64(const char *path, int flags, ...) __attribute__((alias("open")));
