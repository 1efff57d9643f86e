// C shims over libpng, libjpeg(-turbo) and libtiff.
//
// Every function here returns an int status (0 = success, otherwise a CCodecShims_status) and,
// on failure, writes a NUL-terminated one-line reason into the caller's message buffer. The
// setjmp/longjmp that libpng and libjpeg use for errors stays inside each C function: no jump
// ever crosses a Swift frame. Library warnings are captured into the handle instead of printed.
// libtiff's variadic getters and setters are wrapped in fixed-arity functions. The types of the
// C libraries never appear in this header, so Swift sees only plain integers and pointers.
//
// This module has no stable API; only SegIO imports it.
#ifndef CCODECSHIMS_H
#define CCODECSHIMS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum CCodecShims_status {
    CCodecShims_ok = 0,
    CCodecShims_corrupt = 1,      // the library rejected the data
    CCodecShims_unsupported = 2,  // valid data in a layout we do not decode
    CCodecShims_nomem = 3,        // an allocation failed
    CCodecShims_truncated = 4,    // the data ends early
};

/// Frees a buffer that a shim allocated (encoder outputs).
void CCodecShims_free(void *pointer);

// MARK: - PNG

typedef struct CCodecShims_png_reader CCodecShims_png_reader;

typedef struct {
    uint32_t width;
    uint32_t height;
    int bit_depth;       // as stored: 1, 2, 4, 8 or 16
    int color_type;      // 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA
    int interlaced;      // Adam7
    int has_trns;        // a tRNS chunk is present
    int palette_size;    // entries in PLTE (palette images)
} CCodecShims_png_info;

/// Parses the signature and the header chunks of a PNG held in memory. On success `*out`
/// holds a reader that the caller must release with `CCodecShims_png_close`. The bytes must
/// stay alive and unchanged until the reader is closed.
int CCodecShims_png_open(const uint8_t *data, size_t size, CCodecShims_png_reader **out,
                         CCodecShims_png_info *info, char *message, size_t message_capacity);

/// The layout `CCodecShims_png_read` will produce for the given palette mode: channels per
/// pixel (interleaved) and bytes per sample (1 or 2).
void CCodecShims_png_output_layout(const CCodecShims_png_reader *reader, int palette_indices,
                                   int *channels, int *bytes_per_sample);

/// Decodes the whole image into `pixels` (interleaved, rows top to bottom, 16-bit samples in
/// host byte order, values exactly as stored: no gamma or colour conversion). Gray images of
/// 1, 2 or 4 bits are scaled to 0...255; palette images become RGB(A) unless
/// `palette_indices` is non-zero, in which case each pixel is its palette index.
int CCodecShims_png_read(CCodecShims_png_reader *reader, int palette_indices, uint8_t *pixels,
                         size_t capacity, char *message, size_t message_capacity);

void CCodecShims_png_close(CCodecShims_png_reader *reader);

/// Encodes interleaved pixels as PNG. `bit_depth` 1, 2, 4 (gray or palette; one byte per
/// pixel holding the value), 8 or 16 (samples in host byte order). `color_type` as in
/// CCodecShims_png_info. `palette_rgb` holds `palette_size` RGB triples for color type 3
/// (`palette_alpha`, if not NULL, `palette_size` alpha values). `filters` is a mask of
/// PNG_FILTER_* values (0 = libpng's default adaptive choice). `interlace` writes Adam7.
/// On success `*out` is a malloc'ed buffer of `*out_size` bytes; free it with CCodecShims_free.
int CCodecShims_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height,
                           int bit_depth, int color_type, const uint8_t *palette_rgb,
                           const uint8_t *palette_alpha, int palette_size,
                           int compression_level, int filters, int interlace,
                           uint8_t **out, size_t *out_size, char *message,
                           size_t message_capacity);

// MARK: - JPEG

typedef struct CCodecShims_jpeg_reader CCodecShims_jpeg_reader;

typedef struct {
    uint32_t width;
    uint32_t height;
    int components;      // as stored: 1, 3 or 4
    int color_space;     // 1 gray, 2 RGB, 3 YCbCr, 4 CMYK, 5 YCCK (libjpeg's J_COLOR_SPACE)
    int progressive;
    int adobe_inverted;  // an Adobe marker: CMYK samples are stored inverted (Photoshop)
} CCodecShims_jpeg_info;

int CCodecShims_jpeg_open(const uint8_t *data, size_t size, CCodecShims_jpeg_reader **out,
                          CCodecShims_jpeg_info *info, char *message, size_t message_capacity);

