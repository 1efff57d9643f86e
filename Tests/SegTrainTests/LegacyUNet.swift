// The hand-written U-Net of format 1 (before networks became graphs), kept verbatim as the
// reference that the graph-built U-Net must match: same outputs and gradients for the same
// parameters (NetworkEquivalenceTests). Not used by the product.
@testable import SegTrain
import SegCore
import SegModel


/// A 3×3 convolution followed by ReLU, or by batch norm and ReLU.
struct LegacyConvUnit: Sendable {
  let conv: Conv2D
  let norm: BatchNorm2D?

  init(_ name: String, inChannels: Int, outChannels: Int, padding: Int, batchNorm: Bool,
       allocator: inout ParameterAllocator, stateAllocator: inout ParameterAllocator) {
    // With batch norm the convolution's bias would be removed by the normalisation: leave it out.
    conv = Conv2D(
      name + ".conv", inChannels: inChannels, outChannels: outChannels, kernelSize: 3, padding: padding,
      bias: !batchNorm, fusedReLU: !batchNorm, allocator: &allocator)
    norm = batchNorm
      ? BatchNorm2D(name + ".bn", channels: outChannels, fusedReLU: true, allocator: &allocator, stateAllocator: &stateAllocator)
      : nil
  }

  func outputShape(for s: TensorShape) -> TensorShape { conv.outputShape(for: s) }
}

/// One level of the expanding path: up-sampling to this level's width, then two units.
struct LegacyUpStage: Sendable {
  let transposed: TransposedConv2x2?
  let pointwise: Conv2D?
  let unit1: LegacyConvUnit
  let unit2: LegacyConvUnit
}

/// A U-Net: its layers, all parameters in one flat buffer, and the batch-norm running
/// statistics in a second flat buffer.
///
/// Layout of every tensor is NCHW. The parameter buffer holds, in this order (PyTorch's
/// `parameters()` order for the peer in ../shared/bench/peers.py): the contracting levels
/// `down.{i}.unit{1,2}` (conv weight C_out × C_in × 3 × 3 and bias, or conv weight then
/// `bn.weight`, `bn.bias`), the up-samplings `up.{i}` (transposed: C_in × C_out × 2 × 2 and
/// bias; bilinear: a 1×1 convolution C_out × C_in × 1 × 1 and bias), the expanding levels
/// `upblock.{i}.unit{1,2}`, and the 1×1 head `head` (K × C_0 × 1 × 1 and bias). Each named
/// range is a ``ParameterView`` in ``parameterViews``.
///
/// Initialisation (He et al. 2015, doi:10.1109/ICCV.2015.123, as the U-Net paper prescribes):
/// weights ~ N(0, 2/fan_in) with fan_in the number of inputs that each output sums (C_in·k²
/// for a k×k convolution, C_in for the transposed convolution), biases 0, batch-norm γ = 1,
/// β = 0, running mean 0 and variance 1. Draws come from `RandomStream(seed:path:[1])` in
/// parameter order, so a seed fixes the network.
struct LegacyUNet: Sendable {
  let configuration: UNetConfiguration
  /// Named ranges of ``parameters``, in buffer order.
  let parameterViews: [ParameterView]
  /// Named ranges of ``state`` (batch-norm running statistics).
  let stateViews: [ParameterView]
  /// All learnable parameters, flat.
  var parameters: [Float]
  /// Batch-norm running means and variances, flat (empty without batch norm).
  var state: [Float]

  let down: [(LegacyConvUnit, LegacyConvUnit)]
  let up: [LegacyUpStage]
  let head: Conv2D
  let dropout: Dropout?

  /// Stream path for initialisation draws under the seed.
  static let initialisationStream: UInt64 = 1

  /// A freshly initialised network.
  ///
  /// - Parameters:
  ///   - configuration: must have no ``UNetConfiguration/problems`` (checked by precondition;
  ///     validate user input before).
  ///   - seed: the initialisation seed.
  init(configuration: UNetConfiguration, seed: UInt64) {
    self.init(structureOf: configuration)
    var rng = RandomStream(seed: seed, path: [Self.initialisationStream])
    initialise(&rng)
  }

