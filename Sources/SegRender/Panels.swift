import SegCore

/// The panels of a preview row, each built at the data's own resolution and scaled for display.
public enum Panels {
  /// A distinct, stable colour for an instance id (golden-ratio hues, bright and saturated).
  public static func color(forLabel id: UInt32) -> RGB {
    let h = Double(mix64(UInt64(id) &* 0x9E37_79B9) % 10_000) / 10_000
    let s = 0.75
    let v = 0.95
    let i = Int(h * 6) % 6
    let f = h * 6 - Double(Int(h * 6))
    let p = v * (1 - s)
    let q = v * (1 - f * s)
    let t = v * (1 - (1 - f) * s)
    let (r, g, b): (Double, Double, Double)
    switch i {
    case 0: (r, g, b) = (v, t, p)
    case 1: (r, g, b) = (q, v, p)
    case 2: (r, g, b) = (p, v, t)
    case 3: (r, g, b) = (p, q, v)
    case 4: (r, g, b) = (t, p, v)
    default: (r, g, b) = (v, p, q)
    }
    return RGB(UInt8(r * 255), UInt8(g * 255), UInt8(b * 255))
  }

  /// The labels over `base`: every labelled pixel blended with its instance's colour at
  /// `alpha`, and outline pixels (a 4-neighbour has another id, including 0) drawn in a darker
  /// shade of that colour, so touching cells stay apart. Background pixels are left as they are.
  public static func labelOverlay(_ base: Canvas, ids: [UInt32], alpha: Double = 0.45) -> Canvas {
    precondition(ids.count == base.width * base.height, "label map size differs from the image")
    var out = base
    let w = base.width
    let h = base.height
    for y in 0..<h {
      for x in 0..<w {
        let id = ids[y * w + x]
        guard id != 0 else { continue }
        var edge = false
        if x > 0 && ids[y * w + x - 1] != id { edge = true }
        if x + 1 < w && ids[y * w + x + 1] != id { edge = true }
        if y > 0 && ids[(y - 1) * w + x] != id { edge = true }
        if y + 1 < h && ids[(y + 1) * w + x] != id { edge = true }
        let c = color(forLabel: id)
        if edge {
          out.set(x: x, y: y, RGB(c.r / 2, c.g / 2, c.b / 2))
        } else {
          out.blend(x: x, y: y, c, alpha: alpha)
        }
      }
    }
    return out
  }

  /// Lines where a regular grid of the source went: a pixel is on a line when its source
  /// coordinate crosses a multiple of `spacing` between it and its right or lower neighbour.
  /// `sourceX`/`sourceY` hold the source coordinate of every pixel of `base` (NaN: none).
  public static func deformationGrid(
    _ base: Canvas, sourceX: [Float], sourceY: [Float], spacing: Float, color: RGB = .yellow, dim: Double = 0.35
  ) -> Canvas {
    let w = base.width
    let h = base.height
    var out = base
    // Dim the image so the grid stands out.
    for y in 0..<h { for x in 0..<w { out.blend(x: x, y: y, .black, alpha: dim) } }
    func cell(_ v: Float) -> Int { Int((v / spacing).rounded(.down)) }
    for y in 0..<h {
      for x in 0..<w {
        let i = y * w + x
        let sx = sourceX[i]
        let sy = sourceY[i]
        guard !sx.isNaN, !sy.isNaN else { continue }
        var on = false
        if x + 1 < w, !sourceX[i + 1].isNaN {
          on = on || cell(sx) != cell(sourceX[i + 1]) || cell(sy) != cell(sourceY[i + 1])
        }
        if y + 1 < h, !sourceX[i + w].isNaN {
          on = on || cell(sx) != cell(sourceX[i + w]) || cell(sy) != cell(sourceY[i + w])
        }
        if on { out.set(x: x, y: y, color) }
      }
    }
    return out
  }

