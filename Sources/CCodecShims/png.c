// libpng through its full API, with every longjmp caught by a setjmp in the same C function.
#include "CCodecShims.h"
#include "common.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/// The largest non-IDAT chunk libpng may buffer (ICC profiles, text, EXIF are far smaller).
#define CCODECSHIMS_PNG_MAX_CHUNK (16u << 20)

struct CCodecShims_png_reader {
    png_structp png;
    png_infop info;
    const uint8_t *data;
    size_t size;
    size_t offset;
    int truncated;
    char error[256];
    png_bytep *rows;
};

static void png_shim_error(png_structp png, png_const_charp text) {
    struct CCodecShims_png_reader *r = png_get_error_ptr(png);
    if (r != NULL) {
        shim_copy(r->error, sizeof r->error, text);
    }
    png_longjmp(png, 1);
}

static void png_shim_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;  // warnings (ancillary chunk CRC errors, unknown chunks) are not printed
}

static void png_shim_read(png_structp png, png_bytep out, size_t count) {
    struct CCodecShims_png_reader *r = png_get_io_ptr(png);
    if (r->size - r->offset < count) {
        r->truncated = 1;
        png_error(png, "unexpected end of file");
    }
    memcpy(out, r->data + r->offset, count);
    r->offset += count;
}

/// Walks the chunk list: every chunk must fit in the file. libpng allocates a chunk's buffer
/// from its length field before reading it, so a 61-byte file whose tEXt claims 1.4 GB made it
/// allocate (and touch) 1.4 GB before finding the end (found by the PNG fuzzer); after this
/// check no chunk buffer exceeds the file's size.
static int png_check_chunks(const uint8_t *data, size_t size, char *message, size_t cap) {
    size_t offset = 8;
    while (offset + 8 <= size) {
        uint32_t length = (uint32_t)data[offset] << 24 | (uint32_t)data[offset + 1] << 16 |
                          (uint32_t)data[offset + 2] << 8 | data[offset + 3];
        const uint8_t *type = data + offset + 4;
        if (length > 0x7fffffffu) {
            shim_copy(message, cap, "a chunk length exceeds 2^31 - 1");
            return CCodecShims_corrupt;
        }
        if ((size_t)length + 12 > size - offset) {
            if (memcmp(type, "IDAT", 4) == 0) {
                break;  // pixel data is streamed, not buffered: libpng reports where it ends
            }
            char text[160];
            snprintf(text, sizeof text, "unexpected end of file: chunk %c%c%c%c at byte %zu claims %u bytes, %zu remain",
                     type[0], type[1], type[2], type[3], offset, length, size - offset - 8);
            shim_copy(message, cap, text);
            return CCodecShims_truncated;
        }
        offset += (size_t)length + 12;
        if (memcmp(type, "IEND", 4) == 0) {
            break;
        }
    }
    return CCodecShims_ok;
}

int CCodecShims_png_open(const uint8_t *data, size_t size, CCodecShims_png_reader **out,
                         CCodecShims_png_info *info, char *message, size_t message_capacity) {
    *out = NULL;
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        shim_copy(message, message_capacity, "not a PNG file (bad signature)");
        return CCodecShims_corrupt;
    }
    int scan = png_check_chunks(data, size, message, message_capacity);
    if (scan != CCodecShims_ok) {
        return scan;
    }
    struct CCodecShims_png_reader *r = calloc(1, sizeof *r);
    if (r == NULL) {
        shim_copy(message, message_capacity, "out of memory");
        return CCodecShims_nomem;
    }
    r->data = data;
    r->size = size;
    r->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, r, png_shim_error, png_shim_warning);
    if (r->png == NULL || (r->info = png_create_info_struct(r->png)) == NULL) {
        CCodecShims_png_close(r);
        shim_copy(message, message_capacity, "out of memory");
        return CCodecShims_nomem;
    }
    if (setjmp(png_jmpbuf(r->png))) {
        int status = r->truncated ? CCodecShims_truncated : CCodecShims_corrupt;
        shim_copy(message, message_capacity, r->error);
        CCodecShims_png_close(r);
        return status;
    }
    // Our own limits are checked by the caller against its pixel budget; lift libpng's
    // default 1,000,000 × 1,000,000 cap so the caller sees the declared size and decides.
    png_set_user_limits(r->png, 0x7fffffff, 0x7fffffff);
    // Bound what libpng inflates from compressed ancillary chunks (zTXt, iTXt, iCCP bombs) and
    // how many ancillary chunks it keeps. (Chunk lengths were checked against the file above.)
    png_set_chunk_malloc_max(r->png, CCODECSHIMS_PNG_MAX_CHUNK);
    png_set_chunk_cache_max(r->png, 1000);
    png_set_read_fn(r->png, r, png_shim_read);