  /// The layers and buffers of a configuration, parameters all zero.
  init(structureOf cfg: UNetConfiguration) {
    precondition(cfg.problems.isEmpty, "LegacyUNet: invalid configuration: \(cfg.problems.joined(separator: "; "))")
    configuration = cfg
    var alloc = ParameterAllocator()
    var stateAlloc = ParameterAllocator()
    let pad = cfg.padding == .same ? 1 : 0
    var downs: [(LegacyConvUnit, LegacyConvUnit)] = []
    var cin = cfg.inputChannels
    for i in 0...cfg.depth {
      let w = cfg.width(level: i)
      let u1 = LegacyConvUnit("down.\(i).unit1", inChannels: cin, outChannels: w, padding: pad, batchNorm: cfg.batchNorm, allocator: &alloc, stateAllocator: &stateAlloc)
      let u2 = LegacyConvUnit("down.\(i).unit2", inChannels: w, outChannels: w, padding: pad, batchNorm: cfg.batchNorm, allocator: &alloc, stateAllocator: &stateAlloc)
      downs.append((u1, u2))
      cin = w
    }
    var ups: [(TransposedConv2x2?, Conv2D?)] = []
    for i in 0..<cfg.depth {
      let w = cfg.width(level: i), wIn = cfg.width(level: i + 1)
      switch cfg.upMode {
      case .transposed:
        ups.append((TransposedConv2x2("up.\(i)", inChannels: wIn, outChannels: w, allocator: &alloc), nil))
      case .bilinear:
        ups.append((nil, Conv2D("up.\(i)", inChannels: wIn, outChannels: w, kernelSize: 1, padding: 0, allocator: &alloc)))
      }
    }
    var stages: [LegacyUpStage] = []
    for i in 0..<cfg.depth {
      let w = cfg.width(level: i)
      let u1 = LegacyConvUnit("upblock.\(i).unit1", inChannels: 2 * w, outChannels: w, padding: pad, batchNorm: cfg.batchNorm, allocator: &alloc, stateAllocator: &stateAlloc)
      let u2 = LegacyConvUnit("upblock.\(i).unit2", inChannels: w, outChannels: w, padding: pad, batchNorm: cfg.batchNorm, allocator: &alloc, stateAllocator: &stateAlloc)
      stages.append(LegacyUpStage(transposed: ups[i].0, pointwise: ups[i].1, unit1: u1, unit2: u2))
    }
    head = Conv2D("head", inChannels: cfg.width(level: 0), outChannels: cfg.classes, kernelSize: 1, padding: 0, allocator: &alloc)
    down = downs
    up = stages
    dropout = cfg.dropout > 0 ? Dropout(probability: cfg.dropout) : nil
    parameterViews = alloc.views
    stateViews = stateAlloc.views
    parameters = [Float](repeating: 0, count: alloc.count)
    state = [Float](repeating: 0, count: stateAlloc.count)
  }

  /// Number of learnable parameters.
  var parameterCount: Int { parameters.count }

  /// The view named `name`, if any.
  func view(named name: String) -> ParameterView? {
    parameterViews.first { $0.name == name } ?? stateViews.first { $0.name == name }
  }

  private mutating func initialise(_ rng: inout RandomStream) {
    for v in parameterViews {
      let name = v.name
      if name.hasSuffix(".bias") { continue }  // zero
      if name.hasSuffix(".bn.weight") {
        for i in v.range { parameters[i] = 1 }
        continue
      }
      // A weight: fan_in from its shape. Conv2D: [C_out, C_in, k, k] → C_in·k²;
      // TransposedConv2x2: [C_in, C_out, 2, 2] → C_in.
      let fanIn = name.hasPrefix("up.") && configuration.upMode == .transposed
        ? v.shape[0] : v.shape[1] * v.shape[2] * v.shape[3]
      let std = (2 / Double(fanIn)).squareRoot()
      for i in v.range { parameters[i] = Float(rng.gaussian() * std) }
    }
    for v in stateViews where v.name.hasSuffix(".running_var") {
      for i in v.range { state[i] = 1 }
    }
  }

