import ArgumentParser
import Foundation
import SegCache
import SegCore
import SegPipeline
import SegWorkflow

/// Options every command that reads a pipeline file shares.
struct PipelineFlags: ParsableArguments {
  @Option(help: "Read the sources from DIR instead (laid out as DIR/images + DIR/labels, paired by file stem).",
          completion: .directory)
  var source: String?

  @Option(help: ArgumentHelp(
    "Refuse pipeline files whose YAML expands to more nodes than this through aliases (\"billion laughs\").",
    valueName: "n"))
  var maxYamlNodes: Int = PipelineLimits.defaultMaxNodes

  func validate() throws {
    guard maxYamlNodes >= 1 else { throw ValidationError("--max-yaml-nodes must be positive") }
  }

  /// Loads the pipeline and applies --source.
  func load(_ path: String) throws -> PipelineSpec {
    let spec = try PipelineSpec.load(path, limits: PipelineLimits(maxNodes: maxYamlNodes))
    return source.map { spec.overridingSource($0) } ?? spec
  }
}

/// The default output folder for a pipeline file: out/<stem>.
func defaultOutput(for pipeline: String, _ what: String) -> String {
  "out/" + ImageFilesStem.of(pipeline) + "/" + what
}

enum ImageFilesStem {
  static func of(_ path: String) -> String {
    let name = path.split(separator: "/").last.map(String.init) ?? path
    return name.split(separator: ".").first.map(String.init) ?? name
  }
}

struct Prepare: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Make the sharded training cache of a pipeline (WebDataset tar shards + manifest.json).",
    discussion: """
      Incremental and crash-safe: a rerun with nothing changed does no work, a changed source \
      or stage rebuilds only the shards it touches, and a run killed at any moment finishes \
      on the next run. For several machines, give each --shard-index i --shard-count n (or \
      run it as a Slurm array job, or a Kubernetes indexed Job with --shard-count), then run \
      `unet prepare --merge --out DIR` once.
      """)

  @Argument(help: "The pipeline file (YAML).", completion: .file())
  var pipeline: String?

  @Option(help: "Output folder (default: out/<pipeline name>/shards).", completion: .directory)
  var out: String?

  @Option(help: "Concurrent workers (default: all cores).")
  var workers: Int = ProcessInfo.processInfo.activeProcessorCount

  @Option(help: "This machine's part of a distributed run, 0-based (default from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX).")
  var shardIndex: Int?

  @Option(help: "The number of parts of a distributed run (default from SLURM_ARRAY_TASK_COUNT or UNET_SHARD_COUNT).")
  var shardCount: Int?

  @Flag(help: "Join the partial manifests of a distributed run in --out into manifest.json.")
  var merge = false

  @Flag(help: "Re-hash existing shards before reusing them (slower; otherwise size and key are checked).")
  var verifyExisting = false

  @Flag(help: "No progress output, only the summary.")
  var quiet = false

  @Option(help: "Make augmentation epoch N instead (fresh draws of every stage and crop; what `unet train` prepares in the background for its N-th pass).")
  var epoch: Int = 0

  @OptionGroup var pipelineFlags: PipelineFlags
  @OptionGroup var manifestFlags: ManifestFlags

  func validate() throws {
    guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
    guard epoch >= 0 else { throw ValidationError("--epoch must be 0 or more") }
    if !merge && pipeline == nil { throw ValidationError("give the pipeline file (or --merge with --out)") }
    if merge && out == nil && pipeline == nil { throw ValidationError("--merge needs --out DIR (or the pipeline file)") }
    if let shardCount, shardCount < 1 { throw ValidationError("--shard-count must be at least 1") }
    if let shardIndex, shardIndex < 0 { throw ValidationError("--shard-index must be 0 or more") }
    if (shardIndex == nil) != (shardCount == nil) && !merge {
      // One of them may come from the environment; checked in run().
    }
  }

  /// (index, count) of this machine's part, from the flags or the job environment.
  func part() throws -> (Int, Int) {
    let env = ProcessInfo.processInfo.environment
    var index = shardIndex
    var count = shardCount
    if index == nil, let id = env["SLURM_ARRAY_TASK_ID"].flatMap(Int.init) {
      index = id - (env["SLURM_ARRAY_TASK_MIN"].flatMap(Int.init) ?? 0)
      count = count ?? env["SLURM_ARRAY_TASK_COUNT"].flatMap(Int.init)
    }
    if index == nil, let id = env["JOB_COMPLETION_INDEX"].flatMap(Int.init) {
      index = id
    }
    if count == nil { count = env["UNET_SHARD_COUNT"].flatMap(Int.init) }
    switch (index, count) {
    case (nil, nil): return (0, 1)
    case (let i?, let n?):
      guard n >= 1, i >= 0, i < n else { throw ValidationError("shard index \(i) is outside 0..<\(n)") }
      return (i, n)
    case (nil, _?): throw ValidationError("a shard count without a shard index (--shard-index, SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX)")
    case (_?, nil): throw ValidationError("a shard index without a shard count (--shard-count, SLURM_ARRAY_TASK_COUNT or UNET_SHARD_COUNT)")
    }
  }

  func run() async throws {
    try dieWithParentIfAsked()
    let output = out ?? pipeline.map { defaultOutput(for: $0, "shards") } ?? "out/shards"
    if merge {
      let manifest = try ShardSetWriter.merge(directory: output, limits: manifestFlags.limits)
      print("merged \(manifest.shards.count) shards (\(manifest.sampleCount) samples, \(formatBytes(manifest.byteCount))) into \(output)/manifest.json")
      return
    }
    guard let pipeline else { return }
    let spec = try pipelineFlags.load(pipeline).forEpoch(epoch)
    let (index, count) = try part()
    let reporter = ProgressReporter(label: "prepare", quiet: quiet)
    let summary = try await Preparer.run(
      spec: spec,
      options: PrepareOptions(outputDirectory: output, workers: workers, partIndex: index, partCount: count, verifyExisting: verifyExisting)
    ) { p in
      reporter.update(done: p.done, total: p.total, extra: "\(p.written) training samples", elapsed: p.elapsedSeconds)
    }
    reporter.finish()
    let part = summary.isPart ? " (part \(index + 1) of \(count))" : ""
    print(
      "prepared \(summary.shards) shards\(part) in \(output): \(summary.trainingSamples) training samples from "
        + "\(summary.pipelineSamples) pipeline samples, \(formatBytes(summary.bytes)); built \(summary.built), reused \(summary.reused), "
        + String(format: "%.2f s", summary.seconds))
    print("manifest: \(summary.manifest)")
    if summary.isPart {
      print("when every part is done: unet prepare --merge --out \(output)")
    }
  }
}

