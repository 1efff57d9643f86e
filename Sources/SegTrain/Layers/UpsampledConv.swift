import SegCore

/// A 3×3 convolution (padding 1) of a bilinearly up-sampled map, computed at the *low*
/// resolution: conv3×3(up_s(X)) = Σ_t shift_t(up_s(W_t · X)).
///
/// Both up-sampling and the convolution are linear and the up-sampling acts on each channel
/// alone, so the convolution's channel mixing W_t (the C_out × C_in matrix of tap t = (ky, kx))
/// commutes with it: W_t · up(X) = up(W_t · X). The output is then the sum over the nine taps of
/// up(Y_t) shifted by (ky − 1, kx − 1), zero outside the image, exactly as the direct form reads
/// the zero-padded up-sampled map. The mixing runs as one GEMM of (9·C_out × C_in) by the C_in ×
/// H·W input instead of 9·C_in·C_out MACs per *output* pixel: for UNet 3+'s decoder (C_in 80 or
/// 256, C_out 16, s up to 16) the work falls by a factor up to s²·C_in/(9·4), and the up-sampled
/// C_in-channel map is never stored. Exact in real arithmetic; float rounding differs from the
/// direct form only in the order of the sums (tested against it).
///
/// Layout: X is N × C_in × H × W, Y is N × C_out × sH × sW; the convolution's parameters (weight
/// C_out × C_in × 3 × 3, bias, fused ReLU) are the `conv`'s.
///
/// Backward: dU_t = shift⁻¹_t(dZ), dY_t = up_sᵀ(dU_t) at low resolution, then
/// dW_t += dY_t · Xᵀ and dX (+)= Σ_t W_tᵀ · dY_t as two GEMMs.
public struct UpsampledConv: Sendable {
  public let conv: Conv2D
  /// The up-sampling factor s ≥ 2.
  public let factor: Int

  public init(_ conv: Conv2D, factor: Int) {
    precondition(conv.kernelSize == 3 && conv.padding == 1, "UpsampledConv: needs a 3×3 convolution with padding 1")
    precondition(factor >= 2, "UpsampledConv: factor must be ≥ 2")
    self.conv = conv
    self.factor = factor
  }

  var upsample: BilinearUpsample { BilinearUpsample(factor: factor) }

  public func outputShape(for s: TensorShape) -> TensorShape { conv.outputShape(for: upsample.outputShape(for: s)) }

  /// The multiply–accumulates of the direct form (what the network nominally computes).
  public func multiplyAccumulates(for s: TensorShape) -> Int { conv.multiplyAccumulates(for: upsample.outputShape(for: s)) }

  /// The weights as the (9·C_out) × C_in matrix: row t·C_out + o is W[o, ·, ky, kx], t = 3ky + kx.
  private func tapMatrix(_ parameters: UnsafePointer<Float>, into m: UnsafeMutablePointer<Float>) {
    let cin = conv.inChannels, cout = conv.outChannels
    let w = parameters + conv.weight.offset
    for t in 0..<9 {
      for o in 0..<cout {
        let row = m + (t * cout + o) * cin
        for c in 0..<cin { row[c] = w[(o * cin + c) * 9 + t] }
      }
    }
  }

  /// (9·C_out × H·W) for one item: Y = M · X, split over pixel chunks (disjoint columns).
  private func mix(_ m: UnsafePointer<Float>, _ x: UnsafePointer<Float>, plane: Int, into y: UnsafeMutablePointer<Float>) {
    let rows = 9 * conv.outChannels, cin = conv.inChannels
    let chunks = Parallel.ranges(plane, parts: ComputeThreads.count, minimum: 256)
    let ms = SharedBuffer(m), xs = SharedBuffer(x), ys = SharedBuffer(y)
    // Disjoint writes: task j writes columns chunks[j] of Y.
    Parallel.forEach(tasks: chunks.count) { _, j in
      let r = chunks[j]
      BLAS.sgemm(
        transA: false, transB: false, m: rows, n: r.count, k: cin, alpha: 1, a: ms.readOnly, lda: cin,
        b: xs.readOnly + r.lowerBound, ldb: plane, beta: 0, c: ys + r.lowerBound, ldc: plane)
    }
  }

