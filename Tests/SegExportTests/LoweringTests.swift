import SegAugment
import SegCore
@testable import SegExport
import SegIO
import SegModel
import SegTestSupport
import SegTrain
import Testing

/// The lowering of a freshly initialised U-Net.
func lowering(_ cfg: UNetConfiguration, seed: UInt64 = 1, steps: Int = 0) throws -> UNetLowering {
  try #require(UNetLowering(model: Network(configuration: cfg, seed: seed), trainingSteps: steps))
}

@Suite struct UNetLoweringTests {
  static let configurations: [UNetConfiguration] = [UNetConfiguration.Padding.valid, .same].flatMap { padding in
    [UNetConfiguration.UpMode.transposed, .bilinear].flatMap { up in
      [false, true].map { bn in UNetConfiguration(depth: 2, baseWidth: 3, padding: padding, upMode: up, batchNorm: bn, inputChannels: 2, classes: 3) }
    }
  }

  /// Every parameter and batch-norm statistic goes to exactly one state_dict tensor.
  @Test(arguments: configurations)
  func stateDictCoversEveryValueOnce(_ cfg: UNetConfiguration) throws {
    let lowering = try SegExportTests.lowering(cfg, steps: 12)
    var parameterHits = [Int](repeating: 0, count: lowering.model.parameters.count)
    var stateHits = [Int](repeating: 0, count: lowering.model.state.count)
    for b in lowering.bindings() {
      for i in b.view.range {
        if b.isState { stateHits[i] += 1 } else { parameterHits[i] += 1 }
      }
    }
    #expect(parameterHits.allSatisfy { $0 == 1 } && stateHits.allSatisfy { $0 == 1 })
    let dict = lowering.stateDict()
    #expect(Set(dict.map(\.name)).count == dict.count)
    let tracked = dict.filter { $0.name.hasSuffix(".num_batches_tracked") }
    #expect(tracked.count == (cfg.batchNorm ? 2 * (2 * cfg.depth + 1) : 0))
    #expect(tracked.allSatisfy { $0.values == .int64([12]) && $0.shape == [] })
  }

