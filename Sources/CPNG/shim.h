// Only includes the system header: this module has no API of its own.
#include <png.h>
