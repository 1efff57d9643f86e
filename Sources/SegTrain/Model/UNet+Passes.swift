import SegCore

/// The buffers of one convolution unit: the convolution's output z (only with batch norm),
/// the unit's output y (after ReLU) and the batch norm's saved statistics.
final class UnitBuffers {
  let z: FloatBuffer?
  let y: FloatBuffer
  let saved: FloatBuffer?

  init(_ unit: ConvUnit, output: TensorShape) {
    y = FloatBuffer(count: output.count)
    z = unit.norm == nil ? nil : FloatBuffer(count: output.count)
    saved = unit.norm == nil ? nil : FloatBuffer(count: 2 * output.c)
  }
}

/// Every buffer a U-Net needs to run forward and backward on inputs of one shape.
///
/// Allocated once and reused for every step of the same shape, so a training step makes no
/// allocations (llm.c's `malloc_and_point_activations`). The gradient buffers are allocated on
/// the first backward pass only, so prediction needs about half the memory.
public final class UNetWorkspace {
  /// The input shape (N × C_in × H × W) these buffers serve.
  public let inputShape: TensorShape
  let configuration: UNetConfiguration
  let plan: UNetPlan
  let scratch = ScratchArena()

  // Activations.
  let downA: [UnitBuffers]
  let downS: [UnitBuffers]
  let pooled: [FloatBuffer]
  let dropped: FloatBuffer?
  let mask: FloatBuffer?
  let cat: [FloatBuffer]
  let low: [FloatBuffer?]
  let upA: [UnitBuffers]
  let upB: [UnitBuffers]
  let logits: FloatBuffer
  let probabilities: FloatBuffer

  // Gradients (lazily).
  private(set) var gradientBuffers: GradientBuffers?

  final class GradientBuffers {
    /// dL/d(skip) per level: written by the concatenation's backward, then the pooling's
    /// backward adds to it.
    let skip: [FloatBuffer]
    let t1: FloatBuffer
    let t2: FloatBuffer
    let t3: FloatBuffer?
    let cat: FloatBuffer
    let logits: FloatBuffer

    init(_ plan: UNetPlan, needsThird: Bool) {
      skip = plan.downS.dropLast().map { FloatBuffer(count: $0.count) }
      var largest = plan.input.count
      for s in plan.downA + plan.downS + plan.pooled + plan.upA + plan.upB + plan.upIn { largest = max(largest, s.count) }
      for case let l? in plan.low { largest = max(largest, l.count) }
      t1 = FloatBuffer(count: largest)
      t2 = FloatBuffer(count: largest)
      t3 = needsThird ? FloatBuffer(count: largest) : nil
      cat = FloatBuffer(count: plan.cat.map(\.count).max() ?? 1)
      logits = FloatBuffer(count: plan.logits.count)
    }

    var bytes: Int {
      (skip.map(\.count).reduce(0, +) + t1.count + t2.count + (t3?.count ?? 0) + cat.count + logits.count) * 4
    }
  }

  /// Buffers for `model` on inputs of `inputShape` (which must be legal for the network).
  public init(model: UNet, inputShape: TensorShape) {
    self.inputShape = inputShape
    configuration = model.configuration
    let p = UNetPlan(model, input: inputShape)
    plan = p
    let d = model.configuration.depth
    downA = (0...d).map { UnitBuffers(model.down[$0].0, output: p.downA[$0]) }
    downS = (0...d).map { UnitBuffers(model.down[$0].1, output: p.downS[$0]) }
    pooled = p.pooled.map { FloatBuffer(count: $0.count) }
    dropped = model.dropout == nil ? nil : FloatBuffer(count: p.downS[d].count)
    mask = model.dropout == nil ? nil : FloatBuffer(count: p.downS[d].count)
    cat = p.cat.map { FloatBuffer(count: $0.count) }
    low = p.low.map { $0.map { FloatBuffer(count: $0.count) } }
    upA = (0..<d).map { UnitBuffers(model.up[$0].unit1, output: p.upA[$0]) }
    upB = (0..<d).map { UnitBuffers(model.up[$0].unit2, output: p.upB[$0]) }
    logits = FloatBuffer(count: p.logits.count)
    probabilities = FloatBuffer(count: p.logits.count)
  }

  /// The output shape (N × K × Ho × Wo).
  public var outputShape: TensorShape { plan.logits }

  /// The gradient buffers, allocated on first use.
  func gradients() -> GradientBuffers {
    if let g = gradientBuffers { return g }
    let g = GradientBuffers(plan, needsThird: configuration.batchNorm || configuration.upMode == .bilinear)
    gradientBuffers = g
    return g
  }

