import SegCore

#if canImport(Glibc)
  import Glibc
#endif

/// Naive references for the weight map (style rule 8): an exact Euclidean distance transform
/// per cell, as the Python reference does, and a brute-force EDT to check that one.
public enum ReferenceWeights {
  /// Exact squared Euclidean distance from every pixel to the nearest `true` pixel
  /// (Felzenszwalb & Huttenlocher 2012, doi:10.4086/toc.2012.v008a019), in Double.
  /// Pixels with no feature anywhere get +inf.
  public static func squaredEDT(_ feature: [Bool], width: Int, height: Int) -> [Double] {
    let inf = Double.infinity
    var f = feature.map { $0 ? 0.0 : inf }
    func transform1D(_ g: [Double]) -> [Double] {
      let n = g.count
      var d = [Double](repeating: inf, count: n)
      var v = [Int](repeating: 0, count: n)
      var z = [Double](repeating: 0, count: n + 1)
      var k = -1
      for q in 0..<n where g[q] < inf {
        if k < 0 {
          k = 0
          v[0] = q
          z[0] = -inf
          z[1] = inf
          continue
        }
        var s = 0.0
        while true {
          let p = v[k]
          s = ((g[q] + Double(q * q)) - (g[p] + Double(p * p))) / Double(2 * (q - p))
          if s <= z[k] {
            k -= 1
            if k < 0 { break }
          } else {
            break
          }
        }
        k += 1
        v[k] = q
        z[k] = k == 0 ? -inf : s
        z[k + 1] = inf
      }
      if k < 0 { return d }
      var j = 0
      for q in 0..<n {
        while z[j + 1] < Double(q) { j += 1 }
        let dq = Double(q - v[j])
        d[q] = dq * dq + g[v[j]]
      }
      return d
    }
    for x in 0..<width {
      let col = transform1D((0..<height).map { f[$0 * width + x] })
      for y in 0..<height { f[y * width + x] = col[y] }
    }
    for y in 0..<height {
      let row = transform1D(Array(f[(y * width)..<((y + 1) * width)]))
      for x in 0..<width { f[y * width + x] = row[x] }
    }
    return f
  }

  /// Brute force: min over all feature pixels of the squared distance (tiny images only).
  public static func bruteForceSquaredEDT(_ feature: [Bool], width: Int, height: Int) -> [Double] {
    var points: [(Int, Int)] = []
    for i in 0..<feature.count where feature[i] { points.append((i % width, i / width)) }
    return (0..<(width * height)).map { i in
      let x = i % width
      let y = i / width
      var best = Double.infinity
      for (px, py) in points { best = min(best, Double((px - x) * (px - x) + (py - y) * (py - y))) }
      return best
    }
  }

  /// d1 and d2 (not squared) per pixel: one exact EDT per cell, then the two smallest.
  ///
  /// With a `margin`, each cell's EDT runs on its bounding box grown by `margin` pixels
  /// only: the cell lies wholly inside, so distances there are exact, and pixels outside are
  /// farther than `margin` (left at +inf). Without one, every EDT covers the whole image, as
  /// the Python reference does.
  public static func nearestTwo(
    ids: [UInt32], width: Int, height: Int, margin: Int? = nil
  ) -> (d1: [Double], d2: [Double]) {
    var boxes: [UInt32: (x0: Int, y0: Int, x1: Int, y1: Int)] = [:]
    for i in 0..<ids.count where ids[i] != 0 {
      let x = i % width
      let y = i / width
      if let b = boxes[ids[i]] {
        boxes[ids[i]] = (min(b.x0, x), min(b.y0, y), max(b.x1, x), max(b.y1, y))
      } else {
        boxes[ids[i]] = (x, y, x, y)
      }
    }
    var d1 = [Double](repeating: .infinity, count: ids.count)
    var d2 = [Double](repeating: .infinity, count: ids.count)
    for cell in boxes.keys.sorted() {
      guard let b = boxes[cell] else { continue }
      let m = margin ?? max(width, height)
      let x0 = max(0, b.x0 - m)
      let y0 = max(0, b.y0 - m)
      let x1 = min(width - 1, b.x1 + m)
      let y1 = min(height - 1, b.y1 + m)
      let ww = x1 - x0 + 1
      let wh = y1 - y0 + 1
      var feature = [Bool](repeating: false, count: ww * wh)
      for y in 0..<wh { for x in 0..<ww { feature[y * ww + x] = ids[(y + y0) * width + x + x0] == cell } }
      let d = squaredEDT(feature, width: ww, height: wh)
      for y in 0..<wh {
        for x in 0..<ww {
          let i = (y + y0) * width + x + x0
          let v = d[y * ww + x].squareRoot()
          if v < d1[i] {
            d2[i] = d1[i]
            d1[i] = v
          } else if v < d2[i] {
            d2[i] = v
          }
        }
      }
    }
    return (d1, d2)
  }

  /// The weight map as ../shared/bench/reference/README.md defines it, in Double.
  public static func weightMap(
    ids: [UInt32], width: Int, height: Int, w0: Double = 10, sigma: Double = 5, backgroundOnly: Bool = true,
    classWeights: [Double]? = nil, margin: Int? = nil
  ) -> [Double] {
    let (d1, d2) = nearestTwo(ids: ids, width: width, height: height, margin: margin)
    let n = Double(ids.count)
    let cellPixels = Double(ids.filter { $0 != 0 }.count)
    let wc = classWeights ?? [n / (2 * (n - cellPixels)), n / (2 * cellPixels)]
    return (0..<ids.count).map { i in
      let c = ids[i] == 0 ? 0 : 1
      var w = wc[c]
      if (!backgroundOnly || ids[i] == 0) && d2[i].isFinite {
        let s = d1[i] + d2[i]
        w += w0 * exp(-s * s / (2 * sigma * sigma))
      }
      return w
    }
  }
}
