import SegAugment
import SegCore
import SegPipeline
import SegSynth
import SegTestSupport
import SegWeights
import Testing

/// A named stage for parameterized tests.
struct NamedStage: CustomTestStringConvertible, Sendable {
  let name: String
  let stage: any AugmentationStage
  let geometric: Bool
  var testDescription: String { name }
}

/// The input every invariant test starts from: a 2-channel float image with values in a
/// range that is not [0, 1], and an instance mask with ids 0 and 3...9.
func testSample() -> Sample {
  let cells = SyntheticCells(width: 40, height: 32, cells: 7, radius: 3...8, minArea: 2, seed: 99)
  let (img, lab) = cells.make()
  let f = img.floatSamples()
  let image = Image(width: 40, height: 32, channels: 2, pixels: f.map { $0 * 3 - 50 } + f.map { 255 - $0 })
  let mask = Image(width: 40, height: 32, pixels: lab.labelSamples().map { $0 == 0 ? UInt16(0) : UInt16($0 + 2) })
  return Sample(image: image, mask: mask)
}

/// The sweep's cases: at least one per stage StageFactory registers (the sweep runs over the
/// registered names, so a new stage without cases here fails it).
let sweepCases: [NamedStage] = [
  NamedStage(name: "normalize minmax", stage: NormalizeStage(method: .minmax), geometric: false),
  NamedStage(name: "normalize percentile", stage: NormalizeStage(method: .percentile(low: 2, high: 98), perChannel: false), geometric: false),
  NamedStage(name: "normalize zscore", stage: NormalizeStage(method: .zscoreImage), geometric: false),
  NamedStage(name: "mirror_pad", stage: MirrorPadStage(top: 3, bottom: 50, left: 0, right: 7, probability: 0.8), geometric: true),
  NamedStage(name: "affine", stage: AffineStage(
    rotate: .init(-180, 180), scale: .init(0.7, 1.3), scaleY: .init(0.8, 1.2), shear: .init(-10, 10),
    translate: .init(-0.2, 0.2), flipHorizontal: 0.5, flipVertical: 0.5, rotate90: 0.5, probability: 0.9), geometric: true),
  NamedStage(name: "affine constant border", stage: AffineStage(rotate: .init(-45, 45), translate: .init(-5, 5), translateInPixels: true, border: .constant), geometric: true),
  NamedStage(name: "affine edge border", stage: AffineStage(rotate: .init(-45, 45), scale: .init(0.5, 0.9), border: .edge), geometric: true),
  NamedStage(name: "elastic simard", stage: ElasticStage(method: .simard, alpha: .init(10, 40), sigma: .init(3, 6), maxFold: 0.05), geometric: true),
  NamedStage(name: "elastic grid", stage: ElasticStage(method: .grid, sigma: .init(2, 10), points: 3), geometric: true),
  NamedStage(name: "crop", stage: CropStage(width: 24, height: 20), geometric: true),
  NamedStage(name: "gamma", stage: GammaStage(gamma: .init(0.5, 2)), geometric: false),
  NamedStage(name: "brightness_contrast", stage: BrightnessContrastStage(brightness: .init(-0.2, 0.2), contrast: .init(0.5, 1.5)), geometric: false),
  NamedStage(name: "noise", stage: NoiseStage(std: .init(0.01, 0.1)), geometric: false),
  NamedStage(name: "blur", stage: BlurStage(sigma: .init(0.5, 2)), geometric: false),
  NamedStage(name: "weight_map", stage: WeightMapStage(parameters: .init(maskKind: .instances)), geometric: false),
]

@Suite struct StageInvariantTests {
  /// Over 200 seeds, for every registered stage: masks keep only input labels (plus 0 for a
  /// constant border); the input is not mutated; the same seed gives the same bytes; a
  /// different seed gives a different output (for stages with random parameters).
  @Test(arguments: StageFactory.names)
  func invariantsOver200Seeds(_ stage: String) {
    let cases = sweepCases.filter { type(of: $0.stage).key == stage }
    #expect(!cases.isEmpty, "stage \(stage) has no cases in sweepCases")
    for named in cases { checkInvariants(named) }
  }

  @Test func everySweepCaseIsARegisteredStage() {
    let unknown = sweepCases.filter { !StageFactory.names.contains(type(of: $0.stage).key) }
    #expect(unknown.isEmpty, "cases of unregistered stages: \(unknown.map(\.name))")
  }

