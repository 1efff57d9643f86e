import Foundation
import SegAugment
import SegCache
import SegCore
import SegIO
import SegTiling
import SegWeights

#if canImport(Glibc)
  import Glibc
#endif

/// Progress of a `prepare` run, reported after every pipeline sample.
public struct PrepareProgress: Sendable {
  /// Pipeline samples made so far in this run, and how many this run makes.
  public var done: Int
  public var total: Int
  /// Training samples written so far.
  public var written: Int
  public var elapsedSeconds: Double
}

/// What a `prepare` run did.
public struct PrepareSummary: Sendable {
  public var shards: Int
  public var built: Int
  public var reused: Int
  public var pipelineSamples: Int
  public var trainingSamples: Int
  public var bytes: Int
  public var bytesBuilt: Int
  public var seconds: Double
  public var manifest: String
  /// For a distributed part: the partial manifest written instead of manifest.json.
  public var isPart: Bool
}

/// Options of `unet prepare`.
public struct PrepareOptions: Sendable {
  public var outputDirectory: String
  public var workers: Int
  /// This machine's part of a distributed run (0-based) and the number of parts.
  public var partIndex: Int
  public var partCount: Int
  /// Re-hash existing shards before reusing them (otherwise their size and key are checked).
  public var verifyExisting: Bool

  public init(outputDirectory: String, workers: Int = 1, partIndex: Int = 0, partCount: Int = 1, verifyExisting: Bool = false) {
    self.outputDirectory = outputDirectory
    self.workers = workers
    self.partIndex = partIndex
    self.partCount = partCount
    self.verifyExisting = verifyExisting
  }
}

/// `unet prepare`: samples → training tiles → shards, content-addressed, incremental and
/// crash-safe.
///
/// - Shard k holds pipeline samples [k·P, (k+1)·P). Its key is the SHA-256 of the pipeline's
///   canonical form, the storage settings, and the content hashes and indices of the sources
///   behind those samples, so it changes exactly when something that decides its bytes changes.
/// - A new or changed shard is written to a temporary name, fsynced and renamed to a staging
///   name carrying its key (`.staged-KEY.tar`), then its index (key, size, SHA-256, member
///   offsets) is written the same way. Only when every shard of the run is ready are the staged
///   shards renamed to `shard-NNNNNN.tar` (index last), and `manifest.json` is written last of
///   all. A run that fails on bad input leaves the previous shards and manifest untouched; a
///   run killed at any moment resumes where it stopped (staged and final shards whose index
///   holds the expected key and whose file has the recorded size are reused); a run with
///   nothing changed does no work.
public enum Preparer {
  public static func run(
    spec: PipelineSpec, options: PrepareOptions, progress: @escaping (PrepareProgress) -> Void = { _ in }
  ) async throws -> PrepareSummary {
    // The async part is kept to the two awaits; everything else lives in PreparePlan (this
    // also keeps the function small enough for the optimizer's coroutine splitting).
    let start = nowSeconds()
    let lock = try PrepareLock.acquire(directory: options.outputDirectory, part: options.partIndex, of: options.partCount)
    defer { withExtendedLifetime(lock) {} }
    let plan = try PreparePlan(spec: spec, options: options)
    if plan.needsStatisticsPass {
      plan.useStatistics(from: try await plan.engine.preparingDatasetStatistics(workers: options.workers))
    }
    try plan.decideShards()
    let state = plan.buildState(start: start, progress: progress)
    try await plan.engine.run(indices: plan.indices, workers: options.workers) { processed in
      try state.consume(processed)
    }
    return try plan.complete(state, start: start)
  }

  public static func partManifestName(_ index: Int, _ count: Int) -> String {
    "manifest.part-\(pad(index, 4))-of-\(pad(count, 4)).json"
  }

