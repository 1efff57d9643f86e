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
          var best = i
          var m = src[i]
          if src[i + 1] > m { m = src[i + 1]; best = i + 1 }
          if src[i + s.w] > m { m = src[i + s.w]; best = i + s.w }
          if src[i + s.w + 1] > m { best = i + s.w + 1 }
          d[best] += g[oy * o.w + ox]
        }
      }
    }
  }

  /// Forward on a tensor.
  public func forward(_ x: Tensor) -> Tensor {
    checkTensor(x, "MaxPool2x2.forward")
    var out = Tensor(shape: outputShape(for: x.shape))
    x.data.withUnsafeBufferPointer { xp in
      out.data.withUnsafeMutableBufferPointer { yp in forward(input: base(xp), shape: x.shape, output: base(yp)) }
    }
    return out
  }

  /// dL/dX for the forward input `x` and dL/dY.
  public func backward(input x: Tensor, outputGradient dy: Tensor) -> Tensor {
    checkTensor(x, "MaxPool2x2.backward")
    checkTensor(dy, "MaxPool2x2.backward")
    precondition(dy.shape == outputShape(for: x.shape), "MaxPool2x2.backward: dY \(dy.shape) does not match \(outputShape(for: x.shape))")
    var dx = Tensor(shape: x.shape)
    x.data.withUnsafeBufferPointer { xp in
      dy.data.withUnsafeBufferPointer { gp in
        dx.data.withUnsafeMutableBufferPointer { dp in
          backward(input: base(xp), shape: x.shape, outputGradient: base(gp), inputGradient: base(dp), accumulate: false)
        }
      }
    }
    return dx
  }
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
