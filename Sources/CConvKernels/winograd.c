// Winograd F(2×2, 3×3) for stride-1 3×3 convolutions over the same padded bands as conv.c
// (see CConvKernels.h): Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A for every 2×2 output tile, with d the
// tile's 4×4 input window. 16 multiplications per tile and input–output pair instead of 36:
// the element-wise products become 16 small matrix products (outputs × inputs times inputs ×
// tiles), computed 4 outputs × 24 tiles per register block like the direct kernel's.
//
// Work is done in blocks of 3 "tile vectors" (8 horizontally adjacent tiles, 16 output columns
// of 2 rows), taken in order across the band's tile rows, so a band whose width is not a
// multiple of 48 still fills whole blocks. Per block: the input transform of every channel
// into V[ξ][c][24], then per block of 4 outputs the 16 products into M[ξ][4][24] (L1) and the
// output transform, bias, ReLU and store. Tiles past the row's end compute on the band's zero
// tail and are not stored; an odd last output row reads one band row more (band_rows).
#include "CConvKernels.h"

#include <string.h>

#define WINO_TILES 24  // tiles per block: 3 vectors of 8
// Floats added to the distance between the 16 ξ planes of V, M and D: without them the planes
// lie a multiple of 4 KiB apart for most channel counts, all in one L1 set, and the 16 stores
// of each transform evict each other (the weight gradient ran 3× slower at 16 channels).
#define WINO_SKEW 16

size_t CConv_wino_packed_count(int outputs, int inputs) {
    return (size_t)((outputs + 3) / 4) * 4 * 16 * (size_t)inputs;
}

size_t CConv_wino_scratch_count(int inputs, int outputs) {
    return (size_t)16 * (WINO_TILES * ((size_t)inputs + (size_t)(outputs + 3) / 4 * 4) + 2 * WINO_SKEW);
}

void CConv_wino_pack(const float *w, int cout, int cin, int transposed, float *packed) {
    int outputs = transposed ? cin : cout, inputs = transposed ? cout : cin;
    // One block of 4 outputs and one input at a time, the 4 kernels side by side (the loops
    // over j vectorise): G g Gᵀ with G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1], stored as 16 runs of 4.
    for (int o0 = 0; o0 < outputs; o0 += 4) {
        int no = outputs - o0 < 4 ? outputs - o0 : 4;
        for (int c = 0; c < inputs; c++) {
            float g[9][4], t[4][3][4], u[16][4];
            for (int k = 0; k < 9; k++)
                for (int j = 0; j < 4; j++) {
                    int o = o0 + j;
                    g[k][j] = j >= no ? 0.0f
                              : transposed ? w[((size_t)c * cin + o) * 9 + (8 - k)]
                                           : w[((size_t)o * cin + c) * 9 + k];
                }
            for (int k = 0; k < 3; k++)
                for (int j = 0; j < 4; j++) {
                    float a = g[k][j], b = g[3 + k][j], d = g[6 + k][j];
                    t[0][k][j] = a;
                    t[1][k][j] = 0.5f * (a + b + d);
                    t[2][k][j] = 0.5f * (a - b + d);
                    t[3][k][j] = d;
                }
            for (int r = 0; r < 4; r++)
                for (int j = 0; j < 4; j++) {
                    float a = t[r][0][j], b = t[r][1][j], d = t[r][2][j];
                    u[r * 4 + 0][j] = a;
                    u[r * 4 + 1][j] = 0.5f * (a + b + d);
                    u[r * 4 + 2][j] = 0.5f * (a - b + d);
                    u[r * 4 + 3][j] = d;
                }
            float *dst = packed + ((size_t)o0 * 16 * inputs + (size_t)c * 4);
            for (int xi = 0; xi < 16; xi++) memcpy(dst + (size_t)xi * inputs * 4, u[xi], sizeof u[xi]);
        }
    }
}

#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>

#define INLINE256 static inline __attribute__((always_inline, target("avx2,fma")))
#define T256 __attribute__((target("avx2,fma")))

// Even and odd lanes of the 16 floats at p: the tile columns 0 and 1 (or 2 and 3 from p + 2)
// of 8 tiles, in the order 0 1 4 5 2 3 6 7 that one in-lane shuffle leaves them in. Every
// vector of tiles keeps that order up to store_row, whose in-lane unpack undoes it, so no
// lane-crossing permutation is needed anywhere.
INLINE256 void deinterleave(const float *p, __m256 *even, __m256 *odd) {
    __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    *even = _mm256_shuffle_ps(a, b, 0x88);
    *odd = _mm256_shuffle_ps(a, b, 0xDD);
}

