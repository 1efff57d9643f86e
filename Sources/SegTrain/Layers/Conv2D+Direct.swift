import SegCore

/// The paths that do not lower to a GEMM: the first layer (one input channel, direct
/// vectorised kernels) and 1×1 convolutions (the input is the GEMM operand itself).
extension Conv2D {
  /// Backward of a 3×3 convolution with one input channel whose input needs no gradient (the
  /// U-Net's first layer): one pass over dY, Y and X computes the ReLU mask, db and dWt
  /// directly (nine dot products per output channel and row, vectorised over columns). The
  /// GEMM lowering would multiply matrices only 9 wide, far below OpenBLAS's efficient shapes.
  ///
  /// - Parameters:
  ///   - y: the output for the ReLU mask, or nil when dY is already masked (no mask applied).
  ///   - addBiasGradient: false when the layer after already added db.
  func backwardSingleChannel(
    input x: UnsafePointer<Float>, inputShape s: TensorShape, output y: UnsafePointer<Float>?,
    outputGradient dy: UnsafeMutablePointer<Float>, outputItemStride ostride: Int, addBiasGradient: Bool,
    gradients: UnsafeMutablePointer<Float>, scratch: ScratchArena
  ) {
    let t0 = StepProfile.begin()
    defer { StepProfile.end(t0, "\(profileName(s)) backward") }
    let o = outputShape(for: s)
    let cout = outChannels, p = padding
    let workers = ComputeThreads.count
    let (padded, pw) = paddedSingleChannel(x, s, scratch: scratch, reserve: 0)
    let rows = s.n * o.h
    let tasks = min(rows, max(1, workers * 8))
    let active = min(workers, tasks)
    // Per worker: 10 Doubles per output channel (nine taps, then the bias).
    var partials = [Double](repeating: 0, count: active * cout * 10)
    let ph = s.h + 2 * p
    let ps = SharedBuffer(padded)
    let dys = SharedBuffer(dy)
    let ysr = fusedReLU ? y.map { SharedBuffer($0) } : nil
    partials.withUnsafeMutableBufferPointer { pb in
      guard let pbase = pb.baseAddress else { return }
      let part = SharedBuffer(pbase)
      // Disjoint writes: worker w writes only its own partial sums.
      Parallel.forEachBlock(tasks: tasks, workers: workers) { worker, range in
        let acc = part + worker * cout * 10
        let r0 = rows * range.lowerBound / tasks, r1 = rows * range.upperBound / tasks
        for r in r0..<r1 {
          let item = r / o.h, oy = r % o.h
          let src = ps.readOnly + item * ph * pw + oy * pw
          for co in 0..<cout {
            let off = item * ostride + co * o.plane + oy * o.w
            let g = dys.readOnly + off
            let yrow = ysr.map { $0.readOnly + off }
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>()
            var a3 = SIMD8<Float>(), a4 = SIMD8<Float>(), a5 = SIMD8<Float>()
            var a6 = SIMD8<Float>(), a7 = SIMD8<Float>(), a8 = SIMD8<Float>()
            var ab = SIMD8<Float>()
            var ox = 0
            while ox + 8 <= o.w {
              var gv = load8(g + ox)
              if let yrow { gv.replace(with: 0, where: .!(load8(yrow + ox) .> 0)) }
              let s0 = src + ox, s1 = s0 + pw, s2 = s1 + pw
              ab += gv
              a0 += gv * load8(s0); a1 += gv * load8(s0 + 1); a2 += gv * load8(s0 + 2)
              a3 += gv * load8(s1); a4 += gv * load8(s1 + 1); a5 += gv * load8(s1 + 2)
              a6 += gv * load8(s2); a7 += gv * load8(s2 + 1); a8 += gv * load8(s2 + 2)
              ox += 8
            }
            var t = [a0.sum(), a1.sum(), a2.sum(), a3.sum(), a4.sum(), a5.sum(), a6.sum(), a7.sum(), a8.sum(), ab.sum()]
            while ox < o.w {
              var gv = g[ox]
              if let yrow, !(yrow[ox] > 0) { gv = 0 }
              for ky in 0..<3 {
                for kx in 0..<3 { t[ky * 3 + kx] += gv * src[ky * pw + ox + kx] }
              }
              t[9] += gv
              ox += 1
            }
            for j in 0..<10 { acc[co * 10 + j] += Double(t[j]) }
          }
        }
      }
    }
    let gw = gradients + weight.offset
    let gb = addBiasGradient ? bias.map { gradients + $0.offset } : nil
    for w in 0..<active {
      for co in 0..<cout {
        for j in 0..<9 { gw[co * 9 + j] += Float(partials[(w * cout + co) * 10 + j]) }
        gb?[co] += Float(partials[(w * cout + co) * 10 + 9])
      }
    }
  }

