import Foundation
import SegTrain
import Testing

/// Optimiser updates against hand-computed PyTorch-semantics values, schedules against their
/// expected sequences, and gradient clipping.
struct OptimizerTests {
  @Test func sgdWithMomentumAndWeightDecay() {
    // μ = 0.9, η = 0.1, λ = 0.01, g = (0.5, 0.25) every step (values computed by hand).
    var opt = Optimizer(.sgd(momentum: 0.9, weightDecay: 0.01), parameterCount: 2)
    var p: [Float] = [1, -2]
    var g: [Float] = [0.5, 0.25]
    opt.update(parameters: &p, gradients: &g, learningRate: 0.1)
    // g' = g + λθ = (0.51, 0.23); v = g'; θ = θ − ηv.
    #expect(abs(p[0] - 0.949) < 1e-6 && abs(p[1] - -2.023) < 1e-6)
    #expect(abs(opt.state[0] - 0.51) < 1e-6 && abs(opt.state[1] - 0.23) < 1e-6)
    opt.update(parameters: &p, gradients: &g, learningRate: 0.1)
    // g' = (0.50949, 0.22977); v = 0.9·(0.51, 0.23) + g' = (0.96849, 0.43677).
    #expect(abs(p[0] - 0.852151) < 1e-6 && abs(p[1] - -2.066677) < 1e-6)
    #expect(opt.steps == 2)
    // zeroGradients clears the gradient buffer in the same pass.
    opt.update(parameters: &p, gradients: &g, learningRate: 0.1, zeroGradients: true)
    #expect(g == [0, 0])
  }

  /// PyTorch's Adam step in Double, as `torch.optim.Adam` (not AMSGrad) computes it.
  static func adamReference(_ p: inout [Double], _ m: inout [Double], _ v: inout [Double], _ g: [Double], t: Int, lr: Double, b1: Double, b2: Double, eps: Double, wd: Double) {
    for i in p.indices {
      let gi = g[i] + wd * p[i]
      m[i] += (1 - b1) * (gi - m[i])
      v[i] = v[i] * b2 + (1 - b2) * gi * gi
      let bc1 = 1 - pow(b1, Double(t)), bc2 = 1 - pow(b2, Double(t))
      p[i] -= lr / bc1 * m[i] / (v[i].squareRoot() / bc2.squareRoot() + eps)
    }
  }

