import Foundation
import SegCore
@testable import SegTrain
import Testing

// Naive reference kernels in Double (rule 8: every fast kernel is compared with a naive one),
// and finite-difference helpers. Written for clarity, not speed; only used on small shapes.

/// A tensor of uniform values in [lo, hi) from a seeded stream.
func randomTensor(_ shape: TensorShape, seed: UInt64, lo: Float = -1, hi: Float = 1) -> Tensor {
  var rng = RandomStream(seed: seed, path: [77])
  var t = Tensor(shape: shape)
  for i in 0..<t.data.count { t.data[i] = lo + (hi - lo) * rng.nextFloat() }
  return t
}

/// Uniform values in [lo, hi).
func randomArray(_ n: Int, seed: UInt64, lo: Float = -1, hi: Float = 1) -> [Float] {
  var rng = RandomStream(seed: seed, path: [78])
  return (0..<n).map { _ in lo + (hi - lo) * rng.nextFloat() }
}

/// Direct k×k convolution (stride 1, zero padding p) in Double: Y = b + Σ W·X.
/// x: N×C×H×W, w: O×C×k×k, b: O (or nil); returns N×O×Ho×Wo.
func naiveConv(_ x: [Double], _ s: TensorShape, _ w: [Double], _ b: [Double]?, outChannels o: Int, k: Int, p: Int) -> ([Double], TensorShape) {
  let ho = s.h + 2 * p - k + 1, wo = s.w + 2 * p - k + 1
  let os = TensorShape(n: s.n, c: o, h: ho, w: wo)
  var y = [Double](repeating: 0, count: os.count)
  for n in 0..<s.n {
    for oc in 0..<o {
      for yy in 0..<ho {
        for xx in 0..<wo {
          var acc = b?[oc] ?? 0
          for c in 0..<s.c {
            for ky in 0..<k {
              let iy = yy + ky - p
              if iy < 0 || iy >= s.h { continue }
              for kx in 0..<k {
                let ix = xx + kx - p
                if ix < 0 || ix >= s.w { continue }
                acc += w[((oc * s.c + c) * k + ky) * k + kx] * x[((n * s.c + c) * s.h + iy) * s.w + ix]
              }
            }
          }
          y[((n * o + oc) * ho + yy) * wo + xx] = acc
        }
      }
    }
  }
  return (y, os)
}

/// The gradients of L = Σ G ⊙ Y for the direct convolution (G = dL/dY), in Double, by the
/// definition: dW = Σ G·X_shifted, db = Σ G, dX = Σ G·W (scatter).
func naiveConvBackward(_ x: [Double], _ s: TensorShape, _ w: [Double], _ g: [Double], outChannels o: Int, k: Int, p: Int) -> (dx: [Double], dw: [Double], db: [Double]) {
  let ho = s.h + 2 * p - k + 1, wo = s.w + 2 * p - k + 1
  var dx = [Double](repeating: 0, count: x.count)
  var dw = [Double](repeating: 0, count: w.count)
  var db = [Double](repeating: 0, count: o)
  for n in 0..<s.n {
    for oc in 0..<o {
      for yy in 0..<ho {
        for xx in 0..<wo {
          let gv = g[((n * o + oc) * ho + yy) * wo + xx]
          db[oc] += gv
          for c in 0..<s.c {
            for ky in 0..<k {
              let iy = yy + ky - p
              if iy < 0 || iy >= s.h { continue }
              for kx in 0..<k {
                let ix = xx + kx - p
                if ix < 0 || ix >= s.w { continue }
                let xi = ((n * s.c + c) * s.h + iy) * s.w + ix
                let wi = ((oc * s.c + c) * k + ky) * k + kx
                dw[wi] += gv * x[xi]
                dx[xi] += gv * w[wi]
              }
            }
          }
        }
      }
    }
  }
  return (dx, dw, db)
}

/// The worst relative error between `a` and the reference `r`:
/// max_i |a_i − r_i| / max(|r_i|, floor), floor = 1e-2·max|r| (entries near zero, where sums
/// cancel, are judged against the tensor's scale rather than their own).
func worstRelativeError<A: Collection, B: Collection>(_ a: A, _ r: B) -> Double
where A.Element: BinaryFloatingPoint, B.Element: BinaryFloatingPoint {
  precondition(a.count == r.count, "worstRelativeError: \(a.count) vs \(r.count)")
  let scale = r.map { abs(Double($0)) }.max() ?? 0
  let floor = max(1e-2 * scale, 1e-30)
  var worst = 0.0
  for (x, y) in zip(a, r) {
    let d = abs(Double(x) - Double(y)) / max(abs(Double(y)), floor)
    if d > worst || d.isNaN { worst = d.isNaN ? .infinity : d }
  }
  return worst
}

