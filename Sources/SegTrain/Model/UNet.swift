import SegCore

/// A 3×3 convolution followed by ReLU, or by batch norm and ReLU.
struct ConvUnit: Sendable {
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
struct UpStage: Sendable {
  let transposed: TransposedConv2x2?
  let pointwise: Conv2D?
  let unit1: ConvUnit
  let unit2: ConvUnit
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
public struct UNet: Sendable {
  public let configuration: UNetConfiguration
  /// Named ranges of ``parameters``, in buffer order.
  public let parameterViews: [ParameterView]
  /// Named ranges of ``state`` (batch-norm running statistics).
  public let stateViews: [ParameterView]
  /// All learnable parameters, flat.
  public var parameters: [Float]
  /// Batch-norm running means and variances, flat (empty without batch norm).
  public var state: [Float]

  let down: [(ConvUnit, ConvUnit)]
  let up: [UpStage]
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
  public init(configuration: UNetConfiguration, seed: UInt64) {
    self.init(structureOf: configuration)
    var rng = RandomStream(seed: seed, path: [Self.initialisationStream])
    initialise(&rng)
  }

  /// The layers and buffers of a configuration, parameters all zero.
  init(structureOf cfg: UNetConfiguration) {
    precondition(cfg.problems.isEmpty, "UNet: invalid configuration: \(cfg.problems.joined(separator: "; "))")
    configuration = cfg
    var alloc = ParameterAllocator()
    var stateAlloc = ParameterAllocator()
    let pad = cfg.padding == .same ? 1 : 0
    var downs: [(ConvUnit, ConvUnit)] = []
    var cin = cfg.inputChannels
    for i in 0...cfg.depth {
      let w = cfg.width(level: i)
      let u1 = ConvUnit("down.\(i).unit1", inChannels: cin, outChannels: w, padding: pad, batchNorm: cfg.batchNorm, allocator: &alloc, stateAllocator: &stateAlloc)
      let u2 = ConvUnit("down.\(i).unit2", inChannels: w, outChannels: w, padding: pad, batchNorm: cfg.batchNorm, allocator: &alloc, stateAllocator: &stateAlloc)
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
    var stages: [UpStage] = []
    for i in 0..<cfg.depth {
      let w = cfg.width(level: i)
      let u1 = ConvUnit("upblock.\(i).unit1", inChannels: 2 * w, outChannels: w, padding: pad, batchNorm: cfg.batchNorm, allocator: &alloc, stateAllocator: &stateAlloc)
      let u2 = ConvUnit("upblock.\(i).unit2", inChannels: w, outChannels: w, padding: pad, batchNorm: cfg.batchNorm, allocator: &alloc, stateAllocator: &stateAlloc)
      stages.append(UpStage(transposed: ups[i].0, pointwise: ups[i].1, unit1: u1, unit2: u2))
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
  public var parameterCount: Int { parameters.count }

  /// The view named `name`, if any.
  public func view(named name: String) -> ParameterView? {
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
  public func multiplyAccumulates(height: Int, width: Int) -> Int {
    let plan = UNetPlan(self, input: TensorShape(n: 1, c: configuration.inputChannels, h: height, w: width))
    return plan.multiplyAccumulates
  }

  /// Logits (N × K × Ho × Wo) for an input (N × C_in × H × W), in evaluation mode (no
  /// dropout; batch norm uses its running statistics).
  ///
  /// - Parameter workspace: buffers to reuse across calls of the same input shape; made
  ///   when nil or of another shape.
  public func logits(_ input: Tensor, workspace: UNetWorkspace? = nil) -> Tensor {
    checkTensor(input, "UNet.logits")
    let ws = workspace.flatMap { $0.inputShape == input.shape && $0.configuration == configuration ? $0 : nil }
      ?? UNetWorkspace(model: self, inputShape: input.shape)
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
  public func predict(_ input: Tensor, workspace: UNetWorkspace? = nil) -> Tensor {
    PixelSoftmax().forward(logits(input, workspace: workspace))
  }
}

/// The shapes of every activation of a U-Net for one input shape.
struct UNetPlan: Sendable {
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

  init(_ m: UNet, input s: TensorShape) {
    let cfg = m.configuration
    precondition(s.c == cfg.inputChannels, "UNet: input has \(s.c) channels, the network takes \(cfg.inputChannels)")
    precondition(s.n >= 1, "UNet: empty batch")
    precondition(cfg.outputSize(forInput: s.h) != nil && cfg.outputSize(forInput: s.w) != nil, "UNet: input \(s.h)×\(s.w) is not legal for this network (\(cfg.padding.rawValue) padding, depth \(cfg.depth)); see UNetConfiguration.outputSize(forInput:)")
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
        uo = BilinearUpsample2x().outputShape(for: l)
      } else {
        preconditionFailure("UNet: up stage without up-sampling")
      }
      upOut[i] = uo
      let c = CropConcat().outputShape(skip: downS[i], up: uo)
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