#ifdef PNG_IGNORE_ADLER32
    // Every IDAT chunk is already covered by its CRC-32, which libpng checks; zlib's Adler-32
    // over the same bytes adds nothing but time (about 8% of a decode, measured with perf).
    png_set_option(r->png, PNG_IGNORE_ADLER32, PNG_OPTION_ON);
#endif
    png_read_info(r->png, r->info);

    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(r->png, r->info, &width, &height, &bit_depth, &color_type, &interlace, NULL,
                 NULL);
    info->width = width;
    info->height = height;
    info->bit_depth = bit_depth;
    info->color_type = color_type;
    info->interlaced = interlace != PNG_INTERLACE_NONE;
    info->has_trns = png_get_valid(r->png, r->info, PNG_INFO_tRNS) != 0;
    info->palette_size = 0;
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_colorp palette = NULL;
        int count = 0;
        if (png_get_PLTE(r->png, r->info, &palette, &count) == PNG_INFO_PLTE) {
            info->palette_size = count;
        }
    }
    *out = r;
    return CCodecShims_ok;
}

void CCodecShims_png_output_layout(const CCodecShims_png_reader *r, int palette_indices,
                                   int *channels, int *bytes_per_sample) {
    int color_type = png_get_color_type(r->png, r->info);
    int bit_depth = png_get_bit_depth(r->png, r->info);
    int trns = png_get_valid(r->png, r->info, PNG_INFO_tRNS) != 0;
    *bytes_per_sample = bit_depth == 16 ? 2 : 1;
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: *channels = 1; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: *channels = 2; break;
    case PNG_COLOR_TYPE_RGB: *channels = 3; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: *channels = 4; break;
    case PNG_COLOR_TYPE_PALETTE: *channels = palette_indices ? 1 : (trns ? 4 : 3); break;
    default: *channels = 1; break;
    }
}

int CCodecShims_png_read(CCodecShims_png_reader *r, int palette_indices, uint8_t *pixels,
                         size_t capacity, char *message, size_t message_capacity) {
    int channels = 0, bytes = 0;
    CCodecShims_png_output_layout(r, palette_indices, &channels, &bytes);
    png_uint_32 width = png_get_image_width(r->png, r->info);
    png_uint_32 height = png_get_image_height(r->png, r->info);
    size_t row_bytes = (size_t)width * (size_t)channels * (size_t)bytes;
    if (height != 0 && row_bytes > capacity / height) {
        shim_copy(message, message_capacity, "output buffer too small");
        return CCodecShims_nomem;
    }
    r->rows = malloc(sizeof(png_bytep) * (height == 0 ? 1 : height));
    if (r->rows == NULL) {
        shim_copy(message, message_capacity, "out of memory");
        return CCodecShims_nomem;
    }
    for (png_uint_32 y = 0; y < height; y++) {
        r->rows[y] = pixels + (size_t)y * row_bytes;
    }
    if (setjmp(png_jmpbuf(r->png))) {
        shim_copy(message, message_capacity, r->error);
        return r->truncated ? CCodecShims_truncated : CCodecShims_corrupt;
    }
    int color_type = png_get_color_type(r->png, r->info);
    int bit_depth = png_get_bit_depth(r->png, r->info);
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        if (palette_indices) {
            png_set_packing(r->png);  // one byte per index, values unscaled
        } else {
            png_set_palette_to_rgb(r->png);
            if (png_get_valid(r->png, r->info, PNG_INFO_tRNS)) {
                png_set_tRNS_to_alpha(r->png);
            }
        }
    } else if (bit_depth < 8) {
        png_set_expand_gray_1_2_4_to_8(r->png);
    }
    if (bit_depth == 16) {
        const uint16_t probe = 1;
        if (*(const uint8_t *)&probe == 1) {
            png_set_swap(r->png);  // PNG stores big-endian; we want host order
        }
    }
    png_set_interlace_handling(r->png);
    png_read_update_info(r->png, r->info);
    if (png_get_rowbytes(r->png, r->info) != row_bytes) {
        shim_copy(message, message_capacity, "unexpected row layout after transforms");
        return CCodecShims_unsupported;
    }
    png_read_image(r->png, r->rows);
    png_read_end(r->png, NULL);
    return CCodecShims_ok;
}

