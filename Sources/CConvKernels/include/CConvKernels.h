// Direct 3×3 convolution kernels (stride 1) for SegTrain, in C with AVX-512 and AVX2 + FMA
// versions chosen at run time. They replace the im2col + sgemm lowering where a GEMM has a
// poor shape: few channels over many pixels (a 16 × 144 weight matrix times a 144 × 65536
// lowered input spends its time lowering and packing, not multiplying).
//
// Layout: planar float32. A "padded band" holds `channels` planes of rows × `row` floats with
// the convolution's zero padding already in place (CConv_pad_band): output row r, column x of
// a band reads padded rows r..r+2, columns x..x+2. Kernels read whole vectors, so a padded row
// must hold at least CConv_row_floats(output width) floats, and everything past the data must
// be zero (CConv_pad_band does both).
//
// Weights are packed (CConv_pack) into blocks of B = CConv_block(isa) output channels (8 for
// AVX-512, 4 for AVX2: the outputs one kernel call keeps in registers, so a block's weights
// for 128 inputs, 36 or 18 KiB, stay in L1): packed[((ob · in + c) · 9 + tap) · B + j] =
// weight of output ob·B + j, input c, tap = 3 ky + kx; missing outputs of the last block are 0.
//
// Every output element is computed by one thread in a fixed order (input channel, then ky,
// then kx), so forward and input-gradient results do not depend on how rows are split over
// threads. Tests/SegTrainTests/ConvDirectTests.swift checks all three against a naive Double
// convolution and against the GEMM path.
// No stable API; only SegTrain imports it.
#ifndef CCONVKERNELS_H
#define CCONVKERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum CConv_isa {
    CConv_none = 0,    // no vector kernels here: callers use their GEMM lowering
    CConv_avx2 = 1,    // AVX2 + FMA, 8 floats per vector
    CConv_avx512 = 2,  // AVX-512F, 16 floats per vector
};

/// The best instruction set this CPU runs (CConv_none off x86-64).
int CConv_best_isa(void);

/// Floats a padded row needs for an output width `wo`: a multiple of 16 covering wo, plus 2.
int CConv_row_floats(int wo);

/// Output channels per packed block for an instruction set.
int CConv_block(int isa);

/// Floats of packed weights for `outputs` × `inputs` 3×3 kernels.
size_t CConv_packed_count(int isa, int outputs, int inputs);

/// Packs a PyTorch-layout weight w[o][c][ky][kx] (o < cout, c < cin). `transposed` = 0 packs it
/// for the forward convolution (outputs = cout, inputs = cin); `transposed` = 1 packs the kernel
/// of the input gradient (outputs = cin, inputs = cout): w'[c][o][ky][kx] = w[o][c][2−ky][2−kx].
void CConv_pack(int isa, const float *w, int cout, int cin, int transposed, float *packed);

/// Fills a padded band: out[c][r][x] = src[c][row0 + r − pad][x − pad] inside the source
/// (h × w, planes `src_plane` floats apart, rows `w` apart), 0 elsewhere, for r < rows and
/// x < row (the padded row length, ≥ w + 2 pad); planes of the band are rows × row floats.
void CConv_pad_band(const float *src, int channels, size_t src_plane, int h, int w, int pad,
                    int row0, int rows, float *out, int row);

/// y[o][r][x] = (accumulate ? y[o][r][x] : bias[o] or 0) + Σ_c,ky,kx w[o][c][ky][kx] ·
/// band[c][r + ky][x + kx] for o < outputs, r < rows, x < wo, then max(·, 0) when `relu`.
/// Output plane o of the band starts at y + o · out_plane, its rows wo apart.
/// `band` is `inputs` planes of (rows + 2) × `row` floats.
void CConv_forward(int isa, const float *band, int inputs, int row, const float *packed,
                   int outputs, const float *bias, int relu, int accumulate, float *y,
                   size_t out_plane, int wo, int rows);

/// partial[(o · inputs + c) · 9 + 3 ky + kx] += Σ_r,x dy[o][r][x] · band[c][r + ky][x + kx] for
/// r < rows, x < wo. `dy` plane o starts at dy + o · dy_plane with rows `dy_row` apart, and
/// must be readable and zero for x in [wo, CConv_row_floats(wo) − 2) (a padded band serves).
void CConv_weight_gradient(int isa, const float *band, int inputs, int row, const float *dy,
                           size_t dy_plane, int dy_row, int outputs, int wo, int rows,
                           float *partial);

// MARK: - Winograd F(2×2, 3×3) (winograd.c; AVX2 + FMA, run on AVX-512 CPUs too)

/// Floats of Winograd-transformed weights (16 per kernel, outputs rounded up to 4).
size_t CConv_wino_packed_count(int outputs, int inputs);

/// Floats of per-thread scratch CConv_wino_forward needs for `inputs` → `outputs` channels.
size_t CConv_wino_scratch_count(int inputs, int outputs);

/// Transforms and packs w[o][c][ky][kx] as CConv_pack does (`transposed` the same way):
/// packed[((o/4 · 16 + ξ) · inputs + c) · 4 + o % 4] = (G g Gᵀ)[ξ].
void CConv_wino_pack(const float *w, int cout, int cin, int transposed, float *packed);

/// The same result as CConv_forward (within float rounding: the transforms reassociate the
/// sums) from Winograd-packed weights. Each plane of `band` holds `band_rows` rows of `row`
/// floats, band_rows ≥ rows + 2 + (rows odd), every row readable in full and finite; the
/// row's tail past the data is read for tiles past the output width, whose results are not
/// stored. `scratch` holds CConv_wino_scratch_count(inputs, outputs) floats. Every output element is
/// computed by one thread in a fixed order, independent of how rows are split into bands
/// as long as bands start at even rows.
void CConv_wino_forward(int isa, const float *band, int inputs, int row, int band_rows, const float *packed,
                        int outputs, const float *bias, int relu, int accumulate, float *y, size_t out_plane,
                        int wo, int rows, float *scratch);

/// Floats of the transformed weight-gradient partial: 16 · inputs · outputs (rounded up to 4).
size_t CConv_wino_wgrad_partial_count(int outputs, int inputs);

/// Floats of per-thread scratch CConv_wino_weight_gradient needs.
size_t CConv_wino_wgrad_scratch_count(int inputs, int outputs);

/// partial[(ξ · inputs + c) · O4 + o] += Σ_tiles (Bᵀ d B)[ξ] · (A dY Aᵀ)[ξ] over the 2 × 2 tiles of
/// output rows 0..rows−1 and columns 0..wo−1 (O4 = outputs rounded up to 4): the weight
/// gradient of CConv_weight_gradient in the Winograd domain, finished by
/// CConv_wino_wgrad_finish. `band` as for CConv_wino_forward (band_rows ≥ rows + 2 + rows odd);
/// `dy` plane o at dy + o · dy_plane, rows dy_row apart, must read as zero past wo up to the
/// next multiple of 16 and, when rows is odd, in row `rows`.
void CConv_wino_weight_gradient(int isa, const float *band, int inputs, int row, int band_rows, const float *dy,
                                size_t dy_plane, int dy_row, int outputs, int wo, int rows, float *partial,
                                float *scratch);

/// dw[(o · inputs + c) · 9 + 3 ky + kx] += (Gᵀ M G)[ky][kx] of a partial.
void CConv_wino_wgrad_finish(const float *partial, int outputs, int inputs, float *dw);

#ifdef __cplusplus
}
#endif

#endif
