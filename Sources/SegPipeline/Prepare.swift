import Foundation
import SegAugment
import SegCache
import SegCore
import SegIO
import SegTiling
import SegWeights

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
/// crash-safe. This is the orchestration; how shards lie on disk (builders, staging,
/// promotion, the manifest, merging) is SegCache's `ShardSetWriter` and `ShardBuilder`.
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
    let start = MonotonicClock.seconds()
    let lock = try ShardSetLock.acquire(directory: options.outputDirectory, part: options.partIndex, of: options.partCount)
    defer { withExtendedLifetime(lock) {} }
    let plan = try PreparePlan(spec: spec, options: options)
    if plan.needsStatisticsPass {
      plan.useStatistics(from: try await plan.engine.preparingDatasetStatistics(workers: options.workers))
    }
    try plan.decideShards()
    let state = try plan.buildState(start: start, progress: progress)
    try await plan.engine.run(indices: plan.indices, workers: options.workers) { processed in
      try state.consume(processed)
    }
    return try plan.complete(state, start: start)
  }

  /// SHA-256 of every source file, reusing the previous manifest's hash for files whose size
  /// and modification time are unchanged.
  static func hashSources(_ pairs: [SourcePair], previous: ShardManifest?) throws(PipelineError) -> [SourceEntry] {
    let known = previous?.filesByPath ?? [:]
    func entry(_ path: String) throws(PipelineError) -> FileEntry {
      do {
        return try FileEntry.of(path, reusing: known[path])
      } catch {
        throw PipelineError(.badSource, path: path, error.message)
      }
    }
    var entries: [SourceEntry] = []
    for p in pairs {
      var images: [FileEntry] = []
      for path in p.images { images.append(try entry(path)) }
      entries.append(SourceEntry(stem: p.stem, images: images, mask: try p.mask.map { (path) throws(PipelineError) in try entry(path) }))
    }
    return entries
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
    let tiles = Tiler(settings: engine.spec.tiles, seed: engine.spec.streamSeed).tiles(of: try engine.sample(0))
    let bytes = tiles.reduce(0) {
      $0 + ShardBuilder.estimatedBytes(
        imageSamples: $1.image.sampleCount, imageDType: storage.imageDType, maskSamples: $1.mask?.sampleCount ?? 0,
        weightSamples: $1.weights?.sampleCount ?? 0, weightDType: storage.weightDType)
    }
    return max(1, min(storage.samplesPerShard, limit / max(bytes, 1)))
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

extension Tiler {
  /// The training tiles of a processed sample.
  func tiles(of processed: ProcessedSample) -> [TrainingTile] {
    let s = processed.sample
    return tiles(
      image: s.image, mask: s.mask, weights: s.weights, source: processed.source, sampleInSource: processed.sampleInSource)
  }
}

/// Everything `prepare` decides before and after making samples: sources and their hashes,
/// data-set statistics (reused when nothing changed), storage settings, the shard plan, which
/// shards can be reused, and, at the end, moving staged shards into place and the manifest.
final class PreparePlan {
  let spec: PipelineSpec
  let options: PrepareOptions
  let writer: ShardSetWriter
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
    writer = try ShardSetWriter(directory: options.outputDirectory)
    engine = try PipelineEngine(spec: spec)
    previous = writer.previousManifest()
    sources = try Preparer.hashSources(engine.sources, previous: previous)
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
    ShardSetWriter.shardKey(pipelineSHA256: pipelineHash, settingsSHA256: settingsHash, samples: range(k)) {
      sources[$0 / spec.samplesPerImage].contentKey
    }
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
    for k in mine {
      let expected = key(k)
      keys[k] = expected
      if let (existing, isStaged) = writer.reusable(shard: k, key: expected, verify: options.verifyExisting) {
        entries[k] = existing
        if isStaged { staged.append(k) }
      } else {
        toBuild.append(k)
      }
    }
  }

  /// The pipeline samples to make, in order.
  var indices: [Int] { toBuild.flatMap { Array(range($0)) } }

  func buildState(start: Double, progress: @escaping (PrepareProgress) -> Void) throws -> BuildState {
    guard let settings else { throw CacheError(.ioFailure, path: writer.directory, "shard settings were not decided") }
    return BuildState(
      directory: writer.directory, perShard: perShard, total: engine.sampleCount, settings: settings,
      tiler: Tiler(settings: spec.tiles, seed: spec.streamSeed), keys: keys, indices: indices.count, start: start,
      progress: progress)
  }

  /// Moves staged shards into place (each index after its shard), writes the manifest (or the
  /// partial manifest), removes stale files, and sums up.
  func complete(_ state: BuildState, start: Double) throws -> PrepareSummary {
    for (k, entry) in state.entries {
      entries[k] = entry
      staged.append(k)
    }
    for k in staged.sorted() {
      guard let entry = entries[k] else { continue }
      try writer.promote(shard: k, key: entry.key)
    }
    let shardEntries = mine.compactMap { entries[$0] }
    let isPart = options.partCount > 1
    guard let settings else { throw CacheError(.ioFailure, path: writer.directory, "shard settings were not decided") }
    let manifest = ShardManifest(
      pipeline: pipelineJSON, pipelineSHA256: pipelineHash, pipelineFile: spec.file.isEmpty ? nil : spec.file,
      settings: settings, sources: sources, datasetStatistics: statistics, classFrequencies: frequencies,
      shards: shardEntries,
      part: isPart ? PartInfo(index: options.partIndex, count: options.partCount, totalShards: shardCount) : nil,
      train: spec.train.json)
    let manifestPath = try writer.writeManifest(manifest)
    if !isPart { writer.removeStale(keeping: shardCount) }
    return PrepareSummary(
      shards: shardEntries.count, built: toBuild.count, reused: shardEntries.count - toBuild.count,
      pipelineSamples: shardEntries.reduce(0) { $0 + ($1.pipelineSamples[1] - $1.pipelineSamples[0]) },
      trainingSamples: shardEntries.reduce(0) { $0 + $1.samples }, bytes: shardEntries.reduce(0) { $0 + $1.bytes },
      bytesBuilt: state.bytesBuilt, seconds: MonotonicClock.seconds() - start, manifest: manifestPath, isPart: isPart)
  }
}