  /// Joins the partial manifests of a distributed run into manifest.json.
  public static func merge(directory: String, limits: ManifestLimits = ManifestLimits()) throws(CacheError) -> ShardManifest {
    let lock = try PrepareLock.acquire(directory: directory, part: 0, of: 1, merging: true)
    defer { withExtendedLifetime(lock) {} }
    let names: [String]
    do {
      names = try FileIO.listDirectory(directory).filter { $0.hasPrefix("manifest.part-") && $0.hasSuffix(".json") }
    } catch {
      throw CacheError(.ioFailure, path: directory, error.message)
    }
    guard !names.isEmpty else {
      throw CacheError(.missingManifest, path: directory, "no partial manifests (manifest.part-*.json) to merge")
    }
    var parts: [ShardManifest] = []
    for name in names { parts.append(try ShardManifest.read(directory + "/" + name, limits: limits)) }
    guard let first = parts.first, let info = first.part else {
      throw CacheError(.mergeConflict, path: directory + "/" + names[0], "not a partial manifest")
    }
    for (name, p) in zip(names, parts) {
      let path = directory + "/" + name
      guard let pi = p.part, pi.count == info.count, pi.totalShards == info.totalShards else {
        throw CacheError(.mergeConflict, path: path, "belongs to a run with another part count or shard count")
      }
      guard p.pipelineSHA256 == first.pipelineSHA256, p.settings == first.settings, p.sources == first.sources else {
        throw CacheError(.mergeConflict, path: path, "was made from another pipeline, settings or sources than \(names[0])")
      }
    }
    let present = Set(parts.compactMap { $0.part?.index })
    let missing = (0..<info.count).filter { !present.contains($0) }
    guard missing.isEmpty else {
      throw CacheError(
        .mergeConflict, path: directory, "parts \(missing.map(String.init).joined(separator: ", ")) of \(info.count) are missing",
        hint: "run `unet prepare --shard-index i --shard-count \(info.count)` for them first")
    }
    var shards = parts.flatMap(\.shards)
    shards.sort { $0.name < $1.name }
    guard shards.count == info.totalShards, Set(shards.map(\.name)).count == shards.count else {
      throw CacheError(.mergeConflict, path: directory, "the parts hold \(shards.count) shards, expected \(info.totalShards)")
    }
    for s in shards {
      let path = directory + "/" + s.name
      var st = stat()
      guard stat(path, &st) == 0 else { throw CacheError(.missingShard, path: path, "listed by a partial manifest but missing") }
      guard Int(st.st_size) == s.bytes else {
        throw CacheError(.checksumMismatch, path: path, "has \(st.st_size) bytes, its partial manifest says \(s.bytes)")
      }
    }
    let merged = ShardManifest(
      pipeline: first.pipeline, pipelineSHA256: first.pipelineSHA256, pipelineFile: first.pipelineFile,
      settings: first.settings, sources: first.sources, datasetStatistics: first.datasetStatistics,
      classFrequencies: first.classFrequencies, shards: shards)
    do {
      try writeManifest(merged, to: directory + "/manifest.json")
    } catch {
      throw CacheError(.ioFailure, path: directory + "/manifest.json", "\(error)")
    }
    // Temporary manifests of merges killed before their rename (we hold the lock: none is live).
    for name in (try? FileIO.listDirectory(directory)) ?? [] where name.hasPrefix(".manifest.json.tmp-") {
      FileIO.remove(directory + "/" + name)
    }
    return merged
  }

  // MARK: - Pieces

  /// Writes the manifest atomically, unless the file holds these bytes already (so a run with
  /// nothing to do writes nothing, and succeeds on a read-only folder).
  static func writeManifest(_ manifest: ShardManifest, to path: String) throws {
    let bytes = try manifest.encoded()
    if let existing = try? FileIO.read(path), existing == bytes { return }
    try FileIO.writeAtomically(bytes, to: path)
  }

  /// The entry in `index`, if it describes a shard with the expected key and name whose file
  /// `tar` is there with the recorded size (and, with `verify`, the recorded SHA-256).
  static func reusable(_ dir: String, tar: String, index: String, expectedKey: String, name: String, verify: Bool) -> ShardEntry? {
    guard let bytes = try? FileIO.read(dir + "/" + index),
      let entry = try? JSONDecoder().decode(ShardEntry.self, from: Data(bytes)),
      entry.key == expectedKey, entry.name == name
    else { return nil }
    var st = stat()
    guard stat(dir + "/" + tar, &st) == 0, Int(st.st_size) == entry.bytes else { return nil }
    if verify {
      guard let data = try? FileIO.read(dir + "/" + tar), SHA256.hex(data) == entry.sha256 else { return nil }
    }
    return entry
  }

