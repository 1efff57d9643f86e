import Foundation
import SegAugment
import SegCore
import SegIO
import SegPipeline
import SegTestSupport
import Testing

@Suite struct EngineTests {
  static var defaultPipeline: String { TestPaths.pipelines + "/default.yaml" }

  @Test func defaultPipelineProducesSamplesWithWeights() async throws {
    let engine = try PipelineEngine(spec: try PipelineSpec.load(Self.defaultPipeline))
    #expect(engine.sources.count == 4)
    #expect(engine.sampleCount == 16)
    var count = 0
    try await engine.run(indices: Array(0..<engine.sampleCount), workers: 2) { s in
      #expect(s.index == count)
      #expect(s.sample.weights != nil && s.sample.mask != nil)
      #expect(s.sample.image.pixelType == .float32)
      count += 1
    }
    #expect(count == 16)
  }

  @Test func oneAndTwoWorkersGiveIdenticalSamplesInTheSameOrder() async throws {
    let engine = try PipelineEngine(spec: try PipelineSpec.load(Self.defaultPipeline))
    var one: [Sample] = []
    var two: [Sample] = []
    var three: [Sample] = []
    let indices = Array(0..<engine.sampleCount)
    try await engine.run(indices: indices, workers: 1) { one.append($0.sample) }
    try await engine.run(indices: indices, workers: 2) { two.append($0.sample) }
    try await engine.run(indices: indices.reversed(), workers: 3) { three.append($0.sample) }
    #expect(one == two)
    #expect(one == three.reversed())
    // Any sample regenerated alone is the same too.
    #expect(try engine.sample(7).sample == one[7])
    // Different samples of one source differ.
    #expect(one[0].image != one[1].image)
  }

  @Test func recordsNameTheSourcesAndStages() throws {
    let engine = try PipelineEngine(spec: try PipelineSpec.load(Self.defaultPipeline))
    let s = try engine.sample(5)
    #expect(s.record["index"] == .int(5))
    #expect(s.record["sample"] == .int(1))
    #expect(s.record["source"]?["mask"] == .string("../fixtures/cells/labels/cells_1.png"))
    guard case .array(let stages)? = s.record["stages"] else {
      Issue.record("no stages in the record")
      return
    }
    #expect(stages.count == 6)
    #expect(stages[1]["stage"] == "affine")
  }

  @Test func sourceOverrideReadsAFolder() async throws {
    let dir = TestPaths.temporaryDirectory("source")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileManager.default.createDirectory(atPath: dir + "/images", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: dir + "/labels", withIntermediateDirectories: true)
    for k in 0..<2 {
      let src = TestPaths.fixtures + "/cells"
      try FileManager.default.copyItem(atPath: src + "/images/cells_\(k).png", toPath: dir + "/images/s\(k).png")
      try FileManager.default.copyItem(atPath: src + "/labels/cells_\(k).png", toPath: dir + "/labels/s\(k).png")
    }
    let spec = try PipelineSpec.load(Self.defaultPipeline).overridingSource(dir)
    let engine = try PipelineEngine(spec: spec)
    #expect(engine.sources.map(\.stem) == ["s0", "s1"])
    #expect(engine.sampleCount == 8)
  }

  @Test func datasetStatisticsPassFeedsTheStages() async throws {
    let text = """
      version: 1
      seed: 3
      sources: {images: ../fixtures/cells/images/*.png, masks: ../fixtures/cells/labels/*.png}
      stages:
        - normalize: {method: zscore, scope: dataset}
        - weight_map: {class_balance: dataset}
      """
    let spec = try PipelineSpec.parse(text, file: TestPaths.pipelines + "/inline.yaml")
    #expect(spec.needsDatasetPass)
    let engine = try await PipelineEngine(spec: spec).preparingDatasetStatistics(workers: 2)
    let stats = try #require(engine.datasetStatistics)
    // The normalised data set has mean 0 and std 1 over all its pixels.
    var sum = 0.0
    var sq = 0.0
    var n = 0.0
    for i in 0..<engine.sampleCount {
      for v in try engine.sample(i).sample.image.floatSamples() {
        sum += Double(v)
        sq += Double(v) * Double(v)
        n += 1
      }
    }
    #expect(abs(sum / n) < 1e-3 && abs(sq / n - 1) < 1e-3, "mean \(sum / n), var \(sq / n); stats \(stats)")
    #expect(engine.classFrequencies?.counts.count == 2)
  }

  @Test func sizeMismatchAndBadSourcesAreOneLineErrors() async throws {
    let dir = TestPaths.temporaryDirectory("mismatch")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileManager.default.createDirectory(atPath: dir + "/images", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: dir + "/labels", withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: TestPaths.fixtures + "/cells/images/cells_0.png", toPath: dir + "/images/a.png")
    try FileManager.default.copyItem(atPath: TestPaths.fixtures + "/png/gray8.png", toPath: dir + "/labels/a.png")
    try FileManager.default.copyItem(atPath: TestPaths.fixtures + "/corrupt/truncated.png", toPath: dir + "/images/b.png")
    try FileManager.default.copyItem(atPath: TestPaths.fixtures + "/cells/labels/cells_1.png", toPath: dir + "/labels/b.png")
    let spec = try PipelineSpec.load(Self.defaultPipeline).overridingSource(dir)
    let engine = try PipelineEngine(spec: spec)
    #expect {
      _ = try engine.sample(0)
    } throws: { e in
      guard let e = e as? PipelineError else { return false }
      return e.code == .sizeMismatch && e.description == "\(dir)/labels/a.png: mask is 64 × 48, but its image \(dir)/images/a.png is 96 × 96"
    }
    #expect {
      _ = try engine.sample(4)
    } throws: { e in
      guard let e = e as? PipelineError else { return false }
      return e.code == .badSource && e.description == "\(dir)/images/b.png: unexpected end of file"
    }
  }
}
