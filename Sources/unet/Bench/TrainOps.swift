import Foundation
import SegCore
import SegModel
import SegTiling
import SegTrain
import SegWeights

extension Bench {
  /// train_step_* ops (../shared/bench/README.md, ../shared/ARCHITECTURES.md §4): one training
  /// step, batch 1, width 16, depth 4, SGD (momentum 0.99, lr 1e-4):
  /// - `train_step_same256_b1`, `train_step_valid572_b1`: the U-Net, 2 classes, pixel-weighted
  ///   cross-entropy (the U-Net weight map of the labels);
  /// - `train_step_unetpp_same256_b1`: U-Net++ with 4 heads, 2 classes, the mean over the heads of
  ///   the mean pixel cross-entropy (no weights);
  /// - `train_step_unet3p_same256_b1`: UNet 3+ with 5 heads and the CGM, 1 sigmoid class, batch
  ///   norm and dropout in training mode, focal + (1 − MS-SSIM) + IoU per head summed, + the CGM's
  ///   binary cross-entropy.
  ///
  /// The network, trainer and buffers are built outside the timing (the first untimed call
  /// sizes the buffers); each timed call is zero-grad + forward + loss + backward + update.
  /// With `UNET_BENCH_PROFILE=1` in the environment, the per-layer time of the calls (from
  /// ``StepProfile``) is printed to stderr after the op, per call.
  static var trainOps: [BenchOp] {
    let unet = { (p: NetworkPadding) in
      NetworkConfiguration.unet(UNetConfiguration(depth: 4, baseWidth: 16, padding: p, upMode: .transposed, inputChannels: 1, classes: 2))
    }
    return [
      trainStep("train_step_same256_b1", unet(.same), size: 256, loss: LossConfiguration(kind: .crossEntropy), weighted: true, parameters: 1_940_834),
      trainStep("train_step_valid572_b1", unet(.valid), size: 572, loss: LossConfiguration(kind: .crossEntropy), weighted: true, parameters: 1_940_834),
      trainStep(
        "train_step_unetpp_same256_b1", .unetpp(UNetPlusPlusConfiguration(depth: 4, baseWidth: 16, inputChannels: 1, classes: 2)),
        size: 256, loss: LossConfiguration(terms: [.crossEntropy], headWeights: .mean), weighted: false, parameters: 2_261_720),
      trainStep(
        "train_step_unet3p_same256_b1", .unet3p(UNet3PlusConfiguration(depth: 4, baseWidth: 16, inputChannels: 1, classes: 1)),
        size: 256, loss: LossConfiguration(terms: [.focal, .msSSIM, .iou], headWeights: .sum), weighted: false, parameters: 1_693_335),
    ]
  }

  static func trainStep(
    _ name: String, _ config: NetworkConfiguration, size: Int, loss: LossConfiguration, weighted: Bool, parameters: Int
  ) -> BenchOp {
    BenchOp(name: name, note: weighted ? "weights: the U-Net weight map of the labels" : "no pixel weights") { inputs in
      ComputeThreads.set(inputs.threads)
      guard let out = config.outputSize(forInput: size) else {
        preconditionFailure("\(name): \(size) is not a legal input size")
      }
      let model = Network(configuration: config, seed: 0)
      precondition(model.parameterCount == parameters, "\(name): \(model.parameterCount) parameters, the reference network has \(parameters)")
      let (x, targets, weights) = trainStepTile(inputs, size: size, output: out)
      let trainer = Trainer(
        model: model,
        configuration: TrainingConfiguration(optimizer: .sgd(momentum: 0.99), schedule: .constant(1e-4), loss: loss, seed: 0))
      // gflop as the README counts it: 2 × (3 × forward MACs − the first layer's MACs).
      let macs = model.multiplyAccumulates(height: size, width: size)
      let side = config.padding == .same ? size : size - 2
      let first = side * side * 9 * config.baseWidth * config.inputChannels
      let gflop = 2 * Double(3 * macs - first) / 1e9
      let profile = ProcessInfo.processInfo.environment["UNET_BENCH_PROFILE"] != nil
      var calls = 0
      return ({
        if profile && calls == 1 { StepProfile.start() }  // skip the first call (it sizes buffers)
        blackHole(trainer.step(input: x, targets: targets, weights: weighted ? weights : nil))
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
