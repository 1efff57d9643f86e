/// The shape of a U-Net++ (Zhou, Siddiquee, Tajbakhsh & Liang 2018, "UNet++: A Nested U-Net
/// Architecture for Medical Image Segmentation", doi:10.1007/978-3-030-00889-5_1), as
/// ../shared/ARCHITECTURES.md §2 specifies it.
///
/// Node X^{i,j} (level i, column j, i + j ≤ depth): X^{i,0} is the encoder (the U-Net's
/// contracting path); for j ≥ 1, X^{i,j} = block(cat(X^{i,0}, …, X^{i,j−1}, U(X^{i+1,j−1})))
/// with U a 2×2 stride-2 transposed convolution (or 1×1 convolution + bilinear ×2) to width
/// w_i = base_width·2^i, and block the U-Net's two 3×3 convolutions (+ batch norm) + ReLU. Heads:
/// 1×1 convolutions on X^{0,1} … X^{0,depth} (deep supervision) or on X^{0,depth} alone. Same
/// padding only.
///
/// JSON/YAML keys (snake_case, all required, unknown keys rejected): `version` (1), `depth`,
/// `base_width`, `up_mode`, `batch_norm`, `deep_supervision`, `input_channels`, `classes`.
public struct UNetPlusPlusConfiguration: Codable, Sendable, Equatable, Hashable {
  public var version: Int
  /// Poolings (1 ... 8); the paper uses 4.
  public var depth: Int
  public var baseWidth: Int
  public var upMode: UpMode
  public var batchNorm: Bool
  /// One head per column (X^{0,1} … X^{0,depth}) and the loss averaged over them; false: one
  /// head on X^{0,depth}.
  public var deepSupervision: Bool
  public var inputChannels: Int
  /// Output classes K (softmax), ≥ 2.
  public var classes: Int

  public static let currentVersion = 1

  public init(
    depth: Int = 4, baseWidth: Int = 64, upMode: UpMode = .transposed, batchNorm: Bool = false,
    deepSupervision: Bool = true, inputChannels: Int = 1, classes: Int = 2
  ) {
    version = Self.currentVersion
    self.depth = depth
    self.baseWidth = baseWidth
    self.upMode = upMode
    self.batchNorm = batchNorm
    self.deepSupervision = deepSupervision
    self.inputChannels = inputChannels
    self.classes = classes
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case version, depth, classes
    case baseWidth = "base_width"
    case upMode = "up_mode"
    case batchNorm = "batch_norm"
    case deepSupervision = "deep_supervision"
    case inputChannels = "input_channels"
  }

  public init(from decoder: any Decoder) throws {
    let (c, version) = try openConfiguration(
      decoder, keys: CodingKeys.self, architecture: .unetpp, what: "U-Net++ configuration", currentVersion: Self.currentVersion)
    self.version = version
    depth = try c.decode(Int.self, forKey: .depth)
    baseWidth = try c.decode(Int.self, forKey: .baseWidth)
    upMode = try c.decode(UpMode.self, forKey: .upMode)
    batchNorm = try c.decode(Bool.self, forKey: .batchNorm)
    deepSupervision = try c.decode(Bool.self, forKey: .deepSupervision)
    inputChannels = try c.decode(Int.self, forKey: .inputChannels)
    classes = try c.decode(Int.self, forKey: .classes)
    try rejectProblems(problems, decoder)
  }

  /// What is wrong with this configuration (empty when it is usable).
  public var problems: [String] {
    var out = sizeProblems(depth: depth, maxDepth: 8, baseWidth: baseWidth)
    if inputChannels < 1 { out.append("input_channels must be at least 1, not \(inputChannels)") }
    if classes < 2 { out.append("classes must be at least 2 (softmax), not \(classes)") }
    return out
  }

  /// Channels at level i: base_width · 2^i.
  public func width(level i: Int) -> Int { baseWidth << i }

  /// The nodes (i, j), j ≥ 1, in column order: the order of their parameters and of the
  /// computation (every input of a node then exists).
  public var nodes: [(level: Int, column: Int)] {
    (1...depth).flatMap { j in (0...(depth - j)).map { (level: $0, column: j) } }
  }

  /// The number of heads: depth with deep supervision, else 1.
  public var heads: Int { deepSupervision ? depth : 1 }

  public var geometry: NetworkGeometry { NetworkGeometry(architecture: .unetpp, depth: depth, padding: .same) }
}