  /// rename(2) within the output folder, then fsync the folder.
  static func promote(_ dir: String, from: String, to: String) throws(CacheError) {
    if rename(dir + "/" + from, dir + "/" + to) != 0 {
      throw CacheError(.ioFailure, path: dir + "/" + to, "cannot move \(from) into place: \(String(cString: strerror(errno)))")
    }
    FileIO.syncDirectory(of: dir + "/" + to)
  }

  public static func shardName(_ k: Int) -> String { "shard-\(pad(k, 6)).tar" }
  public static func indexName(_ k: Int) -> String { "shard-\(pad(k, 6)).idx.json" }
  static func stagedName(_ key: String) -> String { ".staged-\(key).tar" }
  static func stagedIndexName(_ key: String) -> String { ".staged-\(key).idx.json" }

  static func pad(_ v: Int, _ width: Int) -> String {
    let s = String(v)
    return String(repeating: "0", count: max(0, width - s.count)) + s
  }

  /// Removes shards and indexes numbered at or above `count` (left from a bigger earlier run),
  /// staged shards no manifest uses, and temporary files of interrupted writes.
  static func removeStale(_ dir: String, keeping count: Int) {
    guard let names = try? FileIO.listDirectory(dir) else { return }
    for name in names {
      if name.hasPrefix(".") && (name.contains(".tmp-") || name.hasPrefix(".staged-")) {
        FileIO.remove(dir + "/" + name)
        continue
      }
      guard name.hasPrefix("shard-"), name.hasSuffix(".tar") || name.hasSuffix(".idx.json") else { continue }
      let digits = name.dropFirst(6).prefix { $0.isNumber }
      if let k = Int(digits), k >= count { FileIO.remove(dir + "/" + name) }
    }
  }

  /// SHA-256 of every source file, reusing the previous manifest's hash for files whose size
  /// and modification time are unchanged.
  static func hashSources(_ pairs: [SourcePair], previous: ShardManifest?, relativeTo base: String) throws -> [SourceEntry] {
    var known: [String: FileEntry] = [:]
    for s in previous?.sources ?? [] {
      for f in s.images + (s.mask.map { [$0] } ?? []) { known[f.path] = f }
    }
    func entry(_ path: String) throws -> FileEntry {
      var st = stat()
      guard stat(path, &st) == 0 else {
        throw PipelineError(.badSource, path: path, "cannot stat: \(String(cString: strerror(errno)))")
      }
      let size = Int(st.st_size)
      let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
      if let k = known[path], k.bytes == size, k.mtimeNanoseconds == mtime { return k }
      let bytes = try FileIO.read(path)
      return FileEntry(path: path, bytes: size, mtimeNanoseconds: mtime, sha256: SHA256.hex(bytes))
    }
    return try pairs.map { p in
      SourceEntry(stem: p.stem, images: try p.images.map(entry), mask: try p.mask.map(entry))
    }
  }

  /// uint8 when every mask fits, else uint16, else uint32 (reads the masks once).
  static func automaticMaskDType(_ engine: PipelineEngine) throws -> String {
    var top: UInt32 = 0
    for pair in engine.sources {
      guard let path = pair.mask else { return "uint8" }
      let mask = try LabelMask.read(path, options: DecodeOptions(maxPixels: engine.spec.decode.maxPixels, palette: .indices))
      top = max(top, mask.labelSamples().max() ?? 0)
    }
    return top <= 255 ? "uint8" : (top <= 65535 ? "uint16" : "uint32")
  }

