import Foundation
import SegCore
import SegTestSupport
import SegTrain
import Testing

/// Faults while `unet train` runs: the disk fills while a checkpoint is written; a shard is
/// truncated or replaced on disk while the trainer reads it. One error line naming the file,
/// the last checkpoint intact, and `--resume` ends with the state of an undisturbed run, bit
/// for bit. (Through the fault library Tests/Faults/faultshim.c.)
@Suite(.serialized, .enabled(if: Faults.haveShim, "the fault library needs a C compiler")) struct TrainFaultTests {
  /// 4 shards of 2 small tiles each, and the flags of a short, fully determined run.
  static func setUp(_ dir: String) throws -> (shards: String, flags: [String]) {
    let cells = TestPaths.fixtures + "/cells"
    let text = """
      version: 1
      seed: 9
      sources: {images: \(cells)/images/*.png, masks: \(cells)/labels/*.png}
      samples_per_image: 1
      mask: {kind: instances}
      stages:
        - normalize: {method: scale, factor: 0.00392156862745098}
        - weight_map: {}
      tiles: {network: {depth: 1, padding: same}, input: 16, mode: random, count: 2}
      shards: {samples_per_shard: 1}
      """
    try text.write(toFile: dir + "/p.yaml", atomically: true, encoding: .utf8)
    let shards = dir + "/shards"
    let r = try runUnet(["prepare", dir + "/p.yaml", "--out", shards, "--quiet"])
    #expect(r.status == 0, "\(r.stderr)")
    let flags = [
      "--shards", shards, "--depth", "1", "--width", "2", "--steps", "12", "--batch", "1", "--checkpoint-every", "4",
      "--validation-fraction", "0", "--threads", "1", "--optimizer", "adam",
    ]
    return (shards, flags)
  }

  /// The resumed run ends where the undisturbed one did: the same step and epoch, bit for bit
  /// the same parameters, batch-norm state and optimiser state (the files differ only in the
  /// wall-clock time they record).
  static func expectSameState(_ a: String, _ b: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let x = try Checkpoint.read(from: a)
    let y = try Checkpoint.read(from: b)
    #expect(x.step == y.step && x.epoch == y.epoch, sourceLocation: sourceLocation)
    #expect(x.model.parameters == y.model.parameters && x.model.state == y.model.state, sourceLocation: sourceLocation)
    #expect(x.optimizerState == y.optimizerState, sourceLocation: sourceLocation)
    #expect(x.metadata["epoch_samples"] == y.metadata["epoch_samples"], sourceLocation: sourceLocation)
  }

  static func train(_ flags: [String], out: String, resume: Bool = false, environment: [String: String]? = nil) throws -> CommandResult {
    try runUnet(["train"] + flags + ["--out", out] + (resume ? ["--resume"] : []), environment: environment)
  }

  @Test func diskFullWhileWritingACheckpointKeepsTheLastOneAndResumeMatches() throws {
    let dir = TestPaths.temporaryDirectory("ckpt-enospc")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let (_, flags) = try Self.setUp(dir)
    let reference = try Self.train(flags, out: dir + "/ref")
    #expect(reference.status == 0, "\(reference.stderr)")
    let size = try FileIO.read(dir + "/ref/last.ckpt").count
    // Room for the checkpoints of step 4 (last.ckpt and step-000004.ckpt), then full.
    let env = try #require(Faults.environment(["UNET_FAULT_ENOSPC": dir + "/run/.*.ckpt.tmp-*:\(2 * size + 100)"]))
    let failed = try Self.train(flags, out: dir + "/run", environment: env)
    #expect(failed.status != 0)
    #expect(failed.stderr.split(separator: "\n").last == "unet: \(dir)/run/last.ckpt: cannot write: No space left on device", "\(failed.stderr)")
    let kept = try Checkpoint.read(from: dir + "/run/last.ckpt")
    #expect(kept.step == 4, "the step-4 checkpoint is intact")
    #expect(try FileIO.listDirectory(dir + "/run").filter { $0.contains(".tmp-") }.isEmpty, "no temporary checkpoint left")
    let resumed = try Self.train(flags, out: dir + "/run", resume: true)
    #expect(resumed.status == 0, "\(resumed.stderr)")
    try Self.expectSameState(dir + "/run/last.ckpt", dir + "/ref/last.ckpt")
  }

  enum ShardFault: String, CaseIterable, Sendable { case truncated, replaced }

  @Test(arguments: ShardFault.allCases)
  func shardChangedWhileTrainingReadsItStopsCleanlyAndResumeMatches(_ fault: ShardFault) throws {
    let dir = TestPaths.temporaryDirectory("shard-fault")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let (shards, setUpFlags) = try Self.setUp(dir)
    // The run's own shards are read again in the second epoch only when it cycles them (with
    // fresh augmentation, the second epoch reads RUN/epochs/epoch-000001).
    let flags = setUpFlags + ["--no-fresh-augmentation"]
    let reference = try Self.train(flags, out: dir + "/ref")
    #expect(reference.status == 0, "\(reference.stderr)")
    let victim = shards + "/shard-000001.tar"
    let original = try FileIO.read(victim)
    // The second time the trainer opens the shard (its second epoch), another "process" has
    // cut it to 1000 bytes, or renamed another shard of the same size over it.
    let faults: [String: String]
    switch fault {
    case .truncated: faults = ["UNET_FAULT_TRUNCATE": "*/shard-000001.tar:2:1000"]
    case .replaced:
      try FileIO.writeAtomically(try FileIO.read(shards + "/shard-000002.tar"), to: dir + "/other.tar")
      faults = ["UNET_FAULT_REPLACE": "*/shard-000001.tar:2:\(dir)/other.tar"]
    }
    let env = try #require(Faults.environment(faults))
    let failed = try Self.train(flags, out: dir + "/run", environment: env)
    #expect(failed.status != 0)
    let last = failed.stderr.split(separator: "\n").last.map(String.init) ?? ""
    #expect(last.hasPrefix("unet: \(victim): "), "\(failed.stderr)")
    #expect(last.contains(fault == .truncated ? "has 1000 bytes" : "SHA-256"), "\(last)")
    #expect(try FileIO.read(victim) != original, "the fault really changed the file")
    let kept = try Checkpoint.read(from: dir + "/run/last.ckpt")
    #expect(kept.step >= 4 && kept.step < 12)
    // The shard is rebuilt (its bytes checked against the manifest), then training resumes.
    let repaired = try runUnet(["prepare", dir + "/p.yaml", "--out", shards, "--quiet", "--verify-existing"])
    #expect(repaired.status == 0, "\(repaired.stderr)")
    #expect(try FileIO.read(victim) == original)
    let resumed = try Self.train(flags, out: dir + "/run", resume: true)
    #expect(resumed.status == 0, "\(resumed.stderr)")
    try Self.expectSameState(dir + "/run/last.ckpt", dir + "/ref/last.ckpt")
  }
}
