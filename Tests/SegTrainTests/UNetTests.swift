import Foundation
import SegCore
import SegModel
import SegTrain
import Testing

/// The U-Net as a whole: size arithmetic, parameter layout, configuration files, end-to-end
/// gradients and overfitting a tile.
struct UNetTests {
  @Test func validSizeArithmetic() {
    let c = UNetConfiguration(depth: 4, baseWidth: 16, padding: .valid)
    #expect(c.outputSize(forInput: 572) == 388)
    #expect(c.inputSize(forOutput: 388) == 572)
    #expect(c.outputSize(forInput: 573) == nil)
    #expect(c.outputSize(forInput: 570) == nil)
    // Legal inputs are 12 mod 16 from 188 up (188 → 4).
    #expect(c.legalInputSizes(in: 500...600) == [508, 524, 540, 556, 572, 588])
    #expect(c.outputSize(forInput: 188) == 4)
    #expect(c.outputSize(forInput: 172) == nil)
    #expect(c.nearestLegalInputSize(atLeast: 560) == 572)
    #expect(c.inputSize(forOutput: 389) == nil)
    for n in c.legalInputSizes(in: 180...700) {
      let o = c.outputSize(forInput: n)
      #expect(o.flatMap { c.inputSize(forOutput: $0) } == n)
    }
  }

  @Test func sameSizeArithmetic() {
    let c = UNetConfiguration(depth: 4, baseWidth: 16, padding: .same)
    #expect(c.outputSize(forInput: 256) == 256)
    #expect(c.outputSize(forInput: 248) == nil)
    #expect(c.outputSize(forInput: 16) == 16)
    #expect(c.legalInputSizes(in: 1...64) == [16, 32, 48, 64])
  }

