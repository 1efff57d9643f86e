import Foundation
import SegCore
import SegModel
@testable import SegTrain
import Testing

/// The three architectures as graphs: sizes against ../shared/ARCHITECTURES.md, whole-network
/// gradients against finite differences, overfitting, checkpoints, pruning, the CGM gate.
struct NetworkTests {
  static func unetpp(_ c: Int = 16, classes: Int = 2, ds: Bool = true, depth: Int = 4, bn: Bool = false, up: UpMode = .transposed) -> NetworkConfiguration {
    .unetpp(UNetPlusPlusConfiguration(depth: depth, baseWidth: c, upMode: up, batchNorm: bn, deepSupervision: ds, inputChannels: 1, classes: classes))
  }

  static func unet3p(_ c: Int = 16, classes: Int = 1, ds: Bool = true, cgm: Bool = true, depth: Int = 4, inputChannels: Int = 1) -> NetworkConfiguration {
    .unet3p(UNet3PlusConfiguration(depth: depth, baseWidth: c, deepSupervision: ds, cgm: cgm, inputChannels: inputChannels, classes: classes))
  }

  /// The parameter counts ../shared/ARCHITECTURES.md gives (counted from the PyTorch
  /// references in ../shared/bench/peers.py).
  @Test func parameterCountsMatchTheReferences() {
    let unet = Network(configuration: UNetConfiguration(depth: 4, baseWidth: 16, padding: .same, classes: 2), seed: 0)
    #expect(unet.parameterCount == 1_940_834)
    #expect(Network(configuration: Self.unetpp(16), seed: 0).parameterCount == 2_261_720)
    #expect(Network(configuration: Self.unetpp(64), seed: 0).parameterCount == 36_157_256)
    #expect(Network(configuration: Self.unet3p(16), seed: 0).parameterCount == 1_693_335)
    #expect(Network(configuration: Self.unet3p(16, classes: 2), seed: 0).parameterCount == 1_698_524)
    #expect(Network(configuration: Self.unet3p(64), seed: 0).parameterCount == 26_984_007)
  }

  /// MACs against the analytic formulas of the references (`unetpp_macs`, `unet3p_macs` in
  /// peers.py), and the spec's rounded figures.
  @Test func multiplyAccumulatesMatchTheFormulas() {
    let s = 256
    let w: [Int] = (0...4).map { 16 << $0 }
    let a: [Int] = (0...4).map { (s >> $0) * (s >> $0) }
    var encoder = 0
    for i in 0...4 {
      let cin = i == 0 ? 1 : w[i - 1]
      encoder += 9 * (cin + w[i]) * w[i] * a[i]
    }
    var pp = encoder
    for j in 1...4 {
      for i in 0...(4 - j) {
        let up: Int = w[i + 1] * w[i] * a[i]
        let block: Int = 9 * ((j + 1) * w[i] + w[i]) * w[i] * a[i]
        pp += up + block
      }
    }
    pp += 4 * w[0] * 2 * a[0]
    let netpp = Network(configuration: Self.unetpp(16), seed: 0)
    #expect(netpp.multiplyAccumulates(height: s, width: s) == pp)
    #expect(abs(Double(pp) / 1e9 - 7.450) < 0.0005)
    var p3 = encoder
    for d in 0..<4 {
      var cin = 0
      for src in 0...4 { cin += src <= d || src == 4 ? w[src] : 80 }
      p3 += 9 * (cin * 16 + 80 * 80) * a[d]
    }
    for d in 0...4 { p3 += 9 * (d < 4 ? 80 : w[4]) * a[d] }
    p3 += w[4] * 2 * a[4]
    let net3 = Network(configuration: Self.unet3p(16), seed: 0)
    #expect(net3.multiplyAccumulates(height: s, width: s) == p3)
    #expect(abs(Double(p3) / 1e9 - 12.407) < 0.0005)
  }

