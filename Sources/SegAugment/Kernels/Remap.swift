import CKernels
import SegCore

/// For every output pixel, the source coordinate to sample, already folded into the source
/// domain [0, w − 1] × [0, h − 1] by the border rules, or NaN where a constant border
/// applies (the pixel gets the fill value).
public struct SourceMap: Sendable, Equatable {
  public var width: Int
  public var height: Int
  /// Source x per output pixel, row-major.
  public var x: [Float]
  /// Source y per output pixel, row-major.
  public var y: [Float]

  public init(width: Int, height: Int, x: [Float], y: [Float]) {
    precondition(x.count == width * height && y.count == width * height, "SourceMap size mismatch")
    self.width = width
    self.height = height
    self.x = x
    self.y = y
  }

  /// The identity map of a width × height image.
  public static func identity(width: Int, height: Int) -> SourceMap {
    var xs = [Float](repeating: 0, count: width * height)
    var ys = [Float](repeating: 0, count: width * height)
    for r in 0..<height {
      for c in 0..<width {
        xs[r * width + c] = Float(c)
        ys[r * width + c] = Float(r)
      }
    }
    return SourceMap(width: width, height: height, x: xs, y: ys)
  }
}

/// Resampling a planar image through a `SourceMap` (loops in CKernels).
public enum Remap {
  /// Samples every channel of `source` (float32, C × H × W) at the map's coordinates.
  ///
  /// - Parameters:
  ///   - border: the source's border mode, used for the neighbours of `bicubic` and
  ///     `bspline` taps that fall outside (the coordinates themselves are already folded).
  ///   - fill: the value where the map holds NaN (constant border).
  /// - Complexity: O(C · output pixels · taps), plus the prefilter for `bspline`.
  /// Replaces each channel plane by its cubic B-spline coefficients (what `bspline`
  /// sampling reads).
  static func prefilter(_ planes: inout [Float], width w: Int, height h: Int, channels c: Int) {
    planes.withUnsafeMutableBufferPointer { p in
      guard let base = p.baseAddress else { return }
      for ch in 0..<c { CKernels_bspline_prefilter(base + ch * w * h, Int32(w), Int32(h)) }
    }
  }

  public static func image(
    _ source: Image, map: SourceMap, interpolation: Interpolation, border: BorderMode = .reflect, fill: Float = 0,
    threads: Int = 1
  ) -> Image {
    precondition(source.pixelType == .float32, "Remap.image takes float32 images")
    let w = source.width
    let h = source.height
    let c = source.channels
    var src = source.floatSamples()
    if interpolation == .bspline { prefilter(&src, width: w, height: h, channels: c) }
    let coefficients = src
    let ow = map.width
    let oh = map.height
    // The kernel writes every output sample (fill included): no zero fill first.
    let out = PixelStorage.filled(.float32, count: c * ow * oh) { raw in
      let output = SharedBuffer(raw.bindMemory(to: Float.self))
      let chunks = max(1, min(oh, threads * 4))
      // Chunk k writes only its output rows (in every channel).
      Parallel.forEach(tasks: chunks, workers: threads) { _, k in
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: AffineWarp.scratchBytes(width: ow), alignment: 64)
        defer { scratch.deallocate() }
        coefficients.withUnsafeBufferPointer { s in
          map.x.withUnsafeBufferPointer { mx in
            map.y.withUnsafeBufferPointer { my in
              let rows = Parallel.range(k, of: chunks, count: oh)
              CKernels_remap(
                s.baseAddress, Int32(w), Int32(h), Int32(c), output.baseAddress, Int32(ow), Int32(oh), mx.baseAddress,
                my.baseAddress, CKernelCodes.interpolation(interpolation), CKernelCodes.border(border), fill,
                Int32(rows.lowerBound), Int32(rows.upperBound), scratch)
            }
          }
        }
      }
    }
    return Image(width: ow, height: oh, channels: c, storage: out)
  }

  /// Samples a one-channel integer label mask nearest-neighbour (values are copied, never
  /// mixed); 0 where the map holds NaN.
  public static func mask(_ source: Image, map: SourceMap, threads: Int = 1) -> Image {
    precondition(source.channels == 1 && source.pixelType != .float32, "Remap.mask takes one-channel integer masks")
    let bytes = Int32(source.pixelType.byteWidth)
    let src = source.storage
    // The kernel writes every output sample (0 where the map holds NaN).
    let out = PixelStorage.filled(source.pixelType, count: map.width * map.height) { dst in
      let output = SharedBuffer(dst.bindMemory(to: UInt8.self))
      let chunks = max(1, min(map.height, threads * 4))
      // Chunk k writes only its output rows.
      Parallel.forEach(tasks: chunks, workers: threads) { _, k in
        src.withUnsafeBytes { s in
          map.x.withUnsafeBufferPointer { mx in
            map.y.withUnsafeBufferPointer { my in
              let rows = Parallel.range(k, of: chunks, count: map.height)
              CKernels_remap_mask(
                s.baseAddress, Int32(source.width), Int32(source.height), output.baseAddress.map { UnsafeMutableRawPointer($0) },
                Int32(map.width), Int32(map.height), mx.baseAddress, my.baseAddress, bytes, Int32(rows.lowerBound),
                Int32(rows.upperBound))
            }
          }
        }
      }
    }
    return Image(width: map.width, height: map.height, storage: out)
  }
}