/// The shape of a UNet 3+ (Huang, Lin, Tong, Hu, Zhang, Iwamoto, Han, Chen & Wu 2020, "UNet
/// 3+: A Full-Scale Connected UNet for Medical Image Segmentation",
/// doi:10.1109/ICASSP40776.2020.9053405), as ../shared/ARCHITECTURES.md §3 specifies it.
///
/// Encoder E^i (i = 0 … depth), two conv-BN-ReLU units each, widths base_width·2^i; decoder D^d
/// for d = depth−1 … 0: every level s contributes conv-BN-ReLU to `base_width` channels at scale
/// 2^−d (encoder maps max-pooled by 2^(d−s) for s < d, E^d itself, decoder maps (or the
/// bottleneck E^depth) bilinearly up-sampled by 2^(s−d) for s > d), concatenated in order s =
/// 0 … depth and fused by one conv-BN-ReLU of (depth+1)·base_width channels. Heads: a 3×3
/// convolution (+ bias) on D^d (d < depth) and on E^depth, bilinearly up-sampled to full size;
/// sigmoid for K = 1, softmax for K ≥ 2. The classification-guided module (CGM): dropout, 1×1
/// convolution to 2, global max, sigmoid; its argmax gates every head's probabilities. Same
/// padding only, batch norm always.
///
/// JSON/YAML keys (snake_case, all required, unknown keys rejected): `version` (1), `depth`,
/// `base_width`, `deep_supervision`, `cgm`, `cgm_dropout`, `input_channels`, `classes`.
public struct UNet3PlusConfiguration: Codable, Sendable, Equatable, Hashable {
  public var version: Int
  /// Poolings (1 ... 6); the paper uses 4.
  public var depth: Int
  public var baseWidth: Int
  /// Heads on every decoder level and the bottleneck; false: one head on D^0.
  public var deepSupervision: Bool
  /// The classification-guided module.
  public var cgm: Bool
  /// The CGM's dropout probability (0.5 in the paper), in [0, 1).
  public var cgmDropout: Float
  public var inputChannels: Int
  /// Head channels K: 1 for one foreground class (sigmoid, as the paper), ≥ 2 for softmax.
  public var classes: Int

  public static let currentVersion = 1

  public init(
    depth: Int = 4, baseWidth: Int = 64, deepSupervision: Bool = true, cgm: Bool = true, cgmDropout: Float = 0.5,
    inputChannels: Int = 1, classes: Int = 1
  ) {
    version = Self.currentVersion
    self.depth = depth
    self.baseWidth = baseWidth
    self.deepSupervision = deepSupervision
    self.cgm = cgm
    self.cgmDropout = cgmDropout
    self.inputChannels = inputChannels
    self.classes = classes
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case version, depth, cgm, classes
    case baseWidth = "base_width"
    case deepSupervision = "deep_supervision"
    case cgmDropout = "cgm_dropout"
    case inputChannels = "input_channels"
  }

  public init(from decoder: any Decoder) throws {
    let (c, version) = try openConfiguration(
      decoder, keys: CodingKeys.self, architecture: .unet3p, what: "UNet 3+ configuration", currentVersion: Self.currentVersion)
    self.version = version
    depth = try c.decode(Int.self, forKey: .depth)
    baseWidth = try c.decode(Int.self, forKey: .baseWidth)
    deepSupervision = try c.decode(Bool.self, forKey: .deepSupervision)
    cgm = try c.decode(Bool.self, forKey: .cgm)
    cgmDropout = try c.decode(Float.self, forKey: .cgmDropout)
    inputChannels = try c.decode(Int.self, forKey: .inputChannels)
    classes = try c.decode(Int.self, forKey: .classes)
    try rejectProblems(problems, decoder)
  }

  /// What is wrong with this configuration (empty when it is usable).
  public var problems: [String] {
    var out = sizeProblems(depth: depth, maxDepth: 6, baseWidth: baseWidth)
    if !(cgmDropout >= 0 && cgmDropout < 1) { out.append("cgm_dropout must be in [0, 1), not \(cgmDropout)") }
    if inputChannels < 1 { out.append("input_channels must be at least 1, not \(inputChannels)") }
    if classes < 1 { out.append("classes must be at least 1, not \(classes)") }
    return out
  }

  /// Encoder channels at level i: base_width · 2^i.
  public func width(level i: Int) -> Int { baseWidth << i }

  /// Channels of a decoder map D^d: (depth + 1)·base_width.
  public var decoderWidth: Int { (depth + 1) * baseWidth }

  /// The number of heads: depth + 1 with deep supervision, else 1.
  public var heads: Int { deepSupervision ? depth + 1 : 1 }

  /// Label classes: 2 for a sigmoid head (background and one foreground class), else K.
  public var labelClasses: Int { classes == 1 ? 2 : classes }

  public var geometry: NetworkGeometry { NetworkGeometry(architecture: .unet3p, depth: depth, padding: .same) }
}