  /// Forward on raw NCHW buffers.
  func forward(
    input x: UnsafePointer<Float>, shape s: TensorShape, output z: UnsafeMutablePointer<Float>, parameters: UnsafePointer<Float>,
    scratch: ScratchArena
  ) {
    let t0 = StepProfile.begin()
    defer { StepProfile.end(t0, "up×\(factor)+\(conv.profileName(s)) forward") }
    let o = outputShape(for: s)
    let cout = conv.outChannels
    let mFloats = 9 * cout * conv.inChannels, yFloats = 9 * cout * s.plane
    let work = scratch.floats(mFloats + yFloats + ComputeThreads.count * o.plane)
    tapMatrix(parameters, into: work)
    let y = work + mFloats
    let temps = SharedBuffer(y + yFloats)
    let up = upsample
    let bias = conv.bias.map { SharedBuffer(parameters + $0.offset) }
    let relu = conv.fusedReLU
    for item in 0..<s.n {
      mix(work, x + item * s.item, plane: s.plane, into: y)
      let ys = SharedBuffer(y), zs = SharedBuffer(z + item * o.item)
      let low = TensorShape(n: 1, c: 1, h: s.h, w: s.w)
      // Disjoint writes: task c writes output plane c (and its worker's temporary plane).
      Parallel.forEach(tasks: cout) { worker, c in
        let dst = zs + c * o.plane
        let u = temps + worker * o.plane
        dst.update(repeating: bias.map { $0[c] } ?? 0, count: o.plane)
        for t in 0..<9 {
          up.forward(input: ys.readOnly + (t * cout + c) * s.plane, shape: low, output: u)
          addShifted(u, into: dst, height: o.h, width: o.w, dy: t / 3 - 1, dx: t % 3 - 1)
        }
        if relu { for i in 0..<o.plane { dst[i] = max(dst[i], 0) } }
      }
    }
  }

  /// Backward on raw buffers: adds dW (and db) into `gradients`; writes dX (or adds to it with
  /// `accumulateInputGradient`) when `inputGradient` is given. dZ is clobbered (masked).
  func backward(
    input x: UnsafePointer<Float>, inputShape s: TensorShape, output z: UnsafePointer<Float>,
    outputGradient dz: UnsafeMutablePointer<Float>, outputGradientIsMasked: Bool,
    inputGradient dx: UnsafeMutablePointer<Float>?, accumulateInputGradient: Bool,
    parameters: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>, scratch: ScratchArena
  ) {
    let t0 = StepProfile.begin()
    defer { StepProfile.end(t0, "up×\(factor)+\(conv.profileName(s)) backward") }
    let o = outputShape(for: s)
    let cout = conv.outChannels, cin = conv.inChannels, rows = 9 * cout
    // The ReLU mask and the bias gradient, one pass per output plane.
    if !outputGradientIsMasked && (conv.fusedReLU || conv.bias != nil) {
      let dzs = SharedBuffer(dz), zs = SharedBuffer(z)
      let gb = conv.bias.map { SharedBuffer(gradients + $0.offset) }
      let relu = conv.fusedReLU
      // Disjoint writes: task c writes channel c of dZ and bias gradient c.
      Parallel.forEach(tasks: cout) { _, c in
        var sum = 0.0
        for item in 0..<s.n {
          let g = dzs + (item * o.item + c * o.plane)
          sum += relu ? maskAndSum(g, by: zs.readOnly + (item * o.item + c * o.plane), count: o.plane) : sumOfElements(UnsafePointer(g), count: o.plane)
        }
        if let gb { gb[c] += Float(sum) }
      }
    }
    let mFloats = rows * cin, yFloats = rows * s.plane
    let workers = ComputeThreads.count
    let work = scratch.floats(2 * mFloats + yFloats + workers * (o.plane + mFloats))
    tapMatrix(parameters, into: work)
    let dm = work + mFloats  // dL/dM, (9·C_out) × C_in
    dm.update(repeating: 0, count: mFloats)
    let dy = dm + mFloats
    let perWorker = SharedBuffer(dy + yFloats)
    let up = upsample
    let low = TensorShape(n: 1, c: 1, h: s.h, w: s.w)
    for item in 0..<s.n {
      let dys = SharedBuffer(dy), dzs = SharedBuffer(UnsafePointer(dz + item * o.item))
      // dY_t[c] = upᵀ(shift⁻¹_t(dZ[c])). Disjoint writes: task (t, c) writes row t·C_out + c of dY.
      Parallel.forEach(tasks: rows) { worker, r in
        let t = r / cout, c = r % cout
        let u = perWorker + worker * (o.plane + mFloats)
        shiftBack(dzs.readOnly + c * o.plane, into: u, height: o.h, width: o.w, dy: t / 3 - 1, dx: t % 3 - 1)
        up.backward(shape: low, outputGradient: UnsafePointer(u), inputGradient: dys + r * s.plane, accumulate: false)
      }
      // dM += dY · Xᵀ over pixel chunks: per-worker partials, added in worker order.
      let xi = x + item * s.item
      let chunks = Parallel.ranges(s.plane, parts: workers, minimum: 256)
      let xs = SharedBuffer(xi)
      // Disjoint writes: worker w writes only its own partial.
      Parallel.forEachBlock(tasks: chunks.count, workers: workers) { worker, range in
        let partial = perWorker + worker * (o.plane + mFloats) + o.plane
        var first = true
        for j in range {
          let r = chunks[j]
          BLAS.sgemm(
            transA: false, transB: true, m: rows, n: cin, k: r.count, alpha: 1, a: dys.readOnly + r.lowerBound, lda: s.plane,
            b: xs.readOnly + r.lowerBound, ldb: s.plane, beta: first ? 0 : 1, c: partial, ldc: cin)
          first = false
        }
      }
      for w in 0..<min(workers, chunks.count) {
        let partial = perWorker.readOnly + w * (o.plane + mFloats) + o.plane
        for i in 0..<mFloats { dm[i] += partial[i] }
      }
      // dX = Mᵀ · dY over pixel chunks (disjoint columns).
      guard let dx else { continue }
      let dxs = SharedBuffer(dx + item * s.item), ms = SharedBuffer(UnsafePointer(work))
      let beta: Float = accumulateInputGradient ? 1 : 0
      // Disjoint writes: task j writes columns chunks[j] of dX.
      Parallel.forEach(tasks: chunks.count) { _, j in
        let r = chunks[j]
        BLAS.sgemm(
          transA: true, transB: false, m: cin, n: r.count, k: rows, alpha: 1, a: ms.readOnly, lda: cin,
          b: dys.readOnly + r.lowerBound, ldb: s.plane, beta: beta, c: dxs + r.lowerBound, ldc: s.plane)
      }
    }
    // dW[o, c, t] += dM[t·C_out + o, c].
    let gw = gradients + conv.weight.offset
    for t in 0..<9 {
      for oc in 0..<cout {
        let row = dm + (t * cout + oc) * cin
        for c in 0..<cin { gw[(oc * cin + c) * 9 + t] += row[c] }
      }
    }
  }

