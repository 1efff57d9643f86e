import SegCore

/// Batch normalization over N, H and W per channel, with an optional fused ReLU.
///
/// Layout: X and Y are N × C × H × W (NCHW); γ (weight) and β (bias) are C parameters; the
/// running mean and variance are C values each in the model's state buffer (not parameters:
/// they get no gradient). In training mode, with M = N·H·W values per channel,
///
///     μ = (1/M)·Σ X,   σ² = (1/M)·Σ (X − μ)²,   X̂ = (X − μ)/√(σ² + ε),   Y = γ·X̂ + β
///
/// (with batch 1 this normalises over the H × W plane), and the running statistics move by
/// `momentum`: r ← (1 − m)·r + m·batch, using the unbiased variance σ²·M/(M − 1) (PyTorch's
/// `BatchNorm2d`, m = 0.1, ε = 1e-5). In evaluation mode μ and σ² are the running values.
/// Then Y ← max(Y, 0) when `fusedReLU` is set. Statistics are accumulated in Double.
///
/// Backward (training mode), with G = dY·[Y > 0] when the ReLU is fused:
///
///     dγ += Σ G·X̂,   dβ += Σ G,   dX = (γ/√(σ² + ε))·(G − mean(G) − X̂·mean(G·X̂))
public struct BatchNorm2D: Sendable {
  public let channels: Int
  /// γ, C values.
  public let weight: ParameterView
  /// β, C values.
  public let bias: ParameterView
  /// Running mean (C values) in the state buffer.
  public let runningMean: ParameterView
  /// Running variance (C values) in the state buffer.
  public let runningVariance: ParameterView
  public let fusedReLU: Bool
  public let epsilon: Float = 1e-5
  public let momentum: Float = 0.1

  /// - Parameters:
  ///   - allocator: hands out γ and β (parameters).
  ///   - stateAllocator: hands out the running statistics (state, no gradient).
  public init(
    _ name: String, channels: Int, fusedReLU: Bool, allocator: inout ParameterAllocator,
    stateAllocator: inout ParameterAllocator
  ) {
    precondition(channels >= 1, "BatchNorm2D \(name): channels must be ≥ 1")
    self.channels = channels
    self.fusedReLU = fusedReLU
    weight = allocator.allocate(name + ".weight", shape: [channels])
    bias = allocator.allocate(name + ".bias", shape: [channels])
    runningMean = stateAllocator.allocate(name + ".running_mean", shape: [channels])
    runningVariance = stateAllocator.allocate(name + ".running_var", shape: [channels])
  }

  /// Forward on raw buffers.
  ///
  /// - Parameters:
  ///   - saved: 2·C floats; training mode writes μ and 1/√(σ² + ε) per channel there for the
  ///     backward pass.
  ///   - state: the state buffer (running statistics), updated in training mode.
  ///   - outputItemStride: floats between output items (≥ C·H·W; larger when Y is a channel
  ///     block of a wider tensor, e.g. a concatenation).
  func forward(
    input x: UnsafePointer<Float>, shape s: TensorShape, output y: UnsafeMutablePointer<Float>,
    outputItemStride: Int? = nil, training: Bool, parameters: UnsafePointer<Float>, state: UnsafeMutablePointer<Float>,
    saved: UnsafeMutablePointer<Float>
  ) {
    let ostride = outputItemStride ?? s.item
    precondition(s.c == channels, "BatchNorm2D: input has \(s.c) channels, expected \(channels)")
    let m = s.n * s.plane
    precondition(!training || m > 1, "BatchNorm2D: training needs more than one value per channel")
    let xs = SharedBuffer(x), ys = SharedBuffer(y), ps = SharedBuffer(parameters)
    let st = SharedBuffer(state), sv = SharedBuffer(saved)
    let g0 = weight.offset, b0 = bias.offset, rm = runningMean.offset, rv = runningVariance.offset
    let eps = Double(epsilon), mom = momentum, relu = fusedReLU
    // Disjoint writes: task c writes channel c of Y, saved[c], saved[C + c] and state[c].
    Parallel.forEach(tasks: channels) { _, c in
      let mean: Double
      let variance: Double
      if training {
        // Two passes (mean, then squared deviations: no cancellation), each vectorised with
        // float lanes per block of 4096 and the blocks added in Double.
        var sum = 0.0
        for n in 0..<s.n { sum += sumOfElements(xs.readOnly + n * s.item + c * s.plane, count: s.plane) }
        mean = sum / Double(m)
        var sq = 0.0
        for n in 0..<s.n {
          sq += sumOfSquaredDeviations(xs.readOnly + n * s.item + c * s.plane, count: s.plane, from: Float(mean))
        }
        variance = sq / Double(m)
        st[rm + c] = (1 - mom) * st[rm + c] + mom * Float(mean)
        st[rv + c] = (1 - mom) * st[rv + c] + mom * Float(variance * Double(m) / Double(m - 1))
      } else {
        mean = Double(st[rm + c])
        variance = Double(st[rv + c])
      }
      let inv = 1 / (variance + eps).squareRoot()
      sv[c] = Float(mean)
      sv[channels + c] = Float(inv)
      let scale = Float(Double(ps[g0 + c]) * inv)
      let shift = ps[b0 + c] - Float(mean) * scale
      for n in 0..<s.n {
        let p = xs.readOnly + n * s.item + c * s.plane
        let q = ys + (n * ostride + c * s.plane)
        if relu {
          for i in 0..<s.plane {
            let v = p[i] * scale + shift
            q[i] = v > 0 ? v : 0
          }
        } else {
          for i in 0..<s.plane { q[i] = p[i] * scale + shift }
        }
      }
    }
  }

