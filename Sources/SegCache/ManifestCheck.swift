import SegCore

#if canImport(Glibc)
  import Glibc
#endif

/// How much a manifest may claim before it is refused (a manifest can come from a stranger's
/// shared drive: its counts decide what readers allocate and loop over).
public struct ManifestLimits: Sendable, Equatable {
  /// The most training samples (summed over shards) a manifest may list; also bounds the shard
  /// count and a partial manifest's part and shard counts.
  public var maxSamples: Int

  /// 10^7 samples, unless the environment variable UNET_MAX_SAMPLES says otherwise.
  public static let defaultMaxSamples = 10_000_000

  public init(maxSamples: Int = ManifestLimits.environmentMaxSamples ?? ManifestLimits.defaultMaxSamples) {
    self.maxSamples = maxSamples
  }

  /// UNET_MAX_SAMPLES, when it holds a positive integer (for commands without --max-samples).
  public static var environmentMaxSamples: Int? {
    guard let raw = getenv("UNET_MAX_SAMPLES"), let n = Int(String(cString: raw)), n > 0 else { return nil }
    return n
  }

  /// A manifest file larger than this cannot be one of at most `maxSamples` samples (an entry
  /// takes well under 4 KiB); it is refused before it is read.
  public var maxManifestBytes: Int {
    let (bytes, overflow) = maxSamples.multipliedReportingOverflow(by: 4096)
    return overflow ? Int.max : bytes + (1 << 20)
  }

  static let hint = "raise the limit with --max-samples N (or UNET_MAX_SAMPLES=N) if the shard set is genuine"
}

extension ShardManifest {
  /// Checks what every reader relies on, before anything is allocated from the manifest's
  /// counts: sane names (no paths), non-negative counts and sizes that add up without
  /// overflow, member byte ranges inside their shard, shapes of the right rank whose samples
  /// fit in the bytes given for them, non-negative indices, and the sample limit.
  func check(path: String, limits: ManifestLimits) throws(CacheError) {
    func bad(_ what: String) -> CacheError {
      CacheError(.badManifest, path: path, what, hint: "rebuild with `unet prepare`")
    }
    func tooMany(_ what: String, _ n: Int) -> CacheError {
      CacheError(
        .tooLarge, path: path, "claims \(n) \(what), above the limit of \(limits.maxSamples) samples",
        hint: ManifestLimits.hint)
    }
    if shards.count > limits.maxSamples { throw tooMany("shards", shards.count) }
    if let part {
      guard part.count >= 1, part.index >= 0, part.index < part.count, part.totalShards >= 0 else {
        throw bad("part \(part.index) of \(part.count) (\(part.totalShards) shards in all) is impossible")
      }
      if part.count > limits.maxSamples { throw tooMany("parts", part.count) }
      if part.totalShards > limits.maxSamples { throw tooMany("shards", part.totalShards) }
    }
    guard imageScale(settings.imageScale) else { throw bad("settings.image_scale \(settings.imageScale) is not a positive number") }
    guard settings.pipelineSamplesPerShard >= 1 else { throw bad("settings.pipeline_samples_per_shard must be at least 1") }
    let imageBytes = Self.elementBytes(settings.imageDType)
    let maskBytes = Self.elementBytes(settings.maskDType ?? "uint8")
    let weightBytes = Self.elementBytes(settings.weightDType ?? "float16")
    var total = 0
    var names = Set<String>()
    for (i, shard) in shards.enumerated() {
      let at = "shards[\(i)]"
      guard Self.isPlainName(shard.name), shard.name.hasSuffix(".tar") else {
        throw bad("\(at).name \"\(shard.name)\" is not a shard file name (NAME.tar, no folders)")
      }
      guard names.insert(shard.name).inserted else { throw bad("\(at).name \(shard.name) is listed twice") }
      // The claim is checked against the limit first, then against what is listed.
      let (sum, overflow) = total.addingReportingOverflow(max(shard.samples, shard.members.count))
      if overflow || sum > limits.maxSamples { throw tooMany("samples", overflow ? Int.max : sum) }
      total = sum
      guard shard.bytes >= 0, shard.samples == shard.members.count else {
        throw bad("\(at) (\(shard.name)) claims \(shard.samples) samples and \(shard.bytes) bytes but its member list has \(shard.members.count) entries")
      }
      guard shard.pipelineSamples.count == 2, shard.pipelineSamples[0] >= 0, shard.pipelineSamples[0] <= shard.pipelineSamples[1]
      else { throw bad("\(at).pipeline_samples \(shard.pipelineSamples) is not a range [low, high]") }
      for (k, m) in shard.members.enumerated() {
        let where_ = "\(at).members[\(k)] (\(m.key))"
        guard m.shape.count == 3, m.shape.allSatisfy({ $0 >= 1 }) else { throw bad("\(where_).shape \(m.shape) is not C × H × W") }
        if let l = m.labelShape, l.count != 2 || !l.allSatisfy({ $0 >= 1 }) {
          throw bad("\(where_).label_shape \(l) is not H × W")
        }
        guard m.source >= 0, m.sample >= 0, m.tile >= 0 else {
          throw bad("\(where_) has a negative source, sample or tile index")
        }
        let label = m.labelShape ?? [m.shape[1], m.shape[2]]
        try Self.checkRange(m.image, elements: m.shape, bytesEach: imageBytes, in: shard.bytes, bad("\(where_).image \(m.image)"))
        try Self.checkRange(m.json, elements: [], bytesEach: 1, in: shard.bytes, bad("\(where_).json \(m.json)"))
        if let r = m.mask { try Self.checkRange(r, elements: label, bytesEach: maskBytes, in: shard.bytes, bad("\(where_).mask \(r)")) }
        if let r = m.weight {
          try Self.checkRange(r, elements: label, bytesEach: weightBytes, in: shard.bytes, bad("\(where_).weight \(r)"))
        }
      }
    }
  }

  private func imageScale(_ s: Double) -> Bool { s.isFinite && s > 0 }

  /// A [offset, size] range inside a shard of `shardBytes`, big enough for the elements.
  static func checkRange(
    _ r: [Int], elements shape: [Int], bytesEach: Int, in shardBytes: Int, _ error: CacheError
  ) throws(CacheError) {
    guard r.count == 2, r[0] >= 0, r[1] >= 0 else { throw error }
    let (end, o1) = r[0].addingReportingOverflow(r[1])
    guard !o1, end <= shardBytes else { throw error }
    var need = bytesEach
    for d in shape {
      let (p, o) = need.multipliedReportingOverflow(by: d)
      guard !o, p <= r[1] else { throw error }
      need = p
    }
  }

  /// Bytes per element of a storage dtype (the smallest, 1, for a name we do not know: the
  /// member's own header decides later).
  static func elementBytes(_ dtype: String) -> Int {
    switch dtype {
    case "float32", "uint32": return 4
    case "float16", "uint16": return 2
    default: return 1
    }
  }

  /// A file name without folders or a leading dot.
  static func isPlainName(_ name: String) -> Bool {
    !name.isEmpty && !name.hasPrefix(".")
      && name.utf8.allSatisfy { $0 != UInt8(ascii: "/") && $0 != 0 && $0 != UInt8(ascii: "\\") }
  }
}
