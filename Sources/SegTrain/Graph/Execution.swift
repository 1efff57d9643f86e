import SegCore

/// Runs a graph's nodes with their layers' raw kernels.
///
/// Forward runs the nodes in order; backward runs them in reverse, each node adding its inputs'
/// gradients (or writing them, for the first contribution) as the plan says, so every gradient
/// is complete when its producer's backward reads it. Parameter gradients are *added* into the
/// flat gradient buffer at the parameters' offsets (the caller zeroes it once per step).
extension Graph {
  /// The forward pass: fills every activation of `ws`.
  ///
  /// - Parameters:
  ///   - state: the batch-norm running statistics; updated in training mode.
  ///   - dropout: in training, the stream of this step's dropout masks (the k-th dropout node
  ///     draws from `dropout.child(k)` for k ≥ 1, from `dropout` itself for k = 0).
  func forward(
    input x: UnsafePointer<Float>, parameters: UnsafePointer<Float>, state: UnsafeMutablePointer<Float>?,
    workspace ws: NetworkWorkspace, training: Bool, dropout: RandomStream?
  ) {
    precondition(!training || ws.isTraining, "Graph.forward: training needs a training workspace")
    let plan = ws.plan
    var dropoutIndex: UInt64 = 0
    for (i, node) in nodes.enumerated() {
      let s = plan.shapes[node.inputs[0]]
      let x0 = UnsafePointer(ws.activation(node.inputs[0], input: x))
      let y = ws.activation(node.output, input: x)
      let ystride = plan.itemStride(node.output)
      let t0 = StepProfile.begin()
      switch node.operation {
      case .conv(let c):
        c.forward(input: x0, shape: s, output: y, outputItemStride: ystride, parameters: parameters, scratch: ws.scratch)
      case .upsampledConv(let u):
        precondition(ystride == plan.shapes[node.output].item, "Graph: a fused up-sampled convolution writes whole tensors")
        u.forward(input: x0, shape: s, output: y, parameters: parameters, scratch: ws.scratch)
      case .transposedConv(let t):
        t.forward(input: x0, shape: s, output: y, outputItemStride: ystride, parameters: parameters, scratch: ws.scratch)
      case .batchNorm(let b):
        guard let state, let saved = ws.saved[i] else { preconditionFailure("Graph: batch norm without a state buffer") }
        b.forward(
          input: x0, shape: s, output: y, outputItemStride: ystride, training: training, parameters: parameters, state: state,
          saved: saved.pointer)
      case .maxPool(let p):
        p.forward(input: x0, shape: s, output: y)
      case .upsample(let u):
        u.forward(input: x0, shape: s, output: y, outputItemStride: ystride)
      case .concat:
        let o = plan.shapes[node.output]
        var offset = 0
        for v in node.inputs {
          if case .block = plan.activation[v] {} else {
            Concat().copy(input: ws.activation(v, input: x), shape: plan.shapes[v], into: y, outputShape: o, channelOffset: offset)
          }
          offset += plan.shapes[v].c
        }
      case .dropout(let d):
        if training, let mask = ws.masks[i] {
          let base = dropout ?? RandomStream(key: 0)
          var rng = dropoutIndex == 0 ? base : base.child(dropoutIndex)
          d.fillMask(mask.pointer, count: mask.count, rng: &rng)
          for j in 0..<mask.count { y[j] = x0[j] * mask.pointer[j] }
        } else {
          y.update(from: x0, count: s.count)
        }
        dropoutIndex += 1
      case .globalMaxPool:
        GlobalMaxPool().forward(input: x0, shape: s, output: y)
      case .sigmoid:
        Sigmoid().forward(input: x0, count: s.count, output: y)
      case .softmax:
        PixelSoftmax().forward(logits: x0, shape: s, probabilities: y)
      case .gate:
        CGMGate().forward(input: x0, items: s.n, output: y)
      case .scale:
        ItemScale().forward(input: x0, shape: s, factors: ws.activation(node.inputs[1], input: x), output: y)
      }
      switch node.operation {
      case .conv, .upsampledConv: break
      default: StepProfile.end(t0, "\(node.operation.kind) @\(s.h) forward")
      }
    }
  }

