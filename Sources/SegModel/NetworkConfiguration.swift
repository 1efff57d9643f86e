/// Which network, with its settings: the one description that training, prediction, tiling
/// and checkpoints share.
///
/// Encoded as the architecture's own configuration plus an `architecture` key
/// (`{"architecture": "unetpp", "version": 1, "depth": 4, …}`). Checkpoints of format 1 hold a
/// bare ``UNetConfiguration`` (no `architecture` key); ``init(from:)`` reads those as `.unet`.
public enum NetworkConfiguration: Sendable, Equatable, Hashable, Codable {
  case unet(UNetConfiguration)
  case unetpp(UNetPlusPlusConfiguration)
  case unet3p(UNet3PlusConfiguration)

  public var architecture: Architecture {
    switch self {
    case .unet: return .unet
    case .unetpp: return .unetpp
    case .unet3p: return .unet3p
    }
  }

  /// The size rules (see ``NetworkGeometry``).
  public var geometry: NetworkGeometry {
    switch self {
    case .unet(let c): return c.geometry
    case .unetpp(let c): return c.geometry
    case .unet3p(let c): return c.geometry
    }
  }

  public var depth: Int { geometry.depth }
  public var padding: NetworkPadding { geometry.padding }

  public var baseWidth: Int {
    switch self {
    case .unet(let c): return c.baseWidth
    case .unetpp(let c): return c.baseWidth
    case .unet3p(let c): return c.baseWidth
    }
  }

  public var inputChannels: Int {
    switch self {
    case .unet(let c): return c.inputChannels
    case .unetpp(let c): return c.inputChannels
    case .unet3p(let c): return c.inputChannels
    }
  }

  /// Channels of each head's output K (1 for a UNet 3+ sigmoid head).
  public var outputChannels: Int {
    switch self {
    case .unet(let c): return c.classes
    case .unetpp(let c): return c.classes
    case .unet3p(let c): return c.classes
    }
  }

  /// Label classes a prediction distinguishes (2 for a single sigmoid channel).
  public var labelClasses: Int { outputChannels == 1 ? 2 : outputChannels }

  /// Whether the network uses batch normalisation (its running statistics are state).
  public var batchNorm: Bool {
    switch self {
    case .unet(let c): return c.batchNorm
    case .unetpp(let c): return c.batchNorm
    case .unet3p: return true
    }
  }

  /// What is wrong with this configuration (empty when it is usable).
  public var problems: [String] {
    var out: [String]
    switch self {
    case .unet(let c): out = c.problems
    case .unetpp(let c): out = c.problems
    case .unet3p(let c): out = c.problems
    }
    // Bounds on every width and channel count, so no product the builders form can overflow
    // (a checkpoint header can name any numbers; a base width near 2^62 shifted left by the
    // depth wraps to a small number and passed the check above).
    if baseWidth > 1 << 20 { out.append("base_width must be at most 2^20, not \(baseWidth)") }
    if inputChannels > 1 << 16 { out.append("input_channels must be at most 65536, not \(inputChannels)") }
    if outputChannels > 1 << 16 { out.append("classes must be at most 65536, not \(outputChannels)") }
    return out
  }

  /// The output size (per axis) for an input size, or nil when the network cannot take it.
  public func outputSize(forInput n: Int) -> Int? { geometry.outputSize(forInput: n) }

  /// The input size (per axis) whose output has size `n`, or nil.
  public func inputSize(forOutput n: Int) -> Int? { geometry.inputSize(forOutput: n) }

