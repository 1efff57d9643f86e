import SegCore

/// Bilinear ×2 up-sampling with `align_corners = False` (PyTorch's
/// `interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)`).
///
/// Layout: X is N × C × H × W, Y is N × C × 2H × 2W (NCHW). Per axis, output index d reads
/// the source coordinate s = max(0, (d + ½)/2 − ½) between i0 = ⌊s⌋ and i1 = min(i0 + 1, n − 1)
/// with weights 1 − λ and λ, λ = s − i0; the 2-D weights are the products of the two axes'.
/// For even d = 2j, j ≥ 1: i0 = j − 1, λ = ¾; d = 0: i0 = 0, λ = 0; odd d = 2j + 1: i0 = j,
/// λ = ¼ (i1 clamped at the last pixel).
///
/// Backward is the transpose: each dY is spread over its four sources with the same weights.
/// Planes are independent, so both directions run in parallel over planes.
public struct BilinearUpsample2x: Sendable {
  public init() {}

  public func outputShape(for s: TensorShape) -> TensorShape {
    TensorShape(n: s.n, c: s.c, h: 2 * s.h, w: 2 * s.w)
  }

  /// Source index pair and weight of output index `d` along an axis of `n` input pixels.
  @inline(__always)
  static func taps(_ d: Int, _ n: Int) -> (Int, Int, Float) {
    let src = max(0, (Float(d) + 0.5) * 0.5 - 0.5)
    let i0 = min(Int(src), n - 1)
    let i1 = min(i0 + 1, n - 1)
    return (i0, i1, src - Float(i0))
  }

  /// Forward on raw buffers; output item `i` at `y + i·outputItemStride`.
  func forward(
    input x: UnsafePointer<Float>, shape s: TensorShape, output y: UnsafeMutablePointer<Float>,
    outputItemStride: Int? = nil
  ) {
    let o = outputShape(for: s)
    let ostride = outputItemStride ?? o.item
    let cols = (0..<o.w).map { Self.taps($0, s.w) }
    let rows = (0..<o.h).map { Self.taps($0, s.h) }
    let xs = SharedBuffer(x), ys = SharedBuffer(y)
    // Disjoint writes: task t writes output plane t.
    Parallel.forEach(tasks: s.n * s.c) { _, plane in
      let item = plane / s.c, ch = plane % s.c
      let src = xs.readOnly + plane * s.plane
      let dst = ys + (item * ostride + ch * o.plane)
      for oy in 0..<o.h {
        let (y0, y1, ly) = rows[oy]
        let a = src + y0 * s.w, b = src + y1 * s.w
        let d = dst + oy * o.w
        for ox in 0..<o.w {
          let (x0, x1, lx) = cols[ox]
          let top = a[x0] + (a[x1] - a[x0]) * lx
          let bottom = b[x0] + (b[x1] - b[x0]) * lx
          d[ox] = top + (bottom - top) * ly
        }
      }
    }
  }

  /// Backward on raw buffers: dX (overwritten, or added to with `accumulate`).
  func backward(
    shape s: TensorShape, outputGradient dy: UnsafePointer<Float>, outputItemStride: Int? = nil,
    inputGradient dx: UnsafeMutablePointer<Float>, accumulate: Bool
  ) {
    let o = outputShape(for: s)
    let ostride = outputItemStride ?? o.item
    let cols = (0..<o.w).map { Self.taps($0, s.w) }
    let rows = (0..<o.h).map { Self.taps($0, s.h) }
    let dys = SharedBuffer(dy), dxs = SharedBuffer(dx)
    // Disjoint writes: task t writes input-gradient plane t.
    Parallel.forEach(tasks: s.n * s.c) { _, plane in
      let item = plane / s.c, ch = plane % s.c
      let g = dys.readOnly + (item * ostride + ch * o.plane)
      let d = dxs + plane * s.plane
      if !accumulate { d.update(repeating: 0, count: s.plane) }
      for oy in 0..<o.h {
        let (y0, y1, ly) = rows[oy]
        let a = d + y0 * s.w, b = d + y1 * s.w
        let gr = g + oy * o.w
        for ox in 0..<o.w {
          let (x0, x1, lx) = cols[ox]
          let v = gr[ox]
          let top = v * (1 - ly), bottom = v * ly
          a[x0] += top * (1 - lx)
          a[x1] += top * lx
          b[x0] += bottom * (1 - lx)
          b[x1] += bottom * lx
        }
      }
    }
  }

  public func forward(_ x: Tensor) -> Tensor {
    checkTensor(x, "BilinearUpsample2x.forward")
    var out = Tensor(shape: outputShape(for: x.shape))
    x.data.withUnsafeBufferPointer { xp in
      out.data.withUnsafeMutableBufferPointer { yp in forward(input: base(xp), shape: x.shape, output: base(yp)) }
    }
    return out
  }

  /// dL/dX for an input of shape `inputShape` and dL/dY.
  public func backward(inputShape: TensorShape, outputGradient dy: Tensor) -> Tensor {
    checkTensor(dy, "BilinearUpsample2x.backward")
    precondition(dy.shape == outputShape(for: inputShape), "BilinearUpsample2x.backward: dY \(dy.shape) does not match \(outputShape(for: inputShape))")
    var dx = Tensor(shape: inputShape)
    dy.data.withUnsafeBufferPointer { gp in
      dx.data.withUnsafeMutableBufferPointer { dp in
        backward(shape: inputShape, outputGradient: base(gp), inputGradient: base(dp), accumulate: false)
      }
    }
    return dx
  }
}

