// libtiff over in-memory streams, with per-handle error and warning handlers (never the global
// ones) and fixed-arity wrappers around the variadic TIFFGetField/TIFFSetField.
#include "CCodecShims.h"
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tiffio.h>

// MARK: - Messages

typedef struct {
    char error[512];
    char warnings[512];
    int error_count;
} tiff_messages;

static int tiff_error_handler(TIFF *tif, void *user_data, const char *module, const char *fmt,
                              va_list ap) {
    (void)tif;
    tiff_messages *m = user_data;
    if (m == NULL) {
        return 1;
    }
    char text[400];
    vsnprintf(text, sizeof text, fmt, ap);
    if (m->error_count == 0) {  // keep the first error: later ones are usually consequences
        char line[512];
        if (module != NULL && module[0] != '\0') {
            snprintf(line, sizeof line, "%s: %s", module, text);
        } else {
            snprintf(line, sizeof line, "%s", text);
        }
        shim_copy(m->error, sizeof m->error, line);
    }
    m->error_count++;
    return 1;  // handled: do not call the global handler (which would print)
}

static int tiff_warning_handler(TIFF *tif, void *user_data, const char *module, const char *fmt,
                                va_list ap) {
    (void)tif;
    (void)module;
    tiff_messages *m = user_data;
    if (m == NULL) {
        return 1;
    }
    char text[256];
    vsnprintf(text, sizeof text, fmt, ap);
    shim_append(m->warnings, sizeof m->warnings, text);
    return 1;
}

static TIFFOpenOptions *tiff_options(tiff_messages *messages, uint64_t max_single_alloc) {
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (opts == NULL) {
        return NULL;
    }
    if (max_single_alloc > 0) {
        TIFFOpenOptionsSetMaxSingleMemAlloc(opts, (tmsize_t)max_single_alloc);
    }
    TIFFOpenOptionsSetErrorHandlerExtR(opts, tiff_error_handler, messages);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, tiff_warning_handler, messages);
    return opts;
}

static void tiff_fail(char *message, size_t cap, const tiff_messages *m, const char *fallback) {
    shim_copy(message, cap, m->error_count > 0 ? m->error : fallback);
}

// MARK: - Memory streams

typedef struct {
    uint8_t *data;      // for readers: the caller's bytes (not owned)
    size_t size;
    size_t capacity;    // writers only
    size_t offset;
    int writable;
    int failed;
} tiff_stream;

static tmsize_t tiff_stream_read(thandle_t h, void *buf, tmsize_t count) {
    tiff_stream *s = (tiff_stream *)h;
    if (count < 0 || s->offset >= s->size) {
        return 0;
    }
    size_t n = (size_t)count;
    if (n > s->size - s->offset) {
        n = s->size - s->offset;
    }
    memcpy(buf, s->data + s->offset, n);
    s->offset += n;
    return (tmsize_t)n;
}

static tmsize_t tiff_stream_write(thandle_t h, void *buf, tmsize_t count) {
    tiff_stream *s = (tiff_stream *)h;
    if (!s->writable || count < 0) {
        return -1;
    }
    size_t end = s->offset + (size_t)count;
    if (shim_grow(&s->data, &s->capacity, end) != 0) {
        s->failed = 1;
        return -1;
    }
    if (s->offset > s->size) {  // a seek past the end leaves a zero-filled gap
        memset(s->data + s->size, 0, s->offset - s->size);
    }
    memcpy(s->data + s->offset, buf, (size_t)count);
    s->offset = end;
    if (end > s->size) {
        s->size = end;
    }
    return count;
}

static toff_t tiff_stream_seek(thandle_t h, toff_t offset, int whence) {
    tiff_stream *s = (tiff_stream *)h;
    uint64_t base = whence == SEEK_CUR ? s->offset : (whence == SEEK_END ? s->size : 0);
    uint64_t target = base + offset;
    if (target > (uint64_t)SIZE_MAX / 2) {
        return (toff_t)-1;
    }
    s->offset = (size_t)target;
    return target;
}