  // MARK: - Tensor API

  public func forward(_ x: Tensor, parameters: [Float], scratch: ScratchArena = ScratchArena()) -> Tensor {
    checkTensor(x, "UpsampledConv.forward")
    var out = Tensor(shape: outputShape(for: x.shape))
    x.data.withUnsafeBufferPointer { xp in
      parameters.withUnsafeBufferPointer { pp in
        out.data.withUnsafeMutableBufferPointer { yp in
          forward(input: base(xp), shape: x.shape, output: base(yp), parameters: base(pp), scratch: scratch)
        }
      }
    }
    return out
  }

  /// Adds the parameter gradients into `gradients`; returns dL/dX.
  public func backward(
    input x: Tensor, output z: Tensor, outputGradient dz: Tensor, parameters: [Float], gradients: inout [Float],
    scratch: ScratchArena = ScratchArena()
  ) -> Tensor {
    checkTensor(x, "UpsampledConv.backward")
    precondition(dz.shape == outputShape(for: x.shape) && z.shape == dz.shape, "UpsampledConv.backward: shapes do not match")
    var g = dz.data
    var dx = Tensor(shape: x.shape)
    x.data.withUnsafeBufferPointer { xp in
      z.data.withUnsafeBufferPointer { zp in
        parameters.withUnsafeBufferPointer { pp in
          gradients.withUnsafeMutableBufferPointer { gp in
            g.withUnsafeMutableBufferPointer { dzp in
              dx.data.withUnsafeMutableBufferPointer { dxp in
                backward(
                  input: base(xp), inputShape: x.shape, output: base(zp), outputGradient: base(dzp), outputGradientIsMasked: false,
                  inputGradient: base(dxp), accumulateInputGradient: false, parameters: base(pp), gradients: base(gp),
                  scratch: scratch)
              }
            }
          }
        }
      }
    }
    return dx
  }
}

/// dst[y][x] += src[y + dy][x + dx] where the source is inside the plane (the convolution
/// reading a zero-padded map at offset (dy, dx)).
@inline(__always)
func addShifted(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, height h: Int, width w: Int, dy: Int, dx: Int) {
  let y0 = max(0, -dy), y1 = min(h, h - dy)
  let x0 = max(0, -dx), x1 = min(w, w - dx)
  guard x1 > x0 else { return }
  for y in y0..<y1 {
    let d = dst + y * w, s = src + (y + dy) * w + dx
    for x in x0..<x1 { d[x] += s[x] }
  }
}

/// The transpose of ``addShifted(_:into:height:width:dy:dx:)`` as a write: dst[q] = src[q − (dy, dx)]
/// where that is inside the plane, else 0.
@inline(__always)
func shiftBack(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, height h: Int, width w: Int, dy: Int, dx: Int) {
  dst.update(repeating: 0, count: h * w)
  // dst[y + dy][x + dx] = src[y][x] for y in the forward's range.
  let y0 = max(0, -dy), y1 = min(h, h - dy)
  let x0 = max(0, -dx), x1 = min(w, w - dx)
  guard x1 > x0 else { return }
  for y in y0..<y1 {
    (dst + (y + dy) * w + dx + x0).update(from: src + y * w + x0, count: x1 - x0)
  }
}
