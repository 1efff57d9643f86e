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
  var isPointwise: Bool { kernelSize == 1 && padding == 0 }

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
    let winograd = usesWinograd(for: s, backward: false)
    if winograd || usesDirectKernels(for: s, backward: false) {
      forwardDirect(
        input: x, shape: s, output: y, outputItemStride: ostride, parameters: parameters, winograd: winograd,
        scratch: scratch)
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

  /// The profile key prefix, e.g. `conv3x3 16→16 @570`.
  func profileName(_ s: TensorShape) -> String {
    "conv\(kernelSize)x\(kernelSize) \(inChannels)→\(outChannels) @\(s.h)"
  }
}
