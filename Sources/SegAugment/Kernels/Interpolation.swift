import CKernels
/// How an image is sampled between pixel centres. Label masks are always sampled `nearest`.
public enum Interpolation: String, Sendable, Codable, CaseIterable {
  /// The nearest pixel.
  case nearest
  /// Bilinear (2 × 2 pixels).
  case bilinear
  /// Keys' cubic convolution with a = −0.5 (4 × 4 pixels, interpolating, no prefilter): what
  /// most image libraries call bicubic.
  case bicubic
  /// Cubic B-spline interpolation with the spline prefilter (scipy.ndimage `order=3`,
  /// elasticdeform): smoother than `bicubic`, exact at pixel centres.
  case bspline
}

/// Weights of the 1-D kernels, for a sample at fractional offset t ∈ [0, 1) from pixel x0:
/// taps at x0 − 1, x0, x0 + 1, x0 + 2.
public enum KernelWeights {
  /// Keys (1981) cubic convolution, a = −0.5 (doi:10.1109/TASSP.1981.1163711).
  @inline(__always)
  public static func keys(_ t: Float) -> (Float, Float, Float, Float) {
    let t2 = t * t
    let t3 = t2 * t
    let w0 = -0.5 * t3 + t2 - 0.5 * t
    let w1 = 1.5 * t3 - 2.5 * t2 + 1
    let w2 = -1.5 * t3 + 2 * t2 + 0.5 * t
    let w3 = 0.5 * t3 - 0.5 * t2
    return (w0, w1, w2, w3)
  }

  /// The cubic B-spline β³ (Unser 1999, doi:10.1109/79.799930).
  @inline(__always)
  public static func bspline(_ t: Float) -> (Float, Float, Float, Float) {
    let s = 1 - t
    let t2 = t * t
    let t3 = t2 * t
    let w0 = s * s * s / 6
    let w1 = (4 - 6 * t2 + 3 * t3) / 6
    let w2 = (1 + 3 * t + 3 * t2 - 3 * t3) / 6
    let w3 = t3 / 6
    return (w0, w1, w2, w3)
  }

  /// Double-precision β³ weights (for the control-point grid of the elastic field).
  @inline(__always)
  public static func bspline(_ t: Double) -> (Double, Double, Double, Double) {
    let s = 1 - t
    let t2 = t * t
    let t3 = t2 * t
    return (s * s * s / 6, (4 - 6 * t2 + 3 * t3) / 6, (1 + 3 * t + 3 * t2 - 3 * t3) / 6, t3 / 6)
  }
}

/// The cubic B-spline prefilter: turns samples into B-spline coefficients so that the spline
/// through them interpolates the samples, with mirror (whole-sample symmetric) boundaries as
/// scipy.ndimage's `mode="mirror"` (Thévenaz, Blu & Unser 2000, "Interpolation revisited",
/// doi:10.1109/42.875199).
public enum BSplinePrefilter {
  static let pole = 3.0.squareRoot() - 2  // z = √3 − 2

  /// Prefilters one line in place (Double precision; n ≥ 1).
  public static func line(_ c: inout [Double]) {
    let n = c.count
    if n < 2 { return }
    let z = pole
    let gain = (1 - z) * (1 - 1 / z)
    for i in 0..<n { c[i] *= gain }
    c[0] = initialCausal(c, z)
    for i in 1..<n { c[i] += z * c[i - 1] }
    c[n - 1] = (z / (z * z - 1)) * (z * c[n - 2] + c[n - 1])
    for i in stride(from: n - 2, through: 0, by: -1) { c[i] = z * (c[i + 1] - c[i]) }
  }

  static func initialCausal(_ c: [Double], _ z: Double) -> Double {
    let n = c.count
    let horizon = 30  // |z|^30 < 1e-17
    if horizon < n {
      var zn = z
      var sum = c[0]
      for i in 1..<horizon {
        sum += zn * c[i]
        zn *= z
      }
      return sum
    }
    // Exact mirror-symmetric initialisation for short lines.
    var zn = z
    let iz = 1 / z
    var z2n = pow(z, Double(n - 1))
    var sum = c[0] + z2n * c[n - 1]
    z2n *= z2n * iz
    for i in 1..<(n - 1) {
      sum += (zn + z2n) * c[i]
      zn *= z
      z2n *= iz
    }
    return sum / (1 - zn * zn)
  }

  /// Prefilters a plane (row-major, width × height) in place (CKernels: rows, then all
  /// columns at once as whole-row operations).
  public static func plane(_ p: UnsafeMutableBufferPointer<Float>, width: Int, height: Int) {
    guard let base = p.baseAddress else { return }
    CKernels_bspline_prefilter(base, Int32(width), Int32(height))
  }
}

#if canImport(Glibc)
  import Glibc
#endif
