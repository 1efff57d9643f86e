import SegCore

extension Conv2D {
  // MARK: - Backward

  /// Backward pass on raw NCHW buffers.
  ///
  /// Adds dL/dWt and dL/db into `gradients` (at the weight's and bias's offsets). When
  /// `inputGradient` is given, writes dL/dX there (overwriting it, or adding to it with
  /// `accumulateInputGradient`); pass nil for the first layer, whose input needs no gradient.
  ///
  /// Fusion with the neighbouring ReLUs (so no layer needs a separate pass over its gradient):
  /// with `maskInputGradient`, X is the output of a ReLU and dX ← dX·[X > 0] is applied to each
  /// chunk while it is in cache, and `inputBiasGradient` (the bias gradient of the layer that
  /// produced X) gets Σ dX per channel; that layer's backward then runs with
  /// `outputGradientIsMasked` and skips its own mask and bias passes.
  ///
  /// - Parameters:
  ///   - x: the forward input.
  ///   - y: the forward output (after ReLU); read only when `fusedReLU` is set.
  ///   - dy: dL/dY, same layout as `y`. **Overwritten** with the gradient before the ReLU.
  func backward(
    input x: UnsafePointer<Float>, inputShape s: TensorShape, output y: UnsafePointer<Float>?,
    outputGradient dy: UnsafeMutablePointer<Float>, outputItemStride: Int? = nil,
    outputGradientIsMasked: Bool = false,
    inputGradient dx: UnsafeMutablePointer<Float>?, accumulateInputGradient: Bool = false,
    maskInputGradient: Bool = false, inputBiasGradient: UnsafeMutablePointer<Float>? = nil,
    parameters: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>, scratch: ScratchArena
  ) {
    precondition(!fusedReLU || y != nil || outputGradientIsMasked, "Conv2D.backward: fused ReLU needs the forward output")
    precondition(inputBiasGradient == nil || maskInputGradient, "Conv2D.backward: input bias gradients need a masked input gradient")
    let o = outputShape(for: s)
    let ostride = outputItemStride ?? o.item
    if isPointwise {
      precondition(!outputGradientIsMasked, "Conv2D.backward: a 1×1 convolution computes its own bias gradient")
      backwardPointwise(
        input: x, inputShape: s, output: y, outputGradient: dy, outputItemStride: ostride,
        outputGradientIsMasked: outputGradientIsMasked, inputGradient: dx, accumulateInputGradient: accumulateInputGradient,
        maskInputGradient: maskInputGradient,
        inputBiasGradient: inputBiasGradient, parameters: parameters, gradients: gradients, scratch: scratch)
      return
    }
    if inChannels == 1 && kernelSize == 3 && dx == nil {
      backwardSingleChannel(
        input: x, inputShape: s, output: outputGradientIsMasked ? nil : y, outputGradient: dy, outputItemStride: ostride,
        addBiasGradient: !outputGradientIsMasked, gradients: gradients, scratch: scratch)
      return
    }
    let k = kernelSize, cin = inChannels, cout = outChannels
    let workers = ComputeThreads.count

    // Phase 1: the ReLU mask on dY (in place) and db, one output channel per task, one pass.
    var t0 = StepProfile.begin()
    let dys = SharedBuffer(dy)
    if !outputGradientIsMasked && (fusedReLU || bias != nil) {
      let ysr = fusedReLU ? y.map { SharedBuffer($0) } : nil
      let gb = bias.map { SharedBuffer(gradients + $0.offset) }
      // Disjoint writes: task c writes channel c of dY (every item) and gradient entry c of db.
      Parallel.forEach(tasks: cout, workers: workers) { _, c in
        var sum = 0.0
        for item in 0..<s.n {
          let g = dys + (item * ostride + c * o.plane)
          if let ysr {
            sum += maskAndSum(g, by: ysr.readOnly + (item * ostride + c * o.plane), count: o.plane)
          } else {
            sum += sumOfElements(UnsafePointer(g), count: o.plane)
          }
        }
        if let gb { gb[c] += Float(sum) }
      }
      StepProfile.end(t0, "\(profileName(s)) backward-mask")
    }

    // Phase 2: chunks of input rows. Each chunk lowers dY with padding k − 1 − p into
    // col (C_out·k² rows (o, ky', kx'), col[(o, ky', kx'), q] = dY[o, q + (ky', kx') − (k−1−p)]),
    // then
    //   dX_chunk = Wflip · col               Wflip[c, (o, ky', kx')] = Wt[o, c, k−1−ky', k−1−kx']
    //   Gᵀ     += X_chunk · colᵀ             Gᵀ[c, (o, ky', kx')] = dWt[o, c, k−1−ky', k−1−kx']
    // The same lowered block serves both products while it is in cache, and X needs no lowering.
    t0 = StepProfile.begin()
    let winograd = usesWinograd(for: s, backward: true)
    if winograd || usesDirectKernels(for: s, backward: true) {
      backwardDirect(
        input: x, inputShape: s, outputGradient: dy, outputItemStride: ostride, inputGradient: dx,
        accumulateInputGradient: accumulateInputGradient, maskInputGradient: maskInputGradient,
        inputBiasGradient: inputBiasGradient, parameters: parameters, gradients: gradients,
        winograd: winograd, scratch: scratch)
      StepProfile.end(t0, "\(profileName(s)) backward")
      return
    }
    let kt = cout * k * k
    let flipFloats = dx == nil ? 0 : cin * kt
    let plan = Self.chunking(rows: s.h, width: s.w, rowsOfK: kt, items: s.n, workers: workers, lowered: true, minimumColumns: 8 * cin)
    let tasks = s.n * plan.chunks
    let active = min(workers, tasks)
    let colFloats = kt * plan.rowsPerChunk * s.w
    let partialFloats = cin * kt
    let perWorker = colFloats + partialFloats
    let region = scratch.floats(flipFloats + perWorker * active)
    let shared = SharedBuffer(region)
    if dx != nil {
      let wt = SharedBuffer(parameters + weight.offset)
      // Disjoint writes: task c writes row c of Wflip.
      Parallel.forEach(tasks: cin, workers: workers) { _, c in
        let row = shared + c * kt
        for o in 0..<cout {
          for ky in 0..<k {
            for kx in 0..<k {
              row[(o * k + ky) * k + kx] = wt[((o * cin + c) * k + (k - 1 - ky)) * k + (k - 1 - kx)]
            }
          }
        }
      }
    }
    let xs = SharedBuffer(x)
    let dxs = dx.map { SharedBuffer($0) }
    let pt = k - 1 - padding
    let mask = maskInputGradient, accumulate = accumulateInputGradient
    var inputSums = [Double](repeating: 0, count: inputBiasGradient == nil ? 0 : cin * active)
    inputSums.withUnsafeMutableBufferPointer { sumsBuffer in
      let sums = sumsBuffer.baseAddress.map { SharedBuffer($0) }
      // Disjoint writes: task t writes input-gradient rows [r0, r1) of its item; worker w
      // writes only its own lowered block, partial Gᵀ and input sums.
      Parallel.forEachBlock(tasks: tasks, workers: workers) { worker, range in
        let col = shared + (flipFloats + worker * perWorker)
        let partial = col + colFloats
        var first = true
        for task in range {
          let item = task / plan.chunks
          let r0 = (task % plan.chunks) * plan.rowsPerChunk
          let r1 = min(s.h, r0 + plan.rowsPerChunk)
          let nc = (r1 - r0) * s.w
          im2col(
            dys.readOnly + item * ostride, channels: cout, height: o.h, width: o.w, kernel: k, padding: pt,
            outputWidth: s.w, rows: r0..<r1, into: col)
          let xChunk = xs.readOnly + (item * s.item + r0 * s.w)
          BLAS.sgemm(
            transA: false, transB: true, m: cin, n: kt, k: nc, alpha: 1,
            a: xChunk, lda: s.plane, b: UnsafePointer(col), ldb: nc,
            beta: first ? 0 : 1, c: partial, ldc: kt)
          first = false
          guard let dxs else { continue }
          let dxChunk = dxs + (item * s.item + r0 * s.w)
          BLAS.sgemm(
            transA: false, transB: false, m: cin, n: nc, k: kt, alpha: 1,
            a: shared.readOnly, lda: kt, b: UnsafePointer(col), ldb: nc,
            beta: accumulate ? 1 : 0, c: dxChunk, ldc: s.plane)
          if mask {
            Self.maskInputGradient(dxChunk, by: xChunk, channels: cin, plane: s.plane, count: nc, addingSumsTo: sums.map { $0 + worker * cin })
          }
        }
      }
    }
    // dWt[o, c, ky, kx] += Σ_workers Gᵀ[c, (o, k−1−ky, k−1−kx)]: the partials summed in worker
    // order, then added with the index permutation; parallel over input channels c.
    let gw = SharedBuffer(gradients + weight.offset)
    let partialBase = flipFloats + colFloats
    // Disjoint writes: task c writes row c of worker 0's partial and dWt[·, c, ·, ·].
    Parallel.forEach(tasks: cin, workers: workers) { _, c in
      let row = shared + (partialBase + c * kt)
      for w in 1..<max(1, active) {
        let other = shared.readOnly + (partialBase + w * perWorker + c * kt)
        for j in 0..<kt { row[j] += other[j] }
      }
      for o in 0..<cout {
        let dst = gw + (o * cin + c) * k * k
        let src = row + o * k * k
        for t in 0..<(k * k) { dst[t] += src[k * k - 1 - t] }
      }
    }
    if let inputBiasGradient {
      for w in 0..<active {
        for c in 0..<cin { inputBiasGradient[c] += Float(inputSums[w * cin + c]) }
      }
    }
    StepProfile.end(t0, "\(profileName(s)) backward")
  }

  /// The input-gradient fusion of one chunk: dX ← dX·[X > 0] over `channels` planes (`plane`
  /// floats apart) of `count` elements, adding each channel's Σ dX (after masking) to `sums[c]`
  /// when given. Shared by the GEMM, direct and 1×1 backward passes.
  static func maskInputGradient(
    _ dx: UnsafeMutablePointer<Float>, by x: UnsafePointer<Float>, channels: Int, plane: Int, count: Int,
    addingSumsTo sums: UnsafeMutablePointer<Double>?
  ) {
    for c in 0..<channels {
      let sum = maskAndSum(dx + c * plane, by: x + c * plane, count: count)
      sums?[c] += sum
    }
  }
}
