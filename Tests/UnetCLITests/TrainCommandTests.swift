import Foundation
import SegCore
import SegTestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// A pipeline whose training takes long enough to be killed in the middle.
func trainPipeline(_ dir: String, steps: Int) throws -> String {
  let cells = TestPaths.fixtures + "/cells"
  let text = """
    version: 1
    seed: 31
    sources: {images: \(cells)/images/*.png, masks: \(cells)/labels/*.png}
    samples_per_image: 2
    mask: {kind: instances}
    stages:
      - normalize: {method: scale, factor: 0.00392156862745098}
      - affine: {rotate: [-20, 20]}
      - weight_map: {}
    tiles: {network: {depth: 2, padding: same}, input: 48, mode: random, count: 2}
    shards: {samples_per_shard: 4}
    train:
      network: {depth: 2, width: 8}
      optimizer: {kind: sgd, momentum: 0.9}
      schedule: {kind: constant, lr: 0.01}
      steps: \(steps)
      batch: 2
      eval_every: 10
      checkpoint_every: 5
      log_every: 5
    """
  let path = dir + "/train.yaml"
  try text.write(toFile: path, atomically: true, encoding: .utf8)
  return path
}

func trainLines(_ path: String) throws -> [String] {
  try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").filter { $0.contains("\"train\"") }
    .map { String($0.replacingOccurrences(of: #""seconds": [0-9.e-]+"#, with: "", options: .regularExpression)) }
}

@Suite(.serialized) struct TrainCommandTests {
  /// SIGKILL `unet train` in the middle; `--resume` finishes with the loss curve of an
  /// uninterrupted run.
  @Test func killedTrainingResumesOnTheSameLossCurve() throws {
    let dir = TestPaths.temporaryDirectory("train-kill")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let pipeline = try trainPipeline(dir, steps: 120)
    let clean = try runUnet(["train", pipeline, "--out", dir + "/clean", "--threads", "1"], currentDirectory: dir)
    #expect(clean.status == 0, "\(clean.stderr)")
    #expect(clean.stdout.contains("checkpoint: \(dir)/clean/last.ckpt"))
    // The interrupted run: kill once a few checkpoints exist.
    let process = Process()
    process.executableURL = URL(fileURLWithPath: TestPaths.unetBinary)
    process.arguments = ["train", pipeline, "--out", dir + "/killed", "--threads", "1"]
    process.currentDirectoryURL = URL(fileURLWithPath: dir)
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    var waited = 0
    while process.isRunning && !FileManager.default.fileExists(atPath: dir + "/killed/step-000020.ckpt") && waited < 30_000 {
      usleep(2_000)
      waited += 2
    }
    let wasRunning = process.isRunning
    if wasRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    let resumed = try runUnet(["train", pipeline, "--out", dir + "/killed", "--threads", "1", "--resume"], currentDirectory: dir)
    #expect(resumed.status == 0, "\(resumed.stderr)")
    if wasRunning { #expect(resumed.stdout.contains("resumed from")) }
    #expect(try trainLines(dir + "/clean/metrics.jsonl") == trainLines(dir + "/killed/metrics.jsonl"))
    #expect(FileManager.default.contents(atPath: dir + "/clean/training.png") != nil)
  }

  /// SIGTERM (what Slurm sends at a time limit) stops at the end of the step with the
  /// checkpoints written and exit status 143; `--time-limit` stops the same way with status 0;
  /// `--resume` goes on from either.
  @Test func signalsAndTimeLimitStopCleanlyWithACheckpoint() throws {
    let dir = TestPaths.temporaryDirectory("train-stop")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let pipeline = try trainPipeline(dir, steps: 100_000)
    let out = Pipe()
    let process = Process()
    process.executableURL = URL(fileURLWithPath: TestPaths.unetBinary)
    process.arguments = ["train", pipeline, "--out", dir + "/run", "--threads", "1"]
    process.currentDirectoryURL = URL(fileURLWithPath: dir)
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    var waited = 0
    while process.isRunning && !FileManager.default.fileExists(atPath: dir + "/run/step-000010.ckpt") && waited < 60_000 {
      usleep(2_000)
      waited += 2
    }
    kill(process.processIdentifier, SIGTERM)
    // A run that ignored the signal would go on for 100 000 steps: give it 60 s, then kill it.
    waited = 0
    while process.isRunning && waited < 60_000 {
      usleep(5_000)
      waited += 5
    }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    #expect(process.terminationReason == .exit && process.terminationStatus == 128 + SIGTERM, "\(text)")
    #expect(text.contains("terminated (SIGTERM); --resume continues from here"), "\(text)")
    #expect(text.contains("checkpoint: \(dir)/run/last.ckpt"))
    let stopLine = text.split(separator: "\n").first { $0.hasPrefix("stopping at step ") } ?? ""
    let stopped = Int(stopLine.dropFirst("stopping at step ".count).prefix { $0.isNumber }) ?? 0
    #expect(stopped >= 10, "\(text)")

    // A tiny time limit: one more step, then a clean stop with status 0.
    let limited = try runUnet(
      ["train", pipeline, "--out", dir + "/run", "--threads", "1", "--resume", "--time-limit", "0.001s"], currentDirectory: dir)
    #expect(limited.status == 0, "\(limited.stderr)")
    #expect(limited.stdout.contains("resumed from \(dir)/run/last.ckpt at step \(stopped)"), "\(limited.stdout)")
    #expect(limited.stdout.contains("stopping at step \(stopped + 1)/100000: time limit of 0:00 reached"), "\(limited.stdout)")
    let bad = try runUnet(["train", pipeline, "--time-limit", "15 minutes"], currentDirectory: dir)
    #expect(bad.status != 0 && bad.stderr.contains("--time-limit: \"15 minutes\" is not a positive duration"), "\(bad.stderr)")
  }

  @Test func predictAndEvalEndToEnd() throws {
    let dir = TestPaths.temporaryDirectory("predict-cli")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let pipeline = try trainPipeline(dir, steps: 20)
    #expect(try runUnet(["train", pipeline, "--out", dir + "/run", "--threads", "2"], currentDirectory: dir).status == 0)
    let predict = try runUnet(["predict", dir + "/run/last.ckpt", TestPaths.fixtures + "/cells/images", "--out", dir + "/pred"])
    #expect(predict.status == 0, "\(predict.stderr)")
    for k in 0..<4 {
      #expect(FileManager.default.fileExists(atPath: dir + "/pred/cells_\(k).png"))
      #expect(FileManager.default.fileExists(atPath: dir + "/pred/cells_\(k).prob.tif"))
    }
    let eval = try runUnet(["eval", dir + "/pred", TestPaths.fixtures + "/cells/labels", "--json"])
    #expect(eval.status == 0, "\(eval.stderr)")
    #expect(eval.stdoutLines.count == 5)
    let mean = try JSONSerialization.jsonObject(with: Data(eval.stdoutLines[4].utf8)) as? [String: Any]
    #expect(mean?["name"] as? String == "mean" && mean?["images"] as? Int == 4)
    #expect((mean?["dice"] as? Double ?? 0) > 0.5, "a trained network beats chance: \(eval.stdout)")
  }

  @Test func badCheckpointsAndInputsGiveOneLineErrors() throws {
    let dir = TestPaths.temporaryDirectory("bad-ckpt")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileIO.writeAtomically(Array("not a checkpoint".utf8), to: dir + "/x.ckpt")
    let r = try runUnet(["predict", dir + "/x.ckpt", TestPaths.fixtures + "/cells/images/cells_0.png", "--out", dir + "/o"])
    #expect(r.status != 0)
    #expect(r.stderrLines.count == 1 && r.stderr.hasPrefix("unet: \(dir)/x.ckpt: "), "\(r.stderr)")
    let pipeline = try trainPipeline(dir, steps: 5)
    #expect(try runUnet(["train", pipeline, "--out", dir + "/run", "--threads", "1"], currentDirectory: dir).status == 0)
    let rgb = try runUnet(["predict", dir + "/run/last.ckpt", TestPaths.fixtures + "/png/rgb8.png", "--out", dir + "/o"])
    #expect(rgb.stderrLines == ["unet: \(TestPaths.fixtures)/png/rgb8.png: has 3 channels; the network was trained on 1"])
    let missing = try runUnet(["eval", dir + "/o", TestPaths.fixtures + "/png"])
    #expect(missing.status != 0 && missing.stderrLines.count == 1)
    let noShards = try runUnet(["train", "--shards", dir + "/none", "--out", dir + "/r2"])
    #expect(noShards.stderrLines == ["unet: \(dir)/none/manifest.json: no manifest here (hint: make the shards with `unet prepare`)"])
  }

  /// `--network unetpp|unet3p` trains from the same pipeline; predict (with `--prune` for
  /// U-Net++) and eval work for each; bad choices are one-line errors.
  @Test func everyNetworkTrainsPredictsAndEvaluates() throws {
    let dir = TestPaths.temporaryDirectory("networks-cli")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let pipeline = try trainPipeline(dir, steps: 6)
    for (network, extra) in [("unetpp", ["--loss", "cross_entropy+dice"]), ("unet3p", ["--loss", "hybrid", "--no-deep-supervision"])] {
      let run = dir + "/run-" + network
      let train = try runUnet(["train", pipeline, "--out", run, "--threads", "2", "--network", network] + extra, currentDirectory: dir)
      #expect(train.status == 0, "\(network): \(train.stderr)")
      #expect(train.stdout.contains(network == "unetpp" ? "training a U-Net++" : "training a UNet 3+"), "\(train.stdout)")
      var predictArgs = ["predict", run + "/last.ckpt", TestPaths.fixtures + "/cells/images", "--out", dir + "/pred-" + network]
      if network == "unetpp" { predictArgs += ["--prune", "1"] }
      let predict = try runUnet(predictArgs)
      #expect(predict.status == 0, "\(network): \(predict.stderr)")
      let eval = try runUnet(["eval", dir + "/pred-" + network, TestPaths.fixtures + "/cells/labels", "--json"])
      #expect(eval.status == 0 && eval.stdoutLines.count == 5, "\(network): \(eval.stderr)")
    }
    let badPrune = try runUnet(["predict", dir + "/run-unet3p/last.ckpt", TestPaths.fixtures + "/cells/images", "--out", dir + "/x", "--prune", "2"])
    #expect(badPrune.status != 0 && badPrune.stderrLines.count == 1 && badPrune.stderr.contains("pruning applies to U-Net++ only"), "\(badPrune.stderr)")
    let badLoss = try runUnet(["train", pipeline, "--out", dir + "/r", "--loss", "lovasz"], currentDirectory: dir)
    #expect(badLoss.status != 0 && badLoss.stderr.contains("\"lovasz\" is not a loss"), "\(badLoss.stderr)")
    let badNet = try runUnet(["train", pipeline, "--out", dir + "/r", "--network", "resnet"], currentDirectory: dir)
    #expect(badNet.status != 0 && badNet.stderr.contains("resnet"), "\(badNet.stderr)")
    let badPadding = try runUnet(["train", pipeline, "--out", dir + "/r", "--network", "unetpp", "--padding", "valid"], currentDirectory: dir)
    #expect(badPadding.status != 0 && badPadding.stderrLines.count == 1 && badPadding.stderr.contains("same padding only"), "\(badPadding.stderr)")
  }
}