/// Central finite difference of a scalar function of a Float array at index i:
/// (f(v + ε) − f(v − ε)) / 2ε, restoring v after.
func centralDifference(_ values: inout [Float], _ i: Int, epsilon: Float, _ f: ([Float]) -> Double) -> Double {
  let v = values[i]
  values[i] = v + epsilon
  let plus = f(values)
  values[i] = v - epsilon
  let minus = f(values)
  values[i] = v
  return (plus - minus) / (2 * Double(epsilon))
}

/// Σ r ⊙ t in Double: a scalar loss with a random projection r, whose gradient wrt t is r.
func project(_ t: Tensor, _ r: [Float]) -> Double {
  var s = 0.0
  for i in 0..<t.data.count { s += Double(t.data[i]) * Double(r[i]) }
  return s
}

/// Indices 0..<n spread evenly, at most `count` of them (for sampling a large gradient).
func sampleIndices(_ n: Int, count: Int, seed: UInt64) -> [Int] {
  if n <= count { return Array(0..<n) }
  var rng = RandomStream(seed: seed, path: [79])
  var idx = Set<Int>()
  while idx.count < count { idx.insert(rng.nextInt(below: n)) }
  return idx.sorted()
}

/// Finite-difference check of the gradient of L(v) = Σ_j r_j·f(v)_j at `indices`:
/// FD_i = Σ_j r_j·(f(v + ε·e_i)_j − f(v − ε·e_i)_j) / 2ε, the differences taken element-wise
/// in Double so unaffected outputs cancel exactly. Returns the worst relative error
/// |analytic_i − FD_i| / max(|FD_i|, |analytic_i|, 0.01·max|FD|).
func finiteDifferenceError(
  values: [Float], analytic: [Float], indices: [Int], epsilon: Float, r: [Float], _ f: ([Float]) -> [Float]
) -> Double {
  var v = values
  var fd: [Double] = []
  for i in indices {
    let old = v[i]
    v[i] = old + epsilon
    let plus = f(v)
    v[i] = old - epsilon
    let minus = f(v)
    v[i] = old
    var s = 0.0
    for j in 0..<plus.count where plus[j] != minus[j] { s += Double(r[j]) * (Double(plus[j]) - Double(minus[j])) }
    fd.append(s / (2 * Double(epsilon)))
  }
  return relativeErrors(analytic: indices.map { Double(analytic[$0]) }, numeric: fd)
}

/// Finite-difference check of a scalar function's gradient at `indices` (central differences).
func finiteDifferenceError(
  values: [Float], analytic: [Float], indices: [Int], epsilon: Float, scalar f: ([Float]) -> Double
) -> Double {
  finiteDifferenceErrors(values: values, analytic: analytic, indices: indices, epsilon: epsilon, scalar: f).max() ?? 0
}

/// The relative error of every checked index (see `finiteDifferenceError`).
func finiteDifferenceErrors(
  values: [Float], analytic: [Float], indices: [Int], epsilon: Float, scalar f: ([Float]) -> Double
) -> [Double] {
  var v = values
  let fd = indices.map { centralDifference(&v, $0, epsilon: epsilon, f) }
  if ProcessInfo.processInfo.environment["SEGTRAIN_FD_VERBOSE"] != nil {
    for (i, n) in zip(indices, fd) { print("  FD index \(i): analytic \(analytic[i]) numeric \(n)") }
  }
  let a = indices.map { Double(analytic[$0]) }
  let scale = fd.map(abs).max() ?? 0
  let floor = max(0.01 * scale, 1e-12)
  return zip(a, fd).map { x, y in
    let e = abs(x - y) / max(abs(x), abs(y), floor)
    return e.isNaN ? .infinity : e
  }
}

func relativeErrors(analytic a: [Double], numeric n: [Double]) -> Double {
  let scale = n.map(abs).max() ?? 0
  let floor = max(0.01 * scale, 1e-12)
  var worst = 0.0
  for (x, y) in zip(a, n) {
    let e = abs(x - y) / max(abs(x), abs(y), floor)
    worst = max(worst, e.isNaN ? .infinity : e)
  }
  return worst
}

