// Hot pixel loops of the augmentation stages, in C so that they vectorise predictably and get
// an AVX2 version chosen at run time (`target_clones`) next to the baseline SSE2 one. Both
// versions compute the same floating-point operations in the same order (no FMA contraction:
// the target is built with -ffp-contract=off), so results are bit-identical on every x86-64
// machine, which the pipeline's "same seed, same bytes" promise needs.
//
// Conventions: images are planar float32 (channel planes of h rows of w samples), masks are
// one plane of 1-, 2- or 4-byte unsigned integers, coordinates are (x, y) with pixel centres at
// integers. Every function processes output rows [row_begin, row_end) so callers can split the
// work over threads; no function keeps state.
//
// Each kernel has a plain Swift reference in Tests/SegTestSupport that the tests compare with.
// This module has no stable API; only SegAugment imports it.
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum CKernels_interpolation {
    CKernels_nearest = 0,
    CKernels_bilinear = 1,
    CKernels_bicubic = 2,  // Keys, a = -0.5
    CKernels_bspline = 3,  // cubic B-spline on prefiltered coefficients
};

enum CKernels_border {
    CKernels_reflect = 0,   // numpy reflect (mirror without repeating the edge)
    CKernels_constant = 1,  // fill value; inside means [-0.5, n - 0.5)
    CKernels_edge = 2,      // repeat the edge pixel
};

/// out(p) = src(M p) for a single affine map M (backward: output → input), rows
/// [row_begin, row_end) of an ow × oh output. `m` = {a, b, tx, c, d, ty}:
/// x_in = a x + b y + tx, y_in = c x + d y + ty. Any interpolation; for bicubic and bspline
/// the taps outside the image follow `border` (reflect, else clamp), and for bspline `src`
/// must hold B-spline coefficients (CKernels_bspline_prefilter). If `mask_bytes` is 1, 2 or 4,
/// the mask is sampled nearest from the same coordinates (0 where the constant border
/// applies). `scratch` holds at least 72 × ow bytes.
void CKernels_warp_affine(const float *src, int w, int h, int channels, float *dst, int ow, int oh,
                          const double *m, int interpolation, int border, float fill,
                          const void *mask_src, void *mask_dst, int mask_bytes, int row_begin,
                          int row_end, void *scratch);

/// out(p) = src(p + d(p)) on the same w × h grid, displacements dx, dy per output pixel.
/// Otherwise as CKernels_warp_affine.
void CKernels_warp_displacement(const float *src, int w, int h, int channels, float *dst,
                                const float *dx, const float *dy, int interpolation, int border,
                                float fill, const void *mask_src, void *mask_dst, int mask_bytes,
                                int row_begin, int row_end, void *scratch);

/// Samples `src` at the coordinates (map_x, map_y) of an ow × oh output, which are already
/// folded into [0, w - 1] × [0, h - 1] or NaN (the output gets `fill`). Sampling as in
/// CKernels_warp_affine (the same row sampler). `scratch` holds at least 72 × ow bytes.
void CKernels_remap(const float *src, int w, int h, int channels, float *dst, int ow, int oh,
                    const float *map_x, const float *map_y, int interpolation, int border,
                    float fill, int row_begin, int row_end, void *scratch);

/// Nearest-neighbour sampling of a mask through a map (0 where the map holds NaN).
void CKernels_remap_mask(const void *src, int w, int h, void *dst, int ow, int oh,
                         const float *map_x, const float *map_y, int bytes, int row_begin,
                         int row_end);

/// Filters one plane in place with a symmetric kernel of 2 r + 1 taps (`kernel[r]` is the
/// centre), along rows then columns. `edge`: 0 zeros outside, 1 reflect. `scratch` holds at
/// least w × h + w + 2 r floats.
void CKernels_separable_filter(float *plane, int w, int h, const float *kernel, int r, int edge,
                               float *scratch);

/// CKernels_uniform_noise (key, scale) into `plane`, then CKernels_separable_filter with zeros
/// outside, in one pass over memory: the same values as the two calls, bit for bit.
void CKernels_smoothed_noise(float *plane, int w, int h, const float *kernel, int r, uint64_t key,
                             float scale, float *scratch);

/// Replaces one plane by its cubic B-spline coefficients (mirror boundaries, pole √3 − 2).
void CKernels_bspline_prefilter(float *plane, int w, int h);

/// out[i] = scale × (a uniform value in [-1, 1), a multiple of 2^-23), a pure function of
/// (key, i): a counter-based generator (two rounds of a 32-bit multiply–xorshift hash) that
/// vectorises and needs no state.
void CKernels_uniform_noise(float *out, size_t n, uint64_t key, float scale);

#ifdef __cplusplus
}
#endif

#endif