// V[ξ][c][slot·8 + t] = (Bᵀ d B)[ξ] of 8 tiles whose 4×4 windows start at p (rows `row` apart).
INLINE256 void input_transform(const float *p, int row, float *v, size_t xi_stride) {
    __m256 r[4][4];
    for (int i = 0; i < 4; i++) {
        __m256 d0, d1, d2, d3;
        deinterleave(p + (size_t)i * row, &d0, &d1);
        deinterleave(p + (size_t)i * row + 2, &d2, &d3);
        r[i][0] = _mm256_sub_ps(d0, d2);
        r[i][1] = _mm256_add_ps(d1, d2);
        r[i][2] = _mm256_sub_ps(d2, d1);
        r[i][3] = _mm256_sub_ps(d1, d3);
    }
    for (int h = 0; h < 4; h++) {
        _mm256_storeu_ps(v + (0 * 4 + h) * xi_stride, _mm256_sub_ps(r[0][h], r[2][h]));
        _mm256_storeu_ps(v + (1 * 4 + h) * xi_stride, _mm256_add_ps(r[1][h], r[2][h]));
        _mm256_storeu_ps(v + (2 * 4 + h) * xi_stride, _mm256_sub_ps(r[2][h], r[1][h]));
        _mm256_storeu_ps(v + (3 * 4 + h) * xi_stride, _mm256_sub_ps(r[1][h], r[3][h]));
    }
}

// M[ξ][o0 + j][·] = Σ_c U[ξ][c][o0 + j] · V[ξ][c][·] for one ξ, the 4 outputs of a block and pv
// vectors of tiles; V[ξ] (inputs × 24 floats) stays in L1 across the output blocks. The full
// loop body is inline assembly: its 16 ymm registers (12 sums, 3 tile vectors, 1 weight) are
// all the machine has, and written in C (with arrays, named sums, inlined or not) clang 21's
// scheduler used a second register for the weights and spilled one sum through the stack on
// every iteration, whose store-to-load latency halved the FMA rate (2.0 against 3.7 ms for
// 32 → 32 channels at 128², the 16 → 16 forward slower than the direct kernel).
#define WINO_ROW(k, w, a0, a1, a2)                                                   \
    "vbroadcastss " #k "(%[u]), %%ymm15\n\t"                                        \
    "vfmadd231ps %%ymm12, %%ymm15, %[" #a0 "]\n\t"                                  \
    "vfmadd231ps %%ymm13, %%ymm15, %[" #a1 "]\n\t"                                  \
    "vfmadd231ps %%ymm14, %%ymm15, %[" #a2 "]\n\t"
__attribute__((noinline, target("avx2,fma"))) static void products3(const float *u, const float *v, int inputs,
                                                                     float *m) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
    __m256 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
    for (int c = 0; c < inputs; c++, u += 4, v += WINO_TILES) {
        __asm__("vmovups (%[v]), %%ymm12\n\t"
                "vmovups 32(%[v]), %%ymm13\n\t"
                "vmovups 64(%[v]), %%ymm14\n\t"
                WINO_ROW(0, w, a00, a01, a02) WINO_ROW(4, w, a10, a11, a12)
                WINO_ROW(8, w, a20, a21, a22) WINO_ROW(12, w, a30, a31, a32)
                : [a00] "+x"(a00), [a01] "+x"(a01), [a02] "+x"(a02), [a10] "+x"(a10), [a11] "+x"(a11),
                  [a12] "+x"(a12), [a20] "+x"(a20), [a21] "+x"(a21), [a22] "+x"(a22), [a30] "+x"(a30),
                  [a31] "+x"(a31), [a32] "+x"(a32)
                : [u] "r"(u), [v] "r"(v)
                : "xmm12", "xmm13", "xmm14", "xmm15", "memory");
    }
    _mm256_storeu_ps(m, a00); _mm256_storeu_ps(m + 8, a01); _mm256_storeu_ps(m + 16, a02);
    m += WINO_TILES;
    _mm256_storeu_ps(m, a10); _mm256_storeu_ps(m + 8, a11); _mm256_storeu_ps(m + 16, a12);
    m += WINO_TILES;
    _mm256_storeu_ps(m, a20); _mm256_storeu_ps(m + 8, a21); _mm256_storeu_ps(m + 16, a22);
    m += WINO_TILES;
    _mm256_storeu_ps(m, a30); _mm256_storeu_ps(m + 8, a31); _mm256_storeu_ps(m + 16, a32);
}
#undef WINO_ROW

