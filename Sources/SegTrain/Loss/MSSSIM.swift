#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Multi-scale structural similarity (Wang, Simoncelli & Bovik 2003,
/// doi:10.1109/ACSSC.2003.1292216) of probability maps P against binary targets T, with the
/// UNet 3+ reference's settings (../shared/ARCHITECTURES.md §3, `ms_ssim` in
/// ../shared/bench/peers.py), and its gradient with respect to P.
///
/// L = 1, C1 = 0.01², C2 = 0.03²; a normalised Gaussian window (σ 1.5, min(11, H, W) wide,
/// centre at width/2), no padding (valid); 5 scales with 2×2 average pooling (floor) between
/// them. At scale j the window-weighted statistics μ_p, μ_t, E[p²], E[t²], E[pt] give
///
///     cs = (2(E[pt] − μ_pμ_t) + C2)/((E[p²] − μ_p²) + (E[t²] − μ_t²) + C2)
///     ss = (2μ_pμ_t + C1)/(μ_p² + μ_t² + C1) · cs
///
/// cs_j and ss_j are their means over every window position of every plane; both are mapped to
/// (x + 1)/2, and MS-SSIM = Π_{j<4} cs_j^{w_j} · ss_4^{w_4}, w = (0.0448, 0.2856, 0.3001,
/// 0.2363, 0.1333). Computed in Double with separable windows; the backward pass runs the
/// same chain in reverse (statistics → transposed window → average-pool transpose).
enum MSSSIM {
  static let weights: [Double] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
  static let c1 = 0.01 * 0.01
  static let c2 = 0.03 * 0.03
  static let sigma = 1.5

  /// The normalised 1-D Gaussian window of `size` taps (σ 1.5, centre size/2).
  static func window(_ size: Int) -> [Double] {
    let c = Double(size / 2)
    let g = (0..<size).map { i -> Double in
      let d = Double(i) - c
      return exp(-(d * d) / (2 * sigma * sigma))
    }
    let sum = g.reduce(0, +)
    return g.map { $0 / sum }
  }

  /// Valid separable correlation of `planes` planes h × w with window g (taps k): (h−k+1) × (w−k+1).
  static func filter(_ input: [Double], planes: Int, h: Int, w: Int, _ g: [Double]) -> [Double] {
    let k = g.count, oh = h - k + 1, ow = w - k + 1
    var tmp = [Double](repeating: 0, count: planes * h * ow)
    for p in 0..<planes {
      for y in 0..<h {
        let src = p * h * w + y * w, dst = p * h * ow + y * ow
        for x in 0..<ow {
          var s = 0.0
          for a in 0..<k { s += g[a] * input[src + x + a] }
          tmp[dst + x] = s
        }
      }
    }
    var out = [Double](repeating: 0, count: planes * oh * ow)
    for p in 0..<planes {
      for y in 0..<oh {
        let dst = p * oh * ow + y * ow
        for a in 0..<k {
          let src = p * h * ow + (y + a) * ow
          let ga = g[a]
          for x in 0..<ow { out[dst + x] += ga * tmp[src + x] }
        }
      }
    }
    return out
  }

  /// The transpose of ``filter(_:planes:h:w:_:)``: (h−k+1) × (w−k+1) maps back to h × w.
  static func filterTransposed(_ d: [Double], planes: Int, h: Int, w: Int, _ g: [Double]) -> [Double] {
    let k = g.count, oh = h - k + 1, ow = w - k + 1
    var tmp = [Double](repeating: 0, count: planes * h * ow)
    for p in 0..<planes {
      for y in 0..<oh {
        let src = p * oh * ow + y * ow
        for a in 0..<k {
          let dst = p * h * ow + (y + a) * ow
          let ga = g[a]
          for x in 0..<ow { tmp[dst + x] += ga * d[src + x] }
        }
      }
    }
    var out = [Double](repeating: 0, count: planes * h * w)
    for p in 0..<planes {
      for y in 0..<h {
        let src = p * h * ow + y * ow, dst = p * h * w + y * w
        for x in 0..<ow {
          let v = tmp[src + x]
          for a in 0..<k { out[dst + x + a] += g[a] * v }
        }
      }
    }
    return out
  }

  /// 2×2 average pooling (floor).
  static func pool(_ x: [Double], planes: Int, h: Int, w: Int) -> [Double] {
    let oh = h / 2, ow = w / 2
    var out = [Double](repeating: 0, count: planes * oh * ow)
    for p in 0..<planes {
      for y in 0..<oh {
        for xx in 0..<ow {
          let i = p * h * w + 2 * y * w + 2 * xx
          out[p * oh * ow + y * ow + xx] = 0.25 * (x[i] + x[i + 1] + x[i + w] + x[i + w + 1])
        }
      }
    }
    return out
  }

  /// The transpose of ``pool(_:planes:h:w:)``, added into `into` (h × w planes).
  static func poolTransposed(_ d: [Double], planes: Int, h: Int, w: Int, into out: inout [Double]) {
    let oh = h / 2, ow = w / 2
    for p in 0..<planes {
      for y in 0..<oh {
        for xx in 0..<ow {
          let v = 0.25 * d[p * oh * ow + y * ow + xx]
          let i = p * h * w + 2 * y * w + 2 * xx
          out[i] += v
          out[i + 1] += v
          out[i + w] += v
          out[i + w + 1] += v
        }
      }
    }
  }