  /// Pipeline samples per shard: the configured count, lowered so a shard stays under
  /// `max_bytes` judging by the first sample's size.
  static func samplesPerShard(_ engine: PipelineEngine, _ storage: ShardOutputSettings) throws -> Int {
    guard let limit = storage.maxBytes, engine.sampleCount > 0 else { return storage.samplesPerShard }
    let first = try engine.sample(0)
    let tiles = Tiler(settings: engine.spec.tiles, seed: engine.spec.seed).tiles(of: first)
    var bytes = 0
    for t in tiles {
      bytes += 4 * Tar.block + t.image.sampleCount * dtypeBytes(storage.imageDType)
      bytes += (t.mask?.sampleCount ?? 0) * 4 + (t.weights?.sampleCount ?? 0) * dtypeBytes(storage.weightDType) + 2048
    }
    return max(1, min(storage.samplesPerShard, limit / max(bytes, 1)))
  }

  static func dtypeBytes(_ d: String) -> Int {
    switch d {
    case "uint8": return 1
    case "uint16", "float16": return 2
    default: return 4
    }
  }

  static func nowSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
  }
}

extension SourceEntry {
  /// The hashes that decide this source's samples.
  var contentKey: String {
    (images.map(\.sha256) + [mask?.sha256 ?? "-"]).joined(separator: ",")
  }
}

extension StatisticsEntry {
  init(_ s: DatasetStatistics) {
    self.init(mean: s.perChannel.mean, std: s.perChannel.std, meanAll: s.overall.mean.first ?? 0, stdAll: s.overall.std.first ?? 0)
  }

  var datasetStatistics: DatasetStatistics {
    DatasetStatistics(
      perChannel: ChannelStatistics(mean: mean, std: std), overall: ChannelStatistics(mean: [meanAll], std: [stdAll]))
  }
}

/// A training sample cut from a pipeline sample.
public struct TrainingTile: Sendable {
  public var image: Image
  public var mask: Image?
  public var weights: Image?
  /// The label window's top-left in the pipeline sample, and the input window.
  public var x: Int
  public var y: Int
  public var record: JSONValue
}

/// Cuts pipeline samples into training tiles as the `tiles:` section says.
public struct Tiler: Sendable {
  public let settings: TileSettings?
  public let seed: UInt64

  public init(settings: TileSettings?, seed: UInt64) {
    self.settings = settings
    self.seed = seed
  }

  public func tiles(of processed: ProcessedSample) -> [TrainingTile] {
    let s = processed.sample
    guard let settings else {
      return [TrainingTile(image: s.image, mask: s.mask, weights: s.weights, x: 0, y: 0, record: .null)]
    }
    let w = s.image.width
    let h = s.image.height
    let out = settings.output
    let margin = settings.margin
    var windows: [(Int, Int)] = []
    switch settings.mode {
    case .overlap:
      windows = OverlapTilePlan(imageWidth: w, imageHeight: h, tileOutput: out, margin: margin).tiles.map { ($0.x, $0.y) }
    case .random:
      var rng = RandomStream(seed: seed, path: [UInt64(processed.source), UInt64(processed.sampleInSource), 0x711E])
      for _ in 0..<settings.count {
        let x = w >= out ? rng.nextInt(below: w - out + 1) : (w - out) / 2
        let y = h >= out ? rng.nextInt(below: h - out + 1) : (h - out) / 2
        windows.append((x, y))
      }
    }
    return windows.map { (x, y) in
      let image = OverlapTilePlan.window(s.image, x: x - margin, y: y - margin, width: settings.input, height: settings.input)
      let mask = s.mask.map { OverlapTilePlan.window($0, x: x, y: y, width: out, height: out) }
      let weights = s.weights.map { OverlapTilePlan.window($0, x: x, y: y, width: out, height: out) }
      let record: JSONValue = .object([
        ("x", .int(x)), ("y", .int(y)), ("output", .array([.int(x), .int(y), .int(out), .int(out)])),
        ("input", .array([.int(x - margin), .int(y - margin), .int(settings.input), .int(settings.input)])),
      ])
      return TrainingTile(image: image, mask: mask, weights: weights, x: x, y: y, record: record)
    }
  }
}

