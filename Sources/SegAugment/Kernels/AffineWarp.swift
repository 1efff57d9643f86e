import CKernels
import SegCore

/// The fast path for a geometric group that is a single affine map (or a single displacement
/// field): coordinates are computed on the fly (no map arrays), the border fold is skipped on
/// rows that stay inside the image, and the image and the mask are sampled in the same pass
/// from the same coordinates. The loops are in CKernels.
///
/// The results equal `Remap.image`/`Remap.mask` of `SourceMap.compose` of the same layer
/// (the tests compare them); only the work differs.
public enum AffineWarp {
  /// Warps `image` (float32, C × H × W) and, if given, a one-channel integer `mask`.
  ///
  /// - Parameters:
  ///   - backward: output (x, y) → input (x, y).
  ///   - interpolation: any; `bspline` prefilters a copy of the image first.
  public static func warp(
    image: Image, mask: Image?, backward m: Affine2D, outputWidth ow: Int, outputHeight oh: Int,
    interpolation: Interpolation, border: BorderMode, fill: Float = 0, threads: Int = 1
  ) -> (image: Image, mask: Image?) {
    let matrix = [m.a, m.b, m.tx, m.c, m.d, m.ty]
    return run(image: image, mask: mask, outputWidth: ow, outputHeight: oh, interpolation: interpolation,
               border: border, fill: fill, threads: threads) { src, dst, maskSrc, maskDst, bytes, rows, scratch in
      matrix.withUnsafeBufferPointer { mp in
        CKernels_warp_affine(
          src, Int32(image.width), Int32(image.height), Int32(image.channels), dst, Int32(ow), Int32(oh),
          mp.baseAddress, CKernelCodes.interpolation(interpolation), CKernelCodes.border(border), fill, maskSrc, maskDst,
          bytes, Int32(rows.lowerBound), Int32(rows.upperBound), scratch)
      }
    }
  }

  /// out(p) = image(p + d(p)) on the same grid, and the mask nearest from the same points.
  public static func displace(
    image: Image, mask: Image?, dx: [Float], dy: [Float], interpolation: Interpolation, border: BorderMode,
    fill: Float = 0, threads: Int = 1
  ) -> (image: Image, mask: Image?) {
    precondition(dx.count == image.planeSize && dy.count == image.planeSize, "displacement field size mismatch")
    return run(image: image, mask: mask, outputWidth: image.width, outputHeight: image.height,
               interpolation: interpolation, border: border, fill: fill, threads: threads) {
      src, dst, maskSrc, maskDst, bytes, rows, scratch in
      dx.withUnsafeBufferPointer { px in
        dy.withUnsafeBufferPointer { py in
          CKernels_warp_displacement(
            src, Int32(image.width), Int32(image.height), Int32(image.channels), dst, px.baseAddress, py.baseAddress,
            CKernelCodes.interpolation(interpolation), CKernelCodes.border(border), fill, maskSrc, maskDst, bytes,
            Int32(rows.lowerBound), Int32(rows.upperBound), scratch)
        }
      }
    }
  }

  /// Bytes of per-thread scratch the row sampler needs for rows of `width` pixels.
  static func scratchBytes(width: Int) -> Int { max(width, 1) * 72 + 64 }

  typealias RowKernel = @Sendable (
    UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Range<Int>,
    UnsafeMutableRawPointer
  ) -> Void

  /// Allocates the outputs and runs `kernel` over row chunks on `threads` threads.
  static func run(
    image: Image, mask: Image?, outputWidth ow: Int, outputHeight oh: Int, interpolation: Interpolation,
    border: BorderMode, fill: Float, threads: Int, kernel: RowKernel
  ) -> (image: Image, mask: Image?) {
    precondition(image.pixelType == .float32, "warps take float32 images")
    precondition(mask == nil || (mask?.channels == 1 && mask?.pixelType != .float32), "masks are one integer channel")
    var samples = image.floatSamples()
    if interpolation == .bspline { Remap.prefilter(&samples, width: image.width, height: image.height, channels: image.channels) }
    let src = samples
    let maskBytes = Int32(mask?.pixelType.byteWidth ?? 0)
    let maskSource = mask?.storage ?? .uint8([])
    // The kernel writes every sample of both outputs, so neither is zero-filled first.
    var out = PixelStorage.uint8([])
    let maskOut = PixelStorage.filled(mask?.pixelType ?? .uint8, count: mask == nil ? 0 : ow * oh) { mdst in
      out = PixelStorage.filled(.float32, count: image.channels * ow * oh) { dst in
        let output = SharedBuffer(dst.bindMemory(to: Float.self))
        let maskOutput = SharedBuffer(mdst.bindMemory(to: UInt8.self))
        let chunks = max(1, min(oh, threads * 4))
        // Chunk k writes only its own output rows of both outputs.
        Parallel.forEach(tasks: chunks, workers: threads) { _, k in
          let scratch = UnsafeMutableRawPointer.allocate(byteCount: scratchBytes(width: ow), alignment: 64)
          defer { scratch.deallocate() }
          src.withUnsafeBufferPointer { s in
            maskSource.withUnsafeBytes { ms in
              guard let sp = s.baseAddress, let dp = output.baseAddress else { return }
              let maskDst = maskBytes == 0 ? nil : maskOutput.baseAddress.map { UnsafeMutableRawPointer($0) }
              kernel(
                sp, dp, maskBytes == 0 ? nil : ms.baseAddress, maskDst, maskBytes, Parallel.range(k, of: chunks, count: oh),
                scratch)
            }
          }
        }
      }
    }
    let warped = Image(width: ow, height: oh, channels: image.channels, storage: out)
    guard mask != nil else { return (warped, nil) }
    return (warped, Image(width: ow, height: oh, storage: maskOut))
  }
}

/// The integer codes CKernels uses.
enum CKernelCodes {
  static func interpolation(_ i: Interpolation) -> Int32 {
    switch i {
    case .nearest: 0
    case .bilinear: 1
    case .bicubic: 2
    case .bspline: 3
    }
  }

  static func border(_ b: BorderMode) -> Int32 {
    switch b {
    case .reflect: 0
    case .constant: 1
    case .edge: 2
    }
  }
}