  /// One line for messages: "U-Net++ (depth 4, base width 16, 4 heads, …)".
  public var summary: String {
    switch self {
    case .unet(let c):
      return "U-Net (depth \(c.depth), base width \(c.baseWidth), \(c.padding.rawValue) padding, \(c.upMode.rawValue) up-sampling, batch norm \(c.batchNorm ? "on" : "off"), \(c.inputChannels) input channel(s), \(c.classes) classes)"
    case .unetpp(let c):
      return "U-Net++ (depth \(c.depth), base width \(c.baseWidth), \(c.upMode.rawValue) up-sampling, batch norm \(c.batchNorm ? "on" : "off"), deep supervision \(c.deepSupervision ? "on" : "off"), \(c.inputChannels) input channel(s), \(c.classes) classes)"
    case .unet3p(let c):
      return "UNet 3+ (depth \(c.depth), base width \(c.baseWidth), deep supervision \(c.deepSupervision ? "on" : "off"), CGM \(c.cgm ? "on" : "off"), \(c.inputChannels) input channel(s), \(c.classes == 1 ? "1 sigmoid output" : "\(c.classes) classes"))"
    }
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: AnyCodingKey.self)
    let architecture = try c.decodeIfPresent(Architecture.self, forKey: AnyCodingKey("architecture")) ?? .unet
    switch architecture {
    case .unet: self = .unet(try UNetConfiguration(from: decoder))
    case .unetpp: self = .unetpp(try UNetPlusPlusConfiguration(from: decoder))
    case .unet3p: self = .unet3p(try UNet3PlusConfiguration(from: decoder))
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: AnyCodingKey.self)
    try c.encode(architecture, forKey: AnyCodingKey("architecture"))
    switch self {
    case .unet(let v): try v.encode(to: encoder)
    case .unetpp(let v): try v.encode(to: encoder)
    case .unet3p(let v): try v.encode(to: encoder)
    }
  }
}

/// How a trained network is run for prediction (not part of its shape, so it can change after
/// training): which heads of a U-Net++ to use.
///
/// JSON keys: `heads` (`"mean"` or `"prune"`), `prune_depth` (1 … depth, with `"prune"`),
/// `threshold` (optional: the foreground probability from which a pixel of a two-class network
/// is labelled foreground; absent: the more probable class, i.e. 0.5).
public struct InferenceSettings: Sendable, Equatable, Hashable, Codable {
  /// How a deeply supervised U-Net++ turns its heads into one prediction.
  public enum Heads: String, Sendable, Codable, CaseIterable {
    /// The mean of every head's softmax probabilities (the paper's "accurate" mode).
    case mean
    /// Keep only the nodes X^{i,j} with i + j ≤ d and use head d (the "fast" mode).
    case prune
  }

  public var heads: Heads
  /// d for ``Heads/prune``.
  public var pruneDepth: Int?
  /// Two classes: class 1 where its probability is at least this (chosen on validation images
  /// after training; nil: the argmax).
  public var threshold: Float?

  public init(heads: Heads = .mean, pruneDepth: Int? = nil, threshold: Float? = nil) {
    self.heads = heads
    self.pruneDepth = pruneDepth
    self.threshold = threshold
  }

  enum CodingKeys: String, CodingKey {
    case heads, threshold
    case pruneDepth = "prune_depth"
  }

  /// What is wrong with these settings for `network` (nil when usable).
  public func problem(for network: NetworkConfiguration) -> String? {
    if let t = threshold {
      guard t > 0 && t < 1 else { return "threshold must lie in (0, 1), not \(t)" }
      guard network.labelClasses == 2 else { return "a threshold applies to two-class networks (this one has \(network.labelClasses) classes)" }
    }
    guard heads == .prune else { return pruneDepth == nil ? nil : "prune_depth needs heads: prune" }
    guard case .unetpp(let c) = network else { return "pruning applies to U-Net++ only" }
    guard let d = pruneDepth, (1...c.depth).contains(d) else {
      return "prune depth must be in 1...\(c.depth), not \(pruneDepth.map(String.init) ?? "missing")"
    }
    if !c.deepSupervision && d != c.depth {
      return "a U-Net++ without deep supervision has only the head of depth \(c.depth)"
    }
    return nil
  }
}
