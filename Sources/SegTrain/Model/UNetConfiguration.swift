/// The shape of a U-Net (Ronneberger, Fischer & Brox 2015, "U-Net: Convolutional Networks for
/// Biomedical Image Segmentation", doi:10.1007/978-3-319-24574-4_28).
///
/// Stored in checkpoints and pipeline files as JSON/YAML with snake_case keys:
/// `version` (1), `depth`, `base_width`, `padding` (`valid` | `same`), `up_mode`
/// (`transposed` | `bilinear`), `batch_norm`, `dropout`, `input_channels`, `classes`. Every key
/// is required and unknown keys are rejected, so a file says exactly what network it means.
///
/// Topology: `depth` poolings; level i (0 ... depth) has width `base_width`·2^i. Each level has
/// two 3×3 convolutions (each followed by batch norm when enabled, then ReLU); a 2×2 max pool
/// leads down; on the way up, a 2×2 stride-2 transposed convolution (or, in `bilinear` mode, a
/// 1×1 convolution followed by bilinear ×2 up-sampling; the two are linear, so this equals
/// up-sampling first and is 4× cheaper) halves the width, the skip connection of the same
/// level is centre-cropped and concatenated in front, and two 3×3 convolutions follow. A 1×1
/// convolution maps the top level to `classes` logits. Dropout with probability `dropout` is
/// applied to the output of the bottom level (the end of the contracting path) in training.
public struct UNetConfiguration: Codable, Sendable, Equatable, Hashable {
  /// The convolution padding.
  public enum Padding: String, Codable, Sendable, CaseIterable {
    /// No padding: each 3×3 convolution shrinks the image by 2 (the paper: 572 → 388).
    case valid
    /// Zero padding 1: the output has the input's size; sizes must be multiples of 2^depth.
    case same
  }

  /// How the expanding path up-samples.
  public enum UpMode: String, Codable, Sendable, CaseIterable {
    /// 2×2 transposed convolution with stride 2 (the paper's "up-convolution").
    case transposed
    /// Bilinear ×2 (align_corners = False) with a 1×1 convolution.
    case bilinear
  }

  /// The format version of this structure; 1.
  public var version: Int
  /// Number of poolings (≥ 1).
  public var depth: Int
  /// Channels of the first level (≥ 1); the paper uses 64.
  public var baseWidth: Int
  public var padding: Padding
  public var upMode: UpMode
  public var batchNorm: Bool
  /// Dropout probability at the end of the contracting path, in [0, 1).
  public var dropout: Float
  /// Channels of the input image (≥ 1).
  public var inputChannels: Int
  /// Output classes K (≥ 1; 2 for foreground/background).
  public var classes: Int

  public static let currentVersion = 1

  public init(
    depth: Int = 4, baseWidth: Int = 64, padding: Padding = .valid, upMode: UpMode = .transposed,
    batchNorm: Bool = false, dropout: Float = 0, inputChannels: Int = 1, classes: Int = 2
  ) {
    self.version = Self.currentVersion
    self.depth = depth
    self.baseWidth = baseWidth
    self.padding = padding
    self.upMode = upMode
    self.batchNorm = batchNorm
    self.dropout = dropout
    self.inputChannels = inputChannels
    self.classes = classes
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case version, depth, padding, dropout, classes
    case baseWidth = "base_width"
    case upMode = "up_mode"
    case batchNorm = "batch_norm"
    case inputChannels = "input_channels"
  }

  public init(from decoder: any Decoder) throws {
    try rejectUnknownKeys(decoder, known: CodingKeys.allCases.map(\.stringValue), what: "network configuration")
    let c = try decoder.container(keyedBy: CodingKeys.self)
    version = try c.decode(Int.self, forKey: .version)
    guard version == Self.currentVersion else {
      throw DecodingError.dataCorruptedError(forKey: .version, in: c, debugDescription: "unsupported network configuration version \(version) (this build reads \(Self.currentVersion))")
    }
    depth = try c.decode(Int.self, forKey: .depth)
    baseWidth = try c.decode(Int.self, forKey: .baseWidth)
    padding = try c.decode(Padding.self, forKey: .padding)
    upMode = try c.decode(UpMode.self, forKey: .upMode)
    batchNorm = try c.decode(Bool.self, forKey: .batchNorm)
    dropout = try c.decode(Float.self, forKey: .dropout)
    inputChannels = try c.decode(Int.self, forKey: .inputChannels)
    classes = try c.decode(Int.self, forKey: .classes)
    if let problem = problems.first {
      throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: problem))
    }
  }

  /// What is wrong with this configuration (empty when it is usable).
  public var problems: [String] {
    var out: [String] = []
    if depth < 1 || depth > 12 { out.append("depth must be in 1...12, not \(depth)") }
    if baseWidth < 1 { out.append("base_width must be at least 1, not \(baseWidth)") }
    if baseWidth << max(0, min(depth, 12)) > 1 << 20 { out.append("base_width·2^depth is unreasonably large") }
    if !(dropout >= 0 && dropout < 1) { out.append("dropout must be in [0, 1), not \(dropout)") }
    if inputChannels < 1 { out.append("input_channels must be at least 1, not \(inputChannels)") }
    if classes < 1 { out.append("classes must be at least 1, not \(classes)") }
    return out
  }

  /// Channels at level i: base_width · 2^i.
  public func width(level i: Int) -> Int { baseWidth << i }

  // MARK: - Size arithmetic

  /// The output size (per axis) for an input size, or nil when the network cannot take it.
  ///
  /// `valid`: every 3×3 convolution removes 2 pixels; an input is legal when the size entering
  /// every pooling is even and every size stays ≥ 1 (572 → 388 for depth 4). `same`: the
  /// output equals the input, which must be a positive multiple of 2^depth.
  public func outputSize(forInput n: Int) -> Int? {
    switch padding {
    case .same:
      return n >= 1 && n % (1 << depth) == 0 ? n : nil
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

  /// The input size (per axis) whose output has size `n`, or nil when no input gives it.
  public func inputSize(forOutput n: Int) -> Int? {
    switch padding {
    case .same:
      return outputSize(forInput: n) == nil ? nil : n
    case .valid:
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
    range.filter { outputSize(forInput: $0) != nil }
  }

  /// The smallest legal input size ≥ n, if any up to n + 2^(depth+1)·2.
  public func nearestLegalInputSize(atLeast n: Int) -> Int? {
    let step = 1 << (depth + 2)
    return legalInputSizes(in: max(1, n)...(max(1, n) + step)).first
  }
}

/// Throws when the keyed container at `decoder` holds a key not in `known`.
func rejectUnknownKeys(_ decoder: any Decoder, known: [String], what: String) throws {
  struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
  }
  let c = try decoder.container(keyedBy: AnyKey.self)
  let unknown = c.allKeys.map(\.stringValue).filter { !known.contains($0) }
  if let first = unknown.sorted().first {
    throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [AnyKey(stringValue: first)], debugDescription: "unknown key '\(first)' in the \(what) (known: \(known.sorted().joined(separator: ", ")))"))
  }
}