  /// Multiply–accumulates of all convolutions (3×3, transposed, 1×1) in one forward pass
  /// of an input of `height` × `width`, batch 1.
  func multiplyAccumulates(height: Int, width: Int) -> Int {
    let plan = LegacyUNetPlan(self, input: TensorShape(n: 1, c: configuration.inputChannels, h: height, w: width))
    return plan.multiplyAccumulates
  }

  /// Logits (N × K × Ho × Wo) for an input (N × C_in × H × W), in evaluation mode (no
  /// dropout; batch norm uses its running statistics).
  ///
  /// - Parameter workspace: buffers to reuse across calls of the same input shape; made
  ///   when nil or of another shape.
  func logits(_ input: Tensor, workspace: LegacyUNetWorkspace? = nil) -> Tensor {
    checkTensor(input, "LegacyUNet.logits")
    let ws = workspace.flatMap { $0.inputShape == input.shape && $0.configuration == configuration ? $0 : nil }
      ?? LegacyUNetWorkspace(model: self, inputShape: input.shape)
    var unusedState = state  // evaluation mode reads the running statistics only
    parameters.withUnsafeBufferPointer { pp in
      unusedState.withUnsafeMutableBufferPointer { sp in
        input.data.withUnsafeBufferPointer { xp in
          forward(input: base(xp), parameters: base(pp), state: sp.baseAddress, workspace: ws, training: false, dropoutMask: nil)
        }
      }
    }
    return Tensor(shape: ws.plan.logits, data: Array(UnsafeBufferPointer(start: ws.logits.pointer, count: ws.logits.count)))
  }

  /// Softmax probabilities (N × K × Ho × Wo) for an input (N × C_in × H × W), in evaluation
  /// mode: the softmax over K of ``logits(_:workspace:)``.
  func predict(_ input: Tensor, workspace: LegacyUNetWorkspace? = nil) -> Tensor {
    PixelSoftmax().forward(logits(input, workspace: workspace))
  }
}

/// The shapes of every activation of a U-Net for one input shape.
struct LegacyUNetPlan: Sendable {
  var input: TensorShape
  /// Per contracting level 0 ... depth: unit1 output, unit2 output (the skip).
  var downA: [TensorShape] = []
  var downS: [TensorShape] = []
  /// Per level 0 ..< depth: the pooled output of level i (input of level i + 1).
  var pooled: [TensorShape] = []
  /// Per expanding level 0 ..< depth: up-sampling input, up-sampled output, concatenation,
  /// unit1 output, unit2 output; bilinear mode: the 1×1 convolution's (low-resolution) output.
  var upIn: [TensorShape] = []
  var upOut: [TensorShape] = []
  var cat: [TensorShape] = []
  var upA: [TensorShape] = []
  var upB: [TensorShape] = []
  var low: [TensorShape?] = []
  var logits: TensorShape
  var multiplyAccumulates = 0

