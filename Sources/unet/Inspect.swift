import ArgumentParser
import Foundation
import SegCache
import SegCore

struct Inspect: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Describe a shard set: samples, shards, bytes, dtypes and shapes, class frequencies, weight-map statistics.",
    discussion: "With --verify, every shard's SHA-256 is checked against the manifest; the exit status is 1 if any differs.")

  @Argument(help: "The shard folder (holding manifest.json).", completion: .directory)
  var directory: String

  @Flag(help: "Check every shard's size and SHA-256.")
  var verify = false

  @Flag(help: "Only the manifest summary: do not read the samples (no class or weight statistics).")
  var fast = false

  @Flag(help: "One JSON object instead of text.")
  var json = false

  @OptionGroup var manifestFlags: ManifestFlags

  func run() throws {
    let set = try ShardSet(directory: directory, limits: manifestFlags.limits)
    let stats = ShardSetStatistics(set, readSamples: !fast, verify: verify)
    print(json ? jsonReport(set.manifest, stats).serialized() : textReport(set.manifest, stats))
    for (_, error) in stats.corrupt { reportError(error) }
    if !stats.corrupt.isEmpty { throw ExitCode.failure }
  }

  /// Instance masks are summed up as background and cells, binary and class masks per value.
  func isInstanceMask(_ m: ShardManifest) -> Bool { m.settings.maskKind == "instances" }

  func jsonReport(_ m: ShardManifest, _ stats: ShardSetStatistics) -> JSONValue {
    var fields: [(String, JSONValue)] = [
      ("directory", .string(directory)), ("samples", .int(m.sampleCount)), ("shards", .int(m.shards.count)),
      ("bytes", .int(m.byteCount)), ("image_dtype", .string(m.settings.imageDType)),
      ("mask_dtype", m.settings.maskDType.map { .string($0) } ?? .null),
      ("weight_dtype", m.settings.weightDType.map { .string($0) } ?? .null),
      ("shapes", .object(stats.shapes.map { ($0.shape, .int($0.samples)) })),
      ("pipeline_sha256", .string(m.pipelineSHA256)),
    ]
    if stats.samplesRead {
      fields.append(("image_range", .array([.double(Double(stats.imageMin)), .double(Double(stats.imageMax))])))
      if !stats.maskValuePixels.isEmpty {
        fields.append(("mask_values", .int(stats.maskValuePixels.count)))
        if isInstanceMask(m) {
          let cells = Int(stats.maskPixels - stats.backgroundPixels)
          fields.append(("class_pixels", .object([("0", .int(Int(stats.backgroundPixels))), ("cells", .int(cells))])))
        } else {
          fields.append(("class_pixels", .object(stats.maskValues.map { (String($0.value), .int(Int($0.pixels))) })))
        }
      }
      if let mean = stats.weightMean {
        fields.append(
          ("weight", .object([("min", .double(Double(stats.weightMin))), ("max", .double(Double(stats.weightMax))), ("mean", .double(mean))])))
      }
    }
    if verify {
      fields.append(("verified", .bool(stats.corrupt.isEmpty)))
      fields.append(("corrupt", .array(stats.corrupt.map { .object([("shard", .string($0.shard)), ("error", .string($0.error.message))]) })))
    }
    return .object(fields)
  }

  func textReport(_ m: ShardManifest, _ stats: ShardSetStatistics) -> String {
    let scale = m.settings.imageDType.hasPrefix("uint") ? " × \(formatNumber(m.settings.imageScale))" : ""
    var lines = [
      "\(directory): \(m.sampleCount) samples in \(m.shards.count) shards, \(formatBytes(m.byteCount))",
      "  pipeline: \(m.pipelineFile ?? "-") (sha256 \(m.pipelineSHA256.prefix(16))…), \(m.sources.count) sources",
      "  storage: image \(m.settings.imageDType)\(scale), mask \(m.settings.maskDType ?? "-"), weight \(m.settings.weightDType ?? "-")",
    ]
    lines += stats.shapes.map { "  shape \($0.shape): \($0.samples) samples" }
    if stats.samplesRead {
      lines.append("  image values: \(formatNumber(Double(stats.imageMin))) … \(formatNumber(Double(stats.imageMax)))")
      if !stats.maskValuePixels.isEmpty {
        let total = Double(stats.maskPixels)
        func percent(_ n: Double) -> String { String(format: "%.1f", 100 * n / total) }
        if isInstanceMask(m) {
          let bg = Double(stats.backgroundPixels)
          lines.append(
            "  mask: \(stats.foregroundValues) distinct instance ids; background \(percent(bg))%, cells \(percent(total - bg))%")
        } else {
          lines.append("  mask classes (pixel share): " + stats.maskValues.map { "\($0.value): \(percent(Double($0.pixels)))%" }.joined(separator: ", "))
        }
      }
      if let mean = stats.weightMean {
        lines.append(
          "  weight map: min \(formatNumber(Double(stats.weightMin))), max \(formatNumber(Double(stats.weightMax))), mean \(formatNumber(mean))")
      }
    }
    if verify && stats.corrupt.isEmpty { lines.append("  verified: every shard matches its SHA-256") }
    return lines.joined(separator: "\n")
  }
}
