import SegCore

/// Random displacement fields for elastic deformation. A field (dx, dy) on the output grid
/// defines out(p) = in(p + d(p)).
public enum ElasticField {
  /// Simard, Steinkraus & Platt 2003 (doi:10.1109/ICDAR.2003.1227801): per-pixel values
  /// uniform in (−1, 1), smoothed by a Gaussian of std σ (radius ⌊4σ + 0.5⌋ taps, zeros
  /// outside the image), times α. Two independent fields for x and y.
  ///
  /// - Complexity: O(w · h · σ) (two separable Gaussian passes per field).
  public static func simard(
    width: Int, height: Int, alpha: Double, sigma: Double, rng: inout RandomStream
  ) -> (dx: [Float], dy: [Float]) {
    let n = width * height
    let k = Gaussian.kernel(sigma: sigma)
    func one(_ rng: inout RandomStream) -> [Float] {
      // Every element is written by the fused noise + filter kernel: no zero fill first.
      [Float](unsafeUninitializedCapacity: n) { p, count in
        // α scales the noise (the filter is linear), which saves a pass over the field.
        Gaussian.smoothedNoise(p, width: width, height: height, kernel: k, scale: Float(alpha), rng: &rng)
        count = n
      }
    }
    let dx = one(&rng)
    let dy = one(&rng)
    return (dx, dy)
  }

  /// The U-Net paper's variant (Ronneberger et al. 2015): displacements on a coarse k × k
  /// grid of control points (at rows and columns 0, (n − 1)/(k − 1), …, n − 1) drawn from
  /// N(0, σ²) pixels per axis, interpolated to every pixel by the cubic B-spline through the
  /// control points (mirror boundaries), as `elasticdeform.deform_random_grid` and
  /// `scipy.ndimage.zoom(order=3, mode="mirror", grid_mode=False)` do.
  ///
  /// - Complexity: O(w · h) (separable: k row interpolations, then 4 taps per pixel).
  public static func grid(
    width: Int, height: Int, points: Int, sigma: Double, rng: inout RandomStream
  ) -> (dx: [Float], dy: [Float]) {
    precondition(points >= 2, "the control grid needs at least 2 × 2 points")
    var cx = (0..<(points * points)).map { _ in rng.gaussian() * sigma }
    var cy = (0..<(points * points)).map { _ in rng.gaussian() * sigma }
    return (interpolate(&cx, points: points, width: width, height: height),
            interpolate(&cy, points: points, width: width, height: height))
  }

  /// The B-spline through k × k control values (row-major), sampled on a width × height grid.
  public static func interpolate(_ control: inout [Double], points k: Int, width: Int, height: Int) -> [Float] {
    // Spline coefficients: prefilter rows, then columns.
    for r in 0..<k {
      var line = Array(control[(r * k)..<((r + 1) * k)])
      BSplinePrefilter.line(&line)
      for c in 0..<k { control[r * k + c] = line[c] }
    }
    for c in 0..<k {
      var line = (0..<k).map { control[$0 * k + c] }
      BSplinePrefilter.line(&line)
      for r in 0..<k { control[r * k + c] = line[r] }
    }
    // Taps and weights per output column and row.
    func taps(_ n: Int) -> [(Int, Int, Int, Int, Double, Double, Double, Double)] {
      (0..<n).map { i in
        let g = n > 1 ? Double(i) * Double(k - 1) / Double(n - 1) : 0
        let g0 = min(g.rounded(.down), Double(k - 1))
        let t = g - g0
        let b = Int(g0)
        let (w0, w1, w2, w3) = KernelWeights.bspline(t)
        return (Pad.reflectIndex(b - 1, k), Pad.reflectIndex(b, k), Pad.reflectIndex(b + 1, k), Pad.reflectIndex(b + 2, k), w0, w1, w2, w3)
      }
    }
    let tx = taps(width)
    let ty = taps(height)
    // Row pass: each control row interpolated along x.
    var rows = [[Float]](repeating: [], count: k)
    for r in 0..<k {
      rows[r] = tx.map { t in
        Float(t.4 * control[r * k + t.0] + t.5 * control[r * k + t.1] + t.6 * control[r * k + t.2] + t.7 * control[r * k + t.3])
      }
    }
    var out = [Float](repeating: 0, count: width * height)
    for y in 0..<height {
      let t = ty[y]
      let (a, b, c, d) = (rows[t.0], rows[t.1], rows[t.2], rows[t.3])
      let (wa, wb, wc, wd) = (Float(t.4), Float(t.5), Float(t.6), Float(t.7))
      for x in 0..<width {
        out[y * width + x] = wa * a[x] + wb * b[x] + wc * c[x] + wd * d[x]
      }
    }
    return out
  }

  /// The fraction of pixels where the map p ↦ p + d(p) folds (Jacobian determinant ≤ 0),
  /// from central differences (one-sided at the edges).
  public static func foldedFraction(dx: [Float], dy: [Float], width: Int, height: Int) -> Double {
    guard width > 1, height > 1 else { return 0 }
    var folded = 0
    for y in 0..<height {
      let y0 = max(y - 1, 0)
      let y1 = min(y + 1, height - 1)
      let sy = Float(y1 - y0)
      for x in 0..<width {
        let x0 = max(x - 1, 0)
        let x1 = min(x + 1, width - 1)
        let sx = Float(x1 - x0)
        let dxdx = (dx[y * width + x1] - dx[y * width + x0]) / sx
        let dxdy = (dx[y1 * width + x] - dx[y0 * width + x]) / sy
        let dydx = (dy[y * width + x1] - dy[y * width + x0]) / sx
        let dydy = (dy[y1 * width + x] - dy[y0 * width + x]) / sy
        if (1 + dxdx) * (1 + dydy) - dxdy * dydx <= 0 { folded += 1 }
      }
    }
    return Double(folded) / Double(width * height)
  }
}
