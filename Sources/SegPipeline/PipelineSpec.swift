import SegAugment
import SegCore
import SegTiling
import SegIO
import SegWeights

/// How label masks are read and interpreted.
public struct MaskSettings: Sendable, Equatable {
  public var kind: MaskKind
  public var connectivity: Connectivity

  public init(kind: MaskKind = .auto, connectivity: Connectivity = .four) {
    self.kind = kind
    self.connectivity = connectivity
  }
}

/// A parsed pipeline file (format version 1). Relative paths are relative to the file.
///
/// ```yaml
/// version: 1
/// seed: 2015
/// sources:
///   images: images/*.png        # or a list of patterns, stacked as channels (modalities)
///   masks: labels/*.png         # optional; paired with the images by file stem
/// samples_per_image: 4
/// mask: {kind: auto, connectivity: 4}
/// interpolation: bilinear        # nearest | bilinear | bicubic | bspline
/// border: reflect                # default for the geometric stages
/// stages:
///   - normalize: {method: percentile, low: 1, high: 99}
///   - affine: {rotate: [-15, 15], flip_h: 0.5}
///   - elastic: {method: grid, points: 3, sigma: 10}
///   - weight_map: {w0: 10, sigma: 5}
/// ```
public struct PipelineSpec: Sendable {
  public static let formatVersion = 1

  /// The file it was read from ("" when built in code).
  public var file: String
  public var version: Int
  public var seed: UInt64
  public var sources: SourceSpec
  public var samplesPerImage: Int
  public var mask: MaskSettings
  public var interpolation: Interpolation
  public var border: BorderMode
  public var fill: Float
  public var stages: [any AugmentationStage]
  /// Decode limits for the sources.
  public var decode: DecodeOptions
  /// How samples become training tiles (nil: whole samples).
  public var tiles: TileSettings?
  /// How training samples are stored in shards.
  public var shards: ShardOutputSettings
  /// The `train:` section (defaults when absent).
  public var train: TrainSection
  /// The augmentation epoch (0: the shards `prepare` makes; e ≥ 1: the fresh draws training
  /// prepares for its e-th pass over the data).
  public var epoch = 0

  /// The seed every random stream of a sample is keyed by: the pipeline's seed for epoch 0,
  /// a seed derived from it and the epoch otherwise (so each epoch draws new augmentations and
  /// crops, equally reproducible).
  public var streamSeed: UInt64 { epoch == 0 ? seed : mix64(seed ^ mix64(0xE90C_0000_0000_0000 &+ UInt64(epoch))) }

  /// The same pipeline for augmentation epoch `e` (see ``epoch``).
  public func forEpoch(_ e: Int) -> PipelineSpec {
    precondition(e >= 0, "PipelineSpec: negative epoch")
    var s = self
    s.epoch = e
    return s
  }

  public init(
    file: String = "", seed: UInt64 = 0, sources: SourceSpec, samplesPerImage: Int = 1, mask: MaskSettings = .init(),
    interpolation: Interpolation = .bilinear, border: BorderMode = .reflect, fill: Float = 0,
    stages: [any AugmentationStage], decode: DecodeOptions = DecodeOptions(), tiles: TileSettings? = nil,
    shards: ShardOutputSettings = ShardOutputSettings()
  ) {
    self.file = file
    self.version = PipelineSpec.formatVersion
    self.seed = seed
    self.sources = sources
    self.samplesPerImage = samplesPerImage
    self.mask = mask
    self.interpolation = interpolation
    self.border = border
    self.fill = fill
    self.stages = stages
    self.decode = decode
    self.tiles = tiles
    self.shards = shards
    self.train = TrainSection()
  }

  /// The folder relative paths are resolved against.
  public var baseDirectory: String { file.isEmpty ? "." : FileIO.parentDirectory(of: file) }

  static let topLevelKeys = [
    "version", "seed", "sources", "samples_per_image", "mask", "interpolation", "border", "fill", "stages", "max_pixels",
    "tiles", "shards", "train",
  ]

  /// Reads and validates a pipeline file.
  public static func load(_ path: String, limits: PipelineLimits = PipelineLimits()) throws(PipelineError) -> PipelineSpec {
    let bytes: [UInt8]
    do {
      bytes = try FileIO.read(path)
    } catch {
      throw PipelineError(.unreadable, path: path, error.message)
    }
    return try parse(String(decoding: bytes, as: UTF8.self), file: path, limits: limits)
  }

