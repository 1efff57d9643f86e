import SegCore

#if canImport(Glibc)
  import Glibc
#endif

/// A synthetic microscopy-like sample: a grey image of cells and its instance labels.
///
/// Random ellipses are painted in random order, so later cells overlap and touch earlier
/// ones; along about half of the touching pairs a 1-pixel background gap is cut (the thin gaps
/// the U-Net border weight is about), the other pairs stay in contact. Fragments smaller than
/// `minArea` are dropped and ids made consecutive (1...N); an id may still consist of several
/// pieces. The image has a dim noisy background, brighter textured cells with a darker rim and
/// a bright halo, a light blur and noise. Deterministic for a seed.
public struct SyntheticCells: Sendable {
  public var width: Int
  public var height: Int
  public var cells: Int
  /// Semi-axis range of the ellipses, in pixels.
  public var radius: ClosedRange<Double>
  public var minArea: Int
  public var seed: UInt64

  public init(
    width: Int, height: Int, cells: Int, radius: ClosedRange<Double> = 10...30, minArea: Int = 30,
    seed: UInt64
  ) {
    self.width = width
    self.height = height
    self.cells = cells
    self.radius = radius
    self.minArea = minArea
    self.seed = seed
  }

  /// The instance labels (uint16 if the count fits, else uint32), 0 = background.
  public func labels() -> Image {
    var rng = RandomStream(seed: seed, path: [1])
    let w = width
    let h = height
    var lab = [UInt32](repeating: 0, count: w * h)
    for k in 1...max(cells, 1) where cells > 0 {
      let cy = rng.uniform(0, Double(h))
      let cx = rng.uniform(0, Double(w))
      let a = rng.uniform(radius.lowerBound, radius.upperBound)
      let b = rng.uniform(radius.lowerBound * 0.8, radius.upperBound * 0.8)
      let theta = rng.uniform(0, Double.pi)
      let c = cos(theta)
      let s = sin(theta)
      let r = Int(max(a, b).rounded(.up)) + 1
      for y in max(0, Int(cy) - r)..<min(h, Int(cy) + r + 1) {
        for x in max(0, Int(cx) - r)..<min(w, Int(cx) + r + 1) {
          let dx = Double(x) - cx
          let dy = Double(y) - cy
          let u = (dx * c + dy * s) / a
          let v = (-dx * s + dy * c) / b
          if u * u + v * v <= 1 { lab[y * w + x] = UInt32(k) }
        }
      }
    }
    // Cut a 1-px gap along about half of the touching pairs, decided per pair by a hash.
    var cut = [Bool](repeating: false, count: w * h)
    for y in 0..<h {
      for x in 0..<w {
        let p = lab[y * w + x]
        guard p != 0 else { continue }
        for (nx, ny) in [(x + 1, y), (x, y + 1)] where nx < w && ny < h {
          let q = lab[ny * w + nx]
          guard q != 0, q != p else { continue }
          let pair = UInt64(min(p, q)) << 32 | UInt64(max(p, q))
          if mix64(pair ^ seed) & 1 == 0 {
            // the later-painted (larger id) cell gives up its boundary pixel
            if p > q { cut[y * w + x] = true } else { cut[ny * w + nx] = true }
          }
        }
      }
    }
    for i in 0..<(w * h) where cut[i] { lab[i] = 0 }
    // Drop small fragments (ids with fewer than minArea pixels) and renumber 1...N.
    var area = [Int: Int]()
    for v in lab where v != 0 { area[Int(v), default: 0] += 1 }
    var newID = [UInt32: UInt32]()
    var next: UInt32 = 1
    for id in area.keys.sorted() where area[id, default: 0] >= minArea {
      newID[UInt32(id)] = next
      next += 1
    }
    for i in 0..<(w * h) { lab[i] = newID[lab[i]] ?? 0 }
    if next <= 65536 {
      return Image(width: w, height: h, pixels: lab.map { UInt16($0) })
    }
    return Image(width: w, height: h, pixels: lab)
  }

  /// The grey image for `labels` as float intensities in [0, 1].
  public func intensities(labels: Image) -> [Float] {
    var rng = RandomStream(seed: seed, path: [2])
    let w = width
    let h = height
    let lab = labels.labelSamples()
    var img = [Float](repeating: 0, count: w * h)
    // Per-cell brightness and texture phase.
    let maxID = Int(lab.max() ?? 0)
    var brightness = [Float](repeating: 0, count: maxID + 1)
    var phase = [Float](repeating: 0, count: maxID + 1)
    for k in 0...maxID {
      brightness[k] = Float(rng.uniform(0.5, 0.8))
      phase[k] = Float(rng.uniform(0, 6.283))
    }
    for y in 0..<h {
      for x in 0..<w {
        let i = y * w + x
        let id = Int(lab[i])
        var boundary = false
        var nearCell = false
        for (nx, ny) in [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)] {
          guard nx >= 0, ny >= 0, nx < w, ny < h else { continue }
          let q = Int(lab[ny * w + nx])
          if q != id { boundary = true }
          if q != 0 { nearCell = true }
        }
        if id == 0 {
          img[i] = nearCell ? 0.55 : 0.16
        } else {
          let t = sin(Float(x) * 0.7 + phase[id]) * cos(Float(y) * 0.5 - phase[id])
          img[i] = boundary ? 0.3 : brightness[id] + 0.08 * t
        }
      }
    }
    // 3 × 3 box blur, then Gaussian noise.
    var out = img
    for y in 0..<h {
      for x in 0..<w {
        var sum: Float = 0
        var n: Float = 0
        for dy in -1...1 {
          for dx in -1...1 {
            let yy = y + dy
            let xx = x + dx
            if yy >= 0, xx >= 0, yy < h, xx < w {
              sum += img[yy * w + xx]
              n += 1
            }
          }
        }
        out[y * w + x] = min(1, max(0, sum / n + Float(rng.gaussian()) * 0.03))
      }
    }
    return out
  }

  /// The grey image as uint8 (or uint16 spanning 0...65535 with `bits: 16`).
  public func image(labels: Image, bits: Int = 8) -> Image {
    let f = intensities(labels: labels)
    if bits == 16 {
      return Image(width: width, height: height, pixels: f.map { UInt16(($0 * 65535).rounded()) })
    }
    return Image(width: width, height: height, pixels: f.map { UInt8(($0 * 255).rounded()) })
  }

  /// Image and labels together.
  public func make(bits: Int = 8) -> (image: Image, labels: Image) {
    let l = labels()
    return (image(labels: l, bits: bits), l)
  }
}
