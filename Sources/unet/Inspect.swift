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
    let m = set.manifest
    var corrupt: [(String, CacheError)] = []
    var shapes: [String: Int] = [:]
    for s in m.shards {
      for e in s.members {
        let label = e.labelShape.map { " → \($0.map(String.init).joined(separator: "×"))" } ?? ""
        shapes[e.shape.map(String.init).joined(separator: "×") + label, default: 0] += 1
      }
    }
    var classCounts: [UInt64: UInt64] = [:]
    var weightMin = Float.infinity
    var weightMax = -Float.infinity
    var weightSum = 0.0
    var weightCount = 0.0
    var imageMin = Float.infinity
    var imageMax = -Float.infinity
    for i in m.shards.indices {
      if fast {
        if verify {
          do { try set.verify(shard: i) } catch { corrupt.append((m.shards[i].name, error)) }
        }
        continue
      }
      let samples: [StoredSample]
      do {
        samples = try set.samples(inShard: i, verify: verify)
      } catch {
        corrupt.append((m.shards[i].name, error))
        continue
      }
      for s in samples {
        for v in s.image.floatSamples() where v.isFinite {
          imageMin = min(imageMin, v)
          imageMax = max(imageMax, v)
        }
        if let mask = s.mask {
          for v in mask.labelSamples() { classCounts[UInt64(v), default: 0] += 1 }
        }
        if let w = s.weight {
          for v in w.floatSamples() {
            weightMin = min(weightMin, v)
            weightMax = max(weightMax, v)
            weightSum += Double(v)
            weightCount += 1
          }
        }
      }
    }
    let binaryOrClasses = m.settings.maskKind != "instances"
    if json {
      var fields: [(String, JSONValue)] = [
        ("directory", .string(directory)), ("samples", .int(m.sampleCount)), ("shards", .int(m.shards.count)),
        ("bytes", .int(m.byteCount)), ("image_dtype", .string(m.settings.imageDType)),
        ("mask_dtype", m.settings.maskDType.map { .string($0) } ?? .null),
        ("weight_dtype", m.settings.weightDType.map { .string($0) } ?? .null),
        ("shapes", .object(shapes.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
        ("pipeline_sha256", .string(m.pipelineSHA256)),
      ]
      if !fast {
        fields.append(("image_range", .array([.double(Double(imageMin)), .double(Double(imageMax))])))
        if !classCounts.isEmpty {
          fields.append(("mask_values", .int(classCounts.count)))
          if binaryOrClasses {
            fields.append(("class_pixels", .object(classCounts.sorted { $0.key < $1.key }.map { (String($0.key), .int(Int($0.value))) })))
          } else {
            let background = classCounts[0] ?? 0
            let total = classCounts.values.reduce(0, +)
            fields.append(("class_pixels", .object([("0", .int(Int(background))), ("cells", .int(Int(total - background)))])))
          }
        }
        if weightCount > 0 {
          fields.append(("weight", .object([("min", .double(Double(weightMin))), ("max", .double(Double(weightMax))), ("mean", .double(weightSum / weightCount))])))
        }
      }
      if verify {
        fields.append(("verified", .bool(corrupt.isEmpty)))
        fields.append(("corrupt", .array(corrupt.map { .object([("shard", .string($0.0)), ("error", .string($0.1.message))]) })))
      }
      print(JSONValue.object(fields).serialized())
    } else {
      print("\(directory): \(m.sampleCount) samples in \(m.shards.count) shards, \(formatBytes(m.byteCount))")
      print("  pipeline: \(m.pipelineFile ?? "-") (sha256 \(m.pipelineSHA256.prefix(16))…), \(m.sources.count) sources")
      print("  storage: image \(m.settings.imageDType)\(m.settings.imageDType.hasPrefix("uint") ? " × \(formatNumber(m.settings.imageScale))" : ""), mask \(m.settings.maskDType ?? "-"), weight \(m.settings.weightDType ?? "-")")
      for (shape, n) in shapes.sorted(by: { $0.key < $1.key }) { print("  shape \(shape): \(n) samples") }
      if !fast {
        print("  image values: \(formatNumber(Double(imageMin))) … \(formatNumber(Double(imageMax)))")
        if !classCounts.isEmpty {
          let total = Double(classCounts.values.reduce(0, +))
          if binaryOrClasses {
            let parts = classCounts.sorted { $0.key < $1.key }.map { "\($0.key): \(String(format: "%.1f", 100 * Double($0.value) / total))%" }
            print("  mask classes (pixel share): " + parts.joined(separator: ", "))
          } else {
            let bg = Double(classCounts[0] ?? 0)
            print("  mask: \(classCounts.count - (classCounts[0] == nil ? 0 : 1)) distinct instance ids; background \(String(format: "%.1f", 100 * bg / total))%, cells \(String(format: "%.1f", 100 * (total - bg) / total))%")
          }
        }
        if weightCount > 0 {
          print("  weight map: min \(formatNumber(Double(weightMin))), max \(formatNumber(Double(weightMax))), mean \(formatNumber(weightSum / weightCount))")
        }
      }
      if verify {
        if corrupt.isEmpty {
          print("  verified: every shard matches its SHA-256")
        }
      }
    }
    for (_, error) in corrupt { reportError(error) }
    if !corrupt.isEmpty { throw ExitCode.failure }
  }
}