  /// Parameter order and shapes as the spec lists them.
  @Test func parameterLayoutFollowsTheReferenceOrder() {
    let netpp = Network(configuration: Self.unetpp(16), seed: 0)
    let blocks = (0..<10).compactMap { netpp.view(named: "node.\($0).block.unit1.conv.weight")?.shape[1] }
    #expect(blocks == [32, 64, 128, 256, 48, 96, 192, 64, 128, 80])
    #expect(netpp.view(named: "node.0.up.weight")?.shape == [32, 16, 2, 2])
    #expect(netpp.parameterViews.first?.name == "down.0.unit1.conv.weight")
    #expect(netpp.parameterViews.last?.name == "head.3.bias")
    let order = netpp.parameterViews.map(\.name)
    let firstNode = order.firstIndex(of: "node.0.up.weight") ?? -1
    #expect(order.firstIndex(of: "down.4.unit2.conv.bias") == firstNode - 1)
    let net3 = Network(configuration: Self.unet3p(16), seed: 0)
    let names = net3.parameterViews.map(\.name)
    #expect(names.first == "enc.0.unit1.conv.weight" && names[1] == "enc.0.unit1.bn.weight")
    #expect(names.last == "cgm.conv.bias")
    #expect(net3.view(named: "dec.3.src.0.conv.weight")?.shape == [16, 16, 3, 3])
    #expect(net3.view(named: "dec.0.src.2.conv.weight")?.shape == [16, 80, 3, 3])
    #expect(net3.view(named: "dec.0.src.4.conv.weight")?.shape == [16, 256, 3, 3])
    #expect(net3.view(named: "dec.0.fuse.conv.weight")?.shape == [80, 80, 3, 3])
    #expect(net3.view(named: "head.4.weight")?.shape == [1, 256, 3, 3])
    let decoders = names.filter { $0.hasSuffix(".fuse.conv.weight") }
    #expect(decoders == ["dec.3.fuse.conv.weight", "dec.2.fuse.conv.weight", "dec.1.fuse.conv.weight", "dec.0.fuse.conv.weight"])
    // No bias before batch norm; the running statistics are state, not parameters.
    #expect(net3.view(named: "enc.0.unit1.conv.bias") == nil)
    #expect(net3.stateViews.count == 2 * names.filter { $0.hasSuffix(".bn.weight") }.count)
  }

  struct Case: CustomTestStringConvertible, Sendable {
    var name: String
    var config: NetworkConfiguration
    var loss: LossConfiguration
    var size: Int
    var batch: Int
    var testDescription: String { name }
  }

  static let gradientCases: [Case] = [
    Case(name: "U-Net++ depth 2, 2 heads, CE+Dice", config: unetpp(3, classes: 3, depth: 2), loss: LossConfiguration(terms: [.crossEntropy, .dice]), size: 16, batch: 2),
    Case(name: "U-Net++ depth 2, bilinear, BN, no DS, focal+IoU+MS-SSIM", config: unetpp(3, classes: 2, ds: false, depth: 2, bn: true, up: .bilinear), loss: LossConfiguration(terms: [.crossEntropy, .focal, .iou, .msSSIM]), size: 16, batch: 2),
    Case(name: "UNet 3+ depth 2, sigmoid, CGM, hybrid", config: unet3p(2, depth: 2), loss: LossConfiguration(terms: [.focal, .msSSIM, .iou]), size: 16, batch: 2),
    Case(name: "UNet 3+ depth 2, 3-class softmax, no CGM, CE+Dice+IoU", config: unet3p(2, classes: 3, cgm: false, depth: 2, inputChannels: 2), loss: LossConfiguration(terms: [.crossEntropy, .dice, .iou]), size: 16, batch: 2),
  ]

  static func batch(_ c: NetworkConfiguration, size: Int, batch: Int, seed: UInt64) -> (Tensor, [Int32], [Float]) {
    let x = randomTensor(TensorShape(n: batch, c: c.inputChannels, h: size, w: size), seed: seed)
    var rng = RandomStream(seed: seed, path: [5])
    // Blobs rather than noise, so the Dice, IoU and MS-SSIM terms see structure.
    let t = (0..<(batch * size * size)).map { i -> Int32 in
      let y = (i / size) % size, xx = i % size
      let inBlob = (y / 5 + xx / 6 + i / (size * size)) % 2 == 0
      return inBlob ? Int32(1 + rng.nextInt(below: max(1, c.labelClasses - 1))) : 0
    }
    let w = randomArray(batch * size * size, seed: seed + 1, lo: 0.5, hi: 2)
    return (x, t, w)
  }