  /// MS-SSIM of P against T (both `planes` planes of h × w, h and w ≥ 16) and, with
  /// `gradient`, ∂MS-SSIM/∂P.
  static func evaluate(p p0: [Double], t t0: [Double], planes: Int, h h0: Int, w w0: Int, gradient: Bool) -> (value: Double, dp: [Double]) {
    let scales = weights.count
    precondition(h0 >> (scales - 1) >= 1 && w0 >> (scales - 1) >= 1, "MS-SSIM: maps of \(h0)×\(w0) are too small for \(scales) scales (at least 16×16)")
    var ps = [p0], ts = [t0], hs = [h0], ws = [w0]
    for j in 1..<scales {
      ps.append(pool(ps[j - 1], planes: planes, h: hs[j - 1], w: ws[j - 1]))
      ts.append(pool(ts[j - 1], planes: planes, h: hs[j - 1], w: ws[j - 1]))
      hs.append(hs[j - 1] / 2)
      ws.append(ws[j - 1] / 2)
    }
    // Per scale: the mapped mean (cs for j < 4, ss for the last) and what the gradient needs.
    var mapped = [Double](repeating: 0, count: scales)
    var stats: [(mp: [Double], mt: [Double], a: [Double], b: [Double], window: [Double])] = []
    for j in 0..<scales {
      let h = hs[j], w = ws[j], g = window(min(11, h, w))
      let p = ps[j], t = ts[j]
      let mp = filter(p, planes: planes, h: h, w: w, g), mt = filter(t, planes: planes, h: h, w: w, g)
      let epp = filter(p.map { $0 * $0 }, planes: planes, h: h, w: w, g)
      let ett = filter(t.map { $0 * $0 }, planes: planes, h: h, w: w, g)
      let ept = filter(zip(p, t).map { $0 * $1 }, planes: planes, h: h, w: w, g)
      var a = [Double](repeating: 0, count: mp.count), b = a
      var sum = 0.0
      for i in mp.indices {
        a[i] = 2 * (ept[i] - mp[i] * mt[i]) + c2
        b[i] = (epp[i] - mp[i] * mp[i]) + (ett[i] - mt[i] * mt[i]) + c2
        var v = a[i] / b[i]
        if j == scales - 1 { v *= (2 * mp[i] * mt[i] + c1) / (mp[i] * mp[i] + mt[i] * mt[i] + c1) }
        sum += v
      }
      mapped[j] = (sum / Double(mp.count) + 1) / 2
      stats.append((mp, mt, a, b, g))
    }
    var value = 1.0
    for j in 0..<scales { value *= pow(mapped[j], weights[j]) }
    guard gradient else { return (value, []) }
    // Coarse to fine: the scale's own term, then the average-pool transpose to the next finer.
    var carry = [Double](repeating: 0, count: planes * hs[scales - 1] * ws[scales - 1])
    for j in (0..<scales).reversed() {
      let h = hs[j], w = ws[j]
      let (mp, mt, a, b, g) = stats[j]
      let positions = Double(mp.count)
      // ∂MS/∂(mean of the map) = MS·w_j/mapped_j · ½.
      let coefficient = mapped[j] > 1e-12 ? value * weights[j] / mapped[j] / 2 / positions : 0
      var dmp = [Double](repeating: 0, count: mp.count), dpp = dmp, dpt = dmp
      let last = j == scales - 1
      for i in mp.indices {
        let bi = b[i], ai = a[i], cs = ai / bi
        var dMu = (-2 * mt[i] * bi + 2 * mp[i] * ai) / (bi * bi)
        var dPP = -ai / (bi * bi)
        var dPT = 2 / bi
        if last {
          let num = 2 * mp[i] * mt[i] + c1, den = mp[i] * mp[i] + mt[i] * mt[i] + c1
          let l = num / den
          let dl = (2 * mt[i] * den - num * 2 * mp[i]) / (den * den)
          dMu = l * dMu + cs * dl
          dPP *= l
          dPT *= l
        }
        dmp[i] = coefficient * dMu
        dpp[i] = coefficient * dPP
        dpt[i] = coefficient * dPT
      }
      let r1 = filterTransposed(dmp, planes: planes, h: h, w: w, g)
      let r2 = filterTransposed(dpp, planes: planes, h: h, w: w, g)
      let r3 = filterTransposed(dpt, planes: planes, h: h, w: w, g)
      let p = ps[j], t = ts[j]
      for i in carry.indices { carry[i] += r1[i] + 2 * p[i] * r2[i] + t[i] * r3[i] }
      if j > 0 {
        var finer = [Double](repeating: 0, count: planes * hs[j - 1] * ws[j - 1])
        poolTransposed(carry, planes: planes, h: hs[j - 1], w: ws[j - 1], into: &finer)
        carry = finer
      }
    }
    return (value, carry)
  }

  /// The loss term 1 − MS-SSIM over the foreground maps of `m`; adds `scale`·∂/∂P into `dp`.
  static func loss(_ m: ProbabilityMaps, scale: Float, dp: UnsafeMutablePointer<Float>) -> Double {
    let s = m.shape
    let planes = s.n * m.foreground.count
    var p = [Double](repeating: 0, count: planes * s.plane), t = p
    var k = 0
    for n in 0..<s.n {
      for c in m.foreground {
        let src = m.p + n * s.item + c * s.plane
        for i in 0..<s.plane {
          p[k * s.plane + i] = Double(src[i])
          t[k * s.plane + i] = Double(m.target(n, c, i))
        }
        k += 1
      }
    }
    let (value, grad) = evaluate(p: p, t: t, planes: planes, h: s.h, w: s.w, gradient: true)
    k = 0
    for n in 0..<s.n {
      for c in m.foreground {
        let d = dp + n * s.item + c * s.plane
        for i in 0..<s.plane { d[i] -= scale * Float(grad[k * s.plane + i]) }
        k += 1
      }
    }
    return 1 - value
  }
}