/// Runs `conv` forward and backward on `x` and checks Y, dX, dW and db against the Double
/// references (worst relative error below `tolerance`), and that a second backward call adds
/// the same parameter gradients again.
func expectConvolutionMatches(
  _ conv: Conv2D, input x: Tensor, parameters params: [Float], outputGradient g: Tensor,
  output yRef: [Double], gradients ref: (dx: [Double], dw: [Double], db: [Double]),
  tolerance: Double = 1e-4, _ label: String = ""
) {
  let y = conv.forward(x, parameters: params)
  let ey = worstRelativeError(y.data, yRef)
  #expect(ey < tolerance, "\(label) forward: worst relative error \(ey)")
  var grads = [Float](repeating: 0, count: params.count)
  let dx = conv.backward(input: x, output: y, outputGradient: g, parameters: params, gradients: &grads)
  let edx = worstRelativeError(dx.data, ref.dx)
  let edw = worstRelativeError(grads[conv.weight.range], ref.dw)
  #expect(edx < tolerance, "\(label) dX: worst relative error \(edx)")
  #expect(edw < tolerance, "\(label) dW: worst relative error \(edw)")
  if let b = conv.bias {
    let edb = worstRelativeError(grads[b.range], ref.db)
    #expect(edb < tolerance, "\(label) db: worst relative error \(edb)")
  }
  // Backward adds: a second call doubles the parameter gradients.
  let once = grads
  _ = conv.backward(input: x, output: y, outputGradient: g, parameters: params, gradients: &grads)
  #expect(zip(grads, once).allSatisfy { abs($0 - 2 * $1) <= 1e-5 * max(1, abs($1)) }, "\(label) second backward")
}

/// A 6 → 11 channel 3×3 convolution with fused ReLU run through the raw entry points as the
/// graph uses them (ConvDirectTests, ConvWinogradTests): the output written into a channel
/// block of a wider tensor (three more channels after it, preset to −7), dX added to what is
/// there and masked by X > 0 with the input bias gradient summed. `run` uses the current
/// ``ConvKernels`` choice.
struct FusedConvolutionFixture {
  let conv: Conv2D
  let count: Int
  let params: [Float]
  let s: TensorShape
  let o: TensorShape
  let x: [Float]
  let stride: Int
  let dxStart: [Float]
  let dyStart: [Float]

  init(padding: Int, seed: UInt64) {
    var alloc = ParameterAllocator()
    conv = Conv2D("c", inChannels: 6, outChannels: 11, kernelSize: 3, padding: padding, fusedReLU: true, allocator: &alloc)
    count = alloc.count
    params = randomArray(alloc.count, seed: seed)
    s = TensorShape(n: 2, c: 6, h: 19, w: 21)
    o = conv.outputShape(for: s)
    // X is a ReLU output (about half zeros), as the mask assumes.
    x = randomTensor(s, seed: seed + 1).data.map { max($0, 0) }
    stride = o.item + 3 * o.plane
    dxStart = randomArray(s.count, seed: seed + 2)
    dyStart = randomArray(o.n * stride, seed: seed + 3)
  }

  /// Whether the channels after the block kept their −7.
  func untouchedAfterBlock(_ y: [Float]) -> Bool {
    (0..<o.n).allSatisfy { item in y[(item * stride + o.item)..<((item + 1) * stride)].allSatisfy { $0 == -7 } }
  }

  func run() -> (y: [Float], dx: [Float], grads: [Float], inputBias: [Float], dy: [Float]) {
    let scratch = ScratchArena()
    var y = [Float](repeating: -7, count: o.n * stride)
    var dx = dxStart, dy = dyStart
    var grads = [Float](repeating: 0, count: count)
    var inputBias = [Float](repeating: 0, count: s.c)
    x.withUnsafeBufferPointer { xp in
      params.withUnsafeBufferPointer { pp in
        y.withUnsafeMutableBufferPointer { yp in
          conv.forward(input: base(xp), shape: s, output: base(yp), outputItemStride: stride, parameters: base(pp), scratch: scratch)
        }
        y.withUnsafeBufferPointer { yp in
          dy.withUnsafeMutableBufferPointer { dyp in
            dx.withUnsafeMutableBufferPointer { dxp in
              grads.withUnsafeMutableBufferPointer { gp in
                inputBias.withUnsafeMutableBufferPointer { ib in
                  conv.backward(
                    input: base(xp), inputShape: s, output: base(yp), outputGradient: base(dyp), outputItemStride: stride,
                    inputGradient: base(dxp), accumulateInputGradient: true, maskInputGradient: true,
                    inputBiasGradient: base(ib), parameters: base(pp), gradients: base(gp), scratch: scratch)
                }
              }
            }
          }
        }
      }
    }
    return (y, dx, grads, inputBias, dy)
  }
}
