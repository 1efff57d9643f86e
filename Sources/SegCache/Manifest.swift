import Foundation
import SegCore

/// The shard set's table of contents, `manifest.json`: what made it (the canonical pipeline and
/// its hash, the sources with their content hashes), how samples are stored, and per shard
/// its name, size, SHA-256 and every sample's member offsets (random access without
/// scanning). Written last, atomically, by `unet prepare`.
public struct ShardManifest: Codable, Sendable, Equatable {
  public static let formatName = "swift-unet-shards"
  public static let currentVersion = 1

  public var format: String
  public var version: Int
  /// The canonical pipeline (settings that decide the samples' bytes).
  public var pipeline: JSONValue
  public var pipelineSHA256: String
  public var pipelineFile: String?
  public var settings: ShardSettings
  public var sources: [SourceEntry]
  /// Per-data-set statistics from the first pass (z-score normalisation), if any.
  public var datasetStatistics: StatisticsEntry?
  /// Pixel counts per class over all masks (class balance `dataset`), if computed.
  public var classFrequencies: [UInt64]?
  public var shards: [ShardEntry]
  /// For a partial manifest of a distributed run: which part this is.
  public var part: PartInfo?
  /// The pipeline's `train:` section (how to train on these shards; `unet train --shards` reads
  /// it). Not part of the pipeline's hash: it decides no shard's bytes.
  public var train: JSONValue?

  public init(
    pipeline: JSONValue, pipelineSHA256: String, pipelineFile: String?, settings: ShardSettings, sources: [SourceEntry],
    datasetStatistics: StatisticsEntry?, classFrequencies: [UInt64]?, shards: [ShardEntry], part: PartInfo? = nil,
    train: JSONValue? = nil
  ) {
    self.format = Self.formatName
    self.version = Self.currentVersion
    self.pipeline = pipeline
    self.pipelineSHA256 = pipelineSHA256
    self.pipelineFile = pipelineFile
    self.settings = settings
    self.sources = sources
    self.datasetStatistics = datasetStatistics
    self.classFrequencies = classFrequencies
    self.shards = shards
    self.part = part
    self.train = train
  }

  enum CodingKeys: String, CodingKey {
    case format, version, pipeline, settings, sources, shards, part, train
    case pipelineSHA256 = "pipeline_sha256"
    case pipelineFile = "pipeline_file"
    case datasetStatistics = "dataset_statistics"
    case classFrequencies = "class_frequencies"
  }

  public var sampleCount: Int { shards.reduce(0) { $0 + $1.samples } }
  public var byteCount: Int { shards.reduce(0) { $0 + $1.bytes } }

  /// The manifest as deterministic JSON (sorted keys, no escaped slashes).
  public func encoded() throws -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
    return Array(try encoder.encode(self)) + [0x0A]
  }

  /// Reads and checks `manifest.json` (or a partial manifest) at `path`.
  public static func read(_ path: String, limits: ManifestLimits = ManifestLimits()) throws(CacheError) -> ShardManifest {
    let bytes: [UInt8]
    do {
      bytes = try FileIO.read(path, maxBytes: limits.maxManifestBytes)
    } catch {
      if error.code == .tooLarge {
        throw CacheError(.tooLarge, path: path, "\(error.message) (a manifest of at most \(limits.maxSamples) samples)", hint: ManifestLimits.hint)
      }
      if error.code == .notFound {
        throw CacheError(.missingManifest, path: path, "no manifest here", hint: "make the shards with `unet prepare`")
      }
      throw CacheError(.ioFailure, path: path, error.message)
    }
    return try decode(bytes, path: path)
  }

  /// Parses and checks manifest bytes (`path` names the file in errors).
  public static func decode(_ bytes: [UInt8], path: String, limits: ManifestLimits = ManifestLimits()) throws(CacheError) -> ShardManifest {
    let manifest: ShardManifest
    do {
      manifest = try JSONDecoder().decode(ShardManifest.self, from: Data(bytes))
    } catch {
      throw CacheError(.badManifest, path: path, "not a valid manifest: \(Self.describe(error))",
                       hint: "rebuild with `unet prepare`")
    }
    guard manifest.format == formatName else {
      throw CacheError(.badManifest, path: path, "format is \"\(manifest.format)\", expected \"\(formatName)\"")
    }
    guard manifest.version == currentVersion else {
      throw CacheError(
        .unsupportedVersion, path: path, "manifest version \(manifest.version) is not supported (this unet reads \(currentVersion))",
        hint: "rebuild with this unet's `unet prepare`")
    }
    try manifest.check(path: path, limits: limits)
    return manifest
  }

  static func describe(_ error: any Error) -> String {
    switch error {
    case DecodingError.keyNotFound(let key, let context):
      return "missing key \(path(context.codingPath + [key]))"
    case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
      return "wrong value at \(path(context.codingPath))"
    case DecodingError.dataCorrupted(let context):
      return context.codingPath.isEmpty ? "not JSON" : "bad value at \(path(context.codingPath))"
    default:
      return "\(error)"
    }
  }

  static func path(_ keys: [any CodingKey]) -> String {
    keys.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined().trimmingCharacters(in: ["."])
  }
}