  @Test func referenceParameterCountAndLayout() {
    // The bench network of ../shared/bench (peers.py build_unet): 1,940,834 parameters.
    let m = Network(configuration: UNetConfiguration(depth: 4, baseWidth: 16, padding: .same), seed: 0)
    #expect(m.parameterCount == 1_940_834)
    #expect(m.parameterViews.first?.name == "down.0.unit1.conv.weight")
    #expect(m.parameterViews.first?.shape == [16, 1, 3, 3])
    #expect(m.parameterViews.last?.name == "head.bias")
    #expect(m.view(named: "up.0.weight")?.shape == [32, 16, 2, 2])
    // Views tile the buffer without gaps or overlaps.
    var offset = 0
    for v in m.parameterViews {
      #expect(v.offset == offset)
      offset += v.count
    }
    #expect(offset == m.parameterCount)
    // He initialisation: weight std ≈ √(2/fan_in); biases 0.
    if let v = m.view(named: "down.1.unit2.conv.weight") {
      let w = m.parameters[v.range].map(Double.init)
      let std = (w.map { $0 * $0 }.reduce(0, +) / Double(w.count)).squareRoot()
      #expect(abs(std - (2.0 / (32 * 9)).squareRoot()) < 0.01)
    }
    if let b = m.view(named: "down.1.unit2.conv.bias") { #expect(m.parameters[b.range].allSatisfy { $0 == 0 }) }
    // Same seed, same network; another seed, another.
    #expect(Network(configuration: m.configuration, seed: 0).parameters == m.parameters)
    #expect(Network(configuration: m.configuration, seed: 1).parameters != m.parameters)
    // Batch norm: convolutions lose their bias, γ = 1, running variance 1.
    let bn = Network(configuration: UNetConfiguration(depth: 2, baseWidth: 4, batchNorm: true), seed: 0)
    #expect(bn.view(named: "down.0.unit1.conv.bias") == nil)
    if let g = bn.view(named: "down.0.unit1.bn.weight") { #expect(bn.parameters[g.range].allSatisfy { $0 == 1 }) }
    if let rv = bn.view(named: "down.0.unit1.bn.running_var") { #expect(bn.state[rv.range].allSatisfy { $0 == 1 }) }
  }

  @Test func configurationFileRoundTrip() throws {
    let c = UNetConfiguration(depth: 3, baseWidth: 8, padding: .same, upMode: .bilinear, batchNorm: true, dropout: 0.25, inputChannels: 2, classes: 3)
    let data = try JSONEncoder().encode(c)
    let text = String(decoding: data, as: UTF8.self)
    for key in ["\"base_width\"", "\"up_mode\"", "\"batch_norm\"", "\"input_channels\"", "\"version\""] {
      #expect(text.contains(key), "missing \(key) in \(text)")
    }
    #expect(try JSONDecoder().decode(UNetConfiguration.self, from: data) == c)
    // Unknown keys, missing keys, bad versions and bad values are rejected.
    let unknown = Data(text.replacingOccurrences(of: "\"classes\"", with: "\"clases\"").utf8)
    #expect(throws: DecodingError.self) { try JSONDecoder().decode(UNetConfiguration.self, from: unknown) }
    let v2 = Data(text.replacingOccurrences(of: "\"version\":1", with: "\"version\":2").utf8)
    #expect(throws: DecodingError.self) { try JSONDecoder().decode(UNetConfiguration.self, from: v2) }
    let bad = Data(text.replacingOccurrences(of: "\"depth\":3", with: "\"depth\":0").utf8)
    #expect(throws: DecodingError.self) { try JSONDecoder().decode(UNetConfiguration.self, from: bad) }
  }

  struct NetCase: CustomTestStringConvertible, Sendable {
    var config: UNetConfiguration
    var size: Int
    var batch: Int
    var loss: LossConfiguration.Kind
    var testDescription: String {
      "\(config.padding.rawValue) \(config.upMode.rawValue) bn \(config.batchNorm) dropout \(config.dropout) \(size)² N\(batch) \(loss.rawValue)"
    }
  }

  static let netCases: [NetCase] = [
    NetCase(config: UNetConfiguration(depth: 2, baseWidth: 4, padding: .same, classes: 2), size: 16, batch: 1, loss: .crossEntropy),
    NetCase(config: UNetConfiguration(depth: 2, baseWidth: 4, padding: .valid, classes: 3), size: 44, batch: 1, loss: .crossEntropyDice),
    NetCase(config: UNetConfiguration(depth: 2, baseWidth: 4, padding: .same, upMode: .bilinear, batchNorm: true, dropout: 0.3, inputChannels: 2, classes: 2), size: 16, batch: 2, loss: .crossEntropy),
    NetCase(config: UNetConfiguration(depth: 1, baseWidth: 3, padding: .valid, upMode: .bilinear, classes: 2), size: 20, batch: 2, loss: .dice),
    NetCase(config: UNetConfiguration(depth: 2, baseWidth: 4, padding: .valid, upMode: .transposed, batchNorm: true, classes: 2), size: 60, batch: 2, loss: .crossEntropy),
  ]

  static func batch(_ c: UNetConfiguration, size: Int, batch: Int, seed: UInt64) -> (Tensor, [Int32], [Float]) {
    let x = randomTensor(TensorShape(n: batch, c: c.inputChannels, h: size, w: size), seed: seed)
    let o = c.outputSize(forInput: size) ?? 0
    var rng = RandomStream(seed: seed, path: [5])
    let t = (0..<(batch * o * o)).map { _ in Int32(rng.nextInt(below: c.classes)) }
    let w = randomArray(batch * o * o, seed: seed + 1, lo: 0.5, hi: 2)
    return (x, t, w)
  }

  /// The whole network's gradient against finite differences of the loss (float32).
  ///
  /// (1) Every named tensor v: the directional derivative along its own gradient direction
  /// d = g_v/‖g_v‖, FD = (L(θ + εd) − L(θ − εd))/2ε with ε = 1e-4, must match ‖g_v‖ within
  /// 2e-2·‖g_v‖ + 5e-4. The absolute term is the float32 noise of the difference quotient
  /// (the loss carries ~1e-7 relative rounding; 1e-7/2ε = 5e-4). This sees every entry of
  /// every tensor's gradient: a wrong backward pass is off by O(‖g_v‖). Networks with batch
  /// norm are far more curved (every γ, β moves a whole channel of pre-activations, about
  /// half of them near the ReLU's kink): sweeping ε from 8e-3 down to 1.25e-4 shows the
  /// quotient converging on the analytic value only as ε → 0 (e.g. 0.088, 0.082, 0.078, 0.077,
  /// 0.076, 0.0742 against 0.0741), so they use ε = 2.5e-4 and 3e-2·‖g_v‖ + 2e-3.
  /// (2) Without batch norm, a handful of single parameters (the largest gradient entry of each
  /// tensor), ε = 1e-3: 90 % within 2e-2 and all within 6e-2 relative error, the slack being
  /// ReLU kinks (a shifted bias moves every pre-activation of its channel, and those crossing 0
  /// bend the quotient). Batch norm couples every pixel of a channel and makes single-entry
  /// quotients in float32 too curved to bound tightly; check (1) covers it.
  @Test(arguments: netCases)
  func endToEndGradient(_ t: NetCase) {
    let model = Network(configuration: t.config, seed: 3)
    let (x, targets, weights) = Self.batch(t.config, size: t.size, batch: t.batch, seed: 4)
    let trainer = Trainer(model: model, configuration: TrainingConfiguration(optimizer: .sgd(), schedule: .constant(0.1), loss: LossConfiguration(kind: t.loss), seed: 9))
    ComputeThreads.withCount(1) {
      trainer.computeGradients(input: x, targets: targets, weights: weights)
      let analytic = trainer.gradients
      let params = model.parameters
      func loss(_ p: [Float]) -> Double {
        trainer.setParameters(p)
        return trainer.computeGradients(input: x, targets: targets, weights: weights).total
      }
      // (1) Directional derivatives per tensor.
      var worstDirectional = 0.0
      var worstName = ""
      var failures: [String] = []
      let eps = t.config.batchNorm ? 2.5e-4 : 1e-4
      let (relativeTolerance, absoluteTolerance) = t.config.batchNorm ? (3e-2, 2e-3) : (2e-2, 5e-4)
      for v in model.parameterViews {
        let g = v.range.map { Double(analytic[$0]) }
        let norm = g.map { $0 * $0 }.reduce(0, +).squareRoot()
        if norm == 0 { continue }
        var plus = params, minus = params
        for (k, i) in v.range.enumerated() {
          plus[i] += Float(eps * g[k] / norm)
          minus[i] -= Float(eps * g[k] / norm)
        }
        let fd = (loss(plus) - loss(minus)) / (2 * eps)
        let e = abs(fd - norm) / (norm + absoluteTolerance)  // relative, with the noise floor
        if abs(fd - norm) > relativeTolerance * norm + absoluteTolerance { failures.append("\(v.name): ‖g‖ \(norm), FD \(fd)") }
        if ProcessInfo.processInfo.environment["SEGTRAIN_FD_VERBOSE"] != nil { print("  directional \(v.name): ‖g‖ \(norm) FD \(fd) error \(e)") }
        if e > worstDirectional { worstDirectional = e; worstName = v.name }
      }
      trainer.setParameters(params)
      #expect(failures.isEmpty, "directional derivatives off: \(failures)")
      // (2) Single parameters.
      guard !t.config.batchNorm else {
        print("gradient check U-Net \(t.testDescription): directional worst |FD − ‖g‖|/(‖g‖ + floor) \(worstDirectional) (\(worstName))")
        return
      }
      var indices: [Int] = []
      for v in model.parameterViews {
        if let i = v.range.max(by: { abs(analytic[$0]) < abs(analytic[$1]) }), analytic[i] != 0 { indices.append(i) }
      }
      let errors = finiteDifferenceErrors(values: params, analytic: analytic, indices: indices, epsilon: 1e-3, scalar: loss)
      trainer.setParameters(params)
      let sorted = errors.sorted()
      let worst = sorted.last ?? 0
      let p90 = sorted.isEmpty ? 0 : sorted[max(0, Int((Double(sorted.count) * 0.9).rounded(.up)) - 1)]
      print("gradient check U-Net \(t.testDescription): directional worst |FD − ‖g‖|/(‖g‖ + floor) \(worstDirectional) (\(worstName)); \(indices.count) single parameters: 90th percentile \(p90), worst \(worst)")
      #expect(p90 < 2e-2, "90th percentile \(p90)")
      #expect(worst < 6e-2, "worst \(worst)")
      #expect(indices.count >= model.parameterViews.count / 2)
    }
  }

  /// A synthetic two-class tile: bright disks (class 1) on a dark, noisy background.
  static func disks(size: Int, output: Int, seed: UInt64) -> (Tensor, [Int32]) {
    var rng = RandomStream(seed: seed)
    let centres = (0..<3).map { _ in (rng.uniform(0.2, 0.8) * Double(size), rng.uniform(0.2, 0.8) * Double(size), rng.uniform(0.1, 0.2) * Double(size)) }
    func inside(_ y: Int, _ x: Int) -> Bool {
      centres.contains { (Double(y) - $0.0) * (Double(y) - $0.0) + (Double(x) - $0.1) * (Double(x) - $0.1) < $0.2 * $0.2 }
    }
    var img = Tensor(n: 1, c: 1, h: size, w: size)
    for y in 0..<size {
      for x in 0..<size { img.data[y * size + x] = (inside(y, x) ? 0.7 : 0.2) + Float(rng.gaussian() * 0.05) }
    }
    let off = (size - output) / 2
    var t = [Int32](repeating: 0, count: output * output)
    for y in 0..<output {
      for x in 0..<output { t[y * output + x] = inside(y + off, x + off) ? 1 : 0 }
    }
    return (img, t)
  }

  /// A tiny U-Net overfits one tile: the loss falls below 5 % of its first value within a
  /// bounded number of steps.
  @Test(arguments: [UNetConfiguration.Padding.same, .valid])
  func overfitsOneTile(_ padding: UNetConfiguration.Padding) {
    let config = UNetConfiguration(depth: 2, baseWidth: 8, padding: padding, classes: 2)
    let size = padding == .same ? 32 : 60
    let out = config.outputSize(forInput: size) ?? 0
    #expect(out == (padding == .same ? 32 : 20))
    let (x, t) = Self.disks(size: size, output: out, seed: 17)
    let trainer = Trainer(model: Network(configuration: config, seed: 1), configuration: TrainingConfiguration(optimizer: .adam(), schedule: .constant(3e-3), seed: 1))
    var first = 0.0, last = 0.0
    var steps = 0
    ComputeThreads.withCount(1) {
      for i in 0..<300 {
        let r = trainer.step(input: x, targets: t)
        if i == 0 { first = r.loss.total }
        last = r.loss.total
        steps = i + 1
        if last < 0.05 * first { break }
      }
    }
    print("overfit \(padding.rawValue): loss \(first) → \(last) in \(steps) steps")
    #expect(last < 0.05 * first)
    // The prediction now matches the tile.
    let pred = SegmentationMetrics.argmax(trainer.predict(x))
    let scores = SegmentationMetrics.scores(predicted: pred, truth: t, classes: 2)
    #expect(scores.pixelError < 0.05)
  }

  /// One step at 2 workers equals one at 1 worker up to rounding.
  @Test func threadCountDoesNotChangeTheStep() {
    let config = UNetConfiguration(depth: 2, baseWidth: 8, padding: .valid, classes: 2)
    let (x, t, w) = Self.batch(config, size: 60, batch: 2, seed: 8)
    let model = Network(configuration: config, seed: 2)
    let settings = TrainingConfiguration(optimizer: .sgd(momentum: 0.9), schedule: .constant(0.05), seed: 1)
    let a = Trainer(model: model, configuration: settings)
    let b = Trainer(model: model, configuration: settings)
    let la = ComputeThreads.withCount(1) { a.computeGradients(input: x, targets: t, weights: w) }
    let lb = ComputeThreads.withCount(2) { b.computeGradients(input: x, targets: t, weights: w) }
    #expect(abs(la.total - lb.total) < 1e-6 * abs(la.total))
    let e = worstRelativeError(b.gradients, a.gradients)
    #expect(e < 1e-3, "gradients at 1 and 2 workers: \(e)")
  }

  /// Evaluation (no update) of a network without dropout or batch norm gives the training
  /// loss, and its probabilities are the model's prediction.
  @Test func evaluateMatchesTheTrainingLoss() {
    let config = UNetConfiguration(depth: 2, baseWidth: 4, padding: .valid, classes: 3)
    let (x, t, w) = Self.batch(config, size: 44, batch: 2, seed: 21)
    let trainer = Trainer(model: Network(configuration: config, seed: 4), configuration: TrainingConfiguration(loss: LossConfiguration(kind: .crossEntropyDice)))
    ComputeThreads.withCount(1) {
      let train = trainer.computeGradients(input: x, targets: t, weights: w)
      let (value, probabilities) = trainer.evaluate(input: x, targets: t, weights: w)
      #expect(abs(value.total - train.total) < 1e-6 * abs(train.total))
      #expect(probabilities.data == trainer.predict(x).data)
      #expect(trainer.stepCount == 0)
      // Another tile size for evaluation keeps its own buffers.
      let (x2, t2, _) = Self.batch(config, size: 60, batch: 1, seed: 22)
      #expect(trainer.evaluate(input: x2, targets: t2).probabilities.shape == TensorShape(n: 1, c: 3, h: 20, w: 20))
    }
  }
}
