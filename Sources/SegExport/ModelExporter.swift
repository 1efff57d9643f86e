import SegCore

/// Turns a trained network (any ``ExportableNetwork``) and its training normalisation into
/// ONNX, safetensors and bioimage.io files (``bioimageioPackage(sample:options:)``).
public struct ModelExporter: Sendable {
  public var network: any ExportableNetwork
  public var normalization: ExportNormalization
  /// Facts kept in every file's metadata (checkpoint step, training settings, …), in order.
  public var provenance: [(String, String)]
  /// The producing tool's version (ONNX `producer_version`).
  public var producerVersion: String

  public init(network: any ExportableNetwork, normalization: ExportNormalization, provenance: [(String, String)] = [], producerVersion: String) {
    self.network = network
    self.normalization = normalization
    self.provenance = provenance
    self.producerVersion = producerVersion
  }

  /// Graph input and output names.
  public static let inputName = "input"
  public static let outputName = "probabilities"

  /// The sizes a network input may have, for people and metadata.
  public var sizesDescription: JSONValue {
    let s = network.sizes
    return .object([("min", .int(s.min)), ("step", .int(s.step)), ("output_offset", .int(s.outputOffset)), ("halo", .int(s.halo))])
  }

  // MARK: - ONNX

  /// The ONNX model: `input` (N × C × H × W float32, H and W dynamic: any `min + n·step`) →
  /// the network → Softmax over channels → `probabilities` (N × K × H' × W', H' = H + offset).
  ///
  /// - Parameter normalizationInGraph: apply the training normalisation inside the graph
  ///   (Mul + Add per channel), so `input` is the raw image. Only for fixed affine
  ///   normalisations (`scale`, data-set `zscore`); throws `unsupported` for per-image ones,
  ///   which depend on the whole image and not the tile the graph sees. Otherwise `input` is
  ///   the normalised image and the metadata says how to normalise.
  public func onnxModel(normalizationInGraph: Bool = false) throws(ExportError) -> ONNX.Model {
    let c = network.inputChannels
    var g = ONNX.GraphBuilder(reserving: [Self.inputName, Self.outputName])
    var x = Self.inputName
    if normalizationInGraph, !normalization.stages.isEmpty {
      guard let (gain, offset) = normalization.affine(channels: c) else {
        throw ExportError(
          .unsupported, path: nil,
          "the normalisation \(normalization.firstPerImageStage ?? "") needs statistics of the whole image and cannot run inside the graph on tiles",
          hint: "export without --normalization-in-graph: the metadata then states the normalisation to apply first")
      }
      let gainName = g.constant("normalization.gain", floats: gain, shape: [1, c, 1, 1])
      let offsetName = g.constant("normalization.offset", floats: offset, shape: [1, c, 1, 1])
      x = g.add("Mul", [x, gainName], name: "normalization.scale")
      x = g.add("Add", [x, offsetName], name: "normalization.shift")
    }
    _ = network.lower(into: &g, input: x)
    g.renameLastOutput(to: Self.outputName)
    let s = network.sizes
    let same = s.outputOffset == 0
    let inputDoc = normalizationInGraph || normalization.stages.isEmpty
      ? "the image (N × C × H × W float32); H and W each \(s.min) + n·\(s.step)"
      : "the image normalised as metadata 'normalization' says (\(normalization.summary)); N × C × H × W float32, H and W each \(s.min) + n·\(s.step)"
    let outputDoc = "class probabilities (softmax over channels), N × K × H\(same ? "" : " − \(-s.outputOffset)") × W\(same ? "" : " − \(-s.outputOffset)")"
      + (s.halo > 0 ? "; crop \(s.halo) pixels per side when tiling (they see zero padding)" : "")
    let graph = ONNX.Graph(
      name: "swift_unet", nodes: g.nodes, initializers: g.initializers,
      inputs: [ONNX.ValueInfo(name: Self.inputName, shape: [.parameter("batch"), .value(c), .parameter("height"), .parameter("width")], documentation: inputDoc)],
      outputs: [ONNX.ValueInfo(
        name: Self.outputName,
        shape: [.parameter("batch"), .value(network.classes), .parameter(same ? "height" : "out_height"), .parameter(same ? "width" : "out_width")],
        documentation: outputDoc)])
    var metadata: [(String, String)] = [
      ("architecture", network.architecture),
      ("network", network.configuration.serialized()),
      ("normalization", normalization.description.serialized()),
      ("normalization_in_graph", normalizationInGraph && !normalization.stages.isEmpty ? "true" : "false"),
      ("input_sizes", sizesDescription.serialized()),
      ("classes", String(network.classes)),
    ]
    metadata += provenance
    return ONNX.Model(
      graph: graph, producerName: "swift-unet", producerVersion: producerVersion,
      documentation: "\(network.architecture) trained with swift-unet (Ronneberger et al. 2015, doi:10.1007/978-3-319-24574-4_28). Input: \(inputDoc). Output: \(outputDoc).",
      metadata: metadata)
  }

  /// The `.onnx` file's bytes.
  public func onnx(normalizationInGraph: Bool = false) throws(ExportError) -> [UInt8] {
    try onnxModel(normalizationInGraph: normalizationInGraph).encoded()
  }

  // MARK: - safetensors

  /// The reference PyTorch module's `state_dict` as a safetensors file, with the network
  /// configuration, normalisation and provenance in `__metadata__` (`format: pt`).
  public func safetensors() -> [UInt8] {
    var w = SafetensorsWriter()
    for t in network.stateDict() {
      switch t.values {
      case .float32(let f): w.add(t.name, floats: f, shape: t.shape)
      case .int64(let v): w.add(t.name, int64s: v, shape: t.shape)
      }
    }
    w.metadata = [
      ("format", "pt"), ("architecture", network.architecture), ("network", network.configuration.serialized()),
      ("normalization", normalization.description.serialized()), ("input_sizes", sizesDescription.serialized()),
    ] + provenance
    return w.encoded()
  }
}
