import SegCore
import SegModel

/// The `train:` section of a pipeline file: the network, the optimiser and the schedule, and
/// how long and how to validate. Plain values: `unet train` maps them onto the trainer, and
/// command-line flags override them.
///
/// ```yaml
/// train:
///   network: {architecture: unet, depth: 4, width: 16, padding: same, up: transposed, batch_norm: false, dropout: 0}
///   # U-Net++: {architecture: unetpp, depth: 4, width: 16, deep_supervision: true, up: transposed, batch_norm: false}
///   # UNet 3+: {architecture: unet3p, depth: 4, width: 16, deep_supervision: true, cgm: true, cgm_dropout: 0.5}
///   optimizer: {kind: sgd, momentum: 0.99, weight_decay: 0}   # or {kind: adam, beta1, beta2}
///   schedule: {kind: cosine, lr: 0.01, floor: 0.0001}         # constant | step | cosine | plateau
///   loss: cross_entropy+dice        # terms joined by +: cross_entropy dice focal iou ms_ssim; hybrid
///   # or {terms: hybrid, head_weights: sum, focal_alpha: 0.25, focal_gamma: 2, classification_weight: 1}
///   prediction: {heads: mean}       # U-Net++: mean of the heads, or {heads: prune, prune_depth: 2}
///   calibration: pixel_error        # threshold chosen on the validation images: rand_error | none
///   keep_best: false                # also best.ckpt (lowest validation loss)
///   fresh_augmentation: true        # new augmentations every epoch, prepared in the background
///   keep_epochs: 2                  # fresh-epoch shard sets kept on disk
///   steps: 2000                     # or epochs: 20
///   batch: 1
///   validation: {fraction: 0.2}     # or {sources: [stem, …]}
///   eval_every: 200                 # steps (default: every epoch)
///   checkpoint_every: 500
/// ```
public struct TrainSection: Sendable, Equatable {
  public var architecture = Architecture.unet
  public var depth = 4
  public var width = 16
  /// nil: the tiles' padding (or valid; U-Net++ and UNet 3+ are same-padding networks).
  public var padding: NetworkPadding?
  public var upMode = UpMode.transposed
  public var batchNorm = false
  public var dropout = 0.0
  /// U-Net++ and UNet 3+: heads on every column / level (nil: on).
  public var deepSupervision: Bool?
  /// UNet 3+: the classification-guided module (nil: on).
  public var cgm: Bool?
  public var cgmDropout = 0.5
  public var optimizer = OptimizerKind.sgd
  public var momentum = 0.99
  public var weightDecay = 0.0
  public var beta1 = 0.9
  public var beta2 = 0.999
  public var schedule = ScheduleKind.constant
  public var learningRate = 0.01
  public var stepSize = 1000
  public var gamma = 0.1
  public var floor = 0.0
  public var patience = 3
  public var loss: [LossTerm] = [.crossEntropy]
  /// nil: the architecture's default (mean for U-Net++, sum for UNet 3+).
  public var headWeights: HeadWeights?
  public var focalAlpha = 0.25
  public var focalGamma = 2.0
  public var classificationWeight = 1.0
  /// How prediction uses a U-Net++'s heads (stored in the checkpoint).
  public var prediction = InferenceSettings()
  /// After training, the foreground threshold minimising this error on the validation images
  /// is stored in the checkpoint (two classes; nil: none, predict takes the argmax).
  public var calibration: CalibrationMetric? = .pixelError
  /// Keep `best.ckpt`, the checkpoint of the lowest validation loss, beside `last.ckpt`.
  public var keepBest = false
  /// Draw fresh augmentations for every epoch (prepared in the background while the epoch
  /// before trains) instead of cycling the shards' tiles; needs the pipeline file.
  public var freshAugmentation = true
  /// Fresh-epoch shard sets kept on disk (the one in use and the next count among them).
  public var keepEpochs = 2
  public var steps: Int?
  public var epochs: Int?
  public var batch = 1
  public var validationFraction = 0.2
  public var validationSources: [String]?
  public var evalEvery: Int?
  public var checkpointEvery = 500
  public var logEvery = 10
  public var maxGradientNorm: Double?
  public var shuffleBuffer = 256
  public var classes: Int?

