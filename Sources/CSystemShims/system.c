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
