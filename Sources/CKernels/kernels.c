#include "CKernels.h"

// No fused multiply-add: the AVX2 clone and the baseline must round identically.
#pragma clang fp contract(off)

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__clang__) && !defined(CKERNELS_NO_CLONES)
#define CKERNELS_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CKERNELS_CLONES
#endif

// MARK: - Borders (the same arithmetic as SegAugment.Border)

static inline float reflect_f(float x, int n) {
    if (n <= 1) return 0.0f;
    float last = (float)(n - 1);
    if (x >= 0.0f && x <= last) return x;
    float period = 2.0f * last;
    // One reflection, exact (-x and period - x round nothing: Sterbenz); the vectorised fold
    // in sample_row computes the same.
    if (x < 0.0f && x >= -last) return -x;
    if (x > last && x <= period) return period - x;
    float r = fmodf(x, period);
    if (r < 0.0f) r += period;
    return r > last ? period - r : r;
}

static inline int reflect_i(int i, int n) {
    if (n <= 1) return 0;
    if (i >= 0 && i < n) return i;
    int period = 2 * (n - 1);
    int r = i % period;
    if (r < 0) r += period;
    return r >= n ? period - r : r;
}

static inline int clamp_i(int i, int n) { return i < 0 ? 0 : (i > n - 1 ? n - 1 : i); }

/// Folds (x, y) into the image by `border`; returns 0 where the constant border applies.
static inline __attribute__((always_inline)) int fold(float *x, float *y, int w, int h, int border) {
    float fx = *x, fy = *y;
    switch (border) {
    case CKernels_reflect:
        *x = reflect_f(fx, w);
        *y = reflect_f(fy, h);
        return 1;
    case CKernels_edge:
        *x = fx < 0.0f ? 0.0f : (fx > (float)(w - 1) ? (float)(w - 1) : fx);
        *y = fy < 0.0f ? 0.0f : (fy > (float)(h - 1) ? (float)(h - 1) : fy);
        return 1;
    default:
        if (!(fx >= -0.5f && fx < (float)w - 0.5f && fy >= -0.5f && fy < (float)h - 0.5f)) return 0;
        *x = fx < 0.0f ? 0.0f : (fx > (float)(w - 1) ? (float)(w - 1) : fx);
        *y = fy < 0.0f ? 0.0f : (fy > (float)(h - 1) ? (float)(h - 1) : fy);
        return 1;
    }
}

static inline uint32_t load_mask(const void *m, size_t i, int bytes) {
    switch (bytes) {
    case 1: return ((const uint8_t *)m)[i];
    case 2: return ((const uint16_t *)m)[i];
    default: return ((const uint32_t *)m)[i];
    }
}

static inline void store_mask(void *m, size_t i, int bytes, uint32_t v) {
    switch (bytes) {
    case 1: ((uint8_t *)m)[i] = (uint8_t)v; break;
    case 2: ((uint16_t *)m)[i] = (uint16_t)v; break;
    default: ((uint32_t *)m)[i] = v; break;
    }
}

/// dst[i] = src[index[i]] for one mask row, one loop per element width.
static inline __attribute__((always_inline)) void gather_mask(const void *src, void *dst, const int32_t *index, int n,
                                                              int bytes) {
    switch (bytes) {
    case 1: {
        const uint8_t *s = src;
        uint8_t *d = dst;
        for (int i = 0; i < n; i++) d[i] = s[index[i]];
        break;
    }
    case 2: {
        const uint16_t *s = src;
        uint16_t *d = dst;
        for (int i = 0; i < n; i++) d[i] = s[index[i]];
        break;
    }
    default: {
        const uint32_t *s = src;
        uint32_t *d = dst;
        for (int i = 0; i < n; i++) d[i] = s[index[i]];
        break;
    }
    }
}

// MARK: - Row sampling shared by the warps

typedef struct {
    float *xs;
    float *ys;
    int32_t *index;
    int32_t *step_x;
    int32_t *step_y;
    float *corners;  // 4 × n
    uint8_t *valid;
    float *weights;  // 8 × n: the four x weights, then the four y weights (cubic)
} row_scratch;

static row_scratch scratch_views(void *scratch, int n) {
    row_scratch s;
    char *p = scratch;
    s.xs = (float *)p;
    s.ys = (float *)(p + 4 * (size_t)n);
    s.index = (int32_t *)(p + 8 * (size_t)n);
    s.step_x = (int32_t *)(p + 12 * (size_t)n);
    s.step_y = (int32_t *)(p + 16 * (size_t)n);
    s.corners = (float *)(p + 20 * (size_t)n);
    s.valid = (uint8_t *)(p + 36 * (size_t)n);
    s.weights = (float *)(p + 40 * (size_t)n);
    return s;
}

