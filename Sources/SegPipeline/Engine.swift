import SegAugment
import SegCore
import SegIO
import SegWeights
import Synchronization

/// Mean and standard deviation over a data set, per channel and over all channels.
public struct DatasetStatistics: Sendable, Equatable {
  public var perChannel: ChannelStatistics
  public var overall: ChannelStatistics

  public init(perChannel: ChannelStatistics, overall: ChannelStatistics) {
    self.perChannel = perChannel
    self.overall = overall
  }
}

/// One processed sample, ready for a consumer (the shard writer, the preview).
public struct ProcessedSample: Sendable {
  /// The global sample index: source × samples_per_image + sample.
  public var index: Int
  public var source: Int
  public var sampleInSource: Int
  public var sample: Sample
  /// Source files, stage parameters actually drawn, seed and stream key, as JSON.
  public var record: JSONValue
  /// With `trackMap`: where every output pixel came from in the source image.
  public var sourceMap: SourceMap?
  /// With `keepSource`: the decoded source image (float32, unnormalised) and mask.
  public var sourceImage: Image?
  public var sourceMask: Image?
}

/// The streaming engine: decode → stages → consumer, on `workers` concurrent tasks, with at most
/// two samples per worker in flight, emitting samples in index order. Every random draw comes
/// from a stream keyed by (seed, source index, sample index, stage index), so a sample's bytes
/// do not depend on the worker count, on the order of work, or on which other samples are made.
public struct PipelineEngine: Sendable {
  public let spec: PipelineSpec
  public let sources: [SourcePair]
  /// Data-set statistics from the first pass (when a stage needs them).
  public let datasetStatistics: DatasetStatistics?
  public let classFrequencies: ClassFrequencies?
  let cache: SourceCache

  public var sampleCount: Int { sources.count * spec.samplesPerImage }

  /// Resolves the sources. Call `preparingDatasetStatistics` next if `spec.needsDatasetPass`.
  public init(spec: PipelineSpec) throws(PipelineError) {
    self.init(spec: spec, sources: try spec.resolveSources(), statistics: nil, frequencies: nil)
  }

  init(spec: PipelineSpec, sources: [SourcePair], statistics: DatasetStatistics?, frequencies: ClassFrequencies?) {
    self.spec = spec
    self.sources = sources
    self.datasetStatistics = statistics
    self.classFrequencies = frequencies
    self.cache = SourceCache(capacity: 8)
  }

  /// Runs the first streaming pass (per-data-set mean/std and class frequencies) when a stage
  /// needs it, and returns an engine whose stages carry the results.
  public func preparingDatasetStatistics(workers: Int) async throws -> PipelineEngine {
    guard spec.needsDatasetPass else { return self }
    let needsFrequencies = spec.stages.contains { ($0 as? WeightMapStage)?.datasetBalance ?? false }
    let maskSettings = spec.mask
    var running = RunningStatistics()
    var frequencies = ClassFrequencies()
    try await forEachOrdered(count: sources.count, workers: workers) { i in
      try self.load(source: i)
    } consume: { (image, mask) in
      running.add(image)
      if needsFrequencies, let mask {
        frequencies.add(classes: InstanceMap(mask: mask, kind: maskSettings.kind, connectivity: maskSettings.connectivity).classes)
      }
    }
    return withDatasetStatistics(
      DatasetStatistics(perChannel: running.statistics(perChannel: true), overall: running.statistics(perChannel: false)),
      frequencies: needsFrequencies ? frequencies : nil)
  }

  /// The same engine with data-set statistics (from a pass or from a cache) given to the stages.
  public func withDatasetStatistics(_ stats: DatasetStatistics?, frequencies: ClassFrequencies?) -> PipelineEngine {
    var updated = spec
    updated.stages = updated.stages.map { stage in
      if var n = stage as? NormalizeStage, n.method == .zscoreDataset, let stats {
        n.datasetStatistics = n.perChannel ? stats.perChannel : stats.overall
        return n
      }
      if var w = stage as? WeightMapStage, w.datasetBalance, let frequencies {
        w.parameters.classBalance = .dataset(frequencies)
        return w
      }
      return stage
    }
    return PipelineEngine(spec: updated, sources: sources, statistics: stats, frequencies: frequencies)
  }

