import ArgumentParser
import Foundation
import SegCore
import SegIO
import SegRender
import SegWeights

extension MaskKind: ExpressibleByArgument {}
extension BorderRegion: ExpressibleByArgument {}
extension Connectivity: ExpressibleByArgument {
  public init?(argument: String) { self.init(rawValue: Int(argument) ?? 0) }
}

/// Class-balance choices on the command line.
enum ClassBalanceChoice: String, ExpressibleByArgument, CaseIterable {
  case none, image, dataset, fixed
}

struct Weights: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Compute the U-Net border weight map of a label mask.",
    discussion: """
      w(x) = w_c(x) + w0 · exp(−(d1 + d2)² / 2σ²), d1 and d2 the distances to the nearest and \
      second-nearest cell (Ronneberger et al. 2015). Defaults are the reference's: w0 = 10, \
      σ = 5, class balance from the mask over two classes (background, cells), border term on \
      background pixels; a mask holding 0 and one other value is binary (cells = its \
      4-connected components), any other mask holds instance ids.
      """)

  @Argument(help: "The label mask (PNG, TIFF or .npy; one channel of integers).", completion: .file())
  var labels: String

  @Option(help: "Output file: .npy (float32, H × W) or .tif/.tiff (float32).", completion: .file())
  var out: String

  @Option(help: "Also write a heat map with a colour scale to this PNG.", completion: .file())
  var preview: String?

  @Option(help: "Border weight w0.")
  var w0: Double = 10

  @Option(help: "Border width σ in pixels.")
  var sigma: Double = 5

  @Option(help: "Class balance w_c: none, image (this mask's frequencies), dataset (frequencies over --dataset-masks), fixed (--class-weights).")
  var classBalance: ClassBalanceChoice = .image

  @Option(help: "Fixed weights per class id, comma-separated (implies --class-balance fixed).")
  var classWeights: String?

  @Option(help: "For --class-balance dataset: the folder of masks to count class frequencies over.", completion: .directory)
  var datasetMasks: String?

  @Option(help: "Where the border term applies: background or everywhere.")
  var border: BorderRegion = .background

  @Option(help: "How the mask encodes cells: auto, instances, binary, classes.")
  var mask: MaskKind = .auto

  @Option(help: "Connectivity of connected components (binary and class masks): 4 or 8.")
  var connectivity: Connectivity = .four

  @Option(help: "Number of classes for the class balance (default: 2, or max class + 1 for class masks).")
  var classes: Int?

  @Option(help: "Worker threads.")
  var threads: Int = ProcessInfo.processInfo.activeProcessorCount

  @Option(help: "Refuse masks that declare more pixels than this.")
  var maxPixels: Int = DecodeOptions.defaultMaxPixels

  func validate() throws {
    guard w0 >= 0, w0.isFinite else { throw ValidationError("--w0 must be a non-negative number") }
    guard sigma > 0, sigma.isFinite else { throw ValidationError("--sigma must be positive") }
    guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    if let classes, classes < 1 { throw ValidationError("--classes must be at least 1") }
    let lower = out.lowercased()
    guard lower.hasSuffix(".npy") || lower.hasSuffix(".tif") || lower.hasSuffix(".tiff") else {
      throw ValidationError("--out must end in .npy, .tif or .tiff")
    }
    if classBalance == .fixed && classWeights == nil {
      throw ValidationError("--class-balance fixed needs --class-weights")
    }
    if classBalance == .dataset && datasetMasks == nil {
      throw ValidationError("--class-balance dataset needs --dataset-masks DIR")
    }
    if let classWeights {
      guard parseWeights(classWeights) != nil else {
        throw ValidationError("--class-weights must be comma-separated non-negative numbers, e.g. 0.7,1.75")
      }
    }
  }

  func parseWeights(_ text: String) -> [Double]? {
    let parts = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
    guard !parts.isEmpty, parts.allSatisfy({ $0 != nil && $0! >= 0 && $0!.isFinite }) else { return nil }
    return parts.compactMap { $0 }
  }

  func run() throws {
    let options = DecodeOptions(maxPixels: maxPixels, palette: .indices)
    let maskImage = try LabelMask.read(labels, options: options)
    var parameters = WeightMapParameters(
      w0: w0, sigma: sigma, border: border, maskKind: mask, connectivity: connectivity, classCount: classes)
    if let classWeights, let weights = parseWeights(classWeights) {
      parameters.classBalance = .fixed(weights)
    } else {
      switch classBalance {
      case .none: parameters.classBalance = .none
      case .image: parameters.classBalance = .image
      case .fixed: parameters.classBalance = .none  // validate() requires --class-weights
      case .dataset:
        parameters.classBalance = .dataset(try datasetFrequencies(parameters: parameters, options: options))
      }
    }
    let instances = InstanceMap(mask: maskImage, kind: parameters.maskKind, connectivity: parameters.connectivity)
    let weights = WeightMap.compute(instances: instances, parameters: parameters, threads: threads)
    let values = weights.floatSamples()
    let bytes: [UInt8]
    if out.lowercased().hasSuffix(".npy") {
      bytes = NpyArray(image: weights, dtype: .float32, squeeze: true).encoded()
    } else {
      bytes = try TIFFCodec.encode([weights], options: .init(compression: .deflate, predictor: true))
    }
    try FileIO.writeAtomically(bytes, to: out)
    let balance = WeightMap.classWeights(instances: instances, parameters: parameters)
    let mean = values.reduce(0.0) { $0 + Double($1) } / Double(max(values.count, 1))
    print(
      "\(out): \(weights.width) × \(weights.height) float32 weight map; \(instances.cellCount) cells (\(instances.kind.rawValue)); "
        + "w min \(formatNumber(Double(values.min() ?? 0))) max \(formatNumber(Double(values.max() ?? 0))) mean \(formatNumber(mean)); "
        + "w_c per class \(balance.map { formatNumber($0) }.joined(separator: ", "))")
    if let preview {
      let canvas = Display.heatMapWithBar(values, width: weights.width, height: weights.height, title: "w(x)")
      try FileIO.writeAtomically(try PNGCodec.encode(canvas.image), to: preview)
      print("\(preview): heat map (viridis) with colour scale")
    }
  }

  func datasetFrequencies(parameters: WeightMapParameters, options: DecodeOptions) throws -> ClassFrequencies {
    guard let folder = datasetMasks else { return ClassFrequencies() }
    let files = try ImageFiles.list(folder, recursive: true)
    if files.isEmpty { throw ImageIOError(.unreadable, path: folder, "no mask files in this folder") }
    var frequencies = ClassFrequencies()
    for file in files {
      let m = try LabelMask.read(file, options: options)
      frequencies.add(classes: InstanceMap(mask: m, kind: parameters.maskKind, connectivity: parameters.connectivity).classes)
    }
    return frequencies
  }
}
