import SegCore

/// Bilinear up-sampling by an integer factor s with `align_corners = False` (PyTorch's
/// `interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)`, one step for any s:
/// ×4 is not ×2 twice).
///
/// Layout: X is N × C × H × W, Y is N × C × sH × sW (NCHW). Per axis, output index d reads
/// the source coordinate src = max(0, (d + ½)/s − ½) between i0 = ⌊src⌋ and
/// i1 = min(i0 + 1, n − 1) with weights 1 − λ and λ, λ = src − i0; the 2-D weights are the
/// products of the two axes'. For s = 2: even d = 2j, j ≥ 1: i0 = j − 1, λ = ¾; d = 0: i0 = 0,
/// λ = 0; odd d = 2j + 1: i0 = j, λ = ¼ (i1 clamped at the last pixel). For a power-of-two s
/// the coordinates are exact in float.
///
/// Backward is the transpose: each dY is spread over its four sources with the same weights.
/// Planes are independent, so both directions run in parallel over planes.
public struct BilinearUpsample: Sendable {
  /// s ≥ 1.
  public let factor: Int

  public init(factor: Int = 2) {
    precondition(factor >= 1, "BilinearUpsample: factor must be ≥ 1, not \(factor)")
    self.factor = factor
  }

  public func outputShape(for s: TensorShape) -> TensorShape {
    TensorShape(n: s.n, c: s.c, h: factor * s.h, w: factor * s.w)
  }

  /// Source index pair and weight of output index `d` along an axis of `n` input pixels.
  @inline(__always)
  static func taps(_ d: Int, _ n: Int, factor: Int) -> (Int, Int, Float) {
    let src = max(0, (Float(d) + 0.5) / Float(factor) - 0.5)
    let i0 = min(Int(src), n - 1)
    let i1 = min(i0 + 1, n - 1)
    return (i0, i1, src - Float(i0))
  }

  /// Forward on raw buffers; output item `i` at `y + i·outputItemStride`.
  ///
  /// Separable: each input row is interpolated horizontally once (H × sW), then every output
  /// row blends two of those rows, so a row's horizontal work is shared by the s output rows
  /// that read it. The arithmetic per output pixel is the same as the direct 2-D form
  /// (top = lerp of row y0, bottom = lerp of row y1, then lerp of the two).
  func forward(
    input x: UnsafePointer<Float>, shape s: TensorShape, output y: UnsafeMutablePointer<Float>,
    outputItemStride: Int? = nil
  ) {
    let o = outputShape(for: s)
    let ostride = outputItemStride ?? o.item
    let f = factor
    let cols = (0..<o.w).map { Self.taps($0, s.w, factor: f) }
    let rows = (0..<o.h).map { Self.taps($0, s.h, factor: f) }
    let xs = SharedBuffer(x), ys = SharedBuffer(y)
    // Disjoint writes: task t writes output plane t (and its own temporary rows).
    Parallel.forEach(tasks: s.n * s.c) { _, plane in
      let item = plane / s.c, ch = plane % s.c
      let src = xs.readOnly + plane * s.plane
      let dst = ys + (item * ostride + ch * o.plane)
      withUnsafeTemporaryAllocation(of: Float.self, capacity: s.h * o.w) { hb in
        guard let h = hb.baseAddress else { return }
        for r in 0..<s.h {
          let a = src + r * s.w, hr = h + r * o.w
          for ox in 0..<o.w {
            let (x0, x1, lx) = cols[ox]
            hr[ox] = a[x0] + (a[x1] - a[x0]) * lx
          }
        }
        for oy in 0..<o.h {
          let (y0, y1, ly) = rows[oy]
          let top = h + y0 * o.w, bottom = h + y1 * o.w
          let d = dst + oy * o.w
          for ox in 0..<o.w { d[ox] = top[ox] + (bottom[ox] - top[ox]) * ly }
        }
      }
    }
  }

  /// Backward on raw buffers: dX (overwritten, or added to with `accumulate`).
  ///
  /// The transpose of the separable forward: output rows are spread over their two source rows
  /// (H × sW, vectorised over columns), then each of those rows over its source columns.
  func backward(
    shape s: TensorShape, outputGradient dy: UnsafePointer<Float>, outputItemStride: Int? = nil,
    inputGradient dx: UnsafeMutablePointer<Float>, accumulate: Bool
  ) {
    let o = outputShape(for: s)
    let ostride = outputItemStride ?? o.item
    let f = factor
    let cols = (0..<o.w).map { Self.taps($0, s.w, factor: f) }
    let rows = (0..<o.h).map { Self.taps($0, s.h, factor: f) }
    let dys = SharedBuffer(dy), dxs = SharedBuffer(dx)
    // Disjoint writes: task t writes input-gradient plane t (and its own temporary rows).
    Parallel.forEach(tasks: s.n * s.c) { _, plane in
      let item = plane / s.c, ch = plane % s.c
      let g = dys.readOnly + (item * ostride + ch * o.plane)
      let d = dxs + plane * s.plane
      if !accumulate { d.update(repeating: 0, count: s.plane) }
      withUnsafeTemporaryAllocation(of: Float.self, capacity: s.h * o.w) { hb in
        guard let h = hb.baseAddress else { return }
        h.update(repeating: 0, count: s.h * o.w)
        for oy in 0..<o.h {
          let (y0, y1, ly) = rows[oy]
          let top = h + y0 * o.w, bottom = h + y1 * o.w
          let gr = g + oy * o.w
          let wt = 1 - ly
          for ox in 0..<o.w {
            let v = gr[ox]
            top[ox] += v * wt
            bottom[ox] += v * ly
          }
        }
        for r in 0..<s.h {
          let hr = h + r * o.w, dr = d + r * s.w
          for ox in 0..<o.w {
            let (x0, x1, lx) = cols[ox]
            let v = hr[ox]
            dr[x0] += v * (1 - lx)
            dr[x1] += v * lx
          }
        }
      }
    }
  }

  public func forward(_ x: Tensor) -> Tensor {
    x.mapped(to: outputShape(for: x.shape), "BilinearUpsample.forward") { forward(input: $0, shape: x.shape, output: $1) }
  }

  /// dL/dX for an input of shape `inputShape` and dL/dY.
  public func backward(inputShape: TensorShape, outputGradient dy: Tensor) -> Tensor {
    precondition(dy.shape == outputShape(for: inputShape), "BilinearUpsample.backward: dY \(dy.shape) does not match \(outputShape(for: inputShape))")
    return dy.mapped(to: inputShape, "BilinearUpsample.backward") {
      backward(shape: inputShape, outputGradient: $0, inputGradient: $1, accumulate: false)
    }
  }
}