/// The shard builds of one run: routes processed samples (in index order) to the builder of
/// their shard and finishes each shard after its last sample.
final class BuildState {
  let directory: String
  let perShard: Int
  let total: Int
  let settings: ShardSettings
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
    directory: String, perShard: Int, total: Int, settings: ShardSettings, tiler: Tiler, keys: [Int: String],
    indices: Int, start: Double, progress: @escaping (PrepareProgress) -> Void
  ) {
    self.directory = directory
    self.perShard = perShard
    self.total = total
    self.settings = settings
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
      builder = try ShardBuilder(
        directory: directory, shard: k, key: keys[k] ?? "", pipelineSamples: range, settings: settings)
    }
    guard let current = builder else { return }
    let stem = processed.record["source"]?["stem"].flatMap { if case .string(let s) = $0 { s } else { nil } } ?? "sample"
    for (t, tile) in tiler.tiles(of: processed).enumerated() {
      let index: [(String, JSONValue)] = [("index", .int(t))]
      try current.add(
        key: ShardFileNames.sampleKey(stem: stem, sample: processed.sampleInSource, tile: t), image: tile.image,
        mask: tile.mask, weights: tile.weights,
        record: processed.record.objectFields + [("tile", .object(index + tile.record.objectFields))],
        source: processed.source, sample: processed.sampleInSource, tile: t)
      written += 1
    }
    if processed.index == range.upperBound - 1 {
      let entry = try current.finish()
      entries[k] = entry
      bytesBuilt += entry.bytes
      builder = nil
    }
    done += 1
    progress(PrepareProgress(done: done, total: indices, written: written, elapsedSeconds: MonotonicClock.seconds() - start))
  }
}

extension JSONValue {
  /// The fields of an object (empty for other values).
  var objectFields: [(String, JSONValue)] {
    if case .object(let f) = self { return f }
    return []
  }
}