  // MARK: - Samples

  /// Makes one sample alone (any index, in any order).
  public func sample(_ index: Int, trackMap: Bool = false, keepSource: Bool = false) throws -> ProcessedSample {
    precondition(index >= 0 && index < sampleCount, "sample index \(index) out of 0..<\(sampleCount)")
    let source = index / spec.samplesPerImage
    let k = index % spec.samplesPerImage
    let (image, mask) = try load(source: source)
    let stream = RandomStream(seed: spec.streamSeed, path: [UInt64(source), UInt64(k)])
    let result = Augmenter.run(
      spec.stages, on: Sample(image: image, mask: mask), rng: stream, interpolation: spec.interpolation, fill: spec.fill,
      trackMap: trackMap)
    let pair = sources[source]
    var stageRecords: [JSONValue] = []
    for (stage, record) in zip(spec.stages, result.records) {
      if case .object(let fields) = record {
        stageRecords.append(.object([("stage", .string(type(of: stage).key))] + fields))
      }
    }
    let out = result.sample
    let record: JSONValue = .object([
      ("index", .int(index)),
      ("source", .object([
        ("index", .int(source)), ("stem", .string(pair.stem)),
        ("images", .array(pair.images.map { .string(relativePath($0)) })),
        ("mask", pair.mask.map { .string(relativePath($0)) } ?? .null),
      ])),
      ("sample", .int(k)),
      ("seed", .int(Int(truncatingIfNeeded: spec.seed))),
    ] + (spec.epoch > 0 ? [("epoch", JSONValue.int(spec.epoch))] : []) + [
      ("stream", .string(String(stream.key, radix: 16))),
      ("shape", .array([.int(out.image.channels), .int(out.image.height), .int(out.image.width)])),
      ("stages", .array(stageRecords)),
    ])
    return ProcessedSample(
      index: index, source: source, sampleInSource: k, sample: out, record: record, sourceMap: result.sourceMap,
      sourceImage: keepSource ? image : nil, sourceMask: keepSource ? mask : nil)
  }

  /// Makes the samples `indices` on `workers` concurrent tasks and hands them to `consume` in
  /// the order of `indices`, one at a time. At most 2 × workers samples are held at once.
  public func run(
    indices: [Int], workers: Int, trackMap: Bool = false, keepSource: Bool = false,
    consume: (ProcessedSample) throws -> Void
  ) async throws {
    try await forEachOrdered(count: indices.count, workers: workers) { k in
      try self.sample(indices[k], trackMap: trackMap, keepSource: keepSource)
    } consume: { try consume($0) }
  }

  /// Like `run`, with a `transform` applied on the worker tasks (e.g. rendering a preview row)
  /// before `consume` sees the results in order.
  public func run<T: Sendable>(
    indices: [Int], workers: Int, trackMap: Bool = false, keepSource: Bool = false,
    transform: @escaping @Sendable (ProcessedSample) throws -> T, consume: (T) throws -> Void
  ) async throws {
    try await forEachOrdered(count: indices.count, workers: workers) { k in
      try transform(try self.sample(indices[k], trackMap: trackMap, keepSource: keepSource))
    } consume: { try consume($0) }
  }

  /// A path relative to the pipeline's folder when it lies below it (records stay the same
  /// on every machine), otherwise as given.
  func relativePath(_ path: String) -> String {
    let base = spec.baseDirectory
    if base != ".", path.hasPrefix(base + "/") { return String(path.dropFirst(base.count + 1)) }
    return path
  }

  // MARK: - Sources