// The same for the band's last block of 1 or 2 vectors.
INLINE256 void products(const float *u, const float *v, int inputs, float *m, const int pv) {
    __m256 acc[4][2];
    for (int j = 0; j < 4; j++)
        for (int s = 0; s < pv; s++) acc[j][s] = _mm256_setzero_ps();
    for (int c = 0; c < inputs; c++) {
        __m256 x[2];
        for (int s = 0; s < pv; s++) x[s] = _mm256_loadu_ps(v + (size_t)c * WINO_TILES + 8 * s);
        for (int j = 0; j < 4; j++) {
            __m256 w = _mm256_broadcast_ss(u + c * 4 + j);
            for (int s = 0; s < pv; s++) acc[j][s] = _mm256_fmadd_ps(w, x[s], acc[j][s]);
        }
    }
    for (int j = 0; j < 4; j++)
        for (int s = 0; s < pv; s++) _mm256_storeu_ps(m + j * WINO_TILES + 8 * s, acc[j][s]);
}

INLINE256 __m256i lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Writes (or adds) one output row of 16 columns from its even and odd columns, n of them valid.
INLINE256 void store_row(__m256 even, __m256 odd, float *y, int n, __m256 base, int accumulate, int relu) {
    // Tiles 0 1 4 5 | 2 3 6 7 (deinterleave's order): unpacking gives columns 0–7, then 8–15.
    __m256 out[2] = {_mm256_unpacklo_ps(even, odd), _mm256_unpackhi_ps(even, odd)};
    for (int h = 0; h < 2; h++) {
        int k = n - 8 * h;
        if (k <= 0) break;
        __m256i m = lanes(k);
        __m256 b = accumulate ? _mm256_maskload_ps(y + 8 * h, m) : base;
        __m256 r = _mm256_add_ps(out[h], b);
        if (relu) r = _mm256_max_ps(r, _mm256_setzero_ps());
        if (k >= 8) _mm256_storeu_ps(y + 8 * h, r);
        else _mm256_maskstore_ps(y + 8 * h, m, r);
    }
}

// Aᵀ M A for the 8 tiles of one slot of output j, with A ᵀ = [1 1 1 0; 0 1 −1 −1].
INLINE256 void output_transform(const float *m, size_t xi_stride, float *y, int wo, int n, int second_row,
                                __m256 base, int accumulate, int relu) {
    __m256 p0[4], p1[4];
    for (int h = 0; h < 4; h++) {
        __m256 m0 = _mm256_loadu_ps(m + (0 * 4 + h) * xi_stride);
        __m256 m1 = _mm256_loadu_ps(m + (1 * 4 + h) * xi_stride);
        __m256 m2 = _mm256_loadu_ps(m + (2 * 4 + h) * xi_stride);
        __m256 m3 = _mm256_loadu_ps(m + (3 * 4 + h) * xi_stride);
        p0[h] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
        p1[h] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
    }
    store_row(_mm256_add_ps(_mm256_add_ps(p0[0], p0[1]), p0[2]), _mm256_sub_ps(_mm256_sub_ps(p0[1], p0[2]), p0[3]),
              y, n, base, accumulate, relu);
    if (second_row)
        store_row(_mm256_add_ps(_mm256_add_ps(p1[0], p1[1]), p1[2]), _mm256_sub_ps(_mm256_sub_ps(p1[1], p1[2]), p1[3]),
                  y + wo, n, base, accumulate, relu);
}

