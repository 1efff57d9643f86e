#if canImport(Glibc)
  import Glibc
#endif

/// A line chart: named series of (x, y) points on linear axes with ticks, a title and a legend.
public struct LinePlot: Sendable {
  public struct Series: Sendable {
    public var name: String
    public var color: RGB
    public var points: [(x: Double, y: Double)]

    public init(name: String, color: RGB, points: [(x: Double, y: Double)]) {
      self.name = name
      self.color = color
      self.points = points
    }
  }

  public var title: String
  public var xLabel: String
  public var series: [Series]
  /// Plot log10(y) (for losses spanning decades); non-positive values are dropped.
  public var logY: Bool
  /// Fixed y range, or nil to fit the data.
  public var yRange: ClosedRange<Double>?

  public init(title: String, xLabel: String, series: [Series], logY: Bool = false, yRange: ClosedRange<Double>? = nil) {
    self.title = title
    self.xLabel = xLabel
    self.series = series
    self.logY = logY
    self.yRange = yRange
  }

  /// "Nice" tick positions (1, 2 or 5 × 10^k steps) covering [lo, hi].
  public static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
    guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
    let raw = (hi - lo) / Double(max(count, 1))
    let magnitude = pow(10, (log10(raw)).rounded(.down))
    let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
    // Multiples k · step (not a running sum, which would collect rounding errors).
    let first = Int((lo / step).rounded(.up))
    let last = Int((hi / step + 1e-9).rounded(.down))
    guard first <= last else { return [lo] }
    return (first...last).map { k in
      let t = Double(k) * step
      // Round to the step's decimal places so 3 × 0.2 prints as 0.6.
      let decimals = max(0, -Int((log10(step)).rounded(.down)))
      let scale = pow(10, Double(decimals))
      return (t * scale).rounded() / scale
    }
  }

  /// Ticks of a log10 axis (positions in log10 units): 1, 2, 5 × 10^k inside [lo, hi], or every
  /// 1…9 × 10^k when that gives fewer than three.
  public static func logTicks(_ lo: Double, _ hi: Double) -> [Double] {
    guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
    func within(_ mantissas: [Double]) -> [Double] {
      var out: [Double] = []
      for k in Int(lo.rounded(.down))...Int(hi.rounded(.up)) {
        for m in mantissas {
          let t = log10(m) + Double(k)
          if t >= lo - 1e-12 && t <= hi + 1e-12 { out.append(t) }
        }
      }
      return out
    }
    let coarse = within([1, 2, 5])
    if coarse.count >= 3 { return coarse.count > 8 ? within([1]) : coarse }
    return within([1, 2, 3, 4, 5, 6, 7, 8, 9])
  }

  public func render(width: Int = 520, height: Int = 300) -> Canvas {
    var c = Canvas(width: width, height: height)
    let left = 56
    let right = 12
    let top = 24
    let bottom = 36
    let pw = width - left - right
    let ph = height - top - bottom
    c.text(title, x: left, y: 6)
    let transformed: [[(Double, Double)]] = series.map { s in
      s.points.compactMap { p in
        guard p.x.isFinite, p.y.isFinite else { return nil }
        if logY { return p.y > 0 ? (p.x, log10(p.y)) : nil }
        return (p.x, p.y)
      }
    }
    let all = transformed.flatMap { $0 }
    var xlo = all.map(\.0).min() ?? 0
    var xhi = all.map(\.0).max() ?? 1
    var ylo = all.map(\.1).min() ?? 0
    var yhi = all.map(\.1).max() ?? 1
    if let r = yRange { (ylo, yhi) = logY ? (log10(max(r.lowerBound, 1e-12)), log10(max(r.upperBound, 1e-12))) : (r.lowerBound, r.upperBound) }
    if xhi <= xlo { xhi = xlo + 1 }
    if yhi <= ylo {
      yhi = ylo + 0.5
      ylo -= 0.5
    }
    let pad = (yhi - ylo) * 0.05
    if yRange == nil {
      ylo -= pad
      yhi += pad
    }
    if xlo > 0 && xlo < (xhi - xlo) * 0.2 { xlo = 0 }
    func px(_ x: Double) -> Int { left + Int(((x - xlo) / (xhi - xlo) * Double(pw - 1)).rounded()) }
    func py(_ y: Double) -> Int { top + ph - 1 - Int(((y - ylo) / (yhi - ylo) * Double(ph - 1)).rounded()) }
    // Grid, ticks and labels.
    for t in logY ? Self.logTicks(ylo, yhi) : Self.ticks(ylo, yhi) {
      let y = py(t)
      c.line(left, y, left + pw - 1, y, .lightGray)
      let label = logY ? Display.formatTick(Float(pow(10, t))) : Display.formatTick(Float(t))
      c.text(label, x: max(0, left - 4 - Canvas.textWidth(label)), y: y - 4, .darkGray)
    }
    for t in Self.ticks(xlo, xhi) {
      let x = px(t)
      c.line(x, top, x, top + ph - 1, .lightGray)
      let label = Display.formatTick(Float(t))
      c.text(label, x: x - Canvas.textWidth(label) / 2, y: top + ph + 4, .darkGray)
    }
    c.stroke(x: left, y: top, width: pw, height: ph, .darkGray)
    c.text(xLabel, x: left + pw / 2 - Canvas.textWidth(xLabel) / 2, y: height - 12, .darkGray)
    // Series: polylines with a dot per point when there are few.
    for (s, points) in zip(series, transformed) {
      let sorted = points.sorted { $0.0 < $1.0 }
      for (a, b) in zip(sorted, sorted.dropFirst()) { c.line(px(a.0), py(a.1), px(b.0), py(b.1), s.color) }
      if sorted.count <= 40 {
        for p in sorted { c.fill(x: px(p.0) - 1, y: py(p.1) - 1, width: 3, height: 3, s.color) }
      }
    }
    // Legend, top right.
    var ly = top + 4
    for s in series {
      let w = Canvas.textWidth(s.name)
      let x = left + pw - w - 22
      c.fill(x: x, y: ly + 3, width: 12, height: 3, s.color)
      c.text(s.name, x: x + 16, y: ly, .black)
      ly += 12
    }
    return c
  }
}
