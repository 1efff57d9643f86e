import Foundation
import SegCore
import SegIO
import SegModel
import SegTestSupport
import SegTiling
import SegTrain
import SegWorkflow
import Testing

/// The Python interpreters the export checks use: the project's interop venv (.ci/install:
/// onnx, onnxruntime, safetensors, tifffile, Pillow, bioimageio.core) and, for the PyTorch
/// check, the peers venv with torch (not installed by CI; that test is skipped there).
enum InteropPython {
  static let home = ProcessInfo.processInfo.environment["HOME"] ?? "/root"

  static func imports(_ python: String, _ modules: String) -> Bool {
    guard FileManager.default.isExecutableFile(atPath: python) else { return false }
    return (try? runCommand(python, ["-c", "import " + modules]))?.status == 0
  }

  /// The interop venv's python, when it has the ONNX and TIFF readers.
  static let interop: String? = {
    let env = ProcessInfo.processInfo.environment
    let python = env["UNET_INTEROP_PYTHON"] ?? (env["UNET_INTEROP_VENV"] ?? home + "/.cache/swift-unet-interop") + "/bin/python"
    return imports(python, "numpy, onnx, onnxruntime, safetensors, tifffile, PIL") ? python : nil
  }()

  static let bioimageio: Bool = interop.map { imports($0, "bioimageio.spec, bioimageio.core") } ?? false