  public init() {}

  static let keys = [
    "network", "optimizer", "schedule", "loss", "prediction", "calibration", "keep_best", "fresh_augmentation", "keep_epochs",
    "steps", "epochs", "batch",
    "validation", "eval_every", "checkpoint_every", "log_every", "max_gradient_norm", "shuffle_buffer", "classes",
  ]

  static func parse(_ node: ConfigNode) throws(PipelineError) -> TrainSection {
    let m = try ConfigMapping(node, allowed: keys)
    var t = TrainSection()
    func positive(_ key: String, _ limit: Int = 100_000_000) throws(PipelineError) -> Int? {
      guard let n = m[key] else { return nil }
      let v = try n.int()
      try n.check(v >= 1 && v <= limit, "\(key) must be 1...\(limit)")
      return v
    }
    if let n = m["network"] { try t.parseNetwork(n) }
    if let n = m["optimizer"] {
      let om = try ConfigMapping(n, allowed: ["kind", "momentum", "weight_decay", "beta1", "beta2"])
      t.optimizer = try om.required("kind").choice(OptimizerKind.self)
      if t.optimizer == .adam, let k = om["momentum"] { throw k.error(.unknownKey, "momentum applies to sgd (adam has beta1)") }
      if t.optimizer == .sgd, let k = om["beta1"] ?? om["beta2"] { throw k.error(.unknownKey, "beta1/beta2 apply to adam") }
      if let v = om["momentum"] { t.momentum = try v.double(); try v.check(t.momentum >= 0 && t.momentum < 1, "momentum must lie in [0, 1)") }
      if let v = om["weight_decay"] { t.weightDecay = try v.double(); try v.check(t.weightDecay >= 0, "weight_decay must be ≥ 0") }
      if let v = om["beta1"] { t.beta1 = try v.double(); try v.check(t.beta1 >= 0 && t.beta1 < 1, "beta1 must lie in [0, 1)") }
      if let v = om["beta2"] { t.beta2 = try v.double(); try v.check(t.beta2 >= 0 && t.beta2 < 1, "beta2 must lie in [0, 1)") }
    }
    if let n = m["schedule"] {
      let sm = try ConfigMapping(n, allowed: ["kind", "lr", "step_size", "gamma", "floor", "patience", "factor"])
      t.schedule = try sm["kind"]?.choice(ScheduleKind.self) ?? .constant
      if let v = sm["lr"] { t.learningRate = try v.double(); try v.check(t.learningRate > 0 && t.learningRate < 100, "lr must be positive") }
      if let v = sm["step_size"] { t.stepSize = try v.int(); try v.check(t.stepSize >= 1, "step_size must be ≥ 1") }
      if let v = sm["gamma"] ?? sm["factor"] { t.gamma = try v.double(); try v.check(t.gamma > 0 && t.gamma < 1, "the factor must lie in (0, 1)") }
      if let v = sm["floor"] { t.floor = try v.double(); try v.check(t.floor >= 0, "floor must be ≥ 0") }
      if let v = sm["patience"] { t.patience = try v.int(); try v.check(t.patience >= 1, "patience must be ≥ 1") }
    }
    if let n = m["loss"] { try t.parseLoss(n) }
    if let n = m["calibration"] {
      let v = try n.string()
      if v == "none" {
        t.calibration = nil
      } else {
        guard let metric = CalibrationMetric(rawValue: v) else { throw n.error(.outOfRange, "calibration must be pixel_error, rand_error or none") }
        t.calibration = metric
      }
    }
    if let n = m["keep_best"] { t.keepBest = try n.bool() }
    if let n = m["fresh_augmentation"] { t.freshAugmentation = try n.bool() }
    if let n = m["keep_epochs"] {
      t.keepEpochs = try n.int()
      try n.check((2...1000).contains(t.keepEpochs), "keep_epochs must be 2...1000 (the epoch in use and the next)")
    }
    if let n = m["prediction"] {
      let pm = try ConfigMapping(n, allowed: ["heads", "prune_depth"])
      t.prediction.heads = try pm["heads"]?.choice(InferenceSettings.Heads.self) ?? .mean
      if let d = pm["prune_depth"] {
        guard t.prediction.heads == .prune else { throw d.error(.unknownKey, "prune_depth needs heads: prune") }
        t.prediction.pruneDepth = try d.int()
      } else if t.prediction.heads == .prune {
        throw n.error(.missingKey, "heads: prune needs prune_depth (1 ... depth)")
      }
    }
    t.steps = try positive("steps")
    t.epochs = try positive("epochs", 1_000_000)
    if let s = m["steps"], m["epochs"] != nil { throw s.error(.unknownKey, "give steps or epochs, not both") }
    t.batch = try positive("batch", 4096) ?? 1
    if let n = m["validation"] {
      let vm = try ConfigMapping(n, allowed: ["fraction", "sources"])
      if let f = vm["fraction"] {
        t.validationFraction = try f.double()
        try f.check(t.validationFraction >= 0 && t.validationFraction < 1, "fraction must lie in [0, 1)")
      }
      if let s = vm["sources"] {
        if vm["fraction"] != nil { throw s.error(.unknownKey, "give fraction or sources, not both") }
        t.validationSources = try s.strings()
      }
    }
    t.evalEvery = try positive("eval_every")
    t.checkpointEvery = try positive("checkpoint_every") ?? 500
    t.logEvery = try positive("log_every") ?? 10
    if let n = m["max_gradient_norm"] {
      t.maxGradientNorm = try n.double()
      try n.check((t.maxGradientNorm ?? 0) > 0, "max_gradient_norm must be positive")
    }
    t.shuffleBuffer = try positive("shuffle_buffer", 1_000_000) ?? 256
    if let n = m["classes"] {
      t.classes = try n.int()
      try n.check((2...65536).contains(t.classes ?? 0), "classes must be 2...65536")
    }
    if let n = m["network"] ?? m["prediction"], let problem = t.problem {
      throw n.error(.outOfRange, problem)
    }
    return t
  }