  func checkInvariants(_ named: NamedStage) {
    let input = testSample()
    let pristine = testSample()
    let labels = Set(input.mask?.labelSamples() ?? [])
    var outputs = Set<[Float]>()
    for seed in seeds(200) {
      let rng = RandomStream(seed: seed, path: [1, 2])
      let a = Augmenter.run([named.stage], on: input, rng: rng)
      let b = Augmenter.run([named.stage], on: input, rng: rng)
      #expect(a.sample == b.sample, "\(named.name): seed \(seed) is not reproducible")
      let out = a.sample.mask?.labelSamples() ?? []
      var allowed = labels
      if case .constant = (named.stage as? AffineStage)?.border { allowed.insert(0) }
      #expect(Set(out).isSubset(of: allowed), "\(named.name): seed \(seed) made labels \(Set(out).subtracting(allowed))")
      #expect(a.sample.mask?.pixelType == input.mask?.pixelType)
      if let w = a.sample.weights {
        #expect(w.width == a.sample.image.width && w.height == a.sample.image.height)
      }
      outputs.insert(a.sample.image.floatSamples() + (a.sample.weights?.floatSamples() ?? []))
    }
    #expect(input == pristine, "\(named.name) mutated its input")
    let deterministic = ["normalize minmax", "normalize percentile", "normalize zscore", "weight_map"]
    if deterministic.contains(named.name) {
      #expect(outputs.count == 1)
    } else if named.name == "mirror_pad" {
      // Fixed margins: the only randomness is p = 0.8 (padded or not).
      #expect(outputs.count == 2)
    } else if named.name == "crop" {
      // 17 × 13 = 221 positions: 200 draws give about 140 distinct ones.
      #expect(outputs.count > 110)
    } else {
      // Different seeds draw different parameters (a stage with p < 1 also repeats the identity).
      #expect(outputs.count > 150, "\(named.name): only \(outputs.count) distinct outputs over 200 seeds")
    }
  }

  /// Identity parameters return the input exactly (bit for bit).
  @Test func identityParametersReturnTheInputExactly() {
    let input = testSample()
    let identities: [(String, any AugmentationStage)] = [
      ("mirror_pad 0", MirrorPadStage(margin: 0)),
      ("affine identity", AffineStage()),
      ("affine 360°", AffineStage(rotate: .fixed(0), scale: .fixed(1))),
      ("elastic simard alpha 0", ElasticStage(method: .simard, alpha: .fixed(0), sigma: .fixed(4))),
      ("elastic grid sigma 0", ElasticStage(method: .grid, sigma: .fixed(0))),
      ("crop full size", CropStage(width: 40, height: 32)),
      ("gamma 1", GammaStage(gamma: .fixed(1))),
      ("brightness 0 contrast 1", BrightnessContrastStage()),
      ("noise 0", NoiseStage(std: .fixed(0))),
      ("blur 0", BlurStage(sigma: .fixed(0))),
      ("normalize scale 1", NormalizeStage(method: .scale(1))),
      ("p = 0", AffineStage(rotate: .fixed(30), probability: 0)),
    ]
    for (name, stage) in identities {
      for seed in seeds(5) {
        let out = Augmenter.run([stage], on: input, rng: RandomStream(seed: seed)).sample
        #expect(out.image == input.image && out.mask == input.mask, "\(name)")
      }
    }
    // A 90° turn four times over, and a flip twice, are the identity too (exact integer maps).
    let turn = AffineStage(rotate90: 1)
    var s = input
    var turns = 0
    var seed: UInt64 = 0
    while turns < 4 {
      let run = Augmenter.run([turn], on: s, rng: RandomStream(seed: seed))
      seed += 1
      if case .int(let k)? = run.records[0]["rot90"], k == 1 {
        s = run.sample
        turns += 1
      }
    }
    #expect(s.image == input.image && s.mask == input.mask)
  }

  @Test func geometricStagesMoveImageMaskAndWeightsTogether() {
    // The weight map computed first and then moved must equal the one computed after the move
    // for an exact integer map (a 90° turn), and differ in general for interpolating maps.
    let input = testSample()
    let weights = WeightMapStage(parameters: .init(maskKind: .instances))
    let turn = AffineStage(rotate90: 1, probability: 1)
    for seed in seeds(10) {
      let before = Augmenter.run([weights, turn], on: input, rng: RandomStream(seed: seed)).sample
      // Same stream key per stage index: put the turn at index 1 in both runs.
      let after = Augmenter.run([NoiseStage(std: .fixed(0)), turn, weights], on: input, rng: RandomStream(seed: seed)).sample
      #expect(before.mask == after.mask)
      #expect(before.weights == after.weights, "seed \(seed)")
    }
  }

  @Test func recordsHoldTheDrawnParameters() {
    let stage = AffineStage(rotate: .init(-30, 30), scale: .fixed(1.5))
    let run = Augmenter.run([stage], on: testSample(), rng: RandomStream(seed: 4))
    guard case .double(let angle)? = run.records[0]["rotate"], case .double(let scale)? = run.records[0]["scale_x"] else {
      Issue.record("missing drawn parameters: \(run.records[0])")
      return
    }
    #expect(abs(angle) <= 30 && angle != 0 && scale == 1.5)
  }
}