  /// Backward (training mode) on raw buffers: adds dγ, dβ into `gradients`, writes dX.
  ///
  /// - Parameters:
  ///   - y: the forward output (for the fused ReLU's mask); y and dY are `outputItemStride`
  ///     floats apart per item (default C·H·W).
  ///   - saved: what the forward pass saved.
  ///   - accumulate: add dX into `inputGradient` instead of overwriting it.
  func backward(
    input x: UnsafePointer<Float>, output y: UnsafePointer<Float>, shape s: TensorShape,
    outputGradient dy: UnsafePointer<Float>, outputItemStride: Int? = nil, inputGradient dx: UnsafeMutablePointer<Float>,
    accumulate: Bool = false,
    parameters: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>, saved: UnsafePointer<Float>
  ) {
    let ostride = outputItemStride ?? s.item
    let m = Double(s.n * s.plane)
    let xs = SharedBuffer(x), ys = SharedBuffer(y), dys = SharedBuffer(dy), dxs = SharedBuffer(dx)
    let ps = SharedBuffer(parameters), gs = SharedBuffer(gradients), sv = SharedBuffer(saved)
    let g0 = weight.offset, b0 = bias.offset, relu = fusedReLU, channels = channels, accumulate = accumulate
    // Disjoint writes: task c writes channel c of dX and gradient entries g0 + c, b0 + c.
    Parallel.forEach(tasks: channels) { _, c in
      let mean = sv[c], inv = sv[channels + c]
      var sumG = 0.0, sumGX = 0.0
      for n in 0..<s.n {
        let off = n * s.item + c * s.plane
        let yoff = n * ostride + c * s.plane
        let (a, b) = maskedGradientSums(
          dys.readOnly + yoff, mask: relu ? ys.readOnly + yoff : nil, input: xs.readOnly + off, count: s.plane, mean: mean)
        sumG += a
        sumGX += b * Double(inv)
      }
      gs[g0 + c] += Float(sumGX)
      gs[b0 + c] += Float(sumG)
      let meanG = Float(sumG / m), meanGX = Float(sumGX / m)
      let k = ps[g0 + c] * inv
      for n in 0..<s.n {
        let off = n * s.item + c * s.plane
        let yoff = n * ostride + c * s.plane
        let p = xs.readOnly + off, q = ys.readOnly + yoff, g = dys.readOnly + yoff
        let d = dxs + off
        if accumulate {
          for i in 0..<s.plane {
            let gi = (relu && !(q[i] > 0)) ? 0 : g[i]
            let xhat = (p[i] - mean) * inv
            d[i] += k * (gi - meanG - xhat * meanGX)
          }
        } else {
          for i in 0..<s.plane {
            let gi = (relu && !(q[i] > 0)) ? 0 : g[i]
            let xhat = (p[i] - mean) * inv
            d[i] = k * (gi - meanG - xhat * meanGX)
          }
        }
      }
    }
  }

  /// Forward on tensors; returns Y and the saved statistics (2·C floats).
  public func forward(
    _ x: Tensor, training: Bool, parameters: [Float], state: inout [Float]
  ) -> (output: Tensor, saved: [Float]) {
    checkTensor(x, "BatchNorm2D.forward")
    precondition(parameters.count >= bias.range.upperBound && state.count >= runningVariance.range.upperBound, "BatchNorm2D.forward: parameter or state buffer too short")
    var out = Tensor(shape: x.shape)
    var saved = [Float](repeating: 0, count: 2 * channels)
    x.data.withUnsafeBufferPointer { xp in
      parameters.withUnsafeBufferPointer { pp in
        state.withUnsafeMutableBufferPointer { sp in
          saved.withUnsafeMutableBufferPointer { svp in
            out.data.withUnsafeMutableBufferPointer { yp in
              forward(input: base(xp), shape: x.shape, output: base(yp), training: training, parameters: base(pp), state: base(sp), saved: base(svp))
            }
          }
        }
      }
    }
    return (out, saved)
  }

