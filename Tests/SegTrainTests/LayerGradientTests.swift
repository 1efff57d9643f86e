import SegCore
import SegTrain
import Testing

/// Every layer's backward pass against central finite differences.
///
/// Layers compute in float32, so the check is in float32 with a stated tolerance: for
/// L = Σ r ⊙ Y (r random), FD_i = (L(v + ε) − L(v − ε))/2ε with ε = 1e-2 (1e-3 where a kink
/// is near: ReLU, max-pool), the differences taken per output element in Double; the worst
/// relative error |analytic − FD| / max(|FD|, |analytic|, 0.01·max|FD|) over the checked
/// entries must stay below 1e-2. Linear layers (convolution without ReLU, transposed
/// convolution, bilinear, crop-concat, dropout) are exact up to rounding and get 2e-3.
/// Each test prints its worst error.
struct LayerGradientTests {
  static func report(_ name: String, _ e: Double) {
    print("gradient check \(name): worst relative error \(e)")
  }

  @Test(arguments: [(0, true), (1, false), (1, true)])
  func convolution(padding: Int, relu: Bool) {
    var alloc = ParameterAllocator()
    let conv = Conv2D("c", inChannels: 3, outChannels: 4, kernelSize: 3, padding: padding, fusedReLU: relu, allocator: &alloc)
    var params = randomArray(alloc.count, seed: 11, lo: -0.5, hi: 0.5)
    let x = randomTensor(TensorShape(n: 2, c: 3, h: 7, w: 6), seed: 12)
    let y = conv.forward(x, parameters: params)
    let r = randomArray(y.data.count, seed: 13)
    var grads = [Float](repeating: 0, count: alloc.count)
    let dx = conv.backward(input: x, output: y, outputGradient: Tensor(shape: y.shape, data: r), parameters: params, gradients: &grads)
    let eps: Float = relu ? 1e-3 : 1e-2
    let tol = relu ? 1e-2 : 2e-3
    let ex = finiteDifferenceError(values: x.data, analytic: dx.data, indices: sampleIndices(x.data.count, count: 60, seed: 1), epsilon: eps, r: r) {
      conv.forward(Tensor(shape: x.shape, data: $0), parameters: params).data
    }
    let p0 = params
    let ew = finiteDifferenceError(values: p0, analytic: grads, indices: sampleIndices(conv.weight.count, count: 60, seed: 2), epsilon: eps, r: r) {
      conv.forward(x, parameters: $0).data
    }
    let b = conv.bias?.range ?? 0..<0
    let eb = finiteDifferenceError(values: p0, analytic: grads, indices: Array(b), epsilon: eps, r: r) {
      conv.forward(x, parameters: $0).data
    }
    params = p0
    Self.report("conv p\(padding) relu \(relu) dX", ex)
    Self.report("conv p\(padding) relu \(relu) dW", ew)
    Self.report("conv p\(padding) relu \(relu) db", eb)
    #expect(ex < tol && ew < tol && eb < tol, "dX \(ex), dW \(ew), db \(eb)")
  }

  @Test func transposedConvolution() {
    var alloc = ParameterAllocator()
    let up = TransposedConv2x2("u", inChannels: 5, outChannels: 3, allocator: &alloc)
    let params = randomArray(alloc.count, seed: 21)
    let x = randomTensor(TensorShape(n: 2, c: 5, h: 4, w: 3), seed: 22)
    let y = up.forward(x, parameters: params)
    #expect(y.shape == TensorShape(n: 2, c: 3, h: 8, w: 6))
    let r = randomArray(y.data.count, seed: 23)
    var grads = [Float](repeating: 0, count: alloc.count)
    let dx = up.backward(input: x, outputGradient: Tensor(shape: y.shape, data: r), parameters: params, gradients: &grads)
    let ex = finiteDifferenceError(values: x.data, analytic: dx.data, indices: Array(0..<x.data.count), epsilon: 1e-2, r: r) {
      up.forward(Tensor(shape: x.shape, data: $0), parameters: params).data
    }
    let ep = finiteDifferenceError(values: params, analytic: grads, indices: Array(0..<params.count), epsilon: 1e-2, r: r) {
      up.forward(x, parameters: $0).data
    }
    Self.report("transposed conv dX", ex)
    Self.report("transposed conv dW, db", ep)
    #expect(ex < 2e-3 && ep < 2e-3, "dX \(ex), dW/db \(ep)")
  }