// MARK: - Cubic weights (the same expressions wherever they are used)

static inline void keys_weights(float t, float *wt) {
    float t2 = t * t, t3 = t2 * t;
    wt[0] = -0.5f * t3 + t2 - 0.5f * t;
    wt[1] = 1.5f * t3 - 2.5f * t2 + 1.0f;
    wt[2] = -1.5f * t3 + 2.0f * t2 + 0.5f * t;
    wt[3] = 0.5f * t3 - 0.5f * t2;
}

static inline void bspline_weights(float t, float *wt) {
    float s = 1.0f - t, t2 = t * t, t3 = t2 * t;
    wt[0] = s * s * s / 6.0f;
    wt[1] = (4.0f - 6.0f * t2 + 3.0f * t3) / 6.0f;
    wt[2] = (1.0f + 3.0f * t + 3.0f * t2 - 3.0f * t3) / 6.0f;
    wt[3] = t3 / 6.0f;
}

/// The four weights of every pixel of a row into w0..w3 (one array each), from the fractional
/// parts t; in a loop of its own so that it vectorises.
static inline __attribute__((always_inline)) void cubic_weight_rows(const float *restrict t, int n, int bspline,
                                                                    float *restrict w0, float *restrict w1,
                                                                    float *restrict w2, float *restrict w3) {
    if (bspline) {
        for (int i = 0; i < n; i++) {
            float u = t[i], s = 1.0f - u, u2 = u * u, u3 = u2 * u;
            w0[i] = s * s * s / 6.0f;
            w1[i] = (4.0f - 6.0f * u2 + 3.0f * u3) / 6.0f;
            w2[i] = (1.0f + 3.0f * u + 3.0f * u2 - 3.0f * u3) / 6.0f;
            w3[i] = u3 / 6.0f;
        }
    } else {
        for (int i = 0; i < n; i++) {
            float u = t[i], u2 = u * u, u3 = u2 * u;
            w0[i] = -0.5f * u3 + u2 - 0.5f * u;
            w1[i] = 1.5f * u3 - 2.5f * u2 + 1.0f;
            w2[i] = -1.5f * u3 + 2.0f * u2 + 0.5f * u;
            w3[i] = 0.5f * u3 - 0.5f * u2;
        }
    }
}

/// Whether every coordinate of a row lies within one reflection of the image
/// ([-(n - 1), 2 (n - 1)] on both axes), where the vectorised fold applies.
static inline __attribute__((always_inline)) int within_one_period(const float *restrict xs, const float *restrict ys,
                                                                   int n, int w, int h) {
    const float lx = (float)(w - 1), ly = (float)(h - 1), px = 2.0f * lx, py = 2.0f * ly;
    int bad = 0;  // an OR of negated comparisons vectorises (NaN counts as bad)
    for (int i = 0; i < n; i++) {
        bad |= !(xs[i] >= -lx) | !(xs[i] <= px) | !(ys[i] >= -ly) | !(ys[i] <= py);
    }
    return !bad;
}

/// The source coordinates (i + dx[i], row + dy[i]) of one output row; returns whether all of
/// them lie inside [0, w - 1] × [0, h - 1].
static inline __attribute__((always_inline)) int displaced_row(float *restrict xs, float *restrict ys,
                                                               const float *restrict dx, const float *restrict dy,
                                                               int n, float row, float wm1, float hm1) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        float x = (float)i + dx[i];
        float y = row + dy[i];
        xs[i] = x;
        ys[i] = y;
        bad |= !(x >= 0.0f) | !(x <= wm1) | !(y >= 0.0f) | !(y <= hm1);
    }
    return !bad;
}

