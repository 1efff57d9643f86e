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
#include <string.h>

static volatile sig_atomic_t stop_signal = 0;

static void on_stop_signal(int sig) {
    stop_signal = sig;
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

int CSystemShims_stop_signal(void) { return (int)stop_signal; }