static int tiff_stream_close(thandle_t h) {
    (void)h;
    return 0;
}

static toff_t tiff_stream_size(thandle_t h) { return ((tiff_stream *)h)->size; }

static int tiff_stream_map(thandle_t h, void **base, toff_t *size) {
    tiff_stream *s = (tiff_stream *)h;
    if (s->writable) {
        return 0;
    }
    *base = s->data;
    *size = s->size;
    return 1;
}

static void tiff_stream_unmap(thandle_t h, void *base, toff_t size) {
    (void)h;
    (void)base;
    (void)size;
}

// MARK: - Reader

struct CCodecShims_tiff_reader {
    tiff_stream stream;
    tiff_messages messages;
    TIFF *tif;
    CCodecShims_tiff_page page;
};

int CCodecShims_tiff_open(const uint8_t *data, size_t size, uint64_t max_single_alloc,
                          CCodecShims_tiff_reader **out, int *pages, char *message,
                          size_t message_capacity) {
    *out = NULL;
    *pages = 0;
    int little = size >= 4 && data[0] == 'I' && data[1] == 'I' && (data[2] == 42 || data[2] == 43) && data[3] == 0;
    int big = size >= 4 && data[0] == 'M' && data[1] == 'M' && data[2] == 0 && (data[3] == 42 || data[3] == 43);
    if (!little && !big) {
        shim_copy(message, message_capacity, "not a TIFF file (bad header)");
        return CCodecShims_corrupt;
    }
    CCodecShims_tiff_reader *r = calloc(1, sizeof *r);
    if (r == NULL) {
        shim_copy(message, message_capacity, "out of memory");
        return CCodecShims_nomem;
    }
    r->stream.data = (uint8_t *)data;
    r->stream.size = size;
    TIFFOpenOptions *opts = tiff_options(&r->messages, max_single_alloc);
    if (opts == NULL) {
        free(r);
        shim_copy(message, message_capacity, "out of memory");
        return CCodecShims_nomem;
    }
    r->tif = TIFFClientOpenExt("memory", "r", (thandle_t)&r->stream, tiff_stream_read,
                               tiff_stream_write, tiff_stream_seek, tiff_stream_close,
                               tiff_stream_size, tiff_stream_map, tiff_stream_unmap, opts);
    TIFFOpenOptionsFree(opts);
    if (r->tif == NULL) {
        tiff_fail(message, message_capacity, &r->messages, "cannot open TIFF");
        free(r);
        return CCodecShims_corrupt;
    }
    tdir_t count = TIFFNumberOfDirectories(r->tif);
    if (count == 0 || r->messages.error_count > 0) {
        tiff_fail(message, message_capacity, &r->messages, "TIFF has no image directory");
        CCodecShims_tiff_close(r);
        return CCodecShims_corrupt;
    }
    *pages = (int)count;
    *out = r;
    return CCodecShims_ok;
}

