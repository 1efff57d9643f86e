import Foundation
import SegCache
import SegCore
import SegIO
import SegPipeline
import SegTestSupport
import Testing

/// A pipeline over the fixture cells with small shards (3 pipeline samples each).
func smallShardPipeline(in dir: String, sources: String? = nil, extra: String = "") throws -> String {
  let cells = sources ?? TestPaths.fixtures + "/cells"
  let text = """
    version: 1
    seed: 11
    sources: {images: \(cells)/images/*.png, masks: \(cells)/labels/*.png}
    samples_per_image: 2
    mask: {kind: instances}
    stages:
      - normalize: {method: scale, factor: 0.00392156862745098}
      - affine: {rotate: [-30, 30], flip_h: 0.5}
      - elastic: {method: grid, points: 3, sigma: 3}
      - weight_map: {}
    shards: {samples_per_shard: 3}
    \(extra)
    """
  let path = dir + "/p.yaml"
  try text.write(toFile: path, atomically: true, encoding: .utf8)
  return path
}

func fileBytes(_ dir: String) throws -> [String: [UInt8]] {
  var out: [String: [UInt8]] = [:]
  for name in try FileIO.listDirectory(dir) where name.hasSuffix(".tar") || name == "manifest.json" {
    out[name] = try FileIO.read(dir + "/" + name)
  }
  return out
}