  /// The whole network's gradient against finite differences of the loss: per named tensor, the
  /// directional derivative along its own gradient (as `UNetTests.endToEndGradient`, whose
  /// comment derives the tolerances); batch norm networks get the wider bound. The CGM's gate is
  /// a step function: the test checks that no perturbation flips it.
  @Test(arguments: gradientCases)
  func endToEndGradient(_ t: Case) {
    let model = Network(configuration: t.config, seed: 3)
    let (x, targets, weights) = Self.batch(t.config, size: t.size, batch: t.batch, seed: 4)
    let trainer = Trainer(model: model, configuration: TrainingConfiguration(optimizer: .sgd(), schedule: .constant(0.1), loss: t.loss, seed: 9))
    ComputeThreads.withCount(1) {
      let base = trainer.computeGradients(input: x, targets: targets, weights: weights)
      #expect(base.total.isFinite && base.total > 0)
      let analytic = trainer.gradients
      let params = model.parameters
      func loss(_ p: [Float]) -> Double {
        trainer.setParameters(p)
        return trainer.computeGradients(input: x, targets: targets, weights: weights).total
      }
      let batchNorm = t.config.batchNorm
      let eps = batchNorm ? 2.5e-4 : 1e-4
      let (rel, abs0) = batchNorm ? (3e-2, 2e-3) : (2e-2, 5e-4)
      var failures: [String] = []
      var worst = 0.0
      var checked = 0
      for v in model.parameterViews {
        let g = v.range.map { Double(analytic[$0]) }
        let norm = g.map { $0 * $0 }.reduce(0, +).squareRoot()
        if norm == 0 { continue }
        checked += 1
        var plus = params, minus = params
        for (k, i) in v.range.enumerated() {
          plus[i] += Float(eps * g[k] / norm)
          minus[i] -= Float(eps * g[k] / norm)
        }
        let fd = (loss(plus) - loss(minus)) / (2 * eps)
        worst = max(worst, abs(fd - norm) / (norm + abs0))
        if abs(fd - norm) > rel * norm + abs0 { failures.append("\(v.name): ‖g‖ \(norm), FD \(fd)") }
      }
      trainer.setParameters(params)
      print("gradient check \(t.name): \(checked) tensors, worst |FD − ‖g‖|/(‖g‖ + floor) \(worst)")
      #expect(failures.isEmpty, "directional derivatives off: \(failures)")
      #expect(checked >= model.parameterViews.count * 3 / 4, "only \(checked) of \(model.parameterViews.count) tensors have a gradient")
    }
  }

  /// Each network overfits one tile: the loss falls below a fraction of its first value and
  /// the prediction matches the tile.
  @Test(arguments: [
    ("U-Net++", unetpp(8, depth: 2), LossConfiguration(terms: [.crossEntropy])),
    ("UNet 3+", unet3p(8, depth: 2), LossConfiguration(terms: [.focal, .msSSIM, .iou])),
  ])
  func overfitsOneTile(_ name: String, _ config: NetworkConfiguration, _ loss: LossConfiguration) {
    let (x, t) = UNetTests.disks(size: 32, output: 32, seed: 17)
    let trainer = Trainer(model: Network(configuration: config, seed: 1), configuration: TrainingConfiguration(optimizer: .adam(), schedule: .constant(3e-3), loss: loss, seed: 1))
    var first = 0.0, last = 0.0, steps = 0
    ComputeThreads.withCount(1) {
      for i in 0..<300 {
        let r = trainer.step(input: x, targets: t)
        if i == 0 { first = r.loss.total }
        last = r.loss.total
        steps = i + 1
        if last < 0.1 * first && i >= 20 { break }
      }
    }
    let pred = SegmentationMetrics.argmax(trainer.predict(x))
    let scores = SegmentationMetrics.scores(predicted: pred, truth: t, classes: 2)
    print("overfit \(name): loss \(first) → \(last) in \(steps) steps, pixel error \(scores.pixelError)")
    #expect(last < 0.1 * first)
    #expect(scores.pixelError < 0.05)
  }

