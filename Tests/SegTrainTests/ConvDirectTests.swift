import SegCore
import Testing

@testable import SegTrain

/// CConvKernels' direct 3×3 kernels (every instruction set this CPU runs) against the naive
/// Double convolution and against the GEMM lowering.
///
/// Tolerance: worst relative error (Reference.swift) below 1e-4 against the Double reference,
/// as for the GEMM path (float32 sums of up to C·9·H·W terms of size ~1); between the two
/// float paths below 1e-5 for outputs and input gradients (sums of C·9 terms) and 1e-4 for
/// weight gradients (sums over every pixel, in a different order on each path). Widths cover every vector tail: AVX-512 blocks are 32 and 16 pixels
/// wide, AVX2 blocks 24 and 8, so 5, 17, 33, 40 and 50 reach full, partial and masked blocks.
struct ConvDirectTests {
  /// The direct sets this CPU runs (none off x86-64: the tests then check nothing but that the
  /// GEMM path is chosen).
  static let directSets = ConvKernels.allCases.filter { $0 != .gemm && $0.rawValue <= ConvKernels.best.rawValue }

  struct Case: CustomTestStringConvertible, Sendable {
    var n, c, o, h, w, p: Int
    var relu = false
    var bias = true
    var testDescription: String { "N\(n) C\(c)→\(o) \(h)×\(w) p\(p)\(relu ? " relu" : "")\(bias ? "" : " no-bias")" }
  }

  static let cases: [Case] = [
    Case(n: 1, c: 2, o: 3, h: 4, w: 5, p: 1),
    Case(n: 2, c: 3, o: 8, h: 9, w: 17, p: 0),
    Case(n: 1, c: 5, o: 13, h: 7, w: 33, p: 1, relu: true),
    Case(n: 1, c: 16, o: 9, h: 12, w: 40, p: 1, bias: false),
    Case(n: 2, c: 4, o: 16, h: 6, w: 50, p: 0, relu: true),
    Case(n: 1, c: 9, o: 4, h: 35, w: 32, p: 1),
  ]

