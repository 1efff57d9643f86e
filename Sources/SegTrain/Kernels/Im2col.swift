/// Lowering of a k×k convolution to a matrix product (im2col), a block of output rows at a time.
///
/// For an input X of C channels, H × W (CHW, row-major), zero padding `p` on every side,
/// and output rows `y0 ..< y1` of an output Ho × Wo, writes the matrix
///
///     col[(c·k + ky)·k + kx][(oy − y0)·Wo + ox] = X[c][oy + ky − p][ox + kx − p]   (0 outside X)
///
/// with C·k·k rows of `(y1 − y0)·Wo` columns, row-major, row stride `(y1 − y0)·Wo`. Row order
/// (c, ky, kx) matches the weight layout C_out × C × k × k, so the convolution of those rows
/// is one GEMM: Y[:, y0·Wo ..< y1·Wo] = Wmat (C_out × C·k·k) · col.
///
/// Each (row, output row) pair is one contiguous copy of up to Wo floats plus zero fills at
/// the borders, so the loop is memcpy-bound; shape arithmetic stays outside the copy.
///
/// - Complexity: C·k²·(y1 − y0)·Wo floats written.
@inline(__always)
func im2col(
  _ x: UnsafePointer<Float>, channels c: Int, height h: Int, width w: Int,
  kernel k: Int, padding p: Int, outputWidth wo: Int, rows: Range<Int>,
  into col: UnsafeMutablePointer<Float>
) {
  let nc = rows.count * wo
  for ch in 0..<c {
    let plane = x + ch * h * w
    for ky in 0..<k {
      for kx in 0..<k {
        let row = col + ((ch * k + ky) * k + kx) * nc
        // Output columns whose input column ox + kx − p lies inside 0 ..< w.
        let lo = min(wo, max(0, p - kx))
        let hi = max(lo, min(wo, w - kx + p))
        for oy in rows {
          let iy = oy + ky - p
          let dst = row + (oy - rows.lowerBound) * wo
          if iy < 0 || iy >= h {
            dst.update(repeating: 0, count: wo)
            continue
          }
          if lo > 0 { dst.update(repeating: 0, count: lo) }
          (dst + lo).update(from: plane + iy * w + (lo + kx - p), count: hi - lo)
          if hi < wo { (dst + hi).update(repeating: 0, count: wo - hi) }
        }
      }
    }
  }
}
