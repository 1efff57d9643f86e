import Foundation
import SegAugment
import SegCore
import SegModel
import SegPipeline
import SegTestSupport
import Testing

@Suite struct PipelineFileTests {
  @Test func everyShippedPipelineParses() throws {
    let names = try FileManager.default.contentsOfDirectory(atPath: TestPaths.pipelines).filter { $0.hasSuffix(".yaml") }
    #expect(names.count >= 3)
    for name in names {
      let spec = try PipelineSpec.load(TestPaths.pipelines + "/" + name)
      #expect(!spec.stages.isEmpty, "\(name)")
    }
  }

  /// SHA-256 of the frozen file's canonical form, recorded when format version 1 was frozen.
  static let frozenCanonicalSHA256 = "8d3c490c6fa7be464f03d2c0cc213205c64ac5772a3706019b27e0143acd8eb1"

  @Test func theFrozenVersion1FileKeepsLoading() throws {
    let frozen = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Frozen/v1-default.yaml").path
    let spec = try PipelineSpec.load(frozen)
    #expect(spec.version == 1 && spec.seed == 2015 && spec.stages.count == 6 && spec.samplesPerImage == 4)
    #expect(try spec.resolveSources().count == 4)
    // The canonical form is the cache key: it must not drift, or every shard set goes stale.
    let hash = SHA256.hex(Array(spec.canonical.serialized(spaced: false).utf8))
    #expect(hash == Self.frozenCanonicalSHA256, "canonical form changed: \(spec.canonical.serialized())")
  }

  @Test(.enabled(if: TestPaths.isbi2012 != nil, "../shared/data/isbi2012 is absent"))
  func isbiPipelineResolvesTheSharedData() throws {
    let engine = try PipelineEngine(spec: try PipelineSpec.load(TestPaths.pipelines + "/isbi2012.yaml"))
    // Slices 00–24 (a brace glob): the test slices 25–29 are not sources.
    #expect(engine.sources.count == 25)
    #expect(engine.sources.map(\.stem) == (0..<25).map { String(format: "train_%02d", $0) })
    let s = try engine.sample(3)
    #expect(s.sample.image.width == 512 && s.sample.weights != nil)
    let values = Set(s.sample.mask?.labelSamples() ?? [])
    #expect(values.isSubset(of: [0, 255]))
  }

  @Test func canonicalFormChangesWithEveryStageParameter() throws {
    let base = try PipelineSpec.load(TestPaths.pipelines + "/default.yaml").canonical
    let text = try String(contentsOfFile: TestPaths.pipelines + "/default.yaml", encoding: .utf8)
    let edited = try PipelineSpec.parse(text.replacingOccurrences(of: "rotate: [-20, 20]", with: "rotate: [-21, 20]"), file: TestPaths.pipelines + "/x.yaml")
    #expect(edited.canonical != base)
    let reseeded = try PipelineSpec.parse(text.replacingOccurrences(of: "seed: 2015", with: "seed: 2016"), file: TestPaths.pipelines + "/x.yaml")
    #expect(reseeded.canonical != base)
  }