@Suite struct PrepareTests {
  @Test func secondRunDoesNoWorkAndOutputIsByteIdenticalForAnyWorkerCount() async throws {
    let dir = TestPaths.temporaryDirectory("prepare")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let spec = try PipelineSpec.load(try smallShardPipeline(in: dir))
    let first = try await Preparer.run(spec: spec, options: PrepareOptions(outputDirectory: dir + "/a", workers: 1))
    #expect(first.shards == 3 && first.built == 3 && first.trainingSamples == 8)
    let again = try await Preparer.run(spec: spec, options: PrepareOptions(outputDirectory: dir + "/a", workers: 2))
    #expect(again.built == 0 && again.reused == 3)
    let two = try await Preparer.run(spec: spec, options: PrepareOptions(outputDirectory: dir + "/b", workers: 2))
    #expect(two.built == 3)
    let a = try fileBytes(dir + "/a")
    let b = try fileBytes(dir + "/b")
    #expect(a.keys.sorted() == ["manifest.json", "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"])
    for name in a.keys where name.hasSuffix(".tar") { #expect(a[name] == b[name], "\(name) differs between 1 and 2 workers") }
    let set = try ShardSet(directory: dir + "/a")
    for i in set.manifest.shards.indices { try set.verify(shard: i) }
  }

  @Test func changingOneSourceRebuildsOnlyItsShards() async throws {
    let dir = TestPaths.temporaryDirectory("incremental")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileManager.default.copyItem(atPath: TestPaths.fixtures + "/cells", toPath: dir + "/cells")
    let spec = try PipelineSpec.load(try smallShardPipeline(in: dir, sources: dir + "/cells"))
    _ = try await Preparer.run(spec: spec, options: PrepareOptions(outputDirectory: dir + "/out", workers: 2))
    let before = try fileBytes(dir + "/out")
    // Source 3 feeds pipeline samples 6 and 7: shard 2 only (samples 6...7).
    let image = try ImageDecoder.read(dir + "/cells/images/cells_3.png").image
    let flipped = Image(width: image.width, height: image.height, pixels: image.labelSamples().reversed().map { UInt8($0) })
    try FileIO.writeAtomically(try PNGCodec.encode(flipped), to: dir + "/cells/images/cells_3.png")
    let summary = try await Preparer.run(spec: spec, options: PrepareOptions(outputDirectory: dir + "/out", workers: 2))
    #expect(summary.built == 1 && summary.reused == 2)
    let after = try fileBytes(dir + "/out")
    #expect(after["shard-000000.tar"] == before["shard-000000.tar"] && after["shard-000001.tar"] == before["shard-000001.tar"])
    #expect(after["shard-000002.tar"] != before["shard-000002.tar"])
    // A changed stage parameter changes every shard's key.
    let edited = try PipelineSpec.load(try smallShardPipeline(in: dir, sources: dir + "/cells").replacingOccurrences(of: "", with: ""))
    var respec = edited
    respec.seed = 12
    let all = try await Preparer.run(spec: respec, options: PrepareOptions(outputDirectory: dir + "/out", workers: 2))
    #expect(all.built == 3)
  }

  @Test func distributedPartsMergeIntoTheSingleMachineResult() async throws {
    let dir = TestPaths.temporaryDirectory("parts")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let spec = try PipelineSpec.load(try smallShardPipeline(in: dir))
    _ = try await Preparer.run(spec: spec, options: PrepareOptions(outputDirectory: dir + "/single", workers: 2))
    for i in 0..<2 {
      let s = try await Preparer.run(spec: spec, options: PrepareOptions(outputDirectory: dir + "/multi", workers: 1, partIndex: i, partCount: 2))
      #expect(s.isPart)
    }
    #expect(!FileManager.default.fileExists(atPath: dir + "/multi/manifest.json"))
    let merged = try ShardSetWriter.merge(directory: dir + "/multi")
    #expect(merged.shards.count == 3)
    let single = try fileBytes(dir + "/single")
    let multi = try fileBytes(dir + "/multi")
    #expect(single == multi, "shards and manifest must be byte-identical to a single-machine run")
  }

  @Test func mergeRefusesIncompleteOrMixedParts() async throws {
    let dir = TestPaths.temporaryDirectory("merge-bad")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let spec = try PipelineSpec.load(try smallShardPipeline(in: dir))
    _ = try await Preparer.run(spec: spec, options: PrepareOptions(outputDirectory: dir + "/m", workers: 1, partIndex: 0, partCount: 2))
    #expect { try ShardSetWriter.merge(directory: dir + "/m") } throws: { ($0 as? CacheError)?.code == .mergeConflict }
    var other = spec
    other.seed = 99
    _ = try await Preparer.run(spec: other, options: PrepareOptions(outputDirectory: dir + "/m", workers: 1, partIndex: 1, partCount: 2))
    #expect { try ShardSetWriter.merge(directory: dir + "/m") } throws: { ($0 as? CacheError)?.code == .mergeConflict }
  }

  @Test func corruptShardsAreFoundByChecksumAndCanBeSkipped() async throws {
    let dir = TestPaths.temporaryDirectory("corrupt")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let spec = try PipelineSpec.load(try smallShardPipeline(in: dir))
    _ = try await Preparer.run(spec: spec, options: PrepareOptions(outputDirectory: dir + "/s", workers: 2))
    var altered = try FileIO.read(dir + "/s/shard-000001.tar")
    altered[2000] ^= 0x40
    try FileIO.writeAtomically(altered, to: dir + "/s/shard-000001.tar")
    let full = try FileIO.read(dir + "/s/shard-000002.tar")
    try FileIO.writeAtomically(Array(full.prefix(full.count / 2)), to: dir + "/s/shard-000002.tar")
    let set = try ShardSet(directory: dir + "/s")
    try set.verify(shard: 0)
    #expect { try set.verify(shard: 1) } throws: { e in
      guard let e = e as? CacheError else { return false }
      return e.code == .checksumMismatch && e.path == dir + "/s/shard-000001.tar"
    }
    #expect { try set.verify(shard: 2) } throws: { ($0 as? CacheError)?.code == .truncated }
    // A training stream throws at the first bad shard, or skips and counts with skipCorrupt.
    let strict = ShardStream(set: set, seed: 1, epoch: 0, shuffle: false)
    #expect(throws: CacheError.self) { while try strict.next() != nil {} }
    let lenient = ShardStream(set: set, seed: 1, epoch: 0, shuffle: false, skipCorrupt: true)
    var n = 0
    while try lenient.next() != nil { n += 1 }
    #expect(n == set.manifest.shards[0].samples)
    #expect(lenient.skipped.count == 2)
    // A rerun of prepare notices the damaged files only with verifyExisting (sizes match for the flip).
    let quick = try await Preparer.run(spec: spec, options: PrepareOptions(outputDirectory: dir + "/s", workers: 2))
    #expect(quick.built == 1)  // the truncated one
    let thorough = try await Preparer.run(spec: spec, options: PrepareOptions(outputDirectory: dir + "/s", workers: 2, verifyExisting: true))
    #expect(thorough.built == 1)  // the altered one
    for i in 0..<3 { try set.verify(shard: i) }
  }

