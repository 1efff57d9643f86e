import Foundation
import SegCache
import SegCore
import SegExport
import SegIO
import SegTrain

/// `unet export`: a checkpoint as an ONNX model, a bioimage.io model package or a safetensors
/// state dict (see SegExport).
public struct ExportRun {
  public enum Format: String, Sendable, CaseIterable {
    case onnx, bioimageio, safetensors

    /// The usual file name extension.
    public var fileExtension: String {
      switch self {
      case .onnx: "onnx"
      case .bioimageio: "zip"
      case .safetensors: "safetensors"
      }
    }
  }

  public struct Options: Sendable {
    public var checkpoint: String
    public var format: Format
    public var output: String
    /// ONNX: apply the normalisation inside the graph (fixed affine normalisations only).
    public var normalizationInGraph: Bool
    /// bioimage.io: the raw image the test tensors are cut from (default: the first source
    /// image of the checkpoint's shard set, when it is still there).
    public var sample: String?
    public var name: String?
    public var description: String?
    public var authors: [String]
    public var license: String

    public init(
      checkpoint: String, format: Format, output: String, normalizationInGraph: Bool = false, sample: String? = nil,
      name: String? = nil, description: String? = nil, authors: [String] = [], license: String = "CC-BY-4.0"
    ) {
      self.checkpoint = checkpoint
      self.format = format
      self.output = output
      self.normalizationInGraph = normalizationInGraph
      self.sample = sample
      self.name = name
      self.description = description
      self.authors = authors
      self.license = license
    }
  }

  public struct Summary: Sendable {
    /// Files written (path, bytes); for a package, its members follow as `PATH!member`.
    public var files: [(path: String, bytes: Int)]
    public var seconds: Double
    /// What a user should know (normalisation, sizes, the sample used).
    public var notes: [String]
  }

  /// Exports the checkpoint; the output is written atomically.
  public static func run(_ o: Options, version: String) throws -> Summary {
    let start = MonotonicClock.seconds()
    let checkpoint = try Checkpoint.read(from: o.checkpoint)
    let normalization = ExportNormalization(stages: try Predictor.normalization(of: checkpoint, path: o.checkpoint))
    guard let network = Lowering.of(checkpoint.model, inference: checkpoint.inference, trainingSteps: checkpoint.step) else {
      throw ExportError(.unsupported, path: o.checkpoint, "cannot export \(checkpoint.model.configuration.geometry.summary) with these inference settings")
    }
    let exporter = ModelExporter(
      network: network, normalization: normalization, provenance: provenance(checkpoint), producerVersion: version)
    var notes: [String] = []
    let s = network.sizes
    notes.append("input: \(network.inputChannels) channel(s), tiles of \(s.min) + n·\(s.step) pixels per side; output: \(network.classes) class probabilities"
      + (s.outputOffset == 0 ? " of the same size" : ", \(-s.outputOffset) pixels smaller") + (s.halo > 0 ? " (halo \(s.halo))" : ""))
    var files: [(String, Int)] = []
    switch o.format {
    case .onnx:
      let bytes = try exporter.onnx(normalizationInGraph: o.normalizationInGraph)
      try write(bytes, to: o.output)
      files.append((o.output, bytes.count))
      notes.append(
        o.normalizationInGraph || normalization.stages.isEmpty
          ? "normalisation: \(normalization.summary)\(normalization.stages.isEmpty ? "" : " (inside the graph: feed raw images)")"
          : "normalisation (apply before the graph; also in the metadata 'normalization'): \(normalization.summary)")
    case .safetensors:
      let bytes = exporter.safetensors()
      try write(bytes, to: o.output)
      files.append((o.output, bytes.count))
      notes.append("normalisation (apply before the module; also in the metadata): \(normalization.summary)")
    case .bioimageio:
      let (samplePath, sample) = try loadSample(o.sample, checkpoint: checkpoint)
      guard sample.channels == network.inputChannels else {
        throw ExportError(.badSample, path: samplePath, "has \(sample.channels) channel(s); the network takes \(network.inputChannels)")
      }
      let options = BioimageioOptions(
        name: o.name ?? defaultName(o.checkpoint, network.architecture), description: o.description ?? defaultDescription(network, checkpoint),
        authors: o.authors.isEmpty ? ["swift-unet user"] : o.authors, license: o.license, timestamp: timestamp(of: o.checkpoint),
        trainingData: trainingData(checkpoint), training: trainingDetails(checkpoint, normalization),
        validation: validationSummary(near: o.checkpoint), sampleDescription: ImageFiles.stem(samplePath))
      let package = try exporter.bioimageioPackage(sample: sample, options: options)
      try write(package.zip, to: o.output)
      files.append((o.output, package.zip.count))
      files += package.members.map { (o.output + "!" + $0.name, $0.bytes) }
      notes.append("test tensors cut from \(samplePath); preprocessing: \(normalization.summary)")
    }
    return Summary(files: files, seconds: MonotonicClock.seconds() - start, notes: notes)
  }

  /// Writes atomically, making the folder first; errors name `path` (not the temporary file).
  static func write(_ bytes: [UInt8], to path: String) throws(FileIOError) {
    do {
      try FileIO.makeDirectories(FileIO.parentDirectory(of: path))
      try FileIO.writeAtomically(bytes, to: path)
    } catch {
      throw error.at(path)
    }
  }