  /// Every kind of mistake gives one line: FILE:LINE: KEY: message.
  static let errorCases: [(String, String, PipelineError.Code, String)] = [
    ("unknown top-level key", "version: 1\nseed: 1\nsorces: {images: a}\nstages: []\n", .unknownKey,
     "t.yaml:3: sorces: unknown key (hint: did you mean sources?)"),
    ("missing seed", "version: 1\nsources: {images: a}\nstages: []\n", .missingKey, "t.yaml:1: missing required key \"seed\""),
    ("wrong version", "version: 2\nseed: 1\nsources: {images: a}\nstages: []\n", .outOfRange,
     "t.yaml:1: version: format version 2 is not supported (this unet reads version 1)"),
    ("seed is text", "version: 1\nseed: abc\nsources: {images: a}\nstages: []\n", .wrongType,
     "t.yaml:2: seed: expected a whole number, found \"abc\""),
    ("negative samples", "version: 1\nseed: 1\nsources: {images: a}\nsamples_per_image: 0\nstages: []\n", .outOfRange,
     "t.yaml:4: samples_per_image: samples_per_image must be 1...1000000"),
    ("unknown stage", "version: 1\nseed: 1\nsources: {images: a}\nstages:\n  - rotate: {angle: 3}\n", .unknownKey,
     "t.yaml:5: stages[0].rotate: unknown key (hint: allowed: normalize, mirror_pad, affine, elastic, crop, gamma, brightness_contrast, noise, blur, weight_map)"),
    ("unknown stage parameter", "version: 1\nseed: 1\nsources: {images: a}\nstages:\n  - affine:\n      rotation: [-5, 5]\n", .unknownKey,
     "t.yaml:6: stages[0].affine.rotation: unknown key (hint: did you mean rotate?)"),
    ("range the wrong way round", "version: 1\nseed: 1\nsources: {images: a}\nstages:\n  - affine: {rotate: [5, -5]}\n", .outOfRange,
     "t.yaml:5: stages[0].affine.rotate: range [5.0, -5.0]: low is above high"),
    ("probability above 1", "version: 1\nseed: 1\nsources: {images: a}\nstages:\n  - gamma: {gamma: 1.2, p: 1.5}\n", .outOfRange,
     "t.yaml:5: stages[0].gamma.p: a probability must lie in [0, 1], not 1.5"),
    ("string where a number belongs", "version: 1\nseed: 1\nsources: {images: a}\nstages:\n  - blur: {sigma: big}\n", .wrongType,
     "t.yaml:5: stages[0].blur.sigma: expected a number, found \"big\""),
    ("bad enum", "version: 1\nseed: 1\nsources: {images: a}\nstages:\n  - elastic: {method: wobbly}\n", .outOfRange,
     "t.yaml:5: stages[0].elastic.method: \"wobbly\" is not one of simard, grid"),
    ("too few grid points", "version: 1\nseed: 1\nsources: {images: a}\nstages:\n  - elastic:\n      method: grid\n      points: 1\n", .outOfRange,
     "t.yaml:7: stages[0].elastic.points: points must be 2...64"),
    ("alpha with grid", "version: 1\nseed: 1\nsources: {images: a}\nstages:\n  - elastic: {method: grid, alpha: 3}\n", .unknownKey,
     "t.yaml:5: stages[0].elastic.alpha: does not apply to method grid (use sigma)"),
    ("YAML syntax", "version: 1\nseed: [1, 2\nstages: []\n", .syntax, "t.yaml:3: YAML syntax error: did not find expected ',' or ']'"),
    ("duplicate key", "version: 1\nseed: 1\nseed: 2\nsources: {images: a}\nstages: []\n", .syntax,
     "t.yaml:2: seed: this key appears more than once in its mapping"),
    ("stage not a mapping", "version: 1\nseed: 1\nsources: {images: a}\nstages:\n  - affine\n", .wrongType,
     "t.yaml:5: stages[0]: each stage is a mapping with one key, the stage name (e.g. `- affine: {rotate: [-10, 10]}`)"),
    ("weight map without masks", "version: 1\nseed: 1\nsources: {images: a}\nstages:\n  - weight_map: {}\n", .missingKey,
     "t.yaml:5: stages: the weight_map stage needs masks (sources.masks)"),
    ("empty file", "", .syntax, "t.yaml:1: the file is empty"),
    ("U-Net++ with valid padding", "version: 1\nseed: 1\nsources: {images: a}\nstages: []\ntrain:\n  network: {architecture: unetpp, padding: valid}\n", .outOfRange,
     "t.yaml:6: train.network: U-Net++ is built with same padding only (valid padding is a U-Net option)"),
    ("CGM on a U-Net", "version: 1\nseed: 1\nsources: {images: a}\nstages: []\ntrain:\n  network: {architecture: unet, cgm: true}\n", .unknownKey,
     "t.yaml:6: train.network.cgm: cgm applies to UNet 3+, not U-Net"),
    ("unknown architecture", "version: 1\nseed: 1\nsources: {images: a}\nstages: []\ntrain:\n  network: {architecture: resnet}\n", .outOfRange,
     "t.yaml:6: train.network.architecture: \"resnet\" is not one of unet, unetpp, unet3p"),
    ("unknown loss", "version: 1\nseed: 1\nsources: {images: a}\nstages: []\ntrain:\n  loss: cross_entropy+lovasz\n", .outOfRange,
     "t.yaml:6: train.loss: \"cross_entropy+lovasz\" is not a loss: use cross_entropy, dice, focal, iou, ms_ssim joined by + (e.g. cross_entropy+dice), or hybrid (= focal+ms_ssim+iou)"),
    ("prune without a depth", "version: 1\nseed: 1\nsources: {images: a}\nstages: []\ntrain:\n  network: {architecture: unetpp}\n  prediction: {heads: prune}\n", .missingKey,
     "t.yaml:7: train.prediction: heads: prune needs prune_depth (1 ... depth)"),
    ("prune a U-Net", "version: 1\nseed: 1\nsources: {images: a}\nstages: []\ntrain:\n  prediction: {heads: prune, prune_depth: 2}\n", .outOfRange,
     "t.yaml:6: train.prediction: prediction heads: prune applies to U-Net++"),
    ("unknown calibration", "version: 1\nseed: 1\nsources: {images: a}\nstages: []\ntrain:\n  calibration: dice\n", .outOfRange,
     "t.yaml:6: train.calibration: calibration must be pixel_error, rand_error or none"),
    ("tiles for a valid U-Net++", "version: 1\nseed: 1\nsources: {images: a}\nstages: []\ntiles: {network: {architecture: unetpp, padding: valid}, input: 64}\n", .outOfRange,
     "t.yaml:5: tiles.network.padding: U-Net++ is built with same padding only (valid padding is a U-Net option)"),
  ]