  init(_ m: LegacyUNet, input s: TensorShape) {
    let cfg = m.configuration
    precondition(s.c == cfg.inputChannels, "LegacyUNet: input has \(s.c) channels, the network takes \(cfg.inputChannels)")
    precondition(s.n >= 1, "LegacyUNet: empty batch")
    precondition(cfg.outputSize(forInput: s.h) != nil && cfg.outputSize(forInput: s.w) != nil, "LegacyUNet: input \(s.h)×\(s.w) is not legal for this network (\(cfg.padding.rawValue) padding, depth \(cfg.depth)); see UNetConfiguration.outputSize(forInput:)")
    input = s
    var cur = s
    var macs = 0
    for i in 0...cfg.depth {
      let a = m.down[i].0.outputShape(for: cur)
      macs += m.down[i].0.conv.multiplyAccumulates(for: cur)
      let sk = m.down[i].1.outputShape(for: a)
      macs += m.down[i].1.conv.multiplyAccumulates(for: a)
      downA.append(a)
      downS.append(sk)
      if i < cfg.depth {
        let p = MaxPool2x2().outputShape(for: sk)
        pooled.append(p)
        cur = p
      } else {
        cur = sk
      }
    }
    upIn = Array(repeating: cur, count: cfg.depth)
    upOut = upIn; cat = upIn; upA = upIn; upB = upIn
    low = Array(repeating: nil, count: cfg.depth)
    for i in (0..<cfg.depth).reversed() {
      let stage = m.up[i]
      upIn[i] = cur
      let uo: TensorShape
      if let t = stage.transposed {
        uo = t.outputShape(for: cur)
        macs += t.multiplyAccumulates(for: cur)
      } else if let pw = stage.pointwise {
        let l = pw.outputShape(for: cur)
        low[i] = l
        macs += pw.multiplyAccumulates(for: cur)
        uo = BilinearUpsample(factor: 2).outputShape(for: l)
      } else {
        preconditionFailure("LegacyUNet: up stage without up-sampling")
      }
      upOut[i] = uo
      let c = Concat().outputShape(for: [downS[i], uo])
      cat[i] = c
      let a = stage.unit1.outputShape(for: c)
      macs += stage.unit1.conv.multiplyAccumulates(for: c)
      let b = stage.unit2.outputShape(for: a)
      macs += stage.unit2.conv.multiplyAccumulates(for: a)
      upA[i] = a
      upB[i] = b
      cur = b
    }
    logits = m.head.outputShape(for: cur)
    macs += m.head.multiplyAccumulates(for: cur)
    multiplyAccumulates = macs / s.n
  }
}

/// The buffers of one convolution unit: the convolution's output z (only with batch norm),
/// the unit's output y (after ReLU) and the batch norm's saved statistics.
final class LegacyUnitBuffers {
  let z: FloatBuffer?
  let y: FloatBuffer
  let saved: FloatBuffer?

  init(_ unit: LegacyConvUnit, output: TensorShape) {
    y = FloatBuffer(count: output.count)
    z = unit.norm == nil ? nil : FloatBuffer(count: output.count)
    saved = unit.norm == nil ? nil : FloatBuffer(count: 2 * output.c)
  }
}

/// Every buffer a U-Net needs to run forward and backward on inputs of one shape.
///
/// Allocated once and reused for every step of the same shape, so a training step makes no
/// allocations (llm.c's `malloc_and_point_activations`). The gradient buffers are allocated on
/// the first backward pass only, so prediction needs about half the memory.
final class LegacyUNetWorkspace {
  /// The input shape (N × C_in × H × W) these buffers serve.
  let inputShape: TensorShape
  let configuration: UNetConfiguration
  let plan: LegacyUNetPlan
  let scratch = ScratchArena()

  // Activations.
  let downA: [LegacyUnitBuffers]
  let downS: [LegacyUnitBuffers]
  let pooled: [FloatBuffer]
  let dropped: FloatBuffer?
  let mask: FloatBuffer?
  let cat: [FloatBuffer]
  let low: [FloatBuffer?]
  let upA: [LegacyUnitBuffers]
  let upB: [LegacyUnitBuffers]
  let logits: FloatBuffer
  let probabilities: FloatBuffer

  // Gradients (lazily).
  private(set) var gradientBuffers: GradientBuffers?

  final class GradientBuffers {
    /// dL/d(skip) per level: written by the concatenation's backward, then the pooling's
    /// backward adds to it.
    let skip: [FloatBuffer]
    let t1: FloatBuffer
    let t2: FloatBuffer
    let t3: FloatBuffer?
    let cat: FloatBuffer
    let logits: FloatBuffer