  private mutating func parseNetwork(_ n: ConfigNode) throws(PipelineError) {
    let nm = try ConfigMapping(
      n, allowed: ["architecture", "depth", "width", "padding", "up", "batch_norm", "dropout", "deep_supervision", "cgm", "cgm_dropout"])
    if let a = nm["architecture"] { architecture = try a.choice(Architecture.self) }
    func only(_ key: String, _ allowed: [Architecture]) throws(PipelineError) -> ConfigNode? {
      guard let node = nm[key] else { return nil }
      guard allowed.contains(architecture) else {
        throw node.error(.unknownKey, "\(key) applies to \(allowed.map(\.displayName).joined(separator: " and ")), not \(architecture.displayName)")
      }
      return node
    }
    if let d = nm["depth"] {
      depth = try d.int()
      try d.check((1...8).contains(depth), "depth must be 1...8")
    }
    if let w = nm["width"] {
      width = try w.int()
      try w.check((1...1024).contains(width), "width must be 1...1024")
    }
    if let p = nm["padding"] { padding = try p.choice(NetworkPadding.self) }
    if let u = try only("up", [.unet, .unetpp]) { upMode = try u.choice(UpMode.self) }
    if let b = try only("batch_norm", [.unet, .unetpp]) { batchNorm = try b.bool() }
    if let d = try only("dropout", [.unet]) {
      dropout = try d.double()
      try d.check(dropout >= 0 && dropout < 1, "dropout must lie in [0, 1)")
    }
    if let d = try only("deep_supervision", [.unetpp, .unet3p]) { deepSupervision = try d.bool() }
    if let c = try only("cgm", [.unet3p]) { cgm = try c.bool() }
    if let c = try only("cgm_dropout", [.unet3p]) {
      cgmDropout = try c.double()
      try c.check(cgmDropout >= 0 && cgmDropout < 1, "cgm_dropout must lie in [0, 1)")
    }
  }

