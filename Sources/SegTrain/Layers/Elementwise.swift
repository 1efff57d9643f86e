import SegCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The logistic function Y = 1/(1 + e^−X), element-wise, any layout. Backward from the output:
/// dX = dY·Y·(1 − Y).
public struct Sigmoid: Sendable {
  public init() {}

  func forward(input x: UnsafePointer<Float>, count: Int, output y: UnsafeMutablePointer<Float>) {
    for i in 0..<count { y[i] = 1 / (1 + expf(-x[i])) }
  }

  /// dX (+)= dY·Y·(1 − Y).
  func backward(
    output y: UnsafePointer<Float>, count: Int, outputGradient dy: UnsafePointer<Float>,
    inputGradient dx: UnsafeMutablePointer<Float>, accumulate: Bool
  ) {
    if accumulate {
      for i in 0..<count { dx[i] += dy[i] * y[i] * (1 - y[i]) }
    } else {
      for i in 0..<count { dx[i] = dy[i] * y[i] * (1 - y[i]) }
    }
  }

  public func forward(_ x: Tensor) -> Tensor {
    x.mapped(to: x.shape, "Sigmoid.forward") { forward(input: $0, count: x.shape.count, output: $1) }
  }

  public func backward(output y: Tensor, outputGradient dy: Tensor) -> Tensor {
    precondition(y.shape == dy.shape, "Sigmoid.backward: shapes differ")
    return Tensor.combined(y, dy, to: y.shape, "Sigmoid.backward") {
      backward(output: $0, count: y.shape.count, outputGradient: $1, inputGradient: $2, accumulate: false)
    }
  }
}

/// The element-wise product of a map X (N × C × H × W) and one factor per item G (N × 1 × 1 × 1):
/// Y[n, c, y, x] = X[n, c, y, x]·G[n]. UNet 3+ multiplies its heads' probabilities by the CGM's
/// gate this way. Backward: dX = dY·G; dG[n] = Σ dY·X over the item.
public struct ItemScale: Sendable {
  public init() {}

  func forward(input x: UnsafePointer<Float>, shape s: TensorShape, factors g: UnsafePointer<Float>, output y: UnsafeMutablePointer<Float>) {
    for n in 0..<s.n {
      let f = g[n]
      let a = x + n * s.item, b = y + n * s.item
      for i in 0..<s.item { b[i] = a[i] * f }
    }
  }

  /// dX (+)= dY·G, when `inputGradient` is given; dG (+)= Σ dY·X, when `factorGradient` is.
  func backward(
    input x: UnsafePointer<Float>, shape s: TensorShape, factors g: UnsafePointer<Float>,
    outputGradient dy: UnsafePointer<Float>, inputGradient dx: UnsafeMutablePointer<Float>?, accumulateInput: Bool,
    factorGradient dg: UnsafeMutablePointer<Float>?, accumulateFactor: Bool
  ) {
    for n in 0..<s.n {
      let f = g[n]
      let xi = x + n * s.item, gi = dy + n * s.item
      if let dx {
        let d = dx + n * s.item
        if accumulateInput {
          for i in 0..<s.item { d[i] += gi[i] * f }
        } else {
          for i in 0..<s.item { d[i] = gi[i] * f }
        }
      }
      if let dg {
        var sum = 0.0
        for i in 0..<s.item { sum += Double(gi[i] * xi[i]) }
        dg[n] = (accumulateFactor ? dg[n] : 0) + Float(sum)
      }
    }
  }

  public func forward(_ x: Tensor, factors: [Float]) -> Tensor {
    checkTensor(x, "ItemScale.forward")
    precondition(factors.count == x.shape.n, "ItemScale: \(factors.count) factors for \(x.shape.n) items")
    var out = Tensor(shape: x.shape)
    x.data.withUnsafeBufferPointer { xp in
      factors.withUnsafeBufferPointer { gp in
        out.data.withUnsafeMutableBufferPointer { yp in forward(input: base(xp), shape: x.shape, factors: base(gp), output: base(yp)) }
      }
    }
    return out
  }

  /// (dX, dG).
  public func backward(input x: Tensor, factors: [Float], outputGradient dy: Tensor) -> (input: Tensor, factors: [Float]) {
    checkTensor(x, "ItemScale.backward")
    precondition(dy.shape == x.shape && factors.count == x.shape.n, "ItemScale.backward: shapes differ")
    var dx = Tensor(shape: x.shape)
    var dg = [Float](repeating: 0, count: factors.count)
    x.data.withUnsafeBufferPointer { xp in
      factors.withUnsafeBufferPointer { fp in
        dy.data.withUnsafeBufferPointer { gp in
          dx.data.withUnsafeMutableBufferPointer { dp in
            dg.withUnsafeMutableBufferPointer { dgp in
              backward(
                input: base(xp), shape: x.shape, factors: base(fp), outputGradient: base(gp), inputGradient: base(dp),
                accumulateInput: false, factorGradient: base(dgp), accumulateFactor: false)
            }
          }
        }
      }
    }
    return (dx, dg)
  }
}

/// The CGM's decision: from the two class probabilities q (N × 2 × 1 × 1: absent, present), the
/// gate g[n] = 1 when q[n, 1] > q[n, 0], else 0 (argmax, ties 0), N × 1 × 1 × 1. A decision, not
/// a differentiable function: no gradient flows back through it (Huang et al. 2020, §2.3).
public struct CGMGate: Sendable {
  public init() {}

  func forward(input q: UnsafePointer<Float>, items: Int, output g: UnsafeMutablePointer<Float>) {
    for n in 0..<items { g[n] = q[2 * n + 1] > q[2 * n] ? 1 : 0 }
  }
}

extension PixelSoftmax {
  /// dZ (+)= P·(dP − Σ_k P_k·dP_k) per pixel, on raw NCHW buffers.
  func backward(
    probabilities p: UnsafePointer<Float>, shape s: TensorShape, outputGradient dp: UnsafePointer<Float>,
    inputGradient dz: UnsafeMutablePointer<Float>, accumulate: Bool
  ) {
    let ps = SharedBuffer(p), gs = SharedBuffer(dp), ds = SharedBuffer(dz)
    let rows = s.n * s.h
    // Disjoint writes: task r writes row r (item r / H, image row r % H) of every channel.
    Parallel.forEach(tasks: rows) { _, r in
      let item = r / s.h, y = r % s.h
      let off = item * s.item + y * s.w
      let pb = ps.readOnly + off, gb = gs.readOnly + off, db = ds + off
      for x in 0..<s.w {
        var dot: Float = 0
        for k in 0..<s.c { dot += pb[k * s.plane + x] * gb[k * s.plane + x] }
        for k in 0..<s.c {
          let v = pb[k * s.plane + x] * (gb[k * s.plane + x] - dot)
          db[k * s.plane + x] = accumulate ? db[k * s.plane + x] + v : v
        }
      }
    }
  }
}

extension Dropout {
  /// dX (+)= dY ⊙ mask on raw buffers.
  func backward(
    mask: UnsafePointer<Float>, count: Int, outputGradient dy: UnsafePointer<Float>,
    inputGradient dx: UnsafeMutablePointer<Float>, accumulate: Bool
  ) {
    if accumulate {
      for i in 0..<count { dx[i] += dy[i] * mask[i] }
    } else {
      for i in 0..<count { dx[i] = dy[i] * mask[i] }
    }
  }
}
