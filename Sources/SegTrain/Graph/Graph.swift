/// One operation of a network graph, with its layer (and through it, its parameters' views).
///
/// Every case is one of SegTrain's layers; the graph executor calls their raw kernels. Layers
/// with parameters hold ``ParameterView``s into the network's flat buffer.
enum Operation: Sendable {
  /// k×k convolution (bias and ReLU optional, fused into its output pass).
  case conv(Conv2D)
  /// A 3×3 convolution of the input bilinearly up-sampled, computed at low resolution (a
  /// fusion of `.upsample` then `.conv`; see ``UpsampledConv``).
  case upsampledConv(UpsampledConv)
  /// 2×2 stride-2 transposed convolution.
  case transposedConv(TransposedConv2x2)
  /// Batch normalisation, ReLU optional.
  case batchNorm(BatchNorm2D)
  /// k×k max pooling, stride k.
  case maxPool(MaxPool)
  /// Bilinear up-sampling by an integer factor.
  case upsample(BilinearUpsample)
  /// Channel concatenation of the inputs (centre-cropped to the smallest).
  case concat
  /// Inverted dropout (training graphs only).
  case dropout(Dropout)
  /// Max over each plane (N × C × 1 × 1).
  case globalMaxPool
  /// Element-wise logistic function.
  case sigmoid
  /// Softmax over channels.
  case softmax
  /// The CGM's argmax decision (N × 1 × 1 × 1, no gradient).
  case gate
  /// Input 0 times one factor per item from input 1 (N × 1 × 1 × 1).
  case scale

  /// Whether the kernel can write its output as a channel block of a wider tensor (and read its
  /// output gradient from there): what lets a concatenation's input be written in place.
  var writesStridedOutput: Bool {
    switch self {
    case .conv, .transposedConv, .batchNorm, .upsample: return true
    default: return false
    }
  }

  /// Whether gradients flow through this operation at all.
  var isDifferentiable: Bool {
    if case .gate = self { return false }
    return true
  }

  /// Whether the operation has learnable parameters.
  var hasParameters: Bool {
    switch self {
    case .conv, .upsampledConv, .transposedConv, .batchNorm: return true
    default: return false
    }
  }

  /// The output shape for the input shapes.
  func outputShape(_ inputs: [TensorShape]) -> TensorShape {
    switch self {
    case .conv(let c): return c.outputShape(for: inputs[0])
    case .upsampledConv(let u): return u.outputShape(for: inputs[0])
    case .transposedConv(let t): return t.outputShape(for: inputs[0])
    case .batchNorm(let b):
      precondition(inputs[0].c == b.channels, "BatchNorm2D: input has \(inputs[0].c) channels, expected \(b.channels)")
      return inputs[0]
    case .maxPool(let p): return p.outputShape(for: inputs[0])
    case .upsample(let u): return u.outputShape(for: inputs[0])
    case .concat: return Concat().outputShape(for: inputs)
    case .dropout, .sigmoid, .softmax: return inputs[0]
    case .globalMaxPool: return GlobalMaxPool().outputShape(for: inputs[0])
    case .gate:
      precondition(inputs[0].c == 2 && inputs[0].plane == 1, "CGMGate: input \(inputs[0]) is not N × 2 × 1 × 1")
      return TensorShape(n: inputs[0].n, c: 1, h: 1, w: 1)
    case .scale:
      precondition(inputs[1].n == inputs[0].n && inputs[1].c == 1 && inputs[1].plane == 1, "ItemScale: factors \(inputs[1]) are not N × 1 × 1 × 1")
      return inputs[0]
    }
  }

  /// Multiply–accumulates of the convolutions for these inputs (0 for other operations).
  func multiplyAccumulates(_ inputs: [TensorShape]) -> Int {
    switch self {
    case .conv(let c): return c.multiplyAccumulates(for: inputs[0])
    case .upsampledConv(let u): return u.multiplyAccumulates(for: inputs[0])
    case .transposedConv(let t): return t.multiplyAccumulates(for: inputs[0])
    default: return 0
    }
  }

  /// A short name of the kind, for profiles and descriptions.
  var kind: String {
    switch self {
    case .conv(let c): return "conv\(c.kernelSize)x\(c.kernelSize)"
    case .upsampledConv(let u): return "bilinear×\(u.factor)+conv3x3"
    case .transposedConv: return "upconv2x2"
    case .batchNorm: return "batchnorm"
    case .maxPool(let p): return "maxpool\(p.factor)"
    case .upsample(let u): return "bilinear×\(u.factor)"
    case .concat: return "concat"
    case .dropout: return "dropout"
    case .globalMaxPool: return "globalmax"
    case .sigmoid: return "sigmoid"
    case .softmax: return "softmax"
    case .gate: return "gate"
    case .scale: return "scale"
    }
  }
}