T256 static void wino_forward256(const float *band, int inputs, int row, int band_rows, const float *packed,
                                 int outputs, const float *bias, int relu, int accumulate, float *y,
                                 size_t out_plane, int wo, int rows, float *scratch) {
    size_t in_plane = (size_t)band_rows * row;
    int th = (rows + 1) / 2, nv = (wo + 15) / 16, total = th * nv;
    size_t xi_stride = (size_t)inputs * WINO_TILES + WINO_SKEW;
    float *v = scratch, *m = scratch + 16 * xi_stride;
    for (int b0 = 0; b0 < total; b0 += 3) {
        int nb = total - b0 < 3 ? total - b0 : 3;
        for (int s = 0; s < nb; s++) {
            int ti = (b0 + s) / nv, k = (b0 + s) % nv;
            const float *p = band + (size_t)2 * ti * row + 16 * k;
            for (int c = 0; c < inputs; c++)
                input_transform(p + c * in_plane, row, v + (size_t)c * WINO_TILES + 8 * s, xi_stride);
        }
        size_t m_stride = (size_t)(outputs + 3) / 4 * 4 * WINO_TILES + WINO_SKEW;
        for (int xi = 0; xi < 16; xi++) {
            const float *vx = v + xi * xi_stride;
            for (int o0 = 0; o0 < outputs; o0 += 4) {
                const float *u = packed + ((size_t)o0 * 16 + xi * 4) * inputs;
                float *mx = m + xi * m_stride + (size_t)o0 * WINO_TILES;
                if (nb == 3) products3(u, vx, inputs, mx);
                else if (nb == 2) products(u, vx, inputs, mx, 2);
                else products(u, vx, inputs, mx, 1);
            }
        }
        for (int o = 0; o < outputs; o++) {
            __m256 base = _mm256_set1_ps(bias ? bias[o] : 0.0f);
            for (int s = 0; s < nb; s++) {
                int ti = (b0 + s) / nv, k = (b0 + s) % nv;
                float *yr = y + (size_t)o * out_plane + (size_t)2 * ti * wo + 16 * k;
                int n = wo - 16 * k < 16 ? wo - 16 * k : 16;
                output_transform(m + (size_t)o * WINO_TILES + 8 * s, m_stride, yr, wo, n, 2 * ti + 1 < rows, base,
                                 accumulate, relu);
            }
        }
    }
}

// MARK: - Weight gradient
//
// y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A per tile, so dL/dg = Gᵀ [Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B)] G: per ξ a
// product M[ξ] (inputs × outputs) += Σ_t V[ξ][c][t] · D[ξ][o][t] over the band's tiles, with V
// the forward's input transform and D = A dY Aᵀ of each 2 × 2 gradient tile. Tiles are taken
// in chunks whose per-ξ slice (inputs + outputs rows of the chunk's tiles) stays in L2 while
// every block of 4 outputs × 3 inputs runs over it (12 sums of 8 tile lanes in registers,
// added across lanes at the end of the chunk).

#define WGRAD_SLICE 49152  // floats of one ξ's slice of a chunk: 192 KiB

static int wgrad_chunk_vectors(int inputs, int outputs) {
    int n = WGRAD_SLICE / (8 * (inputs + outputs));
    return n < 4 ? 4 : n > 96 ? 96 : n;
}

size_t CConv_wino_wgrad_partial_count(int outputs, int inputs) {
    return (size_t)16 * inputs * ((outputs + 3) / 4 * 4);
}

size_t CConv_wino_wgrad_scratch_count(int inputs, int outputs) {
    return (size_t)16 * ((inputs + outputs) * 8 * (size_t)wgrad_chunk_vectors(inputs, outputs) + 2 * WINO_SKEW);
}

void CConv_wino_wgrad_finish(const float *partial, int outputs, int inputs, float *dw) {
    size_t o4 = (size_t)(outputs + 3) / 4 * 4;
    // dW = Gᵀ M G with Gᵀ = [1 ½ ½ 0; 0 ½ −½ 0; 0 ½ ½ 1].
    for (int o = 0; o < outputs; o++) {
        for (int c = 0; c < inputs; c++) {
            float m[4][4], t[3][4];
            for (int xi = 0; xi < 16; xi++) m[xi / 4][xi % 4] = partial[((size_t)xi * inputs + c) * o4 + o];
            for (int h = 0; h < 4; h++) {
                t[0][h] = m[0][h] + 0.5f * (m[1][h] + m[2][h]);
                t[1][h] = 0.5f * (m[1][h] - m[2][h]);
                t[2][h] = 0.5f * (m[1][h] + m[2][h]) + m[3][h];
            }
            float *d = dw + ((size_t)o * inputs + c) * 9;
            for (int r = 0; r < 3; r++) {
                d[r * 3 + 0] += t[r][0] + 0.5f * (t[r][1] + t[r][2]);
                d[r * 3 + 1] += 0.5f * (t[r][1] - t[r][2]);
                d[r * 3 + 2] += 0.5f * (t[r][1] + t[r][2]) + t[r][3];
            }
        }
    }
}