/// How samples are stored.
public struct ShardSettings: Codable, Sendable, Equatable {
  /// float32, float16, uint8 or uint16.
  public var imageDType: String
  /// Integer image dtypes hold round(value / scale): readers multiply by it (1 for floats).
  public var imageScale: Double
  /// uint8, uint16 or uint32.
  public var maskDType: String?
  /// float32 or float16 (nil when the pipeline has no weight map).
  public var weightDType: String?
  /// Pipeline samples per shard (each may give several training tiles).
  public var pipelineSamplesPerShard: Int
  /// How pipeline samples were cut into training samples (JSON of the tiles settings).
  public var tiles: JSONValue?
  /// How masks encode cells (instances, binary, classes).
  public var maskKind: String?

  public init(
    imageDType: String, imageScale: Double, maskDType: String?, weightDType: String?, pipelineSamplesPerShard: Int,
    tiles: JSONValue?, maskKind: String?
  ) {
    self.imageDType = imageDType
    self.imageScale = imageScale
    self.maskDType = maskDType
    self.weightDType = weightDType
    self.pipelineSamplesPerShard = pipelineSamplesPerShard
    self.tiles = tiles
    self.maskKind = maskKind
  }

  enum CodingKeys: String, CodingKey {
    case tiles
    case imageDType = "image_dtype"
    case imageScale = "image_scale"
    case maskDType = "mask_dtype"
    case weightDType = "weight_dtype"
    case pipelineSamplesPerShard = "pipeline_samples_per_shard"
    case maskKind = "mask_kind"
  }
}

/// A source and its files, with content hashes (and the size and mtime they were taken at, so
/// an unchanged file is not hashed again).
public struct SourceEntry: Codable, Sendable, Equatable {
  public var stem: String
  public var images: [FileEntry]
  public var mask: FileEntry?

  public init(stem: String, images: [FileEntry], mask: FileEntry?) {
    self.stem = stem
    self.images = images
    self.mask = mask
  }
}

public struct FileEntry: Codable, Sendable, Equatable {
  public var path: String
  public var bytes: Int
  public var mtimeNanoseconds: Int64
  public var sha256: String

  public init(path: String, bytes: Int, mtimeNanoseconds: Int64, sha256: String) {
    self.path = path
    self.bytes = bytes
    self.mtimeNanoseconds = mtimeNanoseconds
    self.sha256 = sha256
  }

  enum CodingKeys: String, CodingKey {
    case path, bytes, sha256
    case mtimeNanoseconds = "mtime_ns"
  }
}

/// Data-set mean and standard deviation per channel and over all channels.
public struct StatisticsEntry: Codable, Sendable, Equatable {
  public var mean: [Double]
  public var std: [Double]
  public var meanAll: Double
  public var stdAll: Double

  public init(mean: [Double], std: [Double], meanAll: Double, stdAll: Double) {
    self.mean = mean
    self.std = std
    self.meanAll = meanAll
    self.stdAll = stdAll
  }

  enum CodingKeys: String, CodingKey {
    case mean, std
    case meanAll = "mean_all"
    case stdAll = "std_all"
  }
}

/// One shard: its file, its content key (pipeline hash + the content hashes and indices of the
/// pipeline samples in it), its size and checksum, and its samples.
public struct ShardEntry: Codable, Sendable, Equatable {
  public var name: String
  public var key: String
  public var samples: Int
  public var bytes: Int
  public var sha256: String
  /// The pipeline sample indices [lower, upper) it holds.
  public var pipelineSamples: [Int]
  public var members: [SampleEntry]

  public init(name: String, key: String, bytes: Int, sha256: String, pipelineSamples: Range<Int>, members: [SampleEntry]) {
    self.name = name
    self.key = key
    self.samples = members.count
    self.bytes = bytes
    self.sha256 = sha256
    self.pipelineSamples = [pipelineSamples.lowerBound, pipelineSamples.upperBound]
    self.members = members
  }

  enum CodingKeys: String, CodingKey {
    case name, key, samples, bytes, sha256, members
    case pipelineSamples = "pipeline_samples"
  }
}

/// A training sample in a shard: its key and where each member's data lies ([offset, size] of
/// the data in the tar file).
public struct SampleEntry: Codable, Sendable, Equatable {
  public var key: String
  public var image: [Int]
  public var mask: [Int]?
  public var weight: [Int]?
  public var json: [Int]
  /// Image shape C, H, W.
  public var shape: [Int]
  /// Mask and weight shape H, W (the output window of a tile).
  public var labelShape: [Int]?
  public var source: Int
  public var sample: Int
  public var tile: Int

  public init(
    key: String, image: [Int], mask: [Int]?, weight: [Int]?, json: [Int], shape: [Int], labelShape: [Int]?, source: Int,
    sample: Int, tile: Int
  ) {
    self.key = key
    self.image = image
    self.mask = mask
    self.weight = weight
    self.json = json
    self.shape = shape
    self.labelShape = labelShape
    self.source = source
    self.sample = sample
    self.tile = tile
  }

  enum CodingKeys: String, CodingKey {
    case key, image, mask, weight, json, shape, source, sample, tile
    case labelShape = "label_shape"
  }
}

public struct PartInfo: Codable, Sendable, Equatable {
  public var index: Int
  public var count: Int
  /// Shards in the whole set (every part agrees).
  public var totalShards: Int

  public init(index: Int, count: Int, totalShards: Int) {
    self.index = index
    self.count = count
    self.totalShards = totalShards
  }

  enum CodingKeys: String, CodingKey {
    case index, count
    case totalShards = "total_shards"
  }
}