  /// Bytes held in activations, gradients and scratch (for reports).
  public var bytes: Int {
    var n = 0
    for u in downA + downS + upA + upB { n += u.y.count + (u.z?.count ?? 0) + (u.saved?.count ?? 0) }
    n += pooled.map(\.count).reduce(0, +) + cat.map(\.count).reduce(0, +)
    n += (dropped?.count ?? 0) + (mask?.count ?? 0) + logits.count + probabilities.count
    for case let l? in low { n += l.count }
    n += scratch.capacity
    return n * 4 + (gradientBuffers?.bytes ?? 0)
  }
}

extension UNet {
  // MARK: - Units

  private func forwardUnit(
    _ u: ConvUnit, input x: UnsafePointer<Float>, shape s: TensorShape, buffers b: UnitBuffers,
    training: Bool, parameters: UnsafePointer<Float>, state: UnsafeMutablePointer<Float>?, scratch: ScratchArena
  ) {
    if let norm = u.norm, let z = b.z, let saved = b.saved {
      guard let state else { preconditionFailure("UNet: batch norm without a state buffer") }
      u.conv.forward(input: x, shape: s, output: z.pointer, parameters: parameters, scratch: scratch)
      norm.forward(
        input: z.pointer, shape: u.outputShape(for: s), output: b.y.pointer, training: training,
        parameters: parameters, state: state, saved: saved.pointer)
    } else {
      u.conv.forward(input: x, shape: s, output: b.y.pointer, parameters: parameters, scratch: scratch)
    }
  }

  /// What a layer whose input X is `producer`'s output can fuse into its input gradient: the
  /// producer's ReLU mask and its bias gradient (only for a convolution with a fused ReLU).
  private func inputFusion(_ producer: ConvUnit?) -> (mask: Bool, biasOffset: Int?) {
    guard let p = producer, p.norm == nil, p.conv.fusedReLU else { return (false, nil) }
    return (true, p.conv.bias?.offset)
  }

  /// dY is clobbered; `tmp` is used with batch norm. `masked`: dY was already masked (and the
  /// bias gradient added) by the layer after. `producer`: the unit whose output is X, whose
  /// mask and bias gradient this unit fuses into dX; returns whether it did.
  @discardableResult
  private func backwardUnit(
    _ u: ConvUnit, input x: UnsafePointer<Float>, shape s: TensorShape, buffers b: UnitBuffers,
    outputGradient dy: UnsafeMutablePointer<Float>, masked: Bool, inputGradient dx: UnsafeMutablePointer<Float>?,
    producer: ConvUnit?, temporary tmp: FloatBuffer?, parameters: UnsafePointer<Float>,
    gradients: UnsafeMutablePointer<Float>, scratch: ScratchArena
  ) -> Bool {
    let fusion = dx == nil ? (mask: false, biasOffset: nil) : inputFusion(producer)
    if let norm = u.norm, let z = b.z, let saved = b.saved {
      guard let tmp else { preconditionFailure("UNet: batch norm backward needs a temporary buffer") }
      let t0 = StepProfile.begin()
      norm.backward(
        input: z.pointer, output: b.y.pointer, shape: u.outputShape(for: s), outputGradient: dy,
        inputGradient: tmp.pointer, parameters: parameters, gradients: gradients, saved: saved.pointer)
      StepProfile.end(t0, "batch norm @\(s.h) backward")
      u.conv.backward(
        input: x, inputShape: s, output: nil, outputGradient: tmp.pointer, inputGradient: dx,
        maskInputGradient: fusion.mask, inputBiasGradient: fusion.biasOffset.map { gradients + $0 },
        parameters: parameters, gradients: gradients, scratch: scratch)
    } else {
      u.conv.backward(
        input: x, inputShape: s, output: b.y.pointer, outputGradient: dy, outputGradientIsMasked: masked,
        inputGradient: dx, maskInputGradient: fusion.mask, inputBiasGradient: fusion.biasOffset.map { gradients + $0 },
        parameters: parameters, gradients: gradients, scratch: scratch)
    }
    return fusion.mask
  }

  // MARK: - Forward