/// Samples one output row whose source coordinates are in s.xs / s.ys (n pixels). Pixels
/// [inside_begin, inside_end) are known to lie inside the image already and skip the fold.
// always_inline: each caller is cloned for AVX2, and a shared out-of-line copy would only get
// the baseline instructions.
static inline __attribute__((always_inline)) void sample_row(const float *src, int w, int h, int channels, float *dst_row,
                       size_t out_plane, int n, int interpolation, int border, float fill,
                       int inside_begin, int inside_end, int prefolded, const void *mask_src,
                       void *mask_row, int mask_bytes, row_scratch s) {
    const size_t plane = (size_t)w * (size_t)h;
    int all_valid = 1;
    if (prefolded) {
        // Coordinates already folded, NaN where the constant border applies.
        for (int i = 0; i < n; i++) {
            float x = s.xs[i], y = s.ys[i];
            int ok = !(isnan(x) || isnan(y));
            s.valid[i] = (uint8_t)ok;
            s.xs[i] = ok ? x : 0.0f;
            s.ys[i] = ok ? y : 0.0f;
            all_valid &= ok;
        }
    } else if (inside_end <= inside_begin && border != CKernels_constant && w > 1 && h > 1 &&
               within_one_period(s.xs, s.ys, n, w, h)) {
        // No interval known to be inside (displacement fields): reflect and edge fold every
        // coordinate in a loop that vectorises (the same values as fold(): reflect_f's
        // one-reflection case, or the clamp).
        const float lx = (float)(w - 1), ly = (float)(h - 1), px = 2.0f * lx, py = 2.0f * ly;
        float *restrict xs = s.xs;
        float *restrict ys = s.ys;
        if (border == CKernels_reflect) {
            for (int i = 0; i < n; i++) {
                float x = xs[i], y = ys[i];
                float ax = x < 0.0f ? -x : x, ay = y < 0.0f ? -y : y;
                xs[i] = ax > lx ? px - ax : ax;
                ys[i] = ay > ly ? py - ay : ay;
            }
        } else {
            for (int i = 0; i < n; i++) {
                float x = xs[i], y = ys[i];
                xs[i] = x < 0.0f ? 0.0f : (x > lx ? lx : x);
                ys[i] = y < 0.0f ? 0.0f : (y > ly ? ly : y);
            }
        }
        memset(s.valid, 1, (size_t)n);
    } else if (inside_begin > 0 || inside_end < n) {
        for (int i = 0; i < n; i++) {
            if (i == inside_begin && inside_end > inside_begin) {
                for (int k = inside_begin; k < inside_end; k++) s.valid[k] = 1;
                i = inside_end - 1;
                continue;
            }
            float x = s.xs[i], y = s.ys[i];
            int ok = fold(&x, &y, w, h, border);
            s.valid[i] = (uint8_t)ok;
            s.xs[i] = ok ? x : 0.0f;
            s.ys[i] = ok ? y : 0.0f;
            all_valid &= ok;
        }
    }
    const int32_t wm1 = w - 1, hm1 = h - 1, w32 = w;
    if (interpolation == CKernels_bilinear) {
        for (int i = 0; i < n; i++) {
            int32_t x0 = (int32_t)s.xs[i];
            int32_t y0 = (int32_t)s.ys[i];
            s.xs[i] -= (float)x0;
            s.ys[i] -= (float)y0;
            s.index[i] = y0 * w32 + x0;
            s.step_x[i] = x0 < wm1 ? 1 : 0;
            s.step_y[i] = y0 < hm1 ? w32 : 0;
        }
        // Gather the four corners (scalar loads), then blend in a separate loop that the
        // compiler vectorises; s.corners holds 4 × n floats.
        float *c00 = s.corners, *c01 = s.corners + n, *c10 = s.corners + 2 * n, *c11 = s.corners + 3 * n;
        for (int c = 0; c < channels; c++) {
            const float *p = src + (size_t)c * plane;
            float *restrict o = dst_row + (size_t)c * out_plane;
            for (int i = 0; i < n; i++) {
                const float *q = p + s.index[i];
                int32_t dx = s.step_x[i], dy = s.step_y[i];
                c00[i] = q[0];
                c01[i] = q[dx];
                c10[i] = q[dy];
                c11[i] = q[dy + dx];
            }
            const float *restrict fxs = s.xs;
            const float *restrict fys = s.ys;
            for (int i = 0; i < n; i++) {
                float fx = fxs[i];
                float top = c00[i] + (c01[i] - c00[i]) * fx;
                float bottom = c10[i] + (c11[i] - c10[i]) * fx;
                o[i] = top + (bottom - top) * fys[i];
            }
        }
        if (mask_bytes) {
            // Nearest = the bilinear cell's corner on the rounded side; reuse s.index for it.
            for (int i = 0; i < n; i++) {
                s.index[i] += (s.xs[i] >= 0.5f ? s.step_x[i] : 0) + (s.ys[i] >= 0.5f ? s.step_y[i] : 0);
            }
            gather_mask(mask_src, mask_row, s.index, n, mask_bytes);
        }
    } else if (interpolation == CKernels_bicubic || interpolation == CKernels_bspline) {
        // Integer parts, fractions and the mask's nearest index.
        int all_inside = 1;
        const int folded_any = prefolded || inside_begin > 0 || inside_end < n;
        int32_t *ix0 = (int32_t *)s.corners, *iy0 = ix0 + n;  // the corners are unused here
        for (int i = 0; i < n; i++) {
            float x = s.xs[i], y = s.ys[i];
            int32_t x0 = (int32_t)x, y0 = (int32_t)y;  // x, y >= 0: truncation is floor
            s.xs[i] = x - (float)x0;
            s.ys[i] = y - (float)y0;
            int32_t xi = (int32_t)(x + 0.5f), yi = (int32_t)(y + 0.5f);
            xi = xi > wm1 ? wm1 : xi;
            yi = yi > hm1 ? hm1 : yi;
            s.step_x[i] = yi * w32 + xi;
            // Every tap inside the image: x0 - 1 >= 0 and x0 + 2 <= w - 1 (the same for y).
            int inside = (x0 >= 1) & (x0 <= wm1 - 2) & (y0 >= 1) & (y0 <= hm1 - 2);
            int ok = folded_any ? (s.valid[i] & 1) : 1;
            s.valid[i] = (uint8_t)(ok | (inside << 1));
            s.index[i] = inside ? (y0 - 1) * w32 + (x0 - 1) : 0;
            ix0[i] = x0;
            iy0[i] = y0;
            all_inside &= inside;
        }
        float *wx0 = s.weights, *wx1 = wx0 + n, *wx2 = wx1 + n, *wx3 = wx2 + n;
        float *wy0 = wx3 + n, *wy1 = wy0 + n, *wy2 = wy1 + n, *wy3 = wy2 + n;
        const int bspline = interpolation == CKernels_bspline;
        cubic_weight_rows(s.xs, n, bspline, wx0, wx1, wx2, wx3);
        cubic_weight_rows(s.ys, n, bspline, wy0, wy1, wy2, wy3);
        for (int c = 0; c < channels; c++) {
            const float *p = src + (size_t)c * plane;
            float *restrict o = dst_row + (size_t)c * out_plane;
            // The sum in the order of the reference: per tap row j, ((w0 a + w1 b) + w2 c) + w3 d;
            // then v = 0 + wy0 r0 + wy1 r1 + wy2 r2 + wy3 r3.
            for (int i = 0; i < n; i++) {
                const float *q0 = p + s.index[i], *q1 = q0 + w32, *q2 = q1 + w32, *q3 = q2 + w32;
                float a = wx0[i], b = wx1[i], cc = wx2[i], d = wx3[i];
                float r0 = a * q0[0] + b * q0[1] + cc * q0[2] + d * q0[3];
                float r1 = a * q1[0] + b * q1[1] + cc * q1[2] + d * q1[3];
                float r2 = a * q2[0] + b * q2[1] + cc * q2[2] + d * q2[3];
                float r3 = a * q3[0] + b * q3[1] + cc * q3[2] + d * q3[3];
                float v = 0.0f;
                v += wy0[i] * r0;
                v += wy1[i] * r1;
                v += wy2[i] * r2;
                v += wy3[i] * r3;
                o[i] = v;
            }
            if (all_inside) continue;
            // Pixels whose taps cross the border: the taps follow it (reflect, else clamp).
            for (int i = 0; i < n; i++) {
                if (s.valid[i] & 2) continue;
                int32_t x0 = ix0[i], y0 = iy0[i];
                int32_t xs[4], ys[4];
                for (int k = 0; k < 4; k++) {
                    xs[k] = border == CKernels_reflect ? reflect_i(x0 - 1 + k, w) : clamp_i(x0 - 1 + k, w);
                    ys[k] = border == CKernels_reflect ? reflect_i(y0 - 1 + k, h) : clamp_i(y0 - 1 + k, h);
                }
                const float wx[4] = {wx0[i], wx1[i], wx2[i], wx3[i]}, wy[4] = {wy0[i], wy1[i], wy2[i], wy3[i]};
                float v = 0.0f;
                for (int j = 0; j < 4; j++) {
                    const float *r = p + (size_t)ys[j] * (size_t)w;
                    float rv = wx[0] * r[xs[0]] + wx[1] * r[xs[1]] + wx[2] * r[xs[2]] + wx[3] * r[xs[3]];
                    v += wy[j] * rv;
                }
                o[i] = v;
            }
        }
        if (mask_bytes) gather_mask(mask_src, mask_row, s.step_x, n, mask_bytes);
    } else {
        for (int i = 0; i < n; i++) {
            int32_t xi = (int32_t)(s.xs[i] + 0.5f);
            int32_t yi = (int32_t)(s.ys[i] + 0.5f);
            xi = xi > wm1 ? wm1 : xi;
            yi = yi > hm1 ? hm1 : yi;
            s.index[i] = yi * w32 + xi;
        }
        for (int c = 0; c < channels; c++) {
            const float *p = src + (size_t)c * plane;
            float *o = dst_row + (size_t)c * out_plane;
            for (int i = 0; i < n; i++) o[i] = p[s.index[i]];
        }
        if (mask_bytes) gather_mask(mask_src, mask_row, s.index, n, mask_bytes);
    }
    if (!all_valid) {
        for (int i = 0; i < n; i++) {
            if (s.valid[i] & 1) continue;
            for (int c = 0; c < channels; c++) dst_row[(size_t)c * out_plane + (size_t)i] = fill;
            if (mask_bytes) store_mask(mask_row, (size_t)i, mask_bytes, 0);
        }
    }
}

