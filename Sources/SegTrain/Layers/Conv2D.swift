import SegCore

/// A k×k convolution with stride 1, zero padding, optional bias and an optional ReLU fused into
/// its output pass.
///
/// Layout: input X is N × C_in × H × W, output Y is N × C_out × Ho × Wo (NCHW) with
/// Ho = H + 2p − k + 1 and Wo = W + 2p − k + 1. The weight is C_out × C_in × k × k (PyTorch's
/// `Conv2d.weight` layout), the bias C_out. Forward:
///
///     Y[n, o, y, x] = b[o] + Σ_{c, ky, kx} Wt[o, c, ky, kx] · X[n, c, y + ky − p, x + kx − p]
///
/// (X is 0 outside the image), then Y ← max(Y, 0) when `fusedReLU` is set. `valid` padding is
/// p = 0 and `same` padding is p = (k − 1)/2.
///
/// Lowering: output rows are processed in chunks; each chunk is lowered by ``im2col`` into a
/// (C_in·k²) × (rows·Wo) matrix that fits a fixed per-worker budget (default 512 Ki floats =
/// 2 MiB, so it stays in cache) and multiplied by the C_out × C_in·k² weight matrix with one
/// `sgemm`; bias and ReLU are applied to the chunk while it is still in cache. Chunks are
/// independent, so workers take them in parallel (disjoint output rows). Peak extra memory is
/// workers × budget, whatever the image size; a full im2col of a 572 × 572 input with 64
/// channels would need 750 MB. A 1×1 convolution without padding needs no lowering: the
/// input is already the matrix. A 3×3 convolution of one input channel (the first layer) runs
/// direct, vectorised kernels instead (a GEMM 9 deep would spend its time packing).
///
/// Backward (``backward(input:inputShape:output:outputGradient:outputItemStride:outputGradientIsMasked:inputGradient:maskInputGradient:inputBiasGradient:parameters:gradients:scratch:)``):
/// the ReLU mask is applied to dY in place and db summed, in one pass (or skipped, when the
/// layer after already did it: see `maskInputGradient`). Then per chunk of *input* rows, dY
/// is lowered once with padding k − 1 − p, col(dY)[(o, ky', kx'), q] = dY[o, q + (ky', kx') −
/// (k − 1 − p)], and used twice while in cache:
///
///     dX_chunk = Wflip · col(dY)_chunk         Wflip[c, (o, ky', kx')] = Wt[o, c, k−1−ky', k−1−kx']
///     Gᵀ      += X_chunk · col(dY)_chunkᵀ      dWt[o, c, ky, kx] = Gᵀ[c, (o, k−1−ky, k−1−kx)]
///
/// The input gradient is the "full" convolution of dY with the flipped, transposed kernel, so
/// every dX row has one writer (no scatter, no atomics), and X needs no lowering at all. Each
/// worker sums Gᵀ into its own partial; partials are added in worker order, so the result is
/// reproducible for a given thread count.
public struct Conv2D: Sendable {
  public let inChannels: Int
  public let outChannels: Int
  /// k (odd), the kernel's height and width.
  public let kernelSize: Int
  /// Zero padding p on every side, 0 ≤ p < k.
  public let padding: Int
  /// C_out × C_in × k × k.
  public let weight: ParameterView
  /// C_out, or nil for a convolution without bias (before batch norm).
  public let bias: ParameterView?
  /// Whether Y ← max(Y, 0) is applied in the output pass.
  public let fusedReLU: Bool

  /// Floats of lowered input per worker and chunk (see the type's discussion): 512 Ki unless
  /// overridden for the current task by ``withColumnBudget(_:_:)``.
  public static var columnBudget: Int { columnBudgetOverride ?? 512 * 1024 }
  @TaskLocal static var columnBudgetOverride: Int?

  /// Runs `body` with another lowering budget (floats, at least 1024) for the calling task, for
  /// tests and tuning; it changes speed, peak memory and rounding, never results otherwise.
  public static func withColumnBudget<R>(_ floats: Int, _ body: () throws -> R) rethrows -> R {
    try $columnBudgetOverride.withValue(max(1024, floats)) { try body() }
  }