int CCodecShims_tiff_page_info(CCodecShims_tiff_reader *r, int index,
                               CCodecShims_tiff_page *page, char *message,
                               size_t message_capacity) {
    r->messages.error_count = 0;
    if (!TIFFSetDirectory(r->tif, (tdir_t)index)) {
        tiff_fail(message, message_capacity, &r->messages, "cannot read the page's directory");
        return CCodecShims_corrupt;
    }
    TIFF *tif = r->tif;
    uint32_t width = 0, height = 0, rows_per_strip = 0, tile_width = 0, tile_height = 0;
    uint16_t spp = 1, bps = 1, format = SAMPLEFORMAT_UINT, planar = PLANARCONFIG_CONTIG;
    uint16_t photometric = PHOTOMETRIC_MINISBLACK, compression = COMPRESSION_NONE;
    uint16_t extra_count = 0;
    uint16_t *extra = NULL;
    if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &width) ||
        !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &height)) {
        tiff_fail(message, message_capacity, &r->messages, "missing image width or length");
        return CCodecShims_corrupt;
    }
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &format);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);
    if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric)) {
        photometric = spp >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
    }
    TIFFGetFieldDefaulted(tif, TIFFTAG_EXTRASAMPLES, &extra_count, &extra);
    int tiled = TIFFIsTiled(tif);
    if (tiled) {
        TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tile_width);
        TIFFGetField(tif, TIFFTAG_TILELENGTH, &tile_height);
    } else {
        TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rows_per_strip);
        if (rows_per_strip == 0 || rows_per_strip > height) {
            rows_per_strip = height;
        }
    }
    if (photometric == PHOTOMETRIC_YCBCR && compression == COMPRESSION_JPEG) {
        // Let libtiff's JPEG codec convert to RGB; raw subsampled YCbCr is not supported.
        TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
        photometric = PHOTOMETRIC_RGB;
    }
    uint16_t *red = NULL, *green = NULL, *blue = NULL;
    int has_colormap = photometric == PHOTOMETRIC_PALETTE &&
                       TIFFGetField(tif, TIFFTAG_COLORMAP, &red, &green, &blue);
    page->width = width;
    page->height = height;
    page->samples_per_pixel = spp;
    page->bits_per_sample = bps;
    page->sample_format = format;
    page->planar_config = planar;
    page->photometric = photometric;
    page->compression = compression;
    page->tiled = tiled;
    page->tile_width = tile_width;
    page->tile_height = tile_height;
    page->rows_per_strip = rows_per_strip;
    page->extra_samples = extra_count;
    page->extra_alpha = extra_count > 0 && extra != NULL &&
                        (extra[0] == EXTRASAMPLE_ASSOCALPHA || extra[0] == EXTRASAMPLE_UNASSALPHA);
    page->has_colormap = has_colormap;
    r->page = *page;
    return CCodecShims_ok;
}

// Copies `rows` rows of `width` pixels from a decoded strip or tile (`src`, rows of `src_row`
// bytes starting at column `x0` of the image) into the planar output. `samples` is the number
// of interleaved samples in `src` (spp for contiguous data, 1 for a single plane) and `plane0`
// the first output plane they go to.
static void tiff_scatter(const uint8_t *src, size_t src_row, uint32_t rows, uint32_t cols,
                         int samples, int bytes, uint8_t *pixels, size_t plane_bytes,
                         uint32_t width, uint32_t y0, uint32_t x0, int plane0) {
    for (uint32_t y = 0; y < rows; y++) {
        const uint8_t *line = src + (size_t)y * src_row;
        for (int s = 0; s < samples; s++) {
            uint8_t *dst = pixels + (size_t)(plane0 + s) * plane_bytes +
                           ((size_t)(y0 + y) * width + x0) * (size_t)bytes;
            if (samples == 1) {
                memcpy(dst, line, (size_t)cols * (size_t)bytes);
                continue;
            }
            const uint8_t *p = line + (size_t)s * (size_t)bytes;
            size_t step = (size_t)samples * (size_t)bytes;
            for (uint32_t x = 0; x < cols; x++) {
                memcpy(dst + (size_t)x * (size_t)bytes, p + (size_t)x * step, (size_t)bytes);
            }
        }
    }
}

static void tiff_expand_bits(const uint8_t *src, uint32_t width, int min_is_white,
                             uint8_t *dst) {
    for (uint32_t x = 0; x < width; x++) {
        int bit = (src[x >> 3] >> (7 - (x & 7))) & 1;
        dst[x] = (uint8_t)((bit ^ min_is_white) ? 255 : 0);
    }
}

