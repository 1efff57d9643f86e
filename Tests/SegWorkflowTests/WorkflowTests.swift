import Foundation
import SegCache
import SegCore
import SegModel
import SegIO
import SegPipeline
import SegTestSupport
import SegTiling
import SegTrain
import SegWorkflow
import Testing

/// Shards for a small valid U-Net (depth 2: 76 → 36) cut from the fixture cells.
func trainingShards(_ dir: String, padding: String = "valid") async throws -> String {
  let cells = TestPaths.fixtures + "/cells"
  let tiles = padding == "valid"
    ? "tiles: {network: {depth: 2, padding: valid}, output: 36, mode: random, count: 2}"
    : "tiles: {network: {depth: 2, padding: same}, input: 32, mode: random, count: 2}"
  let text = """
    version: 1
    seed: 21
    sources: {images: \(cells)/images/*.png, masks: \(cells)/labels/*.png}
    samples_per_image: 3
    mask: {kind: instances}
    stages:
      - normalize: {method: scale, factor: 0.00392156862745098}
      - affine: {rotate: [-20, 20], flip_h: 0.5}
      - weight_map: {}
    \(tiles)
    shards: {samples_per_shard: 2}
    """
  try text.write(toFile: dir + "/p.yaml", atomically: true, encoding: .utf8)
  let spec = try PipelineSpec.load(dir + "/p.yaml")
  _ = try await Preparer.run(spec: spec, options: PrepareOptions(outputDirectory: dir + "/shards", workers: 2))
  return dir + "/shards"
}

func section(steps: Int, depth: Int = 2, width: Int = 4) -> TrainSection {
  var t = TrainSection()
  t.depth = depth
  t.width = width
  t.optimizer = .adam
  t.learningRate = 0.003
  t.steps = steps
  t.batch = 2
  t.evalEvery = 10
  t.checkpointEvery = 10
  t.logEvery = 5
  t.validationFraction = 0.25
  return t
}

func trainLosses(_ metrics: String) throws -> [String] {
  try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n").filter { $0.contains("\"kind\": \"train\"") }
    .map { line in String(line.replacingOccurrences(of: #""seconds": [0-9.e-]+"#, with: "", options: .regularExpression)) }
}

@Suite(.serialized) struct TrainingRunTests {
  @Test func trainsValidatesCheckpointsAndPlots() async throws {
    let dir = TestPaths.temporaryDirectory("train")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let shards = try await trainingShards(dir)
    var lines: [String] = []
    let run = try TrainingRun(
      options: TrainRunOptions(shards: shards, runDirectory: dir + "/run", section: section(steps: 30), threads: 1, seed: 3,
                               resume: false, skipCorrupt: false)) { lines.append($0) }
    #expect(run.data.validationSources.count == 1, "one of four sources held out")
    #expect(run.data.trainingCount + run.data.validationMembers.count == 24)
    let summary = try run.run()
    #expect(summary.steps == 30)
    let v = try #require(summary.validation)
    #expect(v.step == 30 && v.samples == 6 && v.dice.count == 2)
    for name in ["last.ckpt", "step-000010.ckpt", "step-000030.ckpt", "metrics.jsonl", "training.png"] {
      #expect(FileManager.default.fileExists(atPath: dir + "/run/" + name), "\(name)")
    }
    let validations = try String(contentsOfFile: summary.metrics, encoding: .utf8).split(separator: "\n").filter { $0.contains("validation") }
    #expect(validations.count == 3)
    // No tile of a validation source was trained on: the split is by source.
    let held = run.data.validationSources
    for (shard, member) in run.data.validationMembers {
      #expect(held.contains(run.data.set.manifest.shards[shard].members[member].source))
    }
  }

  /// Stop after 20 steps, resume to 40: the same losses as 40 steps in one go.
  @Test func resumeContinuesTheSameLossCurve() async throws {
    let dir = TestPaths.temporaryDirectory("resume")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let shards = try await trainingShards(dir)
    var full = section(steps: 40)
    full.schedule = .constant
    _ = try TrainingRun(options: TrainRunOptions(shards: shards, runDirectory: dir + "/a", section: full, threads: 1, seed: 9, resume: false, skipCorrupt: false)) { _ in }.run()
    var first = full
    first.steps = 20
    _ = try TrainingRun(options: TrainRunOptions(shards: shards, runDirectory: dir + "/b", section: first, threads: 1, seed: 9, resume: false, skipCorrupt: false)) { _ in }.run()
    var lines: [String] = []
    _ = try TrainingRun(options: TrainRunOptions(shards: shards, runDirectory: dir + "/b", section: full, threads: 1, seed: 9, resume: true, skipCorrupt: false)) { lines.append($0) }.run()
    #expect(lines.first?.hasPrefix("resumed from") == true)
    let la = try trainLosses(dir + "/a/metrics.jsonl")
    let lb = try trainLosses(dir + "/b/metrics.jsonl")
    #expect(la == lb, "\(la.joined(separator: "\n"))\n--\n\(lb.joined(separator: "\n"))")
    let a = try Checkpoint.read(from: dir + "/a/last.ckpt")
    let b = try Checkpoint.read(from: dir + "/b/last.ckpt")
    #expect(a.model.parameters == b.model.parameters)
  }

  @Test func shardsAndNetworkThatDisagreeAreAnEarlyClearError() async throws {
    let dir = TestPaths.temporaryDirectory("mismatch")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let shards = try await trainingShards(dir)
    var t = section(steps: 5, depth: 3)
    #expect {
      _ = try TrainingRun(options: TrainRunOptions(shards: shards, runDirectory: dir + "/r", section: t, threads: 1, seed: 1, resume: false, skipCorrupt: false)) { _ in }
    } throws: { e in
      guard let e = e as? WorkflowError else { return false }
      return e.code == .incompatible && e.description.contains("76 × 76 tiles with 36 × 36 labels, but a depth-3 valid U-Net maps 76 to nothing")
    }
    t.depth = 2
    t.validationSources = ["nope"]
    #expect {
      _ = try TrainingRun(options: TrainRunOptions(shards: shards, runDirectory: dir + "/r", section: t, threads: 1, seed: 1, resume: false, skipCorrupt: false)) { _ in }
    } throws: { e in (e as? WorkflowError)?.description.contains("validation source \"nope\" is not among") == true }
    // A checkpoint from another architecture is refused on resume.
    t.validationSources = nil
    _ = try TrainingRun(options: TrainRunOptions(shards: shards, runDirectory: dir + "/r", section: t, threads: 1, seed: 1, resume: false, skipCorrupt: false)) { _ in }.run()
    t.width = 6
    #expect {
      _ = try TrainingRun(options: TrainRunOptions(shards: shards, runDirectory: dir + "/r", section: t, threads: 1, seed: 1, resume: true, skipCorrupt: false)) { _ in }
    } throws: { e in (e as? CheckpointError)?.code == .wrongArchitecture }
  }
}

