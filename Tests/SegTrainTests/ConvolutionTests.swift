import SegCore
import SegTrain
import Testing

/// The lowered convolution (chunked im2col + sgemm) against the direct Double convolution.
///
/// Tolerance: worst relative error (see `worstRelativeError`: |a − r| / max(|r|, 0.01·max|r|))
/// below 1e-4 for the forward pass and the gradients: float32 sums of up to C·k²·H·W
/// terms of size ~1 against the exact Double sum.
struct ConvolutionTests {
  struct Case: CustomTestStringConvertible, Sendable {
    var n, c, o, h, w, k, p: Int
    var bias = true
    var testDescription: String { "N\(n) C\(c)→\(o) \(h)×\(w) k\(k) p\(p)\(bias ? "" : " no-bias")" }
  }

  static let cases: [Case] = [
    Case(n: 1, c: 3, o: 4, h: 9, w: 7, k: 3, p: 0),
    Case(n: 1, c: 3, o: 4, h: 9, w: 7, k: 3, p: 1),
    Case(n: 2, c: 5, o: 6, h: 11, w: 13, k: 3, p: 1),
    Case(n: 2, c: 1, o: 8, h: 16, w: 5, k: 3, p: 0),
    Case(n: 1, c: 16, o: 16, h: 20, w: 20, k: 3, p: 1),
    Case(n: 1, c: 7, o: 3, h: 6, w: 15, k: 1, p: 0),
    Case(n: 3, c: 2, o: 2, h: 5, w: 5, k: 5, p: 2, bias: false),
    Case(n: 1, c: 4, o: 5, h: 3, w: 3, k: 3, p: 0),
  ]

  @Test(arguments: cases, [1, 2])
  func matchesDirectConvolution(_ t: Case, threads: Int) {
    var alloc = ParameterAllocator()
    let conv = Conv2D("c", inChannels: t.c, outChannels: t.o, kernelSize: t.k, padding: t.p, bias: t.bias, allocator: &alloc)
    let params = randomArray(alloc.count, seed: 1)
    let s = TensorShape(n: t.n, c: t.c, h: t.h, w: t.w)
    let x = randomTensor(s, seed: 2)
    let xd = x.data.map(Double.init)
    let wd = params[conv.weight.range].map(Double.init)
    let bd = conv.bias.map { params[$0.range].map(Double.init) }
    let (yRef, os) = naiveConv(xd, s, wd, bd, outChannels: t.o, k: t.k, p: t.p)
    let g = randomTensor(os, seed: 3)
    let ref = naiveConvBackward(xd, s, wd, g.data.map(Double.init), outChannels: t.o, k: t.k, p: t.p)

    // The default lowering budget, and a tiny one that forces many chunks in every pass.
    // (ConvDirectTests covers the direct 3×3 kernels; here the lowering, for every shape.)
    for budget in [Conv2D.columnBudget, 1024] {
     Conv2D.withColumnBudget(budget) {
     ConvKernels.with(.gemm) {
     ComputeThreads.withCount(threads) {
      expectConvolutionMatches(conv, input: x, parameters: params, outputGradient: g, output: yRef, gradients: ref)
     }
     }
     }
    }
  }

  /// Many chunks: a lowering budget far below one image forces chunking of every kind.
  @Test func chunkingDoesNotChangeResults() {
    var alloc = ParameterAllocator()
    let conv = Conv2D("c", inChannels: 6, outChannels: 5, kernelSize: 3, padding: 1, fusedReLU: true, allocator: &alloc)
    let params = randomArray(alloc.count, seed: 4)
    let x = randomTensor(TensorShape(n: 2, c: 6, h: 37, w: 23), seed: 5)
    let big = ConvKernels.with(.gemm) { conv.forward(x, parameters: params) }
    let small = Conv2D.withColumnBudget(1024) { ConvKernels.with(.gemm) { conv.forward(x, parameters: params) } }
    let e = worstRelativeError(small.data, big.data)
    // Different chunk widths reach OpenBLAS kernels that round differently: equal to rounding.
    #expect(e < 1e-5, "chunked vs unchunked: \(e)")
  }

  @Test func fusedReLUMatchesSeparateReLU() {
    var alloc = ParameterAllocator()
    let plain = Conv2D("c", inChannels: 3, outChannels: 4, padding: 1, allocator: &alloc)
    var alloc2 = ParameterAllocator()
    let fused = Conv2D("c", inChannels: 3, outChannels: 4, padding: 1, fusedReLU: true, allocator: &alloc2)
    let params = randomArray(alloc.count, seed: 6)
    let x = randomTensor(TensorShape(n: 1, c: 3, h: 8, w: 8), seed: 7)
    let z = plain.forward(x, parameters: params)
    let y = fused.forward(x, parameters: params)
    #expect(y.data == ReLU().forward(z).data)
    // Backward through the fused ReLU equals ReLU backward then the plain convolution.
    let g = randomTensor(y.shape, seed: 8)
    var g1 = [Float](repeating: 0, count: alloc.count)
    var g2 = g1
    let dx1 = fused.backward(input: x, output: y, outputGradient: g, parameters: params, gradients: &g1)
    let gz = ReLU().backward(output: y, outputGradient: g)
    let dx2 = plain.backward(input: x, output: z, outputGradient: gz, parameters: params, gradients: &g2)
    #expect(worstRelativeError(dx1.data, dx2.data) < 1e-6)
    #expect(worstRelativeError(g1, g2) < 1e-6)
  }

  /// The first layer's direct path (one input channel, 3×3, no input gradient) against the
  /// GEMM path's parameter gradients, with and without padding and ReLU; and its forward
  /// against the direct Double convolution. Tolerance 1e-4 as above.
  @Test(arguments: [(0, false), (1, true), (1, false), (0, true)])
  func singleChannelPathMatchesGeneralPath(padding: Int, relu: Bool) {
    var alloc = ParameterAllocator()
    let conv = Conv2D("c", inChannels: 1, outChannels: 5, kernelSize: 3, padding: padding, fusedReLU: relu, allocator: &alloc)
    let params = randomArray(alloc.count, seed: 9)
    let s = TensorShape(n: 2, c: 1, h: 13, w: 21)
    let x = randomTensor(s, seed: 10)
    let y = conv.forward(x, parameters: params)
    let (yRef, os) = naiveConv(x.data.map(Double.init), s, params[conv.weight.range].map(Double.init), conv.bias.map { params[$0.range].map(Double.init) }, outChannels: 5, k: 3, p: padding)
    let yExpected = relu ? yRef.map { max($0, 0) } : yRef
    #expect(y.shape == os)
    #expect(worstRelativeError(y.data, yExpected) < 1e-4)
    let g = randomTensor(os, seed: 11)
    var viaGEMM = [Float](repeating: 0, count: alloc.count)
    _ = conv.backward(input: x, output: y, outputGradient: g, parameters: params, gradients: &viaGEMM)
    for threads in [1, 2] {
      var direct = [Float](repeating: 0, count: alloc.count)
      ComputeThreads.withCount(threads) {
        conv.addParameterGradients(input: x, output: y, outputGradient: g, parameters: params, gradients: &direct)
      }
      let e = worstRelativeError(direct, viaGEMM)
      #expect(e < 1e-4, "direct vs GEMM parameter gradients at \(threads) threads: \(e)")
    }
  }
}