  /// The forward pass: fills every activation of `ws` and the logits.
  ///
  /// - Parameters:
  ///   - state: the batch-norm state; updated in training mode.
  ///   - dropoutMask: in training with dropout, the stream that draws this step's mask.
  func forward(
    input x: UnsafePointer<Float>, parameters: UnsafePointer<Float>, state: UnsafeMutablePointer<Float>?,
    workspace ws: UNetWorkspace, training: Bool, dropoutMask: RandomStream?
  ) {
    let plan = ws.plan
    let d = configuration.depth
    var cur = x
    var curShape = plan.input
    for i in 0...d {
      forwardUnit(down[i].0, input: cur, shape: curShape, buffers: ws.downA[i], training: training, parameters: parameters, state: state, scratch: ws.scratch)
      forwardUnit(down[i].1, input: ws.downA[i].y.pointer, shape: plan.downA[i], buffers: ws.downS[i], training: training, parameters: parameters, state: state, scratch: ws.scratch)
      if i < d {
        let t0 = StepProfile.begin()
        MaxPool2x2().forward(input: ws.downS[i].y.pointer, shape: plan.downS[i], output: ws.pooled[i].pointer)
        StepProfile.end(t0, "maxpool @\(plan.downS[i].h) forward")
        cur = UnsafePointer(ws.pooled[i].pointer)
        curShape = plan.pooled[i]
      }
    }
    cur = UnsafePointer(ws.downS[d].y.pointer)
    curShape = plan.downS[d]
    if training, let dropout, let mask = ws.mask, let dropped = ws.dropped {
      var rng = dropoutMask ?? RandomStream(key: 0)
      dropout.fillMask(mask.pointer, count: mask.count, rng: &rng)
      for j in 0..<dropped.count { dropped.pointer[j] = cur[j] * mask.pointer[j] }
      cur = UnsafePointer(dropped.pointer)
    }
    for i in (0..<d).reversed() {
      let stage = up[i]
      let c = plan.cat[i]
      let upPart = ws.cat[i].pointer + plan.downS[i].c * c.plane
      var t0 = StepProfile.begin()
      if let t = stage.transposed {
        t.forward(input: cur, shape: curShape, output: upPart, outputItemStride: c.item, parameters: parameters, scratch: ws.scratch)
      } else if let pw = stage.pointwise, let low = ws.low[i], let lowShape = plan.low[i] {
        pw.forward(input: cur, shape: curShape, output: low.pointer, parameters: parameters, scratch: ws.scratch)
        BilinearUpsample2x().forward(input: low.pointer, shape: lowShape, output: upPart, outputItemStride: c.item)
      }
      StepProfile.end(t0, "up-sampling @\(curShape.h) forward")
      t0 = StepProfile.begin()
      CropConcat().copyCrop(skip: ws.downS[i].y.pointer, skipShape: plan.downS[i], upShape: plan.upOut[i], output: ws.cat[i].pointer)
      StepProfile.end(t0, "crop-concat @\(c.h) forward")
      forwardUnit(stage.unit1, input: ws.cat[i].pointer, shape: c, buffers: ws.upA[i], training: training, parameters: parameters, state: state, scratch: ws.scratch)
      forwardUnit(stage.unit2, input: ws.upA[i].y.pointer, shape: plan.upA[i], buffers: ws.upB[i], training: training, parameters: parameters, state: state, scratch: ws.scratch)
      cur = UnsafePointer(ws.upB[i].y.pointer)
      curShape = plan.upB[i]
    }
    head.forward(input: cur, shape: curShape, output: ws.logits.pointer, parameters: parameters, scratch: ws.scratch)
  }

  // MARK: - Backward

