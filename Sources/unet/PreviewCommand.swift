import ArgumentParser
import Foundation
import SegPipeline
import SegPreview

struct PreviewCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "preview",
    abstract: "Render augmented samples as a contact sheet, one PNG per sample, and an HTML page.",
    discussion: """
      Panels per sample: the source image, the augmented image, the mask as a coloured overlay \
      (one colour per cell, outlines on touching cells), the weight map with its colour scale, \
      and the deformation as a grid (where a regular grid of the source went). With the \
      pipeline's seed, sample k is the same as sample k of its shards. Open index.html in a \
      browser (it works offline).
      """)

  @Argument(help: "The pipeline file (YAML).", completion: .file())
  var pipeline: String?

  @Option(help: "Render samples from this shard folder instead of running a pipeline.", completion: .directory)
  var shards: String?

  @Option(help: "How many samples.")
  var count: Int = 8

  @Option(help: "Seed (default: the pipeline's, so the samples match its shards).")
  var seed: UInt64?

  @Option(help: "Output folder (default: out/<pipeline name>/preview).", completion: .directory)
  var out: String?

  @Option(help: "Panel size in pixels (images are scaled down to fit, never up).")
  var panel: Int = 256

  @Option(help: "Concurrent workers (default: all cores).")
  var workers: Int = ProcessInfo.processInfo.activeProcessorCount

  @OptionGroup var pipelineFlags: PipelineFlags
  @OptionGroup var manifestFlags: ManifestFlags

  func validate() throws {
    guard (pipeline == nil) != (shards == nil) else { throw ValidationError("give a pipeline file or --shards DIR (one of them)") }
    guard count >= 1 else { throw ValidationError("--count must be at least 1") }
    guard panel >= 16 && panel <= 4096 else { throw ValidationError("--panel must be 16...4096") }
    guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
    if shards != nil && seed != nil { throw ValidationError("--seed applies to pipelines, not to --shards") }
  }

  func run() async throws {
    let output = out ?? (pipeline.map { defaultOutput(for: $0, "preview") } ?? (shards ?? "out") + "/../preview")
    let options = PreviewOptions(count: count, seed: seed, outputDirectory: output, panelSize: panel, workers: workers)
    let result: PreviewResult
    if let shards {
      result = try Preview.fromShards(shards, options: options, limits: manifestFlags.limits)
    } else if let pipeline {
      result = try await Preview.fromPipeline(try pipelineFlags.load(pipeline), options: options)
    } else {
      return
    }
    for note in result.notes { print("note: \(note)") }
    print("contact sheet: \(result.contactSheet)")
    print("samples: \(result.samples.count) PNGs in \(output)/")
    print("page: \(result.page)")
  }
}
