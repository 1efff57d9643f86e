import Foundation
import SegCore
import SegModel
import SegTrain
import Testing

/// Checkpoints: save → load gives bit-identical predictions, resuming continues the same loss
/// curve, and damaged files throw the right error code naming the file.
struct CheckpointTests {
  static let config = UNetConfiguration(depth: 2, baseWidth: 4, padding: .valid, upMode: .transposed, batchNorm: true, dropout: 0.2, classes: 2)
  static let size = 44

  static func temporaryPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("segtrain-tests-\(getpid())").path
    try? FileIO.makeDirectories(dir)
    return dir + "/" + name
  }

  static func trainer(steps: Int) -> (Trainer, Tensor, [Int32]) {
    let out = config.outputSize(forInput: size) ?? 0
    let x = randomTensor(TensorShape(n: 1, c: 1, h: size, w: size), seed: 101)
    var rng = RandomStream(seed: 102)
    let t = (0..<(out * out)).map { _ in Int32(rng.nextInt(below: 2)) }
    let tr = Trainer(model: Network(configuration: config, seed: 5), configuration: TrainingConfiguration(optimizer: .adam(weightDecay: 1e-4), schedule: .cosine(1e-2, totalSteps: 10), loss: LossConfiguration(kind: .crossEntropyDice), maxGradientNorm: 5, seed: 7))
    for _ in 0..<steps { tr.step(input: x, targets: t) }
    return (tr, x, t)
  }

  @Test func saveLoadGivesIdenticalPredictions() throws {
    try ComputeThreads.withCount(1) {
      let (tr, x, _) = Self.trainer(steps: 3)
      tr.epoch = 2
      let path = Self.temporaryPath("roundtrip.ckpt")
      try Checkpoint(tr, metadata: ["shard": "7"]).write(to: path)
      let loaded = try Checkpoint.read(from: path, expecting: .unet(Self.config))
      #expect(loaded.step == 3 && loaded.epoch == 2 && loaded.metadata == ["shard": "7"])
      #expect(loaded.model.parameters == tr.model.parameters)
      #expect(loaded.model.state == tr.model.state)
      #expect(loaded.optimizerState == tr.optimizer.state)
      #expect(loaded.training == tr.configuration)
      let a = tr.predict(x)
      let b = Trainer(checkpoint: loaded).predict(x)
      #expect(a.data == b.data, "predictions differ after save → load")
      #expect(loaded.model.predict(x).data == a.data)
    }
  }

  /// Stop after 3 steps, save, load, 3 more steps: the same losses and parameters as 6 steps
  /// in one go (same thread count).
  @Test func resumeContinuesTheSameCurve() throws {
    try ComputeThreads.withCount(1) {
      let (straight, x, t) = Self.trainer(steps: 0)
      var losses: [Double] = []
      for _ in 0..<6 { losses.append(straight.step(input: x, targets: t).loss.total) }
      let (first, _, _) = Self.trainer(steps: 3)
      let bytes = try Checkpoint(first).encoded()
      let resumed = Trainer(checkpoint: try Checkpoint.decode(bytes))
      #expect(resumed.stepCount == 3)
      var tail: [Double] = []
      for _ in 0..<3 { tail.append(resumed.step(input: x, targets: t).loss.total) }
      #expect(tail == Array(losses[3...]))
      #expect(resumed.model.parameters == straight.model.parameters)
      #expect(resumed.learningRate == straight.learningRate)
    }
  }

  @Test func damagedFilesThrowTheirCode() throws {
    let (tr, _, _) = ComputeThreads.withCount(1) { Self.trainer(steps: 1) }
    let good = try Checkpoint(tr).encoded()
    func code(_ bytes: [UInt8], expecting: UNetConfiguration? = nil) -> CheckpointError.Code? {
      do {
        _ = try Checkpoint.decode(bytes, path: "x.ckpt", expecting: expecting.map { .unet($0) })
        return nil
      } catch {
        return error.code
      }
    }
    #expect(code(good) == nil)
    #expect(code(Array(good.dropLast(100))) == .truncated)
    #expect(code(Array(good.prefix(40))) == .truncated)
    #expect(code(Array(good.prefix(10))) == .truncated)
    var flipped = good
    flipped[good.count / 2] ^= 0x10
    #expect(code(flipped) == .corruptChecksum)
    var header = good
    header[20] ^= 0x01  // inside the JSON header
    #expect(code(header) == .corruptChecksum)
    var version = good
    version[8] = 3
    #expect(code(version) == .unsupportedVersion)
    #expect(code(Array("PNG not a checkpoint".utf8)) == .notACheckpoint)
    var wider = Self.config
    wider.baseWidth = 8
    #expect(code(good, expecting: wider) == .wrongArchitecture)
    var deeper = Self.config
    deeper.depth = 3
    #expect(code(good, expecting: deeper) == .wrongArchitecture)
    #expect(code(good + [0]) == .corruptChecksum)
  }

  @Test func errorsNameTheFile() throws {
    let (tr, _, _) = ComputeThreads.withCount(1) { Self.trainer(steps: 0) }
    let path = Self.temporaryPath("short.ckpt")
    let bytes = try Checkpoint(tr).encoded()
    try FileIO.writeAtomically(Array(bytes.prefix(bytes.count - 5)), to: path)
    do {
      _ = try Checkpoint.read(from: path)
      Issue.record("a truncated checkpoint was read")
    } catch let e as CheckpointError {
      #expect(e.code == .truncated)
      #expect(e.description.hasPrefix(path + ": "), "\(e.description)")
      #expect(e.hint != nil)
    }
    var other = Self.config
    other.classes = 3
    try Checkpoint(tr).write(to: path)
    do {
      _ = try Checkpoint.read(from: path, expecting: .unet(other))
      Issue.record("a checkpoint of another network was read")
    } catch let e as CheckpointError {
      #expect(e.code == .wrongArchitecture)
      #expect(e.description.contains("2 classes") && e.description.contains("3 classes"), "\(e.description)")
    }
  }
}