void CCodecShims_png_close(CCodecShims_png_reader *r) {
    if (r == NULL) {
        return;
    }
    if (r->png != NULL) {
        png_destroy_read_struct(&r->png, r->info != NULL ? &r->info : NULL, NULL);
    }
    free(r->rows);
    free(r);
}

// MARK: - Encoder

typedef struct {
    uint8_t *data;
    size_t size;
    size_t capacity;
    int failed;
    char error[256];
} png_sink;

static void png_sink_write(png_structp png, png_bytep bytes, size_t count) {
    png_sink *sink = png_get_io_ptr(png);
    if (shim_grow(&sink->data, &sink->capacity, sink->size + count) != 0) {
        sink->failed = 1;
        png_error(png, "out of memory");
    }
    memcpy(sink->data + sink->size, bytes, count);
    sink->size += count;
}

static void png_sink_flush(png_structp png) { (void)png; }

static void png_sink_error(png_structp png, png_const_charp text) {
    png_sink *sink = png_get_error_ptr(png);
    shim_copy(sink->error, sizeof sink->error, text);
    png_longjmp(png, 1);
}

int CCodecShims_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height,
                           int bit_depth, int color_type, const uint8_t *palette_rgb,
                           const uint8_t *palette_alpha, int palette_size,
                           int compression_level, int filters, int interlace,
                           uint8_t **out, size_t *out_size, char *message,
                           size_t message_capacity) {
    *out = NULL;
    *out_size = 0;
    int channels;
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: case PNG_COLOR_TYPE_PALETTE: channels = 1; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: channels = 2; break;
    case PNG_COLOR_TYPE_RGB: channels = 3; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: channels = 4; break;
    default:
        shim_copy(message, message_capacity, "unsupported PNG color type");
        return CCodecShims_unsupported;
    }
    size_t bytes = bit_depth == 16 ? 2 : 1;
    size_t row_bytes = (size_t)width * (size_t)channels * bytes;
    // Declared volatile: they are modified after setjmp and read after a longjmp.
    png_sink *volatile sink = calloc(1, sizeof(png_sink));
    png_bytep *volatile rows = malloc(sizeof(png_bytep) * (height == 0 ? 1 : height));
    if (sink == NULL || rows == NULL) {
        free(sink);
        free(rows);
        shim_copy(message, message_capacity, "out of memory");
        return CCodecShims_nomem;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, sink, png_sink_error,
                                              png_shim_warning);
    png_infop info = png == NULL ? NULL : png_create_info_struct(png);
    if (png == NULL || info == NULL) {
        png_destroy_write_struct(&png, NULL);
        free(sink);
        free(rows);
        shim_copy(message, message_capacity, "out of memory");
        return CCodecShims_nomem;
    }
    if (setjmp(png_jmpbuf(png))) {
        shim_copy(message, message_capacity, sink->error);
        int status = sink->failed ? CCodecShims_nomem : CCodecShims_corrupt;
        png_destroy_write_struct(&png, &info);
        free(sink->data);
        free(sink);
        free(rows);
        return status;
    }
    png_set_write_fn(png, sink, png_sink_write, png_sink_flush);
    png_set_IHDR(png, info, width, height, bit_depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_color entries[256];
        int count = palette_size < 1 ? 1 : (palette_size > 256 ? 256 : palette_size);
        for (int i = 0; i < count; i++) {
            entries[i].red = palette_rgb[3 * i];
            entries[i].green = palette_rgb[3 * i + 1];
            entries[i].blue = palette_rgb[3 * i + 2];
        }
        png_set_PLTE(png, info, entries, count);
        if (palette_alpha != NULL) {
            png_set_tRNS(png, info, palette_alpha, count, NULL);
        }
    }
    png_set_compression_level(png, compression_level);
    if (filters != 0) {
        png_set_filter(png, PNG_FILTER_TYPE_BASE, filters);
    }
    png_write_info(png, info);
    if (bit_depth < 8) {
        png_set_packing(png);
    }
    if (bit_depth == 16) {
        const uint16_t probe = 1;
        if (*(const uint8_t *)&probe == 1) {
            png_set_swap(png);
        }
    }
    for (uint32_t y = 0; y < height; y++) {
        rows[y] = (png_bytep)(pixels + (size_t)y * row_bytes);
    }
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *out = sink->data;
    *out_size = sink->size;
    free(sink);
    free(rows);
    return CCodecShims_ok;
}
