import SegCore

/// Channel concatenation of N inputs, each centre-cropped to the smallest input's size (the
/// U-Net's crop of its skip connection in `valid` padding; no crop in `same` padding).
///
/// Layout: input j is N × C_j × H_j × W_j; the output is N × ΣC_j × H × W with H = min H_j,
/// W = min W_j, and
///
///     Out[n, c_j + c, y, x] = X_j[n, c, y + ⌊(H_j − H)/2⌋, x + ⌊(W_j − W)/2⌋]      (c < C_j)
///
/// where c_j = Σ_{i<j} C_i, in input order (the U-Net: skip first, then the up-sampled map, as
/// the reference's `torch.cat([crop(skip), up], dim=1)`). Backward: each input's gradient is its
/// channel block of dOut placed back in the crop window, zero outside it. In a network graph an
/// input whose only use is the concatenation is written straight into its block (no copy); the
/// other inputs are copied.
public struct Concat: Sendable {
  public init() {}

  /// The output shape of concatenating `inputs`.
  public func outputShape(for inputs: [TensorShape]) -> TensorShape {
    precondition(!inputs.isEmpty, "Concat: no inputs")
    let n = inputs[0].n
    precondition(inputs.allSatisfy { $0.n == n }, "Concat: batch sizes differ: \(inputs.map(\.n))")
    let h = inputs.map(\.h).min() ?? 0, w = inputs.map(\.w).min() ?? 0
    return TensorShape(n: n, c: inputs.map(\.c).reduce(0, +), h: h, w: w)
  }

  /// (top, left) of the crop window of an input of shape `input` for an output of size `output`.
  public static func offsets(input s: TensorShape, output o: TensorShape) -> (Int, Int) {
    precondition(s.h >= o.h && s.w >= o.w, "Concat: input \(s.h)×\(s.w) smaller than the output \(o.h)×\(o.w)")
    return ((s.h - o.h) / 2, (s.w - o.w) / 2)
  }

  /// Copies the crop of input `x` (shape `s`) into channels `channelOffset ..< channelOffset + C`
  /// of `out` (shape `o`).
  func copy(input x: UnsafePointer<Float>, shape s: TensorShape, into out: UnsafeMutablePointer<Float>, outputShape o: TensorShape, channelOffset: Int) {
    let (top, left) = Self.offsets(input: s, output: o)
    let xs = SharedBuffer(x), os = SharedBuffer(out)
    // Disjoint writes: task t writes plane t of this input's block of the output.
    Parallel.forEach(tasks: s.n * s.c) { _, plane in
      let item = plane / s.c, ch = plane % s.c
      let src = xs.readOnly + plane * s.plane + top * s.w + left
      let dst = os + (item * o.item + (channelOffset + ch) * o.plane)
      if o.w == s.w && top == 0 && left == 0 {
        dst.update(from: src, count: o.plane)
      } else {
        for r in 0..<o.h { (dst + r * o.w).update(from: src + r * s.w, count: o.w) }
      }
    }
  }

  /// dX (+)= the block of dOut at `channelOffset`, placed in the crop window (without
  /// `accumulate`, dX is overwritten and 0 outside the window).
  func gradient(
    outputGradient g: UnsafePointer<Float>, outputShape o: TensorShape, channelOffset: Int, inputShape s: TensorShape,
    inputGradient dx: UnsafeMutablePointer<Float>, accumulate: Bool
  ) {
    let (top, left) = Self.offsets(input: s, output: o)
    let gs = SharedBuffer(g), ds = SharedBuffer(dx)
    let cropped = top > 0 || left > 0 || o.h < s.h || o.w < s.w
    // Disjoint writes: task t writes input-gradient plane t.
    Parallel.forEach(tasks: s.n * s.c) { _, plane in
      let item = plane / s.c, ch = plane % s.c
      let dst = ds + plane * s.plane
      let src = gs.readOnly + (item * o.item + (channelOffset + ch) * o.plane)
      if accumulate {
        for r in 0..<o.h {
          let d = dst + (r + top) * s.w + left, q = src + r * o.w
          for x in 0..<o.w { d[x] += q[x] }
        }
      } else {
        if cropped { dst.update(repeating: 0, count: s.plane) }
        for r in 0..<o.h { (dst + (r + top) * s.w + left).update(from: src + r * o.w, count: o.w) }
      }
    }
  }

  public func forward(_ inputs: [Tensor]) -> Tensor {
    for x in inputs { checkTensor(x, "Concat.forward") }
    let o = outputShape(for: inputs.map(\.shape))
    var out = Tensor(shape: o)
    var offset = 0
    out.data.withUnsafeMutableBufferPointer { op in
      for x in inputs {
        x.data.withUnsafeBufferPointer { xp in copy(input: base(xp), shape: x.shape, into: base(op), outputShape: o, channelOffset: offset) }
        offset += x.shape.c
      }
    }
    return out
  }

  /// dL/dX_j for every input from dL/dOut.
  public func backward(inputShapes: [TensorShape], outputGradient g: Tensor) -> [Tensor] {
    checkTensor(g, "Concat.backward")
    let o = outputShape(for: inputShapes)
    precondition(g.shape == o, "Concat.backward: dOut \(g.shape) does not match \(o)")
    var offset = 0
    return inputShapes.map { s in
      var dx = Tensor(shape: s)
      g.data.withUnsafeBufferPointer { gp in
        dx.data.withUnsafeMutableBufferPointer { dp in
          gradient(outputGradient: base(gp), outputShape: o, channelOffset: offset, inputShape: s, inputGradient: base(dp), accumulate: false)
        }
      }
      offset += s.c
      return dx
    }
  }
}
