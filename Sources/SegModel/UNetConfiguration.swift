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
  /// The convolution padding (``NetworkPadding``).
  public typealias Padding = NetworkPadding
  /// How the expanding path up-samples (``UpMode``).
  public typealias UpMode = SegModel.UpMode

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
    let (c, version) = try openConfiguration(
      decoder, keys: CodingKeys.self, architecture: .unet, what: "network configuration", currentVersion: Self.currentVersion)
    self.version = version
    depth = try c.decode(Int.self, forKey: .depth)
    baseWidth = try c.decode(Int.self, forKey: .baseWidth)
    padding = try c.decode(Padding.self, forKey: .padding)
    upMode = try c.decode(UpMode.self, forKey: .upMode)
    batchNorm = try c.decode(Bool.self, forKey: .batchNorm)
    dropout = try c.decode(Float.self, forKey: .dropout)
    inputChannels = try c.decode(Int.self, forKey: .inputChannels)
    classes = try c.decode(Int.self, forKey: .classes)
    try rejectProblems(problems, decoder)
  }

  /// What is wrong with this configuration (empty when it is usable).
  public var problems: [String] {
    var out = sizeProblems(depth: depth, maxDepth: 12, baseWidth: baseWidth)
    if !(dropout >= 0 && dropout < 1) { out.append("dropout must be in [0, 1), not \(dropout)") }
    if inputChannels < 1 { out.append("input_channels must be at least 1, not \(inputChannels)") }
    if classes < 1 { out.append("classes must be at least 1, not \(classes)") }
    return out
  }

  /// Channels at level i: base_width · 2^i.
  public func width(level i: Int) -> Int { baseWidth << i }

  // MARK: - Size arithmetic (asked of ``geometry``)

  /// The network's size rules.
  public var geometry: NetworkGeometry { NetworkGeometry(architecture: .unet, depth: depth, padding: padding) }

  /// The output size (per axis) for an input size, or nil when the network cannot take it.
  public func outputSize(forInput n: Int) -> Int? { geometry.outputSize(forInput: n) }

  /// The input size (per axis) whose output has size `n`, or nil when no input gives it.
  public func inputSize(forOutput n: Int) -> Int? { geometry.inputSize(forOutput: n) }

  /// The legal input sizes in a range, ascending.
  public func legalInputSizes(in range: ClosedRange<Int>) -> [Int] { geometry.legalInputSizes(in: range) }

  /// The smallest legal input size ≥ n.
  public func nearestLegalInputSize(atLeast n: Int) -> Int? { geometry.nearestLegalInputSize(atLeast: n) }
}