  /// The single-channel input zero-padded by p on every side, items one after another, in
  /// scratch after `reserve` floats (or the input itself when p = 0), and its row width.
  func paddedSingleChannel(_ x: UnsafePointer<Float>, _ s: TensorShape, scratch: ScratchArena, reserve: Int) -> (UnsafePointer<Float>, Int) {
    let p = padding
    if p == 0 { return (x, s.w) }
    let pw = s.w + 2 * p, ph = s.h + 2 * p
    let buf = scratch.floats(reserve + s.n * ph * pw) + reserve
    buf.update(repeating: 0, count: s.n * ph * pw)
    for item in 0..<s.n {
      for r in 0..<s.h {
        (buf + item * ph * pw + (r + p) * pw + p).update(from: x + item * s.item + r * s.w, count: s.w)
      }
    }
    return (UnsafePointer(buf), pw)
  }

  /// Forward of a 3×3 convolution with one input channel: direct, vectorised over columns.
  func forwardSingleChannel(
    input x: UnsafePointer<Float>, shape s: TensorShape, output y: UnsafeMutablePointer<Float>,
    outputItemStride ostride: Int, parameters: UnsafePointer<Float>, scratch: ScratchArena
  ) {
    let o = outputShape(for: s)
    let cout = outChannels, p = padding
    let (padded, pw) = paddedSingleChannel(x, s, scratch: scratch, reserve: 0)
    let ph = s.h + 2 * p
    let ps = SharedBuffer(padded), ys = SharedBuffer(y), par = SharedBuffer(parameters)
    let wOff = weight.offset, bOff = bias?.offset, relu = fusedReLU
    let rows = s.n * o.h
    // Disjoint writes: task r writes output row r (item r / Ho) of every channel.
    Parallel.forEach(tasks: rows) { _, r in
      let item = r / o.h, oy = r % o.h
      let src = ps.readOnly + item * ph * pw + oy * pw
      for co in 0..<cout {
        let w = par.readOnly + wOff + co * 9
        let w0 = SIMD8<Float>(repeating: w[0]), w1 = SIMD8<Float>(repeating: w[1]), w2 = SIMD8<Float>(repeating: w[2])
        let w3 = SIMD8<Float>(repeating: w[3]), w4 = SIMD8<Float>(repeating: w[4]), w5 = SIMD8<Float>(repeating: w[5])
        let w6 = SIMD8<Float>(repeating: w[6]), w7 = SIMD8<Float>(repeating: w[7]), w8 = SIMD8<Float>(repeating: w[8])
        let b = bOff.map { par[$0 + co] } ?? 0
        let dst = ys + (item * ostride + co * o.plane + oy * o.w)
        var ox = 0
        while ox + 8 <= o.w {
          let s0 = src + ox, s1 = s0 + pw, s2 = s1 + pw
          var acc = SIMD8<Float>(repeating: b)
          acc += w0 * load8(s0); acc += w1 * load8(s0 + 1); acc += w2 * load8(s0 + 2)
          acc += w3 * load8(s1); acc += w4 * load8(s1 + 1); acc += w5 * load8(s1 + 2)
          acc += w6 * load8(s2); acc += w7 * load8(s2 + 1); acc += w8 * load8(s2 + 2)
          if relu { acc.replace(with: 0, where: .!(acc .> 0)) }
          store8(acc, dst + ox)
          ox += 8
        }
        while ox < o.w {
          var v = b
          for ky in 0..<3 {
            for kx in 0..<3 { v += w[ky * 3 + kx] * src[ky * pw + ox + kx] }
          }
          dst[ox] = relu ? (v > 0 ? v : 0) : v
          ox += 1
        }
      }
    }
  }

