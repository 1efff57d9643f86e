import SegCore

/// 2×2 max pooling with stride 2.
///
/// Layout: X is N × C × H × W, Y is N × C × ⌊H/2⌋ × ⌊W/2⌋ (NCHW); an odd last row or column
/// is dropped, as PyTorch's `max_pool2d(x, 2)` does.
///
///     Y[n, c, y, x] = max(X[n, c, 2y, 2x], X[n, c, 2y, 2x+1], X[n, c, 2y+1, 2x], X[n, c, 2y+1, 2x+1])
///
/// Backward routes each dY to the position of its window's maximum, taking the first of
/// equal maxima in row-major order (PyTorch's choice). The argmax is recomputed from X rather
/// than stored: the U-Net keeps X anyway (it is the skip connection), so this costs no memory.
public struct MaxPool2x2: Sendable {
  public init() {}

  public func outputShape(for s: TensorShape) -> TensorShape {
    precondition(s.h >= 2 && s.w >= 2, "MaxPool2x2: input \(s.h)×\(s.w) smaller than 2×2")
    return TensorShape(n: s.n, c: s.c, h: s.h / 2, w: s.w / 2)
  }

  /// Forward on raw NCHW buffers; planes are split over workers (disjoint outputs).
  func forward(input x: UnsafePointer<Float>, shape s: TensorShape, output y: UnsafeMutablePointer<Float>) {
    let o = outputShape(for: s)
    let xs = SharedBuffer(x), ys = SharedBuffer(y)
    // Disjoint writes: task t writes output plane t.
    Parallel.forEach(tasks: s.n * s.c) { _, plane in
      let src = xs.readOnly + plane * s.plane
      let dst = ys + plane * o.plane
      for oy in 0..<o.h {
        let r0 = src + 2 * oy * s.w
        let r1 = r0 + s.w
        let d = dst + oy * o.w
        for ox in 0..<o.w {
          let a = max(r0[2 * ox], r0[2 * ox + 1])
          let b = max(r1[2 * ox], r1[2 * ox + 1])
          d[ox] = max(a, b)
        }
      }
    }
  }

  /// Backward on raw buffers: dX[argmax] += dY (or, without `accumulate`, dX is overwritten:
  /// dY at the argmax, 0 elsewhere, including a dropped odd row or column).
  func backward(
    input x: UnsafePointer<Float>, shape s: TensorShape, outputGradient dy: UnsafePointer<Float>,
    inputGradient dx: UnsafeMutablePointer<Float>, accumulate: Bool
  ) {
    let o = outputShape(for: s)
    let xs = SharedBuffer(x), dys = SharedBuffer(dy), dxs = SharedBuffer(dx)
    // Disjoint writes: task t writes input-gradient plane t.
    Parallel.forEach(tasks: s.n * s.c) { _, plane in
      let src = xs.readOnly + plane * s.plane
      let g = dys.readOnly + plane * o.plane
      let d = dxs + plane * s.plane
      if !accumulate { d.update(repeating: 0, count: s.plane) }
      for oy in 0..<o.h {
        let i0 = 2 * oy * s.w
        for ox in 0..<o.w {
          let i = i0 + 2 * ox
          d[i + argmaxOffset(src, i, s.w)] += g[oy * o.w + ox]
        }
      }
    }
  }

