/// Small vectorised loops shared by the layers (bias and ReLU passes, masked sums, SIMD loads).

/// Y[r, 0..<columns] ← max(Y + bias[r], 0) (or without the max, or without the bias), over
/// `rows` rows `rowStride` apart. One pass over a block that is still in cache.
@inline(__always)
func applyBiasAndReLU(
  _ c: UnsafeMutablePointer<Float>, rows: Int, columns: Int, rowStride: Int,
  bias: UnsafePointer<Float>?, relu: Bool
) {
  if bias == nil && !relu { return }
  for r in 0..<rows {
    let row = c + r * rowStride
    let b = bias?[r] ?? 0
    if relu {
      for j in 0..<columns {
        let v = row[j] + b
        row[j] = v > 0 ? v : 0
      }
    } else {
      for j in 0..<columns { row[j] += b }
    }
  }
}

/// dY[r, j] ← Y[r, j] > 0 ? dY[r, j] : 0: the ReLU backward, from the ReLU's output.
@inline(__always)
func applyReLUMask(
  _ g: UnsafeMutablePointer<Float>, output y: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int
) {
  for r in 0..<rows {
    let gr = g + r * rowStride
    let yr = y + r * rowStride
    for j in 0..<columns { gr[j] = yr[j] > 0 ? gr[j] : 0 }
  }
}

/// Σ p[0 ..< count], with eight float accumulators per block of 4096 and the blocks added in
/// Double (vectorisable, and accurate for long planes).
@inline(__always)
func sumOfElements(_ p: UnsafePointer<Float>, count: Int) -> Double {
  var total = 0.0
  var i = 0
  while i < count {
    let end = min(count, i + 4096)
    var acc = SIMD8<Float>(repeating: 0)
    while i + 8 <= end {
      acc += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
      i += 8
    }
    var tail: Float = 0
    while i < end {
      tail += p[i]
      i += 1
    }
    total += Double(acc.sum() + tail)
  }
  return total
}

/// Eight floats from `p` (any alignment).
@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
  UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

/// Stores eight floats at `p` (any alignment).
@inline(__always)
func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
  UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// g[i] ← y[i] > 0 ? g[i] : 0 for i < count, returning Σ g[i] after masking (the ReLU backward
/// and the bias gradient in one pass; sums as in ``sumOfElements(_:count:)``).
@inline(__always)
func maskAndSum(_ g: UnsafeMutablePointer<Float>, by y: UnsafePointer<Float>, count: Int) -> Double {
  var total = 0.0
  var i = 0
  while i < count {
    let end = min(count, i + 4096)
    var acc = SIMD8<Float>(repeating: 0)
    while i + 8 <= end {
      var v = load8(g + i)
      v.replace(with: 0, where: .!(load8(y + i) .> 0))
      store8(v, g + i)
      acc += v
      i += 8
    }
    var tail: Float = 0
    while i < end {
      let v = y[i] > 0 ? g[i] : 0
      g[i] = v
      tail += v
      i += 1
    }
    total += Double(acc.sum() + tail)
  }
  return total
}