CKERNELS_CLONES
void CKernels_warp_affine(const float *src, int w, int h, int channels, float *dst, int ow, int oh,
                          const double *m, int interpolation, int border, float fill,
                          const void *mask_src, void *mask_dst, int mask_bytes, int row_begin,
                          int row_end, void *scratch) {
    row_scratch s = scratch_views(scratch, ow);
    const float a = (float)m[0], c = (float)m[3];
    const size_t out_plane = (size_t)ow * (size_t)oh;
    for (int row = row_begin; row < row_end; row++) {
        double base_x = m[1] * (double)row + m[2];
        double base_y = m[4] * (double)row + m[5];
        float bx = (float)base_x, by = (float)base_y;
        for (int i = 0; i < ow; i++) {
            s.xs[i] = a * (float)i + bx;
            s.ys[i] = c * (float)i + by;
        }
        // The row maps to a segment, so the columns inside the image form one interval:
        // estimate it from the line, then shrink it until both ends are really inside
        // (exact with respect to the float coordinates above).
        double lo = 0.0, hi = (double)ow - 1.0;
        const double coef[2] = {m[0], m[3]}, base[2] = {base_x, base_y}, top[2] = {(double)(w - 1), (double)(h - 1)};
        for (int k = 0; k < 2; k++) {
            if (coef[k] > 0) {
                lo = fmax(lo, ceil((0.0 - base[k]) / coef[k]));
                hi = fmin(hi, floor((top[k] - base[k]) / coef[k]));
            } else if (coef[k] < 0) {
                lo = fmax(lo, ceil((top[k] - base[k]) / coef[k]));
                hi = fmin(hi, floor((0.0 - base[k]) / coef[k]));
            } else if (base[k] < 0.0 || base[k] > top[k]) {
                hi = -1.0;
            }
        }
        int begin = 0, end = 0;
        if (hi >= lo) {
            begin = (int)lo;
            end = (int)hi + 1;
            const float wm = (float)(w - 1), hm = (float)(h - 1);
            while (begin < end && !(s.xs[begin] >= 0.0f && s.xs[begin] <= wm && s.ys[begin] >= 0.0f && s.ys[begin] <= hm)) begin++;
            while (end > begin && !(s.xs[end - 1] >= 0.0f && s.xs[end - 1] <= wm && s.ys[end - 1] >= 0.0f && s.ys[end - 1] <= hm)) end--;
        }
        void *mask_row = mask_bytes ? (char *)mask_dst + (size_t)row * (size_t)ow * (size_t)mask_bytes : NULL;
        sample_row(src, w, h, channels, dst + (size_t)row * (size_t)ow, out_plane, ow,
                   interpolation, border, fill, begin, end, 0, mask_src, mask_row, mask_bytes, s);
    }
}