// D[ξ][o][slot] = (A dY Aᵀ)[ξ] for 8 tiles of dY rows at p and p + row (A = [1 0; 1 1; 1 −1; 0 −1]).
INLINE256 void gradient_transform(const float *p, int row, float *d, size_t xi_stride) {
    __m256 y00, y01, y10, y11;
    deinterleave(p, &y00, &y01);
    deinterleave(p + row, &y10, &y11);
    __m256 zero = _mm256_setzero_ps();
    __m256 r[4][2] = {{y00, y01},
                      {_mm256_add_ps(y00, y10), _mm256_add_ps(y01, y11)},
                      {_mm256_sub_ps(y00, y10), _mm256_sub_ps(y01, y11)},
                      {_mm256_sub_ps(zero, y10), _mm256_sub_ps(zero, y11)}};
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(d + (i * 4 + 0) * xi_stride, r[i][0]);
        _mm256_storeu_ps(d + (i * 4 + 1) * xi_stride, _mm256_add_ps(r[i][0], r[i][1]));
        _mm256_storeu_ps(d + (i * 4 + 2) * xi_stride, _mm256_sub_ps(r[i][0], r[i][1]));
        _mm256_storeu_ps(d + (i * 4 + 3) * xi_stride, _mm256_sub_ps(zero, r[i][1]));
    }
}

// Sums of the 8 lanes of a, b, c, d as one vector of 4.
INLINE256 __m128 lane_sums4(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// M[c0 + i][o0 .. o0 + 3] += Σ_k Σ_lanes V[c0 + i][8k ..] · D[o0 + j][8k ..] for i < 3 over n
// vectors; rows past the layer's channels point at row 0 and their sums are not stored. The
// loop body is assembly for the reason given at products3.
#define WGRAD_ROW(dj, a0, a1, a2)                                                     \
    "vmovups (%[" #dj "],%[k]), %%ymm15\n\t"                                           \
    "vfmadd231ps %%ymm12, %%ymm15, %[" #a0 "]\n\t"                                     \
    "vfmadd231ps %%ymm13, %%ymm15, %[" #a1 "]\n\t"                                     \
    "vfmadd231ps %%ymm14, %%ymm15, %[" #a2 "]\n\t"
__attribute__((noinline, target("avx2,fma"))) static void wgrad_block(const float *v0, const float *v1, const float *v2,
                                                                       const float *d0, const float *d1, const float *d2,
                                                                       const float *d3, int n, float *m, size_t o4,
                                                                       int nc) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
    __m256 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
    for (size_t k = 0; k < (size_t)n * 32; k += 32) {
        __asm__("vmovups (%[v0],%[k]), %%ymm12\n\t"
                "vmovups (%[v1],%[k]), %%ymm13\n\t"
                "vmovups (%[v2],%[k]), %%ymm14\n\t"
                WGRAD_ROW(d0, a00, a01, a02) WGRAD_ROW(d1, a10, a11, a12)
                WGRAD_ROW(d2, a20, a21, a22) WGRAD_ROW(d3, a30, a31, a32)
                : [a00] "+x"(a00), [a01] "+x"(a01), [a02] "+x"(a02), [a10] "+x"(a10), [a11] "+x"(a11),
                  [a12] "+x"(a12), [a20] "+x"(a20), [a21] "+x"(a21), [a22] "+x"(a22), [a30] "+x"(a30),
                  [a31] "+x"(a31), [a32] "+x"(a32)
                : [v0] "r"(v0), [v1] "r"(v1), [v2] "r"(v2), [d0] "r"(d0), [d1] "r"(d1), [d2] "r"(d2),
                  [d3] "r"(d3), [k] "r"(k)
                : "xmm12", "xmm13", "xmm14", "xmm15", "memory");
    }
    __m128 s0 = lane_sums4(a00, a10, a20, a30);
    _mm_storeu_ps(m, _mm_add_ps(_mm_loadu_ps(m), s0));
    if (nc > 1) {
        __m128 s1 = lane_sums4(a01, a11, a21, a31);
        _mm_storeu_ps(m + o4, _mm_add_ps(_mm_loadu_ps(m + o4), s1));
    }
    if (nc > 2) {
        __m128 s2 = lane_sums4(a02, a12, a22, a32);
        _mm_storeu_ps(m + 2 * o4, _mm_add_ps(_mm_loadu_ps(m + 2 * o4), s2));
    }
}
#undef WGRAD_ROW