  /// Facts about the checkpoint kept in the exported files' metadata.
  static func provenance(_ c: Checkpoint) -> [(String, String)] {
    var out: [(String, String)] = [("checkpoint_step", String(c.step)), ("checkpoint_epoch", String(c.epoch))]
    if let training = json(c.training) { out.append(("training", training.serialized())) }
    for key in ["pipeline_sha256", "mask_kind", "input_size"] {
      if let v = c.metadata[key] { out.append(("training_" + key, v)) }
    }
    return out
  }

  static func json<T: Encodable>(_ value: T) -> JSONValue? {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    guard let data = try? encoder.encode(value) else { return nil }
    return try? JSONDecoder().decode(JSONValue.self, from: data)
  }

  /// The sample image: the given one, or the first source image of the checkpoint's shards.
  static func loadSample(_ path: String?, checkpoint: Checkpoint) throws -> (String, Image) {
    var candidate = path
    if candidate == nil, let shards = checkpoint.metadata["shards"],
      let manifest = try? ShardManifest.read(shards + "/manifest.json")
    {
      candidate = manifest.sources.lazy.compactMap { $0.images.first?.path }.first { FileIO.exists($0) }
    }
    guard let file = candidate else {
      throw ExportError(
        .incomplete, path: nil, "no sample image for the test tensors: the checkpoint's training images are not reachable",
        hint: "give one with --sample IMAGE")
    }
    let decoded = try ImageDecoder.read(file)
    guard Image.canStack(decoded.pages) else { throw ExportError(.badSample, path: file, "its pages differ in size or type") }
    return (file, Image.stack(decoded.pages))
  }

  static func defaultName(_ checkpoint: String, _ architecture: String) -> String {
    let folder = URL(fileURLWithPath: checkpoint).deletingLastPathComponent().lastPathComponent
    let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+- ()")
    let cleaned = String(folder.map { allowed.contains($0) ? $0 : "-" }).prefix(40)
    return architecture + " swift-unet " + (cleaned.isEmpty ? "model" : cleaned)
  }

  static func defaultDescription(_ n: any ExportableNetwork, _ c: Checkpoint) -> String {
    let cfg = c.model.configuration
    return "A \(cfg.padding.rawValue)-padding \(n.architecture) (depth \(cfg.depth), base width \(cfg.baseWidth)\(cfg.batchNorm ? ", batch norm" : "")) "
      + "segmenting \(n.inputChannels)-channel images into \(n.classes) classes, trained \(c.step) steps with swift-unet."
  }

  /// The checkpoint file's modification time (ISO 8601, UTC), so the same file exports the same bytes.
  static func timestamp(of path: String) -> String {
    let date = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? Date(timeIntervalSince1970: 0)
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
    return f.string(from: date)
  }

  static func trainingData(_ c: Checkpoint) -> JSONValue {
    var text = "Tiles made by `unet prepare` (swift-unet shards)"
    if let shards = c.metadata["shards"], let m = try? ShardManifest.read(shards + "/manifest.json") {
      let stems = m.sources.map(\.stem)
      text += " from \(stems.count) source image(s) (\(stems.prefix(5).joined(separator: ", "))\(stems.count > 5 ? ", …" : ""))"
    }
    if let size = c.metadata["input_size"] { text += ", \(size) × \(size) pixels" }
    if let kind = c.metadata["mask_kind"] { text += ", \(kind) masks" }
    if let sha = c.metadata["pipeline_sha256"] { text += "; pipeline SHA-256 \(sha)" }
    return .object([
      ("type", "dataset"), ("format_version", "0.3.0"), ("name", "swift-unet training shards"), ("description", .string(text + ".")),
    ])
  }

  /// `config.bioimageio.training` from the checkpoint's training configuration.
  static func trainingDetails(_ c: Checkpoint, _ n: ExportNormalization) -> JSONValue {
    var fields: [(String, JSONValue)] = [("training_preprocessing", .string(n.summary))]
    if case .object(let pairs)? = json(c.training.optimizer), let kind = pairs.first(where: { $0.0 == "kind" })?.1 {
      fields += [("optimizer", kind), ("optimizer_kwargs", .object(pairs.filter { $0.0 != "kind" }))]
    }
    if let lr = json(c.training.schedule)?["learning_rate"] { fields.append(("initial_learning_rate", lr)) }
    if let schedule = json(c.training.schedule)?["kind"] { fields.append(("learning_rate_schedule", schedule)) }
    if let loss = json(c.training.loss)?["kind"] { fields.append(("loss_function", loss)) }
    fields.append(("training_epochs", .int(c.epoch)))
    return .object(fields)
  }

  /// The last validation line of `metrics.jsonl` beside the checkpoint, as Markdown.
  static func validationSummary(near checkpoint: String) -> String {
    let path = FileIO.parentDirectory(of: checkpoint) + "/metrics.jsonl"
    guard let bytes = try? FileIO.read(path) else { return "" }
    let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
    for line in lines.reversed() {
      guard let v = try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)), case .string("validation")? = v["kind"] else { continue }
      return "Held-out validation images at training step \(v["step"].map { $0.serialized() } ?? "?") (swift-unet `metrics.jsonl`): "
        + "loss \(v["loss"].map { $0.serialized() } ?? "?"), Dice per class \(v["dice"].map { $0.serialized() } ?? "?"), "
        + "IoU per class \(v["iou"].map { $0.serialized() } ?? "?"), pixel error \(v["pixel_error"].map { $0.serialized() } ?? "?")."
    }
    return ""
  }
}
