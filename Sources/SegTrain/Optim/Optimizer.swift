import SegCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The optimiser and its hyper-parameters (PyTorch's `torch.optim.SGD` and `torch.optim.Adam`
/// semantics, without Nesterov, dampening or AMSGrad).
///
/// JSON keys: `kind` (`sgd` | `adam`), `momentum` (SGD μ), `beta1`, `beta2`, `epsilon`
/// (Adam), `weight_decay` (both).
public struct OptimizerConfiguration: Codable, Sendable, Equatable {
  public enum Kind: String, Codable, Sendable, CaseIterable {
    case sgd
    case adam
  }

  public var kind: Kind
  /// SGD momentum μ in [0, 1) (the U-Net paper uses 0.99).
  public var momentum: Float
  /// Adam β₁, β₂ in [0, 1).
  public var beta1: Float
  public var beta2: Float
  /// Adam ε > 0.
  public var epsilon: Float
  /// L2 weight decay λ ≥ 0, added to the gradient: g ← g + λ·θ.
  public var weightDecay: Float

  public init(
    kind: Kind, momentum: Float = 0.99, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
    weightDecay: Float = 0
  ) {
    self.kind = kind
    self.momentum = momentum
    self.beta1 = beta1
    self.beta2 = beta2
    self.epsilon = epsilon
    self.weightDecay = weightDecay
  }

  /// SGD with momentum μ.
  public static func sgd(momentum: Float = 0.99, weightDecay: Float = 0) -> OptimizerConfiguration {
    OptimizerConfiguration(kind: .sgd, momentum: momentum, weightDecay: weightDecay)
  }

  /// Adam.
  public static func adam(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0) -> OptimizerConfiguration {
    OptimizerConfiguration(kind: .adam, beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay)
  }

  enum CodingKeys: String, CodingKey {
    case kind, momentum, beta1, beta2, epsilon
    case weightDecay = "weight_decay"
  }

  /// What is wrong with these values (empty when usable).
  public var problems: [String] {
    var out: [String] = []
    if !(momentum >= 0 && momentum < 1) { out.append("momentum must be in [0, 1), not \(momentum)") }
    if !(beta1 >= 0 && beta1 < 1) { out.append("beta1 must be in [0, 1), not \(beta1)") }
    if !(beta2 >= 0 && beta2 < 1) { out.append("beta2 must be in [0, 1), not \(beta2)") }
    if !(epsilon > 0) { out.append("epsilon must be > 0, not \(epsilon)") }
    if !(weightDecay >= 0) { out.append("weight_decay must be ≥ 0, not \(weightDecay)") }
    return out
  }

  /// Floats of state per parameter: SGD keeps the momentum buffer, Adam the two moments.
  public var stateMultiplier: Int { kind == .sgd ? 1 : 2 }
}

/// An optimiser with its state in one flat buffer, updating a flat parameter buffer in place.
///
/// SGD (PyTorch, dampening 0, not Nesterov), per parameter θ with gradient g:
///
///     g ← g + λ·θ;   v ← μ·v + g;   θ ← θ − η·v        (v starts at 0, so v₁ = g₁ as in PyTorch)
///
/// Adam (PyTorch, not AMSGrad, L2 decay added to the gradient), at step t = 1, 2, …:
///
///     g ← g + λ·θ;   m ← m + (1 − β₁)·(g − m);   v ← β₂·v + (1 − β₂)·g²
///     θ ← θ − (η/(1 − β₁ᵗ)) · m / (√v/√(1 − β₂ᵗ) + ε)
///
/// written in PyTorch's order of operations (`lerp_`, `addcmul_`, `addcdiv_`) so results
/// agree to rounding. State layout: SGD: v (P floats); Adam: m (P) then v (P).
/// The update runs over disjoint parameter ranges in parallel.
public struct Optimizer: Sendable {
  public let configuration: OptimizerConfiguration
  /// The state buffer (see the type's discussion).
  public internal(set) var state: [Float]
  /// Updates done so far (Adam's t).
  public internal(set) var steps: Int

  /// A fresh optimiser for `parameterCount` parameters.
  public init(_ configuration: OptimizerConfiguration, parameterCount: Int) {
    precondition(configuration.problems.isEmpty, "Optimizer: \(configuration.problems.joined(separator: "; "))")
    self.configuration = configuration
    state = [Float](repeating: 0, count: parameterCount * configuration.stateMultiplier)
    steps = 0
  }

  /// An optimiser restored from a checkpoint's state.
  init(_ configuration: OptimizerConfiguration, state: [Float], steps: Int) {
    self.configuration = configuration
    self.state = state
    self.steps = steps
  }

  /// One update of `parameters` with `gradients` at learning rate η.
  ///
  /// - Parameter zeroGradients: also set every gradient to 0 in the same pass (the next
  ///   step's zero-grad, saving a pass over the buffer).
  public mutating func update(
    parameters: inout [Float], gradients: inout [Float], learningRate lr: Float, zeroGradients: Bool = false
  ) {
    let n = parameters.count
    precondition(gradients.count == n, "Optimizer: \(gradients.count) gradients for \(n) parameters")
    precondition(state.count == n * configuration.stateMultiplier, "Optimizer: state of \(state.count) floats for \(n) parameters")
    steps += 1
    let cfg = configuration
    let t = Double(steps)
    parameters.withUnsafeMutableBufferPointer { pp in
      gradients.withUnsafeMutableBufferPointer { gp in
        state.withUnsafeMutableBufferPointer { sp in
          let p = SharedBuffer(base(pp)), g = SharedBuffer(base(gp)), s = SharedBuffer(base(sp))
          let ranges = Parallel.ranges(n, parts: ComputeThreads.count * 4, minimum: 1 << 16)
          // Disjoint writes: task r updates parameters, gradients and state in ranges[r] only.
          Parallel.forEach(tasks: ranges.count) { _, r in
            let range = ranges[r]
            switch cfg.kind {
            case .sgd:
              let mu = cfg.momentum, wd = cfg.weightDecay
              for i in range {
                let grad = wd == 0 ? g[i] : g[i] + wd * p[i]
                let v = mu * s[i] + grad
                s[i] = v
                p[i] -= lr * v
                if zeroGradients { g[i] = 0 }
              }
            case .adam:
              let b1 = cfg.beta1, b2 = cfg.beta2, eps = cfg.epsilon, wd = cfg.weightDecay
              let bc1 = 1 - pow(Double(b1), t), bc2 = 1 - pow(Double(b2), t)
              let stepSize = Float(Double(lr) / bc1)
              let bc2Sqrt = Float(bc2.squareRoot())
              for i in range {
                let grad = wd == 0 ? g[i] : g[i] + wd * p[i]
                let m = s[i] + (1 - b1) * (grad - s[i])
                let v = s[n + i] * b2 + (1 - b2) * grad * grad
                s[i] = m
                s[n + i] = v
                let denom = v.squareRoot() / bc2Sqrt + eps
                p[i] += (-stepSize * m) / denom  // addcdiv_: θ + (value·m)/denom
                if zeroGradients { g[i] = 0 }
              }
            }
          }
        }
      }
    }
  }
}

/// The global L2 norm of a gradient buffer, ‖g‖₂ = √(Σ gᵢ²), accumulated in Double over fixed
/// blocks (the value does not depend on the thread count).
public func globalNorm(_ g: [Float]) -> Double {
  let ranges = Parallel.ranges(g.count, parts: max(1, g.count / (1 << 16)))
  var partial = [Double](repeating: 0, count: ranges.count)
  g.withUnsafeBufferPointer { gp in
    partial.withUnsafeMutableBufferPointer { pp in
      guard let gb = gp.baseAddress, let pb = pp.baseAddress else { return }
      let gs = SharedBuffer(gb), ps = SharedBuffer(pb)
      // Disjoint writes: task r writes partial[r].
      Parallel.forEach(tasks: ranges.count) { _, r in
        var acc: Float = 0
        var sum = 0.0
        var k = 0
        for i in ranges[r] {
          acc += gs[i] * gs[i]
          k += 1
          if k == 256 {
            sum += Double(acc)
            acc = 0
            k = 0
          }
        }
        ps[r] = sum + Double(acc)
      }
    }
  }
  return partial.reduce(0, +).squareRoot()
}

/// Scales gradients so their global L2 norm is at most `maxNorm` (PyTorch's
/// `clip_grad_norm_`: factor maxNorm/(‖g‖ + 1e-6), applied only when below 1). Returns ‖g‖
/// before clipping.
@discardableResult
public func clipGradientNorm(_ g: inout [Float], maxNorm: Float) -> Double {
  precondition(maxNorm > 0, "clipGradientNorm: maxNorm must be > 0")
  let norm = globalNorm(g)
  let factor = Double(maxNorm) / (norm + 1e-6)
  if factor < 1 {
    let f = Float(factor)
    for i in 0..<g.count { g[i] *= f }
  }
  return norm
}
