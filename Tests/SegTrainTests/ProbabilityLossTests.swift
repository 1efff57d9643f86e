import Foundation
import SegCore
import SegModel
@testable import SegTrain
import Testing

/// UNet 3+'s loss terms (focal, IoU, MS-SSIM, the CGM's binary cross-entropy) and the other
/// probability-head terms: values against PyTorch (the reference functions of
/// ../shared/bench/peers.py, run once in float64; the figures are below), against direct
/// computations, and gradients against finite differences.
struct ProbabilityLossTests {
  /// The fixed maps the PyTorch figures were computed on: N = 2, 32 × 32,
  /// P = 0.5 + 0.4·sin(0.3x + 0.2y + n), T = [(7x + 3y + n) mod 5 < 2].
  static func maps() -> (p: [Double], t: [Double]) {
    var p: [Double] = [], t: [Double] = []
    for n in 0..<2 {
      for y in 0..<32 {
        for x in 0..<32 {
          p.append(0.5 + 0.4 * sin(0.3 * Double(x) + 0.2 * Double(y) + Double(n)))
          t.append((x * 7 + y * 3 + n) % 5 < 2 ? 1 : 0)
        }
      }
    }
    return (p, t)
  }

  /// MS-SSIM and its gradient equal PyTorch's `ms_ssim` run in float64. The reference rounds
  /// its Gaussian window to float32 (`gaussian_window(...).float()`), a relative change of
  /// ~3e-8 per tap, so values agree to 1e-7 and gradients (~1e-4) to 2e-10 absolute.
  @Test func msssimMatchesTheReference() {
    let (p, t) = Self.maps()
    let (value, grad) = MSSSIM.evaluate(p: p, t: t, planes: 2, h: 32, w: 32, gradient: true)
    #expect(abs(value - 0.521845439138904) < 1e-7, "MS-SSIM \(value)")
    let torch: [(Int, Int, Int, Double)] = [
      (0, 0, 0, 1.379527134163e-04), (0, 5, 7, 8.532648600873e-05), (1, 31, 31, -8.106903224334e-07), (1, 16, 3, -3.041268226948e-04),
    ]
    for (n, y, x, g) in torch {
      let ours = grad[n * 1024 + y * 32 + x]
      #expect(abs(ours - g) <= 2e-10, "∂MS-SSIM/∂P[\(n), \(y), \(x)]: \(ours) vs \(g)")
    }
    // Identical maps score 1.
    #expect(abs(MSSSIM.evaluate(p: t, t: t, planes: 2, h: 32, w: 32, gradient: false).value - 1) < 1e-12)
  }

  /// The separable window statistics against a direct 2-D window sum at every position.
  @Test func msssimWindowMatchesADirectSum() {
    let (p, _) = Self.maps()
    let g = MSSSIM.window(11)
    #expect(abs(g.reduce(0, +) - 1) < 1e-15 && g[5] == g.max())
    let fast = MSSSIM.filter(p, planes: 2, h: 32, w: 32, g)
    var worst = 0.0
    for plane in 0..<2 {
      for y in 0..<22 {
        for x in 0..<22 {
          var s = 0.0
          for a in 0..<11 { for b in 0..<11 { s += g[a] * g[b] * p[plane * 1024 + (y + a) * 32 + x + b] } }
          worst = max(worst, abs(s - fast[plane * 484 + y * 22 + x]))
        }
      }
    }
    #expect(worst < 1e-13)
    // The transposed filter is the adjoint: ⟨F x, d⟩ = ⟨x, Fᵀ d⟩.
    let d = (0..<(2 * 484)).map { sin(Double($0)) }
    let lhs = zip(fast, d).map { $0 * $1 }.reduce(0, +)
    let rhs = zip(p, MSSSIM.filterTransposed(d, planes: 2, h: 32, w: 32, g)).map { $0 * $1 }.reduce(0, +)
    #expect(abs(lhs - rhs) < 1e-10 * abs(lhs))
  }