  /// Backward fused with the ReLU that produced X, for a gradient buffer that already holds
  /// another contribution (the U-Net's skip connection): dX[argmax] += dY, then every element
  /// of dX is masked by [X > 0] (X is the ReLU's output) and, per channel, Σ dX is added to
  /// `biasGradient` (the bias gradient of the convolution before that ReLU). One pass instead
  /// of three; the convolution's backward then runs with `outputGradientIsMasked`.
  func backwardMaskedAccumulate(
    input x: UnsafePointer<Float>, shape s: TensorShape, outputGradient dy: UnsafePointer<Float>,
    inputGradient dx: UnsafeMutablePointer<Float>, biasGradient: UnsafeMutablePointer<Float>?
  ) {
    let o = outputShape(for: s)
    let xs = SharedBuffer(x), dys = SharedBuffer(dy), dxs = SharedBuffer(dx)
    let gb = biasGradient.map { SharedBuffer($0) }
    // Disjoint writes: task c writes channel c of dX (every item) and bias gradient entry c.
    Parallel.forEach(tasks: s.c) { _, c in
      var total = 0.0
      for n in 0..<s.n {
        let plane = n * s.c + c
        let src = xs.readOnly + plane * s.plane
        let g = dys.readOnly + plane * o.plane
        let d = dxs + plane * s.plane
        var sum: Float = 0
        for oy in 0..<o.h {
          let i0 = 2 * oy * s.w
          var rowSum: Float = 0
          for ox in 0..<o.w {
            let i = i0 + 2 * ox
            let a = src[i], b = src[i + 1], e = src[i + s.w], f = src[i + s.w + 1]
            let k = argmaxIndex(a, b, e, f)
            let gv = g[oy * o.w + ox]
            let v0 = a > 0 ? d[i] + (k == 0 ? gv : 0) : 0
            let v1 = b > 0 ? d[i + 1] + (k == 1 ? gv : 0) : 0
            let v2 = e > 0 ? d[i + s.w] + (k == 2 ? gv : 0) : 0
            let v3 = f > 0 ? d[i + s.w + 1] + (k == 3 ? gv : 0) : 0
            d[i] = v0
            d[i + 1] = v1
            d[i + s.w] = v2
            d[i + s.w + 1] = v3
            rowSum += (v0 + v1) + (v2 + v3)
          }
          sum += rowSum
        }
        total += Double(sum)
        // A dropped odd last column or row: masked and summed, no pooled gradient.
        if s.w % 2 == 1 {
          for r in 0..<(2 * o.h) {
            let i = r * s.w + s.w - 1
            let v = src[i] > 0 ? d[i] : 0
            d[i] = v
            total += Double(v)
          }
        }
        if s.h % 2 == 1 {
          let row = (s.h - 1) * s.w
          total += maskAndSum(d + row, by: src + row, count: s.w)
        }
      }
      if let gb { gb[c] += Float(total) }
    }
  }

  /// Forward on a tensor.
  public func forward(_ x: Tensor) -> Tensor { MaxPool(factor: 2).forward(x) }

  /// dL/dX for the forward input `x` and dL/dY.
  public func backward(input x: Tensor, outputGradient dy: Tensor) -> Tensor { MaxPool(factor: 2).backward(input: x, outputGradient: dy) }
}

/// The rectifier Y = max(X, 0), element-wise, any layout.
///
/// The U-Net fuses ReLU into its convolutions (``Conv2D/fusedReLU``) or batch norms; this
/// stand-alone form is for other uses and tests. Backward uses the output: dX = dY·[Y > 0]
/// (the subgradient at 0 is 0, as in PyTorch).
public struct ReLU: Sendable {
  public init() {}

  public func forward(_ x: Tensor) -> Tensor {
    Tensor(shape: x.shape, data: x.data.map { $0 > 0 ? $0 : 0 })
  }

  /// dL/dX from the forward output `y` and dL/dY.
  public func backward(output y: Tensor, outputGradient dy: Tensor) -> Tensor {
    checkTensor(y, "ReLU.backward")
    checkTensor(dy, "ReLU.backward")
    precondition(y.shape == dy.shape, "ReLU.backward: shapes \(y.shape) and \(dy.shape) differ")
    var dx = dy
    for i in 0..<dx.data.count where !(y.data[i] > 0) { dx.data[i] = 0 }
    return dx
  }
}

/// The position 0 ... 3 of the first maximum of a 2×2 window (a b / e f) in row-major order,
/// chosen without branches: the winner is data-dependent and would mispredict about once per
/// window.
@inline(__always)
func argmaxIndex(_ a: Float, _ b: Float, _ e: Float, _ f: Float) -> Int {
  let bTop = b > a
  let top = bTop ? b : a
  let fBottom = f > e
  let bottom = fBottom ? f : e
  return bottom > top ? (fBottom ? 3 : 2) : (bTop ? 1 : 0)
}

/// The offset from `i` of the first maximum of the window at `i` in a plane of width `w`.
@inline(__always)
func argmaxOffset(_ p: UnsafePointer<Float>, _ i: Int, _ w: Int) -> Int {
  let k = argmaxIndex(p[i], p[i + 1], p[i + w], p[i + w + 1])
  return (k >> 1) * w + (k & 1)
}
