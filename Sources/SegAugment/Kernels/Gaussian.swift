import CKernels
import SegCore

#if canImport(Glibc)
  import Glibc
#endif

/// Separable Gaussian filtering.
public enum Gaussian {
  /// The normalised 1-D kernel of standard deviation σ, radius ⌊truncate · σ + 0.5⌋ taps on
  /// each side (scipy.ndimage's rule: σ = 4, truncate = 4 gives 33 taps).
  public static func kernel(sigma: Double, truncate: Double = 4) -> [Float] {
    guard sigma > 0 else { return [1] }
    let radius = Int(truncate * sigma + 0.5)
    var k = (-radius...radius).map { exp(-0.5 * Double($0 * $0) / (sigma * sigma)) }
    let sum = k.reduce(0, +)
    k = k.map { $0 / sum }
    return k.map { Float($0) }
  }

  /// What lies outside the plane for the filter.
  public enum Edge: Sendable {
    /// Zeros (scipy `mode="constant", cval=0`): the Simard field definition.
    case zero
    /// numpy `reflect` (for blurring images).
    case reflect
  }

  /// Filters a plane (row-major, width × height) with the separable kernel `k` (odd length,
  /// symmetric), in place (CKernels: whole-row multiply–adds over tap pairs, vectorised).
  /// - Complexity: O(width · height · taps).
  public static func filter(
    _ plane: UnsafeMutableBufferPointer<Float>, width: Int, height: Int, kernel k: [Float], edge: Edge
  ) {
    guard let base = plane.baseAddress, width > 0, height > 0, k.count > 1 else { return }
    let r = k.count / 2
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: width * height + width + 2 * r)
    defer { scratch.deallocate() }
    k.withUnsafeBufferPointer { kp in
      CKernels_separable_filter(base, Int32(width), Int32(height), kp.baseAddress, Int32(r), edge == .zero ? 0 : 1, scratch)
    }
  }

  /// `Noise.uniformSymmetric(plane, scale:, rng:)` followed by `filter(plane, …, edge: .zero)`,
  /// bit for bit, in one pass over memory (the noise of a row goes straight into the row
  /// filter). One draw from `rng`.
  public static func smoothedNoise(
    _ plane: UnsafeMutableBufferPointer<Float>, width: Int, height: Int, kernel k: [Float], scale: Float,
    rng: inout RandomStream
  ) {
    precondition(plane.count == width * height, "plane size mismatch")
    let key = rng.next()
    guard let base = plane.baseAddress, width > 0, height > 0 else { return }
    let r = k.count / 2
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: width * height + width + 2 * r)
    defer { scratch.deallocate() }
    k.withUnsafeBufferPointer { kp in
      CKernels_smoothed_noise(base, Int32(width), Int32(height), kp.baseAddress, Int32(r), key, scale, scratch)
    }
  }

  /// A Gaussian-blurred copy of a float32 image (every channel; reflect border).
  public static func blur(_ image: Image, sigma: Double) -> Image {
    guard sigma > 0 else { return image }
    let k = kernel(sigma: sigma)
    var s = image.floatSamples()
    let n = image.planeSize
    s.withUnsafeMutableBufferPointer { p in
      for c in 0..<image.channels {
        filter(UnsafeMutableBufferPointer(rebasing: p[(c * n)..<((c + 1) * n)]), width: image.width, height: image.height,
               kernel: k, edge: .reflect)
      }
    }
    return Image(width: image.width, height: image.height, channels: image.channels, pixels: s)
  }
}