  /// Save and load: the same network, parameters, state, prediction settings and predictions,
  /// for every architecture.
  @Test(arguments: [unetpp(4, depth: 2), unet3p(4, depth: 2), unet3p(3, classes: 3, ds: false, cgm: false, depth: 2)])
  func checkpointRoundTrip(_ config: NetworkConfiguration) throws {
    let (x, t, _) = Self.batch(config, size: 16, batch: 2, seed: 6)
    let trainer = Trainer(model: Network(configuration: config, seed: 2), configuration: TrainingConfiguration(optimizer: .adam(), schedule: .constant(1e-3), loss: LossConfiguration(terms: [.crossEntropy, .iou]), seed: 3))
    ComputeThreads.withCount(1) {
      for _ in 0..<3 { trainer.step(input: x, targets: t) }
    }
    let settings = config.architecture == .unetpp ? InferenceSettings(heads: .prune, pruneDepth: 1) : InferenceSettings()
    let path = CheckpointTests.temporaryPath("roundtrip-\(config.architecture.rawValue)-\(config.outputChannels)-\(config.baseWidth).ckpt")
    try Checkpoint(trainer, inference: settings).write(to: path)
    let loaded = try Checkpoint.read(from: path, expecting: config)
    #expect(loaded.model.configuration == config)
    #expect(loaded.model.parameters == trainer.model.parameters && loaded.model.state == trainer.model.state)
    #expect(loaded.inference == settings && loaded.step == 3)
    ComputeThreads.withCount(1) {
      #expect(loaded.model.predict(x, settings: settings).data == trainer.model.predict(x, settings: settings).data)
      #expect(Trainer(checkpoint: loaded).predict(x).data == trainer.predict(x).data)
    }
    // Another architecture is refused with the code callers map to "wrong checkpoint".
    #expect(throws: CheckpointError.self) { try Checkpoint.read(from: path, expecting: Self.unetpp(5, depth: 2)) }
  }

  /// U-Net++ pruned to depth d computes exactly head d of the full network, with fewer nodes.
  @Test func prunedUNetPlusPlusIsHeadDOfTheFullNetwork() {
    let config = Self.unetpp(4, depth: 3)
    let model = Network(configuration: config, seed: 5)
    let (x, _, _) = Self.batch(config, size: 16, batch: 1, seed: 7)
    ComputeThreads.withCount(1) {
      let full = model.headOutputs(x)
      #expect(full.count == 3)
      for d in 1...3 {
        let settings = InferenceSettings(heads: .prune, pruneDepth: d)
        let pruned = model.headOutputs(x, settings: settings)
        #expect(pruned.count == 1 && pruned[0].data == full[d - 1].data, "depth \(d)")
        let graph = Network.build(config, training: false, inference: settings).graph
        let convs = graph.nodes.filter { if case .conv = $0.operation { return true } else { return false } }.count
        // Encoder levels 0…d (2 convs each), the nodes with i + j ≤ d (2 each), one head.
        let nodes = (1...d).map { d - $0 + 1 }.reduce(0, +)
        #expect(convs == 2 * (d + 1) + 2 * nodes + 1, "depth \(d): \(convs) convolutions")
      }
      // "Accurate" mode: the mean of the heads' softmax probabilities.
      let mean = model.predict(x)
      let p = full.map { PixelSoftmax().forward($0) }
      let expected = (0..<mean.data.count).map { i in p.map { $0.data[i] }.reduce(0, +) / 3 }
      #expect(worstRelativeError(mean.data, expected) < 1e-6)
    }
  }

  /// The CGM gate: an item the CGM calls "absent" predicts background everywhere, and the gate
  /// takes no gradient (its inputs still train through the classification loss).
  @Test func cgmGateMultipliesTheMaps() {
    let config = Self.unet3p(4, depth: 2)
    var model = Network(configuration: config, seed: 8)
    let (x, _, _) = Self.batch(config, size: 16, batch: 2, seed: 9)
    guard let bias = model.view(named: "cgm.conv.bias") else {
      Issue.record("no cgm.conv.bias")
      return
    }
    // Bias the CGM towards "absent" (channel 0 ≫ channel 1): every item is gated to zero.
    model.parameters[bias.offset] = 50
    model.parameters[bias.offset + 1] = -50
    ComputeThreads.withCount(1) {
      let p = model.predict(x)
      #expect(p.shape == TensorShape(n: 2, c: 2, h: 16, w: 16))
      #expect(p.data[0..<256].allSatisfy { $0 == 1 } && p.data[256..<512].allSatisfy { $0 == 0 })
      model.parameters[bias.offset] = -50
      model.parameters[bias.offset + 1] = 50
      let q = model.predict(x)
      #expect(q.data[256..<512].contains { $0 > 0 && $0 < 1 })
    }
  }

