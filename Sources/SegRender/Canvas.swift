import SegCore

/// An RGB colour.
public struct RGB: Sendable, Equatable, Hashable {
  public var r: UInt8
  public var g: UInt8
  public var b: UInt8

  public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) {
    self.r = r
    self.g = g
    self.b = b
  }

  public static let black = RGB(0, 0, 0)
  public static let white = RGB(255, 255, 255)
  public static let gray = RGB(128, 128, 128)
  public static let lightGray = RGB(225, 225, 225)
  public static let darkGray = RGB(60, 60, 60)
  public static let red = RGB(230, 40, 40)
  public static let blue = RGB(40, 90, 230)
  public static let yellow = RGB(250, 220, 40)
  public static let green = RGB(40, 200, 90)
  public static let orange = RGB(245, 140, 30)

  /// Linear blend: `alpha` of `over` on top of self.
  @inline(__always)
  public func blended(with over: RGB, alpha: Double) -> RGB {
    let a = min(max(alpha, 0), 1)
    func mix(_ x: UInt8, _ y: UInt8) -> UInt8 { UInt8((Double(x) * (1 - a) + Double(y) * a).rounded()) }
    return RGB(mix(r, over.r), mix(g, over.g), mix(b, over.b))
  }
}

/// A drawing surface of RGB pixels (interleaved, row-major) with the few primitives our
/// pictures need: rectangles, lines, text in the 6 × 10 bitmap font, and pasting.
public struct Canvas: Sendable, Equatable {
  public let width: Int
  public let height: Int
  /// RGB triples, row-major.
  public private(set) var pixels: [UInt8]

  public init(width: Int, height: Int, background: RGB = .white) {
    precondition(width >= 0 && height >= 0, "canvas size \(width)×\(height)")
    self.width = width
    self.height = height
    var p = [UInt8](repeating: 0, count: width * height * 3)
    for i in 0..<(width * height) {
      p[3 * i] = background.r
      p[3 * i + 1] = background.g
      p[3 * i + 2] = background.b
    }
    self.pixels = p
  }

  /// A canvas from a uint8 image with 1 (gray) or 3 (RGB) channels.
  public init(image: Image) {
    precondition(image.pixelType == .uint8 && (image.channels == 1 || image.channels == 3), "Canvas(image:) takes uint8 gray or RGB")
    self.init(width: image.width, height: image.height)
    let s = image.labelSamples()
    let n = image.planeSize
    for i in 0..<n {
      let r = UInt8(s[i])
      let g = image.channels == 3 ? UInt8(s[n + i]) : r
      let b = image.channels == 3 ? UInt8(s[2 * n + i]) : r
      pixels[3 * i] = r
      pixels[3 * i + 1] = g
      pixels[3 * i + 2] = b
    }
  }

  /// The canvas as a planar 3-channel uint8 image (for the PNG encoder).
  public var image: Image {
    let n = width * height
    var planar = [UInt8](repeating: 0, count: n * 3)
    for i in 0..<n {
      planar[i] = pixels[3 * i]
      planar[n + i] = pixels[3 * i + 1]
      planar[2 * n + i] = pixels[3 * i + 2]
    }
    return Image(width: width, height: height, channels: 3, pixels: planar)
  }

  @inline(__always)
  public func color(x: Int, y: Int) -> RGB {
    let i = 3 * (y * width + x)
    return RGB(pixels[i], pixels[i + 1], pixels[i + 2])
  }

  /// Sets one pixel; coordinates outside the canvas are ignored.
  @inline(__always)
  public mutating func set(x: Int, y: Int, _ c: RGB) {
    guard x >= 0, y >= 0, x < width, y < height else { return }
    let i = 3 * (y * width + x)
    pixels[i] = c.r
    pixels[i + 1] = c.g
    pixels[i + 2] = c.b
  }

  /// Blends `c` over one pixel with opacity `alpha`.
  @inline(__always)
  public mutating func blend(x: Int, y: Int, _ c: RGB, alpha: Double) {
    guard x >= 0, y >= 0, x < width, y < height else { return }
    set(x: x, y: y, color(x: x, y: y).blended(with: c, alpha: alpha))
  }

  public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, _ c: RGB) {
    for yy in max(0, y)..<min(height, y + h) {
      for xx in max(0, x)..<min(width, x + w) { set(x: xx, y: yy, c) }
    }
  }

  /// A one-pixel rectangle outline.
  public mutating func stroke(x: Int, y: Int, width w: Int, height h: Int, _ c: RGB) {
    guard w > 0, h > 0 else { return }
    for xx in x..<(x + w) {
      set(x: xx, y: y, c)
      set(x: xx, y: y + h - 1, c)
    }
    for yy in y..<(y + h) {
      set(x: x, y: yy, c)
      set(x: x + w - 1, y: yy, c)
    }
  }

  /// A line from (x0, y0) to (x1, y1) (Bresenham), optionally blended.
  public mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: RGB, alpha: Double = 1) {
    var x = x0
    var y = y0
    let dx = abs(x1 - x0)
    let dy = -abs(y1 - y0)
    let sx = x0 < x1 ? 1 : -1
    let sy = y0 < y1 ? 1 : -1
    var err = dx + dy
    while true {
      if alpha >= 1 { set(x: x, y: y, c) } else { blend(x: x, y: y, c, alpha: alpha) }
      if x == x1 && y == y1 { break }
      let e2 = 2 * err
      if e2 >= dy {
        err += dy
        x += sx
      }
      if e2 <= dx {
        err += dx
        y += sy
      }
    }
  }

  /// Pastes `other` with its top-left corner at (x, y), clipped.
  public mutating func paste(_ other: Canvas, x: Int, y: Int) {
    for yy in 0..<other.height where y + yy >= 0 && y + yy < height {
      for xx in 0..<other.width where x + xx >= 0 && x + xx < width {
        set(x: x + xx, y: y + yy, other.color(x: xx, y: yy))
      }
    }
  }

  /// The width in pixels of `text` at `scale`.
  public static func textWidth(_ text: String, scale: Int = 1) -> Int {
    text.count * BitmapFont.glyphWidth * scale
  }

  /// Draws `text` with its top-left corner at (x, y).
  public mutating func text(_ text: String, x: Int, y: Int, _ c: RGB = .black, scale: Int = 1) {
    var cx = x
    for ch in text {
      for gy in 0..<BitmapFont.glyphHeight {
        for gx in 0..<BitmapFont.glyphWidth where BitmapFont.isSet(ch, x: gx, y: gy) {
          fill(x: cx + gx * scale, y: y + gy * scale, width: scale, height: scale, c)
        }
      }
      cx += BitmapFont.glyphWidth * scale
    }
  }

  /// A copy scaled by an integer factor (nearest neighbour, for small images).
  public func scaled(by factor: Int) -> Canvas {
    guard factor > 1 else { return self }
    var out = Canvas(width: width * factor, height: height * factor)
    for y in 0..<out.height {
      for x in 0..<out.width { out.set(x: x, y: y, color(x: x / factor, y: y / factor)) }
    }
    return out
  }
}