  @Test func adamMatchesPyTorchFormula() {
    var opt = Optimizer(.adam(beta1: 0.9, beta2: 0.99, epsilon: 1e-6, weightDecay: 0.05), parameterCount: 3)
    var p: [Float] = [0.5, -1, 2]
    var pd = p.map(Double.init), m = [0.0, 0, 0], v = [0.0, 0, 0]
    let grads: [[Float]] = [[0.1, -0.2, 0.3], [0.05, 0.4, -0.1], [-0.3, 0.1, 0.2]]
    for (t, gs) in grads.enumerated() {
      var g = gs
      opt.update(parameters: &p, gradients: &g, learningRate: 0.01)
      Self.adamReference(&pd, &m, &v, gs.map(Double.init), t: t + 1, lr: 0.01, b1: 0.9, b2: 0.99, eps: 1e-6, wd: 0.05)
      for i in 0..<3 { #expect(abs(Double(p[i]) - pd[i]) < 1e-6, "step \(t + 1) parameter \(i): \(p[i]) vs \(pd[i])") }
    }
    // First step by hand (no decay): m̂ = g, v̂ = g², so θ moves by η·sign(g) (ε aside).
    var o2 = Optimizer(.adam(), parameterCount: 1)
    var q: [Float] = [1]
    var g: [Float] = [0.5]
    o2.update(parameters: &q, gradients: &g, learningRate: 0.1)
    #expect(abs(q[0] - 0.9) < 1e-6)
    #expect(o2.state.count == 2)
  }

  @Test func stepSchedule() {
    let s = LearningRateScheduler(.step(0.1, every: 2, gamma: 0.5))
    let rates = (0..<6).map { s.rate(step: $0) }
    let expected: [Float] = [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    #expect(zip(rates, expected).allSatisfy { abs($0 - $1) < 1e-7 }, "\(rates)")
  }

  @Test func cosineSchedule() {
    let s = LearningRateScheduler(.cosine(1, totalSteps: 4, floor: 0.1))
    let rates = (0..<6).map { s.rate(step: $0) }
    // 0.1 + 0.9·(1 + cos(πt/4))/2, then held at the floor.
    let expected: [Float] = [1, 0.868198, 0.55, 0.231802, 0.1, 0.1]
    #expect(zip(rates, expected).allSatisfy { abs($0 - $1) < 1e-5 }, "\(rates)")
    #expect(LearningRateScheduler(.constant(0.3)).rate(step: 1000) == 0.3)
  }

  /// A cosine with a time budget anneals by the budget when that comes before the steps, keeps
  /// its clock through a checkpoint's JSON, and reads format-1 JSON (no clock) as time 0.
  @Test func cosineScheduleWithATimeBudget() throws {
    var schedule = LearningRateSchedule.cosine(1, totalSteps: 1000, floor: 0.1)
    schedule.budgetSeconds = 100
    var s = LearningRateScheduler(schedule)
    #expect(s.rate(step: 0) == 1)
    s.advance(seconds: 50)
    // Halfway through the budget at step 10 (1 % of the steps): the cosine's midpoint.
    #expect(abs(s.progress(step: 10) - 0.5) < 1e-12 && abs(s.rate(step: 10) - 0.55) < 1e-6)
    // Steps ahead of time: the steps decide.
    #expect(abs(s.progress(step: 750) - 0.75) < 1e-12)
    s.advance(seconds: 70)
    #expect(s.progress(step: 10) == 1 && abs(s.rate(step: 10) - 0.1) < 1e-7)
    s.advance(seconds: -5)
    s.advance(seconds: .nan)
    #expect(s.elapsedSeconds == 120)
    let data = try JSONEncoder().encode(s)
    let back = try JSONDecoder().decode(LearningRateScheduler.self, from: data)
    #expect(back == s && back.schedule.budgetSeconds == 100)
    // Format 1 wrote neither key.
    let old = try JSONEncoder().encode(LearningRateScheduler(.cosine(1, totalSteps: 4, floor: 0.1)))
    let text = String(decoding: old, as: UTF8.self).replacingOccurrences(of: ",\"elapsed_seconds\":0", with: "").replacingOccurrences(of: "\"elapsed_seconds\":0,", with: "")
    #expect(!text.contains("elapsed") && !text.contains("budget"))
    let v1 = try JSONDecoder().decode(LearningRateScheduler.self, from: Data(text.utf8))
    #expect(v1.elapsedSeconds == 0 && v1.schedule.budgetSeconds == nil)
    var bad = schedule
    bad.budgetSeconds = 0
    #expect(!bad.problems.isEmpty)
  }

  @Test func plateauSchedule() {
    var s = LearningRateScheduler(.plateau(1, patience: 1, factor: 0.5, threshold: 0.01, floor: 0.2))
    var rates: [Float] = []
    for value in [1.0, 0.9, 0.895, 0.95, 0.95, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6] {
      s.observe(value)
      rates.append(s.rate(step: 0))
    }
    // 0.895 is not 1 % better than 0.9: bad. Two bad → halve; floor 0.2.
    #expect(rates == [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2], "\(rates)")
  }

  @Test func clipping() {
    var g: [Float] = [3, 4]
    let norm = clipGradientNorm(&g, maxNorm: 1)
    #expect(abs(norm - 5) < 1e-9)
    #expect(abs(g[0] - 0.6) < 1e-6 && abs(g[1] - 0.8) < 1e-6)
    var small: [Float] = [0.3, 0.4]
    clipGradientNorm(&small, maxNorm: 1)
    #expect(small == [0.3, 0.4])
    // The norm of a long buffer, in Double over blocks.
    let long = [Float](repeating: 0.5, count: 300_000)
    #expect(abs(globalNorm(long) - (300_000 * 0.25).squareRoot()) < 1e-6)
  }

  @Test func invalidConfigurationsAreReported() {
    #expect(!OptimizerConfiguration.sgd(momentum: 1).problems.isEmpty)
    #expect(!LearningRateSchedule.step(0.1, every: 0, gamma: 0.5).problems.isEmpty)
    #expect(!LearningRateSchedule.constant(0).problems.isEmpty)
    #expect(TrainingConfiguration().problems.isEmpty)
  }
}

#if canImport(Glibc)
  import Glibc
#endif