  /// The backward pass after ``forward(input:parameters:state:workspace:training:dropoutMask:)``
  /// in training mode: adds dL/dθ into `gradients`, given dL/dlogits in the workspace's
  /// gradient buffers (`logits`, which it clobbers).
  func backward(
    input x: UnsafePointer<Float>, parameters: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>,
    workspace ws: UNetWorkspace, training: Bool
  ) {
    let plan = ws.plan
    let g = ws.gradients()
    let d = configuration.depth
    let scratch = ws.scratch
    // Head: dL/d(upB[0]) → t1 (masked by upB[0]'s ReLU when it can be fused).
    let headFusion = inputFusion(up[0].unit2)
    head.backward(
      input: ws.upB[0].y.pointer, inputShape: plan.upB[0], output: nil, outputGradient: g.logits.pointer,
      inputGradient: g.t1.pointer, maskInputGradient: headFusion.mask,
      inputBiasGradient: headFusion.biasOffset.map { gradients + $0 }, parameters: parameters, gradients: gradients,
      scratch: scratch)
    var t1Masked = headFusion.mask
    // Expanding path, top to bottom; on entry to level i, t1 holds dL/d(upB[i]).
    for i in 0..<d {
      let stage = up[i]
      let c = plan.cat[i]
      let masked = backwardUnit(stage.unit2, input: ws.upA[i].y.pointer, shape: plan.upA[i], buffers: ws.upB[i], outputGradient: g.t1.pointer, masked: t1Masked, inputGradient: g.t2.pointer, producer: stage.unit1, temporary: g.t3, parameters: parameters, gradients: gradients, scratch: scratch)
      backwardUnit(stage.unit1, input: ws.cat[i].pointer, shape: c, buffers: ws.upA[i], outputGradient: g.t2.pointer, masked: masked, inputGradient: g.cat.pointer, producer: nil, temporary: g.t3, parameters: parameters, gradients: gradients, scratch: scratch)
      var t0 = StepProfile.begin()
      CropConcat().scatterCropGradient(outputGradient: g.cat.pointer, skipShape: plan.downS[i], upShape: plan.upOut[i], skipGradient: g.skip[i].pointer)
      StepProfile.end(t0, "crop-concat @\(c.h) backward")
      // The input of this level's up-sampling: the level below's output (or the bottom's,
      // after dropout).
      let upInput: UnsafePointer<Float>
      if i + 1 < d {
        upInput = UnsafePointer(ws.upB[i + 1].y.pointer)
      } else if training, let dropped = ws.dropped {
        upInput = UnsafePointer(dropped.pointer)
      } else {
        upInput = UnsafePointer(ws.downS[d].y.pointer)
      }
      let upGrad = UnsafePointer(g.cat.pointer + plan.downS[i].c * c.plane)
      t0 = StepProfile.begin()
      if let t = stage.transposed {
        t.backward(input: upInput, inputShape: plan.upIn[i], outputGradient: upGrad, outputItemStride: c.item, inputGradient: g.t1.pointer, parameters: parameters, gradients: gradients, scratch: scratch)
      } else if let pw = stage.pointwise, let lowShape = plan.low[i], let t3 = g.t3 {
        BilinearUpsample2x().backward(shape: lowShape, outputGradient: upGrad, outputItemStride: c.item, inputGradient: t3.pointer, accumulate: false)
        pw.backward(input: upInput, inputShape: plan.upIn[i], output: nil, outputGradient: t3.pointer, inputGradient: g.t1.pointer, parameters: parameters, gradients: gradients, scratch: scratch)
      }
      StepProfile.end(t0, "up-sampling @\(plan.upIn[i].h) backward")
      t1Masked = false
    }
    // Bottom: t1 holds dL/d(bottom output after dropout).
    if training, let mask = ws.mask {
      let n = plan.downS[d].count
      for j in 0..<n { g.t1.pointer[j] *= mask.pointer[j] }
    }
    // Contracting path, bottom to top; dL/d(skip i) is in g.skip[i] for i < d (masked by the
    // skip's ReLU when `skipMasked`).
    var skipMasked = false
    for i in (0...d).reversed() {
      let dy = i == d ? g.t1.pointer : g.skip[i].pointer
      let masked = backwardUnit(down[i].1, input: ws.downA[i].y.pointer, shape: plan.downA[i], buffers: ws.downS[i], outputGradient: dy, masked: i < d && skipMasked, inputGradient: g.t2.pointer, producer: down[i].0, temporary: g.t3, parameters: parameters, gradients: gradients, scratch: scratch)
      let input = i == 0 ? x : UnsafePointer(ws.pooled[i - 1].pointer)
      let inputShape = i == 0 ? plan.input : plan.pooled[i - 1]
      backwardUnit(down[i].0, input: input, shape: inputShape, buffers: ws.downA[i], outputGradient: g.t2.pointer, masked: masked, inputGradient: i == 0 ? nil : g.t1.pointer, producer: nil, temporary: g.t3, parameters: parameters, gradients: gradients, scratch: scratch)
      if i > 0 {
        let t0 = StepProfile.begin()
        defer { StepProfile.end(t0, "maxpool @\(plan.downS[i - 1].h) backward") }
        let fusion = inputFusion(down[i - 1].1)
        if fusion.mask {
          MaxPool2x2().backwardMaskedAccumulate(
            input: ws.downS[i - 1].y.pointer, shape: plan.downS[i - 1], outputGradient: g.t1.pointer,
            inputGradient: g.skip[i - 1].pointer, biasGradient: fusion.biasOffset.map { gradients + $0 })
        } else {
          MaxPool2x2().backward(input: ws.downS[i - 1].y.pointer, shape: plan.downS[i - 1], outputGradient: g.t1.pointer, inputGradient: g.skip[i - 1].pointer, accumulate: true)
        }
        skipMasked = fusion.mask
      }
    }
  }
}
