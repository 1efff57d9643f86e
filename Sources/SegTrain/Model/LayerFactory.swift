import SegCore

/// How one parameter view starts (He et al. 2015, doi:10.1109/ICCV.2015.123, as the U-Net
/// paper prescribes): weights ~ N(0, 2/fan_in) with fan_in the number of inputs each output
/// sums (C_in·k² for a k×k convolution, C_in for the 2×2 transposed convolution), biases 0,
/// batch-norm γ 1 and β 0.
enum Initialisation: Sendable, Equatable {
  case he(fanIn: Int)
  case zero
  case one
}

/// Makes a network's layers, handing out consecutive views of the flat parameter buffer (and of
/// the batch-norm state buffer) in the order the layers are made, and recording how each view
/// starts. Builders make the layers in the parameter order of the PyTorch reference
/// (../shared/bench/peers.py), then wire them into a graph in execution order.
struct LayerFactory {
  var parameters = ParameterAllocator()
  var state = ParameterAllocator()
  /// One entry per parameter view, in buffer order.
  private(set) var initialisation: [Initialisation] = []

  /// A k×k convolution `name.weight` (C_out × C_in × k × k) and `name.bias`.
  mutating func conv(
    _ name: String, _ inChannels: Int, _ outChannels: Int, kernel: Int = 3, padding: Int, bias: Bool = true, relu: Bool = false
  ) -> Conv2D {
    let c = Conv2D(
      name, inChannels: inChannels, outChannels: outChannels, kernelSize: kernel, padding: padding, bias: bias,
      fusedReLU: relu, allocator: &parameters)
    initialisation.append(.he(fanIn: inChannels * kernel * kernel))
    if bias { initialisation.append(.zero) }
    return c
  }

  /// A 2×2 stride-2 transposed convolution `name.weight` (C_in × C_out × 2 × 2) and `name.bias`.
  mutating func transposed(_ name: String, _ inChannels: Int, _ outChannels: Int) -> TransposedConv2x2 {
    let t = TransposedConv2x2(name, inChannels: inChannels, outChannels: outChannels, allocator: &parameters)
    initialisation += [.he(fanIn: inChannels), .zero]
    return t
  }

  /// A batch norm `name.weight` (γ), `name.bias` (β) and its running statistics.
  mutating func batchNorm(_ name: String, _ channels: Int, relu: Bool = true) -> BatchNorm2D {
    let b = BatchNorm2D(name, channels: channels, fusedReLU: relu, allocator: &parameters, stateAllocator: &state)
    initialisation += [.one, .zero]
    return b
  }

  /// A 3×3 convolution followed by ReLU (`name.conv`), or by batch norm and ReLU (`name.conv`
  /// without bias, then `name.bn`: a bias before batch norm would be removed by it).
  mutating func unit(_ name: String, _ inChannels: Int, _ outChannels: Int, padding: Int, batchNorm: Bool) -> ConvUnit {
    let conv = self.conv(name + ".conv", inChannels, outChannels, padding: padding, bias: !batchNorm, relu: !batchNorm)
    let norm = batchNorm ? self.batchNorm(name + ".bn", outChannels) : nil
    return ConvUnit(conv: conv, norm: norm)
  }
}

/// A 3×3 convolution with ReLU, or convolution, batch norm and ReLU.
struct ConvUnit: Sendable {
  let conv: Conv2D
  let norm: BatchNorm2D?
}

extension GraphBuilder {
  /// Adds a unit's nodes (`name`, and `name.bn` with batch norm); returns its output.
  mutating func unit(_ u: ConvUnit, _ x: Int, _ name: String) -> Int {
    let z = add(name, .conv(u.conv), [x])
    guard let norm = u.norm else { return z }
    return add(name + ".bn", .batchNorm(norm), [z])
  }
}

/// A network's graph and the layout of its buffers, as a builder makes them.
struct BuiltNetwork: Sendable {
  var graph: Graph
  var parameterViews: [ParameterView]
  var stateViews: [ParameterView]
  var initialisation: [Initialisation]
  var parameterCount: Int
  var stateCount: Int

  init(graph: Graph, factory: LayerFactory) {
    self.graph = graph.pruned().fusingUpsampledConvolutions()
    parameterViews = factory.parameters.views
    stateViews = factory.state.views
    initialisation = factory.initialisation
    parameterCount = factory.parameters.count
    stateCount = factory.state.count
    precondition(initialisation.count == parameterViews.count, "LayerFactory: \(initialisation.count) initialisations for \(parameterViews.count) views")
  }

  /// Parameters and state drawn from `rng` in parameter order (one Gaussian per weight
  /// element), so a seed fixes the network.
  func initialValues(_ rng: inout RandomStream) -> (parameters: [Float], state: [Float]) {
    var p = [Float](repeating: 0, count: parameterCount)
    for (v, how) in zip(parameterViews, initialisation) {
      switch how {
      case .zero: continue
      case .one: for i in v.range { p[i] = 1 }
      case .he(let fanIn):
        let std = (2 / Double(fanIn)).squareRoot()
        for i in v.range { p[i] = Float(rng.gaussian() * std) }
      }
    }
    var s = [Float](repeating: 0, count: stateCount)
    for v in stateViews where v.name.hasSuffix(".running_var") {
      for i in v.range { s[i] = 1 }
    }
    return (p, s)
  }
}
