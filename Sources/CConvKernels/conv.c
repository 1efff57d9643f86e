#include "CConvKernels.h"

#include <string.h>

#if defined(__x86_64__) && defined(__clang__)
#define CCONV_X86 1
#include <immintrin.h>
#endif

int CConv_row_floats(int wo) { return (wo + 15) / 16 * 16 + 2; }

int CConv_block(int isa) { return isa == CConv_avx2 ? 4 : 8; }

size_t CConv_packed_count(int isa, int outputs, int inputs) {
    int b = CConv_block(isa);
    return (size_t)((outputs + b - 1) / b) * b * (size_t)inputs * 9;
}

void CConv_pack(int isa, const float *w, int cout, int cin, int transposed, float *packed) {
    int outputs = transposed ? cin : cout, inputs = transposed ? cout : cin;
    int b = CConv_block(isa);
    memset(packed, 0, CConv_packed_count(isa, outputs, inputs) * sizeof(float));
    for (int o = 0; o < outputs; o++) {
        for (int c = 0; c < inputs; c++) {
            for (int t = 0; t < 9; t++) {
                float v = transposed ? w[((size_t)c * cin + o) * 9 + (8 - t)] : w[((size_t)o * cin + c) * 9 + t];
                packed[(((size_t)(o / b) * inputs + c) * 9 + t) * b + o % b] = v;
            }
        }
    }
}

void CConv_pad_band(const float *src, int channels, size_t src_plane, int h, int w, int pad,
                    int row0, int rows, float *out, int row) {
    for (int c = 0; c < channels; c++) {
        const float *s = src + (size_t)c * src_plane;
        float *o = out + (size_t)c * rows * row;
        for (int r = 0; r < rows; r++) {
            float *d = o + (size_t)r * row;
            int sy = row0 + r - pad;
            if (sy < 0 || sy >= h) {
                memset(d, 0, (size_t)row * sizeof(float));
                continue;
            }
            memset(d, 0, (size_t)pad * sizeof(float));
            memcpy(d + pad, s + (size_t)sy * w, (size_t)w * sizeof(float));
            memset(d + pad + w, 0, (size_t)(row - pad - w) * sizeof(float));
        }
    }
}

#ifdef CCONV_X86

int CConv_best_isa(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return CConv_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CConv_avx2;
    return CConv_none;
}

// MARK: - AVX-512: 8 outputs × PV vectors of 16 pixels per block

#define T512 __attribute__((target("avx512f,fma")))
#define B512 8
#define INLINE512 static inline __attribute__((always_inline, target("avx512f,fma")))

INLINE512 void fwd512_block(const float *band, int inputs, size_t in_plane, int row, const float *wb,
                            const float *bias, int relu, int accumulate, float *y, size_t out_plane,
                            int no, int x0, const int pv, __mmask16 last) {
    __m512 acc[B512][2];
    for (int j = 0; j < B512; j++) {
        for (int v = 0; v < pv; v++) {
            __mmask16 m = v == pv - 1 ? last : (__mmask16)0xFFFF;
            if (accumulate && j < no) acc[j][v] = _mm512_maskz_loadu_ps(m, y + j * out_plane + x0 + 16 * v);
            else acc[j][v] = _mm512_set1_ps(bias && j < no ? bias[j] : 0.0f);
        }
    }
    for (int c = 0; c < inputs; c++) {
        const float *p = band + c * in_plane + x0;
        const float *w = wb + (size_t)c * 9 * B512;
        for (int ky = 0; ky < 3; ky++) {
            for (int kx = 0; kx < 3; kx++) {
                __m512 xv[2];
                for (int v = 0; v < pv; v++) xv[v] = _mm512_loadu_ps(p + ky * row + kx + 16 * v);
                const float *wt = w + (ky * 3 + kx) * B512;
                for (int j = 0; j < B512; j++) {
                    __m512 wv = _mm512_set1_ps(wt[j]);
                    for (int v = 0; v < pv; v++) acc[j][v] = _mm512_fmadd_ps(wv, xv[v], acc[j][v]);
                }
            }
        }
    }
    __m512 zero = _mm512_setzero_ps();
    for (int j = 0; j < B512; j++) {
        if (j >= no) break;
        for (int v = 0; v < pv; v++) {
            __mmask16 m = v == pv - 1 ? last : (__mmask16)0xFFFF;
            __m512 r = relu ? _mm512_max_ps(acc[j][v], zero) : acc[j][v];
            _mm512_mask_storeu_ps(y + j * out_plane + x0 + 16 * v, m, r);
        }
    }
}