  @Test func readerGivesBackWhatWasWritten() async throws {
    let dir = TestPaths.temporaryDirectory("reader")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let spec = try PipelineSpec.load(try smallShardPipeline(in: dir))
    _ = try await Preparer.run(spec: spec, options: PrepareOptions(outputDirectory: dir + "/s", workers: 2))
    let set = try ShardSet(directory: dir + "/s")
    let engine = try PipelineEngine(spec: spec)
    var sequential: [StoredSample] = []
    for i in set.manifest.shards.indices { sequential += try set.samples(inShard: i) }
    #expect(sequential.count == 8)
    for s in sequential {
      // Random access gives the same sample; the engine regenerates it exactly.
      #expect(try set.sample(shard: s.shard, member: s.member) == s)
      guard case .int(let index)? = s.record["index"] else {
        Issue.record("record without index")
        continue
      }
      let made = try engine.sample(index).sample
      #expect(s.image == made.image && s.weight == made.weights)
      #expect(s.mask?.labelSamples() == made.mask?.labelSamples() && s.mask?.pixelType == .uint8)
    }
    // Shuffled streams: a permutation, reproducible for a seed, different across epochs.
    func order(_ seed: UInt64, _ epoch: Int, buffer: Int) throws -> [String] {
      let stream = ShardStream(set: set, seed: seed, epoch: epoch, shuffleBuffer: buffer, prefetch: 2)
      var keys: [String] = []
      while let s = try stream.next() { keys.append(s.key) }
      return keys
    }
    let a = try order(5, 0, buffer: 4)
    #expect(a.sorted() == sequential.map(\.key).sorted())
    #expect(try order(5, 0, buffer: 4) == a)
    #expect(try order(5, 1, buffer: 4) != a)
    // A stream dropped early, its prefetch queue full, ends its thread and frees the queue
    // without tripping libdispatch (which once killed `unet train` with SIGILL here).
    for _ in 0..<3 {
      let stream = ShardStream(set: set, seed: 1, epoch: 0, shuffle: false, prefetch: 2)
      #expect(try stream.next() != nil)
      usleep(50_000)
    }
    usleep(400_000)  // the producers notice the stop within 100 ms and release the queues
  }

  @Test func tilesCutInputAndLabelWindowsCentred() async throws {
    let dir = TestPaths.temporaryDirectory("tiles")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    for (extra, count, input, output) in [
      ("tiles: {network: {depth: 2, padding: valid}, output: 36, mode: overlap}", 8 * 9, 76, 36),
      ("tiles: {network: {depth: 2, padding: same}, input: 32, mode: random, count: 3}", 8 * 3, 32, 32),
    ] {
      let spec = try PipelineSpec.load(try smallShardPipeline(in: dir, extra: extra))
      let out = dir + "/t\(input)"
      let summary = try await Preparer.run(spec: spec, options: PrepareOptions(outputDirectory: out, workers: 2))
      #expect(summary.trainingSamples == count, "\(extra)")
      let set = try ShardSet(directory: out)
      for s in try set.samples(inShard: 0) {
        #expect(s.image.width == input && s.image.height == input)
        #expect(s.mask?.width == output && s.weight?.height == output)
      }
    }
  }
}