  /// The names of peers.py's build_unet (nn.Sequential indices) and their shapes.
  @Test func referenceModuleNames() throws {
    let plain = try lowering(UNetConfiguration(depth: 1, baseWidth: 2))
    #expect(plain.stateDict().map(\.name) == [
      "down.0.0.weight", "down.0.0.bias", "down.0.2.weight", "down.0.2.bias", "down.1.0.weight", "down.1.0.bias",
      "down.1.2.weight", "down.1.2.bias", "up.0.weight", "up.0.bias", "upblock.0.0.weight", "upblock.0.0.bias",
      "upblock.0.2.weight", "upblock.0.2.bias", "head.weight", "head.bias",
    ])
    #expect(plain.stateDict().map(\.shape)[8] == [4, 2, 2, 2])  // ConvTranspose2d: C_in × C_out × 2 × 2
    let bn = try lowering(UNetConfiguration(depth: 1, baseWidth: 2, batchNorm: true))
    #expect(bn.stateDict().prefix(7).map(\.name) == [
      "down.0.0.weight", "down.0.1.weight", "down.0.1.bias", "down.0.1.running_mean", "down.0.1.running_var",
      "down.0.1.num_batches_tracked", "down.0.3.weight",
    ])
    #expect(bn.stateDict()[4].floats == [1, 1])  // running variance starts at 1
  }

  /// U-Net++ and UNet 3+: every value once, under the names of peers.py's builders.
  @Test func nestedNetworksNames() throws {
    for cfg in [
      NetworkConfiguration.unetpp(UNetPlusPlusConfiguration(depth: 2, baseWidth: 2, batchNorm: true)),
      .unet3p(UNet3PlusConfiguration(depth: 2, baseWidth: 2)), .unet3p(UNet3PlusConfiguration(depth: 3, baseWidth: 2, cgm: false, classes: 3)),
    ] {
      let model = Network(configuration: cfg, seed: 1)
      let lowering = try #require(Lowering.of(model, trainingSteps: 3))
      let dict = lowering.stateDict()
      let floats = dict.filter { !$0.name.hasSuffix("num_batches_tracked") }.map(\.floats.count).reduce(0, +)
      #expect(floats == model.parameters.count + model.state.count && Set(dict.map(\.name)).count == dict.count)
      #expect(lowering.classes == cfg.labelClasses)
    }
    let pp = try #require(UNetPlusPlusLowering(model: Network(configuration: .unetpp(UNetPlusPlusConfiguration(depth: 1, baseWidth: 2)), seed: 1)))
    #expect(pp.stateDict().map(\.name) == [
      "down.0.0.weight", "down.0.0.bias", "down.0.2.weight", "down.0.2.bias", "down.1.0.weight", "down.1.0.bias", "down.1.2.weight",
      "down.1.2.bias", "node.0.up.weight", "node.0.up.bias", "node.0.block.0.weight", "node.0.block.0.bias", "node.0.block.2.weight",
      "node.0.block.2.bias", "head.0.weight", "head.0.bias",
    ])
    #expect(UNet3PlusLowering.referenceName("enc.1.unit2.bn.running_var") == "enc.1.1.1.running_var")
    #expect(UNet3PlusLowering.referenceName("dec.0.src.3.conv.weight") == "dec.0.src.3.0.weight")
    #expect(UNet3PlusLowering.referenceName("dec.2.fuse.bn.bias") == "dec.2.fuse.1.bias")
    #expect(UNet3PlusLowering.referenceName("cgm.conv.bias") == "cgm.1.bias")
    #expect(UNet3PlusLowering.referenceName("head.3.weight") == "head.3.weight")
    // A pruned U-Net++ graph has only the nodes its head needs.
    let deep = Network(configuration: .unetpp(UNetPlusPlusConfiguration(depth: 3, baseWidth: 2)), seed: 1)
    let pruned = try #require(UNetPlusPlusLowering(model: deep, inference: InferenceSettings(heads: .prune, pruneDepth: 1)))
    let graph = try ModelExporter(network: pruned, normalization: ExportNormalization(stages: []), producerVersion: "t").onnxModel().graph
    #expect(graph.nodes.filter { $0.opType == "ConvTranspose" }.count == 1 && graph.nodes.filter { $0.opType == "Softmax" }.count == 1)
    #expect(UNetPlusPlusLowering(model: deep, inference: InferenceSettings(heads: .prune, pruneDepth: 4)) == nil)
  }

  /// Sizes: the paper's network (572 → 388, crops 88/40/16/4) and a same-padding one.
  @Test func sizesAndCrops() throws {
    let paper = try lowering(UNetConfiguration(depth: 4, baseWidth: 1))
    #expect(paper.sizes == InputSizes(min: 188, step: 16, outputOffset: -184, halo: 0))
    #expect(paper.cropOffsets().map { [$0.top, $0.bottom] } == [[88, 88], [40, 40], [16, 16], [4, 4]])
    let cfg = paper.cfg
    for n in 1...700 {
      let legal = n >= 188 && (n - 188) % 16 == 0
      #expect((cfg.outputSize(forInput: n) != nil) == legal, "size \(n)")
      if legal { #expect(cfg.outputSize(forInput: n) == n - 184) }
    }
    #expect(paper.sizes.input(forUsableOutputAtLeast: 388) == 572)
    let same = try lowering(UNetConfiguration(depth: 3, baseWidth: 1, padding: .same))
    #expect(same.sizes == InputSizes(min: 8, step: 8, outputOffset: 0, halo: 8))
    #expect(same.cropOffsets().allSatisfy { $0.top == 0 && $0.bottom == 0 })
    #expect(same.sizes.input(forUsableOutputAtLeast: 1) == 24 && same.sizes.input(forUsableOutputAtLeast: 96) == 112)
  }

  /// The graph: one Conv per convolution, BatchNormalization per unit with batch norm, a
  /// Slice per crop, Resize per bilinear up-sampling; initialisers named as the state_dict.
  @Test(arguments: configurations)
  func graphStructure(_ cfg: UNetConfiguration) throws {
    let lowering = try SegExportTests.lowering(cfg)
    let model = try ModelExporter(network: lowering, normalization: ExportNormalization(stages: []), producerVersion: "t").onnxModel()
    let ops = model.graph.nodes.map(\.opType)
    func count(_ op: String) -> Int { ops.filter { $0 == op }.count }
    let units = 2 * (2 * cfg.depth + 1)
    #expect(count("Conv") == units + 1 + (cfg.upMode == .bilinear ? cfg.depth : 0))
    #expect(count("BatchNormalization") == (cfg.batchNorm ? units : 0) && count("Relu") == units)
    #expect(count("MaxPool") == cfg.depth && count("Concat") == cfg.depth && count("Softmax") == 1)
    #expect(count("Slice") == (cfg.padding == .valid ? cfg.depth : 0))
    #expect(count("Resize") == (cfg.upMode == .bilinear ? cfg.depth : 0) && count("ConvTranspose") == (cfg.upMode == .transposed ? cfg.depth : 0))
    let names = Set(model.graph.initializers.map(\.name))
    #expect(lowering.stateDict().filter { !$0.name.hasSuffix("num_batches_tracked") }.allSatisfy { names.contains($0.name) })
    #expect(model.graph.nodes.last?.outputs == ["probabilities"])
    // Every node input is the graph input, an initialiser, an earlier output or omitted.
    var known = names.union(["input", ""])
    for n in model.graph.nodes {
      #expect(n.inputs.allSatisfy { known.contains($0) }, "\(n.name) reads an undefined value")
      known.formUnion(n.outputs)
    }
  }
}

