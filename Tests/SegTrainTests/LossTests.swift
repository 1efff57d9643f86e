import SegCore
import SegTrain
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Weighted softmax cross-entropy and soft Dice: values by hand and gradients by finite
/// differences (float32; ε = 1e-2 on the logits; worst relative error below 1e-2).
struct LossTests {
  @Test func crossEntropyByHand() {
    // Two pixels, two classes. Pixel 0: logits (0, ln 3) → P = (¼, ¾), target 1, weight 2.
    // Pixel 1: logits (0, 0) → P = (½, ½), target 0, weight 1.
    let z = Tensor(shape: TensorShape(n: 1, c: 2, h: 1, w: 2), data: [0, 0, logf(3), 0])
    let (v, g, p) = SegmentationLoss.evaluate(logits: z, targets: [1, 0], weights: [2, 1], configuration: LossConfiguration(kind: .crossEntropy))
    let expected = (2 * -log(0.75) + 1 * -log(0.5)) / 2
    #expect(abs(v.total - expected) < 1e-6)
    #expect(v.crossEntropy.map { abs($0 - expected) < 1e-6 } == true)
    #expect(v.dice == nil)
    #expect(abs(p.data[2] - 0.75) < 1e-6)
    // dCE/dz = w·(P − onehot)/pixels.
    #expect(abs(g.data[0] - 2 * 0.25 / 2) < 1e-6)  // class 0, pixel 0
    #expect(abs(g.data[2] - 2 * (0.75 - 1) / 2) < 1e-6)  // class 1, pixel 0
    #expect(abs(g.data[1] - (0.5 - 1) / 2) < 1e-6)  // class 0, pixel 1
  }

  @Test func diceByHand() {
    // Perfectly confident, correct predictions: Dice 1, loss 0 (ε = 0).
    let z = Tensor(shape: TensorShape(n: 1, c: 2, h: 1, w: 2), data: [20, -20, -20, 20])
    let cfg = LossConfiguration(kind: .dice, diceClasses: .foreground, diceSmoothing: 0)
    let v = SegmentationLoss.evaluate(logits: z, targets: [0, 1], configuration: cfg).value
    #expect(v.dice.map { abs($0) < 1e-6 } == true)
    // Uniform predictions, one foreground pixel of two: I = ½, ΣP = 1, ΣG = 1 → Dice = ½.
    let u = Tensor(shape: TensorShape(n: 1, c: 2, h: 1, w: 2), data: [0, 0, 0, 0])
    let w = SegmentationLoss.evaluate(logits: u, targets: [0, 1], configuration: cfg).value
    #expect(w.dice.map { abs($0 - 0.5) < 1e-6 } == true)
    // All classes: class 0 has the same Dice ½ here, so the mean is ½ too.
    let all = SegmentationLoss.evaluate(logits: u, targets: [0, 1], configuration: LossConfiguration(kind: .dice, diceClasses: .all, diceSmoothing: 0)).value
    #expect(all.dice.map { abs($0 - 0.5) < 1e-6 } == true)
  }

  static let configurations: [LossConfiguration] = [
    LossConfiguration(kind: .crossEntropy),
    LossConfiguration(kind: .dice, diceClasses: .foreground),
    LossConfiguration(kind: .dice, diceClasses: .all, diceSmoothing: 0.5),
    LossConfiguration(kind: .crossEntropyDice),
  ]

  @Test(arguments: configurations)
  func gradientMatchesFiniteDifferences(_ cfg: LossConfiguration) {
    let s = TensorShape(n: 2, c: 3, h: 3, w: 4)
    let z = randomTensor(s, seed: 91, lo: -2, hi: 2)
    var rng = RandomStream(seed: 92)
    let targets = (0..<(2 * 12)).map { _ in Int32(rng.nextInt(below: 3)) }
    let weights = randomArray(24, seed: 93, lo: 0.5, hi: 3)
    let (v, g, _) = SegmentationLoss.evaluate(logits: z, targets: targets, weights: weights, configuration: cfg)
    if cfg.terms == [.crossEntropy, .dice], let ce = v.crossEntropy, let d = v.dice {
      #expect(abs(v.total - (ce + d)) < 1e-12)
    }
    let e = finiteDifferenceError(values: z.data, analytic: g.data, indices: Array(0..<s.count), epsilon: 1e-2) {
      SegmentationLoss.evaluate(logits: Tensor(shape: s, data: $0), targets: targets, weights: weights, configuration: cfg).value.total
    }
    print("gradient check loss \(cfg.name) dice \(cfg.diceClasses.rawValue): worst relative error \(e)")
    #expect(e < 1e-2)
  }

  @Test func invalidTargetsAreFound() {
    #expect(SegmentationLoss.firstInvalidTarget([0, 1, 1, 0], classes: 2) == nil)
    #expect(SegmentationLoss.firstInvalidTarget([0, 1, 2, 0], classes: 2) == 2)
    #expect(SegmentationLoss.firstInvalidTarget([0, -1], classes: 2) == 1)
  }
}

extension LossConfiguration: CustomTestStringConvertible {
  public var testDescription: String { "\(name) (\(diceClasses.rawValue), ε \(diceSmoothing))" }
}