int CCodecShims_tiff_read_planar(CCodecShims_tiff_reader *r, uint8_t *pixels,
                                 size_t plane_bytes, char *message, size_t message_capacity) {
    TIFF *tif = r->tif;
    const CCodecShims_tiff_page *pg = &r->page;
    r->messages.error_count = 0;
    int spp = pg->samples_per_pixel;
    int bytes = pg->bits_per_sample == 1 ? 1 : pg->bits_per_sample / 8;
    int contiguous = pg->planar_config != PLANARCONFIG_SEPARATE || spp == 1;
    int samples = contiguous ? spp : 1;
    int planes = contiguous ? 1 : spp;
    int bilevel = pg->bits_per_sample == 1;
    int min_is_white = pg->photometric == PHOTOMETRIC_MINISWHITE;
    uint32_t width = pg->width, height = pg->height;
    if ((size_t)width * height * (size_t)bytes > plane_bytes) {
        shim_copy(message, message_capacity, "output buffer too small");
        return CCodecShims_nomem;
    }
    if (!pg->tiled) {
        tmsize_t scanline = TIFFScanlineSize(tif);
        uint32_t rps = pg->rows_per_strip;
        uint32_t strips_per_plane = (height + rps - 1) / rps;
        tmsize_t strip_size = TIFFStripSize(tif);
        if (scanline <= 0 || strip_size <= 0) {
            tiff_fail(message, message_capacity, &r->messages, "bad strip layout");
            return CCodecShims_corrupt;
        }
        uint8_t *buffer = NULL;
        // A single-sample 8/16/32-bit strip is already in the output layout: decode in place.
        int direct = samples == 1 && !bilevel;
        if (!direct) {
            buffer = malloc((size_t)strip_size);
            if (buffer == NULL) {
                shim_copy(message, message_capacity, "out of memory");
                return CCodecShims_nomem;
            }
        }
        for (int p = 0; p < planes; p++) {
            for (uint32_t s = 0; s < strips_per_plane; s++) {
                uint32_t y0 = s * rps;
                uint32_t rows = height - y0 < rps ? height - y0 : rps;
                tmsize_t want = scanline * (tmsize_t)rows;
                uint32_t strip = (uint32_t)p * strips_per_plane + s;
                uint8_t *dst = direct ? pixels + (size_t)p * plane_bytes +
                                            (size_t)y0 * width * (size_t)bytes
                                      : buffer;
                tmsize_t got = TIFFReadEncodedStrip(tif, strip, dst, want);
                if (got < want) {
                    free(buffer);
                    tiff_fail(message, message_capacity, &r->messages,
                              "strip data is truncated or corrupt");
                    return got < 0 ? CCodecShims_corrupt : CCodecShims_truncated;
                }
                if (direct) {
                    continue;
                }
                if (bilevel) {
                    for (uint32_t y = 0; y < rows; y++) {
                        tiff_expand_bits(buffer + (size_t)y * (size_t)scanline, width,
                                         min_is_white,
                                         pixels + (size_t)p * plane_bytes +
                                             (size_t)(y0 + y) * width);
                    }
                } else {
                    tiff_scatter(buffer, (size_t)scanline, rows, width, samples, bytes, pixels,
                                 plane_bytes, width, y0, 0, p);
                }
            }
        }
        free(buffer);
        return CCodecShims_ok;
    }
    uint32_t tw = pg->tile_width, th = pg->tile_height;
    tmsize_t tile_size = TIFFTileSize(tif);
    tmsize_t tile_row = TIFFTileRowSize(tif);
    if (tw == 0 || th == 0 || tile_size <= 0 || tile_row <= 0) {
        tiff_fail(message, message_capacity, &r->messages, "bad tile layout");
        return CCodecShims_corrupt;
    }
    // A tile may overhang the image, but one far larger than the whole page is a hostile
    // header (the fuzzer found 2^20 × 2^17 tiles: a 134 GB buffer for a 1 kB file).
    size_t page = (size_t)width * height * (size_t)(bytes > 0 ? bytes : 1) * (size_t)samples;
    size_t most = 2 * (page > ((size_t)16 << 20) ? page : ((size_t)16 << 20));
    if ((size_t)tile_size > most) {
        char text[160];
        snprintf(text, sizeof text, "tiles of %u × %u are far larger than the %u × %u image", tw, th, width, height);
        shim_copy(message, message_capacity, text);
        return CCodecShims_corrupt;
    }
    uint8_t *buffer = malloc((size_t)tile_size);
    uint8_t *bits = bilevel ? malloc(tw) : NULL;
    if (buffer == NULL || (bilevel && bits == NULL)) {
        free(buffer);
        free(bits);
        shim_copy(message, message_capacity, "out of memory");
        return CCodecShims_nomem;
    }
    for (int p = 0; p < planes; p++) {
        for (uint32_t y0 = 0; y0 < height; y0 += th) {
            for (uint32_t x0 = 0; x0 < width; x0 += tw) {
                ttile_t tile = TIFFComputeTile(tif, x0, y0, 0, (uint16_t)p);
                if (TIFFReadEncodedTile(tif, tile, buffer, tile_size) < 0) {
                    free(buffer);
                    free(bits);
                    tiff_fail(message, message_capacity, &r->messages,
                              "tile data is truncated or corrupt");
                    return CCodecShims_corrupt;
                }
                uint32_t rows = height - y0 < th ? height - y0 : th;
                uint32_t cols = width - x0 < tw ? width - x0 : tw;
                if (bilevel) {
                    for (uint32_t y = 0; y < rows; y++) {
                        tiff_expand_bits(buffer + (size_t)y * (size_t)tile_row, cols,
                                         min_is_white, bits);
                        memcpy(pixels + (size_t)p * plane_bytes + (size_t)(y0 + y) * width + x0,
                               bits, cols);
                    }
                } else {
                    tiff_scatter(buffer, (size_t)tile_row, rows, cols, samples, bytes, pixels,
                                 plane_bytes, width, y0, x0, p);
                }
            }
        }
    }
    free(buffer);
    free(bits);
    return CCodecShims_ok;
}

