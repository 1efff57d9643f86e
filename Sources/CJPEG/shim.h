// Only includes the system header: this module has no API of its own.
#include <stdio.h>
#include <stddef.h>
#include <jpeglib.h>
#include <jerror.h>
