import Foundation
import SegCache
import SegCore
import SegTestSupport
import Testing

@Suite struct ShardWriterTests {
  static let settings = ShardSettings(
    imageDType: "float16", imageScale: 1, maskDType: "uint16", weightDType: "float32", pipelineSamplesPerShard: 2,
    tiles: nil, maskKind: "instances")

  /// Writes shard `k` of two samples through the writer's whole lifecycle, as `prepare` does.
  static func writeShard(_ writer: ShardSetWriter, _ k: Int, key: String) throws -> ShardEntry {
    let builder = try ShardBuilder(
      directory: writer.directory, shard: k, key: key, pipelineSamples: (2 * k)..<(2 * k + 2), settings: settings)
    for s in 0..<2 {
      let image = Image(width: 3, height: 2, channels: 2, pixels: (0..<12).map { Float($0 + s) / 8 })
      let mask = Image(width: 3, height: 2, pixels: (0..<6).map { UInt16($0 * 700 + s) })
      let weights = Image(width: 3, height: 2, pixels: (0..<6).map { Float($0) + 0.25 })
      try builder.add(
        key: ShardFileNames.sampleKey(stem: "cell.a", sample: s, tile: 0), image: image, mask: mask, weights: weights,
        record: [("n", .int(s))], source: k, sample: s, tile: 0)
    }
    let entry = try builder.finish()
    #expect(writer.reusable(shard: k, key: key, verify: true)?.isStaged == true, "a finished shard is staged")
    try writer.promote(shard: k, key: key)
    return entry
  }

  @Test func writtenShardsReadBackThroughTheReader() throws {
    let dir = TestPaths.temporaryDirectory("writer")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let writer = try ShardSetWriter(directory: dir + "/set")
    #expect(writer.previousManifest() == nil)
    let entries = try [0, 1].map { try Self.writeShard(writer, $0, key: "key\($0)") }
    let manifest = ShardManifest(
      pipeline: .object([]), pipelineSHA256: "p", pipelineFile: nil, settings: Self.settings, sources: [],
      datasetStatistics: nil, classFrequencies: nil, shards: entries)
    #expect(try writer.writeManifest(manifest) == dir + "/set/manifest.json")
    #expect(writer.previousManifest() == manifest)

    let set = try ShardSet(directory: dir + "/set")
    let samples = try set.samples(inShard: 1)
    #expect(samples.map(\.key) == ["cell_a_s00000_t000", "cell_a_s00001_t000"])
    #expect(samples[1].image.floatSamples() == (0..<12).map { Float($0 + 1) / 8 }, "eighths are exact in float16")
    #expect(samples[1].mask?.labelSamples() == (0..<6).map { UInt32($0 * 700 + 1) })
    #expect(samples[1].weight?.floatSamples() == (0..<6).map { Float($0) + 0.25 })
    #expect(samples[0].record == .object([("key", "cell_a_s00000_t000"), ("n", 0)]))
    #expect(try set.sample(shard: 1, member: 1) == samples[1], "random access reads the same sample")

    // In place now: reusable with its own key only, not staged.
    let reused = try #require(writer.reusable(shard: 0, key: "key0", verify: true))
    #expect(reused.entry == entries[0] && !reused.isStaged)
    #expect(writer.reusable(shard: 0, key: "other", verify: false) == nil)
    // A shard beyond the new count and a leftover temporary file are removed; the rest stays.
    try FileIO.writeAtomically([1], to: dir + "/set/.x.tmp-1-1")
    writer.removeStale(keeping: 1)
    #expect(try FileIO.listDirectory(dir + "/set") == ["manifest.json", "shard-000000.idx.json", "shard-000000.tar"])
  }

  @Test func aTruncatedShardIsNotReused() throws {
    let dir = TestPaths.temporaryDirectory("writer-trunc")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let writer = try ShardSetWriter(directory: dir)
    _ = try Self.writeShard(writer, 0, key: "k")
    let path = dir + "/" + ShardFileNames.shard(0)
    let bytes = try FileIO.read(path)
    try FileIO.writeAtomically(Array(bytes.dropLast(512)), to: path)
    #expect(writer.reusable(shard: 0, key: "k", verify: false) == nil)
  }