/// Decodes into interleaved 8-bit samples: 1 channel for gray, 3 for everything else
/// (CMYK and YCCK are converted to RGB). Premature end of data is an error
/// (CCodecShims_truncated), not a gray-filled image.
int CCodecShims_jpeg_read(CCodecShims_jpeg_reader *reader, uint8_t *pixels, size_t capacity,
                          char *message, size_t message_capacity);

void CCodecShims_jpeg_close(CCodecShims_jpeg_reader *reader);

/// Encodes interleaved 8-bit samples: `components` 1 (gray), 3 (RGB) or 4 (CMYK, written with
/// an Adobe marker and stored inverted as Photoshop does, from the given uninverted C, M, Y, K).
int CCodecShims_jpeg_encode(const uint8_t *pixels, uint32_t width, uint32_t height,
                            int components, int quality, int progressive, uint8_t **out,
                            size_t *out_size, char *message, size_t message_capacity);

// MARK: - TIFF

typedef struct CCodecShims_tiff_reader CCodecShims_tiff_reader;

typedef struct {
    uint32_t width;
    uint32_t height;
    int samples_per_pixel;
    int bits_per_sample;
    int sample_format;   // 1 uint, 2 int, 3 float
    int planar_config;   // 1 contiguous, 2 separate
    int photometric;
    int compression;
    int tiled;
    uint32_t tile_width;
    uint32_t tile_height;
    uint32_t rows_per_strip;
    int extra_samples;
    int extra_alpha;     // the first extra sample is alpha (associated or unassociated)
    int has_colormap;
} CCodecShims_tiff_page;

/// Opens a TIFF (classic or BigTIFF) held in memory, with per-handle error and warning
/// handlers; `max_single_alloc` bounds any one allocation libtiff makes. `*pages` receives the
/// number of directories (pages).
int CCodecShims_tiff_open(const uint8_t *data, size_t size, uint64_t max_single_alloc,
                          CCodecShims_tiff_reader **out, int *pages, char *message,
                          size_t message_capacity);

/// Selects page `index` and describes it.
int CCodecShims_tiff_page_info(CCodecShims_tiff_reader *reader, int index,
                               CCodecShims_tiff_page *page, char *message,
                               size_t message_capacity);

/// Decodes the current page into planar samples: plane p at `pixels + p * plane_bytes`, rows
/// top to bottom, samples of `bits_per_sample / 8` bytes (1-bit data is expanded to one byte
/// per pixel, 0 or 255, white = 255 whatever the photometric interpretation) in host order.
int CCodecShims_tiff_read_planar(CCodecShims_tiff_reader *reader, uint8_t *pixels,
                                 size_t plane_bytes, char *message, size_t message_capacity);

/// The current page's colormap (palette images): 3 × `count` 16-bit values, R then G then B.
int CCodecShims_tiff_colormap(CCodecShims_tiff_reader *reader, uint16_t *rgb, size_t count);

/// Warnings libtiff reported so far (unknown tags and the like), joined by "; ".
const char *CCodecShims_tiff_warnings(const CCodecShims_tiff_reader *reader);

void CCodecShims_tiff_close(CCodecShims_tiff_reader *reader);

typedef struct CCodecShims_tiff_writer CCodecShims_tiff_writer;

typedef struct {
    uint32_t width;
    uint32_t height;
    int samples_per_pixel;
    int bits_per_sample;     // 8, 16, 32 or 64
    int sample_format;       // 1 uint, 2 int, 3 float
    int planar_config;       // 1 contiguous, 2 separate
    int compression;         // 1 none, 5 LZW, 8 Adobe deflate, 32773 PackBits
    int predictor;           // 1 none, 2 horizontal, 3 floating point
    int tiled;
    uint32_t tile_width;     // multiples of 16
    uint32_t tile_height;
    uint32_t rows_per_strip; // 0 = one strip
    int photometric;         // 1 min-is-black, 2 RGB
} CCodecShims_tiff_page_spec;

int CCodecShims_tiff_writer_create(CCodecShims_tiff_writer **out, char *message,
                                   size_t message_capacity);

/// Appends a page. `pixels` are planar (plane p at `pixels + p * plane_bytes`), host order.
int CCodecShims_tiff_write_page(CCodecShims_tiff_writer *writer,
                                const CCodecShims_tiff_page_spec *spec, const uint8_t *pixels,
                                size_t plane_bytes, int page_index, int page_count,
                                char *message, size_t message_capacity);

/// Finishes the file. On success `*out` is a malloc'ed buffer (free with CCodecShims_free)
/// and the writer is released; on failure the writer is released too.
int CCodecShims_tiff_writer_finish(CCodecShims_tiff_writer *writer, uint8_t **out,
                                   size_t *out_size, char *message, size_t message_capacity);

void CCodecShims_tiff_writer_discard(CCodecShims_tiff_writer *writer);

#ifdef __cplusplus
}
#endif

#endif