/// Everything `prepare` decides before and after making samples: sources and their hashes,
/// data-set statistics (reused when nothing changed), storage settings, the shard plan, which
/// shards can be reused, and, at the end, moving staged shards into place and the manifest.
final class PreparePlan {
  let spec: PipelineSpec
  let options: PrepareOptions
  var engine: PipelineEngine
  let previous: ShardManifest?
  let sources: [SourceEntry]
  let pipelineJSON: JSONValue
  let pipelineHash: String
  private(set) var statistics: StatisticsEntry?
  private(set) var frequencies: [UInt64]?
  private(set) var needsStatisticsPass = false
  private(set) var storage: ShardOutputSettings
  private(set) var settings: ShardSettings?
  private(set) var settingsHash = ""
  private(set) var perShard = 1
  private(set) var shardCount = 0
  private(set) var mine: [Int] = []
  private(set) var entries: [Int: ShardEntry] = [:]
  private(set) var staged: [Int] = []
  private(set) var toBuild: [Int] = []
  private(set) var keys: [Int: String] = [:]

  init(spec: PipelineSpec, options: PrepareOptions) throws {
    self.spec = spec
    self.options = options
    let out = options.outputDirectory
    do {
      try FileIO.makeDirectories(out)
    } catch {
      throw CacheError(.ioFailure, path: out, error.message)
    }
    engine = try PipelineEngine(spec: spec)
    previous = try? ShardManifest.read(out + "/manifest.json")
    sources = try Preparer.hashSources(engine.sources, previous: previous, relativeTo: spec.baseDirectory)
    pipelineJSON = spec.canonical
    pipelineHash = SHA256.hex(Array(pipelineJSON.serialized(spaced: false).utf8))
    storage = spec.shards
    // Data-set statistics: reuse the previous run's when the pipeline and sources are the same.
    if spec.needsDatasetPass {
      if let previous, previous.pipelineSHA256 == pipelineHash, previous.sources.map(\.contentKey) == sources.map(\.contentKey),
        previous.datasetStatistics != nil || previous.classFrequencies != nil
      {
        statistics = previous.datasetStatistics
        frequencies = previous.classFrequencies
        engine = engine.withDatasetStatistics(
          statistics.map(\.datasetStatistics), frequencies: frequencies.map { ClassFrequencies(counts: $0) })
      } else {
        needsStatisticsPass = true
      }
    }
  }

  func useStatistics(from prepared: PipelineEngine) {
    engine = prepared
    statistics = prepared.datasetStatistics.map(StatisticsEntry.init)
    frequencies = prepared.classFrequencies?.counts
  }

  func range(_ k: Int) -> Range<Int> { (k * perShard)..<min(engine.sampleCount, (k + 1) * perShard) }

  func key(_ k: Int) -> String {
    var h = SHA256()
    h.update(Array("\(pipelineHash)|\(settingsHash)|".utf8))
    for index in range(k) {
      h.update(Array("\(index):\(sources[index / spec.samplesPerImage].contentKey);".utf8))
    }
    return h.finalize().hexString
  }

  /// Storage settings, the plan, and which of this part's shards can be reused.
  func decideShards() throws {
    if storage.maskDType == nil { storage.maskDType = try Preparer.automaticMaskDType(engine) }
    perShard = try Preparer.samplesPerShard(engine, storage)
    settings = ShardSettings(
      imageDType: storage.imageDType, imageScale: storage.imageScale,
      maskDType: engine.sources.first?.mask == nil ? nil : storage.maskDType,
      weightDType: spec.stages.contains { $0 is WeightMapStage } ? storage.weightDType : nil,
      pipelineSamplesPerShard: perShard, tiles: spec.tiles?.json, maskKind: spec.mask.kind.rawValue)
    settingsHash = SHA256.hex(Array(storage.json.serialized(spaced: false).utf8))
    shardCount = (engine.sampleCount + perShard - 1) / perShard
    mine = (0..<shardCount).filter { $0 % options.partCount == options.partIndex }
    let out = options.outputDirectory
    for k in mine {
      let expected = key(k)
      keys[k] = expected
      if let existing = Preparer.reusable(
        out, tar: Preparer.shardName(k), index: Preparer.indexName(k), expectedKey: expected, name: Preparer.shardName(k),
        verify: options.verifyExisting)
      {
        entries[k] = existing
      } else if let existing = Preparer.reusable(
        out, tar: Preparer.stagedName(expected), index: Preparer.stagedIndexName(expected), expectedKey: expected,
        name: Preparer.shardName(k), verify: options.verifyExisting)
      {
        entries[k] = existing
        staged.append(k)
      } else {
        toBuild.append(k)
      }
    }
  }

