import Foundation
import SegCache
import SegCore
import SegTestSupport
import Testing

/// Fresh augmentations per epoch: `unet train PIPELINE` prepares epoch e + 1 in the background
/// (`unet prepare --epoch`) while epoch e trains, never reuses a tile, keeps at most
/// `keep_epochs` sets, and resumes on the same curve; `--shards` reads the manifest's train:
/// section.
@Suite(.serialized) struct FreshAugmentationTests {
  @Test func everyEpochTrainsOnFreshTiles() throws {
    let dir = TestPaths.temporaryDirectory("fresh")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let pipeline = try trainPipeline(dir, steps: 20)
    let run = try runUnet(["train", pipeline, "--out", dir + "/run", "--threads", "2"], currentDirectory: dir)
    #expect(run.status == 0, "\(run.stderr)")
    // 12 training tiles, batch 2: 6 steps an epoch, so 20 steps reach epoch 3 (and ask for 4).
    let epochs = try FileManager.default.contentsOfDirectory(atPath: dir + "/run/epochs").filter { !$0.hasSuffix(".log") }.sorted()
    #expect(epochs.count <= 2 && epochs.contains("epoch-000003"), "\(epochs)")
    let set3 = try ShardSet(directory: dir + "/run/epochs/epoch-000003")
    let base = try ShardSet(directory: dir + "/out/train/shards")
    #expect(set3.manifest.pipeline["epoch"] == .int(3) && base.manifest.pipeline["epoch"] == nil)
    #expect(set3.manifest.pipelineSHA256 != base.manifest.pipelineSHA256)
    // Fresh draws: the same source's first sample differs from the run's shards.
    let a = try base.sample(shard: 0, member: 0), b = try set3.sample(shard: 0, member: 0)
    #expect(a.key == b.key && a.image != b.image)
    // Deterministic: prepared again, epoch 3 is byte for byte the same.
    let again = try runUnet(["prepare", pipeline, "--epoch", "3", "--out", dir + "/again", "--workers", "2", "--quiet"], currentDirectory: dir)
    #expect(again.status == 0, "\(again.stderr)")
    let again3 = try ShardSet(directory: dir + "/again")
    #expect(again3.manifest.shards.map(\.sha256) == set3.manifest.shards.map(\.sha256))
    // Without fresh augmentation, no epoch sets.
    let cycle = try runUnet(["train", pipeline, "--out", dir + "/cycle", "--threads", "2", "--no-fresh-augmentation", "--steps", "8"], currentDirectory: dir)
    #expect(cycle.status == 0 && !FileManager.default.fileExists(atPath: dir + "/cycle/epochs"), "\(cycle.stderr)")
  }

  /// A run stopped part-way (after 10 steps) and resumed to 20 has the loss curve of a run of
  /// 20: the fresh epochs are remade identically.
  @Test func resumeKeepsTheCurveWithFreshEpochs() throws {
    let dir = TestPaths.temporaryDirectory("fresh-resume")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let pipeline = try trainPipeline(dir, steps: 20)
    #expect(try runUnet(["train", pipeline, "--out", dir + "/full", "--threads", "1"], currentDirectory: dir).status == 0)
    #expect(try runUnet(["train", pipeline, "--out", dir + "/part", "--threads", "1", "--steps", "10"], currentDirectory: dir).status == 0)
    try? FileManager.default.removeItem(atPath: dir + "/part/epochs")  // remade on resume
    let resumed = try runUnet(["train", pipeline, "--out", dir + "/part", "--threads", "1", "--resume"], currentDirectory: dir)
    #expect(resumed.status == 0, "\(resumed.stderr)")
    #expect(try trainLines(dir + "/full/metrics.jsonl") == trainLines(dir + "/part/metrics.jsonl"))
  }

  /// `unet train --shards DIR` takes its settings from the manifest's train: section (flags still
  /// override) and finds the pipeline for fresh epochs.
  @Test func shardsCarryTheirTrainSection() throws {
    let dir = TestPaths.temporaryDirectory("shards-train")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let pipeline = try trainPipeline(dir, steps: 7)
    #expect(try runUnet(["prepare", pipeline, "--out", dir + "/shards", "--quiet"], currentDirectory: dir).status == 0)
    let manifest = try ShardSet(directory: dir + "/shards").manifest
    #expect(manifest.train?["steps"] == .int(7))
    let run = try runUnet(["train", "--shards", dir + "/shards", "--out", dir + "/run", "--threads", "1"], currentDirectory: dir)
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stdout.contains("base width 8") && run.stdout.contains("7 steps of batch 2"), "\(run.stdout)")
    #expect(FileManager.default.fileExists(atPath: dir + "/run/epochs/epoch-000001"))
    let override = try runUnet(["train", "--shards", dir + "/shards", "--out", dir + "/run2", "--threads", "1", "--steps", "3", "--width", "4"], currentDirectory: dir)
    #expect(override.status == 0 && override.stdout.contains("base width 4") && override.stdout.contains("3 steps"), "\(override.stdout)")
  }
}