  @Test func transposedConvolutionForwardByHand() {
    // One input channel, one output channel: Y[2y+a, 2x+b] = W[a, b]·X[y, x] + bias.
    var alloc = ParameterAllocator()
    let up = TransposedConv2x2("u", inChannels: 1, outChannels: 1, allocator: &alloc)
    let params: [Float] = [1, 2, 3, 4, 0.5]
    let x = Tensor(shape: TensorShape(n: 1, c: 1, h: 1, w: 2), data: [1, 10])
    let y = up.forward(x, parameters: params)
    #expect(y.data == [1.5, 2.5, 10.5, 20.5, 3.5, 4.5, 30.5, 40.5])
  }

  @Test func maxPool() {
    // Distinct values 0.01 apart (a shuffled ramp), so ε = 1e-3 never changes a window's argmax.
    let s = TensorShape(n: 2, c: 3, h: 6, w: 7)
    var values = (0..<s.count).map { Float($0) * 0.01 }
    var rng = RandomStream(seed: 31)
    rng.shuffle(&values)
    let x = Tensor(shape: s, data: values)
    let pool = MaxPool2x2()
    let y = pool.forward(x)
    #expect(y.shape == TensorShape(n: 2, c: 3, h: 3, w: 3))
    let r = randomArray(y.data.count, seed: 32)
    let dx = pool.backward(input: x, outputGradient: Tensor(shape: y.shape, data: r))
    let e = finiteDifferenceError(values: x.data, analytic: dx.data, indices: Array(0..<x.data.count), epsilon: 1e-3, r: r) {
      pool.forward(Tensor(shape: s, data: $0)).data
    }
    Self.report("max-pool dX", e)
    #expect(e < 1e-2)
    // Ties go to the first maximum in row-major order (as PyTorch).
    let tie = Tensor(shape: TensorShape(n: 1, c: 1, h: 2, w: 2), data: [1, 3, 3, 2])
    let g = pool.backward(input: tie, outputGradient: Tensor(shape: TensorShape(n: 1, c: 1, h: 1, w: 1), data: [5]))
    #expect(g.data == [0, 5, 0, 0])
  }

  @Test func bilinearUpsampling() {
    let up = BilinearUpsample(factor: 2)
    // PyTorch: interpolate([[1, 2], [3, 4]], scale_factor=2, mode="bilinear", align_corners=False).
    let small = Tensor(shape: TensorShape(n: 1, c: 1, h: 2, w: 2), data: [1, 2, 3, 4])
    #expect(up.forward(small).data == [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4])
    let s = TensorShape(n: 2, c: 2, h: 3, w: 5)
    let x = randomTensor(s, seed: 41)
    let y = up.forward(x)
    let r = randomArray(y.data.count, seed: 42)
    let dx = up.backward(inputShape: s, outputGradient: Tensor(shape: y.shape, data: r))
    let e = finiteDifferenceError(values: x.data, analytic: dx.data, indices: Array(0..<x.data.count), epsilon: 1e-2, r: r) {
      up.forward(Tensor(shape: s, data: $0)).data
    }
    Self.report("bilinear dX", e)
    #expect(e < 2e-3)
  }

