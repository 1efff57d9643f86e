import ArgumentParser
import Foundation
import SegCore
import SegIO
import SegSynth

/// One benchmark operation: a name and a closure that builds the timed call from the inputs
/// (setup outside the timing, as the bench contract requires).
struct BenchOp {
  var name: String
  var note: String?
  /// Builds the call to time; returns nil when its inputs are missing (the op is skipped).
  var prepare: (BenchInputs) throws -> (call: () throws -> Void, extra: [(String, JSONValue)])?
}

/// The inputs of ../shared/bench/make_inputs.py, read into memory once.
struct BenchInputs {
  var imagePNG: [UInt8]
  var labelsPNG: [UInt8]
  var tiff16: [UInt8]?
  var tiff16Deflate: [UInt8]?
  var jpeg: [UInt8]?
  var image: Image
  var labels: Image
  var threads: Int
  var folder: String?
}

struct Bench: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Time the project's kernels; JSON lines as ../shared/bench/README.md specifies.",
    discussion: """
      Build in release mode first (swift build -c release). Without --image/--inputs a synthetic \
      512 × 512 cell sample is made in memory. Run ../shared/bench/compare.sh to put the results \
      beside the Python peers.
      """)

  @Option(help: "The 8-bit gray input image (cells_512.png).", completion: .file())
  var image: String?

  @Option(help: "The 16-bit instance label image (cells_512_labels.png).", completion: .file())
  var labels: String?

  @Option(help: "The folder make_inputs.py wrote (TIFF and JPEG inputs).", completion: .directory)
  var inputs: String?

  @Option(help: "Threads the ops may use.")
  var threads: Int = 1

  @Option(help: "Timed samples per op.")
  var repeats: Int = 20

  @Option(help: "Comma-separated op names (default: all).")
  var ops: String?

  @Flag(help: "JSON lines on stdout (the bench contract); a readable line per op goes to stderr.")
  var json = false

  @Flag(help: "List the op names and exit.")
  var list = false

  @Option(help: "Time a whole pipeline instead of the ops: samples/s and peak memory.", completion: .file())
  var pipeline: String?

  @Option(help: "With --pipeline: read the sources from DIR (images/ + labels/).", completion: .directory)
  var source: String?

  @Option(help: "With --pipeline: how many samples (default: all the pipeline makes; more repeat them).")
  var samples: Int?

  @Option(help: "With --pipeline: concurrent workers.")
  var workers: Int = 1

  func validate() throws {
    guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
  }

  static var allOps: [BenchOp] { codecOps + augmentOps + weightOps + trainOps }

  func run() async throws {
    if let pipeline {
      try await PipelineBench.run(pipeline: pipeline, source: source, samples: samples, workers: workers, json: json)
      return
    }
    if list {
      for op in Self.allOps { print(op.name) }
      return
    }
    let inputs = try loadInputs()
    let wanted = ops.map { Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) }
    if let wanted {
      let unknown = wanted.subtracting(Self.allOps.map(\.name))
      if !unknown.isEmpty {
        throw ValidationError("unknown op(s): \(unknown.sorted().joined(separator: ", ")); see unet bench --list")
      }
    }
    for op in Self.allOps where wanted?.contains(op.name) ?? true {
      guard let (call, extra) = try op.prepare(inputs) else {
        printError("  \(op.name): skipped (its input file is missing)")
        continue
      }
      let stats = try timeFunction(repeats: repeats, call)
      emit(op, stats, extra: extra)
    }
  }

  func emit(_ op: BenchOp, _ stats: TimingStats, extra: [(String, JSONValue)]) {
    func r4(_ v: Double) -> JSONValue { .double((v * 10_000).rounded() / 10_000) }
    var fields: [(String, JSONValue)] = [
      ("op", .string(op.name)), ("impl", "unet"), ("threads", .int(threads)),
      ("median_ms", r4(stats.median)), ("p25_ms", r4(stats.p25)), ("p75_ms", r4(stats.p75)),
      ("repeats", .int(stats.repeats)), ("version", "0.1.0"),
    ]
    if let note = op.note { fields.append(("note", .string(note))) }
    fields += extra
    let line = String(format: "  %-24@ %-8@ %10.3f ms  [%.3f .. %.3f]  x%d", op.name, "unet", stats.median, stats.p25, stats.p75, stats.inner)
    if json {
      print(JSONValue.object(fields).serialized())
      flushStandardOutput()
      printError(line)
    } else {
      print(line)
    }
  }

  func loadInputs() throws -> BenchInputs {
    func readOptional(_ name: String) -> [UInt8]? {
      guard let folder = inputs else { return nil }
      return try? FileIO.read(folder + "/" + name)
    }
    let imagePath = image ?? inputs.map { $0 + "/cells_512.png" }
    let labelsPath = labels ?? inputs.map { $0 + "/cells_512_labels.png" }
    let imageBytes: [UInt8]
    let labelBytes: [UInt8]
    if let imagePath, let labelsPath {
      imageBytes = try FileIO.read(imagePath)
      labelBytes = try FileIO.read(labelsPath)
    } else {
      let (img, lab) = SyntheticCells(width: 512, height: 512, cells: 80, seed: 0).make()
      imageBytes = try PNGCodec.encode(img)
      labelBytes = try PNGCodec.encode(lab)
    }
    let img = try ImageDecoder.decode(imageBytes).image
    let lab = try ImageDecoder.decode(labelBytes).image
    return BenchInputs(
      imagePNG: imageBytes, labelsPNG: labelBytes, tiff16: readOptional("cells_512_16bit.tif"),
      tiff16Deflate: readOptional("cells_512_16bit_deflate.tif"), jpeg: readOptional("cells_512.jpg"),
      image: img, labels: lab, threads: threads, folder: inputs)
  }
}
