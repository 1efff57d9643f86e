import SegCore

/// Bulk random numbers from a `RandomStream`, for fields and noise. Each 64-bit draw gives
/// two 24-bit uniforms, so a field of n values costs n / 2 draws.
public enum Noise {
  /// Fills `out` with uniforms in [−1, 1) (multiples of 2⁻²³), advancing `rng`.
  public static func uniformSymmetric(_ out: UnsafeMutableBufferPointer<Float>, rng: inout RandomStream) {
    let n = out.count
    var i = 0
    while i + 1 < n {
      let r = rng.next()
      out[i] = Float(r >> 40) * 0x1p-23 - 1
      out[i + 1] = Float((r >> 8) & 0xFF_FFFF) * 0x1p-23 - 1
      i += 2
    }
    if i < n { out[i] = Float(rng.next() >> 40) * 0x1p-23 - 1 }
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