  /// Adds dγ and dβ into `gradients`; returns dL/dX (training mode).
  public func backward(
    input x: Tensor, output y: Tensor, outputGradient dy: Tensor, saved: [Float], parameters: [Float],
    gradients: inout [Float]
  ) -> Tensor {
    checkTensor(x, "BatchNorm2D.backward")
    checkTensor(y, "BatchNorm2D.backward")
    checkTensor(dy, "BatchNorm2D.backward")
    precondition(x.shape == y.shape && y.shape == dy.shape, "BatchNorm2D.backward: shapes differ")
    precondition(saved.count == 2 * channels && gradients.count == parameters.count && parameters.count >= bias.range.upperBound, "BatchNorm2D.backward: buffer sizes do not match")
    var dx = Tensor(shape: x.shape)
    x.data.withUnsafeBufferPointer { xp in
      y.data.withUnsafeBufferPointer { yp in
        dy.data.withUnsafeBufferPointer { gp in
          saved.withUnsafeBufferPointer { svp in
            parameters.withUnsafeBufferPointer { pp in
              gradients.withUnsafeMutableBufferPointer { gr in
                dx.data.withUnsafeMutableBufferPointer { dp in
                  backward(input: base(xp), output: base(yp), shape: x.shape, outputGradient: base(gp), inputGradient: base(dp), parameters: base(pp), gradients: base(gr), saved: base(svp))
                }
              }
            }
          }
        }
      }
    }
    return dx
  }
}

/// Inverted dropout: in training, each element is kept with probability 1 − p and scaled by
/// 1/(1 − p), or set to 0; in evaluation it is the identity. Any layout.
///
/// The mask is drawn from a ``RandomStream`` (one 24-bit uniform per element, kept when
/// u ≥ p), so a run is reproducible from its seed and step. Backward multiplies dY by the same
/// mask. The U-Net applies it to the output of the bottom block (the end of the contracting
/// path, as in the paper).
public struct Dropout: Sendable {
  /// The drop probability p, 0 ≤ p < 1.
  public let probability: Float

  public init(probability: Float) {
    precondition(probability >= 0 && probability < 1, "Dropout: probability must be in [0, 1)")
    self.probability = probability
  }

  /// The multipliers for `count` elements: 0 (dropped) or 1/(1 − p) (kept).
  public func makeMask(count: Int, rng: inout RandomStream) -> [Float] {
    var mask = [Float](repeating: 0, count: count)
    fillMask(mask: &mask, rng: &rng)
    return mask
  }

  /// Fills `mask` with multipliers drawn from `rng`.
  func fillMask(mask: inout [Float], rng: inout RandomStream) {
    mask.withUnsafeMutableBufferPointer { fillMask(base($0), count: $0.count, rng: &rng) }
  }

  func fillMask(_ mask: UnsafeMutablePointer<Float>, count: Int, rng: inout RandomStream) {
    let keep = 1 / (1 - probability)
    for i in 0..<count { mask[i] = rng.nextFloat() >= probability ? keep : 0 }
  }

  /// Y = X ⊙ mask.
  public func forward(_ x: Tensor, mask: [Float]) -> Tensor {
    precondition(mask.count == x.data.count, "Dropout: mask has \(mask.count) elements, input \(x.data.count)")
    return Tensor(shape: x.shape, data: zip(x.data, mask).map { $0 * $1 })
  }

  /// dX = dY ⊙ mask.
  public func backward(outputGradient dy: Tensor, mask: [Float]) -> Tensor {
    forward(dy, mask: mask)
  }
}

/// Σ (p[i] − m)² for i < count: the deviations in float, their squares summed in Double lanes
/// (vectorised; as precise as the scalar Double loop it replaced).
@inline(__always)
func sumOfSquaredDeviations(_ p: UnsafePointer<Float>, count: Int, from m: Float) -> Double {
  var acc = SIMD8<Double>(repeating: 0)
  var i = 0
  let mv = SIMD8<Float>(repeating: m)
  while i + 8 <= count {
    let d = SIMD8<Double>(load8(p + i) - mv)
    acc += d * d
    i += 8
  }
  var total = acc.sum()
  while i < count {
    let d = Double(p[i] - m)
    total += d * d
    i += 1
  }
  return total
}

/// (Σ G, Σ G·(X − m)) with G = dY, masked by [Y > 0] when `mask` (the ReLU's output) is
/// given: batch norm's backward reductions, vectorised, summed in Double lanes.
@inline(__always)
func maskedGradientSums(
  _ g: UnsafePointer<Float>, mask y: UnsafePointer<Float>?, input x: UnsafePointer<Float>, count: Int, mean m: Float
) -> (Double, Double) {
  var a = SIMD8<Double>(repeating: 0), b = SIMD8<Double>(repeating: 0)
  var i = 0
  let mv = SIMD8<Float>(repeating: m)
  while i + 8 <= count {
    var gv = load8(g + i)
    if let y { gv.replace(with: 0, where: .!(load8(y + i) .> 0)) }
    let gd = SIMD8<Double>(gv)
    a += gd
    b += gd * SIMD8<Double>(load8(x + i) - mv)
    i += 8
  }
  var sumG = a.sum(), sumGX = b.sum()
  while i < count {
    let gi = (y.map { $0[i] > 0 } ?? true) ? g[i] : 0
    sumG += Double(gi)
    sumGX += Double(gi) * Double(x[i] - m)
    i += 1
  }
  return (sumG, sumGX)
}