CKERNELS_CLONES
void CKernels_warp_displacement(const float *src, int w, int h, int channels, float *dst,
                                const float *dx, const float *dy, int interpolation, int border,
                                float fill, const void *mask_src, void *mask_dst, int mask_bytes,
                                int row_begin, int row_end, void *scratch) {
    row_scratch s = scratch_views(scratch, w);
    const size_t out_plane = (size_t)w * (size_t)h;
    const float wm1 = (float)(w - 1), hm1 = (float)(h - 1);
    for (int row = row_begin; row < row_end; row++) {
        const float *rdx = dx + (size_t)row * (size_t)w;
        const float *rdy = dy + (size_t)row * (size_t)w;
        int inside = displaced_row(s.xs, s.ys, rdx, rdy, w, (float)row, wm1, hm1);
        void *mask_row = mask_bytes ? (char *)mask_dst + (size_t)row * (size_t)w * (size_t)mask_bytes : NULL;
        sample_row(src, w, h, channels, dst + (size_t)row * (size_t)w, out_plane, w, interpolation,
                   border, fill, 0, inside ? w : 0, 0, mask_src, mask_row, mask_bytes, s);
    }
}

// MARK: - General remap

CKERNELS_CLONES
void CKernels_remap(const float *src, int w, int h, int channels, float *dst, int ow, int oh,
                    const float *map_x, const float *map_y, int interpolation, int border,
                    float fill, int row_begin, int row_end, void *scratch) {
    row_scratch s = scratch_views(scratch, ow);
    const size_t out_plane = (size_t)ow * (size_t)oh;
    for (int row = row_begin; row < row_end; row++) {
        size_t o = (size_t)row * (size_t)ow;
        memcpy(s.xs, map_x + o, sizeof(float) * (size_t)ow);
        memcpy(s.ys, map_y + o, sizeof(float) * (size_t)ow);
        sample_row(src, w, h, channels, dst + o, out_plane, ow, interpolation, border, fill, 0, ow, 1,
                   NULL, NULL, 0, s);
    }
}

