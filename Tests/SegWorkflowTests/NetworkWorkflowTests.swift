import Foundation
import SegCore
import SegIO
import SegModel
import SegPipeline
import SegTestSupport
import SegTrain
import SegWorkflow
import Testing

/// Every architecture through the workflow: training from shards, checkpoints, prediction
/// (U-Net++ heads, UNet 3+'s gate), and format-1 checkpoints frozen in Tests/ that must keep
/// predicting exactly what they predicted when they were written.
@Suite(.serialized) struct NetworkWorkflowTests {
  static let frozen = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Frozen").path

  /// Three format-1 checkpoints (written by the hand-written U-Net before networks became
  /// graphs: same padding + batch norm + dropout, same padding + bilinear up-sampling, valid
  /// padding), with `unet predict --threads 1` of fixtures/cells/images/cells_0.png from that
  /// build (on an AVX-512 Xeon): the graph-built network loads them and predicts the same
  /// probabilities. Bit for bit only on the machine and convolution path that wrote them:
  /// OpenBLAS picks its sgemm kernels by CPU, and the direct 3×3 kernels sum in another order,
  /// so the bound is 1e-5 (float32 rounding of sums of ~10³ terms through 23 layers; a wrong
  /// weight or layer moves probabilities by 10⁻² and more).
  @Test(arguments: ["bn", "bil", "valid"])
  func formatOneCheckpointsPredictAsBefore(_ name: String) throws {
    let ckpt = Self.frozen + "/unet-v1-\(name).ckpt"
    let bytes = try FileIO.read(ckpt)
    #expect(bytes[8] == 1, "the frozen file is format 1")
    let predictor = try Predictor(checkpointPath: ckpt)
    guard case .unet = predictor.model.configuration else {
      Issue.record("a format-1 checkpoint must load as a U-Net")
      return
    }
    let image = try predictor.load(TestPaths.fixtures + "/cells/images/cells_0.png")
    let expected = try ImageDecoder.read(Self.frozen + "/unet-v1-\(name).cells_0.prob.tif")
    let planes = expected.pages.flatMap { $0.floatSamples() }
    for kernels in [ConvKernels.gemm, .best] {
      let ours = ConvKernels.with(kernels) { ComputeThreads.withCount(1) { predictor.probabilities(image) } }.floatSamples()
      let worst = zip(ours, planes).map { abs($0 - $1) }.max() ?? .infinity
      #expect(ours.count == planes.count && worst <= 1e-5, "\(kernels): worst difference \(worst)")
    }
    // And the file round-trips as format 2 with the same network and weights.
    let dir = TestPaths.temporaryDirectory("frozen-\(name)")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try predictor.checkpoint.write(to: dir + "/v2.ckpt")
    let again = try Checkpoint.read(from: dir + "/v2.ckpt")
    #expect(try FileIO.read(dir + "/v2.ckpt")[8] == 2)
    #expect(again.model.configuration == predictor.model.configuration && again.model.parameters == predictor.model.parameters)
  }

  /// U-Net++ and UNet 3+ train from the same shards as the U-Net, write checkpoints that name
  /// their architecture, and predict whole images (U-Net++ with the mean of its heads and
  /// pruned; UNet 3+ with its sigmoid head as two classes).
  @Test(arguments: [Architecture.unetpp, .unet3p])
  func trainAndPredict(_ architecture: Architecture) async throws {
    let dir = TestPaths.temporaryDirectory("arch-\(architecture.rawValue)")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let shards = try await trainingShards(dir, padding: "same")
    var t = section(steps: 6)
    t.architecture = architecture
    t.loss = architecture == .unet3p ? [.focal, .msSSIM, .iou] : [.crossEntropy, .dice]
    t.validationFraction = 0.25
    var lines: [String] = []
    let summary = try TrainingRun(options: TrainRunOptions(shards: shards, runDirectory: dir + "/run", section: t, threads: 2, seed: 3, resume: false, skipCorrupt: false)) { lines.append($0) }.run()
    #expect(summary.steps == 6 && summary.lastLoss.isFinite)
    #expect(lines.first { $0.hasPrefix("training a \(architecture.displayName)") } != nil, "\(lines.first ?? "")")
    let checkpoint = try Checkpoint.read(from: dir + "/run/last.ckpt")
    #expect(checkpoint.model.configuration.architecture == architecture)
    if case .unet3p(let c) = checkpoint.model.configuration { #expect(c.classes == 1 && c.cgm && c.deepSupervision) }
    let predictor = try Predictor(checkpointPath: dir + "/run/last.ckpt", tile: 64)
    let written = try predictor.run(images: [TestPaths.fixtures + "/cells/images/cells_2.png"], outputDirectory: dir + "/pred") { _ in }
    #expect(written.count == 1)
    let prob = try ImageDecoder.read(dir + "/pred/cells_2.prob.tif")
    #expect(prob.pages.count == 2 || prob.pages.first?.channels == 2, "two class planes")
    let e = try Evaluator.evaluate(name: "c", prediction: dir + "/pred/cells_2.png", label: TestPaths.fixtures + "/cells/labels/cells_2.png")
    #expect(e.pixelError >= 0 && e.pixelError <= 1)
    if architecture == .unetpp {
      let pruned = try Predictor(checkpointPath: dir + "/run/last.ckpt", tile: 64, settings: InferenceSettings(heads: .prune, pruneDepth: 1))
      let image = try pruned.load(TestPaths.fixtures + "/cells/images/cells_2.png")
      #expect(pruned.probabilities(image).floatSamples() != predictor.probabilities(image).floatSamples())
      #expect(throws: WorkflowError.self) {
        _ = try Predictor(checkpointPath: dir + "/run/last.ckpt", settings: InferenceSettings(heads: .prune, pruneDepth: 7))
      }
    }
  }