@Suite struct NormalizationExportTests {
  static let stats = ChannelStatistics(mean: [100, 20], std: [50, 4])

  @Test func affineMatchesTheStages() {
    let n = ExportNormalization(stages: [
      NormalizeStage(method: .scale(0.5)), NormalizeStage(method: .zscoreDataset, datasetStatistics: Self.stats),
    ])
    var rng = RandomStream(seed: 3)
    let pixels = (0..<(2 * 64)).map { _ in Float(rng.uniform(0, 255)) }
    var image = Image(width: 8, height: 8, channels: 2, pixels: pixels)
    n.apply(to: &image)
    guard let (gain, offset) = n.affine(channels: 2) else {
      Issue.record("scale and data-set z-score are affine")
      return
    }
    let expected = image.floatSamples()
    var worst: Float = 0
    for i in pixels.indices {
      let c = i / 64
      worst = max(worst, abs(pixels[i] * gain[c] + offset[c] - expected[i]))
    }
    #expect(worst < 1e-5, "worst difference \(worst)")
    #expect(ExportNormalization(stages: [NormalizeStage(method: .minmax)]).affine(channels: 1) == nil)
  }

  @Test func bioimageioSteps() {
    let n = ExportNormalization(stages: [
      NormalizeStage(method: .scale(2)), NormalizeStage(method: .percentile(low: 1, high: 99.8), perChannel: false),
      NormalizeStage(method: .zscoreImage), NormalizeStage(method: .zscoreDataset, datasetStatistics: Self.stats),
      NormalizeStage(method: .minmax),
    ])
    #expect(JSONValue.array(n.bioimageioPreprocessing(channels: 2)).serialized() == """
      [{"id": "scale_linear", "kwargs": {"gain": 2.0, "offset": 0.0}}, \
      {"id": "scale_range", "kwargs": {"axes": ["channel", "y", "x"], "min_percentile": 1.0, "max_percentile": 99.8}}, \
      {"id": "clip", "kwargs": {"min": 0.0, "max": 1.0}}, \
      {"id": "zero_mean_unit_variance", "kwargs": {"axes": ["y", "x"]}}, \
      {"id": "fixed_zero_mean_unit_variance", "kwargs": {"axis": "channel", "mean": [100.0, 20.0], "std": [50.0, 4.0]}}, \
      {"id": "scale_range", "kwargs": {"axes": ["y", "x"], "min_percentile": 0.0, "max_percentile": 100.0}}]
      """)
    #expect(n.firstPerImageStage == "percentile")
  }

  @Test func perImageNormalisationIsRefusedInTheGraph() throws {
    let network = try lowering(UNetConfiguration(depth: 1, baseWidth: 2, padding: .same))
    let exporter = ModelExporter(network: network, normalization: ExportNormalization(stages: [NormalizeStage(method: .zscoreImage)]), producerVersion: "t")
    #expect(throws: ExportError.self) { try exporter.onnx(normalizationInGraph: true) }
    do {
      _ = try exporter.onnx(normalizationInGraph: true)
    } catch {
      #expect(error.code == .unsupported && error.message.contains("zscore (scope: image)"))
    }
    let metadata = Dictionary(uniqueKeysWithValues: try exporter.onnxModel().metadata.map { ($0.0, $0.1) })
    #expect(metadata["normalization"] == #"[{"method": "zscore", "scope": "image", "per_channel": true}]"#)
    #expect(metadata["normalization_in_graph"] == "false" && metadata["input_sizes"] == #"{"min": 2, "step": 2, "output_offset": 0, "halo": 2}"#)
  }
}

@Suite struct BioimageioPackageTests {
  /// The package's members, its rdf, and a test output equal to the network's own probabilities.
  @Test func packageContents() throws {
    let cfg = UNetConfiguration(depth: 2, baseWidth: 3, padding: .valid, batchNorm: true)
    let network = try lowering(cfg, seed: 4)
    let scale = NormalizeStage(method: .scale(1.0 / 255))
    let exporter = ModelExporter(network: network, normalization: ExportNormalization(stages: [scale]), producerVersion: "t")
    let sample = try ImageDecoder.read(TestPaths.fixtures + "/cells/images/cells_0.png").pages[0]
    let options = BioimageioOptions(name: "Test model", description: "d", authors: ["A"], timestamp: "2025-01-01T00:00:00")
    let package = try exporter.bioimageioPackage(sample: sample, options: options)
    let zip = try ZipReader(package.zip)
    #expect(zip.members.map(\.name) == ["rdf.yaml", "weights.onnx", "test_input.npy", "test_output.npy", "sample_input.tif", "sample_output.tif", "cover.png", "README.md"])
    #expect(package.rdf.contains("format_version: \"0.5.4\"") && package.rdf.contains("doi: \"10.1007/978-3-319-24574-4_28\""))
    #expect(package.rdf.contains("id: \"scale_linear\"") && package.rdf.contains("offset: -\(-network.sizes.outputOffset)"))
    #expect(package.rdf.contains("sha256: \"\(SHA256.hex(zip.data("weights.onnx") ?? []))\""))
    let input = try NpyArray.decode(zip.data("test_input.npy") ?? [])
    let output = try NpyArray.decode(zip.data("test_output.npy") ?? [])
    let size = network.sizes.input(forUsableOutputAtLeast: 96)
    #expect(input.shape == [1, 1, size, size] && output.shape == [1, 2, size - 40, size - 40] && network.sizes.outputOffset == -40)
    let p = network.probabilities(Tensor(shape: TensorShape(n: 1, c: 1, h: size, w: size), data: input.floats().map { $0 * Float(1.0 / 255) }))
    #expect(output.floats() == p.data)
    let cover = try ImageDecoder.decode(zip.data("cover.png") ?? []).pages[0]
    #expect(cover.width == 512 && cover.height == 256)
  }

  @Test func sampleWithTheWrongChannelsIsRefused() throws {
    let network = try lowering(UNetConfiguration(depth: 1, baseWidth: 2, padding: .same, inputChannels: 2))
    let exporter = ModelExporter(network: network, normalization: ExportNormalization(stages: []), producerVersion: "t")
    let options = BioimageioOptions(name: "Test model", description: "d", authors: ["A"], timestamp: "2025-01-01T00:00:00")
    #expect(throws: ExportError(.badSample, path: nil, "the sample image has 1 channel(s); the network takes 2")) {
      try exporter.bioimageioPackage(sample: Image(width: 8, height: 8, pixels: [UInt8](repeating: 0, count: 64)), options: options)
    }
  }
}