@Suite(.serialized) struct PredictionTests {
  /// Overlap-tiling with small tiles equals one pass over the whole image (a valid network
  /// sees the same context for every pixel), for sizes that are not multiples of the tile.
  @Test func tiledPredictionEqualsWholeImagePrediction() async throws {
    let dir = TestPaths.temporaryDirectory("predict")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let shards = try await trainingShards(dir)
    _ = try TrainingRun(options: TrainRunOptions(shards: shards, runDirectory: dir + "/run", section: section(steps: 10), threads: 1, seed: 2, resume: false, skipCorrupt: false)) { _ in }.run()
    let image = try Predictor(checkpointPath: dir + "/run/last.ckpt").load(TestPaths.fixtures + "/cells/images/cells_1.png")
    // 96 × 96 is not a multiple of 36 (three tiles per axis, the last shifted back).
    let small = try Predictor(checkpointPath: dir + "/run/last.ckpt", tile: 36)
    let large = try Predictor(checkpointPath: dir + "/run/last.ckpt", tile: 100)
    #expect(small.tileOutput == 36 && large.tileOutput >= 96)
    let a = small.probabilities(image).floatSamples()
    let b = large.probabilities(image).floatSamples()
    #expect(maxAbsDifference(a, b).value < 1e-4, "worst \(maxAbsDifference(a, b).value)")
    // Probabilities sum to one per pixel.
    let n = image.planeSize
    for i in stride(from: 0, to: n, by: 97) { #expect(abs(a[i] + a[n + i] - 1) < 1e-5) }
  }

  @Test func evaluationOfKnownCases() throws {
    let dir = TestPaths.temporaryDirectory("eval")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // Truth: two cells (left and right squares); prediction: the left one only.
    var truth = [UInt8](repeating: 0, count: 100)
    var pred = truth
    for y in 2..<6 {
      for x in 1..<4 { truth[y * 10 + x] = 255; pred[y * 10 + x] = 255 }
      for x in 6..<9 { truth[y * 10 + x] = 255 }
    }
    try FileIO.writeAtomically(try PNGCodec.encode(Image(width: 10, height: 10, pixels: truth)), to: dir + "/t.png")
    try FileIO.writeAtomically(try PNGCodec.encode(Image(width: 10, height: 10, pixels: pred)), to: dir + "/p.png")
    let same = try Evaluator.evaluate(name: "x", prediction: dir + "/t.png", label: dir + "/t.png")
    #expect(same.foregroundDice == 1 && same.pixelError == 0 && same.randError == 0)
    let half = try Evaluator.evaluate(name: "x", prediction: dir + "/p.png", label: dir + "/t.png")
    // 12 of 24 cell pixels found: Dice = 2·12 / (12 + 24), pixel error 12/100.
    #expect(abs((half.foregroundDice ?? 0) - 24.0 / 36) < 1e-12)
    #expect(abs(half.pixelError - 0.12) < 1e-12)
    #expect(half.randError > 0)
  }
}

@Suite struct DurationTests {
  @Test func durationsParseAsWritten() {
    #expect(parseDuration("900") == 900)
    #expect(parseDuration("900s") == 900)
    #expect(parseDuration("15m") == 900)
    #expect(parseDuration("1.5h") == 5400)
    #expect(parseDuration("1h30m") == 5400)
    #expect(parseDuration("1m30") == 90)
    #expect(parseDuration("2d") == 172_800)
    #expect(parseDuration(" 0.001s ") == 0.001)
    for bad in ["", "m", "15 minutes", "-5", "1s1m", "1m1m", "1..5s", "5x", "1s5"] {
      #expect(parseDuration(bad) == nil, "\(bad)")
    }
  }
}