  private mutating func parseLoss(_ n: ConfigNode) throws(PipelineError) {
    func terms(_ node: ConfigNode) throws(PipelineError) -> [LossTerm] {
      let name = try node.string()
      guard let t = LossTerm.terms(named: name) else {
        throw node.error(.outOfRange, "\"\(name)\" is not a loss: use \(LossTerm.nameHelp)")
      }
      return t
    }
    guard case .mapping = n.node else {
      loss = try terms(n)
      return
    }
    let lm = try ConfigMapping(n, allowed: ["terms", "head_weights", "focal_alpha", "focal_gamma", "classification_weight"])
    loss = try terms(try lm.required("terms"))
    if let h = lm["head_weights"] {
      if case .sequence = h.node {
        let w = try h.list().map { (x: ConfigNode) throws(PipelineError) -> Float in Float(try x.double()) }
        try h.check(!w.isEmpty && w.allSatisfy { $0 >= 0 }, "head_weights must be non-negative numbers")
        headWeights = .weights(w)
      } else {
        switch try h.string() {
        case "mean": headWeights = .mean
        case "sum": headWeights = .sum
        default: throw h.error(.outOfRange, "head_weights must be mean, sum or a list of numbers")
        }
      }
    }
    if let v = lm["focal_alpha"] { focalAlpha = try v.double(); try v.check(focalAlpha >= 0 && focalAlpha <= 1, "focal_alpha must lie in [0, 1]") }
    if let v = lm["focal_gamma"] { focalGamma = try v.double(); try v.check(focalGamma >= 0, "focal_gamma must be ≥ 0") }
    if let v = lm["classification_weight"] {
      classificationWeight = try v.double()
      try v.check(classificationWeight >= 0, "classification_weight must be ≥ 0")
    }
  }

  /// The network these settings describe, for data of `channels` input channels and `classes`
  /// label classes (padding: the section's, else `fallbackPadding`).
  public func network(channels: Int, classes: Int, fallbackPadding: NetworkPadding) -> NetworkConfiguration {
    switch architecture {
    case .unet:
      return .unet(UNetConfiguration(
        depth: depth, baseWidth: width, padding: padding ?? fallbackPadding, upMode: upMode, batchNorm: batchNorm,
        dropout: Float(dropout), inputChannels: channels, classes: classes))
    case .unetpp:
      return .unetpp(UNetPlusPlusConfiguration(
        depth: depth, baseWidth: width, upMode: upMode, batchNorm: batchNorm, deepSupervision: deepSupervision ?? true,
        inputChannels: channels, classes: classes))
    case .unet3p:
      return .unet3p(UNet3PlusConfiguration(
        depth: depth, baseWidth: width, deepSupervision: deepSupervision ?? true, cgm: cgm ?? true,
        cgmDropout: Float(cgmDropout), inputChannels: channels, classes: classes == 2 ? 1 : classes))
    }
  }

  /// What is wrong with the combination of settings (nil when usable).
  public var problem: String? {
    if architecture != .unet && padding == .valid {
      return "\(architecture.displayName) is built with same padding only (valid padding is a U-Net option)"
    }
    if prediction.heads == .prune {
      guard architecture == .unetpp else { return "prediction heads: prune applies to U-Net++" }
      guard let d = prediction.pruneDepth, (1...depth).contains(d) else { return "prune_depth must be in 1...\(depth)" }
      if deepSupervision == false && d != depth { return "without deep supervision a U-Net++ has only the head of depth \(depth)" }
    }
    return nil
  }
}