T512 static void forward512(const float *band, int inputs, int row, const float *packed, int outputs,
                            const float *bias, int relu, int accumulate, float *y, size_t out_plane,
                            int wo, int rows) {
    size_t in_plane = (size_t)(rows + 2) * row;
    for (int ob = 0; ob * B512 < outputs; ob++) {
        const float *wb = packed + (size_t)ob * inputs * 9 * B512;
        int no = outputs - ob * B512;
        if (no > B512) no = B512;
        const float *bb = bias ? bias + ob * B512 : 0;
        float *yb = y + (size_t)ob * B512 * out_plane;
        for (int r = 0; r < rows; r++) {
            const float *br = band + (size_t)r * row;
            float *yr = yb + (size_t)r * wo;
            int x0 = 0;
            for (; x0 + 32 <= wo; x0 += 32)
                fwd512_block(br, inputs, in_plane, row, wb, bb, relu, accumulate, yr, out_plane, no, x0, 2, 0xFFFF);
            int left = wo - x0;
            if (left > 16)
                fwd512_block(br, inputs, in_plane, row, wb, bb, relu, accumulate, yr, out_plane, no, x0, 2,
                             (__mmask16)((1u << (left - 16)) - 1));
            else if (left > 0)
                fwd512_block(br, inputs, in_plane, row, wb, bb, relu, accumulate, yr, out_plane, no, x0, 1,
                             (__mmask16)(left == 16 ? 0xFFFF : (1u << left) - 1));
        }
    }
}

T512 static void weight_gradient512(const float *band, int inputs, int row, const float *dy, size_t dy_plane,
                                    int dy_row, int outputs, int wo, int rows, float *partial) {
    size_t in_plane = (size_t)(rows + 2) * row;
    int nv = (wo + 15) / 16;
    for (int ob = 0; ob * B512 < outputs; ob++) {
        int no = outputs - ob * B512;
        if (no > B512) no = B512;
        const float *db = dy + (size_t)ob * B512 * dy_plane;
        for (int c = 0; c < inputs; c++) {
            for (int ky = 0; ky < 3; ky++) {
                __m512 acc[B512][3];
                for (int j = 0; j < B512; j++)
                    for (int kx = 0; kx < 3; kx++) acc[j][kx] = _mm512_setzero_ps();
                for (int r = 0; r < rows; r++) {
                    const float *xr = band + c * in_plane + (size_t)(r + ky) * row;
                    const float *gr = db + (size_t)r * dy_row;
                    for (int v = 0; v < nv; v++) {
                        __m512 x0 = _mm512_loadu_ps(xr + 16 * v);
                        __m512 x1 = _mm512_loadu_ps(xr + 16 * v + 1);
                        __m512 x2 = _mm512_loadu_ps(xr + 16 * v + 2);
                        for (int j = 0; j < B512; j++) {
                            if (j >= no) break;
                            __m512 g = _mm512_loadu_ps(gr + j * dy_plane + 16 * v);
                            acc[j][0] = _mm512_fmadd_ps(g, x0, acc[j][0]);
                            acc[j][1] = _mm512_fmadd_ps(g, x1, acc[j][1]);
                            acc[j][2] = _mm512_fmadd_ps(g, x2, acc[j][2]);
                        }
                    }
                }
                for (int j = 0; j < no; j++) {
                    float *dst = partial + ((size_t)(ob * B512 + j) * inputs + c) * 9 + ky * 3;
                    for (int kx = 0; kx < 3; kx++) dst[kx] += _mm512_reduce_add_ps(acc[j][kx]);
                }
            }
        }
    }
}