  /// The pipeline samples to make, in order.
  var indices: [Int] { toBuild.flatMap { Array(range($0)) } }

  func buildState(start: Double, progress: @escaping (PrepareProgress) -> Void) -> BuildState {
    BuildState(
      directory: options.outputDirectory, perShard: perShard, total: engine.sampleCount, storage: storage,
      tiler: Tiler(settings: spec.tiles, seed: spec.seed), keys: keys, indices: indices.count, start: start,
      progress: progress)
  }

  /// Moves staged shards into place (each index after its shard), writes the manifest (or the
  /// partial manifest), removes stale files, and sums up.
  func complete(_ state: BuildState, start: Double) throws -> PrepareSummary {
    for (k, entry) in state.entries {
      entries[k] = entry
      staged.append(k)
    }
    let out = options.outputDirectory
    for k in staged.sorted() {
      guard let entry = entries[k] else { continue }
      try Preparer.promote(out, from: Preparer.stagedName(entry.key), to: Preparer.shardName(k))
      try Preparer.promote(out, from: Preparer.stagedIndexName(entry.key), to: Preparer.indexName(k))
    }
    let shardEntries = mine.compactMap { entries[$0] }
    let isPart = options.partCount > 1
    guard let settings else { throw CacheError(.ioFailure, path: out, "shard settings were not decided") }
    let manifest = ShardManifest(
      pipeline: pipelineJSON, pipelineSHA256: pipelineHash, pipelineFile: spec.file.isEmpty ? nil : spec.file,
      settings: settings, sources: sources, datasetStatistics: statistics, classFrequencies: frequencies,
      shards: shardEntries,
      part: isPart ? PartInfo(index: options.partIndex, count: options.partCount, totalShards: shardCount) : nil)
    let manifestPath = isPart
      ? out + "/" + Preparer.partManifestName(options.partIndex, options.partCount) : out + "/manifest.json"
    try Preparer.writeManifest(manifest, to: manifestPath)
    if !isPart { Preparer.removeStale(out, keeping: shardCount) }
    return PrepareSummary(
      shards: shardEntries.count, built: toBuild.count, reused: shardEntries.count - toBuild.count,
      pipelineSamples: shardEntries.reduce(0) { $0 + ($1.pipelineSamples[1] - $1.pipelineSamples[0]) },
      trainingSamples: shardEntries.reduce(0) { $0 + $1.samples }, bytes: shardEntries.reduce(0) { $0 + $1.bytes },
      bytesBuilt: state.bytesBuilt, seconds: Preparer.nowSeconds() - start, manifest: manifestPath, isPart: isPart)
  }
}

/// The shard builds of one run: routes processed samples (in index order) to the builder of
/// their shard and finishes each shard after its last sample.
final class BuildState {
  let directory: String
  let perShard: Int
  let total: Int
  let storage: ShardOutputSettings
  let tiler: Tiler
  let keys: [Int: String]
  let indices: Int
  let start: Double
  let progress: (PrepareProgress) -> Void
  private var builder: ShardBuilder?
  private(set) var entries: [Int: ShardEntry] = [:]
  private(set) var bytesBuilt = 0
  private var done = 0
  private var written = 0

  init(
    directory: String, perShard: Int, total: Int, storage: ShardOutputSettings, tiler: Tiler, keys: [Int: String],
    indices: Int, start: Double, progress: @escaping (PrepareProgress) -> Void
  ) {
    self.directory = directory
    self.perShard = perShard
    self.total = total
    self.storage = storage
    self.tiler = tiler
    self.keys = keys
    self.indices = indices
    self.start = start
    self.progress = progress
  }