    init(_ plan: LegacyUNetPlan, needsThird: Bool) {
      skip = plan.downS.dropLast().map { FloatBuffer(count: $0.count) }
      var largest = plan.input.count
      for s in plan.downA + plan.downS + plan.pooled + plan.upA + plan.upB + plan.upIn { largest = max(largest, s.count) }
      for case let l? in plan.low { largest = max(largest, l.count) }
      t1 = FloatBuffer(count: largest)
      t2 = FloatBuffer(count: largest)
      t3 = needsThird ? FloatBuffer(count: largest) : nil
      cat = FloatBuffer(count: plan.cat.map(\.count).max() ?? 1)
      logits = FloatBuffer(count: plan.logits.count)
    }

    var bytes: Int {
      (skip.map(\.count).reduce(0, +) + t1.count + t2.count + (t3?.count ?? 0) + cat.count + logits.count) * 4
    }
  }

  /// Buffers for `model` on inputs of `inputShape` (which must be legal for the network).
  init(model: LegacyUNet, inputShape: TensorShape) {
    self.inputShape = inputShape
    configuration = model.configuration
    let p = LegacyUNetPlan(model, input: inputShape)
    plan = p
    let d = model.configuration.depth
    downA = (0...d).map { LegacyUnitBuffers(model.down[$0].0, output: p.downA[$0]) }
    downS = (0...d).map { LegacyUnitBuffers(model.down[$0].1, output: p.downS[$0]) }
    pooled = p.pooled.map { FloatBuffer(count: $0.count) }
    dropped = model.dropout == nil ? nil : FloatBuffer(count: p.downS[d].count)
    mask = model.dropout == nil ? nil : FloatBuffer(count: p.downS[d].count)
    cat = p.cat.map { FloatBuffer(count: $0.count) }
    low = p.low.map { $0.map { FloatBuffer(count: $0.count) } }
    upA = (0..<d).map { LegacyUnitBuffers(model.up[$0].unit1, output: p.upA[$0]) }
    upB = (0..<d).map { LegacyUnitBuffers(model.up[$0].unit2, output: p.upB[$0]) }
    logits = FloatBuffer(count: p.logits.count)
    probabilities = FloatBuffer(count: p.logits.count)
  }

  /// The output shape (N × K × Ho × Wo).
  var outputShape: TensorShape { plan.logits }

  /// The gradient buffers, allocated on first use.
  func gradients() -> GradientBuffers {
    if let g = gradientBuffers { return g }
    let g = GradientBuffers(plan, needsThird: configuration.batchNorm || configuration.upMode == .bilinear)
    gradientBuffers = g
    return g
  }

  /// Bytes held in activations, gradients and scratch (for reports).
  var bytes: Int {
    var n = 0
    for u in downA + downS + upA + upB { n += u.y.count + (u.z?.count ?? 0) + (u.saved?.count ?? 0) }
    n += pooled.map(\.count).reduce(0, +) + cat.map(\.count).reduce(0, +)
    n += (dropped?.count ?? 0) + (mask?.count ?? 0) + logits.count + probabilities.count
    for case let l? in low { n += l.count }
    n += scratch.capacity
    return n * 4 + (gradientBuffers?.bytes ?? 0)
  }
}

extension LegacyUNet {
  // MARK: - Units

  private func forwardUnit(
    _ u: LegacyConvUnit, input x: UnsafePointer<Float>, shape s: TensorShape, buffers b: LegacyUnitBuffers,
    training: Bool, parameters: UnsafePointer<Float>, state: UnsafeMutablePointer<Float>?, scratch: ScratchArena
  ) {
    if let norm = u.norm, let z = b.z, let saved = b.saved {
      guard let state else { preconditionFailure("LegacyUNet: batch norm without a state buffer") }
      u.conv.forward(input: x, shape: s, output: z.pointer, parameters: parameters, scratch: scratch)
      norm.forward(
        input: z.pointer, shape: u.outputShape(for: s), output: b.y.pointer, training: training,
        parameters: parameters, state: state, saved: saved.pointer)
    } else {
      u.conv.forward(input: x, shape: s, output: b.y.pointer, parameters: parameters, scratch: scratch)
    }
  }