  /// The train section written out (for a shard set's manifest) parses back to itself, for
  /// every architecture and the optional settings.
  @Test func trainSectionRoundTripsThroughItsJSON() throws {
    var a = TrainSection()
    a.steps = 123
    a.validationSources = ["x", "y"]
    a.headWeights = .weights([1, 0.5])
    a.optimizer = .adam
    a.calibration = .randError
    a.keepBest = true
    a.freshAugmentation = false
    a.keepEpochs = 3
    a.maxGradientNorm = 2
    var b = TrainSection()
    b.architecture = .unetpp
    b.deepSupervision = false
    b.upMode = .bilinear
    b.epochs = 4
    b.evalEvery = 50
    b.calibration = nil
    var c = TrainSection()
    c.architecture = .unet3p
    c.cgm = false
    c.cgmDropout = 0.3
    c.loss = [.focal, .iou, .msSSIM]
    c.headWeights = .sum
    c.padding = .same
    var d = TrainSection()
    d.architecture = .unetpp
    d.prediction = InferenceSettings(heads: .prune, pruneDepth: 2)
    d.classes = 3
    for s in [TrainSection(), a, b, c, d] {
      #expect(try TrainSection.parse(json: s.json, file: "manifest.json") == s, "\(s.json.serialized())")
    }
  }

  /// Augmentation epochs: epoch 0 is the pipeline as it is (same canonical form and hash);
  /// epoch e ≥ 1 says so in its canonical form and draws other samples, reproducibly.
  @Test func epochsDrawFreshSamples() throws {
    let spec = try PipelineSpec.load(TestPaths.pipelines + "/default.yaml")
    #expect(spec.forEpoch(0).canonical == spec.canonical && spec.canonical["epoch"] == nil)
    let e2 = spec.forEpoch(2)
    #expect(e2.canonical["epoch"] == .int(2) && e2.streamSeed != spec.streamSeed && e2.seed == spec.seed)
    let base = try PipelineEngine(spec: spec).sample(1)
    let fresh = try PipelineEngine(spec: e2).sample(1)
    let again = try PipelineEngine(spec: e2).sample(1)
    #expect(base.sample.image != fresh.sample.image)
    #expect(fresh.sample.image == again.sample.image && fresh.record == again.record)
    #expect(fresh.record["epoch"] == .int(2) && base.record["epoch"] == nil)
  }

