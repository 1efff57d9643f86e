// libjpeg(-turbo) with error_exit jumping back to a setjmp in the same C function, and
// output_message/emit_message captured, so nothing is printed and no jump reaches Swift.
#include "CCodecShims.h"
#include "common.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char error[JMSG_LENGTH_MAX + 64];
    int truncated;       // premature end of data was reported
    int corrupt;         // a corrupt-data warning that leaves a damaged image
    char corrupt_text[JMSG_LENGTH_MAX];
} shim_jpeg_error;

static void jpeg_shim_error_exit(j_common_ptr cinfo) {
    shim_jpeg_error *err = (shim_jpeg_error *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    shim_copy(err->error, sizeof err->error, text);
    longjmp(err->jump, 1);
}

static void jpeg_shim_output_message(j_common_ptr cinfo) { (void)cinfo; }

static void jpeg_shim_emit_message(j_common_ptr cinfo, int level) {
    if (level >= 0) {
        return;  // trace messages
    }
    shim_jpeg_error *err = (shim_jpeg_error *)cinfo->err;
    int code = err->base.msg_code;
    if (code == JWRN_JPEG_EOF) {
        err->truncated = 1;
    } else if (code == JWRN_HIT_MARKER || code == JWRN_MUST_RESYNC ||
               code == JWRN_HUFF_BAD_CODE || code == JWRN_BOGUS_PROGRESSION ||
               code == JWRN_NOT_SEQUENTIAL) {
        if (!err->corrupt) {
            (*cinfo->err->format_message)(cinfo, err->corrupt_text);
        }
        err->corrupt = 1;
    }
    err->base.num_warnings++;
}

static void jpeg_shim_install(shim_jpeg_error *err) {
    jpeg_std_error(&err->base);
    err->base.error_exit = jpeg_shim_error_exit;
    err->base.output_message = jpeg_shim_output_message;
    err->base.emit_message = jpeg_shim_emit_message;
}

struct CCodecShims_jpeg_reader {
    struct jpeg_decompress_struct cinfo;
    shim_jpeg_error err;
    int created;
};

int CCodecShims_jpeg_open(const uint8_t *data, size_t size, CCodecShims_jpeg_reader **out,
                          CCodecShims_jpeg_info *info, char *message, size_t message_capacity) {
    *out = NULL;
    if (size < 3 || data[0] != 0xFF || data[1] != 0xD8) {
        shim_copy(message, message_capacity, "not a JPEG file (no SOI marker)");
        return CCodecShims_corrupt;
    }
    CCodecShims_jpeg_reader *r = calloc(1, sizeof *r);
    if (r == NULL) {
        shim_copy(message, message_capacity, "out of memory");
        return CCodecShims_nomem;
    }
    r->cinfo.err = (struct jpeg_error_mgr *)&r->err;
    jpeg_shim_install(&r->err);
    if (setjmp(r->err.jump)) {
        int status = r->err.truncated ? CCodecShims_truncated : CCodecShims_corrupt;
        shim_copy(message, message_capacity, r->err.error);
        CCodecShims_jpeg_close(r);
        return status;
    }
    jpeg_create_decompress(&r->cinfo);
    r->created = 1;
    jpeg_mem_src(&r->cinfo, data, (unsigned long)size);
    jpeg_save_markers(&r->cinfo, JPEG_APP0 + 14, 0xFFFF);  // Adobe
    jpeg_read_header(&r->cinfo, TRUE);
    if (r->err.truncated) {
        shim_copy(message, message_capacity, "premature end of JPEG data in the header");
        CCodecShims_jpeg_close(r);
        return CCodecShims_truncated;
    }
    info->width = r->cinfo.image_width;
    info->height = r->cinfo.image_height;
    info->components = r->cinfo.num_components;
    info->color_space = (int)r->cinfo.jpeg_color_space;
    info->progressive = r->cinfo.progressive_mode ? 1 : 0;
    info->adobe_inverted = r->cinfo.saw_Adobe_marker ? 1 : 0;
    *out = r;
    return CCodecShims_ok;
}

int CCodecShims_jpeg_read(CCodecShims_jpeg_reader *r, uint8_t *pixels, size_t capacity,
                          char *message, size_t message_capacity) {
    J_COLOR_SPACE in = r->cinfo.jpeg_color_space;
    int cmyk = in == JCS_CMYK || in == JCS_YCCK;
    int gray = in == JCS_GRAYSCALE;
    int channels = gray ? 1 : 3;
    size_t width = r->cinfo.image_width;
    size_t row_bytes = width * (size_t)channels;
    if (r->cinfo.image_height != 0 && row_bytes > capacity / r->cinfo.image_height) {
        shim_copy(message, message_capacity, "output buffer too small");
        return CCodecShims_nomem;
    }
    // Freed on every path below; volatile because it is assigned after setjmp.
    uint8_t *volatile scratch = NULL;
    if (cmyk) {
        scratch = malloc(width * 4 + 1);
        if (scratch == NULL) {
            shim_copy(message, message_capacity, "out of memory");
            return CCodecShims_nomem;
        }
    }
    if (setjmp(r->err.jump)) {
        free(scratch);
        shim_copy(message, message_capacity, r->err.error);
        return r->err.truncated ? CCodecShims_truncated : CCodecShims_corrupt;
    }
    r->cinfo.out_color_space = gray ? JCS_GRAYSCALE : (cmyk ? JCS_CMYK : JCS_RGB);
    r->cinfo.dct_method = JDCT_ISLOW;
    jpeg_start_decompress(&r->cinfo);
    int inverted = r->cinfo.saw_Adobe_marker;
    while (r->cinfo.output_scanline < r->cinfo.output_height) {
        uint8_t *row = pixels + (size_t)r->cinfo.output_scanline * row_bytes;
        if (!cmyk) {
            // Up to 16 rows per call (an MCU row at most), straight into the output.
            JSAMPROW rows[16];
            JDIMENSION left = r->cinfo.output_height - r->cinfo.output_scanline;
            JDIMENSION count = left < 16 ? left : 16;
            for (JDIMENSION i = 0; i < count; i++) rows[i] = row + (size_t)i * row_bytes;
            if (jpeg_read_scanlines(&r->cinfo, rows, count) == 0 || r->err.truncated) break;
            continue;
        }
        JSAMPROW rows[1] = {scratch};
        jpeg_read_scanlines(&r->cinfo, rows, 1);
        for (size_t x = 0; x < width; x++) {
            // Stored inverted (Adobe) means the sample is 255 − ink; R = (255−C)(255−K)/255.
            unsigned c = scratch[4 * x], m = scratch[4 * x + 1], y = scratch[4 * x + 2],
                     k = scratch[4 * x + 3];
            if (!inverted) {
                c = 255 - c;
                m = 255 - m;
                y = 255 - y;
                k = 255 - k;
            }
            row[3 * x] = (uint8_t)((c * k + 127) / 255);
            row[3 * x + 1] = (uint8_t)((m * k + 127) / 255);
            row[3 * x + 2] = (uint8_t)((y * k + 127) / 255);
        }
        if (r->err.truncated) {
            break;
        }
    }
    free(scratch);
    scratch = NULL;
    if (r->err.truncated) {
        shim_copy(message, message_capacity, "premature end of JPEG data (truncated file)");
        return CCodecShims_truncated;
    }
    jpeg_finish_decompress(&r->cinfo);
    if (r->err.truncated) {
        shim_copy(message, message_capacity, "premature end of JPEG data (truncated file)");
        return CCodecShims_truncated;
    }
    if (r->err.corrupt) {
        char text[JMSG_LENGTH_MAX + 32];
        snprintf(text, sizeof text, "corrupt JPEG data: %s", r->err.corrupt_text);
        shim_copy(message, message_capacity, text);
        return CCodecShims_corrupt;
    }
    return CCodecShims_ok;
}

void CCodecShims_jpeg_close(CCodecShims_jpeg_reader *r) {
    if (r == NULL) {
        return;
    }
    if (r->created) {
        jpeg_destroy_decompress(&r->cinfo);
    }
    free(r);
}

int CCodecShims_jpeg_encode(const uint8_t *pixels, uint32_t width, uint32_t height,
                            int components, int quality, int progressive, uint8_t **out,
                            size_t *out_size, char *message, size_t message_capacity) {
    *out = NULL;
    *out_size = 0;
    if (components != 1 && components != 3 && components != 4) {
        shim_copy(message, message_capacity, "JPEG takes 1, 3 or 4 components");
        return CCodecShims_unsupported;
    }
    struct jpeg_compress_struct cinfo;
    shim_jpeg_error err;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = (struct jpeg_error_mgr *)&err;
    jpeg_shim_install(&err);
    // The library writes the output pointer and size through the address it is given.
    struct {
        unsigned char *data;
        unsigned long size;
    } sink = {NULL, 0};
    uint8_t *volatile scratch = NULL;
    if (setjmp(err.jump)) {
        shim_copy(message, message_capacity, err.error);
        jpeg_destroy_compress(&cinfo);
        free(sink.data);
        free(scratch);
        return CCodecShims_corrupt;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &sink.data, &sink.size);
    cinfo.image_width = width;
    cinfo.image_height = height;
    cinfo.input_components = components;
    cinfo.in_color_space = components == 1 ? JCS_GRAYSCALE : (components == 3 ? JCS_RGB : JCS_CMYK);
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    if (components == 4) {
        jpeg_set_colorspace(&cinfo, JCS_CMYK);
        cinfo.write_Adobe_marker = TRUE;
        scratch = malloc((size_t)width * 4 + 1);
        if (scratch == NULL) {
            shim_copy(err.error, sizeof err.error, "out of memory");
            longjmp(err.jump, 1);
        }
    }
    if (progressive) {
        jpeg_simple_progression(&cinfo);
    }
    jpeg_start_compress(&cinfo, TRUE);
    size_t row_bytes = (size_t)width * (size_t)components;
    while (cinfo.next_scanline < cinfo.image_height) {
        const uint8_t *row = pixels + (size_t)cinfo.next_scanline * row_bytes;
        JSAMPROW rows[1];
        if (components == 4) {
            for (size_t i = 0; i < row_bytes; i++) {
                scratch[i] = (uint8_t)(255 - row[i]);  // Adobe convention: inverted ink
            }
            rows[0] = scratch;
        } else {
            rows[0] = (JSAMPROW)row;
        }
        jpeg_write_scanlines(&cinfo, rows, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    free(scratch);
    *out = sink.data;
    *out_size = sink.size;
    return CCodecShims_ok;
}