  /// What a layer whose input X is `producer`'s output can fuse into its input gradient: the
  /// producer's ReLU mask and its bias gradient (only for a convolution with a fused ReLU).
  private func inputFusion(_ producer: LegacyConvUnit?) -> (mask: Bool, biasOffset: Int?) {
    guard let p = producer, p.norm == nil, p.conv.fusedReLU else { return (false, nil) }
    return (true, p.conv.bias?.offset)
  }

  /// dY is clobbered; `tmp` is used with batch norm. `masked`: dY was already masked (and the
  /// bias gradient added) by the layer after. `producer`: the unit whose output is X, whose
  /// mask and bias gradient this unit fuses into dX; returns whether it did.
  @discardableResult
  private func backwardUnit(
    _ u: LegacyConvUnit, input x: UnsafePointer<Float>, shape s: TensorShape, buffers b: LegacyUnitBuffers,
    outputGradient dy: UnsafeMutablePointer<Float>, masked: Bool, inputGradient dx: UnsafeMutablePointer<Float>?,
    producer: LegacyConvUnit?, temporary tmp: FloatBuffer?, parameters: UnsafePointer<Float>,
    gradients: UnsafeMutablePointer<Float>, scratch: ScratchArena
  ) -> Bool {
    let fusion = dx == nil ? (mask: false, biasOffset: nil) : inputFusion(producer)
    if let norm = u.norm, let z = b.z, let saved = b.saved {
      guard let tmp else { preconditionFailure("LegacyUNet: batch norm backward needs a temporary buffer") }
      let t0 = StepProfile.begin()
      norm.backward(
        input: z.pointer, output: b.y.pointer, shape: u.outputShape(for: s), outputGradient: dy,
        inputGradient: tmp.pointer, parameters: parameters, gradients: gradients, saved: saved.pointer)
      StepProfile.end(t0, "batch norm @\(s.h) backward")
      u.conv.backward(
        input: x, inputShape: s, output: nil, outputGradient: tmp.pointer, inputGradient: dx,
        maskInputGradient: fusion.mask, inputBiasGradient: fusion.biasOffset.map { gradients + $0 },
        parameters: parameters, gradients: gradients, scratch: scratch)
    } else {
      u.conv.backward(
        input: x, inputShape: s, output: b.y.pointer, outputGradient: dy, outputGradientIsMasked: masked,
        inputGradient: dx, maskInputGradient: fusion.mask, inputBiasGradient: fusion.biasOffset.map { gradients + $0 },
        parameters: parameters, gradients: gradients, scratch: scratch)
    }
    return fusion.mask
  }

  // MARK: - Forward