// MARK: - AVX2 + FMA: 4 outputs (a packed block) × PV vectors of 8 pixels

#define T256 __attribute__((target("avx2,fma")))
#define INLINE256 static inline __attribute__((always_inline, target("avx2,fma")))

INLINE256 __m256i lanes256(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

INLINE256 void fwd256_block(const float *band, int inputs, size_t in_plane, int row, const float *wb,
                            const float *bias, int relu, int accumulate, float *y, size_t out_plane, int no,
                            int x0, const int pv, int last) {
    __m256 acc[4][3];
    __m256i full = _mm256_set1_epi32(-1), lm = lanes256(last);
    for (int j = 0; j < 4; j++) {
        for (int v = 0; v < pv; v++) {
            __m256i m = v == pv - 1 ? lm : full;
            if (accumulate && j < no) acc[j][v] = _mm256_maskload_ps(y + j * out_plane + x0 + 8 * v, m);
            else acc[j][v] = _mm256_set1_ps(bias && j < no ? bias[j] : 0.0f);
        }
    }
    for (int c = 0; c < inputs; c++) {
        const float *p = band + c * in_plane + x0;
        const float *w = wb + (size_t)c * 9 * 4;
        for (int ky = 0; ky < 3; ky++) {
            for (int kx = 0; kx < 3; kx++) {
                __m256 xv[3];
                for (int v = 0; v < pv; v++) xv[v] = _mm256_loadu_ps(p + ky * row + kx + 8 * v);
                const float *wt = w + (ky * 3 + kx) * 4;
                for (int j = 0; j < 4; j++) {
                    __m256 wv = _mm256_broadcast_ss(wt + j);
                    for (int v = 0; v < pv; v++) acc[j][v] = _mm256_fmadd_ps(wv, xv[v], acc[j][v]);
                }
            }
        }
    }
    __m256 zero = _mm256_setzero_ps();
    for (int j = 0; j < 4; j++) {
        if (j >= no) break;
        for (int v = 0; v < pv; v++) {
            __m256i m = v == pv - 1 ? lm : full;
            __m256 r = relu ? _mm256_max_ps(acc[j][v], zero) : acc[j][v];
            _mm256_maskstore_ps(y + j * out_plane + x0 + 8 * v, m, r);
        }
    }
}

T256 static void forward256(const float *band, int inputs, int row, const float *packed, int outputs,
                            const float *bias, int relu, int accumulate, float *y, size_t out_plane,
                            int wo, int rows) {
    size_t in_plane = (size_t)(rows + 2) * row;
    for (int o0 = 0; o0 < outputs; o0 += 4) {
        const float *wb = packed + (size_t)o0 * inputs * 9;
        int no = outputs - o0;
        if (no > 4) no = 4;
        const float *bb = bias ? bias + o0 : 0;
        float *yb = y + (size_t)o0 * out_plane;
        for (int r = 0; r < rows; r++) {
            const float *br = band + (size_t)r * row;
            float *yr = yb + (size_t)r * wo;
            int x0 = 0;
            for (; x0 + 24 <= wo; x0 += 24)
                fwd256_block(br, inputs, in_plane, row, wb, bb, relu, accumulate, yr, out_plane, no, x0, 3, 8);
            // The tail in blocks of two vectors and one, the last one masked.
            int left = wo - x0;
            if (left > 16) {
                fwd256_block(br, inputs, in_plane, row, wb, bb, relu, accumulate, yr, out_plane, no, x0, 2, 8);
                x0 += 16;
                left -= 16;
            }
            if (left > 8)
                fwd256_block(br, inputs, in_plane, row, wb, bb, relu, accumulate, yr, out_plane, no, x0, 2, left - 8);
            else if (left > 0)
                fwd256_block(br, inputs, in_plane, row, wb, bb, relu, accumulate, yr, out_plane, no, x0, 1, left);
        }
    }
}

T256 static float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

T256 static void weight_gradient256(const float *band, int inputs, int row, const float *dy, size_t dy_plane,
                                    int dy_row, int outputs, int wo, int rows, float *partial) {
    size_t in_plane = (size_t)(rows + 2) * row;
    int nv = (wo + 15) / 16 * 2;
    for (int o0 = 0; o0 < outputs; o0 += 4) {
        int no = outputs - o0;
        if (no > 4) no = 4;
        const float *db = dy + (size_t)o0 * dy_plane;
        for (int c = 0; c < inputs; c++) {
            for (int ky = 0; ky < 3; ky++) {
                __m256 acc[4][3];
                for (int j = 0; j < 4; j++)
                    for (int kx = 0; kx < 3; kx++) acc[j][kx] = _mm256_setzero_ps();
                for (int r = 0; r < rows; r++) {
                    const float *xr = band + c * in_plane + (size_t)(r + ky) * row;
                    const float *gr = db + (size_t)r * dy_row;
                    for (int v = 0; v < nv; v++) {
                        __m256 x0 = _mm256_loadu_ps(xr + 8 * v);
                        __m256 x1 = _mm256_loadu_ps(xr + 8 * v + 1);
                        __m256 x2 = _mm256_loadu_ps(xr + 8 * v + 2);
                        for (int j = 0; j < 4; j++) {
                            if (j >= no) break;
                            __m256 g = _mm256_loadu_ps(gr + j * dy_plane + 8 * v);
                            acc[j][0] = _mm256_fmadd_ps(g, x0, acc[j][0]);
                            acc[j][1] = _mm256_fmadd_ps(g, x1, acc[j][1]);
                            acc[j][2] = _mm256_fmadd_ps(g, x2, acc[j][2]);
                        }
                    }
                }
                for (int j = 0; j < no; j++) {
                    float *dst = partial + ((size_t)(o0 + j) * inputs + c) * 9 + ky * 3;
                    for (int kx = 0; kx < 3; kx++) dst[kx] += hsum256(acc[j][kx]);
                }
            }
        }
    }
}

void CConv_forward(int isa, const float *band, int inputs, int row, const float *packed, int outputs,
                   const float *bias, int relu, int accumulate, float *y, size_t out_plane, int wo, int rows) {
    if (isa >= CConv_avx512) forward512(band, inputs, row, packed, outputs, bias, relu, accumulate, y, out_plane, wo, rows);
    else if (isa == CConv_avx2) forward256(band, inputs, row, packed, outputs, bias, relu, accumulate, y, out_plane, wo, rows);
}

void CConv_weight_gradient(int isa, const float *band, int inputs, int row, const float *dy, size_t dy_plane,
                           int dy_row, int outputs, int wo, int rows, float *partial) {
    if (isa >= CConv_avx512) weight_gradient512(band, inputs, row, dy, dy_plane, dy_row, outputs, wo, rows, partial);
    else if (isa == CConv_avx2) weight_gradient256(band, inputs, row, dy, dy_plane, dy_row, outputs, wo, rows, partial);
}

#else

int CConv_best_isa(void) { return CConv_none; }

void CConv_forward(int isa, const float *band, int inputs, int row, const float *packed, int outputs,
                   const float *bias, int relu, int accumulate, float *y, size_t out_plane, int wo, int rows) {
    (void)isa; (void)band; (void)inputs; (void)row; (void)packed; (void)outputs; (void)bias; (void)relu;
    (void)accumulate; (void)y; (void)out_plane; (void)wo; (void)rows;
}

void CConv_weight_gradient(int isa, const float *band, int inputs, int row, const float *dy, size_t dy_plane,
                           int dy_row, int outputs, int wo, int rows, float *partial) {
    (void)isa; (void)band; (void)inputs; (void)row; (void)dy; (void)dy_plane; (void)dy_row; (void)outputs;
    (void)wo; (void)rows; (void)partial;
}

#endif
