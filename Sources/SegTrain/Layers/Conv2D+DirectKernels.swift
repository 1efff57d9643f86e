import CConvKernels
import Foundation
import SegCore
import Synchronization

/// Which implementation the multi-channel 3×3 convolutions use: the im2col + sgemm lowering,
/// or CConvKernels' direct kernels (register-blocked over 4 or 8 output channels × 24–32
/// pixels, reading the zero-padded input band in place, so nothing is lowered per call).
///
/// Measured per layer (README, "Direct 3×3 kernels"), the direct kernels beat the GEMM
/// lowering most where the GEMM has its worst shape: few channels over many pixels. The set
/// is a process-wide choice (``set(_:)``; `UNET_CONV_KERNELS=gemm|avx2|avx512` in the
/// environment at start-up), never a timing decision at run time: results must not depend on
/// how fast the machine happened to be.
public enum ConvKernels: Int, Sendable, CaseIterable, CustomStringConvertible {
  /// im2col + OpenBLAS sgemm for every convolution.
  case gemm = 0
  /// Direct kernels with AVX2 + FMA (8 floats per vector).
  case avx2 = 1
  /// Direct kernels with AVX-512F (16 floats per vector).
  case avx512 = 2

  /// The best set this CPU runs (``gemm`` off x86-64).
  public static let best = ConvKernels(rawValue: Int(CConv_best_isa())) ?? .gemm

  private static let storage = Atomic<Int>(initial())
  @TaskLocal static var override: ConvKernels?
  @TaskLocal static var everyShape = false

  /// The set in use: the innermost ``with(_:_:)`` of the current task, else ``set(_:)``'s,
  /// else `UNET_CONV_KERNELS`, else ``best``. Never better than ``best``.
  public static var current: ConvKernels {
    let chosen = override ?? ConvKernels(rawValue: storage.load(ordering: .relaxed)) ?? .gemm
    return chosen.rawValue <= best.rawValue ? chosen : best
  }

  /// Sets the process-wide choice (clamped to what the CPU runs).
  public static func set(_ kernels: ConvKernels) { storage.store(kernels.rawValue, ordering: .relaxed) }

  /// Runs `body` with `kernels` (clamped to ``best``) for the calling task only: for tests
  /// that compare the paths, and for benchmarks. With `everyShape`, every multi-channel 3×3
  /// convolution takes the direct kernels, not only the shapes where they measured faster
  /// (see `Conv2D.usesDirectKernels(for:backward:)`), so tests reach every vector tail.
  /// `winograd` (nil: keep the current choice) switches Winograd F(2×2, 3×3) on or off the
  /// same way (``winograd``).
  public static func with<R>(
    _ kernels: ConvKernels, everyShape: Bool = false, winograd: Bool? = nil, _ body: () throws -> R
  ) rethrows -> R {
    try $override.withValue(kernels) {
      try $everyShape.withValue(everyShape) {
        try $winogradOverride.withValue(winograd ?? $winogradOverride.get()) { try body() }
      }
    }
  }

  /// The name as `UNET_CONV_KERNELS` spells it.
  public var description: String {
    switch self {
    case .gemm: "gemm"
    case .avx2: "avx2"
    case .avx512: "avx512"
    }
  }

  /// `UNET_CONV_KERNELS` if set, else ``best``; an unknown name is said on stderr (once, at
  /// first use) and ``best`` used.
  private static func initial() -> Int {
    guard let raw = getenv("UNET_CONV_KERNELS") else { return best.rawValue }
    let name = String(cString: raw).lowercased()
    if let known = allCases.first(where: { $0.description == name }) { return known.rawValue }
    let names = allCases.map(\.description).joined(separator: ", ")
    FileHandle.standardError.write(Data("unet: UNET_CONV_KERNELS=\(name) is not one of \(names); using \(best)\n".utf8))
    return best.rawValue
  }
}

extension Conv2D {
  /// Whether this convolution takes the direct kernels for input shape `s` under the current
  /// ``ConvKernels``. Single-channel 3×3 layers keep their own kernels (Conv2D+Direct.swift),
  /// other kernel sizes the lowering. Among the rest, the rule is what per-layer profiles of
  /// the U-Net step measured (README, "Direct 3×3 kernels"). AVX2 (a Zen 2 core): the direct
  /// forward wins from 64 output columns on and loses below (the deep levels, many channels
  /// over few pixels, where the GEMM has a good shape); the direct backward wins from 64
  /// columns on and at up to 64 input channels. AVX-512 (a Xeon, 8 outputs × 32 pixels per
  /// block): the forward won from 32 columns on (128→128 @32: 3.0 against 5.3 ms) and lost
  /// only at 16 (256→256); its backward follows the AVX2 rule.
  func usesDirectKernels(for s: TensorShape, backward: Bool) -> Bool {
    let kernels = ConvKernels.current
    guard kernelSize == 3 && inChannels > 1 && kernels != .gemm else { return false }
    if ConvKernels.everyShape { return true }
    let width = s.w + 2 * padding - 2
    if backward { return width >= 64 || inChannels <= 64 }
    return width >= (kernels == .avx512 ? 32 : 64)
  }