int CCodecShims_tiff_colormap(CCodecShims_tiff_reader *r, uint16_t *rgb, size_t count) {
    uint16_t *red = NULL, *green = NULL, *blue = NULL;
    if (!TIFFGetField(r->tif, TIFFTAG_COLORMAP, &red, &green, &blue)) {
        return CCodecShims_corrupt;
    }
    size_t have = (size_t)1 << (r->page.bits_per_sample > 16 ? 16 : r->page.bits_per_sample);
    for (size_t i = 0; i < count; i++) {
        int valid = i < have;
        rgb[i] = valid ? red[i] : 0;
        rgb[count + i] = valid ? green[i] : 0;
        rgb[2 * count + i] = valid ? blue[i] : 0;
    }
    return CCodecShims_ok;
}

const char *CCodecShims_tiff_warnings(const CCodecShims_tiff_reader *r) {
    return r->messages.warnings;
}

void CCodecShims_tiff_close(CCodecShims_tiff_reader *r) {
    if (r == NULL) {
        return;
    }
    if (r->tif != NULL) {
        TIFFClose(r->tif);
    }
    free(r);
}

// MARK: - Writer

struct CCodecShims_tiff_writer {
    tiff_stream stream;
    tiff_messages messages;
    TIFF *tif;
};

int CCodecShims_tiff_writer_create(CCodecShims_tiff_writer **out, char *message,
                                   size_t message_capacity) {
    *out = NULL;
    CCodecShims_tiff_writer *w = calloc(1, sizeof *w);
    if (w == NULL) {
        shim_copy(message, message_capacity, "out of memory");
        return CCodecShims_nomem;
    }
    w->stream.writable = 1;
    TIFFOpenOptions *opts = tiff_options(&w->messages, 0);
    if (opts == NULL) {
        free(w);
        shim_copy(message, message_capacity, "out of memory");
        return CCodecShims_nomem;
    }
    w->tif = TIFFClientOpenExt("memory", "w", (thandle_t)&w->stream, tiff_stream_read,
                               tiff_stream_write, tiff_stream_seek, tiff_stream_close,
                               tiff_stream_size, tiff_stream_map, tiff_stream_unmap, opts);
    TIFFOpenOptionsFree(opts);
    if (w->tif == NULL) {
        tiff_fail(message, message_capacity, &w->messages, "cannot create TIFF writer");
        free(w->stream.data);
        free(w);
        return CCodecShims_corrupt;
    }
    *out = w;
    return CCodecShims_ok;
}