  /// Settings that cannot work are one clear error before any training.
  @Test func badNetworkSettingsAreClearErrors() async throws {
    let dir = TestPaths.temporaryDirectory("arch-bad")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let valid = try await trainingShards(dir)
    var t = section(steps: 2)
    t.architecture = .unetpp
    #expect {
      _ = try TrainingRun(options: TrainRunOptions(shards: valid, runDirectory: dir + "/r", section: t, threads: 1, seed: 1, resume: false, skipCorrupt: false)) { _ in }
    } throws: { e in
      // Valid-padding tiles (76 → 36) cannot feed a same-padding U-Net++.
      (e as? WorkflowError)?.description.contains("U-Net++ maps 76 to") == true
    }
    t.padding = .valid
    #expect {
      _ = try TrainingRun(options: TrainRunOptions(shards: valid, runDirectory: dir + "/r", section: t, threads: 1, seed: 1, resume: false, skipCorrupt: false)) { _ in }
    } throws: { e in (e as? WorkflowError)?.description.contains("same padding only") == true }
    try FileIO.makeDirectories(dir + "/s")
    let same = try await trainingShards(dir + "/s", padding: "same")
    t.padding = nil
    t.headWeights = .weights([1, 1, 1])
    #expect {
      _ = try TrainingRun(options: TrainRunOptions(shards: same, runDirectory: dir + "/r2", section: t, threads: 1, seed: 1, resume: false, skipCorrupt: false)) { _ in }
    } throws: { e in (e as? WorkflowError)?.description.contains("lists 3 weights, but this U-Net++ has 2 heads") == true }
  }

  /// With a time limit, the cosine schedule is planned over the time: a run cut by its limit
  /// ends with the rate near the floor (not a third of the way down as a step plan would), and
  /// the checkpoint keeps the clock for a resume.
  @Test func timeLimitedRunsEndAnnealed() async throws {
    let dir = TestPaths.temporaryDirectory("anneal")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let shards = try await trainingShards(dir, padding: "same")
    var t = section(steps: 1_000_000)
    t.schedule = .cosine
    t.learningRate = 0.01
    t.floor = 0.0001
    t.logEvery = 1
    t.evalEvery = nil
    t.checkpointEvery = 1_000_000
    let summary = try TrainingRun(options: TrainRunOptions(shards: shards, runDirectory: dir + "/run", section: t, threads: 1, seed: 3, resume: false, skipCorrupt: false, timeLimit: 3)) { _ in }.run()
    #expect(summary.stoppedEarly != nil && summary.steps > 5)
    let lines = try String(contentsOfFile: dir + "/run/metrics.jsonl", encoding: .utf8).split(separator: "\n")
    let rates = lines.compactMap { line -> Double? in
      guard let v = try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)), case .string("train")? = v["kind"] else { return nil }
      return v["lr"]?.number
    }
    guard let first = rates.first, let last = rates.last else {
      Issue.record("no training records")
      return
    }
    #expect(first > 0.009 && last < 0.0001 + 0.1 * (0.01 - 0.0001), "rates from \(first) to \(last) over \(summary.steps) steps")
    let checkpoint = try Checkpoint.read(from: dir + "/run/last.ckpt")
    #expect(checkpoint.scheduler.schedule.budgetSeconds == 3 && checkpoint.scheduler.elapsedSeconds > 2.5)
  }

  /// The 8 symmetries of the square are distinct and undo exactly; averaging an equivariant map
  /// (the identity) gives the input back; flips are the first 4 of d4.
  @Test func testTimeAugmentationSymmetries() {
    let x = Tensor(shape: TensorShape(n: 2, c: 3, h: 6, w: 6), data: (0..<216).map { Float($0) })
    let all = TestTimeAugmentation.d4.symmetries
    #expect(all.count == 8 && TestTimeAugmentation.flips.symmetries == Array(all.prefix(4)) && TestTimeAugmentation.none.symmetries.count == 1)
    var images: Set<[Float]> = []
    for s in all {
      let y = TestTimeAugmentation.apply(s, to: x)
      images.insert(y.data)
      #expect(TestTimeAugmentation.apply(s, to: y, inverse: true) == x, "\(s)")
    }
    #expect(images.count == 8)
    // Transpose: (y, x) reads (x, y).
    let t = TestTimeAugmentation.apply(.init(transpose: true, flipRows: false, flipColumns: false), to: x)
    #expect(t[1, 2, 4, 1] == x[1, 2, 1, 4])
    #expect(TestTimeAugmentation.d4.average(x) { $0 } == x)
  }

  /// `predict --tta d4` on a trained network: probabilities still sum to 1, and differ from the
  /// plain prediction (the network is not exactly symmetric).
  @Test func predictionWithTestTimeAugmentation() async throws {
    let dir = TestPaths.temporaryDirectory("tta")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let shards = try await trainingShards(dir, padding: "same")
    _ = try TrainingRun(options: TrainRunOptions(shards: shards, runDirectory: dir + "/run", section: section(steps: 8), threads: 1, seed: 4, resume: false, skipCorrupt: false)) { _ in }.run()
    var predictor = try Predictor(checkpointPath: dir + "/run/last.ckpt", tile: 64)
    let image = try predictor.load(TestPaths.fixtures + "/cells/images/cells_3.png")
    let plain = predictor.probabilities(image).floatSamples()
    predictor.tta = .d4
    let averaged = predictor.probabilities(image).floatSamples()
    let n = image.planeSize
    #expect((0..<n).allSatisfy { abs(averaged[$0] + averaged[n + $0] - 1) < 1e-5 })
    #expect(plain != averaged)
  }

  /// The threshold search: on maps whose foreground probability is 0.3 + noise inside the cells
  /// and 0.1 outside, the pixel error is 0 between 0.2 and 0.3, far from 0.5 (where everything is
  /// background); ties go to the threshold nearest 0.5; the Rand error agrees.
  @Test func calibrationFindsTheBestThreshold() {
    var truth = [Bool](repeating: false, count: 32 * 32)
    for y in 4..<14 { for x in 4..<14 { truth[y * 32 + x] = true } }
    for y in 18..<28 { for x in 10..<30 { truth[y * 32 + x] = true } }
    let p = truth.enumerated().map { i, fg in fg ? 0.3 + 0.05 * Float(i % 3) / 3 : 0.1 + 0.05 * Float(i % 5) / 5 }
    let pixel = Calibration.choose([(p, truth, 32, 32)], metric: .pixelError)
    #expect(pixel.error == 0 && pixel.errorAtHalf > 0.2)
    #expect(pixel.threshold > 0.15 && pixel.threshold <= 0.3, "\(pixel.threshold)")
    #expect(pixel.threshold == 0.3)  // of the perfect ones, the nearest to 0.5
    let rand = Calibration.choose([(p, truth, 32, 32)], metric: .randError)
    #expect(rand.error < 1e-12 && rand.threshold > 0.15 && rand.threshold <= 0.3)
  }

  /// A run with validation sources ends calibrated: the threshold is in the metrics log and the
  /// checkpoint, and predict uses it unless told otherwise; keep_best writes best.ckpt.
  @Test func trainingEndsCalibrated() async throws {
    let dir = TestPaths.temporaryDirectory("calibrate")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let shards = try await trainingShards(dir, padding: "same")
    var t = section(steps: 10)
    t.calibration = .randError
    t.keepBest = true
    var lines: [String] = []
    _ = try TrainingRun(options: TrainRunOptions(shards: shards, runDirectory: dir + "/run", section: t, threads: 1, seed: 6, resume: false, skipCorrupt: false)) { lines.append($0) }.run()
    #expect(lines.contains { $0.hasPrefix("calibrated on 1 validation images: threshold") }, "\(lines.suffix(3))")
    let metrics = try String(contentsOfFile: dir + "/run/metrics.jsonl", encoding: .utf8)
    #expect(metrics.contains("\"kind\": \"calibration\"") && metrics.contains("rand_error"))
    let checkpoint = try Checkpoint.read(from: dir + "/run/last.ckpt")
    guard let threshold = checkpoint.inference.threshold else {
      Issue.record("no threshold in the checkpoint")
      return
    }
    #expect(checkpoint.metadata["calibration"]?.contains("rand_error") == true)
    #expect(FileManager.default.fileExists(atPath: dir + "/run/best.ckpt"))
    let predictor = try Predictor(checkpointPath: dir + "/run/last.ckpt", tile: 64)
    #expect(predictor.settings.threshold == threshold)
    let p = predictor.probabilities(try predictor.load(TestPaths.fixtures + "/cells/images/cells_1.png"))
    let n = p.planeSize
    let probabilities = p.floatSamples()
    #expect(predictor.labels(p) == (0..<n).map { probabilities[n + $0] >= threshold ? Int32(1) : 0 })
    let argmax = try Predictor(checkpointPath: dir + "/run/last.ckpt", tile: 64, threshold: 0.5)
    #expect(argmax.labels(p) == Predictor.labels(p) || probabilities.contains(0.5))
    // A threshold on a three-class network is refused.
    #expect(InferenceSettings(threshold: 0.4).problem(for: .unet(UNetConfiguration(depth: 2, baseWidth: 4, classes: 3))) != nil)
  }
}