  /// Backward of a 1×1 convolution without padding: the input is the GEMM operand itself.
  func backwardPointwise(
    input x: UnsafePointer<Float>, inputShape s: TensorShape, output y: UnsafePointer<Float>?,
    outputGradient dy: UnsafeMutablePointer<Float>, outputItemStride ostride: Int, outputGradientIsMasked: Bool,
    inputGradient dx: UnsafeMutablePointer<Float>?, accumulateInputGradient: Bool,
    maskInputGradient: Bool, inputBiasGradient: UnsafeMutablePointer<Float>?,
    parameters: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>, scratch: ScratchArena
  ) {
    let t0 = StepProfile.begin()
    defer { StepProfile.end(t0, "\(profileName(s)) backward") }
    let cin = inChannels, cout = outChannels
    let workers = ComputeThreads.count
    // Phase 1: ReLU mask, weight and bias gradients by pixel chunks. Each worker owns a partial
    // [dWt | db] of C_out × (C_in + 1) floats; its copy of the input chunk gets one extra row of
    // ones so the same GEMM yields the bias gradient in the last column.
    let kb = cin + 1
    let plan = Self.chunking(rows: s.h, width: s.w, rowsOfK: kb, items: s.n, workers: workers, lowered: true)
    let tasks = s.n * plan.chunks
    let active = min(workers, tasks)
    let partialFloats = cout * kb
    let colFloats = kb * plan.rowsPerChunk * s.w
    let perWorker = partialFloats + colFloats
    let base = SharedBuffer(scratch.floats(perWorker * active))
    let xs = SharedBuffer(x), dys = SharedBuffer(dy), ps = SharedBuffer(parameters)
    let ysr = y.map { SharedBuffer($0) }
    let relu = fusedReLU && !outputGradientIsMasked
    // Disjoint writes: task t masks rows [r0, r1) of dY for its item; worker w writes only its
    // own partial and input copy.
    Parallel.forEachBlock(tasks: tasks, workers: workers) { worker, range in
      let partial = base + worker * perWorker
      let col = partial + partialFloats
      var first = true
      for task in range {
        let item = task / plan.chunks
        let r0 = (task % plan.chunks) * plan.rowsPerChunk
        let r1 = min(s.h, r0 + plan.rowsPerChunk)
        let nc = (r1 - r0) * s.w
        let g = dys + (item * ostride + r0 * s.w)
        if relu, let ysr {
          applyReLUMask(g, output: ysr.readOnly + (item * ostride + r0 * s.w), rows: cout, columns: nc, rowStride: s.plane)
        }
        let xi = xs.readOnly + item * s.item
        for c in 0..<cin { (col + c * nc).update(from: xi + c * s.plane + r0 * s.w, count: nc) }
        (col + cin * nc).update(repeating: 1, count: nc)
        BLAS.sgemm(
          transA: false, transB: true, m: cout, n: kb, k: nc, alpha: 1,
          a: UnsafePointer(g), lda: s.plane, b: UnsafePointer(col), ldb: nc,
          beta: first ? 0 : 1, c: partial, ldc: kb)
        first = false
      }
    }
    let gw = gradients + weight.offset
    let gb = bias.map { gradients + $0.offset }
    for w in 0..<active {
      let partial = base.readOnly + w * perWorker
      for o in 0..<cout {
        let src = partial + o * kb
        let dst = gw + o * cin
        for j in 0..<cin { dst[j] += src[j] }
        gb?[o] += src[cin]
      }
    }
    // Phase 2: dX (C_in × HW) = Wtᵀ (C_in × C_out) · dY (C_out × HW), by pixel chunks.
    guard let dx else { return }
    let dxs = SharedBuffer(dx)
    let wOff = weight.offset
    let mask = maskInputGradient, accumulate = accumulateInputGradient
    var inputSums = [Double](repeating: 0, count: inputBiasGradient == nil ? 0 : cin * tasks)
    inputSums.withUnsafeMutableBufferPointer { sumsBuffer in
      let sums = sumsBuffer.baseAddress.map { SharedBuffer($0) }
      // Disjoint writes: task t writes rows [r0, r1) of dX for its item and its own input sums.
      Parallel.forEach(tasks: tasks, workers: workers) { _, task in
        let item = task / plan.chunks
        let r0 = (task % plan.chunks) * plan.rowsPerChunk
        let r1 = min(s.h, r0 + plan.rowsPerChunk)
        let nc = (r1 - r0) * s.w
        let dxChunk = dxs + (item * s.item + r0 * s.w)
        BLAS.sgemm(
          transA: true, transB: false, m: cin, n: nc, k: cout, alpha: 1,
          a: ps.readOnly + wOff, lda: cin, b: dys.readOnly + (item * ostride + r0 * s.w), ldb: s.plane,
          beta: accumulate ? 1 : 0, c: dxChunk, ldc: s.plane)
        if mask {
          Self.maskInputGradient(
            dxChunk, by: xs.readOnly + (item * s.item + r0 * s.w), channels: cin, plane: s.plane, count: nc,
            addingSumsTo: sums.map { $0 + task * cin })
        }
      }
    }
    if let inputBiasGradient {
      for t in 0..<tasks {
        for c in 0..<cin { inputBiasGradient[c] += Float(inputSums[t * cin + c]) }
      }
    }
  }
}