  /// A convolution whose weight and bias are the next views of `allocator`, named
  /// `name.weight` and `name.bias`.
  ///
  /// - Parameters:
  ///   - inChannels, outChannels: at least 1.
  ///   - kernelSize: odd, at least 1.
  ///   - padding: 0 ≤ padding < kernelSize.
  public init(
    _ name: String, inChannels: Int, outChannels: Int, kernelSize: Int = 3, padding: Int,
    bias: Bool = true, fusedReLU: Bool = false, allocator: inout ParameterAllocator
  ) {
    precondition(inChannels >= 1 && outChannels >= 1, "Conv2D \(name): channels must be ≥ 1")
    precondition(kernelSize >= 1 && kernelSize % 2 == 1, "Conv2D \(name): kernel size must be odd")
    precondition(padding >= 0 && padding < kernelSize, "Conv2D \(name): padding must be in 0..<k")
    self.inChannels = inChannels
    self.outChannels = outChannels
    self.kernelSize = kernelSize
    self.padding = padding
    self.fusedReLU = fusedReLU
    weight = allocator.allocate(name + ".weight", shape: [outChannels, inChannels, kernelSize, kernelSize])
    self.bias = bias ? allocator.allocate(name + ".bias", shape: [outChannels]) : nil
  }

  /// C_in·k², the rows of the lowered input (and the weight matrix's columns).
  var patch: Int { inChannels * kernelSize * kernelSize }

  /// The output shape for an input shape (N × C_out × Ho × Wo).
  public func outputShape(for s: TensorShape) -> TensorShape {
    precondition(s.c == inChannels, "Conv2D: input has \(s.c) channels, expected \(inChannels)")
    let ho = s.h + 2 * padding - kernelSize + 1
    let wo = s.w + 2 * padding - kernelSize + 1
    precondition(ho >= 1 && wo >= 1, "Conv2D: input \(s.h)×\(s.w) too small for a \(kernelSize)×\(kernelSize) kernel with padding \(padding)")
    return TensorShape(n: s.n, c: outChannels, h: ho, w: wo)
  }

  /// Multiply–accumulates of one forward pass over an input shape.
  public func multiplyAccumulates(for s: TensorShape) -> Int {
    let o = outputShape(for: s)
    return o.count * patch
  }

  /// Whether this convolution can use its input as the GEMM operand directly (1×1, p = 0).
  private var isPointwise: Bool { kernelSize == 1 && padding == 0 }

  /// Rows per chunk so that a chunk's lowered matrix (`rowsOfK` × rows·width floats) fits
  /// the budget, with chunk counts that keep `workers` busy and chunks near-equal.
  ///
  /// `minimumColumns`: a chunk gets at least this many columns (pixels) when the image has
  /// them, even beyond the budget (up to 4 Mi floats of lowered input per worker). The
  /// backward pass asks for 8·C_in: its per-worker weight-gradient partial is C_in × C_out·k²
  /// and is read and written once per chunk, which in the deep levels (few pixels, many
  /// channels) would cost more than the products themselves with small chunks.
  static func chunking(
    rows: Int, width: Int, rowsOfK: Int, items: Int, workers: Int, lowered: Bool, minimumColumns: Int = 0
  ) -> (rowsPerChunk: Int, chunks: Int) {
    var byBudget = lowered ? max(1, columnBudget / max(1, rowsOfK * width)) : rows
    if minimumColumns > 0 {
      let wanted = (minimumColumns + width - 1) / width
      let cap = max(1, (4 << 20) / max(1, rowsOfK * width))
      byBudget = max(byBudget, min(wanted, cap))
    }
    var chunks = (rows + byBudget - 1) / byBudget
    if workers > 1 {
      // Enough tasks for every worker, counting the batch; a multiple of the worker count
      // when there are few, so the last round is not half empty.
      let perItem = (workers + items - 1) / items
      chunks = max(chunks, perItem)
      if chunks * items < 4 * workers {
        let total = ((chunks * items + workers - 1) / workers) * workers
        chunks = max(chunks, (total + items - 1) / items)
      }
    }
    chunks = min(chunks, rows)
    let per = (rows + chunks - 1) / chunks
    return (per, (rows + per - 1) / per)
  }