  func consume(_ processed: ProcessedSample) throws {
    let k = processed.index / perShard
    let range = (k * perShard)..<min(total, (k + 1) * perShard)
    if builder?.shard != k {
      builder = try ShardBuilder(directory: directory, shard: k, key: keys[k] ?? "", range: range, storage: storage)
    }
    guard let current = builder else { return }
    for (t, tile) in tiler.tiles(of: processed).enumerated() {
      try current.add(processed, tile: tile, tileIndex: t)
      written += 1
    }
    if processed.index == range.upperBound - 1 {
      let entry = try current.finish()
      entries[k] = entry
      bytesBuilt += entry.bytes
      builder = nil
    }
    done += 1
    progress(PrepareProgress(done: done, total: indices, written: written, elapsedSeconds: Preparer.nowSeconds() - start))
  }
}

/// Writes one shard: tar members as samples arrive, then the index file.
final class ShardBuilder {
  let shard: Int
  let key: String
  let range: Range<Int>
  let storage: ShardOutputSettings
  let directory: String
  private let writer: TarFileWriter
  private var members: [SampleEntry] = []

  init(directory: String, shard: Int, key: String, range: Range<Int>, storage: ShardOutputSettings) throws {
    self.directory = directory
    self.shard = shard
    self.key = key
    self.range = range
    self.storage = storage
    writer = try TarFileWriter(path: directory + "/" + Preparer.stagedName(key))
  }

  /// A sample key: no dots (WebDataset splits member names at the first dot).
  static func sampleKey(stem: String, sample: Int, tile: Int) -> String {
    let safe = String(stem.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
    return "\(safe)_s\(Preparer.pad(sample, 5))_t\(Preparer.pad(tile, 3))"
  }

  func add(_ processed: ProcessedSample, tile: TrainingTile, tileIndex: Int) throws {
    let stem = processed.record["source"]?["stem"].flatMap { if case .string(let s) = $0 { s } else { nil } } ?? "sample"
    let key = Self.sampleKey(stem: stem, sample: processed.sampleInSource, tile: tileIndex)
    let image = SampleCodec.encodeImage(tile.image, dtype: storage.imageDType, scale: storage.imageScale)
    let imageOffset = try writer.add(name: key + ".image.npy", data: image)
    var maskRange: [Int]? = nil
    if let mask = tile.mask {
      let bytes = SampleCodec.encodePlane(mask, dtype: storage.maskDType ?? "uint16")
      maskRange = [try writer.add(name: key + ".mask.npy", data: bytes), bytes.count]
    }
    var weightRange: [Int]? = nil
    if let weights = tile.weights {
      let bytes = SampleCodec.encodePlane(weights, dtype: storage.weightDType)
      weightRange = [try writer.add(name: key + ".weight.npy", data: bytes), bytes.count]
    }
    var fields: [(String, JSONValue)] = [("key", .string(key))]
    if case .object(let base) = processed.record { fields += base }
    fields.append(("tile", tile.record == .null ? .object([("index", .int(tileIndex))]) : .object([("index", .int(tileIndex))] + (tile.record.objectFields))))
    let json = Array(JSONValue.object(fields).serialized().utf8) + [0x0A]
    let jsonOffset = try writer.add(name: key + ".json", data: json)
    members.append(
      SampleEntry(
        key: key, image: [imageOffset, image.count], mask: maskRange, weight: weightRange, json: [jsonOffset, json.count],
        shape: [tile.image.channels, tile.image.height, tile.image.width],
        labelShape: tile.mask.map { [$0.height, $0.width] } ?? tile.weights.map { [$0.height, $0.width] },
        source: processed.source, sample: processed.sampleInSource, tile: tileIndex))
  }

  /// Ends the tar (fsync, rename to its staging name), then writes its index the same way.
  func finish() throws -> ShardEntry {
    let (bytes, digest) = try writer.finish()
    let entry = ShardEntry(
      name: Preparer.shardName(shard), key: key, bytes: bytes, sha256: digest, pipelineSamples: range, members: members)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    try FileIO.writeAtomically(Array(try encoder.encode(entry)), to: directory + "/" + Preparer.stagedIndexName(key))
    return entry
  }
}

extension JSONValue {
  /// The fields of an object (empty for other values).
  var objectFields: [(String, JSONValue)] {
    if case .object(let f) = self { return f }
    return []
  }
}
