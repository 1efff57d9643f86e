import SegCore

/// What is in a shard set, as `unet inspect` reports it: sample shapes (from the manifest),
/// and, when the samples are read, the range of image values, pixels per mask value and the
/// weight maps' range and mean; with `verify`, the shards whose size or SHA-256 is wrong.
public struct ShardSetStatistics: Sendable {
  /// Samples per shape, `C×H×W` or `C×H×W → H×W` (with label planes), sorted by shape.
  public var shapes: [(shape: String, samples: Int)]
  /// Whether the samples were read (otherwise only the manifest and, with `verify`, the
  /// checksums).
  public var samplesRead: Bool
  /// The smallest and largest finite image value (+∞ and −∞ when there is none).
  public var imageMin = Float.infinity
  public var imageMax = -Float.infinity
  /// Pixels per mask value (class, or instance id for instance masks).
  public var maskValuePixels: [UInt64: UInt64] = [:]
  /// Weight-map values: smallest, largest, sum and count.
  public var weightMin = Float.infinity
  public var weightMax = -Float.infinity
  public var weightSum = 0.0
  public var weightCount = 0.0
  /// Shards that could not be read or failed their checksum, by name, with the error.
  public var corrupt: [(shard: String, error: CacheError)] = []

  /// Reads the statistics of `set`: with `readSamples`, every sample (verifying checksums when
  /// `verify`); without, only the manifest (and, with `verify`, every shard's checksum).
  public init(_ set: ShardSet, readSamples: Bool, verify: Bool) {
    let m = set.manifest
    var shapes: [String: Int] = [:]
    for s in m.shards {
      for e in s.members {
        let label = e.labelShape.map { " → \($0.map(String.init).joined(separator: "×"))" } ?? ""
        shapes[e.shape.map(String.init).joined(separator: "×") + label, default: 0] += 1
      }
    }
    self.shapes = shapes.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    samplesRead = readSamples
    for i in m.shards.indices {
      if !readSamples {
        if verify {
          do { try set.verify(shard: i) } catch { corrupt.append((m.shards[i].name, error)) }
        }
        continue
      }
      do {
        for s in try set.samples(inShard: i, verify: verify) { add(s) }
      } catch {
        corrupt.append((m.shards[i].name, error))
      }
    }
  }

  mutating func add(_ s: StoredSample) {
    for v in s.image.floatSamples() where v.isFinite {
      imageMin = min(imageMin, v)
      imageMax = max(imageMax, v)
    }
    if let mask = s.mask {
      for v in mask.labelSamples() { maskValuePixels[UInt64(v), default: 0] += 1 }
    }
    if let w = s.weight {
      for v in w.floatSamples() {
        weightMin = min(weightMin, v)
        weightMax = max(weightMax, v)
        weightSum += Double(v)
        weightCount += 1
      }
    }
  }

  /// Pixels per mask value, sorted by value.
  public var maskValues: [(value: UInt64, pixels: UInt64)] {
    maskValuePixels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
  }

  /// All mask pixels, and those with value 0 (background).
  public var maskPixels: UInt64 { maskValuePixels.values.reduce(0, +) }
  public var backgroundPixels: UInt64 { maskValuePixels[0] ?? 0 }

  /// The distinct non-zero mask values (instance ids of an instance mask).
  public var foregroundValues: Int { maskValuePixels.count - (maskValuePixels[0] == nil ? 0 : 1) }

  /// The mean weight, nil without weight maps.
  public var weightMean: Double? { weightCount > 0 ? weightSum / weightCount : nil }
}
