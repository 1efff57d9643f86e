/// Where a value's floats live in a workspace.
enum ValueStorage: Sendable, Equatable {
  /// The caller's input tensor.
  case input
  /// A buffer slot of its own.
  case slot(Int)
  /// Channels `channel ..< channel + C` of another value (a concatenation's output), so the
  /// producer writes straight into the concatenation.
  case block(of: Int, channel: Int)
}

/// Everything about running a graph on inputs of one shape that can be decided before running
/// it: every value's shape, where every activation and gradient lives (buffers reused when
/// their lifetimes do not overlap), which contributions to a gradient add to what is there, and
/// which neighbouring passes are fused.
///
/// Fusions (the graph-level forms of the hand-written U-Net's fast paths):
/// - **Concatenation in place**: an input whose only use is a concatenation, made by a kernel
///   that can write a channel block of a wider tensor (convolution, transposed convolution,
///   batch norm, bilinear up-sampling), is written into its block, and its gradient is read from
///   the concatenation's gradient: no copy either way.
/// - **ReLU mask and bias gradient forward into the consumer**: a convolution with a fused ReLU
///   must mask its output gradient (dY·[Y > 0]) and sum it per channel (db) before its own
///   backward. When the last contribution to that gradient (in backward order) comes from a
///   convolution's input-gradient pass or a 2×2 max-pool backward, that pass applies the mask
///   and sums db while the data is in cache, and the producer runs with its gradient "already
///   masked": no extra pass over the gradient.
struct GraphPlan: Sendable {
  let inputShape: TensorShape
  let training: Bool
  let shapes: [TensorShape]
  let activation: [ValueStorage]
  /// Capacity (floats) of each activation slot.
  let activationSlots: [Int]
  /// Whether each value needs dL/dvalue (training plans only).
  let needsGradient: [Bool]
  /// Where each value's gradient lives (nil: none).
  let gradient: [ValueStorage?]
  /// Capacity (floats) of each gradient slot.
  let gradientSlots: [Int]
  /// Per node and input position: the node's contribution to that input's gradient adds to what
  /// is there (false: it writes the gradient first).
  let accumulates: [[Bool]]
  /// Per node and input position: the node's backward applies the ReLU mask and bias gradient of
  /// that input's producer (a convolution with fused ReLU).
  let fusesMask: [[Bool]]
  /// Per node: its output gradient arrives masked, with its bias gradient added, by a consumer.
  let outputGradientMasked: [Bool]
  /// Multiply–accumulates of the convolutions per batch item.
  let multiplyAccumulates: Int