void CKernels_remap_mask(const void *src, int w, int h, void *dst, int ow, int oh,
                         const float *map_x, const float *map_y, int bytes, int row_begin,
                         int row_end) {
    (void)oh;
    for (int row = row_begin; row < row_end; row++) {
        for (int col = 0; col < ow; col++) {
            size_t o = (size_t)row * (size_t)ow + (size_t)col;
            float sx = map_x[o], sy = map_y[o];
            if (isnan(sx) || isnan(sy)) {
                store_mask(dst, o, bytes, 0);
                continue;
            }
            int xi = (int)(sx + 0.5f), yi = (int)(sy + 0.5f);
            xi = xi > w - 1 ? w - 1 : xi;
            yi = yi > h - 1 ? h - 1 : yi;
            store_mask(dst, o, bytes, load_mask(src, (size_t)yi * (size_t)w + (size_t)xi, bytes));
        }
    }
}

// MARK: - Noise

/// A 32-bit integer hash with good avalanche (two multiply–xorshift rounds), in 32-bit
/// arithmetic so that eight lanes run per AVX2 instruction.
static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/// Values [start, start + m) of the noise with this key into o[0..<m]. Blocks of 2^32 values
/// (larger planes than any image) take a key of their own.
static inline __attribute__((always_inline)) void noise_run(float *restrict o, size_t start, size_t m, uint64_t key,
                                                            float scale) {
    const uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    size_t done = 0;
    while (done < m) {
        size_t i0 = start + done;
        size_t block_end = ((i0 >> 32) + 1) << 32;
        size_t count = block_end - i0 < m - done ? block_end - i0 : m - done;
        const uint32_t kb = k1 ^ mix32((uint32_t)(i0 >> 32));
        const uint32_t low = (uint32_t)i0;
        float *restrict p = o + done;
        for (size_t i = 0; i < count; i++) {
            uint32_t v = mix32(mix32((low + (uint32_t)i) ^ k0) + kb);
            p[i] = ((float)(v >> 8) * 0x1p-23f - 1.0f) * scale;
        }
        done += count;
    }
}

CKERNELS_CLONES
void CKernels_uniform_noise(float *out, size_t n, uint64_t key, float scale) {
    noise_run(out, 0, n, key, scale);
}

// MARK: - Separable filter

/// 8 floats in a vector register (two SSE registers on the baseline clone, one AVX register on
/// the AVX2 clone); loads and stores are unaligned.
typedef float v8f __attribute__((vector_size(32), aligned(4)));

// Macros rather than functions: passing 32-byte vectors by value between functions would
// depend on the clone's instruction set (an ABI difference the compiler rejects).
#define load8(p) ({ v8f v_; memcpy(&v_, (p), sizeof v_); v_; })
#define store8(p, v) do { v8f s_ = (v); memcpy((p), &s_, sizeof s_); } while (0)

// Row helpers with `restrict` parameters (clang honours restrict on parameters, not on local
// pointers), so they vectorise without runtime overlap checks.
static inline __attribute__((always_inline)) void scale_row(float *restrict out, const float *restrict a, float k, int n) {
    for (int x = 0; x < n; x++) out[x] = k * a[x];
}

static inline __attribute__((always_inline)) void add_pair_row(float *restrict out, const float *restrict a,
                                                               const float *restrict b, float k, int n) {
    for (int x = 0; x < n; x++) out[x] += k * (a[x] + b[x]);
}


/// One row of the horizontal pass: out[x] = Σ_j k_j mid[x + j] for x in [0, w), where mid has
/// r readable values before and after the row. Taps innermost, 8 pixels per vector: each output
/// vector is accumulated in a register over all taps and stored once. Every sum runs in the
/// same order (centre, then the pairs j = 1…r, each pair added before it is weighted), in the
/// vector loop and the scalar tail alike, so all pixels round the same way.
static inline __attribute__((always_inline)) void filter_row(const float *mid, float *out, int w, const float *kernel,
                                                             int r) {
    const float center = kernel[r];
    int x = 0;
    // Four vectors at a time: four independent chains of additions hide the adder's latency
    // (one chain waits 3–4 cycles per tap).
    for (; x + 32 <= w; x += 32) {
        const float *m = mid + x;
        v8f a0 = center * load8(m), a1 = center * load8(m + 8), a2 = center * load8(m + 16), a3 = center * load8(m + 24);
        for (int j = 1; j <= r; j++) {
            const float k = kernel[r + j];
            a0 += k * (load8(m - j) + load8(m + j));
            a1 += k * (load8(m + 8 - j) + load8(m + 8 + j));
            a2 += k * (load8(m + 16 - j) + load8(m + 16 + j));
            a3 += k * (load8(m + 24 - j) + load8(m + 24 + j));
        }
        store8(out + x, a0);
        store8(out + x + 8, a1);
        store8(out + x + 16, a2);
        store8(out + x + 24, a3);
    }
    for (; x + 8 <= w; x += 8) {
        v8f acc = center * load8(mid + x);
        for (int j = 1; j <= r; j++) acc += kernel[r + j] * (load8(mid + x - j) + load8(mid + x + j));
        store8(out + x, acc);
    }
    for (; x < w; x++) {
        float acc = center * mid[x];
        for (int j = 1; j <= r; j++) acc += kernel[r + j] * (mid[x - j] + mid[x + j]);
        out[x] = acc;
    }
}