  /// N-input concatenation with centre crops: three inputs (two larger than the output, one
  /// its size), values placed by hand and gradients against finite differences.
  @Test func concatenation() {
    let cc = Concat()
    let shapes = [TensorShape(n: 2, c: 2, h: 9, w: 8), TensorShape(n: 2, c: 1, h: 7, w: 6), TensorShape(n: 2, c: 3, h: 5, w: 4)]
    let inputs = shapes.enumerated().map { randomTensor($1, seed: 51 + UInt64($0)) }
    let out = cc.forward(inputs)
    #expect(out.shape == TensorShape(n: 2, c: 6, h: 5, w: 4))
    // In input order, each centre-cropped: (9 − 5)/2, (8 − 4)/2 = (2, 2); (7 − 5)/2, (6 − 4)/2 = (1, 1).
    #expect(out[1, 1, 0, 0] == inputs[0][1, 1, 2, 2])
    #expect(out[0, 2, 3, 2] == inputs[1][0, 0, 4, 3])
    #expect(out[1, 5, 4, 3] == inputs[2][1, 2, 4, 3])
    let r = randomArray(out.data.count, seed: 55)
    let grads = cc.backward(inputShapes: shapes, outputGradient: Tensor(shape: out.shape, data: r))
    for k in 0..<3 {
      let e = finiteDifferenceError(values: inputs[k].data, analytic: grads[k].data, indices: Array(0..<inputs[k].data.count), epsilon: 1e-2, r: r) {
        var changed = inputs
        changed[k] = Tensor(shape: shapes[k], data: $0)
        return cc.forward(changed).data
      }
      Self.report("concat d input \(k)", e)
      #expect(e < 2e-3, "input \(k): \(e)")
    }
    // Outside the crop window the gradient is exactly 0.
    #expect(grads[0][0, 0, 0, 0] == 0 && grads[0][1, 1, 8, 7] == 0 && grads[1][0, 0, 0, 0] == 0)
  }

  @Test(arguments: [(1, false), (2, false), (1, true)])
  func batchNorm(batch: Int, relu: Bool) {
    var alloc = ParameterAllocator()
    var stateAlloc = ParameterAllocator()
    let bn = BatchNorm2D("bn", channels: 3, fusedReLU: relu, allocator: &alloc, stateAllocator: &stateAlloc)
    var params = randomArray(alloc.count, seed: 61, lo: 0.5, hi: 1.5)
    params[bn.bias.range] = ArraySlice(randomArray(3, seed: 62, lo: -0.3, hi: 0.3))
    var state = [Float](repeating: 0, count: stateAlloc.count)
    let s = TensorShape(n: batch, c: 3, h: 4, w: 5)
    let x = randomTensor(s, seed: 63, lo: -2, hi: 2)
    let (y, saved) = bn.forward(x, training: true, parameters: params, state: &state)
    // Per channel the output has mean β and variance γ² (up to ε) before any ReLU.
    if !relu {
      for c in 0..<3 {
        var vals: [Double] = []
        for n in 0..<batch { for i in 0..<20 { vals.append(Double(y.data[(n * 3 + c) * 20 + i])) } }
        let mean = vals.reduce(0, +) / Double(vals.count)
        #expect(abs(mean - Double(params[bn.bias.offset + c])) < 1e-5)
      }
    }
    let r = randomArray(y.data.count, seed: 64)
    var grads = [Float](repeating: 0, count: alloc.count)
    let dx = bn.backward(input: x, output: y, outputGradient: Tensor(shape: s, data: r), saved: saved, parameters: params, gradients: &grads)
    let eps: Float = relu ? 1e-3 : 1e-2
    let ex = finiteDifferenceError(values: x.data, analytic: dx.data, indices: Array(0..<x.data.count), epsilon: eps, r: r) {
      var st = [Float](repeating: 0, count: stateAlloc.count)
      return bn.forward(Tensor(shape: s, data: $0), training: true, parameters: params, state: &st).output.data
    }
    let ep = finiteDifferenceError(values: params, analytic: grads, indices: Array(0..<params.count), epsilon: eps, r: r) {
      var st = [Float](repeating: 0, count: stateAlloc.count)
      return bn.forward(x, training: true, parameters: $0, state: &st).output.data
    }
    Self.report("batch norm N\(batch) relu \(relu) dX", ex)
    Self.report("batch norm N\(batch) relu \(relu) dγ, dβ", ep)
    #expect(ex < 1e-2 && ep < 1e-2, "dX \(ex), dγ/dβ \(ep)")
    // Running statistics moved by momentum 0.1 from (0, 0) towards the batch's.
    #expect(state[bn.runningMean.range].allSatisfy { abs($0) < 0.3 })
  }