  /// The whole UNet 3+ loss of one head (focal + (1 − MS-SSIM) + IoU on g·σ(Z)) plus the CGM's
  /// BCE equals `unet3p_loss` of peers.py on the same inputs: 3.008571284321422, gate (1, 0),
  /// ∂/∂q = ((0.357, −0.417), (0.833, −1.25)).
  @Test func unet3pLossMatchesTheReference() {
    let (p64, t64) = Self.maps()
    let gate: [Float] = [1, 0]
    let p = p64.enumerated().map { Float($1) * gate[$0 / 1024] }
    let targets = t64.map { Int32($0) }
    let q: [Float] = [0.3, 0.6, 0.7, 0.2]
    var dp = [Float](repeating: 0, count: p.count)
    var dq = [Float](repeating: 0, count: 4)
    let total: Double = p.withUnsafeBufferPointer { pp in
      targets.withUnsafeBufferPointer { tp in
        dp.withUnsafeMutableBufferPointer { dpp in
          q.withUnsafeBufferPointer { qp in
            dq.withUnsafeMutableBufferPointer { dqp in
              guard let tb = tp.baseAddress, let qb = qp.baseAddress, let dqb = dqp.baseAddress else { return .nan }
              let m = ProbabilityMaps(p: base(pp), shape: TensorShape(n: 2, c: 1, h: 32, w: 32), foreground: 0..<1, classOffset: 1, targets: tb, weights: nil)
              let focal = ProbabilityLoss.focal(m, alpha: 0.25, gamma: 2, scale: 1, dp: base(dpp))
              let ms = MSSSIM.loss(m, scale: 1, dp: base(dpp))
              let iou = ProbabilityLoss.iou(m, scale: 1, dp: base(dpp))
              let bce = ProbabilityLoss.classification(qb, items: 2, targets: tb, plane: 1024, scale: 1, dq: dqb)
              return focal + ms + iou + bce
            }
          }
        }
      }
    }
    #expect(abs(total - 3.008571284321422) < 2e-6, "loss \(total)")
    let expected: [Float] = [0.35714285714285715, -0.4166666666666667, 0.8333333333333331, -1.2499999999999998]
    #expect(worstRelativeError(dq, expected) < 1e-5)
  }

  struct TermCase: CustomTestStringConvertible, Sendable {
    var term: String
    var channels: Int
    var testDescription: String { "\(term), \(channels) channel(s)" }
  }

  /// Every term's gradient against central differences, on a sigmoid-like head (1 channel) and a
  /// softmax-like head (3 channels, foreground 1 and 2), probabilities well inside (0, 1).
  @Test(arguments: ["focal", "iou", "dice", "cross_entropy", "ms_ssim"].flatMap { t in [1, 3].map { TermCase(term: t, channels: $0) } })
  func termGradients(_ c: TermCase) {
    let s = TensorShape(n: 2, c: c.channels, h: 16, w: 16)
    let p = randomArray(s.count, seed: 70, lo: 0.05, hi: 0.95)
    var rng = RandomStream(seed: 71)
    let classes = c.channels == 1 ? 2 : c.channels
    let targets = (0..<(2 * 256)).map { i -> Int32 in ((i % 16) / 4 + i / 64) % 2 == 0 ? 0 : Int32(1 + rng.nextInt(below: classes - 1)) }
    let weights = randomArray(2 * 256, seed: 72, lo: 0.5, hi: 2)
    func evaluate(_ values: [Float], gradient: inout [Float]) -> Double {
      values.withUnsafeBufferPointer { pp in
        targets.withUnsafeBufferPointer { tp in
          weights.withUnsafeBufferPointer { wp in
            gradient.withUnsafeMutableBufferPointer { gp in
              guard let tb = tp.baseAddress else { return .nan }
              let m = ProbabilityMaps(
                p: base(pp), shape: s, foreground: c.channels == 1 ? 0..<1 : 1..<c.channels, classOffset: c.channels == 1 ? 1 : 0,
                targets: tb, weights: wp.baseAddress)
              switch c.term {
              case "focal": return ProbabilityLoss.focal(m, alpha: 0.25, gamma: 2, scale: 1.5, dp: base(gp)) * 1.5
              case "iou": return ProbabilityLoss.iou(m, scale: 1.5, dp: base(gp)) * 1.5
              case "dice": return ProbabilityLoss.dice(m, smoothing: 1, scale: 1.5, dp: base(gp)) * 1.5
              case "cross_entropy": return ProbabilityLoss.crossEntropy(m, scale: 1.5, dp: base(gp)) * 1.5
              default: return MSSSIM.loss(m, scale: 1.5, dp: base(gp)) * 1.5
              }
            }
          }
        }
      }
    }
    var analytic = [Float](repeating: 0, count: s.count)
    let value = evaluate(p, gradient: &analytic)
    #expect(value.isFinite && value > 0)
    var scratch = [Float](repeating: 0, count: s.count)
    let e = finiteDifferenceError(values: p, analytic: analytic, indices: sampleIndices(s.count, count: 60, seed: 4), epsilon: 1e-3) {
      evaluate($0, gradient: &scratch)
    }
    print("gradient check \(c.testDescription): worst relative error \(e)")
    #expect(e < 1e-2, "\(c.testDescription): \(e)")
  }