  @Test func bestSetIsChosenByDefault() {
    #expect(ConvKernels.current.rawValue <= ConvKernels.best.rawValue)
    ConvKernels.with(.gemm) { #expect(ConvKernels.current == .gemm) }
    ConvKernels.with(.avx512) { #expect(ConvKernels.current.rawValue <= ConvKernels.best.rawValue) }
  }

  @Test(arguments: cases, [1, 2])
  func matchesNaiveConvolution(_ t: Case, threads: Int) {
    var alloc = ParameterAllocator()
    let conv = Conv2D("c", inChannels: t.c, outChannels: t.o, kernelSize: 3, padding: t.p, bias: t.bias, fusedReLU: t.relu, allocator: &alloc)
    let params = randomArray(alloc.count, seed: 21)
    let s = TensorShape(n: t.n, c: t.c, h: t.h, w: t.w)
    let x = randomTensor(s, seed: 22)
    let xd = x.data.map(Double.init)
    let wd = params[conv.weight.range].map(Double.init)
    let (z, os) = naiveConv(xd, s, wd, conv.bias.map { params[$0.range].map(Double.init) }, outChannels: t.o, k: 3, p: t.p)
    let yRef = t.relu ? z.map { max($0, 0) } : z
    let g = randomTensor(os, seed: 23)
    // Through a fused ReLU the reference gradient is G masked by Y > 0.
    let gd = zip(g.data, yRef).map { t.relu && !($1 > 0) ? 0 : Double($0) }
    let ref = naiveConvBackward(xd, s, wd, gd, outChannels: t.o, k: 3, p: t.p)
    for set in Self.directSets {
      ConvKernels.with(set, everyShape: true, winograd: false) {
        ComputeThreads.withCount(threads) {
          #expect(conv.usesDirectKernels(for: s, backward: false) && conv.usesDirectKernels(for: s, backward: true))
          expectConvolutionMatches(conv, input: x, parameters: params, outputGradient: g, output: yRef, gradients: ref, "\(set)")
        }
      }
    }
  }

  /// Forward and input gradient compute every element in one thread in a fixed order: equal
  /// bytes for any worker count and band split (for Winograd, bands start at even rows, so each
  /// pixel stays in the same 2 × 2 tile; odd height and width put the last tiles half outside).
  /// The weight gradient sums per-worker partials, so it is reproducible for a given worker
  /// count, as on the GEMM path.
  @Test(arguments: [false, true])
  func forwardAndInputGradientDoNotDependOnThreads(winograd: Bool) {
    var alloc = ParameterAllocator()
    let conv = Conv2D("c", inChannels: 12, outChannels: 10, kernelSize: 3, padding: 1, fusedReLU: true, allocator: &alloc)
    let params = randomArray(alloc.count, seed: 24)
    let x = randomTensor(TensorShape(n: 2, c: 12, h: 71, w: 37), seed: 25)
    for set in Self.directSets {
      ConvKernels.with(set, everyShape: true, winograd: winograd) {
        let label = "\(set)\(winograd ? " winograd" : "")"
        let y1 = ComputeThreads.withCount(1) { conv.forward(x, parameters: params) }
        let y3 = ComputeThreads.withCount(3) { conv.forward(x, parameters: params) }
        #expect(y1.data == y3.data, "\(label) forward differs between 1 and 3 workers")
        let g = randomTensor(y1.shape, seed: 26)
        var g1 = [Float](repeating: 0, count: alloc.count), g3 = g1
        let dx1 = ComputeThreads.withCount(1) { conv.backward(input: x, output: y1, outputGradient: g, parameters: params, gradients: &g1) }
        let dx3 = ComputeThreads.withCount(3) { conv.backward(input: x, output: y1, outputGradient: g, parameters: params, gradients: &g3) }
        #expect(dx1.data == dx3.data, "\(label) dX differs between 1 and 3 workers")
        #expect(worstRelativeError(g3, g1) < 1e-4)
      }
    }
  }

  /// The raw entry points as the graph uses them: the output written into a channel block of a
  /// wider tensor (a concatenation), dX added to what is there, masked by X > 0 with the input
  /// bias gradient summed, and dY already masked. Direct (and Winograd, ConvWinogradTests)
  /// against the GEMM path. Winograd's rounding differs in kind (it scales with Σ|terms|, see
  /// ConvWinogradTests): 1e-4 relative for its outputs and dX, as against the Double reference.
  @Test(arguments: [0, 1], [false, true])
  func fusionsMatchTheGEMMPath(padding: Int, winograd: Bool) {
    let fixture = FusedConvolutionFixture(padding: padding, seed: 27)
    let reference = ConvKernels.with(.gemm) { fixture.run() }
    let tolerance = winograd ? 1e-4 : 1e-5
    for set in Self.directSets {
      let r = ConvKernels.with(set, everyShape: true, winograd: winograd) { fixture.run() }
      let label = "\(set)\(winograd ? " winograd" : "")"
      #expect(fixture.untouchedAfterBlock(r.y), "\(label) wrote outside its channel block")
      #expect(worstRelativeError(r.y, reference.y) < tolerance, "\(label) forward")
      #expect(r.dy == reference.dy, "\(label) masked dY")
      #expect(worstRelativeError(r.dx, reference.dx) < tolerance, "\(label) dX")
      #expect(worstRelativeError(r.grads, reference.grads) < 1e-4, "\(label) parameter gradients")
      #expect(worstRelativeError(r.inputBias, reference.inputBias) < 1e-5, "\(label) input bias gradient")
    }
  }

  /// Without a direct set (or a single input channel, or a 1×1 kernel) the layer takes the
  /// other paths.
  @Test func otherShapesKeepTheirPaths() {
    var alloc = ParameterAllocator()
    let first = Conv2D("a", inChannels: 1, outChannels: 4, kernelSize: 3, padding: 1, allocator: &alloc)
    let pointwise = Conv2D("b", inChannels: 4, outChannels: 2, kernelSize: 1, padding: 0, allocator: &alloc)
    let inner = Conv2D("c", inChannels: 4, outChannels: 4, kernelSize: 3, padding: 1, allocator: &alloc)
    let s4 = TensorShape(n: 1, c: 4, h: 8, w: 8), s1 = TensorShape(n: 1, c: 1, h: 8, w: 8)
    ConvKernels.with(.avx512, everyShape: true) {
      #expect(!first.usesDirectKernels(for: s1, backward: false) && !pointwise.usesDirectKernels(for: s4, backward: true))
      #expect(inner.usesDirectKernels(for: s4, backward: false) == (ConvKernels.best != .gemm))
    }
    ConvKernels.with(.gemm, everyShape: true) { #expect(!inner.usesDirectKernels(for: s4, backward: true)) }
    // The measured rule: narrow outputs forward through the GEMM, wide ones direct.
    let wide = TensorShape(n: 1, c: 4, h: 8, w: 64)
    #expect(!inner.usesDirectKernels(for: s4, backward: false))
    #expect(inner.usesDirectKernels(for: wide, backward: false) == (ConvKernels.best != .gemm))
  }
}
