import SegCore
import SegIO
import SegRender
import SegTiling
import SegTrain

/// What a bioimage.io package says about a model beyond the network itself.
public struct BioimageioOptions: Sendable {
  /// The model's name (5–128 letters, digits, spaces and `_+-()`).
  public var name: String
  public var description: String
  public var authors: [String]
  /// An SPDX licence identifier.
  public var license: String
  public var tags: [String]
  /// ISO 8601, e.g. `2025-01-31T12:00:00`.
  public var timestamp: String
  /// The training data: a bioimage.io dataset description (`type: dataset`, name,
  /// description, …).
  public var trainingData: JSONValue?
  /// `config.bioimageio.training` (optimizer, loss_function, …).
  public var training: JSONValue?
  /// Markdown for the documentation's Validation section (e.g. the run's validation scores).
  public var validation: String
  /// Channel names of the input (default channel0, channel1, …) and class names of the
  /// output (default background, foreground for two classes; class0, class1, … otherwise).
  public var channelNames: [String]?
  public var classNames: [String]?
  /// Where the test tile comes from, for the documentation (e.g. the sample's file name).
  public var sampleDescription: String

  public init(
    name: String, description: String, authors: [String], license: String = "CC-BY-4.0",
    tags: [String] = ["unet", "segmentation", "2d", "swift-unet"], timestamp: String, trainingData: JSONValue? = nil,
    training: JSONValue? = nil, validation: String = "", sampleDescription: String = "a sample image", channelNames: [String]? = nil,
    classNames: [String]? = nil
  ) {
    self.name = name
    self.description = description
    self.authors = authors
    self.license = license
    self.tags = tags
    self.timestamp = timestamp
    self.trainingData = trainingData
    self.training = training
    self.validation = validation
    self.channelNames = channelNames
    self.classNames = classNames
    self.sampleDescription = sampleDescription
  }
}

/// A bioimage.io model package: the zip and what is in it.
public struct BioimageioPackage: Sendable {
  public var zip: [UInt8]
  /// Member names and sizes, in archive order.
  public var members: [(name: String, bytes: Int)]
  /// The rdf.yaml text.
  public var rdf: String
}

extension ModelExporter {
  /// The bioimage.io citation of the U-Net paper.
  public static let unetCitation: JSONValue = .object([
    ("text", "Ronneberger, O., Fischer, P., Brox, T. (2015). U-Net: Convolutional Networks for Biomedical Image Segmentation. MICCAI 2015, LNCS 9351, 234-241."),
    ("doi", "10.1007/978-3-319-24574-4_28"),
  ])

  /// Usable output pixels per side of the test tile (before the halo).
  static let testOutputSize = 96

  /// A bioimage.io model package (model spec 0.5): `rdf.yaml`, `weights.onnx` (the network
  /// without normalisation: the rdf's `preprocessing` applies it), a test input (a raw tile
  /// cut from the centre of `sample`, mirrored where the sample is smaller) with the
  /// probabilities our own trainer computes for it, the same pair as TIFF sample tensors, a
  /// cover image (tile | foreground probability), and `README.md`.
  ///
  /// - Parameter sample: a raw image as the network's users have it (before normalisation),
  ///   with the network's channel count.
  public func bioimageioPackage(sample: Image, options: BioimageioOptions) throws(ExportError) -> BioimageioPackage {
    let c = network.inputChannels, k = network.classes
    guard sample.channels == c else {
      throw ExportError(.badSample, path: nil, "the sample image has \(sample.channels) channel(s); the network takes \(c)")
    }
    let s = network.sizes
    let size = s.input(forUsableOutputAtLeast: Self.testOutputSize)
    let raw = OverlapTilePlan.window(sample, x: (sample.width - size) / 2, y: (sample.height - size) / 2, width: size, height: size)
    var normalised = raw.toFloat32()
    normalization.apply(to: &normalised)
    let p = network.probabilities(Tensor(shape: TensorShape(n: 1, c: c, h: size, w: size), data: normalised.floatSamples()))
    let out = p.shape.h
    let probabilities = Image(width: out, height: out, channels: k, pixels: p.data)

    var files: [(String, [UInt8])] = []
    let weights = try onnx()
    let testInput = NpyArray(dtype: .float32, shape: [1, c, size, size], values: raw.toFloat32().floatSamples()).encoded()
    let testOutput = NpyArray(dtype: .float32, shape: [1, k, out, out], values: p.data).encoded()
    let sampleInput: [UInt8]
    let sampleOutput: [UInt8]
    do throws(ImageIOError) {
      let plain = TIFFCodec.EncodeOptions(compression: .deflate, predictor: false)
      sampleInput = try TIFFCodec.encode((0..<c).map { raw.channel($0) }, options: plain)
      sampleOutput = try TIFFCodec.encode((0..<k).map { probabilities.channel($0) }, options: plain)
    } catch {
      throw ExportError(.badSample, path: nil, "cannot write the sample tensors: \(error.message)")
    }
    let cover: [UInt8]
    do throws(ImageIOError) {
      cover = try PNGCodec.encode(Self.cover(raw: raw, probabilities: probabilities, halo: s.halo))
    } catch {
      throw ExportError(.badSample, path: nil, "cannot draw the cover: \(error.message)")
    }
    let readme = documentation(options: options, tile: size)
    files = [
      ("weights.onnx", weights), ("test_input.npy", testInput), ("test_output.npy", testOutput),
      ("sample_input.tif", sampleInput), ("sample_output.tif", sampleOutput), ("cover.png", cover),
      ("README.md", Array(readme.utf8)),
    ]
    let hashes = Dictionary(uniqueKeysWithValues: files.map { ($0.0, SHA256.hex($0.1)) })
    let rdf = YAMLWriter.document(rdfDescription(options: options, sha256: hashes))
    var zip = ZipWriter()
    try zip.add("rdf.yaml", Array(rdf.utf8))
    for (name, bytes) in files { try zip.add(name, bytes) }
    return BioimageioPackage(
      zip: try zip.encoded(), members: [("rdf.yaml", rdf.utf8.count)] + files.map { ($0.0, $0.1.count) }, rdf: rdf)
  }

