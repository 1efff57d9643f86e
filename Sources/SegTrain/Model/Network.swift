import SegCore
import SegModel

/// A network: its configuration, its graph, all parameters in one flat buffer and the
/// batch-norm running statistics in a second flat buffer.
///
/// Layout of every tensor is NCHW. The parameter buffer holds the layers' weights and biases in
/// the parameter order of the PyTorch reference (../shared/bench/peers.py; see ``UNetBuilder``,
/// ``UNetPlusPlusBuilder`` and ``UNet3PlusBuilder``); each named range is a ``ParameterView`` in
/// ``parameterViews``. Initialisation: see ``Initialisation``; draws come from
/// `RandomStream(seed:path:[1])` in parameter order, so a seed fixes the network.
public struct Network: Sendable {
  public let configuration: NetworkConfiguration
  /// Named ranges of ``parameters``, in buffer order.
  public let parameterViews: [ParameterView]
  /// Named ranges of ``state`` (batch-norm running statistics).
  public let stateViews: [ParameterView]
  /// All learnable parameters, flat.
  public var parameters: [Float]
  /// Batch-norm running means and variances, flat (empty without batch norm).
  public var state: [Float]
  /// The graph with every head, as trained.
  let trainingGraph: Graph

  /// Stream path for initialisation draws under the seed.
  static let initialisationStream: UInt64 = 1

  /// A freshly initialised network.
  ///
  /// - Parameter configuration: must have no ``NetworkConfiguration/problems`` (checked by
  ///   precondition; validate user input before).
  public init(configuration: NetworkConfiguration, seed: UInt64) {
    let built = Self.build(configuration, training: true)
    var rng = RandomStream(seed: seed, path: [Self.initialisationStream])
    let (p, s) = built.initialValues(&rng)
    self.init(configuration: configuration, built: built, parameters: p, state: s)
  }

  /// A freshly initialised U-Net.
  public init(configuration: UNetConfiguration, seed: UInt64) {
    self.init(configuration: .unet(configuration), seed: seed)
  }

  /// The layers and buffers of a configuration, parameters all zero.
  init(structureOf configuration: NetworkConfiguration) {
    let built = Self.build(configuration, training: true)
    self.init(
      configuration: configuration, built: built, parameters: [Float](repeating: 0, count: built.parameterCount),
      state: [Float](repeating: 0, count: built.stateCount))
  }

  private init(configuration: NetworkConfiguration, built: BuiltNetwork, parameters: [Float], state: [Float]) {
    self.configuration = configuration
    parameterViews = built.parameterViews
    stateViews = built.stateViews
    trainingGraph = built.graph
    self.parameters = parameters
    self.state = state
  }

  /// The graph and buffer layout of a configuration: the training graph (every head, dropout),
  /// or the prediction graph (no dropout; the heads `inference` asks for).
  static func build(_ configuration: NetworkConfiguration, training: Bool, inference: InferenceSettings = InferenceSettings()) -> BuiltNetwork {
    precondition(configuration.problems.isEmpty, "Network: invalid configuration: \(configuration.problems.joined(separator: "; "))")
    switch configuration {
    case .unet(let c): return UNetBuilder.build(c, training: training)
    case .unetpp(let c):
      let prune = !training && inference.heads == .prune ? inference.pruneDepth : nil
      return UNetPlusPlusBuilder.build(c, training: training, pruneDepth: prune)
    case .unet3p(let c):
      var built = UNet3PlusBuilder.build(c, training: training)
      if !training {  // prediction reads head 0 only (P_0, gated)
        built.graph.heads = [built.graph.heads[0]]
        built.graph = built.graph.pruned()
      }
      return built
    }
  }

  /// Number of learnable parameters.
  public var parameterCount: Int { parameters.count }

  /// The number of heads the training loss sees.
  public var headCount: Int { trainingGraph.heads.count }

  /// The view named `name`, if any.
  public func view(named name: String) -> ParameterView? {
    parameterViews.first { $0.name == name } ?? stateViews.first { $0.name == name }
  }

  /// Multiply–accumulates of all convolutions in one training-graph forward pass of an input
  /// of `height` × `width`, batch 1.
  public func multiplyAccumulates(height: Int, width: Int) -> Int {
    GraphPlan(trainingGraph, input: TensorShape(n: 1, c: configuration.inputChannels, h: height, w: width), training: false)
      .multiplyAccumulates
  }

  /// The output shape (N × label classes × Ho × Wo) of a prediction for an input shape.
  public func predictionShape(for input: TensorShape) -> TensorShape? {
    guard input.c == configuration.inputChannels, let h = configuration.outputSize(forInput: input.h),
      let w = configuration.outputSize(forInput: input.w)
    else { return nil }
    return TensorShape(n: input.n, c: configuration.labelClasses, h: h, w: w)
  }

  /// Buffers for prediction on inputs of `inputShape` (which must be legal for the network).
  public func predictionWorkspace(inputShape: TensorShape, settings: InferenceSettings = InferenceSettings()) -> NetworkWorkspace {
    precondition(settings.problem(for: configuration) == nil, "Network: \(settings.problem(for: configuration) ?? "")")
    let graph = Self.build(configuration, training: false, inference: settings).graph
    return NetworkWorkspace(graph: graph, configuration: configuration, inputShape: checkedShape(inputShape), training: false)
  }