  /// The network keys of the train section, and the loss as a name or a mapping.
  @Test func trainSectionDescribesEveryArchitecture() throws {
    let text = """
      version: 1
      seed: 1
      sources: {images: a}
      stages: []
      tiles: {network: {architecture: unet3p, depth: 4}, input: 64}
      train:
        network: {architecture: unet3p, depth: 4, width: 16, deep_supervision: false, cgm: true, cgm_dropout: 0.25}
        loss: {terms: hybrid, head_weights: [1, 0.5], focal_gamma: 1.5}
      """
    let spec = try PipelineSpec.parse(text, file: "t.yaml")
    #expect(spec.train.architecture == .unet3p && spec.train.deepSupervision == false && spec.train.cgmDropout == 0.25)
    #expect(spec.train.loss == [.focal, .iou, .msSSIM] && spec.train.headWeights == .weights([1, 0.5]) && spec.train.focalGamma == 1.5)
    #expect(spec.tiles?.network == NetworkGeometry(architecture: .unet3p, depth: 4, padding: .same))
    let net = spec.train.network(channels: 1, classes: 2, fallbackPadding: .same)
    #expect(net == .unet3p(UNet3PlusConfiguration(depth: 4, baseWidth: 16, deepSupervision: false, cgm: true, cgmDropout: 0.25, inputChannels: 1, classes: 1)))
    let pp = try PipelineSpec.parse("version: 1\nseed: 1\nsources: {images: a}\nstages: []\ntrain:\n  network: {architecture: unetpp, up: bilinear}\n  loss: cross_entropy+dice\n  prediction: {heads: prune, prune_depth: 3}\n", file: "t.yaml")
    #expect(pp.train.prediction == InferenceSettings(heads: .prune, pruneDepth: 3) && pp.train.upMode == .bilinear)
    #expect(pp.train.calibration == .pixelError && !pp.train.keepBest)
    let cal = try PipelineSpec.parse("version: 1\nseed: 1\nsources: {images: a}\nstages: []\ntrain:\n  calibration: none\n  keep_best: true\n", file: "t.yaml")
    #expect(cal.train.calibration == nil && cal.train.keepBest)
    #expect(pp.train.network(channels: 2, classes: 3, fallbackPadding: .valid) == .unetpp(UNetPlusPlusConfiguration(depth: 4, baseWidth: 16, upMode: .bilinear, inputChannels: 2, classes: 3)))
  }

  @Test(arguments: errorCases.indices)
  func yamlErrorCase(_ i: Int) {
    let (name, text, code, message) = Self.errorCases[i]
    do {
      _ = try PipelineSpec.parse(text, file: "t.yaml")
      Issue.record("\(name): parsed without error")
    } catch {
      #expect(error.code == code, "\(name): \(error)")
      #expect(error.description == message, "\(name)")
      #expect(!error.description.contains("\n"))
    }
  }

  @Test func unpairedAndMissingSourcesAreReported() throws {
    let dir = TestPaths.temporaryDirectory("unpaired")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    for sub in ["images", "labels"] { try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true) }
    let png = TestPaths.fixtures + "/cells/images/cells_0.png"
    try FileManager.default.copyItem(atPath: png, toPath: dir + "/images/a.png")
    try FileManager.default.copyItem(atPath: png, toPath: dir + "/images/b.png")
    try FileManager.default.copyItem(atPath: png, toPath: dir + "/labels/a.png")
    let yaml = dir + "/p.yaml"
    try "version: 1\nseed: 1\nsources: {images: images/*.png, masks: labels/*.png}\nstages: []\n".write(toFile: yaml, atomically: true, encoding: .utf8)
    #expect {
      _ = try PipelineEngine(spec: try PipelineSpec.load(yaml))
    } throws: { e in
      (e as? PipelineError)?.description == "\(dir)/images/b.png: image has no mask with the same stem \"b\""
    }
    try FileManager.default.copyItem(atPath: png, toPath: dir + "/labels/b.png")
    try FileManager.default.copyItem(atPath: png, toPath: dir + "/labels/c.png")
    #expect {
      _ = try PipelineEngine(spec: try PipelineSpec.load(yaml))
    } throws: { e in
      (e as? PipelineError)?.description == "\(dir)/labels/c.png: mask has no image with the same stem \"c\""
    }
    try "version: 1\nseed: 1\nsources: {images: nothing/*.png}\nstages: []\n".write(toFile: yaml, atomically: true, encoding: .utf8)
    #expect {
      _ = try PipelineEngine(spec: try PipelineSpec.load(yaml))
    } throws: { e in
      (e as? PipelineError)?.description == "\(yaml): sources.images: no image files match nothing/*.png"
    }
    #expect {
      _ = try PipelineSpec.load(dir + "/missing.yaml")
    } throws: { e in
      (e as? PipelineError)?.description == "\(dir)/missing.yaml: cannot open: No such file or directory"
    }
  }
}