  /// The rdf.yaml content (bioimage.io model spec 0.5).
  func rdfDescription(options o: BioimageioOptions, sha256: [String: String]) -> JSONValue {
    let c = network.inputChannels, k = network.classes
    let s = network.sizes
    let channels = o.channelNames ?? (0..<c).map { "channel\($0)" }
    let classNames = o.classNames ?? (k == 2 ? ["background", "foreground"] : (0..<k).map { "class\($0)" })
    func file(_ name: String) -> JSONValue { .object([("source", .string(name)), ("sha256", .string(sha256[name] ?? ""))]) }
    let minimum = s.input(forUsableOutputAtLeast: 1)
    func inputAxis(_ id: String) -> JSONValue {
      .object([("type", "space"), ("id", .string(id)), ("size", .object([("min", .int(minimum)), ("step", .int(s.step))]))])
    }
    func outputAxis(_ id: String) -> JSONValue {
      var fields: [(String, JSONValue)] = [
        ("type", "space"), ("id", .string(id)),
        ("size", .object([("tensor_id", .string(Self.inputName)), ("axis_id", .string(id)), ("offset", .int(s.outputOffset))])),
      ]
      if s.halo > 0 { fields.append(("halo", .int(s.halo))) }
      return .object(fields)
    }
    let input: JSONValue = .object([
      ("id", .string(Self.inputName)),
      ("description", .string("raw image; the preprocessing applies the training normalisation")),
      ("axes", .array([.object([("type", "batch")]), .object([("type", "channel"), ("channel_names", .array(channels.map { .string($0) }))]), inputAxis("y"), inputAxis("x")])),
      ("test_tensor", file("test_input.npy")), ("sample_tensor", file("sample_input.tif")),
      ("data", .object([("type", "float32")])),
      ("preprocessing", .array(normalization.bioimageioPreprocessing(channels: c))),
    ])
    let output: JSONValue = .object([
      ("id", .string(Self.outputName)),
      ("description", .string("class probabilities (softmax over channels)")),
      ("axes", .array([.object([("type", "batch")]), .object([("type", "channel"), ("channel_names", .array(classNames.map { .string($0) }))]), outputAxis("y"), outputAxis("x")])),
      ("test_tensor", file("test_output.npy")), ("sample_tensor", file("sample_output.tif")),
      ("data", .object([("type", "float32"), ("range", .array([0.0, 1.0]))])),
    ])
    var bioimageio: [(String, JSONValue)] = [
      ("architecture_type", .string(network.architecture)),
      ("architecture_description", .string("\(network.architecture) (Ronneberger et al. 2015) trained with swift-unet; configuration: \(network.configuration.serialized())")),
      ("model_parameter_count", .int(network.parameterCount)),
    ]
    if let t = o.training { bioimageio.append(("training", t)) }
    var fields: [(String, JSONValue)] = [
      ("type", "model"), ("format_version", "0.5.4"), ("name", .string(o.name)), ("description", .string(o.description)),
      ("authors", .array(o.authors.map { .object([("name", .string($0))]) })),
      ("cite", .array([Self.unetCitation] + (network.citation.map { [$0] } ?? []))), ("license", .string(o.license)), ("documentation", "README.md"),
      ("covers", .array(["cover.png"])), ("tags", .array(o.tags.map { .string($0) })), ("timestamp", .string(o.timestamp)),
      ("inputs", .array([input])), ("outputs", .array([output])),
      ("weights", .object([("onnx", .object([("source", "weights.onnx"), ("sha256", .string(sha256["weights.onnx"] ?? "")), ("opset_version", .int(ONNX.opsetVersion))]))])),
    ]
    if let d = o.trainingData { fields.append(("training_data", d)) }
    fields.append(("config", .object([
      ("bioimageio", .object(bioimageio)),
      ("swift_unet", .object([("network", network.configuration), ("normalization", normalization.description)] + provenance.map { ($0.0, .string($0.1)) })),
    ])))
    return .object(fields)
  }

