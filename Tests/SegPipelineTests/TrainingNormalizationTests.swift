import Foundation
import SegAugment
import SegCache
import SegCore
import SegPipeline
import SegTestSupport
import Testing

/// The normalisation a checkpoint records: written from the manifest, read back by the pipeline
/// file's own parser, and every malformed entry an error naming the file.
@Suite struct TrainingNormalizationTests {
  /// Prepared shards → checkpoint metadata → stages: the stages of the pipeline file, in order,
  /// with the manifest's statistics attached to the data-set z-score.
  @Test func roundTripThroughAPreparedManifest() async throws {
    let dir = TestPaths.temporaryDirectory("normalization")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let cells = TestPaths.fixtures + "/cells"
    let text = """
      version: 1
      seed: 5
      sources: {images: \(cells)/images/*.png, masks: \(cells)/labels/*.png}
      samples_per_image: 1
      mask: {kind: instances}
      stages:
        - normalize: {method: percentile, low: 0.5, high: 99.5, per_channel: false}
        - normalize: {method: scale, factor: 1.0e-5}
        - normalize: {method: zscore, scope: dataset}
        - normalize: {method: zscore, scope: dataset, per_channel: false}
        - weight_map: {}
      shards: {samples_per_shard: 4}
      """
    try text.write(toFile: dir + "/p.yaml", atomically: true, encoding: .utf8)
    let spec = try PipelineSpec.load(dir + "/p.yaml")
    _ = try await Preparer.run(spec: spec, options: PrepareOptions(outputDirectory: dir + "/shards", workers: 1))
    let manifest = try ShardSet(directory: dir + "/shards").manifest
    let s = try #require(manifest.datasetStatistics)
    let metadata = TrainingNormalization.metadata(for: manifest)
    let read = try TrainingNormalization(metadata: metadata, file: "run/last.ckpt")
    #expect(
      read.stages == [
        NormalizeStage(method: .percentile(low: 0.5, high: 99.5), perChannel: false),
        NormalizeStage(method: .scale(1e-5)),
        NormalizeStage(method: .zscoreDataset, datasetStatistics: ChannelStatistics(mean: s.mean, std: s.std)),
        NormalizeStage(
          method: .zscoreDataset, perChannel: false, datasetStatistics: ChannelStatistics(mean: [s.meanAll], std: [s.stdAll])),
      ])
    #expect(s.std.allSatisfy { $0 > 0 })
  }

  /// The entries a v1 checkpoint wrote (frozen text) still read as they did.
  @Test func readsTheFrozenV1Entries() throws {
    let metadata = [
      "normalize": #"[{"factor": 0.00392156862745098, "method": "scale", "p": 1, "per_channel": true}]"#,
      "dataset_statistics": "null",
    ]
    let read = try TrainingNormalization(metadata: metadata, file: "v1.ckpt")
    #expect(read.stages == [NormalizeStage(method: .scale(0.00392156862745098))])
    // No entry: a network trained on raw values.
    #expect(try TrainingNormalization(metadata: [:], file: "raw.ckpt").stages.isEmpty)
  }

  /// Each malformed entry: an error naming the file and the entry, never a silent default.
  @Test(arguments: [
    (#"[{"method": "sharpen"}]"#, "null", "metadata.normalize[0].method: method must be minmax, scale, percentile or zscore, not sharpen"),
    (#"[{"method": "scale"}]"#, "null", "metadata.normalize[0]: "),
    (#"[{"method": "scale", "factor": -1}]"#, "null", "factor must be positive"),
    (#"[{"method": "minmax", "gain": 2}]"#, "null", "gain"),
    (#"{"method": "minmax"}"#, "null", "metadata.normalize: expected a list"),
    (#"[{"method": "zscore", "scope": "dataset"}]"#, "null", "records no dataset_statistics"),
    (#"[{"method": "zscore", "scope": "dataset"}]"#, #"{"mean": [1]}"#, "metadata.dataset_statistics: expected"),
    (#"[{"method": "zscore", "scope": "dataset"}]"#, #"{"mean": [1, 2], "std": [1], "mean_all": 1, "std_all": 1}"#,
     "mean has 2 values and std 1"),
    (#"[{"method": "minmax""#, "null", "YAML syntax error"),
    ("", "null", "empty"),
  ])
  func malformedEntriesAreErrorsNamingTheFile(stages: String, statistics: String, expected: String) {
    do {
      let read = try TrainingNormalization(metadata: ["normalize": stages, "dataset_statistics": statistics], file: "bad.ckpt")
      Issue.record("accepted \(stages) as \(read.stages)")
    } catch {
      let line = error.description
      #expect(line.hasPrefix("bad.ckpt"), "\(line)")
      #expect(line.contains(expected), "\(line)")
      #expect(!line.contains("\n"))
    }
  }
}
