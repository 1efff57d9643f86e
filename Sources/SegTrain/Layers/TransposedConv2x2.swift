import SegCore

/// A 2×2 transposed convolution with stride 2 ("up-convolution"), with bias.
///
/// Layout: X is N × C_in × H × W, Y is N × C_out × 2H × 2W (NCHW). The weight is
/// C_in × C_out × 2 × 2 (PyTorch's `ConvTranspose2d.weight` layout), the bias C_out:
///
///     Y[n, o, 2y + a, 2x + b] = bias[o] + Σ_c Wt[c, o, a, b] · X[n, c, y, x]    (a, b ∈ {0, 1})
///
/// Every output pixel has exactly one source pixel, so the layer is one GEMM
/// T = Wtᵀ · X ((4·C_out) × HW, rows (o, a, b)) followed by an interleaving copy of T into Y.
/// Input rows are processed in chunks (T stays in cache); chunks write disjoint output rows.
///
/// Backward gathers dT from dY, then dWt += X · dTᵀ, dX = Wt · dT and db += Σ dY, all on the
/// same chunk while it is in cache.
public struct TransposedConv2x2: Sendable {
  public let inChannels: Int
  public let outChannels: Int
  /// C_in × C_out × 2 × 2.
  public let weight: ParameterView
  /// C_out.
  public let bias: ParameterView

  /// Floats of T per worker and chunk.
  static let chunkBudget = 256 * 1024

  public init(_ name: String, inChannels: Int, outChannels: Int, allocator: inout ParameterAllocator) {
    precondition(inChannels >= 1 && outChannels >= 1, "TransposedConv2x2 \(name): channels must be ≥ 1")
    self.inChannels = inChannels
    self.outChannels = outChannels
    weight = allocator.allocate(name + ".weight", shape: [inChannels, outChannels, 2, 2])
    bias = allocator.allocate(name + ".bias", shape: [outChannels])
  }

  public func outputShape(for s: TensorShape) -> TensorShape {
    precondition(s.c == inChannels, "TransposedConv2x2: input has \(s.c) channels, expected \(inChannels)")
    return TensorShape(n: s.n, c: outChannels, h: 2 * s.h, w: 2 * s.w)
  }

  /// Multiply–accumulates of one forward pass.
  public func multiplyAccumulates(for s: TensorShape) -> Int { s.n * s.plane * inChannels * outChannels * 4 }

  private func plan(_ s: TensorShape, workers: Int) -> (rowsPerChunk: Int, chunks: Int) {
    var rows = max(1, Self.chunkBudget / max(1, 4 * outChannels * s.w))
    rows = min(rows, s.h)
    var chunks = (s.h + rows - 1) / rows
    if workers > 1 { chunks = min(s.h, max(chunks, (2 * workers + s.n - 1) / s.n)) }
    rows = (s.h + chunks - 1) / chunks
    return (rows, (s.h + rows - 1) / rows)
  }

  /// Forward on raw buffers; output item `i` at `y + i·outputItemStride`.
  func forward(
    input x: UnsafePointer<Float>, shape s: TensorShape, output y: UnsafeMutablePointer<Float>,
    outputItemStride: Int? = nil, parameters: UnsafePointer<Float>, scratch: ScratchArena
  ) {
    let o = outputShape(for: s)
    let ostride = outputItemStride ?? o.item
    let workers = ComputeThreads.count
    let (rowsPer, chunks) = plan(s, workers: workers)
    let m4 = 4 * outChannels
    let tFloats = m4 * rowsPer * s.w
    let scratchBase = SharedBuffer(scratch.floats(tFloats * min(workers, s.n * chunks)))
    let xs = SharedBuffer(x), ys = SharedBuffer(y), ps = SharedBuffer(parameters)
    let cin = inChannels, cout = outChannels, wOff = weight.offset, bOff = bias.offset
    // Disjoint writes: task t writes output rows [2·r0, 2·r1) of its item.
    Parallel.forEach(tasks: s.n * chunks, workers: workers) { worker, task in
      let item = task / chunks
      let r0 = (task % chunks) * rowsPer
      let r1 = min(s.h, r0 + rowsPer)
      let nc = (r1 - r0) * s.w
      let t = scratchBase + worker * tFloats
      BLAS.sgemm(
        transA: true, transB: false, m: m4, n: nc, k: cin, alpha: 1,
        a: ps.readOnly + wOff, lda: m4, b: xs.readOnly + (item * s.item + r0 * s.w), ldb: s.plane,
        beta: 0, c: t, ldc: nc)
      for oc in 0..<cout {
        let bv = ps[bOff + oc]
        let plane = ys + (item * ostride + oc * o.plane)
        for a in 0..<2 {
          let t0 = t + (oc * 4 + a * 2) * nc
          let t1 = t0 + nc
          for r in r0..<r1 {
            let dst = plane + (2 * r + a) * o.w
            let s0 = t0 + (r - r0) * s.w
            let s1 = t1 + (r - r0) * s.w
            for xx in 0..<s.w {
              dst[2 * xx] = s0[xx] + bv
              dst[2 * xx + 1] = s1[xx] + bv
            }
          }
        }
      }
    }
  }