  /// Decodes source `i`: the image files stacked as channels (float32, unscaled) and the
  /// mask, checking that every file has the same size.
  public func load(source i: Int) throws -> (image: Image, mask: Image?) {
    if let hit = cache.get(i) { return hit }
    let pair = sources[i]
    var planes: [Image] = []
    do {
      for path in pair.images {
        let decoded = try ImageDecoder.read(path, options: spec.decode)
        for (k, page) in decoded.pages.enumerated() {
          if let first = planes.first, first.width != page.width || first.height != page.height {
            throw PipelineError(
              .sizeMismatch, path: path,
              "\(decoded.pages.count > 1 ? "page \(k) is" : "is") \(page.width) × \(page.height), but \(pair.images[0]) is \(first.width) × \(first.height)")
          }
          planes.append(page.toFloat32())
        }
      }
    } catch let e as ImageIOError {
      throw PipelineError(.badSource, path: e.path, e.message, hint: e.hint)
    }
    let image = Image.stack(planes)
    var mask: Image? = nil
    if let maskPath = pair.mask {
      do {
        let m = try LabelMask.read(maskPath, options: DecodeOptions(maxPixels: spec.decode.maxPixels, palette: .indices))
        guard m.width == image.width && m.height == image.height else {
          throw PipelineError(
            .sizeMismatch, path: maskPath,
            "mask is \(m.width) × \(m.height), but its image \(pair.images[0]) is \(image.width) × \(image.height)")
        }
        mask = m.pixelType == .float32 ? m.converted(to: .uint32) : m
      } catch let e as ImageIOError {
        throw PipelineError(.badSource, path: e.path, e.message, hint: e.hint)
      }
    }
    cache.put(i, (image, mask))
    return (image, mask)
  }
}

/// A small cache of decoded sources shared by the workers, so the samples of one source
/// decode it once (most of the time: two workers may race on the same source and both decode).
final class SourceCache: Sendable {
  private let storage: Mutex<[(Int, Image, Image?)]>
  let capacity: Int

  init(capacity: Int) {
    self.capacity = capacity
    storage = Mutex([])
  }

  func get(_ i: Int) -> (Image, Image?)? {
    storage.withLock { entries in
      guard let k = entries.firstIndex(where: { $0.0 == i }) else { return nil }
      let hit = entries.remove(at: k)
      entries.append(hit)
      return (hit.1, hit.2)
    }
  }

  func put(_ i: Int, _ value: (Image, Image?)) {
    storage.withLock { entries in
      entries.removeAll { $0.0 == i }
      entries.append((i, value.0, value.1))
      if entries.count > capacity { entries.removeFirst(entries.count - capacity) }
    }
  }
}

/// Runs `produce(0..<count)` on up to `workers` concurrent tasks and calls `consume` with the
/// results in index order, holding at most 2 × workers results at once (back-pressure: a new
/// task starts only when the window allows).
func forEachOrdered<T: Sendable>(
  count: Int, workers: Int, produce: @escaping @Sendable (Int) throws -> T, consume: (T) throws -> Void
) async throws {
  guard count > 0 else { return }
  let window = max(1, workers) * 2
  let running = max(1, workers)
  try await withThrowingTaskGroup(of: (Int, T).self) { group in
    var nextToStart = 0
    var nextToEmit = 0
    var inFlight = 0
    var done: [Int: T] = [:]
    func startMore() {
      while inFlight < running && nextToStart < count && nextToStart - nextToEmit < window {
        let i = nextToStart
        group.addTask { (i, try produce(i)) }
        nextToStart += 1
        inFlight += 1
      }
    }
    startMore()
    while nextToEmit < count {
      guard let (i, value) = try await group.next() else { break }
      inFlight -= 1
      done[i] = value
      while let ready = done.removeValue(forKey: nextToEmit) {
        try consume(ready)
        nextToEmit += 1
      }
      startMore()
    }
  }
}
