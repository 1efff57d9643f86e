/// Mirror padding (numpy's `reflect`), the one kind of padding both the augmentation stages
/// and the overlap-tile strategy use.
public enum Pad {
  /// The index numpy's `reflect` reads for position `i` of a row of `n` samples: mirror at 0
  /// and n − 1 without repeating the edge (period 2(n − 1)), for any i; 0 when n ≤ 1.
  @inline(__always)
  public static func reflectIndex(_ i: Int, _ n: Int) -> Int {
    if n <= 1 { return 0 }
    if i >= 0 && i < n { return i }
    let period = 2 * (n - 1)
    var r = i % period
    if r < 0 { r += period }
    return r >= n ? period - r : r
  }

  /// Pads every channel by the given margins with numpy's `reflect` (mirror without repeating
  /// the edge pixel), for any margin, also larger than the image (the reflection repeats).
  ///
  /// - Complexity: O(output pixels): a copy per row and a reversed copy for each side margin
  ///   (when the margins are below the width, the usual case), else a gather through reflected
  ///   column indices computed once.
  public static func reflect(_ image: Image, top: Int, bottom: Int, left: Int, right: Int) -> Image {
    precondition(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, "negative padding")
    switch image.storage {
    case .uint8(let a): return Image(width: image.width + left + right, height: image.height + top + bottom, channels: image.channels, pixels: pad(a, image, top, bottom, left, right))
    case .uint16(let a): return Image(width: image.width + left + right, height: image.height + top + bottom, channels: image.channels, pixels: pad(a, image, top, bottom, left, right))
    case .uint32(let a): return Image(width: image.width + left + right, height: image.height + top + bottom, channels: image.channels, pixels: pad(a, image, top, bottom, left, right))
    case .float32(let a): return Image(width: image.width + left + right, height: image.height + top + bottom, channels: image.channels, pixels: pad(a, image, top, bottom, left, right))
    }
  }

  /// The same margin on all four sides.
  public static func reflect(_ image: Image, margin: Int) -> Image {
    reflect(image, top: margin, bottom: margin, left: margin, right: margin)
  }

  static func pad<T: BitwiseCopyable>(_ a: [T], _ image: Image, _ top: Int, _ bottom: Int, _ left: Int, _ right: Int) -> [T] {
    let w = image.width
    let h = image.height
    let ow = w + left + right
    let oh = h + top + bottom
    // Margins below the width reflect once (w = 1 has no reflection: every index is 0).
    let single = w > 1 && left <= w - 1 && right <= w - 1
    let leftIndex = single ? [] : (0..<left).map { reflectIndex($0 - left, w) }
    let rightIndex = single ? [] : (0..<right).map { reflectIndex(w + $0, w) }
    let count = ow * oh * image.channels
    return [T](unsafeUninitializedCapacity: count) { out, initialized in
      a.withUnsafeBufferPointer { src in
        guard let s = src.baseAddress, let o = out.baseAddress else { return }
        for c in 0..<image.channels {
          let sp = s + c * w * h
          let op = o + c * ow * oh
          for y in 0..<oh {
            let srow = sp + reflectIndex(y - top, h) * w
            let orow = op + y * ow
            if single {
              // One reflection: out[i] = row[left − i] on the left, row[w − 2 − i] on the right.
              for i in 0..<left { (orow + i).initialize(to: srow[left - i]) }
              (orow + left).initialize(from: srow, count: w)
              let r = orow + left + w, last = srow + (w - 2)
              for i in 0..<right { (r + i).initialize(to: last[-i]) }
            } else {
              leftIndex.withUnsafeBufferPointer { li in
                for i in 0..<left { (orow + i).initialize(to: srow[li[i]]) }
              }
              (orow + left).initialize(from: srow, count: w)
              rightIndex.withUnsafeBufferPointer { ri in
                for i in 0..<right { (orow + left + w + i).initialize(to: srow[ri[i]]) }
              }
            }
          }
        }
      }
      initialized = count
    }
  }
}