  /// Invalid prediction settings are refused before they reach the graph.
  @Test func inferenceSettingsAreChecked() {
    #expect(InferenceSettings(heads: .prune, pruneDepth: 5).problem(for: Self.unetpp(4)) != nil)
    #expect(InferenceSettings(heads: .prune, pruneDepth: 2).problem(for: Self.unetpp(4)) == nil)
    #expect(InferenceSettings(heads: .prune, pruneDepth: 2).problem(for: Self.unetpp(4, ds: false)) != nil)
    #expect(InferenceSettings(heads: .prune, pruneDepth: 2).problem(for: Self.unet3p(4)) != nil)
    #expect(InferenceSettings(heads: .mean, pruneDepth: 2).problem(for: Self.unetpp(4)) != nil)
  }

  /// Configurations round-trip through JSON with the architecture key, and format-1 U-Net
  /// configurations (no key) still decode.
  @Test func configurationsRoundTripThroughJSON() throws {
    for c in [Self.unetpp(8), Self.unet3p(8, classes: 3, ds: false, cgm: false), .unet(UNetConfiguration(depth: 3, baseWidth: 8, padding: .same))] {
      let data = try JSONEncoder().encode(c)
      #expect(try JSONDecoder().decode(NetworkConfiguration.self, from: data) == c)
      #expect(String(decoding: data, as: UTF8.self).contains("\"architecture\":\"\(c.architecture.rawValue)\""))
    }
    let v1 = try JSONEncoder().encode(UNetConfiguration(depth: 2, baseWidth: 4))
    #expect(try JSONDecoder().decode(NetworkConfiguration.self, from: v1) == .unet(UNetConfiguration(depth: 2, baseWidth: 4)))
    // A configuration naming another architecture than its fields is an error.
    var text = String(decoding: try JSONEncoder().encode(Self.unetpp(8)), as: UTF8.self)
    text = text.replacingOccurrences(of: "\"architecture\":\"unetpp\"", with: "\"architecture\":\"unet3p\"")
    #expect(throws: DecodingError.self) { try JSONDecoder().decode(NetworkConfiguration.self, from: Data(text.utf8)) }
  }

  /// UNet 3+ with its up-sampled convolutions folded (the default) and without: the same loss
  /// and gradients (the fold only reorders sums), with far fewer nodes.
  @Test func foldedUpsamplingMatchesTheDirectGraph() {
    let config = Self.unet3p(8, depth: 3)
    let (x, t, _) = Self.batch(config, size: 16, batch: 2, seed: 12)
    let training = TrainingConfiguration(loss: LossConfiguration(terms: [.focal, .msSSIM, .iou]), seed: 2)
    let folded = Network(configuration: config, seed: 3)
    let direct = Graph.$fusesUpsampledConvolutions.withValue(false) { Network(configuration: config, seed: 3) }
    let fusedNodes = folded.trainingGraph.nodes.filter { if case .upsampledConv = $0.operation { return true } else { return false } }.count
    // dec.d.src.s for s > d: 3 + 2 + 1 = 6 up-sampled sources in depth 3.
    #expect(fusedNodes == 6 && direct.trainingGraph.nodes.count == folded.trainingGraph.nodes.count + 6)
    #expect(folded.multiplyAccumulates(height: 16, width: 16) == direct.multiplyAccumulates(height: 16, width: 16))
    ComputeThreads.withCount(1) {
      let a = Trainer(model: folded, configuration: training), b = Trainer(model: direct, configuration: training)
      let la = a.computeGradients(input: x, targets: t).total, lb = b.computeGradients(input: x, targets: t).total
      #expect(abs(la - lb) < 1e-5 * abs(lb), "loss \(la) vs \(lb)")
      #expect(worstRelativeError(a.gradients, b.gradients) < 1e-3, "gradients: \(worstRelativeError(a.gradients, b.gradients))")
      #expect(worstRelativeError(folded.predict(x).data, direct.predict(x).data) < 1e-4)
    }
  }
}