  // MARK: - Forward

  /// Forward pass on raw NCHW buffers.
  ///
  /// - Parameters:
  ///   - x: input, `s.n` items of C_in × H × W, item `i` at `x + i·s.item`.
  ///   - y: output, item `i` at `y + i·outputItemStride` (≥ C_out·Ho·Wo; larger when the
  ///     output is a channel block of a wider tensor, e.g. a concatenation).
  ///   - parameters: the flat parameter buffer.
  func forward(
    input x: UnsafePointer<Float>, shape s: TensorShape, output y: UnsafeMutablePointer<Float>,
    outputItemStride: Int? = nil, parameters: UnsafePointer<Float>, scratch: ScratchArena
  ) {
    let t0 = StepProfile.begin()
    defer { StepProfile.end(t0, "\(profileName(s)) forward") }
    let o = outputShape(for: s)
    let ostride = outputItemStride ?? o.item
    precondition(ostride >= o.item, "Conv2D: output item stride \(ostride) < \(o.item)")
    if inChannels == 1 && kernelSize == 3 {
      forwardSingleChannel(input: x, shape: s, output: y, outputItemStride: ostride, parameters: parameters, scratch: scratch)
      return
    }
    let k = kernelSize, p = padding, cin = inChannels, cout = outChannels, kk = patch
    let workers = ComputeThreads.count
    let lowered = !isPointwise
    let plan = Self.chunking(rows: o.h, width: o.w, rowsOfK: kk, items: s.n, workers: workers, lowered: lowered)
    let colFloats = lowered ? kk * plan.rowsPerChunk * o.w : 0
    let scratchBase = SharedBuffer(scratch.floats(colFloats * min(workers, s.n * plan.chunks)))
    let xs = SharedBuffer(x), ys = SharedBuffer(y), ps = SharedBuffer(parameters)
    let wOff = weight.offset, bOff = bias?.offset, relu = fusedReLU
    // Each task writes output rows [y0, y1) of one item: disjoint ranges of `ys`.
    Parallel.forEach(tasks: s.n * plan.chunks, workers: workers) { worker, task in
      let item = task / plan.chunks
      let y0 = (task % plan.chunks) * plan.rowsPerChunk
      let y1 = min(o.h, y0 + plan.rowsPerChunk)
      let nc = (y1 - y0) * o.w
      let xi = xs.readOnly + item * s.item
      let b: UnsafePointer<Float>
      let ldb: Int
      if lowered {
        let col = scratchBase + worker * colFloats
        im2col(xi, channels: cin, height: s.h, width: s.w, kernel: k, padding: p, outputWidth: o.w, rows: y0..<y1, into: col)
        b = UnsafePointer(col)
        ldb = nc
      } else {
        b = xi + y0 * s.w
        ldb = s.plane
      }
      let c = ys + (item * ostride + y0 * o.w)
      BLAS.sgemm(
        transA: false, transB: false, m: cout, n: nc, k: kk, alpha: 1,
        a: ps.readOnly + wOff, lda: kk, b: b, ldb: ldb, beta: 0, c: c, ldc: o.plane)
      applyBiasAndReLU(c, rows: cout, columns: nc, rowStride: o.plane, bias: bOff.map { ps.readOnly + $0 }, relu: relu)
    }
  }

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
            for c in 0..<cin {
              let sum = maskAndSum(dxChunk + c * s.plane, by: xChunk + c * s.plane, count: nc)
              if let sums { sums[worker * cin + c] += sum }
            }
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

