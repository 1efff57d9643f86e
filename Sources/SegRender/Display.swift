import SegCore

/// Turning data into pictures: windowing, heat maps and colour bars.
public enum Display {
  /// The p-th percentile (0...100) of the finite values, by sorting a copy (display only).
  public static func percentile(_ values: [Float], _ p: Double) -> Float {
    let finite = values.filter { $0.isFinite }.sorted()
    guard !finite.isEmpty else { return 0 }
    let pos = min(max(p, 0), 100) / 100 * Double(finite.count - 1)
    let lo = Int(pos)
    let hi = min(lo + 1, finite.count - 1)
    let t = Float(pos - Double(lo))
    return finite[lo] + (finite[hi] - finite[lo]) * t
  }

  /// The [low, high] percentiles of the finite values, from one sort of at most 65,536 of them
  /// taken at a fixed stride (a display window needs no more precision; deterministic).
  public static func window(_ values: [Float], low: Double, high: Double) -> (Float, Float) {
    let stride = max(1, values.count / 65_536)
    var sample: [Float] = []
    sample.reserveCapacity(values.count / stride + 1)
    var i = 0
    while i < values.count {
      if values[i].isFinite { sample.append(values[i]) }
      i += stride
    }
    sample.sort()
    guard !sample.isEmpty else { return (0, 0) }
    func at(_ p: Double) -> Float {
      let pos = min(max(p, 0), 100) / 100 * Double(sample.count - 1)
      let j = Int(pos)
      let t = Float(pos - Double(j))
      return j + 1 < sample.count ? sample[j] + (sample[j + 1] - sample[j]) * t : sample[j]
    }
    return (at(low), at(high))
  }

  /// An image for display: one channel shown gray, three shown as RGB (other channel counts
  /// show channel 0). uint8 images are shown as they are unless `alwaysWindow`; 16-bit,
  /// 32-bit and float images are windowed to the [low, high] percentiles of their values
  /// (per channel), so a 12-bit EM image in a 16-bit file is not black.
  public static func canvas(
    for image: Image, low: Double = 1, high: Double = 99, alwaysWindow: Bool = false
  ) -> Canvas {
    let rgb = image.channels == 3
    let planes = rgb ? [0, 1, 2] : [0]
    var out = Canvas(width: image.width, height: image.height)
    var channels: [[UInt8]] = []
    for c in planes {
      let plane = image.channel(c)
      if plane.pixelType == .uint8 && !alwaysWindow {
        channels.append(plane.labelSamples().map { UInt8($0) })
        continue
      }
      let f = plane.floatSamples()
      let (lo, hi) = window(f, low: low, high: high)
      let scale = hi > lo ? 255 / (hi - lo) : 0
      channels.append(f.map { v in
        guard v.isFinite else { return 0 }
        return UInt8(min(max((v - lo) * scale, 0), 255).rounded())
      })
    }
    for y in 0..<image.height {
      for x in 0..<image.width {
        let i = y * image.width + x
        let r = channels[0][i]
        out.set(x: x, y: y, rgb ? RGB(r, channels[1][i], channels[2][i]) : RGB(r, r, r))
      }
    }
    return out
  }

  /// A heat map of `values` (row-major, width × height) over [range.lowerBound, range.upperBound].
  public static func heatMap(
    _ values: [Float], width: Int, height: Int, colormap: Colormap = .viridis, range: ClosedRange<Float>
  ) -> Canvas {
    var out = Canvas(width: width, height: height)
    let span = range.upperBound - range.lowerBound
    for y in 0..<height {
      for x in 0..<width {
        let v = values[y * width + x]
        let t = span > 0 ? Double((v - range.lowerBound) / span) : 0
        let (r, g, b) = colormap.color(t)
        out.set(x: x, y: y, RGB(r, g, b))
      }
    }
    return out
  }

  /// A vertical colour bar `height` pixels tall with tick labels at the ends and the middle,
  /// and an optional title on top.
  public static func colorBar(
    height: Int, colormap: Colormap = .viridis, range: ClosedRange<Float>, title: String? = nil
  ) -> Canvas {
    let labels = [range.upperBound, (range.lowerBound + range.upperBound) / 2, range.lowerBound].map(formatTick)
    let labelWidth = labels.map { Canvas.textWidth($0) }.max() ?? 0
    let barWidth = 14
    let top = title == nil ? 6 : 18
    let width = max(barWidth + 9 + labelWidth + 4, Canvas.textWidth(title ?? "") + 4)
    let barHeight = max(height - top - 6, 10)
    var out = Canvas(width: width, height: top + barHeight + 6)
    if let title { out.text(title, x: 2, y: 3) }
    for y in 0..<barHeight {
      let t = 1 - Double(y) / Double(max(barHeight - 1, 1))
      let (r, g, b) = colormap.color(t)
      out.fill(x: 2, y: top + y, width: barWidth, height: 1, RGB(r, g, b))
    }
    out.stroke(x: 1, y: top - 1, width: barWidth + 2, height: barHeight + 2, .darkGray)
    for (k, label) in labels.enumerated() {
      let y = top + (barHeight - 1) * k / 2
      out.fill(x: barWidth + 2, y: y, width: 3, height: 1, .darkGray)
      out.text(label, x: barWidth + 9, y: max(0, min(y - 4, out.height - BitmapFont.glyphHeight)))
    }
    return out
  }

  /// A short number for a tick label (up to 4 significant digits).
  public static func formatTick(_ v: Float) -> String {
    let d = Double(v)
    if d == d.rounded() && abs(d) < 1e6 { return String(Int(d)) }
    let magnitude = abs(d)
    let decimals = magnitude >= 100 ? 1 : (magnitude >= 10 ? 2 : (magnitude >= 1 ? 3 : 4))
    var s = String(fixed: d, decimals: decimals)
    while s.contains(".") && (s.hasSuffix("0") || s.hasSuffix(".")) { s.removeLast() }
    return s
  }

  /// A heat map with a colour bar beside it.
  public static func heatMapWithBar(
    _ values: [Float], width: Int, height: Int, colormap: Colormap = .viridis, title: String? = nil
  ) -> Canvas {
    let finite = values.filter { $0.isFinite }
    let lo = finite.min() ?? 0
    let hi = max(finite.max() ?? 1, lo)
    let map = heatMap(values, width: width, height: height, colormap: colormap, range: lo...hi)
    let bar = colorBar(height: max(height, 60), colormap: colormap, range: lo...hi, title: title)
    var out = Canvas(width: width + 8 + bar.width, height: max(height, bar.height))
    out.paste(map, x: 0, y: 0)
    out.paste(bar, x: width + 8, y: 0)
    return out
  }
}

extension String {
  /// `value` with exactly `decimals` digits after the point (no Foundation formatting).
  public init(fixed value: Double, decimals: Int) {
    guard value.isFinite else {
      self = value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf")
      return
    }
    var scale = 1.0
    for _ in 0..<Swift.max(decimals, 0) { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    let whole = Int(scaled / scale)
    let frac = Int(scaled - Double(whole) * scale)
    var text = (value < 0 && scaled != 0 ? "-" : "") + String(whole)
    if decimals > 0 {
      let digits = String(frac)
      text += "." + String(repeating: "0", count: Swift.max(0, decimals - digits.count)) + digits
    }
    self = text
  }
}