  init(_ graph: Graph, input: TensorShape, training: Bool) {
    inputShape = input
    self.training = training
    let nodes = graph.nodes
    let count = graph.valueCount
    var shapes = [TensorShape](repeating: input, count: count)
    var macs = 0
    for n in nodes {
      let ins = n.inputs.map { shapes[$0] }
      shapes[n.output] = n.operation.outputShape(ins)
      macs += n.operation.multiplyAccumulates(ins)
    }
    self.shapes = shapes
    multiplyAccumulates = macs / max(1, input.n)
    let producers = graph.producers
    let consumers = graph.consumers
    let outputs = Set(graph.heads + (graph.classification.map { [$0] } ?? []))

    // Concatenation inputs written in place.
    var activation = [ValueStorage](repeating: .input, count: count)
    var placedInto: [[Int]] = Array(repeating: [], count: count)  // concat value → placed inputs
    for v in 1..<count { activation[v] = .slot(-1) }
    for n in nodes {
      guard case .concat = n.operation else { continue }
      let o = shapes[n.output]
      var offset = 0
      for v in n.inputs {
        defer { offset += shapes[v].c }
        guard v != Graph.input, !outputs.contains(v), consumers[v] == [producers[n.output] ?? -1],
          n.inputs.filter({ $0 == v }).count == 1, let p = producers[v], nodes[p].operation.writesStridedOutput,
          shapes[v].h == o.h, shapes[v].w == o.w
        else { continue }
        activation[v] = .block(of: n.output, channel: offset)
        placedInto[n.output].append(v)
      }
    }

    // Activation slots: one per value in training (backward reads them all); reused by
    // lifetime for inference.
    var intervals: [(value: Int, start: Int, end: Int, size: Int)] = []
    for v in 1..<count {
      guard case .slot = activation[v], let p = producers[v] else { continue }
      var start = p
      for u in placedInto[v] { if let q = producers[u] { start = min(start, q) } }
      let end = training || outputs.contains(v) ? Int.max : (consumers[v].max() ?? p)
      intervals.append((v, start, end, shapes[v].count))
    }
    let (activationSlot, activationSlots) = GraphPlan.assignSlots(intervals)
    for (v, s) in activationSlot { activation[v] = .slot(s) }
    self.activation = activation
    self.activationSlots = activationSlots

    // Which values need gradients.
    var needs = [Bool](repeating: false, count: count)
    if training {
      for n in nodes where n.operation.isDifferentiable {
        needs[n.output] = n.operation.hasParameters || n.inputs.contains { needs[$0] }
      }
    }
    needsGradient = needs

    // Contributions in backward order: the latest consumer writes first, the others add.
    var accumulates = nodes.map { [Bool](repeating: false, count: $0.inputs.count) }
    var fuses = accumulates
    var masked = [Bool](repeating: false, count: nodes.count)
    let backwardStep = { (node: Int) in nodes.count - 1 - node }
    var gradientIntervals: [(value: Int, start: Int, end: Int, size: Int)] = []
    var gradient = [ValueStorage?](repeating: nil, count: count)
    for v in 1..<count where needs[v] {
      if case .block(let c, let channel) = activation[v] {
        gradient[v] = .block(of: c, channel: channel)
        continue
      }
      let contributors = consumers[v].filter { nodes[$0].operation.isDifferentiable }.sorted(by: >)
      var first = !outputs.contains(v)
      for node in contributors {
        for (j, u) in nodes[node].inputs.enumerated() where u == v {
          accumulates[node][j] = !first
          first = false
        }
      }
      // Mask fusion into the last contribution.
      if let p = producers[v], case .conv(let producer) = nodes[p].operation, producer.fusedReLU,
        !(producer.kernelSize == 1 && producer.padding == 0), !outputs.contains(v),
        let last = contributors.last, nodes[last].inputs.first == v, nodes[last].inputs.filter({ $0 == v }).count == 1
      {
        switch nodes[last].operation {
        case .conv:
          fuses[last][0] = true
          masked[p] = true
        case .maxPool(let pool) where pool.factor == 2:
          fuses[last][0] = true
          masked[p] = true
        default: break
        }
      }
      guard let p = producers[v] else { continue }
      let start = outputs.contains(v) ? -1 : (contributors.map(backwardStep).min() ?? backwardStep(p))
      var end = backwardStep(p)
      for u in placedInto[v] { if let q = producers[u] { end = max(end, backwardStep(q)) } }
      gradientIntervals.append((v, start, end, shapes[v].count))
    }
    let (gradientSlot, gradientSlots) = GraphPlan.assignSlots(gradientIntervals)
    for (v, s) in gradientSlot { gradient[v] = .slot(s) }
    self.gradient = gradient
    self.gradientSlots = gradientSlots
    self.accumulates = accumulates
    fusesMask = fuses
    outputGradientMasked = masked
  }

  /// Assigns buffer slots to lifetimes [start, end] (inclusive; a value written at step t must
  /// not share with one read at t), reusing a free slot when one is large enough (the smallest
  /// such), else growing the largest free one, else opening a new one.
  static func assignSlots(_ intervals: [(value: Int, start: Int, end: Int, size: Int)]) -> (slots: [(Int, Int)], capacities: [Int]) {
    let sorted = intervals.sorted { ($0.start, $0.value) < ($1.start, $1.value) }
    var capacities: [Int] = []
    var busyUntil: [Int] = []  // per slot: the last step it is in use
    var out: [(Int, Int)] = []
    for iv in sorted {
      let free = capacities.indices.filter { busyUntil[$0] < iv.start }
      let slot: Int
      if let fit = free.filter({ capacities[$0] >= iv.size }).min(by: { capacities[$0] < capacities[$1] }) {
        slot = fit
      } else if let grow = free.max(by: { capacities[$0] < capacities[$1] }) {
        slot = grow
        capacities[grow] = iv.size
      } else {
        slot = capacities.count
        capacities.append(iv.size)
        busyUntil.append(0)
      }
      busyUntil[slot] = iv.end
      out.append((iv.value, slot))
    }
    return (out, capacities)
  }

  /// Floats between items of a value (larger than its own item size for a concatenation block).
  func itemStride(_ v: Int) -> Int {
    if case .block(let c, _) = activation[v] { return shapes[c].item }
    return shapes[v].item
  }
}