  @Test func shardKeysDependOnEverySample() {
    let a = ShardSetWriter.shardKey(pipelineSHA256: "p", settingsSHA256: "s", samples: 0..<3) { "c\($0)" }
    #expect(a == ShardSetWriter.shardKey(pipelineSHA256: "p", settingsSHA256: "s", samples: 0..<3) { "c\($0)" })
    #expect(a != ShardSetWriter.shardKey(pipelineSHA256: "p", settingsSHA256: "s", samples: 0..<3) { $0 == 2 ? "x" : "c\($0)" })
    #expect(a != ShardSetWriter.shardKey(pipelineSHA256: "q", settingsSHA256: "s", samples: 0..<3) { "c\($0)" })
    #expect(a.count == 64)
  }

  @Test func fileEntriesReuseTheHashOnlyWhenSizeAndTimeAgree() throws {
    let dir = TestPaths.temporaryDirectory("writer-hash")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileIO.writeAtomically([1, 2, 3], to: dir + "/f")
    let fresh = try FileEntry.of(dir + "/f", reusing: nil)
    #expect(fresh.bytes == 3 && fresh.sha256 == SHA256.hex([1, 2, 3]))
    var stale = fresh
    stale.sha256 = "remembered"
    #expect(try FileEntry.of(dir + "/f", reusing: stale).sha256 == "remembered")
    stale.bytes = 4
    #expect(try FileEntry.of(dir + "/f", reusing: stale) == fresh)
    #expect { try FileEntry.of(dir + "/missing", reusing: nil) } throws: {
      ($0 as? FileIOError)?.code == .notFound && "\($0)".hasSuffix("/missing: cannot stat: No such file or directory")
    }
  }

  @Test func statisticsSumUpTheSamplesAndNameCorruptShards() throws {
    let dir = TestPaths.temporaryDirectory("writer-stats")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let writer = try ShardSetWriter(directory: dir)
    let entries = try [0, 1].map { try Self.writeShard(writer, $0, key: "key\($0)") }
    _ = try writer.writeManifest(
      ShardManifest(
        pipeline: .object([]), pipelineSHA256: "p", pipelineFile: nil, settings: Self.settings, sources: [],
        datasetStatistics: nil, classFrequencies: nil, shards: entries))
    let set = try ShardSet(directory: dir)
    let stats = ShardSetStatistics(set, readSamples: true, verify: true)
    #expect(stats.shapes.map(\.shape) == ["2×2×3 → 2×3"] && stats.shapes.map(\.samples) == [4])
    #expect(stats.imageMin == 0 && stats.imageMax == 12.0 / 8)
    // Mask values v·700 + s for v in 0..<6, s in 0, 1, in two shards: each pixel value twice.
    #expect(stats.maskValues.map(\.value) == [0, 1, 700, 701, 1400, 1401, 2100, 2101, 2800, 2801, 3500, 3501])
    #expect(stats.maskValues.allSatisfy { $0.pixels == 2 } && stats.maskPixels == 24 && stats.backgroundPixels == 2)
    #expect(stats.foregroundValues == 11)
    #expect(stats.weightMin == 0.25 && stats.weightMax == 5.25 && stats.weightMean == 2.75)
    #expect(stats.corrupt.isEmpty)

    let manifestOnly = ShardSetStatistics(set, readSamples: false, verify: false)
    #expect(!manifestOnly.samplesRead && manifestOnly.maskValuePixels.isEmpty && manifestOnly.weightMean == nil)

    var bytes = try FileIO.read(set.path(ofShard: 1))
    bytes[600] ^= 1
    try FileIO.writeAtomically(bytes, to: set.path(ofShard: 1))
    for readSamples in [true, false] {
      let damaged = ShardSetStatistics(set, readSamples: readSamples, verify: true)
      #expect(damaged.corrupt.map(\.shard) == ["shard-000001.tar"] && damaged.corrupt.first?.error.code == .checksumMismatch)
    }
    #expect(ShardSetStatistics(set, readSamples: false, verify: false).corrupt.isEmpty, "no checksums without verify")
  }
}