  @Test func batchNormEvaluationUsesRunningStatistics() {
    var alloc = ParameterAllocator()
    var stateAlloc = ParameterAllocator()
    let bn = BatchNorm2D("bn", channels: 1, fusedReLU: false, allocator: &alloc, stateAllocator: &stateAlloc)
    let params: [Float] = [2, 1]  // γ, β
    var state: [Float] = [0.5, 4]  // running mean, running variance
    let x = Tensor(shape: TensorShape(n: 1, c: 1, h: 1, w: 2), data: [0.5, 2.5])
    let y = bn.forward(x, training: false, parameters: params, state: &state).output
    // γ·(x − 0.5)/√(4 + 1e-5) + β
    #expect(abs(y.data[0] - 1) < 1e-6 && abs(y.data[1] - 3) < 1e-5)
    #expect(state == [0.5, 4])
    // One training pass: batch mean 1.5, unbiased variance 2 → running (0.6, 3.8).
    _ = bn.forward(x, training: true, parameters: params, state: &state)
    #expect(abs(state[0] - 0.6) < 1e-6 && abs(state[1] - 3.8) < 1e-6)
  }

  @Test func dropoutWithFixedMask() {
    let d = Dropout(probability: 0.5)
    let s = TensorShape(n: 1, c: 2, h: 3, w: 3)
    var rng = RandomStream(seed: 71)
    let mask = d.makeMask(count: s.count, rng: &rng)
    #expect(mask.allSatisfy { $0 == 0 || $0 == 2 })
    #expect(mask.contains(0) && mask.contains(2))
    let x = randomTensor(s, seed: 72)
    let r = randomArray(s.count, seed: 73)
    let dx = d.backward(outputGradient: Tensor(shape: s, data: r), mask: mask)
    let e = finiteDifferenceError(values: x.data, analytic: dx.data, indices: Array(0..<s.count), epsilon: 1e-2, r: r) {
      d.forward(Tensor(shape: s, data: $0), mask: mask).data
    }
    Self.report("dropout dX", e)
    #expect(e < 2e-3)
    // The same stream position gives the same mask.
    var again = RandomStream(seed: 71)
    #expect(d.makeMask(count: s.count, rng: &again) == mask)
    // Inverted scaling keeps the mean: over many draws about half are kept, scaled by 2.
    var big = RandomStream(seed: 74)
    let m = d.makeMask(count: 100_000, rng: &big)
    let mean = m.reduce(0, +) / Float(m.count)
    #expect(abs(mean - 1) < 0.02)
  }

  @Test func reluAndSoftmax() {
    let s = TensorShape(n: 2, c: 3, h: 2, w: 3)
    let x = randomTensor(s, seed: 81, lo: -3, hi: 3)
    let sm = PixelSoftmax()
    let p = sm.forward(x)
    for n in 0..<2 {
      for i in 0..<6 {
        let sum = (0..<3).map { p.data[n * 18 + $0 * 6 + i] }.reduce(0, +)
        #expect(abs(sum - 1) < 1e-6)
      }
    }
    let r = randomArray(s.count, seed: 82)
    let dz = sm.backward(probabilities: p, outputGradient: Tensor(shape: s, data: r))
    let e = finiteDifferenceError(values: x.data, analytic: dz.data, indices: Array(0..<s.count), epsilon: 1e-2, r: r) {
      sm.forward(Tensor(shape: s, data: $0)).data
    }
    Self.report("softmax dZ", e)
    #expect(e < 1e-2)
    // ReLU: values away from 0 so ε = 1e-3 does not cross the kink.
    let xr = Tensor(shape: s, data: x.data.map { abs($0) < 0.01 ? 0.5 : $0 })
    let yr = ReLU().forward(xr)
    let dr = ReLU().backward(output: yr, outputGradient: Tensor(shape: s, data: r))
    let er = finiteDifferenceError(values: xr.data, analytic: dr.data, indices: Array(0..<s.count), epsilon: 1e-3, r: r) {
      ReLU().forward(Tensor(shape: s, data: $0)).data
    }
    Self.report("relu dX", er)
    #expect(er < 1e-2)
  }
}
