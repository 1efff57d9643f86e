import SegCore

/// Applies a run of consecutive geometric stages to an image and its mask with one
/// resampling, choosing the fastest exact route: a single affine stage (bilinear or
/// nearest) goes through `AffineWarp`; a single displacement field (bilinear or nearest)
/// through the fused displacement warp below; anything else through `SourceMap.compose`
/// and `Remap`.
public enum GeometricGroup {
  public static func apply(
    image: Image, mask: Image?, layers: [GeometricLayer], interpolation: Interpolation, fill: Float = 0,
    threads: Int = 1
  ) -> (image: Image, mask: Image?) {
    precondition(!layers.isEmpty, "a geometric group has at least one layer")
    let fast = interpolation == .bilinear || interpolation == .nearest
    if layers.count == 1, fast, let layer = layers.first {
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
