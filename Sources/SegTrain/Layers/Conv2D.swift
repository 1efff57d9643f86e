import Synchronization

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
/// input is already the matrix.
///
/// Backward (``backward(input:inputShape:output:outputGradient:outputItemStride:inputGradient:accumulateInputGradient:parameters:gradients:scratch:)``):
/// the ReLU mask is applied to dY in place, then per chunk of output rows
///
///     dWt += dY_chunk · col(X)_chunkᵀ        db += Σ_pixels dY_chunk
///
/// (each worker sums into its own partial; partials are added in worker order, so the result
/// is reproducible for a given thread count), and per chunk of *input* rows
///
///     dX_chunk = Wflip · col(dY)_chunk
///
/// where col(dY) lowers dY with padding k − 1 − p and Wflip[c, o, ky, kx] = Wt[o, c, k−1−ky,
/// k−1−kx]: the input gradient is the "full" convolution of dY with the flipped, transposed
/// kernel, so dX rows are written by exactly one worker (no scatter, no atomics).
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

  /// Floats of lowered input per worker and chunk (see the type's discussion). Exposed for
  /// benchmarks; changing it changes speed and peak memory, never results beyond rounding.
  public static var columnBudget: Int {
    get { columnBudgetStorage.load(ordering: .relaxed) }
    set { columnBudgetStorage.store(max(1024, newValue), ordering: .relaxed) }
  }
  private static let columnBudgetStorage = Atomic<Int>(512 * 1024)

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
  static func chunking(rows: Int, width: Int, rowsOfK: Int, items: Int, workers: Int, lowered: Bool)
    -> (rowsPerChunk: Int, chunks: Int)
  {
    let byBudget = lowered ? max(1, columnBudget / max(1, rowsOfK * width)) : rows
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
    let o = outputShape(for: s)
    let ostride = outputItemStride ?? o.item
    precondition(ostride >= o.item, "Conv2D: output item stride \(ostride) < \(o.item)")
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
  /// `inputGradient` is given, writes dL/dX there (or adds to it when
  /// `accumulateInputGradient`); pass nil for the first layer, whose input needs no gradient.
  ///
  /// - Parameters:
  ///   - x: the forward input.
  ///   - y: the forward output (after ReLU); read only when `fusedReLU` is set.
  ///   - dy: dL/dY, same layout as `y`. **Overwritten** with the gradient before the ReLU.
  func backward(
    input x: UnsafePointer<Float>, inputShape s: TensorShape, output y: UnsafePointer<Float>?,
    outputGradient dy: UnsafeMutablePointer<Float>, outputItemStride: Int? = nil,
    inputGradient dx: UnsafeMutablePointer<Float>?, accumulateInputGradient: Bool = false,
    parameters: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>, scratch: ScratchArena
  ) {
    let o = outputShape(for: s)
    let ostride = outputItemStride ?? o.item
    let k = kernelSize, p = padding, cin = inChannels, cout = outChannels, kk = patch
    let workers = ComputeThreads.count
    let lowered = !isPointwise
    precondition(!fusedReLU || y != nil, "Conv2D.backward: fused ReLU needs the forward output")

    // Phase 1: ReLU mask, weight and bias gradients, chunked over output rows. Each worker
    // owns a partial [dWt | db] of C_out × (C_in·k² + 1) floats; the lowered input gets one
    // extra row of ones so the same GEMM yields the bias gradient in the last column.
    let plan = Self.chunking(rows: o.h, width: o.w, rowsOfK: kk + 1, items: s.n, workers: workers, lowered: true)
    let tasks = s.n * plan.chunks
    let active = min(workers, tasks)
    let kb = kk + 1
    let partialFloats = cout * kb
    let colFloats = kb * plan.rowsPerChunk * o.w
    let perWorker = partialFloats + colFloats
    let base = SharedBuffer(scratch.floats(perWorker * active))
    let xs = SharedBuffer(x), dys = SharedBuffer(dy), ps = SharedBuffer(parameters)
    let ysr = y.map { SharedBuffer($0) }
    let relu = fusedReLU
    // Disjoint writes: task t masks rows [y0, y1) of dY for its item; worker w writes only its
    // own partial and lowered block.
    Parallel.forEachBlock(tasks: tasks, workers: workers) { worker, range in
      let partial = base + worker * perWorker
      let col = partial + partialFloats
      var first = true
      for task in range {
        let item = task / plan.chunks
        let y0 = (task % plan.chunks) * plan.rowsPerChunk
        let y1 = min(o.h, y0 + plan.rowsPerChunk)
        let nc = (y1 - y0) * o.w
        let g = dys + (item * ostride + y0 * o.w)
        if relu, let ysr {
          applyReLUMask(g, output: ysr.readOnly + (item * ostride + y0 * o.w), rows: cout, columns: nc, rowStride: o.plane)
        }
        let xi = xs.readOnly + item * s.item
        if lowered {
          im2col(xi, channels: cin, height: s.h, width: s.w, kernel: k, padding: p, outputWidth: o.w, rows: y0..<y1, into: col)
        } else {
          // 1×1: the input rows are the matrix; copy them so the ones row can follow.
          for c in 0..<cin { (col + c * nc).update(from: xi + c * s.plane + y0 * s.w, count: nc) }
        }
        (col + kk * nc).update(repeating: 1, count: nc)
        // partial (C_out × kb) (+)= dY_chunk (C_out × nc) · colᵀ (nc × kb)
        BLAS.sgemm(
          transA: false, transB: true, m: cout, n: kb, k: nc, alpha: 1,
          a: UnsafePointer(g), lda: o.plane, b: UnsafePointer(col), ldb: nc,
          beta: first ? 0 : 1, c: partial, ldc: kb)
        first = false
      }
    }
    // Reduce the partials in worker order into the gradient buffer.
    let gw = gradients + weight.offset
    let gb = bias.map { gradients + $0.offset }
    for w in 0..<active {
      let partial = base.readOnly + w * perWorker
      for o in 0..<cout {
        let src = partial + o * kb
        let dst = gw + o * kk
        for j in 0..<kk { dst[j] += src[j] }
        gb?[o] += src[kk]
      }
    }

    // Phase 2: input gradient, chunked over input rows.
    guard let dx else { return }
    if !lowered {
      // 1×1, p = 0: dX (C_in × HW) = Wtᵀ (C_in × C_out) · dY (C_out × HW), by pixel chunks.
      let xplan = Self.chunking(rows: s.h, width: s.w, rowsOfK: 1, items: s.n, workers: workers, lowered: false)
      let dxs = SharedBuffer(dx)
      let wOff = weight.offset
      let beta: Float = accumulateInputGradient ? 1 : 0
      // Disjoint writes: task t writes rows [r0, r1) of dX for its item.
      Parallel.forEach(tasks: s.n * xplan.chunks, workers: workers) { _, task in
        let item = task / xplan.chunks
        let r0 = (task % xplan.chunks) * xplan.rowsPerChunk
        let r1 = min(s.h, r0 + xplan.rowsPerChunk)
        BLAS.sgemm(
          transA: true, transB: false, m: cin, n: (r1 - r0) * s.w, k: cout, alpha: 1,
          a: ps.readOnly + wOff, lda: cin, b: dys.readOnly + (item * ostride + r0 * s.w), ldb: o.plane,
          beta: beta, c: dxs + (item * s.item + r0 * s.w), ldc: s.plane)
      }
      return
    }
    let kt = cout * k * k  // rows of the lowered dY
    let flipFloats = cin * kt
    let xplan = Self.chunking(rows: s.h, width: s.w, rowsOfK: kt, items: s.n, workers: workers, lowered: true)
    let xtasks = s.n * xplan.chunks
    let xcolFloats = kt * xplan.rowsPerChunk * s.w
    let region = scratch.floats(flipFloats + xcolFloats * min(workers, xtasks))
    // Wflip[c, (o, ky, kx)] = Wt[o, c, k−1−ky, k−1−kx]
    let wt = parameters + weight.offset
    for c in 0..<cin {
      for o in 0..<cout {
        for ky in 0..<k {
          for kx in 0..<k {
            region[c * kt + (o * k + ky) * k + kx] = wt[((o * cin + c) * k + (k - 1 - ky)) * k + (k - 1 - kx)]
          }
        }
      }
    }
    let flip = SharedBuffer(region)
    let dxs = SharedBuffer(dx)
    let pt = k - 1 - p
    let beta: Float = accumulateInputGradient ? 1 : 0
    // Disjoint writes: task t writes input-gradient rows [r0, r1) of its item; worker w uses
    // only its own lowered block.
    Parallel.forEach(tasks: xtasks, workers: workers) { worker, task in
      let item = task / xplan.chunks
      let r0 = (task % xplan.chunks) * xplan.rowsPerChunk
      let r1 = min(s.h, r0 + xplan.rowsPerChunk)
      let nc = (r1 - r0) * s.w
      let col = flip + (flipFloats + worker * xcolFloats)
      im2col(
        dys.readOnly + item * ostride, channels: cout, height: o.h, width: o.w, kernel: k, padding: pt,
        outputWidth: s.w, rows: r0..<r1, into: col)
      BLAS.sgemm(
        transA: false, transB: false, m: cin, n: nc, k: kt, alpha: 1,
        a: flip.readOnly, lda: kt, b: UnsafePointer(col), ldb: nc,
        beta: beta, c: dxs + (item * s.item + r0 * s.w), ldc: s.plane)
    }
  }

  // MARK: - Tensor API

  /// Forward pass: Y for input X (N × C_in × H × W) with parameters from the flat buffer.
  public func forward(_ x: Tensor, parameters: [Float], scratch: ScratchArena = ScratchArena()) -> Tensor {
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

  /// Backward pass: adds the parameter gradients into `gradients` and returns dL/dX.
  ///
  /// - Parameters:
  ///   - x: the forward input; `y`: the forward output (used for the ReLU mask).
  ///   - dy: dL/dY (after the ReLU, as `y`).
  public func backward(
    input x: Tensor, output y: Tensor, outputGradient dy: Tensor, parameters: [Float],
    gradients: inout [Float], scratch: ScratchArena = ScratchArena()
  ) -> Tensor {
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