/// "12.3 MB" (decimal units, as file managers show).
func formatBytes(_ n: Int) -> String {
  let units = ["B", "kB", "MB", "GB", "TB"]
  var v = Double(n)
  var u = 0
  while v >= 1000 && u < units.count - 1 {
    v /= 1000
    u += 1
  }
  return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
}

/// A progress bar on a terminal (stderr, redrawn in place), plain lines every 10 s otherwise.
final class ProgressReporter {
  let label: String
  let quiet: Bool
  let terminal = isTerminal(2)
  private var lastPrint = -1.0
  private var drewBar = false

  init(label: String, quiet: Bool) {
    self.label = label
    self.quiet = quiet
  }

  func update(done: Int, total: Int, extra: String, elapsed: Double) {
    guard !quiet, total > 0 else { return }
    let rate = Double(done) / max(elapsed, 1e-9)
    let eta = rate > 0 ? Double(total - done) / rate : 0
    let timing = String(format: "%.1f samples/s, ETA %@", rate, formatDuration(eta))
    if terminal {
      guard elapsed - lastPrint >= 0.1 || done == total else { return }
      lastPrint = elapsed
      let width = 30
      let filled = Int(Double(width) * Double(done) / Double(total))
      let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
      FileHandleWriter.write("\r\(label) [\(bar)] \(done)/\(total) samples, \(timing), \(extra)\u{1B}[K", fd: 2)
      drewBar = true
    } else if elapsed - lastPrint >= 10 || done == total {
      lastPrint = elapsed
      printError("\(label): \(done)/\(total) samples, \(timing), \(extra)")
    }
  }

  func finish() {
    if drewBar { FileHandleWriter.write("\n", fd: 2) }
  }
}
