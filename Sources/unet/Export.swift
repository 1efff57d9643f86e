import ArgumentParser
import Foundation
import SegCore
import SegWorkflow

extension ExportRun.Format: ExpressibleByArgument {}
extension ProbabilityFormat: ExpressibleByArgument {}

struct Export: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Export a checkpoint as ONNX, a bioimage.io model package or a safetensors state dict.",
    discussion: """
      onnx: the network + softmax (opset 17, dynamic height and width), for onnxruntime and any ONNX \
      runtime; the training normalisation is stated in the metadata ('normalization'), or applied \
      inside the graph with --normalization-in-graph. bioimageio: a .zip for bioimage.io consumers \
      (deepImageJ in Fiji, the bioimage.io napari plugin, ilastik, QuPath): rdf.yaml (model spec \
      0.5) with the normalisation as pre-processing, the ONNX weights, test tensors cut from \
      --sample (default: the first training image, when it is still there) and a cover. \
      safetensors: the state_dict of the reference PyTorch module (README, "Export").
      """)

  @Argument(help: "The checkpoint (.ckpt).", completion: .file())
  var checkpoint: String

  @Option(help: "onnx, bioimageio or safetensors.")
  var format: ExportRun.Format

  @Option(help: "The output file (default: the checkpoint's name with .onnx, .zip or .safetensors).", completion: .file())
  var out: String?

  @Flag(help: "ONNX: apply the normalisation inside the graph (scale and data-set z-score only), so the input is the raw image.")
  var normalizationInGraph = false

  @Option(help: "bioimageio: the raw image the test tensors are cut from.", completion: .file())
  var sample: String?

  @Option(help: "bioimageio: the model's name (letters, digits, spaces, _+-()).")
  var name: String?

  @Option(help: "bioimageio: a one-paragraph description.")
  var description: String?

  @Option(help: "bioimageio: an author (repeat for several).")
  var author: [String] = []

  @Option(help: "bioimageio: the SPDX licence of the model.")
  var license = "CC-BY-4.0"

  func validate() throws {
    if normalizationInGraph && format != .onnx { throw ValidationError("--normalization-in-graph applies to --format onnx only") }
    if format != .bioimageio && (sample != nil || name != nil || description != nil || !author.isEmpty) {
      throw ValidationError("--sample, --name, --description and --author apply to --format bioimageio only")
    }
    if let name, name.count < 5 || name.count > 128 || name.contains(where: { !($0.isLetter || $0.isNumber || " _+-()".contains($0)) }) {
      throw ValidationError("--name must be 5–128 letters, digits, spaces and _+-()")
    }
  }

  func run() throws {
    let output = out ?? (checkpoint.hasSuffix(".ckpt") ? String(checkpoint.dropLast(5)) : checkpoint) + "." + format.fileExtension
    let summary = try ExportRun.run(
      ExportRun.Options(
        checkpoint: checkpoint, format: format, output: output, normalizationInGraph: normalizationInGraph, sample: sample,
        name: name, description: description, authors: author, license: license),
      version: Unet.configuration.version)
    for note in summary.notes { print(note) }
    for (path, bytes) in summary.files { print(String(format: "%@  %@", path, byteCount(bytes))) }
    print(String(format: "exported in %.2f s", summary.seconds))
  }

  func byteCount(_ n: Int) -> String {
    n >= 1 << 20 ? String(format: "%.1f MiB", Double(n) / 1_048_576) : n >= 1 << 10 ? String(format: "%.1f KiB", Double(n) / 1024) : "\(n) B"
  }
}