  /// The forward pass: fills every activation of `ws` and the logits.
  ///
  /// - Parameters:
  ///   - state: the batch-norm state; updated in training mode.
  ///   - dropoutMask: in training with dropout, the stream that draws this step's mask.
  func forward(
    input x: UnsafePointer<Float>, parameters: UnsafePointer<Float>, state: UnsafeMutablePointer<Float>?,
    workspace ws: LegacyUNetWorkspace, training: Bool, dropoutMask: RandomStream?
  ) {
    let plan = ws.plan
    let d = configuration.depth
    var cur = x
    var curShape = plan.input
    for i in 0...d {
      forwardUnit(down[i].0, input: cur, shape: curShape, buffers: ws.downA[i], training: training, parameters: parameters, state: state, scratch: ws.scratch)
      forwardUnit(down[i].1, input: ws.downA[i].y.pointer, shape: plan.downA[i], buffers: ws.downS[i], training: training, parameters: parameters, state: state, scratch: ws.scratch)
      if i < d {
        let t0 = StepProfile.begin()
        MaxPool2x2().forward(input: ws.downS[i].y.pointer, shape: plan.downS[i], output: ws.pooled[i].pointer)
        StepProfile.end(t0, "maxpool @\(plan.downS[i].h) forward")
        cur = UnsafePointer(ws.pooled[i].pointer)
        curShape = plan.pooled[i]
      }
    }
    cur = UnsafePointer(ws.downS[d].y.pointer)
    curShape = plan.downS[d]
    if training, let dropout, let mask = ws.mask, let dropped = ws.dropped {
      var rng = dropoutMask ?? RandomStream(key: 0)
      dropout.fillMask(mask.pointer, count: mask.count, rng: &rng)
      for j in 0..<dropped.count { dropped.pointer[j] = cur[j] * mask.pointer[j] }
      cur = UnsafePointer(dropped.pointer)
    }
    for i in (0..<d).reversed() {
      let stage = up[i]
      let c = plan.cat[i]
      let upPart = ws.cat[i].pointer + plan.downS[i].c * c.plane
      var t0 = StepProfile.begin()
      if let t = stage.transposed {
        t.forward(input: cur, shape: curShape, output: upPart, outputItemStride: c.item, parameters: parameters, scratch: ws.scratch)
      } else if let pw = stage.pointwise, let low = ws.low[i], let lowShape = plan.low[i] {
        pw.forward(input: cur, shape: curShape, output: low.pointer, parameters: parameters, scratch: ws.scratch)
        BilinearUpsample(factor: 2).forward(input: low.pointer, shape: lowShape, output: upPart, outputItemStride: c.item)
      }
      StepProfile.end(t0, "up-sampling @\(curShape.h) forward")
      t0 = StepProfile.begin()
      Concat().copy(input: ws.downS[i].y.pointer, shape: plan.downS[i], into: ws.cat[i].pointer, outputShape: c, channelOffset: 0)
      StepProfile.end(t0, "crop-concat @\(c.h) forward")
      forwardUnit(stage.unit1, input: ws.cat[i].pointer, shape: c, buffers: ws.upA[i], training: training, parameters: parameters, state: state, scratch: ws.scratch)
      forwardUnit(stage.unit2, input: ws.upA[i].y.pointer, shape: plan.upA[i], buffers: ws.upB[i], training: training, parameters: parameters, state: state, scratch: ws.scratch)
      cur = UnsafePointer(ws.upB[i].y.pointer)
      curShape = plan.upB[i]
    }
    head.forward(input: cur, shape: curShape, output: ws.logits.pointer, parameters: parameters, scratch: ws.scratch)
  }

  // MARK: - Backward

