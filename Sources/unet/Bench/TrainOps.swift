import Foundation
import SegCore
import SegTiling
import SegTrain
import SegWeights

extension Bench {
  /// train_step_* ops (../shared/bench/README.md): one U-Net training step, batch 1, width 16,
  /// depth 4, 2 classes, SGD (momentum 0.99, lr 1e-4), pixel-weighted cross-entropy.
  ///
  /// The network, trainer and buffers are built outside the timing (the first untimed call
  /// sizes the buffers); each timed call is zero-grad + forward + loss + backward + update.
  /// With `UNET_BENCH_PROFILE=1` in the environment, the per-layer time of the calls (from
  /// ``StepProfile``) is printed to stderr after the op, per call.
  static var trainOps: [BenchOp] {
    [
      trainStep("train_step_same256_b1", padding: .same, size: 256),
      trainStep("train_step_valid572_b1", padding: .valid, size: 572),
    ]
  }

  /// The parameter count of the reference network (peers.py `build_unet`).
  static let referenceParameterCount = 1_940_834

  static func trainStep(_ name: String, padding: UNetConfiguration.Padding, size: Int) -> BenchOp {
    BenchOp(name: name, note: "weights: the U-Net weight map of the labels") { inputs in
      ComputeThreads.set(inputs.threads)
      let config = UNetConfiguration(depth: 4, baseWidth: 16, padding: padding, upMode: .transposed, batchNorm: false, dropout: 0, inputChannels: 1, classes: 2)
      guard let out = config.outputSize(forInput: size) else {
        preconditionFailure("\(name): \(size) is not a legal input size")
      }
      let model = UNet(configuration: config, seed: 0)
      precondition(model.parameterCount == referenceParameterCount, "\(name): \(model.parameterCount) parameters, the reference network has \(referenceParameterCount)")
      let (x, targets, weights) = trainStepTile(inputs, size: size, output: out)
      let trainer = Trainer(
        model: model,
        configuration: TrainingConfiguration(optimizer: .sgd(momentum: 0.99), schedule: .constant(1e-4), loss: LossConfiguration(kind: .crossEntropy), seed: 0))
      // gflop as the README counts it: 2 × (3 × forward MACs − the first layer's MACs).
      let macs = model.multiplyAccumulates(height: size, width: size)
      let first = (padding == .same ? size : size - 2) * (padding == .same ? size : size - 2) * 9 * 16
      let gflop = 2 * Double(3 * macs - first) / 1e9
      let profile = ProcessInfo.processInfo.environment["UNET_BENCH_PROFILE"] != nil
      var calls = 0
      return ({
        if profile && calls == 1 { StepProfile.start() }  // skip the first call (it sizes buffers)
        blackHole(trainer.step(input: x, targets: targets, weights: weights))
        calls += 1
        if profile && calls > 1 { printProfile(name, calls: calls - 1) }
      },
              [("gflop", .double((gflop * 1000).rounded() / 1000)), ("params", .int(model.parameterCount))])
    }
  }

  /// Prints ``StepProfile``'s totals per call, after the calls of one op (overwritten each call;
  /// the last print wins).
  static func printProfile(_ name: String, calls: Int) {
    guard calls == 7 else { return }
    printError("  profile of \(name), per step:")
    for (key, ms, n) in StepProfile.report() {
      printError(String(format: "    %-44@ %8.2f ms  (%d calls/step)", key, ms / Double(calls), n / calls))
    }
    StepProfile.stop()
  }

  /// The input tile, targets and weights the peer uses: the image as float32 / 255, the
  /// size × size window (reflect-padded, numpy "reflect") whose output window is centred in the
  /// image; targets = labels > 0 and the U-Net weight map (w0 = 10, σ = 5) in the output window.
  static func trainStepTile(_ inputs: BenchInputs, size: Int, output: Int) -> (Tensor, [Int32], [Float]) {
    let w = inputs.image.width
    let h = inputs.image.height
    let border = (size - output) / 2
    let oy = (h - output) / 2
    let ox = (w - output) / 2
    let image = inputs.image.toFloat32(scale: 1.0 / 255)
    let window = OverlapTilePlan.window(image, x: ox - border, y: oy - border, width: size, height: size)
    let labels = OverlapTilePlan.window(inputs.labels, x: ox, y: oy, width: output, height: output)
    let weights = OverlapTilePlan.window(WeightMap.compute(mask: inputs.labels), x: ox, y: oy, width: output, height: output)
    let x = Tensor(shape: TensorShape(n: 1, c: 1, h: size, w: size), data: window.floatSamples())
    return (x, labels.labelSamples().map { $0 > 0 ? 1 : 0 }, weights.floatSamples())
  }
}