/// One node: an operation applied to earlier values, producing one new value.
struct GraphNode: Sendable {
  var name: String
  var operation: Operation
  /// Value ids of the inputs (value 0 is the graph's input).
  var inputs: [Int]
  /// The value id this node produces.
  var output: Int
}

/// What the graph's outputs are.
enum HeadKind: Sendable, Equatable {
  /// Class logits: the loss and prediction apply a softmax over channels.
  case logits
  /// Probabilities already (a sigmoid or softmax inside the graph, possibly gated).
  case probabilities
}

/// A static network graph: nodes in execution order (every input is an earlier node's output
/// or the graph input), the heads (outputs the loss sees) and an optional classification output
/// (the UNet 3+ CGM's probabilities, N × 2 × 1 × 1).
struct Graph: Sendable {
  var nodes: [GraphNode]
  var valueCount: Int
  var heads: [Int]
  var classification: Int?
  var headKind: HeadKind

  /// The graph input's value id.
  static let input = 0

  /// The producing node of every value (nil for the input).
  var producers: [Int?] {
    var p = [Int?](repeating: nil, count: valueCount)
    for (i, n) in nodes.enumerated() { p[n.output] = i }
    return p
  }

  /// The consuming nodes of every value, in execution order.
  var consumers: [[Int]] {
    var c = [[Int]](repeating: [], count: valueCount)
    for (i, n) in nodes.enumerated() {
      for v in n.inputs where !c[v].contains(i) { c[v].append(i) }
    }
    return c
  }

  /// Whether ``fusingUpsampledConvolutions()`` rewrites graphs (on by default; tests turn it
  /// off to compare with the direct form).
  @TaskLocal static var fusesUpsampledConvolutions = true

  /// The graph with every bilinear up-sampling whose only use is a 3×3 same convolution (and
  /// which is no output) folded into that convolution (``UpsampledConv``), where the
  /// convolution's input has enough channels for the low-resolution form to pay (C_in ≥ 8).
  func fusingUpsampledConvolutions() -> Graph {
    guard Graph.fusesUpsampledConvolutions else { return self }
    let producers = self.producers, consumers = self.consumers
    let outputs = Set(heads + (classification.map { [$0] } ?? []))
    var g = self
    var changed = false
    for (i, n) in nodes.enumerated() {
      guard case .conv(let c) = n.operation, c.kernelSize == 3, c.padding == 1, c.inChannels >= 8,
        let p = producers[n.inputs[0]], case .upsample(let u) = nodes[p].operation, u.factor >= 2,
        consumers[n.inputs[0]] == [i], !outputs.contains(n.inputs[0])
      else { continue }
      g.nodes[i].operation = .upsampledConv(UpsampledConv(c, factor: u.factor))
      g.nodes[i].inputs = nodes[p].inputs
      changed = true
    }
    return changed ? g.pruned() : self
  }

  /// The graph without the nodes that no output depends on, values renumbered (pruning a
  /// U-Net++ to depth d, or keeping only the heads prediction uses).
  func pruned() -> Graph {
    var needed = [Bool](repeating: false, count: valueCount)
    for v in heads { needed[v] = true }
    if let c = classification { needed[c] = true }
    var keep = [Bool](repeating: false, count: nodes.count)
    for i in nodes.indices.reversed() where needed[nodes[i].output] {
      keep[i] = true
      for v in nodes[i].inputs { needed[v] = true }
    }
    var renumber = [Int](repeating: -1, count: valueCount)
    renumber[Graph.input] = 0
    var next = 1
    var kept: [GraphNode] = []
    for (i, n) in nodes.enumerated() where keep[i] {
      var m = n
      m.inputs = n.inputs.map { renumber[$0] }
      renumber[n.output] = next
      m.output = next
      next += 1
      kept.append(m)
    }
    return Graph(
      nodes: kept, valueCount: next, heads: heads.map { renumber[$0] }, classification: classification.map { renumber[$0] },
      headKind: headKind)
  }
}

/// Builds a graph node by node: each call adds one node and returns its output's value id.
struct GraphBuilder {
  private(set) var nodes: [GraphNode] = []
  private(set) var valueCount = 1

  /// The graph input.
  var input: Int { Graph.input }

  mutating func add(_ name: String, _ operation: Operation, _ inputs: [Int]) -> Int {
    precondition(!inputs.isEmpty && inputs.allSatisfy { $0 >= 0 && $0 < valueCount }, "GraphBuilder: \(name) reads an undefined value")
    let id = valueCount
    valueCount += 1
    nodes.append(GraphNode(name: name, operation: operation, inputs: inputs, output: id))
    return id
  }

  func graph(heads: [Int], classification: Int? = nil, headKind: HeadKind) -> Graph {
    Graph(nodes: nodes, valueCount: valueCount, heads: heads, classification: classification, headKind: headKind)
  }
}
