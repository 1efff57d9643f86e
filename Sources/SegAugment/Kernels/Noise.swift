import CKernels
import SegCore

/// Bulk random numbers from a `RandomStream`, for fields and noise. Uniform fields come from a
/// counter-based generator keyed by one draw; Gaussian noise takes two 24-bit uniforms from
/// each 64-bit draw (Box–Muller).
public enum Noise {
  /// Fills `out` with `scale` × uniforms in [−1, 1) (multiples of 2⁻²³), one draw from `rng`
  /// as the key of a counter-based generator (value i depends only on the key and i; in C,
  /// vectorised).
  public static func uniformSymmetric(_ out: UnsafeMutableBufferPointer<Float>, scale: Float = 1, rng: inout RandomStream) {
    let key = rng.next()
    guard let base = out.baseAddress else { return }
    CKernels_uniform_noise(base, out.count, key, scale)
  }

  /// Fills `out` with standard normal values (Box–Muller on 24-bit uniforms, both halves).
  public static func gaussian(_ out: UnsafeMutableBufferPointer<Float>, rng: inout RandomStream) {
    let n = out.count
    var i = 0
    while i < n {
      let r = rng.next()
      let u1 = (Float(r >> 40) + 0.5) * 0x1p-24
      let u2 = Float((r >> 8) & 0xFF_FFFF) * 0x1p-24
      let radius = (-2 * logf(u1)).squareRoot()
      let angle = 2 * Float.pi * u2
      out[i] = radius * cosf(angle)
      if i + 1 < n { out[i + 1] = radius * sinf(angle) }
      i += 2
    }
  }
}

#if canImport(Glibc)
  import Glibc
#endif
