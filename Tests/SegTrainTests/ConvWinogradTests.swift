import SegCore
import Testing

@testable import SegTrain

/// Winograd F(2×2, 3×3) (CConvKernels/winograd.c) for the forward pass and the input gradient,
/// against the naive Double convolution (and, fused as the graph calls it, against the GEMM path
/// in ConvDirectTests.fusionsMatchTheGEMMPath).
///
/// Error bound: Winograd reassociates each output's sum through the transforms (entries 0, ±½,
/// ±1), so its rounding error scales with the sum of the terms' magnitudes, not with the
/// result. Every output (and dX element) must lie within 1e-5 · Σ|w|·|x| of the Double result,
/// the sum over the same window of the absolute terms (float32 direct sums reach ~1e-7 of it
/// here; F(2×2, 3×3) measured up to ~4e-7). The weight gradient is the direct kernel's and
/// keeps its tolerance (1e-4 relative, ConvDirectTests).
struct ConvWinogradTests {
  static let sets = ConvDirectTests.directSets

  static let cases: [ConvDirectTests.Case] = ConvDirectTests.cases + [
    // Odd output rows and widths (a last tile row and column half outside), many bands.
    ConvDirectTests.Case(n: 1, c: 64, o: 6, h: 35, w: 64, p: 1, relu: true),
    ConvDirectTests.Case(n: 2, c: 7, o: 37, h: 13, w: 11, p: 0),
    ConvDirectTests.Case(n: 1, c: 40, o: 5, h: 3, w: 3, p: 1, bias: false),
  ]

  /// Worst |a − r| / scale over the elements, with `scale` the sum of absolute terms.
  static func worstScaledError(_ a: [Float], _ r: [Double], scale: [Double]) -> Double {
    var worst = 0.0
    for i in a.indices {
      let e = abs(Double(a[i]) - r[i]) / max(scale[i], 1e-30)
      if e > worst || e.isNaN { worst = e.isNaN ? .infinity : e }
    }
    return worst
  }

  @Test(arguments: cases, [1, 2])
  func matchesNaiveConvolutionWithinTheBound(_ t: ConvDirectTests.Case, threads: Int) {
    var alloc = ParameterAllocator()
    let conv = Conv2D("c", inChannels: t.c, outChannels: t.o, kernelSize: 3, padding: t.p, bias: t.bias, fusedReLU: t.relu, allocator: &alloc)
    let params = randomArray(alloc.count, seed: 41)
    let s = TensorShape(n: t.n, c: t.c, h: t.h, w: t.w)
    let x = randomTensor(s, seed: 42)
    let xd = x.data.map(Double.init), wd = params[conv.weight.range].map(Double.init)
    let bd = conv.bias.map { params[$0.range].map(Double.init) }
    let (z, os) = naiveConv(xd, s, wd, bd, outChannels: t.o, k: 3, p: t.p)
    let yRef = t.relu ? z.map { max($0, 0) } : z
    let (forwardScale, _) = naiveConv(xd.map(abs), s, wd.map(abs), bd.map { $0.map(abs) }, outChannels: t.o, k: 3, p: t.p)
    let g = randomTensor(os, seed: 43)
    let gd = zip(g.data, yRef).map { t.relu && !($1 > 0) ? 0 : Double($0) }
    let ref = naiveConvBackward(xd, s, wd, gd, outChannels: t.o, k: 3, p: t.p)
    let dxScale = naiveConvBackward(xd, s, wd.map(abs), gd.map(abs), outChannels: t.o, k: 3, p: t.p).dx
    for set in Self.sets {
      ConvKernels.with(set, everyShape: true, winograd: true) {
        ComputeThreads.withCount(threads) {
          #expect(conv.usesWinograd(for: s, backward: false) && conv.usesWinograd(for: s, backward: true))
          let y = conv.forward(x, parameters: params)
          // A ReLU output is the max of the sum with 0: the bound holds for it as well.
          let ey = Self.worstScaledError(y.data, yRef, scale: forwardScale)
          #expect(ey < 1e-5, "\(set) forward: \(ey) of Σ|w||x|")
          var grads = [Float](repeating: 0, count: params.count)
          let dx = conv.backward(input: x, output: y, outputGradient: g, parameters: params, gradients: &grads)
          let edx = Self.worstScaledError(dx.data, ref.dx, scale: dxScale)
          #expect(edx < 1e-5, "\(set) dX: \(edx) of Σ|w||g|")
          let edw = worstRelativeError(grads[conv.weight.range], ref.dw)
          #expect(edw < 1e-4, "\(set) dW: worst relative error \(edw)")
          if let b = conv.bias {
            #expect(worstRelativeError(grads[b.range], ref.db) < 1e-4, "\(set) db")
          }
        }
      }
    }
  }

  // Thread independence: ConvDirectTests.forwardAndInputGradientDoNotDependOnThreads.
  // The graph's fused entry points through Winograd: ConvDirectTests.fusionsMatchTheGEMMPath.

  /// Switchable: off (or without vector kernels) no layer uses it; on, the measured rule.
  @Test func switchAndRule() {
    var alloc = ParameterAllocator()
    let inner = Conv2D("c", inChannels: 4, outChannels: 4, kernelSize: 3, padding: 1, allocator: &alloc)
    let first = Conv2D("a", inChannels: 1, outChannels: 4, kernelSize: 3, padding: 1, allocator: &alloc)
    let pointwise = Conv2D("b", inChannels: 4, outChannels: 2, kernelSize: 1, padding: 0, allocator: &alloc)
    let deep = Conv2D("d", inChannels: 128, outChannels: 128, kernelSize: 3, padding: 1, allocator: &alloc)
    let deepest = Conv2D("e", inChannels: 256, outChannels: 256, kernelSize: 3, padding: 1, allocator: &alloc)
    let s = TensorShape(n: 1, c: 4, h: 8, w: 8), s1 = TensorShape(n: 1, c: 1, h: 8, w: 8)
    let sDeep = TensorShape(n: 1, c: 128, h: 32, w: 32), sDeepest = TensorShape(n: 1, c: 256, h: 16, w: 16)
    ConvKernels.with(ConvKernels.best, winograd: false) {
      #expect(!ConvKernels.winograd && !inner.usesWinograd(for: s, backward: false))
    }
    ConvKernels.with(.gemm, winograd: true) { #expect(!ConvKernels.winograd && !inner.usesWinograd(for: s, backward: false)) }
    ConvKernels.with(ConvKernels.best, winograd: true) {
      let on = ConvKernels.best != .gemm
      #expect(ConvKernels.winograd == on)
      #expect(!first.usesWinograd(for: s1, backward: false) && !pointwise.usesWinograd(for: s, backward: false))
      // Forward at every level; backward except at 16 columns with more than 128 inputs; the
      // weight gradient from 48 channels in and out together.
      #expect(inner.usesWinograd(for: s, backward: false) == on && deepest.usesWinograd(for: sDeepest, backward: false) == on)
      #expect(inner.usesWinograd(for: s, backward: true) == on && deep.usesWinograd(for: sDeep, backward: true) == on)
      #expect(!deepest.usesWinograd(for: sDeepest, backward: true))
      #expect(!inner.usesWinogradWeightGradient(for: s) && deep.usesWinogradWeightGradient(for: sDeep) == on)
      // Nested `with` without a Winograd choice keeps the enclosing one.
      ConvKernels.with(ConvKernels.best) { #expect(ConvKernels.winograd == on) }
    }
  }
}
