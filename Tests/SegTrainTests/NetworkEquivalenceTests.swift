import SegCore
import SegModel
@testable import SegTrain
import Testing

/// The U-Net built by the graph against the hand-written U-Net it replaced (LegacyUNet.swift):
/// for the same parameters, the same logits and the same gradients (up to float rounding: the
/// graph fuses one more ReLU mask, into the 1×1 convolution of bilinear up-sampling, which
/// reorders the bias gradient's sum), and the same initialisation from the same seed.
struct NetworkEquivalenceTests {
  static let cases: [(UNetConfiguration, Int, Int)] = [
    (UNetConfiguration(depth: 2, baseWidth: 4, padding: .same, classes: 2), 16, 1),
    (UNetConfiguration(depth: 3, baseWidth: 4, padding: .valid, classes: 3), 92, 2),
    (UNetConfiguration(depth: 2, baseWidth: 4, padding: .same, upMode: .bilinear, batchNorm: true, dropout: 0.3, inputChannels: 2, classes: 2), 16, 2),
    (UNetConfiguration(depth: 2, baseWidth: 4, padding: .valid, upMode: .bilinear, classes: 2), 44, 2),
    (UNetConfiguration(depth: 2, baseWidth: 4, padding: .valid, batchNorm: true, classes: 2), 60, 2),
  ]

  @Test(arguments: cases)
  func graphUNetEqualsTheHandWrittenOne(_ config: UNetConfiguration, _ size: Int, _ n: Int) {
    let legacy = LegacyUNet(configuration: config, seed: 11)
    let model = Network(configuration: config, seed: 11)
    #expect(model.parameters == legacy.parameters && model.state == legacy.state, "initialisation differs")
    #expect(model.parameterViews == legacy.parameterViews && model.stateViews == legacy.stateViews)
    let x = randomTensor(TensorShape(n: n, c: config.inputChannels, h: size, w: size), seed: 12)
    ComputeThreads.withCount(1) {
      // Evaluation mode: identical logits.
      let a = legacy.logits(x)
      let b = model.logits(x)
      #expect(a.shape == b.shape && a.data == b.data, "logits differ: \(worstRelativeError(b.data, a.data))")
      // Training mode: forward, loss, backward on both.
      let o = config.outputSize(forInput: size) ?? 0
      let targets = (0..<(n * o * o)).map { Int32(($0 * 7 + $0 / 5) % config.classes) }
      let weights = randomArray(n * o * o, seed: 13, lo: 0.5, hi: 2)
      let training = TrainingConfiguration(optimizer: .sgd(), schedule: .constant(0.1), loss: LossConfiguration(kind: .crossEntropyDice), seed: 4)
      let trainer = Trainer(model: model, configuration: training)
      let value = trainer.computeGradients(input: x, targets: targets, weights: weights)
      let reference = Self.legacyGradients(legacy, x, targets, weights, training)
      #expect(abs(value.total - reference.value.total) <= 1e-6 * abs(reference.value.total), "loss \(value.total) vs \(reference.value.total)")
      let e = worstRelativeError(trainer.gradients, reference.gradients)
      print("graph vs hand-written U-Net \(config.padding.rawValue) \(config.upMode.rawValue) bn \(config.batchNorm): worst gradient relative error \(e)")
      #expect(e < 1e-4, "gradients differ: \(e)")
      if !reference.state.isEmpty { #expect(worstRelativeError(trainer.model.state, reference.state) < 1e-6) }
    }
  }

  /// The hand-written network's training pass, as the trainer of format 1 ran it: the loss,
  /// dL/dθ and the batch-norm state after the pass.
  static func legacyGradients(
    _ m: LegacyUNet, _ x: Tensor, _ targets: [Int32], _ weights: [Float], _ cfg: TrainingConfiguration
  ) -> (value: LossValue, gradients: [Float], state: [Float]) {
    let ws = LegacyUNetWorkspace(model: m, inputShape: x.shape)
    let g = ws.gradients()
    var gradients = [Float](repeating: 0, count: m.parameters.count)
    var state = m.state
    var value = LossValue(total: 0)
    let rng = RandomStream(seed: cfg.seed, path: [Trainer.dropoutStream, 0])
    m.parameters.withUnsafeBufferPointer { pp in
      state.withUnsafeMutableBufferPointer { sp in
        x.data.withUnsafeBufferPointer { xp in
          m.forward(input: base(xp), parameters: base(pp), state: sp.baseAddress, workspace: ws, training: true, dropoutMask: rng)
          value = targets.withUnsafeBufferPointer { tp in
            weights.withUnsafeBufferPointer { wp in
              guard let tb = tp.baseAddress else { return LossValue(total: .nan) }
              return SegmentationLoss.evaluate(
                logits: ws.logits.pointer, shape: ws.plan.logits, targets: tb, weights: wp.baseAddress,
                configuration: cfg.loss, probabilities: ws.probabilities.pointer, gradient: g.logits.pointer)
            }
          }
          gradients.withUnsafeMutableBufferPointer { gp in
            m.backward(input: base(xp), parameters: base(pp), gradients: base(gp), workspace: ws, training: true)
          }
        }
      }
    }
    return (value, gradients, state)
  }
}