/// Centre crop of a skip connection and channel concatenation with the up-sampled path,
/// skip first (as the reference peer: `torch.cat([crop(skip), up], dim=1)`).
///
/// Layout: skip S is N × C_s × Hs × Ws, up U is N × C_u × H × W with H ≤ Hs, W ≤ Ws; the
/// output is N × (C_s + C_u) × H × W with
///
///     Out[n, c, y, x]       = S[n, c, y + ⌊(Hs − H)/2⌋, x + ⌊(Ws − W)/2⌋]   (c < C_s)
///     Out[n, C_s + c, y, x] = U[n, c, y, x]
///
/// Backward splits dOut: dU is its second channel block; dS is the first block placed back in
/// the crop window, zero outside it. In the U-Net the up path writes straight into the second
/// block (no copy); only the crop is copied.
public struct CropConcat: Sendable {
  public init() {}

  /// (top, left) of the crop window.
  public static func offsets(skip: TensorShape, up: TensorShape) -> (Int, Int) {
    precondition(skip.h >= up.h && skip.w >= up.w, "CropConcat: skip \(skip.h)×\(skip.w) smaller than \(up.h)×\(up.w)")
    return ((skip.h - up.h) / 2, (skip.w - up.w) / 2)
  }

  /// Copies the crop of `skip` into channels 0..<C_s of each item of `out` (item stride
  /// (C_s + C_u)·H·W).
  func copyCrop(skip: UnsafePointer<Float>, skipShape s: TensorShape, upShape u: TensorShape, output out: UnsafeMutablePointer<Float>) {
    let (top, left) = Self.offsets(skip: s, up: u)
    let ostride = (s.c + u.c) * u.plane
    let ss = SharedBuffer(skip), os = SharedBuffer(out)
    // Disjoint writes: task t writes output plane t of the skip block.
    Parallel.forEach(tasks: s.n * s.c) { _, plane in
      let item = plane / s.c, ch = plane % s.c
      let src = ss.readOnly + plane * s.plane + top * s.w + left
      let dst = os + (item * ostride + ch * u.plane)
      for r in 0..<u.h { (dst + r * u.w).update(from: src + r * s.w, count: u.w) }
    }
  }

  /// Writes dS from the first channel block of dOut: the crop window gets dOut, the rest 0.
  func scatterCropGradient(outputGradient g: UnsafePointer<Float>, skipShape s: TensorShape, upShape u: TensorShape, skipGradient ds: UnsafeMutablePointer<Float>) {
    let (top, left) = Self.offsets(skip: s, up: u)
    let gstride = (s.c + u.c) * u.plane
    let gs = SharedBuffer(g), dss = SharedBuffer(ds)
    // Disjoint writes: task t writes skip-gradient plane t.
    Parallel.forEach(tasks: s.n * s.c) { _, plane in
      let item = plane / s.c, ch = plane % s.c
      let dst = dss + plane * s.plane
      let src = gs.readOnly + (item * gstride + ch * u.plane)
      if top > 0 || left > 0 || u.h < s.h || u.w < s.w {
        dst.update(repeating: 0, count: s.plane)
      }
      for r in 0..<u.h { (dst + (r + top) * s.w + left).update(from: src + r * u.w, count: u.w) }
    }
  }

  public func outputShape(skip: TensorShape, up: TensorShape) -> TensorShape {
    precondition(skip.n == up.n, "CropConcat: batch sizes \(skip.n) and \(up.n) differ")
    return TensorShape(n: up.n, c: skip.c + up.c, h: up.h, w: up.w)
  }

  public func forward(skip: Tensor, up: Tensor) -> Tensor {
    checkTensor(skip, "CropConcat.forward")
    checkTensor(up, "CropConcat.forward")
    let os = outputShape(skip: skip.shape, up: up.shape)
    var out = Tensor(shape: os)
    skip.data.withUnsafeBufferPointer { sp in
      up.data.withUnsafeBufferPointer { upp in
        out.data.withUnsafeMutableBufferPointer { op in
          copyCrop(skip: base(sp), skipShape: skip.shape, upShape: up.shape, output: base(op))
          for n in 0..<up.shape.n {
            (base(op) + n * os.item + skip.shape.c * up.shape.plane).update(from: base(upp) + n * up.shape.item, count: up.shape.item)
          }
        }
      }
    }
    return out
  }

  /// (dS, dU) from dOut.
  public func backward(skipShape: TensorShape, upShape: TensorShape, outputGradient g: Tensor) -> (skip: Tensor, up: Tensor) {
    checkTensor(g, "CropConcat.backward")
    precondition(g.shape == outputShape(skip: skipShape, up: upShape), "CropConcat.backward: dOut \(g.shape) does not match")
    var ds = Tensor(shape: skipShape)
    var du = Tensor(shape: upShape)
    g.data.withUnsafeBufferPointer { gp in
      ds.data.withUnsafeMutableBufferPointer { dp in
        scatterCropGradient(outputGradient: base(gp), skipShape: skipShape, upShape: upShape, skipGradient: base(dp))
      }
      for n in 0..<upShape.n {
        for i in 0..<upShape.item { du.data[n * upShape.item + i] = gp[n * g.shape.item + skipShape.c * upShape.plane + i] }
      }
    }
    return (ds, du)
  }
}
