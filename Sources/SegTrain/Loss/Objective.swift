import SegModel

/// A network's whole training loss: the configured terms on every head, the heads weighted
/// (``HeadWeights``), and the CGM's classification loss when the network has one.
///
/// Softmax heads (U-Net, U-Net++: logits) get cross-entropy and Dice from
/// ``SegmentationLoss`` on the logits (softmax inside, exactly as before), and focal, IoU and
/// MS-SSIM on the foreground channels of the softmax probabilities, back through the softmax.
/// Probability heads (UNet 3+: sigmoid or softmax and the gate inside the graph) get every term
/// on their foreground maps directly.
struct Objective: Sendable {
  let configuration: LossConfiguration
  /// Per head.
  let weights: [Float]
  let headKind: HeadKind

  init(_ configuration: LossConfiguration, heads: Int, headKind: HeadKind, architecture: Architecture) {
    self.configuration = configuration
    self.headKind = headKind
    let fallback: HeadWeights = architecture == .unet3p ? .sum : .mean
    weights = (configuration.headWeights ?? fallback).values(heads: heads)
    precondition(weights.count == heads, "Objective: \(weights.count) head weights for \(heads) heads")
  }

  /// The loss of the heads in `ws` (after a forward pass on `input`); writes dL/d(head) into
  /// the heads' gradient buffers (and the classification output's), when `gradients` is set.
  /// Softmax heads' probabilities are left in `ws.headProbabilities`.
  func evaluate(
    workspace ws: NetworkWorkspace, input x: UnsafePointer<Float>, targets t: UnsafePointer<Int32>,
    weights pixelWeights: UnsafePointer<Float>?, gradients: Bool
  ) -> LossValue {
    var value = LossValue(total: 0)
    let cfg = configuration
    func add(_ part: WritableKeyPath<LossValue, Double?>, _ v: Double, _ w: Float) {
      value[keyPath: part] = (value[keyPath: part] ?? 0) + Double(w) * v
      value.total += Double(w) * v
    }
    for (h, head) in ws.heads.enumerated() {
      let s = ws.shape(head)
      let w = weights[h]
      let out = ws.activation(head, input: x)
      let grad = gradients ? ws.gradient(head) : nil
      let scratchGradient = grad ?? ws.scratchGradient(count: s.count)
      switch headKind {
      case .logits:
        let p = ws.headProbabilities[h].pointer
        let part = SegmentationLoss.evaluate(
          logits: out, shape: s, targets: t, weights: pixelWeights, configuration: cfg, probabilities: p,
          gradient: scratchGradient)
        if let ce = part.crossEntropy { add(\.crossEntropy, ce, w) }
        if let d = part.dice { add(\.dice, d, w) }
        if w != 1 { for i in 0..<s.count { scratchGradient[i] *= w } }
        let extra = cfg.probabilityTerms
        if !extra.isEmpty {
          let dp = ws.probabilityGradient(count: s.count)
          dp.update(repeating: 0, count: s.count)
          let maps = ProbabilityMaps(p: p, shape: s, foreground: 1..<s.c, classOffset: 0, targets: t, weights: pixelWeights)
          probabilityTerms(extra, maps, w, dp, &value)
          PixelSoftmax().backward(probabilities: p, shape: s, outputGradient: dp, inputGradient: scratchGradient, accumulate: true)
        }
      case .probabilities:
        scratchGradient.update(repeating: 0, count: s.count)
        let maps = ProbabilityMaps(
          p: out, shape: s, foreground: s.c == 1 ? 0..<1 : 1..<s.c, classOffset: s.c == 1 ? 1 : 0, targets: t,
          weights: pixelWeights)
        if cfg.usesCrossEntropy { add(\.crossEntropy, ProbabilityLoss.crossEntropy(maps, scale: w, dp: scratchGradient), w) }
        if cfg.usesDice {
          add(\.dice, ProbabilityLoss.dice(maps, smoothing: cfg.diceSmoothing, scale: w, dp: scratchGradient), w)
        }
        probabilityTerms(cfg.probabilityTerms, maps, w, scratchGradient, &value)
      }
    }
    if let q = ws.graph.classification {
      let s = ws.shape(q)
      let dq = (gradients ? ws.gradient(q) : nil) ?? ws.scratchGradient(count: s.count)
      dq.update(repeating: 0, count: s.count)
      let head = ws.shape(ws.heads[0])
      let bce = ProbabilityLoss.classification(
        ws.activation(q, input: x), items: s.n, targets: t, plane: head.plane, scale: cfg.classificationWeight, dq: dq)
      value.classification = bce
      value.total += Double(cfg.classificationWeight) * bce
    }
    return value
  }

  /// Focal, IoU and MS-SSIM (those of `terms`) on `maps`, weighted by `w`, into `dp` and `value`.
  private func probabilityTerms(
    _ terms: [LossConfiguration.Term], _ maps: ProbabilityMaps, _ w: Float, _ dp: UnsafeMutablePointer<Float>,
    _ value: inout LossValue
  ) {
    for term in terms {
      let v: Double
      let part: WritableKeyPath<LossValue, Double?>
      switch term {
      case .focal:
        v = ProbabilityLoss.focal(maps, alpha: configuration.focalAlpha, gamma: configuration.focalGamma, scale: w, dp: dp)
        part = \.focal
      case .iou:
        v = ProbabilityLoss.iou(maps, scale: w, dp: dp)
        part = \.iou
      case .msSSIM:
        v = MSSSIM.loss(maps, scale: w, dp: dp)
        part = \.msSSIM
      case .crossEntropy, .dice:
        continue
      }
      value[keyPath: part] = (value[keyPath: part] ?? 0) + Double(w) * v
      value.total += Double(w) * v
    }
  }
}