  /// Backward of a 3×3 convolution with one input channel whose input needs no gradient (the
  /// U-Net's first layer): one pass over dY, Y and X computes the ReLU mask, db and dWt
  /// directly (nine dot products per output channel and row, vectorised over columns). The
  /// GEMM lowering would multiply matrices only 9 wide, far below OpenBLAS's efficient shapes.
  ///
  /// - Parameters:
  ///   - y: the output for the ReLU mask, or nil when dY is already masked (no mask applied).
  ///   - addBiasGradient: false when the layer after already added db.
  private func backwardSingleChannel(
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
  private func paddedSingleChannel(_ x: UnsafePointer<Float>, _ s: TensorShape, scratch: ScratchArena, reserve: Int) -> (UnsafePointer<Float>, Int) {
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
  private func forwardSingleChannel(
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
  private func backwardPointwise(
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
          let xChunk = xs.readOnly + (item * s.item + r0 * s.w)
          for c in 0..<cin {
            let sum = maskAndSum(dxChunk + c * s.plane, by: xChunk + c * s.plane, count: nc)
            if let sums { sums[task * cin + c] = sum }
          }
        }
      }
    }
    if let inputBiasGradient {
      for t in 0..<tasks {
        for c in 0..<cin { inputBiasGradient[c] += Float(inputSums[t * cin + c]) }
      }
    }
  }

  /// The profile key prefix, e.g. `conv3x3 16→16 @570`.
  func profileName(_ s: TensorShape) -> String {
    "conv\(kernelSize)x\(kernelSize) \(inChannels)→\(outChannels) @\(s.h)"
  }

  // MARK: - Tensor API

  private func checkParameters(_ count: Int) {
    precondition(count >= max(weight.range.upperBound, bias?.range.upperBound ?? 0), "Conv2D: parameter buffer of \(count) floats is too short for \(weight.name)")
  }

