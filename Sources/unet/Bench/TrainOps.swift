import Foundation
import SegCore
import SegTrain

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
    BenchOp(name: name, note: "weights: all ones (timing does not depend on them)") { inputs in
      ComputeThreads.set(inputs.threads)
      let config = UNetConfiguration(depth: 4, baseWidth: 16, padding: padding, upMode: .transposed, batchNorm: false, dropout: 0, inputChannels: 1, classes: 2)
      guard let out = config.outputSize(forInput: size) else {
        preconditionFailure("\(name): \(size) is not a legal input size")
      }
      let model = UNet(configuration: config, seed: 0)
      precondition(model.parameterCount == referenceParameterCount, "\(name): \(model.parameterCount) parameters, the reference network has \(referenceParameterCount)")
      let (x, targets) = trainStepTile(inputs, size: size, output: out)
      let weights = [Float](repeating: 1, count: out * out)
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

  /// The input tile and targets the peer uses: the image as float32 / 255, reflect-padded by
  /// (size − output)/2 (numpy "reflect": no repeated edge pixel), the size × size window whose
  /// output is centred in the image; targets = labels > 0 in the output window.
  static func trainStepTile(_ inputs: BenchInputs, size: Int, output: Int) -> (Tensor, [Int32]) {
    let img = inputs.image.floatSamples()
    let lab = inputs.labels.labelSamples()
    let w = inputs.image.width, h = inputs.image.height
    let border = (size - output) / 2
    let oy = (h - output) / 2, ox = (w - output) / 2
    func reflect(_ i: Int, _ n: Int) -> Int {
      var j = i
      while j < 0 || j >= n { j = j < 0 ? -j : 2 * (n - 1) - j }
      return j
    }
    var x = Tensor(n: 1, c: 1, h: size, w: size)
    for r in 0..<size {
      for c in 0..<size {
        let sy = reflect(oy - border + r, h), sx = reflect(ox - border + c, w)
        x.data[r * size + c] = img[sy * w + sx] / 255
      }
    }
    var t = [Int32](repeating: 0, count: output * output)
    for r in 0..<output {
      for c in 0..<output { t[r * output + c] = lab[(oy + r) * w + ox + c] > 0 ? 1 : 0 }
    }
    return (x, t)
  }
}