  /// A copy scaled to fit `maxSide` (never enlarged), by area averaging (box filter over the
  /// source pixels each output pixel covers), so thin structures fade rather than alias.
  public static func fit(_ c: Canvas, maxSide: Int) -> Canvas {
    let scale = min(1, Double(maxSide) / Double(max(c.width, c.height, 1)))
    guard scale < 1 else { return c }
    let ow = max(1, Int((Double(c.width) * scale).rounded()))
    let oh = max(1, Int((Double(c.height) * scale).rounded()))
    var out = Canvas(width: ow, height: oh)
    for oy in 0..<oh {
      let y0 = oy * c.height / oh
      let y1 = max(y0 + 1, (oy + 1) * c.height / oh)
      for ox in 0..<ow {
        let x0 = ox * c.width / ow
        let x1 = max(x0 + 1, (ox + 1) * c.width / ow)
        var r = 0
        var g = 0
        var b = 0
        for y in y0..<y1 {
          for x in x0..<x1 {
            let p = c.color(x: x, y: y)
            r += Int(p.r)
            g += Int(p.g)
            b += Int(p.b)
          }
        }
        let n = (y1 - y0) * (x1 - x0)
        out.set(x: ox, y: oy, RGB(UInt8(r / n), UInt8(g / n), UInt8(b / n)))
      }
    }
    return out
  }

  /// Nearest-neighbour resampling of per-pixel values to a w × h grid (for maps that must not
  /// be averaged, like labels and source coordinates).
  public static func nearest<T>(_ values: [T], width: Int, height: Int, to ow: Int, _ oh: Int) -> [T] {
    guard ow != width || oh != height else { return values }
    var out: [T] = []
    out.reserveCapacity(ow * oh)
    for y in 0..<oh {
      let sy = min(height - 1, (2 * y + 1) * height / (2 * oh))
      for x in 0..<ow {
        let sx = min(width - 1, (2 * x + 1) * width / (2 * ow))
        out.append(values[sy * width + sx])
      }
    }
    return out
  }
}

/// A grid of panels with column titles and row labels.
public struct ContactSheet {
  public var columnTitles: [String]
  public var rows: [(label: String, panels: [Canvas?])]
  public var gap = 6
  public var margin = 8

  public init(columnTitles: [String]) {
    self.columnTitles = columnTitles
    self.rows = []
  }

  public mutating func add(label: String, panels: [Canvas?]) {
    rows.append((label, panels))
  }

  /// Lays the panels out: each column as wide as its widest panel, each row as tall as its
  /// tallest, a title line on top and a label line above each row.
  public func render(background: RGB = .white) -> Canvas {
    let columns = columnTitles.count
    var widths = [Int](repeating: 0, count: columns)
    for row in rows {
      for (c, p) in row.panels.enumerated() where c < columns { widths[c] = max(widths[c], p?.width ?? 0) }
    }
    for c in 0..<columns { widths[c] = max(widths[c], Canvas.textWidth(columnTitles[c])) }
    let titleHeight = BitmapFont.glyphHeight + 6
    let labelHeight = BitmapFont.glyphHeight + 4
    let rowHeights = rows.map { row in row.panels.map { $0?.height ?? 0 }.max() ?? 0 }
    let width = 2 * margin + widths.reduce(0, +) + gap * max(columns - 1, 0)
    let height = 2 * margin + titleHeight + rowHeights.reduce(0) { $0 + $1 + labelHeight + gap }
    var sheet = Canvas(width: width, height: height, background: background)
    var x = margin
    for c in 0..<columns {
      sheet.text(columnTitles[c], x: x, y: margin, .darkGray)
      x += widths[c] + gap
    }
    var y = margin + titleHeight
    for (r, row) in rows.enumerated() {
      sheet.text(row.label, x: margin, y: y, .black)
      y += labelHeight
      var px = margin
      for c in 0..<columns {
        if c < row.panels.count, let p = row.panels[c] { sheet.paste(p, x: px, y: y) }
        px += widths[c] + gap
      }
      y += rowHeights[r] + gap
    }
    return sheet
  }
}

/// Escaping for the HTML page: `&`, `<`, `>` always, double quotes only inside attributes.
public func htmlEscape(_ s: String, attribute: Bool = false) -> String {
  var out = ""
  for ch in s {
    switch ch {
    case "&": out += "&amp;"
    case "<": out += "&lt;"
    case ">": out += "&gt;"
    case "\"" where attribute: out += "&quot;"
    default: out.append(ch)
    }
  }
  return out
}
