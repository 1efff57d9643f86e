import SegCore

/// Softmax over the channel axis at every pixel.
///
/// Layout: Z (logits) and P are N × K × H × W (NCHW);
///
///     P[n, k, y, x] = exp(Z[n, k, y, x] − m) / Σ_j exp(Z[n, j, y, x] − m),   m = max_j Z[n, j, y, x]
///
/// (subtracting the maximum keeps exp from overflowing). Backward:
/// dZ[k] = P[k]·(dP[k] − Σ_j P[j]·dP[j]) per pixel.
public struct PixelSoftmax: Sendable {
  public init() {}

  /// Forward on raw buffers; pixels are split over workers (disjoint outputs).
  func forward(logits z: UnsafePointer<Float>, shape s: TensorShape, probabilities p: UnsafeMutablePointer<Float>) {
    let zs = SharedBuffer(z), ps = SharedBuffer(p)
    let rows = s.n * s.h
    // Disjoint writes: task r writes row r (item r / H, image row r % H) of every channel.
    Parallel.forEach(tasks: rows) { _, r in
      let item = r / s.h, y = r % s.h
      let zb = zs.readOnly + item * s.item + y * s.w
      let pb = ps + (item * s.item + y * s.w)
      for x in 0..<s.w {
        var m = zb[x]
        for k in 1..<max(1, s.c) { m = max(m, zb[k * s.plane + x]) }
        var sum: Float = 0
        for k in 0..<s.c {
          let e = expf(zb[k * s.plane + x] - m)
          pb[k * s.plane + x] = e
          sum += e
        }
        let inv = 1 / sum
        for k in 0..<s.c { pb[k * s.plane + x] *= inv }
      }
    }
  }

  public func forward(_ z: Tensor) -> Tensor {
    z.mapped(to: z.shape, "PixelSoftmax.forward") { forward(logits: $0, shape: z.shape, probabilities: $1) }
  }

  /// dL/dZ from the forward output P and dL/dP.
  public func backward(probabilities p: Tensor, outputGradient dp: Tensor) -> Tensor {
    precondition(p.shape == dp.shape, "PixelSoftmax.backward: shapes differ")
    return Tensor.combined(p, dp, to: p.shape, "PixelSoftmax.backward") {
      backward(probabilities: $0, shape: p.shape, outputGradient: $1, inputGradient: $2, accumulate: false)
    }
  }
}

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif
