import Foundation
import SegCore
import SegModel
@testable import SegTrain
import Testing

/// The layers U-Net++ and UNet 3+ added, each against a naive reference and central finite
/// differences (tolerances as in LayerGradientTests: 2e-3 for linear maps, 1e-2 near kinks).
struct GraphLayerTests {
  /// Naive k×k max pooling: the first maximum of each window in row-major order.
  static func naiveMaxPool(_ x: Tensor, _ k: Int) -> (Tensor, [Int]) {
    let s = x.shape
    var out = Tensor(shape: TensorShape(n: s.n, c: s.c, h: s.h / k, w: s.w / k))
    var arg: [Int] = []
    for n in 0..<s.n {
      for c in 0..<s.c {
        for y in 0..<(s.h / k) {
          for xx in 0..<(s.w / k) {
            var best = -Float.infinity, at = 0
            for a in 0..<k {
              for b in 0..<k where x[n, c, k * y + a, k * xx + b] > best {
                best = x[n, c, k * y + a, k * xx + b]
                at = x.index(n, c, k * y + a, k * xx + b)
              }
            }
            out[n, c, y, xx] = best
            arg.append(at)
          }
        }
      }
    }
    return (out, arg)
  }

  @Test(arguments: [2, 4, 8])
  func maxPoolByFactor(_ k: Int) {
    let s = TensorShape(n: 2, c: 3, h: 2 * k + 1, w: 3 * k)
    // Distinct values, so the argmax is unique and finite differences see no ties.
    var rng = RandomStream(seed: 31)
    var values = (0..<s.count).map { Float($0) * 0.01 }
    rng.shuffle(&values)
    let x = Tensor(shape: s, data: values)
    let pool = MaxPool(factor: k)
    let y = pool.forward(x)
    let (reference, arg) = Self.naiveMaxPool(x, k)
    #expect(y == reference)
    let r = randomArray(y.data.count, seed: 32)
    let dx = pool.backward(input: x, outputGradient: Tensor(shape: y.shape, data: r))
    var expected = [Float](repeating: 0, count: s.count)
    for (j, i) in arg.enumerated() { expected[i] += r[j] }
    #expect(dx.data == expected)
    let e = finiteDifferenceError(values: x.data, analytic: dx.data, indices: sampleIndices(s.count, count: 80, seed: 3), epsilon: 1e-3, r: r) {
      pool.forward(Tensor(shape: s, data: $0)).data
    }
    #expect(e < 1e-2, "max pool ×\(k): \(e)")
  }

  /// Bilinear ×s against the formula written out per output pixel (PyTorch's align_corners =
  /// False, one step for any s), and its backward against finite differences.
  @Test(arguments: [2, 4, 8, 16])
  func bilinearByFactor(_ f: Int) {
    let s = TensorShape(n: 2, c: 2, h: 3, w: 4)
    let x = randomTensor(s, seed: 40 + UInt64(f))
    let up = BilinearUpsample(factor: f)
    let y = up.forward(x)
    #expect(y.shape == TensorShape(n: 2, c: 2, h: 3 * f, w: 4 * f))
    func src(_ d: Int, _ n: Int) -> (Int, Int, Double) {
      let c = max(0, (Double(d) + 0.5) / Double(f) - 0.5)
      let i0 = min(Int(c), n - 1)
      return (i0, min(i0 + 1, n - 1), c - Double(i0))
    }
    var worst = 0.0
    for n in 0..<2 {
      for c in 0..<2 {
        for oy in 0..<(3 * f) {
          for ox in 0..<(4 * f) {
            let (y0, y1, ly) = src(oy, 3), (x0, x1, lx) = src(ox, 4)
            let v = (1 - ly) * ((1 - lx) * Double(x[n, c, y0, x0]) + lx * Double(x[n, c, y0, x1]))
              + ly * ((1 - lx) * Double(x[n, c, y1, x0]) + lx * Double(x[n, c, y1, x1]))
            worst = max(worst, abs(v - Double(y[n, c, oy, ox])))
          }
        }
      }
    }
    #expect(worst < 1e-6, "×\(f): \(worst)")
    let r = randomArray(y.data.count, seed: 44)
    let dx = up.backward(inputShape: s, outputGradient: Tensor(shape: y.shape, data: r))
    let e = finiteDifferenceError(values: x.data, analytic: dx.data, indices: Array(0..<s.count), epsilon: 1e-2, r: r) {
      up.forward(Tensor(shape: s, data: $0)).data
    }
    #expect(e < 2e-3, "×\(f) backward: \(e)")
  }

  @Test func globalMaxPoolSigmoidAndItemScale() {
    let s = TensorShape(n: 2, c: 3, h: 4, w: 5)
    var values = (0..<s.count).map { Float($0) * 0.013 - 0.5 }
    var rng = RandomStream(seed: 50)
    rng.shuffle(&values)
    let x = Tensor(shape: s, data: values)
    // Global max: the plane maxima, gradient to the argmax.
    let gm = GlobalMaxPool()
    let m = gm.forward(x)
    for plane in 0..<6 { #expect(m.data[plane] == x.data[(plane * 20)..<((plane + 1) * 20)].max()) }
    let r = randomArray(6, seed: 51)
    let dm = gm.backward(input: x, outputGradient: Tensor(shape: m.shape, data: r))
    let em = finiteDifferenceError(values: x.data, analytic: dm.data, indices: Array(0..<s.count), epsilon: 1e-3, r: r) {
      gm.forward(Tensor(shape: s, data: $0)).data
    }
    #expect(em < 1e-2, "global max: \(em)")
    // Sigmoid.
    let sg = Sigmoid()
    let y = sg.forward(x)
    #expect(abs(y.data[7] - 1 / (1 + exp(-x.data[7]))) < 1e-7)
    let r2 = randomArray(s.count, seed: 52)
    let dy = sg.backward(output: y, outputGradient: Tensor(shape: s, data: r2))
    let es = finiteDifferenceError(values: x.data, analytic: dy.data, indices: Array(0..<s.count), epsilon: 1e-2, r: r2) {
      sg.forward(Tensor(shape: s, data: $0)).data
    }
    #expect(es < 2e-3, "sigmoid: \(es)")
    // Item scale (the CGM gate's product): both inputs.
    let factors: [Float] = [0.7, -1.3]
    let sc = ItemScale()
    let z = sc.forward(x, factors: factors)
    #expect(z[1, 2, 3, 4] == x[1, 2, 3, 4] * -1.3)
    let (dx, df) = sc.backward(input: x, factors: factors, outputGradient: Tensor(shape: s, data: r2))
    let ex = finiteDifferenceError(values: x.data, analytic: dx.data, indices: Array(0..<s.count), epsilon: 1e-2, r: r2) {
      sc.forward(Tensor(shape: s, data: $0), factors: factors).data
    }
    let ef = finiteDifferenceError(values: factors, analytic: df, indices: [0, 1], epsilon: 1e-2, r: r2) {
      sc.forward(x, factors: $0).data
    }
    #expect(ex < 2e-3 && ef < 2e-3, "scale: dX \(ex), dG \(ef)")
  }

  /// Softmax's raw backward (used by the graph and by the loss on softmax heads) equals the
  /// tensor form, with and without accumulation.
  @Test func softmaxBackwardRaw() {
    let s = TensorShape(n: 2, c: 3, h: 2, w: 5)
    let z = randomTensor(s, seed: 60)
    let p = PixelSoftmax().forward(z)
    let dp = randomTensor(s, seed: 61)
    let reference = PixelSoftmax().backward(probabilities: p, outputGradient: dp)
    var out = [Float](repeating: 0.5, count: s.count)
    p.data.withUnsafeBufferPointer { pp in
      dp.data.withUnsafeBufferPointer { gp in
        out.withUnsafeMutableBufferPointer { op in
          PixelSoftmax().backward(probabilities: base(pp), shape: s, outputGradient: base(gp), inputGradient: base(op), accumulate: true)
        }
      }
    }
    #expect(worstRelativeError(out.map { $0 - 0.5 }, reference.data) < 1e-5)
  }

  /// The planner: buffers are shared when lifetimes allow (inference), concatenation inputs are
  /// written in place, and the U-Net gets the fused ReLU passes of the hand-written version.
  @Test func planReusesBuffersAndFuses() {
    let config = UNetConfiguration(depth: 3, baseWidth: 4, padding: .same, classes: 2)
    let model = Network(configuration: config, seed: 1)
    let shape = TensorShape(n: 1, c: 1, h: 32, w: 32)
    let training = GraphPlan(model.trainingGraph, input: shape, training: true)
    let inference = GraphPlan(model.trainingGraph, input: shape, training: false)
    let sum = { (a: [Int]) -> Int in a.reduce(0, +) }
    #expect(sum(inference.activationSlots) < sum(training.activationSlots) / 2)
    #expect(inference.activationSlots.count < training.activationSlots.count)
    // Every up-sampling writes into its concatenation.
    let placed = training.activation.filter { if case .block = $0 { return true } else { return false } }.count
    #expect(placed == 3)
    // Masks fused: unit2 ← unit1 at every level (7), head ← last unit, pool ← skip (3).
    let fused = training.fusesMask.flatMap { $0 }.filter { $0 }.count
    #expect(fused == 7 + 1 + 3, "fused \(fused)")
    // Gradient buffers are reused too: far fewer than the values that need one.
    let needing = training.needsGradient.filter { $0 }.count
    #expect(training.gradientSlots.count < needing / 2, "\(training.gradientSlots.count) gradient slots for \(needing) values")
  }

  /// The low-resolution form of conv3×3(up_s(X)) against the direct form (up-sample, then the
  /// convolution): outputs, dX and dW within float rounding, for factors 2 … 16, with and without
  /// bias and ReLU; and (the linear case) against finite differences.
  @Test(arguments: [(2, false), (4, true), (8, false), (16, false)])
  func upsampledConvolutionEqualsTheDirectForm(_ factor: Int, _ reluAndBias: Bool) {
    var alloc = ParameterAllocator()
    let conv = Conv2D("c", inChannels: 9, outChannels: 5, kernelSize: 3, padding: 1, bias: reluAndBias, fusedReLU: reluAndBias, allocator: &alloc)
    let params = randomArray(alloc.count, seed: 90, lo: -0.4, hi: 0.4)
    let s = TensorShape(n: 2, c: 9, h: 3, w: 4)
    let x = randomTensor(s, seed: 91)
    let fused = UpsampledConv(conv, factor: factor)
    let up = BilinearUpsample(factor: factor)
    let direct = conv.forward(up.forward(x), parameters: params)
    let z = fused.forward(x, parameters: params)
    #expect(z.shape == direct.shape)
    #expect(worstRelativeError(z.data, direct.data) < 5e-5, "forward ×\(factor): \(worstRelativeError(z.data, direct.data))")
    let r = randomArray(z.data.count, seed: 92)
    var gFused = [Float](repeating: 0, count: params.count), gDirect = gFused
    let dxFused = fused.backward(input: x, output: z, outputGradient: Tensor(shape: z.shape, data: r), parameters: params, gradients: &gFused)
    let upX = up.forward(x)
    let dUp = conv.backward(input: upX, output: direct, outputGradient: Tensor(shape: z.shape, data: r), parameters: params, gradients: &gDirect)
    let dxDirect = up.backward(inputShape: s, outputGradient: dUp)
    #expect(worstRelativeError(dxFused.data, dxDirect.data) < 1e-4, "dX ×\(factor): \(worstRelativeError(dxFused.data, dxDirect.data))")
    #expect(worstRelativeError(gFused, gDirect) < 1e-4, "dW ×\(factor): \(worstRelativeError(gFused, gDirect))")
    if !reluAndBias && factor == 2 {  // linear: finite differences are exact up to rounding
      let e = finiteDifferenceError(values: x.data, analytic: dxFused.data, indices: Array(0..<s.count), epsilon: 1e-2, r: r) {
        fused.forward(Tensor(shape: s, data: $0), parameters: params).data
      }
      #expect(e < 2e-3, "dX against finite differences: \(e)")
    }
  }
}