  /// Buffers for training (every activation kept, gradients) on inputs of `inputShape`.
  func trainingWorkspace(inputShape: TensorShape) -> NetworkWorkspace {
    NetworkWorkspace(graph: trainingGraph, configuration: configuration, inputShape: checkedShape(inputShape), training: true)
  }

  /// Buffers to evaluate the training loss without gradients (every head, no dropout).
  func evaluationWorkspace(inputShape: TensorShape) -> NetworkWorkspace {
    NetworkWorkspace(graph: trainingGraph, configuration: configuration, inputShape: checkedShape(inputShape), training: false)
  }

  private func checkedShape(_ s: TensorShape) -> TensorShape {
    precondition(s.c == configuration.inputChannels, "Network: input has \(s.c) channels, the network takes \(configuration.inputChannels)")
    precondition(s.n >= 1, "Network: empty batch")
    precondition(
      configuration.outputSize(forInput: s.h) != nil && configuration.outputSize(forInput: s.w) != nil,
      "Network: input \(s.h)×\(s.w) is not legal for \(configuration.geometry.summary); see NetworkGeometry.outputSize(forInput:)")
    return s
  }

  /// Runs `ws`'s graph forward in evaluation mode (no dropout; batch norm uses its running
  /// statistics).
  func forwardEvaluation(_ input: Tensor, workspace ws: NetworkWorkspace) {
    checkTensor(input, "Network")
    precondition(ws.inputShape == input.shape && ws.configuration == configuration, "Network: workspace planned for another input or network")
    var unusedState = state  // evaluation mode reads the running statistics only
    parameters.withUnsafeBufferPointer { pp in
      unusedState.withUnsafeMutableBufferPointer { sp in
        input.data.withUnsafeBufferPointer { xp in
          ws.graph.forward(input: base(xp), parameters: base(pp), state: sp.baseAddress, workspace: ws, training: false, dropout: nil)
        }
      }
    }
  }

  /// The raw outputs of every head of the prediction graph (logits or probabilities), in
  /// evaluation mode.
  public func headOutputs(_ input: Tensor, settings: InferenceSettings = InferenceSettings(), workspace: NetworkWorkspace? = nil) -> [Tensor] {
    let ws = workspace.flatMap { $0.inputShape == input.shape && $0.configuration == configuration ? $0 : nil }
      ?? predictionWorkspace(inputShape: input.shape, settings: settings)
    forwardEvaluation(input, workspace: ws)
    return input.data.withUnsafeBufferPointer { xp in
      ws.heads.map { h in
        let s = ws.shape(h)
        return Tensor(shape: s, data: Array(UnsafeBufferPointer(start: ws.activation(h, input: base(xp)), count: s.count)))
      }
    }
  }

  /// Logits (N × K × Ho × Wo) of a single-head softmax network (a U-Net, or a U-Net++ pruned or
  /// without deep supervision), in evaluation mode.
  public func logits(_ input: Tensor, settings: InferenceSettings = InferenceSettings(), workspace: NetworkWorkspace? = nil) -> Tensor {
    let heads = headOutputs(input, settings: settings, workspace: workspace)
    precondition(heads.count == 1 && trainingGraph.headKind == .logits, "Network.logits: the network has \(heads.count) heads of \(trainingGraph.headKind)")
    return heads[0]
  }

  /// Class probabilities (N × label classes × Ho × Wo) in evaluation mode: the softmax of a
  /// single head; the mean of the heads' softmax probabilities for a deeply supervised U-Net++
  /// (or the pruned head, as `settings` says); UNet 3+'s gated P_0 (a sigmoid head as two
  /// channels, 1 − p and p).
  public func predict(_ input: Tensor, settings: InferenceSettings = InferenceSettings(), workspace: NetworkWorkspace? = nil) -> Tensor {
    Self.combine(headOutputs(input, settings: settings, workspace: workspace), kind: trainingGraph.headKind)
  }

  /// One prediction from head outputs: softmax and mean for logits heads, the first head for
  /// probability heads (one sigmoid channel becomes 1 − p, p).
  static func combine(_ heads: [Tensor], kind: HeadKind) -> Tensor {
    switch kind {
    case .logits:
      var mean = PixelSoftmax().forward(heads[0])
      guard heads.count > 1 else { return mean }
      for h in heads.dropFirst() {
        let p = PixelSoftmax().forward(h)
        for i in 0..<mean.data.count { mean.data[i] += p.data[i] }
      }
      let k = 1 / Float(heads.count)
      for i in 0..<mean.data.count { mean.data[i] *= k }
      return mean
    case .probabilities:
      let p = heads[0]
      guard p.shape.c == 1 else { return p }
      let s = p.shape
      var out = Tensor(shape: TensorShape(n: s.n, c: 2, h: s.h, w: s.w))
      for n in 0..<s.n {
        for i in 0..<s.plane {
          let v = p.data[n * s.plane + i]
          out.data[n * 2 * s.plane + i] = 1 - v
          out.data[n * 2 * s.plane + s.plane + i] = v
        }
      }
      return out
    }
  }
}
