#include "CSystemShims.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

int CSystemShims_set_malloc_thresholds(long mmap_threshold, long trim_threshold) {
#if defined(__GLIBC__)
    int ok = mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold);
    ok &= mallopt(M_TRIM_THRESHOLD, (int)trim_threshold);
    return ok ? 0 : -1;
#else
    (void)mmap_threshold;
    (void)trim_threshold;
    return -1;
#endif
}

#include <signal.h>
#include <stdatomic.h>
#include <string.h>

/* Written by the signal handler (on whichever thread takes the signal) and read by the training
   thread: a lock-free atomic, which is async-signal-safe. (A volatile sig_atomic_t is only safe
   within one thread; ThreadSanitizer reported the cross-thread race.) */
static _Atomic int stop_signal = 0;
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the stop flag must be a lock-free atomic");

static void on_stop_signal(int sig) {
    atomic_store(&stop_signal, sig);
    /* A second signal of the same kind takes the default action (terminates at once). */
    signal(sig, SIG_DFL);
}

int CSystemShims_install_stop_handlers(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    int rc = sigaction(SIGINT, &action, NULL);
    rc |= sigaction(SIGTERM, &action, NULL);
    return rc == 0 ? 0 : -1;
}

int CSystemShims_stop_signal(void) { return atomic_load(&stop_signal); }

#if defined(__linux__)
#include <sys/prctl.h>
#include <unistd.h>
#endif

int CSystemShims_die_with_parent(int parent) {
#if defined(__linux__)
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return -1;
    return getppid() == (pid_t)parent ? 0 : 1;
#else
    (void)parent;
    return -1;
#endif
}