  /// Empty prediction and empty target: IoU counts 0 (not 0/0); clamped probabilities get no
  /// gradient; the BCE gradient is PyTorch's.
  @Test func edgeCases() {
    let s = TensorShape(n: 1, c: 1, h: 4, w: 4)
    let zeros = [Float](repeating: 0, count: 16)
    let background = [Int32](repeating: 0, count: 16)
    var dp = [Float](repeating: 0, count: 16)
    let (iou, focal) = zeros.withUnsafeBufferPointer { pp in
      background.withUnsafeBufferPointer { tp in
        dp.withUnsafeMutableBufferPointer { gp in
          guard let tb = tp.baseAddress else { return (Double.nan, Double.nan) }
          let m = ProbabilityMaps(p: base(pp), shape: s, foreground: 0..<1, classOffset: 1, targets: tb, weights: nil)
          return (ProbabilityLoss.iou(m, scale: 1, dp: base(gp)), ProbabilityLoss.focal(m, alpha: 0.25, gamma: 2, scale: 1, dp: base(gp)))
        }
      }
    }
    #expect(iou == 0 && focal.isFinite && focal >= 0)
    #expect(dp.allSatisfy { $0 == 0 }, "clamped values take no gradient")
  }

  /// The CGM's binary cross-entropy: its gradient against central differences.
  @Test func classificationGradient() {
    let q = randomArray(6, seed: 80, lo: 0.1, hi: 0.9)
    // Item 0 has a foreground pixel, item 1 none, item 2 one.
    var targets = [Int32](repeating: 0, count: 3 * 16)
    targets[5] = 1
    targets[40] = 2
    func bce(_ v: [Float], _ dq: inout [Float]) -> Double {
      v.withUnsafeBufferPointer { qp in
        targets.withUnsafeBufferPointer { tp in
          dq.withUnsafeMutableBufferPointer { dp in
            guard let tb = tp.baseAddress else { return .nan }
            return ProbabilityLoss.classification(base(qp), items: 3, targets: tb, plane: 16, scale: 2, dq: base(dp)) * 2
          }
        }
      }
    }
    var analytic = [Float](repeating: 0, count: 6)
    _ = bce(q, &analytic)
    var scratch = [Float](repeating: 0, count: 6)
    let e = finiteDifferenceError(values: q, analytic: analytic, indices: Array(0..<6), epsilon: 1e-3) { bce($0, &scratch) }
    #expect(e < 1e-3, "BCE: \(e)")
  }

  /// Deep supervision with explicit head weights: the loss and every head's gradient are the
  /// weighted sums of the single-head ones.
  @Test func headWeightsCombineTheHeads() {
    let config = NetworkConfiguration.unetpp(UNetPlusPlusConfiguration(depth: 2, baseWidth: 3, inputChannels: 1, classes: 2))
    let model = Network(configuration: config, seed: 4)
    let (x, t, w) = NetworkTests.batch(config, size: 16, batch: 1, seed: 5)
    func trainer(_ weights: HeadWeights) -> Trainer {
      Trainer(model: model, configuration: TrainingConfiguration(loss: LossConfiguration(terms: [.crossEntropy, .iou], headWeights: weights), seed: 1))
    }
    ComputeThreads.withCount(1) {
      let a = trainer(.weights([1, 0])), b = trainer(.weights([0, 1])), mix = trainer(.weights([0.3, 0.7]))
      let la = a.computeGradients(input: x, targets: t, weights: w).total
      let lb = b.computeGradients(input: x, targets: t, weights: w).total
      let lm = mix.computeGradients(input: x, targets: t, weights: w).total
      #expect(abs(lm - (0.3 * la + 0.7 * lb)) < 1e-6 * abs(lm))
      let expected = zip(a.gradients, b.gradients).map { 0.3 * $0 + 0.7 * $1 }
      #expect(worstRelativeError(mix.gradients, expected) < 1e-4)
      let mean = trainer(.mean).computeGradients(input: x, targets: t, weights: w).total
      #expect(abs(mean - 0.5 * (la + lb)) < 1e-6 * abs(mean))
    }
  }
}