T256 static void wino_wgrad256(const float *band, int inputs, int row, int band_rows, const float *dy, size_t dy_plane,
                               int dy_row, int outputs, int wo, int rows, float *partial, float *scratch) {
    size_t in_plane = (size_t)band_rows * row, o4 = (size_t)(outputs + 3) / 4 * 4;
    int th = (rows + 1) / 2, nv = (wo + 15) / 16, total = th * nv;
    int chunk = wgrad_chunk_vectors(inputs, outputs);
    for (int b0 = 0; b0 < total; b0 += chunk) {
        int n = total - b0 < chunk ? total - b0 : chunk;
        size_t t = (size_t)8 * n;  // tiles of this chunk: the rows' length in V and D
        size_t vs = inputs * t + WINO_SKEW, ds = outputs * t + WINO_SKEW;  // ξ plane strides
        float *v = scratch, *d = scratch + 16 * vs;
        for (int s = 0; s < n; s++) {
            int ti = (b0 + s) / nv, k = (b0 + s) % nv;
            const float *p = band + (size_t)2 * ti * row + 16 * k;
            for (int c = 0; c < inputs; c++) input_transform(p + c * in_plane, row, v + c * t + 8 * s, vs);
            const float *g = dy + (size_t)2 * ti * dy_row + 16 * k;
            for (int o = 0; o < outputs; o++)
                gradient_transform(g + o * dy_plane, dy_row, d + o * t + 8 * s, ds);
        }
        for (int xi = 0; xi < 16; xi++) {
            const float *vx = v + xi * vs, *dx = d + xi * ds;
            float *mx = partial + (size_t)xi * inputs * o4;
            for (int o0 = 0; o0 < outputs; o0 += 4) {
                const float *dr[4];
                for (int j = 0; j < 4; j++) dr[j] = dx + (o0 + j < outputs ? o0 + j : 0) * t;
                for (int c0 = 0; c0 < inputs; c0 += 3) {
                    int nc = inputs - c0 < 3 ? inputs - c0 : 3;
                    const float *vr[3];
                    for (int i = 0; i < 3; i++) vr[i] = vx + (i < nc ? c0 + i : 0) * t;
                    wgrad_block(vr[0], vr[1], vr[2], dr[0], dr[1], dr[2], dr[3], n, mx + (size_t)c0 * o4 + o0, o4, nc);
                }
            }
        }
    }
}

void CConv_wino_weight_gradient(int isa, const float *band, int inputs, int row, int band_rows, const float *dy,
                                size_t dy_plane, int dy_row, int outputs, int wo, int rows, float *partial,
                                float *scratch) {
    if (isa >= CConv_avx2)
        wino_wgrad256(band, inputs, row, band_rows, dy, dy_plane, dy_row, outputs, wo, rows, partial, scratch);
}

void CConv_wino_forward(int isa, const float *band, int inputs, int row, int band_rows, const float *packed,
                        int outputs, const float *bias, int relu, int accumulate, float *y, size_t out_plane,
                        int wo, int rows, float *scratch) {
    if (isa >= CConv_avx2)
        wino_forward256(band, inputs, row, band_rows, packed, outputs, bias, relu, accumulate, y, out_plane, wo, rows,
                        scratch);
}

#else

void CConv_wino_weight_gradient(int isa, const float *band, int inputs, int row, int band_rows, const float *dy,
                                size_t dy_plane, int dy_row, int outputs, int wo, int rows, float *partial,
                                float *scratch) {
    (void)isa; (void)band; (void)inputs; (void)row; (void)band_rows; (void)dy; (void)dy_plane; (void)dy_row;
    (void)outputs; (void)wo; (void)rows; (void)partial; (void)scratch;
}

void CConv_wino_forward(int isa, const float *band, int inputs, int row, int band_rows, const float *packed,
                        int outputs, const float *bias, int relu, int accumulate, float *y, size_t out_plane,
                        int wo, int rows, float *scratch) {
    (void)isa; (void)band; (void)inputs; (void)row; (void)band_rows; (void)packed; (void)outputs; (void)bias;
    (void)relu; (void)accumulate; (void)y; (void)out_plane; (void)wo; (void)rows; (void)scratch;
}

#endif