  /// Parses pipeline text (`file` names it in errors and anchors relative paths).
  public static func parse(
    _ text: String, file: String, limits: PipelineLimits = PipelineLimits()
  ) throws(PipelineError) -> PipelineSpec {
    let root = try ConfigNode.parse(text, file: file, limits: limits)
    let m = try ConfigMapping(root, allowed: topLevelKeys)
    let versionNode = try m.required("version")
    let version = try versionNode.int()
    guard version == formatVersion else {
      throw versionNode.error(.outOfRange, "format version \(version) is not supported (this unet reads version \(formatVersion))")
    }
    let seedNode = try m.required("seed")
    let seedValue = try seedNode.int()
    try seedNode.check(seedValue >= 0, "the seed must be a non-negative integer")
    let sources = try parseSources(try m.required("sources"))
    let samples = try m["samples_per_image"]?.int() ?? 1
    try (m["samples_per_image"] ?? root).check(samples >= 1 && samples <= 1_000_000, "samples_per_image must be 1...1000000")
    var mask = MaskSettings()
    if let node = m["mask"] {
      let mm = try ConfigMapping(node, allowed: ["kind", "connectivity"])
      if let k = mm["kind"] { mask.kind = try k.choice(MaskKind.self) }
      if let c = mm["connectivity"] {
        let v = try c.int()
        guard let conn = Connectivity(rawValue: v) else { throw c.error(.outOfRange, "connectivity must be 4 or 8") }
        mask.connectivity = conn
      }
    }
    let interpolation = try m["interpolation"]?.choice(Interpolation.self) ?? .bilinear
    let border = try m["border"]?.choice(BorderMode.self) ?? .reflect
    let fill = Float(try m["fill"]?.double() ?? 0)
    var decode = DecodeOptions()
    if let n = m["max_pixels"] {
      decode.maxPixels = try n.int()
      try n.check(decode.maxPixels > 0, "max_pixels must be positive")
    }
    var stages: [any AugmentationStage] = []
    let stageList = try m.required("stages")
    if !stageList.isNull {
      for item in try stageList.list() {
        var stage = try StageFactory.stage(item, defaultBorder: border)
        if var w = stage as? WeightMapStage {
          w.parameters.maskKind = mask.kind
          w.parameters.connectivity = mask.connectivity
          stage = w
        }
        stages.append(stage)
      }
    }
    if stages.contains(where: { $0 is WeightMapStage }), case .globs(_, nil) = sources {
      throw stageList.error(.missingKey, "the weight_map stage needs masks (sources.masks)")
    }
    let tiles = try m["tiles"].map { (n) throws(PipelineError) -> TileSettings in try TileSettings.parse(n) }
    let shardSettings = try m["shards"].map { (n) throws(PipelineError) -> ShardOutputSettings in
      try ShardOutputSettings.parse(n)
    } ?? ShardOutputSettings()
    var spec = PipelineSpec(
      file: file, seed: UInt64(seedValue), sources: sources, samplesPerImage: samples, mask: mask,
      interpolation: interpolation, border: border, fill: fill, stages: stages, decode: decode, tiles: tiles,
      shards: shardSettings)
    spec.version = version
    if let n = m["train"] { spec.train = try TrainSection.parse(n) }
    return spec
  }

  static func parseSources(_ node: ConfigNode) throws(PipelineError) -> SourceSpec {
    let m = try ConfigMapping(node, allowed: ["images", "masks", "pairs", "folder"])
    if let pairs = m["pairs"] {
      if let other = m["images"] ?? m["masks"] ?? m["folder"] {
        throw other.error(.unknownKey, "give either pairs or images/masks or folder, not both")
      }
      var list: [SourcePair] = []
      for item in try pairs.list() {
        let pm = try ConfigMapping(item, allowed: ["image", "mask"])
        let imageNode = try pm.required("image")
        let images = try imageNode.strings()
        guard let first = images.first else { throw imageNode.error(.noSources, "a pair needs at least one image") }
        list.append(SourcePair(stem: ImageFiles.stem(first), images: images, mask: try pm["mask"]?.string()))
      }
      guard !list.isEmpty else { throw pairs.error(.noSources, "the list of pairs is empty") }
      return .pairs(list)
    }
    if let folder = m["folder"] {
      if let other = m["images"] ?? m["masks"] { throw other.error(.unknownKey, "give either folder or images/masks") }
      return .folder(try folder.string())
    }
    let images = try m.required("images").strings()
    guard !images.isEmpty else { throw node.error(.noSources, "sources.images is empty") }
    return .globs(images: images, masks: try m["masks"]?.string())
  }

  /// The same pipeline reading its sources from `directory` (images/ + labels/, paired by
  /// stem) instead; a relative `directory` is taken from the current working directory.
  public func overridingSource(_ directory: String) -> PipelineSpec {
    var copy = self
    var dir = directory
    while dir.count > 1 && dir.hasSuffix("/") { dir.removeLast() }
    if !dir.hasPrefix("/") { dir = FileIO.currentDirectory() + "/" + dir }
    copy.sources = .folder(dir)
    return copy
  }

  /// The sources, resolved and paired.
  public func resolveSources() throws(PipelineError) -> [SourcePair] {
    if case .folder(let dir) = sources {
      return try SourceSpec.folder(SourceSpec.join(baseDirectory, dir)).resolve(base: baseDirectory, file: file)
    }
    return try sources.resolve(base: baseDirectory, file: file.isEmpty ? nil : file)
  }

  /// The settings that decide the samples' bytes, as canonical JSON (keys in a fixed order,
  /// no file paths): the pipeline part of the cache key.
  public var canonical: JSONValue {
    .object((epoch > 0 ? [("epoch", JSONValue.int(epoch))] : []) + [
      ("version", .int(version)), ("seed", .int(Int(truncatingIfNeeded: seed))), ("samples_per_image", .int(samplesPerImage)),
      ("mask", .object([("kind", .string(mask.kind.rawValue)), ("connectivity", .int(mask.connectivity.rawValue))])),
      ("interpolation", .string(interpolation.rawValue)), ("border", .string(border.rawValue)), ("fill", .double(Double(fill))),
      ("max_pixels", .int(decode.maxPixels)),
      ("stages", .array(stages.map { .object([(type(of: $0).key, $0.settings)]) })),
      ("tiles", tiles?.json ?? .null), ("shards", shards.json),
    ])
  }

  /// Whether a stage needs statistics over the whole data set first.
  public var needsDatasetPass: Bool {
    stages.contains { stage in
      if let n = stage as? NormalizeStage, n.method == .zscoreDataset { return true }
      if let w = stage as? WeightMapStage, w.datasetBalance { return true }
      return false
    }
  }
}
