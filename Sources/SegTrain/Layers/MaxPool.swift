import SegCore

/// k×k max pooling with stride k (k = `factor`), as PyTorch's `max_pool2d(x, k)`.
///
/// Layout: X is N × C × H × W, Y is N × C × ⌊H/k⌋ × ⌊W/k⌋ (NCHW); a last partial row or column
/// of windows is dropped.
///
///     Y[n, c, y, x] = max_{0 ≤ a, b < k} X[n, c, k·y + a, k·x + b]
///
/// Backward routes each dY to its window's first maximum in row-major order (PyTorch's
/// choice), recomputed from X. k = 2 runs ``MaxPool2x2``'s kernels (branch-free argmax, and
/// the backward fused with the ReLU mask of X's producer); UNet 3+ pools by 4 and 8 too.
public struct MaxPool: Sendable {
  /// k ≥ 1.
  public let factor: Int

  public init(factor: Int = 2) {
    precondition(factor >= 1, "MaxPool: factor must be ≥ 1, not \(factor)")
    self.factor = factor
  }

  public func outputShape(for s: TensorShape) -> TensorShape {
    precondition(s.h >= factor && s.w >= factor, "MaxPool: input \(s.h)×\(s.w) smaller than \(factor)×\(factor)")
    return TensorShape(n: s.n, c: s.c, h: s.h / factor, w: s.w / factor)
  }

  /// Forward on raw NCHW buffers; planes are split over workers (disjoint outputs).
  func forward(input x: UnsafePointer<Float>, shape s: TensorShape, output y: UnsafeMutablePointer<Float>) {
    if factor == 2 { return MaxPool2x2().forward(input: x, shape: s, output: y) }
    let o = outputShape(for: s)
    let k = factor
    let xs = SharedBuffer(x), ys = SharedBuffer(y)
    // Disjoint writes: task t writes output plane t.
    Parallel.forEach(tasks: s.n * s.c) { _, plane in
      let src = xs.readOnly + plane * s.plane
      let dst = ys + plane * o.plane
      for oy in 0..<o.h {
        let d = dst + oy * o.w
        for ox in 0..<o.w { d[ox] = -Float.infinity }
        for a in 0..<k {
          let row = src + (k * oy + a) * s.w
          for ox in 0..<o.w {
            var m = d[ox]
            for b in 0..<k { m = max(m, row[k * ox + b]) }
            d[ox] = m
          }
        }
      }
    }
  }

  /// Backward on raw buffers: dX[argmax] += dY (or, without `accumulate`, dX is overwritten:
  /// dY at the argmax, 0 elsewhere).
  func backward(
    input x: UnsafePointer<Float>, shape s: TensorShape, outputGradient dy: UnsafePointer<Float>,
    inputGradient dx: UnsafeMutablePointer<Float>, accumulate: Bool
  ) {
    if factor == 2 {
      return MaxPool2x2().backward(input: x, shape: s, outputGradient: dy, inputGradient: dx, accumulate: accumulate)
    }
    let o = outputShape(for: s)
    let k = factor
    let xs = SharedBuffer(x), dys = SharedBuffer(dy), dxs = SharedBuffer(dx)
    // Disjoint writes: task t writes input-gradient plane t.
    Parallel.forEach(tasks: s.n * s.c) { _, plane in
      let src = xs.readOnly + plane * s.plane
      let g = dys.readOnly + plane * o.plane
      let d = dxs + plane * s.plane
      if !accumulate { d.update(repeating: 0, count: s.plane) }
      for oy in 0..<o.h {
        for ox in 0..<o.w {
          var best = k * oy * s.w + k * ox
          var value = src[best]
          for a in 0..<k {
            let row = (k * oy + a) * s.w + k * ox
            for b in 0..<k where src[row + b] > value {
              value = src[row + b]
              best = row + b
            }
          }
          d[best] += g[oy * o.w + ox]
        }
      }
    }
  }

  public func forward(_ x: Tensor) -> Tensor {
    x.mapped(to: outputShape(for: x.shape), "MaxPool.forward") { forward(input: $0, shape: x.shape, output: $1) }
  }

  /// dL/dX for the forward input `x` and dL/dY.
  public func backward(input x: Tensor, outputGradient dy: Tensor) -> Tensor {
    precondition(dy.shape == outputShape(for: x.shape), "MaxPool.backward: dY \(dy.shape) does not match \(outputShape(for: x.shape))")
    return Tensor.combined(x, dy, to: x.shape, "MaxPool.backward") {
      backward(input: $0, shape: x.shape, outputGradient: $1, inputGradient: $2, accumulate: false)
    }
  }
}

/// The maximum over each plane: N × C × H × W → N × C × 1 × 1 (PyTorch's
/// `AdaptiveMaxPool2d(1)`, the CGM's reduction). Backward routes dY to the plane's first
/// maximum in row-major order.
public struct GlobalMaxPool: Sendable {
  public init() {}

  public func outputShape(for s: TensorShape) -> TensorShape { TensorShape(n: s.n, c: s.c, h: 1, w: 1) }

  /// The index of the first maximum of a plane.
  @inline(__always)
  static func argmax(_ p: UnsafePointer<Float>, count: Int) -> Int {
    var best = 0
    var value = p[0]
    for i in 1..<max(1, count) where p[i] > value {
      value = p[i]
      best = i
    }
    return best
  }

  func forward(input x: UnsafePointer<Float>, shape s: TensorShape, output y: UnsafeMutablePointer<Float>) {
    for plane in 0..<(s.n * s.c) {
      let p = x + plane * s.plane
      y[plane] = p[Self.argmax(p, count: s.plane)]
    }
  }

  /// dX[argmax] (+)= dY per plane (with `accumulate`; else dX is overwritten, 0 off the argmax).
  func backward(
    input x: UnsafePointer<Float>, shape s: TensorShape, outputGradient dy: UnsafePointer<Float>,
    inputGradient dx: UnsafeMutablePointer<Float>, accumulate: Bool
  ) {
    if !accumulate { dx.update(repeating: 0, count: s.count) }
    for plane in 0..<(s.n * s.c) {
      let p = x + plane * s.plane
      dx[plane * s.plane + Self.argmax(p, count: s.plane)] += dy[plane]
    }
  }

  public func forward(_ x: Tensor) -> Tensor {
    x.mapped(to: outputShape(for: x.shape), "GlobalMaxPool.forward") { forward(input: $0, shape: x.shape, output: $1) }
  }

  public func backward(input x: Tensor, outputGradient dy: Tensor) -> Tensor {
    precondition(dy.shape == outputShape(for: x.shape), "GlobalMaxPool.backward: dY \(dy.shape) does not match")
    return Tensor.combined(x, dy, to: x.shape, "GlobalMaxPool.backward") {
      backward(input: $0, shape: x.shape, outputGradient: $1, inputGradient: $2, accumulate: false)
    }
  }
}