/// out[x] += k0 (a0[x] + b0[x]), then the same with k1, k2, k3 (in that order), for x in [0, n):
/// four taps per pass over `out` instead of one.
static inline __attribute__((always_inline)) void add_pairs4_row(float *restrict out, const float *restrict a0,
                                                                 const float *restrict b0, const float *restrict a1,
                                                                 const float *restrict b1, const float *restrict a2,
                                                                 const float *restrict b2, const float *restrict a3,
                                                                 const float *restrict b3, const float *k, int n) {
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3];
    for (int x = 0; x < n; x++) {
        float v = out[x];
        v += k0 * (a0[x] + b0[x]);
        v += k1 * (a1[x] + b1[x]);
        v += k2 * (a2[x] + b2[x]);
        v += k3 * (a3[x] + b3[x]);
        out[x] = v;
    }
}

/// The vertical pass from `column` into `plane`, the same order of sums as the rows: row-wise
/// multiply–adds, four taps per pass (whole rows stream through the cache; all taps innermost
/// would read 2r + 1 rows 4 KiB apart at once and thrash the L1 cache's sets, measured slower).
/// Outside the image the rows are reflected, or `zeros` (adding 0 changes no sum).
static inline __attribute__((always_inline)) void filter_columns(const float *column, float *plane, int w, int h,
                                                                 const float *kernel, int r, int edge,
                                                                 const float *zeros) {
    for (int y = 0; y < h; y++) {
        float *out = plane + (size_t)y * (size_t)w;
        scale_row(out, column + (size_t)y * (size_t)w, kernel[r], w);
        #define SOURCE_ROW(yy) \
            ((yy) >= 0 && (yy) < h ? column + (size_t)(yy) * (size_t)w \
                                   : (edge ? column + (size_t)reflect_i((yy), h) * (size_t)w : zeros))
        int j = 1;
        for (; j + 3 <= r; j += 4) {
            add_pairs4_row(out, SOURCE_ROW(y - j), SOURCE_ROW(y + j), SOURCE_ROW(y - j - 1), SOURCE_ROW(y + j + 1),
                           SOURCE_ROW(y - j - 2), SOURCE_ROW(y + j + 2), SOURCE_ROW(y - j - 3), SOURCE_ROW(y + j + 3),
                           kernel + r + j, w);
        }
        for (; j <= r; j++) add_pair_row(out, SOURCE_ROW(y - j), SOURCE_ROW(y + j), kernel[r + j], w);
        #undef SOURCE_ROW
    }
}

CKERNELS_CLONES
void CKernels_separable_filter(float *plane, int w, int h, const float *kernel, int r, int edge,
                               float *scratch) {
    if (w <= 0 || h <= 0 || r <= 0) return;
    float *column = scratch;                          // w × h: the rows after the horizontal pass
    float *padded = scratch + (size_t)w * (size_t)h;  // w + 2r
    for (int y = 0; y < h; y++) {
        const float *row = plane + (size_t)y * (size_t)w;
        for (int i = 0; i < r; i++) {
            padded[i] = edge ? row[reflect_i(i - r, w)] : 0.0f;
            padded[r + w + i] = edge ? row[reflect_i(w + i, w)] : 0.0f;
        }
        memcpy(padded + r, row, sizeof(float) * (size_t)w);
        filter_row(padded + r, column + (size_t)y * (size_t)w, w, kernel, r);
    }
    memset(padded, 0, sizeof(float) * (size_t)w);
    filter_columns(column, plane, w, h, kernel, r, edge, padded);
}