int CCodecShims_tiff_write_page(CCodecShims_tiff_writer *w,
                                const CCodecShims_tiff_page_spec *spec, const uint8_t *pixels,
                                size_t plane_bytes, int page_index, int page_count,
                                char *message, size_t message_capacity) {
    TIFF *tif = w->tif;
    w->messages.error_count = 0;
    int spp = spec->samples_per_pixel;
    int bytes = spec->bits_per_sample / 8;
    uint32_t width = spec->width, height = spec->height;
    int contiguous = spec->planar_config != PLANARCONFIG_SEPARATE || spp == 1;
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, width);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, height);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)spp);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, (uint16_t)spec->bits_per_sample);
    TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, (uint16_t)spec->sample_format);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG,
                 (uint16_t)(contiguous ? PLANARCONFIG_CONTIG : PLANARCONFIG_SEPARATE));
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, (uint16_t)spec->photometric);
    TIFFSetField(tif, TIFFTAG_COMPRESSION, (uint16_t)spec->compression);
    if (spec->compression == COMPRESSION_ADOBE_DEFLATE || spec->compression == COMPRESSION_LZW) {
        TIFFSetField(tif, TIFFTAG_PREDICTOR, (uint16_t)(spec->predictor > 0 ? spec->predictor : 1));
    }
    if (spec->compression == COMPRESSION_ADOBE_DEFLATE) {
        TIFFSetField(tif, TIFFTAG_ZIPQUALITY, 6);
    }
    int base_channels = spec->photometric == PHOTOMETRIC_RGB ? 3 : 1;
    if (spp > base_channels) {
        uint16_t extras[64];
        int n = spp - base_channels;
        if (n > 64) {
            n = 64;
        }
        for (int i = 0; i < n; i++) {
            extras[i] = (spp == 4 && base_channels == 3) ? EXTRASAMPLE_UNASSALPHA
                                                         : EXTRASAMPLE_UNSPECIFIED;
        }
        TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, (uint16_t)n, extras);
    }
    if (page_count > 1) {
        TIFFSetField(tif, TIFFTAG_SUBFILETYPE, FILETYPE_PAGE);
        TIFFSetField(tif, TIFFTAG_PAGENUMBER, (uint16_t)page_index, (uint16_t)page_count);
    }
    size_t samples = contiguous ? (size_t)spp : 1;
    int planes = contiguous ? 1 : spp;
    int status = CCodecShims_ok;
    if (spec->tiled) {
        uint32_t tw = spec->tile_width, th = spec->tile_height;
        TIFFSetField(tif, TIFFTAG_TILEWIDTH, tw);
        TIFFSetField(tif, TIFFTAG_TILELENGTH, th);
        size_t tile_bytes = (size_t)tw * th * samples * (size_t)bytes;
        uint8_t *tile = malloc(tile_bytes);
        if (tile == NULL) {
            shim_copy(message, message_capacity, "out of memory");
            return CCodecShims_nomem;
        }
        for (int p = 0; p < planes && status == CCodecShims_ok; p++) {
            for (uint32_t y0 = 0; y0 < height && status == CCodecShims_ok; y0 += th) {
                for (uint32_t x0 = 0; x0 < width; x0 += tw) {
                    memset(tile, 0, tile_bytes);
                    for (uint32_t y = 0; y < th && y0 + y < height; y++) {
                        for (uint32_t x = 0; x < tw && x0 + x < width; x++) {
                            for (size_t s = 0; s < samples; s++) {
                                const uint8_t *src = pixels + ((size_t)p + s) * plane_bytes +
                                                     ((size_t)(y0 + y) * width + x0 + x) * (size_t)bytes;
                                memcpy(tile + (((size_t)y * tw + x) * samples + s) * (size_t)bytes,
                                       src, (size_t)bytes);
                            }
                        }
                    }
                    ttile_t index = TIFFComputeTile(tif, x0, y0, 0, (uint16_t)p);
                    if (TIFFWriteEncodedTile(tif, index, tile, (tmsize_t)tile_bytes) < 0) {
                        status = CCodecShims_corrupt;
                        break;
                    }
                }
            }
        }
        free(tile);
    } else {
        uint32_t rps = spec->rows_per_strip == 0 || spec->rows_per_strip > height
                           ? (height == 0 ? 1 : height)
                           : spec->rows_per_strip;
        TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, rps);
        size_t row_bytes = (size_t)width * samples * (size_t)bytes;
        uint8_t *strip = malloc(row_bytes * rps + 1);
        if (strip == NULL) {
            shim_copy(message, message_capacity, "out of memory");
            return CCodecShims_nomem;
        }
        uint32_t strips_per_plane = (height + rps - 1) / rps;
        for (int p = 0; p < planes && status == CCodecShims_ok; p++) {
            for (uint32_t s = 0; s < strips_per_plane; s++) {
                uint32_t y0 = s * rps;
                uint32_t rows = height - y0 < rps ? height - y0 : rps;
                for (uint32_t y = 0; y < rows; y++) {
                    for (uint32_t x = 0; x < width; x++) {
                        for (size_t c = 0; c < samples; c++) {
                            const uint8_t *src = pixels + ((size_t)p + c) * plane_bytes +
                                                 ((size_t)(y0 + y) * width + x) * (size_t)bytes;
                            memcpy(strip + (size_t)y * row_bytes + (x * samples + c) * (size_t)bytes,
                                   src, (size_t)bytes);
                        }
                    }
                }
                if (TIFFWriteEncodedStrip(tif, (uint32_t)p * strips_per_plane + s, strip,
                                          (tmsize_t)(row_bytes * rows)) < 0) {
                    status = CCodecShims_corrupt;
                    break;
                }
            }
        }
        free(strip);
    }
    if (status == CCodecShims_ok && !TIFFWriteDirectory(tif)) {
        status = CCodecShims_corrupt;
    }
    if (status != CCodecShims_ok || w->messages.error_count > 0) {
        tiff_fail(message, message_capacity, &w->messages,
                  w->stream.failed ? "out of memory" : "cannot write TIFF page");
        return w->stream.failed ? CCodecShims_nomem : CCodecShims_corrupt;
    }
    return CCodecShims_ok;
}

int CCodecShims_tiff_writer_finish(CCodecShims_tiff_writer *w, uint8_t **out, size_t *out_size,
                                   char *message, size_t message_capacity) {
    *out = NULL;
    *out_size = 0;
    TIFFClose(w->tif);
    w->tif = NULL;
    if (w->stream.failed || w->messages.error_count > 0) {
        tiff_fail(message, message_capacity, &w->messages, "out of memory");
        CCodecShims_tiff_writer_discard(w);
        return CCodecShims_nomem;
    }
    *out = w->stream.data;
    *out_size = w->stream.size;
    free(w);
    return CCodecShims_ok;
}

void CCodecShims_tiff_writer_discard(CCodecShims_tiff_writer *w) {
    if (w == NULL) {
        return;
    }
    if (w->tif != NULL) {
        TIFFClose(w->tif);
    }
    free(w->stream.data);
    free(w);
}