  /// Forward pass: Y for input X (N × C_in × H × W) with parameters from the flat buffer.
  public func forward(_ x: Tensor, parameters: [Float], scratch: ScratchArena = ScratchArena()) -> Tensor {
    checkTensor(x, "Conv2D.forward")
    checkParameters(parameters.count)
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

  /// Adds the parameter gradients into `gradients` without computing dL/dX (as for a network's
  /// first layer; a 3×3 convolution of one input channel then takes a direct path).
  public func addParameterGradients(
    input x: Tensor, output y: Tensor, outputGradient dy: Tensor, parameters: [Float],
    gradients: inout [Float], scratch: ScratchArena = ScratchArena()
  ) {
    checkTensor(x, "Conv2D.addParameterGradients")
    checkTensor(y, "Conv2D.addParameterGradients")
    checkTensor(dy, "Conv2D.addParameterGradients")
    checkParameters(parameters.count)
    precondition(gradients.count == parameters.count, "Conv2D.addParameterGradients: \(gradients.count) gradients for \(parameters.count) parameters")
    precondition(dy.shape == outputShape(for: x.shape) && y.shape == dy.shape, "Conv2D.addParameterGradients: shapes \(y.shape), \(dy.shape) do not match the output \(outputShape(for: x.shape))")
    var g = dy.data
    x.data.withUnsafeBufferPointer { xp in
      y.data.withUnsafeBufferPointer { yp in
        parameters.withUnsafeBufferPointer { pp in
          gradients.withUnsafeMutableBufferPointer { gp in
            g.withUnsafeMutableBufferPointer { dyp in
              backward(
                input: base(xp), inputShape: x.shape, output: base(yp), outputGradient: base(dyp),
                inputGradient: nil, parameters: base(pp), gradients: base(gp), scratch: scratch)
            }
          }
        }
      }
    }
  }

  /// Backward pass: adds the parameter gradients into `gradients` and returns dL/dX.
  ///
  /// - Parameters:
  ///   - x: the forward input; `y`: the forward output (used for the ReLU mask).
  ///   - dy: dL/dY (after the ReLU, as `y`).
  public func backward(
    input x: Tensor, output y: Tensor, outputGradient dy: Tensor, parameters: [Float],
    gradients: inout [Float], scratch: ScratchArena = ScratchArena()
  ) -> Tensor {
    checkTensor(x, "Conv2D.backward")
    checkTensor(y, "Conv2D.backward")
    checkTensor(dy, "Conv2D.backward")
    checkParameters(parameters.count)
    precondition(gradients.count == parameters.count, "Conv2D.backward: \(gradients.count) gradients for \(parameters.count) parameters")
    precondition(dy.shape == outputShape(for: x.shape) && y.shape == dy.shape, "Conv2D.backward: shapes \(y.shape), \(dy.shape) do not match the output \(outputShape(for: x.shape))")
    var g = dy.data
    var dx = Tensor(shape: x.shape)
    x.data.withUnsafeBufferPointer { xp in
      y.data.withUnsafeBufferPointer { yp in
        parameters.withUnsafeBufferPointer { pp in
          gradients.withUnsafeMutableBufferPointer { gp in
            g.withUnsafeMutableBufferPointer { dyp in
              dx.data.withUnsafeMutableBufferPointer { dxp in
                backward(
                  input: base(xp), inputShape: x.shape, output: base(yp),
                  outputGradient: base(dyp), inputGradient: base(dxp),
                  parameters: base(pp), gradients: base(gp), scratch: scratch)
              }
            }
          }
        }
      }
    }
    return dx
  }
}

/// Y[r, 0..<columns] ← max(Y + bias[r], 0) (or without the max, or without the bias), over
/// `rows` rows `rowStride` apart. One pass over a block that is still in cache.
@inline(__always)
func applyBiasAndReLU(
  _ c: UnsafeMutablePointer<Float>, rows: Int, columns: Int, rowStride: Int,
  bias: UnsafePointer<Float>?, relu: Bool
) {
  if bias == nil && !relu { return }
  for r in 0..<rows {
    let row = c + r * rowStride
    let b = bias?[r] ?? 0
    if relu {
      for j in 0..<columns {
        let v = row[j] + b
        row[j] = v > 0 ? v : 0
      }
    } else {
      for j in 0..<columns { row[j] += b }
    }
  }
}

/// dY[r, j] ← Y[r, j] > 0 ? dY[r, j] : 0: the ReLU backward, from the ReLU's output.
@inline(__always)
func applyReLUMask(
  _ g: UnsafeMutablePointer<Float>, output y: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int
) {
  for r in 0..<rows {
    let gr = g + r * rowStride
    let yr = y + r * rowStride
    for j in 0..<columns { gr[j] = yr[j] > 0 ? gr[j] : 0 }
  }
}

/// Σ p[0 ..< count], with eight float accumulators per block of 4096 and the blocks added in
/// Double (vectorisable, and accurate for long planes).
@inline(__always)
func sumOfElements(_ p: UnsafePointer<Float>, count: Int) -> Double {
  var total = 0.0
  var i = 0
  while i < count {
    let end = min(count, i + 4096)
    var acc = SIMD8<Float>(repeating: 0)
    while i + 8 <= end {
      acc += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
      i += 8
    }
    var tail: Float = 0
    while i < end {
      tail += p[i]
      i += 1
    }
    total += Double(acc.sum() + tail)
  }
  return total
}

/// Eight floats from `p` (any alignment).
@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
  UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

/// Stores eight floats at `p` (any alignment).
@inline(__always)
func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
  UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// g[i] ← y[i] > 0 ? g[i] : 0 for i < count, returning Σ g[i] after masking (the ReLU backward
/// and the bias gradient in one pass; sums as in ``sumOfElements(_:count:)``).
@inline(__always)
func maskAndSum(_ g: UnsafeMutablePointer<Float>, by y: UnsafePointer<Float>, count: Int) -> Double {
  var total = 0.0
  var i = 0
  while i < count {
    let end = min(count, i + 4096)
    var acc = SIMD8<Float>(repeating: 0)
    while i + 8 <= end {
      var v = load8(g + i)
      v.replace(with: 0, where: .!(load8(y + i) .> 0))
      store8(v, g + i)
      acc += v
      i += 8
    }
    var tail: Float = 0
    while i < end {
      let v = y[i] > 0 ? g[i] : 0
      g[i] = v
      tail += v
      i += 1
    }
    total += Double(acc.sum() + tail)
  }
  return total
}