CKERNELS_CLONES
void CKernels_smoothed_noise(float *plane, int w, int h, const float *kernel, int r, uint64_t key,
                             float scale, float *scratch) {
    if (w <= 0 || h <= 0) return;
    if (r <= 0) {
        noise_run(plane, 0, (size_t)w * (size_t)h, key, scale);
        return;
    }
    float *column = scratch;
    float *padded = scratch + (size_t)w * (size_t)h;
    for (int i = 0; i < r; i++) padded[i] = padded[r + w + i] = 0.0f;
    // Each row's noise goes straight into the padded row buffer (never through memory).
    for (int y = 0; y < h; y++) {
        noise_run(padded + r, (size_t)y * (size_t)w, (size_t)w, key, scale);
        filter_row(padded + r, column + (size_t)y * (size_t)w, w, kernel, r);
    }
    memset(padded, 0, sizeof(float) * (size_t)w);
    filter_columns(column, plane, w, h, kernel, r, 0, padded);
}

// MARK: - B-spline prefilter

static void prefilter_line_exact(double *c, int n) {
    if (n < 2) return;
    const double z = sqrt(3.0) - 2.0;
    const double gain = (1.0 - z) * (1.0 - 1.0 / z);
    for (int i = 0; i < n; i++) c[i] *= gain;
    // Mirror-symmetric initial value (exact for short lines).
    double zn = z, iz = 1.0 / z, z2n = pow(z, (double)(n - 1));
    double sum = c[0] + z2n * c[n - 1];
    z2n *= z2n * iz;
    for (int i = 1; i < n - 1; i++) {
        sum += (zn + z2n) * c[i];
        zn *= z;
        z2n *= iz;
    }
    c[0] = sum / (1.0 - zn * zn);
    for (int i = 1; i < n; i++) c[i] += z * c[i - 1];
    c[n - 1] = (z / (z * z - 1.0)) * (z * c[n - 2] + c[n - 1]);
    for (int i = n - 2; i >= 0; i--) c[i] = z * (c[i + 1] - c[i]);
}

#define CKERNELS_HORIZON 30

CKERNELS_CLONES
void CKernels_bspline_prefilter(float *p, int w, int h) {
    const float z = (float)(sqrt(3.0) - 2.0);
    const float gain = (float)((1.0 - (sqrt(3.0) - 2.0)) * (1.0 - 1.0 / (sqrt(3.0) - 2.0)));
    double line[CKERNELS_HORIZON];
    if (w > 1) {
        for (int y = 0; y < h; y++) {
            float *r = p + (size_t)y * (size_t)w;
            if (w < CKERNELS_HORIZON) {
                for (int x = 0; x < w; x++) line[x] = r[x];
                prefilter_line_exact(line, w);
                for (int x = 0; x < w; x++) r[x] = (float)line[x];
                continue;
            }
            for (int x = 0; x < w; x++) r[x] *= gain;
            float sum = 0.0f, zn = 1.0f;
            for (int x = 0; x < CKERNELS_HORIZON; x++) {
                sum += zn * r[x];
                zn *= z;
            }
            r[0] = sum;
            for (int x = 1; x < w; x++) r[x] += z * r[x - 1];
            r[w - 1] = (z / (z * z - 1.0f)) * (z * r[w - 2] + r[w - 1]);
            for (int x = w - 2; x >= 0; x--) r[x] = z * (r[x + 1] - r[x]);
        }
    }
    if (h <= 1) return;
    if (h < CKERNELS_HORIZON) {
        for (int x = 0; x < w; x++) {
            for (int y = 0; y < h; y++) line[y] = p[(size_t)y * (size_t)w + (size_t)x];
            prefilter_line_exact(line, h);
            for (int y = 0; y < h; y++) p[(size_t)y * (size_t)w + (size_t)x] = (float)line[y];
        }
        return;
    }
    // Columns, as operations on whole rows (contiguous, vectorised).
    const size_t n = (size_t)w * (size_t)h;
    for (size_t i = 0; i < n; i++) p[i] *= gain;
    float *first = calloc((size_t)w, sizeof(float));
    if (first == NULL) return;
    float zn = 1.0f;
    for (int y = 0; y < CKERNELS_HORIZON; y++) {
        const float *r = p + (size_t)y * (size_t)w;
        for (int x = 0; x < w; x++) first[x] += zn * r[x];
        zn *= z;
    }
    memcpy(p, first, sizeof(float) * (size_t)w);
    free(first);
    for (int y = 1; y < h; y++) {
        float *r = p + (size_t)y * (size_t)w;
        const float *prev = r - w;
        for (int x = 0; x < w; x++) r[x] += z * prev[x];
    }
    const float k = z / (z * z - 1.0f);
    float *last = p + (size_t)(h - 1) * (size_t)w;
    const float *before = last - w;
    for (int x = 0; x < w; x++) last[x] = k * (z * before[x] + last[x]);
    for (int y = h - 2; y >= 0; y--) {
        float *r = p + (size_t)y * (size_t)w;
        const float *next = r + w;
        for (int x = 0; x < w; x++) r[x] = z * (next[x] - r[x]);
    }
}
