import Foundation
import SegCache
import SegCore
import SegTestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// A pipeline with enough work that a kill lands mid-run: 4 sources × 6 samples, 2 per shard.
func killablePipeline(_ dir: String) throws -> String {
  let cells = TestPaths.fixtures + "/cells"
  let text = """
    version: 1
    seed: 5
    sources: {images: \(cells)/images/*.png, masks: \(cells)/labels/*.png}
    samples_per_image: 6
    mask: {kind: instances}
    stages:
      - normalize: {method: minmax}
      - affine: {rotate: [-40, 40], scale: [0.8, 1.2]}
      - elastic: {method: simard, alpha: 20, sigma: 4}
      - blur: {sigma: [0, 1]}
      - weight_map: {}
    tiles: {network: {depth: 2, padding: same}, input: 64, mode: random, count: 2}
    shards: {samples_per_shard: 2}
    """
  let path = dir + "/kill.yaml"
  try text.write(toFile: path, atomically: true, encoding: .utf8)
  return path
}

@Suite struct PrepareCommandTests {
  /// SIGKILL `unet prepare` at random moments, several times; a rerun completes the set and
  /// every shard verifies, and the result equals an uninterrupted run byte for byte.
  @Test func killedRunsResumeToTheSameResult() throws {
    let dir = TestPaths.temporaryDirectory("kill")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let pipeline = try killablePipeline(dir)
    let clean = try runUnet(["prepare", pipeline, "--out", dir + "/clean", "--quiet"])
    #expect(clean.status == 0, "\(clean.stderr)")
    var rng = RandomStream(seed: 42)
    var killed = 0
    for attempt in 0..<6 {
      let process = Process()
      process.executableURL = URL(fileURLWithPath: TestPaths.unetBinary)
      process.arguments = ["prepare", pipeline, "--out", dir + "/killed", "--quiet", "--workers", "2"]
      process.standardOutput = FileHandle.nullDevice
      process.standardError = FileHandle.nullDevice
      try process.run()
      usleep(UInt32(20_000 + rng.nextInt(below: 250_000)))
      if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
        killed += 1
      }
      process.waitUntilExit()
      _ = attempt
    }
    #expect(killed >= 1, "no run was killed mid-way; make the pipeline bigger")
    let finish = try runUnet(["prepare", pipeline, "--out", dir + "/killed", "--quiet"])
    #expect(finish.status == 0, "\(finish.stderr)")
    let verify = try runUnet(["inspect", dir + "/killed", "--verify", "--fast"])
    #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
    #expect(verify.stdout.contains("verified: every shard matches its SHA-256"))
    for name in try FileManager.default.contentsOfDirectory(atPath: dir + "/clean") where name.hasSuffix(".tar") || name == "manifest.json" {
      #expect(
        FileManager.default.contents(atPath: dir + "/clean/" + name) == FileManager.default.contents(atPath: dir + "/killed/" + name),
        "\(name) differs from the uninterrupted run")
    }
    // No temporary or staged files survive the finishing run.
    let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir + "/killed").filter { $0.hasPrefix(".") }
    #expect(leftovers.isEmpty, "\(leftovers)")
  }

  @Test func secondRunReportsNoWorkAndInspectSummarises() throws {
    let dir = TestPaths.temporaryDirectory("prepare-cli")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let pipeline = TestPaths.pipelines + "/default.yaml"
    let first = try runUnet(["prepare", pipeline, "--out", dir, "--workers", "2"])
    #expect(first.status == 0, "\(first.stderr)")
    #expect(first.stdout.contains("built 2, reused 0"))
    let second = try runUnet(["prepare", pipeline, "--out", dir])
    #expect(second.stdout.contains("built 0, reused 2"))
    let inspect = try runUnet(["inspect", dir, "--json"])
    #expect(inspect.status == 0)
    let object = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any]
    #expect(object?["samples"] as? Int == 32)  // 16 pipeline samples × 2 random tiles
    #expect((object?["weight"] as? [String: Any])?["max"] as? Double ?? 0 > 5)
  }

  @Test func environmentChoosesThePart() throws {
    let dir = TestPaths.temporaryDirectory("slurm")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let pipeline = try killablePipeline(dir)
    for id in 1...3 {
      let r = try runUnet(["prepare", pipeline, "--out", dir + "/s", "--quiet"],
                          environment: ["SLURM_ARRAY_TASK_ID": "\(id)", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "3"])
      #expect(r.status == 0, "\(r.stderr)")
      #expect(r.stdout.contains("(part \(id) of 3)"))
    }
    let k8s = try runUnet(["prepare", pipeline, "--out", dir + "/k", "--quiet"], environment: ["JOB_COMPLETION_INDEX": "0", "UNET_SHARD_COUNT": "2"])
    #expect(k8s.stdout.contains("(part 1 of 2)"))
    let merged = try runUnet(["prepare", "--merge", "--out", dir + "/s"])
    #expect(merged.status == 0, "\(merged.stderr)")
    #expect(merged.stdout.contains("merged 12 shards"))
    let bad = try runUnet(["prepare", pipeline, "--out", dir + "/x"], environment: ["JOB_COMPLETION_INDEX": "0"])
    #expect(bad.status != 0 && bad.stderr.contains("a shard index without a shard count"))
  }

  @Test func badPipelineGivesOneLineAndKeepsEarlierShards() throws {
    let dir = TestPaths.temporaryDirectory("prepare-bad")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let pipeline = try killablePipeline(dir)
    #expect(try runUnet(["prepare", pipeline, "--out", dir + "/s", "--quiet"]).status == 0)
    let before = try FileIO.read(dir + "/s/manifest.json")
    try "version: 1\nseed: 1\nsources: {images: x/*.png}\nstages:\n  - affine: {rotate: wide}\n".write(toFile: pipeline, atomically: true, encoding: .utf8)
    let r = try runUnet(["prepare", pipeline, "--out", dir + "/s"])
    #expect(r.status != 0)
    #expect(r.stderrLines == ["unet: \(pipeline):5: stages[0].affine.rotate: expected a number, found \"wide\""])
    #expect(try FileIO.read(dir + "/s/manifest.json") == before)
  }
}

@Suite struct PreviewCommandTests {
  @Test func badInputGivesOneLineErrors() throws {
    let dir = TestPaths.temporaryDirectory("preview-cli")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileManager.default.createDirectory(atPath: dir + "/empty/images", withIntermediateDirectories: true)
    let empty = try runUnet(["preview", TestPaths.pipelines + "/default.yaml", "--source", dir + "/empty", "--out", dir + "/o"])
    #expect(empty.status != 0)
    #expect(empty.stderrLines.count == 1 && empty.stderr.hasPrefix("unet: ") && empty.stderr.contains("no"))
    try "version: 1\nseed: x\n".write(toFile: dir + "/bad.yaml", atomically: true, encoding: .utf8)
    let bad = try runUnet(["preview", dir + "/bad.yaml", "--out", dir + "/o"])
    #expect(bad.stderrLines == ["unet: \(dir)/bad.yaml:2: seed: expected a whole number, found \"x\""])
    let ok = try runUnet(["preview", TestPaths.pipelines + "/default.yaml", "--count", "2", "--out", dir + "/ok", "--panel", "48"])
    #expect(ok.status == 0, "\(ok.stderr)")
    #expect(ok.stdout.contains("page: \(dir)/ok/index.html"))
  }
}
