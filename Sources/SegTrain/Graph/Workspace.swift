import SegModel

/// Every buffer a network graph needs to run forward (and backward) on inputs of one shape.
///
/// Allocated once per input shape and reused for every step, so a training step makes no
/// allocations (llm.c's `malloc_and_point_activations`). Gradient buffers are allocated on the
/// first backward pass only; an inference workspace reuses activation buffers whose values are
/// no longer needed, so prediction needs a fraction of a training step's memory.
public final class NetworkWorkspace {
  /// The input shape (N × C_in × H × W) these buffers serve.
  public let inputShape: TensorShape
  let graph: Graph
  let plan: GraphPlan
  let scratch = ScratchArena()
  let activations: [FloatBuffer]
  /// Per node: the batch norm's saved statistics (2·C floats), else nil.
  let saved: [FloatBuffer?]
  /// Per node: the dropout mask, else nil.
  let masks: [FloatBuffer?]
  private(set) var gradientBuffers: [FloatBuffer]?
  /// The configuration of the network these buffers were planned for.
  let configuration: NetworkConfiguration

  init(graph: Graph, configuration: NetworkConfiguration, inputShape: TensorShape, training: Bool) {
    self.inputShape = inputShape
    self.graph = graph
    self.configuration = configuration
    let p = GraphPlan(graph, input: inputShape, training: training)
    plan = p
    activations = p.activationSlots.map { FloatBuffer(count: $0) }
    saved = graph.nodes.map { n in
      if case .batchNorm(let b) = n.operation { return FloatBuffer(count: 2 * b.channels) }
      return nil
    }
    masks = graph.nodes.map { n in
      if case .dropout = n.operation, training { return FloatBuffer(count: p.shapes[n.output].count) }
      return nil
    }
  }

  /// Whether this workspace was planned for training (all activations kept, gradients).
  var isTraining: Bool { plan.training }

  /// The shape of value `v`.
  func shape(_ v: Int) -> TensorShape { plan.shapes[v] }

  /// The first float of value `v` (the graph input reads from `input`).
  func activation(_ v: Int, input: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
    switch plan.activation[v] {
    case .input: return UnsafeMutablePointer(mutating: input)
    case .slot(let s): return activations[s].pointer
    case .block(let c, let channel): return activation(c, input: input) + channel * plan.shapes[c].plane
    }
  }

  /// The gradient buffers, allocated on first use.
  func gradients() -> [FloatBuffer] {
    if let g = gradientBuffers { return g }
    let g = plan.gradientSlots.map { FloatBuffer(count: $0) }
    gradientBuffers = g
    return g
  }

  /// The first float of dL/d(value `v`), or nil when `v` needs no gradient.
  func gradient(_ v: Int) -> UnsafeMutablePointer<Float>? {
    guard let storage = plan.gradient[v] else { return nil }
    switch storage {
    case .input: return nil
    case .slot(let s): return gradients()[s].pointer
    case .block(let c, let channel): return gradient(c).map { $0 + channel * plan.shapes[c].plane }
    }
  }

  /// The head outputs' value ids.
  var heads: [Int] { graph.heads }

  /// Per head: its softmax probabilities (written by the loss for logits heads).
  private(set) lazy var headProbabilities: [FloatBuffer] = graph.heads.map { FloatBuffer(count: plan.shapes[$0].count) }

  private var lossScratch: [FloatBuffer?] = [nil, nil]

  private func lossBuffer(_ k: Int, _ count: Int) -> UnsafeMutablePointer<Float> {
    if let b = lossScratch[k], b.count >= count { return b.pointer }
    let b = FloatBuffer(count: count)
    lossScratch[k] = b
    return b.pointer
  }

  /// A buffer for dL/dP of a softmax head (at least `count` floats).
  func probabilityGradient(count: Int) -> UnsafeMutablePointer<Float> { lossBuffer(0, count) }

  /// A buffer to receive a loss gradient nobody reads (evaluation without backward).
  func scratchGradient(count: Int) -> UnsafeMutablePointer<Float> { lossBuffer(1, count) }

  /// Bytes held in activations, gradients, saved statistics, masks and scratch (for reports).
  public var bytes: Int {
    var n = activations.map(\.count).reduce(0, +) + scratch.capacity
    for case let b? in saved + masks { n += b.count }
    n += (gradientBuffers ?? []).map(\.count).reduce(0, +)
    return 4 * n
  }
}