  /// The site-packages of the interop venv (safetensors for the torch interpreter).
  static var interopSite: String? {
    guard let interop, let r = try? runCommand(interop, ["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]), r.status == 0 else { return nil }
    return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
  }

  /// A python with torch (the peers venv), when there is one.
  static let torch: String? = {
    let python = ProcessInfo.processInfo.environment["UNET_TORCH_PYTHON"] ?? home + "/.cache/swift-unet-peers/bin/python"
    guard imports(python, "torch, numpy"), interop != nil else { return nil }
    return python
  }()

  static var script: String { TestPaths.repositoryRoot + "/Tests/Interop/check_export.py" }
}

/// `unet export` checked by the formats' own tools: onnxruntime reproduces `unet predict`,
/// bioimage.io's validator and test runner accept the package, PyTorch loads the safetensors
/// into the reference module, and the probability TIFFs open in tifffile (without
/// imagecodecs) and Pillow.
@Suite(.serialized) struct ExportInteropTests {
  /// A network, the normalisation its checkpoint records, and its prediction settings.
  struct Case: CustomStringConvertible, Sendable {
    var name: String
    var network: NetworkConfiguration
    var normalize: String
    var statistics: String = "null"
    /// The normalisation is a fixed affine map, which the graph can apply.
    var inGraph: Bool = false
    var inference = InferenceSettings()
    /// Check that peers.py's builder loads the safetensors too (its default options).
    var peers = false
    /// UNet 3+: set the CGM's bias so that it says "no foreground" (the gate closes).
    var closeGate = false

    var description: String { name }
  }

  static let scale = #"[{"method": "scale", "factor": 0.00392156862745098}]"#
  static let cases: [Case] = [
    Case(name: "valid", network: .unet(UNetConfiguration(depth: 2, baseWidth: 4, padding: .valid)), normalize: scale, inGraph: true, peers: true),
    Case(
      name: "valid-bn", network: .unet(UNetConfiguration(depth: 3, baseWidth: 4, padding: .valid, batchNorm: true, dropout: 0.1)),
      normalize: #"[{"method": "zscore", "scope": "dataset"}]"#,
      statistics: #"{"mean": [110.0], "std": [45.0], "mean_all": 110.0, "std_all": 45.0}"#, inGraph: true),
    Case(name: "same-bilinear", network: .unet(UNetConfiguration(depth: 2, baseWidth: 4, padding: .same, upMode: .bilinear)), normalize: scale, inGraph: true),
    Case(name: "same-bn", network: .unet(UNetConfiguration(depth: 2, baseWidth: 6, padding: .same, batchNorm: true)), normalize: #"[{"method": "minmax"}]"#),
    Case(
      name: "valid-bn-bilinear-2ch-3cls",
      network: .unet(UNetConfiguration(depth: 2, baseWidth: 4, padding: .valid, upMode: .bilinear, batchNorm: true, inputChannels: 2, classes: 3)),
      normalize: #"[{"method": "percentile", "low": 1, "high": 99}]"#),
    Case(name: "unetpp-mean", network: .unetpp(UNetPlusPlusConfiguration(depth: 2, baseWidth: 4)), normalize: scale, inGraph: true, peers: true),
    Case(
      name: "unetpp-bn-bilinear-prune", network: .unetpp(UNetPlusPlusConfiguration(depth: 3, baseWidth: 3, upMode: .bilinear, batchNorm: true)),
      normalize: #"[{"method": "minmax"}]"#, inference: InferenceSettings(heads: .prune, pruneDepth: 2)),
    Case(
      name: "unet3p-cgm-sigmoid", network: .unet3p(UNet3PlusConfiguration(depth: 4, baseWidth: 2, cgmDropout: 0.3)), normalize: scale,
      inGraph: true, peers: true),
    Case(
      name: "unet3p-gate-closed", network: .unet3p(UNet3PlusConfiguration(depth: 2, baseWidth: 2, deepSupervision: false)), normalize: scale,
      inGraph: true, closeGate: true),
    Case(
      name: "unet3p-2ch-3cls",
      network: .unet3p(UNet3PlusConfiguration(depth: 2, baseWidth: 3, deepSupervision: false, cgm: false, inputChannels: 2, classes: 3)),
      normalize: #"[{"method": "percentile", "low": 1, "high": 99}]"#),
  ]

  /// A checkpoint of `c.network` after three SGD steps on random data (so batch-norm running
  /// statistics and affine parameters are far from their initial values).
  static func checkpoint(_ c: Case, in dir: String) throws -> String {
    let cfg = c.network
    let size = cfg.geometry.legalInputSizes(in: 36...1000).first ?? 0
    let out = cfg.outputSize(forInput: size) ?? 0
    var rng = RandomStream(seed: 17)
    let x = Tensor(
      shape: TensorShape(n: 2, c: cfg.inputChannels, h: size, w: size),
      data: (0..<(2 * cfg.inputChannels * size * size)).map { _ in Float(rng.uniform(-1, 2)) })
    let targets = (0..<(2 * out * out)).map { _ in Int32(rng.nextInt(below: cfg.labelClasses)) }
    let trainer = Trainer(
      model: Network(configuration: cfg, seed: 5),
      configuration: TrainingConfiguration(optimizer: .sgd(momentum: 0.9), schedule: .constant(0.05), seed: 6))
    for _ in 0..<3 { trainer.step(input: x, targets: targets) }
    let path = dir + "/\(c.name).ckpt"
    var checkpoint = Checkpoint(trainer, inference: c.inference, metadata: ["normalize": c.normalize, "dataset_statistics": c.statistics])
    if c.closeGate, let bias = checkpoint.model.view(named: "cgm.conv.bias") {
      checkpoint.model.parameters.replaceSubrange(bias.range, with: [20, -20])  // q ≈ (1, 0): absent
    }
    try checkpoint.write(to: path)
    return path
  }

  /// The case's input image: a fixture (its channels stacked as TIFF pages when the network
  /// takes more than one).
  static func image(_ c: Case, in dir: String) throws -> String {
    let source = TestPaths.fixtures + "/cells/images/cells_1.png"
    guard c.network.inputChannels > 1 else { return source }
    let gray = try ImageDecoder.read(source).pages[0]
    let second = Image(width: gray.width, height: gray.height, pixels: gray.labelSamples().map { UInt8(255 - $0) })
    let pages = Array([gray, second].prefix(c.network.inputChannels))
    let path = dir + "/\(c.name).tif"
    try FileIO.writeAtomically(try TIFFCodec.encode(pages), to: path)
    return path
  }

  /// The network configuration as the exports' metadata hold it.
  static func configurationJSON(_ cfg: NetworkConfiguration) throws -> Any {
    try JSONSerialization.jsonObject(with: try JSONEncoder().encode(cfg))
  }

  static func inferenceJSON(_ settings: InferenceSettings) throws -> Any {
    try JSONSerialization.jsonObject(with: try JSONEncoder().encode(settings))
  }

  /// Writes the JSON `cases` file for check_export.py.
  static func writeCases(_ cases: [[String: Any]], to path: String) throws {
    try JSONSerialization.data(withJSONObject: cases, options: [.sortedKeys]).write(to: URL(fileURLWithPath: path))
  }

  /// The first tile `unet predict` runs for `image`: its network input (normalised, and raw),
  /// its output size, and the part of the image it owns (later tiles overwrite the overlap;
  /// they sit on another phase of the pooling grid, so their values there differ).
  static func firstTile(_ checkpoint: String, _ image: String, tile: Int) throws
    -> (input: Image, x: Int, y: Int, output: Int, raw: Image, ownedWidth: Int, ownedHeight: Int)
  {
    let predictor = try Predictor(checkpointPath: checkpoint, tile: tile)
    let normalised = try predictor.load(image)
    let plan = OverlapTilePlan(imageWidth: normalised.width, imageHeight: normalised.height, tileOutput: predictor.tileOutput, margin: predictor.margin)
    let t = plan.tiles[0]
    let rawImage = Image.stack(try ImageDecoder.read(image).pages.map { $0.toFloat32() })
    let xs = Set(plan.tiles.map(\.x)).sorted(), ys = Set(plan.tiles.map(\.y)).sorted()
    let ownedWidth = min(predictor.tileOutput, xs.count > 1 ? xs[1] : normalised.width)
    let ownedHeight = min(predictor.tileOutput, ys.count > 1 ? ys[1] : normalised.height)
    return (plan.input(t, of: normalised), t.x, t.y, predictor.tileOutput, plan.input(t, of: rawImage), ownedWidth, ownedHeight)
  }

  static func npy(_ image: Image, to path: String) throws {
    try FileIO.writeAtomically(
      NpyArray(dtype: .float32, shape: [1, image.channels, image.height, image.width], values: image.floatSamples()).encoded(), to: path)
  }

  @Test(.enabled(if: InteropPython.interop != nil, "needs the interop venv (.ci/install)"))
  func onnxruntimeReproducesPredict() throws {
    guard let python = InteropPython.interop else { return }
    let dir = TestPaths.temporaryDirectory("export-onnx")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var records: [[String: Any]] = []
    for c in Self.cases {
      let ckpt = try Self.checkpoint(c, in: dir)
      let image = try Self.image(c, in: dir)
      let export = try runUnet(["export", ckpt, "--format", "onnx", "--out", "\(dir)/\(c.name).onnx"])
      #expect(export.status == 0, "\(c.name): \(export.stderr)")
      let inGraph = try runUnet(["export", ckpt, "--format", "onnx", "--normalization-in-graph", "--out", "\(dir)/\(c.name)-raw.onnx"])
      if c.inGraph {
        #expect(inGraph.status == 0, "\(c.name): \(inGraph.stderr)")
      } else {
        // Per-image normalisations need the whole image: refused, naming the stage.
        #expect(inGraph.status == 1 && inGraph.stderr.contains("cannot run inside the graph"), "\(c.name): \(inGraph.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/\(c.name)-raw.onnx"))
      }
      for format in ["npy", "tif"] {
        let r = try runUnet(["predict", ckpt, image, "--out", "\(dir)/\(c.name)-pred", "--tile", "64", "--prob-format", format, "--threads", "1"])
        #expect(r.status == 0, "\(c.name): \(r.stderr)")
      }
      let tile = try Self.firstTile(ckpt, image, tile: 64)
      try Self.npy(tile.input, to: "\(dir)/\(c.name)-tile.npy")
      try Self.npy(tile.raw, to: "\(dir)/\(c.name)-raw.npy")
      let stem = ImageFiles.stem(image)
      var record: [String: Any] = [
        "name": c.name, "onnx": "\(dir)/\(c.name).onnx", "tile": "\(dir)/\(c.name)-tile.npy", "tile_x": tile.x, "tile_y": tile.y,
        "tile_output": tile.output, "owned_width": tile.ownedWidth, "owned_height": tile.ownedHeight, "prob_npy": "\(dir)/\(c.name)-pred/\(stem).prob.npy", "prob_tif": "\(dir)/\(c.name)-pred/\(stem).prob.tif",
        "network": try Self.configurationJSON(c.network), "architecture": c.network.architecture.displayName,
      ]
      if c.inGraph {
        record["onnx_in_graph"] = "\(dir)/\(c.name)-raw.onnx"
        record["raw_tile"] = "\(dir)/\(c.name)-raw.npy"
      }
      records.append(record)
    }
    try Self.writeCases(records, to: dir + "/cases.json")
    let r = try runCommand(python, [InteropPython.script, "onnx", dir + "/cases.json"])
    #expect(r.status == 0 && r.stdout.contains("all ok"), "\(r.stdout)\(r.stderr)")
    #expect(r.stdout.split(separator: "\n").filter { $0.contains("onnxruntime vs unet predict max abs") }.count == Self.cases.count)
    print(r.stdout, terminator: "")
  }

  @Test(.enabled(if: InteropPython.bioimageio, "needs bioimageio.core in the interop venv (.ci/install)"))
  func bioimageioPackagesValidateAndReproduce() throws {
    guard let python = InteropPython.interop else { return }
    let dir = TestPaths.temporaryDirectory("export-bioimageio")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var packages: [String] = []
    for c in Self.cases where ["valid-bn", "same-bilinear", "valid-bn-bilinear-2ch-3cls", "unetpp-bn-bilinear-prune", "unet3p-cgm-sigmoid"].contains(c.name) {
      let ckpt = try Self.checkpoint(c, in: dir)
      let zip = "\(dir)/\(c.name).zip"
      let r = try runUnet(["export", ckpt, "--format", "bioimageio", "--out", zip, "--sample", try Self.image(c, in: dir), "--author", "Test Author"])
      #expect(r.status == 0, "\(c.name): \(r.stderr)")
      #expect(r.stdout.contains(zip + "!rdf.yaml") && r.stdout.contains(zip + "!weights.onnx"), "\(r.stdout)")
      packages.append(zip)
    }
    let r = try runCommand(python, [InteropPython.script, "bioimageio"] + packages)
    #expect(r.status == 0 && r.stdout.contains("all ok"), "\(r.stdout)\(r.stderr)")
    print(r.stdout, terminator: "")
  }

  @Test(.enabled(if: InteropPython.torch != nil, "needs torch (the peers venv); not installed in CI"))
  func torchLoadsTheSafetensors() throws {
    guard let python = InteropPython.torch else { return }
    let dir = TestPaths.temporaryDirectory("export-torch")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var records: [[String: Any]] = []
    for c in Self.cases {
      let ckpt = try Self.checkpoint(c, in: dir)
      let out = "\(dir)/\(c.name).safetensors"
      let r = try runUnet(["export", ckpt, "--format", "safetensors", "--out", out])
      #expect(r.status == 0, "\(c.name): \(r.stderr)")
      let tile = try Self.firstTile(ckpt, try Self.image(c, in: dir), tile: 64)
      try Self.npy(tile.input, to: "\(dir)/\(c.name)-tile.npy")
      let model = try Checkpoint.read(from: ckpt).model
      let p = model.predict(
        Tensor(shape: TensorShape(n: 1, c: tile.input.channels, h: tile.input.height, w: tile.input.width), data: tile.input.floatSamples()),
        settings: c.inference)
      try FileIO.writeAtomically(NpyArray(dtype: .float32, shape: [1, p.shape.c, p.shape.h, p.shape.w], values: p.data).encoded(), to: "\(dir)/\(c.name)-expected.npy")
      var record: [String: Any] = [
        "name": c.name, "safetensors": out, "tile": "\(dir)/\(c.name)-tile.npy", "expected": "\(dir)/\(c.name)-expected.npy",
        "network": try Self.configurationJSON(c.network), "inference": try Self.inferenceJSON(c.inference),
      ]
      if c.peers, let shared = TestPaths.shared { record["peers"] = shared + "/bench/peers.py" }
      records.append(record)
    }
    try Self.writeCases(records, to: dir + "/cases.json")
    let r = try runCommand(python, [InteropPython.script, "torch", dir + "/cases.json"], environment: ["UNET_EXTRA_SITE": InteropPython.interopSite ?? ""])
    #expect(r.status == 0 && r.stdout.contains("all ok"), "\(r.stdout)\(r.stderr)")
    print(r.stdout, terminator: "")
  }
}