  /// Rows per band for `channels` planes of `row` floats within `budget` floats, and bands per
  /// item, for `rows` output rows over `items` items and the current workers. The band is read
  /// once per block of 8 (AVX-512) or 4 (AVX2) output channels, so it should stay in L2: the
  /// forward's 64 Ki floats (256 KiB, half a Zen 2 core's L2) measured best; the backward's
  /// two bands are read by two kernels with a fixed cost per call, and 256 Ki floats did better.
  /// With `evenRows` (Winograd's 2 × 2 tiles), the rows per band are even.
  static func bandPlan(
    rows: Int, row: Int, channels: Int, items: Int, budget: Int, evenRows: Bool = false
  ) -> (rowsPerBand: Int, bands: Int) {
    let fit = max(1, budget / max(1, channels * row) - 2)
    let plan = chunking(
      rows: rows, width: 1, rowsOfK: 1, items: items, workers: ComputeThreads.count, lowered: false)
    // `chunking` with lowered: false only balances the workers; the budget caps the band.
    var per = min(plan.rowsPerChunk, fit)
    if evenRows && per < rows { per = max(2, per & ~1) }
    return (per, (rows + per - 1) / per)
  }

  /// Forward through the direct kernels (see ``forward(input:shape:output:outputItemStride:parameters:scratch:)``),
  /// or through Winograd F(2×2, 3×3) over the same bands when `winograd` (bands then start at
  /// even rows, so every output pixel falls in the same 2 × 2 tile for any thread count).
  func forwardDirect(
    input x: UnsafePointer<Float>, shape s: TensorShape, output y: UnsafeMutablePointer<Float>,
    outputItemStride ostride: Int, parameters: UnsafePointer<Float>, winograd: Bool, scratch: ScratchArena
  ) {
    let o = outputShape(for: s)
    let isa = Int32(ConvKernels.current.rawValue)
    let cin = inChannels, cout = outChannels, p = padding
    let row = Int(CConv_row_floats(Int32(o.w)))
    let plan = Self.bandPlan(rows: o.h, row: row, channels: cin, items: s.n, budget: 64 * 1024, evenRows: winograd)
    let tasks = s.n * plan.bands
    let workers = min(ComputeThreads.count, tasks)
    let packedFloats = winograd ? CConv_wino_packed_count(Int32(cout), Int32(cin)) : CConv_packed_count(isa, Int32(cout), Int32(cin))
    let bandRows = plan.rowsPerBand + (winograd ? 3 : 2)
    let perWorker = cin * bandRows * row + (winograd ? CConv_wino_scratch_count(Int32(cin), Int32(cout)) : 0)
    let region = scratch.floats(packedFloats + workers * perWorker)
    if winograd {
      CConv_wino_pack(parameters + weight.offset, Int32(cout), Int32(cin), 0, region)
    } else {
      CConv_pack(isa, parameters + weight.offset, Int32(cout), Int32(cin), 0, region)
    }
    let shared = SharedBuffer(region)
    let xs = SharedBuffer(x), ys = SharedBuffer(y)
    let bias = self.bias.map { SharedBuffer(parameters + $0.offset) }
    let relu: Int32 = fusedReLU ? 1 : 0
    // Disjoint writes: task t writes output rows [y0, y1) of its item; worker w its own band.
    Parallel.forEach(tasks: tasks, workers: workers) { worker, task in
      let item = task / plan.bands
      let y0 = (task % plan.bands) * plan.rowsPerBand
      let n = min(o.h, y0 + plan.rowsPerBand) - y0
      let band = shared + (packedFloats + worker * perWorker)
      let rows = n + 2 + (winograd ? n & 1 : 0)
      CConv_pad_band(
        xs.readOnly + item * s.item, Int32(cin), s.plane, Int32(s.h), Int32(s.w), Int32(p), Int32(y0), Int32(rows),
        band, Int32(row))
      let out = ys + (item * ostride + y0 * o.w)
      if winograd {
        CConv_wino_forward(
          isa, band, Int32(cin), Int32(row), Int32(rows), shared.readOnly, Int32(cout), bias?.readOnly, relu, 0,
          out, o.plane, Int32(o.w), Int32(n), band + cin * rows * row)
      } else {
        CConv_forward(
          isa, band, Int32(cin), Int32(row), shared.readOnly, Int32(cout), bias?.readOnly, relu, 0,
          out, o.plane, Int32(o.w), Int32(n))
      }
    }
  }

