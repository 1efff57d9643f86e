import SegAugment
import SegCore

/// Plain per-pixel references for the augmentation kernels (style rule 8): the obvious
/// formula, one pixel at a time, in Swift.
public enum ReferenceKernels {
  /// numpy `reflect` index.
  public static func reflectIndex(_ i: Int, _ n: Int) -> Int {
    if n == 1 { return 0 }
    var j = i
    // Walk the reflections one at a time (deliberately not the closed form).
    while j < 0 || j >= n {
      if j < 0 { j = -j }
      if j >= n { j = 2 * (n - 1) - j }
    }
    return j
  }

  /// One sample of a plane at (x, y) (already folded into the image), by `interpolation`;
  /// bicubic/bspline taps outside use reflect (or clamp when `clamp`). For bspline, `p` must be
  /// coefficients.
  public static func sample(
    _ p: [Float], width w: Int, height h: Int, x: Float, y: Float, interpolation: Interpolation, clamp: Bool = false
  ) -> Float {
    switch interpolation {
    case .nearest:
      return p[min(Int(y + 0.5), h - 1) * w + min(Int(x + 0.5), w - 1)]
    case .bilinear:
      let x0 = Int(x)
      let y0 = Int(y)
      let fx = x - Float(x0)
      let fy = y - Float(y0)
      let x1 = min(x0 + 1, w - 1)
      let y1 = min(y0 + 1, h - 1)
      let top = p[y0 * w + x0] + (p[y0 * w + x1] - p[y0 * w + x0]) * fx
      let bottom = p[y1 * w + x0] + (p[y1 * w + x1] - p[y1 * w + x0]) * fx
      return top + (bottom - top) * fy
    case .bicubic, .bspline:
      let xf = x.rounded(.down)
      let yf = y.rounded(.down)
      let wx = interpolation == .bicubic ? KernelWeights.keys(x - xf) : KernelWeights.bspline(x - xf)
      let wy = interpolation == .bicubic ? KernelWeights.keys(y - yf) : KernelWeights.bspline(y - yf)
      let wxs = [wx.0, wx.1, wx.2, wx.3]
      let wys = [wy.0, wy.1, wy.2, wy.3]
      func idx(_ i: Int, _ n: Int) -> Int { clamp ? min(max(i, 0), n - 1) : reflectIndex(i, n) }
      var v: Float = 0
      for j in 0..<4 {
        let r = idx(Int(yf) - 1 + j, h) * w
        var rv: Float = 0
        rv = wxs[0] * p[r + idx(Int(xf) - 1, w)] + wxs[1] * p[r + idx(Int(xf), w)] + wxs[2] * p[r + idx(Int(xf) + 1, w)]
          + wxs[3] * p[r + idx(Int(xf) + 2, w)]
        v += wys[j] * rv
      }
      return v
    }
  }

  /// Direct separable convolution with zeros (or reflection) outside, per pixel, in Double.
  public static func separableFilter(_ p: [Float], width w: Int, height h: Int, kernel k: [Float], zeroEdge: Bool) -> [Float] {
    let r = k.count / 2
    func at(_ a: [Double], _ x: Int, _ y: Int) -> Double {
      if zeroEdge { return (x < 0 || y < 0 || x >= w || y >= h) ? 0 : a[y * w + x] }
      return a[reflectIndex(y, h) * w + reflectIndex(x, w)]
    }
    let src = p.map(Double.init)
    var rows = [Double](repeating: 0, count: w * h)
    for y in 0..<h {
      for x in 0..<w {
        var s = 0.0
        for j in -r...r { s += Double(k[j + r]) * at(src, x + j, y) }
        rows[y * w + x] = s
      }
    }
    var out = [Float](repeating: 0, count: w * h)
    for y in 0..<h {
      for x in 0..<w {
        var s = 0.0
        for j in -r...r { s += Double(k[j + r]) * at(rows, x, y + j) }
        out[y * w + x] = Float(s)
      }
    }
    return out
  }

  /// Applies geometric layers one after the other, resampling after each (the slow, blurry
  /// way the fused path must agree with), for a one-channel float image.
  public static func sequential(_ image: Image, layers: [GeometricLayer], interpolation: Interpolation) -> Image {
    var current = image
    for layer in layers {
      let map = SourceMap.compose([layer])
      current = Remap.image(current, map: map, interpolation: interpolation, border: layer.border)
    }
    return current
  }

  /// The uniform noise of CKernels_uniform_noise, value by value: two rounds of a 32-bit
  /// multiply–xorshift hash of (key, index), 24 bits → [−1, 1), times scale.
  public static func uniformNoise(count: Int, key: UInt64, scale: Float) -> [Float] {
    func mix(_ v: UInt32) -> UInt32 {
      var x = v
      x ^= x >> 16
      x = x &* 0x7feb_352d
      x ^= x >> 15
      x = x &* 0x846c_a68b
      x ^= x >> 16
      return x
    }
    let k0 = UInt32(truncatingIfNeeded: key)
    let k1 = UInt32(truncatingIfNeeded: key >> 32) ^ mix(0)
    return (0..<count).map { i in
      let v = mix(mix(UInt32(truncatingIfNeeded: i) ^ k0) &+ k1)
      return (Float(v >> 8) * 0x1p-23 - 1) * scale
    }
  }
}
