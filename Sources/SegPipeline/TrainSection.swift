import SegCore
import SegTiling

/// The `train:` section of a pipeline file: the network, the optimiser and the schedule, and
/// how long and how to validate. Plain values: `unet train` maps them onto the trainer, and
/// command-line flags override them.
///
/// ```yaml
/// train:
///   network: {depth: 4, width: 16, padding: same, up: transposed, batch_norm: false, dropout: 0}
///   optimizer: {kind: sgd, momentum: 0.99, weight_decay: 0}   # or {kind: adam, beta1, beta2}
///   schedule: {kind: cosine, lr: 0.01, floor: 0.0001}         # constant | step | cosine | plateau
///   loss: cross_entropy+dice                                   # cross_entropy | dice | cross_entropy+dice
///   steps: 2000                                                # or epochs: 20
///   batch: 1
///   validation: {fraction: 0.2}                                # or {sources: [stem, …]}
///   eval_every: 200                                            # steps (default: every epoch)
///   checkpoint_every: 500
/// ```
public struct TrainSection: Sendable, Equatable {
  public var depth = 4
  public var width = 16
  /// nil: the tiles' padding (or valid).
  public var padding: UNetPadding?
  /// transposed | bilinear
  public var upMode = "transposed"
  public var batchNorm = false
  public var dropout = 0.0
  /// sgd | adam
  public var optimizer = "sgd"
  public var momentum = 0.99
  public var weightDecay = 0.0
  public var beta1 = 0.9
  public var beta2 = 0.999
  /// constant | step | cosine | plateau
  public var schedule = "constant"
  public var learningRate = 0.01
  public var stepSize = 1000
  public var gamma = 0.1
  public var floor = 0.0
  public var patience = 3
  /// cross_entropy | dice | cross_entropy+dice
  public var loss = "cross_entropy"
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
    "network", "optimizer", "schedule", "loss", "steps", "epochs", "batch", "validation", "eval_every", "checkpoint_every",
    "log_every", "max_gradient_norm", "shuffle_buffer", "classes",
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
    if let n = m["network"] {
      let nm = try ConfigMapping(n, allowed: ["depth", "width", "padding", "up", "batch_norm", "dropout"])
      if let d = nm["depth"] {
        t.depth = try d.int()
        try d.check((1...8).contains(t.depth), "depth must be 1...8")
      }
      if let w = nm["width"] {
        t.width = try w.int()
        try w.check((1...1024).contains(t.width), "width must be 1...1024")
      }
      if let p = nm["padding"] { t.padding = try p.choice(UNetPadding.self) }
      if let u = nm["up"] {
        t.upMode = try u.string()
        guard ["transposed", "bilinear"].contains(t.upMode) else { throw u.error(.outOfRange, "up must be transposed or bilinear") }
      }
      if let b = nm["batch_norm"] { t.batchNorm = try b.bool() }
      if let d = nm["dropout"] {
        t.dropout = try d.double()
        try d.check(t.dropout >= 0 && t.dropout < 1, "dropout must lie in [0, 1)")
      }
    }
    if let n = m["optimizer"] {
      let om = try ConfigMapping(n, allowed: ["kind", "momentum", "weight_decay", "beta1", "beta2"])
      t.optimizer = try om.required("kind").string()
      guard ["sgd", "adam"].contains(t.optimizer) else {
        throw (om["kind"] ?? n).error(.outOfRange, "kind must be sgd or adam")
      }
      if t.optimizer == "adam", let k = om["momentum"] { throw k.error(.unknownKey, "momentum applies to sgd (adam has beta1)") }
      if t.optimizer == "sgd", let k = om["beta1"] ?? om["beta2"] { throw k.error(.unknownKey, "beta1/beta2 apply to adam") }
      if let v = om["momentum"] { t.momentum = try v.double(); try v.check(t.momentum >= 0 && t.momentum < 1, "momentum must lie in [0, 1)") }
      if let v = om["weight_decay"] { t.weightDecay = try v.double(); try v.check(t.weightDecay >= 0, "weight_decay must be ≥ 0") }
      if let v = om["beta1"] { t.beta1 = try v.double(); try v.check(t.beta1 >= 0 && t.beta1 < 1, "beta1 must lie in [0, 1)") }
      if let v = om["beta2"] { t.beta2 = try v.double(); try v.check(t.beta2 >= 0 && t.beta2 < 1, "beta2 must lie in [0, 1)") }
    }
    if let n = m["schedule"] {
      let sm = try ConfigMapping(n, allowed: ["kind", "lr", "step_size", "gamma", "floor", "patience", "factor"])
      t.schedule = try sm["kind"]?.string() ?? "constant"
      guard ["constant", "step", "cosine", "plateau"].contains(t.schedule) else {
        throw (sm["kind"] ?? n).error(.outOfRange, "kind must be constant, step, cosine or plateau")
      }
      if let v = sm["lr"] { t.learningRate = try v.double(); try v.check(t.learningRate > 0 && t.learningRate < 100, "lr must be positive") }
      if let v = sm["step_size"] { t.stepSize = try v.int(); try v.check(t.stepSize >= 1, "step_size must be ≥ 1") }
      if let v = sm["gamma"] ?? sm["factor"] { t.gamma = try v.double(); try v.check(t.gamma > 0 && t.gamma < 1, "the factor must lie in (0, 1)") }
      if let v = sm["floor"] { t.floor = try v.double(); try v.check(t.floor >= 0, "floor must be ≥ 0") }
      if let v = sm["patience"] { t.patience = try v.int(); try v.check(t.patience >= 1, "patience must be ≥ 1") }
    }
    if let n = m["loss"] {
      t.loss = try n.string()
      guard ["cross_entropy", "dice", "cross_entropy+dice"].contains(t.loss) else {
        throw n.error(.outOfRange, "loss must be cross_entropy, dice or cross_entropy+dice")
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
    return t
  }
}