  /// The backward pass after ``forward(input:parameters:state:workspace:training:dropoutMask:)``
  /// in training mode: adds dL/dθ into `gradients`, given dL/dlogits in the workspace's
  /// gradient buffers (`logits`, which it clobbers).
  func backward(
    input x: UnsafePointer<Float>, parameters: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>,
    workspace ws: LegacyUNetWorkspace, training: Bool
  ) {
    let plan = ws.plan
    let g = ws.gradients()
    let d = configuration.depth
    let scratch = ws.scratch
    // Head: dL/d(upB[0]) → t1 (masked by upB[0]'s ReLU when it can be fused).
    let headFusion = inputFusion(up[0].unit2)
    head.backward(
      input: ws.upB[0].y.pointer, inputShape: plan.upB[0], output: nil, outputGradient: g.logits.pointer,
      inputGradient: g.t1.pointer, maskInputGradient: headFusion.mask,
      inputBiasGradient: headFusion.biasOffset.map { gradients + $0 }, parameters: parameters, gradients: gradients,
      scratch: scratch)
    var t1Masked = headFusion.mask
    // Expanding path, top to bottom; on entry to level i, t1 holds dL/d(upB[i]).
    for i in 0..<d {
      let stage = up[i]
      let c = plan.cat[i]
      let masked = backwardUnit(stage.unit2, input: ws.upA[i].y.pointer, shape: plan.upA[i], buffers: ws.upB[i], outputGradient: g.t1.pointer, masked: t1Masked, inputGradient: g.t2.pointer, producer: stage.unit1, temporary: g.t3, parameters: parameters, gradients: gradients, scratch: scratch)
      backwardUnit(stage.unit1, input: ws.cat[i].pointer, shape: c, buffers: ws.upA[i], outputGradient: g.t2.pointer, masked: masked, inputGradient: g.cat.pointer, producer: nil, temporary: g.t3, parameters: parameters, gradients: gradients, scratch: scratch)
      var t0 = StepProfile.begin()
      Concat().gradient(outputGradient: g.cat.pointer, outputShape: c, channelOffset: 0, inputShape: plan.downS[i], inputGradient: g.skip[i].pointer, accumulate: false)
      StepProfile.end(t0, "crop-concat @\(c.h) backward")
      // The input of this level's up-sampling: the level below's output (or the bottom's,
      // after dropout).
      let upInput: UnsafePointer<Float>
      if i + 1 < d {
        upInput = UnsafePointer(ws.upB[i + 1].y.pointer)
      } else if training, let dropped = ws.dropped {
        upInput = UnsafePointer(dropped.pointer)
      } else {
        upInput = UnsafePointer(ws.downS[d].y.pointer)
      }
      let upGrad = UnsafePointer(g.cat.pointer + plan.downS[i].c * c.plane)
      t0 = StepProfile.begin()
      if let t = stage.transposed {
        t.backward(input: upInput, inputShape: plan.upIn[i], outputGradient: upGrad, outputItemStride: c.item, inputGradient: g.t1.pointer, parameters: parameters, gradients: gradients, scratch: scratch)
      } else if let pw = stage.pointwise, let lowShape = plan.low[i], let t3 = g.t3 {
        BilinearUpsample(factor: 2).backward(shape: lowShape, outputGradient: upGrad, outputItemStride: c.item, inputGradient: t3.pointer, accumulate: false)
        pw.backward(input: upInput, inputShape: plan.upIn[i], output: nil, outputGradient: t3.pointer, inputGradient: g.t1.pointer, parameters: parameters, gradients: gradients, scratch: scratch)
      }
      StepProfile.end(t0, "up-sampling @\(plan.upIn[i].h) backward")
      t1Masked = false
    }
    // Bottom: t1 holds dL/d(bottom output after dropout).
    if training, let mask = ws.mask {
      let n = plan.downS[d].count
      for j in 0..<n { g.t1.pointer[j] *= mask.pointer[j] }
    }
    // Contracting path, bottom to top; dL/d(skip i) is in g.skip[i] for i < d (masked by the
    // skip's ReLU when `skipMasked`).
    var skipMasked = false
    for i in (0...d).reversed() {
      let dy = i == d ? g.t1.pointer : g.skip[i].pointer
      let masked = backwardUnit(down[i].1, input: ws.downA[i].y.pointer, shape: plan.downA[i], buffers: ws.downS[i], outputGradient: dy, masked: i < d && skipMasked, inputGradient: g.t2.pointer, producer: down[i].0, temporary: g.t3, parameters: parameters, gradients: gradients, scratch: scratch)
      let input = i == 0 ? x : UnsafePointer(ws.pooled[i - 1].pointer)
      let inputShape = i == 0 ? plan.input : plan.pooled[i - 1]
      backwardUnit(down[i].0, input: input, shape: inputShape, buffers: ws.downA[i], outputGradient: g.t2.pointer, masked: masked, inputGradient: i == 0 ? nil : g.t1.pointer, producer: nil, temporary: g.t3, parameters: parameters, gradients: gradients, scratch: scratch)
      if i > 0 {
        let t0 = StepProfile.begin()
        defer { StepProfile.end(t0, "maxpool @\(plan.downS[i - 1].h) backward") }
        let fusion = inputFusion(down[i - 1].1)
        if fusion.mask {
          MaxPool2x2().backwardMaskedAccumulate(
            input: ws.downS[i - 1].y.pointer, shape: plan.downS[i - 1], outputGradient: g.t1.pointer,
            inputGradient: g.skip[i - 1].pointer, biasGradient: fusion.biasOffset.map { gradients + $0 })
        } else {
          MaxPool2x2().backward(input: ws.downS[i - 1].y.pointer, shape: plan.downS[i - 1], outputGradient: g.t1.pointer, inputGradient: g.skip[i - 1].pointer, accumulate: true)
        }
        skipMasked = fusion.mask
      }
    }
  }
}