  /// README.md of the package.
  func documentation(options o: BioimageioOptions, tile: Int) -> String {
    let s = network.sizes
    var text = """
      # \(o.name)

      \(o.description)

      ## Network

      \(network.architecture) (Ronneberger et al. 2015) trained with swift-unet: \(network.parameterCount) parameters, \
      \(network.inputChannels) input channel(s), \(network.classes) classes. Configuration: `\(network.configuration.serialized())`.

      Input tiles are \(s.min) + n·\(s.step) pixels per side; the output is \
      \(s.outputOffset == 0 ? "the same size" : "\(-s.outputOffset) pixels smaller per axis (unpadded convolutions)")\
      \(s.halo > 0 ? ", of which \(s.halo) pixels per side see zero padding (the halo: crop it when tiling)" : ""). \
      The output is the softmax over classes (probabilities).

      ## Pre-processing

      The training normalisation, applied by this package's `preprocessing`: \(normalization.summary).

      ## Training

      """
    text += "\n"
    for (key, value) in provenance { text += "- \(key): `\(value)`\n" }
    if case .object(let d)? = o.trainingData, let description = d.first(where: { $0.0 == "description" })?.1, case .string(let t) = description {
      text += "\nTraining data: \(t)\n"
    }
    text += """

      ## Validation

      The test tensors are a \(tile) × \(tile) tile from the centre of \(o.sampleDescription) and the probabilities \
      swift-unet's own inference computes for it (`unet predict` tile by tile); bioimage.io consumers must reproduce \
      them. To validate on images with labels not used in training: predict them (`unet predict`, or any \
      bioimage.io consumer) and score with `unet eval PREDICTIONS LABELS` (Dice, IoU, pixel error, Rand error).

      \(o.validation)

      ## Citation

      Ronneberger, O., Fischer, P., Brox, T. (2015). U-Net: Convolutional Networks for Biomedical Image Segmentation. \
      MICCAI 2015. doi:10.1007/978-3-319-24574-4_28

      """
    return text
  }

  /// The cover: the tile's centre (the region the output covers, inside the halo) next to
  /// the last class's probability (viridis), each scaled to 256 × 256 (2:1 overall).
  static func cover(raw: Image, probabilities: Image, halo: Int) -> Image {
    let out = probabilities.width
    let inner = max(1, out - 2 * halo)
    let offset = (raw.width - out) / 2 + halo
    let region = OverlapTilePlan.crop(raw.channel(0), x: offset, y: offset, width: inner, height: inner)
    let left = Display.canvas(for: region, alwaysWindow: true)
    let p = OverlapTilePlan.crop(probabilities.channel(probabilities.channels - 1), x: halo, y: halo, width: inner, height: inner)
    let right = Display.heatMap(p.floatSamples(), width: inner, height: inner, range: 0...1)
    let side = 256
    var canvas = Canvas(width: 2 * side, height: side)
    for (i, panel) in [left, right].enumerated() {
      for y in 0..<side {
        for x in 0..<side {
          canvas.set(x: i * side + x, y: y, panel.color(x: x * inner / side, y: y * inner / side))
        }
      }
    }
    return canvas.image
  }
}