  /// Phase 2 of the backward pass through the direct kernels, after phase 1 has masked dY and
  /// summed db: per band of input rows [r0, r1), dY is zero-padded by 2 − p once and used
  /// twice while in cache,
  ///
  ///     dX[c, r, x]     = Σ_o,ky,kx Wt[o, c, 2−ky, 2−kx] · dYpad[o, r + ky, x + kx]
  ///     dWt[o, c, ky, kx] += Σ_(oy, ox) dY[o, oy, ox] · Xpad[c, oy + ky, ox + kx]
  ///
  /// the second over output rows [r0, min(r1, Ho)) (so every output row is counted once), into
  /// a per-worker partial that is added in worker order. With `winograd`, dX is Winograd
  /// F(2×2, 3×3) over the same dY band (bands start at even rows).
  func backwardDirect(
    input x: UnsafePointer<Float>, inputShape s: TensorShape, outputGradient dy: UnsafePointer<Float>,
    outputItemStride ostride: Int, inputGradient dx: UnsafeMutablePointer<Float>?, accumulateInputGradient: Bool,
    maskInputGradient: Bool, inputBiasGradient: UnsafeMutablePointer<Float>?,
    parameters: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>, winograd: Bool, scratch: ScratchArena
  ) {
    let o = outputShape(for: s)
    let isa = Int32(ConvKernels.current.rawValue)
    let cin = inChannels, cout = outChannels, p = padding, q = 2 - padding
    let gradRow = max(Int(CConv_row_floats(Int32(s.w))), q + (o.w + 15) / 16 * 16)
    let inputRow = Int(CConv_row_floats(Int32(o.w)))
    let wino = winograd && dx != nil
    let winoW = usesWinogradWeightGradient(for: s)
    let plan = Self.bandPlan(
      rows: s.h, row: max(gradRow, inputRow), channels: cin + cout, items: s.n, budget: 256 * 1024, evenRows: wino || winoW)
    let tasks = s.n * plan.bands
    let workers = min(ComputeThreads.count, tasks)
    let packedFloats =
      dx == nil ? 0 : wino ? CConv_wino_packed_count(Int32(cin), Int32(cout)) : CConv_packed_count(isa, Int32(cin), Int32(cout))
    let gradBand = cout * (plan.rowsPerBand + (wino ? 3 : 2)) * gradRow
    let inputBand = cin * (plan.rowsPerBand + (winoW ? 3 : 2)) * inputRow
    let partialFloats = winoW ? CConv_wino_wgrad_partial_count(Int32(cout), Int32(cin)) : cout * cin * 9
    let winoFloats = max(
      wino ? CConv_wino_scratch_count(Int32(cout), Int32(cin)) : 0,
      winoW ? CConv_wino_wgrad_scratch_count(Int32(cin), Int32(cout)) : 0)
    let perWorker = gradBand + inputBand + partialFloats + winoFloats
    let region = scratch.floats(packedFloats + workers * perWorker)
    if dx != nil {
      if wino {
        CConv_wino_pack(parameters + weight.offset, Int32(cout), Int32(cin), 1, region)
      } else {
        CConv_pack(isa, parameters + weight.offset, Int32(cout), Int32(cin), 1, region)
      }
    }
    let shared = SharedBuffer(region)
    let xs = SharedBuffer(x), dys = SharedBuffer(dy)
    let dxs = dx.map { SharedBuffer($0) }
    let mask = maskInputGradient, accumulate: Int32 = accumulateInputGradient ? 1 : 0
    var inputSums = [Double](repeating: 0, count: inputBiasGradient == nil ? 0 : cin * workers)
    inputSums.withUnsafeMutableBufferPointer { sumsBuffer in
      let sums = sumsBuffer.baseAddress.map { SharedBuffer($0) }
      // Disjoint writes: task t writes input-gradient rows [r0, r1) of its item; worker w
      // writes only its own bands, partial dWt and input sums.
      Parallel.forEachBlock(tasks: tasks, workers: workers) { worker, range in
        let gband = shared + (packedFloats + worker * perWorker)
        let xband = gband + gradBand
        let partial = xband + inputBand
        partial.update(repeating: 0, count: partialFloats)
        for task in range {
          let item = task / plan.bands
          let r0 = (task % plan.bands) * plan.rowsPerBand
          let r1 = min(s.h, r0 + plan.rowsPerBand)
          let gradRows = r1 - r0 + 2 + (wino ? (r1 - r0) & 1 : 0)
          CConv_pad_band(
            dys.readOnly + item * ostride, Int32(cout), o.plane, Int32(o.h), Int32(o.w), Int32(q), Int32(r0),
            Int32(gradRows), gband, Int32(gradRow))
          let oy1 = min(r1, o.h)
          if oy1 > r0 {
            let inputRows = oy1 - r0 + 2 + (winoW ? (oy1 - r0) & 1 : 0)
            CConv_pad_band(
              xs.readOnly + item * s.item, Int32(cin), s.plane, Int32(s.h), Int32(s.w), Int32(p), Int32(r0),
              Int32(inputRows), xband, Int32(inputRow))
            // Output row oy is padded row oy + q of the gradient band (starting at r0), column q.
            // With an odd row count (the last band only: bands hold an even number of rows)
            // Winograd's last tile reads dY row oy1 = Ho, which the band holds as zeros.
            let dyBand = gband + q * gradRow + q
            if winoW {
              CConv_wino_weight_gradient(
                isa, xband, Int32(cin), Int32(inputRow), Int32(inputRows), dyBand, gradRows * gradRow, Int32(gradRow),
                Int32(cout), Int32(o.w), Int32(oy1 - r0), partial, partial + partialFloats)
            } else {
              CConv_weight_gradient(
                isa, xband, Int32(cin), Int32(inputRow), dyBand, gradRows * gradRow, Int32(gradRow), Int32(cout),
                Int32(o.w), Int32(oy1 - r0), partial)
            }
          }
          guard let dxs else { continue }
          let dxChunk = dxs + (item * s.item + r0 * s.w)
          if wino {
            CConv_wino_forward(
              isa, gband, Int32(cout), Int32(gradRow), Int32(gradRows), shared.readOnly, Int32(cin), nil, 0, accumulate,
              dxChunk, s.plane, Int32(s.w), Int32(r1 - r0), partial + partialFloats)
          } else {
            CConv_forward(
              isa, gband, Int32(cout), Int32(gradRow), shared.readOnly, Int32(cin), nil, 0, accumulate,
              dxChunk, s.plane, Int32(s.w), Int32(r1 - r0))
          }
          if mask {
            Self.maskInputGradient(
              dxChunk, by: xs.readOnly + (item * s.item + r0 * s.w), channels: cin, plane: s.plane, count: (r1 - r0) * s.w,
              addingSumsTo: sums.map { $0 + worker * cin })
          }
        }
      }
    }
    let gw = SharedBuffer(gradients + weight.offset)
    let base = packedFloats + gradBand + inputBand
    if winoW {
      // Σ_workers partial in worker order into worker 0's, then dWt += Gᵀ M G.
      let total = SharedBuffer(shared + base)  // worker 0's partial
      let n = partialFloats, pieces = min(n, 64)
      // Disjoint writes: task t writes floats [t·n/pieces, (t+1)·n/pieces) of worker 0's partial.
      Parallel.forEach(tasks: pieces, workers: ComputeThreads.count) { _, t in
        for w in 1..<max(workers, 1) {
          let src = shared.readOnly + (base + w * perWorker)
          for j in (t * n / pieces)..<((t + 1) * n / pieces) { total[j] += src[j] }
        }
      }
      CConv_wino_wgrad_finish(total.readOnly, Int32(cout), Int32(cin), gw + 0)
    } else {
      // dWt += Σ_workers partial, in worker order; parallel over output channels.
      // Disjoint writes: task o writes dWt[o, ·, ·, ·].
      Parallel.forEach(tasks: cout, workers: ComputeThreads.count) { _, oc in
        let dst = gw + oc * cin * 9
        for w in 0..<workers {
          let src = shared.readOnly + (base + w * perWorker + oc * cin * 9)
          for j in 0..<(cin * 9) { dst[j] += src[j] }
        }
      }
    }
    if let inputBiasGradient {
      for w in 0..<workers {
        for c in 0..<cin { inputBiasGradient[c] += Float(inputSums[w * cin + c]) }
      }
    }
  }
}
