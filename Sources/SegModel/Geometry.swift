/// Convolution padding of a network.
public enum NetworkPadding: String, Codable, Sendable, CaseIterable {
  /// Unpadded 3×3 convolutions (the U-Net paper): every convolution loses a 1-pixel border, so
  /// the output is smaller than the input (572 → 388 for depth 4). U-Net only.
  case valid
  /// Zero padding 1: the output has the input's size, which must be a multiple of 2^depth.
  case same
}

/// The network families the trainer builds.
public enum Architecture: String, Codable, Sendable, CaseIterable {
  /// Ronneberger, Fischer & Brox 2015, doi:10.1007/978-3-319-24574-4_28.
  case unet
  /// U-Net++ (Zhou et al. 2018, doi:10.1007/978-3-030-00889-5_1): nested dense skip pathways,
  /// deep supervision.
  case unetpp
  /// UNet 3+ (Huang et al. 2020, doi:10.1109/ICASSP40776.2020.9053405): full-scale skips,
  /// full-scale deep supervision, a classification-guided module.
  case unet3p

  /// A name for messages.
  public var displayName: String {
    switch self {
    case .unet: return "U-Net"
    case .unetpp: return "U-Net++"
    case .unet3p: return "UNet 3+"
    }
  }
}

/// The size arithmetic of a network: which input sizes it takes, what output size it gives and
/// how much context an output tile needs. The one place these rules live: tiling, the pipeline's
/// `tiles:` section, training, prediction and checkpoints all ask this type (through
/// ``NetworkConfiguration/geometry``).
///
/// `valid` padding (U-Net only): every 3×3 convolution removes 2 pixels; an input is legal when
/// the size entering every pooling is even and every size stays ≥ 1 (572 → 388 for depth 4);
/// the context margin (input − output)/2 is what overlap-tiling supplies on each side (92 px).
/// `same` padding: the output equals the input, which must be a positive multiple of 2^depth.
public struct NetworkGeometry: Sendable, Equatable, Hashable, Codable {
  public var architecture: Architecture
  /// Poolings (levels − 1).
  public var depth: Int
  public var padding: NetworkPadding

  public init(architecture: Architecture = .unet, depth: Int = 4, padding: NetworkPadding = .valid) {
    precondition(depth >= 1 && depth <= 12, "NetworkGeometry: depth \(depth) outside 1...12")
    self.architecture = architecture
    self.depth = depth
    self.padding = padding
  }

  /// What is wrong with this combination (nil when it is usable).
  public var problem: String? {
    if padding == .valid && architecture != .unet {
      return "\(architecture.displayName) is built with same padding only (valid padding is a U-Net option)"
    }
    return nil
  }

  /// Input sizes must be multiples of this for `same` padding (2^depth).
  public var sizeMultiple: Int { 1 << depth }

  /// The output size (per axis) for an input size, or nil when the network cannot take it.
  public func outputSize(forInput n: Int) -> Int? {
    guard n >= 1 else { return nil }
    switch padding {
    case .same:
      return n % sizeMultiple == 0 ? n : nil
    case .valid:
      var s = n
      for _ in 0..<depth {
        s -= 4
        if s < 2 || s % 2 != 0 { return nil }
        s /= 2
      }
      s -= 4  // bottom block
      if s < 1 { return nil }
      for _ in 0..<depth {
        s = 2 * s - 4
        if s < 1 { return nil }
      }
      return s
    }
  }

  /// Whether `n` is a legal input size.
  public func isLegalInput(_ n: Int) -> Bool { outputSize(forInput: n) != nil }

  /// The input size (per axis) whose output has size `n`, or nil when no input gives it.
  public func inputSize(forOutput n: Int) -> Int? {
    guard n >= 1 else { return nil }
    switch padding {
    case .same:
      return outputSize(forInput: n) == nil ? nil : n
    case .valid:
      // Invert level by level: up path, bottom, down path.
      var s = n
      for _ in 0..<depth {
        s += 4
        if s % 2 != 0 { return nil }
        s /= 2
      }
      s += 4
      for _ in 0..<depth { s = 2 * s + 4 }
      return outputSize(forInput: s) == n ? s : nil
    }
  }

  /// The legal input sizes in a range, ascending.
  public func legalInputSizes(in range: ClosedRange<Int>) -> [Int] {
    range.filter(isLegalInput)
  }

  /// The legal input sizes up to `limit`, ascending.
  public func legalInputs(upTo limit: Int) -> [Int] { legalInputSizes(in: 1...max(limit, 1)) }

  /// The smallest legal input size ≥ n (legal sizes are at most 2^(depth+2) apart).
  public func nearestLegalInputSize(atLeast n: Int) -> Int? {
    let start = max(1, n)
    return legalInputSizes(in: start...(start + (1 << (depth + 2)))).first
  }

  /// The smallest legal input whose output is at least `n` pixels, with that output.
  public func nearestInput(forOutputAtLeast n: Int) -> (input: Int, output: Int) {
    var candidate = max(1, n)
    while true {
      if let out = outputSize(forInput: candidate), out >= n { return (candidate, out) }
      candidate += 1
    }
  }

  /// Pixels of context each side of an output tile: (input − output)/2, the same for every
  /// legal input (0 for same padding, whose output has the input's size).
  public var contextMargin: Int {
    switch padding {
    case .same: return 0
    case .valid:
      let (input, output) = nearestInput(forOutputAtLeast: 1)
      return (input - output) / 2
    }
  }

  /// The context a same-padding network gets around each output tile in overlap-tile
  /// prediction when the caller names none (a same network sees zeros at its input border, so
  /// tiles get context of their own): one size multiple, 2^depth.
  public var defaultPredictionContext: Int { padding == .same ? sizeMultiple : contextMargin }

  /// "a depth-4 same U-Net" (for messages).
  public var summary: String { "a depth-\(depth) \(padding.rawValue) \(architecture.displayName)" }
}

/// How a U-Net or U-Net++ decoder up-samples.
public enum UpMode: String, Codable, Sendable, CaseIterable {
  /// 2×2 transposed convolution with stride 2 (the U-Net paper's "up-convolution").
  case transposed
  /// A 1×1 convolution, then bilinear ×2 (align_corners = False). The two are linear, so this
  /// equals up-sampling first, at a quarter of the cost.
  case bilinear
}