  /// The backward pass after a training-mode ``forward(input:parameters:state:workspace:training:dropout:)``:
  /// given dL/d(head) in every head's gradient buffer (and the classification output's, if
  /// any), adds dL/dθ into `gradients`. Clobbers the gradient buffers.
  func backward(
    input x: UnsafePointer<Float>, parameters: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>,
    workspace ws: NetworkWorkspace
  ) {
    let plan = ws.plan
    for i in nodes.indices.reversed() {
      let node = nodes[i]
      guard let dy = ws.gradient(node.output) else { continue }
      let v0 = node.inputs[0]
      let s = plan.shapes[v0]
      let x0 = UnsafePointer(ws.activation(v0, input: x))
      let y = UnsafePointer(ws.activation(node.output, input: x))
      let ystride = plan.itemStride(node.output)
      let dx = ws.gradient(v0)
      let accumulate = plan.accumulates[i][0]
      let t0 = StepProfile.begin()
      switch node.operation {
      case .conv(let c):
        let fuse = plan.fusesMask[i][0]
        c.backward(
          input: x0, inputShape: s, output: y, outputGradient: dy, outputItemStride: ystride,
          outputGradientIsMasked: plan.outputGradientMasked[i], inputGradient: dx, accumulateInputGradient: accumulate,
          maskInputGradient: fuse, inputBiasGradient: fuse ? producerBias(of: v0).map { gradients + $0 } : nil,
          parameters: parameters, gradients: gradients, scratch: ws.scratch)
      case .upsampledConv(let u):
        u.backward(
          input: x0, inputShape: s, output: y, outputGradient: dy, outputGradientIsMasked: plan.outputGradientMasked[i],
          inputGradient: dx, accumulateInputGradient: accumulate, parameters: parameters, gradients: gradients, scratch: ws.scratch)
      case .transposedConv(let t):
        t.backward(
          input: x0, inputShape: s, outputGradient: dy, outputItemStride: ystride, inputGradient: dx,
          accumulateInputGradient: accumulate, parameters: parameters, gradients: gradients, scratch: ws.scratch)
      case .batchNorm(let b):
        guard let saved = ws.saved[i] else { preconditionFailure("Graph: batch norm without saved statistics") }
        let target = dx ?? ws.scratch.floats(s.count)
        b.backward(
          input: x0, output: y, shape: s, outputGradient: dy, outputItemStride: ystride, inputGradient: target,
          accumulate: dx != nil && accumulate, parameters: parameters, gradients: gradients, saved: saved.pointer)
      case .maxPool(let p):
        guard let dx else { break }
        if plan.fusesMask[i][0] {
          if !accumulate { dx.update(repeating: 0, count: s.count) }
          MaxPool2x2().backwardMaskedAccumulate(
            input: x0, shape: s, outputGradient: dy, inputGradient: dx, biasGradient: producerBias(of: v0).map { gradients + $0 })
        } else {
          p.backward(input: x0, shape: s, outputGradient: dy, inputGradient: dx, accumulate: accumulate)
        }
      case .upsample(let u):
        guard let dx else { break }
        u.backward(shape: s, outputGradient: dy, outputItemStride: ystride, inputGradient: dx, accumulate: accumulate)
      case .concat:
        let o = plan.shapes[node.output]
        var offset = 0
        for (j, v) in node.inputs.enumerated() {
          defer { offset += plan.shapes[v].c }
          if case .block = plan.activation[v] { continue }
          guard let g = ws.gradient(v) else { continue }
          Concat().gradient(
            outputGradient: dy, outputShape: o, channelOffset: offset, inputShape: plan.shapes[v], inputGradient: g,
            accumulate: plan.accumulates[i][j])
        }
      case .dropout(let d):
        guard let dx, let mask = ws.masks[i] else { break }
        d.backward(mask: mask.pointer, count: s.count, outputGradient: dy, inputGradient: dx, accumulate: accumulate)
      case .globalMaxPool:
        guard let dx else { break }
        GlobalMaxPool().backward(input: x0, shape: s, outputGradient: dy, inputGradient: dx, accumulate: accumulate)
      case .sigmoid:
        guard let dx else { break }
        Sigmoid().backward(output: y, count: s.count, outputGradient: dy, inputGradient: dx, accumulate: accumulate)
      case .softmax:
        guard let dx else { break }
        PixelSoftmax().backward(probabilities: y, shape: s, outputGradient: dy, inputGradient: dx, accumulate: accumulate)
      case .gate:
        break
      case .scale:
        let v1 = node.inputs[1]
        ItemScale().backward(
          input: x0, shape: s, factors: ws.activation(v1, input: x), outputGradient: dy, inputGradient: dx,
          accumulateInput: accumulate, factorGradient: ws.gradient(v1), accumulateFactor: plan.accumulates[i][1])
      }
      switch node.operation {
      case .conv, .upsampledConv: break
      default: StepProfile.end(t0, "\(node.operation.kind) @\(s.h) backward")
      }
    }
  }

  /// The bias offset of the convolution that produces value `v`, if it has one.
  func producerBias(of v: Int) -> Int? {
    for n in nodes where n.output == v {
      if case .conv(let c) = n.operation { return c.bias?.offset }
    }
    return nil
  }
}