  /// Backward on raw buffers: adds dWt and db into `gradients`; writes dX (overwriting it, or
  /// adding to it with `accumulateInputGradient`) when `inputGradient` is given.
  func backward(
    input x: UnsafePointer<Float>, inputShape s: TensorShape, outputGradient dy: UnsafePointer<Float>,
    outputItemStride: Int? = nil, inputGradient dx: UnsafeMutablePointer<Float>?, accumulateInputGradient: Bool = false,
    parameters: UnsafePointer<Float>,
    gradients: UnsafeMutablePointer<Float>, scratch: ScratchArena
  ) {
    let o = outputShape(for: s)
    let ostride = outputItemStride ?? o.item
    let workers = ComputeThreads.count
    let (rowsPer, chunks) = plan(s, workers: workers)
    let tasks = s.n * chunks
    let active = min(workers, tasks)
    let cin = inChannels, cout = outChannels, m4 = 4 * cout
    let partialFloats = cin * m4 + cout
    let tFloats = m4 * rowsPer * s.w
    let perWorker = partialFloats + tFloats
    let scratchBase = SharedBuffer(scratch.floats(perWorker * active))
    let xs = SharedBuffer(x), dys = SharedBuffer(dy), ps = SharedBuffer(parameters)
    let dxs = dx.map { SharedBuffer($0) }
    let wOff = weight.offset, accumulate = accumulateInputGradient
    // Disjoint writes: worker w writes its own partial and dT block; task t writes dX rows
    // [r0, r1) of its item.
    Parallel.forEachBlock(tasks: tasks, workers: workers) { worker, range in
      let partial = scratchBase + worker * perWorker
      let t = partial + partialFloats
      partial.update(repeating: 0, count: partialFloats)
      let db = partial + cin * m4
      for task in range {
        let item = task / chunks
        let r0 = (task % chunks) * rowsPer
        let r1 = min(s.h, r0 + rowsPer)
        let nc = (r1 - r0) * s.w
        // dT[(o, a, b), (r, x)] = dY[o, 2r + a, 2x + b]; db[o] += Σ dY.
        for oc in 0..<cout {
          let plane = dys.readOnly + (item * ostride + oc * o.plane)
          var sum: Float = 0
          for a in 0..<2 {
            let t0 = t + (oc * 4 + a * 2) * nc
            let t1 = t0 + nc
            for r in r0..<r1 {
              let src = plane + (2 * r + a) * o.w
              let d0 = t0 + (r - r0) * s.w
              let d1 = t1 + (r - r0) * s.w
              var rowSum: Float = 0
              for xx in 0..<s.w {
                let u = src[2 * xx], v = src[2 * xx + 1]
                d0[xx] = u
                d1[xx] = v
                rowSum += u + v
              }
              sum += rowSum
            }
          }
          db[oc] += sum
        }
        let xi = xs.readOnly + (item * s.item + r0 * s.w)
        // partial (C_in × 4C_out) += X_chunk (C_in × nc) · dTᵀ (nc × 4C_out)
        BLAS.sgemm(
          transA: false, transB: true, m: cin, n: m4, k: nc, alpha: 1,
          a: xi, lda: s.plane, b: UnsafePointer(t), ldb: nc, beta: 1, c: partial, ldc: m4)
        if let dxs {
          // dX_chunk (C_in × nc) = Wt (C_in × 4C_out) · dT (4C_out × nc)
          BLAS.sgemm(
            transA: false, transB: false, m: cin, n: nc, k: m4, alpha: 1,
            a: ps.readOnly + wOff, lda: m4, b: UnsafePointer(t), ldb: nc,
            beta: accumulate ? 1 : 0, c: dxs + (item * s.item + r0 * s.w), ldc: s.plane)
        }
      }
    }
    let gw = gradients + weight.offset
    let gb = gradients + bias.offset
    for w in 0..<active {
      let partial = scratchBase.readOnly + w * perWorker
      for j in 0..<(cin * m4) { gw[j] += partial[j] }
      for oc in 0..<cout { gb[oc] += partial[cin * m4 + oc] }
    }
  }

  // MARK: - Tensor API

  public func forward(_ x: Tensor, parameters: [Float], scratch: ScratchArena = ScratchArena()) -> Tensor {
    checkTensor(x, "TransposedConv2x2.forward")
    precondition(parameters.count >= bias.range.upperBound, "TransposedConv2x2: parameter buffer too short")
    var out = Tensor(shape: outputShape(for: x.shape))
    x.data.withUnsafeBufferPointer { xp in
      parameters.withUnsafeBufferPointer { pp in
        out.data.withUnsafeMutableBufferPointer { yp in
          forward(input: base(xp), shape: x.shape, output: base(yp), parameters: base(pp), scratch: scratch)
        }
      }
    }
    return out
  }

  /// Adds the parameter gradients into `gradients`; returns dL/dX.
  public func backward(
    input x: Tensor, outputGradient dy: Tensor, parameters: [Float], gradients: inout [Float],
    scratch: ScratchArena = ScratchArena()
  ) -> Tensor {
    checkTensor(x, "TransposedConv2x2.backward")
    checkTensor(dy, "TransposedConv2x2.backward")
    precondition(parameters.count >= bias.range.upperBound && gradients.count == parameters.count, "TransposedConv2x2.backward: parameter or gradient buffer of the wrong size")
    precondition(dy.shape == outputShape(for: x.shape), "TransposedConv2x2.backward: dY \(dy.shape) does not match \(outputShape(for: x.shape))")
    var dx = Tensor(shape: x.shape)
    x.data.withUnsafeBufferPointer { xp in
      dy.data.withUnsafeBufferPointer { gp in
        parameters.withUnsafeBufferPointer { pp in
          gradients.withUnsafeMutableBufferPointer { gr in
            dx.data.withUnsafeMutableBufferPointer { dp in
              backward(
                input: base(xp), inputShape: x.shape, outputGradient: base(gp), inputGradient: base(dp),
                parameters: base(pp), gradients: base(gr), scratch: scratch)
            }
          }
        }
      }
    }
    return dx
  }
}
