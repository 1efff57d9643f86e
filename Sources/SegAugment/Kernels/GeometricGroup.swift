import SegCore

/// Applies a run of consecutive geometric stages to an image and its mask with one
/// resampling, choosing the fastest exact route: a single affine stage goes through
/// `AffineWarp`, a single displacement field through its fused displacement warp (both
/// compute coordinates on the fly and sample image and mask in one pass); several stages
/// through `SourceMap.compose` and `Remap`. Both routes share the C row sampler, so they
/// give the same bytes.
public enum GeometricGroup {
  public static func apply(
    image: Image, mask: Image?, layers: [GeometricLayer], interpolation: Interpolation, fill: Float = 0,
    threads: Int = 1
  ) -> (image: Image, mask: Image?) {
    precondition(!layers.isEmpty, "a geometric group has at least one layer")
    if layers.count == 1, let layer = layers.first {
      switch layer.map {
      case .affine(let m):
        return AffineWarp.warp(
          image: image, mask: mask, backward: m, outputWidth: layer.outputWidth, outputHeight: layer.outputHeight,
          interpolation: interpolation, border: layer.border, fill: fill, threads: threads)
      case .displacement(let dx, let dy):
        return AffineWarp.displace(
          image: image, mask: mask, dx: dx, dy: dy, interpolation: interpolation, border: layer.border, fill: fill,
          threads: threads)
      }
    }
    let map = SourceMap.compose(layers, threads: threads)
    let border = layers[0].border
    let warped = Remap.image(image, map: map, interpolation: interpolation, border: border, fill: fill, threads: threads)
    return (warped, mask.map { Remap.mask($0, map: map, threads: threads) })
  }
}
